"""XLA flags the command lines set for CPU runs, before JAX is imported.

XNNPACK convolutions made the CPU-scale CIFAR runs 1.5x faster on 2 cores with the
jaxlib they were measured on (PreAct ResNet width 16, batch 128: 255 against 382 ms
per train step, bitwise deterministic from run to run). On jaxlib 0.10.2 the flag is
a no-op: XLA:CPU already runs these convolutions through YNNPACK, and
benchmarks/bench_xla_flags.py measures the same time and the same bits with and
without it (docs/benchmarks.md). It stays for older jaxlibs. The flags only concern
XLA's CPU backend, so GPU and TPU runs are unaffected.
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


# XLA:CPU aborts the whole process when one simulated device reaches a collective long
# after the others ("Termination timeout ... of 40 seconds exceeded ... only 7 of them
# arrived"): measured on jaxlib 0.10.2 with one of 8 devices held back in a host
# callback, a 45 s lag passes and a 300 s one aborts, reporting the default of 40 s. On a loaded
# 2-core machine running 8 devices and other processes, a device thread can lag that
# long, so the tests and multi-device CPU runs wait instead (the warning after 120 s
# still says which collective is waiting).
PATIENT_COLLECTIVES = ("--xla_cpu_collective_call_terminate_timeout_seconds=900 "
                       "--xla_cpu_collective_call_warn_stuck_timeout_seconds=120")


def with_patient_collectives(xla_flags: str) -> str:
  """`xla_flags` plus PATIENT_COLLECTIVES, unless they already set the termination timeout."""
  if "collective_call_terminate_timeout" in xla_flags:
    return xla_flags
  return f"{xla_flags} {PATIENT_COLLECTIVES}".strip()
