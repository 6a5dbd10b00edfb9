"""k-NN partners (Table 5): partners are among the k nearest, seeded, cached."""

import numpy as np
import pytest

from mixup_jax import data
from mixup_jax.data import neighbors


@pytest.fixture(scope="module")
def subset(data_dir):
  """The first 400 real CIFAR-10 training images."""
  arrays = data.get_dataset("cifar10", data_dir=data_dir).train.arrays
  return data.ArraySource({"image": arrays["image"][:400], "label": arrays["label"][:400]})


def _exact_kth_distance(vectors, rows, k, candidates=None):
  """float64 squared distance to the k-th nearest other example of each row."""
  result = []
  for row in rows:
    pool = np.arange(len(vectors)) if candidates is None else candidates[row]
    pool = pool[pool != row]
    distances = np.sum((vectors[pool] - vectors[row]) ** 2, axis=1)
    result.append(np.sort(distances)[k - 1])
  return np.asarray(result)


def _squared(vectors, a, b):
  return np.sum((vectors[a] - vectors[b]) ** 2, axis=-1)


@pytest.mark.parametrize("within_class, k", [(False, 200), (True, 20)])
def test_table_holds_the_k_nearest_other_examples(subset, within_class, k):
  images, labels = subset.arrays["image"], subset.arrays["label"]
  table = neighbors.nearest_neighbors(images, k=k, labels=labels if within_class else None)
  assert table.shape == (400, k) and table.dtype == np.int32
  assert not np.any(table == np.arange(400)[:, None])
  vectors = images.reshape(400, -1).astype(np.float64)
  rows = np.arange(0, 400, 7)
  candidates = None
  if within_class:
    assert np.all(labels[table] == labels[:, None])
    candidates = {r: np.flatnonzero(labels == labels[r]) for r in rows}
  kth = _exact_kth_distance(vectors, rows, k, candidates)
  distances = _squared(vectors, rows[:, None], table[rows])
  assert np.all(distances <= kth[:, None] * (1 + 1e-5))
  assert np.all(np.diff(distances, axis=1) >= -1e-5 * kth[:, None])  # Nearest first.


def test_partners_are_among_the_k_nearest_seeded_and_change_per_epoch(subset, tmp_path):
  partner = neighbors.knn_partner(subset, k=200, cache_dir=tmp_path)
  table = neighbors.cached_nearest_neighbors(subset.arrays["image"], k=200, cache_dir=tmp_path)
  def partners(seed, steps):
    it = data.train_iterator(subset, global_batch_size=100, seed=seed, transforms=[partner])
    out = {}
    for step in range(steps):
      batch = next(it)
      for index, other in zip(batch["index"], batch["partner_index"]):
        assert other in table[index]
        out[(step // 4, int(index))] = int(other)
      np.testing.assert_array_equal(batch["partner_image"], subset.arrays["image"][batch["partner_index"]])
      np.testing.assert_array_equal(batch["partner_label"], subset.arrays["label"][batch["partner_index"]])
    return out
  first, again = partners(0, 8), partners(0, 8)
  assert first == again
  changed = np.mean([first[(0, r)] != first[(1, r)] for r in range(400)])
  assert changed > 0.9  # A fresh draw among 200 each epoch.


def test_the_table_is_cached_in_a_file_and_reused(subset, tmp_path, monkeypatch):
  images = subset.arrays["image"][:300]
  table = neighbors.cached_nearest_neighbors(images, k=50, cache_dir=tmp_path)
  files = list(tmp_path.glob("knn_k50_all_*.npy"))
  assert len(files) == 1
  monkeypatch.setattr(neighbors, "nearest_neighbors", lambda *a, **k: pytest.fail("recomputed"))
  np.testing.assert_array_equal(neighbors.cached_nearest_neighbors(images, k=50, cache_dir=tmp_path), table)
  monkeypatch.setenv(neighbors.CACHE_DIR_ENV, str(tmp_path))
  np.testing.assert_array_equal(neighbors.cached_nearest_neighbors(images, k=50), table)


def test_too_large_k_is_refused(subset):
  with pytest.raises(ValueError, match="k=400"):
    neighbors.nearest_neighbors(subset.arrays["image"], k=400)
