"""Tests of CutMix and the mixup / CutMix switch (mixup_jax.cutmixing).

Images are continuous noise, so every output pixel can be traced to its source.
Rectangular (12 x 20) images and an odd batch catch axis-order and pairing slips.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from mixup_jax import cutmixing as cm
from mixup_jax import mixing
from mixup_jax.spec import MixSpec

H, W, C = 12, 20, 3
KEY = jax.random.key(0)


def _images(batch: int, seed: int = 0) -> jax.Array:
  return jax.random.uniform(jax.random.key(seed), (batch, H, W, C)) + 1.0


def _sources(x, out, partners):
  """Per row: fraction of pixels from the partner; and whether every pixel is from one of the two."""
  x, out, partners = np.asarray(x), np.asarray(out), np.asarray(partners)
  own = np.all(out == x, axis=-1)
  other = np.all(out == x[partners], axis=-1)
  return (other & ~own).mean(axis=(1, 2)), bool(np.all(own | other))


@pytest.mark.parametrize("granularity", ["batch", "example"])
@pytest.mark.parametrize("batch", [7, 16])
def test_pixel_shares_equal_lambda_and_targets(granularity, batch):
  x = _images(batch)
  y = jnp.arange(batch) % 5
  run = jax.jit(lambda k: cm.cutmix(k, x, y, 1.0, num_classes=5, granularity=granularity,
                                    return_cutmix=True))
  clipped = 0
  for i in range(20):
    out, targets, cut = run(jax.random.fold_in(KEY, i))
    partners = np.asarray(cut.mixing.partners[:, 0])
    share, from_sources = _sources(x, out, partners)
    assert from_sources
    moved = partners != np.arange(batch)
    np.testing.assert_allclose(share[moved], 1.0 - np.asarray(cut.lam)[moved], atol=1e-6)
    np.testing.assert_allclose(np.asarray(targets).sum(1), 1.0, atol=1e-6)
    onehot = np.eye(5)[np.asarray(y)]
    expect = cut.lam[:, None] * onehot + (1 - cut.lam[:, None]) * onehot[partners]
    np.testing.assert_allclose(targets, expect, atol=1e-6)
    boxes = np.asarray(cut.boxes)
    clipped += np.sum((boxes[:, 0] == 0) | (boxes[:, 2] == H) | (boxes[:, 1] == 0)
                      | (boxes[:, 3] == W))
    if granularity == "batch":
      assert len({tuple(b) for b in boxes}) == 1
  assert clipped > 0  # the border case was exercised


def test_box_has_the_image_aspect_and_the_drawn_area():
  cut = cm.sample_cutmix(KEY, 1.0, 4096, (H, W), granularity="example", correct_lam=False)
  boxes = np.asarray(cut.boxes)
  inside = (boxes[:, 0] > 0) & (boxes[:, 1] > 0) & (boxes[:, 2] < H) & (boxes[:, 3] < W)
  heights, widths = boxes[inside, 2] - boxes[inside, 0], boxes[inside, 3] - boxes[inside, 1]
  side = np.sqrt(1 - np.asarray(cut.lam)[inside])
  np.testing.assert_array_equal(heights, np.round(side * H))  # H from H, W from W
  np.testing.assert_array_equal(widths, np.round(side * W))


def test_uncorrected_lambda_is_the_drawn_one_and_area_range_bounds_it():
  drawn = cm.sample_cutmix(KEY, 1.0, 512, (H, W), granularity="example", correct_lam=False)
  plain = mixing.sample_mixing(jax.random.fold_in(KEY, 0), 1.0, 512, granularity="example")
  np.testing.assert_array_equal(drawn.lam, plain.lam)
  corrected = cm.sample_cutmix(KEY, 1.0, 512, (H, W), granularity="example")
  assert np.any(np.abs(np.asarray(corrected.lam) - np.asarray(drawn.lam)) > 0.05)
  bounded = cm.sample_cutmix(KEY, 1.0, 512, (H, W), granularity="example", correct_lam=False,
                             area_range=(0.2, 0.4))
  area = 1 - np.asarray(bounded.lam)
  assert area.min() >= 0.2 - 1e-6 and area.max() <= 0.4 + 1e-6


def test_same_key_same_result_with_and_without_jit():
  x, y = _images(9), jnp.arange(9) % 3
  eager = cm.cutmix(KEY, x, y, 0.7, num_classes=3, granularity="example")
  jitted = jax.jit(lambda k: cm.cutmix(k, x, y, 0.7, num_classes=3, granularity="example"))(KEY)
  jax.tree.map(np.testing.assert_array_equal, eager, jitted)


def test_same_class_pairing_and_no_mixing_cases():
  x, y = _images(12), jnp.array([0, 1, 2] * 4)
  out, targets, cut = cm.cutmix(KEY, x, y, 1.0, num_classes=3, pairing="same_class",
                                granularity="example", return_cutmix=True)
  partners = np.asarray(cut.mixing.partners[:, 0])
  np.testing.assert_array_equal(np.asarray(y)[partners], y)
  np.testing.assert_allclose(targets, np.eye(3)[np.asarray(y)], atol=1e-6)
  same, _ = cm.cutmix(KEY, x, y, 0.0, num_classes=3)
  np.testing.assert_array_equal(same, x)  # alpha 0 pastes nothing
  kept, _ = cm.cutmix(KEY, x, y, 1.0, num_classes=3, prob=0.0)
  np.testing.assert_array_equal(kept, x)


def test_given_partner_pastes_from_the_partner_batch():
  x, other = _images(5), _images(5, seed=1)
  y = jnp.zeros(5, jnp.int32)
  out, _, cut = cm.cutmix(KEY, x, y, 1.0, num_classes=2, pairing="given",
                          partner=(other, jnp.ones(5, jnp.int32)), return_cutmix=True)
  own = np.all(np.asarray(out) == np.asarray(x), axis=-1)
  pasted = np.all(np.asarray(out) == np.asarray(other), axis=-1)
  assert np.all(own | pasted)
  np.testing.assert_allclose(pasted.mean(axis=(1, 2)), 1 - np.asarray(cut.lam), atol=1e-6)


def test_one_device_with_groups_equals_pmap_and_shard_map():
  devices, per_device = 8, 3
  x = _images(devices * per_device)
  y = jnp.arange(devices * per_device) % 4
  options = dict(num_classes=4, granularity="example")
  single = cm.cutmix(KEY, x, y, 1.0, num_groups=devices, **options)

  def per_device_fn(x, y):
    return cm.cutmix(KEY, x, y, 1.0, axis_name="data", **options)

  split = lambda a: a.reshape((devices, per_device) + a.shape[1:])
  mapped = jax.pmap(per_device_fn, axis_name="data")(split(x), split(y))
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b.reshape(a.shape)), single, mapped)
  mesh = jax.make_mesh((devices,), ("data",))
  sharded = jax.jit(jax.shard_map(per_device_fn, mesh=mesh, in_specs=P("data"),
                                  out_specs=P("data")))(
      jax.device_put(x, NamedSharding(mesh, P("data"))),
      jax.device_put(y, NamedSharding(mesh, P("data"))))
  jax.tree.map(np.testing.assert_array_equal, single, sharded)


@pytest.mark.parametrize("switch_prob", [0.0, 1.0])
def test_switch_at_its_ends_is_mixup_or_cutmix(switch_prob):
  x, y = _images(8), jnp.arange(8) % 4
  out, targets = cm.mix_or_cutmix(KEY, x, y, mixup_alpha=0.4, cutmix_alpha=1.0,
                                  switch_prob=switch_prob, num_classes=4)
  mixup, cut, use = cm.sample_switch(KEY, 8, (H, W), mixup_alpha=0.4, cutmix_alpha=1.0,
                                     switch_prob=switch_prob)
  assert bool(np.all(np.asarray(use) == bool(switch_prob)))
  expect = cm.apply_cutmix(cut, x) if switch_prob else mixing.apply_mixing(mixup, x)
  np.testing.assert_array_equal(out, expect)
  weights = cut.mixing.weights if switch_prob else mixup.weights
  np.testing.assert_allclose(
      targets, mixing.mix_targets(mixing.Mixing(weights=weights, partners=mixup.partners),
                                  y, num_classes=4), atol=1e-6)


def test_switch_per_example_pastes_or_blends_each_row():
  x = _images(64)
  mixup, cut, use = cm.sample_switch(KEY, 64, (H, W), mixup_alpha=1.0, cutmix_alpha=1.0,
                                     switch_prob=0.5, granularity="example")
  out = cm.apply_switch(mixup, cut, use, x)
  use = np.asarray(use)
  assert 10 < use.sum() < 54
  partners = np.asarray(mixup.partners[:, 0])
  share, _ = _sources(x, out, partners)
  moved = partners != np.arange(64)
  rows = use & moved
  np.testing.assert_allclose(share[rows], 1 - np.asarray(cut.mixing.lam)[rows], atol=1e-6)
  blended = ~use & moved
  lam = np.asarray(mixup.lam)[blended][:, None, None, None]
  np.testing.assert_allclose(out[blended], lam * x[blended] + (1 - lam) * x[partners[blended]],
                             rtol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: cm.cutmix(KEY, {"image": _images(4), "meta": jnp.ones((4, 3))}, jnp.zeros(4, int),
                       1.0, num_classes=2), r"x\['meta'\] has shape \(4, 3\)"),
    (lambda: cm.cutmix(KEY, _images(4) > 0, jnp.zeros(4, int), 1.0,
                       num_classes=2), "dtype bool"),  # uint8 pixels are fine (pasted)
    (lambda: cm.cutmix(KEY, _images(4), jnp.zeros(5, int), 1.0, num_classes=2), "batch size"),
    (lambda: cm.cutmix(KEY, _images(4), jnp.zeros(4, int), -1.0, num_classes=2), "alpha"),
    (lambda: cm.sample_cutmix(KEY, 1.0, 4, (12,)), "image_size"),
    (lambda: cm.sample_cutmix(KEY, 1.0, 4, (H, W), correct_lam=1), "correct_lam"),
    (lambda: cm.sample_cutmix(KEY, 1.0, 4, (H, W), area_range=(0.5, 0.2)), "area_range"),
    (lambda: cm.sample_cutmix(KEY, 1.0, 4, (H, W), granularity="pixel"), "granularity"),
    (lambda: cm.sample_switch(KEY, 4, (H, W), mixup_alpha=1.0, cutmix_alpha=1.0,
                              switch_prob=1.5), "switch_prob"),
    (lambda: cm.apply_cutmix(cm.sample_cutmix(KEY, 1.0, 4, (H, W)), _images(4)[:, :10]),
     r"\(10, 20\)"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_train_step_with_cutmix_refuses_what_it_cannot_paste(data_dir):
  # Training with CutMix and the switch on real CIFAR-10, through the whole loop, is
  # tests/test_mixing_regression.py (cases "cutmix" and "switch").
  from mixup_jax import models, optim
  from mixup_jax.train import create_train_state, make_train_step

  with np.load(data_dir / "cifar10" / "data_batch_1.npz") as arrays:
    batch = {"image": arrays["image"][:16], "label": arrays["label"][:16].astype(np.int32)}
  model = models.get_model("cifar_small_cnn", 10, width=4)
  tx = optim.sgd(0.1, momentum=0.9)
  state = create_train_state(KEY, model, tx, np.zeros((1, 32, 32, 3), np.float32))
  with pytest.raises(ValueError, match="stages: CutMix .* cannot mix at hidden stages"):
    MixSpec(cutmix_alpha=1.0, stages=(2,))
  with pytest.raises(ValueError, match="cutmix_alpha: must be a finite number"):
    MixSpec(cutmix_alpha=-1.0)
  flat = make_train_step(num_classes=10, spec=MixSpec(cutmix_alpha=1.0))
  with pytest.raises(ValueError, match=r"\[B, H, W, C\] images"):
    jax.eval_shape(flat, state, {"image": np.zeros((16, 3072), np.float32),
                                 "label": batch["label"]})


def test_config_fields_reach_the_train_step():
  from experiments.configs import default
  from mixup_jax import trainer

  config = default.get_config()
  config.mixup.alpha, config.mixup.cutmix_alpha, config.mixup.switch_prob = 0.0, 1.0, 0.3
  spec = MixSpec.from_config(config, steps_per_epoch=10)
  assert spec.method == "cutmix" and spec.cutmix_alpha == 1.0 and spec.switch_prob == 0.3
  config.mixup.stages = (2,)
  with pytest.raises(trainer.ConfigError, match="config.mixup.stages: CutMix"):
    trainer.validate_config(config)


@pytest.mark.parametrize("mixup_alpha, cutmix_alpha, expected", [
    (1.0, 0.0, False), (0.0, 1.0, True)])
def test_the_switch_with_one_method_off_always_uses_the_other(mixup_alpha, cutmix_alpha,
                                                             expected):
  """timm mixes every batch and switches only when both alphas are > 0."""
  x, y = _images(8), jnp.arange(8) % 4
  for seed in range(8):
    key = jax.random.key(seed)
    _, _, use = cm.sample_switch(key, 8, (H, W), mixup_alpha=mixup_alpha,
                                 cutmix_alpha=cutmix_alpha, switch_prob=0.5)
    assert bool(use.all()) == expected and bool(use.any()) == expected
    traced = jax.jit(lambda a, c, k=key: cm.sample_switch(
        k, 8, (H, W), mixup_alpha=a, cutmix_alpha=c, switch_prob=0.5)[2])
    np.testing.assert_array_equal(traced(mixup_alpha, cutmix_alpha), use)
    _, y_out = cm.mix_or_cutmix(key, x, y, mixup_alpha=mixup_alpha,
                                cutmix_alpha=cutmix_alpha, num_classes=4)
    assert float(y_out.max(-1).min()) < 1.0  # the batch is mixed (the switch drew the one on)


def test_cutmix_pastes_uint8_pixels_and_refuses_channels_first():
  pixels = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, H, W, C)), jnp.uint8)
  y = jnp.arange(8) % 4
  out, targets, cut = cm.cutmix(KEY, pixels, y, alpha=1.0, num_classes=4, return_cutmix=True)
  assert out.dtype == jnp.uint8
  del cut
  as_float = cm.cutmix(KEY, pixels.astype(jnp.float32), y, alpha=1.0, num_classes=4)
  np.testing.assert_array_equal(out.astype(jnp.float32), as_float[0])  # the same boxes
  np.testing.assert_array_equal(targets, as_float[1])
  with pytest.raises(ValueError, match="mixing would round it"):  # the switch blends
    cm.mix_or_cutmix(KEY, pixels, y, mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=4)
  with pytest.raises(ValueError, match=r"looks channels-first.*transpose\(0, 2, 3, 1\)"):
    cm.cutmix(KEY, jnp.zeros((8, 3, 32, 32)), y, alpha=1.0, num_classes=4)


def test_switch_prob_may_be_traced_like_alpha():
  x, y = _images(8), jnp.arange(8) % 4
  run = jax.jit(lambda p: cm.mix_or_cutmix(KEY, x, y, mixup_alpha=1.0, cutmix_alpha=1.0,
                                           switch_prob=p, num_classes=4)[0])
  eager = cm.mix_or_cutmix(KEY, x, y, mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=0.25,
                           num_classes=4)[0]
  np.testing.assert_allclose(run(jnp.float32(0.25)), eager, rtol=1e-6)
  with pytest.raises(ValueError, match="switch_prob must lie in"):
    cm.mix_or_cutmix(KEY, x, y, mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=1.5)
