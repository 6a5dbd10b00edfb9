"""`python -m experiments.main --distributed` across 2 processes x 4 CPU devices (gloo).

The smoke config on real CIFAR-10, sharded over 8 devices, is run four ways: one
process with 8 devices; two processes with 4 each, uninterrupted; and two processes
that are stopped by a SIGTERM to process 1 only, restarted, killed by a SIGKILL of
process 1 (the scheduler then kills process 0, as a cluster does when one task
dies), and restarted again. The two-process runs must give the one-process run's
results, and the interrupted one must end bitwise identical to the uninterrupted one,
both processes having stopped at the same step with one complete checkpoint.
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments import cpu_flags

_REPO = pathlib.Path(__file__).resolve().parents[1]
_STEPS = 20
_SMALL = [
    "--config=experiments/configs/smoke.py",
    "--config.parallel=sharded",
    f"--config.num_train_steps={_STEPS}",
    "--config.batch_size=16",
    "--config.model_options.width=8",
    "--config.log_every_steps=5",
    "--config.eval_every_steps=10",
    "--config.checkpoint_every_steps=5",
    "--config.eval_batch_size=2000",
    "--config.max_checkpoints_to_keep=4",  # all of them: steps 5, 10, 15, 20
]
_TIMEOUT_S = 300  # per launch: a hung collective fails the test instead of stalling CI


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory, full_data_dir):
  """The subprocesses' environment, with a persistent XLA cache they share.

  On the full training set (the tolerances below were measured there): on the
  committed 500-image sample the two layouts' losses still agree (2e-6 at step 5) but
  their momentum differs by 3 % at step 5, against 2e-7 on the full set, which these
  tests cannot yet explain; tests/test_multiprocess.py checks the library's
  multi-process step on the sample.
  """
  env = {**os.environ,
         "MIXUP_JAX_DATA_DIR": str(full_data_dir),
         "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("xla_cache")),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
         "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
  env.pop("XLA_FLAGS", None)
  return env


def _command(workdir, signal_at=None, signal_process=None):
  if signal_at is None:
    return [sys.executable, "-m", "experiments.main", f"--workdir={workdir}", *_SMALL]
  return [sys.executable, "tests/helpers/signal_run.py", f"--signal_at={signal_at}",
          f"--signal_process={signal_process}", f"--workdir={workdir}", *_SMALL]


def _launch(workdir, env, *, processes, devices, signal_at=None, signal_process=None,
            kill_all_when_one_dies=False):
  """Runs the command in `processes` processes; returns [(returncode, log)]."""
  env = {**env, "XLA_FLAGS": cpu_flags.with_patient_collectives(
      f"--xla_force_host_platform_device_count={devices}")}
  port = _free_port()
  logs = [workdir.parent / f"{workdir.name}_process{i}_{port}.log" for i in range(processes)]
  workers = []
  for i in range(processes):
    distributed = ([] if processes == 1 else
                   ["--distributed", f"--coordinator_address=127.0.0.1:{port}",
                    f"--num_processes={processes}", f"--process_id={i}"])
    with open(logs[i], "w") as log:
      workers.append(subprocess.Popen(
          _command(workdir, signal_at, signal_process) + distributed, cwd=_REPO, env=env,
          stdout=log, stderr=subprocess.STDOUT))
  try:
    if kill_all_when_one_dies:
      # A cluster scheduler's answer to a dead task: end the job, then restart it.
      workers[signal_process].wait(timeout=_TIMEOUT_S)
      for w in workers:
        if w.poll() is None:
          w.send_signal(signal.SIGKILL)
    codes = [w.wait(timeout=_TIMEOUT_S) for w in workers]
  finally:
    for w in workers:
      if w.poll() is None:
        w.kill()
        w.wait()
  return [(code, log.read_text()) for code, log in zip(codes, logs)]


def _assert_ok(launch):
  for i, (code, log) in enumerate(launch):
    assert code == 0, f"process {i} exited with {code}:\n{log[-4000:]}"


def _results(workdir):
  results = json.loads((workdir / "results.json").read_text())
  ignored = {"wall_time_s", "checkpoint", "best_checkpoint", "resumed_from_step"}
  return {k: v for k, v in results.items() if k not in ignored}


def _records(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _saved_state(workdir, step):
  """The saved train state as host arrays, whatever devices and processes saved it."""
  path = workdir / "checkpoints" / str(step) / "state"
  checkpointer = ocp.StandardCheckpointer()
  one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one_device),
                        checkpointer.metadata(path).item_metadata.tree)
  return jax.tree.map(np.asarray, checkpointer.restore(path, target)["train_state"])


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, cache_env):
  workdir = tmp_path_factory.mktemp("runs") / "two_processes"
  _assert_ok(_launch(workdir, cache_env, processes=2, devices=4))
  return workdir


# The gradient's all-reduce adds the devices' parts in another order across processes
# than within one, so the parameters agree to float tolerance only, and test images
# whose logits nearly tie flip. After 20 steps the network's logits are close to
# uniform, so ties are common: top-1 errors may differ by a few of the 10,000 test
# images, top-5 errors (5th against 6th class) by a few more.
_IMAGES = {"top5_error": 10, "error": 3}


def _assert_close(got, expected, key, rtol=1e-4):
  images = next((n for suffix, n in _IMAGES.items() if key.endswith(suffix)), 0)
  np.testing.assert_allclose(got, expected, rtol=rtol, atol=images * 100 / 10_000 + 1e-5,
                             err_msg=key)


def test_two_processes_give_the_one_process_run(two_process_run, tmp_path, cache_env):
  one = tmp_path / "one_process"
  _assert_ok(_launch(one, cache_env, processes=1, devices=8))
  two_results, one_results = _results(two_process_run), _results(one)
  assert two_results.keys() == one_results.keys()
  for key, value in one_results.items():
    if isinstance(value, float):
      _assert_close(two_results[key], value, key, rtol=1e-2)
    else:
      assert two_results[key] == value, key
  # SGD at lr 0.1 amplifies the reduction-order rounding step after step (measured:
  # 1e-6 after 6 steps, 2e-5 after 12, 1e-2 after 20), so the states are compared at
  # step 5; a wrong batch split or a doubled gradient would be far off there.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6),
               _saved_state(two_process_run, 5), _saved_state(one, 5))
  two_records, one_records = _records(two_process_run), _records(one)
  assert [r["step"] for r in two_records] == [r["step"] for r in one_records]
  for got, expected in zip(two_records, one_records):
    for key, value in expected.items():  # the drift (below) grows after step 10
      _assert_close(got[key], value, key, rtol=1e-4 if got["step"] <= 10 else 1e-2)


def test_sigterm_to_one_process_then_sigkill_then_restart_ends_bitwise_identical(
    two_process_run, tmp_path, cache_env):
  workdir = tmp_path / "interrupted"
  stopped = _launch(workdir, cache_env, processes=2, devices=4, signal_at="7:SIGTERM",
                    signal_process=1)
  _assert_ok(stopped)  # both exit 0, though only process 1 got the signal
  stop_steps = [re.findall(r"SIGTERM received: stopped at step (\d+) of", log)
                for _, log in stopped]
  assert stop_steps[0] == stop_steps[1] and len(stop_steps[0]) == 1, stop_steps
  stop_step = int(stop_steps[0][0])
  # The notice reaches process 0 in the background, so the agreed step comes a few
  # steps after the signal (later on a loaded machine), never before it.
  assert 7 <= stop_step <= _STEPS - 4, stop_step
  assert (workdir / "checkpoints" / str(stop_step)).is_dir()
  assert not (workdir / "results.json").exists()

  kill_at = stop_step + 3
  killed = _launch(workdir, cache_env, processes=2, devices=4, signal_at=f"{kill_at}:SIGKILL",
                   signal_process=1, kill_all_when_one_dies=True)
  assert [code for code, _ in killed] == [-signal.SIGKILL] * 2, killed[1][1][-3000:]
  assert f"Resuming from step {stop_step}" in killed[0][1]
  # Saved by the killed run if its save finished (every 5 steps) before the kill:
  resumable = {stop_step} | {s for s in range(stop_step + 1, kill_at + 1) if s % 5 == 0}

  finished = _launch(workdir, cache_env, processes=2, devices=4)
  _assert_ok(finished)
  resumed = re.findall(r"Resuming from step (\d+)", finished[0][1])
  assert resumed and int(resumed[0]) in resumable, (resumed, resumable)
  assert _results(workdir) == _results(two_process_run)
  assert (workdir / "metrics.jsonl").read_bytes() == (
      two_process_run / "metrics.jsonl").read_bytes()
  jax.tree.map(np.testing.assert_array_equal, _saved_state(workdir, _STEPS),
               _saved_state(two_process_run, _STEPS))
