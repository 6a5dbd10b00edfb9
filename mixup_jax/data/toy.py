"""2-D toy data: the two-class problem of Figure 1b and the GAN targets of Figure 5.

Figure 1b contrasts the sharp ERM decision boundary with mixup's smooth, linear
transition of p(y=1|x) between two classes in the plane. The paper does not give its
data, so we use two concentric noisy rings: class 0 at radius 1, class 1 at radius 2,
uniform angle, Gaussian radial noise of std 0.1. The classes are separable (a circle
of radius 1.5 splits them), so ERM can draw a hard boundary, and every mixup pair of
different classes crosses the band between them, where mixup's p(y=1|x) rises
linearly.

The GAN targets (Figure 5) are mixtures of equally weighted isotropic Gaussians with
std 0.01 (the paper's value):
- 'ring8': 8 modes at angles 0, 45, ..., 315 degrees on a circle of radius sqrt(2);
- 'grid25': 25 modes on the grid {-2, -1, 0, 1, 2}^2 (spacing 1).
The paper states only the number of modes and the std; the geometry (radius sqrt(2),
spacing 1) is the one public reproductions of this experiment use.
`gan_mode_centres` exposes the centres so that an experiment can count the modes a
generator covers.

Every sampler takes an explicit JAX key. Registered datasets: 'toy2d' (Figure 1b),
'gan/ring8' and 'gan/grid25' (fixed samples labelled by mode).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mixup_jax.data import pipeline
from mixup_jax.data import registry

GAN_TARGETS = ("ring8", "grid25")
GAN_STD = 0.01
RING_RADIUS = float(np.sqrt(2.0))
GRID_SPACING = 1.0
TWO_RINGS_RADII = (1.0, 2.0)  # class 0, class 1
TWO_RINGS_NOISE = 0.1


def gan_mode_centres(name: str) -> np.ndarray:
  """Centres of the GAN target's modes.

  Args:
    name: 'ring8' or 'grid25'.

  Returns:
    [K, 2] float32: K = 8 (counter-clockwise from (radius, 0)) or 25 (row-major,
    x fastest, from (-2, -2)).
  """
  if name == "ring8":
    angles = 2 * np.pi * np.arange(8) / 8
    return (RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)
  if name == "grid25":
    ticks = GRID_SPACING * np.arange(-2, 3)
    y, x = np.meshgrid(ticks, ticks, indexing="ij")
    return np.stack([x.ravel(), y.ravel()], axis=1).astype(np.float32)
  raise ValueError(f"name={name!r} is not a GAN target; use one of {GAN_TARGETS}.")


def _check_std(std) -> None:
  if not isinstance(std, (int, float)) or isinstance(std, bool) or not 0 < std < np.inf:
    raise ValueError(f"std must be a positive finite number (the paper's: {GAN_STD}), got {std!r}.")


@functools.partial(jax.jit, static_argnames=("name", "n", "std"))
def sample_gan_target_with_modes(
    rng: jax.Array, name: str, n: int, std: float = GAN_STD
) -> tuple[jax.Array, jax.Array]:
  """`n` points of a GAN target and the mode each was drawn from (jitted).

  `std` is the modes' standard deviation: the paper's 0.01 unless an experiment
  widens the modes on purpose (to ask whether the toy's scale is what defeats a
  setting).

  Returns:
    (x, mode): x [n, 2] float32, mode [n] int32 index into `gan_mode_centres(name)`.
  """
  centres = jnp.asarray(gan_mode_centres(name))
  if n < 0:
    raise ValueError(f"n={n} must be non-negative.")
  _check_std(std)
  mode_rng, noise_rng = jax.random.split(rng)
  mode = jax.random.randint(mode_rng, (n,), 0, centres.shape[0], dtype=jnp.int32)
  return centres[mode] + std * jax.random.normal(noise_rng, (n, 2), jnp.float32), mode


def sample_gan_target(rng: jax.Array, name: str, n: int, std: float = GAN_STD) -> jax.Array:
  """`n` points of the GAN target `name` ('ring8' or 'grid25'): [n, 2] float32.

  Equal mode weights, isotropic std `std` (default `GAN_STD`, the paper's); jitted,
  `name`, `n` and `std` are static.
  """
  return sample_gan_target_with_modes(rng, name, n, std)[0]


@functools.partial(jax.jit, static_argnames=("n",))
def sample_two_rings(rng: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
  """`n` labelled points of the Figure 1b problem, exactly balanced for even `n` (jitted).

  Returns:
    (x, y): x [n, 2] float32; y [n] int32, alternating 0, 1, 0, ...
  """
  if n < 0:
    raise ValueError(f"n={n} must be non-negative.")
  angle_rng, noise_rng = jax.random.split(rng)
  y = jnp.arange(n, dtype=jnp.int32) % 2
  noise = TWO_RINGS_NOISE * jax.random.normal(noise_rng, (n,))
  radius = jnp.asarray(TWO_RINGS_RADII, jnp.float32)[y] + noise
  angle = jax.random.uniform(angle_rng, (n,), maxval=2 * jnp.pi)
  return jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], axis=1), y


def _split_sample(x: jax.Array, y: jax.Array, num_train: int) -> dict[str, pipeline.ArraySource]:
  """The first `num_train` i.i.d. points for training, the rest for test."""
  x, y = np.asarray(x), np.asarray(y)
  return {
      "train": pipeline.ArraySource({"features": x[:num_train], "label": y[:num_train]}),
      "test": pipeline.ArraySource({"features": x[num_train:], "label": y[num_train:]}),
  }


def toy2d_sources(
    rng: jax.Array, num_train: int = 1000, num_test: int = 1000
) -> dict[str, pipeline.ArraySource]:
  """{'train', 'test'}: one sample of the Figure 1b problem split in two.

  Each is a random-access source of {'features': [2] float32, 'label': int32}; both
  are balanced when `num_train` and `num_test` are even.
  """
  return _split_sample(*sample_two_rings(rng, num_train + num_test), num_train)


def _check_offline(name: str, source: str) -> None:
  if source != "offline":
    raise ValueError(f"{name} is generated, not stored: use source='offline', not {source!r}.")


@registry.register_dataset("toy2d")
def _toy2d(*, data_dir=None, source: str = "offline", seed: int = 0, num_train: int = 1000,
           num_test: int = 1000) -> registry.Dataset:
  """The Figure 1b problem: `num_train` / `num_test` points drawn from `seed`."""
  del data_dir  # Generated, nothing to read.
  _check_offline("toy2d", source)
  sources = toy2d_sources(jax.random.key(seed), num_train, num_test)
  return registry.Dataset(
      name="toy2d", train=sources["train"], test=sources["test"], num_classes=2, input_shape=(2,),
      input_key="features", info={"radii": TWO_RINGS_RADII, "noise": TWO_RINGS_NOISE})


def _register_gan(name: str) -> None:
  @registry.register_dataset(f"gan/{name}")
  def build(*, data_dir=None, source: str = "offline", seed: int = 0, num_train: int = 65536,
            num_test: int = 8192) -> registry.Dataset:
    """A fixed sample of the GAN target, labelled by mode (for the loader; a GAN step
    may instead draw fresh points with `sample_gan_target`)."""
    del data_dir
    _check_offline(f"gan/{name}", source)
    x, mode = sample_gan_target_with_modes(jax.random.key(seed), name, num_train + num_test)
    splits = _split_sample(x, mode, num_train)
    centres = gan_mode_centres(name)
    return registry.Dataset(
        name=f"gan/{name}", train=splits["train"], test=splits["test"], num_classes=len(centres),
        input_shape=(2,), input_key="features", info={"centres": centres, "std": GAN_STD})


for _name in GAN_TARGETS:
  _register_gan(_name)
