"""Matplotlib for the entries: pyplot without a display, and one way to save a figure."""

from __future__ import annotations

import pathlib
from typing import Any


def pyplot():
  """matplotlib.pyplot on the Agg backend (entries run on machines without a display)."""
  import matplotlib  # pylint: disable=g-import-not-at-top: only plotting needs it
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save(fig, path: pathlib.Path, *, dpi: float | None = None, tight_layout: bool = True,
         **savefig_options: Any) -> None:
  """Lays out (unless told not to), writes and closes `fig`."""
  if tight_layout:
    fig.tight_layout()
  fig.savefig(path, dpi=dpi, **savefig_options)
  pyplot().close(fig)
