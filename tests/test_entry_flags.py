"""Every entry of experiments/ speaks the same command line (experiments/README.md).

--out_dir everywhere; --size where an entry has more than one scale (its committed
one the default, 'smallest' the tests'); --data_dir where it reads a dataset;
--runs_dir and --seeds where it trains or reads runs of the training loop.
"""

import os
import re
import subprocess
import sys

import pytest

_ENTRIES = {  # entry -> (flags it must have, its --size values or None)
    "figure3_cpu": ({"out_dir", "data_dir", "runs_dir", "seeds"}, {"cpu", "smallest"}),
    "figure3_regime": ({"out_dir", "data_dir", "runs_dir", "seeds"}, {"cpu", "smallest"}),
    "table2_cpu": ({"out_dir", "data_dir", "runs_dir", "seeds"}, {"cpu", "full", "smallest"}),
    "table5_cpu": ({"out_dir", "data_dir", "runs_dir", "seeds"}, {"cpu", "full", "smallest"}),
    "table3_figure3": ({"out_dir", "data_dir", "runs_dir", "seeds"}, None),
    "figure2_between": ({"out_dir", "data_dir", "runs_dir", "seeds"}, None),
    "quickstart": ({"out_dir"}, {"full", "smallest"}),
    "toy_figure1b": ({"out_dir", "num_seeds"}, {"full", "smallest"}),
    "uci_table4": ({"out_dir", "data_dir", "num_seeds"}, {"full", "smallest"}),
    "uci_protocols": ({"out_dir", "data_dir", "num_seeds"}, None),
    "gan_figure5": ({"out_dir", "runs_dir", "targets"},
                    {"full", "cpu", "cpu_lr1e-4", "cpu_init0.02", "cpu_b1_0.5",
                     "cpu_non_saturating", "cpu_std0.05", "full_std0.05", "full_non_saturating", "smallest"}),
}


def test_every_entry_is_listed():
  here = os.path.join(os.path.dirname(__file__), "..", "experiments")
  # An entry runs its own main or a declared sweep under `if __name__ == "__main__":`.
  runs = re.compile(r"^  (app\.run\(main\)|sweep\.main\(EXPERIMENT\))$", flags=re.M)
  entries = {name[:-3] for name in os.listdir(here) if name.endswith(".py")
             and runs.search(open(os.path.join(here, name)).read())}
  assert entries == set(_ENTRIES)  # experiments.main runs configs: test_cli.py


@pytest.fixture(scope="module")
def helps():
  """`python -m experiments.NAME --helpshort` of every entry, run side by side."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
  procs = {name: subprocess.Popen([sys.executable, "-m", f"experiments.{name}", "--helpshort"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=env)
           for name in _ENTRIES}
  out = {}
  for name, proc in procs.items():
    text, _ = proc.communicate(timeout=300)
    # absl's help exits with status 1; a failed import or flag definition is a traceback.
    assert proc.returncode in (0, 1) and "Traceback" not in text, f"{name}: {text[-2000:]}"
    out[name] = text
  return out


@pytest.mark.parametrize("name", sorted(_ENTRIES))
def test_entry_flags_follow_the_convention(helps, name):
  text = helps[name]
  required, sizes = _ENTRIES[name]
  defined = set(re.findall(r"^\s+--(?:\[no\])?(\w+)", text, flags=re.M))
  assert required <= defined, f"{name} lacks {required - defined}"
  if sizes is None:
    assert "size" not in defined
  else:
    match = re.search(r"--size: <([^>]*)>", text)
    assert match and set(re.sub(r"\s+", "", match.group(1)).split("|")) == sizes  # help wraps
  assert "scale" not in defined and "small" not in defined
