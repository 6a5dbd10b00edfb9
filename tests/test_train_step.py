"""The train and eval steps on one device, on real CIFAR-10 test images.

Each test compares the jitted step with the same computation written out by hand
from the public pieces (sample_mixing, apply_mixing, mix_targets, the model, optax),
so a wrong key, a wrong target, a missing update or integer arithmetic shows up as a
mismatch. Compiled steps are built once per module (compile time dominates).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mixup_jax import losses, mixing, optim
from mixup_jax.spec import MixSpec, MixSpecError
from mixup_jax.data import augment
from mixup_jax.models import get_model
from mixup_jax.models.layers import mix_at
from mixup_jax.train import (
    create_train_state,
    eval_metrics_from_sums,
    make_eval_step,
    make_train_step,
    pad_batch,
)

BATCH = 16
NUM_CLASSES = 10
# Sub-stream numbers of the step key (documented in mixup_jax.train).
MIXING_KEY, STAGE_KEY = 0, 4


@pytest.fixture(scope="module")
def cifar(data_dir):
  """The first 32 CIFAR-10 test images (uint8) and labels (int32)."""
  with np.load(data_dir / "cifar10" / "test_batch.npz") as arrays:
    return arrays["image"][:32], arrays["label"][:32].astype(np.int32)


@pytest.fixture(scope="module")
def batch(cifar):
  """A float batch (normalised, no augmentation) of BATCH images."""
  images, labels = cifar
  return {"image": np.asarray(augment.cifar_eval(images[:BATCH])), "label": labels[:BATCH]}


@pytest.fixture(scope="module")
def cnn_state(batch):
  """The small CIFAR CNN at width 4: BatchNorm after every convolution."""
  model = get_model("cifar_small_cnn", NUM_CLASSES, width=4)
  tx = optim.sgd(optim.step_decay_schedule(0.1, (1,), 1), weight_decay=5e-4)  # 0.1, then 0.01
  return create_train_state(jax.random.PRNGKey(0), model, tx, batch["image"][:1])


def _loss_and_updates(state, x, targets):
  """Hand-written: loss, grads and new batch_stats of one training forward pass."""

  def loss_fn(params):
    logits, updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        mutable=["batch_stats"],
    )
    return jnp.mean(losses.softmax_cross_entropy(logits, targets)), (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return loss, logits, grads, updates["batch_stats"]


@jax.jit
def _reference_mixup_step(state, x, labels):
  """What make_train_step(alpha=1) must do, written out from the public API."""
  key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), MIXING_KEY)
  m = mixing.sample_mixing(key, 1.0, x.shape[0])
  targets = mixing.mix_targets(m, labels, num_classes=NUM_CLASSES)
  loss, logits, grads, batch_stats = _loss_and_updates(state, mixing.apply_mixing(m, x), targets)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  new_state = state.replace(
      step=state.step + 1, params=optax.apply_updates(state.params, updates),
      batch_stats=batch_stats, opt_state=opt_state,
  )
  return new_state, loss, logits, m.lam, optax.global_norm(grads)


def _assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


def test_mixup_step_equals_hand_written_step(cnn_state, batch):
  step = jax.jit(make_train_step(num_classes=NUM_CLASSES, spec=MixSpec(alpha=1.0)))
  state, ref_state = cnn_state, cnn_state
  for expected_lr in (0.1, 0.01):
    state, metrics = step(state, batch)
    ref_state, loss, logits, lam, grad_norm = _reference_mixup_step(
        ref_state, batch["image"], batch["label"]
    )
    _assert_trees_close(state.params, ref_state.params)
    _assert_trees_close(state.batch_stats, ref_state.batch_stats)
    assert int(state.step) == int(ref_state.step)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["lambda"], np.mean(lam), rtol=1e-6)
    np.testing.assert_allclose(metrics["grad_norm"], grad_norm, rtol=1e-5)
    np.testing.assert_allclose(metrics["learning_rate"], expected_lr, rtol=1e-6)
    accuracy = np.mean(np.argmax(np.asarray(logits), -1) == batch["label"])
    np.testing.assert_allclose(metrics["accuracy"], accuracy, atol=1e-6)
    assert all(v.dtype == jnp.float32 and v.shape == () for v in metrics.values())
  # A pure function of (state, batch): running it again gives the same numbers.
  again, again_metrics = step(cnn_state, batch)
  first, first_metrics = step(cnn_state, batch)
  _assert_trees_close(again.params, first.params, rtol=0, atol=0)
  assert all(np.array_equal(again_metrics[k], first_metrics[k]) for k in first_metrics)


def test_eval_step_counts_every_example_once(cnn_state, cifar):
  images, labels = cifar
  n = 20
  padded = pad_batch({"image": images[:n], "label": labels[:n]}, 32)
  padded["label"][n:] = 99  # padding may hold anything, even out-of-range labels
  eval_step = jax.jit(make_eval_step(preprocess_fn=augment.cifar_eval))
  sums = jax.device_get(eval_step(cnn_state, padded))
  assert set(sums) == {"loss", "top1", "top5", "count"}
  # The reference: the first n rows of the padded batch through the same program.
  logits = jax.jit(lambda s, x: s.apply_fn(s.variables, augment.cifar_eval(x), train=False))(
      cnn_state, padded["image"]
  )[:n]
  ce = np.asarray(losses.cross_entropy_with_ids(logits, labels[:n]))
  top1 = np.asarray(losses.topk_correct(logits, labels[:n], 1))
  top5 = np.asarray(losses.topk_correct(logits, labels[:n], 5))
  assert float(sums["count"]) == n
  np.testing.assert_allclose(sums["loss"], np.sum(ce), rtol=1e-5)
  assert float(sums["top1"]) == float(np.sum(top1))
  assert float(sums["top5"]) == float(np.sum(top5))
  errors = eval_metrics_from_sums(sums)
  assert errors["top1_error"] == pytest.approx(100 * (1 - np.sum(top1) / n))
  assert errors["top5_error"] == pytest.approx(100 * (1 - np.sum(top5) / n))
  assert errors["loss"] == pytest.approx(float(np.mean(ce)), rel=1e-5)


# ------------------------------------------------------------------------------
# Options, on a small MLP over flattened images (cheap to compile).
# ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def features(batch):
  """[BATCH, 3072] float rows: the flattened normalised images."""
  return {"input": np.asarray(batch["image"]).reshape(BATCH, -1), "label": batch["label"]}


@pytest.fixture(scope="module")
def mlp_state(features):
  model = get_model("mlp", NUM_CLASSES, hidden_sizes=(16,))
  return create_train_state(jax.random.PRNGKey(1), model, optim.sgd(0.1), features["input"][:1])


@jax.jit
def _mlp_loss(state, x, targets):
  logits = state.apply_fn({"params": state.params}, x, train=True)
  return jnp.mean(losses.softmax_cross_entropy(logits, targets))


# The reference draws, compiled once (eager sampling compiles op by op).
_sample_mixing = jax.jit(mixing.sample_mixing, static_argnums=(2,), static_argnames=("pairing",))


def _mixing_key(state, step_number=0):
  return jax.random.fold_in(jax.random.fold_in(state.rng, step_number), MIXING_KEY)


def test_erm_with_label_smoothing_and_float_accuracy(mlp_state, features):
  # Labels chosen so that exactly half the rows are predicted right: integer
  # arithmetic would report 0 (or 1), float arithmetic 0.5.
  logits = mlp_state.apply_fn(mlp_state.variables, features["input"], train=True)
  predicted = np.argmax(np.asarray(logits), -1).astype(np.int32)
  labels = np.where(np.arange(BATCH) < BATCH // 2, predicted, (predicted + 1) % NUM_CLASSES)
  step = jax.jit(make_train_step(num_classes=NUM_CLASSES, spec=MixSpec(label_smoothing=0.1)))
  new_state, metrics = step(
      mlp_state, {"input": features["input"], "label": labels, "true_label": predicted}
  )
  assert float(metrics["accuracy"]) == 0.5
  assert float(metrics["true_label_accuracy"]) == 1.0
  assert float(metrics["lambda"]) == 1.0
  targets = mixing.as_target_rows(labels, NUM_CLASSES, label_smoothing=0.1)
  np.testing.assert_allclose(
      metrics["loss"], _mlp_loss(mlp_state, features["input"], targets), rtol=1e-6
  )
  assert int(new_state.step) == 1


def test_mixing_starts_after_erm_warmup(mlp_state, features):
  step = jax.jit(make_train_step(num_classes=NUM_CLASSES, spec=MixSpec(alpha=1.0, start_step=2)))
  lambdas = []
  state = mlp_state
  for _ in range(3):
    state, metrics = step(state, features)
    lambdas.append(float(metrics["lambda"]))
  assert lambdas[:2] == [1.0, 1.0]
  expected = _sample_mixing(_mixing_key(mlp_state, 2), 1.0, BATCH).lam[0]
  np.testing.assert_allclose(lambdas[2], expected, rtol=1e-6)
  assert 0.0 < lambdas[2] < 1.0


def test_given_partner_pairing_mixes_row_i_with_partner_row_i(mlp_state, features):
  partner_order = np.roll(np.arange(BATCH), 3)
  batch = dict(
      features,
      partner_input=features["input"][partner_order],
      partner_label=features["label"][partner_order],
  )
  step = jax.jit(make_train_step(num_classes=NUM_CLASSES, spec=MixSpec(alpha=0.4, pairing="given")))
  _, metrics = step(mlp_state, batch)
  lam = _sample_mixing(_mixing_key(mlp_state), 0.4, BATCH, pairing="given").lam[0]
  x = lam * features["input"] + (1 - lam) * batch["partner_input"]
  one_hot = jax.nn.one_hot
  y = lam * one_hot(features["label"], 10) + (1 - lam) * one_hot(batch["partner_label"], 10)
  np.testing.assert_allclose(metrics["lambda"], lam, rtol=1e-6)
  np.testing.assert_allclose(metrics["loss"], _mlp_loss(mlp_state, x, y), rtol=1e-5)


def test_closest_targets_use_the_heavier_example(mlp_state, features):
  step = jax.jit(make_train_step(num_classes=NUM_CLASSES, spec=MixSpec(alpha=1.0, targets="closest")))
  _, metrics = step(mlp_state, features)
  m = _sample_mixing(_mixing_key(mlp_state), 1.0, BATCH)
  lam = float(m.lam[0])
  partners = np.asarray(m.partners[:, 0])
  heavier = features["label"] if lam >= 0.5 else features["label"][partners]
  x = mixing.apply_mixing(m, features["input"])
  expected = _mlp_loss(mlp_state, x, jax.nn.one_hot(heavier, NUM_CLASSES))
  np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)


def test_input_noise_changes_inputs_and_keeps_erm_targets(mlp_state, features):
  noisy = jax.jit(make_train_step(num_classes=NUM_CLASSES, input_noise_sigma=0.5))
  _, metrics = noisy(mlp_state, features)
  clean_loss = _mlp_loss(mlp_state, features["input"], jax.nn.one_hot(features["label"], 10))
  assert float(metrics["lambda"]) == 1.0
  assert abs(float(metrics["loss"]) - float(clean_loss)) > 1e-3


class StageProbe(nn.Module):
  """A two-layer net that mixes with the project's `mix_at` at stage 0 or 5.

  Stands in for the residual CIFAR models (which take the same `mixing=` and
  `mix_stage=` and are tested in test_models.py), at a fraction of the compile time.
  """

  @nn.compact
  def __call__(self, x, train, mixing=None, mix_stage=0):
    del train
    h = mix_at(x, 0, mixing, mix_stage)
    h = nn.relu(nn.Dense(8)(h))
    h = mix_at(h, 5, mixing, mix_stage)
    return nn.Dense(NUM_CLASSES)(h)


def test_latent_mixing_at_a_drawn_stage(features):
  example = features["input"][:1]
  state = create_train_state(jax.random.PRNGKey(3), StageProbe(), optim.sgd(0.1), example)
  at_input = jax.jit(make_train_step(num_classes=NUM_CLASSES, spec=MixSpec(alpha=1.0)))
  at_five = jax.jit(make_train_step(num_classes=NUM_CLASSES, spec=MixSpec(alpha=1.0, stages=(5,))))
  drawn = jax.jit(make_train_step(num_classes=NUM_CLASSES, spec=MixSpec(alpha=1.0, stages=(0, 5))))
  drawn_stages = []
  for step_number in range(6):
    state = state.replace(step=jnp.asarray(step_number, jnp.int32))
    key = jax.random.fold_in(jax.random.fold_in(state.rng, step_number), STAGE_KEY)
    stage = (0, 5)[int(jax.random.randint(key, (), 0, 2))]
    drawn_stages.append(stage)
    state_drawn, metrics_drawn = drawn(state, features)
    state_fixed, metrics_fixed = (at_input if stage == 0 else at_five)(state, features)
    _assert_trees_close(state_drawn.params, state_fixed.params)
    for name in ("loss", "lambda", "grad_norm"):
      np.testing.assert_allclose(metrics_drawn[name], metrics_fixed[name], rtol=1e-6)
  assert set(drawn_stages) == {0, 5}, drawn_stages
  # Mixing hidden features is not mixing inputs.
  _, metrics_input = at_input(state, features)
  _, metrics_five = at_five(state, features)
  assert abs(float(metrics_input["loss"]) - float(metrics_five["loss"])) > 1e-4


def test_augmentation_runs_inside_the_step_on_uint8_images(mlp_state, cifar):
  images, labels = cifar
  uint8_batch = {"input": images[:BATCH], "label": labels[:BATCH]}
  flat_cifar_train = lambda rng, x: augment.cifar_train(rng, x).reshape(x.shape[0], -1)
  step = jax.jit(make_train_step(num_classes=NUM_CLASSES, augment_fn=flat_cifar_train))
  _, metrics = step(mlp_state, uint8_batch)
  # Augmentation key: fold_in(step key, 2), then 0 for the inputs, then group 0.
  key = jax.random.fold_in(jax.random.fold_in(mlp_state.rng, 0), 2)
  key = jax.random.fold_in(jax.random.fold_in(key, 0), 0)
  x = flat_cifar_train(key, images[:BATCH])
  expected = _mlp_loss(mlp_state, x, jax.nn.one_hot(labels[:BATCH], 10))
  np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)
  with pytest.raises(ValueError, match="augment_fn"):
    jax.eval_shape(make_train_step(num_classes=NUM_CLASSES), mlp_state, uint8_batch)


def test_foreign_optimizer_needs_learning_rate_fn(features):
  model = get_model("mlp", NUM_CLASSES, hidden_sizes=(16,))
  state = create_train_state(jax.random.PRNGKey(0), model, optax.sgd(0.1), features["input"][:1])
  with pytest.raises(ValueError, match="learning_rate_fn"):
    jax.eval_shape(make_train_step(num_classes=NUM_CLASSES), state, features)
  step = make_train_step(num_classes=NUM_CLASSES, learning_rate_fn=lambda count: 0.1 * count + 0.5)
  _, metrics = jax.jit(step)(state, features)
  assert float(metrics["learning_rate"]) == 0.5


# ------------------------------------------------------------------------------
# Bad input fails before training, naming the field.
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(num_classes=1), "num_classes"),
        (dict(num_classes=10, spec={"alpha": 1.0}), "spec must be a mixup_jax.MixSpec"),
        (dict(num_classes=10, spec=MixSpec(alpha=1.0), num_groups=2, axis_name="data"),
         "num_groups"),
        (dict(num_classes=10, spec=MixSpec(alpha=1.0, global_pairing=True)), "global_pairing"),
        (dict(num_classes=10, spec=MixSpec(alpha=1.0, granularity="device")), "granularity"),
        (dict(num_classes=10, input_noise_sigma=-0.1), "input_noise_sigma"),
    ],
)
def test_bad_options_raise(options, match):
  with pytest.raises(ValueError, match=match):
    make_train_step(**options)


@pytest.mark.parametrize(
    "fields, match",
    [
        (dict(alpha=-1.0), "alpha"),
        (dict(alpha=float("nan")), "alpha"),
        (dict(alpha=1.0, granularity="row"), "granularity"),
        (dict(alpha=1.0, targets="soft"), "targets"),
        (dict(alpha=1.0, prob=1.5), "prob"),
        (dict(label_smoothing=2.0), "label_smoothing"),
        (dict(label_smoothing=1.0), "label_smoothing"),
        (dict(alpha=1.0, stages=(6,)), "stages"),
        (dict(alpha=1.0, stages=(1, 1)), "stages"),
        (dict(stages=(1,)), "stages"),
        (dict(start_step=5), "start_step"),
        (dict(alpha=1.0, pairing="given", stages=(1,)), "given"),
        (dict(alpha=1.0, pairing="flip", num_sources=3), "num_sources"),
        (dict(alpha=1.0, granularity="pair"), "pair"),
        (dict(cutmix_alpha=1.0, stages=(2,)), "stages"),
        (dict(cutmix_alpha=-1.0), "cutmix_alpha"),
        (dict(alpha=1.0, cutmix_minmax=(0.2, 0.8)), "cutmix_minmax"),
        (dict(cutmix_alpha=1.0, cutmix_minmax=(0.8, 0.2)), "cutmix_minmax"),
        (dict(alpha=1.0, sort_weights=1), "sort_weights"),
    ],
)
def test_bad_specs_raise_naming_the_field(fields, match):
  with pytest.raises(MixSpecError, match=match) as error:
    MixSpec(**fields)
  assert error.value.field in match or match in str(error.value)


def test_the_old_keywords_name_the_spec():
  with pytest.raises(TypeError, match=r"spec=mixup_jax.MixSpec\(alpha=1.0, stages=\(2,\)\)"):
    make_train_step(num_classes=10, alpha=1.0, mix_stage=2)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda b: dict(b, mask=np.ones(BATCH, np.float32)), "mask"),
        (lambda b: {"input": b["input"], "image": b["input"], "label": b["label"]}, "exactly one"),
        (lambda b: {"input": b["input"]}, "label"),
        (lambda b: dict(b, label=b["label"].astype(np.float32)), "label"),
        (lambda b: dict(b, label=b["label"][:4]), "rows"),
    ],
)
def test_bad_batches_raise_at_trace_time(mlp_state, features, edit, match):
  step = make_train_step(num_classes=NUM_CLASSES, spec=MixSpec(alpha=1.0))
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(step, mlp_state, edit(features))


def test_given_pairing_without_partner_keys_raises(mlp_state, features):
  step = make_train_step(num_classes=NUM_CLASSES, spec=MixSpec(alpha=1.0, pairing="given"))
  with pytest.raises(ValueError, match="partner_input"):
    jax.eval_shape(step, mlp_state, features)


def test_pad_batch_rejects_oversized_batches():
  with pytest.raises(ValueError, match="batch_size"):
    pad_batch({"image": np.zeros((5, 2)), "label": np.zeros(5)}, 4)
