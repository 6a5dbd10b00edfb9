"""Tests of mixup_jax.models: names, shapes, parameter counts, BatchNorm, dropout, dtypes.

Full-size networks are only traced (`jax.eval_shape`). Everything that runs uses
reduced widths and depths and batches of 2-4, and gets its variables filled on the
host (`_variables`) so that each test compiles only the computation it checks; the
models' own initialisers are tested separately. XLA compilation dominates the
runtime on CPU, so every check of one network shares one jitted function (`_jit`).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixup_jax import models
from mixup_jax.models import get_model
from mixup_jax.models import layers
from mixup_jax.models.imagenet import Bottleneck

# The tests check results, not speed, and XLA's CPU compilation dominates their
# runtime: compiling without LLVM optimisations halves it and changes no semantics.
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

CIFAR = (2, 32, 32, 3)
IMAGENET = (2, 224, 224, 3)
SPEECH = (2, 161, 101, 1)
MNIST = (2, 28, 28, 1)

# Full-size networks: (num_classes, input shape). Traced, never run.
_FULL_SIZE = {
    "preact_resnet18": (10, CIFAR),
    "wrn28_10": (10, CIFAR),
    "densenet_bc190": (10, CIFAR),
    "resnet50": (1000, IMAGENET),
    "resnet101": (1000, IMAGENET),
    "resnext101_32x4d": (1000, IMAGENET),
    "resnext101_64x4d": (1000, IMAGENET),
    "lenet_speech": (30, SPEECH),
    "vgg11_speech": (30, SPEECH),
    "mlp": (3, (2, 4)),
    "gan_generator": (2, (2, 2)),
    "gan_discriminator": (1, (2, 2)),
    "mnist_cnn": (10, MNIST),
    "cifar_small_cnn": (10, CIFAR),
}

# Reduced networks that run: (options, input shape). Residual networks get one
# block per stage (ImageNet ones in `_reduced`); the block code is the same as at
# full depth.
_REDUCED = {
    "preact_resnet18": (dict(width=4, blocks=1), CIFAR),
    "wrn28_10": (dict(depth=10, widen_factor=1), CIFAR),
    "densenet_bc190": (dict(depth=10, growth_rate=4), CIFAR),
    "resnet50": (dict(width=8), CIFAR),
    "resnet101": (dict(width=8), CIFAR),
    "resnext101_32x4d": (dict(width=16), CIFAR),
    "resnext101_64x4d": (dict(width=16), CIFAR),
    "lenet_speech": (dict(), SPEECH),
    "vgg11_speech": (dict(width=4), SPEECH),
    "mlp": (dict(), (4, 4)),
    "gan_generator": (dict(hidden_sizes=(16, 16, 16)), (4, 2)),
    "gan_discriminator": (dict(hidden_sizes=(16, 16, 16)), (4, 2)),
    "mnist_cnn": (dict(width=4), MNIST),
    "cifar_small_cnn": (dict(width=4), CIFAR),
}

# The networks that run. The four ImageNet names share one Bottleneck/ResNet code
# path that differs only in block counts and the group count of the 3x3 conv; with
# one block per stage they run as resnext101_32x4d (groups=32; groups=1 is the same
# call). Every name is traced at full size, and checked for bf16 at reduced size.
_RUN = [
    "preact_resnet18", "wrn28_10", "densenet_bc190", "resnext101_32x4d",
    "lenet_speech", "vgg11_speech", "mlp", "gan_generator", "gan_discriminator",
    "mnist_cnn", "cifar_small_cnn",
]
_NO_BATCH_NORM = {"lenet_speech", "mlp", "gan_generator", "gan_discriminator", "mnist_cnn"}


def _num_classes(name: str) -> int:
  return _FULL_SIZE[name][0] if name.startswith("gan") else 5


def _reduced(name: str, **extra) -> tuple[nn.Module, tuple[int, ...]]:
  """A small variant of `name` (with _num_classes(name) outputs) and its input shape."""
  options, shape = _REDUCED[name]
  model = get_model(name, _num_classes(name), **options, **extra)
  if isinstance(model, models.ResNet):
    model = model.clone(stage_sizes=(1, 1, 1, 1))
  return model, shape


@functools.lru_cache(maxsize=None)
def _eval_shape_init(model: nn.Module, shape, dtype=jnp.float32):
  """The variables' shapes and dtypes, traced without computing anything."""
  x = jax.ShapeDtypeStruct(shape, dtype)
  return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)


def _variables(model: nn.Module, shape, seed: int = 0):
  """Variables of `model` filled on the host, so no init has to be compiled.

  Kernels ~ N(0, 1 / fan_in); biases, BatchNorm scales and running statistics get
  random but plausible values, so that eval mode is not the identity.
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == "kernel":
      value = rng.normal(0.0, np.sqrt(1.0 / np.prod(leaf.shape[:-1])), leaf.shape)
    elif name in ("bias", "mean"):
      value = rng.normal(0.0, 0.1, leaf.shape)
    elif name == "scale":
      value = rng.uniform(0.5, 1.5, leaf.shape)
    elif name == "var":
      value = rng.uniform(0.5, 2.0, leaf.shape)
    else:
      raise AssertionError(f"unexpected variable {jax.tree_util.keystr(path)}")
    return jnp.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, _eval_shape_init(model, shape))


def _count(params) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def _inputs(shape, seed=1) -> jax.Array:
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _state(variables):
  return {k: v for k, v in variables.items() if k != "params"}


# ------------------------------------------------------------------------------
# Names and options.
# ------------------------------------------------------------------------------


def test_model_names_cover_the_paper():
  assert set(models.MODEL_NAMES) == set(_FULL_SIZE) == set(_REDUCED)
  assert models.LATENT_MIXING_MODELS <= set(models.MODEL_NAMES)
  assert models.MIX_STAGES == (0, 1, 2, 3, 4, 5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: get_model("resnet18", 10), "valid names: .*preact_resnet18"),
        (lambda: get_model("preact_resnet18", 10, widht=8), "valid options: .*width"),
        (lambda: get_model("preact_resnet18", 0), "num_classes"),
        (lambda: get_model("preact_resnet18", 10.0), "num_classes"),
        (lambda: get_model("preact_resnet18", 10, dtype=jnp.int32), "floating dtype"),
        (lambda: get_model("preact_resnet18", 10, dtype="float33"), "floating dtype"),
        (lambda: get_model("preact_resnet18", 10, dropout_rate=1.0), r"\[0, 1\)"),
        (lambda: get_model("preact_resnet18", 10, axis_name=0), "axis_name"),
        (lambda: get_model("wrn28_10", 10, depth=27), "6n \\+ 4"),
        (lambda: get_model("densenet_bc190", 10, growth_rate=0), "growth_rate"),
        (lambda: get_model("resnext101_32x4d", 10, width=8), "width >= 16"),
        (lambda: get_model("gan_discriminator", 2), "num_classes=1"),
        (lambda: get_model("mlp", 3, hidden_sizes=(128, 0)), "hidden_sizes"),
    ],
)
def test_bad_options_raise_value_error(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_model_options_lists_the_builder_keywords():
  assert models.model_options("preact_resnet18") == (
      "width", "blocks", "dropout_rate", "dtype", "axis_name",
  )
  assert "zero_init_residual" in models.model_options("resnext101_64x4d")
  assert get_model("preact_resnet18", 10, dtype="bfloat16").dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "name, shape, match",
    [
        ("lenet_speech", (2, 160, 101, 1), r"\[B, 161, 101, 1\]"),
        ("vgg11_speech", (2, 101, 161, 1), r"\[B, 161, 101, 1\]"),
        ("mnist_cnn", (2, 28, 28), r"\[B, 28, 28, 1\]"),
        ("preact_resnet18", (32, 32, 3), r"\[B, \*, \*, \*\]"),
        ("mlp", (2, 4, 1), r"\[B, \*\]"),
    ],
)
def test_wrong_input_shape_raises_at_trace_time(name, shape, match):
  model = get_model(name, 3 if name != "lenet_speech" else 30)
  with pytest.raises(ValueError, match=match):
    _eval_shape_init(model, shape)


def test_integer_input_is_rejected_not_cast():
  with pytest.raises(ValueError, match="floating input"):
    _eval_shape_init(get_model("mnist_cnn", 10), MNIST, jnp.uint8)


# ------------------------------------------------------------------------------
# Full-size output shapes and parameter counts (traced only).
# ------------------------------------------------------------------------------

# Reference counts, trainable parameters only (PyTorch's
# sum(p.numel() for p in model.parameters()): BatchNorm scale and bias count,
# running statistics do not), with where each number comes from.
_REFERENCE_COUNTS = {
    # The authors' ResNet18() (facebookresearch/mixup-cifar10 models/resnet.py):
    # derived in _preact18_count and counted in PyTorch by tools/torch_reference.py.
    ("preact_resnet18", 10): 11_171_274,
    ("preact_resnet18", 100): 11_217_444,
    # osmr/imgclsmob (pytorchcv) wrn28_10_cifar10 / _cifar100, the WRN authors'
    # topology; a Keras summary of the same net lists 17,952 non-trainable values
    # (the running statistics of 8,976 BatchNorm channels).
    ("wrn28_10", 10): 36_479_194,
    ("wrn28_10", 100): 36_536_884,
    # osmr/imgclsmob densenet190_k40_bc_cifar10 / _cifar100; Huang et al. (2017)
    # Table 2 rounds it to 25.6M. Derived in _densenet_bc_count.
    ("densenet_bc190", 10): 25_624_430,
    ("densenet_bc190", 100): 25_821_620,
    # torchvision's documented num_params (ResNet50_Weights.IMAGENET1K_V1, ...).
    ("resnet50", 1000): 25_557_032,
    ("resnet101", 1000): 44_549_160,
    ("resnext101_64x4d", 1000): 83_455_272,
    # Cadene/pretrained-models.pytorch and osmr/imgclsmob resnext101_32x4d
    # (torchvision has no 32x4d; the same code as 64x4d with 32 groups).
    ("resnext101_32x4d", 1000): 44_177_704,
    # adiyoss/GCommandsPytorch's LeNet and VGG-11 at a 161 x 101 input; derived below.
    ("lenet_speech", 30): 16_321_570,
    ("vgg11_speech", 30): 13_172_894,
    # Iris: (4*128 + 128) + (128*128 + 128) + (128*3 + 3).
    ("mlp", 3): 17_539,
    # 2 -> 512 -> 512 -> 512 -> 2, and -> 1.
    ("gan_generator", 2): 527_874,
    ("gan_discriminator", 1): 527_361,
    # Our own small CNNs (their docstrings).
    ("mnist_cnn", 10): 421_642,
    ("cifar_small_cnn", 10): 141_034,
}


@pytest.mark.parametrize("name", sorted(_FULL_SIZE))
def test_full_size_shapes_collections_and_parameter_count(name):
  num_classes, shape = _FULL_SIZE[name]
  model = get_model(name, num_classes)
  variables = _eval_shape_init(model, shape)
  out = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=False), variables,
      jax.ShapeDtypeStruct(shape, jnp.float32),
  )
  assert out.shape == (shape[0], num_classes) and out.dtype == jnp.float32
  has_bn = name not in _NO_BATCH_NORM
  assert set(variables) == ({"params", "batch_stats"} if has_bn else {"params"})
  assert _count(variables["params"]) == _REFERENCE_COUNTS[(name, num_classes)]


@pytest.mark.parametrize("name", ["preact_resnet18", "wrn28_10", "densenet_bc190"])
def test_cifar100_parameter_counts(name):
  variables = _eval_shape_init(get_model(name, 100), CIFAR)
  assert _count(variables["params"]) == _REFERENCE_COUNTS[(name, 100)]


def _preact18_count(num_classes: int) -> int:
  """PreAct ResNet-18 from its topology: conv weights, BN (scale + bias), linear."""
  conv = lambda cin, cout, k=3: cin * cout * k * k
  bn = lambda c: 2 * c
  total = conv(3, 64) + bn(64)  # the conv-BN-ReLU stem
  cin = 64
  for width in (64, 128, 256, 512):
    for _ in range(2):
      total += bn(cin) + conv(cin, width) + bn(width) + conv(width, width)
      if cin != width:  # 1x1 projection shortcut where the width (and stride) change
        total += conv(cin, width, k=1)
      cin = width
  return total + 512 * num_classes + num_classes


def _densenet_bc_count(num_classes: int, depth: int = 190, k: int = 40) -> int:
  """DenseNet-BC: stem, 3 blocks of bottlenecks, 2 transitions, BN, linear."""
  n = (depth - 4) // 6
  channels = 2 * k
  total = 3 * channels * 9
  for block in range(3):
    for _ in range(n):  # BN(c), 1x1 c->4k, BN(4k), 3x3 4k->k
      total += 2 * channels + channels * 4 * k + 2 * 4 * k + 4 * k * k * 9
      channels += k
    if block < 2:  # BN(c), 1x1 c->floor(c/2)
      total += 2 * channels + channels * (channels // 2)
      channels //= 2
  return total + 2 * channels + channels * num_classes + num_classes


def test_reference_counts_follow_from_the_topologies():
  assert _preact18_count(10) == 11_171_274
  assert _preact18_count(100) == 11_217_444
  assert _densenet_bc_count(10) == 25_624_430
  assert _densenet_bc_count(100) == 25_821_620
  # LeNet: 161x101 -conv5-> 157x97 -pool-> 78x48 -conv5-> 74x44 -pool-> 37x22, and
  # 20 channels * 37 * 22 = 16280, the fan-in of GCommandsPytorch's LeNet fc1.
  assert 20 * ((((161 - 4) // 2) - 4) // 2) * ((((101 - 4) // 2) - 4) // 2) == 16280
  lenet = (25 * 20 + 20) + (25 * 20 * 20 + 20) + (16280 * 1000 + 1000) + (1000 * 30 + 30)
  assert lenet == 16_321_570
  # VGG-11: five 2x2 pools take 161x101 to 5x3, and 512 * 5 * 3 = 7680.
  h, w = 161, 101
  for _ in range(5):
    h, w = h // 2, w // 2
  assert 512 * h * w == 7680
  widths = (1, 64, 128, 256, 256, 512, 512, 512, 512)
  convs = sum(cin * cout * 9 + cout + 2 * cout for cin, cout in zip(widths, widths[1:]))
  assert convs + (7680 * 512 + 512) + (512 * 30 + 30) == 13_172_894


def test_bf16_models_keep_float32_parameters():
  variables = _eval_shape_init(get_model("wrn28_10", 10, dtype=jnp.bfloat16), CIFAR)
  assert {p.dtype for p in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  assert _count(variables["params"]) == 36_479_194


# ------------------------------------------------------------------------------
# Initialisers.
# ------------------------------------------------------------------------------


def test_initialisers_have_the_pytorch_distributions():
  key = jax.random.key(0, impl="unsafe_rbg")  # compiles faster than threefry
  fan_in, fan_out = 3 * 3 * 64, 3 * 3 * 128
  he = np.asarray(layers.HE_NORMAL_FAN_OUT(key, (3, 3, 64, 128)))
  assert he.std() == pytest.approx(np.sqrt(2 / fan_out), rel=0.02)
  assert np.abs(he).max() > 3.5 * he.std()  # a normal, not a truncated normal
  torch = np.asarray(layers.TORCH_DEFAULT_INIT(key, (3, 3, 64, 128)))
  bound = 1 / np.sqrt(fan_in)
  assert np.abs(torch).max() <= bound and np.abs(torch).max() > 0.99 * bound
  assert torch.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)
  bias = np.asarray(layers.torch_bias_init(fan_in)(key, (4096,)))
  assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.99 * bound


def test_each_network_uses_its_reference_initialiser():
  assert get_model("preact_resnet18", 10).kernel_init is layers.TORCH_DEFAULT_INIT
  assert not get_model("preact_resnet18", 10).zero_bias_head
  wrn = get_model("wrn28_10", 10)
  assert wrn.kernel_init is layers.HE_NORMAL_FAN_OUT and wrn.zero_bias_head
  # A real init (default threefry key) of the MLP: PyTorch's nn.Linear init.
  mlp = get_model("mlp", 3).init(jax.random.key(0), jnp.zeros((1, 4)))["params"]
  bound = 1 / np.sqrt(4)
  assert 0.9 * bound < np.abs(mlp["hidden1"]["kernel"]).max() <= bound
  assert 0 < np.abs(mlp["hidden1"]["bias"]).max() <= bound


def test_zero_init_residual_zeroes_the_last_bn_of_a_block():
  key = jax.random.key(0, impl="unsafe_rbg")  # compiles faster than threefry
  for zero_init, expected in [(True, 0.0), (False, 1.0)]:
    block = Bottleneck(
        planes=4, strides=2, groups=1, width_per_group=64,
        zero_init_residual=zero_init, dtype=jnp.float32, axis_name=None,
    )
    init = _jit(functools.partial(block.init, train=False))
    params = init(key, jnp.zeros((1, 4, 4, 8)))["params"]
    assert np.all(np.asarray(params["bn3"]["scale"]) == expected)
    assert np.all(np.asarray(params["bn2"]["scale"]) == 1.0)


# ------------------------------------------------------------------------------
# Running the reduced networks: jitted forward + backward, and bf16.
# ------------------------------------------------------------------------------


def _matmul_input_dtypes(model: nn.Module, shape) -> set:
  """dtypes of the operands of every convolution and matmul of an eval forward."""
  variables = _eval_shape_init(model, shape)
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(
      variables, jax.ShapeDtypeStruct(shape, jnp.float32)
  )
  found = set()

  def visit(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
        found.update(str(v.aval.dtype) for v in eqn.invars)
      for param in eqn.params.values():
        for sub in param if isinstance(param, (tuple, list)) else [param]:
          inner = getattr(sub, "jaxpr", sub)
          if hasattr(inner, "eqns"):
            visit(inner)

  visit(jaxpr.jaxpr)
  return found


@pytest.mark.parametrize("name", sorted(_REDUCED))
def test_bf16_option_reaches_every_convolution_and_matmul(name):
  model, shape = _reduced(name, dtype=jnp.bfloat16)
  assert _matmul_input_dtypes(model, shape) == {"bfloat16"}
  model, shape = _reduced(name)
  assert _matmul_input_dtypes(model, shape) == {"float32"}


# bf16 numbers are compared for one network of each kind (the dtype reaching every
# layer is checked for all networks above, without compiling).
_BF16_NUMBERS = {"preact_resnet18", "densenet_bc190", "lenet_speech", "mlp"}


@pytest.mark.parametrize("name", _RUN)
def test_reduced_network_backward_and_bf16(name):
  model, shape = _reduced(name)
  model_bf16, _ = _reduced(name, dtype=jnp.bfloat16)
  x = _inputs(shape)
  variables = _variables(model, shape)
  params, state = variables["params"], _state(variables)
  check_bf16 = name in _BF16_NUMBERS

  def loss_fn(params):
    out, updates = model.apply(
        {"params": params, **state}, x, train=True, mutable=list(state),
        rngs={"dropout": jax.random.key(7)},
    )
    return jnp.mean(out**2), (out, updates)

  @_jit
  def run(params):
    grads, (out, updates) = jax.grad(loss_fn, has_aux=True)(params)
    if not check_bf16:
      return grads, out, updates, None
    v = {"params": params, **state}
    evals = (model.apply(v, x, train=False), model_bf16.apply(v, x, train=False))
    return grads, out, updates, evals

  grads, out, updates, evals = run(params)
  assert out.shape == (shape[0], _num_classes(name)) and out.dtype == jnp.float32
  leaves = [np.asarray(g) for g in jax.tree.leaves(grads)]  # numpy: no more compiles
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  assert all(np.isfinite(g).all() for g in leaves)
  assert sum(float(np.sum(g**2)) for g in leaves) > 0
  assert set(updates) == set(state)
  if check_bf16:  # close to float32, but really computed in bf16
    ref, low = evals
    assert ref.dtype == low.dtype == jnp.float32
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(low, ref, atol=0.05 * scale + 1e-3)
    assert not np.array_equal(low, ref)


def test_densenet_remat_changes_memory_not_results():
  model, shape = _reduced("densenet_bc190")
  remat = model.clone(remat=True)
  x = _inputs(shape)
  variables = _variables(model, shape)

  def grads(m):
    def loss(p):
      out, _ = m.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
      return jnp.sum(out**2)
    return jax.grad(loss)(variables["params"])

  a, b = _jit(lambda: (grads(model), grads(remat)))()
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6), a, b)


# ------------------------------------------------------------------------------
# BatchNorm and dropout behaviour.
# ------------------------------------------------------------------------------


def test_batch_norm_has_pytorch_defaults():
  x = _inputs((64, 3), seed=3) * 2.0 + 1.0
  module = layers.batch_norm(True, dtype=jnp.float32, axis_name=None)
  variables = module.init(jax.random.key(0), x)
  y, updates = module.apply(variables, x, mutable=["batch_stats"])
  mean, var = x.mean(0), x.var(0)
  np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(updates["batch_stats"]["var"], 0.9 + 0.1 * var, rtol=1e-5)
  np.testing.assert_allclose(y, (x - mean) / jnp.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)


def test_batch_norm_train_and_eval_modes():
  model, shape = _reduced("cifar_small_cnn")
  x = _inputs((4,) + shape[1:])
  other = x.at[1:].set(_inputs((3,) + shape[1:], seed=9))  # same first example
  variables = _variables(model, shape)

  @_jit
  def run(v):
    apply = lambda x, train: model.apply(v, x, train=train, mutable=["batch_stats"])
    return apply(x, True), apply(x, False), apply(other, True)[0], apply(other, False)[0]

  (train_a, train_updates), (eval_a, eval_updates), train_b, eval_b = run(variables)
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), variables["batch_stats"],
                         train_updates["batch_stats"])
  assert all(jax.tree.leaves(changed))
  unchanged = jax.tree.map(np.array_equal, variables["batch_stats"], eval_updates["batch_stats"])
  assert all(jax.tree.leaves(unchanged))
  # Eval: an example's output ignores the rest of the batch; train: it does not.
  np.testing.assert_allclose(eval_a[0], eval_b[0], rtol=1e-5, atol=1e-6)
  assert not np.allclose(train_a[0], train_b[0], atol=1e-4)


@pytest.mark.parametrize(
    "name, options",
    # WRN's dropout is the same PreActBlock code as PreAct ResNet-18's.
    [("preact_resnet18", dict(dropout_rate=0.5)),
     ("lenet_speech", dict(dropout_rate=0.5, conv_dropout_rate=0.5))],
)
def test_dropout_only_in_train_mode(name, options):
  with_dropout, shape = _reduced(name, **options)
  without, _ = _reduced(name, **{k: 0.0 for k in options})
  x = _inputs(shape)
  variables = _variables(with_dropout, shape)
  assert jax.tree.structure(variables) == jax.tree.structure(_eval_shape_init(without, shape))

  # Eval mode: dropout is the identity, so the computation is the one without it.
  evaluate = lambda model: jax.make_jaxpr(lambda v: model.apply(v, x, train=False))(variables)
  assert str(evaluate(with_dropout)) == str(evaluate(without))

  @_jit
  def train(v):
    def apply(seed):
      out, _ = with_dropout.apply(v, x, train=True, mutable=["batch_stats"],
                                  rngs={"dropout": jax.random.key(seed)})
      return out
    return apply(1), apply(2)

  train_1, train_2 = train(variables)
  assert not np.allclose(train_1, train_2)  # another key, another mask
  with pytest.raises(Exception, match="dropout"):
    jax.eval_shape(
        lambda v: with_dropout.apply(v, x, train=True, mutable=["batch_stats"]), variables
    )
