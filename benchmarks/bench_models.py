"""Train-step time of the CPU-scale networks at batch 128, side by side.

  python benchmarks/bench_models.py           # the table (about two minutes on 2 CPU cores)
  python benchmarks/bench_models.py --paper   # adds the paper's PreAct ResNet-18 (width 64)

One step = mixup (alpha = 1) + forward + backward + SGD-momentum update, jitted, on
one device, CIFAR-shaped inputs ([128, 32, 32, 3]; MNIST [128, 28, 28, 1]).
Each row: median milliseconds per step over `--steps` timed steps after compilation
(wall clock, and CPU time of this process summed over its threads, which is less
disturbed by other work on a shared machine), examples/second, seconds per epoch of a 5,000-image subset, and the ratio of its
step time to the reference row (PreAct ResNet-18 at width 16). The "latent" row
mixes at a stage drawn per step inside the jitted step instead of at the input.
"""

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mixup_jax.mixing import apply_mixing, mix_targets, sample_mixing
from mixup_jax.models import MIX_STAGES, get_model

BATCH = 128
SUBSET = 5000


def _step_fn(model, tx, latent: bool):
  """A jitted mixup train step for `model` with optimiser `tx`."""

  @jax.jit
  def step(params, state, opt_state, x, y, key):
    mix_key, stage_key = jax.random.split(key)
    mixing = sample_mixing(mix_key, 1.0, x.shape[0])
    targets = mix_targets(mixing, y, num_classes=10)
    if latent:
      kwargs = dict(mixing=mixing, mix_stage=jax.random.randint(stage_key, (), 0, len(MIX_STAGES)))
    else:
      x, kwargs = apply_mixing(mixing, x), {}

    def loss_fn(params):
      logits, updates = model.apply(
          {"params": params, **state}, x, train=True, mutable=list(state), **kwargs
      )
      return optax.softmax_cross_entropy(logits, targets).mean(), updates

    (_, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    changes, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, changes), {**state, **updates}, opt_state

  return step


def _time_per_step(name: str, options: dict, latent: bool, steps: int) -> tuple[float, float]:
  """Median wall and CPU seconds of one train step of get_model(name, 10, **options)."""
  model = get_model(name, 10, **options)
  shape = (BATCH, 28, 28, 1) if name == "mnist_cnn" else (BATCH, 32, 32, 3)
  x = jax.random.normal(jax.random.key(1), shape)
  y = jnp.arange(BATCH) % 10
  init = jax.jit(functools.partial(model.init, train=False))
  variables = init(jax.random.key(0, impl="unsafe_rbg"), x[:1])
  params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
  tx = optax.sgd(0.1, momentum=0.9)
  opt_state = tx.init(params)
  step = _step_fn(model, tx, latent)
  carry = jax.block_until_ready(step(params, state, opt_state, x, y, jax.random.key(0)))
  wall, cpu = [], []
  for i in range(steps):
    start, start_cpu = time.perf_counter(), time.process_time()
    carry = jax.block_until_ready(step(*carry, x, y, jax.random.key(i + 1)))
    wall.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
  return float(np.median(wall)), float(np.median(cpu))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
  parser.add_argument("--paper", action="store_true", help="add the width-64 network")
  args = parser.parse_args()
  rows = [
      ("preact_resnet18 width 16", "preact_resnet18", dict(width=16), False),
      ("preact_resnet18 width 16, latent", "preact_resnet18", dict(width=16), True),
      ("preact_resnet18 width 8", "preact_resnet18", dict(width=8), False),
      ("preact_resnet18 width 8, 1 block", "preact_resnet18", dict(width=8, blocks=1), False),
      ("preact_resnet18 width 32", "preact_resnet18", dict(width=32), False),
      ("cifar_small_cnn width 32", "cifar_small_cnn", dict(width=32), False),
      ("mnist_cnn width 32", "mnist_cnn", dict(width=32), False),
  ]
  if args.paper:
    rows.append(("preact_resnet18 width 64 (paper)", "preact_resnet18", dict(width=64), False))
  print(f"jax {jax.__version__}, {jax.devices()[0].platform}, batch {BATCH}, "
        f"median of {args.steps} steps")
  print(f"| network | ms / step | CPU ms / step | examples / s | s / {SUBSET}-image epoch "
        "| time vs first row |")
  print("|---|---|---|---|---|---|")
  reference = None
  for label, name, options, latent in rows:
    seconds, cpu_seconds = _time_per_step(name, options, latent, args.steps)
    reference = reference or seconds
    print(f"| {label} | {1000 * seconds:.0f} | {1000 * cpu_seconds:.0f} | "
          f"{BATCH / seconds:.0f} | {seconds * SUBSET / BATCH:.1f} | "
          f"{seconds / reference:.2f} |", flush=True)


if __name__ == "__main__":
  main()
