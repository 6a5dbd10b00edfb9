r"""Which protocol gives the paper's Table 4 ERM errors? Each variant beside the paper.

  python -m experiments.uci_protocols [--num_seeds=10] [--data_dir=DIR]

writes experiments/results/uci_table4/protocols.{json,md}.

Our Table 4 ERM (experiments.uci_table4) is far better than the paper's on four of
six datasets (Arcene 17.9 against 57.6 % test error, Arrhythmia 30.9 / 56.6, Iris
6.0 / 21.3, Phishing 3.6 / 16.3). The paper states only the network and the
optimiser, so this entry trains ERM, with the paper's recipe (2 x 128 ReLU MLP, Adam
1e-3, 10 epochs of batch 16), under the protocol choices the paper leaves open:

  features   standardised with training statistics (ours) or raw, as in the files;
  order      reshuffled every epoch (ours) or the file order every epoch (the UCI
             files of Iris are sorted by class);
  split      80/20 (ours) or 50/50 (Arcene always uses its official files);
  length     10 epochs (the paper), 3 or 1 (an undertrained network);
  rate       Adam 1e-3 (the paper's default), 1e-4, or 1e-2 on raw features;

and reports each variant's test error (mean +- standard error over seeds, each seed
its own split and initialisation) beside the paper's, with the majority-class error
of the same splits: a network worse than that has learned less than nothing. A
variant "matches" a dataset when the paper's number lies in its 95 % t-interval.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from experiments import summary
from experiments import uci_table4
from mixup_jax.data import uci

OUT_DIR = uci_table4.RESULTS_DIR
# name -> Settings overrides; the first is our protocol (experiments.uci_table4).
VARIANTS = {
    "ours: standardised, shuffled, 80/20, 10 epochs": {},
    "raw features": {"preprocessing": "raw"},
    "file order (no shuffling)": {"shuffle": False},
    "raw features, file order": {"preprocessing": "raw", "shuffle": False},
    "50/50 split": {"test_fraction": 0.5},
    "3 epochs": {"num_epochs": 3},
    "1 epoch": {"num_epochs": 1},
    "raw features, 1 epoch": {"preprocessing": "raw", "num_epochs": 1},
    "Adam 1e-4": {"learning_rate": 1e-4},
    "raw features, Adam 1e-2": {"preprocessing": "raw", "learning_rate": 1e-2},
}


def majority_error(splits: uci_table4.SeedSplits) -> np.ndarray:
  """[S] test error (%) of predicting each seed's most frequent training class."""
  (_, y_train), (_, y_test) = splits.train, splits.test
  majority = [np.bincount(y).argmax() for y in y_train]
  return np.array([100.0 * np.mean(y != m) for y, m in zip(y_test, majority)])


def run_variant(name: str, settings: uci_table4.Settings, data_dir=None) -> dict[str, Any]:
  """ERM test and train error of every seed, and the majority-class test error."""
  seeds = list(range(settings.num_seeds))
  splits = uci_table4.load_seed_splits(
      name, seeds, settings.validation_fraction, data_dir,
      test_fraction=settings.test_fraction, preprocessing=settings.preprocessing)
  keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
  errors = uci_table4._fit(splits.num_classes, 0.0, settings, keys, splits.train,  # pylint: disable=protected-access
                           {"test": splits.test, "train": splits.train})
  return {"test": errors["test"].tolist(), "train": errors["train"].tolist(),
          "majority": majority_error(splits).tolist()}


def run(num_seeds: int, out_dir: pathlib.Path, data_dir=None,
        datasets=uci.UCI_DATASETS, variants=tuple(VARIANTS)) -> dict[str, Any]:
  """Every variant on every dataset; writes protocols.json and protocols.md."""
  rows = {}
  for dataset in datasets:
    rows[dataset] = {}
    for variant in variants:
      settings = uci_table4.paper_settings(num_seeds=num_seeds, datasets=(dataset,),
                                           **VARIANTS[variant])
      result = run_variant(dataset, settings, data_dir)
      test = summary.mean_se(result["test"])
      paper = uci_table4.PAPER[dataset][0]
      result.update(mean=test.mean, se=test.se,
                    matches=abs(test.mean - paper) <= test.half_width)
      rows[dataset][variant] = result
      print(f"{dataset:>10} | {variant:<48} | {test} | paper {paper}", flush=True)
  results = {"num_seeds": num_seeds, "paper_erm": {d: uci_table4.PAPER[d][0] for d in datasets},
             "rows": rows}
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "protocols.json").write_text(json.dumps(results, indent=1) + "\n")
  (out_dir / "protocols.md").write_text(markdown(results))
  return results


def markdown(results: dict[str, Any]) -> str:
  datasets = list(results["rows"])
  variants = list(next(iter(results["rows"].values())))
  header = "| variant | " + " | ".join(datasets) + " |"
  lines = ["# Table 4: which protocol gives the paper's ERM test errors (%)", "",
           f"ERM, the paper's recipe (2 x 128 MLP, Adam, 10 epochs of batch 16 unless "
           f"the variant says otherwise), mean +- standard error over "
           f"{results['num_seeds']} seeds; **bold**: the paper's number lies in the 95 % "
           "t-interval. `python -m experiments.uci_protocols`.", "",
           header, "|---" * (len(datasets) + 1) + "|",
           "| **paper** | " + " | ".join(f"**{results['paper_erm'][d]:.1f}**"
                                        for d in datasets) + " |"]
  lines.append("| majority class (our splits) | " + " | ".join(
      f"{np.mean(results['rows'][d][variants[0]]['majority']):.1f}" for d in datasets) + " |")
  for variant in variants:
    cells = []
    for d in datasets:
      r = results["rows"][d][variant]
      cell = f"{r['mean']:.1f} +- {r['se']:.1f}"
      cells.append(f"**{cell}**" if r["matches"] else cell)
    lines.append(f"| {variant} | " + " | ".join(cells) + " |")
  matched = {d: [v for v in variants if results["rows"][d][v]["matches"]] for d in datasets}
  lines += ["", "Variants that match: " + "; ".join(
      f"{d}: {', '.join(v) if v else 'none'}" for d, v in matched.items()) + "."]
  below_chance = [d for d in datasets if results["paper_erm"][d] > np.mean(
      results["rows"][d][variants[0]]["majority"])]
  if below_chance:
    lines += ["", "The paper's ERM is worse than always predicting the majority class on " +
              ", ".join(f"{d} ({results['paper_erm'][d]:.1f} against "
                        f"{np.mean(results['rows'][d][variants[0]]['majority']):.1f})"
                        for d in below_chance) +
              ": a network that learned only the class frequencies would do better, so "
              "no sound training gives those numbers; one stuck on a minority class, or "
              "diverged, can."]
  unmatched = [d for d, v in matched.items() if not v]
  if unmatched:
    lines += ["", f"No variant reproduces the paper's ERM on {', '.join(unmatched)}. "
              "Our Table 4 keeps its protocol (standardised, shuffled, 80/20, 10 epochs) "
              "and reports its ERM as measured."]
  return "\n".join(lines) + "\n"


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  run(args.num_seeds, pathlib.Path(args.out_dir), args.data_dir)
  print((pathlib.Path(args.out_dir) / "protocols.md").read_text())


if __name__ == "__main__":
  flags.DEFINE_integer("num_seeds", 10, "Seeds 0 .. num_seeds - 1.", lower_bound=2)
  flags.DEFINE_string("out_dir", str(OUT_DIR), "Where protocols.{json,md} go.")
  flags.DEFINE_string("data_dir", None, "Data directory (default $MIXUP_JAX_DATA_DIR).")
  app.run(main)
