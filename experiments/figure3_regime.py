r"""Figure 3 where ERM memorises: learning curves, the paired table, gain against data size.

  python -m experiments.figure3_regime [--methods=erm,mixup,cutmix,switch] [--seeds=0,1,2] \
      [--curve_sizes=1000,2000,10000] [--curve_seeds=0,1] [--runs_dir=DIR] \
      [--data_dir=DIR] [--aggregate_only] [--size=cpu]

trains every run of experiments/configs/figure3_regime.py that has no results yet,
one after the other (ERM and mixup seed by seed first, then CutMix and the switch,
then the data-size curve's ERM and mixup runs), and writes
experiments/results/figure3_regime/{results.json, table.md, curves.png, data_size.png}.

Runs are long (their times: docs/reproducing.md), so the sweep is built to be resumed:
each run trains in its own workdir under --runs_dir and resumes there; a finished
run's results.json and metrics.jsonl are kept in experiments/results/figure3_regime/
runs/ and committed, and a kept run is never trained again. `--aggregate_only`
rebuilds the outputs from the kept runs. `--size=smallest` (the tests) trains each run
for a few steps of a width-4 network.
"""

from __future__ import annotations

from experiments import cpu_flags

cpu_flags.use_xnnpack()  # before JAX is imported

import pathlib  # pylint: disable=g-import-not-at-top,wrong-import-position
from typing import Any, Sequence

from absl import flags
import numpy as np

from experiments import figure3_cpu
from experiments import plotting
from experiments import summary
from experiments import sweep
from experiments.configs import figure3_regime

PAPER = {"erm": 5.6, "mixup": 4.2}  # Figure 3a, PreAct ResNet-18, 200 epochs, full CIFAR-10
SIZES = {
    "cpu": {},
    "smallest": {"num_train_steps": 4, "batch_size": 32, "eval_batch_size": 2000,
                 "eval_every_steps": 2, "log_every_steps": 1, "checkpoint_every_steps": 2},
}
_SMALLEST = {"width": 4, "train_size": 200}


def run_name(method: str, train_size: int, seed: int) -> str:
  return f"{method}_n{train_size}_seed{seed}"


def make_config(method: str, train_size: int, seed: int, size: str, data_dir: str | None):
  """figure3_regime.py:METHOD,TRAIN_SIZE at `seed`, with the size's overrides."""
  smallest = size == "smallest"
  config = figure3_regime.get_config(
      f"{method},{_SMALLEST['train_size'] if smallest else train_size}")
  config = sweep.with_size(config, seed=seed, overrides=SIZES[size], data_dir=data_dir,
                           width=_SMALLEST["width"] if smallest else None)
  if smallest:
    config.schedule_boundaries = (1, 2)
  return config


def run_plan(methods: Sequence[str], seeds: Sequence[int], curve_sizes: Sequence[int],
             curve_seeds: Sequence[int]) -> list[tuple[str, int, int]]:
  """(method, train_size, seed) in training order: the paper's question first."""
  plan = [(m, figure3_regime.TRAIN_SIZE, s)
          for m, s in figure3_cpu.run_order(methods, seeds)]
  plan += [(m, n, s) for n in curve_sizes for s in curve_seeds for m in ("erm", "mixup")]
  return list(dict.fromkeys(plan))


def planned_runs(args):
  """(workdir name, config) of each planned run of the flags, named by the size it trains on."""
  plan = run_plan(args.methods, [int(s) for s in args.seeds],
                  [int(n) for n in args.curve_sizes], [int(s) for s in args.curve_seeds])
  for method, train_size, seed in plan:
    config = make_config(method, train_size, seed, args.size, args.data_dir)
    yield run_name(method, config.train_size, seed), config


def load_runs(kept) -> dict[tuple[str, int], dict[int, dict[str, Any]]]:
  """{(method, train_size): {seed: results + curve + last-epoch training error}}."""
  runs: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
  for results in kept.values():
    config = results["config"]
    method = ("erm" if not config["mixup"]["alpha"] and not config["mixup"]["cutmix_alpha"]
              else "switch" if config["mixup"]["alpha"] and config["mixup"]["cutmix_alpha"]
              else "mixup" if config["mixup"]["alpha"] else "cutmix")
    records = results.pop("records")
    results["curve"] = sweep.test_curve(records)
    train = [r for r in records if "train/accuracy" in r]
    results["last_train_error"] = 100.0 * (1.0 - train[-1]["train/accuracy"])
    runs.setdefault((method, config["train_size"]), {})[config["seed"]] = results
  return runs


def _paired(runs, method: str, train_size: int, metric: str):
  """The paired difference method - ERM at train_size over their common seeds, or None."""
  mine, erm = runs.get((method, train_size), {}), runs.get(("erm", train_size), {})
  seeds = sorted(set(mine) & set(erm))
  if len(seeds) < 2:
    return None, seeds
  return summary.paired_difference([mine[s][metric] for s in seeds],
                                   [erm[s][metric] for s in seeds]), seeds


def aggregate(runs) -> dict[str, Any]:
  """Per (method, size): mean +- SE of the errors; paired differences to ERM; the regime."""
  out: dict[str, Any] = {"methods": {}, "differences": {}}
  for (method, train_size), by_seed in sorted(runs.items()):
    seeds = sorted(by_seed)
    entry: dict[str, Any] = {"method": method, "train_size": train_size, "seeds": seeds}
    for metric in ("final_test_error", "best_test_error", "last_train_error"):
      values = [by_seed[s][metric] for s in seeds]
      entry[metric] = {"per_seed": values,
                       **(summary.mean_se(values).to_json() if len(values) > 1 else {})}
    out["methods"][f"{method}_n{train_size}"] = entry
    if method == "erm":
      continue
    for metric in ("final_test_error", "best_test_error"):
      difference, common = _paired(runs, method, train_size, metric)
      if difference is not None:
        out["differences"].setdefault(f"{method}_n{train_size}", {"seeds": common})[metric] = {
            **difference.to_json(), "verdict": summary.verdict(difference)}
  return out


def regime_check(entry: dict[str, Any]) -> str:
  """ERM's regime at one size: <= 2 % training error and a test error >= 15 points above."""
  train = np.mean(entry["last_train_error"]["per_seed"])
  gap = np.mean(entry["final_test_error"]["per_seed"]) - train
  ok = train <= 2.0 and gap >= 15.0
  return f"train {train:.2f} %, gap {gap:.1f} points: {'reached' if ok else 'NOT reached'}"


def _fmt(entry: dict[str, Any]) -> str:
  if "mean" in entry:
    return f"{entry['mean']:.2f} +- {entry['se']:.2f}"
  return ", ".join(f"{v:.2f}" for v in entry["per_seed"])


def table(runs, stats: dict[str, Any], args) -> str:
  """table.md: the regime, per-method errors, paired differences, the data-size rows."""
  del runs
  config = make_config("erm", figure3_regime.TRAIN_SIZE, 0, args.size, None)
  n = config.train_size
  lines = [
      "# Figure 3 in the memorisation regime: CIFAR-10 test error (%)",
      "",
      f"{n:,} training images (the first {n // 10} of each class), all 10,000 test images; "
      f"PreAct ResNet-18 topology at width {config.model_options.width} "
      f"({config.model_options.blocks} blocks per stage); crop + flip; "
      f"{config.num_train_steps} updates of SGD (batch {config.batch_size}, lr "
      f"{config.learning_rate}, momentum {config.momentum}, weight decay "
      f"{config.weight_decay}), lr / 10 at epochs {config.schedule_boundaries[0]} and "
      f"{config.schedule_boundaries[1]}. Mean +- standard error over seeds; "
      "`python -m experiments.figure3_regime`. Training error: the last epoch's "
      "augmented (for mixup: mixed) batches against their own labels.",
      "",
      "| method | seeds | final test error | best test error | training error, last epoch |",
      "|---|---|---|---|---|",
  ]
  main = {e["method"]: e for e in stats["methods"].values() if e["train_size"] == n}
  for method in figure3_regime.METHODS:
    if method in main:
      e = main[method]
      lines.append(f"| {method} | {len(e['seeds'])} | {_fmt(e['final_test_error'])} | "
                   f"{_fmt(e['best_test_error'])} | {_fmt(e['last_train_error'])} |")
  if "erm" in main:
    lines += ["", f"Regime check (ERM): {regime_check(main['erm'])}."]
  lines += ["", "Paired difference to ERM on the same seeds (negative: better than ERM), "
            "95 % t-interval and verdict:", "",
            "| method - ERM | train size | seeds | final test error | verdict | best test error | verdict |",
            "|---|---|---|---|---|---|---|"]
  for name, entry in stats["differences"].items():
    method, train_size = name.rsplit("_n", 1)
    cells = []
    for metric in ("final_test_error", "best_test_error"):
      if metric in entry:
        d = entry[metric]
        cells += [f"{d['mean']:+.2f} +- {d['se']:.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]",
                  d["verdict"]]
    lines.append(f"| {method} | {int(train_size):,} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
  sizes = sorted({e["train_size"] for e in stats["methods"].values() if e["method"] == "erm"})
  if len(sizes) > 1:
    lines += ["", "Data size (same number of updates), ERM's regime per size:", ""]
    for train_size in sizes:
      lines.append(f"- {train_size:,} images: {regime_check(stats['methods'][f'erm_n{train_size}'])}")
  return "\n".join(lines) + "\n"


def plot_curves(runs, stats, args, path: pathlib.Path) -> None:
  """Test error against epoch, mean +- SE band per method (the paper's Figure 3b)."""
  del stats
  train_size = make_config("erm", figure3_regime.TRAIN_SIZE, 0, args.size, None).train_size
  plt = plotting.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for i, method in enumerate(figure3_regime.METHODS):
    by_seed = runs.get((method, train_size))
    if not by_seed:
      continue
    curves = [dict(r["curve"]) for r in by_seed.values()]
    epochs = sorted(set.intersection(*(set(c) for c in curves)))
    errors = np.array([[c[e] for e in epochs] for c in curves])
    mean = errors.mean(0)
    se = errors.std(0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else 0 * mean
    seeds = f"{len(curves)} seed" + ("s" if len(curves) > 1 else "")
    ax.plot(epochs, mean, color=f"C{i}", label=f"{method} ({seeds})")
    ax.fill_between(epochs, mean - se, mean + se, color=f"C{i}", alpha=0.25)
  ax.set_xlabel("epoch")
  ax.set_ylabel("test error (%)")
  ax.set_title(f"CIFAR-10, {train_size:,} training images")
  ax.legend()
  plotting.save(fig, path, dpi=120)


def plot_data_size(runs, stats: dict[str, Any], args, path: pathlib.Path) -> None:
  """mixup - ERM final test error against training-set size, with SE bars."""
  del runs, args
  plt = plotting.pyplot()
  points = sorted((int(name.rsplit("_n", 1)[1]), entry["final_test_error"])
                  for name, entry in stats["differences"].items() if name.startswith("mixup_n"))
  fig, ax = plt.subplots(figsize=(6, 4))
  if points:
    ax.errorbar([n for n, _ in points], [d["mean"] for _, d in points],
                yerr=[d["se"] for _, d in points], marker="o", capsize=3)
  ax.axhline(0.0, color="gray", lw=0.8)
  ax.set_xscale("log")
  ax.set_xlabel("training images")
  ax.set_ylabel("mixup - ERM test error (points)")
  ax.set_title("Does mixup help at my data size? (same number of updates)")
  plotting.save(fig, path, dpi=120)


def check(args) -> None:
  sweep.check_choices("methods", args.methods, figure3_regime.METHODS)


def define_flags() -> None:
  flags.DEFINE_list("methods", list(figure3_regime.METHODS), "Methods at the main size.")
  flags.DEFINE_list("curve_sizes", ["1000", "2000", "10000"],
                    "Other training-set sizes of the data-size curve (ERM and mixup).")
  flags.DEFINE_list("curve_seeds", ["0", "1"], "Seeds of the data-size curve.")


EXPERIMENT = sweep.Experiment(
    name="figure3_regime", sizes=tuple(SIZES), runs=planned_runs, load=load_runs,
    aggregate=aggregate, table=table,
    plots={"curves.png": plot_curves, "data_size.png": plot_data_size},
    define_flags=define_flags, check=check)


if __name__ == "__main__":
  sweep.main(EXPERIMENT)
