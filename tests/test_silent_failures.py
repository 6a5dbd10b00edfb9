"""Regression tests of combinations that used to train the wrong thing without a word.

Each test failed on the code before its fix; the number is the item of the review
that found it. Iris (real UCI data) keeps the loop runs to seconds.
"""

import errno
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments.configs import default
from mixup_jax import checkpoint
from mixup_jax import config_checks
from mixup_jax import data
from mixup_jax import loop_outputs
from mixup_jax import models
from mixup_jax import parallel
from mixup_jax import trainer
from test_checkpoint import _data_iter, _save_steps, _state
from test_trainer import _config

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(config, workdir, dataset):
  model = models.get_model(config.model, dataset.num_classes, **config.model_options.to_dict())
  return trainer.run_training(config, workdir, dataset=dataset, model=model)


# 1. k-NN partners: refused with host-side transforms, working on non-image data.


def test_knn_pairing_with_host_augmentation_is_refused(data_dir):
  cifar = data.get_dataset("cifar10", data_dir=data_dir, host_augment=True)
  config = default.get_config()
  config.mixup.pairing = "knn"
  with pytest.raises(trainer.ConfigError, match="pairing: 'knn' cannot be combined"):
    trainer.run_training(config, None, dataset=cifar, model=models.get_model("mlp", 10))


def test_knn_pairing_trains_on_non_image_inputs(data_dir, tmp_path):
  iris = data.get_dataset("uci/iris", data_dir=data_dir)
  assert iris.input_key not in ("image", "input")  # the case that broke
  config = _config(**{"mixup.alpha": 1.0, "mixup.pairing": "knn", "mixup.knn_k": 5},
                   num_train_steps=6, eval_every_steps=6, checkpoint_every_steps=6)
  results = _run(config, None, iris)
  assert np.isfinite(results["final_test_error"])


def test_partner_index_stays_on_the_host():
  batch = {"features": np.zeros((2, 3)), "label": np.zeros(2, np.int32),
           "index": np.arange(2), "partner_features": np.ones((2, 3)),
           "partner_label": np.zeros(2, np.int32), "partner_index": np.arange(2)}
  assert sorted(trainer._model_batch(batch, "features")) == [
      "input", "label", "partner_input", "partner_label"]


# 2. parallel='jit' across processes.


def test_jit_mode_with_several_processes_is_refused(monkeypatch):
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  with pytest.raises(ValueError, match="2 processes"):
    parallel.DataParallel.create("jit")
  config = _config(batch_size=8, eval_batch_size=16)
  with pytest.raises(trainer.ConfigError, match="config.parallel: 'jit'.*2 processes"):
    trainer.validate_config(config, check_names=False)


# 3. The shard_map gradient rule: tests/test_parallel.py
#    (test_gradient_rule_refuses_to_guess_without_vma_information).


# 4. Transient read errors keep the checkpoint.


@pytest.mark.parametrize("error", [
    OSError(errno.EIO, "Input/output error"),
    TimeoutError("read timed out"),
    ValueError("Error reading 'gs://bucket/ckpt/6/state': UNAVAILABLE: try again"),
])
def test_transient_read_error_propagates_and_moves_nothing(tmp_path, monkeypatch, error):
  _save_steps(tmp_path / "ckpt", [3, 6])
  original = checkpoint.Checkpointer._restore

  def flaky(self, step, abstract, data_iter):
    if step == 6:
      raise error
    return original(self, step, abstract, data_iter)

  monkeypatch.setattr(checkpoint.Checkpointer, "_restore", flaky)
  with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
    with pytest.raises(type(error)):
      ckpt.restore_latest(_state(0), _data_iter())
    assert ckpt.all_steps() == [3, 6]
  assert not (tmp_path / "ckpt_unreadable").exists()


# 5. Checkpoints do not depend on which metrics the config computes.


def test_turning_on_label_corruption_still_resumes(data_dir, tmp_path):
  iris = data.get_dataset("uci/iris", data_dir=data_dir)
  _run(_config(num_train_steps=10, eval_every_steps=10), tmp_path, iris)
  corrupted = data.get_dataset("uci/iris", data_dir=data_dir, label_corruption=0.2)
  results = _run(_config(num_train_steps=20, eval_every_steps=10, label_corruption=0.2),
                 tmp_path, corrupted)
  assert results["resumed_from_step"] == 10 and results["final_step"] == 20
  assert "train/true_label_accuracy" in results["history"][-2]


# 6. The progress status is O(1) per step.


def test_progress_status_reads_only_new_records():
  class CountingRecords(list):
    reads = 0

    def __iter__(self):
      CountingRecords.reads += 1
      return super().__iter__()

  history = CountingRecords([{"step": 1, "train/loss": 2.0}, {"step": 1, "test/error": 30.0}])
  latest = loop_outputs.Latest(history)
  assert CountingRecords.reads == 1  # once, on resume
  for step in range(2, 100):
    latest.update({"step": step, "train/loss": 1.0 / step})
    latest.status()
  assert CountingRecords.reads == 1
  assert latest.status() == "loss 0.0101, test error 30.00%"


# 7. The authors' median is over epochs, not evaluations.


def test_median_of_last_epochs_ignores_mid_epoch_evaluations(data_dir):
  iris = data.get_dataset("uci/iris", data_dir=data_dir)  # 15 steps per epoch at batch 8
  results = _run(_config(num_train_steps=45, eval_every_steps=5), None, iris)
  evals = [r for r in results["history"] if "test/error" in r]
  assert len(evals) == 9
  epoch_ends = [r["test/error"] for r in evals if r["step"] % results["steps_per_epoch"] == 0]
  assert len(epoch_ends) == 3
  assert results["median_last_10_epochs_test_error"] == pytest.approx(np.median(epoch_ends))
  assert results["median_last_10_evals_test_error"] == pytest.approx(
      np.median([r["test/error"] for r in evals]))
  assert "median_last_10_test_error" not in results


# 8. Label corruption has its own seed.


def test_seed_sweep_keeps_the_corrupted_labels():
  config = _config(label_corruption=0.5)
  labels = []
  for seed in (0, 1):
    config.seed = seed
    train = trainer.build_dataset(config).train
    labels.append(data.pipeline.read_array(train, "label"))
  np.testing.assert_array_equal(labels[0], labels[1])
  config.label_corruption_seed = 1
  other = data.pipeline.read_array(trainer.build_dataset(config).train, "label")
  assert np.mean(other != labels[0]) > 0.2


# 9. The project states its facts itself.


def test_no_file_cites_a_reference_sheet_users_do_not_have():
  tracked = subprocess.run(["git", "ls-files"], cwd=_REPO, capture_output=True, text=True,
                           check=True).stdout.split()
  offenders = [p for p in tracked if p.endswith((".py", ".md", ".ipynb"))
               and "REFERENCE.md" in (_REPO / p).read_text(encoding="utf-8")
               and p != "tests/test_silent_failures.py"]
  assert not offenders, offenders


# 10. One vocabulary, documented where it is used, accepted from the command line.


def _documented_choices(comment_fragment: str) -> set[str]:
  """The quoted names in the default config's comment lines around a field."""
  source = (_REPO / "mixup_jax" / "config_defaults.py").read_text()
  block = source[source.index(comment_fragment):]
  block = block[:block.index("\n  config.", 1) + 1]
  return set(re.findall(r"'([a-z_0-9]+)'", block))


@pytest.mark.parametrize("fragment, vocabulary", [
    ("# Learning-rate schedule", trainer.SCHEDULES),
    ("# 'random', 'same_class'", trainer.PAIRINGS),
    ("# 'jit' (one device", trainer.PARALLEL_MODES),
])
def test_documented_options_are_exactly_the_accepted_ones(fragment, vocabulary):
  assert _documented_choices(fragment) == set(vocabulary)


def test_config_vocabularies_are_defined_once():
  from mixup_jax import _checks, mixing, spec
  assert set(trainer.PAIRINGS) - {"knn"} == set(mixing.PAIRINGS) - {"given"}
  assert spec.MIX_STAGES is models.MIX_STAGES
  assert config_checks._is_int is _checks.is_int


def test_every_documented_option_is_accepted_by_the_command_line(tmp_path):
  # The overrides must parse under lock_config; batch_size=0 then stops the run
  # at validation, after parsing and before anything is loaded.
  overrides = ["--config.mixup.knn_k=7", "--config.mixup.knn_within_class=True",
               "--config.mixup.pairing=knn", "--config.parallel=shard_map",
               "--config.schedule=imagenet", "--config.label_corruption_seed=3",
               "--config.mixup.cutmix_minmax=(0.2, 0.8)", "--config.mixup.sort_weights=True",
               "--config.mixup.area_range=(0.1, 0.5)", "--config.mixup.correct_lam=False",
               "--config.batch_size=0"]
  out = subprocess.run(
      [sys.executable, "-m", "experiments.main", "--config=experiments/configs/default.py",
       f"--workdir={tmp_path}", *overrides],
      cwd=_REPO, capture_output=True, text=True, timeout=120)
  assert out.returncode == 2, out.stderr
  assert "Invalid config: config.batch_size" in out.stderr, out.stderr
  for schedule in trainer.SCHEDULES:
    config = default.get_config()
    config.schedule = schedule
    config.schedule_boundaries = (100, 150) if schedule == "step" else ()
    trainer.validate_config(config)
