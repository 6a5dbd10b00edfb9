r"""Table 2 at CPU scale: memorisation of corrupted labels, ERM / dropout / mixup, 3 seeds.

  python -m experiments.table2_cpu [--corruptions=20,50,80] [--methods=erm,mixup,dropout] \
      [--seeds=0,1,2] [--runs_dir=DIR] [--data_dir=DIR] [--aggregate_only] [--size=cpu]

trains every run of experiments/configs/table2_cpu.py that has no kept results yet
(resumable, see experiments/sweep.py), then writes
experiments/results/table2_cpu/{results.json, table.md, curves.png}.

Per (corruption, method), over seeds (mean +- standard error):

  best / last test   the lowest test error of the evaluations and the final one;
  train err          the final model on the un-augmented training images: on those
                     whose label is intact against it ('true'), and on those whose
                     label was changed against the changed label ('corrupted'); the
                     paper's last two columns;

and per method the paired difference to ERM on the same seeds with the verdict of
`experiments.summary.verdict`. The regime check comes first: the comparison means
something only where ERM memorised the corrupted labels (training error against
them below 5 %). `--size=full` runs the paper's recipe (configs/table2.py) through the
same sweep, into experiments/results/table2_full/; `--size=smallest` (the test) trains a
width-4 network a few steps.
"""

from __future__ import annotations

from experiments import cpu_flags

cpu_flags.use_xnnpack()  # before JAX is imported

import pathlib  # pylint: disable=g-import-not-at-top,wrong-import-position
from typing import Any, Sequence

from absl import app
from absl import flags
import ml_collections

from experiments import cifar_runs
from experiments import plotting
from experiments import summary
from experiments import sweep
from experiments.configs import table2
from experiments.configs import table2_cpu
from mixup_jax import trainer

MEMORISED = 5.0  # % training error against the corrupted labels: the regime's threshold
METRICS = ("best_test_error", "final_test_error", "train_error_true", "train_error_corrupted")
# Overrides of each size: 'cpu' is configs/table2_cpu.py as it is; 'full' is the paper's
# recipe (configs/table2.py: all 50,000 images with crop + flip, PreAct ResNet-18,
# 200 epochs; ~1 h per run on one GPU); 'smallest' is the test.
SIZES = {
    "cpu": {},
    "full": None,
    "smallest": {"train_size": 200, "test_size": 100, "num_epochs": 2, "batch_size": 50,
                 "eval_batch_size": 100, "log_every_steps": 2, "eval_every_steps": 2,
                 "checkpoint_every_steps": 2, "schedule_boundaries": (1,)},
}
_LABELS = {"erm": "ERM", "dropout": "ERM + dropout", "mixup": "mixup",
           "mixup_dropout": "mixup + dropout"}


def run_name(corruption: int, method: str, seed: int) -> str:
  return f"c{corruption}_{method}_seed{seed}"


def run_order(corruptions: Sequence[int], methods: Sequence[str],
              seeds: Sequence[int]) -> list[tuple[int, str, int]]:
  """ERM and mixup at every corruption, seed by seed, first; the other methods after."""
  first = [m for m in ("erm", "mixup") if m in methods]
  rest = [m for m in methods if m not in first]
  return [(c, m, s) for group in (first, rest) for s in seeds for c in corruptions
          for m in group]


def make_config(corruption: int, method: str, seed: int, size: str,
                data_dir: str | None, augment: bool = False) -> ml_collections.ConfigDict:
  """table2_cpu.py:CORRUPTION,METHOD at `seed` with the size's overrides (full: table2.py)."""
  spec = f"{corruption},{method}"
  config = (table2.get_config(spec) if SIZES[size] is None
            else table2_cpu.get_config(spec, augment=augment))
  return sweep.with_size(config, seed=seed, overrides=SIZES[size], data_dir=data_dir,
                         width=4 if size == "smallest" else None)


def train_split_errors(config: ml_collections.ConfigDict, results: dict[str, Any]) -> dict:
  """The final model's training errors (%) as the paper's Table 2 reports them.

  'true': on the examples whose label is intact; 'corrupted': on the examples whose
  label was changed, against the changed label (`cifar_runs.train_split_errors`).
  """
  dataset = trainer.build_dataset(config)
  model = trainer.build_model(config, dataset.num_classes)
  errors = cifar_runs.train_split_errors(model, results["state"].variables, dataset)
  return {"train_error_true": errors["intact"], "train_error_corrupted": errors["corrupted"]}


def planned_runs(args) -> list[tuple[str, ml_collections.ConfigDict]]:
  """(run name, config) of every (corruption, method, seed) of the flags, in training order."""
  return [(run_name(c, m, s), make_config(c, m, s, args.size, args.data_dir, args.augment))
          for c, m, s in run_order([int(c) for c in args.corruptions], args.methods,
                                   [int(s) for s in args.seeds])]


def load_runs(kept) -> dict[tuple[int, str], dict[int, dict[str, Any]]]:
  """{(corruption, method): {seed: kept results + 'curve'}} of the finished runs."""
  runs: dict[tuple[int, str], dict[int, dict[str, Any]]] = {}
  for name, results in kept.items():
    corruption = round(100 * results["config"]["label_corruption"])
    method = name.split("_", 1)[1].rsplit("_seed", 1)[0]
    results["curve"] = sweep.test_curve(results.pop("records"))
    runs.setdefault((corruption, method), {})[results["config"]["seed"]] = results
  return runs


def aggregate(runs) -> dict[str, Any]:
  """Per row mean +- SE of METRICS; per method the paired difference to ERM."""
  rows = []
  order = lambda key: (key[0], table2.METHODS.index(key[1]))
  for (corruption, method), by_seed in sorted(runs.items(), key=lambda item: order(item[0])):
    seeds = sorted(by_seed)
    row = {"corruption": corruption, "method": method, "seeds": seeds,
           "alpha": by_seed[seeds[0]]["config"]["mixup"]["alpha"],
           "dropout_rate": by_seed[seeds[0]]["config"]["model_options"].get("dropout_rate", 0.0),
           "paper": dict(zip(("best", "last", "train_error_true", "train_error_corrupted"),
                             table2.PAPER.get((corruption, method), ())))}
    for metric in METRICS:
      values = [by_seed[s][metric] for s in seeds]
      row[metric] = {"per_seed": values,
                     **(summary.mean_se(values).to_json() if len(values) > 1 else {})}
    erm = runs.get((corruption, "erm"), {})
    common = sorted(set(by_seed) & set(erm))
    if method != "erm" and len(common) > 1:
      row["minus_erm"] = {}
      for metric in ("best_test_error", "final_test_error"):
        d = summary.paired_difference([by_seed[s][metric] for s in common],
                                      [erm[s][metric] for s in common])
        row["minus_erm"][metric] = {**d.to_json(), "verdict": summary.verdict(d), "seeds": common}
    rows.append(row)
  return {"rows": rows}


def _fmt(entry: dict[str, Any]) -> str:
  if "mean" in entry:
    return f"{entry['mean']:.1f} +- {entry['se']:.1f}"
  return ", ".join(f"{v:.1f}" for v in entry["per_seed"])


def _setting(row: dict[str, Any]) -> str:
  parts = ([f"alpha {row['alpha']:g}"] if row["alpha"] else []) + (
      [f"p {row['dropout_rate']:g}"] if row["dropout_rate"] else [])
  return ", ".join(parts) or "-"


def verdict_lines(stats: dict[str, Any]) -> list[str]:
  """The regime check and the paper's claims, each a sentence that follows from the numbers."""
  lines = []
  by_key = {(r["corruption"], r["method"]): r for r in stats["rows"]}
  for corruption in sorted({r["corruption"] for r in stats["rows"]}):
    erm = by_key.get((corruption, "erm"))
    if erm is None:
      continue
    memorised = max(erm["train_error_corrupted"]["per_seed"])
    reached = memorised < MEMORISED
    lines.append(
        f"- {corruption} %: ERM's training error against the corrupted labels is at most "
        f"{memorised:.1f} % over its seeds: "
        + ("it memorised them, the regime of the table." if reached else
           f"it did NOT memorise them (threshold {MEMORISED:g} %): the rows below are outside "
           "the table's regime."))
    gap = [last - best for last, best in zip(erm["final_test_error"]["per_seed"],
                                 erm["best_test_error"]["per_seed"])]
    rise, paper_rise = sum(gap) / len(gap), erm["paper"]["last"] - erm["paper"]["best"]
    lines.append(f"  - ERM's last minus best test error: {rise:+.1f} points (paper: "
                 f"{paper_rise:+.1f}): "
                 + ("memorising cost it accuracy late in training, as in the paper."
                    if rise > max(2.0, paper_rise / 3) else
                    "a far smaller late rise than the paper's."))
    for method in ("mixup", "dropout", "mixup_dropout"):
      row = by_key.get((corruption, method))
      if row is None or "minus_erm" not in row:
        continue
      fitted = row["train_error_corrupted"]["per_seed"]
      fitted_mean = sum(fitted) / len(fitted)
      paper = row["paper"].get("train_error_corrupted")
      lines.append(
          f"  - {_LABELS[method]}: training error against the corrupted labels "
          f"{fitted_mean:.1f} % (ERM at most {memorised:.1f}, paper "
          + (f"{paper:g}" if paper is not None else "-") + "): "
          + ("it did not fit the random labels, as in the paper." if fitted_mean > 50 else
             "it still fitted most of the random labels, unlike the paper's."))
      for metric, word in (("final_test_error", "last"), ("best_test_error", "best")):
        d = row["minus_erm"][metric]
        verdict = d["verdict"] if reached else "inconclusive (regime not reached)"
        lines.append(
            f"  - {_LABELS[method]} - ERM, {word} test error: {d['mean']:+.1f} +- {d['se']:.1f} "
            f"[{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}] over {len(d['seeds'])} seeds: "
            f"**{verdict}** (paper: lower than ERM).")
  return lines


def table(runs, stats: dict[str, Any], args) -> str:
  """The markdown table with the paper's numbers in brackets, then the verdicts."""
  del runs
  size, augment = args.size, args.augment
  lines = [
      "# Table 2" + ("" if size == "full" else " at CPU scale")
      + (" with crop + flip (diagnostic arm)" if augment else "")
      + ": CIFAR-10 with corrupted labels, error (%)",
      "",
      describe(make_config(80, "erm", 0, size, None, augment)),
      "",
      "Mean +- standard error over seeds; the paper's number in brackets. Train err: the "
      "final model on the un-augmented training images whose label is intact, against it "
      "(true), and on those whose label was changed, against the changed label "
      "(corrupted: 0 when the noise is memorised, ~90 when the true class is predicted).",
      "",
      "| corruption | method | setting | seeds | best test | last test | train err (true) "
      "| train err (corrupted) |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for row in stats["rows"]:
    paper = row["paper"]
    cell = lambda metric, key: _fmt(row[metric]) + (f" ({paper[key]:g})" if paper else " (-)")
    lines.append(
        f"| {row['corruption']} % | {_LABELS[row['method']]} | {_setting(row)} | "
        f"{len(row['seeds'])} | {cell('best_test_error', 'best')} | "
        f"{cell('final_test_error', 'last')} | {cell('train_error_true', 'train_error_true')} | "
        f"{cell('train_error_corrupted', 'train_error_corrupted')} |")
  lines += ["", "Regime and verdicts (95 % t-interval of the paired difference to ERM):", ""]
  lines += verdict_lines(stats)
  return "\n".join(lines) + "\n"


def describe(config: ml_collections.ConfigDict) -> str:
  """The run's scale in one paragraph, against the paper's."""
  if not config.train_size:
    return ("The paper's recipe: all 50,000 training images (labels corrupted once, seed 0) "
            "with crop + flip, PreAct ResNet-18, 200 epochs. `python -m "
            "experiments.table2_cpu --size=full`.")
  return (f"The first {config.train_size:,} training images (labels corrupted once, seed 0) "
          f"and the first {config.test_size:,} test images; "
          + ("no crop or flip" if not config.dataset_options.get("augment", True)
             else "crop + flip") +
          f"; PreAct ResNet width {config.model_options.width}, {config.model_options.blocks} "
          f"block per stage; {config.num_epochs} epochs of batch {config.batch_size}, lr "
          f"{config.learning_rate} / 10 at epochs "
          f"{', '.join(str(b) for b in config.schedule_boundaries)}; test error every "
          f"{config.eval_every_steps // (config.train_size // config.batch_size)} epochs. "
          "Paper: all 50,000 images with crop + flip, PreAct ResNet-18, 200 epochs. "
          "`python -m experiments.table2_cpu"
          + (" --augment --corruptions=50 --methods=erm,mixup`."
             if config.dataset_options.get("augment", True) else "`."))


def plot(runs, stats, args, path: pathlib.Path) -> None:
  """Test error against epoch per corruption level, every seed of every method."""
  del stats, args
  plt = plotting.pyplot()
  corruptions = sorted({c for c, _ in runs})
  fig, axes = plt.subplots(1, len(corruptions), figsize=(4.5 * len(corruptions), 3.6),
                           squeeze=False)
  for ax, corruption in zip(axes[0], corruptions):
    for i, method in enumerate(table2.METHODS):
      for j, seed in enumerate(sorted(runs.get((corruption, method), {}))):
        epochs, errors = zip(*runs[(corruption, method)][seed]["curve"])
        ax.plot(epochs, errors, color=f"C{i}", alpha=0.8,
                label=_LABELS[method] if j == 0 else None)
    ax.set_title(f"{corruption} % corrupted labels")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=8)
  plotting.save(fig, path, dpi=120)


def check(args) -> None:
  sweep.check_choices("corruptions", [int(c) for c in args.corruptions], table2.CORRUPTIONS)
  sweep.check_choices("methods", args.methods, table2.METHODS)
  if args.augment and args.size == "full":
    raise app.UsageError("--augment is the CPU-scale diagnostic arm; the full recipe "
                         "already augments.")


def folder(args) -> str:
  """table2_cpu, its crop + flip arm table2_cpu_augment, or the paper's size table2_full."""
  return ("table2_full" if args.size == "full" else
          "table2_cpu_augment" if args.augment else "table2_cpu")


def define_flags() -> None:
  flags.DEFINE_list("corruptions", [str(c) for c in table2.CORRUPTIONS], "Corruption levels (%).")
  flags.DEFINE_list("methods", list(table2.METHODS), "Methods to train.")
  flags.DEFINE_bool("augment", False, "The diagnostic arm: crop + flip and 80 epochs "
                    "(results in experiments/results/table2_cpu_augment).")


EXPERIMENT = sweep.Experiment(
    name="table2_cpu", sizes=("cpu", "full", "smallest"), runs=planned_runs, load=load_runs,
    aggregate=aggregate, table=table, plots={"curves.png": plot}, after=train_split_errors,
    define_flags=define_flags, check=check, folder=folder)


if __name__ == "__main__":
  sweep.main(EXPERIMENT)
