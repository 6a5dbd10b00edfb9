"""Our mixing against timm's `Mixup` and torchvision's v2 `MixUp` / `CutMix`.

The deterministic parts are compared with the same lambda, partners and box injected
into both sides (theirs by replacing the methods that draw them); mixed inputs and
soft targets must agree to float32 rounding. The random parts (lambda, box area,
switch frequency) are compared by two-sample Kolmogorov-Smirnov and binomial tests on
fixed seeds. Skipped, with the reason, where a library is not installed.

timm's package imports torchvision, whose compiled operators need a torch build of its
own version; its mixup module needs only torch and numpy, so it is loaded from its
file when the package itself cannot be imported.
"""

import importlib.util
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as scipy_stats

from mixup_jax import cutmixing as cm
from mixup_jax import mixing

torch = pytest.importorskip("torch", reason="the comparisons with timm and torchvision need torch")

B, H, W, C, NUM_CLASSES = 8, 16, 24, 3, 5
KEY = jax.random.key(11)


def _timm_mixup():
  spec = importlib.util.find_spec("timm")
  if spec is None:
    pytest.skip("timm is not installed (pip install timm)")
  try:
    import timm.data.mixup as module  # pylint: disable=import-outside-toplevel
    return module
  except (ImportError, RuntimeError):  # torchvision's operators do not load
    path = spec.submodule_search_locations[0] + "/data/mixup.py"
    module_spec = importlib.util.spec_from_file_location("timm_data_mixup", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def timm_mixup():
  return _timm_mixup()


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  images = rng.uniform(size=(B, H, W, C)).astype(np.float32)
  labels = rng.integers(0, NUM_CLASSES, B)
  return images, labels


def _torch_nchw(images):
  return torch.from_numpy(images.transpose(0, 3, 1, 2).copy())


def _nhwc(tensor):
  return tensor.numpy().transpose(0, 2, 3, 1)


def _mixing(lam, partners):
  lam = np.broadcast_to(np.asarray(lam, np.float32), (B,))
  return mixing.Mixing(weights=jnp.stack([lam, 1.0 - lam], axis=-1),
                       partners=jnp.asarray(partners, jnp.int32)[:, None])


def _cut(boxes, partners):
  """A CutMixing with the given (top, left, bottom, right) boxes, shares from them."""
  boxes = jnp.asarray(np.broadcast_to(np.asarray(boxes), (B, 4)), jnp.int32)
  shares = cm.pixel_shares(boxes, (H, W))
  return cm.CutMixing(mixing=mixing.Mixing(weights=shares,
                                           partners=jnp.asarray(partners, jnp.int32)[:, None]),
                      boxes=boxes, image_size=(H, W))


FLIP = np.arange(B)[::-1]
ROLL = np.roll(np.arange(B), 1)


def _ks_same(a, b, p=1e-3) -> bool:
  """The two-sample Kolmogorov-Smirnov test does not reject one distribution at level p."""
  return scipy_stats.ks_2samp(a, b).pvalue > p


# ------------------------------------------------------------------------------
# timm: injected draws.
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_timm_batch_mixup(timm_mixup, monkeypatch, smoothing):
  images, labels = _batch()
  lam = 0.3141
  mixer = timm_mixup.Mixup(mixup_alpha=1.0, label_smoothing=smoothing, num_classes=NUM_CLASSES)
  monkeypatch.setattr(mixer, "_params_per_batch", lambda: (lam, False))
  x_theirs, y_theirs = mixer(_torch_nchw(images), torch.from_numpy(labels))
  drawn = _mixing(lam, FLIP)
  np.testing.assert_allclose(mixing.apply_mixing(drawn, images), _nhwc(x_theirs), atol=1e-6)
  ours = mixing.mix_targets(drawn, labels, num_classes=NUM_CLASSES, label_smoothing=smoothing)
  np.testing.assert_allclose(ours, y_theirs.numpy(), atol=1e-6)


@pytest.mark.parametrize("correct_lam", [True, False])
def test_timm_batch_cutmix_with_its_area_correction(timm_mixup, monkeypatch, correct_lam):
  images, labels = _batch(1)
  lam, (top, bottom, left, right) = 0.6, (0, 7, 15, 24)  # clipped at two borders
  mixer = timm_mixup.Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, correct_lam=correct_lam,
                           label_smoothing=0.1, num_classes=NUM_CLASSES)
  monkeypatch.setattr(mixer, "_params_per_batch", lambda: (lam, True))
  monkeypatch.setattr(timm_mixup, "rand_bbox", lambda *a, **k: (top, bottom, left, right))
  x_theirs, y_theirs = mixer(_torch_nchw(images), torch.from_numpy(labels))
  cut = _cut((top, left, bottom, right), FLIP)
  if not correct_lam:
    cut = cut.replace(mixing=_mixing(lam, FLIP))
  np.testing.assert_array_equal(cm.apply_cutmix(cut, images), _nhwc(x_theirs))
  ours = mixing.mix_targets(cut.mixing, labels, num_classes=NUM_CLASSES, label_smoothing=0.1)
  np.testing.assert_allclose(ours, y_theirs.numpy(), atol=1e-6)


def _boxes_in_order(timm_mixup, monkeypatch, boxes):
  """Makes timm's rand_bbox return `boxes` (top, bottom, left, right) in call order."""
  pending = list(boxes)
  monkeypatch.setattr(timm_mixup, "rand_bbox", lambda *a, **k: pending.pop(0))


def test_timm_elem_mode_switch(timm_mixup, monkeypatch):
  images, labels = _batch(2)
  lams = np.linspace(0.15, 0.85, B).astype(np.float32)
  use_cutmix = np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)
  boxes = [(2 * i % H, 2 * i % H + 5, 3 * i % W, 3 * i % W + 9) for i in range(B)]
  mixer = timm_mixup.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem",
                           label_smoothing=0.1, num_classes=NUM_CLASSES)
  monkeypatch.setattr(mixer, "_params_per_elem", lambda n: (lams.copy(), use_cutmix))
  _boxes_in_order(timm_mixup, monkeypatch, [boxes[i] for i in range(B) if use_cutmix[i]])
  x_theirs, y_theirs = mixer(_torch_nchw(images), torch.from_numpy(labels))
  mixup = _mixing(lams, FLIP)
  cut = _cut([(top, left, bottom, right) for top, bottom, left, right in boxes], FLIP)
  use = jnp.asarray(use_cutmix)
  weights = jnp.where(use[:, None], cut.mixing.weights, mixup.weights)
  cut = cut.replace(mixing=cut.mixing.replace(weights=weights))
  np.testing.assert_allclose(cm.apply_switch(mixup, cut, use, images), _nhwc(x_theirs), atol=1e-6)
  ours = mixing.mix_targets(cut.mixing, labels, num_classes=NUM_CLASSES, label_smoothing=0.1)
  np.testing.assert_allclose(ours, y_theirs.numpy(), atol=1e-6)


def test_timm_pair_mode_equals_our_pair_granularity(timm_mixup, monkeypatch):
  images, labels = _batch(3)
  half_lams = np.array([0.2, 0.45, 0.7, 0.9], np.float32)
  use_cutmix = np.array([0, 1, 0, 1], bool)
  half_boxes = [(1, 9, 2, 14), (4, 16, 0, 11)]  # for pairs 1 and 3
  mixer = timm_mixup.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, mode="pair",
                           label_smoothing=0.0, num_classes=NUM_CLASSES)  # timm's default: 0.1
  monkeypatch.setattr(mixer, "_params_per_elem", lambda n: (half_lams.copy(), use_cutmix))
  _boxes_in_order(timm_mixup, monkeypatch, half_boxes)
  x_theirs, y_theirs = mixer(_torch_nchw(images), torch.from_numpy(labels))
  # Ours: every draw mirrored to row n - 1 - i, partners flipped.
  lams = np.concatenate([half_lams, half_lams[::-1]])
  use = np.concatenate([use_cutmix, use_cutmix[::-1]])
  pair_boxes = [(0, 0, 0, 0), half_boxes[0], (0, 0, 0, 0), half_boxes[1]]
  boxes = [(top, left, bottom, right)
           for top, bottom, left, right in pair_boxes + pair_boxes[::-1]]
  mixup, cut = _mixing(lams, FLIP), _cut(boxes, FLIP)
  weights = jnp.where(jnp.asarray(use)[:, None], cut.mixing.weights, mixup.weights)
  cut = cut.replace(mixing=cut.mixing.replace(weights=weights))
  np.testing.assert_allclose(cm.apply_switch(mixup, cut, jnp.asarray(use), images),
                             _nhwc(x_theirs), atol=1e-6)
  ours = mixing.mix_targets(cut.mixing, labels, num_classes=NUM_CLASSES)
  np.testing.assert_allclose(ours, y_theirs.numpy(), atol=1e-6)


def test_timm_multi_label_targets(timm_mixup):
  rng = np.random.default_rng(4)
  targets = rng.integers(0, 2, (B, NUM_CLASSES))
  lam = 0.37
  theirs = timm_mixup.mixup_target(torch.from_numpy(targets), NUM_CLASSES, lam, 0.2,
                                   multi_label=True)
  ours = mixing.mix_targets(_mixing(lam, FLIP), targets, num_classes=NUM_CLASSES,
                            label_smoothing=0.2, multi_label=True)
  np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-6)


# ------------------------------------------------------------------------------
# timm: the random parts.
# ------------------------------------------------------------------------------


def test_timm_lambda_and_switch_frequency_match_in_distribution(timm_mixup):
  n = 4000
  np.random.seed(0)
  mixer = timm_mixup.Mixup(mixup_alpha=0.4, cutmix_alpha=1.0, switch_prob=0.3,
                           num_classes=NUM_CLASSES)
  their_lams, their_cut = mixer._params_per_elem(n)  # pylint: disable=protected-access
  mixup, cut, use = cm.sample_switch(KEY, n, (32, 32), mixup_alpha=0.4, cutmix_alpha=1.0,
                                     switch_prob=0.3, granularity="example", correct_lam=False)
  use = np.asarray(use)
  # Binomial: both frequencies within 4 standard errors of 0.3 and of each other.
  se = math.sqrt(0.3 * 0.7 / n)
  assert abs(use.mean() - 0.3) < 4 * se and abs(their_cut.mean() - 0.3) < 4 * se
  ours_mix = np.asarray(mixup.lam)[~use]
  ours_cut = np.asarray(cut.lam)[use]
  assert _ks_same(ours_mix, their_lams[~their_cut])
  assert _ks_same(ours_cut, their_lams[their_cut])
  assert not _ks_same(ours_mix, their_lams[their_cut])  # the test can tell Beta(0.4) from Beta(1)


def test_timm_box_areas_match_in_distribution(timm_mixup):
  """Box area shares after clipping, lambda ~ Beta(1, 1), on 32 x 32 images.

  timm truncates the side (int(sqrt(1 - lam) * 32)), we round it; with 4,000 draws the
  KS test does not tell the two apart."""
  n = 4000
  np.random.seed(1)
  lams = np.random.beta(1.0, 1.0, n)
  theirs = np.array([timm_mixup.cutmix_bbox_and_lam((32, 32), lam)[1] for lam in lams])
  cut = cm.sample_cutmix(KEY, 1.0, n, (32, 32), granularity="example")
  assert _ks_same(np.asarray(cut.lam), theirs)


def test_timm_cutmix_minmax_boxes_match_in_distribution(timm_mixup):
  n = 4000
  np.random.seed(2)
  top, bottom, left, right = timm_mixup.rand_bbox_minmax((H, W), (0.2, 0.8), count=n)
  cut = cm.sample_cutmix(KEY, 1.0, n, (H, W), granularity="example", cutmix_minmax=(0.2, 0.8))
  boxes = np.asarray(cut.boxes)
  for ours, theirs in ((boxes[:, 2] - boxes[:, 0], bottom - top),
                       (boxes[:, 3] - boxes[:, 1], right - left),
                       (boxes[:, 0], top), (boxes[:, 1], left)):
    assert set(ours.tolist()) == set(theirs.tolist())
    assert _ks_same(ours, theirs)


# ------------------------------------------------------------------------------
# torchvision v2: injected draws.
# ------------------------------------------------------------------------------


def _torchvision_v2():
  if importlib.util.find_spec("torchvision") is None:
    pytest.skip("torchvision is not installed (pip install torchvision)")
  try:
    from torchvision.transforms import v2  # pylint: disable=import-outside-toplevel
  except (ImportError, RuntimeError) as error:
    pytest.skip(f"torchvision does not load with this torch build: {error}")
  return v2


def test_torchvision_mixup(monkeypatch):
  v2 = _torchvision_v2()
  images, labels = _batch(5)
  lam = 0.27
  mixer = v2.MixUp(alpha=1.0, num_classes=NUM_CLASSES)
  monkeypatch.setattr(mixer, "make_params", lambda flat_inputs: {"lam": lam})
  x_theirs, y_theirs = mixer(_torch_nchw(images), torch.from_numpy(labels))
  drawn = _mixing(lam, ROLL)
  np.testing.assert_allclose(mixing.apply_mixing(drawn, images), _nhwc(x_theirs), atol=1e-6)
  ours = mixing.mix_targets(drawn, labels, num_classes=NUM_CLASSES)
  np.testing.assert_allclose(ours, y_theirs.numpy(), atol=1e-6)


def test_torchvision_cutmix(monkeypatch):
  v2 = _torchvision_v2()
  images, labels = _batch(6)
  top, left, bottom, right = 3, 10, 13, 24
  share = 1.0 - (bottom - top) * (right - left) / (H * W)
  mixer = v2.CutMix(alpha=1.0, num_classes=NUM_CLASSES)
  monkeypatch.setattr(mixer, "make_params", lambda flat_inputs: {
      "box": (left, top, right, bottom), "lam_adjusted": share})
  x_theirs, y_theirs = mixer(_torch_nchw(images), torch.from_numpy(labels))
  cut = _cut((top, left, bottom, right), ROLL)
  np.testing.assert_array_equal(cm.apply_cutmix(cut, images), _nhwc(x_theirs))
  ours = mixing.mix_targets(cut.mixing, labels, num_classes=NUM_CLASSES)
  np.testing.assert_allclose(ours, y_theirs.numpy(), atol=1e-6)
