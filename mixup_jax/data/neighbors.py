"""k-nearest-neighbour mixing partners (paper Table 5, "KNN").

The k = 200 nearest neighbours of every training example are computed once in
input space (Euclidean distance between raw pixel vectors; an example is never
its own neighbour), over all classes or within the example's class, and cached
in a `.npy` file named by a hash of the inputs, so a changed dataset never
reads a stale table. Each time the loader yields an example, `NeighborPartner`
adds one of its neighbours drawn uniformly (seeded by the loader: the same
seed gives the same partners, a new epoch new ones):

  table = cached_nearest_neighbors(images, k=200)          # int32 [N, 200]
  partner = NeighborPartner(ds.train, table)
  it = train_iterator(ds.train, global_batch_size=128, seed=0, transforms=[partner])
  next(it)  # + 'partner_image' uint8 [b, 32, 32, 3], 'partner_label', 'partner_index'

The train step then mixes 'image' with 'partner_image' (augmenting each with its
own key) instead of with a permutation of the batch. `knn_partner` does all of
this from a dataset's training split.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from mixup_jax.data import pipeline

CACHE_DIR_ENV = "MIXUP_JAX_CACHE_DIR"


def nearest_neighbors(inputs: np.ndarray, *, k: int = 200, labels: np.ndarray | None = None,
                      query_batch: int = 512) -> np.ndarray:
  """Indices of the `k` nearest other examples of every example, nearest first.

  Args:
    inputs: [N, ...] any numeric dtype; compared as flattened float32 vectors.
    k: neighbours per example; fewer than the candidates (N - 1, or the class
      size - 1 within class).
    labels: int [N] to search only within each example's class, or None for
      all classes.
    query_batch: queries per distance block ([query_batch, N] floats in memory).

  Returns:
    int32 [N, k] indices into `inputs`.
  """
  inputs = np.asarray(inputs)
  vectors = inputs.reshape(len(inputs), -1).astype(np.float32)
  vectors -= vectors.mean(axis=0)  # Smaller norms, better float32 distances.
  if labels is None:
    return _knn(vectors, k, query_batch)
  labels = np.asarray(labels)
  if labels.shape != (len(inputs),):
    raise ValueError(f"labels must be [N={len(inputs)}], got shape {labels.shape}.")
  table = np.empty((len(inputs), k), np.int32)
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    table[members] = members[_knn(vectors[members], k, query_batch)]
  return table


def cached_nearest_neighbors(inputs: np.ndarray, *, k: int = 200, labels: np.ndarray | None = None,
                             cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
  """`nearest_neighbors`, computed once and kept in `cache_dir`.

  Args:
    inputs, k, labels: as for `nearest_neighbors`.
    cache_dir: default $MIXUP_JAX_CACHE_DIR, else ~/.cache/mixup_jax.

  Returns:
    int32 [N, k], read from `<cache_dir>/knn_k<k>_<all|class>_<hash>.npy` when present.
  """
  inputs = np.ascontiguousarray(inputs)
  digest = hashlib.sha256(inputs.tobytes())
  digest.update(repr((inputs.shape, str(inputs.dtype), k)).encode())
  if labels is not None:
    digest.update(np.ascontiguousarray(labels, np.int64).tobytes())
  scope = "all" if labels is None else "class"
  path = _cache_dir(cache_dir) / f"knn_k{k}_{scope}_{digest.hexdigest()[:20]}.npy"
  if path.exists():
    table = np.load(path)
    if table.shape == (len(inputs), k):
      return table
  table = nearest_neighbors(inputs, k=k, labels=labels)
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_suffix(f".{os.getpid()}.tmp")
  with open(temporary, "wb") as f:
    np.save(f, table)
  os.replace(temporary, path)  # Atomic: readers see the whole table or none.
  return table


class NeighborPartner(grain.transforms.RandomMap):
  """Adds a uniformly drawn neighbour of element['index'] as the mixing partner.

  Adds 'partner_<input_key>', 'partner_label' and 'partner_index' (int32).
  """

  def __init__(self, source: pipeline.RandomAccessSource, neighbors: np.ndarray,
               input_key: str = "image"):
    neighbors = np.asarray(neighbors)
    if neighbors.ndim != 2 or len(neighbors) != len(source):
      raise ValueError(f"neighbors must be [N={len(source)}, k], got shape {neighbors.shape}.")
    self._source, self._neighbors, self._input_key = source, neighbors, input_key

  def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    row = self._neighbors[int(element["index"])]
    partner = int(row[rng.integers(len(row))])
    other = self._source[partner]
    return {**element, f"partner_{self._input_key}": other[self._input_key],
            "partner_label": other["label"], "partner_index": np.int32(partner)}


def knn_partner(source: pipeline.RandomAccessSource, *, k: int = 200, within_class: bool = False,
                input_key: str = "image",
                cache_dir: str | os.PathLike[str] | None = None) -> NeighborPartner:
  """The `NeighborPartner` transform of a training split, its table cached."""
  inputs = pipeline.read_array(source, input_key)
  labels = pipeline.read_array(source, "label") if within_class else None
  table = cached_nearest_neighbors(inputs, k=k, labels=labels, cache_dir=cache_dir)
  return NeighborPartner(source, table, input_key)


def _knn(vectors: np.ndarray, k: int, query_batch: int) -> np.ndarray:
  """Brute-force k nearest (self excluded) of float32 [n, d] vectors, in blocks."""
  n = len(vectors)
  if not 0 < k < n:
    raise ValueError(f"k={k} must be in [1, {n - 1}]: each example has only {n - 1} candidates "
                     "(within a class: the class size - 1).")
  points = jnp.asarray(vectors)
  norms = jnp.sum(points * points, axis=1)
  blocks = []
  for start in range(0, n, query_batch):
    stop = min(start + query_batch, n)
    rows = np.arange(start, start + query_batch) % n  # Pad the last block to a fixed shape.
    blocks.append(np.asarray(_knn_block(points, norms, jnp.asarray(rows), k))[:stop - start])
  return np.concatenate(blocks).astype(np.int32)


@functools.partial(jax.jit, static_argnums=3)
def _knn_block(points: jax.Array, norms: jax.Array, rows: jax.Array, k: int) -> jax.Array:
  """k nearest of points[rows]: ranks |p|^2 - 2 q.p (|q|^2 is constant per row)."""
  queries = points[rows]
  scores = norms[None, :] - 2.0 * jnp.dot(queries, points.T, precision=jax.lax.Precision.HIGHEST)
  scores = scores.at[jnp.arange(len(rows)), rows].set(jnp.inf)  # Never oneself.
  return jax.lax.top_k(-scores, k)[1]


def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> pathlib.Path:
  if cache_dir is not None:
    return pathlib.Path(cache_dir)
  return pathlib.Path(os.environ.get(CACHE_DIR_ENV, pathlib.Path.home() / ".cache" / "mixup_jax"))
