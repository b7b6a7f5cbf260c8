"""The annotation report: what an annotation run kept, how, and at what cost.

  python -m toolformer_jax.report --annotation DIR [--out OUT] [--samples 3]

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

This module holds the markdown and `write_report`, the entry point; the reading is
report_data (`read_run`, `locate_call`, re-exported here), the plots report_plots.
Importing this module does not import jax.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from toolformer_jax import reporting
from toolformer_jax.annotate import report_plots
from toolformer_jax.annotate import schema
from toolformer_jax.annotate.report_data import (  # pylint: disable=unused-import
    FUNNEL, PAPER_KEPT, PAPER_TAU_F, PAPER_TOOLS, STAGES, TABLE_THRESHOLDS, locate_call,
    read_run)

_fmt = reporting.fmt
_md = reporting.md_literal


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
  """The first column left-aligned, the others right."""
  return reporting.table(header, rows, align="lr")


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
            "the tools refused or failed, by status in report.json; own_document_excluded: "
            "retrieval calls whose top passages included the annotated document's own, "
            "which the tools left out).", ""]
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


def write_report(annotate_dir: str, out_dir: Optional[str] = None,
                 samples_per_tool: int = 3, progress: bool = False) -> str:
  """Writes report.md, report.json and the PNGs into out_dir (default annotate_dir);
  returns the path of report.md."""
  run = read_run(annotate_dir, samples_per_tool, progress)
  out_dir = out_dir or annotate_dir
  os.makedirs(out_dir, exist_ok=True)
  numbers, arrays = run["numbers"], run["arrays"]
  plots = {"counts": report_plots.plot_counts(numbers, out_dir),
           "loss_gain": report_plots.plot_gains(numbers, arrays, out_dir),
           "p_call_start": report_plots.plot_p_call_start(arrays, out_dir),
           "stages": report_plots.plot_stages(numbers, out_dir)}
  numbers["plots"] = plots
  with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as f:
    json.dump(numbers, f, indent=1, ensure_ascii=False)
  path = os.path.join(out_dir, "report.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write(_markdown(numbers, plots))
  return path
