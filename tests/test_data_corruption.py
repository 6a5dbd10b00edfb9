"""Label corruption (Table 2): exact rate, uniform random labels, true labels kept."""

import numpy as np
import pytest

from mixup_jax import data
from mixup_jax.data import corruption


@pytest.fixture(scope="module")
def cifar(data_dir):
  return data.get_dataset("cifar10", data_dir=data_dir)


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8])
def test_exactly_the_fraction_is_redrawn_and_true_labels_are_kept(cifar, fraction):
  ds = data.get_dataset("cifar10", label_corruption=fraction, label_corruption_seed=1)
  train = ds.train
  true = cifar.train.arrays["label"]
  np.testing.assert_array_equal(train.true_labels, true)
  assert int(train.redrawn.sum()) == round(fraction * len(true))
  np.testing.assert_array_equal(train.labels[~train.redrawn], true[~train.redrawn])
  # Redrawn labels are uniform over the 10 classes: ~1/10 keep their class by chance
  # (within 4.5 binomial standard errors: 0.015 on the full 50,000 images).
  tolerance = max(0.015, 4.5 * np.sqrt(0.09 / train.redrawn.sum()))
  kept = float(np.mean(train.labels[train.redrawn] == true[train.redrawn]))
  assert abs(kept - 0.1) < tolerance
  counts = np.bincount(train.labels[train.redrawn], minlength=10) / train.redrawn.sum()
  assert np.all(np.abs(counts - 0.1) < tolerance)
  # The loader yields both labels; the test split is untouched.
  batch = next(data.train_iterator(train, global_batch_size=256, seed=0))
  np.testing.assert_array_equal(batch["true_label"], true[batch["index"]])
  np.testing.assert_array_equal(batch["label"], train.labels[batch["index"]])
  assert ds.test is cifar.test or np.array_equal(ds.test.arrays["label"], cifar.test.arrays["label"])
  assert ds.info["label_corruption"] == fraction


def test_corruption_is_seeded():
  labels = np.arange(1000) % 10
  a = corruption.corrupt_labels(labels, fraction=0.5, num_classes=10, seed=3)
  b = corruption.corrupt_labels(labels, fraction=0.5, num_classes=10, seed=3)
  c = corruption.corrupt_labels(labels, fraction=0.5, num_classes=10, seed=4)
  np.testing.assert_array_equal(a[0], b[0])
  assert not np.array_equal(a[1], c[1])


def test_fractions_that_are_not_whole_examples_or_out_of_range_are_refused():
  labels = np.arange(30) % 10
  with pytest.raises(ValueError, match="whole number"):
    corruption.corrupt_labels(labels, fraction=0.25, num_classes=10, seed=0)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    corruption.corrupt_labels(labels, fraction=1.5, num_classes=10, seed=0)
  with pytest.raises(ValueError, match="num_classes"):
    corruption.corrupt_labels(labels, fraction=0.5, num_classes=5, seed=0)
