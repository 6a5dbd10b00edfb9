r"""Figure 2: what ERM and mixup models predict in between training examples.

  python -m experiments.figure2_between [--size=cpu] [--data_dir=DIR]

writes experiments/results/figure2/{results.json, table.md, between.png}.

For `num_pairs` random pairs of training examples (x_i, y_i), (x_j, y_j) and lambda
on a grid from 0.5 to 1, the ERM and the mixup CIFAR-10 models are evaluated at
x = lambda * x_i + (1 - lambda) * x_j (`mixup_jax.analysis`):

  (a) miss rate: the prediction is neither y_i nor y_j;
  (b) the L2 norm of the gradient of the cross-entropy against the mixed target
      with respect to the (normalised) input.

The paper (its Figure 2, CIFAR-10 models, no numbers given) finds that mixup misses
less and has smaller gradient norms in between the data. The models are Table 3's ERM
(seed 0) and mixup models (experiments/table3_adversarial.py), trained once and shared:
running either entry first trains them.

Sizes: `cpu` (the committed results), `smallest` (the test), `full` (the paper's
CIFAR-10 networks and schedule).
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import cifar_runs
from experiments import table3_adversarial as table3
from mixup_jax import analysis

RESULTS_DIR = cifar_runs.RESULTS_ROOT / "figure2"
NUM_PAIRS = {"cpu": 500, "smallest": 16, "full": 10000}
LAMBDAS = np.round(np.linspace(0.5, 1.0, 11), 2)


@functools.partial(jax.jit, static_argnames=("model",))
def _between(variables, x_i, y_i, x_j, y_j, lams, *, model):
  return analysis.in_between_per_pair(cifar_runs.logits_fn(model, variables), x_i, y_i, x_j,
                                      y_j, lams, num_classes=10)


def curves(model, variables, x: np.ndarray, y: np.ndarray, pairs: np.ndarray,
           batch_size: int = 250) -> dict[str, list[float]]:
  """Miss rate (%) and mean input-gradient norm at each lambda, over all `pairs`."""
  miss, norms = [], []
  for start in range(0, len(pairs), batch_size):
    rows = pairs[start:start + batch_size]
    count = len(rows)
    rows = np.concatenate([rows, np.repeat(rows[:1], batch_size - count, axis=0)])  # fixed shape
    i, j = rows[:, 0], rows[:, 1]
    lams = jnp.asarray(LAMBDAS, jnp.float32)
    out = _between(variables, x[i], y[i], x[j], y[j], lams, model=model)
    miss.append(np.asarray(out["miss"])[:, :count])
    norms.append(np.asarray(out["grad_norm"])[:, :count])
  miss, norms = np.concatenate(miss, axis=1), np.concatenate(norms, axis=1)
  return {"miss_rate": (100.0 * miss.mean(axis=1)).tolist(),
          "grad_norm": norms.mean(axis=1).tolist(),
          "grad_norm_std": norms.std(axis=1).tolist()}


def run(size: str = "cpu", *, runs_dir: pathlib.Path = cifar_runs.DEFAULT_RUNS_DIR,
        out_dir: pathlib.Path = RESULTS_DIR, data_dir: str | None = None) -> dict[str, Any]:
  """Trains (or reuses) the ERM and mixup models, computes both curves, writes the outputs."""
  scale = table3.SIZES[size]
  dataset, model, runs = table3.train_models(scale, runs_dir, names=("erm", "mixup"),
                                             data_dir=data_dir)
  x, y = cifar_runs.eval_arrays(dataset, "train")
  pairs = np.asarray(analysis.sample_pairs(jax.random.PRNGKey(0), len(y), NUM_PAIRS[size]))
  results = {
      "setting": ("CIFAR-10 PreAct ResNet-18, paper's CIFAR recipe" if scale is None
                  else scale.describe()),
      "size": size,
      "num_pairs": int(len(pairs)),
      "pairs_from": f"the {len(y):,} training images (un-augmented), pairs of distinct images",
      "lambdas": LAMBDAS.tolist(),
      "models": {name: {"final_test_error": r.results["final_test_error"]}
                 for name, r in runs.items()},
      "curves": {name: curves(model, r.variables, x, y, pairs) for name, r in runs.items()},
      "paper": "Figure 2 (no numbers): mixup has a lower miss rate and a smaller gradient norm "
               "than ERM for every lambda in between.",
  }
  out_dir.mkdir(parents=True, exist_ok=True)
  cifar_runs.write_json(out_dir / "results.json", results)
  (out_dir / "table.md").write_text(_markdown(results))
  _plot(results, out_dir / "between.png")
  return results


def _markdown(results: dict[str, Any]) -> str:
  erm, mix = results["curves"]["erm"], results["curves"]["mixup"]
  rows = [[f"{lam:.2f}", erm["miss_rate"][k], mix["miss_rate"][k], erm["grad_norm"][k],
           mix["grad_norm"][k]] for k, lam in enumerate(results["lambdas"])]
  lower_miss = sum(m < e for m, e in zip(mix["miss_rate"][:-1], erm["miss_rate"][:-1]))
  lower_norm = sum(m < e for m, e in zip(mix["grad_norm"][:-1], erm["grad_norm"][:-1]))
  inner = len(results["lambdas"]) - 1
  return "\n".join([
      "# Figure 2: in between training examples, ERM vs mixup\n",
      results["setting"] + "\n",
      f"{results['num_pairs']} random pairs from {results['pairs_from']}; x = lambda x_i + "
      "(1 - lambda) x_j. Miss: prediction in neither {y_i, y_j} (%). Gradient norm: "
      "||d CE(f(x), lambda y_i + (1 - lambda) y_j) / dx||_2 on normalised inputs.\n",
      cifar_runs.markdown_table(
          ["lambda", "ERM miss %", "mixup miss %", "ERM grad norm", "mixup grad norm"], rows),
      f"mixup misses less than ERM at {lower_miss} of the {inner} lambdas below 1 and has the "
      f"smaller gradient norm at {lower_norm} of them. Paper: {results['paper']}\n",
  ])


def _plot(results: dict[str, Any], path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  lams = results["lambdas"]
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
  for name, label, color in (("erm", "ERM", "C0"), ("mixup", "mixup", "C1")):
    curve = results["curves"][name]
    axes[0].plot(lams, curve["miss_rate"], "-o", color=color, label=label, markersize=4)
    axes[1].plot(lams, curve["grad_norm"], "-o", color=color, label=label, markersize=4)
  axes[0].set_ylabel("miss rate (%)")
  axes[0].set_title("(a) prediction neither y_i nor y_j")
  axes[1].set_ylabel("mean ||grad_x loss||_2")
  axes[1].set_title("(b) input-gradient norm")
  for ax in axes:
    ax.set_xlabel("lambda (weight of x_i)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle("CIFAR-10, in between training examples", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


if __name__ == "__main__":
  cifar_runs.run_as_script(run, table3.SIZES, RESULTS_DIR)
