"""The generic loader: order, determinism, sharding, resumption, evaluation coverage."""

import json

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mixup_jax import data
from mixup_jax.data import pipeline


def _source(n=50):
  return data.ArraySource({"x": np.arange(n, dtype=np.int32) * 10,
                           "label": np.arange(n, dtype=np.int32) % 7})


def _indices(it, steps):
  return np.stack([next(it)["index"] for _ in range(steps)])


@pytest.fixture(scope="module")
def cifar(data_dir):
  return data.get_dataset("cifar10", data_dir=data_dir)


def test_batches_have_the_source_keys_shapes_and_dtypes(cifar):
  it = data.train_iterator(cifar.train, global_batch_size=128, seed=0, process_index=1,
                           process_count=2)
  batch = next(it)
  assert set(batch) == {"image", "label", "index"}
  assert batch["image"].shape == (64, 32, 32, 3) and batch["image"].dtype == np.uint8
  assert batch["label"].shape == (64,) and batch["label"].dtype == np.int32
  np.testing.assert_array_equal(batch["image"], cifar.train.arrays["image"][batch["index"]])
  np.testing.assert_array_equal(batch["label"], cifar.train.arrays["label"][batch["index"]])


def test_each_epoch_is_a_fresh_permutation_and_drops_the_remainder():
  it = data.train_iterator(_source(50), global_batch_size=8, seed=3)
  assert it.steps_per_epoch == 6  # 50 // 8; 2 records of each epoch are dropped.
  epochs = _indices(it, 18).reshape(3, 48)
  for epoch in epochs:
    assert len(set(epoch.tolist())) == 48
  assert not np.array_equal(epochs[0], epochs[1])
  assert not np.array_equal(epochs[1], epochs[2])


def test_same_seed_same_batches_other_seed_other_batches(cifar):
  first = _indices(data.train_iterator(cifar.train, global_batch_size=256, seed=7), 3)
  again = _indices(data.train_iterator(cifar.train, global_batch_size=256, seed=7), 3)
  other = _indices(data.train_iterator(cifar.train, global_batch_size=256, seed=8), 3)
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)


def test_two_processes_are_disjoint_cover_the_epoch_and_form_the_global_batch():
  source = _source(48)
  whole = _indices(data.train_iterator(source, global_batch_size=8, seed=1), 12)
  shards = [_indices(data.train_iterator(source, global_batch_size=8, seed=1, process_index=p,
                                         process_count=2), 12) for p in (0, 1)]
  for epoch in (slice(0, 6), slice(6, 12)):
    seen = [set(shard[epoch].ravel().tolist()) for shard in shards]
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(48))
  np.testing.assert_array_equal(np.concatenate(shards, axis=1), whole)


def test_rows_read_those_positions_of_every_global_batch():
  # A process whose devices hold blocks 1 and 3 of an interleaved mesh (G=16, 4 devices).
  source = _source(48)
  rows = np.r_[4:8, 12:16]
  whole = _indices(data.train_iterator(source, global_batch_size=16, seed=2), 5)
  mine = _indices(data.train_iterator(source, global_batch_size=16, seed=2, rows=rows), 5)
  np.testing.assert_array_equal(mine, whole[:, rows])
  # Evaluation: 50 records in batches of 16; the last holds 2, which block 1 lacks.
  evals = list(data.eval_batches(_source(50), global_batch_size=16, rows=rows))
  assert [b["mask"].sum() for b in evals] == [8, 8, 8, 0]
  np.testing.assert_array_equal(evals[1]["index"], 16 + rows)
  assert np.all(evals[3]["index"] == -1) and evals[3]["x"].shape == (8,)
  for bad in ([3, 2], [0, 16], [], [0.0, 1.0]):
    with pytest.raises(ValueError, match="rows must be increasing ints"):
      data.train_iterator(source, global_batch_size=16, seed=2, rows=bad)


def test_pad_batch_is_the_one_padding():
  padded = data.pad_batch({"x": np.arange(3), "index": np.arange(3)}, 5)
  np.testing.assert_array_equal(padded["mask"], [True, True, True, False, False])
  np.testing.assert_array_equal(padded["index"], [0, 1, 2, -1, -1])
  np.testing.assert_array_equal(padded["x"], [0, 1, 2, 0, 0])
  with pytest.raises(ValueError, match="bool"):
    data.pad_batch({"x": np.arange(3), "mask": np.ones(3)}, 5)


def test_restored_iterator_continues_with_the_next_batch():
  source = _source(50)
  it = data.train_iterator(source, global_batch_size=8, seed=5)
  _indices(it, 9)  # Into the second epoch.
  state = json.loads(json.dumps(it.get_state()))
  expected = _indices(it, 4)
  restored = data.train_iterator(source, global_batch_size=8, seed=5)
  restored.set_state(state)
  np.testing.assert_array_equal(_indices(restored, 4), expected)


def test_restore_through_an_orbax_checkpoint(tmp_path):
  source = _source(50)
  it = data.train_iterator(source, global_batch_size=10, seed=2)
  _indices(it, 7)
  with ocp.CheckpointManager(tmp_path) as manager:
    manager.save(7, args=ocp.args.Composite(
        params=ocp.args.StandardSave({"w": np.arange(3.0)}),
        data=grain.checkpoint.CheckpointSave(it)))
  expected = _indices(it, 3)
  fresh = data.train_iterator(source, global_batch_size=10, seed=2)
  with ocp.CheckpointManager(tmp_path) as manager:
    manager.restore(7, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  assert fresh.get_state()["next_step"] == 7
  np.testing.assert_array_equal(_indices(fresh, 3), expected)


def test_state_of_another_pipeline_is_refused():
  it = data.train_iterator(_source(50), global_batch_size=10, seed=2)
  state = it.get_state()
  other = data.train_iterator(_source(50), global_batch_size=10, seed=3)
  with pytest.raises(ValueError, match="another pipeline"):
    other.set_state(state)


def test_worker_processes_give_the_same_batches_and_resume():
  source = _source(40)
  expected = _indices(data.train_iterator(source, global_batch_size=8, seed=4), 7)
  it = data.train_iterator(source, global_batch_size=8, seed=4, worker_count=1)
  try:
    np.testing.assert_array_equal(_indices(it, 3), expected[:3])
    state = it.get_state()
  finally:
    it.close()
  resumed = data.train_iterator(source, global_batch_size=8, seed=4)  # Workers need not match.
  resumed.set_state(state)
  np.testing.assert_array_equal(_indices(resumed, 4), expected[3:])


class _AddNoise(grain.transforms.RandomMap):

  def random_map(self, element, rng):
    return {**element, "noise": rng.integers(0, 2**30)}


def test_random_transforms_are_seeded_per_epoch_and_independent_of_sharding():
  source = _source(16)
  def noise_by_record(process_count, steps=4):
    table = {}
    for p in range(process_count):
      it = data.train_iterator(source, global_batch_size=8, seed=9, process_index=p,
                               process_count=process_count, transforms=[_AddNoise()])
      for step in range(steps):
        batch = next(it)
        for index, noise in zip(batch["index"], batch["noise"]):
          table[(step // 2, int(index))] = int(noise)
    return table
  single, sharded = noise_by_record(1), noise_by_record(2)
  assert single == sharded
  assert any(single[(0, r)] != single[(1, r)] for r in range(16))


@pytest.mark.parametrize("process_count", [1, 2, 3])
def test_eval_counts_every_example_once_with_a_mask(process_count):
  source = _source(50)
  seen = []
  for p in range(process_count):
    batches = list(data.eval_batches(source, global_batch_size=12 * process_count,
                                     process_index=p, process_count=process_count))
    assert len(batches) == data.num_eval_batches(50, 12 * process_count)
    for batch in batches:
      assert batch["mask"].dtype == bool and batch["x"].shape == batch["mask"].shape
      assert np.all(batch["index"][~batch["mask"]] == -1)
      assert np.all(batch["x"][~batch["mask"]] == 0)
      np.testing.assert_array_equal(batch["x"][batch["mask"]], batch["index"][batch["mask"]] * 10)
      seen.extend(batch["index"][batch["mask"]].tolist())
  assert sorted(seen) == list(range(50))


def test_eval_on_real_cifar_test_split(cifar):
  n = cifar.num_test
  batch_size = n // 2 - 4  # two full batches and one of 8 real rows
  masks = [batch["mask"] for batch in data.eval_batches(cifar.test, global_batch_size=batch_size)]
  assert len(masks) == 3 and sum(int(m.sum()) for m in masks) == n
  assert masks[-1].shape == (batch_size,) and int(masks[-1].sum()) == 8


@pytest.mark.parametrize("kwargs, match", [
    (dict(global_batch_size=0, seed=0), "global_batch_size"),
    (dict(global_batch_size=7, seed=0, process_count=2), "divisible"),
    (dict(global_batch_size=8, seed=0, process_index=2, process_count=2), "process_index"),
    (dict(global_batch_size=64, seed=0), "exceeds"),
    (dict(global_batch_size=8, seed=-1), "seed"),
    (dict(global_batch_size=8, seed=0, transforms=[lambda x: x]), "transforms"),
])
def test_bad_arguments_are_refused(kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.train_iterator(_source(50), **kwargs)


def test_eval_refuses_random_transforms():
  with pytest.raises(ValueError, match="deterministic"):
    data.eval_batches(_source(50), global_batch_size=8, transforms=[_AddNoise()])


def test_array_source_checks_lengths_and_bounds():
  with pytest.raises(ValueError, match="leading axis"):
    data.ArraySource({"a": np.zeros(3), "b": np.zeros(4)})
  with pytest.raises(IndexError):
    _source(5)[5]


def test_data_dir_errors_name_the_variable_and_the_flag(monkeypatch, tmp_path):
  monkeypatch.delenv("MIXUP_JAX_DATA_DIR")
  with pytest.raises(ValueError, match="MIXUP_JAX_DATA_DIR.*--config.data_dir"):
    data.get_dataset("cifar10")
  monkeypatch.setenv("MIXUP_JAX_DATA_DIR", str(tmp_path / "absent"))
  with pytest.raises(FileNotFoundError, match="MIXUP_JAX_DATA_DIR"):
    data.get_dataset("cifar10")
  with pytest.raises(FileNotFoundError, match="cifar10"):
    data.get_dataset("cifar10", data_dir=tmp_path)


def test_registry_lists_every_paper_dataset_and_refuses_unknown_names():
  names = data.list_datasets()
  assert {"cifar10", "cifar100", "imagenet2012", "mnist"} <= set(names)
  with pytest.raises(ValueError, match="unknown dataset"):
    data.get_dataset("cifar11")
  with pytest.raises(ValueError, match="source"):
    data.get_dataset("cifar10", source="web")


def test_read_array_reads_any_source(cifar):
  assert pipeline.read_array(cifar.test, "label").shape == (cifar.num_test,)
  wrapped = data.corruption.CorruptedLabels(_source(20), fraction=0.5, num_classes=7, seed=0)
  np.testing.assert_array_equal(pipeline.read_array(wrapped, "true_label"), np.arange(20) % 7)


def test_peek_shows_the_next_batch_without_moving():
  it = data.train_iterator(_source(50), global_batch_size=8, seed=6)
  next(it)
  peeked = it.peek()
  assert it.next_step == 1
  np.testing.assert_array_equal(next(it)["index"], peeked["index"])


def test_register_dataset_as_call_and_decorator():
  def build(*, data_dir=None, source="offline"):
    del data_dir, source
    return data.Dataset(name="tiny", train=_source(8), test=_source(4), num_classes=7,
                        input_shape=())
  assert data.register_dataset("test/tiny", build) is build
  assert data.get_dataset("test/tiny").num_train == 8
  with pytest.raises(ValueError, match="already registered"):
    data.register_dataset("test/tiny")(lambda **kw: None)
