"""XLA flags the command lines set for CPU runs, before JAX is imported.

XNNPACK convolutions make the CPU-scale CIFAR runs 1.5x faster on 2 cores (PreAct
ResNet width 16, batch 128: 255 against 382 ms per train step, bitwise
deterministic from run to run; benchmarks/bench_vs_pytorch.py --xnnpack measures
it). The flag only concerns XLA's CPU backend, so GPU and TPU runs are unaffected.
"""

import os

XNNPACK = "--xla_cpu_use_xnnpack=true"


def use_xnnpack() -> None:
  """Adds XNNPACK to $XLA_FLAGS unless they already say something about it.

  Must run before `import jax` (XLA reads its flags once). Opt out with
  XLA_FLAGS=--xla_cpu_use_xnnpack=false.
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if "xnnpack" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} {XNNPACK}".strip()
