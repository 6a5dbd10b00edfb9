"""Small CNNs for CPU-scale runs on MNIST and CIFAR-10 (not networks of the paper).

They exist so that mixup can be tried, tested and demonstrated on a laptop in
minutes on real data. For a scaled-down version of the paper's CIFAR network use
`preact_resnet18` with `width=16` (or 8).

Initialisation: He-normal (fan_out) convolutions, the usual choice for ReLU
networks (torchvision's), and PyTorch's default for dense layers.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from mixup_jax.models.layers import (
    HE_NORMAL_FAN_OUT,
    Dtype,
    batch_norm,
    check_input,
    torch_linear,
)


class MnistCNN(nn.Module):
  """conv3x3(w)-ReLU-pool, conv3x3(2w)-ReLU-pool, dense 128-ReLU, dense.

  [B, 28, 28, 1] -> [B, num_classes] float32 logits; 421,642 parameters at w = 32
  with 10 classes. No BatchNorm or dropout, so train and eval are the same function.
  """

  num_classes: int
  width: int = 32
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, 28, 28, 1] -> [B, num_classes]; `train` kept for a uniform API."""
    del train
    check_input(x, "mnist_cnn", (28, 28, 1))
    conv = functools.partial(
        nn.Conv, kernel_size=(3, 3), padding=1, dtype=self.dtype,
        kernel_init=HE_NORMAL_FAN_OUT,
    )
    h = nn.max_pool(nn.relu(conv(self.width, name="conv1")(x)), (2, 2), strides=(2, 2))
    h = nn.max_pool(nn.relu(conv(2 * self.width, name="conv2")(h)), (2, 2), strides=(2, 2))
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(torch_linear(h, 128, dtype=self.dtype, name="fc1"))
    return torch_linear(h, self.num_classes, dtype=self.dtype, name="fc2").astype(jnp.float32)


class CifarSmallCNN(nn.Module):
  """A small VGG-style net: [w, w, M, 2w, 2w, M, 4w, M] conv3x3-BN-ReLU, pool, dense.

  [B, 32, 32, 3] -> [B, num_classes] float32 logits; 141,034 parameters at w = 32
  with 10 classes.
  """

  num_classes: int
  width: int = 32
  dtype: Dtype = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """x: [B, 32, 32, 3] -> [B, num_classes] float32 logits."""
    check_input(x, "cifar_small_cnn", (32, 32, 3))
    w = self.width
    h = x
    for i, spec in enumerate((w, w, "M", 2 * w, 2 * w, "M", 4 * w, "M")):
      if spec == "M":
        h = nn.max_pool(h, (2, 2), strides=(2, 2))
        continue
      h = nn.Conv(
          spec, (3, 3), padding=1, use_bias=False, dtype=self.dtype,
          kernel_init=HE_NORMAL_FAN_OUT, name=f"conv{i}",
      )(h)
      h = batch_norm(train, dtype=self.dtype, axis_name=self.axis_name, name=f"bn{i}")(h)
      h = nn.relu(h)
    h = jnp.mean(h, axis=(1, 2))
    return torch_linear(h, self.num_classes, dtype=self.dtype, name="fc").astype(jnp.float32)


def _check_width(width) -> None:
  if not isinstance(width, int) or width < 1:
    raise ValueError(f"width must be a positive int, got {width!r}.")


def mnist_cnn(num_classes: int, *, width: int = 32, dtype: Dtype = jnp.float32) -> MnistCNN:
  """A small MNIST CNN (see MnistCNN)."""
  _check_width(width)
  return MnistCNN(num_classes=num_classes, width=width, dtype=dtype)


def cifar_small_cnn(
    num_classes: int,
    *,
    width: int = 32,
    dtype: Dtype = jnp.float32,
    axis_name: str | None = None,
) -> CifarSmallCNN:
  """A small CIFAR CNN with BatchNorm (see CifarSmallCNN)."""
  _check_width(width)
  return CifarSmallCNN(num_classes=num_classes, width=width, dtype=dtype, axis_name=axis_name)
