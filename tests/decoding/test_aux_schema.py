"""The aux schema of tool-use decoding (aux_schema): status codes, rows and call records.

Table-driven on hand-written aux values and a tiny word-level vocabulary (no network)."""
import numpy as np
import pytest

from toolformer_jax.decoding import aux_schema
from toolformer_jax.evaluation import metrics
from toolformer_jax.tools import base as tool_base

PIECES = ["The", " answer", " [", "Calculator", "(", "1 + 2", ")", " ->", " 3", "]", " is",
          " 3", ".", "Calendar", "("]


class WordVocab:
  """Token i is PIECES[i]; decode concatenates."""

  def decode(self, ids):
    return "".join(PIECES[int(i)] for i in ids)


VOCAB = WordVocab()
# "The answer [Calculator(1 + 2) -> 3] is 3."
TOKENS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]


def _aux(count, *, position, marker, length, status, rank=(0,), prob=(0.5,), forced=(1,),
         step=(2,)):
  """One output's aux row (call_* [max_calls], call_count a scalar)."""
  return {"call_count": np.int32(count), "call_position": np.asarray(position, np.int32),
          "call_marker_position": np.asarray(marker, np.int32),
          "call_result_length": np.asarray(length, np.int32),
          "call_status": np.asarray(status, np.int32),
          "call_trigger_rank": np.asarray(rank, np.int32),
          "call_trigger_prob": np.asarray(prob, np.float32),
          "call_forced": np.asarray(forced, np.int32), "call_step": np.asarray(step, np.int32)}


@pytest.mark.parametrize("code,name", [
    (0, tool_base.STATUS_OK), (1, tool_base.STATUS_ERROR), (2, "timeout"),
    (3, tool_base.STATUS_REFUSED), (-1, "unfinished"), (4, "unfinished"),
    (np.int32(-1), "unfinished"), (np.int64(0), "ok"),
])
def test_status_name(code, name):
  assert aux_schema.status_name(code) == name


def test_status_codes_are_the_tools_statuses_and_unfinished_is_outside_them():
  assert aux_schema.STATUS_CODES == {n: i for i, n in enumerate(tool_base.STATUSES)}
  assert aux_schema.STATUS_UNFINISHED not in aux_schema.STATUS_CODES.values()
  assert aux_schema.status_name(aux_schema.STATUS_UNFINISHED) == aux_schema.UNFINISHED
  assert aux_schema.UNFINISHED not in tool_base.STATUSES
  assert metrics.UNFINISHED == aux_schema.UNFINISHED
  assert all(k.startswith(aux_schema.AUX_PREFIX) for k in aux_schema.AUX_KEYS)
  assert len(set(aux_schema.AUX_KEYS)) == len(aux_schema.AUX_KEYS) == 9


@pytest.mark.parametrize("value,expected", [([], None), ([[5, 6]], 5), (7, 7), ((1.5,), 1.5)])
def test_first(value, expected):
  assert aux_schema.first(value) == expected


BATCHED = {"call_count": np.asarray([1, 0]), "call_status": np.asarray([[0], [-1]]),
           "call_extra": np.asarray([[9], [8]]), "scores": np.asarray([0.1, 0.2])}


@pytest.mark.parametrize("fn,aux,row,keys", [
    (aux_schema.split_aux, BATCHED, 1, {"call_count", "call_status"}),
    (aux_schema.split_aux, {}, 0, set()),
    # the metrics' row: every call_* key, {} for no aux
    (aux_schema.aux_row, BATCHED, 1, {"call_count", "call_status", "call_extra"}),
    (aux_schema.aux_row, None, 0, set()),
    (aux_schema.aux_row, {}, 3, set()),
])
def test_rows(fn, aux, row, keys):
  out = fn(aux, row)
  assert set(out) == keys
  for k in keys:
    np.testing.assert_array_equal(out[k], np.asarray(aux[k])[row])


@pytest.mark.parametrize("aux,expected", [
    (_aux(0, position=[-1], marker=[-1], length=[0], status=[-1]), []),
    # a finished call: " [" at 2, "->" at 7, " 3]" inserted (2 tokens)
    (_aux(1, position=[2], marker=[7], length=[2], status=[0]),
     [{"tool": "Calculator", "args": "1 + 2", "text": "Calculator(1 + 2)", "result": "3",
       "status": "ok", "trigger_rank": 0, "trigger_prob": 0.5, "forced": True, "step": 2,
       "position": 2, "end": 10}]),
    # the same call refused (the status is read from the code, the result kept)
    (_aux(1, position=[2], marker=[7], length=[2], status=[3], forced=[0], rank=[4]),
     [{"tool": "Calculator", "args": "1 + 2", "text": "Calculator(1 + 2)", "result": "3",
       "status": "refused", "trigger_rank": 4, "trigger_prob": 0.5, "forced": False,
       "step": 2, "position": 2, "end": 10}]),
    # unfinished (EOS first): no marker, no result, ends at the end of the output
    (_aux(1, position=[2], marker=[-1], length=[0], status=[-1]),
     [{"tool": None, "args": None, "text": "Calculator(1 + 2) -> 3] is 3.", "result": None,
       "status": "unfinished", "trigger_rank": 0, "trigger_prob": 0.5, "forced": True,
       "step": 2, "position": 2, "end": len(TOKENS)}]),
])
def test_calls_from_aux(aux, expected):
  calls = aux_schema.calls_from_aux(TOKENS, aux, VOCAB)
  assert len(calls) == len(expected)
  for call, want in zip(calls, expected):
    assert call["trigger_prob"] == pytest.approx(want["trigger_prob"])
    assert {**call, "trigger_prob": None} == {**want, "trigger_prob": None}


def test_calls_from_aux_reads_only_the_first_call_count_slots():
  aux = _aux(1, position=[2, 0], marker=[7, 0], length=[2, 0], status=[0, 1],
             rank=[0, 0], prob=[0.5, 0.0], forced=[1, 0], step=[2, 0])
  (call,) = aux_schema.calls_from_aux(np.asarray(TOKENS)[None], aux, VOCAB)
  assert call["status"] == "ok" and call["end"] == 10


@pytest.mark.parametrize("status_codes,expected", [
    ([0], "ok"), ([1], "error"), ([-1], "unfinished"), ([7], "unfinished")])
def test_metrics_example_call_reads_the_status_through_the_schema(status_codes, expected):
  aux = {"call_count": np.int32(1), "call_status": np.asarray(status_codes, np.int32)}
  call = metrics.example_call(" [Calculator(1 + 2) -> 3] 3", aux)
  assert call.made and call.status == expected and call.tool == "Calculator"
  assert call.result == ("3" if expected == "ok" else None)
