"""Where a user slips, the error is one line that names the field and the way out.

From Python a misspelled field is refused as on the command line; every command-line
slip exits with status 2 before training; resuming a workdir with a config its
checkpoint no longer fits names the changed fields.
"""

import pathlib
import re
import subprocess
import sys

import pytest

from experiments.configs import smoke
from mixup_jax import trainer

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _main(*args, timeout=300):
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=_REPO,
                        capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("field, value, suggestion", [
    ("mixup.alhpa", 1.0, "config.mixup.alpha"),
    ("num_trian_steps", 5, "config.num_train_steps"),
])
def test_a_misspelled_field_from_python_is_refused_with_the_closest_name(
    tmp_path, field, value, suggestion):
  config = smoke.get_config()
  *parents, leaf = field.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  with node.unlocked() if hasattr(node, "unlocked") else node:
    setattr(node, leaf, value)
  with pytest.raises(trainer.ConfigError, match=f"config.{field}: unknown field; did you mean "
                     f"{suggestion}"):
    trainer.train_and_evaluate(config, tmp_path)
  assert not list(tmp_path.iterdir())  # refused before anything was written


def test_every_experiment_config_has_only_known_fields():
  """Each file under experiments/configs, with its default argument and a few others."""
  import importlib  # pylint: disable=g-import-not-at-top
  import inspect  # pylint: disable=g-import-not-at-top
  checked = 0
  for path in sorted((_REPO / "experiments" / "configs").glob("*.py")):
    if path.stem == "__init__":
      continue
    module = importlib.import_module(f"experiments.configs.{path.stem}")
    parameters = inspect.signature(module.get_config).parameters.values()
    if all(p.default is not inspect.Parameter.empty for p in parameters):
      assert not trainer.unknown_fields(module.get_config(), trainer.default_config()), path
      checked += 1
  from experiments.configs import figure3_regime, table2_cpu  # pylint: disable=g-import-not-at-top
  for config in (figure3_regime.get_config("switch,1000"), table2_cpu.get_config("20,erm")):
    assert not trainer.unknown_fields(config, trainer.default_config())
  assert checked >= 5


@pytest.mark.parametrize("args, message", [
    (["--config=experiments/configs/nope.py"], "Invalid --config: [Errno 2] No such file"),
    (["--config=experiments/configs/smoke.py", "--config.mixup.alpha=abc"],
     "Invalid command line: flag --config.mixup.alpha=abc: could not convert"),
    (["--config=experiments/configs/smoke.py", "--config.mixup.alhpa=1"],
     "Invalid config override: the config has no field 'alhpa'"),
    (["--config=experiments/configs/figure3_regime.py:foo"],
     "Invalid --config: ValueError: METHOD must be one of"),
    (["--config=experiments/configs/smoke.py", "--nope=1"], "Unknown command line flag 'nope'"),
])
def test_command_line_slips_are_one_line_with_status_2(tmp_path, args, message):
  out = _main(*args, f"--workdir={tmp_path}")
  assert out.returncode == 2 and message in out.stderr, out.stderr
  assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_missing_workdir_is_one_line_with_status_2():
  out = _main("--config=experiments/configs/smoke.py")
  assert out.returncode == 2 and "--workdir must have a value" in out.stderr, out.stderr
  assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_resuming_with_a_changed_width_names_the_field(tmp_path):
  common = ["--config=experiments/configs/smoke.py", f"--workdir={tmp_path}",
            "--config.num_train_steps=2", "--config.eval_every_steps=2",
            "--config.checkpoint_every_steps=2", "--config.train_size=256",
            "--config.test_size=100"]
  first = _main(*common)
  assert first.returncode == 0, first.stderr[-2000:]
  changed = _main(*common, "--config.model_options.width=8")
  assert changed.returncode == 2, changed.stderr[-2000:]
  lines = [line for line in changed.stderr.strip().splitlines()
           if not re.match(r"[IWE]\d{4} ", line)]
  assert len(lines) == 1, changed.stderr[-3000:]  # beside absl's I / W log lines
  assert lines[0].startswith("Invalid config: the checkpoint in") and (
      "model_options.width (16 -> 8)" in lines[0]) and "--workdir" in lines[0], lines[0]
  assert "Traceback" not in changed.stderr, changed.stderr[-2000:]
