"""Per-tool document heuristics (the paper, Sec. 3 / App. A): which documents a tool's
prompt is run on. Every rule is a small pure function of a document; `select` counts.

  Calculator  >= 3 numbers, two of which give the third by + - * / (within 1%)
  Calendar    the document has a date (its record's date, Calendar's "today")
  MT          some sentence is not identified as English
  WikiSearch, QA  every document
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import re
from typing import Callable, Dict, Iterable, List, Tuple

from toolformer_jax import corpora

_NUMBER_RE = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])\d+(?:\.\d+)?")
_SENTENCE_RE = re.compile(r"[^.!?]+[.!?]?")


@dataclasses.dataclass(frozen=True)
class HeuristicsConfig:
  min_numbers: int = 3
  max_numbers: int = 40  # more numbers than this: only the first are tried
  relative_tolerance: float = 0.01
  mt_min_sentence_chars: int = 20


def numbers(text: str) -> List[float]:
  return [float(m.group().replace(",", "")) for m in _NUMBER_RE.finditer(text)]


def has_arithmetic_relation(values: List[float], tolerance: float) -> bool:
  """True if a op b == c (within `tolerance`, relative) for distinct indices a, b, c."""
  present = values
  for (i, a), (j, b) in itertools.permutations(enumerate(present), 2):
    results = [a + b, a - b, a * b] + ([a / b] if b else [])
    for k, c in enumerate(present):
      if k in (i, j):
        continue
      for r in results:
        if abs(r - c) <= tolerance * max(abs(c), 1e-9):
          return True
  return False


def calculator(doc: corpora.Document, cfg: HeuristicsConfig) -> bool:
  values = numbers(doc.text)[:cfg.max_numbers]
  return len(values) >= cfg.min_numbers and has_arithmetic_relation(
      values, cfg.relative_tolerance)


def calendar(doc: corpora.Document, cfg: HeuristicsConfig) -> bool:
  del cfg
  return bool(doc.date)


def machine_translation(doc: corpora.Document, cfg: HeuristicsConfig) -> bool:
  from toolformer_jax.tools import mt  # pylint: disable=g-import-not-at-top
  for sentence in _SENTENCE_RE.findall(doc.text):
    if len(sentence.strip()) >= cfg.mt_min_sentence_chars:
      language = mt.identify_language(sentence)
      if language is not None and language != "en":
        return True
  return False


def every_document(doc: corpora.Document, cfg: HeuristicsConfig) -> bool:
  del doc, cfg
  return True


RULES: Dict[str, Callable[[corpora.Document, HeuristicsConfig], bool]] = {
    "Calculator": calculator,
    "Calendar": calendar,
    "MT": machine_translation,
    "WikiSearch": every_document,
    "QA": every_document,
}


def select(tool: str, documents: Iterable[corpora.Document],
           cfg: HeuristicsConfig = HeuristicsConfig()
           ) -> Tuple[List[corpora.Document], Dict[str, int]]:
  """The documents `tool` is run on, and counts {'seen', 'kept'}."""
  if tool not in RULES:
    raise ValueError(f"no document heuristic for tool {tool!r}; known: {sorted(RULES)}")
  rule = RULES[tool]
  counts = collections.Counter(seen=0, kept=0)
  kept = []
  for doc in documents:
    counts["seen"] += 1
    if rule(doc, cfg):
      counts["kept"] += 1
      kept.append(doc)
  return kept, dict(counts)
