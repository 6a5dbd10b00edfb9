"""Config validation for the training loop: every check names the field and the fix.

`validate_config(config)` runs before anything is built, so a typo in a sweep fails
in a second with `ConfigError: config.FIELD ...` instead of an hour into a run. The
vocabularies below are the values each field accepts; experiments/configs/default.py
documents them and a test checks that the two agree.
"""

from __future__ import annotations

import difflib

import jax
import ml_collections

from mixup_jax import _checks
from mixup_jax import config_defaults
from mixup_jax import data as data_lib
from mixup_jax import mixing as mixing_lib
from mixup_jax import models as models_lib
from mixup_jax import optim
from mixup_jax import parallel
from mixup_jax.spec import CONFIG_FIELDS, MixSpec, MixSpecError

PARALLEL_MODES = parallel.MODES
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = tuple(optim.SCHEDULES)
# config.mixup.pairing: the in-batch pairings of mixup_jax.mixing, plus 'knn', which
# mixes each example with one of its nearest training neighbours (Table 5's KNN;
# mixup.knn_k neighbours, within the class when mixup.knn_within_class). The loop
# supplies knn partners itself (make_train_step's pairing 'given').
PAIRINGS = tuple(p for p in mixing_lib.PAIRINGS if p != "given") + ("knn",)


class ConfigError(ValueError):
  """A config field has a value the run cannot use; the message names it."""


def _require(ok: bool, field: str, message: str) -> None:
  if not ok:
    raise ConfigError(f"config.{field}: {message}")


_is_int, _is_number = _checks.is_int, _checks.is_number


def unknown_fields(config, schema, prefix: str = "") -> list[str]:
  """Messages for each field of `config` that `schema` lacks, with the closest name."""
  messages = []
  for key in config.keys():
    name = f"{prefix}{key}"
    if key not in schema:
      close = difflib.get_close_matches(key, list(schema.keys()), n=1)
      hint = f"did you mean config.{prefix}{close[0]}?" if close else (
          "see mixup_jax/config_defaults.py for the fields.")
      messages.append(f"config.{name}: unknown field; {hint}")
    elif (isinstance(schema[key], ml_collections.ConfigDict)
          and key not in config_defaults.FREE_FORM_FIELDS):
      value = config[key]
      if isinstance(value, (dict, ml_collections.ConfigDict)):
        messages += unknown_fields(value, schema[key], f"{name}.")
  return messages


def validate_config(config: ml_collections.ConfigDict, *, check_names: bool = True) -> None:
  """Raises ConfigError, naming the field, for any value the run cannot use.

  A field that mixup_jax/config_defaults.py does not define (a typo such as
  `mixup.alhpa`) is refused with the closest known name, from Python as from the
  command line.

  Args:
    config: a config like experiments/configs/default.py.
    check_names: also check that `config.dataset` and `config.model` are
      registered names (run_training skips this: it receives them built).
  """
  unknown = unknown_fields(config, config_defaults.default_config())
  if unknown:
    raise ConfigError("; ".join(unknown))
  config = config_defaults.with_defaults(config)
  if check_names:
    datasets = data_lib.list_datasets()
    _require(config.dataset in datasets, "dataset",
             f"unknown dataset {config.dataset!r}; valid names: {datasets}.")
    _require(config.model in models_lib.MODEL_NAMES, "model",
             f"unknown model {config.model!r}; valid names: {list(models_lib.MODEL_NAMES)}.")
    valid = list(models_lib.model_options(config.model))
    unknown = sorted(set(config.model_options) - set(valid))
    _require(not unknown, "model_options",
             f"{config.model} has no option(s) {unknown}; valid: {valid}.")
  _require(config.data_source in data_lib.registry.SOURCES, "data_source",
           f"must be one of {data_lib.registry.SOURCES}, got {config.data_source!r}.")
  _require(_is_number(config.label_corruption) and 0 <= config.label_corruption <= 1,
           "label_corruption", f"must be a fraction in [0, 1], got {config.label_corruption!r}.")
  _require(_is_int(config.label_corruption_seed)
           and config.label_corruption_seed >= 0, "label_corruption_seed",
           f"must be an int >= 0, got {config.label_corruption_seed!r}.")
  for field in ("train_size", "test_size"):
    _require(_is_int(config[field]) and config[field] >= 0, field,
             f"must be an int >= 0 (0: the whole split), got {config[field]!r}.")
  _require(config.train_subset in data_lib.registry.TRAIN_SUBSETS,
           "train_subset", f"must be one of {data_lib.registry.TRAIN_SUBSETS}, got "
           f"{config.train_subset!r}.")
  _require(_is_int(config.data_workers) and config.data_workers >= 0, "data_workers",
           f"must be an int >= 0, got {config.data_workers!r}.")

  _require(config.optimizer in OPTIMIZERS, "optimizer",
           f"must be one of {OPTIMIZERS}, got {config.optimizer!r}.")
  _require(config.schedule in SCHEDULES, "schedule",
           f"must be one of {SCHEDULES}, got {config.schedule!r}.")
  _require(_is_number(config.learning_rate) and config.learning_rate > 0, "learning_rate",
           f"must be a number > 0, got {config.learning_rate!r}.")
  _require(_is_number(config.momentum) and 0 <= config.momentum < 1, "momentum",
           f"must be in [0, 1), got {config.momentum!r}.")
  _require(_is_number(config.weight_decay) and config.weight_decay >= 0, "weight_decay",
           f"must be >= 0, got {config.weight_decay!r}.")
  boundaries = config.schedule_boundaries
  _require(isinstance(boundaries, (tuple, list)) and all(_is_int(e) and e >= 0 for e in boundaries)
           and list(boundaries) == sorted(set(boundaries)), "schedule_boundaries",
           f"must be increasing epochs (ints >= 0), got {boundaries!r}.")
  _require(config.schedule != "step" or len(boundaries) > 0, "schedule_boundaries",
           "schedule 'step' needs the epochs at which to multiply the rate, e.g. (30, 45).")
  factor = config.schedule_factor
  _require(_is_number(factor) and 0 < factor, "schedule_factor",
           f"must be a number > 0, got {factor!r}.")
  warmup = config.warmup_epochs
  _require(_is_int(warmup) and warmup >= 0, "warmup_epochs",
           f"must be an int >= 0, got {warmup!r}.")
  _require(_is_int(config.schedule_shift) and config.schedule_shift >= 0, "schedule_shift",
           f"must be an int >= 0, got {config.schedule_shift!r}.")
  _require(_is_int(config.num_epochs) and config.num_epochs >= 1, "num_epochs",
           f"must be an int >= 1, got {config.num_epochs!r}.")
  _require(_is_int(config.num_train_steps) and config.num_train_steps >= 0, "num_train_steps",
           f"must be an int >= 0 (0: use num_epochs), got {config.num_train_steps!r}.")

  num_devices = 1 if config.parallel == "jit" else jax.device_count()
  _require(config.parallel in PARALLEL_MODES, "parallel",
           f"must be one of {PARALLEL_MODES}, got {config.parallel!r}.")
  _require(config.parallel != "jit" or jax.process_count() == 1, "parallel",
           f"'jit' trains on one device of one process; with {jax.process_count()} processes "
           "every process would train its own model: use 'sharded', 'shard_map' or 'pmap'.")
  for field in ("batch_size", "eval_batch_size"):
    value = config[field]
    _require(_is_int(value) and value >= 1, field, f"must be a positive int, got {value!r}.")
    _require(value % num_devices == 0, field,
             f"{value} is not divisible by the {num_devices} devices of parallel="
             f"{config.parallel!r}: use a multiple of {num_devices}.")
    _require(value % jax.process_count() == 0, field,
             f"{value} is not divisible by the {jax.process_count()} processes.")

  mix = config.mixup
  _require(mix.pairing in PAIRINGS, "mixup.pairing",
           f"must be one of {PAIRINGS}, got {mix.pairing!r}.")
  try:
    spec = MixSpec.from_config(config, steps_per_epoch=1)
  except MixSpecError as error:
    raise ConfigError(f"config.{CONFIG_FIELDS.get(error.field, error.field)}: "
                      f"{error.reason}") from None
  _require(_is_int(mix.knn_k) and mix.knn_k >= 1, "mixup.knn_k",
           f"must be an int >= 1, got {mix.knn_k!r}.")
  _require(isinstance(mix.knn_within_class, bool), "mixup.knn_within_class",
           f"must be True or False, got {mix.knn_within_class!r}.")
  _require(not (spec.mixes and spec.global_pairing) or config.parallel in ("pmap", "shard_map"),
           "mixup.global_pairing", "needs a per-device step: set config.parallel to 'pmap' or "
           f"'shard_map', not {config.parallel!r}.")
  _require(not spec.mixes or spec.granularity != "device" or config.parallel != "jit",
           "mixup.granularity",
           "'device' needs several devices: set config.parallel to 'pmap', 'sharded' or "
           "'shard_map'.")
  if check_names and spec.stages:
    _require(config.model in models_lib.LATENT_MIXING_MODELS, "mixup.stages",
             f"mixes hidden activations, which {config.model} cannot: use one of "
             f"{sorted(models_lib.LATENT_MIXING_MODELS)}, or () to mix the inputs.")
  _require(_is_number(config.input_noise_sigma) and config.input_noise_sigma >= 0,
           "input_noise_sigma", f"must be >= 0, got {config.input_noise_sigma!r}.")

  _require(_is_int(config.seed) and config.seed >= 0, "seed",
           f"must be an int >= 0, got {config.seed!r}.")
  _require(_is_int(config.log_every_steps) and config.log_every_steps >= 1, "log_every_steps",
           f"must be an int >= 1, got {config.log_every_steps!r}.")
  for field in ("eval_every_steps", "checkpoint_every_steps"):
    _require(_is_int(config[field]) and config[field] >= 0, field,
             f"must be an int >= 0 (0: every epoch), got {config[field]!r}.")
  eval_from = config.eval_from_epoch
  _require(_is_int(eval_from) and eval_from >= 0, "eval_from_epoch",
           f"must be an int >= 0 (epochs), got {eval_from!r}.")
  _require(config.num_train_steps or eval_from < config.num_epochs, "eval_from_epoch",
           f"{eval_from} leaves no periodic evaluation in a {config.num_epochs}-epoch run; "
           "lower it (0 evaluates from the start).")
  _require(_is_int(config.max_checkpoints_to_keep) and config.max_checkpoints_to_keep >= 1,
           "max_checkpoints_to_keep",
           f"must be an int >= 1, got {config.max_checkpoints_to_keep!r}.")
