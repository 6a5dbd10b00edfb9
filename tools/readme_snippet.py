r"""Prints the first Python block under a heading of a Markdown page.

  python tools/readme_snippet.py README.md "mixup in your own train step" > snippet.py

`.ci/run` runs the README's train-step snippet with the installed wheel this way, so
the page shows code that works outside the checkout.
"""

import pathlib
import re
import sys


def snippet(page: str, heading: str) -> str:
  text = pathlib.Path(page).read_text(encoding="utf-8")
  section = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ |\Z)", text, re.M | re.S)
  if section is None:
    raise SystemExit(f"{page}: no heading {heading!r}")
  block = re.search(r"^```python\n(.*?)^```", section.group(1), re.M | re.S)
  if block is None:
    raise SystemExit(f"{page}: no ```python block under {heading!r}")
  return block.group(1)


if __name__ == "__main__":
  if len(sys.argv) != 3:
    raise SystemExit(__doc__)
  print(snippet(sys.argv[1], sys.argv[2]), end="")
