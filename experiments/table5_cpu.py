r"""Table 5 at CPU scale: the ablation rows against ERM and against mixup, 3 seeds.

  python -m experiments.table5_cpu [--rows=erm,mixup_ac_rp,...] [--seeds=0,1,2] \
      [--runs_dir=DIR] [--data_dir=DIR] [--aggregate_only] [--size=cpu]

trains every (row, seed) run of experiments/configs/table5_cpu.py that has no kept
results yet (resumable, see experiments/sweep.py), then writes
experiments/results/table5_cpu/{results.json, table.md, ablation.png}.

Per row, over seeds (mean +- standard error): the median test error at the ends of
the last epochs (the paper's statistic, over the last lr phase, configs/table5_cpu.py),
the final test error and the final model's error on its un-augmented training images.
Then two paired differences on the same seeds, each with the 95 % t-interval and the
verdict of `experiments.summary.verdict`:

  row - ERM             the paper's column of changes from ERM, judged against the
                        sign the paper found (a row the paper finds worse than ERM is
                        'reproduced' when ours is worse too);
  row - mixup AC + RP   the paper's conclusion: full mixup (all classes, random pairs,
                        inputs and labels) beats every ablation.

The regime check comes first: the rows are regularisers of a fitted network, so ERM's
final training error must be below 1 %. ERM and mixup AC + RP train first, seed by
seed, then the other rows one at a time with all their seeds, so that a partial sweep
already answers the first question and leaves only complete rows. `--size=full` runs the paper's recipe (configs/table5.py, wd 1e-4 and
5e-4) into experiments/results/table5_full/; `--size=smallest` (the test) trains a
width-4 network a few steps.
"""

from __future__ import annotations

from experiments import cpu_flags

cpu_flags.use_xnnpack()  # before JAX is imported

import pathlib  # pylint: disable=g-import-not-at-top,wrong-import-position
import statistics
from typing import Any, Sequence

from absl import flags
import ml_collections
import numpy as np

from experiments import cifar_runs
from experiments import plotting
from experiments import summary
from experiments import sweep
from experiments.configs import table5
from experiments.configs import table5_cpu
from mixup_jax import data as data_lib
from mixup_jax import trainer

FITTED = 1.0  # % training error of ERM's final model: the regime's threshold
# The rows run at CPU scale: every row the paper's conclusions rest on, and one
# setting each of label smoothing and noise (the paper's middle ones).
CPU_ROWS = ("erm", "mixup_ac_rp", "mixup_ac_knn", "latent1", "latent2", "latent3", "latent4",
            "latent5", "inputs_ac_rp", "inputs_sc_rp", "ls_0.1", "noise_0.1")
METRICS = ("median_last_test_error", "final_test_error", "train_error")
SIZES = {
    "cpu": {},
    "full": None,
    "smallest": {"train_size": 200, "test_size": 100, "num_epochs": 2, "batch_size": 50,
                 "eval_batch_size": 100, "log_every_steps": 2, "eval_every_steps": 2,
                 "eval_from_epoch": 1, "checkpoint_every_steps": 2, "schedule_boundaries": (1,)},
}
_BASELINES = ("erm", "mixup_ac_rp")


def run_name(row: str, weight_decay: str, seed: int) -> str:
  return f"{row}_wd{weight_decay}_seed{seed}"


def run_order(rows: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
  """ERM and mixup AC + RP seed by seed first; then the other rows, each with all its seeds.

  A sweep stopped part-way then leaves complete rows, not rows short of seeds.
  """
  first = [r for r in _BASELINES if r in rows]
  return ([(r, s) for s in seeds for r in first]
          + [(r, s) for r in rows if r not in first for s in seeds])


def make_config(row: str, weight_decay: str, seed: int, size: str,
                data_dir: str | None) -> ml_collections.ConfigDict:
  """table5_cpu.py:ROW (or table5.py:ROW,WD for 'full') at `seed` with the size's overrides."""
  config = (table5.get_config(f"{row},{weight_decay}") if SIZES[size] is None
            else table5_cpu.get_config(row))
  return sweep.with_size(config, seed=seed, overrides=SIZES[size], data_dir=data_dir,
                         width=4 if size == "smallest" else None)


def train_error(config: ml_collections.ConfigDict, results: dict[str, Any]) -> dict[str, float]:
  """The final model's top-1 error (%) on the un-augmented training images: did it fit?"""
  dataset = trainer.build_dataset(config)
  model = trainer.build_model(config, dataset.num_classes)
  images = data_lib.read_array(dataset.train, "image")
  labels = data_lib.read_array(dataset.train, "label").astype(np.int32)
  errors = cifar_runs.evaluate(model, results["state"].variables, images, labels,
                               preprocess_fn=dataset.eval_preprocess)
  return {"train_error": errors["top1_error"]}


def weight_decays(size: str) -> tuple[str, ...]:
  return table5.WEIGHT_DECAYS if SIZES[size] is None else (table5_cpu.WEIGHT_DECAY,)


def rows_of(args) -> list[str]:
  """The --rows, or the CPU rows (every row at the paper's size)."""
  return list(args.rows or (CPU_ROWS if args.size != "full" else table5.ROWS))


def planned_runs(args) -> list[tuple[str, ml_collections.ConfigDict]]:
  """(run name, config) of every (row, weight decay, seed) of the flags, in training order."""
  return [(run_name(r, wd, s), make_config(r, wd, s, args.size, args.data_dir))
          for wd in weight_decays(args.size)
          for r, s in run_order(rows_of(args), [int(s) for s in args.seeds])]


def median_last(records: list[dict[str, Any]], steps_per_epoch: int, from_epoch: int) -> float:
  """Median test error at the ends of epochs from_epoch, from_epoch + 1, ... (1-based).

  The statistic of configs/table5_cpu.py, whose evaluations start there.
  """
  at_ends = [r["test/error"] for r in records if "test/error" in r
             and r["step"] % steps_per_epoch == 0 and r["step"] >= from_epoch * steps_per_epoch]
  return statistics.median(at_ends)


def load_runs(kept) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
  """{(row, weight decay): {seed: kept results + 'median_last_test_error'}}."""
  runs: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
  for name, results in kept.items():
    row, rest = name.rsplit("_wd", 1)
    weight_decay = rest.rsplit("_seed", 1)[0]
    records = results.pop("records")
    config = results["config"]
    results["median_last_test_error"] = median_last(
        records, results["steps_per_epoch"], config.get("eval_from_epoch", 0))
    runs.setdefault((row, weight_decay), {})[config["seed"]] = results
  return runs


def _difference(by_seed, baseline, metric: str, lower_is_better: bool) -> dict[str, Any] | None:
  common = sorted(set(by_seed) & set(baseline))
  if len(common) < 2:
    return None
  d = summary.paired_difference([by_seed[s][metric] for s in common],
                                [baseline[s][metric] for s in common])
  return {**d.to_json(), "seeds": common,
          "verdict": summary.verdict(d, lower_is_better=lower_is_better)}


def aggregate(runs) -> dict[str, Any]:
  """Per (row, weight decay): mean +- SE of METRICS, and the two paired differences."""
  rows = []
  order = list(table5.ROWS)
  for (row, wd), by_seed in sorted(runs.items(), key=lambda i: (i[0][1], order.index(i[0][0]))):
    seeds = sorted(by_seed)
    paper = table5.PAPER[row][table5.WEIGHT_DECAYS.index(wd)]
    paper_erm = table5.PAPER["erm"][table5.WEIGHT_DECAYS.index(wd)]
    paper_mixup = table5.PAPER["mixup_ac_rp"][table5.WEIGHT_DECAYS.index(wd)]
    entry = {"row": row, "weight_decay": wd, "seeds": seeds, "paper": paper,
             "paper_minus_erm": paper - paper_erm, "paper_minus_mixup": paper - paper_mixup}
    for metric in METRICS:
      values = [by_seed[s][metric] for s in seeds]
      entry[metric] = {"per_seed": values,
                       **(summary.mean_se(values).to_json() if len(values) > 1 else {})}
    metric = "median_last_test_error"
    if row != "erm" and entry["paper_minus_erm"] != 0:
      # Judged on the paper's side of ERM: 'reproduced' when ours moves the same way.
      entry["minus_erm"] = _difference(by_seed, runs.get(("erm", wd), {}), metric,
                                       lower_is_better=entry["paper_minus_erm"] < 0)
    if row not in ("erm", "mixup_ac_rp"):
      # The paper: full mixup is better than the ablation, so the ablation is worse.
      entry["minus_mixup"] = _difference(by_seed, runs.get(("mixup_ac_rp", wd), {}), metric,
                                         lower_is_better=False)
    if row == "mixup_ac_rp":
      entry["minus_erm"] = _difference(by_seed, runs.get(("erm", wd), {}), metric,
                                       lower_is_better=True)
    rows.append(entry)
  return {"rows": rows}


def _fmt(entry: dict[str, Any] | None, signed: bool = False) -> str:
  if not entry:
    return "-"
  if "mean" not in entry:
    return ", ".join(f"{v:.2f}" for v in entry["per_seed"])
  mean = f"{entry['mean']:+.2f}" if signed else f"{entry['mean']:.2f}"
  return f"{mean} +- {entry['se']:.2f}"


def _judged(entry: dict[str, Any] | None) -> str:
  if not entry:
    return "-"
  low, high = entry["ci95"]
  return f"{_fmt(entry, signed=True)} [{low:+.2f}, {high:+.2f}] {entry['verdict']}"


def verdict_lines(stats: dict[str, Any]) -> list[str]:
  """The regime check, then the paper's conclusion, each a sentence from the numbers."""
  by_key = {(r["row"], r["weight_decay"]): r for r in stats["rows"]}
  lines = []
  for wd in sorted({r["weight_decay"] for r in stats["rows"]}):
    erm, mixup = by_key.get(("erm", wd)), by_key.get(("mixup_ac_rp", wd))
    if erm is None:
      continue
    fitted = max(erm["train_error"]["per_seed"])
    reached = fitted < FITTED
    lines.append(
        f"- wd {wd}: ERM's final training error is at most {fitted:.2f} % over its seeds: "
        + ("it fits its training set, the regime of the table." if reached else
           f"it does NOT fit it (threshold {FITTED:g} %): the rows are outside the table's "
           "regime."))
    if mixup is not None and mixup.get("minus_erm"):
      d = mixup["minus_erm"]
      lines.append(f"  - mixup AC + RP - ERM: {_judged(d)} over {len(d['seeds'])} seeds "
                   f"(paper {mixup['paper_minus_erm']:+.2f}).")
    judged = [r for r in stats["rows"] if r["weight_decay"] == wd and r.get("minus_mixup")]
    if judged:
      beaten = [r["row"] for r in judged if r["minus_mixup"]["verdict"] == "reproduced"]
      better = [r["row"] for r in judged if r["minus_mixup"]["verdict"] == "contradicted"]
      lines.append(
          f"  - The paper's conclusion, full mixup beats each ablation: significantly for "
          f"{len(beaten)} of {len(judged)} rows ({', '.join(beaten) or 'none'}); the "
          f"ablation is significantly better for {', '.join(better) or 'none'}; the rest "
          "are within the noise.")
    same_side = [r for r in stats["rows"] if r["weight_decay"] == wd and r.get("minus_erm")
                 and r["row"] != "mixup_ac_rp"]
    if same_side:
      agree = [r["row"] for r in same_side if r["minus_erm"]["verdict"] == "reproduced"]
      disagree = [r["row"] for r in same_side if r["minus_erm"]["verdict"] == "contradicted"]
      lines.append(
          f"  - Each row's change from ERM on the paper's side of it: significantly for "
          f"{len(agree)} of {len(same_side)} ({', '.join(agree) or 'none'}); significantly "
          f"on the other side for {', '.join(disagree) or 'none'}.")
    ses = [r["median_last_test_error"]["se"] for r in stats["rows"]
           if r["weight_decay"] == wd and "se" in r["median_last_test_error"]]
    if ses:
      lines.append(f"  - Standard error of a row: {min(ses):.2f}-{max(ses):.2f} points "
                   f"(median {statistics.median(ses):.2f}).")
    if not reached:
      lines.append("  - Not judged: outside the regime.")
  return lines


def describe(config: ml_collections.ConfigDict) -> str:
  """The run's scale in one paragraph, against the paper's."""
  if not config.train_size:
    return ("The paper's recipe: all of CIFAR-10 with crop + flip, PreAct ResNet-18, 200 "
            "epochs, median test error of the last 10 epochs. `python -m "
            "experiments.table5_cpu --size=full`.")
  steps_per_epoch = config.train_size // config.batch_size
  return (f"The first {config.train_size:,} CIFAR-10 training images and "
          + (f"the first {config.test_size:,}" if config.test_size else "all 10,000")
          + " test images; "
          + ("no crop or flip" if not config.dataset_options.get("augment", True)
             else "crop + flip")
          + f"; the authors' PreAct ResNet-18 ({config.model_options.blocks} blocks per "
          f"stage) at width {config.model_options.width}; {config.num_epochs} epochs of "
          f"batch {config.batch_size}, lr {config.learning_rate} / 10 at epochs "
          f"{', '.join(str(b) for b in config.schedule_boundaries)}, weight decay "
          f"{config.weight_decay}; the statistic is the median test error at the ends of "
          f"epochs {config.eval_from_epoch}-{config.num_epochs} (the last lr phase). Paper: "
          "all 50,000 images with crop + flip, width 64, 200 epochs, median of the last 10. "
          f"KNN rows: k = {table5_cpu.get_config('mixup_ac_knn').mixup.knn_k} of "
          f"{config.train_size:,} (paper 200 of 50,000). {steps_per_epoch} steps per epoch. "
          "`python -m experiments.table5_cpu`.")


def table(runs, stats: dict[str, Any], args) -> str:
  """The markdown table beside the paper's numbers, then the verdicts."""
  del runs
  size = args.size
  lines = [
      "# Table 5" + ("" if size == "full" else " at CPU scale")
      + ": ablations, CIFAR-10 test error (%)",
      "",
      describe(make_config("erm", table5_cpu.WEIGHT_DECAY, 0, size, None)),
      "",
      "Mean +- standard error over seeds. 'median' is the table's statistic; 'train' the "
      "final model's error on its un-augmented training images. The two differences are "
      "paired by seed, with their 95 % t-interval and verdict: '- ERM' against the side "
      "of ERM the paper found the row on (paper's change in brackets); '- mixup' against "
      "the paper's conclusion that full mixup (AC + RP) beats each ablation.",
      "",
      "| row | wd | seeds | median | final | train | paper | row - ERM (paper) | "
      "row - mixup (paper) |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  for r in stats["rows"]:
    lines.append(
        f"| {r['row']} | {r['weight_decay']} | {len(r['seeds'])} | "
        f"{_fmt(r['median_last_test_error'])} | {_fmt(r['final_test_error'])} | "
        f"{_fmt(r['train_error'])} | {r['paper']:.2f} | "
        + (f"{_judged(r.get('minus_erm'))} ({r['paper_minus_erm']:+.2f})"
           if r["row"] != "erm" else "-") + " | "
        + (f"{_judged(r.get('minus_mixup'))} ({r['paper_minus_mixup']:+.2f})"
           if r.get("minus_mixup") else "-") + " |")
  lines += ["", "Regime and verdicts:", ""] + verdict_lines(stats)
  return "\n".join(lines) + "\n"


def plot(runs, stats: dict[str, Any], args, path: pathlib.Path) -> None:
  """Each row's paired change from ERM, ours (with 95 % interval) beside the paper's."""
  del runs, args
  plt = plotting.pyplot()
  rows = [r for r in stats["rows"] if r.get("minus_erm")]
  if not rows:
    return
  fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(rows) + 1.5))
  ys = np.arange(len(rows))
  ours = [r["minus_erm"]["mean"] for r in rows]
  half = [r["minus_erm"]["mean"] - r["minus_erm"]["ci95"][0] for r in rows]
  ax.barh(ys - 0.2, ours, height=0.4, xerr=half, color="C0", label="ours (95 % interval)")
  ax.barh(ys + 0.2, [r["paper_minus_erm"] for r in rows], height=0.4, color="C1",
          label="paper")
  ax.axvline(0.0, color="k", linewidth=0.8)
  ax.set_yticks(ys)
  ax.set_yticklabels([f"{r['row']} (wd {r['weight_decay']})" for r in rows], fontsize=8)
  ax.invert_yaxis()
  ax.set_xlabel("median test error minus ERM's (points; left of 0: better than ERM)")
  ax.legend(fontsize=8)
  plotting.save(fig, path, dpi=100)


def check(args) -> None:
  sweep.check_choices("rows", rows_of(args), tuple(table5.ROWS))


def define_flags() -> None:
  flags.DEFINE_list("rows", None, "Rows of configs/table5.py to train (default: the CPU "
                    "rows, or every row for --size=full).")


EXPERIMENT = sweep.Experiment(
    name="table5_cpu", sizes=("cpu", "full", "smallest"), runs=planned_runs, load=load_runs,
    aggregate=aggregate, table=table, plots={"ablation.png": plot}, after=train_error,
    define_flags=define_flags, check=check,
    folder=lambda args: "table5_full" if args.size == "full" else "table5_cpu")


if __name__ == "__main__":
  sweep.main(EXPERIMENT)
