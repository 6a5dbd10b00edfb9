"""What a model does in between training examples (paper Figure 2).

For random pairs of training examples (x_i, y_i), (x_j, y_j) and lambda on a
grid, the model is evaluated at x = lambda * x_i + (1 - lambda) * x_j:

  (a) miss rate: the share of pairs whose prediction is neither y_i nor y_j;
  (b) gradient norm: the L2 norm of the gradient of the loss with respect to
      that input, where the loss is the cross-entropy against the mixed target
      lambda * onehot(y_i) + (1 - lambda) * onehot(y_j) (the target mixup trains
      on; at lambda = 1 it is the ordinary loss of x_i).

The paper reports that mixup models miss less and have smaller gradient norms.

  pairs = sample_pairs(jax.random.key(0), num_examples=len(train), num_pairs=1000)
  logits_fn = lambda x: state.apply_fn(state.variables, x, train=False)
  out = in_between(logits_fn, x[pairs[:, 0]], y[pairs[:, 0]], x[pairs[:, 1]],
                   y[pairs[:, 1]], lams=jnp.linspace(0.5, 1.0, 11), num_classes=10)
  out['miss_rate']  # [L] in [0, 1]
  out['grad_norm']  # [L] mean over pairs

Inputs are model inputs (normalised images): mixing normalised images is the
same as normalising mixed pixels, since normalisation is affine.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from mixup_jax import losses

LogitsFn = Callable[[jax.Array], jax.Array]


def sample_pairs(rng: jax.Array, num_examples: int, num_pairs: int) -> jax.Array:
  """int32 [num_pairs, 2]: random pairs (i, j) of distinct example indices.

  Args:
    rng: a PRNG key.
    num_examples: indices are drawn from [0, num_examples); needs >= 2.
    num_pairs: how many pairs.
  """
  if not isinstance(num_examples, int) or num_examples < 2:
    raise ValueError(
        f"num_examples must be an int >= 2 (pairs of distinct examples), got {num_examples!r}.")
  if not isinstance(num_pairs, int) or num_pairs < 1:
    raise ValueError(f"num_pairs must be a positive int, got {num_pairs!r}.")
  first_key, offset_key = jax.random.split(rng)
  first = jax.random.randint(first_key, (num_pairs,), 0, num_examples)
  # A non-zero offset modulo N makes j uniform over the other N - 1 indices.
  offset = jax.random.randint(offset_key, (num_pairs,), 1, num_examples)
  return jnp.stack([first, (first + offset) % num_examples], axis=1).astype(jnp.int32)


def _check(x_i, y_i, x_j, y_j, lams, num_classes) -> None:
  if jnp.shape(x_i) != jnp.shape(x_j):
    raise ValueError(
        f"x_i and x_j must have the same shape, got {jnp.shape(x_i)} and {jnp.shape(x_j)}.")
  if not jnp.issubdtype(jnp.result_type(x_i), jnp.floating):
    raise ValueError(f"x_i, x_j must be float model inputs, got dtype {jnp.result_type(x_i)}.")
  batch = jnp.shape(x_i)[:1]
  for name, y in (("y_i", y_i), ("y_j", y_j)):
    if jnp.shape(y) != batch or not jnp.issubdtype(jnp.result_type(y), jnp.integer):
      raise ValueError(f"{name} must be [B={batch[0]}] integer class ids, got "
                       f"{jnp.result_type(y)}{jnp.shape(y)}.")
  if jnp.ndim(lams) != 1 or jnp.shape(lams)[0] < 1:
    raise ValueError(f"lams must be a non-empty 1-D grid of weights, got shape {jnp.shape(lams)}.")
  if not isinstance(num_classes, int) or num_classes < 2:
    raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}.")


def in_between_per_pair(logits_fn: LogitsFn, x_i: jax.Array, y_i: jax.Array, x_j: jax.Array,
                        y_j: jax.Array, lams: jax.Array, *,
                        num_classes: int) -> dict[str, jax.Array]:
  """Per-pair miss indicators and input-gradient norms along the lambda grid.

  Args:
    logits_fn: inputs [B, ...] -> logits [B, num_classes]; rows must be
      independent (a model in eval mode).
    x_i, x_j: [B, ...] float model inputs of the two examples of each pair.
    y_i, y_j: [B] int their labels.
    lams: [L] weights of x_i.
    num_classes: width of the logits.

  Returns:
    {'miss': float32 [L, B] (1 where the prediction is neither y_i nor y_j),
     'grad_norm': float32 [L, B], 'loss': float32 [L, B] (against the mixed target)}.
  """
  _check(x_i, y_i, x_j, y_j, lams, num_classes)
  x_i, x_j = x_i.astype(jnp.float32), x_j.astype(jnp.float32)
  onehot_i = jax.nn.one_hot(y_i, num_classes, dtype=jnp.float32)
  onehot_j = jax.nn.one_hot(y_j, num_classes, dtype=jnp.float32)

  def at(lam):
    x = lam * x_i + (1.0 - lam) * x_j
    target = lam * onehot_i + (1.0 - lam) * onehot_j

    def total_loss(inputs):
      # Rows are independent, so the gradient of the sum is each row's own gradient.
      logits = logits_fn(inputs)
      per_row = losses.softmax_cross_entropy(logits, target)
      return jnp.sum(per_row), (per_row, logits)

    (_, (per_row, logits)), grad = jax.value_and_grad(total_loss, has_aux=True)(x)
    prediction = jnp.argmax(logits, axis=-1)
    miss = (prediction != y_i) & (prediction != y_j)
    norm = jnp.sqrt(jnp.sum(jnp.square(grad).reshape(grad.shape[0], -1), axis=1))
    return {"miss": miss.astype(jnp.float32), "grad_norm": norm, "loss": per_row}

  return jax.lax.map(at, jnp.asarray(lams, jnp.float32))


def in_between(logits_fn: LogitsFn, x_i: jax.Array, y_i: jax.Array, x_j: jax.Array,
               y_j: jax.Array, lams: jax.Array, *, num_classes: int) -> dict[str, jax.Array]:
  """Figure 2's curves: miss rate and mean input-gradient norm at each lambda.

  Args: as for `in_between_per_pair`.

  Returns:
    {'miss_rate': [L] in [0, 1], 'grad_norm': [L] mean over pairs,
     'loss': [L] mean cross-entropy against the mixed target}.
  """
  per_pair = in_between_per_pair(logits_fn, x_i, y_i, x_j, y_j, lams, num_classes=num_classes)
  return {"miss_rate": jnp.mean(per_pair["miss"], axis=1),
          "grad_norm": jnp.mean(per_pair["grad_norm"], axis=1),
          "loss": jnp.mean(per_pair["loss"], axis=1)}
