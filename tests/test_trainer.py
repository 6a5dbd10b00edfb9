"""Tests of the training loop (mixup_jax.trainer) on the real Iris data, in process.

The subprocess tests (SIGKILL, the command line) are in test_cli.py.
"""

import dataclasses
import json
import logging
import os
import pathlib
import shutil
import signal

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments.configs import default
from mixup_jax import checkpoint
from mixup_jax import data
from mixup_jax import models
from mixup_jax import trainer


def _config(**overrides) -> ml_collections.ConfigDict:
  """A tiny Iris run: MLP(16), batch 8 (15 steps per epoch), 30 steps."""
  config = default.get_config()
  config.dataset = "uci/iris"
  config.model = "mlp"
  config.model_options = ml_collections.ConfigDict({"hidden_sizes": (16,)})
  config.optimizer = "adam"
  config.learning_rate = 1e-2
  config.weight_decay = 0.0
  config.schedule = "constant"
  config.batch_size = 8
  config.eval_batch_size = 16
  config.num_train_steps = 30
  config.log_every_steps = 5
  config.eval_every_steps = 15
  config.checkpoint_every_steps = 10
  for key, value in overrides.items():
    node, name = config, key
    while "." in name:
      head, name = name.split(".", 1)
      node = node[head]
    node[name] = value
  return config


@pytest.fixture(scope="module")
def iris(data_dir):
  return data.get_dataset("uci/iris", data_dir=data_dir)


def _run(config, workdir, iris, hooks=()):
  model = models.get_model(config.model, iris.num_classes, **config.model_options.to_dict())
  return trainer.run_training(config, workdir, dataset=iris, model=model, hooks=hooks)


def _saved_state(workdir, step):
  """The train state saved at `step`, as numpy arrays."""
  restored = ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "state")
  return jax.tree.map(np.asarray, restored["train_state"])


def _comparable(results):
  """Results without what legitimately differs between an interrupted and a clean run."""
  ignored = {"wall_time_s", "checkpoint", "best_checkpoint", "resumed_from_step", "state"}
  return {k: v for k, v in results.items() if k not in ignored}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, iris):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  return workdir, _run(_config(), workdir, iris)


def test_outputs_of_a_run(uninterrupted):
  workdir, results = uninterrupted
  results = dict(results)
  history = results.pop("history")
  final_state = results.pop("state")
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(final_state.params),
               _saved_state(workdir, 30)["params"])
  lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert lines == history
  assert [r["step"] for r in history if "train/loss" in r] == [5, 10, 15, 20, 25, 30]
  assert [r["step"] for r in history if "test/error" in r] == [15, 30]
  assert set(history[0]) == {"step", "epoch", "train/loss", "train/accuracy", "train/lambda",
                             "train/grad_norm", "train/learning_rate"}
  assert history[0]["train/learning_rate"] == pytest.approx(1e-2)
  saved = json.loads((workdir / "results.json").read_text())
  assert saved == results
  evals = [r["test/error"] for r in history if "test/error" in r]
  assert results["final_test_error"] == evals[-1]
  assert results["best_test_error"] == min(evals)
  assert results["best_epoch"] == results["best_step"] / 15
  assert results["final_step"] == 30 and results["steps_per_epoch"] == 15
  assert results["config"]["model_options"] == {"hidden_sizes": [16]}
  assert results["checkpoint"] == str(workdir / "checkpoints" / "30")
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  # Last 2 checkpoints plus the best one (by test error).
  kept = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir())
  assert kept == sorted({20, 30, results["best_step"]})


def test_sigterm_saves_and_the_resumed_run_is_identical(tmp_path, iris, uninterrupted, caplog):
  clean_dir, clean = uninterrupted

  def sigterm_at_17(step, state):
    del state
    if step == 17:
      os.kill(os.getpid(), signal.SIGTERM)

  with caplog.at_level(logging.WARNING):
    stopped = _run(_config(), tmp_path, iris, hooks=[sigterm_at_17])
  assert stopped == {"preempted": True, "step": 17,
                     "checkpoint": str(tmp_path / "checkpoints" / "17")}
  assert any("SIGTERM received: stopped at step 17 of 30" in r.getMessage() for r in caplog.records)
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is restored

  resumed = _run(_config(), tmp_path, iris)
  assert resumed["resumed_from_step"] == 17
  assert _comparable(resumed) == _comparable(clean)
  assert (tmp_path / "metrics.jsonl").read_bytes() == (clean_dir / "metrics.jsonl").read_bytes()
  jax.tree.map(np.testing.assert_array_equal,
               _saved_state(tmp_path, 30), _saved_state(clean_dir, 30))


def test_a_crash_after_the_last_checkpoint_resumes_with_the_history_cut_back(
    tmp_path, iris, uninterrupted):
  # A run killed hard (no SIGTERM save) leaves metrics.jsonl records past its latest
  # checkpoint; the resumed run drops them and writes them again, once.
  clean_dir, clean = uninterrupted
  shutil.copytree(clean_dir, tmp_path / "run")
  checkpoints = tmp_path / "run" / "checkpoints"
  shutil.rmtree(checkpoints / "30")  # the latest is now step 20's; the file runs to 30
  (tmp_path / "run" / "results.json").unlink()
  resumed = _run(_config(), tmp_path / "run", iris)
  assert resumed["resumed_from_step"] == 20
  assert _comparable(resumed) == _comparable(clean)
  assert ((tmp_path / "run" / "metrics.jsonl").read_bytes()
          == (clean_dir / "metrics.jsonl").read_bytes())


def test_pmap_run_resumes_identically(tmp_path, iris):
  """The device axis of a pmapped state is dropped for the checkpoint and restored."""
  config = _config(parallel="pmap", batch_size=16, num_train_steps=8, eval_every_steps=4,
                   checkpoint_every_steps=4, log_every_steps=2)
  clean = _run(config, tmp_path / "clean", iris)

  def sigterm_at_5(step, state):
    del state
    if step == 5:
      os.kill(os.getpid(), signal.SIGTERM)

  assert _run(config, tmp_path / "resumed", iris, hooks=[sigterm_at_5])["preempted"]
  resumed = _run(config, tmp_path / "resumed", iris)
  assert resumed["history"] == clean["history"]
  jax.tree.map(np.testing.assert_array_equal, _saved_state(tmp_path / "resumed", 8),
               _saved_state(tmp_path / "clean", 8))


def test_nonfinite_loss_names_the_step_and_the_last_good_checkpoint(tmp_path, iris):
  config = _config(optimizer="sgd", learning_rate=1e30, momentum=0.0, log_every_steps=1,
                   checkpoint_every_steps=1)
  with pytest.raises(trainer.NonFiniteLossError) as error:
    _run(config, tmp_path, iris)
  message = str(error.value)
  step = int(message.split("(not finite) at step ")[1].split()[0])
  assert step >= 2
  good = tmp_path / "checkpoints" / str(step - 1)
  assert f"the last good checkpoint is step {step - 1} at {good}" in message
  assert (tmp_path / "checkpoints" / str(step - 1)).is_dir()
  assert not (tmp_path / "checkpoints" / str(step)).exists()


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"model": "resnet7"}, "config.model: unknown model 'resnet7'"),
        ({"dataset": "cifar11"}, "config.dataset: unknown dataset 'cifar11'"),
        ({"model_options.depth": 3}, "config.model_options: mlp has no option"),
        ({"mixup.alpha": -0.5}, "config.mixup.alpha: must be a finite number >= 0"),
        ({"parallel": "pmap", "batch_size": 12},
         "config.batch_size: 12 is not divisible by the 8 devices"),
        ({"parallel": "fsdp"}, "config.parallel: must be one of"),
        ({"schedule": "linear"}, "config.schedule: must be one of"),
        ({"mixup.stages": (7,)}, "config.mixup.stages"),
        ({"learning_rate": 0.0}, "config.learning_rate: must be a number > 0"),
        ({"eval_every_steps": -1}, "config.eval_every_steps"),
        ({"eval_from_epoch": -1}, "config.eval_from_epoch: must be an int >= 0"),
        ({"num_train_steps": 0, "num_epochs": 3, "eval_from_epoch": 3},
         "config.eval_from_epoch: 3 leaves no periodic evaluation"),
        ({"mixup.global_pairing": True}, "config.mixup.global_pairing: needs a per-device step"),
        ({"mixup.pairing": "roll", "mixup.num_sources": 3},
         "config.mixup.num_sources: pairing 'roll' gives each row one partner"),
    ],
)
def test_bad_config_fails_before_training_naming_the_field(overrides, field):
  config = _config()
  with config.unlocked():
    for key, value in overrides.items():
      node, name = config, key
      while "." in name:
        head, name = name.split(".", 1)
        node = node[head]
      node[name] = value
  with pytest.raises(trainer.ConfigError, match=field.replace(".", r"\.").replace("(", r"\(")):
    trainer.validate_config(config)


def test_evaluations_start_at_eval_from_epoch(iris):
  # 15 steps per epoch: from epoch 1 on, every 5 steps, and the last step.
  results = _run(_config(num_train_steps=40, eval_every_steps=5, eval_from_epoch=1), None, iris)
  assert [r["step"] for r in results["history"] if "test/error" in r] == [15, 20, 25, 30, 35, 40]


def test_batch_larger_than_the_training_set_names_the_field(tmp_path, iris):
  with pytest.raises(trainer.ConfigError,
                     match=r"config\.batch_size: .*exceeds the 120 training records"):
    _run(_config(batch_size=128), tmp_path, iris)


def test_default_config_is_the_papers_cifar10_recipe():
  config = default.get_config()
  trainer.validate_config(config)
  assert (config.dataset, config.model) == ("cifar10", "preact_resnet18")
  assert (config.num_epochs, config.batch_size, config.optimizer) == (200, 128, "sgd")
  assert (config.momentum, config.weight_decay, config.mixup.alpha) == (0.9, 1e-4, 1.0)
  assert config.mixup.granularity == "batch" and config.mixup.stages == ()
  schedule = trainer.build_schedule(config, steps_per_epoch=390)
  rates = [float(schedule(epoch * 390)) for epoch in (0, 99, 100, 149, 150, 199)]
  np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
  # The authors' ResNet18() (11.17M parameters), built without running it.
  model = trainer.build_model(config, num_classes=10)
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), np.zeros((1, 32, 32, 3), np.float32), train=False))
  num_params = sum(np.prod(x.shape) for x in jax.tree.leaves(shapes["params"]))
  assert round(num_params / 1e6, 2) == 11.17


def test_a_validation_split_ranks_the_kept_checkpoint(tmp_path, iris):
  """With a validation split no model is selected on the test set."""
  rows = np.arange(0, iris.num_train, 2)
  validation = data.ArraySource({k: v[rows] for k, v in iris.train.arrays.items()})
  config = _config(eval_every_steps=5, checkpoint_every_steps=5, max_checkpoints_to_keep=1)
  results = _run(config, tmp_path, dataclasses.replace(iris, validation=validation))
  evals = [r for r in results["history"] if "validation/error" in r]
  chosen = min(evals, key=lambda r: r["validation/error"])
  assert (results["best_validation_step"], results["test_error_at_best_validation"]) == (
      chosen["step"], chosen["test/error"])
  best = pathlib.Path(results["best_checkpoint"])
  assert best.name == str(chosen["step"]) and best.exists()
  with checkpoint.Checkpointer(tmp_path / "checkpoints", best_metric="validation_error") as ckpt:
    assert ckpt.best_step() == chosen["step"]


def test_a_per_device_step_refuses_a_model_without_axis_name(tmp_path, data_dir):
  cifar = data.get_dataset("cifar10", data_dir=data_dir, train_size=64, test_size=32)
  config = _config(dataset="cifar10", model="preact_resnet18", parallel="pmap", batch_size=16)
  config.model_options = ml_collections.ConfigDict({"width": 4})
  for parallel_mode in ("pmap", "shard_map"):
    config.parallel = parallel_mode
    model = trainer.build_model(config, cifar.num_classes)  # no axis_name
    with pytest.raises(trainer.ConfigError, match="built with axis_name=None"):
      trainer.run_training(config, tmp_path, dataset=cifar, model=model)
  model = trainer.build_model(config, cifar.num_classes, axis_name="data")
  assert model.axis_name == "data"
