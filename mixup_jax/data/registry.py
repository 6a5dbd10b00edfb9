"""Datasets by name: `get_dataset('cifar10')` and the registry behind it.

A dataset module registers a builder for each of its names:

  @registry.register_dataset('toy2d')
  def _toy2d(*, data_dir, source, **options) -> registry.Dataset: ...

`get_dataset(name)` imports the module that owns `name` on first use (see
`_OWNERS`), so importing `mixup_jax.data` stays cheap and a module that fails
to import only affects its own datasets. Builders receive `data_dir` as given
(None or a path) and resolve it themselves: `resolve_data_dir(data_dir)` for
the offline copies, TFDS's own default for `source='tfds'`.

Every builder returns a `Dataset`: the random-access splits for the loader in
`pipeline.py`, plus what a train step needs to know about them (number of
classes, the input key and shape, and the on-device preprocessing functions).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from mixup_jax.data import corruption
from mixup_jax.data import pipeline

DATA_DIR_ENV = "MIXUP_JAX_DATA_DIR"
SOURCES = ("offline", "tfds")

Builder = Callable[..., "Dataset"]
_BUILDERS: dict[str, Builder] = {}

# Module that registers each dataset name (exact name, or prefix ending in '/').
_OWNERS = {
    "cifar10": "mixup_jax.data.images",
    "cifar100": "mixup_jax.data.images",
    "imagenet2012": "mixup_jax.data.images",
    "mnist": "mixup_jax.data.images",
    "speech_commands": "mixup_jax.data.speech",
    "uci/": "mixup_jax.data.uci",
    "toy2d": "mixup_jax.data.toy",
    "gan/": "mixup_jax.data.toy",
}


def as_float32(inputs: jax.Array) -> jax.Array:
  """Eval preprocessing of inputs that are already model-ready."""
  return inputs.astype(np.float32)


def as_float32_train(rng: jax.Array, inputs: jax.Array) -> jax.Array:
  """Train preprocessing without augmentation (`rng` is unused)."""
  del rng
  return as_float32(inputs)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """The splits of one dataset and what a train step needs to consume them.

  Attributes:
    name: the registry name, e.g. 'cifar10' or 'uci/iris'.
    train, test: random-access sources (see `pipeline.py`); `validation` where
      the dataset defines one (Speech Commands).
    num_classes: label values are in [0, num_classes).
    input_shape: per-example shape the model sees after preprocessing,
      e.g. (32, 32, 3).
    input_key: the key of the model input in each element ('image' for images).
    train_transforms, eval_transforms: host-side per-example Grain transforms to
      pass to `train_iterator` / `eval_batches` (e.g. ImageNet's crops).
    train_preprocess: jittable `(rng, inputs [b, ...]) -> float32 [b, ...]` run
      on the accelerator inside the train step (augmentation + normalisation).
    eval_preprocess: jittable `(inputs [b, ...]) -> float32 [b, ...]`.
    info: free-form facts (class names, provenance notes).
  """

  name: str
  train: pipeline.RandomAccessSource
  test: pipeline.RandomAccessSource
  num_classes: int
  input_shape: tuple[int, ...]
  input_key: str = "image"
  validation: pipeline.RandomAccessSource | None = None
  train_transforms: tuple[pipeline.Transform, ...] = ()
  eval_transforms: tuple[pipeline.Transform, ...] = ()
  train_preprocess: Callable[[jax.Array, jax.Array], jax.Array] = as_float32_train
  eval_preprocess: Callable[[jax.Array], jax.Array] = as_float32
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def num_train(self) -> int:
    return len(self.train)

  @property
  def num_test(self) -> int:
    return len(self.test)

  @property
  def num_validation(self) -> int:
    return 0 if self.validation is None else len(self.validation)


def register_dataset(name: str, builder: Builder | None = None):
  """Registers `builder(*, data_dir, source, **options) -> Dataset` as `name`.

  Use as a decorator, `@register_dataset('toy2d')`, or call
  `register_dataset('toy2d', build_toy2d)`; either returns the builder.
  """

  def decorator(builder: Builder) -> Builder:
    if name in _BUILDERS and _BUILDERS[name] is not builder:
      raise ValueError(f"dataset {name!r} is already registered by {_BUILDERS[name]!r}.")
    _BUILDERS[name] = builder
    return builder

  return decorator if builder is None else decorator(builder)


_TRAIN_SUBSETS = {"leading": pipeline.leading, "balanced": pipeline.balanced}
TRAIN_SUBSETS = tuple(_TRAIN_SUBSETS)


def get_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    source: str = "offline",
    label_corruption: float = 0.0,
    label_corruption_seed: int = 0,
    train_size: int = 0,
    test_size: int = 0,
    train_subset: str = "leading",
    **options: Any,
) -> Dataset:
  """Builds the dataset registered as `name`.

  Args:
    name: e.g. 'cifar10', 'cifar100', 'imagenet2012', 'mnist', 'speech_commands',
      'uci/iris', 'toy2d' (`list_datasets()` has them all).
    data_dir: where the data lives. For source='offline' the folder of the
      offline copies (default: $MIXUP_JAX_DATA_DIR); for source='tfds' the TFDS
      data dir (default: TFDS's own, $TFDS_DATA_DIR or ~/tensorflow_datasets).
    source: 'offline' (our arrays under data_dir) or 'tfds' (`tfds.data_source`).
    label_corruption: fraction of training labels replaced by uniformly random
      labels (paper Table 2); the train split then yields 'label' (corrupted)
      and 'true_label'. See `corruption.py`.
    label_corruption_seed: seed of the corrupted labels.
    train_size, test_size: keep only the first this many examples of the train /
      test split (0: all), in the split's own order, before labels are
      corrupted: the small fixed subsets of CPU-scale runs.
    train_subset: which train_size examples: 'leading' (the first ones) or
      'balanced' (the first train_size / C of each class, `pipeline.balanced`).
    **options: dataset-specific options, see each builder's docstring.

  Returns:
    The `Dataset`.
  """
  if source not in SOURCES:
    raise ValueError(f"source must be one of {SOURCES}, got {source!r}.")
  if train_subset not in TRAIN_SUBSETS:
    raise ValueError(f"train_subset must be one of {TRAIN_SUBSETS}, got {train_subset!r}.")
  builder = _find_builder(name)
  dataset = builder(data_dir=data_dir, source=source, **options)
  if train_size or test_size:
    dataset = dataclasses.replace(
        dataset,
        train=_TRAIN_SUBSETS[train_subset](dataset.train, train_size, name="train_size")
        if train_size else dataset.train,
        test=pipeline.leading(dataset.test, test_size, name="test_size")
        if test_size else dataset.test)
  if label_corruption:
    dataset = corruption.with_corrupted_labels(
        dataset, fraction=label_corruption, seed=label_corruption_seed)
  return dataset


def list_datasets() -> list[str]:
  """Names of all registered datasets (imports every dataset module)."""
  for module in sorted(set(_OWNERS.values())):
    _import_owner(module)
  return sorted(_BUILDERS)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None, subdir: str | None = None) -> pathlib.Path:
  """The offline data folder (or `subdir` of it), with errors that say how to fix it.

  Args:
    data_dir: an explicit path, or None for $MIXUP_JAX_DATA_DIR.
    subdir: a folder inside it that must exist, e.g. 'cifar10'.

  Returns:
    The existing directory.
  """
  if data_dir is None:
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
      raise ValueError(
          f"no data directory: set the {DATA_DIR_ENV} environment variable or pass data_dir "
          "(--config.data_dir on the command line) to the folder holding the offline datasets "
          "(see docs/data.md), or use source='tfds'.")
    path, origin = pathlib.Path(value), f"${DATA_DIR_ENV}"
  else:
    path, origin = pathlib.Path(data_dir), "data_dir"
  if not path.is_dir():
    raise FileNotFoundError(
        f"data directory {path} (from {origin}) does not exist: point {DATA_DIR_ENV} or data_dir "
        "(--config.data_dir) at the folder holding the offline datasets.")
  if subdir is not None:
    path = path / subdir
    if not path.is_dir():
      raise FileNotFoundError(
          f"{path} is missing: the offline data directory (from {origin}) has no '{subdir}' folder "
          "(see docs/data.md for the expected layout), or use source='tfds'.")
  return path


def _find_builder(name: str) -> Builder:
  if name not in _BUILDERS:
    for key, module in _OWNERS.items():
      if name == key or (key.endswith("/") and name.startswith(key)):
        _import_owner(module)
  if name not in _BUILDERS:
    raise ValueError(f"unknown dataset {name!r}; known: {list_datasets()}.")
  return _BUILDERS[name]


def _import_owner(module: str) -> None:
  try:
    importlib.import_module(module)
  except ModuleNotFoundError as e:
    if e.name != module:  # A missing dependency of the module must surface.
      raise
