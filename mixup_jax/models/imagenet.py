"""ImageNet ResNets and ResNeXts with torchvision's topology (Table 1 of the paper).

[B, 224, 224, 3] images -> [B, num_classes] float32 logits. torchvision's "v1.5"
bottleneck (the stride sits on the 3x3 convolution), no convolution biases, a 1x1
conv + BN projection where the shape changes. Parameter counts for 1000 classes equal
torchvision's documented ones: ResNet-50 25,557,032, ResNet-101 44,549,160,
ResNeXt-101 64x4d 83,455,272, and ResNeXt-101 32x4d 44,177,704 (the same topology
with 32 groups of width 4).

Initialisation as torchvision: He-normal (fan_out) convolutions, BatchNorm 1/0,
PyTorch's default for the final linear layer. `zero_init_residual=True` starts the
last BatchNorm scale of every block at zero (Goyal et al. 2017, whose large-batch
recipe the paper follows; torchvision leaves it off by default, and so do we).

Latent mixing positions, as for the CIFAR ResNets: 0 = input, 1 = after the stem
(conv, BN, ReLU, max-pool), 2-4 = before stages 2-4, 5 = before the pool + linear.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mixup_jax.mixing import Mixing
from mixup_jax.models.layers import (
    HE_NORMAL_FAN_OUT,
    Dtype,
    batch_norm,
    check_input,
    check_mixing,
    mix_at,
    torch_linear,
)

_EXPANSION = 4


class Bottleneck(nn.Module):
  """conv1x1-BN-ReLU, conv3x3(stride, groups)-BN-ReLU, conv1x1-BN, + shortcut, ReLU.

  Attributes:
    planes: the block's output has planes * 4 channels.
    strides: stride of the 3x3 convolution and of the projection.
    groups: groups of the 3x3 convolution (ResNeXt cardinality; 1 for ResNet).
    width_per_group: channels per group at planes = 64 (64 for ResNet, 4 for
      ResNeXt "x4d"); the inner width is int(planes * width_per_group / 64) * groups.
    zero_init_residual: start the last BatchNorm scale at 0.
  """

  planes: int
  strides: int
  groups: int
  width_per_group: int
  zero_init_residual: bool
  dtype: Dtype
  axis_name: str | None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """x: [B, H, W, C] -> [B, H / strides, W / strides, planes * 4]."""
    conv = functools.partial(
        nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=HE_NORMAL_FAN_OUT
    )
    norm = functools.partial(batch_norm, train, dtype=self.dtype, axis_name=self.axis_name)
    width = int(self.planes * (self.width_per_group / 64.0)) * self.groups
    out = nn.relu(norm(name="bn1")(conv(width, (1, 1), name="conv1")(x)))
    out = conv(
        width, (3, 3), strides=self.strides, padding=1,
        feature_group_count=self.groups, name="conv2",
    )(out)
    out = nn.relu(norm(name="bn2")(out))
    out = conv(self.planes * _EXPANSION, (1, 1), name="conv3")(out)
    last_scale = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    out = norm(scale_init=last_scale, name="bn3")(out)
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.planes * _EXPANSION:
      shortcut = conv(
          self.planes * _EXPANSION, (1, 1), strides=self.strides, name="downsample_conv"
      )(x)
      shortcut = norm(name="downsample_bn")(shortcut)
    return nn.relu(out + shortcut)


class ResNet(nn.Module):
  """torchvision ResNet / ResNeXt with bottleneck blocks.

  Attributes:
    stage_sizes: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
    num_classes: width of the logits.
    groups: ResNeXt cardinality (1 = ResNet).
    width_per_group: see Bottleneck.
    width: planes of the first stage (64); stages use width * (1, 2, 4, 8) and the
      stem has `width` channels. Smaller values give reduced networks for tests.
    zero_init_residual: see Bottleneck.
    dtype: computation dtype; parameters are float32.
    axis_name: mapped axis to average BatchNorm statistics over.
  """

  stage_sizes: Sequence[int]
  num_classes: int
  groups: int = 1
  width_per_group: int = 64
  width: int = 64
  zero_init_residual: bool = False
  dtype: Dtype = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(
      self,
      x: jax.Array,
      train: bool,
      mixing: Mixing | None = None,
      mix_stage: int | jax.Array = 0,
  ) -> jax.Array:
    """x: [B, H, W, C] images -> [B, num_classes] float32 logits.

    Args:
      x: [B, H, W, C] normalised images (224 x 224 for ImageNet).
      train: batch statistics (True) or running statistics (False).
      mixing: mixes the activations at `mix_stage` when given; None mixes nothing.
      mix_stage: position in 0..5 (module docstring), int or traced int scalar.
    """
    check_input(x, "ResNet", (None, None, None))
    check_mixing(mixing, mix_stage)
    if len(self.stage_sizes) != 4:
      raise ValueError(f"ResNet needs 4 stages, got stage_sizes={self.stage_sizes}.")
    mix = functools.partial(mix_at, mixing=mixing, mix_stage=mix_stage)
    h = mix(x, 0)
    h = nn.Conv(
        self.width, (7, 7), strides=2, padding=3, use_bias=False, dtype=self.dtype,
        kernel_init=HE_NORMAL_FAN_OUT, name="stem_conv",
    )(h)
    h = batch_norm(train, dtype=self.dtype, axis_name=self.axis_name, name="stem_bn")(h)
    h = nn.max_pool(nn.relu(h), (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, num_blocks in enumerate(self.stage_sizes):
      h = mix(h, i + 1)
      for j in range(num_blocks):
        h = Bottleneck(
            planes=self.width * 2**i,
            strides=2 if i > 0 and j == 0 else 1,
            groups=self.groups,
            width_per_group=self.width_per_group,
            zero_init_residual=self.zero_init_residual,
            dtype=self.dtype,
            axis_name=self.axis_name,
            name=f"stage{i + 1}_block{j + 1}",
        )(h, train)
    h = mix(h, 5)
    h = jnp.mean(h, axis=(1, 2))
    return torch_linear(h, self.num_classes, dtype=self.dtype, name="fc").astype(jnp.float32)


def _resnet(name: str, stage_sizes, groups: int, width_per_group: int, params: str):
  """The builder `name(num_classes, *, width, zero_init_residual, dtype, axis_name)`."""

  def build(
      num_classes: int,
      *,
      width: int = 64,
      zero_init_residual: bool = False,
      dtype: Dtype = jnp.float32,
      axis_name: str | None = None,
  ) -> ResNet:
    if not isinstance(width, int) or width < 1:
      raise ValueError(f"width must be a positive int, got {width!r}.")
    if int(width * width_per_group / 64.0) < 1:
      raise ValueError(
          f"width={width} leaves less than one channel per group with "
          f"width_per_group={width_per_group}; use width >= {-(-64 // width_per_group)}."
      )
    return ResNet(
        stage_sizes=stage_sizes, num_classes=num_classes, groups=groups,
        width_per_group=width_per_group, width=width,
        zero_init_residual=zero_init_residual, dtype=dtype, axis_name=axis_name,
    )

  build.__name__ = build.__qualname__ = name
  build.__doc__ = (
      f"{name}: blocks {stage_sizes}, {groups} group(s) of width {width_per_group} "
      f"at 64 planes; {params} parameters for 1000 classes at width 64.\n\n"
      "Options: width (stage-1 planes, 64), zero_init_residual (False), dtype, "
      "axis_name; see `ResNet`."
  )
  return build


resnet50 = _resnet("resnet50", (3, 4, 6, 3), 1, 64, "25,557,032")
resnet101 = _resnet("resnet101", (3, 4, 23, 3), 1, 64, "44,549,160")
resnext101_32x4d = _resnet("resnext101_32x4d", (3, 4, 23, 3), 32, 4, "44,177,704")
resnext101_64x4d = _resnet("resnext101_64x4d", (3, 4, 23, 3), 64, 4, "83,455,272")
