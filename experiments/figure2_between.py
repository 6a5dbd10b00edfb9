r"""Figure 2 on the Figure 3 CPU-scale models: ERM and mixup in between training examples.

  python -m experiments.figure2_between [--seeds=0,1,2] [--runs_dir=DIR] [--data_dir=DIR] \
      [--num_pairs=1000]

writes experiments/results/figure2/{results.json, table.md, between.png}.

For --num_pairs random pairs of training images (x_i, y_i), (x_j, y_j) (the same pairs
for every model) and lambda on a grid from 0.5 to 1, the ERM and mixup networks of
experiments.figure3_cpu (full CIFAR-10, 18-22 % test error; read from the final
checkpoints in their workdirs, --runs_dir as given to figure3_cpu) are evaluated at
x = lambda * x_i + (1 - lambda) * x_j (`mixup_jax.analysis`):

  (a) miss rate: the prediction is neither y_i nor y_j;
  (b) the L2 norm of the gradient of the cross-entropy against the mixed target
      with respect to the (normalised) input.

Every seed gives one ERM and one mixup network, so each lambda has a paired
difference mixup_s - ERM_s over the seeds, with its 95 % t-interval and verdict
(`experiments.summary`). The paper (its Figure 2, no numbers) finds that mixup misses
less and has smaller gradient norms in between the data, for every lambda < 1.
"""

from __future__ import annotations

from experiments import cpu_flags

cpu_flags.use_xnnpack()  # before JAX is imported

import functools  # pylint: disable=g-import-not-at-top,wrong-import-position
import json
import pathlib
from typing import Any, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from experiments import cifar_runs
from experiments import figure3_cpu
from experiments import plotting
from experiments import summary
from mixup_jax import analysis
from mixup_jax import data as data_lib
from mixup_jax import trainer

RESULTS_DIR = cifar_runs.RESULTS_ROOT / "figure2"
LAMBDAS = np.round(np.linspace(0.5, 1.0, 11), 2)
METHODS = ("erm", "mixup")
CURVES = ("miss_rate", "grad_norm")


@functools.partial(jax.jit, static_argnames=("model",))
def _between(variables, x_i, y_i, x_j, y_j, lams, *, model):
  return analysis.in_between_per_pair(cifar_runs.logits_fn(model, variables), x_i, y_i, x_j,
                                      y_j, lams, num_classes=10)


def curves(model, variables, x_i: np.ndarray, y_i: np.ndarray, x_j: np.ndarray,
           y_j: np.ndarray, batch_size: int = 250) -> dict[str, list[float]]:
  """Miss rate (%) and mean input-gradient norm at each lambda, over all pairs."""
  miss, norms = [], []
  lams = jnp.asarray(LAMBDAS, jnp.float32)
  for start in range(0, len(y_i), batch_size):
    rows = np.arange(start, min(start + batch_size, len(y_i)))
    count = len(rows)
    rows = np.concatenate([rows, np.repeat(rows[:1], batch_size - count)])  # fixed shape
    out = _between(variables, x_i[rows], y_i[rows], x_j[rows], y_j[rows], lams, model=model)
    miss.append(np.asarray(out["miss"])[:, :count])
    norms.append(np.asarray(out["grad_norm"])[:, :count])
  miss, norms = np.concatenate(miss, axis=1), np.concatenate(norms, axis=1)
  return {"miss_rate": (100.0 * miss.mean(axis=1)).tolist(),
          "grad_norm": norms.mean(axis=1).tolist()}


def pair_inputs(dataset: data_lib.Dataset, num_pairs: int, seed: int = 0):
  """(x_i, y_i, x_j, y_j) of `num_pairs` random pairs of distinct training images.

  Only the images in a pair are normalised: the whole training split as float32
  would take 600 MB.
  """
  images = data_lib.read_array(dataset.train, "image")
  labels = data_lib.read_array(dataset.train, "label").astype(np.int32)
  pairs = np.asarray(analysis.sample_pairs(jax.random.key(seed), len(labels), num_pairs))
  inputs = lambda rows: np.asarray(dataset.eval_preprocess(jnp.asarray(images[rows])))
  return inputs(pairs[:, 0]), labels[pairs[:, 0]], inputs(pairs[:, 1]), labels[pairs[:, 1]]


def run(seeds: Sequence[int], *, runs_dir: pathlib.Path, out_dir: pathlib.Path,
        data_dir: str | None, num_pairs: int, size: str = "cpu") -> dict[str, Any]:
  """Both curves of every seed's ERM and mixup networks; writes results.json, table.md, plot."""
  config = figure3_cpu.make_config("erm", 0, size, data_dir)
  dataset = trainer.build_dataset(config)
  model = trainer.build_model(config, dataset.num_classes)
  x_i, y_i, x_j, y_j = pair_inputs(dataset, num_pairs)
  per_seed = {}
  for seed in seeds:
    per_seed[seed] = {}
    for method in METHODS:
      workdir = runs_dir / figure3_cpu.run_name(method, seed)
      per_seed[seed][method] = curves(model, cifar_runs.final_variables(workdir),
                                      x_i, y_i, x_j, y_j)
  results = {"setting": _setting(config, num_pairs, dataset.num_train), "seeds": list(seeds),
             "num_pairs": num_pairs, "lambdas": LAMBDAS.tolist(), "per_seed": per_seed,
             "summary": _summary(per_seed, seeds)}
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
  (out_dir / "table.md").write_text(_markdown(results))
  _plot(results, out_dir / "between.png")
  return results


def _setting(config, num_pairs: int, num_train: int) -> str:
  return (f"The ERM and mixup networks of experiments.figure3_cpu (full CIFAR-10, PreAct "
          f"ResNet width {config.model_options.width}, {config.model_options.blocks} block "
          "per stage, " + (f"{config.num_train_steps} steps" if config.num_train_steps
                           else f"{config.num_epochs} cosine epochs") +
          f"); {num_pairs:,} random pairs of distinct images among the {num_train:,} "
          "un-augmented training images, the same pairs for every network.")


def _summary(per_seed, seeds) -> dict[str, Any]:
  """Per curve and lambda: each method's mean +- SE and the paired mixup - ERM verdict."""
  out = {}
  for curve in CURVES:
    out[curve] = []
    for k in range(len(LAMBDAS)):
      values = {m: [per_seed[s][m][curve][k] for s in seeds] for m in METHODS}
      difference = summary.paired_difference(values["mixup"], values["erm"])
      out[curve].append({**{m: summary.mean_se(values[m]).to_json() for m in METHODS},
                         "mixup_minus_erm": {**difference.to_json(),
                                             "verdict": summary.verdict(difference)}})
  return out


def _markdown(results) -> str:
  n = len(results["seeds"])
  lines = ["# Figure 2 on the Figure 3 CPU-scale models: in between training examples", "",
           results["setting"], "",
           f"Mean +- standard error over {n} seeds (each seed: its own ERM and mixup "
           "networks). x = lambda x_i + (1 - lambda) x_j. Miss: the prediction is in neither "
           "{y_i, y_j} (%). Gradient norm: ||d CE(f(x), lambda y_i + (1 - lambda) y_j) / "
           "dx||_2 on normalised inputs. Verdicts from the 95 % t-interval of the paired "
           "mixup - ERM difference (negative: mixup lower, the paper's claim). "
           "`python -m experiments.figure2_between`.", "",
           "| lambda | ERM miss % | mixup miss % | mixup - ERM | verdict | ERM grad norm | "
           "mixup grad norm | mixup - ERM | verdict |", "|---|---|---|---|---|---|---|---|---|"]
  fmt = lambda e, p=2: f"{e['mean']:.{p}f} +- {e['se']:.{p}f}"
  diff = lambda e, p=2: f"{e['mean']:+.{p}f} +- {e['se']:.{p}f}"
  stats = results["summary"]
  for k, lam in enumerate(results["lambdas"]):
    miss, norm = stats["miss_rate"][k], stats["grad_norm"][k]
    lines.append(
        f"| {lam:.2f} | {fmt(miss['erm'], 1)} | {fmt(miss['mixup'], 1)} | "
        f"{diff(miss['mixup_minus_erm'], 1)} | {miss['mixup_minus_erm']['verdict']} | "
        f"{fmt(norm['erm'], 3)} | {fmt(norm['mixup'], 3)} | "
        f"{diff(norm['mixup_minus_erm'], 3)} | {norm['mixup_minus_erm']['verdict']} |")
  inner = len(results["lambdas"]) - 1
  counts = {curve: sum(e["mixup_minus_erm"]["verdict"] == "reproduced"
                       for e in stats[curve][:inner]) for curve in CURVES}
  against = {curve: sum(e["mixup_minus_erm"]["verdict"] == "contradicted"
                        for e in stats[curve][:inner]) for curve in CURVES}
  lines += ["", f"Of the {inner} lambdas below 1, mixup misses significantly less at "
            f"{counts['miss_rate']} (significantly more at {against['miss_rate']}) and has a "
            f"significantly smaller gradient norm at {counts['grad_norm']} (larger at "
            f"{against['grad_norm']}). Paper (Figure 2, no numbers): lower miss rate and "
            "smaller gradient norm than ERM at every lambda in between."]
  return "\n".join(lines) + "\n"


def _plot(results, path: pathlib.Path) -> None:
  plt = plotting.pyplot()
  lams = results["lambdas"]
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
  for ax, curve, title in zip(axes, CURVES, ("(a) prediction neither y_i nor y_j",
                                             "(b) input-gradient norm")):
    for i, method in enumerate(METHODS):
      entries = [e[method] for e in results["summary"][curve]]
      ax.errorbar(lams, [e["mean"] for e in entries], yerr=[e["se"] for e in entries],
                  fmt=f"C{i}-o", markersize=4, capsize=2, label=method)
    ax.set_title(title)
    ax.set_xlabel("lambda (weight of x_i)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  axes[0].set_ylabel("miss rate (%)")
  axes[1].set_ylabel("mean ||grad_x loss||_2")
  fig.suptitle("CIFAR-10, in between training examples (mean +- SE over seeds)", fontsize=10)
  plotting.save(fig, path, dpi=90)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  seeds, runs_dir, out_dir = cifar_runs.figure3_reader_args(args, "for a standard error")
  run(seeds, runs_dir=runs_dir, out_dir=out_dir, data_dir=args.data_dir,
      num_pairs=args.num_pairs)
  print((out_dir / "table.md").read_text())


def _define_flags() -> None:
  """The command line (defined here, not at import, so tests can import the module)."""
  cifar_runs.define_figure3_reader_flags("evaluate", RESULTS_DIR)
  flags.DEFINE_integer("num_pairs", 1000, "Random pairs of training images.", lower_bound=1)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
