"""Tests of mixup_jax.mixing: distributions, pairing, targets, devices, bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.sharding import Mesh, PartitionSpec as P

import mixup_jax as mj
from mixup_jax import mixing as mixing_lib

KEY = jax.random.key(0)


def _one_hot_index_batch(batch_size, dtype=jnp.float32):
  """x = one-hot of the row index, so every mixed row names its sources and weights."""
  return jnp.eye(batch_size, dtype=dtype)


# ------------------------------------------------------------------------------
# The distribution of lambda.
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.1, 0.2, 0.4, 1.0, 2.0, 8.0, 32.0])
def test_lambda_follows_beta(alpha):
  draws = 4000
  m = mj.sample_mixing(KEY, alpha, draws, granularity="example")
  lam = np.asarray(m.lam, np.float64)
  assert m.weights.dtype == jnp.float32
  assert np.isfinite(lam).all()
  beta = scipy.stats.beta(alpha, alpha)
  # Fold both tails onto [0, 1/2]: float32 resolves weights near 0, not near 1, and
  # each row's two weights are drawn so that the smaller one keeps its precision.
  smaller = np.asarray(m.weights.min(axis=1), np.float64)
  assert scipy.stats.kstest(smaller, lambda t: 2 * beta.cdf(t)).pvalue > 1e-3
  assert scipy.stats.kstest(lam[lam < 0.99], lambda t: beta.cdf(t) / beta.cdf(0.99)).pvalue > 1e-3
  assert abs(lam.mean() - 0.5) < 4 * np.sqrt(1 / (4 * (2 * alpha + 1)) / draws)


@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_batch_lambda_follows_beta_across_keys(alpha):
  keys = jax.random.split(KEY, 2000)
  weights = jax.jit(jax.vmap(lambda k: mj.sample_mixing(k, alpha, 4).weights[0]))(keys)
  smaller = np.asarray(weights.min(axis=1), np.float64)
  beta = scipy.stats.beta(alpha, alpha)
  assert scipy.stats.kstest(smaller, lambda t: 2 * beta.cdf(t)).pvalue > 1e-3


def test_a_uniform_lambda_is_not_what_small_alpha_gives():
  # The trap of a layer that drew U(0, 1) whatever alpha was: this test must see it.
  lam = np.asarray(mj.sample_mixing(KEY, 0.2, 4000, granularity="example").lam)
  assert scipy.stats.kstest(lam, scipy.stats.uniform.cdf).pvalue < 1e-6


def test_alpha_zero_is_exact_erm():
  x = jax.random.normal(KEY, (9, 3, 2))
  y = jnp.arange(9) % 4
  xm, ym = mj.mix(KEY, x, y, 0.0, num_classes=4)
  np.testing.assert_array_equal(xm, x)
  np.testing.assert_array_equal(ym, jax.nn.one_hot(y, 4))


def test_alpha_can_be_traced_and_vmapped():
  x = _one_hot_index_batch(6)
  y = jnp.arange(6)
  alphas = jnp.array([0.0, 0.2, 1.0])
  xm, ym = jax.vmap(lambda a: mj.mix(KEY, x, y, a, num_classes=6))(alphas)
  np.testing.assert_array_equal(xm[0], x)
  np.testing.assert_array_equal(xm, ym)
  assert not np.allclose(xm[2], x)
  # A bad traced alpha cannot be caught at trace time: it poisons the weights loudly.
  bad = jax.jit(lambda a: mj.sample_mixing(KEY, a, 4).weights)(-1.0)
  assert np.isnan(bad).all()


# ------------------------------------------------------------------------------
# Inputs and targets move together.
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 2, 7, 64])
@pytest.mark.parametrize("granularity", ["batch", "example"])
def test_inputs_and_targets_share_partner_and_weight(batch_size, granularity):
  x = _one_hot_index_batch(batch_size)
  y = jnp.arange(batch_size)
  xm, ym, m = mj.mix(
      KEY, x, y, 1.0, num_classes=batch_size, granularity=granularity, return_mixing=True
  )
  np.testing.assert_array_equal(xm, ym)  # same partner, same weight, same arithmetic
  np.testing.assert_allclose(ym.sum(-1), 1.0, rtol=1e-6)
  partners = np.asarray(m.partners[:, 0])
  assert sorted(partners) == list(range(batch_size))  # a permutation: nobody dropped
  weights = np.asarray(m.weights)
  for i, j in enumerate(partners):
    expected = np.zeros(batch_size, np.float32)
    expected[i] += weights[i, 0]
    expected[j] += weights[i, 1]
    np.testing.assert_allclose(xm[i], expected, rtol=1e-6)


def test_mixed_rows_lie_on_the_segment_between_their_sources():
  x = jax.random.normal(KEY, (33, 5))
  xm, _, m = mj.mix(KEY, x, jnp.zeros(33, jnp.int32), 0.4, num_classes=2,
                    granularity="example", return_mixing=True)
  lam = np.asarray(m.lam)[:, None]
  source = np.asarray(x)
  np.testing.assert_allclose(
      xm, lam * source + (1 - lam) * source[np.asarray(m.partners[:, 0])], atol=1e-6
  )
  assert ((lam >= 0) & (lam <= 1)).all()


def test_batch_of_one_mixes_with_itself():
  x = jax.random.normal(KEY, (1, 4))
  xm, ym = mj.mix(KEY, x, jnp.array([2]), 1.0, num_classes=3)
  np.testing.assert_allclose(xm, x, rtol=1e-6)
  np.testing.assert_allclose(ym, jax.nn.one_hot(jnp.array([2]), 3), rtol=1e-6)


def test_every_pytree_leaf_gets_the_same_mixing():
  batch = 8
  eye = _one_hot_index_batch(batch)
  x = {"image": eye.reshape(batch, 2, 4, 1), "extra": (eye, eye.astype(jnp.bfloat16))}
  xm, ym = mj.mix(KEY, x, jnp.arange(batch), 1.0, num_classes=batch)
  np.testing.assert_array_equal(xm["image"].reshape(batch, batch), ym)
  np.testing.assert_array_equal(xm["extra"][0], ym)
  assert xm["extra"][1].dtype == jnp.bfloat16
  np.testing.assert_allclose(xm["extra"][1].astype(jnp.float32), ym, atol=1e-2)


def test_exact_values_for_a_fixed_key_by_hand():
  """Rebuild lambda and the permutation from the documented key derivation."""
  x = jnp.array([[1.0, 2.0], [3.0, 5.0], [-1.0, 0.0], [10.0, 20.0]])
  y = jnp.array([0, 1, 2, 1])
  xm, ym = mj.mix(KEY, x, y, 0.5, num_classes=3)

  lam, partner_weight = np.asarray(
      jax.random.dirichlet(jax.random.fold_in(KEY, 0), jnp.array([0.5, 0.5]), (1,))[0])
  partners_key = jax.random.fold_in(jax.random.fold_in(KEY, 2), 0)  # group 0
  perm = np.asarray(jax.random.permutation(jax.random.fold_in(partners_key, 0), 4))
  x_np, onehot = np.asarray(x), np.eye(3)[np.asarray(y)]
  np.testing.assert_allclose(xm, lam * x_np + partner_weight * x_np[perm], rtol=1e-6)
  np.testing.assert_allclose(ym, lam * onehot + partner_weight * onehot[perm], rtol=1e-6)
  assert 0 < lam < 1 and lam + partner_weight == pytest.approx(1.0)


def test_exact_values_of_a_given_mixing():
  m = mj.Mixing(weights=jnp.array([[0.7, 0.3], [0.25, 0.75]]), partners=jnp.array([[1], [0]]))
  x = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  np.testing.assert_allclose(mj.apply_mixing(m, x), [[0.7, 0.6], [0.75, 0.5]], rtol=1e-6)
  ym = mj.mix_targets(m, jnp.array([0, 2]), num_classes=3)
  np.testing.assert_allclose(ym, [[0.7, 0.0, 0.3], [0.75, 0.0, 0.25]], rtol=1e-6)
  closest = mj.mix_targets(m, jnp.array([0, 2]), num_classes=3, mode="closest")
  np.testing.assert_array_equal(closest, [[1, 0, 0], [1, 0, 0]])


# ------------------------------------------------------------------------------
# Variants: pairing, k-way, targets, smoothing, probability, dtypes.
# ------------------------------------------------------------------------------


def test_same_class_partners_share_the_label():
  labels = jax.random.randint(KEY, (65,), 0, 5)
  x = jax.random.normal(KEY, (65, 3))
  _, ym, m = mj.mix(KEY, x, labels, 1.0, num_classes=5, pairing="same_class",
                    return_mixing=True)
  partners = np.asarray(m.partners[:, 0])
  np.testing.assert_array_equal(np.asarray(labels)[partners], labels)
  assert sorted(partners) == list(range(65))
  assert (partners != np.arange(65)).mean() > 0.5  # really shuffled within classes
  np.testing.assert_allclose(ym, jax.nn.one_hot(labels, 5), rtol=1e-6)
  # One-hot targets work too.
  _, _, m2 = mj.mix(KEY, x, jax.nn.one_hot(labels, 5), 1.0, pairing="same_class",
                    return_mixing=True)
  np.testing.assert_array_equal(np.asarray(labels)[np.asarray(m2.partners[:, 0])], labels)


@pytest.mark.parametrize("num_sources", [3, 4])
def test_dirichlet_weights_sum_to_one(num_sources):
  m = mj.sample_mixing(KEY, 0.5, 500, num_sources=num_sources, granularity="example")
  assert m.weights.shape == (500, num_sources)
  assert m.partners.shape == (500, num_sources - 1)
  np.testing.assert_allclose(m.weights.sum(-1), 1.0, rtol=1e-5)
  assert (m.weights >= 0).all()
  # Marginal of Dirichlet(a,...,a) is Beta(a, (K-1) a).
  p = scipy.stats.kstest(np.asarray(m.weights[:, 1]),
                         scipy.stats.beta(0.5, 0.5 * (num_sources - 1)).cdf)
  assert p.pvalue > 1e-3
  x = _one_hot_index_batch(500)
  xm = mj.apply_mixing(m, x)
  np.testing.assert_allclose(xm.sum(-1), 1.0, rtol=1e-5)


def test_closest_targets_pick_the_heavier_example():
  x = _one_hot_index_batch(16)
  y = jnp.arange(16)
  xm, ym = mj.mix(KEY, x, y, 1.0, num_classes=16, granularity="example", targets="closest")
  heavier = np.argmax(np.asarray(xm), axis=1)
  np.testing.assert_array_equal(np.argmax(ym, 1), heavier)
  np.testing.assert_array_equal(ym.max(1), 1.0)


def test_label_smoothing_uses_the_papers_formula():
  eps, classes = 0.1, 10
  rows = mj.as_target_rows(jnp.array([3]), classes, label_smoothing=eps)
  expected = np.full(classes, eps / classes, np.float32)
  expected[3] = 1 - (classes - 1) * eps / classes
  np.testing.assert_allclose(rows[0], expected, rtol=1e-6)
  # Off by default: no hidden smoothing.
  np.testing.assert_array_equal(mj.as_target_rows(jnp.array([3]), classes)[0], np.eye(10)[3])
  _, ym = mj.mix(KEY, jnp.ones((2, 1)), jnp.array([3, 3]), 0.0, num_classes=10,
                 label_smoothing=eps)
  np.testing.assert_allclose(ym[0], expected, rtol=1e-6)


def test_probability_of_mixing():
  x = _one_hot_index_batch(400)
  assert np.array_equal(mj.mix(KEY, x, jnp.arange(400), 1.0, num_classes=400, prob=0.0)[0], x)
  m = mj.sample_mixing(KEY, 1.0, 4000, granularity="example", prob=0.3)
  mixed = np.asarray(m.lam) < 1.0
  assert abs(mixed.mean() - 0.3) < 0.03
  per_batch = jax.jit(jax.vmap(lambda k: mj.sample_mixing(k, 1.0, 4, prob=0.3).lam))(
      jax.random.split(KEY, 1000))
  assert (per_batch == per_batch[:, :1]).all()  # drawn once per batch
  assert abs((per_batch[:, 0] < 1).mean() - 0.3) < 0.05


def test_given_partner_batch():
  x = jax.random.normal(KEY, (5, 3))
  px = jax.random.normal(jax.random.key(1), (5, 3))
  y, py = jnp.arange(5), jnp.arange(5)[::-1]
  xm, ym, m = mj.mix(KEY, x, y, 1.0, num_classes=5, pairing="given", partner=(px, py),
                     return_mixing=True)
  lam = float(m.lam[0])
  np.testing.assert_allclose(xm, lam * x + (1 - lam) * px, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      ym, lam * jax.nn.one_hot(y, 5) + (1 - lam) * jax.nn.one_hot(py, 5), rtol=1e-6)
  with pytest.raises(ValueError, match="partner"):
    mj.apply_mixing(m, x)


def test_regression_targets_are_mixed_as_values():
  x = _one_hot_index_batch(6)
  y = jnp.arange(6, dtype=jnp.float32) * 10
  xm, ym = mj.mix(KEY, x, y, 1.0)
  np.testing.assert_allclose(ym, xm @ y, rtol=1e-6)


def test_bf16_inputs_keep_their_dtype_without_nan():
  x = jax.random.uniform(KEY, (256, 8, 8, 3)).astype(jnp.bfloat16)
  for alpha in (0.01, 0.1, 1.0):
    xm, ym = mj.mix(KEY, x, jnp.arange(256) % 10, alpha, num_classes=10,
                    granularity="example")
    assert xm.dtype == jnp.bfloat16 and ym.dtype == jnp.float32
    assert jnp.isfinite(xm.astype(jnp.float32)).all() and jnp.isfinite(ym).all()


def test_gaussian_noise_baseline():
  x = jnp.zeros((2000, 4), jnp.bfloat16)
  noisy = mj.add_gaussian_noise(KEY, x, 0.1)
  assert noisy.dtype == jnp.bfloat16
  assert abs(float(noisy.astype(jnp.float32).std()) - 0.1) < 0.005
  np.testing.assert_array_equal(mj.add_gaussian_noise(KEY, x, 0.0), x)


# ------------------------------------------------------------------------------
# jit, pmap, shard_map, groups.
# ------------------------------------------------------------------------------


def _mix_fn(**options):
  return functools.partial(mj.mix, num_classes=8, return_mixing=False, **options)


def test_identical_with_and_without_jit():
  x = jax.random.normal(KEY, (12, 4, 4, 3))
  y = jnp.arange(12) % 8
  for options in ({"granularity": "example", "prob": 0.5, "pairing": "same_class"},
                  {"num_sources": 3, "num_groups": 4, "granularity": "device"}):
    fn = _mix_fn(**options)
    eager = fn(KEY, x, y, 0.7)
    jitted = jax.jit(fn)(KEY, x, y, 0.7)
    for a, b in zip(eager, jitted):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def _per_device_batches(devices=8, per_device=4):
  x = jax.random.normal(KEY, (devices, per_device, 3))
  y = jnp.arange(devices * per_device).reshape(devices, per_device) % 8
  return x, y


@pytest.mark.parametrize("granularity", ["batch", "device", "example"])
def test_pmap_matches_one_device_with_groups(granularity):
  x, y = _per_device_batches()
  pmapped = jax.pmap(
      lambda x, y: mj.mix(KEY, x, y, 1.0, num_classes=8, granularity=granularity,
                          axis_name="d", return_mixing=True), axis_name="d")
  xm, ym, m = pmapped(x, y)
  flat_x, flat_y = x.reshape(32, 3), y.reshape(32)
  xm1, ym1, m1 = mj.mix(KEY, flat_x, flat_y, 1.0, num_classes=8, granularity=granularity,
                        num_groups=8, return_mixing=True)
  np.testing.assert_allclose(xm.reshape(32, 3), xm1, rtol=1e-6)
  np.testing.assert_allclose(ym.reshape(32, 8), ym1, rtol=1e-6)
  per_device_lam = np.asarray(m.lam[:, 0])
  if granularity == "batch":
    assert (per_device_lam == per_device_lam[0]).all()
  else:
    assert len(set(per_device_lam.tolist())) == 8


def test_shard_map_matches_pmap():
  x, y = _per_device_batches()
  mesh = Mesh(np.array(jax.devices()), ("d",))

  def per_device(x, y):
    return mj.mix(KEY, x, y, 1.0, num_classes=8, granularity="device", axis_name="d")

  sharded = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P("d"), P("d")),
                                  out_specs=(P("d"), P("d"))))
  xs, ys = sharded(x.reshape(32, 3), y.reshape(32))
  xp, yp = jax.pmap(per_device, axis_name="d")(x, y)
  np.testing.assert_allclose(xs, xp.reshape(32, 3), rtol=1e-6)
  np.testing.assert_allclose(ys, yp.reshape(32, 8), rtol=1e-6)


def test_global_pairing_pairs_across_devices():
  devices, per_device = 8, 4
  x = _one_hot_index_batch(devices * per_device).reshape(devices, per_device, -1)
  y = jnp.arange(devices * per_device).reshape(devices, per_device)
  xm, ym, m = jax.pmap(
      lambda x, y: mj.mix(KEY, x, y, 1.0, num_classes=32, axis_name="d",
                          global_pairing=True, return_mixing=True), axis_name="d")(x, y)
  np.testing.assert_array_equal(xm, ym)
  partners = np.asarray(m.partners).reshape(-1)
  assert sorted(partners) == list(range(32))  # one global permutation
  own_device = np.repeat(np.arange(8), 4)
  assert (partners // 4 != own_device).any()  # partners come from other devices
  np.testing.assert_array_equal(m.weights[..., 0], m.weights[0, 0, 0])


# ------------------------------------------------------------------------------
# Losses.
# ------------------------------------------------------------------------------


def test_mixed_target_loss_equals_the_authors_two_term_form():
  logits = jax.random.normal(KEY, (16, 10)) * 3
  ya, yb = jnp.arange(16) % 10, (jnp.arange(16) * 7 + 3) % 10
  lam = 0.3
  target = lam * jax.nn.one_hot(ya, 10) + (1 - lam) * jax.nn.one_hot(yb, 10)
  np.testing.assert_allclose(
      mj.softmax_cross_entropy(logits, target), mj.mixed_cross_entropy(logits, ya, yb, lam),
      rtol=1e-5)
  ce_bf16 = mj.softmax_cross_entropy(logits.astype(jnp.bfloat16), target)
  assert ce_bf16.dtype == jnp.float32
  np.testing.assert_allclose(ce_bf16, mj.softmax_cross_entropy(logits, target), rtol=2e-2)


def test_cross_entropies_are_float32_log_softmax_of_the_upcast_logits():
  """The optax losses underneath, pinned to the formula in float64 NumPy."""
  logits = (jax.random.normal(KEY, (8, 10)) * 20).astype(jnp.bfloat16)  # large: lse matters
  targets = jax.nn.softmax(jax.random.normal(jax.random.key(5), (8, 10)))
  labels = jnp.arange(8) % 10
  upcast = np.asarray(logits.astype(jnp.float32), np.float64)
  log_probs = upcast - np.log(np.exp(upcast - upcast.max(-1, keepdims=True)).sum(-1,
                                                                                  keepdims=True))
  log_probs -= upcast.max(-1, keepdims=True)
  soft, hard = mj.softmax_cross_entropy(logits, targets), mj.cross_entropy_with_ids(logits, labels)
  assert soft.dtype == hard.dtype == jnp.float32
  np.testing.assert_allclose(soft, -(np.asarray(targets, np.float64) * log_probs).sum(-1),
                             rtol=1e-5)
  np.testing.assert_allclose(hard, -log_probs[np.arange(8), np.asarray(labels)], rtol=1e-5)


def test_binary_cross_entropy_with_soft_targets():
  z = jnp.array([-30.0, -1.0, 0.0, 2.0, 40.0])
  t = jnp.array([0.0, 0.2, 0.5, 0.9, 1.0])
  sig = 1 / (1 + np.exp(-np.asarray(z, np.float64)))
  expected = -(t * np.log(np.clip(sig, 1e-300, 1)) + (1 - t) * np.log(np.clip(1 - sig, 1e-300, 1)))
  got = mj.sigmoid_binary_cross_entropy(z, t)
  assert np.isfinite(got).all()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_topk_accuracy_against_hard_labels():
  logits = jnp.array([[0.0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [0, 0, 9, 0, 0, 0]])
  labels = jnp.array([5, 3, 1])
  acc = mj.topk_accuracy(logits, labels, ks=(1, 5))
  assert acc["top1"].dtype == jnp.float32
  np.testing.assert_allclose(acc["top1"], 1 / 3)
  np.testing.assert_allclose(acc["top5"], 3 / 3)
  masked = mj.topk_accuracy(logits, labels, ks=(1,), mask=jnp.array([1, 1, 0]))
  np.testing.assert_allclose(masked["top1"], 1 / 2)


# ------------------------------------------------------------------------------
# Bad input.
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [-0.1, float("inf"), float("nan")])
def test_bad_alpha(alpha):
  with pytest.raises(ValueError, match="alpha"):
    mj.mix(KEY, jnp.ones((4, 2)), jnp.zeros(4, jnp.int32), alpha, num_classes=2)


def test_leaves_with_different_batch_sizes():
  with pytest.raises(ValueError, match="different batch sizes"):
    mj.mix(KEY, {"a": jnp.ones((4, 2)), "b": jnp.ones((5, 2))}, jnp.zeros(4, jnp.int32), 1.0,
           num_classes=2)


def test_x_and_y_batch_mismatch():
  with pytest.raises(ValueError, match="y has batch size"):
    mj.mix(KEY, jnp.ones((4, 2)), jnp.zeros(3, jnp.int32), 1.0, num_classes=2)


def test_integer_targets_need_num_classes():
  with pytest.raises(ValueError, match="num_classes"):
    mj.mix(KEY, jnp.ones((4, 2)), jnp.zeros(4, jnp.int32), 1.0)


def test_class_ids_out_of_range():
  with pytest.raises(ValueError, match="outside"):
    mj.mix(KEY, jnp.ones((4, 2)), jnp.array([0, 1, 2, 3]), 1.0, num_classes=3)
  # Traced ids cannot be checked at trace time: they poison the targets loudly.
  _, ym = jax.jit(lambda y: mj.mix(KEY, jnp.ones((2, 2)), y, 1.0, num_classes=3))(
      jnp.array([0, 7]))
  assert np.isnan(ym).any()


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.int32])
def test_integer_inputs_are_refused(dtype):
  with pytest.raises(ValueError, match="Convert it first"):
    mj.mix(KEY, jnp.ones((4, 2), dtype), jnp.zeros(4, jnp.int32), 1.0, num_classes=2)


def test_other_bad_options():
  x, y = jnp.ones((4, 2)), jnp.zeros(4, jnp.int32)
  with pytest.raises(ValueError, match="granularity"):
    mj.mix(KEY, x, y, 1.0, num_classes=2, granularity="pixel")
  with pytest.raises(ValueError, match="device"):
    mj.mix(KEY, x, y, 1.0, num_classes=2, granularity="device")
  with pytest.raises(ValueError, match="num_groups"):
    mj.mix(KEY, x, y, 1.0, num_classes=2, num_groups=3)
  with pytest.raises(ValueError, match="prob"):
    mj.mix(KEY, x, y, 1.0, num_classes=2, prob=1.5)
  with pytest.raises(ValueError, match="partner"):
    mj.mix(KEY, x, y, 1.0, num_classes=2, pairing="given")
  with pytest.raises(ValueError, match="regression"):
    mj.mix(KEY, x, jnp.zeros(4), 1.0, pairing="same_class")
  with pytest.raises(ValueError, match="label_smoothing"):
    mj.mix(KEY, x, y, 1.0, num_classes=2, label_smoothing=2.0)
  with pytest.raises(ValueError, match="global_pairing"):
    mj.mix(KEY, x, y, 1.0, num_classes=2, global_pairing=True)
  with pytest.raises(ValueError, match="mode"):
    mj.mix(KEY, x, y, 1.0, num_classes=2, targets="soft")
  assert mixing_lib.TARGET_MODES == ("mixed", "closest")


def test_id_losses_refuse_what_they_would_silently_get_wrong():
  """A float id would be truncated, an id outside [0, C) gives NaN, lam 1.7 extrapolates."""
  logits, ids = jnp.zeros((3, 4)), jnp.array([0, 1, 3])
  np.testing.assert_allclose(mj.cross_entropy_with_ids(logits, ids), np.log(4.0), rtol=1e-6)
  with pytest.raises(ValueError, match=r"labels has class ids in \[0, 4\], outside \[0, 4\)"):
    mj.cross_entropy_with_ids(logits, jnp.array([0, 1, 4]))
  with pytest.raises(ValueError, match="labels_b must be integer class ids, got dtype float32"):
    mj.mixed_cross_entropy(logits, ids, jnp.array([3.9, 0.0, 1.0]), 0.5)
  with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
    mj.mixed_cross_entropy(logits, ids, ids, 1.7)
  with pytest.raises(ValueError, match="leading shape"):
    mj.cross_entropy_with_ids(logits, jnp.array([0, 1]))
  traced = jax.jit(mj.mixed_cross_entropy)(logits, ids, ids[::-1], jnp.float32(0.3))
  np.testing.assert_allclose(traced, np.log(4.0), rtol=1e-6)


@pytest.mark.parametrize("pairing, partner_of", [
    ("flip", lambda i, n: n - 1 - i),  # timm: x.flip(0)
    ("roll", lambda i, n: (i - 1) % n),  # torchvision / big_vision: x.roll(1, 0)
])
def test_fixed_partners_of_timm_torchvision_and_big_vision(pairing, partner_of):
  x = jax.random.normal(KEY, (8, 5))
  y = jnp.arange(8) % 4
  mixing = mixing_lib.sample_mixing(KEY, 1.0, 8, pairing=pairing)
  np.testing.assert_array_equal(mixing.partners[:, 0], [partner_of(i, 8) for i in range(8)])
  lam = float(mixing.weights[0, 0])
  expected = lam * x + (1 - lam) * x[np.array([partner_of(i, 8) for i in range(8)])]
  np.testing.assert_allclose(mixing_lib.apply_mixing(mixing, x), expected, rtol=1e-5, atol=1e-6)
  x_mixed, _ = mj.mix(KEY, x, y, alpha=1.0, num_classes=4, pairing=pairing)
  np.testing.assert_allclose(x_mixed, expected, rtol=1e-5, atol=1e-6)
  grouped = mixing_lib.sample_mixing(KEY, 1.0, 8, pairing=pairing, num_groups=2)
  np.testing.assert_array_equal(  # within each group of 4, as on each of 2 devices
      grouped.partners[:, 0], [g * 4 + partner_of(i, 4) for g in range(2) for i in range(4)])
  with pytest.raises(ValueError, match="num_sources=2"):
    mixing_lib.sample_mixing(KEY, 1.0, 8, pairing=pairing, num_sources=3)
