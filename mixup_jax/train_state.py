"""The train state: everything a training run carries from one step to the next.

A run is a pure function of its seed: the state holds the rng it was created with,
and every step derives its keys from `fold_in(state.rng, state.step)`, so restoring
(step, params, batch_stats, opt_state, rng) from a checkpoint resumes the exact run.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

PyTree = Any


class TrainState(flax.struct.PyTreeNode):
  """Step, parameters, BatchNorm statistics, optimizer state and rng of a run.

  Attributes:
    step: int32 scalar, the number of updates taken.
    params: the model's 'params' collection.
    batch_stats: the model's 'batch_stats' collection ({} without BatchNorm).
    opt_state: the optax state of `tx`.
    rng: the run's key (a raw uint32 [2] key from `jax.random.PRNGKey` is easiest to
      checkpoint); never advanced: steps fold their number into it.
    apply_fn: the model's `apply` (static).
    tx: the optax transformation (static).
  """

  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: optax.OptState
  rng: jax.Array
  apply_fn: Callable[..., Any] = flax.struct.field(pytree_node=False)
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @property
  def variables(self) -> dict[str, PyTree]:
    """The variables to pass to `apply_fn`: params, and batch_stats if any."""
    if self.batch_stats:
      return {"params": self.params, "batch_stats": self.batch_stats}
    return {"params": self.params}

  def apply_gradients(self, grads: PyTree, batch_stats: PyTree) -> "TrainState":
    """One optimizer update with `grads`; stores the new BatchNorm statistics."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(
        step=self.step + 1,
        params=optax.apply_updates(self.params, updates),
        batch_stats=batch_stats,
        opt_state=opt_state,
    )


def create_train_state(
    rng: jax.Array,
    model: Any,
    tx: optax.GradientTransformation,
    example_input: PyTree,
) -> TrainState:
  """Initialises a model's variables and the optimizer: step 0 of a run.

  Args:
    rng: the run's key. It is split once: one half initialises the parameters, the
      other becomes `state.rng`, from which every step's keys are folded.
    model: a Flax linen module whose `__call__` takes `train: bool`.
    tx: an optax transformation (see mixup_jax.optim).
    example_input: an input batch of the right shape and dtype ([B, ...], B >= 1;
      the values are not used beyond shape inference).

  Returns:
    A TrainState with step 0.
  """
  if not hasattr(model, "init") or not hasattr(model, "apply"):
    raise ValueError(f"model must be a Flax linen module, got {type(model).__name__}.")
  params_key, state_key = jax.random.split(rng)
  variables = model.init({"params": params_key}, example_input, train=False)
  unknown = set(variables) - {"params", "batch_stats"}
  if unknown:
    raise ValueError(
        f"model has variable collections {sorted(unknown)} besides params and "
        "batch_stats; the train state would not carry them."
    )
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats=batch_stats,
      opt_state=tx.init(params),
      rng=state_key,
      apply_fn=model.apply,
      tx=tx,
  )
