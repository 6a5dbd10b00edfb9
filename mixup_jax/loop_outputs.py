"""What the training loop shows and keeps on the host while it runs.

The loop (`mixup_jax.trainer`) reads top to bottom because the side jobs live here:
the running sums of train metrics (`accumulate`, inside the compiled step), the
metrics.jsonl + TensorBoard writer (`Outputs`), the progress line (`Progress`,
`Latest`) and SIGTERM handling that stops every process at the same step
(`PreemptionNotice`).
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from typing import Any, Mapping, Sequence

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp



def accumulate(meter: dict, metrics: dict, step: jax.Array) -> dict:
  """Adds one step's train metrics to the running sums, inside the compiled step.

  `first_nonfinite` remembers the first step whose loss was NaN or infinite
  (-1: none), so the error can name it even though the host looks only at
  log steps.
  """
  bad = ~jnp.isfinite(metrics["loss"])
  first = meter["first_nonfinite"]
  return {
      "sums": jax.tree.map(lambda s, m: s + m.astype(jnp.float32), meter["sums"], metrics),
      "count": meter["count"] + 1,
      "first_nonfinite": jnp.where((first < 0) & bad, step, first),
  }


def empty_meter(metric_shapes: Mapping[str, Any]) -> dict:
  return {
      "sums": {k: jnp.zeros((), jnp.float32) for k in metric_shapes},
      "count": jnp.zeros((), jnp.int32),
      "first_nonfinite": jnp.full((), -1, jnp.int32),
  }


def read_history(workdir: epath.Path, upto_step: int) -> list[dict[str, Any]]:
  """The metric records of metrics.jsonl up to `upto_step` (a resumed checkpoint's step).

  Records past it were written by the interrupted run after its last checkpoint and
  will be written again. A missing file (a workdir written by another process's
  host) gives no history, with a warning: the results then cover the resumed part.
  """
  path = workdir / "metrics.jsonl"
  if not path.exists():
    logging.warning("%s is missing: the resumed run's results cover only the steps after "
                    "%d.", path, upto_step)
    return []
  records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  return [record for record in records if record["step"] <= upto_step]


class Outputs:
  """metrics.jsonl and TensorBoard events of one run (written by process 0 only).

  On resume the JSON-lines file is rewritten from the history up to the checkpoint, and
  TensorBoard is told to drop events after the checkpoint step, so records
  written by the interrupted run past its last checkpoint disappear from both.
  """

  def __init__(self, workdir: epath.Path | None, history: Sequence[Mapping[str, Any]],
               start_step: int):
    self._enabled = workdir is not None and jax.process_index() == 0
    if not self._enabled:
      return
    import tensorboardX  # pylint: disable=g-import-not-at-top: only writers need it

    self._jsonl = (workdir / "metrics.jsonl").open("w")
    for record in history:
      self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    self._tb = tensorboardX.SummaryWriter(
        str(workdir / "tensorboard"), purge_step=start_step + 1 if start_step else None)

  def write(self, record: Mapping[str, Any], extra_scalars: Mapping[str, float] = ()) -> None:
    """Appends a record ({'step', 'epoch', name: value, ...}) to both outputs."""
    if not self._enabled:
      return
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for key, value in {**record, **dict(extra_scalars)}.items():
      if key != "step":
        self._tb.add_scalar(key, value, record["step"])
    self._tb.flush()

  def close(self) -> None:
    if self._enabled:
      self._jsonl.close()
      self._tb.close()


class Progress:
  """One updating status line: step, throughput, latest metrics and ETA.

  On a terminal the line is redrawn in place (at most twice a second); in a
  log file it is printed once per log step.
  """

  def __init__(self, total: int, start: int, batch_size: int, stream=None):
    self._stream = stream or sys.stderr
    self._tty = self._stream.isatty()
    self._enabled = jax.process_index() == 0
    self._total, self._batch_size = total, batch_size
    self._t0, self._step0 = time.monotonic(), start
    self._last_draw = 0.0
    self._status = ""

  def set_status(self, text: str) -> None:
    self._status = text

  def steps_per_second(self, step: int) -> float:
    elapsed = time.monotonic() - self._t0
    return (step - self._step0) / elapsed if elapsed > 0 else 0.0

  def update(self, step: int, *, force: bool = False) -> None:
    if not self._enabled:
      return
    now = time.monotonic()
    if not force and (not self._tty or now - self._last_draw < 0.5):
      return
    self._last_draw = now
    rate = self.steps_per_second(step)
    eta = (self._total - step) / rate if rate > 0 else float("nan")
    line = (f"step {step}/{self._total} ({100 * step / self._total:.1f}%) | "
            f"{rate:.2f} steps/s, {rate * self._batch_size:.0f} ex/s | {self._status} | "
            f"ETA {format_seconds(eta)}")
    if self._tty:
      self._stream.write("\r\033[K" + line)
    else:
      self._stream.write(line + "\n")
    self._stream.flush()

  def close(self) -> None:
    if self._enabled and self._tty:
      self._stream.write("\n")
      self._stream.flush()


def format_seconds(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"


class PreemptionNotice:
  """SIGTERM as a stop signal that every process answers at the same step.

  One process: a Python handler sets a flag that the loop reads after every step
  (installed only in the main thread, where Python delivers signals; the previous
  handler is restored on exit). Several processes (`jax.distributed`): JAX's
  preemption service catches SIGTERM on whichever process gets it and tells the
  others; `reached_preemption_sync_point(step)` then turns True on every process at
  the same step (one past the furthest any of them had reached), so all stop there
  and write one complete checkpoint together. A flag per process could not do that:
  the process that got the signal would stop and wait in the checkpoint's barrier
  while the others were still training, each at its own step.
  """

  def __init__(self):
    self._multi_process = jax.process_count() > 1
    self._received = False
    self._previous = None

  def __enter__(self) -> "PreemptionNotice":
    if not self._multi_process and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame) -> None:
    del signum, frame
    self._received = True

  def reached(self, step: int) -> bool:
    """Whether to stop (and save) after `step`; called once after every step."""
    if not self._multi_process:
      return self._received
    try:
      return multihost_utils.reached_preemption_sync_point(step)
    except RuntimeError as e:  # the service is off: no process could stop in step
      raise RuntimeError(
          "A multi-process run stops on SIGTERM through JAX's preemption service, which "
          "is disabled: set jax_enable_preemption_service=True (the default).") from e

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


class Latest:
  """The newest train loss and test error, for the progress line.

  Updated with each record as it is made, so the status costs O(1) per step
  however long the history grows.
  """

  _SHOWN = (("train/loss", "loss {:.4f}"), ("test/error", "test error {:.2f}%"))

  def __init__(self, history: Sequence[Mapping[str, Any]] = ()):
    self._values: dict[str, float] = {}
    for record in history:  # once, on resume
      self.update(record)

  def update(self, record: Mapping[str, Any]) -> None:
    for key, _ in self._SHOWN:
      if key in record:
        self._values[key] = record[key]

  def status(self) -> str:
    parts = [fmt.format(self._values[key]) for key, fmt in self._SHOWN if key in self._values]
    return ", ".join(parts) or "starting"


def meter_to_json(meter: Mapping[str, Any]) -> dict[str, Any]:
  """The host meter as JSON; float32 -> Python float -> float32 is exact."""
  return {"sums": {k: float(v) for k, v in meter["sums"].items()},
          "count": int(meter["count"]),
          "first_nonfinite": int(meter["first_nonfinite"])}


def meter_from_json(saved: Mapping[str, Any] | None, metric_names) -> dict:
  """The meter of a checkpoint, or an empty one if it counted other metrics.

  A resumed run whose config computes other metrics (label corruption adds
  'true_label_accuracy') starts its sums afresh: its first train record then
  averages the steps since the resume, not since the last record.
  """
  if saved is None or sorted(saved["sums"]) != sorted(metric_names):
    if saved is not None:
      logging.warning("The checkpoint's train-metric sums are for %s, this run computes %s: "
                      "starting them afresh.", sorted(saved["sums"]), sorted(metric_names))
    return empty_meter(metric_names)
  return {"sums": {k: jnp.float32(saved["sums"][k]) for k in metric_names},
          "count": jnp.int32(saved["count"]),
          "first_nonfinite": jnp.int32(saved["first_nonfinite"])}
