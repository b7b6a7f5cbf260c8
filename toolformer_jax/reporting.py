"""The report helpers every report of the project shares: numbers, markdown, plots.

  fmt(value, spec, missing)   a number for a table cell; None shows as `missing` ("–").
  table(header, rows, align)  a markdown table as lines; align gives each column's
                              alignment ("l", "r" or "c"), its last letter repeated over
                              the remaining columns ("l": all left, "lr": first column
                              left, the others right, "llrr": one letter per column).
  md_literal(text)            text shown literally in markdown (one line, escaped).
  pyplot()                    matplotlib's pyplot with the Agg backend selected first.
  save_figure(fig, path, dpi) tight layout, PNG written, figure closed.

Used by toolformer_jax.annotate.report, toolformer_jax.evaluation.report and the demo's
report. Importing this module imports neither matplotlib nor jax.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional, Sequence

MISSING = "–"  # an absent number in a table (an en dash)

_SEPARATORS = {"l": "---", "r": "---:", "c": ":---:"}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def fmt(value: Optional[Any], spec: str = ".3f", missing: str = MISSING) -> str:
  """format(value, spec), or `missing` for None."""
  return missing if value is None else format(value, spec)


def table(header: Sequence[Any], rows: Sequence[Sequence[Any]], align: str = "l") -> List[str]:
  """The lines of a markdown table; cells are str()-ed, align as in the module doc."""
  if not align or set(align) - set(_SEPARATORS):
    raise ValueError(f"align needs letters l, r or c, got {align!r}")
  marks = [_SEPARATORS[align[min(k, len(align) - 1)]] for k in range(len(header))]
  lines = ["| " + " | ".join(str(c) for c in header) + " |", "|" + "|".join(marks) + "|"]
  return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def md_literal(text: str) -> str:
  """Text shown literally in markdown: one line, punctuation (HTML's < > & too) escaped."""
  return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def pyplot():
  """matplotlib.pyplot, the Agg backend selected before it is imported (no display)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save_figure(fig, path: str, dpi: int = 100) -> str:
  """Lays the figure out tightly, writes it to path (a PNG), closes it; returns path."""
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  pyplot().close(fig)
  return path
