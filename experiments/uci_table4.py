r"""Table 4: ERM against mixup on the paper's six UCI datasets.

  python -m experiments.uci_table4 --data_dir=../shared/data

writes experiments/results/uci_table4/{results.json, table.md, errors.png}.

Recipe: the paper's (experiments/configs/uci.py): an MLP with two hidden layers of
128 ReLU units, Adam with default settings, 10 epochs of minibatch 16 (the last
partial batch of an epoch is dropped; the order is reshuffled every epoch).

Protocol (the paper gives no seeds, splits or alpha; these are our choices):
- Seeds. Seed s fixes the train/test split (`load_uci(split_seed=s)`, a stratified
  80/20 split; Arcene keeps its official train/valid files for every seed), the
  initialisation, the data order and the mixing. ERM and mixup of the same seed share
  the split and the initialisation, so their difference is paired.
- Alpha. For each dataset, alpha is chosen from a small grid ({0.1, 0.2, 0.4, 1.0})
  on a validation split carved from the training split only: a stratified 20 % of
  the training rows (seed 1000 + s) is held out, every alpha is trained on the other
  80 % for every seed, and the alpha with the lowest mean validation error wins (ties
  go to the smaller alpha). Then ERM and mixup with that alpha are trained on the
  whole training split and evaluated once on the test split. The test errors of the
  other alphas are reported for transparency only; they never choose anything.
  (A grid of a single alpha skips the validation runs: there is nothing to choose.)

Training uses the library's train step (`mixup_jax.train.make_train_step`), vmapped
over seeds and scanned over steps inside one jitted function per (dataset, alpha)
(experiments/seed_sweep.py): the full sweep is 6 datasets x 10 seeds x 10
trainings, which as separate runs of the training loop would spend most of their
time starting up.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import tempfile
import time
from typing import Any, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from experiments import plotting
from experiments import seed_sweep
from experiments.configs import uci as uci_config
from mixup_jax import models
from mixup_jax.data import uci

# Paper Table 4, test error (%): (ERM, mixup).
PAPER = {
    "abalone": (74.0, 73.6),
    "arcene": (57.6, 48.0),
    "arrhythmia": (56.6, 46.3),
    "htru2": (2.0, 2.0),
    "iris": (21.3, 17.3),
    "phishing": (16.3, 15.2),
}
RESULTS_DIR = pathlib.Path(__file__).parent / "results" / "uci_table4"
_VALIDATION_SEED_OFFSET = 1000


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the sweep runs. The defaults are the full Table 4 run.

  Attributes:
    datasets: UCI dataset names (see `mixup_jax.data.uci.UCI_DATASETS`).
    num_seeds: seeds 0 .. num_seeds - 1.
    alphas: the mixup alphas the validation split chooses from.
    validation_fraction: share of each class of the training split held out to
      choose alpha.
    num_epochs, batch_size, learning_rate, hidden_sizes: the paper's recipe, read
      from experiments/configs/uci.py.
  """

  datasets: tuple[str, ...] = uci.UCI_DATASETS
  num_seeds: int = 10
  alphas: tuple[float, ...] = (0.1, 0.2, 0.4, 1.0)
  validation_fraction: float = 0.2
  num_epochs: int = 10
  batch_size: int = 16
  learning_rate: float = 1e-3
  hidden_sizes: tuple[int, ...] = (128, 128)
  # Protocol variants (experiments/uci_protocols.py); the defaults are our protocol.
  preprocessing: str = "standardise"
  shuffle: bool = True
  test_fraction: float = 0.2

  def __post_init__(self):
    unknown = sorted(set(self.datasets) - set(uci.UCI_DATASETS))
    if unknown or not self.datasets:
      raise ValueError(
          f"datasets must be a non-empty subset of {uci.UCI_DATASETS}, got {self.datasets}.")
    if self.num_seeds < 1:
      raise ValueError(f"num_seeds must be >= 1, got {self.num_seeds}.")
    if not self.alphas or any(not a > 0 for a in self.alphas):
      raise ValueError(f"alphas must be a non-empty list of numbers > 0, got {self.alphas}.")
    if not 0.0 < self.validation_fraction < 1.0:
      raise ValueError(f"validation_fraction must lie in (0, 1), got {self.validation_fraction}.")
    if self.preprocessing not in uci.PREPROCESSING:
      raise ValueError(f"preprocessing must be one of {uci.PREPROCESSING}, got "
                       f"{self.preprocessing!r}.")
    if not 0.0 < self.test_fraction < 1.0:
      raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}.")


def paper_settings(**overrides: Any) -> Settings:
  """Settings with the recipe of experiments/configs/uci.py (plus `overrides`)."""
  config = uci_config.get_config()
  recipe = dict(
      num_epochs=config.num_epochs,
      batch_size=config.batch_size,
      learning_rate=config.learning_rate,
      hidden_sizes=tuple(config.model_options.hidden_sizes),
  )
  return Settings(**{**recipe, **overrides})


# The smallest setting: what the test runs.
def small_settings() -> Settings:
  return paper_settings(datasets=("iris",), num_seeds=2, alphas=(1.0,), num_epochs=1)


# ------------------------------------------------------------------------------
# Data: one split per seed, stacked so the seeds can be vmapped.
# ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SeedSplits:
  """Arrays of every seed stacked on a leading axis S.

  `fit`/`validation` partition `train` (for choosing alpha); `train`/`test` are the
  dataset's split for that seed. x: [S, N, D] float32, y: [S, N] int32.
  """

  fit: tuple[np.ndarray, np.ndarray]
  validation: tuple[np.ndarray, np.ndarray]
  train: tuple[np.ndarray, np.ndarray]
  test: tuple[np.ndarray, np.ndarray]
  num_classes: int


def load_seed_splits(
    name: str, seeds: Sequence[int], validation_fraction: float, data_dir=None, *,
    test_fraction: float = 0.2, preprocessing: str = "standardise",
) -> SeedSplits:
  """The splits of dataset `name` for every seed (see the module docstring)."""
  parts = {"fit": [], "validation": [], "train": [], "test": []}
  num_classes = None
  for seed in seeds:
    data = uci.load_uci(name, data_dir, split_seed=seed, test_fraction=test_fraction,
                        preprocessing=preprocessing)
    num_classes = data.num_classes
    fit_index, val_index = uci.stratified_split(
        data.y_train, validation_fraction, _VALIDATION_SEED_OFFSET + seed)
    parts["fit"].append((data.x_train[fit_index], data.y_train[fit_index]))
    parts["validation"].append((data.x_train[val_index], data.y_train[val_index]))
    parts["train"].append((data.x_train, data.y_train))
    parts["test"].append((data.x_test, data.y_test))
  stacked = {
      k: (np.stack([x for x, _ in v]), np.stack([y for _, y in v])) for k, v in parts.items()
  }
  return SeedSplits(**stacked, num_classes=num_classes)


# ------------------------------------------------------------------------------
# Training: the library's step, vmapped over seeds (experiments/seed_sweep.py).
# ------------------------------------------------------------------------------


def _fit(num_classes, alpha, settings, keys, train, evals) -> dict[str, np.ndarray]:
  """Trains one network per seed on `train` and returns its errors (%) on `evals`."""
  model = models.get_model("mlp", num_classes, hidden_sizes=settings.hidden_sizes)
  fit = seed_sweep.make_fit(
      model, num_classes=num_classes, alpha=alpha, num_epochs=settings.num_epochs,
      batch_size=settings.batch_size, learning_rate=settings.learning_rate,
      shuffle=settings.shuffle)
  errors = fit(keys, *train, evals)
  return {k: np.asarray(v, np.float64) for k, v in errors.items()}


def choose_alpha(validation_errors: dict[float, np.ndarray]) -> float:
  """The alpha with the lowest mean validation error over seeds; ties: the smaller alpha."""
  if not validation_errors:
    raise ValueError("validation_errors is empty: pass {alpha: errors per seed}.")
  return min(validation_errors, key=lambda a: (float(np.mean(validation_errors[a])), a))


def run_dataset(name: str, settings: Settings, data_dir=None) -> dict[str, Any]:
  """Chooses alpha on validation, then trains ERM and mixup and tests them."""
  start = time.time()
  seeds = list(range(settings.num_seeds))
  splits = load_seed_splits(name, seeds, settings.validation_fraction, data_dir,
                            test_fraction=settings.test_fraction,
                            preprocessing=settings.preprocessing)
  keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
  c = splits.num_classes

  validation = {}
  if len(settings.alphas) > 1:  # With a single alpha there is nothing to choose.
    validation["erm"] = _fit(c, 0.0, settings, keys, splits.fit, {"v": splits.validation})["v"]
    for alpha in settings.alphas:
      validation[str(alpha)] = _fit(
          c, alpha, settings, keys, splits.fit, {"v": splits.validation})["v"]
  chosen = choose_alpha({a: validation[str(a)] for a in settings.alphas} if validation
                        else {settings.alphas[0]: np.zeros(1)})

  test = {"erm": _fit(c, 0.0, settings, keys, splits.train, {"t": splits.test})["t"]}
  for alpha in settings.alphas:
    test[str(alpha)] = _fit(c, alpha, settings, keys, splits.train, {"t": splits.test})["t"]

  erm, mixup = test["erm"], test[str(chosen)]
  diff = mixup - erm
  return {
      "dataset": name,
      "num_classes": c,
      "num_train": int(splits.train[1].shape[1]),
      "num_fit": int(splits.fit[1].shape[1]),
      "num_validation": int(splits.validation[1].shape[1]),
      "num_test": int(splits.test[1].shape[1]),
      "chosen_alpha": chosen,
      "erm": _summary(erm),
      "mixup": _summary(mixup),
      "mixup_minus_erm": {
          "mean": float(diff.mean()),
          "sem": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan"),
          "mixup_better": int((diff < 0).sum()),
          "tie": int((diff == 0).sum()),
          "erm_better": int((diff > 0).sum()),
      },
      "paper": {"erm": PAPER[name][0], "mixup": PAPER[name][1]},
      "validation_error": {k: _summary(v) for k, v in validation.items()},
      "test_error_every_alpha": {k: _summary(v) for k, v in test.items()},
      "wall_time_s": time.time() - start,
  }


def _summary(errors: np.ndarray) -> dict[str, Any]:
  """Mean, sample std and per-seed values of test errors (%)."""
  return {
      "mean": float(errors.mean()),
      "std": float(errors.std(ddof=1)) if len(errors) > 1 else 0.0,
      "per_seed": [round(float(e), 4) for e in errors],
  }


# ------------------------------------------------------------------------------
# The whole table and its outputs.
# ------------------------------------------------------------------------------


def run(
    settings: Settings, out_dir: str | pathlib.Path | None = RESULTS_DIR, data_dir=None
) -> dict[str, Any]:
  """Runs every dataset; writes results.json, table.md and errors.png to `out_dir`."""
  start = time.time()
  rows = []
  for name in settings.datasets:
    rows.append(run_dataset(name, settings, data_dir))
    r = rows[-1]
    print(f"{name:>10}: ERM {r['erm']['mean']:6.2f} +- {r['erm']['std']:5.2f}   "
          f"mixup (alpha {r['chosen_alpha']}) "
          f"{r['mixup']['mean']:6.2f} +- {r['mixup']['std']:5.2f}   "
          f"paper {PAPER[name][0]} -> {PAPER[name][1]}   [{r['wall_time_s']:.0f} s]", flush=True)
  results = {
      "experiment": "Table 4 (UCI)",
      "settings": dataclasses.asdict(settings),
      "protocol": __doc__.split("Protocol")[1].split("Training uses")[0].strip(),
      "datasets": rows,
      "wall_time_s": time.time() - start,
      "jax_backend": jax.default_backend(),
  }
  if out_dir is not None:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "table.md").write_text(markdown_table(results))
    plot(results, out / "errors.png")
  return results


def markdown_table(results: dict[str, Any]) -> str:
  """Paper beside ours: test error (%), mean +- std over seeds."""
  n = results["settings"]["num_seeds"]
  lines = [
      f"| dataset | paper ERM | paper mixup | ours ERM | ours mixup | alpha (val.) "
      f"| mixup - ERM (paired, +- s.e.) | mixup better / tie / worse (of {n}) |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for r in results["datasets"]:
    d = r["mixup_minus_erm"]
    lines.append(
        f"| {r['dataset']} | {r['paper']['erm']:.1f} | {r['paper']['mixup']:.1f} "
        f"| {r['erm']['mean']:.1f} +- {r['erm']['std']:.1f} "
        f"| {r['mixup']['mean']:.1f} +- {r['mixup']['std']:.1f} | {r['chosen_alpha']:g} "
        f"| {d['mean']:+.2f} +- {d['sem']:.2f} "
        f"| {d['mixup_better']} / {d['tie']} / {d['erm_better']} |")
  return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: pathlib.Path) -> None:
  """Grouped bars per dataset: the paper's ERM / mixup beside ours (+- std)."""
  plt = plotting.pyplot()

  rows = results["datasets"]
  x = np.arange(len(rows))
  width = 0.2
  fig, ax = plt.subplots(figsize=(8, 3.6), dpi=90)
  bars = [
      ("paper ERM", [r["paper"]["erm"] for r in rows], None, "#bbbbbb"),
      ("paper mixup", [r["paper"]["mixup"] for r in rows], None, "#9ecae1"),
      ("ours ERM", [r["erm"]["mean"] for r in rows], [r["erm"]["std"] for r in rows], "#636363"),
      ("ours mixup", [r["mixup"]["mean"] for r in rows], [r["mixup"]["std"] for r in rows],
       "#3182bd"),
  ]
  for i, (label, values, errs, color) in enumerate(bars):
    ax.bar(x + (i - 1.5) * width, values, width, yerr=errs, label=label, color=color, capsize=2)
  ax.set_xticks(x, [r["dataset"] for r in rows])
  ax.set_ylabel("test error (%)")
  ax.set_title(f"Table 4: UCI, mean +- std over {results['settings']['num_seeds']} seeds")
  ax.legend(fontsize=8, ncol=2)
  plotting.save(fig, path)


# ------------------------------------------------------------------------------
# Command line.
# ------------------------------------------------------------------------------


def _define_flags() -> None:
  flags.DEFINE_list("datasets", list(uci.UCI_DATASETS), "UCI datasets to run.")
  flags.DEFINE_integer("num_seeds", 10, "Seeds 0 .. num_seeds - 1.")
  flags.DEFINE_list("alphas", ["0.1", "0.2", "0.4", "1.0"], "Alpha grid chosen from on validation.")
  flags.DEFINE_string("out_dir", None, "Where the results go (default: "
                      "experiments/results/uci_table4/; a new temporary folder for "
                      "--size=smallest).")
  flags.DEFINE_string("data_dir", None, "Data directory (default $MIXUP_JAX_DATA_DIR).")
  flags.DEFINE_enum("size", "full", ["full", "smallest"], "full: the paper's recipe (the "
                    "committed results); smallest: iris, 2 seeds, 1 epoch, alpha 1 only "
                    "(the other flags ignored), for tests.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  out_dir = args.out_dir or (
      tempfile.mkdtemp(prefix="uci_table4_smallest_") if args.size == "smallest"
      else RESULTS_DIR)
  if args.size == "smallest":
    settings = small_settings()
  else:
    settings = paper_settings(
        datasets=tuple(args.datasets), num_seeds=args.num_seeds,
        alphas=tuple(float(a) for a in args.alphas))
  results = run(settings, out_dir, args.data_dir)
  print()
  print(markdown_table(results))
  print(f"Total {results['wall_time_s']:.0f} s; outputs in {out_dir}")


if __name__ == "__main__":
  _define_flags()  # Here, not at import: tests and other entries import this module.
  app.run(main)
