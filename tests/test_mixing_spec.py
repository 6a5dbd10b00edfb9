"""MixSpec, the one description of the mixing, and the options timm and big_vision users
look for: pair mode, sorted weights, timm's cutmix_minmax, multi-label targets, and what
the one-call forms drew."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixup_jax as mj
from experiments.configs import default
from mixup_jax import config_checks
from mixup_jax import cutmixing as cm
from mixup_jax import mixing
from mixup_jax.spec import CONFIG_FIELDS, MixSpec, MixSpecError

KEY = jax.random.key(3)
H, W = 12, 20


def _images(n, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, H, W, 3))


# ------------------------------------------------------------------------------
# The spec draws what the functions draw, from the same key.
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [
    dict(alpha=1.0), dict(alpha=0.4, granularity="example", label_smoothing=0.1, prob=0.7),
    dict(alpha=1.0, num_sources=3, targets="closest")])
def test_a_mixup_spec_draws_what_mix_draws(fields):
  x, y = _images(8), jnp.arange(8) % 4
  draw = MixSpec(**fields).sample(KEY, x, y)
  options = {k: v for k, v in fields.items() if k != "targets"}
  x_mix, y_mix = mj.mix(KEY, x, y, num_classes=4, targets=fields.get("targets", "mixed"),
                        **options)
  np.testing.assert_array_equal(draw.inputs(x), x_mix)
  np.testing.assert_array_equal(draw.targets(y, 4), y_mix)


def test_cutmix_and_switch_specs_draw_what_the_functions_draw():
  x, y = _images(8), jnp.arange(8) % 4
  draw = MixSpec(cutmix_alpha=1.0).sample(KEY, x, y)
  x_cut, y_cut = mj.cutmix(KEY, x, y, 1.0, num_classes=4)
  np.testing.assert_array_equal(draw.inputs(x), x_cut)
  np.testing.assert_array_equal(draw.targets(y, 4), y_cut)
  spec = MixSpec(alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, granularity="example")
  draw = spec.sample(KEY, x, y)
  x_sw, y_sw = mj.mix_or_cutmix(KEY, x, y, mixup_alpha=0.8, cutmix_alpha=1.0,
                                switch_prob=0.5, granularity="example", num_classes=4)
  np.testing.assert_array_equal(draw.inputs(x), x_sw)
  np.testing.assert_array_equal(draw.targets(y, 4), y_sw)


def test_methods_and_an_erm_spec():
  assert MixSpec().method == "erm" and not MixSpec().mixes
  assert MixSpec(alpha=1.0).method == "mixup"
  assert MixSpec(cutmix_alpha=1.0).method == "cutmix"
  assert MixSpec(alpha=1.0, cutmix_alpha=1.0).method == "switch"
  with pytest.raises(MixSpecError, match="draws nothing"):
    MixSpec().sample(KEY, _images(4))


def test_a_spec_is_frozen_hashable_and_normalises_what_configs_give():
  spec = MixSpec(alpha=1, stages=[1, 3], cutmix_minmax=None)
  assert spec.alpha == 1.0 and isinstance(spec.alpha, float) and spec.stages == (1, 3)
  assert hash(spec) == hash(MixSpec(alpha=1.0, stages=(1, 3)))
  with pytest.raises(AttributeError):
    spec.alpha = 2.0  # type: ignore[misc]


# ------------------------------------------------------------------------------
# From a config: one vocabulary, errors name the config field.
# ------------------------------------------------------------------------------


def test_from_config_maps_knn_and_epochs():
  config = default.get_config()
  config.mixup.pairing, config.mixup.start_epoch = "knn", 2
  spec = MixSpec.from_config(config, steps_per_epoch=7)
  assert spec.pairing == "given" and spec.start_step == 14
  config.mixup.alpha = 0.0  # ERM: checked, then not used
  assert MixSpec.from_config(config, 7) == MixSpec()


@pytest.mark.parametrize("field, value, config_field", [
    ("alpha", -1.0, "mixup.alpha"), ("cutmix_minmax", (0.9, 0.1), "mixup.cutmix_minmax"),
    ("switch_prob", 2.0, "mixup.switch_prob"), ("granularity", "row", "mixup.granularity"),
    ("area_range", (0.6, 0.2), "mixup.area_range"), ("num_sources", 1, "mixup.num_sources")])
def test_config_errors_name_the_config_field(field, value, config_field):
  config = default.get_config()
  config.mixup[field] = value
  with pytest.raises(config_checks.ConfigError, match=rf"^config\.{config_field}: "):
    config_checks.validate_config(config)


def test_label_smoothing_is_one_range_everywhere():
  config = default.get_config()
  config.label_smoothing = 1.0
  with pytest.raises(config_checks.ConfigError, match=r"config\.label_smoothing: must lie"):
    config_checks.validate_config(config)
  with pytest.raises(MixSpecError, match=r"label_smoothing: must lie in \[0, 1\)"):
    MixSpec(label_smoothing=1.0)
  with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0, 1\)"):
    mj.mix(KEY, _images(4), jnp.arange(4), 1.0, num_classes=4, label_smoothing=1.0)


def test_latent_stages_on_a_model_without_them_is_a_config_error():
  config = default.get_config()
  config.model, config.mixup.stages = "mlp", (2,)
  with pytest.raises(config_checks.ConfigError, match=r"config\.mixup\.stages: .*mlp"):
    config_checks.validate_config(config)


def test_every_spec_field_has_a_config_field():
  fields = set(MixSpec.__dataclass_fields__)
  assert fields == set(CONFIG_FIELDS)
  mixup_fields = set(default.get_config().mixup)
  for config_field in CONFIG_FIELDS.values():
    name = config_field.split(".", 1)[-1]
    assert name in mixup_fields or config_field == "label_smoothing", config_field


# ------------------------------------------------------------------------------
# timm's pair mode, big_vision's sorted weights.
# ------------------------------------------------------------------------------


def test_pair_mode_gives_each_pair_one_lambda_and_mixes_them_with_each_other():
  x, y = _images(8), jnp.arange(8) % 4
  x_mix, _, drawn = mj.mix(KEY, x, y, 1.0, num_classes=4, granularity="pair",
                           pairing="flip", return_mixing=True)
  lam = np.asarray(drawn.lam)
  np.testing.assert_array_equal(lam, lam[::-1])
  assert len(set(lam[:4].tolist())) == 4  # each pair its own draw
  np.testing.assert_array_equal(np.asarray(drawn.partners[:, 0]), np.arange(8)[::-1])
  want = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[::-1]
  np.testing.assert_allclose(x_mix, want, rtol=1e-6)
  cut = cm.sample_cutmix(KEY, 1.0, 8, (H, W), granularity="pair", pairing="flip")
  np.testing.assert_array_equal(cut.boxes, cut.boxes[::-1])  # the two swap one box
  with pytest.raises(ValueError, match="even number of rows"):
    mixing.sample_mixing(KEY, 1.0, 6, granularity="pair", pairing="flip", num_groups=2)
  with pytest.raises(ValueError, match='pairing="flip"'):
    mixing.sample_mixing(KEY, 1.0, 8, granularity="pair")


def test_sorted_weights_are_the_drawn_weights_in_decreasing_order():
  for sources in (2, 3):
    plain = mixing.sample_mixing(KEY, 0.2, 256, granularity="example", num_sources=sources)
    ordered = mixing.sample_mixing(KEY, 0.2, 256, granularity="example",
                                   num_sources=sources, sort_weights=True)
    np.testing.assert_array_equal(ordered.weights, -np.sort(-np.asarray(plain.weights), axis=1))
    np.testing.assert_array_equal(ordered.partners, plain.partners)
  assert float(ordered.lam.min()) >= 1 / 3
  cut = cm.sample_cutmix(KEY, 1.0, 256, (H, W), granularity="example", sort_weights=True,
                         correct_lam=False)
  assert float(cut.lam.min()) >= 0.5


# ------------------------------------------------------------------------------
# timm's cutmix_minmax.
# ------------------------------------------------------------------------------


def test_cutmix_minmax_draws_box_sides_in_the_range_inside_the_image():
  cut = cm.sample_cutmix(KEY, 1.0, 2048, (H, W), granularity="example",
                         cutmix_minmax=(0.25, 0.75))
  boxes = np.asarray(cut.boxes)
  heights, widths = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
  assert set(heights.tolist()) == set(range(int(H * 0.25), int(H * 0.75)))  # high exclusive
  assert set(widths.tolist()) == set(range(int(W * 0.25), int(W * 0.75)))
  assert boxes[:, 0].min() >= 0 and boxes[:, 2].max() <= H and boxes[:, 3].max() <= W
  np.testing.assert_allclose(cut.mixing.weights[:, 1], heights * widths / (H * W), rtol=1e-6)
  np.testing.assert_allclose(cut.mixing.weights.sum(axis=1), 1.0, rtol=1e-6)
  # The box does not depend on alpha (only "cut or not"), as in timm.
  other = cm.sample_cutmix(KEY, 0.3, 2048, (H, W), granularity="example",
                           cutmix_minmax=(0.25, 0.75))
  np.testing.assert_array_equal(other.boxes, cut.boxes)
  with pytest.raises(ValueError, match="cutmix_minmax"):
    cm.sample_cutmix(KEY, 1.0, 4, (H, W), cutmix_minmax=(0.5, 0.52))  # no integer side
  with pytest.raises(ValueError, match="area_range, not both"):
    cm.sample_cutmix(KEY, 1.0, 4, (H, W), cutmix_minmax=(0.2, 0.8), area_range=(0.1, 0.5))


def test_cutmix_minmax_pastes_nothing_where_prob_says_no():
  cut = cm.sample_cutmix(KEY, 1.0, 512, (H, W), granularity="example", prob=0.5,
                         cutmix_minmax=(0.2, 0.8))
  unmixed = np.asarray(cut.lam) == 1.0
  assert 0.35 < unmixed.mean() < 0.65
  boxes = np.asarray(cut.boxes)
  assert np.all(boxes[unmixed] == 0)


# ------------------------------------------------------------------------------
# Multi-label targets; what the one-call forms drew.
# ------------------------------------------------------------------------------


def test_multi_label_targets_mix_multi_hot_rows_and_smooth_towards_one_half():
  x = _images(4)
  y = jnp.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], jnp.int32)
  _, y_mix, drawn = mj.mix(KEY, x, y, 1.0, multi_label=True, label_smoothing=0.2,
                           return_mixing=True)
  smoothed = 0.8 * np.asarray(y, np.float32) + 0.1
  lam, partner = np.asarray(drawn.lam), np.asarray(drawn.partners[:, 0])
  np.testing.assert_allclose(y_mix, lam[:, None] * smoothed + (1 - lam[:, None]) * smoothed[partner],
                             rtol=1e-6)
  with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
    mj.mix(KEY, x, 2 * y, 1.0, multi_label=True)
  with pytest.raises(ValueError, match="multi-hot rows"):
    mj.mix(KEY, x, jnp.arange(4), 1.0, multi_label=True)
  with pytest.raises(ValueError, match="num_classes"):
    mixing.as_target_rows(y, num_classes=4, multi_label=True)


def test_mix_or_cutmix_returns_what_it_drew():
  x, y = _images(16), jnp.arange(16) % 4
  x_out, y_out, (mixup, cut, use) = mj.mix_or_cutmix(
      KEY, x, y, mixup_alpha=0.8, cutmix_alpha=1.0, granularity="example", num_classes=4,
      return_switch=True)
  np.testing.assert_array_equal(x_out, cm.apply_switch(mixup, cut, use, x))
  np.testing.assert_array_equal(y_out, mixing.mix_targets(cut.mixing, y, num_classes=4))
  use = np.asarray(use)
  assert 0 < use.sum() < 16
  np.testing.assert_array_equal(np.asarray(cut.lam)[~use], np.asarray(mixup.lam)[~use])
