"""The Colab notebooks in colabs/: committed without outputs, and run end to end.

Each notebook runs top to bottom in a fresh Jupyter kernel (the `python3` kernel of
this environment; nbmake, in the test extra, brings ipykernel and nbclient) with
MIXUP_JAX_SMALL=1, the offline data directory and JAX on the CPU. The kernel's
XLA_FLAGS holds no device count, so multi_device.ipynb has to ask for its 8 CPU
devices itself, as it does on a laptop; it only lowers XLA's backend optimisation,
because compiling dominates these tiny runs (the threefry random-number code alone
takes seconds to optimise). Figures are kept open during the run and a last cell
checks that every one has a title and axis labels.
"""

import os
import pathlib
import time

import nbformat
from nbclient import NotebookClient
import pytest

from experiments import cpu_flags

_COLABS = pathlib.Path(__file__).resolve().parents[1] / "colabs"
NOTEBOOKS = ("quickstart", "multi_device", "toy_and_gan", "uci_tables")
# A hang guard per notebook, not a speed target: each runs in a minute or two.
_NOTEBOOK_TIMEOUT_S = 600

_KEEP_FIGURES = "%config InlineBackend.close_figures = False"
_CHECK_FIGURES = '''
import matplotlib.pyplot as _plt

_problems = []
for _num in _plt.get_fignums():
  _fig = _plt.figure(_num)
  for _ax in _fig.axes:
    if not _ax.get_visible() or _ax.get_label() == "<colorbar>":
      continue
    _where = f"figure {_num} ({_fig.get_suptitle() or _ax.get_title()!r})"
    if not (_fig.get_suptitle() or _ax.get_title()):
      _problems.append(f"{_where}: axes without a title and no figure title")
    if not (_ax.axison and _ax.get_xlabel() and _ax.get_ylabel()):
      _problems.append(f"{_where}: axes without an x and a y label")
assert _plt.get_fignums(), "the notebook drew no figure"
assert not _problems, _problems
'''


def _read(name: str) -> nbformat.NotebookNode:
  return nbformat.read(_COLABS / f"{name}.ipynb", as_version=4)


def _first_code_cell(notebook: nbformat.NotebookNode) -> str:
  return next(cell.source for cell in notebook.cells if cell.cell_type == "code")


def test_colabs_holds_exactly_the_tested_notebooks():
  assert sorted(path.stem for path in _COLABS.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
  notebook = _read(name)
  nbformat.validate(notebook)
  stale = [
      i for i, cell in enumerate(notebook.cells)
      if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
  ]
  assert not stale, (
      f"{name}.ipynb: code cells {stale} hold outputs or execution counts; clear all outputs "
      "(Jupyter: Edit > Clear Outputs of All Cells) and save it again.")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_first_code_cell_installs_mixup_jax_before_jax_starts(name):
  source = _first_code_cell(_read(name))
  assert "MIXUP_JAX_INSTALL" in source and "pip" in source and "import mixup_jax" in source
  if name == "multi_device":
    flag = source.index("xla_force_host_platform_device_count")
    assert flag < source.index("import mixup_jax")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_runs_end_to_end_on_small_settings(name, data_dir, tmp_path):
  notebook = _read(name)
  notebook.cells.insert(0, nbformat.v4.new_code_cell(_KEEP_FIGURES))
  notebook.cells.append(nbformat.v4.new_code_cell(_CHECK_FIGURES))
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "MIXUP_JAX_INSTALL")}
  env.update(
      MIXUP_JAX_SMALL="1", MIXUP_JAX_DATA_DIR=str(data_dir), JAX_PLATFORMS="cpu",
      XLA_FLAGS=cpu_flags.with_patient_collectives("--xla_backend_optimization_level=0"),
      TMPDIR=str(tmp_path))
  deadline = time.monotonic() + _NOTEBOOK_TIMEOUT_S
  client = NotebookClient(
      notebook,
      kernel_name="python3",
      timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
      resources={"metadata": {"path": str(_COLABS)}},
  )
  client.execute(env=env)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_install_cell_keeps_the_installed_jax(name, monkeypatch):
  """On Colab a plain `pip install` may replace the accelerator's jax with a CPU build:
  the cell pins the jax and jaxlib that are there."""
  import importlib.metadata  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  cell = next(c for c in _read(name).cells if "MIXUP_JAX_INSTALL = " in c.source)
  calls = []

  def fake_run(args, **kwargs):
    del kwargs
    constraints = pathlib.Path(args[args.index("-c") + 1]).read_text() if "-c" in args else ""
    calls.append((list(args), constraints))
    return subprocess.CompletedProcess(args, 0)

  monkeypatch.setattr(subprocess, "run", fake_run)
  monkeypatch.setenv("MIXUP_JAX_INSTALL", "mixup_jax @ git+https://example.invalid/mixup_jax")
  monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # restored afterwards
  monkeypatch.setattr("sys.path", list(__import__("sys").path))
  exec(compile(cell.source, f"{name}.ipynb:install", "exec"), {"__name__": "install_cell"})  # pylint: disable=exec-used
  assert len(calls) == 1 and calls[0][0][-1].endswith("example.invalid/mixup_jax"), calls
  for dist in ("jax", "jaxlib"):
    assert f"{dist}=={importlib.metadata.version(dist)}\n" in calls[0][1], calls
