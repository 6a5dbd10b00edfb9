"""Every network of the paper, by name: `get_model(name, num_classes, **options)`.

  model = get_model("preact_resnet18", num_classes=10)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
  logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])

Every model is a Flax linen Module called as `model.apply(variables, x, train=...)`:
images are NHWC, feature rows [B, D]; the output is float32 logits [B, num_classes].
Options common to all: `dtype` (computation dtype, e.g. jnp.bfloat16; parameters are
always float32). Models with BatchNorm also take `axis_name` (average the batch
statistics over that pmap / shard_map axis) and keep running statistics in the
'batch_stats' collection. Dropout draws from the 'dropout' rng. The models in
`LATENT_MIXING_MODELS` also take `mixing=` and `mix_stage=` to mix hidden
activations (see `mixup_jax.models.cifar`). Initialisers: `mixup_jax.models.layers`.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from mixup_jax.models.cifar import (
    DenseNetBC,
    PreActResNet,
    densenet_bc,
    preact_resnet18,
    wide_resnet,
)
from mixup_jax.models.dense import MLP, gan_discriminator, gan_generator, mlp
from mixup_jax.models.imagenet import (
    ResNet,
    resnet50,
    resnet101,
    resnext101_32x4d,
    resnext101_64x4d,
)
from mixup_jax.models.layers import MIX_STAGES
from mixup_jax.models.small import CifarSmallCNN, MnistCNN, cifar_small_cnn, mnist_cnn
from mixup_jax.models.speech import LeNetSpeech, VGGSpeech, lenet_speech, vgg11_speech

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    # CIFAR (Figure 3a, Tables 2 and 5)
    "preact_resnet18": preact_resnet18,
    "wrn28_10": wide_resnet,
    "densenet_bc190": densenet_bc,
    # ImageNet (Tables 1 and 3)
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnext101_32x4d": resnext101_32x4d,
    "resnext101_64x4d": resnext101_64x4d,
    # Speech Commands (Figure 4)
    "lenet_speech": lenet_speech,
    "vgg11_speech": vgg11_speech,
    # UCI (Table 4) and GAN (Figure 5)
    "mlp": mlp,
    "gan_generator": gan_generator,
    "gan_discriminator": gan_discriminator,
    # Small CNNs for CPU-scale runs
    "mnist_cnn": mnist_cnn,
    "cifar_small_cnn": cifar_small_cnn,
}

MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)

# Models whose __call__ takes (x, train, mixing=None, mix_stage=0).
LATENT_MIXING_MODELS: frozenset[str] = frozenset(
    {"preact_resnet18", "wrn28_10", "densenet_bc190", "resnet50", "resnet101",
     "resnext101_32x4d", "resnext101_64x4d"}
)


def model_options(name: str) -> tuple[str, ...]:
  """The keyword options `get_model(name, ...)` accepts besides num_classes."""
  _check_name(name)
  params = inspect.signature(_BUILDERS[name]).parameters
  return tuple(p for p in params if p != "num_classes")


def get_model(name: str, num_classes: int, **options: Any) -> nn.Module:
  """Builds the network `name` with `num_classes` outputs.

  Args:
    name: one of MODEL_NAMES.
    num_classes: width of the logits (gan_generator: dimension of the generated
      points; gan_discriminator: must be 1).
    **options: the builder's options, see `model_options(name)`, e.g. dtype,
      axis_name, width, dropout_rate.

  Returns:
    An unbound flax.linen Module.

  Raises:
    ValueError: unknown name, unknown option, or an invalid value.
  """
  _check_name(name)
  allowed = model_options(name)
  unknown = sorted(set(options) - set(allowed))
  if unknown:
    raise ValueError(f"{name} has no option(s) {unknown}; valid options: {list(allowed)}.")
  if (
      not isinstance(num_classes, numbers.Integral)
      or isinstance(num_classes, bool)
      or num_classes < 1
  ):
    raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")
  if "dtype" in options:
    options["dtype"] = _check_dtype(options["dtype"])
  if options.get("axis_name") is not None and not isinstance(options["axis_name"], str):
    raise ValueError(f"axis_name must be a str or None, got {options['axis_name']!r}.")
  for key in ("dropout_rate", "conv_dropout_rate"):
    if key in options:
      value = options[key]
      if not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{key} must be a number in [0, 1), got {value!r}.")
  return _BUILDERS[name](int(num_classes), **options)


def _check_name(name: str) -> None:
  if name not in _BUILDERS:
    raise ValueError(f"Unknown model {name!r}; valid names: {list(MODEL_NAMES)}.")


def _check_dtype(dtype: Any) -> jnp.dtype:
  """A floating computation dtype (float32, bfloat16, float16), else ValueError."""
  try:
    resolved = jnp.dtype(dtype)
  except TypeError as e:
    raise ValueError(f"dtype must be a floating dtype such as jnp.bfloat16, got {dtype!r}.") from e
  if not jnp.issubdtype(resolved, jnp.floating):
    raise ValueError(f"dtype must be a floating dtype such as jnp.bfloat16, got {dtype!r}.")
  return resolved


__all__ = [
    "MODEL_NAMES",
    "LATENT_MIXING_MODELS",
    "MIX_STAGES",
    "get_model",
    "model_options",
    "PreActResNet",
    "DenseNetBC",
    "ResNet",
    "LeNetSpeech",
    "VGGSpeech",
    "MLP",
    "MnistCNN",
    "CifarSmallCNN",
]
