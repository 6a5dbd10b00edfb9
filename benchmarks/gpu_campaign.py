"""One command that measures and reproduces what a lent GPU can show in minutes.

  bash benchmarks/gpu_campaign.sh                  # on the GPU machine: install, then this
  python benchmarks/gpu_campaign.py --budget_s 480 # the measuring part alone
  python benchmarks/gpu_campaign.py --dry-run --out /tmp/campaign   # CPU, seconds a part

Parts, each with its own share of --budget_s (wall time), in this order:

  throughput  img/s of one PreAct ResNet-18 train step (the authors' network), batch
              128 and 512: ours in float32 and bfloat16 (ERM, mixup alpha 1) beside
              the authors' PyTorch step, eager and torch.compile + bf16 autocast.
  mix         `mix` on a CIFAR batch against a device copy of the same array (the
              floor any mixing pays) and mixup's overhead over ERM from `throughput`.
  recipe      the paper's CIFAR-10 recipe (PreAct ResNet-18, batch 128, SGD 0.1,
              wd 1e-4, mixup alpha 1 and ERM) for as many epochs as its share
              allows, each evaluated on the full test set; the projected wall time
              of the paper's 200 epochs from the part's wall time per epoch
              (compilation and evaluation included, so an upper bound).

Writes <out>/results.json (every figure, the device name, versions) and
<out>/table.md; <out> defaults to benchmarks/results/<gpu name>/. A part that runs
out of time or fails is recorded as such and the next one starts: a lent GPU must
not be spent debugging. `--dry-run` runs every part at tiny sizes on any device, so
the test suite keeps the script working (tests/test_gpu_campaign.py).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import sys
import time
import traceback
from typing import Any

import numpy as np

_REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO))

# Shares of the budget: throughput, mix, recipe (the rest).
_SHARES = {"throughput": 0.35, "mix": 0.05, "recipe": 0.60}


def _parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--budget_s", type=float, default=480.0, help="wall time for all parts")
  parser.add_argument("--out", default=None, help="results folder")
  parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                      help="tiny sizes on any device: checks the script, measures nothing")
  parser.add_argument("--parts", default="throughput,mix,recipe")
  return parser.parse_args(argv)


def _sizes(dry_run: bool) -> dict[str, Any]:
  if dry_run:
    # One dtype per method keeps both dtypes and both methods covered at half the compiles.
    return {"width": 4, "blocks": 1, "batches": (8,), "repeats": 2, "torch_compile": False,
            "recipe_epochs": 2, "dtypes": {"ERM": ("float32",), "mixup": ("bfloat16",)},
            "mix_batch": 16, "train_size": 64, "test_size": 32, "recipe_batch": 16}
  return {"width": 64, "blocks": 2, "batches": (128, 512), "repeats": 20,
          "torch_compile": True, "recipe_epochs": 200,
          "dtypes": {"ERM": ("float32", "bfloat16"), "mixup": ("float32", "bfloat16")},
          "mix_batch": 512, "train_size": None, "test_size": None, "recipe_batch": 128}


def _cifar_batch(size: int):
  from mixup_jax.data.registry import resolve_data_dir

  with np.load(resolve_data_dir(None, "cifar10") / "data_batch_1.npz") as arrays:
    return arrays["image"][:size], arrays["label"][:size].astype(np.int32)


# ------------------------------------------------------------------------------
# Parts.
# ------------------------------------------------------------------------------


def part_throughput(sizes, deadline: float) -> dict[str, Any]:
  """img/s of every step variant, timed round-robin within each batch size."""
  import jax
  from benchmarks import bench_vs_pytorch as bench

  on_gpu = jax.devices()[0].platform == "gpu"
  try:
    import torch
    torch_device = "cuda" if on_gpu and torch.cuda.is_available() else "cpu"
  except ImportError:
    torch = None
  rows = {}
  for batch in sizes["batches"]:
    if time.monotonic() > deadline:
      rows[f"batch {batch}"] = "skipped: out of time"
      continue
    images, labels = _cifar_batch(batch)
    steps = []
    for alpha, tag in ((0.0, "ERM"), (1.0, "mixup")):
      for dtype in sizes["dtypes"][tag]:
        steps.append((f"ours {dtype}, {tag}", bench.jax_step_fn(
            sizes["width"], images, labels, alpha, on_device_augment=True, dtype=dtype,
            blocks=sizes["blocks"])))
      if torch is not None:
        steps.append((f"PyTorch eager fp32, {tag}", bench.torch_step_fn(
            sizes["width"], images, labels, alpha, False, device=torch_device,
            blocks=sizes["blocks"])))
        if sizes["torch_compile"]:
          try:
            steps.append((f"PyTorch compile + bf16 AMP, {tag}", bench.torch_step_fn(
                sizes["width"], images, labels, alpha, True, device=torch_device, amp=True,
                blocks=sizes["blocks"])))
          except Exception as e:  # pylint: disable=broad-except: recorded, not fatal
            rows[f"batch {batch}: torch.compile"] = f"failed: {type(e).__name__}: {e}"
    results = bench.measure(steps, sizes["repeats"], warmup=2)
    rows[f"batch {batch}"] = {name: batch / seconds for name, seconds in results}
  return {"img_per_s": rows, "torch_device": torch_device if torch is not None else None}


def part_mix(sizes, deadline: float) -> dict[str, Any]:
  """Median ms of `mix` on a CIFAR batch against a device copy of it."""
  del deadline
  import jax
  import jax.numpy as jnp
  import mixup_jax as mj

  images, labels = _cifar_batch(sizes["mix_batch"])
  x = jax.device_put(images.astype(np.float32) / 255)
  y = jax.device_put(labels)
  mix = jax.jit(lambda k, x, y: mj.mix(k, x, y, 1.0, num_classes=10))
  copy = jax.jit(lambda x: x * jnp.float32(1.0001))
  key = jax.random.key(0)
  jax.block_until_ready((mix(key, x, y), copy(x)))
  times = {"mix": [], "copy": []}
  for i in range(50 if sizes["repeats"] > 2 else 3):
    start = time.perf_counter()
    jax.block_until_ready(mix(jax.random.fold_in(key, i), x, y))
    times["mix"].append(time.perf_counter() - start)
    start = time.perf_counter()
    jax.block_until_ready(copy(x))
    times["copy"].append(time.perf_counter() - start)
  ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
  return {"batch": list(x.shape), "mix_ms": ms["mix"], "copy_ms": ms["copy"],
          "mix_over_copy": ms["mix"] / ms["copy"]}


def part_recipe(sizes, deadline: float, out: pathlib.Path) -> dict[str, Any]:
  """As many epochs of the paper's CIFAR-10 recipe as time allows, ERM and mixup."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from experiments.configs import default
  from mixup_jax import trainer

  results = {}
  methods = (("mixup", 1.0), ("ERM", 0.0))
  for i, (name, alpha) in enumerate(methods):
    config = default.get_config()
    config.mixup.alpha = alpha
    config.log_every_steps = 50
    if sizes["train_size"] is not None:  # the dry run: a tiny network on a few images
      config.train_size, config.test_size = sizes["train_size"], sizes["test_size"]
      config.model_options = ml_collections.ConfigDict({"width": sizes["width"], "blocks": 1})
      config.batch_size = sizes["recipe_batch"]
      config.eval_batch_size = sizes["test_size"]
      config.log_every_steps = 1
    dataset = trainer.build_dataset(config)
    model = trainer.build_model(config, dataset.num_classes)
    # The paper's 200-epoch schedule, stopped by the clock below (the dry run ends
    # after its few epochs instead, so that every path, evaluations included, runs).
    config.num_epochs = sizes["recipe_epochs"]
    config.checkpoint_every_steps = 10 ** 9
    share_end = time.monotonic() + (deadline - time.monotonic()) / (len(methods) - i)
    started = time.monotonic()

    def stop_when_out_of_time(step, state, share_end=share_end):
      del step, state
      if time.monotonic() > share_end:
        os.kill(os.getpid(), signal.SIGTERM)  # the loop saves and returns at this step

    run = trainer.run_training(config, out / "runs" / name, dataset=dataset, model=model,
                               hooks=(stop_when_out_of_time,))
    wall = time.monotonic() - started
    history = [json.loads(line) for line in
               (out / "runs" / name / "metrics.jsonl").read_text().splitlines()]
    evals = [(r["epoch"], r["test/error"]) for r in history if "test/error" in r]
    steps_done = run.get("step", run.get("final_step"))
    epochs_done = steps_done / (dataset.num_train // config.batch_size)
    results[name] = {
        "epochs_run": epochs_done,
        "test_error_per_epoch": evals,
        "wall_s": wall,
        "projected_200_epochs_s": wall / max(epochs_done, 1e-9) * 200,
    }
  return results


# ------------------------------------------------------------------------------
# Driver.
# ------------------------------------------------------------------------------


def _device_name() -> str:
  import jax
  return jax.devices()[0].device_kind


def _table(results: dict[str, Any]) -> str:
  lines = [f"# GPU campaign: {results['device']}", "",
           f"jax {results['versions']['jax']}, torch {results['versions'].get('torch')}, "
           f"dry run: {results['dry_run']}", ""]
  for part, value in results["parts"].items():
    lines.append(f"## {part} ({value.get('wall_s', 0):.0f} s, {value['status']})")
    data = value.get("result", {})
    if part == "throughput":
      for batch, rows in data.get("img_per_s", {}).items():
        if isinstance(rows, dict):
          lines += ["", f"{batch}:", "", "| step | img / s |", "|---|---|"]
          lines += [f"| {name} | {rate:,.0f} |" for name, rate in rows.items()]
        else:
          lines.append(f"{batch}: {rows}")
    elif part == "recipe":
      for method, run in data.items():
        last = run["test_error_per_epoch"][-1] if run["test_error_per_epoch"] else None
        lines.append(f"- {method}: {run['epochs_run']:.2f} epochs in {run['wall_s']:.0f} s, "
                     f"last test error {last}, projected 200 epochs "
                     f"{run['projected_200_epochs_s'] / 60:.1f} min")
    else:
      lines.append("```\n" + json.dumps(data, indent=1) + "\n```")
    lines.append("")
  return "\n".join(lines)


def main(argv=None) -> int:
  args = _parse_args(argv)
  import jax
  start = time.monotonic()
  sizes = _sizes(args.dry_run)
  device = _device_name()
  out = pathlib.Path(args.out) if args.out else (
      _REPO / "benchmarks" / "results" / re.sub(r"[^A-Za-z0-9]+", "_", device).strip("_"))
  out.mkdir(parents=True, exist_ok=True)
  versions = {"jax": jax.__version__}
  try:
    import torch
    versions["torch"] = torch.__version__
  except ImportError:
    pass
  results = {"device": device, "platform": jax.devices()[0].platform, "dry_run": args.dry_run,
             "budget_s": args.budget_s, "versions": versions, "parts": {}}
  parts = [p for p in args.parts.split(",") if p]
  unknown = set(parts) - set(_SHARES)
  if unknown:
    raise SystemExit(f"--parts: unknown part(s) {sorted(unknown)}; valid: {list(_SHARES)}")
  for name in parts:
    part_start = time.monotonic()
    remaining = args.budget_s - (part_start - start)
    share = sum(_SHARES[p] for p in parts[parts.index(name):])
    deadline = part_start + remaining * _SHARES[name] / share
    try:
      if name == "recipe":
        value = part_recipe(sizes, deadline, out)
      else:
        value = {"throughput": part_throughput, "mix": part_mix}[name](sizes, deadline)
      entry = {"status": "done", "result": value}
    except Exception as e:  # pylint: disable=broad-except: record, go on to the next part
      entry = {"status": f"failed: {type(e).__name__}: {e}",
               "traceback": traceback.format_exc(limit=5)}
    entry["wall_s"] = time.monotonic() - part_start
    results["parts"][name] = entry
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
  (out / "table.md").write_text(_table(results))
  print(_table(results))
  failed = [n for n, e in results["parts"].items() if e["status"] != "done"]
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
