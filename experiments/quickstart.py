r"""mixup against ERM in a few minutes, offline, with no data to download.

  python -m experiments.quickstart

trains, on the CPU, two small experiments on data that ships with the
installed packages, prints a comparison table and saves a figure and results.json in --out_dir (default
$MIXUP_JAX_RUNS_DIR/quickstart, never the committed experiments/results/quickstart/,
which `--out_dir=experiments/results/quickstart` regenerates):

1. Handwritten digits (scikit-learn's `load_digits`: 1,797 8x8 images of 10
   digits, pixel values / 16; a stratified 80/20 split with seed 0). An MLP with
   two hidden layers of 128 ReLU units, Adam lr 1e-3, 100 epochs of batch 32, ERM
   and mixup (alpha 0.2), 5 seeds each, trained together (experiments/seed_sweep.py).
2. The 2-D toy of the paper's Figure 1b (experiments/toy_figure1b.py): ERM and mixup
   (alpha 1) through the project's training loop; the width of the band where
   0.1 < p(y=1|x) < 0.9 shows mixup's smooth transition between the classes.

Both use the project's one train step (`mixup_jax.train.make_train_step`). About 40 s
on a 2-core CPU (needs the `experiments` extra: scikit-learn and matplotlib).
`--size=smallest` runs a few steps of each, for the tests.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import tempfile
import time
from typing import Any, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from experiments import cifar_runs
from experiments import plotting
from experiments import seed_sweep
from experiments import toy_figure1b
from mixup_jax import models
from mixup_jax.data import uci

RESULTS_DIR = pathlib.Path(__file__).parent / "results" / "quickstart"


@dataclasses.dataclass(frozen=True)
class Settings:
  """The demo's two experiments. The defaults are the README's command.

  Attributes:
    num_seeds: digits networks per method, trained together.
    alpha: mixup's alpha on digits.
    num_epochs, batch_size, hidden_sizes: the digits recipe.
    toy: the Figure 1b settings (one seed).
  """

  num_seeds: int = 5
  alpha: float = 0.2
  num_epochs: int = 100
  batch_size: int = 32
  hidden_sizes: tuple[int, ...] = (128, 128)
  toy: toy_figure1b.Settings = toy_figure1b.Settings(seeds=(0,))


def small_settings() -> Settings:
  """A few steps of each experiment: what the test runs."""
  return Settings(num_seeds=2, num_epochs=1, toy=toy_figure1b.small_settings())


def load_digits_split(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{'train', 'test'}: scikit-learn's digits, pixels / 16, stratified 80/20 split."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

  digits = load_digits()
  x = (digits.data / 16.0).astype(np.float32)
  y = digits.target.astype(np.int32)
  train, test = uci.stratified_split(y, 0.2, seed)
  return {"train": (x[train], y[train]), "test": (x[test], y[test])}


def run_digits(settings: Settings) -> dict[str, Any]:
  """Test errors (%) per seed of ERM and of mixup on digits."""
  data = load_digits_split()
  seeds = settings.num_seeds
  stack = lambda a: np.broadcast_to(a, (seeds,) + a.shape)  # every seed sees the same split
  train = tuple(stack(a) for a in data["train"])
  test = tuple(stack(a) for a in data["test"])
  keys = jnp.stack([jax.random.PRNGKey(s) for s in range(seeds)])
  model = models.get_model("mlp", 10, hidden_sizes=settings.hidden_sizes)
  out = {}
  for method, alpha in (("erm", 0.0), ("mixup", settings.alpha)):
    fit = seed_sweep.make_fit(model, num_classes=10, alpha=alpha, num_epochs=settings.num_epochs,
                              batch_size=settings.batch_size)
    errors = np.asarray(fit(keys, *train, {"test": test})["test"], np.float64)
    std = float(errors.std(ddof=1)) if seeds > 1 else 0.0
    out[method] = {"per_seed": [round(float(e), 3) for e in errors], "mean": float(errors.mean()),
                   "std": std, "se": std / math.sqrt(seeds)}
    print(f"digits {method:>5}: test error {out[method]['mean']:.2f} +- {out[method]['se']:.2f} % "
          f"(mean +- standard error over {seeds} seeds)", flush=True)
  out["num_train"], out["num_test"] = len(data["train"][1]), len(data["test"][1])
  return out


def run(settings: Settings, out_dir: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Both experiments; prints the table and writes quickstart.png and results.json."""
  start = time.time()
  digits = run_digits(settings)
  toy_numbers, toy_grids = toy_figure1b.run_seed(settings.toy, settings.toy.seeds[0])
  results = {
      "settings": dataclasses.asdict(settings),
      "digits": digits,
      "toy": toy_numbers,
      "wall_time_s": time.time() - start,
  }
  if out_dir is not None:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, toy_grids, settings, out / "quickstart.png")
  return results


def table(results: dict[str, Any]) -> str:
  """The comparison, as a markdown table."""
  d, t = results["digits"], results["toy"]
  s = results["settings"]
  pm = lambda r: f"{r['mean']:.2f} +- {r['se']:.2f}"  # standard errors, as every table
  rows = [
      "| experiment | number | ERM | mixup |",
      "|---|---|---|---|",
      f"| digits, MLP, {s['num_seeds']} seeds (alpha {s['alpha']:g}) | test error (%, mean +- SE) "
      f"| {pm(d['erm'])} | {pm(d['mixup'])} |",
      f"| 2-D toy (alpha {s['toy']['alpha']:g}) | test error (%) "
      f"| {t['erm']['test_error']:.2f} | {t['mixup']['test_error']:.2f} |",
      f"| 2-D toy | width of the 0.1 < p(y=1) < 0.9 band (sharp: 0, linear: 0.8) "
      f"| {t['erm']['band_width']:.3f} | {t['mixup']['band_width']:.3f} |",
      f"| 2-D toy | steepest slope of p(y=1) between the classes (linear: 1) "
      f"| {t['erm']['max_slope_between_classes']:.2f} "
      f"| {t['mixup']['max_slope_between_classes']:.2f} |",
  ]
  return "\n".join(rows) + "\n"


def plot(
    results: dict[str, Any], toy_grids: dict[str, np.ndarray], settings: Settings, path
) -> None:
  """Digits test error per seed, and the toy's p(y=1) maps of ERM and mixup."""
  plt = plotting.pyplot()

  fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), dpi=80, layout="constrained")
  ax = axes[0]
  for i, (method, color) in enumerate((("erm", "#636363"), ("mixup", "#3182bd"))):
    errors = results["digits"][method]["per_seed"]
    ax.bar(i, np.mean(errors), color=color, alpha=0.5)
    ax.scatter(np.full(len(errors), i), errors, color=color, s=12, zorder=3)
  ax.set_xticks([0, 1], ["ERM", f"mixup ({settings.alpha:g})"])
  ax.set_ylabel("test error (%)")
  ax.set_title("digits, MLP: every seed", fontsize=10)
  seed = settings.toy.seeds[0]
  toy_figure1b.draw_probability_map(
      axes[1], toy_grids["erm"], settings.toy, seed, "2-D toy, ERM: p(y=1|x)")
  image = toy_figure1b.draw_probability_map(
      axes[2], toy_grids["mixup"], settings.toy, seed,
      f"2-D toy, mixup ({settings.toy.alpha:g}): p(y=1|x)")
  fig.colorbar(image, ax=axes[2], fraction=0.05)
  plotting.save(fig, path, tight_layout=False, bbox_inches="tight")


def default_out_dir(size: str) -> pathlib.Path:
  """Where a run writes without --out_dir: outside the checkout, so a clone stays clean."""
  if size == "smallest":
    return pathlib.Path(tempfile.mkdtemp(prefix="quickstart_smallest_"))
  return cifar_runs.DEFAULT_RUNS_DIR / "quickstart"


def _define_flags() -> None:
  flags.DEFINE_string("out_dir", None, "Where the figure and results.json go (default: "
                      "$MIXUP_JAX_RUNS_DIR/quickstart; a new temporary folder for "
                      "--size=smallest). --out_dir=experiments/results/quickstart rewrites "
                      "the committed results.")
  flags.DEFINE_enum("size", "full", ["full", "smallest"],
                    "full: the committed results; smallest: a few steps of each, for tests.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  out_dir = args.out_dir or default_out_dir(args.size)
  results = run(small_settings() if args.size == "smallest" else Settings(), out_dir)
  print()
  print(table(results))
  print(f"Total {results['wall_time_s']:.0f} s; figure: {pathlib.Path(out_dir) / 'quickstart.png'}")


if __name__ == "__main__":
  _define_flags()  # Here, not at import: tests import this module.
  app.run(main)
