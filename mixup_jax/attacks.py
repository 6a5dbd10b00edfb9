"""FGSM and iterative FGSM (paper Table 3), with the budget in pixel units.

The paper attacks with a maximum perturbation of 4 per pixel on the 0-255 scale.
Models see normalised inputs, (pixel / 255 - mean) / std per channel, so a
budget of `eps` pixels is `eps / 255 / std_c` in input units on channel c, and
the valid inputs are those of pixels in [0, 255]. `PixelSpace` does this
conversion once; the attacks take and return normalised inputs, keep every
perturbation inside the per-channel budget and every input inside the valid
range:

  space = PixelSpace(mean=CIFAR_MEAN, std=CIFAR_STD)
  logits_fn = lambda x: state.apply_fn(state.variables, x, train=False)
  x_adv = fgsm(logits_fn, x, labels, eps=4.0, space=space)
  x_adv = iterative_fgsm(logits_fn, x, labels, eps=4.0, space=space, num_steps=10)

FGSM (Goodfellow et al. 2015) takes one step of size eps along the sign of the
input gradient of the cross-entropy against the true labels. I-FGSM (Kurakin et
al. 2017) takes `num_steps` steps of eps / num_steps (the paper's "equal
steps"), projecting back onto the budget and the valid range after each.

Both are pure functions of their arguments; jit them with `logits_fn` closed
over (`jax.jit(functools.partial(fgsm, logits_fn, eps=4.0, space=space))`).
White box: the attacked model makes its own examples. Black box: one model's
`logits_fn` makes them, another model is evaluated on them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mixup_jax import losses

LogitsFn = Callable[[jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class PixelSpace:
  """How raw pixels in [0, pixel_max] map to model inputs: (p / pixel_max - mean) / std.

  Attributes:
    mean, std: per-channel normalisation constants on the [0, 1] scale, e.g.
      the CIFAR constants of `mixup_jax.data.augment`.
    pixel_max: the top of the raw pixel scale (255 for 8-bit images).
  """

  mean: Sequence[float]
  std: Sequence[float]
  pixel_max: float = 255.0

  def __post_init__(self):
    if len(self.mean) != len(self.std) or not self.mean:
      raise ValueError(
          f"mean and std must give one value per channel, got {len(self.mean)} and "
          f"{len(self.std)}.")
    if any(not s > 0 for s in self.std):
      raise ValueError(f"std must be > 0 on every channel, got {tuple(self.std)}.")
    if not self.pixel_max > 0:
      raise ValueError(f"pixel_max must be > 0, got {self.pixel_max!r}.")

  @property
  def num_channels(self) -> int:
    return len(self.mean)

  def eps_to_input(self, eps: float) -> jax.Array:
    """[C] float32: a budget of `eps` pixels in input units, per channel.

    A negative traced `eps` (which no check can see) gives NaN, not a silent clip.
    """
    eps = jnp.asarray(eps, jnp.float32)
    eps = jnp.where(eps >= 0, eps, jnp.nan)
    return eps / self.pixel_max / jnp.asarray(self.std, jnp.float32)

  def bounds(self) -> tuple[jax.Array, jax.Array]:
    """([C], [C]) float32: the inputs of pixel 0 and of pixel `pixel_max`."""
    mean = jnp.asarray(self.mean, jnp.float32)
    std = jnp.asarray(self.std, jnp.float32)
    return (0.0 - mean) / std, (1.0 - mean) / std

  def to_input(self, pixels: jax.Array) -> jax.Array:
    """Raw pixels [..., C] in [0, pixel_max] -> float32 model inputs."""
    mean = jnp.asarray(self.mean, jnp.float32)
    std = jnp.asarray(self.std, jnp.float32)
    return (jnp.asarray(pixels, jnp.float32) / self.pixel_max - mean) / std

  def to_pixels(self, inputs: jax.Array) -> jax.Array:
    """Model inputs [..., C] -> float32 raw pixels (the inverse of `to_input`)."""
    mean = jnp.asarray(self.mean, jnp.float32)
    std = jnp.asarray(self.std, jnp.float32)
    return (inputs.astype(jnp.float32) * std + mean) * self.pixel_max


def _check_inputs(x: jax.Array, labels: jax.Array, space: PixelSpace, eps) -> None:
  """Trace-time checks shared by the attacks."""
  if not isinstance(space, PixelSpace):
    raise ValueError(f"space must be a PixelSpace, got {type(space).__name__}.")
  if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
    raise ValueError(
        f"x must be normalised float model inputs, got dtype {jnp.result_type(x)}: convert "
        "raw pixels with space.to_input(pixels).")
  if jnp.ndim(x) < 2 or jnp.shape(x)[-1] != space.num_channels:
    raise ValueError(
        f"x must be [B, ..., C] with C={space.num_channels} channels (the length of "
        f"space.mean), got shape {jnp.shape(x)}.")
  if jnp.ndim(labels) != 1 or jnp.shape(labels)[0] != jnp.shape(x)[0]:
    raise ValueError(
        f"labels must be [B={jnp.shape(x)[0]}] integer class ids, got shape {jnp.shape(labels)}.")
  if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
    raise ValueError(f"labels must be integer class ids, got dtype {jnp.result_type(labels)}.")
  _check_pixels("eps", eps)


def _check_pixels(name: str, value) -> None:
  """A budget in pixels: a number >= 0, or a float scalar array (traced: a sweep under
  one compilation; its value cannot be checked)."""
  if isinstance(value, (jax.Array, np.ndarray)):
    if value.ndim != 0 or not jnp.issubdtype(value.dtype, jnp.floating):
      raise ValueError(f"{name} must be a float scalar, got {value.dtype}{list(value.shape)}.")
    return
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
    raise ValueError(f"{name} must be a number of pixels >= 0 (e.g. 4.0 of 255), got {value!r}.")


def _input_gradient(logits_fn: LogitsFn, x: jax.Array, labels: jax.Array) -> jax.Array:
  """d/dx of the summed cross-entropy against `labels`: each row's own gradient."""

  def loss(inputs):
    return jnp.sum(losses.cross_entropy_with_ids(logits_fn(inputs), labels))

  return jax.grad(loss)(x.astype(jnp.float32))


def _project(x_adv: jax.Array, x: jax.Array, budget: jax.Array, space: PixelSpace) -> jax.Array:
  """Clips x_adv into the per-channel budget around x and into the valid range."""
  low, high = space.bounds()
  x_adv = jnp.clip(x_adv, x - budget, x + budget)
  return jnp.clip(x_adv, low, high)


def fgsm(logits_fn: LogitsFn, x: jax.Array, labels: jax.Array, *, eps: float,
         space: PixelSpace) -> jax.Array:
  """Fast gradient sign method: x + eps * sign(d loss / dx), clipped to valid inputs.

  Args:
    logits_fn: normalised inputs [B, H, W, C] -> logits [B, K]; must treat rows
      independently (a model in eval mode).
    x: [B, H, W, C] float normalised inputs (of valid pixels).
    labels: [B] int, the true classes (the loss the attack increases).
    eps: the budget in pixels on the 0..pixel_max scale (the paper: 4); a
      float scalar array may be passed instead, so a sweep over eps compiles once.
    space: the pixel <-> input mapping of the model.

  Returns:
    [B, H, W, C] float32 adversarial inputs with |x_adv - x| <= eps / pixel_max / std_c.
  """
  _check_inputs(x, labels, space, eps)
  x = x.astype(jnp.float32)
  budget = space.eps_to_input(eps)
  grad = _input_gradient(logits_fn, x, labels)
  return _project(x + budget * jnp.sign(grad), x, budget, space)


def iterative_fgsm(logits_fn: LogitsFn, x: jax.Array, labels: jax.Array, *, eps: float,
                   space: PixelSpace, num_steps: int = 10,
                   step_size: float | None = None) -> jax.Array:
  """Iterative FGSM (basic iterative method): `num_steps` signed steps inside the budget.

  Args:
    logits_fn, x, labels, eps, space: as for `fgsm`.
    num_steps: number of gradient steps (the paper: 10).
    step_size: pixels per step; default eps / num_steps (equal steps that can
      just reach the budget).

  Returns:
    [B, H, W, C] float32 adversarial inputs, inside the budget and the valid range.
  """
  _check_inputs(x, labels, space, eps)
  if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
    raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}.")
  if step_size is None:
    step_size = eps / num_steps
  _check_pixels("step_size", step_size)
  x = x.astype(jnp.float32)
  budget = space.eps_to_input(eps)
  step = space.eps_to_input(step_size)

  def body(_, x_adv):
    grad = _input_gradient(logits_fn, x_adv, labels)
    return _project(x_adv + step * jnp.sign(grad), x, budget, space)

  return jax.lax.fori_loop(0, num_steps, body, x)


ATTACKS = {"fgsm": fgsm, "ifgsm": iterative_fgsm}


def attack(name: str, logits_fn: LogitsFn, x: jax.Array, labels: jax.Array, *, eps: float,
           space: PixelSpace, **options) -> jax.Array:
  """The attack `name` in ATTACKS ('fgsm' or 'ifgsm') with its options."""
  if name not in ATTACKS:
    raise ValueError(f"attack must be one of {tuple(ATTACKS)}, got {name!r}.")
  return ATTACKS[name](logits_fn, x, labels, eps=eps, space=space, **options)
