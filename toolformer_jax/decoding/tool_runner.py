"""The host side of tool-use decoding: the call format's token tables and the tool runner.

`marker_tables(vocabulary)`: which tokens are " [", end in "->", end in "-", are ">" or are
special (host numpy, cached per vocabulary); the jitted loop reads them to open calls and
detect the result marker. `ToolRunner.execute` is the `jax.experimental.io_callback` target
the loop calls when rows reach "->": it decodes the call texts, runs them as one batch on
the tools' engine (`tools.ToolExecutor.execute_batch`) and returns the tokens to insert
(` result]` or ` <status>: <message>]`), their lengths and the status codes
(`aux_schema.STATUS_CODES`). numpy only (no jax).
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Dict, List, Optional

from absl import logging
import numpy as np

from toolformer_jax.decoding import aux_schema
from toolformer_jax.tools import base as tool_base
from toolformer_jax.tools import call_format


# ---------------------------------------------------------------------------- markers
@dataclasses.dataclass(frozen=True)
class MarkerTables:
  """Token-level facts about the call format for one vocabulary (host numpy, [vocab])."""
  call_id: int  # " ["
  ends_arrow: np.ndarray  # the token's text ends with "->"
  ends_dash: np.ndarray  # ... ends with "-"
  is_gt: np.ndarray  # ... is ">"
  special: np.ndarray  # PAD, EOS: never inserted
  opens_call: np.ndarray  # the token's text holds "[" (could open a call): masked when off

  def padded(self, size: int) -> "MarkerTables":
    def pad(table):
      if len(table) >= size:
        return table[:size]
      return np.concatenate([table, np.zeros(size - len(table), table.dtype)])
    return MarkerTables(self.call_id, pad(self.ends_arrow), pad(self.ends_dash),
                        pad(self.is_gt), pad(self.special), pad(self.opens_call))


_TABLES: Dict[Any, MarkerTables] = {}
_TABLES_LOCK = threading.Lock()


def marker_tables(vocabulary) -> MarkerTables:
  """MarkerTables of `vocabulary` (decodes every id once; cached per vocabulary)."""
  with _TABLES_LOCK:
    try:
      cached = _TABLES.get(vocabulary)
    except TypeError:  # an unhashable vocabulary
      cached = None
    if cached is not None:
      return cached
  from toolformer_jax import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  call_id = vocab_lib.single_token_id(vocabulary, call_format.CALL_START)
  size = int(vocabulary.vocab_size)
  texts = [vocabulary.decode([i]) for i in range(size)]
  ends_arrow = np.asarray([t.endswith(call_format.RESULT_MARKER) for t in texts])
  ends_dash = np.asarray([t.endswith(call_format.RESULT_MARKER[0]) for t in texts])
  is_gt = np.asarray([t == call_format.RESULT_MARKER[1:] for t in texts])
  special = np.zeros(size, bool)
  for i in (vocabulary.pad_id, vocabulary.eos_id):
    if i is not None and 0 <= i < size:
      special[i] = True
  ends_arrow &= ~special
  opens_call = np.asarray([call_format.CALL_START.strip() in t for t in texts]) & ~special
  tables = MarkerTables(call_id, ends_arrow, ends_dash, is_gt, special, opens_call)
  with _TABLES_LOCK:
    try:
      _TABLES[vocabulary] = tables
    except TypeError:
      pass
  return tables


# ----------------------------------------------------------------------------- runner
@dataclasses.dataclass
class ToolRunner:
  """Runs the calls the decoding loop hands over (ToolSampler's settings of the same names).

  executor: a `tools.ToolExecutor` (None: every call fails with an internal error).
  max_call_tokens: the cap a refused (not closed) call hit, for its message.
  max_result_tokens: tokens inserted per call (result and "]").
  error_chars: characters of an error message inserted.
  """
  vocabulary: Any
  executor: Any
  max_call_tokens: int
  max_result_tokens: int
  error_chars: int

  def execute(self, sequences, call_start, marker, do_call, capped, *,
              eos_id: Optional[int] = None):
    """io_callback target: runs the calls of the rows in `do_call` as one engine batch.

    Returns (tokens [batch, max_result_tokens], lengths [batch], status codes [batch]).
    Never raises (an exception here would abort the whole decode).
    """
    status_codes = aux_schema.STATUS_CODES
    sequences, call_start, marker = map(np.asarray, (sequences, call_start, marker))
    do_call, capped = np.asarray(do_call, bool), np.asarray(capped, bool)
    batch = sequences.shape[0]
    width = self.max_result_tokens
    out = np.zeros((batch, width), np.int32)
    lengths = np.zeros((batch,), np.int32)
    status = np.full((batch,), aux_schema.STATUS_UNFINISHED, np.int32)
    rows = [int(b) for b in np.flatnonzero(do_call)]
    try:
      texts: Dict[int, str] = {}
      runnable: List[int] = []
      for b in rows:
        ids = sequences[b, call_start[b] + 1:marker[b] + 1]
        text = self.vocabulary.decode([int(t) for t in ids])
        if capped[b]:
          texts[b] = self.completion(
              tool_base.STATUS_REFUSED,
              f"call not closed with '{call_format.RESULT_MARKER}' within "
              f"{self.max_call_tokens} tokens", with_marker=True)
          status[b] = status_codes[tool_base.STATUS_REFUSED]
          continue
        cut = text.rfind(call_format.RESULT_MARKER)
        texts[b] = text[:cut] if cut >= 0 else text
        runnable.append(b)
      if runnable:
        if self.executor is None:
          raise RuntimeError("ToolSampler has no executor")
        # Each call's context: the text before it (prompt and output so far; the Calendar
        # reads a date stated there as today).
        contexts = [{tool_base.CONTEXT_TEXT: self.vocabulary.decode(
            [int(t) for t in sequences[b, :call_start[b]]])} for b in runnable]
        results = self.executor.execute_batch([texts[b].strip() for b in runnable], contexts)
        for b, result in zip(runnable, results):
          status[b] = status_codes.get(result.status, status_codes[tool_base.STATUS_ERROR])
          texts[b] = self.completion(result.status, result.text)
      for b in rows:
        ids = self.result_ids(texts[b], eos_id)
        out[b, :len(ids)] = ids
        lengths[b] = len(ids)
    except Exception as e:  # pylint: disable=broad-except
      logging.exception("tool decoding: the host-side call step failed")
      message = self.completion(tool_base.STATUS_ERROR,
                                f"internal error: {type(e).__name__}: {e}")
      try:
        ids = self.result_ids(message, eos_id)
      except Exception:  # pylint: disable=broad-except
        ids = []
      for b in rows:
        out[b] = 0
        out[b, :len(ids)] = ids
        lengths[b] = len(ids)
        status[b] = status_codes[tool_base.STATUS_ERROR]
    return out, lengths, status

  def completion(self, status: str, text: str, with_marker: bool = False) -> str:
    """The text inserted after "->": ` result]`, or ` <status>: <message>]`."""
    if status != tool_base.STATUS_OK:
      text = f"{status}: {tool_base.one_line(text, self.error_chars)}"
    completion = call_format.render_completion(text)
    return f" {call_format.RESULT_MARKER}{completion}" if with_marker else completion

  def result_ids(self, completion: str, eos_id: Optional[int] = None) -> List[int]:
    """Token ids of `completion` (ends with "]"), PAD/EOS removed, cut to the cap with
    "]" kept."""
    tables = marker_tables(self.vocabulary)
    clean = lambda ids: [int(t) for t in ids if t != eos_id and not (
        0 <= t < len(tables.special) and tables.special[t])]
    ids = clean(self.vocabulary.encode(completion))
    if len(ids) <= self.max_result_tokens:
      return ids
    end = clean(self.vocabulary.encode(call_format.CALL_END))
    body = clean(self.vocabulary.encode(completion[:-len(call_format.CALL_END)]))
    return body[:self.max_result_tokens - len(end)] + end
