r"""Figure 3 at CPU scale: ERM, mixup, CutMix and the switch on the full CIFAR-10, 3 seeds.

  python -m experiments.figure3_cpu [--methods=erm,mixup,cutmix,switch] [--seeds=0,1,2] \
      [--runs_dir=DIR] [--data_dir=DIR] [--aggregate_only] [--size=cpu]

trains every (method, seed) run of experiments/configs/figure3_cpu.py that has no
results yet, one after the other through the training loop, and writes
experiments/results/figure3_cpu/{results.json, table.md, figure3_cpu.png}.

Runs are long (their times: docs/reproducing.md), so the sweep is built to be
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
set (experiments/cpu_flags.py). `--size=smallest` (the test) trains each run for a few steps of a width-4 network.
"""

from __future__ import annotations

from experiments import cpu_flags

cpu_flags.use_xnnpack()  # before JAX is imported

import pathlib  # pylint: disable=g-import-not-at-top,wrong-import-position
from typing import Any, Sequence

from absl import flags

from experiments import plotting
from experiments import summary
from experiments import sweep
from experiments.configs import figure3_cpu

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
  return sweep.with_size(figure3_cpu.get_config(method), seed=seed, overrides=SIZES[size],
                         data_dir=data_dir, width=_SMALLEST_WIDTH if size == "smallest" else None)


def planned_runs(args) -> list[tuple[str, object]]:
  """(run name, config) of every (method, seed) of the flags, in training order."""
  return [(run_name(m, s), make_config(m, s, args.size, args.data_dir))
          for m, s in run_order(args.methods, [int(s) for s in args.seeds])]


def load_runs(kept: dict[str, dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
  """{method: {seed: results + 'curve' [(epoch, test error)]}} of the kept runs."""
  runs: dict[str, dict[int, dict[str, Any]]] = {}
  for name, results in kept.items():
    method, seed = name.rsplit("_seed", 1)[0], results["config"]["seed"]
    records = results.pop("records")
    results["curve"] = sweep.test_curve(records)
    results["last_train_accuracy"] = sweep.last_train_accuracy(records)
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


def table(runs, stats, args) -> str:
  """The markdown table: scale, per-method errors, paired differences, verdicts."""
  config = make_config("erm", 0, args.size, None)
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


def plot(runs, stats, args, path: pathlib.Path) -> None:
  """Test error against epoch, every seed of every method."""
  del stats, args
  plt = plotting.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for i, method in enumerate(m for m in figure3_cpu.METHODS if m in runs):
    for j, seed in enumerate(sorted(runs[method])):
      epochs, errors = zip(*runs[method][seed]["curve"])
      ax.plot(epochs, errors, color=f"C{i}", alpha=0.8, label=method if j == 0 else None)
  ax.set_xlabel("epoch")
  ax.set_ylabel("test error (%)")
  ax.set_title("CIFAR-10, PreAct ResNet (CPU scale)")
  ax.legend()
  plotting.save(fig, path, dpi=120)


def check(args) -> None:
  sweep.check_choices("methods", args.methods, figure3_cpu.METHODS)


def define_flags() -> None:
  flags.DEFINE_list("methods", list(figure3_cpu.METHODS), "Methods to train.")


EXPERIMENT = sweep.Experiment(
    name="figure3_cpu", sizes=tuple(SIZES), runs=planned_runs, load=load_runs,
    aggregate=aggregate, table=table, plots={"figure3_cpu.png": plot},
    define_flags=define_flags, check=check)


if __name__ == "__main__":
  sweep.main(EXPERIMENT)
