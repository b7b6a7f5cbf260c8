r"""The annotation report: what an annotation run kept, how, and at what cost.

  python -m toolformer_jax.annotate.report --annotate_dir DIR [--out_dir OUT] [--samples 3]

Reads every shard `python -m toolformer_jax.annotate` wrote in DIR (annotated-*.jsonl,
candidates-*.jsonl.gz, manifest-*.json; records checked against `schema`'s field tuples,
malformed lines counted and skipped) and writes OUT/report.md (OUT defaults to DIR),
OUT/report.json with the same numbers, and PNG plots beside them:

* candidates scored and kept per tool, the keep rate, and the paper's kept counts
  (Schick et al. 2023, Table 2 at tau_f = 1.0) beside the number of candidates here that
  clear 1.0;
* the distribution of L- - L+ per tool with the run's threshold tau_f marked;
* p(" [") at the positions of kept versus rejected candidates;
* the per-tool stage counts (heuristics -> positions -> sampled -> parsed -> executed ->
  scored -> kept) and the seconds per stage, summed over the manifests;
* a few annotated passages per tool, the inserted call highlighted.

Ends with a one-line summary. Importing this module does not import jax.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import gzip
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
FUNNEL = ("heuristic_seen", "heuristic_kept", "over_max_documents", "positions", "sampled",
          "unparsable", "other_tool", "duplicates", "tool_errors", "scored", "kept")
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


def _json_lines(path: str, kind: str, malformed: collections.Counter) -> Iterator[dict]:
  """Well-formed records of a (gzipped) jsonl file; bad lines counted in `malformed`."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      for raw in f:
        if not raw.strip():
          continue
        try:
          record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
          malformed[f"{kind}: not JSON"] += 1
          continue
        reason = _valid(record, kind)
        if reason:
          malformed[f"{kind}: {reason}"] += 1
          continue
        yield record
  except (EOFError, OSError, zlib.error):
    malformed[f"{kind}: truncated or unreadable file"] += 1


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


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def _md(text: str) -> str:
  """Text shown literally in markdown: one line, punctuation (HTML's < > & too) escaped."""
  return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def passage_markdown(sample: Mapping[str, Any], context: int = 240) -> str:
  """The passage around the call, the call in bold, everything else literal."""
  text, span = sample["text"], sample["span"]
  if span is None:
    return _md(text[:2 * context]) + (" …" if len(text) > 2 * context else "") + \
        " *(call not found in the text)*"
  start, end = span
  lo, hi = max(0, start - context), min(len(text), end + context)
  return ("… " if lo else "") + _md(text[lo:start]) + " **" + _md(text[start:end]) + "** " + \
      _md(text[end:hi]) + (" …" if hi < len(text) else "")


# ----------------------------------------------------------------------------- plots


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  return pyplot


def _save(fig, out_dir: str, name: str) -> str:
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, name), dpi=100)
  _pyplot().close(fig)
  return name


def _plot_counts(numbers, out_dir) -> str:
  plt = _pyplot()
  names = list(numbers["tools"])
  t = numbers["tools"]
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
  x = np.arange(len(names))
  series = (("scored here", [t[n]["scored"] for n in names]),
            ("kept here", [t[n]["kept"] for n in names]),
            ("L- - L+ >= 1.0 here", [t[n]["clearing"]["1"] for n in names]),
            ("paper kept (tau_f 1.0)", [t[n]["paper_kept_tau_1"] or 0 for n in names]))
  width = 0.8 / len(series)
  for k, (label, values) in enumerate(series):
    left.bar(x + (k - (len(series) - 1) / 2) * width, [max(v, 0.5) for v in values], width,
             label=label)
  left.set_yscale("log")
  left.set_xticks(x, names)
  left.set_ylabel("candidates / examples (log)")
  left.set_title("candidates and kept calls per tool")
  left.legend(fontsize=8)
  rates = [t[n]["keep_rate"] or 0.0 for n in names]
  right.bar(x, rates, color="tab:green")
  for xi, r, n in zip(x, rates, names):
    right.text(xi, r, f"{r:.1%}\n(tau_f {', '.join(f'{v:g}' for v in t[n]['tau_f'])})",
               ha="center", va="bottom", fontsize=8)
  right.set_xticks(x, names)
  right.set_ylim(0, max(rates + [0.1]) * 1.35)
  right.set_ylabel("kept / scored")
  right.set_title("keep rate at the run's tau_f")
  return _save(fig, out_dir, "counts.png")


def _grid(n: int):
  plt = _pyplot()
  cols = min(3, max(1, n))
  rows = -(-max(1, n) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
  for ax in axes.flat[n:]:
    ax.axis("off")
  return fig, list(axes.flat)


def _plot_gains(numbers, arrays, out_dir) -> str:
  fig, axes = _grid(len(arrays))
  for ax, (tool, (gains, kept, _)) in zip(axes, arrays.items()):
    if gains.size:
      bins = np.histogram_bin_edges(gains, bins=min(40, max(5, gains.size // 2)))
      ax.hist(gains[~kept], bins=bins, color="tab:gray", label="rejected")
      ax.hist(gains[kept], bins=bins, color="tab:blue", label="kept")
    lo, hi = (float(gains.min()), float(gains.max())) if gains.size else (-1.0, 1.0)
    margin = max(1.0, hi - lo)
    for tau in numbers["tools"][tool]["tau_f"]:
      if lo - margin <= tau <= hi + margin:
        ax.axvline(tau, color="tab:red", linestyle="--", label=f"tau_f {tau:g}")
      else:  # a threshold far off the data would squash the histogram
        ax.plot([], [], color="tab:red", linestyle="--", label=f"tau_f {tau:g} (off scale)")
    ax.set_title(f"{tool} (n={gains.size})")
    ax.set_xlabel("L- - L+")
    ax.legend(fontsize=7)
  return _save(fig, out_dir, "loss_gain.png")


def _plot_p_call_start(arrays, out_dir) -> str:
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(max(6.5, 1.6 * len(arrays)), 4))
  data, positions, labels, colors = [], [], [], []
  for k, (tool, (_, kept, p)) in enumerate(arrays.items()):
    for offset, mask, label, color in ((-0.2, kept, "kept", "tab:blue"),
                                       (0.2, ~kept, "rejected", "tab:gray")):
      values = p[mask & ~np.isnan(p) & (p > 0)]
      if values.size:
        data.append(values)
        positions.append(k + offset)
        colors.append(color)
    labels.append(tool)
  if data:
    parts = ax.boxplot(data, positions=positions, widths=0.35, patch_artist=True,
                       showfliers=False)
    for patch, color in zip(parts["boxes"], colors):
      patch.set_facecolor(color)
    ax.set_yscale("log")
  ax.set_xticks(range(len(labels)), labels)
  ax.set_xlim(-0.6, len(labels) - 0.4)
  ax.set_ylabel('p(" [") at the position (log)')
  ax.set_title('p(" [") at kept (blue) versus rejected (gray) positions')
  return _save(fig, out_dir, "p_call_start.png")


def _plot_stages(numbers, out_dir) -> str:
  plt = _pyplot()
  fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4),
                                    gridspec_kw={"width_ratios": [3, 1]})
  names = list(numbers["tools"])
  x = np.arange(len(FUNNEL))
  width = 0.8 / max(1, len(names))
  for k, tool in enumerate(names):
    funnel = numbers["tools"][tool]["funnel"]
    left.bar(x + (k - (len(names) - 1) / 2) * width,
             [max(funnel[s], 0.5) for s in FUNNEL], width, label=tool)
  left.set_yscale("log")
  left.set_xticks(x, FUNNEL, rotation=30, ha="right", fontsize=8)
  left.set_ylabel("count (log)")
  left.set_title("per-stage counts (manifests)")
  left.legend(fontsize=7)
  stages = numbers["stage_seconds"]
  right.bar(range(len(stages)), list(stages.values()), color="tab:orange")
  right.set_xticks(range(len(stages)), list(stages), rotation=30, ha="right")
  right.set_ylabel("seconds")
  right.set_title("seconds per stage")
  return _save(fig, out_dir, "stages.png")


# ----------------------------------------------------------------------------- markdown


def _fmt(value, spec: str = ".3f") -> str:
  return "–" if value is None else format(value, spec)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if k == 0 else "---:" for k in range(len(header))) + "|"]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return lines


def _markdown(numbers: Dict[str, Any], plots: Mapping[str, str]) -> str:
  t = numbers["tools"]
  sh = numbers["shards"]
  lines = ["# Annotation report", "",
           f"Directory `{numbers['annotate_dir']}`: {sh['complete']} complete shards of "
           f"{', '.join(map(str, sh['num_shards']))}"
           + (f" (incomplete or missing: {', '.join(sh['incomplete_or_missing'])})"
              if sh["incomplete_or_missing"] else "")
           + f"; {numbers['documents']} documents, {numbers['annotated_documents']} "
           f"annotated; malformed lines or files skipped: {numbers['malformed_total']}"
           + (" (" + ", ".join(f"{k} {v}" for k, v in numbers["malformed"].items()) + ")"
              if numbers["malformed"] else "") + ".", ""]
  if numbers["cost_lambda"] and any(numbers["cost_lambda"]):
    lines += [f"The filter's cost term is on (cost_lambda {numbers['cost_lambda']}): a kept "
              "call cleared tau_f + cost_lambda * tokens(call), not tau_f alone.", ""]
  lines += ["## Candidates and kept calls per tool", "",
            "Scored candidates (every call the filter saw) from the candidates files; the "
            "paper's counts are kept examples at tau_f = 1.0 on its CCNet subset (Table 2), "
            "beside the candidates here with L- - L+ >= 1.0.", ""]
  rows = []
  for tool, e in t.items():
    paper = e["paper_kept_tau_1"]
    rows.append([tool, e["scored"], e["kept"],
                 "–" if e["keep_rate"] is None else f"{e['keep_rate']:.1%}",
                 ", ".join(f"{v:g}" for v in e["tau_f"]) or "–", e["annotated_records"],
                 e["clearing"]["0.5"], e["clearing"]["1"], e["clearing"]["2"],
                 "–" if paper is None else f"{paper:,}"])
  lines += _table(["tool", "scored", "kept", "keep rate", "tau_f", "annotated records",
                   ">= 0.5", ">= 1.0", ">= 2.0", "paper kept (tau_f 1.0)"], rows)
  mismatch = [tool for tool, e in t.items() if e["manifest_kept"] != e["kept"]]
  if mismatch:
    lines += ["", "Kept counts of the manifests differ from the candidates files for "
              + ", ".join(f"{tool} ({t[tool]['manifest_kept']} versus {t[tool]['kept']})"
                          for tool in mismatch) + "."]
  compared = {tool: e["inline"] for tool, e in t.items() if e.get("inline")}
  if compared:
    lines += ["", "### Inline versus prefix mode", "",
              "The same candidates scored with the call inserted at its position (inline) "
              "beside the paper's prefix mode, at the same thresholds.", ""]
    lines += _table(["tool", "compared", "same decision", "kept prefix", "kept inline",
                     "kept by both"],
                    [[tool, a["compared"], f"{a['agreement']:.1%}", a["kept_prefix"],
                      a["kept_inline"], a["kept_both"]] for tool, a in compared.items()])
  lines += ["", f"![candidates and keep rate]({plots['counts']})", "",
            "## L- - L+ per tool", "",
            "L- = min(L(empty), L(call without result)), L+ = L(call with result); a call is "
            "kept when L- - L+ >= tau_f (dashed line).", ""]
  rows = [[tool, e["gain"]["n"], _fmt(e["gain"]["mean"]), _fmt(e["gain"]["p10"]),
           _fmt(e["gain"]["median"]), _fmt(e["gain"]["p90"]), _fmt(e["gain"]["max"])]
          for tool, e in t.items()]
  lines += _table(["tool", "n", "mean", "p10", "median", "p90", "max"], rows)
  lines += ["", f"![L- - L+ histograms]({plots['loss_gain']})", "",
            '## p(" [") at kept versus rejected positions', ""]
  rows = []
  for tool, e in t.items():
    k, r = e["p_call_start"]["kept"], e["p_call_start"]["rejected"]
    rows.append([tool, k["n"], _fmt(k["median"], ".2e"), _fmt(k["mean"], ".2e"), r["n"],
                 _fmt(r["median"], ".2e"), _fmt(r["mean"], ".2e"),
                 e["p_call_start"]["missing"]])
  lines += _table(["tool", "kept n", "kept median", "kept mean", "rejected n",
                   "rejected median", "rejected mean", "without p"], rows)
  lines += ["", f"![p(call start)]({plots['p_call_start']})", "",
            "## Stages", "", "Counts per tool, summed over the manifests (tool_errors: calls "
            "the tools refused or failed, by status in report.json).", ""]
  lines += _table(["stage"] + list(t), [[s] + [t[tool]["funnel"][s] for tool in t]
                                        for s in FUNNEL])
  total = sum(numbers["stage_seconds"].values())
  scored = sum(e["scored"] for e in t.values())
  lines += [""] + _table(
      ["stage", "seconds", "share"],
      [[s, f"{v:.1f}", f"{v / total:.0%}" if total else "–"]
       for s, v in numbers["stage_seconds"].items()]
      + [["all", f"{total:.1f}", f"{scored / total:.1f} scored candidates/s" if total else "–"]])
  lines += ["", f"![stages]({plots['stages']})", ""]
  refused = [[tool, _md(r["call"]), r["status"], _md(r["message"])]
             for tool, e in t.items() for r in e["refused_calls"]]
  if refused:
    lines += ["## Refused calls", "",
              f"The first calls each tool refused or failed (up to {schema.REFUSED_CALLS} "
              "per shard and tool).", ""]
    lines += _table(["tool", "call", "status", "message"], refused) + [""]
  lines += ["## Sample annotated passages", "",
            "Spread over the range of L- - L+ (best first) within a hash-uniform sample of "
            "each tool's annotated records; the inserted call is in bold.", ""]
  for tool, e in t.items():
    if not e["samples"]:
      continue
    lines += [f"### {tool}", ""]
    for s in e["samples"]:
      lines += [f"- `{s['doc_id']}`, L- - L+ = {s['gain']:.3f}:", "",
                "  > " + passage_markdown(s), ""]
  return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- entry


def write_report(annotate_dir: str, out_dir: Optional[str] = None,
                 samples_per_tool: int = 3, progress: bool = False) -> str:
  """Writes report.md, report.json and the PNGs into out_dir (default annotate_dir);
  returns the path of report.md."""
  run = read_run(annotate_dir, samples_per_tool, progress)
  out_dir = out_dir or annotate_dir
  os.makedirs(out_dir, exist_ok=True)
  numbers, arrays = run["numbers"], run["arrays"]
  plots = {"counts": _plot_counts(numbers, out_dir),
           "loss_gain": _plot_gains(numbers, arrays, out_dir),
           "p_call_start": _plot_p_call_start(arrays, out_dir),
           "stages": _plot_stages(numbers, out_dir)}
  numbers["plots"] = plots
  with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as f:
    json.dump(numbers, f, indent=1, ensure_ascii=False)
  path = os.path.join(out_dir, "report.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write(_markdown(numbers, plots))
  return path


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--annotate_dir", required=True)
  parser.add_argument("--out_dir", default=None, help="default: --annotate_dir")
  parser.add_argument("--samples", type=int, default=3, help="annotated passages per tool")
  args = parser.parse_args(argv)
  try:
    path = write_report(args.annotate_dir, args.out_dir, args.samples, progress=True)
  except FileNotFoundError as e:
    raise SystemExit(f"error: {e}") from None
  with open(os.path.join(os.path.dirname(path), "report.json"), encoding="utf-8") as f:
    numbers = json.load(f)
  per_tool = ", ".join(f"{tool} {e['kept']}/{e['scored']}"
                       for tool, e in numbers["tools"].items())
  print(f"report of {numbers['shards']['complete']} shards ({numbers['documents']} "
        f"documents, {numbers['malformed_total']} malformed lines skipped); kept/scored per "
        f"tool: {per_tool}; written to {path}")


if __name__ == "__main__":
  main()
