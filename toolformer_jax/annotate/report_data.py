"""The annotation report's reading: every shard of an annotation run, as numbers and arrays.

`read_run(DIR)` reads the shards `python -m toolformer_jax.annotate` wrote in DIR
(annotated-*.jsonl, candidates-*.jsonl.gz, manifest-*.json) through the corpora record
layer (`toolformer_jax.corpora.iter_json_records`); records are checked against
`schema`'s field tuples and a malformed line or file is counted under its reason in the
numbers' "malformed" and skipped. `locate_call` finds a record's call in its text.
The markdown and plots are toolformer_jax.annotate.report and report_plots.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import hashlib
import heapq
import json
import math
import os
import re
import zlib
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tqdm

from toolformer_jax import corpora
from toolformer_jax.annotate import schema


# Kept examples per tool at tau_f = 1.0 (the paper's Table 2, from its CCNet subset).
PAPER_KEPT = {"QA": 18526, "WikiSearch": 60974, "Calculator": 994, "Calendar": 20587,
              "MT": 1034}
PAPER_TOOLS = ("QA", "WikiSearch", "Calculator", "Calendar", "MT")
# The paper's tau_f per tool; used only for shards without a readable manifest.
PAPER_TAU_F = {"QA": 1.0, "WikiSearch": 1.0, "Calculator": 0.5, "Calendar": 1.0, "MT": 0.5}
# The thresholds of the paper's Table 2; the report counts candidates clearing each.
TABLE_THRESHOLDS = (0.5, 1.0, 2.0)
# The per-tool stage counts of a manifest, in pipeline order (absent ones read as 0).
FUNNEL = ("heuristic_seen", "heuristic_kept", "no_allowed_position", "over_max_documents",
          "positions", "sampled",
          "unparsable", "other_tool", "duplicates", "own_document_excluded", "tool_errors",
          "scored", "kept")
STAGES = ("positions", "calls", "execute", "filter")

_SHARD_FILE = re.compile(
    r"^(?P<kind>annotated|%s|manifest)-(?P<shard>\d+)-of-(?P<num>\d+)"
    r"\.(?P<ext>jsonl|jsonl\.gz|json)$" % re.escape(schema.CANDIDATES_FILE_PART))
_EXTENSIONS = {"annotated": "jsonl", schema.CANDIDATES_FILE_PART: "jsonl.gz",
               "manifest": "json"}
_NUMERIC_ANNOTATED = ("loss_minus", "loss_plus", "char_position")
_NUMERIC_CANDIDATE = ("loss_empty", "loss_call", "loss_call_result", "loss_minus",
                      "loss_plus", "char_position", "token_position")
_SAMPLE_POOL = 256  # annotated records kept per tool (a hash-uniform sample) for passages


# ----------------------------------------------------------------------------- reading


def _is_number(value: Any) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _valid(record: Any, kind: str) -> Optional[str]:
  """None for a well-formed record of `kind`, else the reason it is not."""
  if not isinstance(record, dict):
    return "not an object"
  fields = schema.ANNOTATED_FIELDS if kind == "annotated" else schema.CANDIDATE_FIELDS
  try:
    schema.check_record(record, fields, kind)
  except ValueError:
    return "missing fields"
  numeric = _NUMERIC_ANNOTATED if kind == "annotated" else _NUMERIC_CANDIDATE
  if not all(_is_number(record[f]) for f in numeric):
    return "non-numeric field"
  strings = ("tool", "call", "result") + (("text",) if kind == "annotated" else
                                            ("prefix_call", "prefix_call_result"))
  if not all(isinstance(record[f], str) for f in strings) or not isinstance(
      record["doc_id"], (str, int)):
    return "non-string field"
  if kind != "annotated":
    if not isinstance(record["kept"], bool):
      return "non-boolean kept"
    if "p_call_start" in record and not _is_number(record["p_call_start"]):
      return "non-numeric field"
  return None


# The corpora layer's skip reasons, as the report has always named them.
_READ_REASONS = {corpora.MALFORMED_JSON: "not JSON", corpora.NOT_AN_OBJECT: "not an object"}


def _json_lines(path: str, kind: str, malformed: collections.Counter) -> Iterator[dict]:
  """Well-formed records of a (gzipped) jsonl file; bad lines counted in `malformed`."""
  stats = corpora.ReadStats(kind)
  try:
    for _, record in corpora.iter_json_records(path, stats, strict_utf8=True):
      reason = _valid(record, kind)
      if reason:
        malformed[f"{kind}: {reason}"] += 1
        continue
      yield record
  except (EOFError, OSError, zlib.error):
    malformed[f"{kind}: truncated or unreadable file"] += 1
  finally:
    for reason, n in stats.skipped_by_reason.items():
      malformed[f"{kind}: {_READ_REASONS.get(reason, reason)}"] += n


@dataclasses.dataclass
class _ToolData:
  gains: List[float] = dataclasses.field(default_factory=list)
  kept: List[bool] = dataclasses.field(default_factory=list)
  kept_both: List[Tuple[bool, bool]] = dataclasses.field(default_factory=list)  # prefix, inline
  p_call_start: List[float] = dataclasses.field(default_factory=list)  # NaN when absent
  annotated: int = 0
  samples: List[Tuple[int, int, dict]] = dataclasses.field(default_factory=list)  # heap
  funnel: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  tool_errors: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  tau_f: set = dataclasses.field(default_factory=set)
  refused: List[dict] = dataclasses.field(default_factory=list)  # first refused calls


def _stable_hash(record: Mapping[str, Any]) -> int:
  key = f"{record['doc_id']}\x00{record['call']}\x00{record['char_position']}"
  return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big")


def _keep_sample(data: _ToolData, record: dict, serial: int) -> None:
  """Keeps the _SAMPLE_POOL records with the smallest hashes (order-independent)."""
  item = (-_stable_hash(record), -serial, record)
  if len(data.samples) < _SAMPLE_POOL:
    heapq.heappush(data.samples, item)
  elif item > data.samples[0]:
    heapq.heapreplace(data.samples, item)


def _shard_files(annotate_dir: str) -> Dict[str, Dict[Tuple[int, int], str]]:
  files: Dict[str, Dict[Tuple[int, int], str]] = {k: {} for k in _EXTENSIONS}
  for path in sorted(glob.glob(os.path.join(glob.escape(annotate_dir), "*"))):
    m = _SHARD_FILE.match(os.path.basename(path))
    if m and _EXTENSIONS[m["kind"]] == m["ext"]:
      files[m["kind"]][(int(m["shard"]), int(m["num"]))] = path
  return files


def read_run(annotate_dir: str, samples_per_tool: int = 3, progress: bool = False
             ) -> Dict[str, Any]:
  """Every number of the report (JSON-ready) and the arrays the plots need."""
  if not os.path.isdir(annotate_dir):
    raise FileNotFoundError(f"no annotation directory {annotate_dir}")
  files = _shard_files(annotate_dir)
  shards = sorted(set().union(*(set(v) for v in files.values())))
  if not shards:
    raise FileNotFoundError(f"no annotation shards (annotated-*, {schema.CANDIDATES_FILE_PART}"
                            f"-*, manifest-*) in {annotate_dir}")
  malformed = collections.Counter()
  tools: Dict[str, _ToolData] = collections.defaultdict(_ToolData)
  order: List[str] = []  # tools in the order the manifests list them, then first seen
  stage_seconds = collections.Counter()
  totals = collections.Counter()
  manifest_kept = collections.Counter()
  cost_lambdas = set()
  for key in sorted(files["manifest"]):
    try:
      with open(files["manifest"][key], encoding="utf-8") as f:
        manifest = json.load(f)
      counts = manifest["counts"]
      per_tool = counts["tools"]
      if not isinstance(per_tool, dict):
        raise TypeError("counts.tools is not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
      malformed["manifest: unreadable"] += 1
      continue
    totals["documents"] += int(counts.get("documents", 0))
    totals["annotated_documents"] += int(counts.get("annotated_documents", 0))
    totals["manifests"] += 1
    for reason, n in (counts.get("corpus_skipped") or {}).items():
      totals[f"corpus_skipped: {reason}"] += int(n)
    settings = manifest.get("settings") or {}
    for tool in list(settings) + list(per_tool):
      if tool not in order:
        order.append(tool)
    for tool, tc in per_tool.items():
      data = tools[tool]
      for name, n in tc.items():
        if not _is_number(n):
          continue
        if name.startswith("tool_"):
          data.tool_errors[name[len("tool_"):]] += int(n)
          data.funnel["tool_errors"] += int(n)
        else:
          data.funnel[name] += int(n)
      manifest_kept[tool] += int(tc.get("kept", 0))
      for example in tc.get(schema.REFUSED_CALLS_KEY) or []:
        if (len(data.refused) < schema.REFUSED_CALLS and isinstance(example, dict)
            and all(isinstance(example.get(f), str) for f in schema.REFUSED_CALL_FIELDS)):
          data.refused.append({f: example[f] for f in schema.REFUSED_CALL_FIELDS})
    for tool, s in settings.items():
      if isinstance(s, dict) and _is_number(s.get("tau_f")):
        tools[tool].tau_f.add(float(s["tau_f"]))
    for stage, seconds in (manifest.get("stage_seconds") or {}).items():
      if _is_number(seconds):
        stage_seconds[stage] += float(seconds)
    lam = (manifest.get("filter") or {}).get("cost_lambda")
    if _is_number(lam):
      cost_lambdas.add(float(lam))

  bar = tqdm.tqdm(total=len(files[schema.CANDIDATES_FILE_PART]) + len(files["annotated"]),
                  desc="reading shards", unit="file", disable=not progress, leave=False)
  for key in sorted(files[schema.CANDIDATES_FILE_PART]):
    bar.update()
    for c in _json_lines(files[schema.CANDIDATES_FILE_PART][key], "candidates", malformed):
      data = tools[c["tool"]]
      if c["tool"] not in order:
        order.append(c["tool"])
      data.gains.append(float(c["loss_minus"]) - float(c["loss_plus"]))
      data.kept.append(c["kept"])
      if isinstance(c.get("kept_inline"), bool):
        data.kept_both.append((c["kept"], c["kept_inline"]))
      data.p_call_start.append(float(c.get("p_call_start", math.nan)))
  serial = 0
  for key in sorted(files["annotated"]):
    bar.update()
    for r in _json_lines(files["annotated"][key], "annotated", malformed):
      data = tools[r["tool"]]
      if r["tool"] not in order:
        order.append(r["tool"])
      data.annotated += 1
      _keep_sample(data, r, serial)
      serial += 1
  bar.close()

  num_shards = sorted({n for _, n in shards})
  expected = {(s, n) for n in num_shards for s in range(n)}
  incomplete = sorted(f"{s:05d}-of-{n:05d}" for s, n in expected
                      if not all((s, n) in files[k] for k in files))
  out: Dict[str, Any] = {
      "annotate_dir": os.path.abspath(annotate_dir),
      "shards": {"num_shards": num_shards, "complete": len(expected) - len(incomplete),
                 "incomplete_or_missing": incomplete,
                 "files": {k: len(v) for k, v in files.items()}},
      "malformed": dict(sorted(malformed.items())),
      "malformed_total": sum(malformed.values()),
      "documents": totals["documents"],
      "annotated_documents": totals["annotated_documents"],
      "corpus_skipped": {k.split(": ", 1)[1]: v for k, v in totals.items()
                         if k.startswith("corpus_skipped: ")},
      "cost_lambda": sorted(cost_lambdas),
      "stage_seconds": {s: stage_seconds.get(s, 0.0) for s in
                        list(STAGES) + sorted(set(stage_seconds) - set(STAGES))},
      "tools": {},
  }
  arrays = {}
  for tool in order:
    data = tools[tool]
    gains = np.asarray(data.gains, np.float64)
    kept = np.asarray(data.kept, bool)
    p = np.asarray(data.p_call_start, np.float64)
    tau_f = sorted(data.tau_f) or ([PAPER_TAU_F[tool]] if tool in PAPER_TAU_F else [])
    scored = int(gains.size)
    entry = {
        "scored": scored, "kept": int(kept.sum()),
        "keep_rate": float(kept.mean()) if scored else None,
        "tau_f": tau_f,
        "tau_f_from": "manifest" if data.tau_f else "paper default",
        "annotated_records": data.annotated,
        "manifest_kept": manifest_kept.get(tool, 0),
        "clearing": {f"{t:g}": int((gains >= t).sum()) for t in TABLE_THRESHOLDS},
        "paper_kept_tau_1": PAPER_KEPT.get(tool),
        "gain": _summary(gains),
        "p_call_start": {"kept": _summary(p[kept & ~np.isnan(p)]),
                         "rejected": _summary(p[~kept & ~np.isnan(p)]),
                         "missing": int(np.isnan(p).sum())},
        "funnel": {k: int(data.funnel.get(k, 0)) for k in FUNNEL},
        "tool_errors": dict(sorted(data.tool_errors.items())),
        "refused_calls": data.refused,
        "samples": _pick_samples(data, samples_per_tool),
        "inline": _agreement(data.kept_both),
    }
    out["tools"][tool] = entry
    arrays[tool] = (gains, kept, p)
  return {"numbers": out, "arrays": arrays}


def _agreement(pairs: Sequence[Tuple[bool, bool]]) -> Optional[Dict[str, Any]]:
  """How often inline-mode keep decisions match prefix mode's (None: not compared)."""
  if not pairs:
    return None
  both = np.asarray(pairs, bool)  # [candidates, (prefix, inline)]
  return {"compared": int(len(both)), "agree": int((both[:, 0] == both[:, 1]).sum()),
          "agreement": float((both[:, 0] == both[:, 1]).mean()),
          "kept_prefix": int(both[:, 0].sum()), "kept_inline": int(both[:, 1].sum()),
          "kept_both": int((both[:, 0] & both[:, 1]).sum())}


def _summary(values: np.ndarray) -> Dict[str, Any]:
  if values.size == 0:
    return {"n": 0, "mean": None, "median": None, "p10": None, "p90": None, "min": None,
            "max": None}
  q10, q50, q90 = np.quantile(values, [0.1, 0.5, 0.9])
  return {"n": int(values.size), "mean": float(values.mean()), "median": float(q50),
          "p10": float(q10), "p90": float(q90), "min": float(values.min()),
          "max": float(values.max())}


# ----------------------------------------------------------------------------- passages


def _inserted(call: str, result: str) -> str:
  return f" [{call} -> {result}]"


def locate_call(record: Mapping[str, Any]) -> Optional[Tuple[int, int]]:
  """(start, end) of the record's call in its annotated text, or None if it is not there.

  `char_position` indexes the original document; calls inserted before it (the record's
  `calls` list, when present) shift it right by their rendered length.
  """
  text, target = record["text"], _inserted(record["call"], record["result"])
  shift = 0
  for c in record.get("calls") or []:
    try:
      if c["char_position"] < record["char_position"]:
        shift += len(_inserted(c["call"], c["result"]))
    except (KeyError, TypeError):
      break
  start = int(record["char_position"]) + shift
  if text[start:start + len(target)] == target:
    return start, start + len(target)
  found = text.find(target)
  return (found, found + len(target)) if found >= 0 else None


def _pick_samples(data: _ToolData, n: int) -> List[Dict[str, Any]]:
  """n records spread over the gain range (best, middle, lowest) of the sampled pool."""
  pool = sorted((r for _, _, r in data.samples),
                key=lambda r: (-(r["loss_minus"] - r["loss_plus"]), _stable_hash(r)))
  if n <= 0 or not pool:
    return []
  picks = sorted({round(k * (len(pool) - 1) / max(1, n - 1)) for k in range(n)})
  out = []
  for k in picks[:n]:
    r = pool[k]
    span = locate_call(r)
    out.append({"doc_id": r["doc_id"], "call": r["call"], "result": r["result"],
                "gain": r["loss_minus"] - r["loss_plus"], "char_position": r["char_position"],
                "span": list(span) if span else None, "text": r["text"]})
  return out
