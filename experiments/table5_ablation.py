r"""Table 5: the ablation study, every row at weight decay 1e-4 and 5e-4.

  python -m experiments.table5_ablation [--size=cpu] [--data_dir=DIR]

writes experiments/results/table5/{results.json, table.md, ablation.png}.

Every row of experiments/configs/table5.py ('ROW,WEIGHT_DECAY': ERM; mixup AC + RP and
AC + KNN; mixing labels and the hidden representation at layers 1-5; mixing inputs
only with SC / AC x KNN / RP pairing; label smoothing; mixing inputs + label
smoothing; Gaussian input noise) is trained through the loop at both weight decays,
and the statistic of the authors' code is reported: the median test error at the ends
of the last 10 epochs (`median_last_10_epochs_test_error` in the loop's results; at CPU
scale, 5 epochs, the median of those 5).

KNN pairing needs k-NN partners from the loop (`config.mixup.pairing = 'knn'`); at
CPU scale the 200 neighbours of the paper (of 50,000 images) become
k = 200 * train_size / 50,000, at least 2, so that a neighbourhood is the same share
of the data. If the loop in use does not offer k-NN pairing, those rows are reported
as not run, with the reason.

Sizes: `cpu` (the committed results), `smallest` (the test: one KNN row, one weight
decay), `full` (the paper's network and schedule: 44 ~1 h GPU runs).
"""

from __future__ import annotations

import pathlib
from typing import Any

from absl import logging

from experiments import cifar_runs
from experiments.configs import table5
from mixup_jax import trainer

RESULTS_DIR = cifar_runs.RESULTS_ROOT / "table5"
SIZES = {
    # Evaluated every half epoch: 10 evaluations in 5 epochs.
    "cpu": cifar_runs.Scale(train_size=400, test_size=400, width=8, blocks=1, num_epochs=5,
                            batch_size=50, eval_every_steps=4),
    "smallest": cifar_runs.Scale(train_size=200, test_size=50, width=4, blocks=1, num_epochs=2,
                                 batch_size=50),
    "full": None,
}
ROWS = {"cpu": tuple(table5.ROWS), "smallest": ("inputs_sc_knn",), "full": tuple(table5.ROWS)}
WEIGHT_DECAYS = {"cpu": table5.WEIGHT_DECAYS, "smallest": ("5e-4",), "full": table5.WEIGHT_DECAYS}
_PAPER_KNN_K, _PAPER_TRAIN_SIZE = 200, 50_000


def knn_unsupported_reason() -> str | None:
  """Why the loop cannot run k-NN pairing, or None when it can."""
  config = table5.get_config("mixup_ac_knn,1e-4")
  try:
    trainer.validate_config(config)
  except trainer.ConfigError as e:
    return str(e)
  return None


def run_cell(row: str, weight_decay: str, scale: cifar_runs.Scale | None, runs_dir: pathlib.Path,
             data_dir: str | None = None) -> dict[str, Any]:
  """Trains (or reuses) one row at one weight decay; returns its errors."""
  config = table5.get_config(f"{row},{weight_decay}")
  if scale is not None and table5.uses_knn(row):
    config.mixup.knn_k = max(2, round(_PAPER_KNN_K * scale.train_size / _PAPER_TRAIN_SIZE))
  config, dataset, model = cifar_runs.prepare(config, scale, data_dir)
  name = f"table5_{row}_{weight_decay}"
  run = cifar_runs.train(config, runs_dir / cifar_runs.run_id(name, config, scale), dataset, model,
                         checkpoints=scale is None)
  epoch_ends = [r for r in run.history
                if "test/error" in r and r["step"] % run.results["steps_per_epoch"] == 0]
  return {"median_last_10_epochs_test_error": run.results["median_last_10_epochs_test_error"],
          "evaluations_in_median": min(10, len(epoch_ends)),
          "best_test_error": run.results["best_test_error"],
          "final_test_error": run.results["final_test_error"],
          "wall_time_s": run.results["wall_time_s"]}


def run(size: str = "cpu", *, runs_dir: pathlib.Path = cifar_runs.DEFAULT_RUNS_DIR,
        out_dir: pathlib.Path = RESULTS_DIR, data_dir: str | None = None) -> dict[str, Any]:
  """Every row at both weight decays; writes results.json, table.md and ablation.png."""
  scale = SIZES[size]
  knn_reason = knn_unsupported_reason()
  rows = {}
  for row in ROWS[size]:
    rows[row] = {"paper": dict(zip(table5.WEIGHT_DECAYS, table5.PAPER[row]))}
    for wd in WEIGHT_DECAYS[size]:
      if table5.uses_knn(row) and knn_reason:
        logging.warning("Table 5 row %s not run: %s", row, knn_reason)
        rows[row][wd] = {"not_run": knn_reason}
        continue
      rows[row][wd] = run_cell(row, wd, scale, runs_dir, data_dir)
  results = {
      "setting": "CIFAR-10 PreAct ResNet-18, paper's recipe" if scale is None else scale.describe(),
      "size": size,
      "test_size": 10_000 if scale is None else scale.test_size,
      "statistic": ("median test error (%) of the last 10 epochs" if scale is None else
                    "median test error (%) of the last 10 evaluations (one every "
                    f"{scale.eval_every_steps or scale.steps_per_epoch} steps)"),
      "rows": rows,
  }
  out_dir.mkdir(parents=True, exist_ok=True)
  cifar_runs.write_json(out_dir / "results.json", results)
  (out_dir / "table.md").write_text(_markdown(results))
  _plot(results, out_dir / "ablation.png")
  return results


def _median(results: dict[str, Any], row: str, wd: str) -> float | None:
  cell = results["rows"].get(row, {}).get(wd)
  if not cell or "not_run" in cell:
    return None
  return cell["median_last_10_epochs_test_error"]


def _deltas(results: dict[str, Any], wd: str) -> dict[str, tuple[float | None, float]]:
  """row -> (ours - our ERM, paper - paper's ERM), in percentage points."""
  ours_erm = _median(results, "erm", wd)
  paper_erm = results["rows"]["erm"]["paper"][wd] if "erm" in results["rows"] else None
  out = {}
  for row, cells in results["rows"].items():
    ours = _median(results, row, wd)
    out[row] = (None if ours is None or ours_erm is None else ours - ours_erm,
                None if paper_erm is None else cells["paper"][wd] - paper_erm)
  return out


def _fmt(value: float | None, signed: bool = False) -> str:
  if value is None:
    return "-"
  return f"{value:+.2f}" if signed else f"{value:.2f}"


def _markdown(results: dict[str, Any]) -> str:
  header = ["row"]
  for wd in table5.WEIGHT_DECAYS:
    header += [f"ours wd {wd}", "ours - ERM", f"paper wd {wd}", "paper - ERM"]
  deltas = {wd: _deltas(results, wd) for wd in table5.WEIGHT_DECAYS}
  body = []
  for row, cells in results["rows"].items():
    line = [row]
    for wd in table5.WEIGHT_DECAYS:
      ours_delta, paper_delta = deltas[wd][row]
      not_run = "not_run" in cells.get(wd, {})
      line += ["not run" if not_run else _fmt(_median(results, row, wd)), _fmt(ours_delta, True),
               _fmt(cells["paper"][wd]), _fmt(paper_delta, True)]
    body.append(line)
  notes = sorted({c["not_run"] for cells in results["rows"].values() for k, c in cells.items()
                  if k != "paper" and "not_run" in c})
  lines = ["# Table 5: ablation, " + results["statistic"] + "\n", results["setting"] + "\n",
           "Row names: experiments/configs/table5.py. 'ours - ERM' and 'paper - ERM': the "
           "change from the ERM row at the same weight decay, in percentage points "
           "(negative: the row helps).\n",
           cifar_runs.markdown_table(header, body)]
  if notes:
    lines.append("Not run: " + " ".join(notes) + "\n")
  lines.append(_claims(results, deltas))
  return "\n".join(lines)


def _claims(results: dict[str, Any], deltas) -> str:
  """How many rows move the error in the paper's direction, and our noise level."""
  parts = []
  for wd in table5.WEIGHT_DECAYS:
    pairs = [(o, p) for row, (o, p) in deltas[wd].items()
             if row != "erm" and o is not None and p is not None and p != 0]
    if pairs:
      agree = sum((o < 0) == (p < 0) for o, p in pairs)
      parts.append(f"at wd {wd}, {agree} of {len(pairs)} rows change the error in the "
                   "paper's direction (better or worse than ERM)")
  erm = _median(results, "erm", "1e-4") or _median(results, "erm", "5e-4")
  noise = ""
  if erm is not None and results.get("test_size"):
    p, n = erm / 100.0, results["test_size"]
    noise = (f" One of our test errors near {erm:.0f} % on {n} test images has a standard "
             f"error of about {100 * (p * (1 - p) / n) ** 0.5:.1f} points, while the paper's "
             "rows differ from ERM by 0.1-1.6 points.")
  if not parts:
    return ""
  return "Checked against the paper: " + "; ".join(parts) + "." + noise + "\n"


def _plot(results: dict[str, Any], path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  names = [n for n in results["rows"] if n != "erm"]
  fig, axes = plt.subplots(1, 2, figsize=(10, 0.26 * len(names) + 1.8), sharey=True)
  for ax, wd in zip(axes, table5.WEIGHT_DECAYS):
    deltas = _deltas(results, wd)
    ys = range(len(names))
    for offset, which, color, label in ((-0.2, 0, "C0", "ours"), (0.2, 1, "C1", "paper")):
      bars = [(y + offset, deltas[n][which]) for y, n in zip(ys, names)
              if deltas[n][which] is not None]
      ax.barh([y for y, _ in bars], [d for _, d in bars], height=0.4, color=color, label=label)
    ax.axvline(0.0, color="k", linewidth=0.8)
    ax.set_title(f"weight decay {wd}", fontsize=9)
    ax.set_xlabel("median test error minus ERM's (percentage points)", fontsize=8)
    ax.set_yticks(list(ys))
    ax.set_yticklabels(names, fontsize=7)
    ax.grid(axis="x", alpha=0.3)
  axes[0].invert_yaxis()
  axes[1].legend(fontsize=8)
  fig.suptitle("Table 5 ablation: each row against ERM (left of 0: better than ERM)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


if __name__ == "__main__":
  cifar_runs.run_as_script(run, SIZES, RESULTS_DIR)
