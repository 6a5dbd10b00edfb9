r"""Trains and evaluates one run described by a config file.

  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=/tmp/mixup_cifar10 [--config.mixup.alpha=0.2] [--data_dir=DIR]

Any config field can be overridden with --config.FIELD=VALUE. The data directory
comes from --data_dir, else --config.data_dir, else $MIXUP_JAX_DATA_DIR. Rerunning
the command on the same workdir resumes from its latest checkpoint. On SIGTERM the
run saves a checkpoint and exits with status 0; a bad config exits with status 2
and a message naming the field, before anything is loaded.

Several processes (hosts) train one run together with --distributed: every process
runs the same command, feeds its own rows of each global batch and writes the same
checkpoints (process 0 writes metrics and results). The coordinator address,
process count and process id come from --coordinator_address, --num_processes and
--process_id, else from JAX's own detection (Cloud TPU VMs, SLURM, Open MPI,
Kubernetes, or $JAX_COORDINATOR_ADDRESS with the two flags). config.parallel must
span the processes ('sharded', 'shard_map' or 'pmap'). A SIGTERM to any process
stops all of them at the same step with one complete checkpoint, and each exits 0:

  python -m experiments.main --config=experiments/configs/default.py \
      --config.parallel=sharded --workdir=gs://BUCKET/run --distributed
"""

from experiments import cpu_flags

cpu_flags.use_xnnpack()  # before JAX is imported: faster CPU convolutions

# pylint: disable=g-import-not-at-top,wrong-import-position
import logging as std_logging
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from mixup_jax import parallel
from mixup_jax import trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file (experiments/configs/NAME.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics.jsonl, TensorBoard events and "
    "results.json; a run resumes from the checkpoint found there.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder of the offline datasets (overrides --config.data_dir and "
    "$MIXUP_JAX_DATA_DIR).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join a multi-process run (jax.distributed.initialize) before "
    "anything else; see the module docstring.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "HOST:PORT of process 0's coordinator, with --distributed "
    "(default: detected from the cluster environment).")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes in the run, with --distributed (default: detected).",
    lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index in [0, num_processes), with --distributed "
    "(default: detected).", lower_bound=0)
flags.mark_flags_as_required(["config", "workdir"])


class _OrbaxWarningsOnly(std_logging.Filter):
  """Orbax logs every file of every save at INFO; keep its warnings and errors."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def main(argv: list[str], hooks: Sequence[trainer.Hook] = ()) -> None:
  """Parses nothing itself (absl did): validates the config, then trains.

  Args:
    argv: the arguments absl left over (must be none).
    hooks: passed to `trainer.train_and_evaluate` (called after every step).
  """
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_OrbaxWarningsOnly())
  _initialize_distributed()
  config = _CONFIG.value
  if _DATA_DIR.value:
    config.data_dir = _DATA_DIR.value
  logging.info("JAX devices: %s (process %d of %d)", jax.devices(), jax.process_index(),
               jax.process_count())
  try:
    trainer.train_and_evaluate(config, _WORKDIR.value, hooks=hooks)
  except trainer.ConfigError as e:  # raised before training starts
    print(f"Invalid config: {e}", file=sys.stderr)
    sys.exit(2)


def _initialize_distributed() -> None:
  """jax.distributed.initialize from the --distributed flags; checks they go together."""
  given = {name: flag.value for name, flag in (("--coordinator_address", _COORDINATOR),
                                               ("--num_processes", _NUM_PROCESSES),
                                               ("--process_id", _PROCESS_ID))
           if flag.value is not None}
  if not _DISTRIBUTED.value:
    if given:
      raise app.UsageError(f"{', '.join(given)} only apply with --distributed: add it, or "
                           "drop them for a single-process run.")
    return
  if (_NUM_PROCESSES.value is not None and _PROCESS_ID.value is not None
      and _PROCESS_ID.value >= _NUM_PROCESSES.value):
    raise app.UsageError(f"--process_id={_PROCESS_ID.value} must be below "
                         f"--num_processes={_NUM_PROCESSES.value}.")
  parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)


def _exit_usage(message: str) -> None:
  print(message, file=sys.stderr)
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a one-line error and status 2 for every command-line slip.

  An override of an unknown field, a value of the wrong type, a missing required flag,
  an unknown flag or a config file that cannot be loaded all stop here, before JAX
  starts, as a bad config value does.
  """
  try:
    rest = flags.FLAGS(argv)
    _CONFIG.value.keys()  # the file loads lazily, and reports a failure on first use: now
  except (KeyError, AttributeError) as e:  # what ml_collections raises for an unknown field
    while isinstance(e.args[0] if e.args else None, BaseException):
      e = e.args[0]  # AttributeError(KeyError(message))
    field, *hint = str(e.args[0] if e.args else e).split("\n")
    _exit_usage(f"Invalid config override: the config has no field {field}." +
                "".join(" " + line for line in hint))
  except flags.Error as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if "Traceback (most recent call last):" in lines:  # the config file's own error
      _exit_usage(f"Invalid --config: {lines[-1]}")
    _exit_usage(f"Invalid command line: {' '.join(lines)} (see python -m experiments.main "
                "--help).")
  except OSError as e:
    while e.__cause__ is not None:  # the load failure behind "not available"
      e = e.__cause__
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    _exit_usage(f"Invalid --config: {lines[-1] if lines else e} (a path such as "
                "experiments/configs/smoke.py, relative to the current folder).")
  return rest


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main, flags_parser=parse_flags)
