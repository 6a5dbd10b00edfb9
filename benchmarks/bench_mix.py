"""Time of the jitted `mix` and `cutmix` beside the memory-bandwidth floor and NumPy.

Mixing reads the batch twice (itself and its permuted copy) and writes it once, so
its floor is a fused `x + y` over the same bytes; a plain device copy (`x + 1`: one
read, one write) is shown too. CutMix (one box per batch, and one per example) and
the per-batch mixup / CutMix switch read and write the same bytes. All rows are
timed in the same run, side by side.

  python benchmarks/bench_mix.py            # both shapes of the issue
  python benchmarks/bench_mix.py --quick    # the small shape only
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import mixup_jax as mj

SHAPES = {"cifar [128,32,32,3]": (128, 32, 32, 3), "imagenet [256,224,224,3]": (256, 224, 224, 3)}


def _median_seconds(fn, *args, repeats: int) -> float:
  """Median wall time of fn(*args) after one warm-up call (compilation)."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def _numpy_mix(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, alpha: float):
  """The usual host-side mixup: one Beta draw and a permutation, in NumPy."""
  lam = rng.beta(alpha, alpha)
  perm = rng.permutation(x.shape[0])
  onehot = np.eye(10, dtype=np.float32)[y]
  return lam * x + (1 - lam) * x[perm], lam * onehot + (1 - lam) * onehot[perm]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="only the CIFAR-sized batch")
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()

  mix = jax.jit(lambda k, x, y: mj.mix(k, x, y, 1.0, num_classes=10))
  mix_per_example = jax.jit(
      lambda k, x, y: mj.mix(k, x, y, 1.0, num_classes=10, granularity="example"))
  cut = jax.jit(lambda k, x, y: mj.cutmix(k, x, y, 1.0, num_classes=10))
  cut_per_example = jax.jit(
      lambda k, x, y: mj.cutmix(k, x, y, 1.0, num_classes=10, granularity="example"))
  switch = jax.jit(lambda k, x, y: mj.mix_or_cutmix(
      k, x, y, mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=10))
  copy = jax.jit(lambda x: x + 1.0)
  add = jax.jit(lambda x, y: x + y)
  key = jax.random.key(0)
  host_rng = np.random.default_rng(0)

  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}")
  header = ("batch", "MB", "mix ms", "mix/example ms", "cutmix ms", "cutmix/example ms",
            "switch ms", "copy ms", "x+y ms", "numpy ms", "mix / x+y", "cutmix / x+y",
            "numpy / mix")
  print("| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  for name, shape in SHAPES.items():
    if args.quick and shape[0] != 128:
      continue
    x = jax.random.uniform(key, shape, jnp.float32)
    x2 = x[::-1]
    y = jnp.arange(shape[0]) % 10
    x_np, y_np = np.asarray(x), np.asarray(y)
    repeats = args.repeats if shape[1] <= 32 else max(3, args.repeats // 4)
    t_mix = _median_seconds(mix, key, x, y, repeats=repeats)
    t_mix_ex = _median_seconds(mix_per_example, key, x, y, repeats=repeats)
    t_cut = _median_seconds(cut, key, x, y, repeats=repeats)
    t_cut_ex = _median_seconds(cut_per_example, key, x, y, repeats=repeats)
    t_switch = _median_seconds(switch, key, x, y, repeats=repeats)
    t_copy = _median_seconds(copy, x, repeats=repeats)
    t_add = _median_seconds(add, x, x2, repeats=repeats)
    t_np = _median_seconds(lambda: _numpy_mix(host_rng, x_np, y_np, 1.0), repeats=repeats)
    row = (name, f"{x.nbytes / 2**20:.1f}", f"{t_mix * 1e3:.2f}", f"{t_mix_ex * 1e3:.2f}",
           f"{t_cut * 1e3:.2f}", f"{t_cut_ex * 1e3:.2f}", f"{t_switch * 1e3:.2f}",
           f"{t_copy * 1e3:.2f}", f"{t_add * 1e3:.2f}", f"{t_np * 1e3:.2f}",
           f"{t_mix / t_add:.2f}", f"{t_cut / t_add:.2f}", f"{t_np / t_mix:.2f}")
    print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
  main()
