"""End-to-end tests of `python -m experiments.main` on real CIFAR-10, in subprocesses.

A shrunken smoke config (40 steps of batch 16, a width-8 CNN, evaluation on the
sample's 200 test images at the end, a checkpoint every 10 steps) is run once without
interruption, and once stopped by SIGTERM at step 15, killed by SIGKILL at step 25
and restarted: the restarted run must end bitwise identical. The processes share a
persistent compilation cache, so only the first one pays for XLA compilation.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mixup_jax import data

_REPO = pathlib.Path(__file__).resolve().parents[1]
_SMALL = [
    "--config=experiments/configs/smoke.py",
    "--config.num_train_steps=40",
    "--config.batch_size=16",
    "--config.model_options.width=8",
    "--config.log_every_steps=5",
    "--config.eval_every_steps=40",
    "--config.checkpoint_every_steps=10",
    "--config.eval_batch_size=2000",
]
_TIMEOUT_S = 240  # per process: a hang fails the test instead of stalling the suite


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  """The subprocesses' environment, with a persistent XLA cache they share."""
  return {
      **os.environ,
      "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("xla_cache")),
      "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
      "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
  }


def _run(args, workdir, env, overrides=()) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, *args, f"--workdir={workdir}", *_SMALL, *overrides],
      cwd=_REPO, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)


def _main(workdir, env, *overrides):
  return _run(["-m", "experiments.main"], workdir, env, overrides)


def _signal_run(workdir, env, at: str):
  return _run(["tests/helpers/signal_run.py", f"--signal_at={at}"], workdir, env)


def _saved_state(workdir, step):
  path = pathlib.Path(workdir) / "checkpoints" / str(step) / "state"
  return jax.tree.map(np.asarray, ocp.StandardCheckpointer().restore(path)["train_state"])


def _comparable(results):
  ignored = {"wall_time_s", "checkpoint", "best_checkpoint", "resumed_from_step"}
  return {k: v for k, v in results.items() if k not in ignored}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, env):
  workdir = tmp_path_factory.mktemp("clean")
  process = _main(workdir, env)
  assert process.returncode == 0, process.stderr[-3000:]
  return workdir, process


def test_smoke_run_writes_results_metrics_and_tensorboard(clean_run):
  workdir, process = clean_run
  results = json.loads((workdir / "results.json").read_text())
  num_train = data.get_dataset("cifar10").num_train  # the committed sample
  assert results["final_step"] == 40 and results["steps_per_epoch"] == num_train // 16
  assert results["config"]["model"] == "cifar_small_cnn"
  assert results["config"]["model_options"] == {"width": 8}
  assert 0 < results["final_test_error"] < 90  # better than chance on 10 classes
  assert results["best_test_error"] <= results["final_test_error"]
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records if "test/error" in r] == [40]
  assert [r["step"] for r in records if "train/loss" in r] == list(range(5, 45, 5))
  assert records[-1]["test/error"] == results["final_test_error"]
  events = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert events and events[0].stat().st_size > 0
  # The progress line: step count, throughput and ETA.
  assert "step 40/40 (100.0%)" in process.stderr and "ex/s" in process.stderr
  assert "ETA 0:00:00" in process.stderr


def test_sigterm_then_sigkill_then_restart_ends_bitwise_identical(clean_run, tmp_path, env):
  clean_dir, _ = clean_run

  stopped = _signal_run(tmp_path, env, "15:SIGTERM")
  assert stopped.returncode == 0, stopped.stderr[-3000:]
  assert "SIGTERM received: stopped at step 15 of 40" in stopped.stderr
  assert (tmp_path / "checkpoints" / "15").is_dir()
  assert not (tmp_path / "results.json").exists()

  killed = _signal_run(tmp_path, env, "25:SIGKILL")
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  assert "Resuming from step 15" in killed.stderr

  finished = _main(tmp_path, env)
  assert finished.returncode == 0, finished.stderr[-3000:]
  resumed_from = json.loads((tmp_path / "results.json").read_text())["resumed_from_step"]
  assert resumed_from in (15, 20), resumed_from  # 20 unless the kill beat its async save

  assert (tmp_path / "metrics.jsonl").read_bytes() == (clean_dir / "metrics.jsonl").read_bytes()
  assert (_comparable(json.loads((tmp_path / "results.json").read_text()))
          == _comparable(json.loads((clean_dir / "results.json").read_text())))
  jax.tree.map(np.testing.assert_array_equal,
               _saved_state(tmp_path, 40), _saved_state(clean_dir, 40))


@pytest.mark.parametrize("override, message", [
    ("--config.mixup.alpha=-1.0",
     "Invalid config: config.mixup.alpha: must be a finite number >= 0"),
    ("--config.mixup.alhpa=1.0", "Invalid config override: the config has no field 'alhpa'"),
])
def test_bad_config_exits_before_anything_starts(tmp_path, env, override, message):
  process = _main(tmp_path / "run", env, override)
  assert process.returncode == 2, process.stderr[-3000:]
  assert message in process.stderr
  assert not (tmp_path / "run").exists()


def test_two_data_workers_give_the_same_run(clean_run, tmp_path, env):
  """grain worker processes read and transform the rows: the batches must not change."""
  clean_dir, _ = clean_run
  process = _main(tmp_path, env, "--config.data_workers=2")
  assert process.returncode == 0, process.stderr[-3000:]
  assert (tmp_path / "metrics.jsonl").read_bytes() == (clean_dir / "metrics.jsonl").read_bytes()
  jax.tree.map(np.testing.assert_array_equal,
               _saved_state(tmp_path, 40), _saved_state(clean_dir, 40))


@pytest.mark.parametrize("before, after", [
    (None, "--xla_cpu_use_xnnpack=true"),
    ("--xla_force_host_platform_device_count=4",
     "--xla_force_host_platform_device_count=4 --xla_cpu_use_xnnpack=true"),
    ("--xla_cpu_use_xnnpack=false", "--xla_cpu_use_xnnpack=false"),  # the user's opt-out
])
def test_command_lines_add_xnnpack_to_the_users_xla_flags(monkeypatch, before, after):
  from experiments import cpu_flags  # pylint: disable=g-import-not-at-top
  if before is None:
    monkeypatch.delenv("XLA_FLAGS", raising=False)
  else:
    monkeypatch.setenv("XLA_FLAGS", before)
  cpu_flags.use_xnnpack()
  assert os.environ["XLA_FLAGS"] == after
