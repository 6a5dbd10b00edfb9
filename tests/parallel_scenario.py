"""A fixed data-parallel training run, the same in every mode and process count.

Shared by tests/test_parallel.py (one process, 8 CPU devices) and
tests/test_multiprocess.py, which also runs this file as a script in each of several
`jax.distributed` processes:

  python tests/parallel_scenario.py --process_id=0 --num_processes=2 --port=PORT \
      --local_devices=4 --out=DIR [--init_file=STATE.npz]

The run: the small CIFAR CNN at width 4 (BatchNorm after every conv), SGD with
momentum and weight decay, a fixed global batch of 32 real CIFAR-10 test images shipped
as uint8, on-device random crop + flip, mixup with one lambda per example and partners
within each device's rows, two steps; then an exact eval of 20 images padded to 32. A
1-device run with num_groups=8 makes the same random choices as the 8-device runs, so
all must agree to float tolerance. The shard_map run's mesh interleaves the processes'
devices, so there each process holds several blocks of rows.
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import sys

NUM_DEVICES = 8
GLOBAL_BATCH = 32
EVAL_ROWS = 20
NUM_STEPS = 2
NUM_CLASSES = 10


def load_batches(data_dir: pathlib.Path):
  """(train batch, padded eval batch) of real CIFAR-10 test images, uint8."""
  import numpy as np

  from mixup_jax.train import pad_batch

  with np.load(pathlib.Path(data_dir) / "cifar10" / "test_batch.npz") as arrays:
    images = arrays["image"][:GLOBAL_BATCH + EVAL_ROWS]
    labels = arrays["label"][:GLOBAL_BATCH + EVAL_ROWS].astype(np.int32)
  train_batch = {"image": images[:GLOBAL_BATCH], "label": labels[:GLOBAL_BATCH]}
  eval_batch = pad_batch(
      {"image": images[GLOBAL_BATCH:], "label": labels[GLOBAL_BATCH:]}, GLOBAL_BATCH
  )
  return train_batch, eval_batch


def _initial_state(model, tx, init_file: pathlib.Path | None):
  """The run's step-0 state: created from the seed, or read from `init_file`.

  The worker processes read the leaves the test wrote (as a restored checkpoint
  would give them), which spares each process the initialisation's compilation.
  """
  import jax
  import numpy as np

  from mixup_jax.train import create_train_state

  example = np.zeros((1, 32, 32, 3), np.float32)
  create = lambda: create_train_state(jax.random.PRNGKey(0), model, tx, example)
  if init_file is None:
    return create()
  structure = jax.tree.structure(jax.eval_shape(create))
  with np.load(init_file) as arrays:
    leaves = [arrays[str(i)] for i in range(len(arrays.files))]
  return jax.tree.unflatten(structure, leaves)


def write_initial_state(path: pathlib.Path) -> None:
  """Writes the leaves of the step-0 state for `run(..., init_file=path)`."""
  import jax
  import numpy as np

  model, tx = _model_and_optimizer(axis_name=None)
  leaves = jax.tree.leaves(_initial_state(model, tx, None))
  np.savez(path, **{str(i): np.asarray(leaf) for i, leaf in enumerate(leaves)})


def _model_and_optimizer(axis_name):
  from mixup_jax import optim
  from mixup_jax.models import get_model

  model = get_model("cifar_small_cnn", NUM_CLASSES, width=4, axis_name=axis_name)
  return model, optim.sgd(0.1, momentum=0.9, weight_decay=5e-4)


@functools.lru_cache(maxsize=None)
def run(mode: str, data_dir: pathlib.Path, init_file: pathlib.Path | None = None) -> dict:
  """Trains NUM_STEPS steps and evaluates in `mode`; numpy params, stats, metrics.

  Cached per process (test files share the runs): treat the result as read-only.
  """
  import jax
  import numpy as np

  from mixup_jax.data import augment
  from mixup_jax.spec import MixSpec
  from mixup_jax.train import make_eval_step, make_train_step

  dp = data_parallel(mode)
  options = dict(dp.step_options)
  if mode == "jit":
    options["num_groups"] = NUM_DEVICES  # choose what 8 devices choose
  train_step = make_train_step(
      num_classes=NUM_CLASSES, spec=MixSpec(alpha=1.0, granularity="example"),
      augment_fn=augment.cifar_train, **options,
  )
  eval_step = make_eval_step(preprocess_fn=augment.cifar_eval, axis_name=dp.axis_name)
  model, tx = _model_and_optimizer(dp.axis_name)
  state = dp.put_state(_initial_state(model, tx, init_file))
  train_batch, eval_batch = load_batches(data_dir)
  rows = dp.local_rows(GLOBAL_BATCH)
  local = lambda batch: {k: v[rows] for k, v in batch.items()}

  step = dp.compile_train_step(train_step)
  metrics = []
  for _ in range(NUM_STEPS):
    state, step_metrics = step(state, dp.put_batch(local(train_batch)))
    metrics.append(dp.get_metrics(step_metrics))
  sums = dp.get_metrics(dp.compile_eval_step(eval_step)(state, dp.put_batch(local(eval_batch))))
  state = dp.get_state(state)
  fetch = lambda tree: jax.tree.map(lambda leaf: np.asarray(leaf.addressable_data(0)), tree)
  return {
      "params": fetch(state.params),
      "batch_stats": fetch(state.batch_stats),
      "metrics": {k: np.stack([m[k] for m in metrics]) for k in metrics[0]},
      "eval": sums,
  }


def data_parallel(mode: str):
  """The mode's DataParallel; shard_map's mesh interleaves the processes' devices
  (and reverses each one's), so rows must follow the mesh, not the process index."""
  from mixup_jax.parallel import DataParallel

  return DataParallel.create(mode, interleaved_devices() if mode == "shard_map" else None)


def interleaved_devices():
  """Every device, round-robin over the processes, each process's devices reversed."""
  import jax

  per_process = [sorted((d for d in jax.devices() if d.process_index == p),
                        key=lambda d: -d.id) for p in range(jax.process_count())]
  return [devices[i] for i in range(len(per_process[0])) for devices in per_process]


def flatten(result: dict) -> dict:
  """A flat {name: array} view of a run() result (for npz files and comparisons)."""
  import jax
  import numpy as np

  flat = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(result):
    flat[jax.tree_util.keystr(path)] = np.asarray(leaf)
  return flat


def _main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--process_id", type=int, required=True)
  parser.add_argument("--num_processes", type=int, required=True)
  parser.add_argument("--port", type=int, required=True)
  parser.add_argument("--local_devices", type=int, required=True)
  parser.add_argument("--out", type=pathlib.Path, required=True)
  parser.add_argument("--modes", default="pmap,sharded,shard_map")
  parser.add_argument("--init_file", type=pathlib.Path, default=None)
  args = parser.parse_args()

  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  from experiments import cpu_flags
  os.environ["XLA_FLAGS"] = cpu_flags.with_patient_collectives(
      f"--xla_force_host_platform_device_count={args.local_devices}")
  os.environ["JAX_PLATFORMS"] = "cpu"
  import numpy as np

  from mixup_jax import parallel

  parallel.initialize_distributed(
      f"127.0.0.1:{args.port}", args.num_processes, args.process_id
  )
  import jax

  assert jax.device_count() == args.local_devices * args.num_processes, jax.devices()
  for mode in args.modes.split(","):
    result = run(mode, pathlib.Path(os.environ["MIXUP_JAX_DATA_DIR"]), args.init_file)
    np.savez(args.out / f"{mode}_process{args.process_id}.npz", **flatten(result))
    np.save(args.out / f"{mode}_rows{args.process_id}.npy",
            data_parallel(mode).local_rows(GLOBAL_BATCH))
  jax.distributed.shutdown()


if __name__ == "__main__":
  _main()
