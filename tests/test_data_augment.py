"""Augmentation: crops shift content by at most 4 with zero fill, flips, normalisation."""

import jax
import numpy as np
import pytest

from mixup_jax.data import augment


def _distinct_images(batch, size=32):
  """Images whose pixels are nonzero and distinct (channels 0, 1 = row, column + 1)."""
  rows, cols = np.meshgrid(np.arange(1, size + 1), np.arange(1, size + 1), indexing="ij")
  noise = np.random.default_rng(0).integers(1, 256, (batch, size, size))
  grid = np.broadcast_to(np.stack([rows, cols], -1), (batch, size, size, 2))
  return np.concatenate([grid, noise[..., None]], axis=-1).astype(np.uint8)


def _shifted(image, dy, dx, pad=4):
  """image translated by (dy, dx) with zero fill: what a crop at (pad+dy, pad+dx) shows."""
  padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
  h, w = image.shape[:2]
  return padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w]


def _find_shift(original, out):
  """The (dy, dx, flipped) that explains `out`, or None."""
  for flipped in (False, True):
    candidate = out[:, ::-1] if flipped else out
    for dy in range(-4, 5):
      for dx in range(-4, 5):
        if np.array_equal(candidate, _shifted(original, dy, dx)):
          return dy, dx, flipped
  return None


@pytest.mark.parametrize("backend", ["jit", "numpy"])
def test_crop_shifts_content_by_at_most_4_with_zero_fill_and_flips(backend):
  images = _distinct_images(64)
  if backend == "numpy":
    rng = np.random.default_rng(0)
    outs = np.stack([augment.random_crop_flip_np(rng, image) for image in images])
  else:
    outs = np.asarray(jax.jit(augment.random_crop_flip)(jax.random.key(0), images))
  assert outs.shape == images.shape and outs.dtype == np.uint8
  shifts = [_find_shift(image, out) for image, out in zip(images, outs)]
  assert all(shift is not None for shift in shifts)
  assert {s[2] for s in shifts} == {False, True}  # Both flipped and unflipped occur.
  assert len({s[:2] for s in shifts}) > 20  # Many of the 81 offsets occur.
  assert any(0 in out.reshape(-1, 3).max(axis=1) for out in outs)  # Zero fill shows.


def test_jit_and_eager_augmentations_agree():
  images = _distinct_images(16)
  key = jax.random.key(3)
  np.testing.assert_allclose(augment.cifar_train(key, images),
                             jax.jit(augment.cifar_train)(key, images), atol=1e-6)


def test_normalisation_uses_the_reference_constants():
  assert augment.CIFAR_MEAN == (0.4914, 0.4822, 0.4465)
  assert augment.CIFAR_STD == (0.2023, 0.1994, 0.2010)
  images = np.zeros((1, 32, 32, 3), np.uint8)
  images[0, 0, 0] = (255, 255, 255)
  out = np.asarray(augment.cifar_eval(images))
  np.testing.assert_allclose(out[0, 1, 1], -np.array(augment.CIFAR_MEAN) / augment.CIFAR_STD, rtol=1e-6)
  np.testing.assert_allclose(out[0, 0, 0], (1 - np.array(augment.CIFAR_MEAN)) / augment.CIFAR_STD,
                             rtol=1e-6)
  host = augment.CifarEvalHost().map({"image": images[0]})["image"]
  np.testing.assert_allclose(host, out[0], rtol=1e-6)


def test_host_train_transform_is_crop_flip_then_normalise():
  image = _distinct_images(1)[0]
  rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
  out = augment.CifarTrainHost().random_map({"image": image, "label": 1}, rng_a)
  expected = augment.normalize_np(augment.random_crop_flip_np(rng_b, image),
                                  augment.CIFAR_MEAN, augment.CIFAR_STD)
  np.testing.assert_array_equal(out["image"], expected)
  assert out["label"] == 1


def test_bad_inputs_are_refused_at_trace_time():
  with pytest.raises(ValueError, match="uint8"):
    jax.jit(augment.cifar_eval)(np.zeros((2, 32, 32, 3), np.float32))
  with pytest.raises(ValueError, match=r"\[B, 32, 32, 3\]"):
    augment.cifar_train(jax.random.key(0), np.zeros((2, 28, 28, 1), np.uint8))


def test_random_resized_crop_takes_a_window_of_the_image():
  rng = np.random.default_rng(0)
  # A horizontal ramp: any crop resized is still increasing (or decreasing if flipped) in x.
  ramp = np.tile(np.linspace(0, 255, 300).astype(np.uint8)[None, :, None], (200, 1, 3))
  transform = augment.RandomResizedCrop(64)
  directions = set()
  for _ in range(20):
    out = transform.random_map({"image": ramp}, rng)["image"]
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    row = out[32, :, 0].astype(int)
    directions.add(int(np.sign(row[-1] - row[0])))
    assert np.all(np.diff(row) * np.sign(row[-1] - row[0]) >= 0)
  assert directions == {-1, 1}


def test_resize_center_crop_keeps_the_centre():
  image = np.zeros((100, 300, 3), np.uint8)
  image[:, 140:160] = 255  # A bright centre column.
  out = augment.ResizeCenterCrop(64, 73).map({"image": image})["image"]
  assert out.shape == (64, 64, 3)
  assert out[:, 32].min() > 200 and out[:, 0].max() == 0
