"""The paper's optimisers and learning-rate schedules, as Optax transformations.

  tx = sgd(cifar_schedule(steps_per_epoch=391), momentum=0.9, weight_decay=1e-4)

SGD follows PyTorch's `torch.optim.SGD`, which the paper's numbers assume: weight decay
is added to the gradient of every parameter (BatchNorm scales and biases included)
before momentum, the momentum buffer has no dampening, and the step is -lr * buffer:

  g <- g + wd * p;   buf <- momentum * buf + g;   p <- p - lr * buf

Adam follows `torch.optim.Adam` (lr 1e-3, betas (0.9, 0.999), eps 1e-8 added to the
square root; weight decay, when asked, added to the gradient like SGD's).

Both wrap the update in `optax.inject_hyperparams`, so the learning rate of the step
just taken is in the optimizer state (`learning_rate_of(opt_state)`) and the train
step reports the rate that was actually used, not a recomputation of the schedule.

Schedules map the number of updates already taken (Optax's `count`, 0 for the first
update) to a learning rate. The step that begins epoch e has count e * steps_per_epoch,
so "divide by 10 at epoch 100" means every update of epoch 100 (0-based) and later
uses lr / 10.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from mixup_jax import _checks

Schedule = optax.Schedule
LearningRate = float | optax.Schedule


def _check_rate(name: str, value) -> None:
  if callable(value):
    return
  if not isinstance(value, (int, float)) or not value > 0 or value != value:
    raise ValueError(f"{name} must be a positive number or an optax schedule, got {value!r}.")


def _check_nonnegative(name: str, value) -> None:
  if not isinstance(value, (int, float)) or not value >= 0:
    raise ValueError(f"{name} must be a number >= 0, got {value!r}.")


def sgd(
    learning_rate: LearningRate,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> optax.GradientTransformation:
  """SGD with momentum and weight decay on all parameters, as in PyTorch.

  Args:
    learning_rate: a number or a schedule of the update count.
    momentum: the momentum coefficient; 0 is plain SGD. No dampening.
    weight_decay: wd of g <- g + wd * p, applied to every parameter.
    nesterov: PyTorch's Nesterov variant (g + momentum * buf as the step).

  Returns:
    An optax transformation whose state exposes the learning rate it used.
  """
  _check_rate("learning_rate", learning_rate)
  if not _checks.is_number(momentum) or not 0 <= momentum < 1:
    raise ValueError(f"momentum must lie in [0, 1) (at 1 the updates never decay), got "
                     f"{momentum!r}.")
  _check_nonnegative("weight_decay", weight_decay)
  if nesterov and momentum == 0:
    raise ValueError("nesterov=True needs momentum > 0 (as in PyTorch).")

  def transform(learning_rate):
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov),
    )

  return optax.inject_hyperparams(transform)(learning_rate=learning_rate)


def adam(
    learning_rate: LearningRate = 1e-3,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
  """Adam with PyTorch's defaults; weight decay (if any) is added to the gradient.

  The update is m_hat / (sqrt(v_hat) + eps) with bias-corrected moments, as in
  `torch.optim.Adam` (not AdamW: decay goes through the moments).
  """
  _check_rate("learning_rate", learning_rate)
  _check_nonnegative("weight_decay", weight_decay)
  for name, beta in (("b1", b1), ("b2", b2)):
    if not 0.0 <= beta < 1.0:
      raise ValueError(f"{name} must lie in [0, 1), got {beta!r}.")
  _check_rate("eps", eps)

  def transform(learning_rate):
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.adam(learning_rate, b1=b1, b2=b2, eps=eps),
    )

  return optax.inject_hyperparams(transform)(learning_rate=learning_rate)


def learning_rate_of(opt_state: Any) -> jax.Array | None:
  """The learning rate of the last update, from an `inject_hyperparams` state.

  Returns None when no part of `opt_state` records a 'learning_rate' hyperparameter
  (an optimizer not built by this module or by `optax.inject_hyperparams`).
  """
  injected_types = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)
  is_injected = lambda node: isinstance(node, injected_types)
  for node in jax.tree.leaves(opt_state, is_leaf=is_injected):
    if is_injected(node) and "learning_rate" in node.hyperparams:
      return jnp.asarray(node.hyperparams["learning_rate"], jnp.float32)
  return None


# ------------------------------------------------------------------------------
# Schedules.
# ------------------------------------------------------------------------------


def _check_steps_per_epoch(steps_per_epoch) -> None:
  if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be a positive int, got {steps_per_epoch!r}.")


def _check_boundaries(boundaries: Sequence[int]) -> tuple[int, ...]:
  epochs = tuple(boundaries)
  if any(not isinstance(e, int) or e < 0 for e in epochs) or list(epochs) != sorted(
      set(epochs)
  ):
    raise ValueError(
        f"boundary epochs must be increasing non-negative ints, got {boundaries!r}."
    )
  return epochs


def step_decay_schedule(
    base_lr: float,
    boundary_epochs: Sequence[int],
    steps_per_epoch: int,
    factor: float = 0.1,
    shift_epochs: int = 0,
) -> Schedule:
  """base_lr * factor ** (number of boundaries reached), boundaries in epochs.

  Args:
    base_lr: the rate of the first epochs.
    boundary_epochs: the (0-based) epochs from which the rate is multiplied by
      `factor` once more.
    steps_per_epoch: updates per epoch, to turn epochs into update counts.
    factor: the multiplier at each boundary (0.1 divides by 10).
    shift_epochs: added to every boundary; 1 reproduces the authors' CIFAR code,
      which lowers the rate after the epoch ends (drops take effect at 101, 151).
  """
  _check_rate("base_lr", base_lr)
  _check_steps_per_epoch(steps_per_epoch)
  epochs = _check_boundaries(boundary_epochs)
  if not isinstance(shift_epochs, int) or shift_epochs < 0:
    raise ValueError(f"shift_epochs must be an int >= 0, got {shift_epochs!r}.")
  if not 0.0 < factor:
    raise ValueError(f"factor must be positive, got {factor!r}.")
  # optax's piecewise schedule scales the rate from update count `boundary` on, PyTorch
  # MultiStepLR's convention (tests/test_optim.py checks both drop at the same counts).
  piecewise = optax.piecewise_constant_schedule(
      base_lr, {(e + shift_epochs) * steps_per_epoch: factor for e in epochs})
  return lambda count: jnp.asarray(piecewise(count), jnp.float32)


def warmup_step_decay_schedule(
    base_lr: float,
    warmup_start_lr: float,
    warmup_epochs: int,
    boundary_epochs: Sequence[int],
    steps_per_epoch: int,
    factor: float = 0.1,
) -> Schedule:
  """Linear warm-up from warmup_start_lr to base_lr, then `step_decay_schedule`.

  During the first warmup_epochs * steps_per_epoch updates the rate rises linearly,
  warmup_start_lr at update 0 and base_lr at the first update after the warm-up.
  """
  _check_rate("warmup_start_lr", warmup_start_lr)
  if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
    raise ValueError(f"warmup_epochs must be an int >= 0, got {warmup_epochs!r}.")
  decay = step_decay_schedule(base_lr, boundary_epochs, steps_per_epoch, factor)
  warmup_steps = warmup_epochs * steps_per_epoch
  if boundary_epochs and min(boundary_epochs) < warmup_epochs:
    raise ValueError(
        f"boundary_epochs {tuple(boundary_epochs)} start inside the {warmup_epochs}-epoch "
        "warm-up; move the boundaries after it."
    )

  if warmup_steps == 0:
    return decay
  ramp = optax.linear_schedule(warmup_start_lr, base_lr, warmup_steps)

  # Not optax.join_schedules: it restarts the count at the join, and the decay's
  # boundaries are epochs of the whole run.
  def schedule(count):
    return jnp.where(jnp.asarray(count) < warmup_steps,
                     jnp.asarray(ramp(count), jnp.float32), decay(count))

  return schedule


def cosine_schedule(
    base_lr: float, total_steps: int, warmup_steps: int = 0, end_lr: float = 0.0
) -> Schedule:
  """Linear warm-up from 0 over `warmup_steps`, then cosine decay to `end_lr`.

  optax's `warmup_cosine_decay_schedule`: base_lr at the end of the warm-up,
  end_lr at update `total_steps`. The common choice for short runs, which end
  long before a step schedule's first drop.
  """
  _check_rate("base_lr", base_lr)
  for name, value in (("total_steps", total_steps), ("warmup_steps", warmup_steps)):
    if not isinstance(value, int) or value < 0:
      raise ValueError(f"{name} must be an int >= 0, got {value!r}.")
  if total_steps < 1 or warmup_steps >= total_steps:
    raise ValueError(
        f"need 0 <= warmup_steps < total_steps, got {warmup_steps} and {total_steps}.")
  if not isinstance(end_lr, (int, float)) or not 0.0 <= end_lr <= base_lr:
    raise ValueError(f"end_lr must be in [0, base_lr], got {end_lr!r}.")
  if not warmup_steps:  # the same numbers, without optax's warning about an empty warm-up
    return optax.cosine_decay_schedule(base_lr, total_steps, alpha=end_lr / base_lr)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=base_lr,
      warmup_steps=warmup_steps, decay_steps=total_steps, end_value=end_lr)


def cifar_schedule(
    steps_per_epoch: int,
    base_lr: float = 0.1,
    boundary_epochs: Sequence[int] = (100, 150),
    shift_epochs: int = 0,
) -> Schedule:
  """The paper's CIFAR recipe: lr 0.1, divided by 10 at epochs 100 and 150.

  shift_epochs=1 lowers the rate one epoch later, as the authors' code does.
  """
  return step_decay_schedule(
      base_lr, boundary_epochs, steps_per_epoch, 0.1, shift_epochs=shift_epochs
  )


def wrn_schedule(
    steps_per_epoch: int, base_lr: float = 0.1, shift_epochs: int = 0
) -> Schedule:
  """The paper's WRN-28-10 recipe: lr 0.1, divided by 10 at epochs 60, 120 and 180."""
  return step_decay_schedule(
      base_lr, (60, 120, 180), steps_per_epoch, 0.1, shift_epochs=shift_epochs
  )


def imagenet_schedule(
    steps_per_epoch: int,
    num_epochs: int = 90,
    base_lr: float = 0.4,
    warmup_start_lr: float = 0.1,
    warmup_epochs: int = 5,
) -> Schedule:
  """The paper's ImageNet recipe (batch 1024): linear warm-up 0.1 -> 0.4 over 5 epochs,
  then divided by 10 at epochs 30, 60, 80 (90-epoch runs) or 60, 120, 180 (200 epochs).
  """
  boundaries = {90: (30, 60, 80), 200: (60, 120, 180)}
  if num_epochs not in boundaries:
    raise ValueError(
        f"num_epochs must be 90 or 200 (the paper's ImageNet runs), got {num_epochs!r}; "
        "use warmup_step_decay_schedule for other boundaries."
    )
  return warmup_step_decay_schedule(
      base_lr, warmup_start_lr, warmup_epochs, boundaries[num_epochs], steps_per_epoch
  )


def speech_schedule(
    steps_per_epoch: int,
    num_epochs: int = 30,
    base_lr: float = 3e-3,
    every_epochs: int = 10,
) -> Schedule:
  """The paper's speech recipe (Adam): lr 3e-3 divided by 10 every 10 epochs."""
  if not isinstance(every_epochs, int) or every_epochs < 1:
    raise ValueError(f"every_epochs must be a positive int, got {every_epochs!r}.")
  boundaries = tuple(range(every_epochs, num_epochs, every_epochs))
  return step_decay_schedule(base_lr, boundaries, steps_per_epoch, 0.1)


# The schedules a config names (`config.schedule`), each built from the config's
# rate fields: the one list the config checks and the loop read.
SCHEDULES: dict[str, Callable[..., Schedule | float]] = {
    "constant": lambda *, base_lr, **_: base_lr,
    "cifar": lambda *, base_lr, steps_per_epoch, shift_epochs, **_: cifar_schedule(
        steps_per_epoch, base_lr=base_lr, shift_epochs=shift_epochs),
    "wrn": lambda *, base_lr, steps_per_epoch, shift_epochs, **_: wrn_schedule(
        steps_per_epoch, base_lr=base_lr, shift_epochs=shift_epochs),
    "imagenet": lambda *, base_lr, steps_per_epoch, num_epochs, **_: imagenet_schedule(
        steps_per_epoch, num_epochs=num_epochs, base_lr=base_lr),
    "speech": lambda *, base_lr, steps_per_epoch, num_epochs, **_: speech_schedule(
        steps_per_epoch, num_epochs=num_epochs, base_lr=base_lr),
    "step": lambda *, base_lr, steps_per_epoch, boundaries, factor, shift_epochs, **_: (
        step_decay_schedule(base_lr, boundaries, steps_per_epoch, factor,
                            shift_epochs=shift_epochs)),
    "cosine": lambda *, base_lr, steps_per_epoch, total_steps, warmup_epochs, **_: (
        cosine_schedule(base_lr, total_steps, warmup_steps=warmup_epochs * steps_per_epoch)),
}


def make_schedule(name: str, *, base_lr: float, steps_per_epoch: int, num_epochs: int,
                  total_steps: int, boundaries: Sequence[int] = (), factor: float = 0.1,
                  shift_epochs: int = 0, warmup_epochs: int = 0) -> Schedule | float:
  """The learning rate of the schedule called `name` (a key of SCHEDULES).

  Each schedule reads the arguments it needs: `boundaries` and `factor` ('step'),
  `shift_epochs` ('cifar', 'wrn', 'step'), `num_epochs` ('imagenet', 'speech'),
  `total_steps` and `warmup_epochs` ('cosine'). 'constant' is the number base_lr.
  """
  if name not in SCHEDULES:
    raise ValueError(f"unknown schedule {name!r}; valid names: {sorted(SCHEDULES)}.")
  return SCHEDULES[name](
      base_lr=base_lr, steps_per_epoch=steps_per_epoch, num_epochs=num_epochs,
      total_steps=total_steps, boundaries=tuple(boundaries), factor=factor,
      shift_epochs=shift_epochs, warmup_epochs=warmup_epochs)


def epochs_to_steps(epochs: int, steps_per_epoch: int) -> int:
  """Number of updates in `epochs` epochs, e.g. the ERM warm-up before mixing starts
  (`MixSpec(start_step=epochs_to_steps(5, steps_per_epoch))` for speech).
  """
  _check_steps_per_epoch(steps_per_epoch)
  if not isinstance(epochs, int) or epochs < 0:
    raise ValueError(f"epochs must be an int >= 0, got {epochs!r}.")
  return epochs * steps_per_epoch
