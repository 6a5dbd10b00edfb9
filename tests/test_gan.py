"""The GAN objectives and train step of Figure 5 (mixup_jax.gan)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixup_jax import gan
from mixup_jax import mixing as mixing_lib
from mixup_jax import models
from mixup_jax import optim
from mixup_jax.data import toy

WIDTH, BATCH, D_STEPS = 16, 32, 2


def _linear_discriminator(x):
  """A fixed discriminator with known logits: d(x) = 2 x_0 - x_1 + 0.5."""
  return (2.0 * x[:, :1] - x[:, 1:2] + 0.5)


def _bce(logit, target):
  p = 1.0 / (1.0 + np.exp(-logit))
  return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def _state(seed=0):
  hidden = (WIDTH,) * 3
  return gan.create_gan_state(
      jax.random.PRNGKey(seed),
      models.get_model("gan_generator", 2, hidden_sizes=hidden),
      models.get_model("gan_discriminator", 1, hidden_sizes=hidden),
      latent_dim=2, data_dim=2, generator_tx=optim.adam(), discriminator_tx=optim.adam())


@jax.jit
def _real(key):
  points = toy.sample_gan_target(key, "ring8", (D_STEPS + 1) * BATCH)
  return points.reshape(D_STEPS + 1, BATCH, 2)


@pytest.fixture(scope="module")
def state():
  return jax.jit(_state)()


@pytest.fixture(scope="module")
def steps():
  """Jitted ERM and mixup steps, compiled once for the module."""
  return {alpha: jax.jit(gan.make_gan_train_step(alpha=alpha, discriminator_steps=D_STEPS))
          for alpha in (0.0, 0.2)}


def test_erm_value_is_the_standard_gan_objective():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(2, 6, 2)).astype(np.float32)
  value, lam = jax.jit(gan.gan_value, static_argnums=0)(_linear_discriminator, real, fake)
  want = _bce(np.asarray(_linear_discriminator(real))[:, 0], 1.0).mean() + _bce(
      np.asarray(_linear_discriminator(fake))[:, 0], 0.0).mean()
  np.testing.assert_allclose(value, want, rtol=1e-5)
  assert float(lam) == 1.0


def test_mixup_value_predicts_the_share_of_real_data():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(2, 8, 2)).astype(np.float32)

  @jax.jit
  def mixup_value(key, real, fake):
    mixing = mixing_lib.sample_mixing(key, 0.2, 8, granularity="example", pairing="given")
    return gan.gan_value(_linear_discriminator, real, fake, mixing), mixing.lam

  (value, mean_lam), lam = mixup_value(jax.random.PRNGKey(3), real, fake)
  lam = np.asarray(lam)
  assert len(np.unique(lam)) == 8  # one lambda per row
  mixed = lam[:, None] * real + (1 - lam[:, None]) * fake
  want = _bce(np.asarray(_linear_discriminator(mixed))[:, 0], lam).mean()
  np.testing.assert_allclose(value, want, rtol=1e-5)
  np.testing.assert_allclose(mean_lam, lam.mean(), rtol=1e-6)


def test_value_rejects_a_mixing_without_given_partners():
  mixing = jax.eval_shape(lambda: mixing_lib.sample_mixing(jax.random.PRNGKey(0), 0.2, 4))
  x = jax.ShapeDtypeStruct((4, 2), jnp.float32)
  with pytest.raises(ValueError, match='pairing="given"'):
    jax.eval_shape(lambda m, a: gan.gan_value(_linear_discriminator, a, a, m), mixing, x)


def test_non_saturating_loss_swaps_the_targets():
  rng = np.random.default_rng(2)
  real, fake = rng.normal(size=(2, 8, 2)).astype(np.float32)
  loss = jax.jit(gan.non_saturating_generator_loss, static_argnums=0)
  erm = loss(_linear_discriminator, real, fake)
  want = _bce(np.asarray(_linear_discriminator(fake))[:, 0], 1.0).mean()
  np.testing.assert_allclose(erm, want, rtol=1e-5)

  @jax.jit
  def mixup_loss(key, real, fake):
    mixing = mixing_lib.sample_mixing(key, 0.2, 8, granularity="example", pairing="given")
    return gan.non_saturating_generator_loss(_linear_discriminator, real, fake, mixing), mixing.lam

  value, lam = mixup_loss(jax.random.PRNGKey(3), real, fake)
  lam = np.asarray(lam)
  mixed = lam[:, None] * real + (1 - lam[:, None]) * fake
  want = _bce(np.asarray(_linear_discriminator(mixed))[:, 0], 1 - lam).mean()
  np.testing.assert_allclose(value, want, rtol=1e-5)


def test_non_saturating_gradient_survives_a_confident_discriminator():
  """Where d rejects the fakes (logit -10), the minimax gradient all but vanishes."""
  real = jnp.zeros((4, 2))
  fake = jnp.tile(jnp.asarray([[-5.0, 0.5]]), (4, 1))  # d = 2 * -5 - 0.5 + 0.5 = -10
  minimax = jax.grad(lambda f: -gan.gan_value(_linear_discriminator, real, f)[0])(fake)
  non_saturating = jax.grad(
      lambda f: gan.non_saturating_generator_loss(_linear_discriminator, real, f))(fake)
  # Both push along d's gradient (2, -1); minimax by sigmoid(-10), the other by ~1.
  np.testing.assert_allclose(minimax[0], -jax.nn.sigmoid(-10.0) * np.array([2, -1]) / 4, rtol=1e-4)
  np.testing.assert_allclose(non_saturating[0], -(1 - jax.nn.sigmoid(-10.0)) * np.array([2, -1]) / 4,
                             rtol=1e-4)


def test_non_saturating_step_trains_the_same_discriminator_and_lowers_its_loss(steps, state):
  step = jax.jit(gan.make_gan_train_step(alpha=0.2, discriminator_steps=D_STEPS,
                                         generator_loss="non_saturating"))
  real = _real(jax.random.PRNGKey(5))
  new, metrics = step(state, real)
  minimax, _ = steps[0.2](state, real)
  for a, b in zip(jax.tree.leaves(new.discriminator), jax.tree.leaves(minimax.discriminator)):
    np.testing.assert_array_equal(a, b)  # the discriminator's game is unchanged

  @jax.jit
  def loss(generator):
    g_key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), gan._GENERATOR)
    z = jax.random.normal(jax.random.fold_in(g_key, gan._NOISE), (BATCH, 2))
    mixing = mixing_lib.sample_mixing(jax.random.fold_in(g_key, gan._MIXING), 0.2, BATCH,
                                      pairing="given")
    d_fn = lambda x: new.discriminator.apply_fn({"params": new.discriminator.params}, x)
    fake = generator.apply_fn({"params": generator.params}, z)
    return gan.non_saturating_generator_loss(d_fn, real[-1], fake, mixing)

  before, after = float(loss(state.generator)), float(loss(new.generator))
  np.testing.assert_allclose(before, float(metrics["generator_loss"]), rtol=1e-4)
  assert after < before, (before, after)
  assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(new.generator.params),
                                                   jax.tree.leaves(minimax.generator.params)))


def test_step_updates_both_players_and_reports_metrics(steps, state):
  new, metrics = steps[0.2](state, _real(jax.random.PRNGKey(1)))
  assert int(new.step) == 1 and int(new.generator.step) == 1
  assert int(new.discriminator.step) == D_STEPS
  assert set(metrics) == {"discriminator_loss", "generator_loss", "lambda", "d_real", "d_fake"}
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert 0.0 < float(metrics["lambda"]) < 1.0
  _, erm_metrics = steps[0.0](state, _real(jax.random.PRNGKey(1)))
  assert float(erm_metrics["lambda"]) == 1.0
  again, _ = steps[0.2](state, _real(jax.random.PRNGKey(1)))  # a pure function of its inputs
  for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(again)):
    np.testing.assert_array_equal(a, b)


def test_generator_ascends_the_value(steps, state):
  """The generator maximises V: V(d_new, g_new) > V(d_new, g_old) on the step's draw."""
  real = _real(jax.random.PRNGKey(5))
  for alpha in (0.0, 0.2):
    new, metrics = steps[alpha](state, real)

    @jax.jit
    def value(generator, discriminator):
      g_key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), gan._GENERATOR)
      z = jax.random.normal(jax.random.fold_in(g_key, gan._NOISE), (BATCH, 2))
      mixing = None
      if alpha:
        mixing = mixing_lib.sample_mixing(
            jax.random.fold_in(g_key, gan._MIXING), alpha, BATCH, pairing="given")
      d_fn = lambda x: discriminator.apply_fn({"params": discriminator.params}, x)
      fake = generator.apply_fn({"params": generator.params}, z)
      return gan.gan_value(d_fn, real[-1], fake, mixing)[0]

    before = float(value(state.generator, new.discriminator))
    after = float(value(new.generator, new.discriminator))
    np.testing.assert_allclose(before, -float(metrics["generator_loss"]), rtol=1e-4)
    assert after > before, (alpha, before, after)


def test_erm_discriminator_learns_to_separate_real_from_generated(steps, state):
  for i in range(60):
    state, metrics = steps[0.0](state, _real(jax.random.PRNGKey(100 + i)))
  assert float(metrics["d_real"]) > float(metrics["d_fake"]) + 0.1, metrics


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=-1.0), "alpha"),
    (dict(alpha=float("nan")), "alpha"),
    (dict(discriminator_steps=0), "discriminator_steps"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(granularity="device"), "granularity"),
    (dict(generator_loss="wasserstein"), "generator_loss"),
])
def test_bad_options_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    gan.make_gan_train_step(**kwargs)


def test_wrong_real_shape_raises_at_trace_time(state):
  step = gan.make_gan_train_step(discriminator_steps=D_STEPS)
  with pytest.raises(ValueError, match="discriminator_steps \\+ 1"):
    jax.eval_shape(step, state, jnp.zeros((D_STEPS, BATCH, 2)))


def test_create_rejects_a_discriminator_with_several_outputs():
  generator = models.get_model("gan_generator", 2, hidden_sizes=(4,))
  three_logits = models.get_model("mlp", 3, hidden_sizes=(4,))
  with pytest.raises(ValueError, match="one logit"):
    jax.eval_shape(lambda: gan.create_gan_state(
        jax.random.PRNGKey(0), generator, three_logits, latent_dim=2, data_dim=2,
        generator_tx=optim.adam(), discriminator_tx=optim.adam()))


def test_mode_coverage_counts_modes_and_good_samples():
  centres = jnp.asarray(toy.gan_mode_centres("ring8"))
  rng = np.random.default_rng(0)
  near0 = np.asarray(centres[0]) + 0.01 * rng.uniform(-1, 1, size=(30, 2))
  near3 = np.asarray(centres[3]) + 0.01 * rng.uniform(-1, 1, size=(10, 2))
  far = np.zeros((5, 2))  # the centre of the ring is no mode
  samples = jnp.asarray(np.concatenate([near0, near3, far]), jnp.float32)
  coverage = jax.jit(gan.mode_coverage, static_argnames=("std", "min_samples"))
  out = coverage(samples, centres, std=toy.GAN_STD, min_samples=20)
  assert int(out["modes_covered"]) == 1
  np.testing.assert_allclose(out["high_quality_fraction"], 40 / 45, rtol=1e-6)
  assert np.asarray(out["counts"]).tolist() == [30, 0, 0, 10, 0, 0, 0, 0]
  assert int(coverage(samples, centres, std=toy.GAN_STD, min_samples=10)["modes_covered"]) == 2


def test_generate_samples_shape(state):
  points = jax.jit(gan.generate_samples, static_argnums=(2, 3))(state, jax.random.PRNGKey(0), 7, 2)
  assert points.shape == (7, 2) and points.dtype == jnp.float32


def test_gan_networks_take_dcgan_initialisation():
  x = jnp.zeros((1, 2))
  dcgan = models.get_model("gan_generator", 2, hidden_sizes=(256, 256), init_std=0.02)
  params = dcgan.init(jax.random.key(0), x)["params"]
  kernel = np.asarray(params["hidden2"]["kernel"])
  assert abs(kernel.std() - 0.02) < 0.001 and abs(kernel.mean()) < 0.001
  assert all(not np.asarray(layer["bias"]).any() for layer in params.values())
  torch_default = models.get_model("gan_discriminator", 1, hidden_sizes=(256, 256))
  default = torch_default.init(jax.random.key(0), x)["params"]
  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases.
  assert abs(np.asarray(default["hidden2"]["kernel"]).std() - 1 / np.sqrt(3 * 256)) < 0.002
  assert np.asarray(default["hidden2"]["bias"]).any()
  for bad in (0.0, -0.02, True, "0.02"):
    with pytest.raises(ValueError, match="init_std must be None"):
      models.get_model("gan_discriminator", 1, init_std=bad)
