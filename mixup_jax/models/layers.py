"""Pieces every model shares: PyTorch-equivalent initialisers, BatchNorm, mixing points.

Initialisers. Each model copies the initialisation of the code whose topology it
reproduces, because the paper's numbers were obtained with that code:

* `TORCH_DEFAULT_INIT` / `torch_bias_init`: PyTorch's default for `nn.Conv2d` and
  `nn.Linear` (kaiming_uniform with a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  for weights and biases. Used where the reference code sets no initialiser:
  PreAct ResNet-18 (kuangliu/pytorch-cifar, run by the paper's authors), the speech
  models (adiyoss/GCommandsPytorch), the MLP and the GAN networks, and every final
  linear layer of the torchvision ImageNet models.
* `HE_NORMAL_FAN_OUT`: N(0, 2 / fan_out), not truncated, for convolutions followed by
  ReLU. torchvision's ResNets (`kaiming_normal_(mode="fan_out")`), the WRN authors'
  code (MSRinit, n = k*k*out_channels) and the DenseNet authors' code use it.
* BatchNorm: scale 1, bias 0 (PyTorch). Nothing is zero-initialised unless the
  reference does it (`zero_init_residual` of the ImageNet ResNets is off by default,
  as in torchvision).

BatchNorm uses PyTorch's defaults: momentum 0.1 in PyTorch terms (Flax momentum 0.9:
running = 0.9 * running + 0.1 * batch) and epsilon 1e-5. The batch variance is the
two-pass mean((x - mean)^2), not Flax's default mean(x^2) - mean^2: in float32 the
latter cancels badly when a channel's mean is large against its spread, and on the
authors' PreAct ResNet-18 it made our gradients differ from a float64 reference by
up to 3.5e-3 where PyTorch's differ by 3e-6 (tests/test_torch_reference.py). One known difference remains:
PyTorch updates the running variance with the unbiased batch variance (n / (n - 1)),
Flax with the biased one. They differ by a factor n / (n - 1), n = B * H * W values
per channel: 0.05 % for a CIFAR batch of 128 at the last 4 x 4 stage.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mixup_jax.mixing import Mixing, apply_mixing

Dtype = Any
Initializer = Callable[..., jax.Array]

TORCH_DEFAULT_INIT: Initializer = nn.initializers.variance_scaling(
    1.0 / 3.0, "fan_in", "uniform"
)
HE_NORMAL_FAN_OUT: Initializer = nn.initializers.variance_scaling(
    2.0, "fan_out", "normal"
)

# Latent mixing positions: 0 = the input, 1-4 = before residual stage k (models with
# three stages use 4 for "after the last stage, before the final BatchNorm-ReLU"),
# 5 = before the global pool and the linear classifier.
MIX_STAGES = (0, 1, 2, 3, 4, 5)


def torch_bias_init(fan_in: int) -> Initializer:
  """PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / np.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_linear(
    x: jax.Array,
    features: int,
    *,
    dtype: Dtype,
    kernel_init: Initializer = TORCH_DEFAULT_INIT,
    zero_bias: bool = False,
    name: str | None = None,
) -> jax.Array:
  """A dense layer with PyTorch's `nn.Linear` default initialisation.

  Args:
    x: [B, D] inputs (D is the fan-in the bias init needs).
    features: output width.
    dtype: computation dtype; parameters stay float32.
    kernel_init: weight initialiser (PyTorch default unless the reference differs).
    zero_bias: zero bias instead of PyTorch's uniform one (WRN and DenseNet code).
    name: submodule name.

  Returns:
    [B, features] activations in `dtype`.
  """
  bias_init = nn.initializers.zeros if zero_bias else torch_bias_init(x.shape[-1])
  return nn.Dense(
      features, dtype=dtype, kernel_init=kernel_init, bias_init=bias_init, name=name
  )(x)


def batch_norm(
    train: bool,
    *,
    dtype: Dtype,
    axis_name: str | None,
    scale_init: Initializer = nn.initializers.ones,
    name: str | None = None,
) -> nn.BatchNorm:
  """BatchNorm with PyTorch's defaults (momentum 0.1, eps 1e-5).

  In train mode it normalises with the batch statistics (averaged over `axis_name`
  when set, so a pmapped batch behaves like one big batch) and updates the running
  averages in 'batch_stats'; in eval mode it uses the running averages.
  """
  return nn.BatchNorm(
      use_running_average=not train,
      momentum=0.9,
      epsilon=1e-5,
      dtype=dtype,
      axis_name=axis_name,
      scale_init=scale_init,
      use_fast_variance=False,
      name=name,
  )


def check_rate(name: str, rate: float) -> None:
  """Raises ValueError unless 0 <= rate < 1 (a dropout probability)."""
  if not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
    raise ValueError(f"{name} must be a number in [0, 1), got {rate!r}.")


def check_input(x: jax.Array, model: str, trailing: tuple[int | None, ...]) -> None:
  """Raises ValueError unless x is [B, *trailing] (None matches any size).

  Catching a wrong input shape here matters for models whose first dense layer
  infers its fan-in at init: a wrong size would silently build another network.
  """
  shape = jnp.shape(x)
  ok = len(shape) == len(trailing) + 1 and all(
      want is None or got == want for got, want in zip(shape[1:], trailing)
  )
  if not ok:
    want = ", ".join("B" if i == 0 else str(d or "*") for i, d in enumerate((0,) + trailing))
    raise ValueError(f"{model} expects input x of shape [{want}], got {shape}.")
  if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
    raise ValueError(
        f"{model} expects floating input, got dtype {jnp.result_type(x)}; convert "
        "and normalise it first (e.g. x.astype(jnp.float32) / 255)."
    )


def check_mixing(mixing: Mixing | None, mix_stage: int | jax.Array) -> None:
  """Validates a latent-mixing instruction at trace time.

  A Python int stage must be in MIX_STAGES; a traced stage must be an integer
  scalar (its range cannot be checked at trace time: a traced stage outside 0..5
  mixes nothing, so draw it from MIX_STAGES).
  """
  if isinstance(mix_stage, (bool, np.bool_)):
    raise ValueError(f"mix_stage must be an int in {MIX_STAGES}, got {mix_stage!r}.")
  if isinstance(mix_stage, (numbers.Integral, np.integer)):
    if int(mix_stage) not in MIX_STAGES:
      raise ValueError(f"mix_stage must be one of {MIX_STAGES}, got {mix_stage!r}.")
  elif jnp.ndim(mix_stage) != 0 or not jnp.issubdtype(
      jnp.result_type(mix_stage), jnp.integer
  ):
    raise ValueError(
        f"mix_stage must be an int or an integer scalar array, got {mix_stage!r}."
    )
  if mixing is not None and mixing.given_partner:
    raise ValueError(
        'Latent mixing needs partners inside the batch; a Mixing sampled with '
        'pairing="given" mixes with an outside batch, so use it on inputs only.'
    )


def mix_at(
    h: jax.Array,
    stage: int,
    mixing: Mixing | None,
    mix_stage: int | jax.Array,
) -> jax.Array:
  """Mixes activations h with `mixing` if the requested stage is this position.

  Args:
    h: [B, ...] activations at mixing position `stage`.
    stage: this position's index in MIX_STAGES.
    mixing: the batch's Mixing, or None for no mixing at all.
    mix_stage: where to mix: a Python int (decided while tracing, so the other
      positions cost nothing) or a traced integer scalar (chosen per step under jit;
      `lax.cond` then runs the mixing only at the chosen position).

  Returns:
    [B, ...] activations, bitwise equal to h or to apply_mixing(mixing, h).

  A Mixing sampled with `global_pairing` all-gathers h across devices inside the
  conditional, so a traced stage must then be the same on every device (draw it
  from a key that is not folded with the device index).
  """
  if mixing is None:
    return h
  if isinstance(mix_stage, (numbers.Integral, np.integer)):
    return apply_mixing(mixing, h) if int(mix_stage) == stage else h
  return jax.lax.cond(
      mix_stage == stage, lambda v: apply_mixing(mixing, v), lambda v: v, h
  )
