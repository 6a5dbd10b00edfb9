r"""Figure 3 at CPU scale: ERM, mixup, CutMix and the switch on the full CIFAR-10, 3 seeds.

  python -m experiments.figure3_cpu [--methods=erm,mixup,cutmix,switch] [--seeds=0,1,2] \
      [--runs_dir=DIR] [--data_dir=DIR] [--aggregate_only] [--size=cpu]

trains every (method, seed) run of experiments/configs/figure3_cpu.py that has no
results yet, one after the other through the training loop, and writes
experiments/results/figure3_cpu/{results.json, table.md, figure3_cpu.png}.

Runs are long (~20 minutes each on 2 CPU cores), so the sweep is built to be
stopped and resumed: each run trains in its own workdir under --runs_dir (default
$MIXUP_JAX_RUNS_DIR/figure3_cpu) and resumes from its checkpoint when restarted, and a
finished run's results.json and metrics.jsonl are copied to
experiments/results/figure3_cpu/runs/METHOD_seedK/, where they are kept with the
project. A run with results there is never trained again; `--aggregate_only` only
rebuilds the table from them. The runs go ERM and mixup first, seed by seed, then
CutMix and the switch, so that a partial sweep already answers the paper's question.

The table gives, per method, the final and best test error (mean +- standard error
over seeds) and the paired difference to ERM on the same seeds, with the verdict of
`experiments.summary.verdict` (95 % t-interval of the paired difference).

On a CPU the entry turns on XLA's XNNPACK convolutions unless XLA_FLAGS is already
set: measured 1.5x faster for this network on 2 cores, bitwise deterministic.
`--size=smallest` (the test) trains each run for a few steps of a width-4 network.
"""

from __future__ import annotations

from experiments import cpu_flags

cpu_flags.use_xnnpack()  # before JAX is imported

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import pathlib
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging

from experiments import cifar_runs
from experiments import summary
from experiments import sweep
from experiments.configs import figure3_cpu

RESULTS_DIR = cifar_runs.RESULTS_ROOT / "figure3_cpu"
# Paper Figure 3a, PreAct ResNet-18 on CIFAR-10 after 200 epochs (test error, %).
PAPER = {"erm": 5.6, "mixup": 4.2}
# Overrides of each size; 'cpu' is the config as it is.
SIZES = {
    "cpu": {},
    "smallest": {"num_train_steps": 3, "batch_size": 32, "eval_batch_size": 2000,
                 "log_every_steps": 1},
}
_SMALLEST_WIDTH = 4

def run_name(method: str, seed: int) -> str:
  return f"{method}_seed{seed}"


def run_order(methods: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
  """ERM and mixup seed by seed first, then the other methods seed by seed."""
  first = [m for m in ("erm", "mixup") if m in methods]
  rest = [m for m in methods if m not in first]
  return [(m, s) for group in (first, rest) for s in seeds for m in group]


def make_config(method: str, seed: int, size: str, data_dir: str | None):
  """The run's config: figure3_cpu.py:METHOD at `seed`, with the size's overrides."""
  config = figure3_cpu.get_config(method)
  config.seed = seed
  if data_dir:
    config.data_dir = data_dir
  for field, value in SIZES[size].items():
    config[field] = value
  if size == "smallest":
    config.model_options.width = _SMALLEST_WIDTH
  return config


def train_missing(methods: Sequence[str], seeds: Sequence[int], *, runs_dir: pathlib.Path,
                  out_dir: pathlib.Path, size: str, data_dir: str | None) -> bool:
  """Trains each run without results in out_dir/runs; False if one was preempted."""
  return sweep.train_missing(
      ((run_name(m, s), make_config(m, s, size, data_dir)) for m, s in run_order(methods, seeds)),
      runs_dir=runs_dir, kept_dir=out_dir / "runs")


def load_runs(out_dir: pathlib.Path) -> dict[str, dict[int, dict[str, Any]]]:
  """{method: {seed: results + 'curve' [(epoch, test error)]}} of the finished runs."""
  runs: dict[str, dict[int, dict[str, Any]]] = {}
  for name, results in sweep.load_kept(out_dir / "runs").items():
    method, seed = name.rsplit("_seed", 1)[0], results["config"]["seed"]
    records = results.pop("records")
    results["curve"] = [(r["epoch"], r["test/error"]) for r in records if "test/error" in r]
    train = [r for r in records if "train/accuracy" in r]
    results["last_train_accuracy"] = 100.0 * train[-1]["train/accuracy"] if train else None
    runs.setdefault(method, {})[seed] = results
  return runs


def aggregate(runs: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
  """Per-method mean +- SE and paired differences to ERM over the seeds both have."""
  out: dict[str, Any] = {"methods": {}, "differences": {}}
  for method, by_seed in runs.items():
    seeds = sorted(by_seed)
    entry = {"seeds": seeds}
    for metric in ("final_test_error", "best_test_error"):
      values = [by_seed[s][metric] for s in seeds]
      entry[metric] = {"per_seed": values,
                       **(summary.mean_se(values).to_json() if len(values) > 1 else {})}
    out["methods"][method] = entry
  erm = runs.get("erm", {})
  for method, by_seed in runs.items():
    seeds = sorted(set(by_seed) & set(erm))
    if method == "erm" or len(seeds) < 2:
      continue
    entry = {"seeds": seeds}
    for metric in ("final_test_error", "best_test_error"):
      difference = summary.paired_difference([by_seed[s][metric] for s in seeds],
                                             [erm[s][metric] for s in seeds])
      entry[metric] = {**difference.to_json(), "verdict": summary.verdict(difference)}
    out["differences"][method] = entry
  return out


def table(runs, stats, size: str) -> str:
  """The markdown table: scale, per-method errors, paired differences, verdicts."""
  config = make_config("erm", 0, size, None)
  lines = [
      "# Figure 3 at CPU scale: CIFAR-10 test error (%)",
      "",
      f"Full CIFAR-10 (50,000 / 10,000), PreAct ResNet width {config.model_options.width}, "
      f"{config.model_options.blocks} block per stage, "
      + (f"{config.num_epochs} epochs" if not config.num_train_steps
         else f"{config.num_train_steps} steps") +
      f" of SGD (batch {config.batch_size}, lr {config.learning_rate}, momentum "
      f"{config.momentum}, weight decay {config.weight_decay}), {config.schedule} schedule. "
      "Paper (Figure 3a): PreAct ResNet-18 (width 64, 2 blocks), 200 epochs.",
      "",
      "Mean +- standard error over seeds; `python -m experiments.figure3_cpu`.",
      "",
      "| method | seeds | final test error | best test error | paper (200 epochs, ResNet-18) |",
      "|---|---|---|---|---|",
  ]
  fmt = lambda e: (f"{e['mean']:.2f} +- {e['se']:.2f}" if "mean" in e
                   else ", ".join(f"{v:.2f}" for v in e["per_seed"]))
  for method in figure3_cpu.METHODS:
    if method in stats["methods"]:
      entry = stats["methods"][method]
      lines.append(f"| {method} | {len(entry['seeds'])} | {fmt(entry['final_test_error'])} | "
                   f"{fmt(entry['best_test_error'])} | {PAPER.get(method, '-')} |")
  lines += ["", "Paired difference to ERM on the same seeds (negative: better than ERM), "
            "with the 95 % t-interval and its verdict:", "",
            "| method - ERM | seeds | final test error | verdict | best test error | verdict |",
            "|---|---|---|---|---|---|"]
  for method, entry in stats["differences"].items():
    cells = []
    for metric in ("final_test_error", "best_test_error"):
      d = entry[metric]
      cells += [f"{d['mean']:+.2f} +- {d['se']:.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]",
                d["verdict"]]
    lines.append(f"| {method} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
  if "erm" in runs:
    erm = runs["erm"]
    train = [erm[s]["last_train_accuracy"] for s in sorted(erm)]
    test = [100.0 - erm[s]["final_test_error"] for s in sorted(erm)]
    lines += ["", "Does ERM fit its training set? Its accuracy on the last logged training "
              "batches (augmented, the last log interval) against its test accuracy, per seed: "
              + ", ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(train, test)) +
              " %. Near-equal numbers mean the network underfits, where a regulariser such "
              "as mixup is expected to cost accuracy; the paper's case for mixup is ERM "
              "memorising its training data."]
  if "mixup" in stats["differences"]:
    d = stats["differences"]["mixup"]["final_test_error"]
    lines += ["", f"Verdict on the paper's claim (mixup lowers the test error of ERM) at this "
              f"scale: **{d['verdict']}** (final error, {len(stats['differences']['mixup']['seeds'])}"
              f" seeds: {d['mean']:+.2f} +- {d['se']:.2f} points)."]
  return "\n".join(lines) + "\n"


def plot(runs, path: pathlib.Path) -> None:
  """Test error against epoch, every seed of every method."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  for i, method in enumerate(m for m in figure3_cpu.METHODS if m in runs):
    for j, seed in enumerate(sorted(runs[method])):
      epochs, errors = zip(*runs[method][seed]["curve"])
      ax.plot(epochs, errors, color=f"C{i}", alpha=0.8, label=method if j == 0 else None)
  ax.set_xlabel("epoch")
  ax.set_ylabel("test error (%)")
  ax.set_title("CIFAR-10, PreAct ResNet (CPU scale)")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_outputs(out_dir: pathlib.Path, size: str) -> dict[str, Any] | None:
  """results.json, table.md and the plot from the runs kept in out_dir/runs."""
  runs = load_runs(out_dir)
  if not runs:
    logging.warning("No finished runs under %s.", out_dir / "runs")
    return None
  stats = aggregate(runs)
  (out_dir / "results.json").write_text(json.dumps(stats, indent=2) + "\n")
  (out_dir / "table.md").write_text(table(runs, stats, size))
  plot(runs, out_dir / "figure3_cpu.png")
  return stats


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  out_dir = pathlib.Path(args.out_dir)
  for method in args.methods:
    if method not in figure3_cpu.METHODS:
      raise app.UsageError(f"--methods: {method!r} is not one of {figure3_cpu.METHODS}.")
  seeds = [int(s) for s in args.seeds]
  if not args.aggregate_only:
    runs_dir = pathlib.Path(args.runs_dir or cifar_runs.DEFAULT_RUNS_DIR / "figure3_cpu")
    finished = train_missing(args.methods, seeds, runs_dir=runs_dir, out_dir=out_dir,
                             size=args.size, data_dir=args.data_dir)
    if not finished:
      logging.warning("Preempted: rerun the same command to resume.")
  write_outputs(out_dir, args.size)
  print((out_dir / "table.md").read_text() if (out_dir / "table.md").exists() else "")


def _define_flags() -> None:
  """The command line (defined here, not at import, so tests can import the module)."""
  flags.DEFINE_list("methods", list(figure3_cpu.METHODS), "Methods to train.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every method.")
  flags.DEFINE_string("runs_dir", None, "Workdirs of the runs (default "
                      "$MIXUP_JAX_RUNS_DIR/figure3_cpu).")
  flags.DEFINE_string("data_dir", None, "Offline datasets (default $MIXUP_JAX_DATA_DIR).")
  flags.DEFINE_string("out_dir", str(RESULTS_DIR), "Where results go.")
  flags.DEFINE_enum("size", "cpu", list(SIZES), "cpu: the committed runs; smallest: a few "
                    "steps (the test).")
  flags.DEFINE_bool("aggregate_only", False, "Only rebuild the table from the finished runs.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
