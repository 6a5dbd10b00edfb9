"""The project's layout: no module imports one that imports it back."""

import ast
import pathlib

_REPO = pathlib.Path(__file__).resolve().parents[1]
_PACKAGES = ("mixup_jax", "experiments")


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(_REPO).with_suffix("").parts)
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
  """{module: project modules it imports}, module-level and inside functions alike.

  `from a.b import c` counts as importing a.b.c when that is a module, else a.b.
  Importing a package's submodule also runs the package's __init__, but that is
  not counted: a package that re-exports its submodules is not a cycle.
  """
  paths = {_module_name(p): p for package in _PACKAGES for p in (_REPO / package).rglob("*.py")}
  graph = {}
  for name, path in paths.items():
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
      if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        for alias in node.names:
          full = f"{node.module}.{alias.name}"
          imported.add(full if full in paths else node.module)
      elif isinstance(node, ast.Import):
        imported.update(alias.name for alias in node.names)
    graph[name] = {m for m in imported if m in paths and m != name}
  return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """One import cycle per strongly connected group of modules (depth-first search)."""
  found, state = [], {}  # state: 1 on the current path, 2 done

  def visit(node, path):
    state[node] = 1
    for nxt in sorted(graph[node]):
      if state.get(nxt) == 1:
        found.append(path[path.index(nxt):] + [nxt])
      elif nxt not in state:
        visit(nxt, path + [nxt])
    state[node] = 2

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  return found


def test_the_cycle_finder_finds_a_cycle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
  assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back():
  graph = _import_graph()
  assert "mixup_jax.data.corruption" in graph["mixup_jax.data.registry"]  # the graph is real
  assert _cycles(graph) == []


def test_the_version_is_one_string_that_setup_and_the_changelog_share():
  import re  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import mixup_jax  # pylint: disable=g-import-not-at-top
  setup_version = subprocess.run([sys.executable, "setup.py", "--version"], cwd=_REPO,
                                 capture_output=True, text=True, check=True).stdout.split()[-1]
  assert setup_version == mixup_jax.__version__
  release = re.match(r"(\d+\.\d+\.\d+)", mixup_jax.__version__).group(1)
  assert f"## {release}" in (_REPO / "CHANGELOG.md").read_text()
