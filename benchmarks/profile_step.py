"""Where the train step's time goes: our jitted step and the authors' PyTorch step, by op.

  python benchmarks/profile_step.py                         # width 64, batch 128, float inputs
  python benchmarks/profile_step.py --uint8                 # uint8 + augmentation in the step
  python benchmarks/profile_step.py --width 16 --blocks 1   # the CPU-scale network
  XLA_FLAGS=--xla_cpu_use_xnnpack=false python benchmarks/profile_step.py

Ours: a JAX profiler trace of --steps steps of `make_train_step` (the same step as
benchmarks/bench_vs_pytorch.py), whose per-thunk events are named after the
instructions of the compiled HLO; each instruction is put in a category (convolution
forward / backward-data / backward-filter, BatchNorm, optimizer, augmentation and
normalisation, copies and transposes, other elementwise) from its opcode and the
`op_name` metadata JAX records for it. PyTorch: `torch.profiler` over the same
number of steps of the authors' loop body, self CPU time of each aten op, in the
same categories. Each table gives milliseconds per step and the share of the step;
the header gives the step's FLOPs (XLA's cost analysis of the compiled step, used
for both frameworks: it is one network) and achieved GFLOP/s.

The thunk events of XLA:CPU cover the work of the calling thread and of its worker
pool; where two thunks run concurrently the per-category sums can exceed the wall
time, so the "share" column divides by the sum, and the wall time is printed apart.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import pathlib
import re
import sys
import tempfile
import time


sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

def _parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--blocks", type=int, default=2)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--alpha", type=float, default=0.0)
  parser.add_argument("--uint8", action="store_true",
                      help="ship uint8 images, augment and normalise in the step")
  parser.add_argument("--no_torch", action="store_true")
  parser.add_argument("--top", type=int, default=0, help="also print the N costliest thunks")
  parser.add_argument("--json", default=None)
  return parser.parse_args(argv)


def _instruction_info(hlo_text: str) -> dict[str, tuple[str, str]]:
  """{instruction name: (opcode or custom-call target, op_name metadata)} of an HLO module."""
  info = {}
  pattern = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = \S+ (\w[\w\-]*)\(")
  for line in hlo_text.splitlines():
    match = pattern.match(line)
    if not match:
      continue
    name, opcode = match.groups()
    target = re.search(r'custom_call_target="([^"]+)"', line)
    kind = re.search(r"kind=(k\w+)", line)
    calls = re.search(r"calls=%?([\w.\-]+)", line)
    op_name = re.search(r'op_name="([^"]+)"', line)
    label = target.group(1) if target else opcode
    if kind:
      label += f"[{kind.group(1)}]"
    info[name] = (label, op_name.group(1) if op_name else "", calls.group(1) if calls else "")
  return info


def _fused_ops(hlo_text: str) -> dict[str, set[str]]:
  """{computation name: opcodes inside it}; a convolution also adds "conv-window=HxW"."""
  ops, current = collections.defaultdict(set), None
  for line in hlo_text.splitlines():
    header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) \(", line)
    if header:
      current = header.group(1)
      continue
    op = re.match(r"^\s*(?:ROOT )?%?[\w.\-]+ = \S+ (\w[\w\-]*)\(", line)
    if op and current:
      ops[current].add(op.group(1))
      window = re.search(r"window=\{size=(\d+x\d+)", line)
      if op.group(1) == "convolution" and window:
        ops[current].add(f"conv-window={window.group(1)}")
  return ops


def classify_xla(name: str, label: str, op_name: str, inner: set[str]) -> str:
  """The category of one compiled instruction, from its opcodes and JAX's op_name.

  The filter gradient of a 3x3 convolution is itself a convolution whose window is
  the whole feature map (batch and space contracted, channels as the batch): XLA
  drops its op_name, so the window tells it apart.
  """
  path = op_name.lower()
  windows = [op for op in inner | {label} if op.startswith("conv-window=")]
  if "convolution" in inner or label == "convolution":
    big_window = any(int(w.split("=")[1].split("x")[0]) > 3 for w in windows)
    if big_window:
      return "conv backward (filter)"
    if "transpose(" in path:
      return "conv backward (data)"
    return "conv forward"
  if any(word in path for word in ("cifar_train", "random_crop", "normalize", "augment")):
    return "augmentation + normalisation"
  if "transpose" in name or "transpose" in inner or label in ("copy", "transpose"):
    return "copies and transposes"
  if "batchnorm" in path or "/bn" in path or "_bn" in path or "rsqrt" in name:
    return "BatchNorm"
  if any(word in path for word in ("optax", "sgd", "apply_updates", "momentum")):
    return "optimizer"
  if "dot" in label or "dot" in inner:
    return "dense layer"
  if any(word in path for word in ("loss", "cross_entropy", "mix", "metric", "softmax")):
    return "loss, mixing, metrics"
  return "ReLU, add, other elementwise"


def profile_jax(args) -> dict:
  import jax
  from benchmarks.bench_vs_pytorch import _cifar_batch, jax_step_fn

  images, labels = _cifar_batch(args.batch)
  run_once, step, carry, batch = jax_step_fn(
      args.width, images, labels, args.alpha, on_device_augment=args.uint8,
      blocks=args.blocks, return_parts=True)
  jax.clear_caches()  # so that the compile below is timed, not looked up
  start = time.perf_counter()
  compiled = step.lower(carry[0], batch).compile()
  compile_s = time.perf_counter() - start
  hlo = compiled.as_text()
  flops = float(compiled.cost_analysis().get("flops", float("nan")))
  info, fused = _instruction_info(hlo), _fused_ops(hlo)
  for _ in range(2):
    run_once()
  trace_dir = tempfile.mkdtemp(prefix="step_trace_")
  start = time.perf_counter()
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    for _ in range(args.steps):
      run_once()
  wall = (time.perf_counter() - start) / args.steps
  (trace_file,) = glob.glob(f"{trace_dir}/plugins/profile/*/perfetto_trace.json.gz")
  events = json.load(gzip.open(trace_file))
  events = events["traceEvents"] if isinstance(events, dict) else events
  per_category = collections.Counter()
  per_thunk = collections.Counter()
  unknown = collections.Counter()
  for event in events:
    if event.get("ph") != "X":
      continue
    name = event["name"]
    # Thunk events carry the HLO instruction's name; XNNPACK/YNNPACK fusions keep it too.
    if name not in info:
      if not name.startswith(("$", "Thunk", "Pjit", "Common", "Slinky", "Alloc", "Handle",
                              "Python", "Parse", "end:", "Wait", "Threadpool")):
        unknown[name] += event.get("dur", 0.0)
      continue
    label, op_name, calls = info[name]
    category = classify_xla(name, label, op_name, fused.get(calls, set()))
    per_category[category] += event["dur"] / 1e3 / args.steps
    per_thunk[(name, label, op_name[-90:], category)] += event["dur"] / 1e3 / args.steps
  return {"framework": "jax", "wall_ms": wall * 1e3, "flops": flops, "compile_s": compile_s,
          "categories": dict(per_category), "top": per_thunk.most_common(args.top),
          "unmatched_ms": sum(unknown.values()) / 1e3 / args.steps}


def classify_torch(name: str) -> str:
  if name == "aten::convolution_backward" or "convolution_backward" in name:
    return "conv backward (data + filter)"
  if "conv" in name or name in ("aten::_convolution", "aten::mkldnn_convolution"):
    return "conv forward"
  if "batch_norm" in name:
    return "BatchNorm"
  if any(word in name for word in ("sgd", "_foreach", "Optimizer", "zero_")):
    return "optimizer"
  if any(word in name for word in ("addmm", "mm", "linear", "t")) and name.count("::") == 1 and name.split("::")[1] in (
      "addmm", "mm", "linear", "t", "matmul"):
    return "dense layer"
  if any(word in name for word in ("copy", "clone", "contiguous", "transpose", "permute", "to")) and "threshold" not in name:
    return "copies and transposes"
  if any(word in name for word in ("softmax", "nll", "cross_entropy", "index", "randperm", "mul", "loss")):
    return "loss, mixing, metrics"
  return "ReLU, add, other elementwise"


def profile_torch(args, flops: float) -> dict:
  import torch
  from benchmarks.bench_vs_pytorch import _cifar_batch, torch_step_fn

  torch.set_num_threads(os.cpu_count())
  images, labels = _cifar_batch(args.batch)
  run_once = torch_step_fn(args.width, images, labels, args.alpha, False, blocks=args.blocks)
  for _ in range(2):
    run_once()
  start = time.perf_counter()
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    for _ in range(args.steps):
      run_once()
  wall = (time.perf_counter() - start) / args.steps
  per_category = collections.Counter()
  for row in prof.key_averages():
    if row.key.startswith("ProfilerStep") or row.self_cpu_time_total <= 0:
      continue
    per_category[classify_torch(row.key)] += row.self_cpu_time_total / 1e3 / args.steps
  return {"framework": "torch", "wall_ms": wall * 1e3, "flops": flops,
          "categories": dict(per_category)}


def table(result: dict) -> str:
  total = sum(result["categories"].values())
  gflops = result["flops"] / (result["wall_ms"] / 1e3) / 1e9
  lines = [f"{result['framework']}: {result['wall_ms']:.0f} ms per step (wall, profiled), "
           f"{result['flops'] / 1e9:.0f} GFLOP per step, {gflops:.0f} GFLOP/s achieved",
           "", "| category | ms / step | share |", "|---|---|---|"]
  for name, ms in sorted(result["categories"].items(), key=lambda item: -item[1]):
    lines.append(f"| {name} | {ms:.0f} | {ms / total:.0%} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  args = _parse_args(argv)
  if "xnnpack" not in os.environ.get("XLA_FLAGS", ""):
    from experiments import cpu_flags
    cpu_flags.use_xnnpack()
  import jax

  print(f"PreAct ResNet width {args.width}, {args.blocks} blocks per stage, batch {args.batch}, "
        f"{'uint8 + augmentation in the step' if args.uint8 else 'float inputs'}, alpha "
        f"{args.alpha}, jax {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  ours = profile_jax(args)
  print(table(ours))
  print(f"(compiling the step: {ours['compile_s']:.1f} s)")
  print(f"(thunk events not matched to an instruction: {ours['unmatched_ms']:.0f} ms / step)")
  for (name, label, op_name, category), ms in ours["top"]:
    print(f"  {ms:8.1f} ms  {name:28s} {label:28s} {category:28s} {op_name}")
  results = [ours]
  if not args.no_torch:
    import torch
    theirs = profile_torch(args, ours["flops"])
    print(f"\nPyTorch {torch.__version__}, {torch.get_num_threads()} threads")
    print(table(theirs))
    results.append(theirs)
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(results, indent=1, default=str))
  return 0


if __name__ == "__main__":
  sys.exit(main())
