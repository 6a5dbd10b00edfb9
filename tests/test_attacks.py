"""FGSM / I-FGSM: exact steps on a linear model, budgets, valid range, real CIFAR-10."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixup_jax import attacks
from mixup_jax import data
from mixup_jax.data import augment

SPACE = attacks.PixelSpace(mean=augment.CIFAR_MEAN, std=augment.CIFAR_STD)


def _linear(w, b):
  return lambda x: x.reshape(x.shape[0], -1) @ w + b


@pytest.fixture(scope="module")
def cifar(data_dir):
  """Real CIFAR-10 images: the sample's training images to fit on, its test images to
  attack (inputs, labels)."""
  dataset = data.get_dataset("cifar10", data_dir=data_dir)
  def split(source):
    images = np.asarray(augment.cifar_eval(jnp.asarray(source.arrays["image"])))
    return images, source.arrays["label"].astype(np.int32)
  return (*split(dataset.train), *split(dataset.test))


def test_pixel_space_matches_the_cifar_normalisation():
  pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
  inputs = SPACE.to_input(pixels)
  np.testing.assert_allclose(inputs, augment.cifar_eval(jnp.asarray(pixels)), atol=1e-6)
  np.testing.assert_allclose(SPACE.to_pixels(inputs), pixels, atol=1e-4)
  low, high = SPACE.bounds()
  np.testing.assert_allclose(low, SPACE.to_input(np.zeros(3)), atol=1e-7)
  np.testing.assert_allclose(high, SPACE.to_input(np.full(3, 255.0)), atol=1e-7)
  np.testing.assert_allclose(SPACE.eps_to_input(4.0), 4.0 / 255.0 / np.asarray(augment.CIFAR_STD),
                             rtol=1e-6)


def test_fgsm_is_the_signed_gradient_step_of_a_linear_model():
  rng = np.random.default_rng(1)
  x = SPACE.to_input(rng.integers(20, 236, (6, 4, 4, 3)))  # away from the range limits
  labels = rng.integers(0, 5, 6).astype(np.int32)
  w = rng.normal(size=(48, 5)).astype(np.float32)
  b = rng.normal(size=5).astype(np.float32)
  # d CE / d x = (softmax(xW + b) - onehot(y)) W^T, by hand.
  logits = np.asarray(x).reshape(6, -1) @ w + b
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  grad = ((probs - np.eye(5)[labels]) @ w.T).reshape(x.shape)
  expected = np.asarray(x) + np.sign(grad) * np.asarray(SPACE.eps_to_input(4.0))
  x_adv = attacks.fgsm(_linear(w, b), x, labels, eps=4.0, space=SPACE)
  np.testing.assert_allclose(x_adv, expected, atol=1e-6)
  # In pixels, every value moved by exactly 4 of 255.
  np.testing.assert_allclose(np.abs(SPACE.to_pixels(x_adv) - SPACE.to_pixels(x)), 4.0, atol=1e-3)


def test_budget_and_valid_range_hold_for_both_attacks_under_jit(cifar):
  x, y = cifar[0][:64], cifar[1][:64]
  rng = np.random.default_rng(2)
  fn = _linear(rng.normal(size=(3072, 10)).astype(np.float32), np.zeros(10, np.float32))
  for name in ("fgsm", "ifgsm"):
    run = jax.jit(functools.partial(attacks.attack, name, fn, eps=8.0, space=SPACE))
    x_adv = np.asarray(run(x, y))
    moved = np.abs(SPACE.to_pixels(x_adv) - SPACE.to_pixels(x))
    assert moved.max() <= 8.0 + 1e-3, name
    pixels = SPACE.to_pixels(x_adv)
    assert pixels.min() >= -1e-3 and pixels.max() <= 255.0 + 1e-3, name
    # Real images have saturated pixels: clipping must have been needed somewhere.
    assert moved.min() < 8.0 - 1e-3, name
    eager = attacks.attack(name, fn, jnp.asarray(x), jnp.asarray(y), eps=8.0, space=SPACE)
    np.testing.assert_allclose(x_adv, eager, atol=1e-5)


def test_a_traced_budget_sweeps_under_one_compilation():
  rng = np.random.default_rng(4)
  x = SPACE.to_input(rng.integers(0, 256, (3, 4, 4, 3)))
  labels = rng.integers(0, 3, 3).astype(np.int32)
  fn = _linear(rng.normal(size=(48, 3)).astype(np.float32), np.zeros(3, np.float32))
  run = jax.jit(lambda eps: attacks.iterative_fgsm(fn, x, labels, eps=eps, space=SPACE))
  for eps in (2.0, 8.0):
    expected = attacks.iterative_fgsm(fn, x, labels, eps=eps, space=SPACE)
    np.testing.assert_allclose(run(jnp.float32(eps)), expected, atol=1e-6)
  assert run._cache_size() == 1
  assert np.all(np.isnan(run(jnp.float32(-1.0))))  # a bad traced budget is loud


def test_one_step_ifgsm_is_fgsm():
  rng = np.random.default_rng(3)
  x = SPACE.to_input(rng.integers(0, 256, (5, 4, 4, 3)))
  labels = rng.integers(0, 3, 5).astype(np.int32)
  fn = _linear(rng.normal(size=(48, 3)).astype(np.float32), np.zeros(3, np.float32))
  one = attacks.iterative_fgsm(fn, x, labels, eps=4.0, space=SPACE, num_steps=1)
  np.testing.assert_allclose(one, attacks.fgsm(fn, x, labels, eps=4.0, space=SPACE), atol=1e-6)


def test_attacks_raise_the_error_of_a_classifier_trained_on_real_cifar(cifar):
  x_train, y_train, x_test, y_test = cifar

  @jax.jit
  def fit(x, y):
    w, b = jnp.zeros((3072, 10)), jnp.zeros(10)

    def loss(params):
      logits = _linear(*params)(x)
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(y)), y])

    def step(params, _):
      grads = jax.grad(loss)(params)
      return jax.tree.map(lambda p, g: p - 0.01 * g, params, grads), None

    return jax.lax.scan(step, (w, b), None, length=150)[0]

  fn = _linear(*fit(jnp.asarray(x_train), jnp.asarray(y_train)))
  error = lambda inputs: 100.0 * float(np.mean(np.argmax(fn(inputs), -1) != y_test))
  clean = error(x_test)
  fgsm_error = error(attacks.fgsm(fn, x_test, y_test, eps=4.0, space=SPACE))
  ifgsm_error = error(attacks.iterative_fgsm(fn, x_test, y_test, eps=4.0, space=SPACE))
  assert clean < 80.0  # it learned something (chance: 90 %)
  assert fgsm_error > clean + 10.0
  assert ifgsm_error >= fgsm_error - 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=np.zeros((2, 4, 4, 3), np.uint8)), "float"),
        (dict(x=np.zeros((2, 4, 4, 1), np.float32)), "channels"),
        (dict(labels=np.zeros(3, np.int32)), "labels"),
        (dict(eps=-1.0), "eps"),
        (dict(num_steps=0), "num_steps"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
  args = dict(x=np.zeros((2, 4, 4, 3), np.float32), labels=np.zeros(2, np.int32), eps=4.0)
  args.update(kwargs)
  num_steps = args.pop("num_steps", 10)
  fn = lambda x: jnp.zeros((x.shape[0], 3))
  with pytest.raises(ValueError, match=match):
    attacks.iterative_fgsm(fn, args["x"], args["labels"], eps=args["eps"], space=SPACE,
                           num_steps=num_steps)
  with pytest.raises(ValueError, match="std"):
    attacks.PixelSpace(mean=(0.5,), std=(0.0,))
