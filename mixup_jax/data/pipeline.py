"""One Grain input pipeline for every dataset: seeded, sharded, resumable.

The design in one paragraph. A dataset split is a *random-access source*: any
object with `__len__` and `__getitem__(i) -> dict[str, np.ndarray]` (Grain's
`RandomAccessDataSource` protocol; `tfds.data_source(...)` splits qualify once
wrapped to plain arrays, and `ArraySource` below serves in-memory arrays). The
training stream is a pure function of `(seed, step)`: epoch `e` visits the
records in the order `np.random.default_rng([_ORDER, seed, e]).permutation(N)`,
global batch `s` of the epoch is the slice `[s * G, (s + 1) * G)` of that order
(the last `N mod G` records of each epoch are dropped), and process `p` of `P`
takes the `p`-th contiguous share of `G / P` examples of every global batch.
So the processes see disjoint examples that together make up each global batch,
a run with 1 process sees exactly the global batches of a run with 8, and the
iterator's whole state is the next step number: `get_state()` is a small JSON
dict, and a restored iterator yields the very next batch whatever the number of
worker processes. Grain supplies the machinery: the batches form an infinite
`grain.MapDataset`, read ahead by threads (`ReadOptions`) and optionally by
worker processes (`mp_prefetch`).

Writing a source for the loader (what `speech.py`, `uci.py` and `toy.py` do):

  class MySource:
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
      return {'image': uint8 [H, W, C], 'label': np.int32 scalar}

Every element of a split must have the same keys, shapes and dtypes (they are
stacked into batches). Integer labels are `np.int32` scalars under 'label'.
Sources must pickle (worker processes receive a copy). Arrays already in memory
need no class: `ArraySource({'features': x, 'label': y})`.

Feeding the train step:

  it = train_iterator(ds.train, global_batch_size=128, seed=0,
                      process_index=jax.process_index(),
                      process_count=jax.process_count())
  batch = next(it)  # {'image': uint8 [64, 32, 32, 3], 'label': int32 [64],
                    #  'index': int32 [64]}  (with 2 processes)

Every batch carries 'index', the record index of each example in its split
(k-NN partners and label-corruption analyses use it).

Checkpointing the iterator with Orbax (it is a `grain.DatasetIterator`, so
Grain's Orbax handler saves one small JSON file per process):

  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(train_state),
      data=grain.checkpoint.CheckpointSave(it)))
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state),
      data=grain.checkpoint.CheckpointRestore(it)))  # sets `it` in place

or by hand: `json.dumps(it.get_state())` / `it.set_state(json.loads(s))`.

Evaluation: `eval_batches(source, global_batch_size=...)` yields every record
exactly once across processes, in order; the last batches are padded with
zeros and carry a boolean 'mask' (False on padding, 'index' -1 there), so all
processes run the same number of (equally shaped) eval steps.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from absl import flags
import grain
import numpy as np

Element = dict[str, np.ndarray]
Transform = grain.transforms.Map | grain.transforms.RandomMap

# Tags that keep the seed streams of the epoch orders and of the per-example
# transforms apart (numpy SeedSequence entropy; any distinct constants work).
_ORDER = 0x6F72646572
_TRANSFORM = 0x7472616E73


class RandomAccessSource(Protocol):
  """What the loader reads: a sized, indexable collection of flat dicts."""

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> Element:
    ...


class ArraySource:
  """Random access over in-memory arrays that share their leading axis.

  `ArraySource({'image': x, 'label': y})[i] == {'image': x[i], 'label': y[i]}`.
  The arrays are kept as given (no copy); `arrays` exposes them for fast
  whole-split work (label statistics, nearest neighbours).
  """

  def __init__(self, arrays: Mapping[str, np.ndarray]):
    if not arrays:
      raise ValueError("arrays is empty: give at least one named array, e.g. {'label': y}.")
    lengths = {key: len(value) for key, value in arrays.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"arrays must share their leading axis, got lengths {lengths}.")
    self._arrays = {key: np.asarray(value) for key, value in arrays.items()}
    self._length = next(iter(lengths.values()))

  @property
  def arrays(self) -> Mapping[str, np.ndarray]:
    return self._arrays

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index: int) -> Element:
    if not -self._length <= index < self._length:
      raise IndexError(f"index {index} out of range for a source of {self._length} records.")
    return {key: value[index] for key, value in self._arrays.items()}

  def __repr__(self) -> str:
    fields = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in self._arrays.items())
    return f"ArraySource({fields})"


def leading(source: RandomAccessSource, size: int, *, name: str = "size") -> RandomAccessSource:
  """The first `size` records of `source`: a fixed subset for small-data runs.

  CPU-scale reproductions (Table 2's memorisation) train on a prefix of the
  official split order, so every run, seed and method sees the same examples.
  An `ArraySource` stays one (sliced, no copy), so whole-split work stays fast.

  Raises:
    ValueError: `size` (reported as `name`) is not an int in [1, len(source)].
  """
  if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
    raise ValueError(f"{name} must be a positive int, got {size!r}.")
  if size > len(source):
    raise ValueError(f"{name}={size} exceeds the {len(source)} records of the split; "
                     f"use at most {len(source)} (or 0 for all).")
  if isinstance(source, ArraySource):
    return ArraySource({key: value[:size] for key, value in source.arrays.items()})
  return _Leading(source, int(size))


def balanced(source: RandomAccessSource, size: int, *, name: str = "size",
             label_key: str = "label") -> RandomAccessSource:
  """A fixed class-balanced subset: the first size / C records of each of the C classes.

  The records keep the split's order, so the subset is a function of the split alone
  (the same for every run, seed and method), as `leading` is, but every class has
  the same number of examples: on a small subset of CIFAR-10 the first n records
  hold 8-12 % of each class, which moves a small-data comparison by itself.

  Raises:
    ValueError: `size` is not a positive multiple of the number of classes, or a
      class has fewer than size / C records.
  """
  if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
    raise ValueError(f"{name} must be a positive int, got {size!r}.")
  if isinstance(source, ArraySource):
    labels = np.asarray(source.arrays[label_key])
  else:
    labels = np.asarray([source[i][label_key] for i in range(len(source))])
  classes, counts = np.unique(labels, return_counts=True)
  if size % len(classes):
    raise ValueError(f"{name}={size} is not a multiple of the {len(classes)} classes; a "
                     f"balanced subset needs one, e.g. {size - size % len(classes) or len(classes)}.")
  per_class = size // len(classes)
  if per_class > counts.min():
    raise ValueError(f"{name}={size} needs {per_class} records of every class, but class "
                     f"{classes[counts.argmin()]} has {counts.min()}.")
  # Rank of each record within its class, in split order.
  order = np.argsort(labels, kind="stable")
  rank = np.empty(len(labels), np.int64)
  starts = np.searchsorted(labels[order], classes)
  rank[order] = np.arange(len(labels)) - np.repeat(starts, counts)
  keep = np.flatnonzero(rank < per_class)
  if isinstance(source, ArraySource):
    return ArraySource({key: value[keep] for key, value in source.arrays.items()})
  return _Indexed(source, keep)


class _Indexed:
  """Lazy view of the records `indices` of a source that is not in memory."""

  def __init__(self, source: RandomAccessSource, indices: np.ndarray):
    self._source, self._indices = source, indices

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> Element:
    return self._source[int(self._indices[index])]


class _Leading:
  """Lazy view of the first `size` records of a source that is not in memory."""

  def __init__(self, source: RandomAccessSource, size: int):
    self._source, self._size = source, size

  def __len__(self) -> int:
    return self._size

  def __getitem__(self, index: int) -> Element:
    if not -self._size <= index < self._size:
      raise IndexError(f"index {index} out of range for a source of {self._size} records.")
    return self._source[index % self._size]

  def __repr__(self) -> str:
    return f"leading({self._source!r}, {self._size})"


def read_array(source: RandomAccessSource, key: str) -> np.ndarray:
  """All values of `key` in a split, stacked to [N, ...] (direct for an ArraySource)."""
  if isinstance(source, ArraySource):
    if key not in source.arrays:
      raise ValueError(f"{source!r} has no {key!r} array.")
    return source.arrays[key]
  return np.stack([np.asarray(source[i][key]) for i in range(len(source))])


def steps_per_epoch(num_records: int, global_batch_size: int) -> int:
  """Training steps in one epoch: the last `num_records % global_batch_size` are dropped."""
  _check_positive_int("global_batch_size", global_batch_size)
  if global_batch_size > num_records:
    raise ValueError(
        f"global_batch_size={global_batch_size} exceeds the {num_records} training records: "
        "lower global_batch_size.")
  return num_records // global_batch_size


def num_eval_batches(num_records: int, global_batch_size: int) -> int:
  """Evaluation steps that cover `num_records` once (the last one padded)."""
  _check_positive_int("global_batch_size", global_batch_size)
  return math.ceil(num_records / global_batch_size)


class TrainIterator(grain.DatasetIterator):
  """Infinite iterator over this process's share of the training batches.

  The state is `{'next_step', 'seed', 'global_batch_size', 'num_records'}`; a
  state from another seed, batch size or split is refused on `set_state`. It
  does not depend on `process_count` or `worker_count`, so a run may resume
  on a different number of processes as long as the global batch is the same.
  """

  def __init__(self, batches: _TrainBatches, *, worker_count: int, read_options: grain.ReadOptions):
    super().__init__()
    self._batches = batches
    self._worker_count = worker_count
    self._read_options = read_options
    self._next_step = 0
    self._inner: Iterator[Element] | None = None

  @property
  def steps_per_epoch(self) -> int:
    return self._batches.steps_per_epoch

  @property
  def next_step(self) -> int:
    """The step (counted from the start of training) of the next batch."""
    return self._next_step

  def peek(self) -> Element:
    """The batch the next `next()` returns, computed in this process; the position is kept."""
    return self._batches[self._next_step]

  def _start(self) -> grain.DatasetIterator:
    if self._inner is None:
      dataset = self._batches[self._next_step:].to_iter_dataset(self._read_options)
      if self._worker_count:
        dataset = _mp_prefetch(dataset, self._worker_count)
      self._inner = iter(dataset)
    return self._inner

  def __next__(self) -> Element:
    self._assert_not_closed()
    batch = next(self._start())
    self._next_step += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    return {"next_step": self._next_step, **self._batches.fingerprint}

  def set_state(self, state: Mapping[str, Any]) -> None:
    expected = self._batches.fingerprint
    found = {key: state.get(key) for key in expected}
    if found != expected or not isinstance(state.get("next_step"), int):
      raise ValueError(
          f"iterator state {dict(state)} belongs to another pipeline (this one has {expected}): "
          "restore with the seed, global_batch_size and split that wrote the checkpoint.")
    if self._inner is not None:
      self._inner.close()
      self._inner = None
    self._next_step = state["next_step"]

  def start_prefetch(self) -> None:
    self._start().start_prefetch()

  def close(self) -> None:
    if self._inner is not None:
      self._inner.close()
    super().close()


def train_iterator(
    source: RandomAccessSource,
    *,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    rows: Sequence[int] | None = None,
    worker_count: int = 0,
    transforms: Sequence[Transform] = (),
    num_threads: int = 2,
    prefetch: int = 4,
) -> TrainIterator:
  """The infinite, seeded, sharded training stream of `source` (see module doc).

  Args:
    source: the training split.
    global_batch_size: examples per step summed over all processes; each
      process gets `global_batch_size // process_count` of them.
    seed: fixes the order of every epoch (a new permutation per epoch) and the
      random numbers of `transforms`.
    process_index, process_count: this process and how many feed the step
      (`jax.process_index()`, `jax.process_count()`).
    rows: the positions within every global batch that this process reads, in
      increasing order: the rows its devices hold (`DataParallel.local_rows`).
      None: the process_index-th contiguous share.
    worker_count: Grain worker processes (0 reads in this process).
    transforms: per-example host transforms (`grain.transforms.Map` or
      `RandomMap`), applied in order after the 'index' key is added. A
      `RandomMap` draws from a generator seeded by (seed, epoch, record), so
      augmentations change every epoch and do not depend on the sharding.
    num_threads, prefetch: reading threads and batches read ahead per process.

  Returns:
    A `TrainIterator` of dicts of numpy arrays with leading axis
    `global_batch_size // process_count` (or `len(rows)`).
  """
  batches = _TrainBatches(
      source, global_batch_size=global_batch_size, seed=seed, process_index=process_index,
      process_count=process_count, rows=rows, transforms=transforms)
  _check_nonnegative_int("worker_count", worker_count)
  return TrainIterator(
      batches, worker_count=worker_count,
      read_options=_read_options(num_threads=num_threads, prefetch=prefetch))


def eval_batches(
    source: RandomAccessSource,
    *,
    global_batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
    rows: Sequence[int] | None = None,
    worker_count: int = 0,
    transforms: Sequence[grain.transforms.Map] = (),
    num_threads: int = 2,
    prefetch: int = 4,
) -> Iterable[Element]:
  """Every record of `source` once across processes, in order, padded + masked.

  Global batch `k` holds records `[k * G, (k + 1) * G)`; process `p` takes the
  `p`-th share (or the positions `rows`). Positions past the end are zero-filled with 'mask' False and
  'index' -1, so every process yields `num_eval_batches(len(source), G)`
  batches of the same shape. Iterate the returned dataset once per evaluation.

  Args:
    source: the evaluation split.
    global_batch_size: examples per eval step summed over processes.
    process_index, process_count, rows: as in `train_iterator`.
    worker_count: Grain worker processes (0 reads in this process).
    transforms: deterministic per-example host transforms (`grain.transforms.Map`).
    num_threads, prefetch: reading threads and batches read ahead per process.

  Returns:
    A re-iterable of dicts with the source's keys plus 'index' int32 [b] and
    'mask' bool [b], b = global_batch_size // process_count (or len(rows)). Each pass closes
    its Grain iterator (and worker processes) when it ends or is abandoned.
  """
  for transform in transforms:
    if not isinstance(transform, grain.transforms.Map):
      raise ValueError(
          f"eval transforms must be deterministic grain.transforms.Map, got {transform!r}: "
          "drop random augmentation from evaluation.")
  batches = _EvalBatches(
      source, global_batch_size=global_batch_size, process_index=process_index,
      process_count=process_count, rows=rows, transforms=transforms)
  _check_nonnegative_int("worker_count", worker_count)
  dataset = batches.to_iter_dataset(_read_options(num_threads=num_threads, prefetch=prefetch))
  if worker_count:
    dataset = _mp_prefetch(dataset, worker_count)
  return _ClosingIterable(dataset)


class _ClosingIterable:
  """Iterates a Grain dataset, closing each pass's iterator when the pass ends."""

  def __init__(self, dataset: grain.IterDataset):
    self._dataset = dataset

  def __iter__(self) -> Iterator[Element]:
    iterator = iter(self._dataset)
    try:
      yield from iterator
    finally:
      iterator.close()


class _Batches(grain.MapDataset):
  """Shared validation and element assembly of the train and eval batches."""

  def __init__(self, source, *, global_batch_size, process_index, process_count, rows,
               transforms):
    super().__init__()
    _check_positive_int("global_batch_size", global_batch_size)
    _check_positive_int("process_count", process_count)
    _check_nonnegative_int("process_index", process_index)
    if process_index >= process_count:
      raise ValueError(
          f"process_index={process_index} must be below process_count={process_count}.")
    if global_batch_size % process_count:
      raise ValueError(
          f"global_batch_size={global_batch_size} is not divisible by "
          f"process_count={process_count}: choose a multiple of the process count.")
    num_records = len(source)
    if not 0 < num_records < 2**31:
      raise ValueError(f"source has {num_records} records; the loader needs 1 to 2**31 - 1.")
    for transform in transforms:
      if not isinstance(transform, (grain.transforms.Map, grain.transforms.RandomMap)):
        raise ValueError(
            f"transforms must be grain.transforms.Map or RandomMap instances, got {transform!r}.")
    self._source = source
    self._num_records = num_records
    self._global_batch_size = global_batch_size
    if rows is None:
      share = global_batch_size // process_count
      rows = range(process_index * share, (process_index + 1) * share)
    self._rows = _check_rows(rows, global_batch_size)
    self._local_batch_size = len(self._rows)
    self._transforms = tuple(transforms)

  def _element(self, record: int, rng_entropy: Sequence[int] | None) -> Element:
    element = self._source[record]
    if "index" in element:
      raise ValueError("source elements may not use the key 'index': the loader adds it.")
    element = dict(element)
    element["index"] = np.int32(record)
    for position, transform in enumerate(self._transforms):
      if isinstance(transform, grain.transforms.RandomMap):
        rng = np.random.default_rng([_TRANSFORM, *rng_entropy, position])
        element = transform.random_map(element, rng)
      else:
        element = transform.map(element)
    return element


class _TrainBatches(_Batches):
  """Batch `s` of the infinite training stream for one process (see module doc)."""

  def __init__(self, source, *, seed, **kwargs):
    super().__init__(source, **kwargs)
    _check_nonnegative_int("seed", seed)
    self._seed = seed
    self.steps_per_epoch = steps_per_epoch(self._num_records, self._global_batch_size)
    self._orders: dict[int, np.ndarray] = {}

  @property
  def fingerprint(self) -> dict[str, int]:
    return {"seed": self._seed, "global_batch_size": self._global_batch_size,
            "num_records": self._num_records}

  def _order(self, epoch: int) -> np.ndarray:
    """The permutation of the records visited in `epoch` (this and the last epoch cached)."""
    orders = self._orders  # Reading threads swap in a new dict, never mutate it.
    if epoch not in orders:
      order = np.random.default_rng([_ORDER, self._seed, epoch]).permutation(self._num_records)
      orders = {e: o for e, o in orders.items() if e == epoch - 1} | {epoch: order}
      self._orders = orders
    return orders[epoch]

  def __len__(self) -> int:
    return sys.maxsize

  def __getitem__(self, step):
    if isinstance(step, slice):
      return self.slice(step)
    epoch, step_in_epoch = divmod(step, self.steps_per_epoch)
    records = self._order(epoch)[step_in_epoch * self._global_batch_size + self._rows]
    return _stack([self._element(int(r), (self._seed, epoch, int(r))) for r in records])

  def __str__(self) -> str:
    return f"TrainBatches(seed={self._seed}, global_batch_size={self._global_batch_size})"


class _EvalBatches(_Batches):
  """Eval batch `k` for one process: records in order, then `pad_batch`'s padding."""

  def __init__(self, source, **kwargs):
    super().__init__(source, **kwargs)
    self._length = num_eval_batches(self._num_records, self._global_batch_size)

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    # Rows increase, so the ones before the end of the split come first.
    positions = [int(p) for p in index * self._global_batch_size + self._rows
                 if p < self._num_records]
    if positions:
      batch = _stack([self._element(position, None) for position in positions])
    else:  # this process's share lies past the end: all padding, shaped like record 0
      batch = {key: value[:0] for key, value in _stack([self._element(0, None)]).items()}
    return pad_batch(batch, self._local_batch_size)

  def __str__(self) -> str:
    return f"EvalBatches(global_batch_size={self._global_batch_size})"


def pad_batch(batch: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  """Pads a (last, partial) batch with zero rows to `batch_size`: the one padding scheme.

  The compiled eval step has one batch shape, so a short batch gets zero rows and a
  'mask' (bool [batch_size], True on the real rows; an existing mask is kept for its
  rows) that the eval step's sums honour; an 'index' key gets -1 on the padding.

  Args:
    batch: dict of numpy arrays with a common leading dimension n <= batch_size.
    batch_size: the size the compiled step expects.
  """
  sizes = {key: np.shape(value)[0] for key, value in batch.items() if key != "mask"}
  if len(set(sizes.values())) != 1:
    raise ValueError(f"batch arrays have different leading sizes: {sizes}.")
  n = next(iter(sizes.values()))
  if n > batch_size:
    raise ValueError(f"batch has {n} rows, more than batch_size={batch_size}.")
  mask = np.asarray(batch.get("mask", np.ones(n, bool)))
  if mask.dtype != bool:
    raise ValueError(f"batch['mask'] must be bool (True on real rows), got {mask.dtype}.")
  padded = {}
  for key, value in batch.items():
    if key == "mask":
      continue
    value = np.asarray(value)
    fill = -1 if key == "index" else 0
    padding = np.full((batch_size - n,) + value.shape[1:], fill, value.dtype)
    padded[key] = np.concatenate([value, padding])
  padded["mask"] = np.concatenate([mask, np.zeros(batch_size - n, bool)])
  return padded


def _check_rows(rows: Sequence[int], global_batch_size: int) -> np.ndarray:
  """`rows` as int64 positions, refused unless increasing and within one global batch."""
  positions = np.asarray(rows)
  if (positions.ndim != 1 or positions.size == 0
      or not np.issubdtype(positions.dtype, np.integer)
      or np.any(np.diff(positions) <= 0) or positions[0] < 0
      or positions[-1] >= global_batch_size):
    raise ValueError(
        f"rows must be increasing ints in [0, global_batch_size={global_batch_size}), got "
        f"{rows!r}: pass DataParallel.local_rows(global_batch_size).")
  return positions.astype(np.int64)


def _stack(elements: Sequence[Element]) -> Element:
  """[b] dicts of arrays -> dict of [b, ...] arrays, refusing mismatched keys."""
  keys = elements[0].keys()
  for element in elements:
    if element.keys() != keys:
      raise ValueError(
          f"source elements have different keys ({sorted(keys)} vs {sorted(element.keys())}): "
          "every record of a split must have the same keys.")
  return {key: np.stack([np.asarray(element[key]) for element in elements]) for key in keys}


def _mp_prefetch(dataset: grain.IterDataset, worker_count: int) -> grain.IterDataset:
  """Reads `dataset` in `worker_count` processes (each makes whole batches)."""
  # Grain's workers read absl flags; outside `app.run` (notebooks, tests) they
  # are unparsed, so fall back to their defaults rather than fail.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  return dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))


def _read_options(*, num_threads: int, prefetch: int) -> grain.ReadOptions:
  _check_nonnegative_int("num_threads", num_threads)
  _check_positive_int("prefetch", prefetch)
  return grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)


def _check_positive_int(name: str, value: Any) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _check_nonnegative_int(name: str, value: Any) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
    raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
