"""The paper's Speech Commands networks, as in adiyoss/GCommandsPytorch.

Input: [B, 161, 101, 1] log spectrograms (161 frequency bins x 101 frames; the
paper writes 160 x 101). Output: [B, num_classes] float32 logits (30 words).

The first dense layer's fan-in is fixed by the input size, so the input shape is
checked: LeNet's 16280 = 20 channels x 37 x 22 and VGG-11's 7680 = 512 x 5 x 3.
Features are flattened in (H, W, C) order; the reference flattens (C, H, W), which
permutes the rows of that weight matrix and nothing else.

Initialisation: PyTorch's defaults (the reference code sets none).
"""

from __future__ import annotations

import functools
import flax.linen as nn
import jax
import jax.numpy as jnp

from mixup_jax.models.layers import (
    TORCH_DEFAULT_INIT,
    Dtype,
    batch_norm,
    check_input,
    check_rate,
    torch_bias_init,
    torch_linear,
)

SPECTROGRAM_SHAPE = (161, 101, 1)

# VGG-11's convolution widths ("M" = 2x2 max-pool), as in the reference config.
_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def _torch_conv(features: int, kernel: int, fan_in: int, padding, dtype, name) -> nn.Conv:
  """A conv with bias and PyTorch's default initialisation of both."""
  return nn.Conv(
      features, (kernel, kernel), padding=padding, dtype=dtype,
      kernel_init=TORCH_DEFAULT_INIT, bias_init=torch_bias_init(fan_in), name=name,
  )


def _max_pool(h: jax.Array) -> jax.Array:
  """2x2 max-pool with stride 2 that drops an odd last row/column (PyTorch floor)."""
  return nn.max_pool(h, (2, 2), strides=(2, 2))


class LeNetSpeech(nn.Module):
  """LeNet for spectrograms: 16,321,570 parameters for 30 classes.

  conv5x5(1->20) [161x101 -> 157x97], max-pool 2 [78x48], ReLU;
  conv5x5(20->20) [74x44], channel dropout, max-pool 2 [37x22], ReLU;
  dense 20 * 37 * 22 = 16280 -> 1000, ReLU, dropout; dense 1000 -> num_classes.
  Parameters: 520 + 10,020 + 16,281,000 + 30,030 = 16,321,570.

  Attributes:
    num_classes: number of words (30).
    conv_dropout_rate: channel (2-D) dropout after the second conv (PyTorch
      Dropout2d, 0.5 in the reference).
    dropout_rate: dropout after the first dense layer (0.5 in the reference).
    dtype: computation dtype; parameters are float32.
  """

  num_classes: int
  conv_dropout_rate: float = 0.5
  dropout_rate: float = 0.5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """x: [B, 161, 101, 1] -> [B, num_classes] float32 logits."""
    check_input(x, "lenet_speech", SPECTROGRAM_SHAPE)
    check_rate("conv_dropout_rate", self.conv_dropout_rate)
    check_rate("dropout_rate", self.dropout_rate)
    h = _torch_conv(20, 5, 1 * 25, "VALID", self.dtype, "conv1")(x)
    h = nn.relu(_max_pool(h))
    h = _torch_conv(20, 5, 20 * 25, "VALID", self.dtype, "conv2")(h)
    if self.conv_dropout_rate > 0:
      # broadcast over H and W: whole channels are dropped.
      h = nn.Dropout(self.conv_dropout_rate, broadcast_dims=(1, 2), deterministic=not train)(h)
    h = nn.relu(_max_pool(h))
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(torch_linear(h, 1000, dtype=self.dtype, name="fc1"))
    if self.dropout_rate > 0:
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return torch_linear(h, self.num_classes, dtype=self.dtype, name="fc2").astype(jnp.float32)


class VGGSpeech(nn.Module):
  """VGG-11 with BatchNorm for spectrograms: 13,172,894 parameters for 30 classes.

  conv3x3 (padding 1, with bias) + BN + ReLU with widths
  [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M] (M = 2x2 max-pool:
  161x101 -> 80x50 -> 40x25 -> 20x12 -> 10x6 -> 5x3), then dense 7680 -> 512 and
  512 -> num_classes. As in the reference code there is no nonlinearity between the
  two dense layers.

  Attributes:
    num_classes: number of words (30).
    width: channels of the first conv (64); the others scale with it. Smaller
      values give reduced networks for tests.
    dtype: computation dtype; parameters are float32.
    axis_name: mapped axis to average BatchNorm statistics over.
  """

  num_classes: int
  width: int = 64
  dtype: Dtype = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """x: [B, 161, 101, 1] -> [B, num_classes] float32 logits."""
    check_input(x, "vgg11_speech", SPECTROGRAM_SHAPE)
    norm = functools.partial(batch_norm, train, dtype=self.dtype, axis_name=self.axis_name)
    h = x
    for i, spec in enumerate(_VGG11):
      if spec == "M":
        h = _max_pool(h)
        continue
      features = spec * self.width // 64
      h = _torch_conv(features, 3, h.shape[-1] * 9, 1, self.dtype, f"conv{i}")(h)
      h = nn.relu(norm(name=f"bn{i}")(h))
    h = h.reshape(h.shape[0], -1)
    h = torch_linear(h, 512, dtype=self.dtype, name="fc1")
    return torch_linear(h, self.num_classes, dtype=self.dtype, name="fc2").astype(jnp.float32)


def lenet_speech(
    num_classes: int,
    *,
    conv_dropout_rate: float = 0.5,
    dropout_rate: float = 0.5,
    dtype: Dtype = jnp.float32,
) -> LeNetSpeech:
  """LeNet of the paper's Speech Commands experiment (see LeNetSpeech)."""
  return LeNetSpeech(
      num_classes=num_classes, conv_dropout_rate=conv_dropout_rate,
      dropout_rate=dropout_rate, dtype=dtype,
  )


def vgg11_speech(
    num_classes: int,
    *,
    width: int = 64,
    dtype: Dtype = jnp.float32,
    axis_name: str | None = None,
) -> VGGSpeech:
  """VGG-11 of the paper's Speech Commands experiment (see VGGSpeech)."""
  if not isinstance(width, int) or width < 1:
    raise ValueError(f"width must be a positive int (64 = paper), got {width!r}.")
  return VGGSpeech(num_classes=num_classes, width=width, dtype=dtype, axis_name=axis_name)
