r"""Trains and evaluates one run described by a config file.

  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=/tmp/mixup_cifar10 [--config.mixup.alpha=0.2] [--data_dir=DIR]

Any config field can be overridden with --config.FIELD=VALUE. The data directory
comes from --data_dir, else --config.data_dir, else $MIXUP_JAX_DATA_DIR. Rerunning
the command on the same workdir resumes from its latest checkpoint. On SIGTERM the
run saves a checkpoint and exits with status 0; a bad config exits with status 2
and a message naming the field, before anything is loaded.
"""

import logging as std_logging
import sys
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from mixup_jax import trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file (experiments/configs/NAME.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics.jsonl, TensorBoard events and "
    "results.json; a run resumes from the checkpoint found there.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Folder of the offline datasets (overrides --config.data_dir and "
    "$MIXUP_JAX_DATA_DIR).")
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


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a one-line error for an override of an unknown field."""
  try:
    return flags.FLAGS(argv)
  except (KeyError, AttributeError) as e:  # what ml_collections raises for it
    while isinstance(e.args[0] if e.args else None, BaseException):
      e = e.args[0]  # AttributeError(KeyError(message))
    field, *hint = str(e.args[0] if e.args else e).split("\n")
    print(f"Invalid config override: the config has no field {field}." +
          "".join(" " + line for line in hint), file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main, flags_parser=parse_flags)
