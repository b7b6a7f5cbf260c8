"""The aux outputs of tool-use decoding: their keys, the call status codes and their decoding.

The one place that knows the schema: `tool_decoding.ToolSampler` writes it, the evaluation
metrics (`toolformer_jax.evaluation.metrics`), `generate`, the benchmarks and the tests read
it. Per row and call slot ([batch, (num_decodes,) max_calls]), positions counted in the
returned (prefix-removed) tokens as t5x's predict_batch_with_aux returns them:

  call_count [batch]       calls started (at most max_calls)
  call_position            index of the " [" token (-1: no call in this slot)
  call_marker_position     index of the "->" token (or the last call token when capped)
  call_result_length       tokens inserted after it (result and "]")
  call_status              index into tools.STATUSES (ok, error, timeout, refused);
                           -1 (STATUS_UNFINISHED, named "unfinished"): the call did not
                           finish (EOS or the length limit first)
  call_trigger_rank        rank of " [" among the next-token logits at the trigger step
  call_trigger_prob        its probability p(" [") there (softmax of the raw logits)
  call_forced              1 if the trigger emitted " [", 0 if it was sampled anyway
  call_step                decoding-loop step of the trigger

`calls_from_aux` turns one output's values (with its tokens) into records with tool,
arguments and result text. numpy and the tools' call format only: no jax, t5x, seqio or
TensorFlow import, so the metrics can read it cheaply.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from toolformer_jax.tools import base as tool_base
from toolformer_jax.tools import call_format

# --- keys ------------------------------------------------------------------------------------
AUX_PREFIX = "call_"  # every key below starts with it
CALL_COUNT = "call_count"
CALL_POSITION = "call_position"
CALL_MARKER_POSITION = "call_marker_position"
CALL_RESULT_LENGTH = "call_result_length"
CALL_STATUS = "call_status"
CALL_TRIGGER_RANK = "call_trigger_rank"
CALL_TRIGGER_PROB = "call_trigger_prob"
CALL_FORCED = "call_forced"
CALL_STEP = "call_step"

AUX_KEYS = (CALL_COUNT, CALL_POSITION, CALL_MARKER_POSITION, CALL_RESULT_LENGTH,
            CALL_STATUS, CALL_TRIGGER_RANK, CALL_TRIGGER_PROB, CALL_FORCED, CALL_STEP)

# --- statuses --------------------------------------------------------------------------------
UNFINISHED = "unfinished"  # the name of STATUS_UNFINISHED (not one of tools.STATUSES)
STATUS_UNFINISHED = -1
STATUS_CODES = {name: code for code, name in enumerate(tool_base.STATUSES)}


def status_name(code: Any) -> str:
  """The name of a call_status code: a tools.STATUSES name, or UNFINISHED for any other."""
  code = int(code)
  return tool_base.STATUSES[code] if 0 <= code < len(tool_base.STATUSES) else UNFINISHED


# --- rows ------------------------------------------------------------------------------------
def first(value: Any) -> Any:
  """The first element of `value` flattened (None if it is empty)."""
  flat = np.asarray(value).reshape(-1)
  return flat[0] if flat.size else None


def split_aux(aux: Mapping[str, Any], row: int) -> Dict[str, np.ndarray]:
  """Row `row` of batched aux outputs (numpy): the AUX_KEYS only."""
  return {k: np.asarray(v)[row] for k, v in aux.items() if k in AUX_KEYS}


def aux_row(aux_values: Optional[Mapping[str, Any]], index: int) -> Dict[str, Any]:
  """Example `index` of batched aux values ({name: [N, ...]}); the call_* keys only
  ({} for None or empty aux values)."""
  if not aux_values:
    return {}
  return {k: np.asarray(v)[index] for k, v in aux_values.items() if k.startswith(AUX_PREFIX)}


# --- one output's calls ----------------------------------------------------------------------
def calls_from_aux(tokens: Sequence[int], aux: Mapping[str, Any], vocabulary
                   ) -> List[Dict[str, Any]]:
  """The calls of ONE output: `tokens` as predict_batch_with_aux returns them and that
  row's aux values (call_* arrays [max_calls], call_count a scalar).

  Each call: tool, args (None if the call text does not parse), result (the inserted text
  without "]"), status (a tools.STATUSES name or "unfinished"), trigger_rank,
  trigger_prob, forced, step, text (the call text), position (of " [" in `tokens`) and
  end (one past the inserted "]"; len(tokens) for an unfinished call).
  """
  tokens = [int(t) for t in np.asarray(tokens).reshape(-1)]
  count = int(np.asarray(aux[CALL_COUNT]).reshape(()))
  calls = []
  for slot in range(count):
    get = lambda name: np.asarray(aux[name]).reshape(-1)[slot]
    position, marker = int(get(CALL_POSITION)), int(get(CALL_MARKER_POSITION))
    length, code = int(get(CALL_RESULT_LENGTH)), int(get(CALL_STATUS))
    status = status_name(code)
    end = marker + 1 if marker >= 0 else len(tokens)
    call_text = vocabulary.decode(tokens[position + 1:end]) if position >= 0 else ""
    cut = call_text.rfind(call_format.RESULT_MARKER)
    if marker >= 0 and cut >= 0 and call_text[cut:].strip() == call_format.RESULT_MARKER:
      call_text = call_text[:cut]
    parsed = call_format.parse_call(call_text)
    result = None
    if marker >= 0 and status != UNFINISHED:
      result = vocabulary.decode(tokens[marker + 1:marker + 1 + length]).strip()
      if result.startswith(call_format.RESULT_MARKER):
        result = result[len(call_format.RESULT_MARKER):].strip()
      if result.endswith(call_format.CALL_END):
        result = result[:-len(call_format.CALL_END)].rstrip()
    calls.append({
        "tool": parsed.tool if isinstance(parsed, call_format.ToolCall) else None,
        "args": parsed.args if isinstance(parsed, call_format.ToolCall) else None,
        "text": call_text.strip(),
        "result": result,
        "status": status,
        "trigger_rank": int(get(CALL_TRIGGER_RANK)),
        "trigger_prob": float(get(CALL_TRIGGER_PROB)),
        "forced": bool(get(CALL_FORCED)),
        "step": int(get(CALL_STEP)),
        "position": position,
        "end": marker + 1 + length if result is not None else len(tokens),
    })
  return calls
