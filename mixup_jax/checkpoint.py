"""Checkpoints of a training run, for exact resume after preemption.

One checkpoint is one Orbax step directory holding everything a run needs to
continue as if it had never stopped:

  <directory>/<step>/state      the train state (params, batch statistics,
                                optimizer state, step, rng) and any other
                                arrays the loop carries (metric accumulators)
  <directory>/<step>/data_iter  the input pipeline's iterator position
                                (grain; one file per process)
  <directory>/<step>/config     the run's config, as JSON
  <directory>/<step>/extra      anything else JSON-able the loop wants back
                                (e.g. the wall time spent so far)

The metric history is not in it: the loop keeps it in metrics.jsonl and cuts that
file back to the restored step on resume (checkpoints written before this change
also hold a `history` item, which is ignored).

Saves are asynchronous: `save` returns once the arrays are copied to the host
and the files are written in the background. The directory keeps the last
`max_to_keep` checkpoints plus the one with the best `best_metric` (lowest test
error by default), which Orbax ranks from the `metrics` passed to `save`.

Restoring is loud, never silent: unfinished (temporary) step directories left
by a killed save are skipped with a log line, and a latest checkpoint that is
unreadable for good (missing or malformed files, contents that do not fit) falls
back to the previous one with a warning (once an older one is read, the broken one
is moved aside, so that the run can save that step again). A read that fails for
a reason that may pass (an I/O error, a timeout) raises and moves nothing.
A directory whose checkpoints are all unreadable raises and moves nothing,
instead of starting a fresh run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Mapping

from absl import logging
from etils import epath
import jax
import numpy as np
import orbax.checkpoint as ocp

try:  # grain registers its Orbax handler only when Orbax is importable.
  from grain.checkpoint import CheckpointRestore as _IterRestore
  from grain.checkpoint import CheckpointSave as _IterSave
except ImportError as e:  # pragma: no cover: grain is a core dependency
  raise ImportError("mixup_jax.checkpoint needs grain's Orbax handler.") from e

PyTree = Any
PathLike = str | os.PathLike[str]

_TMP_MARKER = ".orbax-checkpoint-tmp"
_STATE, _DATA_ITER, _CONFIG, _EXTRA = "state", "data_iter", "config", "extra"
_policies = ocp.checkpoint_managers


# Status codes of tensorstore / gRPC errors that say "try again", not "this is broken".
_TRANSIENT_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED",
                    "CANCELLED", "UNKNOWN", "INTERNAL")


def as_path(path: PathLike) -> epath.Path:
  """A run's directory as an `epath.Path`: cloud URIs (gs://, s3://) kept as they are,
  local paths made absolute (so that a later change of directory cannot move them).

  Everything a run writes goes through epath (metrics, results) or Orbax (which
  takes epath paths), so a workdir on a bucket works like a local one.
  """
  path = epath.Path(path)
  return path if str(path).startswith(("gs://", "s3://", "az://", "hf://")) else epath.Path(
      os.path.abspath(path))


def _first_line(error: BaseException) -> str:
  """An error's first line: Orbax appends whole tensorstore specs to shape mismatches."""
  return (str(error).strip().splitlines() or [""])[0]


def _is_deterministic_read_failure(error: BaseException) -> bool:
  """True when reading a checkpoint failed for a reason that a retry cannot fix.

  Missing or malformed files and contents that do not match the template
  (ValueError, KeyError, TypeError, FileNotFoundError: what Orbax, tensorstore and
  JSON raise for them) make a checkpoint unreadable for good, so the loop may fall
  back to an older one. Anything else (an OSError such as EIO or a permission
  problem, a timeout, a dropped connection, a tensorstore status like UNAVAILABLE)
  may pass, and falling back would throw away finished work.
  """
  if not isinstance(error, (ValueError, KeyError, TypeError, FileNotFoundError,
                            NotADirectoryError)):
    return False
  message = str(error)
  return not any(code in message for code in _TRANSIENT_CODES)


@dataclasses.dataclass(frozen=True)
class Restored:
  """What a checkpoint gives back.

  Attributes:
    step: the step the checkpoint was saved at (number of updates done).
    state: the state pytree, with the structure, shapes, dtypes and shardings of
      the template passed to `restore_latest`.
    config: the config of the run that saved it, as a JSON dict.
    extra: the `extra` dict given to `save` ({} if none).
    path: the step directory it was read from.
  """

  step: int
  state: PyTree
  config: dict[str, Any] | None
  extra: dict[str, Any]
  path: epath.Path


class Checkpointer:
  """Saves and restores a run's checkpoints in one directory.

  Usage, in a training loop:

    ckpt = Checkpointer(workdir / "checkpoints", max_to_keep=3)
    restored = ckpt.restore_latest(state, data_iter)   # None on a fresh run
    ...
    ckpt.save(step, state, data_iter=data_iter, config=config.to_dict(),
              metrics={"test_error": err})
    ...
    ckpt.close()   # waits for the last asynchronous save

  The loop decides when to save (every N steps, after an eval, at the end, on
  SIGTERM); this class only writes and reads.
  """

  def __init__(
      self,
      directory: PathLike,
      *,
      max_to_keep: int = 3,
      best_metric: str | None = "test_error",
      best_mode: str = "min",
      async_save: bool = True,
  ):
    """Opens (or creates) a checkpoint directory.

    Args:
      directory: where the step directories live; created if missing.
      max_to_keep: how many of the most recent checkpoints to keep (>= 1).
      best_metric: key of the `metrics` dict given to `save` whose best value
        marks a checkpoint to keep besides the recent ones; None keeps only the
        recent ones.
      best_mode: 'min' (errors, losses) or 'max' (accuracies).
      async_save: write in a background thread (True) or block in `save`.
    """
    if max_to_keep < 1:
      raise ValueError(
          f"max_to_keep must be >= 1 (the latest is needed to resume), got {max_to_keep}.")
    if best_mode not in ("min", "max"):
      raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}.")
    self.directory = as_path(directory)
    self.best_metric = best_metric
    self.best_mode = best_mode
    self._log_unfinished()
    policies = [_policies.LatestN(max_to_keep)]
    if best_metric is not None:
      policies.append(
          _policies.BestN(
              get_metric_fn=lambda metrics: metrics[best_metric],
              reverse=best_mode == "min",  # BestN keeps the end of the sorted list
              n=1,
              keep_checkpoints_without_metrics=False,
          )
      )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=_policies.AnyPreservationPolicy(policies),
        # best_fn only makes Orbax write each step's metrics, so that the best
        # checkpoint is still known (and kept) after a restart.
        best_fn=None if best_metric is None else (lambda metrics: metrics[best_metric]),
        best_mode=best_mode,
        enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True,  # after `_log_unfinished` named them
        create=True,
    )
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  # ----------------------------------------------------------------------------
  # Reading
  # ----------------------------------------------------------------------------

  def all_steps(self) -> list[int]:
    """The steps of the finished checkpoints, ascending."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    """The step of the newest finished checkpoint, or None."""
    steps = self.all_steps()
    return steps[-1] if steps else None

  def best_step(self) -> int | None:
    """The step of the kept checkpoint with the best `best_metric` (Orbax's ranking), or
    None when no kept checkpoint was evaluated."""
    if self.best_metric is None:
      return None
    step = self._manager.best_step()
    metrics = self._manager.metrics(step) if step is not None else None
    if not metrics or not math.isfinite(metrics.get(self.best_metric, math.inf)):
      return None
    return step

  def saved_config(self, step: int | None = None) -> dict[str, Any] | None:
    """The config saved with the checkpoint at `step` (default: the latest), or None.

    Read on its own, without the state: it names what changed when a state no longer
    fits the run that tries to resume it.
    """
    step = self.latest_step() if step is None else step
    if step is None or not (self.step_path(step) / _CONFIG).is_dir():
      return None
    out = self._manager.restore(step, args=ocp.args.Composite(**{_CONFIG: ocp.args.JsonRestore()}))
    return out[_CONFIG]

  def state_mismatches(self, step: int, state_template: PyTree) -> list[str] | None:
    """Where the saved state at `step` differs from `state_template` in tree, shape or dtype.

    Read from the checkpoint's metadata, before any restore (a failed Orbax restore
    leaves its asynchronous reads behind). None when the metadata cannot be read: the
    restore then decides, falling back past a broken checkpoint as usual.
    """
    try:
      saved = ocp.StandardCheckpointer().metadata(self.step_path(step) / _STATE).item_metadata
    except Exception:  # pylint: disable=broad-except: unreadable is restore_latest's case
      return None
    def name(entry) -> str:  # a dataclass field and a dict key of the same name agree
      for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
          return str(getattr(entry, attr))
      return str(entry)

    def flat(tree):
      return {".".join(name(e) for e in path): leaf for path, leaf in
              jax.tree_util.tree_leaves_with_path(tree)}
    saved, wanted = flat(saved), flat(state_template)
    out = [f"{k}: not in the checkpoint" for k in sorted(set(wanted) - set(saved))]
    out += [f"{k}: only in the checkpoint" for k in sorted(set(saved) - set(wanted))]
    for k in sorted(set(saved) & set(wanted)):
      old, new = saved[k], wanted[k]
      if tuple(old.shape) != tuple(new.shape) or np.dtype(old.dtype) != np.dtype(new.dtype):
        out.append(f"{k}: saved {old.dtype}{list(old.shape)}, now {new.dtype}{list(new.shape)}")
    return out

  def step_path(self, step: int) -> epath.Path:
    """The directory of the checkpoint at `step`."""
    return self.directory / str(step)

  def restore_latest(self, state_template: PyTree, data_iter: Any = None) -> Restored | None:
    """Restores the newest readable checkpoint; None when there is none at all.

    Args:
      state_template: a pytree like the saved state (concrete arrays or
        `jax.ShapeDtypeStruct`s); restored arrays take its shapes, dtypes and
        shardings.
      data_iter: the input iterator (a grain iterator) to move to the saved
        position, in place; None to leave the input pipeline alone.

    Returns:
      The restored checkpoint, or None if the directory holds no finished one.

    Raises:
      RuntimeError: every finished checkpoint is unreadable. Starting a fresh
        run over a directory of broken checkpoints would silently discard it.
    """
    steps = self.all_steps()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_template)
    failures = []
    for step in reversed(steps):
      try:
        restored = self._restore(step, abstract, data_iter)
      except Exception as e:  # pylint: disable=broad-except: sorted just below
        if not _is_deterministic_read_failure(e):
          raise  # a transient I/O error: the checkpoint may be fine, keep it
        failures.append((step, f"{type(e).__name__}: {_first_line(e)}"))
        older = [s for s in steps if s < step]
        logging.warning("Checkpoint %s is unreadable (%s); falling back to %s.",
                        self.step_path(step), failures[-1][1],
                        f"step {older[-1]}" if older else "nothing")
        continue
      for bad, _ in failures:  # newer than a readable one: broken, not incompatible
        logging.warning("Moved unreadable checkpoint %s to %s.", self.step_path(bad),
                        self._quarantine(bad))
      logging.info("Restored checkpoint %s (step %d).", self.step_path(step), step)
      return restored
    if failures:
      tried = "; ".join(f"step {step}: {error}" for step, error in failures)
      raise RuntimeError(
          f"No readable checkpoint in {self.directory} (tried {tried}). Refusing to start "
          "from scratch over them: fix the cause (a changed config?) or move that directory.")
    return None

  def _restore(self, step: int, abstract: PyTree, data_iter: Any) -> Restored:
    items = {p.name for p in self.step_path(step).iterdir() if p.is_dir()}
    if _STATE not in items:
      raise ValueError(f"checkpoint lacks item {_STATE!r}")
    args = {_STATE: ocp.args.StandardRestore(abstract)}
    for name in (_CONFIG, _EXTRA):
      if name in items:
        args[name] = ocp.args.JsonRestore()
    if data_iter is not None:
      if _DATA_ITER not in items:
        raise ValueError("checkpoint holds no input iterator state, but one was given to restore")
      args[_DATA_ITER] = _IterRestore(data_iter)
    out = self._manager.restore(step, args=ocp.args.Composite(**args))
    return Restored(
        step=step,
        state=out[_STATE],
        config=out[_CONFIG] if _CONFIG in items else None,
        extra=out[_EXTRA] if _EXTRA in items else {},
        path=self.step_path(step),
    )

  def _quarantine(self, step: int) -> epath.Path:
    """Moves an unreadable step aside (kept for inspection) so it can be redone."""
    aside = self.directory.parent / f"{self.directory.name}_unreadable"
    target = aside / f"{step}-{int(time.time())}"
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      self.step_path(step).rename(target)
    ocp.multihost.sync_global_processes(f"mixup_jax_checkpoint_quarantine_{step}")
    self._manager.reload()
    return target

  def _log_unfinished(self) -> None:
    """Names the step directories a killed save left unfinished (they are skipped)."""
    if not self.directory.is_dir():
      return
    for path in sorted(self.directory.iterdir()):
      if _TMP_MARKER in path.name:
        logging.info(
            "Skipping unfinished checkpoint %s (a save was interrupted); removing it.", path)

  # ----------------------------------------------------------------------------
  # Writing
  # ----------------------------------------------------------------------------

  def save(
      self,
      step: int,
      state: PyTree,
      *,
      data_iter: Any = None,
      config: Mapping[str, Any] | None = None,
      metrics: Mapping[str, float] | None = None,
      extra: Mapping[str, Any] | None = None,
  ) -> bool:
    """Starts an asynchronous save of one checkpoint.

    Args:
      step: the number of updates done; the step directory's name.
      state: pytree of arrays (the train state and anything else to carry).
      data_iter: the input iterator whose position to save (grain), or None.
      config: the run's config as a JSON-able dict, or None.
      metrics: values that rank checkpoints (must hold `best_metric` to be a
        candidate for the best); without it the checkpoint ranks last and is
        kept only while it is among the `max_to_keep` most recent.
      extra: any other JSON-able dict to get back in `Restored.extra`.

    Returns:
      False if a checkpoint at `step` already exists (nothing written), else True.
    """
    if step in self._manager.all_steps():
      return False
    args = {_STATE: ocp.args.StandardSave(state)}
    if config is not None:
      args[_CONFIG] = ocp.args.JsonSave(dict(config))
    if extra is not None:
      args[_EXTRA] = ocp.args.JsonSave(dict(extra))
    if data_iter is not None:
      args[_DATA_ITER] = _IterSave(data_iter)
    metrics = {k: float(v) for k, v in (metrics or {}).items()}
    if self.best_metric is not None and self.best_metric not in metrics:
      # Not evaluated: ranks last, so it is kept only while among the recent ones.
      metrics[self.best_metric] = math.inf if self.best_mode == "min" else -math.inf
    return self._manager.save(
        step, args=ocp.args.Composite(**args), metrics=metrics or None, force=True)

  def wait(self) -> None:
    """Blocks until the pending asynchronous save is on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

