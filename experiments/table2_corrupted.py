r"""Table 2: memorisation of corrupted labels, ERM / dropout / mixup / mixup + dropout.

  python -m experiments.table2_corrupted [--size=cpu] [--data_dir=DIR]

writes experiments/results/table2/{results.json, table.md, curves.png}.

For each corruption level (20, 50, 80 % of the training labels redrawn uniformly at
random; test labels intact) and each method, the run of
experiments/configs/table2.py ('CORRUPTION,METHOD', the paper's best setting of the
row) is trained through the loop. Reported per row:

  best test / last test   the lowest test error over the evaluations and the error
                          after the last epoch (the loop's results.json);
  train err (true / corrupted)
                          the final model's top-1 error on the clean, un-augmented
                          training set against the true and against the corrupted
                          labels (the paper's last two columns). A model that
                          memorised the noise has a low error against the
                          corrupted labels and a high one against the true labels;
  running train err       the same two errors averaged over the last epoch of
                          training, on the augmented (and mixed) inputs, as the
                          train step logs them (`train/accuracy`,
                          `train/true_label_accuracy`).

Sizes: `cpu` (the committed results), `smallest` (the test), `full` (the paper's
network and schedule: twelve ~1 h GPU runs).
"""

from __future__ import annotations

import pathlib
from typing import Any


from experiments import cifar_runs
from experiments.configs import table2

RESULTS_DIR = cifar_runs.RESULTS_ROOT / "table2"
SIZES = {
    "cpu": cifar_runs.Scale(train_size=2000, test_size=500, width=8, blocks=1, num_epochs=5,
                            batch_size=100),
    "smallest": cifar_runs.Scale(train_size=250, test_size=50, width=4, blocks=1, num_epochs=1,
                                 batch_size=50),
    "full": None,
}
CORRUPTIONS = {"cpu": table2.CORRUPTIONS, "smallest": (50,), "full": table2.CORRUPTIONS}
METHODS = {"cpu": table2.METHODS, "smallest": ("mixup_dropout",), "full": table2.METHODS}
_LABELS = {"erm": "ERM", "dropout": "ERM + dropout", "mixup": "mixup",
           "mixup_dropout": "mixup + dropout"}


def run_row(corruption: int, method: str, scale: cifar_runs.Scale | None,
            runs_dir: pathlib.Path, data_dir: str | None = None) -> dict[str, Any]:
  """Trains (or reuses) one row's run and measures its columns."""
  config = table2.get_config(f"{corruption},{method}")
  config, dataset, model = cifar_runs.prepare(config, scale, data_dir)
  workdir = runs_dir / cifar_runs.run_id(f"table2_{corruption}_{method}", config, scale)
  run = cifar_runs.train(config, workdir, dataset, model, checkpoints=scale is None)
  clean = cifar_runs.train_split_errors(model, run.variables, dataset)
  last_train = [r for r in run.history if "train/accuracy" in r][-1]
  evals = [r for r in run.history if "test/error" in r]
  return {
      "corruption": corruption,
      "method": method,
      "alpha": config.mixup.alpha,
      "dropout_rate": config.model_options.get("dropout_rate", 0.0),
      "best_test_error": run.results["best_test_error"],
      "last_test_error": run.results["final_test_error"],
      "best_epoch": run.results["best_epoch"],
      "train_error_true": clean["true_label"],
      "train_error_corrupted": clean["train_label"],
      "running_train_error_true": 100.0 * (1.0 - last_train["train/true_label_accuracy"]),
      "running_train_error_corrupted": 100.0 * (1.0 - last_train["train/accuracy"]),
      "test_error_curve": [[r["epoch"], r["test/error"]] for r in evals],
      "wall_time_s": run.results["wall_time_s"],
      "paper": _paper(corruption, method),
  }


def _paper(corruption: int, method: str) -> dict[str, float] | None:
  """The paper's numbers of the row, or None where its Table 2 has no such row."""
  if (corruption, method) not in table2.PAPER:
    return None
  keys = ("best_test", "last_test", "train_error_true", "train_error_corrupted")
  return dict(zip(keys, table2.PAPER[(corruption, method)]))


def run(size: str = "cpu", *, runs_dir: pathlib.Path = cifar_runs.DEFAULT_RUNS_DIR,
        out_dir: pathlib.Path = RESULTS_DIR, data_dir: str | None = None) -> dict[str, Any]:
  """Every row of the table at `size`; writes results.json, table.md and curves.png."""
  scale = SIZES[size]
  rows = [run_row(c, m, scale, runs_dir, data_dir)
          for c in CORRUPTIONS[size] for m in METHODS[size]]
  results = {
      "setting": "CIFAR-10 PreAct ResNet-18, paper's recipe" if scale is None else scale.describe(),
      "size": size,
      "rows": rows,
  }
  out_dir.mkdir(parents=True, exist_ok=True)
  cifar_runs.write_json(out_dir / "results.json", results)
  (out_dir / "table.md").write_text(_markdown(results))
  _plot(results, out_dir / "curves.png")
  return results


def _setting(row: dict[str, Any]) -> str:
  parts = []
  if row["alpha"]:
    parts.append(f"alpha {row['alpha']:g}")
  if row["dropout_rate"]:
    parts.append(f"p {row['dropout_rate']:g}")
  return ", ".join(parts) or "-"


def _pair(ours: float, paper: dict[str, float] | None, key: str) -> str:
  theirs = f" ({paper[key]:g})" if paper else " (-)"
  return f"{ours:.1f}{theirs}"


def _markdown(results: dict[str, Any]) -> str:
  header = ["corruption", "method", "setting", "best test", "last test", "train err (true)",
            "train err (corrupted)", "running train err (true / corrupted)"]
  rows = []
  for r in results["rows"]:
    p = r["paper"]
    rows.append([f"{r['corruption']} %", _LABELS[r["method"]], _setting(r),
                 _pair(r["best_test_error"], p, "best_test"),
                 _pair(r["last_test_error"], p, "last_test"),
                 _pair(r["train_error_true"], p, "train_error_true"),
                 _pair(r["train_error_corrupted"], p, "train_error_corrupted"),
                 f"{r['running_train_error_true']:.1f} / {r['running_train_error_corrupted']:.1f}"])
  return "\n".join([
      "# Table 2: CIFAR-10 with corrupted labels, test and training error (%)\n",
      results["setting"] + "\n",
      "Ours, with the paper's number in brackets ('-': the paper has no such row). Train "
      "err: the final model on the clean training set against the true / the corrupted "
      "labels. Running train err: averaged over the last epoch on the augmented, mixed "
      "inputs.\n",
      cifar_runs.markdown_table(header, rows),
      _claims(results),
  ])


def _claims(results: dict[str, Any]) -> str:
  """The paper's findings, checked level by level on our numbers."""
  by_key = {(r["corruption"], r["method"]): r for r in results["rows"]}
  lines = []
  for level in sorted({r["corruption"] for r in results["rows"]}):
    erm, mix = by_key.get((level, "erm")), by_key.get((level, "mixup"))
    if erm:
      memorised = erm["train_error_corrupted"] < 10.0
      lines.append(
          f"- {level} %: ERM's final training error against the corrupted labels is "
          f"{erm['train_error_corrupted']:.1f} % (paper: below 1 %): "
          + ("it memorised them, as in the paper." if memorised else
             "it did NOT memorise them; this run never reaches the regime the table is about."))
    if erm and mix:
      for key, name in (("best_test_error", "best"), ("last_test_error", "last")):
        better = mix[key] < erm[key]
        lines.append(f"- {level} %: mixup's {name} test error {mix[key]:.1f} vs ERM's "
                     f"{erm[key]:.1f}: "
                     + ("lower, as in the paper." if better else "NOT lower (paper: lower)."))
  return "Checked against the paper:\n\n" + "\n".join(lines) + "\n" if lines else ""


def _plot(results: dict[str, Any], path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  levels = sorted({r["corruption"] for r in results["rows"]})
  fig, axes = plt.subplots(1, len(levels), figsize=(3.4 * len(levels), 3.3), sharey=True,
                           squeeze=False)
  for ax, level in zip(axes[0], levels):
    for r in results["rows"]:
      if r["corruption"] == level:
        epochs, errors = zip(*r["test_error_curve"])
        ax.plot(epochs, errors, "-o", markersize=3, label=_LABELS[r["method"]])
    ax.set_title(f"{level} % corrupted labels")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("test error (%)")
  axes[0][-1].legend(fontsize=7)
  fig.suptitle("CIFAR-10 test error while training on corrupted labels", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


if __name__ == "__main__":
  cifar_runs.run_as_script(run, SIZES, RESULTS_DIR)
