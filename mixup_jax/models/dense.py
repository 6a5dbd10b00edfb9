"""Fully connected networks: the UCI classifier (Table 4) and the GAN pair (Figure 5).

Inputs are [B, D] feature rows. PyTorch's default initialisation of `nn.Linear`
throughout, as the reference code sets none; the GAN pair can instead take the
N(0, init_std) weights and zero biases of DCGAN, which public reproductions of
Figure 5 use.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mixup_jax.models.layers import Dtype, check_input, torch_linear


class MLP(nn.Module):
  """Dense-ReLU layers of the given widths, then a linear output layer.

  Attributes:
    num_outputs: width of the output.
    hidden_sizes: widths of the hidden ReLU layers.
    dtype: computation dtype; parameters are float32.
    name_for_errors: how error messages call the model.
    init_std: None for PyTorch's default initialisation; a number for weights
      drawn from N(0, init_std) and zero biases (DCGAN's).
  """

  num_outputs: int
  hidden_sizes: Sequence[int]
  dtype: Dtype = jnp.float32
  name_for_errors: str = "mlp"
  init_std: float | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, D] -> [B, num_outputs] float32. `train` is accepted for a uniform API."""
    del train  # no dropout or BatchNorm
    check_input(x, self.name_for_errors, (None,))
    init = {} if self.init_std is None else {
        "kernel_init": nn.initializers.normal(self.init_std), "zero_bias": True}
    h = x
    for i, width in enumerate(self.hidden_sizes):
      h = nn.relu(torch_linear(h, width, dtype=self.dtype, name=f"hidden{i + 1}", **init))
    return torch_linear(h, self.num_outputs, dtype=self.dtype, name="output",
                        **init).astype(jnp.float32)


def _check_hidden(hidden_sizes) -> tuple[int, ...]:
  """Validates hidden widths; returns them as a tuple (hashable module field)."""
  sizes = tuple(hidden_sizes)
  if not all(isinstance(s, int) and s >= 1 for s in sizes):
    raise ValueError(f"hidden_sizes must be positive ints, got {hidden_sizes!r}.")
  return sizes


def _check_init_std(init_std) -> float | None:
  if init_std is not None and (isinstance(init_std, bool) or not isinstance(init_std, (int, float))
                               or not init_std > 0):
    raise ValueError(f"init_std must be None (PyTorch's initialisation) or a number > 0, "
                     f"got {init_std!r}.")
  return init_std


def mlp(
    num_classes: int,
    *,
    hidden_sizes: Sequence[int] = (128, 128),
    dtype: Dtype = jnp.float32,
) -> MLP:
  """The paper's UCI network: two hidden layers of 128 ReLU units by default."""
  return MLP(num_classes, _check_hidden(hidden_sizes), dtype, "mlp")


def gan_generator(
    num_classes: int = 2,
    *,
    hidden_sizes: Sequence[int] = (512, 512, 512),
    dtype: Dtype = jnp.float32,
    init_std: float | None = None,
) -> MLP:
  """Figure 5's generator: noise [B, Z] -> points [B, num_classes] (2-D toy data).

  `num_classes` is the dimension of the generated points (2 for the paper's toys);
  three hidden layers of 512 ReLU units, linear output. `init_std`: see `MLP`.
  """
  return MLP(num_classes, _check_hidden(hidden_sizes), dtype, "gan_generator",
             _check_init_std(init_std))


def gan_discriminator(
    num_classes: int = 1,
    *,
    hidden_sizes: Sequence[int] = (512, 512, 512),
    dtype: Dtype = jnp.float32,
    init_std: float | None = None,
) -> MLP:
  """Figure 5's discriminator: points [B, D] -> one real/fake logit [B, 1].

  Three hidden layers of 512 ReLU units; the logit goes into a sigmoid
  cross-entropy, so `num_classes` must be 1. `init_std`: see `MLP`.
  """
  if num_classes != 1:
    raise ValueError(
        f"gan_discriminator outputs one logit: pass num_classes=1, got {num_classes!r}."
    )
  return MLP(1, _check_hidden(hidden_sizes), dtype, "gan_discriminator",
             _check_init_std(init_std))
