"""The file layer of the benchmark readers (benchmark_formats.py): the `Example` they
return, `FormatError`, opening a JSON or jsonl file as the format expects (a file of another
kind fails naming the expected format), and the answers' normal forms.

Pure Python: no TensorFlow, seqio or t5x.
"""
from __future__ import annotations

import collections
import dataclasses
import glob
import json
import math
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from toolformer_jax import corpora
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics


class FormatError(ValueError):
  """A benchmark file of another kind than its reader's (the message names the format)."""


@dataclasses.dataclass(frozen=True)
class Example:
  """One benchmark question with its gold answers, as the file gives them."""

  id: str
  question: str  # the question, or the statement before its blank (LAMA, TempLAMA)
  answers: Tuple[str, ...]  # every accepted answer; the first is the gold one
  subset: str = ""  # LAMA: its subset; MLQA: '<split>_<question language>'
  context: str = ""  # MLQA: the paragraph
  language: str = "en"  # the question's language
  date: str = ""  # TempLAMA: the query's date as the file writes it (a year)


# --- files ---------------------------------------------------------------------------------
def files_of(path: str, pattern: str, expected: str) -> List[str]:
  """[path] for a file; a folder's files matching `pattern` at any depth, sorted."""
  path = os.path.expanduser(str(path))
  if os.path.isdir(path):
    files = sorted(glob.glob(os.path.join(path, "**", pattern), recursive=True))
    if not files:
      raise FileNotFoundError(f"{path} holds no {pattern} file; expected {expected}")
    return files
  if not os.path.isfile(path):
    raise FileNotFoundError(f"benchmark file not found: {path}; expected {expected}")
  return [path]


def _looks_like_jsonl(text: str) -> bool:
  lines = [line for line in text.splitlines() if line.strip()][:2]
  if len(lines) < 2:
    return False
  try:
    return all(isinstance(json.loads(line), dict) for line in lines)
  except ValueError:
    return False


def require_file(path: str, expected: str) -> None:
  """FileNotFoundError (a missing path) or FormatError (a folder), naming the format."""
  if os.path.isdir(path):
    raise FormatError(f"{path} is a folder, not a file; expected {expected}")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"benchmark file not found: {path}; expected {expected}")


def load_json(path: str, expected: str) -> Any:
  """The one JSON document of `path` (FormatError naming `expected` if it is not one)."""
  require_file(path, expected)
  with open(path, encoding="utf-8", errors="replace") as f:
    text = f.read()
  try:
    return json.loads(text)
  except ValueError as e:
    kind = "jsonl (one JSON object per line)" if _looks_like_jsonl(text) else "not JSON"
    raise FormatError(f"{path} is {kind} ({e}); expected {expected}") from None


def json_list(path: str, expected: str) -> List[Any]:
  data = load_json(path, expected)
  if not isinstance(data, list):
    raise FormatError(f"{path} holds a JSON {type(data).__name__}, not a list; "
                      f"expected {expected}")
  return data


def jsonl(path: str, stats: corpora.ReadStats, expected: str
           ) -> Iterator[Tuple[int, Dict[str, Any]]]:
  """The records of a jsonl file (a file that opens a JSON list fails: FormatError)."""
  require_file(path, expected)
  with open(path, "rb") as f:
    head = f.read(4096).lstrip()
  if head.startswith(b"["):
    raise FormatError(f"{path} holds a JSON list, not jsonl; expected {expected}")
  yield from corpora.iter_json_records(path, stats)


class FileCheck:
  """Counts the records of one file that fit its format (read, or left out by the
  benchmark's own rule); `done()` fails if none did."""

  def __init__(self, path: str, stats: corpora.ReadStats, expected: str):
    self.path, self.stats, self.expected = path, stats, expected
    self.fitting = 0
    self._before = collections.Counter(stats.skipped_by_reason)

  def done(self) -> None:
    if self.fitting:
      return
    skipped = collections.Counter(self.stats.skipped_by_reason) - self._before
    detail = ", ".join(f"{r} {n}" for r, n in sorted(skipped.items())) or "no records"
    raise FormatError(f"{self.path}: no record of the expected format ({detail}); "
                      f"expected {self.expected}")


def line(path: str, number: int) -> str:
  """Where a jsonl record is: 'file:line'."""
  return f"{path}:{number}"


def where(path: str, key) -> str:
  """Where a record of a JSON document is: 'file[index]' ('file[data 0 paragraph 2]')."""
  return f"{path}[{key}]"


def record_id(value: Any, default: str) -> str:
  if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
    return default
  return str(value).strip()


def text(value: str) -> str:
  return " ".join(value.split())


# --- answers -------------------------------------------------------------------------------
def number_answer(value: Any) -> Optional[str]:
  """A gold number as the items write it (3.0 -> '3'; '1,000' -> '1000'); None if `value`
  is not one number."""
  if isinstance(value, bool):
    return None
  if isinstance(value, (int, float)):
    number = float(value)
  elif isinstance(value, str):
    number = metrics.parse_number(value)
  else:
    return None
  if number is None or not math.isfinite(number):
    return None
  return items_lib.format_number(number)


def word_answers(values: Sequence[Any]) -> Tuple[str, ...]:
  """The strings of `values` that have words to match, once each (by their normalised
  words: 'The Beatles' and 'beatles' are one), in order."""
  seen, out = set(), []
  for value in values:
    if not isinstance(value, str):
      continue
    key = tuple(metrics.normalize_words(value))
    if key and key not in seen:
      seen.add(key)
      out.append(text(value))
  return tuple(out)


def cloze_prefix(sentence: str, blank: str) -> Optional[str]:
  """The text before `blank` if it occurs once and only closing punctuation follows it
  ('Paris is the capital of [MASK] .' -> 'Paris is the capital of'); else None."""
  words = text(sentence)
  if words.count(blank) != 1:
    return None
  head, _, tail = words.partition(blank)
  if tail.strip(" .!?;:\"'”’»)"):
    return None
  head = head.rstrip()
  return head or None
