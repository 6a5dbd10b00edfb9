"""Many small trainings at once: the library's train step, vmapped over seeds.

  fit = make_fit(model, num_classes=3, alpha=0.2, num_epochs=10, batch_size=16)
  errors = fit(keys, x, y, {"test": (x_test, y_test)})   # {"test": [S] errors in %}

Table 4 trains 600 small networks and the quick demo ten; as separate runs of the
training loop (`mixup_jax.trainer`) each would spend most of its time starting up
and moving one tiny batch at a time between host and device. Here one jitted
function trains one network per seed: `jax.vmap` over seeds of a `lax.scan` over
epochs and steps of `mixup_jax.train.make_train_step`, the project's one train step.
Only the epoch shuffling lives here: every epoch is a fresh permutation drawn from
the seed's key (`fold_in(order_key, epoch)`), its last partial batch dropped, as the
loader does.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from mixup_jax import optim
from mixup_jax import train as train_lib
from mixup_jax.spec import MixSpec

Arrays = tuple[jax.Array, jax.Array]


def make_fit(
    model: Any,
    *,
    num_classes: int,
    alpha: float,
    num_epochs: int,
    batch_size: int,
    learning_rate: float = 1e-3,
    shuffle: bool = True,
) -> Callable[..., dict[str, jax.Array]]:
  """A jitted `fit(keys, x, y, evals) -> {name: errors [S]}`.

  Args:
    model: a Flax module on [B, D] float rows (no BatchNorm, no dropout needed).
    num_classes: C of the integer labels.
    alpha: mixup's alpha; 0 trains by ERM.
    num_epochs: passes over each seed's training rows.
    batch_size: rows per step.
    learning_rate: Adam's (betas 0.9 / 0.999: PyTorch's defaults).
    shuffle: a fresh order every epoch (True), or the rows in the order given,
      every epoch (False: what a loop that forgets to shuffle does; for studying
      protocols, never the default).

  The returned function takes keys [S] (seed s: `jax.random.PRNGKey(s)`, split into
  the initialisation and the data order; the train state folds the step number into
  its own half for mixing), x [S, N, D] float32 and y [S, N] int32 (each seed may
  have its own split), and evals {name: (x [S, M, D], y [S, M])}; it returns the
  top-1 error (%) of each seed's final network on each evaluation set.
  """
  tx = optim.adam(learning_rate)
  train_step = train_lib.make_train_step(num_classes=num_classes,
                                         spec=MixSpec(alpha=alpha))
  eval_step = train_lib.make_eval_step()

  def fit_one(key, x, y, evals: Mapping[str, Arrays]):
    init_key, order_key = jax.random.split(key)
    state = train_lib.create_train_state(init_key, model, tx, x[:1])
    n = x.shape[0]
    steps = n // batch_size
    if steps < 1:
      raise ValueError(f"{n} training rows cannot fill one batch of batch_size={batch_size}.")

    def epoch(state, e):
      order = (jax.random.permutation(jax.random.fold_in(order_key, e), n) if shuffle
               else jnp.arange(n))
      batches = order[: steps * batch_size].reshape(steps, batch_size)

      def step(state, rows):
        state, metrics = train_step(state, {"input": x[rows], "label": y[rows]})
        return state, metrics["loss"]

      return jax.lax.scan(step, state, batches)

    state, _ = jax.lax.scan(epoch, state, jnp.arange(num_epochs))
    errors = {}
    for name, (ex, ey) in evals.items():
      sums = eval_step(state, {"input": ex, "label": ey})
      errors[name] = 100.0 * (1.0 - sums["top1"] / sums["count"])
    return errors

  return jax.jit(jax.vmap(fit_one))
