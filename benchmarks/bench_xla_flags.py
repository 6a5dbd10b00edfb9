"""XLA:CPU settings for the train step, compared in alternating processes over rounds.

  python benchmarks/bench_xla_flags.py                          # width 16, 1 block, batch 128
  python benchmarks/bench_xla_flags.py --width 64 --blocks 2 --rounds 2 --steps 3
  python benchmarks/bench_xla_flags.py --settings default,xnnpack,onednn

XLA reads XLA_FLAGS once per process, so each setting runs in a child process of its
own; the children run one after the other, setting after setting, for --rounds
rounds, so that load changes on a shared machine hit every setting alike. Each child
builds the step of benchmarks/bench_vs_pytorch.py (PreAct ResNet, SGD, real CIFAR-10
batch) on float inputs and on uint8 inputs augmented in the step, and reports the
first call's time (compilation) and the median of --steps timed steps. The table
gives, per setting, the median over rounds with the range, and the ratio to the
first setting. A child also checks that two steps from the same state give the same
bits (the setting is deterministic) and reports the final loss, so settings that
change the numerics show it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

SETTINGS = {
    "default": "",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "onednn": "--xla_cpu_use_onednn=true",
    "onednn_custom_call": "--xla_cpu_experimental_onednn_custom_call=true",
    "onednn_conv": "--xla_cpu_use_onednn=true "
                   "--xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION",
    "xnn_graph": "--xla_cpu_use_xnnpack=true "
                 "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "vector512": "--xla_cpu_use_xnnpack=true --xla_cpu_prefer_vector_width=512",
    "fast_math": "--xla_cpu_use_xnnpack=true --xla_cpu_enable_fast_math=true",
}


def _parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--width", type=int, default=16)
  parser.add_argument("--blocks", type=int, default=1)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--settings", default=",".join(SETTINGS),
                      help=f"comma-separated names among {sorted(SETTINGS)}")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--json", default=None)
  return parser.parse_args(argv)


def child(args) -> dict:
  """Times the float-input and uint8 + augmentation steps in this process."""
  import jax
  from benchmarks.bench_vs_pytorch import _cifar_batch, jax_step_fn

  images, labels = _cifar_batch(args.batch)
  out = {}
  for tag, uint8 in (("float", False), ("uint8", True)):
    start = time.perf_counter()
    run_once, step, carry, batch = jax_step_fn(
        args.width, images, labels, 1.0, on_device_augment=uint8, blocks=args.blocks,
        return_parts=True, donate=False)
    first = time.perf_counter() - start
    state = carry[0]
    again = [jax.device_get(step(state, batch)[0].params) for _ in range(2)]
    same = all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(again[0]), jax.tree.leaves(again[1])))
    times = [run_once() for _ in range(args.steps)]
    out[tag] = {"first_call_s": first, "step_s": float(np.median(times)),
                "deterministic": bool(same), "loss": float(carry[1]["loss"])}
  return out


def main(argv=None) -> int:
  args = _parse_args(argv)
  if args.child:
    print("RESULT " + json.dumps(child(args)))
    return 0
  names = args.settings.split(",")
  unknown = [name for name in names if name not in SETTINGS]
  if unknown:
    raise SystemExit(f"--settings: unknown {unknown}; choose from {sorted(SETTINGS)}")
  runs = {name: [] for name in names}
  child_argv = [sys.executable, __file__, "--child", f"--width={args.width}",
                f"--blocks={args.blocks}", f"--batch={args.batch}", f"--steps={args.steps}"]
  for round_index in range(args.rounds):
    for name in names:
      env = {**os.environ, "XLA_FLAGS": SETTINGS[name]}
      done = subprocess.run(child_argv, env=env, capture_output=True, text=True)
      lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
      if done.returncode or not lines:
        print(f"round {round_index} {name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        continue
      runs[name].append(json.loads(lines[0][len("RESULT "):]))
      print(f"round {round_index} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
  base = {tag: np.median([r[tag]["step_s"] for r in runs[names[0]]]) for tag in ("float", "uint8")}
  print(f"PreAct ResNet width {args.width}, {args.blocks} blocks per stage, batch {args.batch}, "
        f"mixup, median over {args.rounds} rounds of the median of {args.steps} steps (range)")
  print("| setting | XLA_FLAGS | float inputs ms | / first | uint8 + augment ms | / first "
        "| first call s (uint8) | deterministic |")
  print("|---|---|---|---|---|---|---|---|")
  for name in names:
    if not runs[name]:
      print(f"| {name} | `{SETTINGS[name]}` | failed | | | | | |")
      continue
    cells = []
    for tag in ("float", "uint8"):
      values = [r[tag]["step_s"] * 1e3 for r in runs[name]]
      cells.append(f"{np.median(values):.0f} ({min(values):.0f}-{max(values):.0f}) | "
                   f"{np.median(values) / 1e3 / base[tag]:.2f}")
    first = np.median([r["uint8"]["first_call_s"] for r in runs[name]])
    same = all(r[tag]["deterministic"] for r in runs[name] for tag in ("float", "uint8"))
    print(f"| {name} | `{SETTINGS[name] or '(none)'}` | {cells[0]} | {cells[1]} | {first:.1f} | "
          f"{'yes' if same else 'NO'} |")
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(runs, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
