"""Multi-seed sweeps that survive interruption: train what is missing, keep what finished.

A CPU-scale reproduction is a list of named runs (a config each) that together take
an hour or more, so the sweep must be stoppable anywhere:

  finished = train_missing([(name, config), ...], runs_dir=RUNS, kept_dir=OUT / 'runs')
  runs = load_kept(OUT / 'runs')   # {name: results + 'records'}

Each run trains through `trainer.train_and_evaluate` in runs_dir/NAME, which
resumes from its latest checkpoint. When it finishes, its results.json (without
machine paths) and metrics.jsonl are copied to kept_dir/NAME, where they are
committed with the project; a run kept there is never trained again, so the table
scripts only aggregate kept files.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any, Callable, Iterable

from absl import logging
import ml_collections

from mixup_jax import trainer

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
