"""The GAN objectives of Figure 5: the standard (ERM) GAN and the mixup GAN.

  state = create_gan_state(rng, generator, discriminator, latent_dim=2, data_dim=2,
                           generator_tx=optim.adam(), discriminator_tx=optim.adam())
  train_step = jax.jit(make_gan_train_step(alpha=0.2, latent_dim=2))
  state, metrics = train_step(state, real)  # real: [discriminator_steps + 1, B, 2]

Both objectives are the paper's minimax games with the sigmoid binary cross-entropy
l(logit, target) = -target log s(logit) - (1 - target) log(1 - s(logit)):

  ERM GAN:    V(d, g) = E_x l(d(x), 1) + E_z l(d(g(z)), 0)
  mixup GAN:  V(d, g) = E_{x, z, lambda} l(d(lambda x + (1 - lambda) g(z)), lambda)

and in both the discriminator minimises V while the generator maximises it
(max_g min_d V). In the mixup GAN the discriminator never sees a pure real or
fake point: it must tell how much of a mixed point is real, so its output varies
smoothly between the data and the generator's samples. With lambda ~ Beta(alpha,
alpha) and alpha -> 0, lambda is 0 or 1 with probability 1/2 each and the mixup
objective becomes half the ERM one, so alpha = 0 here means the ERM GAN.

Mixing goes through `mixup_jax.mixing` with pairing="given": row i of the real
batch is mixed with row i of the generated batch, and the discriminator's soft
target is the weight of the real row (`mix_targets` of ones against zeros).

One `train_step` is one generator update preceded by `discriminator_steps`
discriminator updates (the paper: 5), each on a fresh real batch and fresh noise.
All randomness comes from `fold_in(state.rng, state.step)`.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mixup_jax import losses
from mixup_jax import mixing as mixing_lib
from mixup_jax.train_state import TrainState, create_train_state

PyTree = Any
Metrics = dict[str, jax.Array]
ApplyFn = Callable[[PyTree, jax.Array], jax.Array]

# Sub-streams of a step's key, so adding a draw never shifts the others.
_DISCRIMINATOR, _GENERATOR = 0, 1
_NOISE, _MIXING = 0, 1


class GanState(flax.struct.PyTreeNode):
  """Both players of a GAN and the run's key.

  Attributes:
    step: int32 scalar, the number of generator updates taken.
    generator: TrainState of the generator (noise [B, Z] -> points [B, D]).
    discriminator: TrainState of the discriminator (points [B, D] -> logits [B, 1]).
    rng: the run's key; never advanced: step n draws from fold_in(rng, n).
  """

  step: jax.Array
  generator: TrainState
  discriminator: TrainState
  rng: jax.Array


def create_gan_state(
    rng: jax.Array,
    generator: Any,
    discriminator: Any,
    *,
    latent_dim: int,
    data_dim: int,
    generator_tx: optax.GradientTransformation,
    discriminator_tx: optax.GradientTransformation,
) -> GanState:
  """Initialises both networks and their optimizers: step 0 of a GAN run.

  Args:
    rng: the run's key; split into the two initialisations and the step key.
    generator: a Flax module mapping noise [B, latent_dim] to points [B, data_dim].
    discriminator: a Flax module mapping points [B, data_dim] to logits [B, 1].
    latent_dim: Z, the dimension of the generator's Gaussian noise.
    data_dim: D, the dimension of the data points.
    generator_tx, discriminator_tx: their optax transformations.

  Returns:
    A GanState with step 0.
  """
  for name, value in (("latent_dim", latent_dim), ("data_dim", data_dim)):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}.")
  g_key, d_key, state_key = jax.random.split(rng, 3)
  g_state = create_train_state(g_key, generator, generator_tx, jnp.zeros((1, latent_dim)))
  d_state = create_train_state(d_key, discriminator, discriminator_tx, jnp.zeros((1, data_dim)))
  for name, state in (("generator", g_state), ("discriminator", d_state)):
    if state.batch_stats:
      raise ValueError(
          f"{name} has BatchNorm statistics; the GAN step supports networks without "
          "BatchNorm (the paper's fully connected ReLU networks)."
      )
  out = jax.eval_shape(g_state.apply_fn, {"params": g_state.params}, jnp.zeros((1, latent_dim)))
  if out.shape != (1, data_dim):
    raise ValueError(f"generator maps [1, {latent_dim}] noise to {out.shape}, not [1, {data_dim}].")
  out = jax.eval_shape(d_state.apply_fn, {"params": d_state.params}, jnp.zeros((1, data_dim)))
  if out.shape != (1, 1):
    raise ValueError(f"discriminator must output one logit per point ([1, 1]), got {out.shape}.")
  return GanState(
      step=jnp.zeros((), jnp.int32), generator=g_state, discriminator=d_state, rng=state_key
  )


def gan_value(
    d_fn: ApplyFn,
    real: jax.Array,
    fake: jax.Array,
    mixing: mixing_lib.Mixing | None = None,
) -> tuple[jax.Array, jax.Array]:
  """V(d, g) of the ERM GAN (mixing None) or of the mixup GAN, and the targets' mean.

  Args:
    d_fn: points [B, D] -> logits [B, 1].
    real: [B, D] data points.
    fake: [B, D] generated points.
    mixing: from `sample_mixing(..., pairing="given")` for B rows: row i of the
      discriminator's input is lam_i * real_i + (1 - lam_i) * fake_i, with soft
      target lam_i. None gives the standard objective.

  Returns:
    (V, mean lambda): float32 scalars. The discriminator minimises V and the
    generator maximises it. Mean lambda is 1 for the ERM GAN.
  """
  if real.shape != fake.shape or real.ndim != 2:
    raise ValueError(f"real {real.shape} and fake {fake.shape} must both be [B, D].")
  if mixing is None:
    real_loss = losses.sigmoid_binary_cross_entropy(d_fn(real)[:, 0], 1.0)
    fake_loss = losses.sigmoid_binary_cross_entropy(d_fn(fake)[:, 0], 0.0)
    return jnp.mean(real_loss) + jnp.mean(fake_loss), jnp.ones((), jnp.float32)
  if not mixing.given_partner:
    raise ValueError('mixing must be sampled with pairing="given" (real row i with fake row i).')
  batch = real.shape[0]
  mixed = mixing_lib.apply_mixing(mixing, real, fake)
  targets = mixing_lib.mix_targets(
      mixing, jnp.ones((batch,), jnp.float32), partner_y=jnp.zeros((batch,), jnp.float32)
  )
  value = jnp.mean(losses.sigmoid_binary_cross_entropy(d_fn(mixed)[:, 0], targets))
  return value, jnp.mean(mixing.lam)


GENERATOR_LOSSES = ("minimax", "non_saturating")


def non_saturating_generator_loss(
    d_fn: ApplyFn,
    real: jax.Array,
    fake: jax.Array,
    mixing: mixing_lib.Mixing | None = None,
) -> jax.Array:
  """The generator's non-saturating loss: the discriminator's loss on swapped targets.

  Maximising V, as the minimax game asks, gives the generator the gradient of
  log(1 - s(d(g(z)))), which vanishes exactly when the discriminator rejects its
  samples confidently (Goodfellow et al., 2014, Section 3). The usual remedy is to
  minimise l(d(g(z)), 1) instead. Its mixup counterpart swaps the soft target
  too: the generator minimises l(d(lam x + (1 - lam) g(z)), 1 - lam), which at
  lam = 0 is the standard non-saturating loss. The paper trains the minimax
  game; this loss is here to test whether saturation is what stops it.

  Args: as `gan_value`.

  Returns:
    float32 scalar, what the generator minimises.
  """
  if real.shape != fake.shape or real.ndim != 2:
    raise ValueError(f"real {real.shape} and fake {fake.shape} must both be [B, D].")
  if mixing is None:
    return jnp.mean(losses.sigmoid_binary_cross_entropy(d_fn(fake)[:, 0], 1.0))
  if not mixing.given_partner:
    raise ValueError('mixing must be sampled with pairing="given" (real row i with fake row i).')
  batch = real.shape[0]
  mixed = mixing_lib.apply_mixing(mixing, real, fake)
  real_share = mixing_lib.mix_targets(
      mixing, jnp.ones((batch,), jnp.float32), partner_y=jnp.zeros((batch,), jnp.float32)
  )
  return jnp.mean(losses.sigmoid_binary_cross_entropy(d_fn(mixed)[:, 0], 1.0 - real_share))


def _check_options(alpha, latent_dim, discriminator_steps, granularity, generator_loss) -> None:
  if generator_loss not in GENERATOR_LOSSES:
    raise ValueError(
        f"generator_loss must be one of {GENERATOR_LOSSES} (the paper: 'minimax'), "
        f"got {generator_loss!r}."
    )
  if not isinstance(alpha, (int, float)) or not np.isfinite(alpha) or alpha < 0:
    raise ValueError(f"alpha must be a finite number >= 0 (0 is the ERM GAN), got {alpha!r}.")
  if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
    raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}.")
  if (
      not isinstance(discriminator_steps, int)
      or isinstance(discriminator_steps, bool)
      or discriminator_steps < 1
  ):
    raise ValueError(
        f"discriminator_steps must be a positive int (the paper: 5), got {discriminator_steps!r}."
    )
  if granularity not in ("batch", "example"):
    raise ValueError(f'granularity must be "batch" or "example", got {granularity!r}.')


def make_gan_train_step(
    *,
    alpha: float = 0.2,
    latent_dim: int = 2,
    discriminator_steps: int = 5,
    granularity: str = "batch",
    generator_loss: str = "minimax",
) -> Callable[[GanState, jax.Array], tuple[GanState, Metrics]]:
  """Builds `train_step(state, real) -> (state, metrics)`, pure and jittable.

  Args:
    alpha: lambda ~ Beta(alpha, alpha) for the mixup GAN (the paper: 0.2); 0 trains
      the standard (ERM) GAN.
    latent_dim: Z of the generator's noise z ~ N(0, I).
    discriminator_steps: discriminator updates before each generator update.
    granularity: "batch" draws one lambda per minibatch (as the paper's classifiers
      do), "example" one per row.
    generator_loss: "minimax" (the paper: the generator maximises V) or
      "non_saturating" (`non_saturating_generator_loss`).

  `real` is [discriminator_steps + 1, B, D] float: slice k < discriminator_steps is
  the real batch of discriminator update k, the last slice the real batch that the
  generator's mixup objective mixes with (the ERM GAN's generator ignores it).

  Metrics (float32 scalars): 'discriminator_loss' (V averaged over the
  discriminator updates, before each update), 'generator_loss' (what the
  generator minimises: -V, or the non-saturating loss), 'lambda' (mean lambda of
  the discriminator updates; 1 for ERM), 'd_real' and 'd_fake' (mean discriminator
  probability of pure real and pure generated points, at the generator update).
  """
  _check_options(alpha, latent_dim, discriminator_steps, granularity, generator_loss)

  def generate(g_params, g_state: TrainState, key, batch):
    z = jax.random.normal(jax.random.fold_in(key, _NOISE), (batch, latent_dim), jnp.float32)
    return g_state.apply_fn({"params": g_params}, z, train=True)

  def draw_mixing(key, batch):
    if alpha == 0:
      return None
    return mixing_lib.sample_mixing(
        jax.random.fold_in(key, _MIXING), alpha, batch, granularity=granularity, pairing="given"
    )

  def d_fn_of(d_state: TrainState, d_params):
    return lambda x: d_state.apply_fn({"params": d_params}, x, train=True)

  def train_step(state: GanState, real: jax.Array) -> tuple[GanState, Metrics]:
    if real.ndim != 3 or real.shape[0] != discriminator_steps + 1:
      raise ValueError(
          f"real must be [discriminator_steps + 1 = {discriminator_steps + 1}, B, D], "
          f"got shape {real.shape}."
      )
    if not jnp.issubdtype(real.dtype, jnp.floating):
      raise ValueError(f"real must be floating point, got dtype {real.dtype}.")
    batch = real.shape[1]
    step_rng = jax.random.fold_in(state.rng, state.step)
    d_rng = jax.random.fold_in(step_rng, _DISCRIMINATOR)
    g_state = state.generator

    def discriminator_update(d_state: TrainState, inputs):
      k, real_k = inputs
      key = jax.random.fold_in(d_rng, k)
      fake = jax.lax.stop_gradient(generate(g_state.params, g_state, key, batch))
      mixing = draw_mixing(key, batch)

      def loss_fn(d_params):
        return gan_value(d_fn_of(d_state, d_params), real_k, fake, mixing)

      (value, lam), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_state.params)
      return d_state.apply_gradients(grads, {}), (value, lam)

    d_state, (d_values, lams) = jax.lax.scan(
        discriminator_update,
        state.discriminator,
        (jnp.arange(discriminator_steps), real[:discriminator_steps]),
    )

    g_key = jax.random.fold_in(step_rng, _GENERATOR)
    g_mixing = draw_mixing(g_key, batch)
    d_fn = d_fn_of(d_state, d_state.params)

    def generator_loss_fn(g_params):
      fake = generate(g_params, g_state, g_key, batch)
      if generator_loss == "non_saturating":
        return non_saturating_generator_loss(d_fn, real[-1], fake, g_mixing), fake
      value, _ = gan_value(d_fn, real[-1], fake, g_mixing)
      return -value, fake

    (g_loss, fake), g_grads = jax.value_and_grad(generator_loss_fn, has_aux=True)(g_state.params)
    new_state = state.replace(
        step=state.step + 1,
        generator=g_state.apply_gradients(g_grads, {}),
        discriminator=d_state,
    )
    metrics = {
        "discriminator_loss": jnp.mean(d_values),
        "generator_loss": g_loss,
        "lambda": jnp.mean(lams),
        "d_real": jnp.mean(jax.nn.sigmoid(d_fn(real[-1]))),
        "d_fake": jnp.mean(jax.nn.sigmoid(d_fn(fake))),
    }
    return new_state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

  return train_step


def generate_samples(
    state: GanState, rng: jax.Array, num_samples: int, latent_dim: int
) -> jax.Array:
  """[num_samples, D] points of the generator, from noise drawn with `rng`."""
  if not isinstance(num_samples, int) or num_samples < 1:
    raise ValueError(f"num_samples must be a positive int, got {num_samples!r}.")
  z = jax.random.normal(rng, (num_samples, latent_dim), jnp.float32)
  return state.generator.apply_fn({"params": state.generator.params}, z, train=False)


def mode_coverage(
    samples: jax.Array,
    centres: jax.Array,
    std: float,
    *,
    num_std: float = 3.0,
    min_samples: int = 20,
) -> dict[str, jax.Array]:
  """How many modes of a Gaussian mixture the samples cover, and how many samples are good.

  The convention of the mode-collapse literature on these toys: a sample is "high
  quality" when it lies within `num_std` standard deviations of its nearest mode's
  centre, and a mode is covered when at least `min_samples` high-quality samples
  are assigned to it.

  Args:
    samples: [N, D] generated points.
    centres: [K, D] the mixture's mode centres.
    std: the modes' (isotropic) standard deviation.
    num_std: the radius, in standard deviations, of a mode's neighbourhood.
    min_samples: high-quality samples a mode needs to count as covered.

  Returns:
    'modes_covered' (int32 scalar), 'high_quality_fraction' (float32 scalar: the
    share of samples within num_std * std of a mode) and 'counts' ([K] int32
    high-quality samples per mode).
  """
  if samples.ndim != 2 or centres.ndim != 2 or samples.shape[1] != centres.shape[1]:
    raise ValueError(
        f"samples [N, D] and centres [K, D] must agree, got {samples.shape} and {centres.shape}."
    )
  if not std > 0 or not num_std > 0:
    raise ValueError(f"std and num_std must be > 0, got {std!r} and {num_std!r}.")
  if not isinstance(min_samples, int) or min_samples < 1:
    raise ValueError(f"min_samples must be a positive int, got {min_samples!r}.")
  distances = jnp.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)  # [N, K]
  nearest = jnp.argmin(distances, axis=1)
  good = jnp.min(distances, axis=1) <= num_std * std
  counts = jnp.zeros(centres.shape[0], jnp.int32).at[nearest].add(good.astype(jnp.int32))
  return {
      "modes_covered": jnp.sum(counts >= min_samples).astype(jnp.int32),
      "high_quality_fraction": jnp.mean(good.astype(jnp.float32)),
      "counts": counts,
  }
