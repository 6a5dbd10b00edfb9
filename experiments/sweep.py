"""Multi-seed sweeps that survive interruption, declared once per experiment.

A CPU-scale reproduction is a list of named runs (a config each) that together take
an hour or more, so the sweep must be stoppable anywhere. An entry declares it:

  EXPERIMENT = sweep.Experiment(
      name="figure3_cpu", sizes=("cpu", "smallest"),
      runs=planned_runs,           # args -> [(run name, config)], in training order
      load=load_runs,              # {name: kept results + 'records'} -> the entry's runs
      aggregate=aggregate,         # runs -> results.json
      table=table,                 # (runs, stats, args) -> table.md
      plots={"curves.png": plot})  # (runs, stats, args, path) -> None

  if __name__ == "__main__":
    sweep.main(EXPERIMENT)

and `main` gives it the common command line (--seeds, --size, --runs_dir, --out_dir,
--data_dir, --aggregate_only, plus the entry's own flags), trains what is missing and
writes the outputs. Underneath:

  finished = train_missing([(name, config), ...], runs_dir=RUNS, kept_dir=OUT / 'runs')
  runs = load_kept(OUT / 'runs')   # {name: results + 'records'}

Each run trains through `trainer.train_and_evaluate` in runs_dir/NAME, which
resumes from its latest checkpoint. When it finishes, its results.json (without
machine paths) and metrics.jsonl are copied to kept_dir/NAME, where they are
committed with the project; a run kept there is never trained again, so the table
scripts only aggregate kept files.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
from typing import Any, Callable, Iterable, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
import ml_collections

from experiments import cifar_runs
from mixup_jax import trainer

# The flags defined below belong to the entry that calls `main` (its --helpshort).
flags.disclaim_key_flags()

# `after(config, results)`: extra fields for the kept results.json, computed while
# the final train state is still in memory (results['state']).
AfterRun = Callable[[ml_collections.ConfigDict, dict[str, Any]], dict[str, Any]]
_MACHINE_PATHS = ("checkpoint", "best_checkpoint")


def train_missing(runs: Iterable[tuple[str, ml_collections.ConfigDict]], *,
                  runs_dir: pathlib.Path, kept_dir: pathlib.Path,
                  after: AfterRun | None = None) -> bool:
  """Trains, in order, each run without results in kept_dir; False if one was preempted."""
  for name, config in runs:
    kept = kept_dir / name
    if (kept / "results.json").exists():
      continue
    logging.info("Training %s.", name)
    workdir = runs_dir / name
    results = trainer.train_and_evaluate(config, workdir)
    if results.get("preempted"):
      return False
    saved = json.loads((workdir / "results.json").read_text())
    for machine_path in _MACHINE_PATHS:
      saved.pop(machine_path, None)
    if after is not None:
      saved.update(after(config, results))
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(workdir / "metrics.jsonl", kept / "metrics.jsonl")
    # Written last: its presence marks the run as finished.
    (kept / "results.json").write_text(json.dumps(saved, indent=2) + "\n")
  return True


def load_kept(kept_dir: pathlib.Path) -> dict[str, dict[str, Any]]:
  """{name: kept results.json + 'records' (every metric record)} of the finished runs."""
  runs = {}
  for kept in sorted(kept_dir.glob("*/results.json")):
    results = json.loads(kept.read_text())
    metrics = kept.parent / "metrics.jsonl"
    results["records"] = [json.loads(line) for line in metrics.read_text().splitlines()
                          if line.strip()]
    runs[kept.parent.name] = results
  return runs


def with_size(config: ml_collections.ConfigDict, *, seed: int,
              overrides: Mapping[str, Any] | None, data_dir: str | None,
              width: int | None = None) -> ml_collections.ConfigDict:
  """A run's config: `seed`, the data folder if given, the size's field overrides and,
  for the test sizes, the network width."""
  config.seed = seed
  if data_dir:
    config.data_dir = data_dir
  for field, value in (overrides or {}).items():
    config[field] = value
  if width is not None:
    config.model_options.width = width
  return config


def check_choices(flag: str, values: Iterable[Any], choices: Sequence[Any]) -> None:
  """Raises app.UsageError naming --flag for any of `values` not among `choices`."""
  for value in values:
    if value not in choices:
      raise app.UsageError(f"--{flag}: {value!r} is not one of {tuple(choices)}.")


def test_curve(records: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
  """[(epoch, test error)] of a run's metric records."""
  return [(r["epoch"], r["test/error"]) for r in records if "test/error" in r]


def last_train_accuracy(records: Sequence[Mapping[str, Any]]) -> float | None:
  """The last logged training accuracy (%) on the (augmented, mixed) batches, or None."""
  train = [r for r in records if "train/accuracy" in r]
  return 100.0 * train[-1]["train/accuracy"] if train else None


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A seed sweep: the runs it trains, in order, and what it makes of the kept ones.

  Attributes:
    name: the folder of its results (experiments/results/NAME) and of its workdirs
      ($MIXUP_JAX_RUNS_DIR/NAME), unless `folder` names another for the flags.
    sizes: the --size choices, the default (the committed runs' scale) first.
    runs: args -> [(run name, config)] in training order (args: the parsed flags).
    load: {run name: kept results + 'records'} -> the entry's runs structure.
    aggregate: runs -> the statistics written to results.json.
    table: (runs, stats, args) -> table.md.
    plots: {file name: (runs, stats, args, path) -> None}.
    after: extra fields for a finished run's kept results (see `AfterRun`).
    define_flags: defines the entry's own flags (called before parsing).
    check: args -> None, raising app.UsageError for a bad flag value.
    folder: args -> the folder name when flags choose a variant (default `name`).
  """

  name: str
  sizes: Sequence[str]
  runs: Callable[[Any], Iterable[tuple[str, ml_collections.ConfigDict]]]
  load: Callable[[dict[str, dict[str, Any]]], Any]
  aggregate: Callable[[Any], dict[str, Any]]
  table: Callable[[Any, dict[str, Any], Any], str]
  plots: Mapping[str, Callable[[Any, dict[str, Any], Any, pathlib.Path], None]]
  after: AfterRun | None = None
  define_flags: Callable[[], None] = lambda: None
  check: Callable[[Any], None] = lambda args: None
  folder: Callable[[Any], str] | None = None

  def folder_name(self, args) -> str:
    return self.folder(args) if self.folder is not None else self.name


def write_outputs(experiment: Experiment, out_dir: pathlib.Path, args) -> dict[str, Any] | None:
  """results.json, table.md and the plots from the runs kept in out_dir/runs."""
  runs = experiment.load(load_kept(out_dir / "runs"))
  if not runs:
    logging.warning("No finished runs under %s.", out_dir / "runs")
    return None
  stats = experiment.aggregate(runs)
  (out_dir / "results.json").write_text(json.dumps(stats, indent=2) + "\n")
  (out_dir / "table.md").write_text(experiment.table(runs, stats, args))
  for file_name, plot in experiment.plots.items():
    plot(runs, stats, args, out_dir / file_name)
  return stats


def run(experiment: Experiment, args) -> dict[str, Any] | None:
  """Trains the runs of `args` that have no kept results (unless args.aggregate_only),
  then writes the outputs; what `main` does after parsing, callable with any object
  that has the flags' attributes (the tests pass a namespace)."""
  experiment.check(args)
  folder = experiment.folder_name(args)
  out_dir = pathlib.Path(args.out_dir or cifar_runs.RESULTS_ROOT / folder)
  if not args.aggregate_only:
    runs_dir = pathlib.Path(args.runs_dir or cifar_runs.DEFAULT_RUNS_DIR / folder)
    if not train_missing(experiment.runs(args), runs_dir=runs_dir,
                         kept_dir=out_dir / "runs", after=experiment.after):
      logging.warning("Preempted: rerun the same command to resume.")
  return write_outputs(experiment, out_dir, args)


def define_flags(experiment: Experiment) -> None:
  """The common command line of a sweep entry, then the entry's own flags."""
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every run.")
  flags.DEFINE_string("runs_dir", None, "Workdirs of the runs (default "
                      f"$MIXUP_JAX_RUNS_DIR/{experiment.name}).")
  flags.DEFINE_string("data_dir", None, "Offline datasets (default $MIXUP_JAX_DATA_DIR).")
  flags.DEFINE_string("out_dir", None, f"Where results go (default experiments/results/"
                      f"{experiment.name}).")
  flags.DEFINE_enum("size", experiment.sizes[0], list(experiment.sizes),
                    f"{experiment.sizes[0]}: the committed runs; smallest: a few steps "
                    "(the test).")
  flags.DEFINE_bool("aggregate_only", False, "Only rebuild the outputs from the kept runs.")
  experiment.define_flags()


def main(experiment: Experiment) -> None:
  """The entry's command line: parse the flags, train what is missing, print the table."""
  define_flags(experiment)

  def run_from_flags(argv: list[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    args = flags.FLAGS
    run(experiment, args)
    table = pathlib.Path(args.out_dir or cifar_runs.RESULTS_ROOT / experiment.folder_name(args))
    table = table / "table.md"
    print(table.read_text() if table.exists() else "")

  app.run(run_from_flags)
