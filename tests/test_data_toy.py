"""Tests of mixup_jax.data.toy: the Figure 1b problem and the GAN targets."""

import functools

import jax
import numpy as np
import pytest

import mixup_jax.data as data_lib
from mixup_jax.data import toy

KEY = jax.random.key(0)


def test_ring8_centres():
  centres = toy.gan_mode_centres("ring8")
  assert centres.shape == (8, 2) and centres.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(centres, axis=1), np.sqrt(2), rtol=1e-6)
  angles = np.degrees(np.arctan2(centres[:, 1], centres[:, 0])) % 360
  np.testing.assert_allclose(angles, np.arange(0, 360, 45), atol=1e-4)


def test_grid25_centres():
  centres = toy.gan_mode_centres("grid25")
  assert centres.shape == (25, 2)
  grid = [(x, y) for x in range(-2, 3) for y in range(-2, 3)]
  assert sorted({tuple(c) for c in centres.tolist()}) == grid
  with pytest.raises(ValueError, match="not a GAN target"):
    toy.gan_mode_centres("ring9")


@pytest.mark.parametrize("name", toy.GAN_TARGETS)
def test_gan_target_sampler_is_seeded_with_std_001_around_every_mode(name):
  n = 20000
  x, mode = toy.sample_gan_target_with_modes(KEY, name, n)
  assert x.shape == (n, 2) and x.dtype == np.float32 and mode.dtype == np.int32
  centres = toy.gan_mode_centres(name)
  offsets = np.asarray(x) - centres[np.asarray(mode)]
  np.testing.assert_allclose(offsets.std(axis=0), toy.GAN_STD, rtol=0.05)
  np.testing.assert_allclose(offsets.mean(axis=0), 0, atol=5 * toy.GAN_STD / np.sqrt(n))
  nearest = np.argmin(np.linalg.norm(np.asarray(x)[:, None] - centres[None], axis=-1), axis=1)
  np.testing.assert_array_equal(nearest, mode)  # modes are far apart relative to the std
  share = np.bincount(nearest, minlength=len(centres)) / n
  np.testing.assert_allclose(share, 1 / len(centres), atol=0.02)
  sample = functools.partial(toy.sample_gan_target, name=name, n=n)
  np.testing.assert_array_equal(sample(jax.random.key(0)), x)  # seeded
  assert not np.array_equal(sample(KEY), sample(jax.random.key(1)))


def test_gan_target_std_widens_the_modes_and_rejects_bad_values():
  x, mode = toy.sample_gan_target_with_modes(KEY, "ring8", 20000, std=0.05)
  offsets = np.asarray(x) - toy.gan_mode_centres("ring8")[np.asarray(mode)]
  np.testing.assert_allclose(offsets.std(axis=0), 0.05, rtol=0.05)
  narrow, _ = toy.sample_gan_target_with_modes(KEY, "ring8", 20000)
  assert not np.allclose(x, narrow)
  for bad in (0.0, -0.01, float("inf"), True, "0.01"):
    with pytest.raises(ValueError, match="std must be a positive finite number"):
      toy.sample_gan_target(KEY, "ring8", 10, std=bad)


def test_two_rings_are_balanced_seeded_and_separable():
  x, y = toy.sample_two_rings(KEY, 2000)
  x, y = np.asarray(x), np.asarray(y)
  assert x.shape == (2000, 2) and x.dtype == np.float32 and y.dtype == np.int32
  assert np.bincount(y).tolist() == [1000, 1000]
  radius = np.linalg.norm(x, axis=1)
  for label, r in enumerate(toy.TWO_RINGS_RADII):
    assert abs(radius[y == label].mean() - r) < 0.01
    assert abs(radius[y == label].std() - toy.TWO_RINGS_NOISE) < 0.01
  np.testing.assert_array_equal(radius > 1.5, y == 1)
  angle = np.arctan2(x[:, 1], x[:, 0])
  assert np.histogram(angle, bins=8)[0].min() > 200  # uniform around the circle
  again, _ = toy.sample_two_rings(KEY, 2000)
  np.testing.assert_array_equal(again, x)
  with pytest.raises(ValueError, match="n=-1"):
    toy.sample_two_rings(KEY, -1)


def test_registered_datasets():
  ds = data_lib.get_dataset("toy2d", num_train=1200, num_test=800)
  assert (ds.num_train, ds.num_test, ds.num_classes, ds.input_shape) == (1200, 800, 2, (2,))
  assert np.bincount(ds.train.arrays["label"]).tolist() == [600, 600]
  assert np.bincount(ds.test.arrays["label"]).tolist() == [400, 400]
  x, y = toy.sample_two_rings(KEY, 2000)  # seed 0: the same draw, split 1200 / 800
  np.testing.assert_array_equal(ds.test.arrays["features"], x[1200:])
  np.testing.assert_array_equal(ds.train.arrays["label"], y[:1200])
  batch = next(data_lib.train_iterator(ds.train, global_batch_size=16, seed=0))
  assert batch["features"].shape == (16, 2) and batch["label"].dtype == np.int32
  gan = data_lib.get_dataset("gan/grid25", num_train=19000, num_test=1000)
  assert gan.num_classes == 25 and gan.train.arrays["features"].shape == (19000, 2)
  _, mode = toy.sample_gan_target_with_modes(KEY, "grid25", 20000)
  np.testing.assert_array_equal(gan.test.arrays["label"], mode[19000:])
  np.testing.assert_array_equal(gan.info["centres"], toy.gan_mode_centres("grid25"))
  with pytest.raises(ValueError, match="generated"):
    data_lib.get_dataset("toy2d", source="tfds")
