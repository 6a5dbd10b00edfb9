"""Time of the jitted train step with and without mixup, and of its parallel modes.

  python benchmarks/bench_step.py                    # small CNN, a couple of minutes on 2 cores
  python benchmarks/bench_step.py --model=preact_resnet18 --width=16 --batch=128

Table 1 (one device): the same model, batch and optimizer with ERM (alpha = 0),
input mixup (alpha = 1, one lambda per batch, the paper), mixup with one lambda per
example, and, for models that take `mix_stage`, mixing at a stage drawn per step
from 0..5. The last column is the time over ERM's: mixup's overhead, which the
paper calls negligible. Images ship as uint8 and the on-device CIFAR augmentation
runs inside every step, as in training.

Table 2 (data parallel, --devices devices): mixup alpha = 1 on the same global batch
under `jax.pmap`, `jax.jit` with NamedSharding ("sharded") and `jax.shard_map`, beside
one device; the ratio is over pmap. On a CPU host the devices are threads of one
machine: the table compares the modes' overheads, not a speed-up.

Times are medians over --repeats steps after compilation (compilation excluded), the
rows of a table timed round-robin so that load changes on a shared machine hit them
alike.
"""

import argparse
import os
import time


def _parse_args():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="cifar_small_cnn", help="a mixup_jax.models name")
  parser.add_argument("--width", type=int, default=16, help="the model's width option")
  parser.add_argument("--batch", type=int, default=128, help="global batch size")
  parser.add_argument("--repeats", type=int, default=20, help="timed steps per row")
  parser.add_argument("--devices", type=int, default=8, help="CPU devices for table 2")
  return parser.parse_args()


ARGS = _parse_args()
# CPU devices must be requested before JAX starts.
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={ARGS.devices}")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mixup_jax import optim  # noqa: E402
from mixup_jax.data import augment  # noqa: E402
from mixup_jax.data.registry import resolve_data_dir  # noqa: E402
from mixup_jax.models import LATENT_MIXING_MODELS, get_model  # noqa: E402
from mixup_jax.parallel import DataParallel  # noqa: E402
from mixup_jax.train import create_train_state, make_train_step  # noqa: E402

NUM_CLASSES = 10


def _cifar_batch(size: int) -> dict:
  """The first `size` CIFAR-10 training images (uint8) and labels, from the data dir."""
  path = resolve_data_dir(None, "cifar10") / "data_batch_1.npz"
  with np.load(path) as arrays:
    if size > len(arrays["label"]):
      raise ValueError(f"--batch must be at most {len(arrays['label'])}, got {size}.")
    return {"image": arrays["image"][:size], "label": arrays["label"][:size].astype(np.int32)}


def _timed_step(dp: DataParallel, step_options: dict, host_batch: dict):
  """A compiled train step in `dp`'s mode, as a function that runs one step and
  returns its wall time (the state is threaded through between calls)."""
  model = get_model(ARGS.model, NUM_CLASSES, width=ARGS.width, axis_name=dp.axis_name)
  tx = optim.sgd(0.1, momentum=0.9, weight_decay=1e-4)
  example = np.zeros((1, 32, 32, 3), np.float32)
  state = dp.put_state(create_train_state(jax.random.PRNGKey(0), model, tx, example))
  train_step = make_train_step(
      num_classes=NUM_CLASSES, augment_fn=augment.cifar_train, **step_options
  )
  step = dp.compile_train_step(train_step)
  batch = dp.put_batch(host_batch)
  carry = list(step(state, batch))  # compiles
  jax.block_until_ready(carry)

  def run_once() -> float:
    start = time.perf_counter()
    carry[:] = step(carry[0], batch)
    jax.block_until_ready(carry)
    return time.perf_counter() - start

  return run_once


def _median_seconds(named_steps) -> list:
  """[(name, median seconds)], timing the steps round-robin so that a change in the
  machine's load affects every row alike."""
  times = {name: [] for name, _ in named_steps}
  for _ in range(ARGS.repeats):
    for name, run_once in named_steps:
      times[name].append(run_once())
  return [(name, float(np.median(times[name]))) for name, _ in named_steps]


def _print_table(title: str, rows, baseline: int) -> None:
  """A markdown table of (name, seconds) rows, with times relative to rows[baseline]."""
  base_name, base = rows[baseline]
  print(f"\n{title}")
  print(f"| step | ms / step | examples / s | time / {base_name} |")
  print("|---|---|---|---|")
  for name, seconds in rows:
    print(f"| {name} | {1e3 * seconds:.1f} | {ARGS.batch / seconds:,.0f} | {seconds / base:.2f} |")


def main() -> None:
  host_batch = _cifar_batch(ARGS.batch)
  print(
      f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
      f"model {ARGS.model} width {ARGS.width}, batch {ARGS.batch}, repeats {ARGS.repeats}"
  )

  one = DataParallel.create("jit")
  variants = [
      ("ERM", {}),
      ("mixup alpha=1 (batch lambda)", {"alpha": 1.0}),
      ("mixup alpha=1 (example lambda)", {"alpha": 1.0, "granularity": "example"}),
  ]
  if ARGS.model in LATENT_MIXING_MODELS:
    variants.append(("mixup alpha=1, stage drawn in 0..5", {"alpha": 1.0, "mix_stage": range(6)}))
  steps = [(name, _timed_step(one, options, host_batch)) for name, options in variants]
  _print_table("Table 1: one device, with and without mixing", _median_seconds(steps), baseline=0)

  steps = []
  for mode in ("jit", "pmap", "sharded", "shard_map"):
    dp = DataParallel.create(mode)
    options = dict(dp.step_options, alpha=1.0)
    name = f"{mode}, {dp.num_devices} device{'s' if dp.num_devices > 1 else ''}"
    steps.append((name, _timed_step(dp, options, host_batch)))
  rows = _median_seconds(steps)
  _print_table(f"Table 2: mixup alpha=1, global batch {ARGS.batch}", rows, baseline=1)


if __name__ == "__main__":
  main()
