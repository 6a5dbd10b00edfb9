"""The paper's CIFAR networks: PreAct ResNet-18, WideResNet-28-10, DenseNet-BC-190.

All three take [B, H, W, 3] images (32 x 32 for CIFAR), return [B, num_classes]
float32 logits, and can mix hidden activations at a chosen depth (Table 5, "mix
labels and latent representations"):

  logits, updates = model.apply(variables, x, train=True, mixing=mixing,
                                mix_stage=k, mutable=["batch_stats"])

PreAct ResNet-18 and DenseNet-BC-190 follow the authors' code layer for layer
(facebookresearch/mixup-cifar10, `models/resnet.py` `ResNet18()` and
`models/densenet3.py` `DenseNet190()`); `tools/torch_reference.py` copies our
weights into PyTorch networks built from that topology and checks that the logits
agree. WRN-28-10 is not in the authors' repository; it follows the WRN authors' code.

Mixing positions k (`layers.MIX_STAGES`):

  k  PreAct ResNet-18             WRN-28-10                  DenseNet-BC-190
  0  the input                    the input                  the input
  1  after the stem (conv-BN-ReLU) after the stem conv       after the stem conv
  2  after stage 1                after group 1              after block 1 (before transition 1)
  3  after stage 2                after group 2              after block 2 (before transition 2)
  4  after stage 3                after group 3, before the final BN-ReLU (same for block 3)
  5  after stage 4, before the global average pool and the linear classifier (all three)

For PreAct ResNet-18 these are exactly the `lin` positions of the authors'
`forward(x, lin, lout)`: the network run from piece k on the mixed activations.
The three-stage networks use 4 for "after the last stage", so every k is a distinct
place in every network and 1..5 go from shallow to deep.

k = 0 gives bitwise the result of applying the model to apply_mixing(mixing, x)
when k is a Python int (the same computation); a traced k (drawn per step under jit)
gives it to float rounding. In PreAct ResNet-18 position 1 follows a BatchNorm and
a ReLU, so "layer 1" of Table 5 is a different function from input mixing. In
WRN-28-10 and DenseNet-BC-190 the stem is a bare bias-free convolution, a linear
map that mixing commutes with, so there k = 1 equals k = 0 up to float rounding.
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
    TORCH_DEFAULT_INIT,
    Dtype,
    Initializer,
    batch_norm,
    check_input,
    check_mixing,
    check_rate,
    mix_at,
    torch_linear,
)


class PreActBlock(nn.Module):
  """Pre-activation basic block (He et al. 2016b).

  BN-ReLU-conv3x3(stride)-BN-ReLU-[dropout]-conv3x3, plus a shortcut. When the
  shape changes the shortcut is a 1x1 projection of the pre-activated input
  relu(bn1(x)) (the mixup authors' and the WRN authors' code agree). When it does
  not, the two codes differ: the mixup authors' `PreActBlock` adds the
  pre-activated input (`preact_identity=True`), the WRN code adds x itself. The
  optional dropout sits after the ReLU between the two convolutions: the paper's
  Table 2 baseline and the WRN paper's placement (the authors' block has none).
  """

  features: int
  strides: int
  dropout_rate: float
  kernel_init: Initializer
  dtype: Dtype
  axis_name: str | None
  preact_identity: bool

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """x: [B, H, W, C] -> [B, H / strides, W / strides, features]."""
    conv = functools.partial(
        nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=self.kernel_init
    )
    norm = functools.partial(
        batch_norm, train, dtype=self.dtype, axis_name=self.axis_name
    )
    out = nn.relu(norm(name="bn1")(x))
    shortcut = out if self.preact_identity else x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = conv(
          self.features, (1, 1), strides=self.strides, padding=0, name="shortcut"
      )(out)
    out = conv(self.features, (3, 3), strides=self.strides, padding=1, name="conv1")(out)
    out = nn.relu(norm(name="bn2")(out))
    if self.dropout_rate > 0:
      out = nn.Dropout(self.dropout_rate, deterministic=not train)(out)
    out = conv(self.features, (3, 3), padding=1, name="conv2")(out)
    return out + shortcut


class PreActResNet(nn.Module):
  """A pre-activation ResNet for small images, with mixing at any depth.

  Built by `preact_resnet18` (the mixup authors' network: a conv-BN-ReLU stem, four
  stages, no final norm) and `wide_resnet` (a bare conv stem, three stages, then
  BN-ReLU); see the module docstring for the mixing positions.

  Attributes:
    stage_sizes: blocks per stage; the first stage keeps the resolution, the
      others halve it.
    stage_widths: output channels of each stage.
    stem_width: channels of the 3x3 stem convolution.
    stem_norm: BN-ReLU after the stem convolution (the mixup authors' ResNet18).
    preact_identity: identity shortcuts add the pre-activated input
      (`PreActBlock.preact_identity`).
    num_classes: width of the logits.
    final_norm: BN-ReLU after the last stage (WRN); needs three stages so that the
      mixing positions stay 0..5.
    kernel_init: initialiser of every convolution.
    zero_bias_head: zero bias in the classifier (WRN code) instead of PyTorch's.
    dropout_rate: dropout inside every block (0 = none).
    dtype: computation dtype; parameters are float32.
    axis_name: mapped axis to average BatchNorm statistics over (pmap/shard_map).
  """

  stage_sizes: Sequence[int]
  stage_widths: Sequence[int]
  stem_width: int
  num_classes: int
  final_norm: bool
  kernel_init: Initializer
  stem_norm: bool = False
  preact_identity: bool = False
  zero_bias_head: bool = False
  dropout_rate: float = 0.0
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
      x: [B, H, W, C] normalised images.
      train: batch statistics + dropout (True) or running statistics (False).
      mixing: mixes the activations at `mix_stage` when given; None mixes nothing.
      mix_stage: position in 0..5 (module docstring), int or traced int scalar.
    """
    check_input(x, "PreActResNet", (None, None, None))
    check_rate("dropout_rate", self.dropout_rate)
    check_mixing(mixing, mix_stage)
    if len(self.stage_sizes) + int(self.final_norm) != 4:
      raise ValueError(
          "PreActResNet needs 4 stages, or 3 stages with final_norm, to have the "
          f"mixing positions 0..5; got {len(self.stage_sizes)} stages and "
          f"final_norm={self.final_norm}."
      )
    mix = functools.partial(mix_at, mixing=mixing, mix_stage=mix_stage)
    h = mix(x, 0)
    h = nn.Conv(
        self.stem_width, (3, 3), padding=1, use_bias=False, dtype=self.dtype,
        kernel_init=self.kernel_init, name="stem",
    )(h)
    if self.stem_norm:
      h = batch_norm(train, dtype=self.dtype, axis_name=self.axis_name, name="stem_bn")(h)
      h = nn.relu(h)
    for i, (num_blocks, width) in enumerate(zip(self.stage_sizes, self.stage_widths)):
      h = mix(h, i + 1)
      for j in range(num_blocks):
        h = PreActBlock(
            features=width,
            strides=2 if i > 0 and j == 0 else 1,
            dropout_rate=self.dropout_rate,
            kernel_init=self.kernel_init,
            dtype=self.dtype,
            axis_name=self.axis_name,
            preact_identity=self.preact_identity,
            name=f"stage{i + 1}_block{j + 1}",
        )(h, train)
    if self.final_norm:
      h = mix(h, 4)
      h = batch_norm(train, dtype=self.dtype, axis_name=self.axis_name, name="final_bn")(h)
      h = nn.relu(h)
    h = mix(h, 5)
    h = jnp.mean(h, axis=(1, 2))
    logits = torch_linear(
        h, self.num_classes, dtype=self.dtype, zero_bias=self.zero_bias_head,
        name="classifier",
    )
    return logits.astype(jnp.float32)


def preact_resnet18(
    num_classes: int,
    *,
    width: int = 64,
    blocks: int = 2,
    dropout_rate: float = 0.0,
    dtype: Dtype = jnp.float32,
    axis_name: str | None = None,
) -> PreActResNet:
  """PreAct ResNet-18 of the paper: the authors' `ResNet(PreActBlock, [2, 2, 2, 2])`.

  facebookresearch/mixup-cifar10 `models/resnet.py`, layer for layer: a 3x3 stem
  conv with `width` channels followed by BN-ReLU; PreAct blocks [2, 2, 2, 2] of
  widths width * (1, 2, 4, 8) with strides 1/2/2/2, whose identity shortcut adds
  the pre-activated input relu(bn1(x)) and whose projection shortcut is a 1x1 conv
  of it; no BN-ReLU after the last stage; global average pool (the authors'
  4 x 4 average pool on 32 x 32 inputs), linear. PyTorch default initialisation
  everywhere, as that code sets none. 11,171,274 parameters for 10 classes at
  width 64. (kuangliu/pytorch-cifar's PreActResNet18, with a bare conv stem and raw
  identity shortcuts, has 11,171,146 and is not the paper's network.)

  Args:
    num_classes: number of classes.
    width: stem / first-stage width; 64 is the paper's network, 16 or 8 give a
      network that trains on a CPU in minutes.
    blocks: PreAct blocks per stage; 2 is ResNet-18, 1 a ten-layer variant for
      quick CPU runs.
    dropout_rate: Table 2's dropout after the middle ReLU of every block.
    dtype: computation dtype (e.g. jnp.bfloat16); parameters are float32.
    axis_name: BatchNorm statistics averaged over this mapped axis when set.
  """
  if not isinstance(width, int) or width < 1:
    raise ValueError(f"width must be a positive int (64 = paper), got {width!r}.")
  if not isinstance(blocks, int) or blocks < 1:
    raise ValueError(f"blocks must be a positive int (2 = ResNet-18), got {blocks!r}.")
  return PreActResNet(
      stage_sizes=(blocks,) * 4,
      stage_widths=tuple(width * m for m in (1, 2, 4, 8)),
      stem_width=width,
      num_classes=num_classes,
      final_norm=False,
      kernel_init=TORCH_DEFAULT_INIT,
      stem_norm=True,
      preact_identity=True,
      dropout_rate=dropout_rate,
      dtype=dtype,
      axis_name=axis_name,
  )


def wide_resnet(
    num_classes: int,
    *,
    depth: int = 28,
    widen_factor: int = 10,
    dropout_rate: float = 0.0,
    dtype: Dtype = jnp.float32,
    axis_name: str | None = None,
) -> PreActResNet:
  """WideResNet-depth-k (Zagoruyko & Komodakis 2016), WRN-28-10 by default.

  3x3 stem conv with 16 channels, three groups of (depth - 4) / 6 PreAct blocks of
  widths 16k, 32k, 64k with strides 1/2/2, 1x1 projection shortcuts, BN-ReLU,
  global average pool, linear. He-normal (fan_out) convolutions and a zero-bias
  classifier as in the authors' code. 36,479,194 parameters for WRN-28-10 with 10
  classes.

  Args:
    num_classes: number of classes.
    depth: 6n + 4 (28 gives 4 blocks per group).
    widen_factor: k; 1 with depth 10 is a tiny network for tests.
    dropout_rate: dropout between the two convolutions of every block (the WRN
      paper uses 0.3; the mixup paper none).
    dtype: computation dtype; parameters are float32.
    axis_name: BatchNorm statistics averaged over this mapped axis when set.
  """
  if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
    raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth!r}.")
  if not isinstance(widen_factor, int) or widen_factor < 1:
    raise ValueError(f"widen_factor must be a positive int, got {widen_factor!r}.")
  return PreActResNet(
      stage_sizes=((depth - 4) // 6,) * 3,
      stage_widths=tuple(widen_factor * w for w in (16, 32, 64)),
      stem_width=16,
      num_classes=num_classes,
      final_norm=True,
      kernel_init=HE_NORMAL_FAN_OUT,
      zero_bias_head=True,
      dropout_rate=dropout_rate,
      dtype=dtype,
      axis_name=axis_name,
  )


class _DenseLayer(nn.Module):
  """DenseNet-BC bottleneck: BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k), concatenated."""

  growth_rate: int
  dtype: Dtype
  axis_name: str | None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """x: [B, H, W, C] -> [B, H, W, C + growth_rate] (x first, then the new maps)."""
    conv = functools.partial(
        nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=HE_NORMAL_FAN_OUT
    )
    norm = functools.partial(batch_norm, train, dtype=self.dtype, axis_name=self.axis_name)
    out = conv(4 * self.growth_rate, (1, 1), name="conv1")(nn.relu(norm(name="bn1")(x)))
    out = conv(self.growth_rate, (3, 3), padding=1, name="conv2")(
        nn.relu(norm(name="bn2")(out))
    )
    return jnp.concatenate([x, out], axis=-1)


class DenseNetBC(nn.Module):
  """DenseNet-BC for small images (Huang et al. 2017), with mixing at any depth.

  3x3 stem conv with 2k channels; three dense blocks of (depth - 4) / 6 bottleneck
  layers of growth rate k; between them transitions BN-ReLU-conv1x1 that keep
  floor(C * compression) channels, then 2x2 average pooling; BN-ReLU, global average
  pool, linear. He-normal (fan_out) convolutions, PyTorch's default classifier
  weights and a zero classifier bias. This is the mixup authors' `DenseNet190()`
  (facebookresearch/mixup-cifar10 `models/densenet3.py`, itself the DenseNet
  authors' topology) layer for layer. No dropout (the authors use none with data
  augmentation).

  Attributes:
    num_classes: width of the logits.
    depth: 6n + 4 (190 gives 31 layers per block).
    growth_rate: k (40 in the paper).
    compression: channel fraction kept by a transition (0.5 for "C").
    remat: recompute each bottleneck layer in the backward pass instead of storing
      its activations; the concatenations make the stored activations grow with
      the square of the block length, so this saves most of the memory.
    dtype: computation dtype; parameters are float32.
    axis_name: mapped axis to average BatchNorm statistics over.
  """

  num_classes: int
  depth: int = 190
  growth_rate: int = 40
  compression: float = 0.5
  remat: bool = False
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
    """x: [B, H, W, C] images -> [B, num_classes] float32 logits (see PreActResNet)."""
    check_input(x, "DenseNetBC", (None, None, None))
    check_mixing(mixing, mix_stage)
    if not isinstance(self.depth, int) or self.depth < 10 or (self.depth - 4) % 6:
      raise ValueError(f"depth must be 6n + 4 with n >= 1, got {self.depth!r}.")
    if not 0.0 < self.compression <= 1.0:
      raise ValueError(f"compression must lie in (0, 1], got {self.compression!r}.")
    layers_per_block = (self.depth - 4) // 6
    layer_cls = nn.remat(_DenseLayer, static_argnums=(2,)) if self.remat else _DenseLayer
    norm = functools.partial(batch_norm, train, dtype=self.dtype, axis_name=self.axis_name)
    mix = functools.partial(mix_at, mixing=mixing, mix_stage=mix_stage)

    h = mix(x, 0)
    h = nn.Conv(
        2 * self.growth_rate, (3, 3), padding=1, use_bias=False, dtype=self.dtype,
        kernel_init=HE_NORMAL_FAN_OUT, name="stem",
    )(h)
    h = mix(h, 1)
    for i in range(3):
      if i > 0:
        h = mix(h, i + 1)
        channels = int(h.shape[-1] * self.compression)
        h = nn.relu(norm(name=f"transition{i}_bn")(h))
        h = nn.Conv(
            channels, (1, 1), use_bias=False, dtype=self.dtype,
            kernel_init=HE_NORMAL_FAN_OUT, name=f"transition{i}_conv",
        )(h)
        h = nn.avg_pool(h, (2, 2), strides=(2, 2))
      for j in range(layers_per_block):
        h = layer_cls(
            self.growth_rate, self.dtype, self.axis_name, name=f"block{i + 1}_layer{j + 1}"
        )(h, train)
    h = mix(h, 4)
    h = nn.relu(norm(name="final_bn")(h))
    h = mix(h, 5)
    h = jnp.mean(h, axis=(1, 2))
    logits = torch_linear(h, self.num_classes, dtype=self.dtype, zero_bias=True, name="classifier")
    return logits.astype(jnp.float32)


def densenet_bc(
    num_classes: int,
    *,
    depth: int = 190,
    growth_rate: int = 40,
    remat: bool = False,
    dtype: Dtype = jnp.float32,
    axis_name: str | None = None,
) -> DenseNetBC:
  """DenseNet-BC-190 with growth rate 40 by default (25,624,430 params, 10 classes).

  Args:
    num_classes: number of classes.
    depth: 6n + 4; e.g. depth 10 with growth_rate 4 for tests.
    growth_rate: k.
    remat: trade compute for memory in the backward pass (DenseNetBC.remat).
    dtype: computation dtype; parameters are float32.
    axis_name: BatchNorm statistics averaged over this mapped axis when set.
  """
  if not isinstance(growth_rate, int) or growth_rate < 1:
    raise ValueError(f"growth_rate must be a positive int, got {growth_rate!r}.")
  return DenseNetBC(
      num_classes=num_classes, depth=depth, growth_rate=growth_rate, remat=remat,
      dtype=dtype, axis_name=axis_name,
  )
