"""Figure 2's in-between quantities against hand-computed values, on real CIFAR-10."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixup_jax import analysis
from mixup_jax.data import augment


def _linear(w, b):
  return lambda x: x.reshape(x.shape[0], -1) @ w + b


def _small_cnn(rng):
  """conv3x3(8)-ReLU-mean-dense(10) with fixed random weights: x [B, 32, 32, 3] -> logits."""
  kernel = jnp.asarray(rng.normal(size=(3, 3, 3, 8)) / np.sqrt(27.0), jnp.float32)
  dense = jnp.asarray(rng.normal(size=(8, 10)), jnp.float32)

  def fn(x):
    h = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.mean(jax.nn.relu(h), axis=(1, 2)) @ dense

  return fn


def test_sample_pairs_are_distinct_in_range_and_seeded():
  pairs = np.asarray(analysis.sample_pairs(jax.random.PRNGKey(0), 5, 2000))
  assert pairs.shape == (2000, 2) and pairs.dtype == np.int32
  assert pairs.min() >= 0 and pairs.max() < 5
  assert np.all(pairs[:, 0] != pairs[:, 1])
  # Every ordered pair of distinct indices occurs (j is uniform over the others).
  assert len({tuple(p) for p in pairs}) == 20
  np.testing.assert_array_equal(pairs, analysis.sample_pairs(jax.random.PRNGKey(0), 5, 2000))


def test_linear_model_matches_hand_computation():
  rng = np.random.default_rng(0)
  x_i, x_j = rng.normal(size=(2, 7, 3, 2, 2)).astype(np.float32)
  y_i, y_j = rng.integers(0, 4, (2, 7)).astype(np.int32)
  w = rng.normal(size=(12, 4)).astype(np.float32)
  b = rng.normal(size=4).astype(np.float32)
  lams = np.array([0.5, 0.8, 1.0], np.float32)
  out = analysis.in_between_per_pair(_linear(w, b), x_i, y_i, x_j, y_j, lams, num_classes=4)
  for li, lam in enumerate(lams):
    x = (lam * x_i + (1 - lam) * x_j).reshape(7, -1)
    logits = x @ w + b
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    target = lam * np.eye(4)[y_i] + (1 - lam) * np.eye(4)[y_j]
    grad = (probs - target) @ w.T  # d CE(softmax(xW + b), t) / d x
    pred = logits.argmax(1)
    np.testing.assert_allclose(out["grad_norm"][li], np.linalg.norm(grad, axis=1), rtol=1e-4)
    np.testing.assert_array_equal(out["miss"][li], (pred != y_i) & (pred != y_j))
    np.testing.assert_allclose(out["loss"][li], -np.sum(target * np.log(probs), 1), rtol=1e-4)
  means = analysis.in_between(_linear(w, b), x_i, y_i, x_j, y_j, lams, num_classes=4)
  np.testing.assert_allclose(means["miss_rate"], np.mean(out["miss"], 1))
  np.testing.assert_allclose(means["grad_norm"], np.mean(out["grad_norm"], 1), rtol=1e-6)


def test_real_cifar_pairs_through_a_cnn_are_evaluated_row_by_row(data_dir):
  test = np.load(data_dir / "cifar10" / "test_batch.npz")
  x = augment.cifar_eval(jnp.asarray(test["image"][:40]))
  y = jnp.asarray(test["label"][:40], jnp.int32)
  fn = _small_cnn(np.random.default_rng(0))
  pairs = np.asarray(analysis.sample_pairs(jax.random.PRNGKey(1), 40, 8))
  lams = jnp.linspace(0.5, 1.0, 3)
  run = jax.jit(lambda i, j: analysis.in_between_per_pair(
      fn, x[i], y[i], x[j], y[j], lams, num_classes=10))
  out = run(pairs[:, 0], pairs[:, 1])
  # Each pair's numbers depend on that pair only: reordering pairs reorders them.
  order = np.random.default_rng(0).permutation(8)
  shuffled = run(pairs[order, 0], pairs[order, 1])
  np.testing.assert_allclose(shuffled["grad_norm"], out["grad_norm"][:, order], rtol=1e-5)
  np.testing.assert_array_equal(shuffled["miss"], out["miss"][:, order])
  assert np.all(np.isfinite(out["grad_norm"])) and np.all(np.asarray(out["grad_norm"]) > 0)
  # At lambda = 1 the input is x_i itself: a miss is a prediction that is neither label.
  pred = np.argmax(fn(x[pairs[:, 0]]), -1)
  expected = (pred != y[pairs[:, 0]]) & (pred != y[pairs[:, 1]])
  np.testing.assert_array_equal(out["miss"][-1], expected)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(x_j=np.zeros((3, 2), np.float32)), "same shape"),
        (dict(x_i=np.zeros((2, 2), np.int32), x_j=np.zeros((2, 2), np.int32)), "float"),
        (dict(y_i=np.zeros(3, np.int32)), "y_i"),
        (dict(lams=np.zeros((2, 2), np.float32)), "lams"),
    ],
)
def test_bad_arguments_raise(change, match):
  args = dict(x_i=np.zeros((2, 2), np.float32), y_i=np.zeros(2, np.int32),
              x_j=np.zeros((2, 2), np.float32), y_j=np.zeros(2, np.int32),
              lams=np.ones(3, np.float32))
  args.update(change)
  with pytest.raises(ValueError, match=match):
    analysis.in_between(lambda x: x, **args, num_classes=2)
  with pytest.raises(ValueError, match="num_examples"):
    analysis.sample_pairs(jax.random.PRNGKey(0), 1, 3)
