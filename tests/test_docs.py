"""Every Python block of README.md and docs/*.md runs, in order, one namespace per page.

The documentation is code a reader copies: a snippet that no longer runs (a renamed
argument, a moved module) fails here, not in a user's notebook. Blocks of one page
share their names, as a reader who runs them top to bottom would; their `assert`
lines check what the prose claims.
"""

import pathlib
import re

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [_ROOT / "README.md", *sorted((_ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: pathlib.Path) -> list[tuple[int, str]]:
  """(first line number, source) of each ```python block of a markdown page."""
  text = page.read_text()
  return [(text[:m.start()].count("\n") + 2, m.group(1)) for m in _BLOCK.finditer(text)]


def test_every_page_is_linked_and_the_readme_stays_short():
  readme = (_ROOT / "README.md").read_text()
  assert len(readme.splitlines()) <= 250
  for page in PAGES[1:]:
    assert f"docs/{page.name}" in readme, f"README does not link {page.name}"


def test_the_block_finder_finds_blocks():
  assert len(python_blocks(_ROOT / "README.md")) >= 1
  assert sum(len(python_blocks(p)) for p in PAGES) >= 8


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page, data_dir, tmp_path, monkeypatch):
  del data_dir  # the pages read the committed samples through $MIXUP_JAX_DATA_DIR
  monkeypatch.chdir(tmp_path)  # snippets that write files write them here
  namespace = {"__name__": f"docs_{page.stem}"}
  for line, source in python_blocks(page):
    code = compile(source, f"{page.relative_to(_ROOT)}:{line}", "exec")
    exec(code, namespace)  # pylint: disable=exec-used
