"""The record formats the annotation pipeline writes and its readers (toolformer_tasks/, reports) read.

One module for both sides: the writer builds records with these field tuples and the
readers check them, so a field renamed here is renamed everywhere.
"""

from __future__ import annotations

from typing import Any, Mapping, Tuple

# A kept call inserted into its document: one record per annotated document and call.
ANNOTATED_FIELDS: Tuple[str, ...] = (
    "doc_id", "tool", "text", "call", "result", "char_position", "loss_minus", "loss_plus")
# Fields training reads from an annotated record (the rest is provenance).
TRAINING_FIELDS: Tuple[str, ...] = ("tool", "text")

# Every candidate the filter scored, kept or not: enough to recompute it elsewhere.
# token_position is i, the index in ids(document) of the first token after the call;
# prefix_call / prefix_call_result are the exact strings z = e(c, empty) / e(c, r) that
# were tokenized on their own and put before the document.
CANDIDATE_FIELDS: Tuple[str, ...] = (
    "doc_id", "tool", "call", "result", "char_position", "token_position", "prefix_call",
    "prefix_call_result", "loss_empty", "loss_call", "loss_call_result", "loss_minus",
    "loss_plus", "kept")

CANDIDATES_FILE_PART = "candidates"  # audit files carry this in their name; never trained on

# A manifest's per-tool counts may hold, under this key, the first calls each tool refused
# or failed in the shard: [{"call", "status", "message"}], at most REFUSED_CALLS per shard.
REFUSED_CALLS_KEY = "refused_calls"
REFUSED_CALL_FIELDS: Tuple[str, ...] = ("call", "status", "message")
REFUSED_CALLS = 8


def check_record(record: Mapping[str, Any], fields: Tuple[str, ...], kind: str) -> None:
  """Raises ValueError naming the missing fields of a record of `kind`."""
  missing = [f for f in fields if f not in record]
  if missing:
    raise ValueError(f"{kind} record lacks {missing}")
