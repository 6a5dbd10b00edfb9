r"""experiments.main, plus a signal the process sends itself after a given step.

  python tests/helpers/signal_run.py --signal_at=25:SIGKILL [--signal_process=1] \
      --config=experiments/configs/smoke.py --workdir=DIR [--config.FIELD=VALUE ...]

The signal is raised from the loop's step hook, so it lands at an exact step
(an outside `kill` would race a fast run); in a --distributed run only process
--signal_process sends it (default: every process). Used by tests/test_cli.py and
tests/test_cli_distributed.py.
"""

import os
import pathlib
import signal
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from experiments import cpu_flags  # noqa: E402

cpu_flags.use_xnnpack()  # as experiments.main does, before JAX: the same numbers

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import jax  # noqa: E402

from experiments import main as cli  # noqa: E402

_SIGNAL_AT = flags.DEFINE_string(
    "signal_at", None, "STEP:SIGNAL, e.g. 25:SIGKILL: send SIGNAL to this process after STEP.")
_SIGNAL_PROCESS = flags.DEFINE_integer(
    "signal_process", None, "Only the process with this jax.process_index() signals itself.")


def _main(argv):
  step, name = _SIGNAL_AT.value.split(":")
  step, signum = int(step), getattr(signal, name)

  def hook(done: int, state) -> None:
    del state
    if done == step and _SIGNAL_PROCESS.value in (None, jax.process_index()):
      print(f"signal_run: sending {name} after step {done}", flush=True)
      os.kill(os.getpid(), signum)

  cli.main(argv, hooks=[hook])


if __name__ == "__main__":
  flags.mark_flag_as_required("signal_at")
  jax.config.config_with_absl()
  app.run(_main, flags_parser=cli.parse_flags)
