r"""Figure 1b: p(y=1|x) of ERM and of mixup on a two-class problem in the plane.

  python -m experiments.toy_figure1b

writes experiments/results/toy_figure1b/{results.json, table.md, probability.png}.

The paper's figure shows ERM drawing a sharp decision boundary and mixup a smooth,
linear transition of p(y=1) from one class to the other. The data
(`mixup_jax.data.toy`, registered as 'toy2d'): class 0 on a noisy ring of radius 1,
class 1 on a noisy ring of radius 2 (radial noise std 0.1). Both models are the MLP
of Table 4 (two hidden layers of 128 ReLU units, Adam lr 1e-3), trained with the
project's training loop (`mixup_jax.trainer.run_training`), ERM and mixup with
alpha = 1 (the paper does not give the figure's alpha), one run per seed.

Numbers, for every seed, from p(y=1|x) on a 201 x 201 grid over [-3, 3]^2:
- band width: the area where 0.1 < p < 0.9, divided by the length of the circle of
  radius 1.5 halfway between the classes: the mean radial width of the transition.
  A sharp boundary gives ~0; the linear ramp from radius 1 to radius 2 gives 0.8.
- the steepest slope: max |grad_x p| over the annulus 1 <= |x| <= 2 between the two
  classes (the linear ramp: 1; a sharp boundary: large). The mean slope there says
  little: any monotone transition inside the annulus averages to ~1.
- the radial profile: p averaged over angles at radii 0 .. 3, and its largest
  distance from the linear ramp p = |x| - 1 on 1 <= |x| <= 2.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import tempfile
import time
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import plotting
from experiments.configs import default as default_config
from mixup_jax import trainer
from mixup_jax.data import toy

RESULTS_DIR = pathlib.Path(__file__).parent / "results" / "toy_figure1b"
_GRID_EXTENT = 3.0
_MID_RADIUS = 0.5 * sum(toy.TWO_RINGS_RADII)


@dataclasses.dataclass(frozen=True)
class Settings:
  """One figure's runs. The defaults are the committed figure.

  Attributes:
    seeds: one ERM and one mixup run per seed (the seed also draws the data).
    alpha: mixup's Beta(alpha, alpha).
    num_train, num_test: points drawn from the problem (balanced).
    num_epochs, batch_size, learning_rate, hidden_sizes: the training recipe.
    grid_size: points per side of the evaluation grid over [-3, 3]^2.
  """

  seeds: tuple[int, ...] = (0, 1, 2)
  alpha: float = 1.0
  num_train: int = 1000
  num_test: int = 1000
  num_epochs: int = 50
  batch_size: int = 50
  learning_rate: float = 1e-3
  hidden_sizes: tuple[int, ...] = (128, 128)
  grid_size: int = 201

  def __post_init__(self):
    if not self.seeds:
      raise ValueError("seeds must name at least one seed.")
    if not self.alpha > 0:
      raise ValueError(f"alpha must be > 0 (mixup's run), got {self.alpha}.")
    if self.grid_size < 11:
      raise ValueError(f"grid_size must be >= 11, got {self.grid_size}.")


def small_settings() -> Settings:
  """The smallest setting: what the test runs."""
  return Settings(seeds=(0,), num_train=200, num_test=200, num_epochs=2, grid_size=41)


# ------------------------------------------------------------------------------
# Training through the project's loop.
# ------------------------------------------------------------------------------


def run_config(settings: Settings, seed: int, alpha: float) -> ml_collections.ConfigDict:
  """The loop's config for one run (experiments/configs/default.py documents it)."""
  config = default_config.get_config()
  config.dataset = "toy2d"
  config.dataset_options = ml_collections.ConfigDict(
      {"seed": seed, "num_train": settings.num_train, "num_test": settings.num_test})
  config.model = "mlp"
  config.model_options = ml_collections.ConfigDict({"hidden_sizes": settings.hidden_sizes})
  config.optimizer = "adam"
  config.learning_rate = settings.learning_rate
  config.weight_decay = 0.0
  config.schedule = "constant"
  config.num_epochs = settings.num_epochs
  config.batch_size = settings.batch_size
  config.eval_batch_size = settings.num_test
  config.mixup.alpha = alpha
  config.seed = seed
  total = settings.num_epochs * (settings.num_train // settings.batch_size)
  config.log_every_steps = total
  config.eval_every_steps = total
  return config


def train(config: ml_collections.ConfigDict) -> tuple[Any, dict[str, Any]]:
  """Runs the training loop on `config` (nothing kept on disk).

  Returns:
    (final train state, the loop's results dict).
  """
  final = {}

  def keep_state(step, state):
    del step
    final["state"] = state

  results = trainer.run_training(
      config, None, dataset=trainer.build_dataset(config),
      model=trainer.build_model(config, num_classes=2), hooks=[keep_state])
  return final["state"], results


# ------------------------------------------------------------------------------
# What the figure measures.
# ------------------------------------------------------------------------------


def grid_points(grid_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(ticks [G], points [G * G, 2]) of the grid over [-3, 3]^2, row-major in y."""
  ticks = np.linspace(-_GRID_EXTENT, _GRID_EXTENT, grid_size, dtype=np.float32)
  yy, xx = np.meshgrid(ticks, ticks, indexing="ij")
  return ticks, np.stack([xx.ravel(), yy.ravel()], axis=1)


def class1_probability(state) -> Callable[[jax.Array], jax.Array]:
  """p(y=1|x) of a trained 2-class model: [N, 2] points -> [N] float32."""

  def probability(points: jax.Array) -> jax.Array:
    logits = state.apply_fn(state.variables, points, train=False)
    return jax.nn.softmax(logits, axis=-1)[:, 1]

  return probability


def smoothness(probability: Callable[[jax.Array], jax.Array], grid_size: int) -> dict[str, Any]:
  """The band width, steepest slope and radial profile of p(y=1|x) (module docstring).

  Args:
    probability: differentiable p(y=1|x), [N, 2] points -> [N].
    grid_size: points per side of the grid over [-3, 3]^2.
  """
  probability_jit = jax.jit(probability)
  gradient_norm = jax.jit(jax.vmap(
      lambda x: jnp.linalg.norm(jax.grad(lambda z: probability(z[None])[0])(x))))
  ticks, points = grid_points(grid_size)
  p = np.asarray(probability_jit(jnp.asarray(points)))
  radius = np.linalg.norm(points, axis=1)
  cell = (ticks[1] - ticks[0]) ** 2
  band = (p > 0.1) & (p < 0.9) & (radius <= _GRID_EXTENT)
  band_width = float(band.sum() * cell / (2 * np.pi * _MID_RADIUS))

  inner, outer = toy.TWO_RINGS_RADII
  annulus = jnp.asarray(points[(radius >= inner) & (radius <= outer)])
  max_slope = float(jnp.max(gradient_norm(annulus)))

  radii = np.linspace(0.0, _GRID_EXTENT, 61, dtype=np.float32)
  angles = np.linspace(0.0, 2 * np.pi, 180, endpoint=False, dtype=np.float32)
  circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
  rays = (radii[:, None, None] * circle[None]).reshape(-1, 2)
  profile = np.asarray(probability_jit(jnp.asarray(rays))).reshape(len(radii), -1).mean(1)
  between = (radii >= inner) & (radii <= outer)
  ramp = (radii - inner) / (outer - inner)
  return {
      "band_width": band_width,
      "max_slope_between_classes": max_slope,
      "max_distance_from_linear_ramp": float(np.abs(profile - ramp)[between].max()),
      "radial_profile": {"radius": [round(float(r), 3) for r in radii],
                         "p_class1": [round(float(v), 4) for v in profile]},
      "_p_grid": p.reshape(grid_size, grid_size),
  }


# ------------------------------------------------------------------------------
# The figure.
# ------------------------------------------------------------------------------


def run_seed(
    settings: Settings, seed: int
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
  """ERM and mixup on the data of `seed`.

  Returns:
    ({method: numbers}, {method: p(y=1) on the grid [G, G]}) for method 'erm', 'mixup'.
  """
  numbers, grids = {}, {}
  for method, alpha in (("erm", 0.0), ("mixup", settings.alpha)):
    state, loop_results = train(run_config(settings, seed, alpha))
    result = smoothness(class1_probability(state), settings.grid_size)
    grids[method] = result.pop("_p_grid")
    numbers[method] = {"seed": seed, "test_error": loop_results["final_test_error"], **result}
    print(f"seed {seed} {method:>5}: test error {numbers[method]['test_error']:5.2f}%  "
          f"band width {result['band_width']:.3f}  max |grad p| "
          f"{result['max_slope_between_classes']:.2f}", flush=True)
  return numbers, grids


def run(settings: Settings, out_dir: str | pathlib.Path | None = RESULTS_DIR) -> dict[str, Any]:
  """Trains ERM and mixup for every seed; writes results.json, table.md, probability.png."""
  start = time.time()
  runs = {"erm": [], "mixup": []}
  grids = None
  for seed in settings.seeds:
    numbers, seed_grids = run_seed(settings, seed)
    grids = grids or seed_grids  # the figure shows the first seed
    for method in runs:
      runs[method].append(numbers[method])
  results = {
      "experiment": "Figure 1b (2-D toy)",
      "settings": dataclasses.asdict(settings),
      "summary": {method: summarise(runs[method]) for method in runs},
      "runs": runs,
      "wall_time_s": time.time() - start,
  }
  if out_dir is not None:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "table.md").write_text(markdown_table(results))
    plot(results, grids, settings, out / "probability.png")
  return results


_NUMBERS = (
    "test_error", "band_width", "max_slope_between_classes", "max_distance_from_linear_ramp")


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
  """{number: {'mean', 'std'}} over seeds of the numbers of `smoothness`."""
  out = {}
  for key in _NUMBERS:
    values = np.array([r[key] for r in runs], np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out[key] = {"mean": float(values.mean()), "std": std}
  return out


def markdown_table(results: dict[str, Any]) -> str:
  """ERM beside mixup: mean +- std over seeds of every number."""
  s = results["summary"]
  labels = {
      "test_error": "test error (%)",
      "band_width": "width of the 0.1 < p < 0.9 band (linear ramp: 0.8)",
      "max_slope_between_classes": "steepest slope, max abs grad p between the rings (ramp: 1)",
      "max_distance_from_linear_ramp": "max distance of the radial profile from the ramp",
  }
  lines = [f"| number (mean +- std over {len(results['runs']['erm'])} seeds) | ERM "
           f"| mixup (alpha {results['settings']['alpha']:g}) |", "|---|---|---|"]
  for key in _NUMBERS:
    lines.append(f"| {labels[key]} | {s['erm'][key]['mean']:.3f} +- {s['erm'][key]['std']:.3f} "
                 f"| {s['mixup'][key]['mean']:.3f} +- {s['mixup'][key]['std']:.3f} |")
  return "\n".join(lines) + "\n"


def draw_probability_map(ax, grid: np.ndarray, settings: Settings, seed: int, title: str):
  """p(y=1|x) over [-3, 3]^2 with its 0.1 / 0.5 / 0.9 contours and a third of the data."""
  x, y = toy.sample_two_rings(jax.random.key(seed), settings.num_train)
  x, y = np.asarray(x), np.asarray(y)
  extent = (-_GRID_EXTENT, _GRID_EXTENT, -_GRID_EXTENT, _GRID_EXTENT)
  image = ax.imshow(grid, origin="lower", extent=extent, cmap="RdBu_r", vmin=0, vmax=1)
  ticks = np.linspace(-_GRID_EXTENT, _GRID_EXTENT, grid.shape[0])
  ax.contour(ticks, ticks, grid, levels=[0.1, 0.5, 0.9], colors="k", linewidths=0.6)
  # A third of the points (labels alternate, so both classes); white class 0 on its
  # blue region, black class 1 on its red one.
  ax.scatter(x[::3, 0], x[::3, 1], c=np.where(y[::3] == 1, "k", "w"), s=2)
  ax.set_title(title, fontsize=10)
  ax.set_aspect("equal")
  return image


def plot(results: dict[str, Any], grids: dict[str, np.ndarray], settings: Settings, path) -> None:
  """p(y=1) maps of ERM and mixup (first seed) and both radial profiles."""
  plt = plotting.pyplot()

  seed = settings.seeds[0]
  fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), dpi=80, layout="constrained")
  draw_probability_map(axes[0], grids["erm"], settings, seed, "ERM: p(y=1|x)")
  image = draw_probability_map(
      axes[1], grids["mixup"], settings, seed, f"mixup (alpha = {settings.alpha:g}): p(y=1|x)")
  fig.colorbar(image, ax=axes[1], fraction=0.05)
  ax = axes[2]
  inner, outer = toy.TWO_RINGS_RADII
  for method, color in (("erm", "#636363"), ("mixup", "#3182bd")):
    for i, r in enumerate(results["runs"][method]):
      prof = r["radial_profile"]
      ax.plot(prof["radius"], prof["p_class1"], color=color, lw=1,
              label=method.replace("erm", "ERM") if i == 0 else None)
  ax.plot([0, inner, outer, _GRID_EXTENT], [0, 0, 1, 1], "k--", lw=0.8, label="linear ramp")
  ax.set_xlabel("radius |x|  (class 0 at 1, class 1 at 2)")
  ax.set_ylabel("p(y=1), mean over angles")
  ax.set_title("radial profile, every seed", fontsize=10)
  ax.legend(fontsize=8)
  plotting.save(fig, path, tight_layout=False, bbox_inches="tight")


# ------------------------------------------------------------------------------
# Command line.
# ------------------------------------------------------------------------------


def _define_flags() -> None:
  flags.DEFINE_string("out_dir", None, "Where the results go (default: "
                      "experiments/results/toy_figure1b/; a new temporary folder for "
                      "--size=smallest).")
  flags.DEFINE_integer("num_seeds", 3, "Seeds 0 .. num_seeds - 1.")
  flags.DEFINE_float("alpha", 1.0, "mixup's alpha.")
  flags.DEFINE_enum("size", "full", ["full", "smallest"], "full: the committed results; "
                    "smallest: 1 seed, 2 epochs (--num_seeds and --alpha ignored), for tests.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  out_dir = args.out_dir or (
      tempfile.mkdtemp(prefix="toy_figure1b_smallest_") if args.size == "smallest"
      else RESULTS_DIR)
  if args.size == "smallest":
    settings = small_settings()
  else:
    settings = Settings(seeds=tuple(range(args.num_seeds)), alpha=args.alpha)
  results = run(settings, out_dir)
  print()
  print(markdown_table(results))
  print(f"Total {results['wall_time_s']:.0f} s; outputs in {out_dir}")


if __name__ == "__main__":
  _define_flags()  # Here, not at import: other entries import this module.
  app.run(main)
