"""The train and eval steps that every experiment uses.

  tx = optim.sgd(optim.cifar_schedule(steps_per_epoch), weight_decay=1e-4)
  state = create_train_state(jax.random.PRNGKey(0), model, tx, images[:1])
  train_step = jax.jit(make_train_step(num_classes=10, spec=MixSpec(alpha=1.0)))
  state, metrics = train_step(state, {"image": images, "label": labels})

A batch takes this path through `train_step`, top to bottom:
  keys:     step_rng = fold_in(state.rng, state.step), one sub-key per purpose
  augment:  augment_fn(key, uint8 images) -> float images, per group of rows
  mix:      spec.sample -> draw.inputs (or inside the model at a stage) and
            draw.targets on the labels (mixup_jax.spec); ERM when spec.mixes is False
  noise:    optional Gaussian input noise (Table 5's baseline), per group of rows
  loss:     soft-target cross-entropy, the mean over this device's rows
  gradient: each device's own, averaged over devices under `axis_name`
  update:   the optax transformation in the state; new BatchNorm statistics

Groups of rows. A data-parallel run over D devices gives every device its own keys
for augmentation and noise (`fold_in(key, device index)`), and `sample_mixing` pairs
rows within each device. A single device with `num_groups=D` applies exactly the
same keys to D contiguous groups of rows, so the two runs compute the same numbers
(tested in tests/test_parallel.py). Dropout inside the model cannot be split by
groups: its key is `fold_in(key, device index)` per device and one key on a single
device, so runs with dropout agree only in distribution across device counts.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mixup_jax import _checks
from mixup_jax import losses
from mixup_jax import mixing as mixing_lib
from mixup_jax import optim
from mixup_jax.data.pipeline import pad_batch
from mixup_jax.spec import MixSpec
from mixup_jax.train_state import TrainState, create_train_state

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]
AugmentFn = Callable[[jax.Array, jax.Array], jax.Array]

__all__ = [
    "TrainState",
    "create_train_state",
    "make_train_step",
    "make_eval_step",
    "eval_metrics_from_sums",
    "pad_batch",
]

# Sub-streams of the step key, so adding a purpose never shifts the others.
_MIXING, _DROPOUT, _AUGMENT, _NOISE, _STAGE = range(5)


# Keywords that make_train_step took before the mixing options became one MixSpec.
_SPEC_KEYWORDS = {
    "alpha": "alpha", "granularity": "granularity", "pairing": "pairing",
    "num_sources": "num_sources", "targets": "targets", "prob": "prob",
    "global_pairing": "global_pairing", "label_smoothing": "label_smoothing",
    "mix_stage": "stages", "mix_start_step": "start_step", "cutmix_alpha": "cutmix_alpha",
    "switch_prob": "switch_prob",
}


def _check_step_options(num_classes, spec, num_groups, input_noise_sigma, augment_fn,
                        axis_name) -> None:
  """Refuses the non-mixing options of make_train_step that no step can use."""
  if not _checks.is_int(num_classes) or num_classes < 2:
    raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}.")
  if not isinstance(spec, MixSpec):
    raise ValueError(f"spec must be a mixup_jax.MixSpec (MixSpec() is ERM), got "
                     f"{type(spec).__name__}.")
  if not _checks.is_int(num_groups) or num_groups < 1:
    raise ValueError(f"num_groups must be a positive int, got {num_groups!r}.")
  if axis_name is not None and num_groups != 1:
    raise ValueError("num_groups must be 1 under axis_name: each device is one group already.")
  sigma = input_noise_sigma
  if not _checks.is_number(sigma) or not np.isfinite(sigma) or sigma < 0:
    raise ValueError(f"input_noise_sigma must be a finite number >= 0, got {sigma!r}.")
  if augment_fn is not None and not callable(augment_fn):
    raise ValueError("augment_fn must be a function (rng, images) -> float images.")
  spec.check_placement(axis_name=axis_name, num_groups=num_groups)


# ------------------------------------------------------------------------------
# Pieces of the step.
# ------------------------------------------------------------------------------


def _inputs(batch: Batch, *, train: bool) -> tuple[jax.Array, jax.Array]:
  """The input array ('image' or 'input') and the [B] integer labels of a batch."""
  if not isinstance(batch, Mapping):
    raise ValueError(f"batch must be a dict of arrays, got {type(batch).__name__}.")
  names = [k for k in ("image", "input") if k in batch]
  if len(names) != 1:
    raise ValueError(
        f"batch must hold exactly one of 'image' or 'input', got keys {sorted(batch)}."
    )
  if "label" not in batch:
    raise ValueError(f"batch has no 'label' ([B] int class ids); keys {sorted(batch)}.")
  if train and "mask" in batch:
    raise ValueError(
        "training batches must be full: 'mask' (padding) is for eval_step only."
    )
  x, labels = batch[names[0]], batch["label"]
  if jnp.ndim(labels) != 1 or not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
    raise ValueError(
        f"batch['label'] must be [B] integer class ids, got shape {jnp.shape(labels)} "
        f"dtype {jnp.result_type(labels)}."
    )
  if jnp.shape(x)[:1] != jnp.shape(labels):
    raise ValueError(
        f"batch['{names[0]}'] has {jnp.shape(x)[:1]} rows but batch['label'] has "
        f"{jnp.shape(labels)}."
    )
  return x, labels


def _per_group(fn, key, x, num_groups: int, axis_name):
  """fn(fold_in(key, g), rows of group g) for each group g of rows.

  Under `axis_name` this device is one group, g = its index on the axis; otherwise
  the batch is cut into `num_groups` contiguous groups, so one device reproduces what
  num_groups devices draw.
  """
  if axis_name is not None:
    return fn(jax.random.fold_in(key, jax.lax.axis_index(axis_name)), x)
  if x.shape[0] % num_groups:
    raise ValueError(f"batch size {x.shape[0]} is not divisible by num_groups={num_groups}.")
  grouped = x.reshape((num_groups, -1) + x.shape[1:])
  keys = jax.vmap(lambda g: jax.random.fold_in(key, g))(jnp.arange(num_groups))
  out = jax.vmap(fn)(keys, grouped)
  return out.reshape((-1,) + out.shape[2:])


def _per_device_params(params, axis_name):
  """The parameters as a per-device value, so that each device's gradient is its own.

  Inside `jax.shard_map` (with its default type checking) replicated parameters are
  device-invariant, and differentiating through them already sums the per-device
  gradients; a `pmean` of that sum would multiply the step by the device count.
  Casting them to device-varying first (`jax.lax.pcast`, a no-op under pmap and
  shard_map(check_vma=False)) leaves every device with the gradient of its own loss
  in every mode, so one `pmean` gives the global-batch gradient everywhere.
  """
  if axis_name is None:
    return params
  return jax.lax.pcast(params, axis_name, to="varying")


def _call_model(state: TrainState, params, x, rngs, **kwargs):
  """(logits, new batch_stats) of a training-mode forward pass."""
  if state.batch_stats:
    variables = {"params": params, "batch_stats": state.batch_stats}
    logits, updates = state.apply_fn(
        variables, x, train=True, rngs=rngs, mutable=["batch_stats"], **kwargs
    )
    return logits, updates["batch_stats"]
  logits = state.apply_fn({"params": params}, x, train=True, rngs=rngs, **kwargs)
  return logits, {}


# ------------------------------------------------------------------------------
# The train step.
# ------------------------------------------------------------------------------


def make_train_step(
    *,
    num_classes: int,
    spec: MixSpec = MixSpec(),
    input_noise_sigma: float = 0.0,
    augment_fn: AugmentFn | None = None,
    axis_name: str | None = None,
    num_groups: int = 1,
    learning_rate_fn: optax.Schedule | None = None,
    **removed,
) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
  """Builds `train_step(state, batch) -> (state, metrics)`, pure and jittable.

  Args:
    num_classes: C of the integer labels.
    spec: how to mix (`mixup_jax.MixSpec`: mixup, CutMix, the switch, latent
      mixing, label smoothing, warm-up); the default `MixSpec()` is ERM.
    input_noise_sigma: std of Gaussian noise added to the (mixed) inputs (Table 5's
      baseline).
    augment_fn: `augment_fn(rng, images) -> float32 images`, run on each group of
      rows with its own key (the host ships uint8; this also normalises). Must be
      pure JAX so it can be vmapped over groups. Without it the inputs must already
      be floating point.
    axis_name: the mapped axis when the step runs per device (pmap / shard_map).
      Gradients and metrics are averaged over it; the model must be built with the
      same axis_name so BatchNorm averages its statistics over it.
    num_groups: > 1 cuts the batch into contiguous groups, each paired within itself
      and given its own augmentation and noise keys: set it to the number of devices
      to reproduce a data-parallel run on one device (or to keep the pairing gather
      local when the batch is sharded by `jax.jit`).
    learning_rate_fn: the schedule, used for the 'learning_rate' metric only when
      the optimizer state does not record its rate (optimizers from
      mixup_jax.optim do).

  Batch keys: 'image' (or 'input') [B, ...], 'label' int [B]; optional 'true_label'
  int [B] (label-corruption runs), 'partner_image' (or 'partner_input' beside
  'input') and 'partner_label' (for pairing="given", row i is mixed with partner
  row i; the partner goes through the same augment_fn as the rows).

  Metrics (float32 scalars, averaged over the devices): 'loss' (the soft-target
  cross-entropy minimised), 'accuracy' (top-1 of the outputs on the mixed inputs
  against each row's own label), 'true_label_accuracy' (if the batch has
  'true_label'), 'lambda' (mean weight of each row's own example; 1 for ERM),
  'grad_norm' (global norm of the averaged gradient, before weight decay) and
  'learning_rate' (the rate of this update).
  """
  if removed:
    moved = {k: _SPEC_KEYWORDS[k] for k in removed if k in _SPEC_KEYWORDS}
    unknown = sorted(set(removed) - set(moved))
    if unknown:
      raise TypeError(f"make_train_step() got unexpected keyword arguments {unknown}.")
    values = dict(removed)
    if _checks.is_int(values.get("mix_stage")):
      values["mix_stage"] = (values["mix_stage"],)
    example = ", ".join(f"{v}={values[k]!r}" for k, v in moved.items())
    raise TypeError(f"make_train_step takes the mixing options as one value now: "
                    f"make_train_step(..., spec=mixup_jax.MixSpec({example})).")
  _check_step_options(num_classes, spec, num_groups, input_noise_sigma, augment_fn,
                      axis_name)
  num_groups = int(num_groups)

  def prepare(key, x):
    return _per_group(augment_fn, key, x, num_groups, axis_name) if augment_fn else x

  def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    x, labels = _inputs(batch, train=True)
    step_rng = jax.random.fold_in(state.rng, state.step)
    key = lambda purpose: jax.random.fold_in(step_rng, purpose)

    x = prepare(jax.random.fold_in(key(_AUGMENT), 0), x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(
          f"model inputs have dtype {x.dtype}: pass augment_fn (or preprocess the "
          "batch) to turn them into floating point."
      )

    model_kwargs = {}
    if spec.mixes:
      partner = partner_labels = None
      if spec.pairing == "given":
        partner_key = "partner_image" if "image" in batch else "partner_input"
        if partner_key not in batch or "partner_label" not in batch:
          raise ValueError(
              f'pairing="given" needs batch keys "{partner_key}" and "partner_label".'
          )
        partner = prepare(jax.random.fold_in(key(_AUGMENT), 1), batch[partner_key])
        partner_labels = batch["partner_label"]
      draw = spec.sample(key(_MIXING), x, labels, axis_name=axis_name,
                         num_groups=num_groups, step=state.step)
      targets_rows = draw.targets(labels, num_classes, partner_labels)
      x = draw.inputs(x, partner)
      if draw.in_model:
        model_kwargs["mixing"] = draw.mixing
        model_kwargs["mix_stage"] = spec.draw_stage(key(_STAGE))
      lam = jnp.mean(draw.lam)
    else:
      targets_rows = mixing_lib.as_target_rows(labels, num_classes, spec.label_smoothing)
      lam = jnp.ones((), jnp.float32)

    if input_noise_sigma:
      noise = lambda k, rows: mixing_lib.add_gaussian_noise(k, rows, input_noise_sigma)
      x = _per_group(noise, key(_NOISE), x, num_groups, axis_name)

    dropout_key = key(_DROPOUT)
    if axis_name is not None:
      dropout_key = jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name))
    rngs = {"dropout": dropout_key}

    def loss_fn(params):
      logits, batch_stats = _call_model(state, params, x, rngs, **model_kwargs)
      # The mean over this device's rows: gradients are averaged over devices after.
      loss = jnp.mean(losses.softmax_cross_entropy(logits, targets_rows))
      return loss, (logits, batch_stats)

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        _per_device_params(state.params, axis_name)
    )
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
    new_state = state.apply_gradients(grads, batch_stats)

    metrics = {
        "loss": loss,
        "accuracy": jnp.mean(losses.topk_correct(logits, labels, 1)),
        "lambda": lam,
    }
    if "true_label" in batch:
      metrics["true_label_accuracy"] = jnp.mean(
          losses.topk_correct(logits, batch["true_label"], 1)
      )
    if axis_name is not None:
      metrics = jax.lax.pmean(metrics, axis_name)
    metrics["grad_norm"] = optax.global_norm(grads)
    metrics["learning_rate"] = _learning_rate(new_state, state.step, learning_rate_fn)
    return new_state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

  return train_step


def _learning_rate(new_state: TrainState, step, learning_rate_fn) -> jax.Array:
  """The rate the update just used, from the optimizer state or the schedule."""
  rate = optim.learning_rate_of(new_state.opt_state)
  if rate is not None:
    return rate
  if learning_rate_fn is None:
    raise ValueError(
        "the optimizer state does not record its learning rate: build it with "
        "mixup_jax.optim (or optax.inject_hyperparams), or pass learning_rate_fn."
    )
  return jnp.asarray(learning_rate_fn(step), jnp.float32)


# ------------------------------------------------------------------------------
# The eval step.
# ------------------------------------------------------------------------------


def make_eval_step(
    *,
    preprocess_fn: Callable[[jax.Array], jax.Array] | None = None,
    axis_name: str | None = None,
) -> Callable[[TrainState, Batch], Metrics]:
  """Builds `eval_step(state, batch) -> sums`, exact over padded batches.

  Args:
    preprocess_fn: deterministic `images -> float32 images` (normalisation of the
      uint8 images the host ships); None when the inputs are already float.
    axis_name: the mapped axis under pmap / shard_map; sums are summed over it.

  The batch may carry 'mask' [B] (True on real rows, False on padding: `pad_batch`),
  so the last partial batch counts every example exactly once.

  Returns sums (float32 scalars): 'loss' (cross-entropy against the labels), 'top1'
  and 'top5' (correct predictions; top5 only when there are >= 5 classes) and
  'count' (real rows). `eval_metrics_from_sums` turns accumulated sums into errors.
  """
  if preprocess_fn is not None and not callable(preprocess_fn):
    raise ValueError("preprocess_fn must be a function images -> float images.")

  def eval_step(state: TrainState, batch: Batch) -> Metrics:
    x, labels = _inputs(batch, train=False)
    if preprocess_fn is not None:
      x = preprocess_fn(x)
    mask = batch.get("mask")
    mask = jnp.ones(labels.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
    if mask.shape != labels.shape:
      raise ValueError(f"batch['mask'] must be [B]={labels.shape}, got {mask.shape}.")
    logits = state.apply_fn(state.variables, x, train=False)
    # Padded rows may hold any label (even out of range): select, don't multiply.
    safe_labels = jnp.where(mask > 0, labels, 0)
    loss = losses.cross_entropy_with_ids(logits, safe_labels)
    sums = {
        "loss": jnp.sum(jnp.where(mask > 0, loss, 0.0)),
        "top1": jnp.sum(losses.topk_correct(logits, safe_labels, 1) * mask),
        "count": jnp.sum(mask),
    }
    if logits.shape[-1] >= 5:
      sums["top5"] = jnp.sum(losses.topk_correct(logits, safe_labels, 5) * mask)
    if axis_name is not None:
      sums = jax.lax.psum(sums, axis_name)
    return sums

  return eval_step


def eval_metrics_from_sums(sums: Mapping[str, Any]) -> dict[str, float]:
  """{'loss', 'top1_error', 'top5_error'} from summed eval_step outputs.

  Errors are in percent, as in the paper's tables. Raises ValueError on count 0.
  """
  count = float(np.asarray(sums["count"]))
  if count <= 0:
    raise ValueError("eval sums have count 0: no real examples were evaluated.")
  out = {
      "loss": float(np.asarray(sums["loss"])) / count,
      "top1_error": 100.0 * (1.0 - float(np.asarray(sums["top1"])) / count),
  }
  if "top5" in sums:
    out["top5_error"] = 100.0 * (1.0 - float(np.asarray(sums["top5"])) / count)
  return out
