"""Tests of mixup_jax.checkpoint on a toy state and a real grain iterator."""

import logging
import pathlib

from etils import epath
import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixup_jax import checkpoint
from mixup_jax import data


def _state(seed: int) -> dict:
  """A toy train state: float and int arrays, a typed key, a nested dict."""
  rng = jax.random.key(seed)
  return {
      "step": jnp.int32(seed),
      "params": {"w": jax.random.normal(rng, (3, 4)), "b": jnp.arange(4.0)},
      "rng": jax.random.fold_in(rng, 7),
      "meter": {"loss_sum": jnp.float32(seed / 3), "count": jnp.int32(seed)},
  }


def _data_iter():
  """A shuffled grain pipeline (batches of 4 of range(100)): position matters."""
  return iter(grain.MapDataset.range(100).shuffle(seed=3).batch(4).to_iter_dataset())


def _key_data(x):
  return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def _assert_trees_equal(a, b):
  a, b = jax.tree.map(_key_data, a), jax.tree.map(_key_data, b)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.dtype == y.dtype
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _save_steps(directory, steps, errors=None, max_to_keep=2):
  """Saves toy checkpoints at `steps`; returns the iterator used."""
  data_iter = _data_iter()
  with checkpoint.Checkpointer(directory, max_to_keep=max_to_keep) as ckpt:
    done = 0
    for step in steps:
      for _ in range(step - done):
        next(data_iter)
      done = step
      metrics = None if errors is None else {"test_error": errors[step]}
      assert ckpt.save(step, _state(step), data_iter=data_iter,
                       config={"alpha": 1.0, "name": "toy"}, metrics=metrics,
                       extra={"wall_time_s": step / 10})
  return data_iter


def test_round_trip_restores_state_iterator_and_config(tmp_path):
  saved_iter = _save_steps(tmp_path / "ckpt", [3, 5])
  expected_next = next(saved_iter)

  data_iter = _data_iter()
  with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
    restored = ckpt.restore_latest(_state(0), data_iter)
  assert restored.step == 5
  _assert_trees_equal(restored.state, _state(5))
  assert not (tmp_path / "ckpt" / "5" / "history").exists()  # metrics.jsonl holds it
  assert restored.config == {"alpha": 1.0, "name": "toy"}
  assert restored.extra == {"wall_time_s": 0.5}
  assert restored.path == (tmp_path / "ckpt" / "5").absolute()
  np.testing.assert_array_equal(next(data_iter), expected_next)


def test_empty_directory_restores_nothing(tmp_path):
  with checkpoint.Checkpointer(tmp_path / "new") as ckpt:
    assert ckpt.restore_latest(_state(0), _data_iter()) is None
    assert ckpt.latest_step() is None


def test_keeps_the_last_k_plus_the_best(tmp_path):
  errors = {1: 0.5, 2: 0.1, 3: 0.4, 4: 0.6, 5: 0.7, 6: 0.3}
  _save_steps(tmp_path / "ckpt", [1, 2, 3], errors, max_to_keep=2)
  # A restarted run still knows which kept checkpoint is the best.
  _save_steps(tmp_path / "ckpt", [4, 5, 6], errors, max_to_keep=2)
  with checkpoint.Checkpointer(tmp_path / "ckpt", max_to_keep=2) as ckpt:
    assert ckpt.all_steps() == [2, 5, 6]
    assert ckpt.best_step() == 2


def test_checkpoints_without_metrics_are_only_recent(tmp_path):
  _save_steps(tmp_path / "ckpt", [1, 2, 3, 4], None, max_to_keep=2)
  assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["3", "4"]


def test_unfinished_save_is_skipped_with_a_log_line(tmp_path, caplog):
  _save_steps(tmp_path / "ckpt", [2])
  unfinished = tmp_path / "ckpt" / "4.orbax-checkpoint-tmp-1700000000"
  (unfinished / "state").mkdir(parents=True)
  with caplog.at_level(logging.INFO):
    with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
      restored = ckpt.restore_latest(_state(0), _data_iter())
  assert restored.step == 2
  messages = [r.getMessage() for r in caplog.records]
  assert any("Skipping unfinished checkpoint" in m and unfinished.name in m for m in messages)


def _corrupt(step_dir: pathlib.Path) -> None:
  for path in (step_dir / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(b"not a checkpoint")


def test_unreadable_latest_falls_back_to_previous_with_a_warning(tmp_path, caplog):
  saved_iter = _data_iter()
  for _ in range(3):
    next(saved_iter)
  expected_next = next(saved_iter)
  _save_steps(tmp_path / "ckpt", [3, 6])
  _corrupt(tmp_path / "ckpt" / "6")

  data_iter = _data_iter()
  with caplog.at_level(logging.WARNING):
    with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
      restored = ckpt.restore_latest(_state(0), data_iter)
      assert restored.step == 3
      _assert_trees_equal(restored.state, _state(3))
      np.testing.assert_array_equal(next(data_iter), expected_next)
      # The broken step was moved aside, so the resumed run can write step 6 again.
      assert ckpt.all_steps() == [3]
      assert ckpt.save(6, _state(6))
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any("6 is unreadable" in m and "falling back to step 3" in m for m in warnings), warnings
  assert any("Moved unreadable checkpoint" in m for m in warnings), warnings
  assert list((tmp_path / "ckpt_unreadable").iterdir())[0].name.startswith("6-")


def test_all_checkpoints_unreadable_raises_instead_of_starting_fresh(tmp_path):
  _save_steps(tmp_path / "ckpt", [3])
  _corrupt(tmp_path / "ckpt" / "3")
  with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
    with pytest.raises(RuntimeError,
                       match="No readable checkpoint.*Refusing to start from scratch"):
      ckpt.restore_latest(_state(0), _data_iter())
  assert (tmp_path / "ckpt" / "3").is_dir()  # left in place for the user to inspect


def test_checkpoint_of_another_pipeline_is_refused_and_left_in_place(tmp_path):
  source = data.ArraySource(
      {"x": np.arange(64, dtype=np.float32), "label": np.zeros(64, np.int32)})
  saved_iter = data.train_iterator(source, global_batch_size=8, seed=0)
  next(saved_iter)
  with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
    ckpt.save(1, _state(1), data_iter=saved_iter)
  other_seed = data.train_iterator(source, global_batch_size=8, seed=1)
  with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
    with pytest.raises(RuntimeError,
                       match="step 1: ValueError: iterator state .* another pipeline"):
      ckpt.restore_latest(_state(0), other_seed)
  assert (tmp_path / "ckpt" / "1").is_dir()


def test_save_does_not_overwrite(tmp_path):
  with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
    assert ckpt.save(2, _state(2))
    ckpt.wait()
    assert not ckpt.save(2, _state(5))


def test_bad_options_name_the_argument(tmp_path):
  with pytest.raises(ValueError, match="max_to_keep"):
    checkpoint.Checkpointer(tmp_path / "a", max_to_keep=0)
  with pytest.raises(ValueError, match="best_mode"):
    checkpoint.Checkpointer(tmp_path / "b", best_mode="lowest")


def test_workdir_paths_keep_bucket_uris_and_make_local_ones_absolute(tmp_path, monkeypatch):
  # pathlib would turn gs://bucket/run into the local folder gs:/bucket/run.
  for uri in ("gs://bucket/runs/a", "s3://bucket/runs/a"):
    assert str(checkpoint.as_path(uri)) == uri
  monkeypatch.chdir(tmp_path)
  local = checkpoint.as_path("runs/a")
  assert isinstance(local, epath.Path) and str(local) == str(tmp_path / "runs" / "a")
  ckpt = checkpoint.Checkpointer("runs/a", best_metric=None, async_save=False)
  monkeypatch.chdir("/")  # the directory was resolved when the run started
  ckpt.save(1, {"x": jnp.ones(3)})
  ckpt.close()
  assert (tmp_path / "runs" / "a" / "1" / "state").is_dir()


def test_a_checkpoint_of_the_older_layout_with_a_history_item_restores(tmp_path):
  # Workdirs written before the history moved out of the checkpoint hold a 'history'
  # item beside the state; it is ignored.
  import orbax.checkpoint as ocp

  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    manager.save(4, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_state(4)),
        history=ocp.args.JsonSave({"records": [{"step": 4, "loss": 0.25}]}),
        config=ocp.args.JsonSave({"alpha": 1.0})))
  with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
    restored = ckpt.restore_latest(_state(0))
  assert restored.step == 4 and restored.config == {"alpha": 1.0}
  _assert_trees_equal(restored.state, _state(4))
