"""Image augmentation and normalisation, on the accelerator and on the host.

On the accelerator (the default): the host ships uint8 images and the jitted
train step calls `cifar_train(rng, images)` / `cifar_eval(images)` (and the
MNIST / ImageNet equivalents); these are pure functions of their key and
inputs. On the host: the same operations as Grain transforms
(`CifarTrainHost`, `CifarEvalHost`, ...) for `train_iterator(transforms=...)`;
they ship float32. `benchmarks/bench_input.py` compares the two.

CIFAR (paper and authors' code): pad 4 pixels of zeros on each side, crop a
random 32 x 32 window, flip horizontally with probability 1/2, then scale to
[0, 1] and normalise per channel with the constants of the authors' `train.py`
(facebookresearch/mixup-cifar10): mean (0.4914, 0.4822, 0.4465), std (0.2023,
0.1994, 0.2010). Padding with zeros before normalising is what torchvision's RandomCrop(32, padding=4) does.

ImageNet (host only, sizes vary): Inception-style random resized crop (area
fraction in [0.08, 1], aspect ratio in [3/4, 4/3], log-uniform) + flip, resized
to 224; evaluation resizes the shorter side to 256 and takes the centre 224.
Both ship uint8; `imagenet_train` / `imagenet_eval` normalise on the device.
"""

from __future__ import annotations

import math
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_PADDING = 4


def normalize(images: jax.Array, mean: tuple[float, ...], std: tuple[float, ...]) -> jax.Array:
  """uint8 [..., C] -> float32 (x / 255 - mean) / std, per channel."""
  _check_uint8("images", images)
  if images.shape[-1] != len(mean):
    raise ValueError(
        f"images have {images.shape[-1]} channels but mean/std have {len(mean)}: "
        "pass images as [..., H, W, C].")
  scaled = images.astype(jnp.float32) / 255.0
  return (scaled - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def random_crop_flip(rng: jax.Array, images: jax.Array, padding: int = CIFAR_PADDING) -> jax.Array:
  """Zero-pad, random crop back to size, random horizontal flip; per example.

  Args:
    rng: a PRNG key.
    images: [B, H, W, C] (any dtype; padding is 0).
    padding: pixels added on each side; crops shift content by at most this.

  Returns:
    [B, H, W, C], same dtype.
  """
  if images.ndim != 4:
    raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}.")
  batch, height, width, channels = images.shape
  crop_key, flip_key = jax.random.split(rng)
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  offsets = jax.random.randint(crop_key, (batch, 2), 0, 2 * padding + 1)
  crop = lambda image, offset: jax.lax.dynamic_slice(
      image, (offset[0], offset[1], 0), (height, width, channels))
  cropped = jax.vmap(crop)(padded, offsets)
  flip = jax.random.bernoulli(flip_key, 0.5, (batch,))
  return jnp.where(flip[:, None, None, None], cropped[:, :, ::-1, :], cropped)


def cifar_train(rng: jax.Array, images: jax.Array) -> jax.Array:
  """The paper's CIFAR training input: uint8 [B, 32, 32, 3] -> float32, augmented."""
  _check_image_batch("images", images, (32, 32, 3))
  return normalize(random_crop_flip(rng, images), CIFAR_MEAN, CIFAR_STD)


def cifar_train_unaugmented(rng: jax.Array, images: jax.Array) -> jax.Array:
  """CIFAR training input without crop or flip (`rng` unused): memorisation studies."""
  del rng
  return cifar_eval(images)


def cifar_eval(images: jax.Array) -> jax.Array:
  """CIFAR evaluation input: uint8 [B, 32, 32, 3] -> float32, normalised."""
  _check_image_batch("images", images, (32, 32, 3))
  return normalize(images, CIFAR_MEAN, CIFAR_STD)


def mnist_train(rng: jax.Array, images: jax.Array) -> jax.Array:
  """MNIST training input (no augmentation; `rng` unused): uint8 [B, 28, 28, 1] -> float32."""
  del rng
  return mnist_eval(images)


def mnist_eval(images: jax.Array) -> jax.Array:
  """MNIST input: uint8 [B, 28, 28, 1] -> float32 normalised with the usual constants."""
  _check_image_batch("images", images, (28, 28, 1))
  return normalize(images, MNIST_MEAN, MNIST_STD)


def imagenet_train(rng: jax.Array, images: jax.Array) -> jax.Array:
  """ImageNet training input after the host crops: uint8 [B, S, S, 3] -> float32 (`rng` unused)."""
  del rng
  return imagenet_eval(images)


def imagenet_eval(images: jax.Array) -> jax.Array:
  """ImageNet input after the host crops: uint8 [B, S, S, 3] -> float32 normalised."""
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must be [B, S, S, 3], got shape {images.shape}.")
  return normalize(images, IMAGENET_MEAN, IMAGENET_STD)


# ----------------------------------------------------------------------------
# Host-side (NumPy) versions, as Grain transforms on single examples.


def normalize_np(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
  """NumPy `normalize`: uint8 [..., C] -> float32."""
  _check_uint8("image", image)
  scaled = image.astype(np.float32) / np.float32(255.0)
  return (scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def random_crop_flip_np(
    rng: np.random.Generator, image: np.ndarray, padding: int = CIFAR_PADDING) -> np.ndarray:
  """NumPy `random_crop_flip` of one image [H, W, C]."""
  height, width = image.shape[:2]
  top, left = rng.integers(0, 2 * padding + 1, size=2)
  padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
  cropped = padded[top:top + height, left:left + width]
  return cropped[:, ::-1] if rng.random() < 0.5 else cropped


class CifarTrainHost(grain.transforms.RandomMap):
  """Host version of `cifar_train` on element['image']: uint8 [32, 32, 3] -> float32."""

  def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    image = random_crop_flip_np(rng, element["image"])
    return {**element, "image": normalize_np(image, CIFAR_MEAN, CIFAR_STD)}


class CifarEvalHost(grain.transforms.Map):
  """Host version of `cifar_eval` on element['image']."""

  def map(self, element: dict[str, Any]) -> dict[str, Any]:
    return {**element, "image": normalize_np(element["image"], CIFAR_MEAN, CIFAR_STD)}


class RandomResizedCrop(grain.transforms.RandomMap):
  """ImageNet training crop of element['image']: uint8 [H, W, 3] -> uint8 [size, size, 3].

  A window of area fraction U(scale) and log-uniform aspect ratio in `ratio`
  (10 tries, else the largest centred window of a clipped ratio), resized
  bilinearly to `size`, flipped horizontally with probability 1/2.
  """

  def __init__(self, size: int = 224, scale: tuple[float, float] = (0.08, 1.0),
               ratio: tuple[float, float] = (3 / 4, 4 / 3)):
    if not 0 < scale[0] <= scale[1] <= 1:
      raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}.")
    if not 0 < ratio[0] <= ratio[1]:
      raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio}.")
    self.size, self.scale, self.ratio = size, scale, ratio

  def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    image = element["image"]
    top, left, height, width = self._window(rng, *image.shape[:2])
    crop = _resize(image[top:top + height, left:left + width], (self.size, self.size))
    if rng.random() < 0.5:
      crop = crop[:, ::-1]
    return {**element, "image": np.ascontiguousarray(crop)}

  def _window(self, rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
    area = height * width
    log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
    for _ in range(10):
      target_area = area * rng.uniform(*self.scale)
      aspect = math.exp(rng.uniform(*log_ratio))
      w = round(math.sqrt(target_area * aspect))
      h = round(math.sqrt(target_area / aspect))
      if 0 < w <= width and 0 < h <= height:
        return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    aspect = min(max(width / height, self.ratio[0]), self.ratio[1])
    w, h = (width, round(width / aspect)) if width / height < aspect else (round(height * aspect), height)
    w, h = min(max(w, 1), width), min(max(h, 1), height)
    return (height - h) // 2, (width - w) // 2, h, w


class ResizeCenterCrop(grain.transforms.Map):
  """ImageNet eval view of element['image']: shorter side -> `resize`, centre `size` crop, uint8."""

  def __init__(self, size: int = 224, resize: int = 256):
    if resize < size:
      raise ValueError(f"resize={resize} must be at least size={size}.")
    self.size, self.resize = size, resize

  def map(self, element: dict[str, Any]) -> dict[str, Any]:
    image = element["image"]
    height, width = image.shape[:2]
    factor = self.resize / min(height, width)
    new_h, new_w = max(self.size, round(height * factor)), max(self.size, round(width * factor))
    resized = _resize(image, (new_h, new_w))
    top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
    crop = resized[top:top + self.size, left:left + self.size]
    return {**element, "image": np.ascontiguousarray(crop)}


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Bilinear resize of uint8 [H, W, 3] to [size[0], size[1], 3] (Pillow)."""
  try:
    from PIL import Image  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("ImageNet preprocessing needs Pillow: pip install pillow.") from e
  resized = Image.fromarray(np.ascontiguousarray(image)).resize(
      (size[1], size[0]), Image.Resampling.BILINEAR)
  return np.asarray(resized)


def _check_uint8(name: str, images: Any) -> None:
  if images.dtype != np.uint8:
    raise ValueError(f"{name} must be uint8 pixels in [0, 255], got {images.dtype}.")


def _check_image_batch(name: str, images: Any, shape: tuple[int, int, int]) -> None:
  if images.ndim != 4 or tuple(images.shape[1:]) != shape:
    raise ValueError(f"{name} must be [B, {', '.join(map(str, shape))}], got shape {images.shape}.")
  _check_uint8(name, images)
