"""What the CIFAR-10 entries share: where runs and results live, and evaluating a run.

The entries (figure3_cpu, table2_cpu, table5_cpu, table3_figure3, figure2_between)
train through `experiments.sweep` and the one loop (`mixup_jax.trainer`), each run in
its own workdir under DEFAULT_RUNS_DIR, with its scale in its config
(experiments/configs/*_cpu.py). This module holds what they do with a trained run:

  variables = final_variables(runs_dir / 'mixup_seed0')   # the loop's last checkpoint
  evaluate(model, variables, images, labels, preprocess_fn=dataset.eval_preprocess)
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
from typing import Any, Sequence

from absl import app
from absl import flags
import flax
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from mixup_jax import data as data_lib
from mixup_jax import train as train_lib

RESULTS_ROOT = pathlib.Path(__file__).parent / "results"
DEFAULT_RUNS_DIR = pathlib.Path(os.environ.get("MIXUP_JAX_RUNS_DIR", "/tmp/mixup_jax_runs"))

# The flags defined below belong to the entry that asks for them (its --helpshort).
flags.disclaim_key_flags()


def define_figure3_reader_flags(purpose: str, results_dir: pathlib.Path) -> None:
  """The command line of an entry that evaluates experiments.figure3_cpu's networks."""
  flags.DEFINE_list("seeds", ["0", "1", "2"], f"Seeds whose ERM and mixup runs to {purpose}.")
  flags.DEFINE_string("runs_dir", None, "experiments.figure3_cpu's --runs_dir (default "
                      "$MIXUP_JAX_RUNS_DIR/figure3_cpu).")
  flags.DEFINE_string("data_dir", None, "Offline datasets (default $MIXUP_JAX_DATA_DIR).")
  flags.DEFINE_string("out_dir", str(results_dir), "Where results go.")


def figure3_reader_args(args, why_two_seeds: str) -> tuple[list[int], pathlib.Path, pathlib.Path]:
  """(seeds, runs_dir, out_dir) of those flags; fewer than two seeds is a usage error."""
  seeds = [int(s) for s in args.seeds]
  if len(seeds) < 2:
    raise app.UsageError(f"--seeds: at least two ({why_two_seeds}).")
  runs_dir = pathlib.Path(args.runs_dir or DEFAULT_RUNS_DIR / "figure3_cpu")
  return seeds, runs_dir, pathlib.Path(args.out_dir)


def final_variables(workdir: pathlib.Path) -> dict[str, Any]:
  """{'params', 'batch_stats'} of the newest checkpoint of a finished loop run."""
  checkpoints = pathlib.Path(workdir) / "checkpoints"
  steps = sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()) if (
      checkpoints.is_dir()) else []
  if not steps:
    raise FileNotFoundError(f"no checkpoint in {checkpoints}: train the run first (e.g. "
                            "python -m experiments.figure3_cpu --runs_dir=...).")
  path = checkpoints / str(steps[-1]) / "state"
  checkpointer = ocp.StandardCheckpointer()
  one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one_device),
                        checkpointer.metadata(path).item_metadata.tree)
  state = checkpointer.restore(path, target)["train_state"]
  return {"params": state["params"], "batch_stats": state["batch_stats"]}


def logits_fn(model: Any, variables: Any):
  """Eval-mode `x -> logits` of a trained model (running BatchNorm statistics)."""
  return lambda x: model.apply(variables, x, train=False)


def eval_arrays(dataset: data_lib.Dataset, split: str, label_key: str = "label",
                size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(normalised float32 images [N, 32, 32, 3], int32 labels [N]) of a split."""
  source = getattr(dataset, split)
  images = data_lib.read_array(source, "image")
  labels = data_lib.read_array(source, label_key).astype(np.int32)
  if size is not None:
    images, labels = images[:size], labels[:size]
  return np.asarray(dataset.eval_preprocess(jnp.asarray(images))), labels


def evaluate(model: Any, variables: Any, inputs: np.ndarray, labels: np.ndarray, *,
             preprocess_fn=None, batch_size: int = 500) -> dict[str, float]:
  """{'loss', 'top1_error', 'top5_error'} (%) of a model on arrays, with the library's eval step.

  Args:
    model, variables: the network and its trained variables.
    inputs: [N, ...] model inputs (or uint8 images with `preprocess_fn`).
    labels: [N] int class ids.
    preprocess_fn: e.g. `dataset.eval_preprocess`; None for float model inputs.
    batch_size: rows per compiled call (the last batch is padded and masked).
  """
  state = _EvalState(variables, model.apply)
  eval_step = _compiled_eval_step(preprocess_fn)
  total = None
  for start in range(0, len(labels), batch_size):
    batch = train_lib.pad_batch({"image": inputs[start:start + batch_size],
                                 "label": labels[start:start + batch_size]}, batch_size)
    sums = eval_step(state, batch)
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
  return train_lib.eval_metrics_from_sums(total)


@functools.lru_cache(maxsize=8)
def _compiled_eval_step(preprocess_fn):
  return jax.jit(train_lib.make_eval_step(preprocess_fn=preprocess_fn))


def train_split_errors(model: Any, variables: Any, dataset: data_lib.Dataset) -> dict[str, float]:
  """Top-1 error (%) of the final model on the un-augmented training split, as Table 2 reads.

  The paper's last two columns are errors on two subsets: the examples whose label is
  intact, against it ('intact': ~0 for a model that learned them), and the examples
  whose label was changed, against the changed label ('corrupted': ~0 for a model that
  memorised the noise, ~90 % for one that predicts the true class). An example whose
  label was redrawn to its own class counts as intact: nothing tells them apart.
  Needs a split with 'true_label' (`get_dataset(..., label_corruption=f)`).
  """
  images = data_lib.read_array(dataset.train, "image")
  labels = data_lib.read_array(dataset.train, "label").astype(np.int32)
  true_labels = data_lib.read_array(dataset.train, "true_label").astype(np.int32)
  changed = labels != true_labels
  error = lambda rows: evaluate(model, variables, images[rows], labels[rows],
                                preprocess_fn=dataset.eval_preprocess)["top1_error"]
  return {"intact": error(~changed), "corrupted": error(changed)}


@flax.struct.dataclass
class _EvalState:
  """The two fields `make_eval_step` reads from a train state."""

  variables: Any
  apply_fn: Any = flax.struct.field(pytree_node=False)


def write_json(path: pathlib.Path, payload: Any) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any):
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  """A GitHub markdown table; floats with 2 decimals, None as '-'."""
  def cell(value):
    if value is None:
      return "-"
    if isinstance(value, float):
      return f"{value:.2f}"
    return str(value)

  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
  return "\n".join(lines) + "\n"
