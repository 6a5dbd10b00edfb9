"""The training loop every experiment runs: config in, results.json out.

  results = train_and_evaluate(config, workdir)

builds the dataset, the model, the optimizer and the train state from `config`
(documented field by field in experiments/configs/default.py), then trains with
periodic evaluation and checkpoints. Experiments that build their own data or
model (a sweep over datasets and seeds) call the loop directly:

  results = run_training(config, workdir, dataset=dataset, model=model)

A run is a pure function of its config: every random number comes from
`config.seed` (initialisation, data order, augmentation, mixing), so a run that
is killed and restarted on the same workdir finishes bitwise identical to one
that never stopped. The workdir (a local folder or a bucket such as gs://...,
through etils.epath) holds:

  checkpoints/      Orbax checkpoints (train state, data iterator position,
                    config, metric history): the last few plus the best
  metrics.jsonl     one JSON record per log / eval step, e.g.
                    {"step": 390, "epoch": 1.0, "train/loss": ...}
  tensorboard/      the same records as TensorBoard event files
  results.json      final and best test error, best epoch, config, wall time

Failure modes are loud: a bad config raises `ConfigError` naming the field
before anything is built; SIGTERM saves a checkpoint and returns
(`results['preempted']`; in a multi-process run every process stops at the same
step); a non-finite loss raises `NonFiniteLossError` naming
the step and the last good checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import sys
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from mixup_jax import _checks
from mixup_jax import checkpoint as checkpoint_lib
from mixup_jax import data as data_lib
from mixup_jax import mixing as mixing_lib
from mixup_jax import models as models_lib
from mixup_jax import optim
from mixup_jax import parallel
from mixup_jax import train as train_lib

PARALLEL_MODES = parallel.MODES
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cifar", "wrn", "imagenet", "speech", "step", "cosine")
# config.mixup.pairing: the in-batch pairings of mixup_jax.mixing, plus 'knn', which
# mixes each example with one of its nearest training neighbours (Table 5's KNN;
# mixup.knn_k neighbours, within the class when mixup.knn_within_class). The loop
# supplies knn partners itself (make_train_step's pairing 'given').
PAIRINGS = tuple(p for p in mixing_lib.PAIRINGS if p != "given") + ("knn",)

# A hook is called on the host after every train step with the number of
# updates done and the (not yet synchronised) train state.
Hook = Callable[[int, Any], None]


class ConfigError(ValueError):
  """A config field has a value the run cannot use; the message names it."""


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite; the message names the step."""


# ------------------------------------------------------------------------------
# Config validation: every check names the field and the fix.
# ------------------------------------------------------------------------------


def _require(ok: bool, field: str, message: str) -> None:
  if not ok:
    raise ConfigError(f"config.{field}: {message}")


_is_int, _is_number = _checks.is_int, _checks.is_number


def validate_config(config: ml_collections.ConfigDict, *, check_names: bool = True) -> None:
  """Raises ConfigError, naming the field, for any value the run cannot use.

  Args:
    config: a config like experiments/configs/default.py.
    check_names: also check that `config.dataset` and `config.model` are
      registered names (run_training skips this: it receives them built).
  """
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
  _require(_is_int(config.get("label_corruption_seed", 0))
           and config.get("label_corruption_seed", 0) >= 0, "label_corruption_seed",
           f"must be an int >= 0, got {config.get('label_corruption_seed')!r}.")
  for field in ("train_size", "test_size"):
    _require(_is_int(config.get(field, 0)) and config.get(field, 0) >= 0, field,
             f"must be an int >= 0 (0: the whole split), got {config.get(field)!r}.")
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
  boundaries = config.get("schedule_boundaries", ())
  _require(isinstance(boundaries, (tuple, list)) and all(_is_int(e) and e >= 0 for e in boundaries)
           and list(boundaries) == sorted(set(boundaries)), "schedule_boundaries",
           f"must be increasing epochs (ints >= 0), got {boundaries!r}.")
  _require(config.schedule != "step" or len(boundaries) > 0, "schedule_boundaries",
           "schedule 'step' needs the epochs at which to multiply the rate, e.g. (30, 45).")
  factor = config.get("schedule_factor", 0.1)
  _require(_is_number(factor) and 0 < factor, "schedule_factor",
           f"must be a number > 0, got {factor!r}.")
  warmup = config.get("warmup_epochs", 0)
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
  _require(_is_number(mix.alpha) and math.isfinite(mix.alpha) and mix.alpha >= 0, "mixup.alpha",
           f"must be a finite number >= 0 (0 trains by ERM), got {mix.alpha!r}.")
  _require(mix.granularity in mixing_lib.GRANULARITIES, "mixup.granularity",
           f"must be one of {mixing_lib.GRANULARITIES}, got {mix.granularity!r}.")
  _require(mix.pairing in PAIRINGS, "mixup.pairing",
           f"must be one of {PAIRINGS}, got {mix.pairing!r}.")
  _require(_is_int(mix.get("knn_k", 200)) and mix.get("knn_k", 200) >= 1, "mixup.knn_k",
           f"must be an int >= 1, got {mix.get('knn_k')!r}.")
  _require(isinstance(mix.get("knn_within_class", False), bool), "mixup.knn_within_class",
           f"must be True or False, got {mix.get('knn_within_class')!r}.")
  if mix.pairing == "knn":
    _require(not mix.stages, "mixup.pairing",
             "'knn' mixes the inputs with a partner image: it cannot mix at mixup.stages.")
  cutmix_alpha = mix.get("cutmix_alpha", 0.0)
  _require(_is_number(cutmix_alpha) and math.isfinite(cutmix_alpha) and cutmix_alpha >= 0,
           "mixup.cutmix_alpha", f"must be a finite number >= 0 (0: no CutMix), got "
           f"{cutmix_alpha!r}.")
  _require(_is_number(mix.get("switch_prob", 0.5)) and 0 <= mix.get("switch_prob", 0.5) <= 1,
           "mixup.switch_prob", f"must be in [0, 1], got {mix.get('switch_prob')!r}.")
  if cutmix_alpha > 0:
    _require(not mix.stages, "mixup.cutmix_alpha",
             "CutMix pastes into the input images: it cannot mix at mixup.stages.")
    _require(mix.num_sources == 2, "mixup.cutmix_alpha",
             f"CutMix pastes one partner's box: set mixup.num_sources=2, not {mix.num_sources}.")
  _require(mix.targets in mixing_lib.TARGET_MODES, "mixup.targets",
           f"must be one of {mixing_lib.TARGET_MODES}, got {mix.targets!r}.")
  _require(_is_int(mix.num_sources) and mix.num_sources >= 2, "mixup.num_sources",
           f"must be an int >= 2, got {mix.num_sources!r}.")
  _require(_is_number(mix.prob) and 0 <= mix.prob <= 1, "mixup.prob",
           f"must be in [0, 1], got {mix.prob!r}.")
  _require(not mix.global_pairing or config.parallel in ("pmap", "shard_map"),
           "mixup.global_pairing", "needs a per-device step: set config.parallel to 'pmap' or "
           f"'shard_map', not {config.parallel!r}.")
  _require(mix.granularity != "device" or config.parallel != "jit", "mixup.granularity",
           "'device' needs several devices: set config.parallel to 'pmap', 'sharded' or "
           "'shard_map'.")
  _require(all(_is_int(k) and k in models_lib.MIX_STAGES[1:] for k in mix.stages), "mixup.stages",
           f"must be a tuple of model stages in {models_lib.MIX_STAGES[1:]} (() mixes inputs), "
           f"got {mix.stages!r}.")
  _require(_is_int(mix.start_epoch) and mix.start_epoch >= 0, "mixup.start_epoch",
           f"must be an int >= 0, got {mix.start_epoch!r}.")
  _require(_is_number(config.label_smoothing) and 0 <= config.label_smoothing < 1,
           "label_smoothing", f"must be in [0, 1), got {config.label_smoothing!r}.")
  _require(_is_number(config.input_noise_sigma) and config.input_noise_sigma >= 0,
           "input_noise_sigma", f"must be >= 0, got {config.input_noise_sigma!r}.")

  _require(_is_int(config.seed) and config.seed >= 0, "seed",
           f"must be an int >= 0, got {config.seed!r}.")
  _require(_is_int(config.log_every_steps) and config.log_every_steps >= 1, "log_every_steps",
           f"must be an int >= 1, got {config.log_every_steps!r}.")
  for field in ("eval_every_steps", "checkpoint_every_steps"):
    _require(_is_int(config[field]) and config[field] >= 0, field,
             f"must be an int >= 0 (0: every epoch), got {config[field]!r}.")
  _require(_is_int(config.max_checkpoints_to_keep) and config.max_checkpoints_to_keep >= 1,
           "max_checkpoints_to_keep",
           f"must be an int >= 1, got {config.max_checkpoints_to_keep!r}.")


# ------------------------------------------------------------------------------
# Building the pieces from a config.
# ------------------------------------------------------------------------------


def build_dataset(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  """The dataset named by `config.dataset`, read from `config.data_dir`.

  Raises:
    ConfigError: the dataset cannot be built with these fields (a missing data
      directory, an unknown dataset option); the message says which and how.
  """
  try:
    return data_lib.get_dataset(
        config.dataset,
        data_dir=config.data_dir or None,
        source=config.data_source,
        label_corruption=config.label_corruption,
        label_corruption_seed=config.get("label_corruption_seed", 0),
        train_size=config.get("train_size", 0),
        test_size=config.get("test_size", 0),
        **config.dataset_options.to_dict(),
    )
  except (ValueError, TypeError, FileNotFoundError) as e:
    raise ConfigError(
        f"config.dataset={config.dataset!r} (data_dir, data_source, dataset_options) "
        f"cannot be loaded: {e}") from e


def build_model(config: ml_collections.ConfigDict, num_classes: int, axis_name: str | None = None):
  """The model named by `config.model` with `config.model_options`."""
  options = config.model_options.to_dict()
  if axis_name is not None and "axis_name" in models_lib.model_options(config.model):
    options["axis_name"] = axis_name
  try:
    return models_lib.get_model(config.model, num_classes, **options)
  except ValueError as e:
    raise ConfigError(f"config.model / config.model_options: {e}") from e


def build_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """The learning rate (a number or an optax schedule) of `config.schedule`."""
  lr, spe = config.learning_rate, steps_per_epoch
  schedules = {
      "constant": lambda: lr,
      "cifar": lambda: optim.cifar_schedule(spe, base_lr=lr, shift_epochs=config.schedule_shift),
      "wrn": lambda: optim.wrn_schedule(spe, base_lr=lr, shift_epochs=config.schedule_shift),
      "imagenet": lambda: optim.imagenet_schedule(spe, num_epochs=config.num_epochs, base_lr=lr),
      "speech": lambda: optim.speech_schedule(spe, num_epochs=config.num_epochs, base_lr=lr),
      "step": lambda: optim.step_decay_schedule(
          lr, tuple(config.get("schedule_boundaries", ())), spe,
          factor=config.get("schedule_factor", 0.1), shift_epochs=config.schedule_shift),
      "cosine": lambda: optim.cosine_schedule(
          lr, config.num_train_steps or config.num_epochs * spe,
          warmup_steps=config.get("warmup_epochs", 0) * spe),
  }
  try:
    return schedules[config.schedule]()
  except ValueError as e:
    raise ConfigError(f"config.schedule={config.schedule!r}: {e}") from e


def build_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """The optax transformation of `config.optimizer` with `build_schedule`'s rate."""
  schedule = build_schedule(config, steps_per_epoch)
  if config.optimizer == "sgd":
    return optim.sgd(schedule, momentum=config.momentum, weight_decay=config.weight_decay)
  return optim.adam(schedule, weight_decay=config.weight_decay)


# ------------------------------------------------------------------------------
# Host-side helpers: metric accumulation, outputs, progress, SIGTERM.
# ------------------------------------------------------------------------------


def _accumulate(meter: dict, metrics: dict, step: jax.Array) -> dict:
  """Adds one step's train metrics to the running sums, inside the compiled step.

  `first_nonfinite` remembers the first step whose loss was NaN or infinite
  (-1: none), so the error can name it even though the host looks only at
  log steps.
  """
  bad = ~jnp.isfinite(metrics["loss"])
  first = meter["first_nonfinite"]
  return {
      "sums": jax.tree.map(lambda s, m: s + m.astype(jnp.float32), meter["sums"], metrics),
      "count": meter["count"] + 1,
      "first_nonfinite": jnp.where((first < 0) & bad, step, first),
  }


def _empty_meter(metric_shapes: Mapping[str, Any]) -> dict:
  return {
      "sums": {k: jnp.zeros((), jnp.float32) for k in metric_shapes},
      "count": jnp.zeros((), jnp.int32),
      "first_nonfinite": jnp.full((), -1, jnp.int32),
  }


class _Outputs:
  """metrics.jsonl and TensorBoard events of one run (written by process 0 only).

  On resume the JSON-lines file is rewritten from the checkpoint's history, and
  TensorBoard is told to drop events after the checkpoint step, so records
  written by the interrupted run past its last checkpoint disappear from both.
  """

  def __init__(self, workdir: epath.Path | None, history: Sequence[Mapping[str, Any]],
               start_step: int):
    self._enabled = workdir is not None and jax.process_index() == 0
    if not self._enabled:
      return
    import tensorboardX  # pylint: disable=g-import-not-at-top: only writers need it

    self._jsonl = (workdir / "metrics.jsonl").open("w")
    for record in history:
      self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    self._tb = tensorboardX.SummaryWriter(
        str(workdir / "tensorboard"), purge_step=start_step + 1 if start_step else None)

  def write(self, record: Mapping[str, Any], extra_scalars: Mapping[str, float] = ()) -> None:
    """Appends a record ({'step', 'epoch', name: value, ...}) to both outputs."""
    if not self._enabled:
      return
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for key, value in {**record, **dict(extra_scalars)}.items():
      if key != "step":
        self._tb.add_scalar(key, value, record["step"])
    self._tb.flush()

  def close(self) -> None:
    if self._enabled:
      self._jsonl.close()
      self._tb.close()


class _Progress:
  """One updating status line: step, throughput, latest metrics and ETA.

  On a terminal the line is redrawn in place (at most twice a second); in a
  log file it is printed once per log step.
  """

  def __init__(self, total: int, start: int, batch_size: int, stream=None):
    self._stream = stream or sys.stderr
    self._tty = self._stream.isatty()
    self._enabled = jax.process_index() == 0
    self._total, self._batch_size = total, batch_size
    self._t0, self._step0 = time.monotonic(), start
    self._last_draw = 0.0
    self._status = ""

  def set_status(self, text: str) -> None:
    self._status = text

  def steps_per_second(self, step: int) -> float:
    elapsed = time.monotonic() - self._t0
    return (step - self._step0) / elapsed if elapsed > 0 else 0.0

  def update(self, step: int, *, force: bool = False) -> None:
    if not self._enabled:
      return
    now = time.monotonic()
    if not force and (not self._tty or now - self._last_draw < 0.5):
      return
    self._last_draw = now
    rate = self.steps_per_second(step)
    eta = (self._total - step) / rate if rate > 0 else float("nan")
    line = (f"step {step}/{self._total} ({100 * step / self._total:.1f}%) | "
            f"{rate:.2f} steps/s, {rate * self._batch_size:.0f} ex/s | {self._status} | "
            f"ETA {_format_seconds(eta)}")
    if self._tty:
      self._stream.write("\r\033[K" + line)
    else:
      self._stream.write(line + "\n")
    self._stream.flush()

  def close(self) -> None:
    if self._enabled and self._tty:
      self._stream.write("\n")
      self._stream.flush()


def _format_seconds(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"


class _PreemptionNotice:
  """SIGTERM as a stop signal that every process answers at the same step.

  One process: a Python handler sets a flag that the loop reads after every step
  (installed only in the main thread, where Python delivers signals; the previous
  handler is restored on exit). Several processes (`jax.distributed`): JAX's
  preemption service catches SIGTERM on whichever process gets it and tells the
  others; `reached_preemption_sync_point(step)` then turns True on every process at
  the same step (one past the furthest any of them had reached), so all stop there
  and write one complete checkpoint together. A flag per process could not do that:
  the process that got the signal would stop and wait in the checkpoint's barrier
  while the others were still training, each at its own step.
  """

  def __init__(self):
    self._multi_process = jax.process_count() > 1
    self._received = False
    self._previous = None

  def __enter__(self) -> "_PreemptionNotice":
    if not self._multi_process and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame) -> None:
    del signum, frame
    self._received = True

  def reached(self, step: int) -> bool:
    """Whether to stop (and save) after `step`; called once after every step."""
    if not self._multi_process:
      return self._received
    try:
      return multihost_utils.reached_preemption_sync_point(step)
    except RuntimeError as e:  # the service is off: no process could stop in step
      raise RuntimeError(
          "A multi-process run stops on SIGTERM through JAX's preemption service, which "
          "is disabled: set jax_enable_preemption_service=True (the default).") from e

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


# ------------------------------------------------------------------------------
# The loop.
# ------------------------------------------------------------------------------


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike[str] | None,
    *,
    hooks: Sequence[Hook] = (),
) -> dict[str, Any]:
  """Trains and evaluates the run `config` describes; resumes from `workdir`.

  Args:
    config: see experiments/configs/default.py.
    workdir: where checkpoints, metrics and results.json go; a run whose
      workdir holds a checkpoint continues from it. None: keep nothing.
    hooks: called as `hook(step, train_state)` after every train step.

  Returns:
    The results (also written to workdir/results.json), see `run_training`.
  """
  validate_config(config)
  dataset = build_dataset(config)
  axis_name = parallel.DataParallel.create(config.parallel).axis_name
  model = build_model(config, dataset.num_classes, axis_name)
  return run_training(config, workdir, dataset=dataset, model=model, hooks=hooks)


def run_training(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike[str] | None,
    *,
    dataset: data_lib.Dataset,
    model: Any,
    hooks: Sequence[Hook] = (),
) -> dict[str, Any]:
  """The training loop on an already built dataset and model.

  For experiments that build many runs themselves (a sweep over datasets and
  seeds): every config field except `dataset*`, `data_*`, `label_corruption`,
  `model` and `model_options` is used. Under config.parallel 'pmap' or
  'shard_map' the model must be built with `axis_name=parallel.AXIS_NAME`.

  Args:
    config: see experiments/configs/default.py.
    workdir: where checkpoints, metrics and results.json go (resumed from when
      it holds a checkpoint), or None for a run that keeps nothing on disk.
    dataset: the data (`mixup_jax.data.get_dataset`).
    model: a Flax module taking `(x, train=...)`, with `dataset.num_classes` outputs.
    hooks: called as `hook(step, train_state)` after every train step. The
      state is donated to the next step: copy (`jax.device_get`) what you keep.

  Returns:
    A dict with 'final_test_error', 'best_test_error', 'best_step',
    'best_epoch', 'median_last_10_epochs_test_error' (the authors' statistic:
    evaluations at the ends of the last 10 epochs), 'median_last_10_evals_test_error'
    (the last 10 evaluations, whatever eval_every_steps is; errors in percent), the steps,
    'wall_time_s', the checkpoint paths and 'config'; plus, in the returned
    dict only, 'history' (every metric record) and 'state' (the final
    TrainState, one copy). A run stopped by SIGTERM returns
    {'preempted': True, 'step': ..., 'checkpoint': ...} instead.
  """
  validate_config(config, check_names=False)
  _check_dataset_fits(config, dataset)
  session_start = time.time()
  workdir = checkpoint_lib.as_path(workdir) if workdir else None
  if workdir is not None and jax.process_index() == 0:
    workdir.mkdir(parents=True, exist_ok=True)
  dp = parallel.DataParallel.create(config.parallel)
  try:
    steps_per_epoch = data_lib.steps_per_epoch(dataset.num_train, config.batch_size)
  except ValueError as e:
    raise ConfigError(f"config.batch_size: {e}") from e
  total = config.num_train_steps or config.num_epochs * steps_per_epoch
  eval_every = config.eval_every_steps or steps_per_epoch
  checkpoint_every = config.checkpoint_every_steps or steps_per_epoch

  # Data, state and compiled steps.
  train_iter = data_lib.train_iterator(
      dataset.train, global_batch_size=config.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      worker_count=config.data_workers,
      transforms=tuple(dataset.train_transforms) + _partner_transforms(config, dataset))
  carry, step_fn, eval_step, metric_names = _build_steps(
      config, dataset, model, dp, steps_per_epoch, _peek(train_iter, dataset.input_key))

  # Resume from the workdir's latest checkpoint, if any.
  history: list[dict[str, Any]] = []
  start_step, previous_wall_time, ckpt = 0, 0.0, None
  config_json = json.loads(config.to_json_best_effort())
  if workdir is not None:
    ckpt = checkpoint_lib.Checkpointer(
        workdir / "checkpoints", max_to_keep=config.max_checkpoints_to_keep,
        best_metric="test_error")
    restored = ckpt.restore_latest({"train_state": carry["train_state"]}, train_iter)
    if restored is not None:
      history, start_step = restored.history, restored.step
      carry = {"train_state": restored.state["train_state"],
               "meter": _meter_from_json(restored.extra.get("meter"), metric_names)}
      previous_wall_time = restored.extra.get("wall_time_s", 0.0)
      _log_config_changes(restored.config, config_json)
      logging.info("Resuming from step %d (%s).", start_step, restored.path)
  carry = dp.put_state(carry)
  outputs = _Outputs(workdir, history, start_step)
  progress = _Progress(total, start_step, config.batch_size)
  latest = _Latest(history)
  progress.set_status(latest.status())

  def wall_time() -> float:
    return previous_wall_time + time.time() - session_start

  def checked_meter(step: int) -> dict[str, Any]:
    """The host copy of the meter; raises if a loss since its reset was not finite."""
    meter = dp.get_metrics(carry["meter"])
    if int(meter["first_nonfinite"]) >= 0:
      raise _nonfinite_error(meter, step, ckpt)
    return meter

  step = start_step
  with _PreemptionNotice() as preemption:
    while step < total:
      batch = _model_batch(next(train_iter), dataset.input_key)
      carry, _ = step_fn(carry, dp.put_batch(batch))
      step += 1
      for hook in hooks:
        hook(step, carry["train_state"])
      preempted = preemption.reached(step)
      epoch, last = step / steps_per_epoch, step == total

      if step % config.log_every_steps == 0 or last:
        record = _train_record(checked_meter(step), step, epoch)
        history.append(record)
        latest.update(record)
        rate = progress.steps_per_second(step)
        outputs.write(record, {"train/steps_per_second": rate,
                               "train/examples_per_second": rate * config.batch_size})
        carry = {**carry, "meter": dp.put_state(_empty_meter(metric_names))}

      eval_record = None
      if step % eval_every == 0 or last:
        eval_record = _eval_record(dp, eval_step, carry["train_state"], dataset,
                                   config.eval_batch_size, step, epoch)
        history.append(eval_record)
        latest.update(eval_record)
        outputs.write(eval_record)

      # Evaluated steps are saved too, so that the best one can be kept.
      if ckpt is not None and (step % checkpoint_every == 0 or eval_record or last
                               or preempted):
        # checked_meter below: never save a state that a non-finite loss produced.
        # The meter goes into the JSON extra, not the array state, so a config that
        # computes other metrics can still restore this checkpoint.
        ckpt.save(step, {"train_state": dp.get_state(carry["train_state"])}, history=history,
                  data_iter=train_iter, config=config_json,
                  extra={"wall_time_s": wall_time(),
                         "meter": _meter_to_json(checked_meter(step))},
                  metrics={"test_error": eval_record["test/error"]} if eval_record else None)
      progress.set_status(latest.status())
      progress.update(step, force=last or step % config.log_every_steps == 0)
      if preempted and not last:
        break

  progress.close()
  outputs.close()
  if ckpt is not None:
    ckpt.close()
  if step < total:  # stopped by SIGTERM
    where = (f"saved checkpoint {ckpt.step_path(step)}" if ckpt is not None
             else "no workdir, nothing saved")
    logging.warning("SIGTERM received: stopped at step %d of %d, %s; rerun the same command "
                    "to resume.", step, total, where)
    return {"preempted": True, "step": step,
            "checkpoint": str(ckpt.step_path(step)) if ckpt is not None else None}

  results = _results(history, ckpt, step, total, steps_per_epoch, wall_time(), config_json)
  results["resumed_from_step"] = start_step or None
  if workdir is not None and jax.process_index() == 0:
    (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
  logging.info("Finished %d steps: final test error %.2f%%, best %.2f%% at epoch %.1f.",
               step, results["final_test_error"], results["best_test_error"], results["best_epoch"])
  return {**results, "history": history, "state": dp.get_state(carry["train_state"])}


def _build_steps(config, dataset, model, dp, steps_per_epoch, example_batch):
  """The initial carry {train_state, meter}, the compiled train and eval steps, metric names.

  The compiled train step also adds the step's metrics to the meter, so the host
  reads metrics only at log steps and a run never waits on the device between them.
  """
  tx = build_optimizer(config, steps_per_epoch)
  # One compiled initialisation instead of one small compilation per layer.
  state = jax.jit(lambda rng: train_lib.create_train_state(
      rng, model, tx, jnp.zeros((1, *dataset.input_shape), jnp.float32)))(
          jax.random.PRNGKey(config.seed))
  train_step = train_lib.make_train_step(
      num_classes=dataset.num_classes, augment_fn=dataset.train_preprocess,
      **_mixing_options(config, steps_per_epoch), **dp.step_options)
  eval_step = dp.compile_eval_step(train_lib.make_eval_step(
      preprocess_fn=dataset.eval_preprocess, axis_name=dp.axis_name))
  metric_names = _metric_names(train_step, state, example_batch, dp.axis_name)

  def carry_step(carry, batch):
    state, metrics = train_step(carry["train_state"], batch)
    meter = _accumulate(carry["meter"], metrics, state.step)
    return {"train_state": state, "meter": meter}, metrics

  carry = {"train_state": state, "meter": _empty_meter(metric_names)}
  return carry, dp.compile_train_step(carry_step), eval_step, metric_names


def _train_record(meter: Mapping[str, Any], step: int, epoch: float) -> dict[str, Any]:
  """The train metrics averaged over the steps since the meter's reset."""
  count = int(meter["count"])
  record = {"step": step, "epoch": epoch}
  record.update({f"train/{k}": float(v) / count for k, v in sorted(meter["sums"].items())})
  return record


def _eval_record(dp, eval_step, state, dataset, batch_size, step, epoch) -> dict[str, Any]:
  """Loss and errors on the validation split (if any) and the test split."""
  record = {"step": step, "epoch": epoch}
  for split, source in (("validation", dataset.validation), ("test", dataset.test)):
    if source is not None:
      result = _evaluate(dp, eval_step, state, source, dataset, batch_size)
      record.update({f"{split}/{_EVAL_NAMES[k]}": v for k, v in result.items()})
  return record


def _nonfinite_error(meter, step: int, ckpt) -> NonFiniteLossError:
  """The error for a NaN / inf loss, naming its step and the last good checkpoint."""
  last = None
  if ckpt is not None:
    ckpt.wait()  # a save in flight was checked finite: let it land
    last = ckpt.latest_step()
  where = (f"the last good checkpoint is step {last} at {ckpt.step_path(last)}"
           if last is not None else "no checkpoint was saved before it")
  return NonFiniteLossError(
      f"The training loss became {float(meter['sums']['loss']):.4g} (not finite) at step "
      f"{int(meter['first_nonfinite'])} (checked at step {step}); {where}. Lower "
      "config.learning_rate or check the data.")


class _Latest:
  """The newest train loss and test error, for the progress line.

  Updated with each record as it is made, so the status costs O(1) per step
  however long the history grows.
  """

  _SHOWN = (("train/loss", "loss {:.4f}"), ("test/error", "test error {:.2f}%"))

  def __init__(self, history: Sequence[Mapping[str, Any]] = ()):
    self._values: dict[str, float] = {}
    for record in history:  # once, on resume
      self.update(record)

  def update(self, record: Mapping[str, Any]) -> None:
    for key, _ in self._SHOWN:
      if key in record:
        self._values[key] = record[key]

  def status(self) -> str:
    parts = [fmt.format(self._values[key]) for key, fmt in self._SHOWN if key in self._values]
    return ", ".join(parts) or "starting"


def _meter_to_json(meter: Mapping[str, Any]) -> dict[str, Any]:
  """The host meter as JSON; float32 -> Python float -> float32 is exact."""
  return {"sums": {k: float(v) for k, v in meter["sums"].items()},
          "count": int(meter["count"]),
          "first_nonfinite": int(meter["first_nonfinite"])}


def _meter_from_json(saved: Mapping[str, Any] | None, metric_names) -> dict:
  """The meter of a checkpoint, or an empty one if it counted other metrics.

  A resumed run whose config computes other metrics (label corruption adds
  'true_label_accuracy') starts its sums afresh: its first train record then
  averages the steps since the resume, not since the last record.
  """
  if saved is None or sorted(saved["sums"]) != sorted(metric_names):
    if saved is not None:
      logging.warning("The checkpoint's train-metric sums are for %s, this run computes %s: "
                      "starting them afresh.", sorted(saved["sums"]), sorted(metric_names))
    return _empty_meter(metric_names)
  return {"sums": {k: jnp.float32(saved["sums"][k]) for k in metric_names},
          "count": jnp.int32(saved["count"]),
          "first_nonfinite": jnp.int32(saved["first_nonfinite"])}


_EVAL_NAMES = {"loss": "loss", "top1_error": "error", "top5_error": "top5_error"}


def _mixing_options(config: ml_collections.ConfigDict, steps_per_epoch: int) -> dict[str, Any]:
  """make_train_step's mixing keywords from config.mixup and friends."""
  mix = config.mixup
  options = {
      "alpha": float(mix.alpha),
      "label_smoothing": float(config.label_smoothing),
      "input_noise_sigma": float(config.input_noise_sigma),
  }
  cutmix_alpha = float(mix.get("cutmix_alpha", 0.0))
  if cutmix_alpha > 0:
    options.update(cutmix_alpha=cutmix_alpha, switch_prob=float(mix.get("switch_prob", 0.5)))
  if mix.alpha > 0 or cutmix_alpha > 0:
    options.update(
        granularity=mix.granularity, pairing="given" if mix.pairing == "knn" else mix.pairing,
        num_sources=mix.num_sources,
        targets=mix.targets, prob=float(mix.prob), global_pairing=mix.global_pairing,
        mix_start_step=optim.epochs_to_steps(mix.start_epoch, steps_per_epoch),
        mix_stage=tuple(mix.stages) or None)
  return options


def _mixes(config: ml_collections.ConfigDict) -> bool:
  """Whether the run mixes at all (mixup, CutMix or both)."""
  return config.mixup.alpha > 0 or config.mixup.get("cutmix_alpha", 0.0) > 0


def _partner_transforms(config: ml_collections.ConfigDict, dataset: data_lib.Dataset) -> tuple:
  """The k-NN partner transform of pairing 'knn' (neighbours computed once, cached)."""
  if not (_mixes(config) and config.mixup.pairing == "knn"):
    return ()
  return (data_lib.neighbors.knn_partner(
      dataset.train, k=config.mixup.get("knn_k", 200),
      within_class=bool(config.mixup.get("knn_within_class", False)),
      input_key=dataset.input_key),)


def _model_batch(batch: Mapping[str, np.ndarray], input_key: str) -> dict[str, np.ndarray]:
  """A loader batch as the steps take it: the input under 'image' or 'input' (its k-NN
  partner under 'partner_image' / 'partner_input'), without the host-only indices."""
  batch = {k: v for k, v in batch.items() if k not in ("index", "partner_index")}
  if input_key not in ("image", "input"):
    batch["input"] = batch.pop(input_key)
    if f"partner_{input_key}" in batch:
      batch["partner_input"] = batch.pop(f"partner_{input_key}")
  return batch


def _check_dataset_fits(config: ml_collections.ConfigDict, dataset: data_lib.Dataset) -> None:
  """Refuses config / dataset combinations that would train the wrong thing."""
  if _mixes(config) and config.mixup.pairing == "knn" and dataset.train_transforms:
    # The partner is read from the raw source after the host transforms ran on the
    # row itself: an augmented, normalised row would be mixed with a raw partner.
    raise ConfigError(
        f"config.mixup.pairing: 'knn' cannot be combined with the host-side train "
        f"transforms of {dataset.name!r} ({[type(t).__name__ for t in dataset.train_transforms]}): "
        "the partners would skip them. Augment on the device instead (for CIFAR: "
        "dataset_options.host_augment=False, the default).")


def _peek(train_iter, input_key: str) -> dict[str, np.ndarray]:
  """The first batch the iterator will yield, leaving its position unchanged.

  `peek` computes it in this process, so no loader worker is started for it.
  """
  return _model_batch(train_iter.peek(), input_key)


def _metric_names(train_step, state, batch, axis_name: str | None) -> tuple[str, ...]:
  """The keys of the train step's metrics, from its abstract evaluation.

  A per-device step (axis_name set) is evaluated under a size-1 `vmap` that
  binds the axis, since `eval_shape` alone has no mapped axis to reduce over.
  """
  fn = lambda b: train_step(state, b)[1]
  if axis_name is not None:
    fn = jax.vmap(fn, axis_name=axis_name)
    batch = jax.tree.map(lambda x: x[None], batch)
  return tuple(sorted(jax.eval_shape(fn, batch)))


def _evaluate(dp, eval_step, state, source, dataset, batch_size: int) -> dict[str, float]:
  """Loss and errors (percent) over every record of `source`, each counted once."""
  total = None
  for batch in data_lib.eval_batches(
      source, global_batch_size=batch_size, process_index=jax.process_index(),
      process_count=jax.process_count(), transforms=dataset.eval_transforms):
    sums = eval_step(state, dp.put_batch(_model_batch(batch, dataset.input_key)))
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
  return train_lib.eval_metrics_from_sums(dp.get_metrics(total))


def _log_config_changes(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> None:
  """Warns about every field that differs from the config of the checkpointed run."""
  if saved is None:
    return
  changed = sorted(
      k for k in set(_flatten(saved)) | set(_flatten(current))
      if _flatten(saved).get(k) != _flatten(current).get(k))
  if changed:
    logging.warning("Resuming a run whose config differed in %s: the resumed run uses the new "
                    "values.", ", ".join(f"{k} ({_flatten(saved).get(k)!r} -> "
                                         f"{_flatten(current).get(k)!r})" for k in changed))


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _median_last_epochs(evals, steps_per_epoch: int, count: int) -> float | None:
  """Median test error of the evaluations at the ends of the last `count` epochs.

  None when no evaluation fell on an epoch's end (eval_every_steps not dividing it).
  """
  at_epoch_end = [r["test/error"] for r in evals if r["step"] % steps_per_epoch == 0]
  return statistics.median(at_epoch_end[-count:]) if at_epoch_end else None


def _results(history, ckpt, step, total, steps_per_epoch, wall_time, config_json) -> dict[str, Any]:
  """The summary written to results.json (errors in percent)."""
  evals = [r for r in history if "test/error" in r]
  final = evals[-1]
  best = min(evals, key=lambda r: r["test/error"])  # the earliest among ties
  results = {
      "final_test_error": final["test/error"],
      "best_test_error": best["test/error"],
      "best_step": best["step"],
      "best_epoch": best["epoch"],
      # The authors' statistic is per epoch; with eval_every_steps set, evaluations
      # are not epochs, so both are reported under names that say which is which.
      "median_last_10_evals_test_error": statistics.median(
          r["test/error"] for r in evals[-10:]),
      "median_last_10_epochs_test_error": _median_last_epochs(evals, steps_per_epoch, 10),
  }
  for key in ("test/top5_error", "validation/error", "validation/top5_error"):
    if key in final:
      results["final_" + key.replace("/", "_")] = final[key]
  results.update(
      final_step=step, num_train_steps=total, steps_per_epoch=steps_per_epoch,
      wall_time_s=wall_time,
      checkpoint=str(ckpt.step_path(step)) if ckpt is not None else None,
      best_checkpoint=(str(ckpt.step_path(ckpt.best_step()))
                       if ckpt is not None and ckpt.best_step() is not None else None),
      config=config_json)
  return results
