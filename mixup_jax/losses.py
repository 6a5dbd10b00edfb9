"""Soft-target losses and accuracy against the original hard labels.

All losses are computed in float32 from `log_softmax` whatever the logits' dtype,
and return one value per example so the caller chooses the reduction (a masked mean
for padded evaluation batches, for example).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax


def softmax_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Cross-entropy with soft targets: -sum_c targets_c * log_softmax(logits)_c.

  Args:
    logits: [B, C] any float dtype.
    targets: [B, C] rows (one-hot, mixed or smoothed), float.
  Returns:
    [B] float32.
  """
  if logits.shape != targets.shape:
    raise ValueError(
        f"logits {logits.shape} and targets {targets.shape} must have the same shape; "
        "turn class ids into rows with mixup_jax.as_target_rows(y, num_classes)."
    )
  # optax's loss, on float32: bf16 logits would lose the log-sum-exp's precision.
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets.astype(jnp.float32))


def _check_ids(name: str, logits: jax.Array, labels: jax.Array) -> None:
  """Integer [B] ids matching the logits; their values too when they are concrete.

  A float id would be truncated (3.9 -> 3) and an id outside [0, C) gives NaN, both
  silently, so they are refused; under jit only the dtype and shape can be checked.
  """
  if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
    raise ValueError(f"{name} must be integer class ids, got dtype {jnp.result_type(labels)}; "
                     "for soft targets use softmax_cross_entropy(logits, rows).")
  if jnp.shape(labels) != jnp.shape(logits)[:-1]:
    raise ValueError(f"{name} {jnp.shape(labels)} must have the logits' leading shape "
                     f"{jnp.shape(logits)[:-1]}.")
  if not isinstance(labels, jax.core.Tracer):
    ids, num_classes = np.asarray(labels), jnp.shape(logits)[-1]
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
      raise ValueError(f"{name} has class ids in [{ids.min()}, {ids.max()}], outside "
                       f"[0, {num_classes}) (the logits' last axis).")


def cross_entropy_with_ids(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """[B] float32 cross-entropy against [B] integer class ids (optax's, on float32)."""
  _check_ids("labels", logits, labels)
  return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels.astype(jnp.int32))


def mixed_cross_entropy(
    logits: jax.Array, labels_a: jax.Array, labels_b: jax.Array, lam: jax.Array
) -> jax.Array:
  """lam * CE(y_a) + (1 - lam) * CE(y_b): the authors' PyTorch form of mixup's loss.

  Equal to `softmax_cross_entropy(logits, lam * onehot(y_a) + (1 - lam) * onehot(y_b))`.

  Args:
    logits: [B, C].
    labels_a, labels_b: [B] integer ids of the two mixed examples.
    lam: scalar or [B] weight of labels_a.
  Returns:
    [B] float32.
  """
  _check_ids("labels_a", logits, labels_a)
  _check_ids("labels_b", logits, labels_b)
  if not isinstance(lam, jax.core.Tracer):
    weights = np.asarray(lam, np.float64)
    if weights.size and not (np.all(np.isfinite(weights)) and weights.min() >= 0
                             and weights.max() <= 1):
      raise ValueError(f"lam must lie in [0, 1] (the weight of labels_a), got {lam!r}.")
  lam = jnp.asarray(lam, jnp.float32)
  return lam * cross_entropy_with_ids(logits, labels_a) + (
      1.0 - lam
  ) * cross_entropy_with_ids(logits, labels_b)


def sigmoid_binary_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Binary cross-entropy with soft targets in [0, 1] (the mixup GAN's loss).

  Elementwise, float32, stable for large |logits|:
  -t * log(sigmoid(z)) - (1 - t) * log(1 - sigmoid(z)).
  """
  logits = logits.astype(jnp.float32)
  targets = jnp.broadcast_to(jnp.asarray(targets, jnp.float32), logits.shape)
  return -targets * jax.nn.log_sigmoid(logits) - (1.0 - targets) * jax.nn.log_sigmoid(
      -logits
  )


def topk_correct(logits: jax.Array, labels: jax.Array, k: int = 1) -> jax.Array:
  """[B] float32: 1 where the label is among the k highest logits, else 0.

  Ties are broken by `jax.lax.top_k` (lower index first).
  """
  if labels.ndim != 1:
    raise ValueError(f"labels must be [B] integer class ids, got shape {labels.shape}.")
  if not 1 <= k <= logits.shape[-1]:
    raise ValueError(f"k must lie in [1, {logits.shape[-1]}], got {k}.")
  _, top = jax.lax.top_k(logits, k)
  return jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)


def topk_accuracy(
    logits: jax.Array,
    labels: jax.Array,
    ks: Sequence[int] = (1, 5),
    mask: jax.Array | None = None,
) -> dict[str, jax.Array]:
  """Float32 top-k accuracies {"top1": ..., "top5": ...}, optionally over mask rows.

  k larger than the number of classes is skipped (top-5 of a 2-class problem).
  """
  weights = jnp.ones(labels.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
  denom = jnp.maximum(weights.sum(), 1.0)
  return {
      f"top{k}": jnp.sum(topk_correct(logits, labels, k) * weights) / denom
      for k in ks
      if k <= logits.shape[-1]
  }
