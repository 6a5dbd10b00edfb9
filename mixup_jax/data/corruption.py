"""Corrupted training labels for the memorisation experiment (paper Table 2).

A given fraction of the training examples, chosen at random (seeded), get a
label drawn uniformly from all classes, as in Zhang et al. (2017), which the
paper follows. Exactly `fraction * N` examples are redrawn; about 1 / K of the
redrawn labels land on the true class by chance. The corrupted split keeps both
labels so training error can be measured against each:

  ds = get_dataset('cifar10', label_corruption=0.8, label_corruption_seed=0)
  ds.train[i]  # {'image', 'label': corrupted, 'true_label': original}

Test labels are never corrupted.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import numpy as np

from mixup_jax.data import pipeline

DatasetT = TypeVar("DatasetT")


def corrupt_labels(labels: np.ndarray, *, fraction: float, num_classes: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Redraws exactly `fraction * N` labels uniformly from `num_classes` classes.

  Args:
    labels: int [N] true labels in [0, num_classes).
    fraction: in [0, 1]; `fraction * N` must be a whole number (nothing is
      rounded), e.g. 0.2 / 0.5 / 0.8 of CIFAR-10's 50,000.
    num_classes: the label range.
    seed: chooses the redrawn examples and their new labels.

  Returns:
    (corrupted int32 [N], redrawn bool [N]); corrupted == labels where not redrawn.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be integer [N], got {labels.dtype}{list(labels.shape)}.")
  if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, num_classes={num_classes}).")
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f"fraction must be in [0, 1], got {fraction}.")
  count = round(fraction * len(labels))
  if abs(count - fraction * len(labels)) > 1e-6:
    raise ValueError(
        f"fraction={fraction} of {len(labels)} labels is not a whole number of examples: "
        f"use a multiple of 1/{len(labels)} (e.g. {count / len(labels)}).")
  rng = np.random.default_rng(seed)
  redrawn = np.zeros(len(labels), bool)
  redrawn[rng.permutation(len(labels))[:count]] = True
  corrupted = labels.astype(np.int32)
  corrupted[redrawn] = rng.integers(0, num_classes, size=count, dtype=np.int32)
  return corrupted, redrawn


class CorruptedLabels:
  """A source whose 'label' is corrupted and whose 'true_label' is the original.

  Attributes:
    labels, true_labels: int32 [N].
    redrawn: bool [N], which examples got a random label.
  """

  def __init__(self, source: pipeline.RandomAccessSource, *, fraction: float,
               num_classes: int, seed: int):
    self._source = source
    self.true_labels = pipeline.read_array(source, "label").astype(np.int32)
    self.labels, self.redrawn = corrupt_labels(
        self.true_labels, fraction=fraction, num_classes=num_classes, seed=seed)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    element = dict(self._source[index])
    if "true_label" in element:
      raise ValueError("the source already has a 'true_label' key: corrupt the labels only once.")
    element["true_label"] = element["label"]
    element["label"] = self.labels[index]
    return element


def with_corrupted_labels(dataset: DatasetT, *, fraction: float, seed: int) -> DatasetT:
  """`dataset` with its training split's labels corrupted (test split untouched).

  `dataset` is a `registry.Dataset` (any dataclass with `train`, `num_classes` and
  `info`); this module does not import the registry, which imports it.
  """
  train = CorruptedLabels(dataset.train, fraction=fraction, num_classes=dataset.num_classes, seed=seed)
  info = {**dataset.info, "label_corruption": fraction, "label_corruption_seed": seed}
  return dataclasses.replace(dataset, train=train, info=info)

