"""Runs of the CIFAR-10 experiments (Tables 2, 3, 5 and Figure 2), at paper or CPU scale.

Each entry builds the paper's config (experiments/configs/*.py) and either runs it as
is (`scale=None`: the paper's network, data and schedule) or shrinks it to a
`Scale` that trains on a CPU in about a minute. A CPU-scale run is the paper's
recipe shrunk on three axes, stated beside every table it produces
(`Scale.describe`):

  data     the first `train_size` training and `test_size` test images of the real
           CIFAR-10 (offline copy, official order; classes are close to balanced);
  network  PreAct ResNet with `blocks` blocks per stage (2 is ResNet-18's layout)
           and `width` channels in the first stage (64 is the paper's);
  epochs   `num_epochs` instead of 200, at the constant learning rate 0.1 (the
           paper's first 100 epochs).

Every run goes through the one training loop (`mixup_jax.trainer.run_training`):

  config, dataset, model = prepare(table2.get_config('80,mixup'), scale)
  run = train(config, runs_dir / run_id('80_mixup', config, scale), dataset, model)
  run.results['best_test_error'], run.history, run.variables

`train` keeps each run in its own work directory named by a hash of its config and
scale, and reuses a finished one (results.json + final variables) instead of
training again, so the entries that share models (Table 3 and Figure 2) train them
once and an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from mixup_jax import data as data_lib
from mixup_jax import models as models_lib
from mixup_jax import train as train_lib
from mixup_jax import trainer
from mixup_jax.data import corruption

RESULTS_ROOT = pathlib.Path(__file__).parent / "results"
DEFAULT_RUNS_DIR = pathlib.Path(os.environ.get("MIXUP_JAX_RUNS_DIR", "/tmp/mixup_jax_runs"))
_FINAL_VARIABLES = "final_variables"  # an Orbax checkpoint, the loop's format


def enable_compilation_cache(runs_dir: pathlib.Path) -> None:
  """Keeps compiled steps on disk: a rerun (or a run with the same program) skips XLA."""
  jax.config.update("jax_compilation_cache_dir", str(runs_dir / "jax_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


@dataclasses.dataclass(frozen=True)
class Scale:
  """How far a CPU-scale run is shrunk from the paper's recipe.

  Attributes:
    train_size, test_size: leading images of the CIFAR-10 train / test splits.
    width: channels of the first stage (the paper: 64).
    blocks: PreAct blocks per stage (the paper: 2).
    num_epochs: training epochs (the paper: 200).
    batch_size: examples per step (the paper: 128).
    learning_rate: SGD rate, kept constant (the paper: 0.1, divided by 10 at
      epochs 100 and 150; a run of a few epochs ends before any drop).
    eval_every_steps: test evaluations every this many steps (0: every epoch).
  """

  train_size: int
  test_size: int
  width: int
  blocks: int
  num_epochs: int
  batch_size: int = 128
  learning_rate: float = 0.1
  eval_every_steps: int = 0

  def __post_init__(self):
    for field in ("train_size", "test_size", "width", "blocks", "num_epochs", "batch_size"):
      value = getattr(self, field)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"Scale.{field} must be a positive int, got {value!r}.")
    if self.batch_size > self.train_size:
      raise ValueError(f"Scale.batch_size={self.batch_size} exceeds train_size={self.train_size}.")

  @property
  def steps_per_epoch(self) -> int:
    return self.train_size // self.batch_size

  def describe(self) -> str:
    """One paragraph for the results: what was scaled, against the paper."""
    schedule = f"constant lr {self.learning_rate}"
    evals = (f"; test error every {self.eval_every_steps} steps" if self.eval_every_steps
             else "; test error after every epoch")
    return (f"Scaled down: data = the first {self.train_size:,} CIFAR-10 training images "
            f"(paper: 50,000) and the first {self.test_size:,} test images (paper: 10,000); "
            f"network = PreAct ResNet with {self.blocks} block(s) per stage and first-stage "
            f"width {self.width} (paper: PreAct ResNet-18, 2 blocks, width 64, 11.2M "
            f"parameters); {self.num_epochs} epochs of batch {self.batch_size} "
            f"({self.num_epochs * self.steps_per_epoch} steps; paper: 200 epochs, "
            f"78,000 steps), {schedule} (paper: 0.1 / 10 at epochs 100 and 150); "
            "augmentation, SGD momentum 0.9 and PyTorch-style weight decay as in the paper"
            f"{evals}.")


def cifar10_subset(scale: Scale, *, label_corruption: float = 0.0, corruption_seed: int = 0,
                   data_dir: str | None = None) -> data_lib.Dataset:
  """CIFAR-10 cut to the first `scale.train_size` / `scale.test_size` images.

  Args:
    scale: the sizes.
    label_corruption: fraction of the kept training labels redrawn at random
      (Table 2); the training split then also yields 'true_label'.
    corruption_seed: seed of the redrawn labels.
    data_dir: the offline data folder (default: $MIXUP_JAX_DATA_DIR).
  """
  full = data_lib.get_dataset("cifar10", data_dir=data_dir)
  dataset = dataclasses.replace(
      full, train=_prefix(full.train, scale.train_size), test=_prefix(full.test, scale.test_size),
      info={**full.info, "train_size": scale.train_size, "test_size": scale.test_size})
  if label_corruption:
    dataset = corruption.with_corrupted_labels(
        dataset, fraction=label_corruption, seed=corruption_seed)
  return dataset


def _prefix(source: data_lib.RandomAccessSource, size: int) -> data_lib.ArraySource:
  if size > len(source):
    raise ValueError(f"asked for {size} examples of a split that has {len(source)}.")
  if isinstance(source, data_lib.ArraySource):
    return data_lib.ArraySource({k: v[:size] for k, v in source.arrays.items()})
  rows = [source[i] for i in range(size)]
  return data_lib.ArraySource({k: np.stack([r[k] for r in rows]) for k in rows[0]})


def cpu_model(scale: Scale, num_classes: int, dropout_rate: float = 0.0) -> Any:
  """The scaled PreAct ResNet (blocks=2, width=64 is the paper's PreAct ResNet-18).

  On the command line: `--config.model_options.width=8 --config.model_options.blocks=1`.
  """
  return models_lib.get_model("preact_resnet18", num_classes, width=scale.width,
                              blocks=scale.blocks, dropout_rate=dropout_rate)


def shrink(config: ml_collections.ConfigDict, scale: Scale) -> ml_collections.ConfigDict:
  """A copy of the paper's `config` with the scale's epochs, batch, schedule and logging."""
  config = config.copy_and_resolve_references()
  config.num_epochs = scale.num_epochs
  config.num_train_steps = 0
  config.batch_size = scale.batch_size
  config.eval_batch_size = min(500, scale.test_size)
  config.learning_rate = scale.learning_rate
  config.schedule_shift = 0
  config.schedule = "constant"
  config.log_every_steps = scale.steps_per_epoch  # one train record per epoch
  config.eval_every_steps = scale.eval_every_steps
  # Checkpoints, if kept at all (see `train`), only at the end.
  config.checkpoint_every_steps = scale.num_epochs * scale.steps_per_epoch
  config.max_checkpoints_to_keep = 1
  return config


def prepare(config: ml_collections.ConfigDict, scale: Scale | None,
            data_dir: str | None = None) -> tuple[ml_collections.ConfigDict, data_lib.Dataset, Any]:
  """(config, dataset, model) of the paper's run `config`, or of its CPU-scale version.

  Args:
    config: a CIFAR-10 config of experiments/configs (default.py fields).
    scale: None runs the paper's setting; a Scale shrinks data, network and epochs.
    data_dir: the offline data folder (default: config.data_dir or
      $MIXUP_JAX_DATA_DIR).
  """
  if data_dir:
    config = config.copy_and_resolve_references()
    config.data_dir = data_dir
  if scale is None:
    dataset = trainer.build_dataset(config)
    return config, dataset, trainer.build_model(config, dataset.num_classes)
  if config.dataset != "cifar10":
    raise ValueError(f"CPU-scale runs use CIFAR-10, got config.dataset={config.dataset!r}.")
  dataset = cifar10_subset(scale, label_corruption=config.label_corruption,
                           corruption_seed=config.get("label_corruption_seed", 0),
                           data_dir=config.data_dir or None)
  dropout = config.model_options.get("dropout_rate", 0.0)
  return shrink(config, scale), dataset, cpu_model(scale, dataset.num_classes, dropout)


@dataclasses.dataclass
class Run:
  """A finished run: results.json, every metric record, the final variables."""

  results: dict[str, Any]
  history: list[dict[str, Any]]
  variables: Any
  workdir: pathlib.Path


def run_id(name: str, config: ml_collections.ConfigDict, scale: Scale | None,
           extra: Any = None) -> str:
  """`name` plus a hash of everything that defines the run (config, scale, extra)."""
  scale_dict = None if scale is None else dataclasses.asdict(scale)
  spec = json.dumps([config.to_dict(), scale_dict, extra], sort_keys=True, default=str)
  return f"{name}_{hashlib.sha256(spec.encode()).hexdigest()[:10]}"


def train(config: ml_collections.ConfigDict, workdir: pathlib.Path, dataset: data_lib.Dataset,
          model: Any, *, checkpoints: bool = True) -> Run:
  """Trains with `trainer.run_training`, or reuses the finished run in `workdir`.

  Args:
    config, dataset, model: the run (see `prepare`).
    workdir: from `run_id`, so a changed config never reuses another run's result.
    checkpoints: let the loop checkpoint into `workdir` (so an interrupted run
      resumes), as paper-scale runs need. CPU-scale runs last a minute: without
      checkpoints the loop keeps nothing on disk, and this function writes the
      same results.json and metrics.jsonl itself once the run has finished.
  """
  workdir = pathlib.Path(workdir)
  results_path, variables_path = workdir / "results.json", workdir / _FINAL_VARIABLES
  if results_path.exists() and variables_path.exists():
    template = jax.eval_shape(lambda: model.init(
        jax.random.PRNGKey(0), jnp.zeros((1, *dataset.input_shape)), train=False))
    with ocp.StandardCheckpointer() as checkpointer:
      variables = checkpointer.restore(variables_path.absolute(), template)
    return Run(json.loads(results_path.read_text()), read_history(workdir), variables, workdir)

  results = trainer.run_training(config, workdir if checkpoints else None, dataset=dataset,
                                 model=model)
  if results.get("preempted"):
    raise RuntimeError(f"run {workdir} was stopped by SIGTERM at step {results['step']}; "
                       "rerun the same command to resume it.")
  variables = jax.device_get(results.pop("state").variables)
  history = results.pop("history")
  workdir.mkdir(parents=True, exist_ok=True)
  if not checkpoints:
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(variables_path.absolute(), variables)
  if not checkpoints:  # written last: its presence marks a finished run
    results_path.write_text(json.dumps(results, indent=2) + "\n")
  return Run(results, history, variables, workdir)


def read_history(workdir: pathlib.Path) -> list[dict[str, Any]]:
  """The metric records of metrics.jsonl, in order."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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


def run_as_script(run: Callable[..., Any], sizes: Sequence[str], out_dir: pathlib.Path) -> None:
  """The command line every CIFAR entry shares: flags, then `run(size, ...)`, then its table.

  `run(size, *, runs_dir, out_dir, data_dir)` is the entry's own function. Flags are
  defined here, not at import, because tests import the entries.
  """
  flags.DEFINE_enum("size", "cpu", list(sizes),
                    "cpu (the committed results), smallest (what CI runs) or full (paper scale).")
  flags.DEFINE_string("runs_dir", str(DEFAULT_RUNS_DIR),
                      "Work directories of the training runs; finished runs are reused.")
  flags.DEFINE_string("out_dir", str(out_dir), "Where results.json, table.md and the plot go.")
  flags.DEFINE_string("data_dir", None, "Offline data folder (default: $MIXUP_JAX_DATA_DIR).")

  def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    runs_dir, out = pathlib.Path(f.runs_dir), pathlib.Path(f.out_dir)
    enable_compilation_cache(runs_dir)
    run(f.size, runs_dir=runs_dir, out_dir=out, data_dir=f.data_dir)
    print((out / "table.md").read_text())

  app.run(main)


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
