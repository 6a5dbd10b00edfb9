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
                    config): the last few plus the best
  metrics.jsonl     one JSON record per log / eval step, e.g.
                    {"step": 390, "epoch": 1.0, "train/loss": ...}
  tensorboard/      the same records as TensorBoard event files
  results.json      final and best test error, best epoch, config, wall time

Failure modes are loud: a bad config raises `ConfigError` naming the field
before anything is built; SIGTERM saves a checkpoint and returns
(`results['preempted']`; in a multi-process run every process stops at the same
step); a non-finite loss raises `NonFiniteLossError` naming
the step and the last good checkpoint.

This file is the loop and the builders it needs; the config checks are in
`config_checks.py` and the host-side outputs (metric sums, metrics.jsonl,
TensorBoard, the progress line, SIGTERM) in `loop_outputs.py`.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from mixup_jax import checkpoint as checkpoint_lib
from mixup_jax import config_defaults
from mixup_jax import data as data_lib
from mixup_jax import loop_outputs
from mixup_jax import models as models_lib
from mixup_jax import optim
from mixup_jax import parallel
from mixup_jax import train as train_lib
from mixup_jax.spec import MixSpec
# The config checks live in their own module; re-exported, as they are part of the
# loop's interface (`trainer.validate_config(config)`, `except trainer.ConfigError`).
from mixup_jax.config_checks import (  # noqa: F401  (re-exported)
    OPTIMIZERS, PAIRINGS, PARALLEL_MODES, SCHEDULES, ConfigError, unknown_fields,
    validate_config)
from mixup_jax.config_defaults import default_config  # noqa: F401  (re-exported)

# A hook is called on the host after every train step with the number of
# updates done and the (not yet synchronised) train state.
Hook = Callable[[int, Any], None]


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite; the message names the step."""


# ------------------------------------------------------------------------------
# Building the pieces from a config.
# ------------------------------------------------------------------------------


def build_dataset(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  """The dataset named by `config.dataset`, read from `config.data_dir`.

  Raises:
    ConfigError: the dataset cannot be built with these fields (a missing data
      directory, an unknown dataset option); the message says which and how.
  """
  config = config_defaults.with_defaults(config)
  try:
    return data_lib.get_dataset(
        config.dataset,
        data_dir=config.data_dir or None,
        source=config.data_source,
        label_corruption=config.label_corruption,
        label_corruption_seed=config.label_corruption_seed,
        train_size=config.train_size,
        test_size=config.test_size,
        train_subset=config.train_subset,
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
  config = config_defaults.with_defaults(config)
  try:
    return optim.make_schedule(
        config.schedule, base_lr=config.learning_rate, steps_per_epoch=steps_per_epoch,
        num_epochs=config.num_epochs,
        total_steps=config.num_train_steps or config.num_epochs * steps_per_epoch,
        boundaries=config.schedule_boundaries, factor=config.schedule_factor,
        shift_epochs=config.schedule_shift, warmup_epochs=config.warmup_epochs)
  except ValueError as e:
    raise ConfigError(f"config.schedule={config.schedule!r}: {e}") from e


def build_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """The optax transformation of `config.optimizer` with `build_schedule`'s rate."""
  schedule = build_schedule(config, steps_per_epoch)
  if config.optimizer == "sgd":
    return optim.sgd(schedule, momentum=config.momentum, weight_decay=config.weight_decay)
  return optim.adam(schedule, weight_decay=config.weight_decay)


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
  config = config_defaults.with_defaults(config)
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
  config = config_defaults.with_defaults(config)
  _check_dataset_fits(config, dataset)
  session_start = time.time()
  workdir = checkpoint_lib.as_path(workdir) if workdir else None
  if workdir is not None and jax.process_index() == 0:
    workdir.mkdir(parents=True, exist_ok=True)
  dp = parallel.DataParallel.create(config.parallel)
  _check_model_axis(config, model, dp.axis_name)
  try:
    steps_per_epoch = data_lib.steps_per_epoch(dataset.num_train, config.batch_size)
  except ValueError as e:
    raise ConfigError(f"config.batch_size: {e}") from e
  total = config.num_train_steps or config.num_epochs * steps_per_epoch
  eval_every = config.eval_every_steps or steps_per_epoch
  # Early evaluations only cost time when a statistic of the last epochs is all a run
  # reports (Table 5's median of the last 10).
  eval_from_step = config.eval_from_epoch * steps_per_epoch
  checkpoint_every = config.checkpoint_every_steps or steps_per_epoch

  # Data, state and compiled steps.
  train_iter = data_lib.train_iterator(
      dataset.train, global_batch_size=config.batch_size, seed=config.seed,
      rows=dp.local_rows(config.batch_size), worker_count=config.data_workers,
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
        best_metric=_selection_metric(dataset).replace("/", "_"))
    restored = _restore_or_name_the_changes(ckpt, carry, train_iter, config_json, workdir)
    if restored is not None:
      start_step = restored.step
      history = loop_outputs.read_history(workdir, start_step)
      if jax.process_count() > 1:  # every process has read it before process 0 rewrites it
        multihost_utils.sync_global_devices("mixup_jax_history_read")
      carry = {"train_state": restored.state["train_state"],
               "meter": loop_outputs.meter_from_json(restored.extra.get("meter"), metric_names)}
      previous_wall_time = restored.extra.get("wall_time_s", 0.0)
      _log_config_changes(restored.config, config_json)
      logging.info("Resuming from step %d (%s).", start_step, restored.path)
  carry = dp.put_state(carry)
  outputs = loop_outputs.Outputs(workdir, history, start_step)
  progress = loop_outputs.Progress(total, start_step, config.batch_size)
  latest = loop_outputs.Latest(history)
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
  with loop_outputs.PreemptionNotice() as preemption:
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
        carry = {**carry, "meter": dp.put_state(loop_outputs.empty_meter(metric_names))}

      eval_record = None
      if (step % eval_every == 0 and step >= eval_from_step) or last:
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
        ckpt.save(step, {"train_state": dp.get_state(carry["train_state"])},
                  data_iter=train_iter, config=config_json,
                  extra={"wall_time_s": wall_time(),
                         "meter": loop_outputs.meter_to_json(checked_meter(step))},
                  metrics=({_selection_metric(dataset).replace("/", "_"):
                            eval_record[_selection_metric(dataset)]} if eval_record else None))
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
      spec=MixSpec.from_config(config, steps_per_epoch),
      input_noise_sigma=float(config.input_noise_sigma), **dp.step_options)
  eval_step = dp.compile_eval_step(train_lib.make_eval_step(
      preprocess_fn=dataset.eval_preprocess, axis_name=dp.axis_name))
  metric_names = _metric_names(train_step, state, example_batch, dp.axis_name)

  def carry_step(carry, batch):
    state, metrics = train_step(carry["train_state"], batch)
    meter = loop_outputs.accumulate(carry["meter"], metrics, state.step)
    return {"train_state": state, "meter": meter}, metrics

  carry = {"train_state": state, "meter": loop_outputs.empty_meter(metric_names)}
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


_EVAL_NAMES = {"loss": "loss", "top1_error": "error", "top5_error": "top5_error"}


def _mixes(config: ml_collections.ConfigDict) -> bool:
  """Whether the run mixes at all (mixup, CutMix or both)."""
  return config.mixup.alpha > 0 or config.mixup.cutmix_alpha > 0


def _partner_transforms(config: ml_collections.ConfigDict, dataset: data_lib.Dataset) -> tuple:
  """The k-NN partner transform of pairing 'knn' (neighbours computed once, cached)."""
  if not (_mixes(config) and config.mixup.pairing == "knn"):
    return ()
  return (data_lib.neighbors.knn_partner(
      dataset.train, k=config.mixup.knn_k, within_class=config.mixup.knn_within_class,
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

  A per-device step (axis_name set) is evaluated inside a one-device `shard_map`,
  which binds the axis as a real data-parallel run does.
  """
  fn = lambda b: train_step(state, b)[1]
  if axis_name is not None:
    mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()[:1]), (axis_name,))
    fn = jax.shard_map(fn, mesh=mesh, in_specs=jax.sharding.PartitionSpec(axis_name),
                       out_specs=jax.sharding.PartitionSpec())
  return tuple(sorted(jax.eval_shape(fn, batch)))


def _evaluate(dp, eval_step, state, source, dataset, batch_size: int) -> dict[str, float]:
  """Loss and errors (percent) over every record of `source`, each counted once."""
  total = None
  for batch in data_lib.eval_batches(
      source, global_batch_size=batch_size, rows=dp.local_rows(batch_size),
      transforms=dataset.eval_transforms):
    sums = eval_step(state, dp.put_batch(_model_batch(batch, dataset.input_key)))
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
  return train_lib.eval_metrics_from_sums(dp.get_metrics(total))


def _check_model_axis(config, model, axis_name: str | None) -> None:
  """A per-device step needs a model that averages its BatchNorm statistics over devices.

  Under pmap or shard_map each device runs its own copy of the model: built without
  `axis_name`, its BatchNorm keeps per-device statistics and only device 0's would be
  saved and evaluated, silently. Models without the option (no BatchNorm) pass.
  """
  built_with = getattr(model, "axis_name", axis_name)
  if axis_name is not None and built_with != axis_name:
    raise ConfigError(
        f"config.parallel={config.parallel!r} runs one copy of the model per device, but the "
        f"model was built with axis_name={built_with!r}: its BatchNorm statistics would differ "
        f"per device and only device 0's be kept. Build it with axis_name={axis_name!r} "
        "(trainer.build_model(config, num_classes, parallel.AXIS_NAME) does), or use "
        "config.parallel='sharded'.")


def _restore_or_name_the_changes(ckpt, carry, train_iter, config_json, workdir):
  """ckpt.restore_latest; a checkpoint that no longer fits a changed config is a ConfigError.

  A changed width or batch size makes the saved state or input iterator unrestorable;
  Orbax then says so in a tree diff. The checkpoint holds the config it was saved
  with, so the error names the changed fields and the two ways out instead.
  """
  template = {"train_state": carry["train_state"]}
  step = ckpt.latest_step()
  mismatches = ckpt.state_mismatches(step, template) if step is not None else None
  if mismatches:
    changes = _config_changes(ckpt.saved_config(step), config_json) or "no config field"
    ckpt.close()
    raise ConfigError(
        f"the checkpoint in {workdir} was saved by a run with another config and does not fit "
        f"this one (changed: {changes}; state: {mismatches[0]}"
        f"{f' and {len(mismatches) - 1} more' if len(mismatches) > 1 else ''}); rerun with the "
        "checkpoint's values to resume it, or give the changed run its own --workdir.")
  try:
    return ckpt.restore_latest(template, train_iter)
  except Exception as e:  # pylint: disable=broad-except: re-raised unless a config changed
    changes = _config_changes(ckpt.saved_config(), config_json)
    if not changes:
      raise
    ckpt.close()
    raise ConfigError(
        f"the checkpoint in {workdir} was saved by a run with another config and could not be "
        f"restored into this one (changed: {changes}); rerun with the checkpoint's values to "
        "resume it, or give the changed run its own --workdir.") from e


def _config_changes(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> str:
  """'field (old -> new), ...' for every field that differs, '' if none (or no saved config)."""
  if saved is None:
    return ""
  old, new = _flatten(saved), _flatten(current)
  return ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})"
                   for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))


def _log_config_changes(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> None:
  """Warns about every field that differs from the config of the checkpointed run."""
  changes = _config_changes(saved, current)
  if changes:
    logging.warning("Resuming a run whose config differed in %s: the resumed run uses the new "
                    "values.", changes)


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


def _selection_metric(dataset: data_lib.Dataset) -> str:
  """What ranks the kept "best" checkpoint: the validation error where there is a
  validation split (Speech Commands), so that no model is selected on the test set;
  else the test error, the CIFAR papers' own protocol."""
  return "validation/error" if dataset.validation is not None else "test/error"


def _results(history, ckpt, step, total, steps_per_epoch, wall_time, config_json) -> dict[str, Any]:
  """The summary written to results.json (errors in percent).

  With a validation split, the step of lowest validation error is also reported with
  the test error there (`test_error_at_best_validation`): the honest model-selection
  number, beside the best test error that the papers report.
  """
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
  if "validation/error" in final:
    chosen = min(evals, key=lambda r: r["validation/error"])  # the earliest among ties
    results.update(best_validation_error=chosen["validation/error"],
                   best_validation_step=chosen["step"], best_validation_epoch=chosen["epoch"],
                   test_error_at_best_validation=chosen["test/error"])
  results.update(
      final_step=step, num_train_steps=total, steps_per_epoch=steps_per_epoch,
      wall_time_s=wall_time,
      checkpoint=str(ckpt.step_path(step)) if ckpt is not None else None,
      best_checkpoint=(str(ckpt.step_path(ckpt.best_step()))
                       if ckpt is not None and ckpt.best_step() is not None else None),
      config=config_json)
  return results
