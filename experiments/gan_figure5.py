r"""Figure 5: the ERM GAN against the mixup GAN (alpha = 0.2) on two 2-D toys.

  python -m experiments.gan_figure5                       # scaled down, Adam lr 1e-3
  python -m experiments.gan_figure5 --size=cpu_lr1e-4     # scaled down, Adam lr 1e-4
  python -m experiments.gan_figure5 --size=full           # the paper's networks and schedule
  python -m experiments.gan_figure5 --size=full --targets=ring8   # one target

writes experiments/results/gan_figure5/<size>/{results.json, table.md, ring8.png,
grid25.png}.

Targets (`mixup_jax.data.toy`): a ring of 8 Gaussians and a 5 x 5 grid of 25, std
0.01. The objectives and the step are `mixup_jax.gan` (max_g min_d of the sigmoid
cross-entropy; the mixup GAN's discriminator predicts the share lambda of real data
in lambda * x + (1 - lambda) * g(z)). Generator input: 2-D Gaussian noise.

Sizes (`--size`):
- full (the paper): generator and discriminator with three hidden layers of 512
  ReLU units, Adam with default settings (lr 1e-3) for both, minibatch 128, five
  discriminator updates per generator update, 20,000 generator updates; samples
  shown after 10, 100, 1,000, 10,000 and 20,000 updates.
- cpu (committed results): the same except hidden layers of 128 units (4x narrower, ~16x
  fewer FLOPs) and 5,000 generator updates (4x fewer); samples shown after 10, 100,
  1,000, 2,500 and 5,000 (wall times of each size: docs/reproducing.md).
- cpu_lr1e-4 (committed results): cpu with Adam lr 1e-4 instead of the default 1e-3. At
  width 128 and lr 1e-3 both GANs drift away from the data (see the README); lr
  1e-4 is what public reproductions of this experiment use.
- cpu_init0.02, cpu_b1_0.5: cpu (lr 1e-3) with one change each, to find what makes
  the paper's optimizer fail here: DCGAN's N(0, 0.02) initialisation with zero
  biases instead of PyTorch's default, or Adam's b1 = 0.5 instead of 0.9.
- cpu_non_saturating, cpu_std0.05: cpu (lr 1e-3) with the generator's
  non-saturating loss instead of the minimax one (is a saturated discriminator what
  stops the generator?), or modes of std 0.05 instead of 0.01, scored at the same
  3 and 10 stds (is the toy's scale, finer than the steps lr 1e-3 takes, what
  defeats it?).
- full_std0.05, full_non_saturating: full with modes of std 0.05 or with the
  non-saturating generator loss, the two changes that give ERM's collapse at width
  128, at the paper's size.
- smallest: a 16-unit network for 30 updates, for the tests.
Every size runs 3 seeds (the smallest, 1) vmapped together; seed s fixes the
initialisation, the noise, the real batches and the mixing, and ERM and mixup of
the same seed share all of them but lambda.

Numbers, from 2,500 generated points per seed at every snapshot
(`mixup_jax.gan.mode_coverage`): a point is "high quality" when it lies within 3
standard deviations (0.03) of its nearest mode's centre, the convention of the
mode-collapse literature on these toys; a mode counts as covered when at least 20
high-quality points fall near it (an even spread puts 312 points on each mode of the
ring and 100 on each of the grid). The same counts at a looser radius of 10 std
(0.1, a tenth of the grid's spacing) are reported beside them. The paper reports
Figure 5 as pictures only.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import tempfile
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments import cifar_runs
from experiments import plotting
from mixup_jax import checkpoint
from mixup_jax import gan
from mixup_jax import models
from mixup_jax import optim
from mixup_jax.data import toy

RESULTS_DIR = pathlib.Path(__file__).parent / "results" / "gan_figure5"
_PLOT_POINTS = 500
_VIEW = {"ring8": 2.2, "grid25": 3.0}  # half-width of the plotted square


@dataclasses.dataclass(frozen=True)
class Settings:
  """One Figure 5 run. The defaults are the paper's (the "full" scale).

  Attributes:
    targets: GAN targets of `mixup_jax.data.toy` ('ring8', 'grid25').
    seeds: seeds, trained together (vmapped).
    alpha: the mixup GAN's Beta(alpha, alpha).
    width: units in each of the three hidden layers of both networks.
    num_iterations: generator updates.
    snapshots: generator updates after which samples are drawn and scored.
    batch_size: real and generated points per update.
    discriminator_steps: discriminator updates per generator update.
    latent_dim: dimension of the generator's Gaussian noise.
    learning_rate: Adam's, for both networks (the paper: the default, 1e-3).
    adam_b1: Adam's first-moment decay (the default 0.9; GAN code often uses 0.5).
    init_std: None for PyTorch's default initialisation of both networks (the
      paper says nothing); a number for DCGAN's N(0, init_std) weights, zero biases.
    generator_loss: "minimax" (the paper's game) or "non_saturating"
      (`mixup_jax.gan.non_saturating_generator_loss`).
    target_std: the std of the targets' modes (the paper: 0.01). Coverage is
      counted in units of it, so a wider toy is scored at the same relative radius.
    num_eval_samples: generated points scored at each snapshot.
    min_samples: points within the radius a mode needs to count as covered.
    loose_num_std: a second, looser radius (in stds) at which modes are also counted.
    chunk: generator updates per compiled call (must divide every snapshot).
    checkpoint_every: generator updates between saved states of a run that has a
      workdir (a multiple of chunk); every snapshot is saved too.
  """

  targets: tuple[str, ...] = toy.GAN_TARGETS
  seeds: tuple[int, ...] = (0, 1, 2)
  alpha: float = 0.2
  width: int = 512
  num_iterations: int = 20_000
  snapshots: tuple[int, ...] = (10, 100, 1000, 10_000, 20_000)
  batch_size: int = 128
  discriminator_steps: int = 5
  latent_dim: int = 2
  learning_rate: float = 1e-3
  adam_b1: float = 0.9
  init_std: float | None = None
  generator_loss: str = "minimax"
  target_std: float = toy.GAN_STD
  num_eval_samples: int = 2500
  min_samples: int = 20
  loose_num_std: float = 10.0
  chunk: int = 10
  checkpoint_every: int = 1000

  def __post_init__(self):
    unknown = sorted(set(self.targets) - set(toy.GAN_TARGETS))
    if unknown or not self.targets:
      raise ValueError(
          f"targets must be a non-empty subset of {toy.GAN_TARGETS}, got {self.targets}.")
    if not self.seeds:
      raise ValueError("seeds must name at least one seed.")
    if not self.alpha > 0:
      raise ValueError(f"alpha must be > 0 (the mixup GAN's), got {self.alpha}.")
    increasing = list(self.snapshots) == sorted(set(self.snapshots))
    if not increasing or self.snapshots[-1] != self.num_iterations:
      raise ValueError(f"snapshots must increase and end at num_iterations="
                       f"{self.num_iterations}, got {self.snapshots}.")
    if any(s % self.chunk for s in self.snapshots):
      raise ValueError(f"chunk={self.chunk} must divide every snapshot {self.snapshots}.")
    if self.generator_loss not in gan.GENERATOR_LOSSES:
      raise ValueError(f"generator_loss must be one of {gan.GENERATOR_LOSSES}, "
                       f"got {self.generator_loss!r}.")
    if not 0 < self.target_std < 0.2:
      raise ValueError(f"target_std must be in (0, 0.2) (the modes stay apart; the paper: "
                       f"{toy.GAN_STD}), got {self.target_std!r}.")
    if self.checkpoint_every < 1 or self.checkpoint_every % self.chunk:
      raise ValueError(f"checkpoint_every={self.checkpoint_every} must be a positive "
                       f"multiple of chunk={self.chunk}.")


_CPU = dict(width=128, num_iterations=5000, snapshots=(10, 100, 1000, 2500, 5000))
SIZES = {
    "full": Settings(),
    "cpu": Settings(**_CPU),
    "cpu_lr1e-4": Settings(**_CPU, learning_rate=1e-4),
    # Why the paper's optimizer fails at this width: one change each, at lr 1e-3.
    "cpu_init0.02": Settings(**_CPU, init_std=0.02),
    "cpu_b1_0.5": Settings(**_CPU, adam_b1=0.5),
    "cpu_non_saturating": Settings(**_CPU, generator_loss="non_saturating"),
    "cpu_std0.05": Settings(**_CPU, target_std=0.05),
    # The two changes that give ERM's collapse at width 128, at the paper's size.
    "full_std0.05": Settings(target_std=0.05),
    "full_non_saturating": Settings(generator_loss="non_saturating"),
    "smallest": Settings(targets=("ring8",), seeds=(0,), width=16, num_iterations=30,
                         snapshots=(10, 30), num_eval_samples=500, min_samples=5,
                         checkpoint_every=10),
}


# ------------------------------------------------------------------------------
# Training: the library's GAN step, vmapped over seeds.
# ------------------------------------------------------------------------------


def _networks(settings: Settings):
  options = {"hidden_sizes": (settings.width,) * 3, "init_std": settings.init_std}
  return (models.get_model("gan_generator", 2, **options),
          models.get_model("gan_discriminator", 1, **options))


def init_states(settings: Settings) -> gan.GanState:
  """A GanState per seed, stacked on a leading axis [S]."""
  generator, discriminator = _networks(settings)

  def init(seed_key):
    return gan.create_gan_state(
        jax.random.fold_in(seed_key, 0), generator, discriminator,
        latent_dim=settings.latent_dim, data_dim=2,
        generator_tx=optim.adam(settings.learning_rate, b1=settings.adam_b1),
        discriminator_tx=optim.adam(settings.learning_rate, b1=settings.adam_b1))

  return jax.jit(jax.vmap(init))(_seed_keys(settings))


def _seed_keys(settings: Settings) -> jax.Array:
  return jnp.stack([jax.random.PRNGKey(s) for s in settings.seeds])


def make_chunk(target: str, alpha: float, settings: Settings):
  """A jitted `chunk(states [S], start) -> (states, mean metrics [S])`: `chunk` updates."""
  step = gan.make_gan_train_step(
      alpha=alpha, latent_dim=settings.latent_dim, discriminator_steps=settings.discriminator_steps,
      generator_loss=settings.generator_loss)
  rows = (settings.discriminator_steps + 1) * settings.batch_size

  def chunk_one(state, seed_key, start):
    data_key = jax.random.fold_in(seed_key, 1)

    def body(state, i):
      real = toy.sample_gan_target(jax.random.fold_in(data_key, start + i), target, rows,
                                   settings.target_std)
      return step(state, real.reshape(settings.discriminator_steps + 1, settings.batch_size, 2))

    state, metrics = jax.lax.scan(body, state, jnp.arange(settings.chunk))
    return state, jax.tree.map(jnp.mean, metrics)

  return jax.jit(jax.vmap(chunk_one, in_axes=(0, 0, None)))


def make_evaluate(target: str, settings: Settings):
  """A jitted `evaluate(states [S], snapshot) -> (samples [S, N, 2], coverage, loose)`.

  `coverage` and `loose` are `gan.mode_coverage` per seed at 3 and at
  `settings.loose_num_std` standard deviations.
  """
  centres = jnp.asarray(toy.gan_mode_centres(target))

  def evaluate_one(state, seed_key, snapshot):
    key = jax.random.fold_in(jax.random.fold_in(seed_key, 2), snapshot)
    samples = gan.generate_samples(state, key, settings.num_eval_samples, settings.latent_dim)
    coverage = gan.mode_coverage(samples, centres, settings.target_std,
                                 min_samples=settings.min_samples)
    loose = gan.mode_coverage(samples, centres, settings.target_std, num_std=settings.loose_num_std,
                              min_samples=settings.min_samples)
    return samples, coverage, loose

  return jax.jit(jax.vmap(evaluate_one, in_axes=(0, 0, None)))


def _rounded(values: jax.Array) -> list[float]:
  """Per-seed values as a JSON list, 4 decimals."""
  return np.round(np.asarray(values, np.float64), 4).tolist()


class _Workdir:
  """Where one (target, objective) run keeps its progress, so a stopped run resumes.

  A `mixup_jax.checkpoint.Checkpointer` in the run's folder: each checkpoint holds the
  vmapped GanState after that many generator updates, and in its JSON extra the
  snapshot records so far, the plotted points of each snapshot and the wall time.
  Only the latest is kept; a save interrupted by a kill is skipped on restore.
  """

  def __init__(self, path: pathlib.Path):
    self.path = pathlib.Path(path)

  def _checkpointer(self) -> checkpoint.Checkpointer:
    return checkpoint.Checkpointer(self.path, max_to_keep=1, best_metric=None,
                                   async_save=False)

  def load(self, template: gan.GanState):
    """(states, updates done, snapshot records, samples, wall time) or None."""
    if not self.path.is_dir():
      return None
    if (self.path / "progress.json").exists():
      raise ValueError(
          f"{self.path} holds a run saved by an older version (progress.json), which this "
          "one cannot resume: delete that folder or pass another --runs_dir.")
    with self._checkpointer() as ckpt:
      restored = ckpt.restore_latest(template)
    if restored is None:
      return None
    extra = restored.extra
    samples = {int(k): np.asarray(v, np.float32) for k, v in extra["samples"].items()}
    return restored.state, restored.step, extra["snapshots"], samples, extra["wall_time_s"]

  def save(self, states, done: int, snapshots, samples, wall_time: float,
           finished: bool = False) -> None:
    extra = {"snapshots": snapshots, "wall_time_s": wall_time, "finished": finished,
             "samples": {str(k): np.asarray(v).tolist() for k, v in samples.items()}}
    with self._checkpointer() as ckpt:
      ckpt.save(done, states, extra=extra)


def train_target(target: str, alpha: float, settings: Settings, states: gan.GanState,
                 evaluate, workdir: pathlib.Path | None = None) -> dict[str, Any]:
  """Trains every seed on `target` from `states`; scores and keeps samples at each snapshot.

  `states` come from `init_states` and `evaluate` from `make_evaluate(target, ...)`;
  both are shared by the ERM and the mixup run of a target. With a `workdir` the run
  saves its progress every `settings.checkpoint_every` updates and at each snapshot,
  and continues from there when called again: the result is the same as one
  uninterrupted run (every random draw is a fold_in of the update count).
  """
  start_time = time.time()
  keys = _seed_keys(settings)
  chunk = make_chunk(target, alpha, settings)
  snapshots, samples, metrics, done, previous_wall = [], {}, None, 0, 0.0
  store = _Workdir(workdir) if workdir is not None else None
  if store is not None and (restored := store.load(states)) is not None:
    states, done, snapshots, samples, previous_wall = restored
    logging.info("%s, alpha %g: resuming at update %d.", target, alpha, done)
  wall = lambda: previous_wall + time.time() - start_time
  for snapshot in settings.snapshots[len(snapshots):]:
    while done < snapshot:
      states, metrics = chunk(states, keys, done)
      done += settings.chunk
      if store is not None and done % settings.checkpoint_every == 0 and done < snapshot:
        store.save(states, done, snapshots, samples, wall())
    points, coverage, loose = evaluate(states, keys, snapshot)
    samples[snapshot] = np.asarray(points[0, :_PLOT_POINTS])  # first seed, for the figure
    snapshots.append({
        "iteration": snapshot,
        "modes_covered": np.asarray(coverage["modes_covered"]).tolist(),
        "high_quality_fraction": _rounded(coverage["high_quality_fraction"]),
        "counts_first_seed": np.asarray(coverage["counts"][0]).tolist(),
        "modes_covered_loose": np.asarray(loose["modes_covered"]).tolist(),
        "high_quality_fraction_loose": _rounded(loose["high_quality_fraction"]),
        "last_chunk_metrics": {k: _rounded(v) for k, v in metrics.items()},
    })
    if store is not None:
      store.save(states, done, snapshots, samples, wall(),
                 finished=snapshot == settings.snapshots[-1])
  return {"snapshots": snapshots, "samples": samples, "wall_time_s": wall()}


# ------------------------------------------------------------------------------
# The figure and the table.
# ------------------------------------------------------------------------------


def run(
    settings: Settings, out_dir: str | pathlib.Path | None = RESULTS_DIR, size: str = "custom",
    runs_dir: str | pathlib.Path | None = None,
) -> dict[str, Any]:
  """ERM and mixup GANs on every target; writes results.json, table.md and a PNG per target.

  With `runs_dir`, each (target, objective) keeps its progress in runs_dir/TARGET_OBJECTIVE
  and a rerun resumes it (a finished one is only read back).
  """
  start = time.time()
  results = {"experiment": "Figure 5 (GAN)", "size": size,
             "settings": dataclasses.asdict(settings), "targets": {}}
  samples = {}
  states = init_states(settings)  # ERM and mixup of a seed start from the same networks
  for target in settings.targets:
    results["targets"][target] = {"num_modes": len(toy.gan_mode_centres(target))}
    evaluate = make_evaluate(target, settings)
    for method, alpha in (("erm", 0.0), ("mixup", settings.alpha)):
      workdir = pathlib.Path(runs_dir) / f"{target}_{method}" if runs_dir else None
      run_result = train_target(target, alpha, settings, states, evaluate, workdir)
      samples[target, method] = run_result.pop("samples")
      results["targets"][target][method] = run_result
      final = run_result["snapshots"][-1]
      print(f"{target} {method:>5}: modes covered {final['modes_covered']}, high-quality share "
            f"{final['high_quality_fraction']}  [{run_result['wall_time_s']:.0f} s]", flush=True)
  results["wall_time_s"] = time.time() - start
  if out_dir is not None:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "table.md").write_text(markdown_table(results))
    for target in settings.targets:
      plot(target, samples, settings, out / f"{target}.png")
  return results


def _mean_std(values: Sequence[float]) -> str:
  values = np.asarray(values, np.float64)
  std = values.std(ddof=1) if len(values) > 1 else 0.0
  return f"{values.mean():.2f} +- {std:.2f}"


# Settings in which a diagnostic size departs from the paper, named in its table.
_PAPER_CHOICES = {"adam_b1": 0.9, "init_std": None, "generator_loss": "minimax",
                  "target_std": toy.GAN_STD}


def markdown_table(results: dict[str, Any]) -> str:
  """Modes covered and high-quality share at every snapshot, mean +- std over seeds."""
  settings = results["settings"]
  loose = f"{settings['loose_num_std']:g} std"
  changes = [f"{name} {settings[name]}" for name, paper in _PAPER_CHOICES.items()
             if settings.get(name, paper) != paper]
  changed = f" ({', '.join(changes)})" if changes else ""
  lines = [f"Size {results['size']!r}: width {settings['width']}, "
           f"{settings['num_iterations']} generator updates, "
           f"Adam lr {settings['learning_rate']:g}{changed}, {len(settings['seeds'])} seeds; "
           "a mode is "
           f"covered when >= {settings['min_samples']} of {settings['num_eval_samples']} "
           "samples lie within the radius of its centre.", "",
           f"| target | objective | updates | modes covered, 3 std (mean +- std; per seed) "
           f"| share within 3 std (%) | modes covered, {loose} | share within {loose} (%) |",
           "|---|---|---|---|---|---|---|"]
  for target, entry in results["targets"].items():
    for method in ("erm", "mixup"):
      label = "ERM GAN" if method == "erm" else f"mixup GAN (alpha {settings['alpha']:g})"
      for snap in entry[method]["snapshots"]:
        lines.append(
            f"| {target} ({entry['num_modes']} modes) | {label} | {snap['iteration']} "
            f"| {_mean_std(snap['modes_covered'])}; {snap['modes_covered']} "
            f"| {_mean_std(100 * np.asarray(snap['high_quality_fraction']))} "
            f"| {_mean_std(snap['modes_covered_loose'])} "
            f"| {_mean_std(100 * np.asarray(snap['high_quality_fraction_loose']))} |")
  return "\n".join(lines) + "\n"


def plot(target: str, samples: dict, settings: Settings, path: pathlib.Path) -> None:
  """Generated points (first seed) at every snapshot, ERM above mixup, real data behind."""
  plt = plotting.pyplot()

  real = np.asarray(toy.sample_gan_target(jax.random.key(0), target, _PLOT_POINTS,
                                          settings.target_std))
  view = _VIEW[target]
  cols = len(settings.snapshots)
  fig, axes = plt.subplots(2, cols, figsize=(2.2 * cols, 4.6), dpi=70, squeeze=False)
  for row, method in enumerate(("erm", "mixup")):
    for col, snapshot in enumerate(settings.snapshots):
      ax = axes[row, col]
      ax.scatter(real[:, 0], real[:, 1], s=3, c="#fdae6b")
      fake = samples[target, method][snapshot]
      ax.scatter(fake[:, 0], fake[:, 1], s=1, c="#3182bd")
      ax.set_xlim(-view, view)
      ax.set_ylim(-view, view)
      ax.set_xticks([])
      ax.set_yticks([])
      if row == 0:
        ax.set_title(f"{snapshot} updates", fontsize=9)
      if col == 0:
        label = "ERM GAN" if method == "erm" else f"mixup GAN ({settings.alpha:g})"
        ax.set_ylabel(label, fontsize=9)
  fig.suptitle(f"{target}: real (orange) and generated (blue) points, seed {settings.seeds[0]}, "
               f"width {settings.width}, Adam lr {settings.learning_rate:g}, "
               f"{settings.generator_loss} generator loss, mode std {settings.target_std:g}",
               fontsize=9)
  plotting.save(fig, path)


# ------------------------------------------------------------------------------
# Command line.
# ------------------------------------------------------------------------------


def _define_flags() -> None:
  flags.DEFINE_enum("size", "cpu", list(SIZES),
                    "full: the paper's; cpu, cpu_lr1e-4: scaled down; cpu_*: one change each "
                    "to cpu, to find why lr 1e-3 fails; smallest: tests.")
  flags.DEFINE_string("runs_dir", None, "Where each run keeps its progress, so that a rerun "
                      "resumes it (default: $MIXUP_JAX_RUNS_DIR/gan_figure5_<size>; none "
                      "for smallest).")
  flags.DEFINE_string("out_dir", None, "Where the results go (default: "
                      "experiments/results/gan_figure5/<size>/; a new temporary folder "
                      "for smallest).")
  flags.DEFINE_list("targets", None, "Only these targets (default: the size's, "
                    f"{', '.join(toy.GAN_TARGETS)}): a long run can be reported one "
                    "target at a time while the next trains.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  out_dir = args.out_dir or (tempfile.mkdtemp(prefix="gan_figure5_smallest_")
                             if args.size == "smallest" else RESULTS_DIR / args.size)
  runs_dir = args.runs_dir or (None if args.size == "smallest" else
                               cifar_runs.DEFAULT_RUNS_DIR / f"gan_figure5_{args.size}")
  settings = SIZES[args.size]
  if args.targets is not None:
    settings = dataclasses.replace(settings, targets=tuple(args.targets))
  results = run(settings, out_dir, size=args.size, runs_dir=runs_dir)
  print()
  print(markdown_table(results))
  print(f"Total {results['wall_time_s']:.0f} s; outputs in {out_dir}")


if __name__ == "__main__":
  _define_flags()  # Here, not at import: tests import this module.
  app.run(main)
