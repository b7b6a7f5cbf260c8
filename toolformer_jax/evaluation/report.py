r"""The eval report: several `python -m t5x.eval` runs side by side, with the paper's figures.

  python -m toolformer_jax.report --run base=/tmp/eval_base --run tools_off=/tmp/eval_off \
      --run tools_on=/tmp/eval_on --out /tmp/report

Each run is NAME=DIR, DIR a t5x EVAL_OUTPUT_DIR (or its inference_eval/) holding the seqio
`<task>-metrics.jsonl` files that gin/runs/eval_tools.gin (or eval_toolformer.gin) wrote;
the latest step of each task is reported, in the order the runs are given. Writes to OUT:

* report.md: a table per task family (math, facts, qa, dates, mlqa, jsonl), with its
  metric rule, of accuracy per task and run with N and the 95% Wilson interval, each task
  labelled held-out (none of the annotation corpus's templates), in-distribution (mirrors
  its question-answer documents) or benchmark, the pooled held-out and in-distribution
  accuracy, the outputs holding call text and the empty ones per run, and the paper's
  GPT-J -> Toolformer figures of the same benchmark group (Schick et al. 2023; ASDiv is
  the paper's benchmark, the generated tasks are analogues); call rates per task and tool with
  the paper's (QA on 98.1% of LAMA, the Calculator on 97.9% of math, WikiSearch on 99.3%
  of QA examples); the histogram of the " [" rank at the trigger; perplexity with API
  calls disabled beside the paper's;
* report.json: the same numbers;
* PNG bar charts: accuracy_<family>.png, call_rates.png, trigger_rank.png, perplexity.png.

Malformed metric lines are counted and skipped; a run directory without metrics is an
error (one line, exit status 2, from the CLI toolformer_jax.report). Ends with a one-line
summary. Needs matplotlib only to draw; no jax, TensorFlow or seqio.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from toolformer_jax import corpora
from toolformer_jax import reporting
from toolformer_jax.evaluation import benchmarks
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import registry

# The paper's zero-shot results, GPT-J 6.7B -> Toolformer (accuracy %; perplexity for LM):
# the one table of the paper's figures, each family from the table PAPER_TABLES names
# (Schick et al. 2023). MLQA's per-language figures (Table 6) are not transcribed here.
PAPER = {
    items_lib.MATH: (("ASDiv", 7.5, 40.4), ("SVAMP", 5.2, 29.4), ("MAWPS", 9.9, 44.0)),
    items_lib.FACTS: (("LAMA SQuAD", 17.8, 33.8), ("LAMA Google-RE", 4.9, 11.5),
                      ("LAMA T-REx", 31.9, 53.5)),
    items_lib.QA: (("WebQS", 18.5, 26.3), ("NQ", 12.8, 17.7), ("TriviaQA", 43.9, 48.8)),
    items_lib.DATES: (("TempLAMA", 13.7, 16.3), ("Dateset", 3.9, 27.3)),
    items_lib.LM: (("WikiText", 9.9, 10.3), ("CCNet", 10.6, 10.5)),
}
PAPER_TABLES = {items_lib.FACTS: "Table 3", items_lib.MATH: "Table 4", items_lib.QA: "Table 5",
                items_lib.DATES: "Table 7", items_lib.LM: "Table 8"}
# Tasks that are the paper's benchmark itself, read from its published file (source without
# version; toolformer_jax.evaluation.benchmarks): their row of PAPER. No generated task is:
# dates_calendar asks questions in the Dateset's setting from the project's templates.
PAPER_SAME = benchmarks.paper_rows()
# Toolformer's calls to the family's main tool (% of examples).
PAPER_CALL_RATES = {items_lib.FACTS: ("QA", 98.1), items_lib.MATH: ("Calculator", 97.9),
                    items_lib.QA: ("WikiSearch", 99.3)}
FAMILY_TITLES = {
    items_lib.MATH: "Math",
    items_lib.FACTS: "Fact completion, LAMA-style",
    items_lib.QA: "Open-domain questions",
    items_lib.DATES: "Dates",
    items_lib.MULTILINGUAL: "Spanish and French questions, MLQA-style",
    items_lib.NOTOOL: "Questions no tool helps with",
    items_lib.CUSTOM: "Your jsonl tasks",
    "other": "Other tasks",
}
# The metric of each family, as the paper defines it (Sec. 4.2) where it does.
FAMILY_RULES = {
    items_lib.MATH: "correct if the first number of the output, with its sign, is the "
                    "answer (the paper's math rule; a call's text is not the output's)",
    items_lib.FACTS: "correct if the answer is among the first 5 words (the paper's LAMA "
                     "rule)",
    items_lib.QA: "correct if the answer is among the first 20 words (the paper's open-QA "
                  "rule)",
    items_lib.DATES: "correct if the first date, weekday or number of the output is the "
                     "answer (the question's kind); the paper's Dateset rule is not "
                     "published beyond accuracy",
    items_lib.MULTILINGUAL: "correct if the answer, in English or the question's language, "
                            "is among the first 20 words (the open-QA rule; the MLQA "
                            "benchmark's own rule is in evaluation/benchmarks.py)",
    items_lib.NOTOOL: "correct if the answer is among the first 20 words (the answer stands "
                      "in the question; every call here is a wrong-tool call)",
    items_lib.CUSTOM: "each record's own match spec",
}
HELDOUT, IN_DISTRIBUTION, BENCHMARK = "held-out", "in-distribution", "benchmark"
ACCURACY_FAMILIES = tuple(f for f in items_lib.FAMILIES if f != items_lib.LM) + ("other",)
METRICS_SUFFIX = "-metrics.jsonl"
_VERSION_RE = re.compile(r"_v\d+$")


class ReportError(Exception):
  """Bad input: a missing or empty run directory, a malformed --run."""


@dataclasses.dataclass
class Task:
  name: str  # the full seqio task name
  source: str  # without prefix and vocabulary suffix: the report's row key
  family: str
  step: Optional[int]
  metrics: Dict[str, float]


@dataclasses.dataclass
class Run:
  name: str
  directory: str
  tasks: Dict[str, Task]  # source -> task
  skipped_lines: int = 0


def _metrics_dir(directory: str) -> str:
  inner = os.path.join(directory, "inference_eval")
  return inner if glob.glob(os.path.join(inner, "*" + METRICS_SUFFIX)) else directory


def _family(name: str, values: Mapping[str, Any]) -> str:
  if name.startswith(items_lib.TASK_PREFIX):
    family = items_lib.family_of(name)
    return family if family in items_lib.FAMILIES else "other"
  return items_lib.LM if metrics.PERPLEXITY in values else "other"


def _number(value: Any) -> Optional[float]:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  return float(value)


def load_run(name: str, directory: str) -> Run:
  """The latest metrics of every task a t5x.eval output directory holds."""
  if not os.path.isdir(directory):
    raise ReportError(f"run {name!r}: {directory} is not a directory")
  where = _metrics_dir(directory)
  paths = sorted(glob.glob(os.path.join(where, "*" + METRICS_SUFFIX)))
  if not paths:
    raise ReportError(f"run {name!r}: no *{METRICS_SUFFIX} files in {directory} (or its "
                      "inference_eval/); is it a t5x.eval EVAL_OUTPUT_DIR?")
  run = Run(name, directory, {})
  for path in paths:
    task_name = os.path.basename(path)[:-len(METRICS_SUFFIX)]
    latest: Optional[Dict[str, Any]] = None
    stats = corpora.ReadStats(f"run {name!r}")
    for _, record in corpora.iter_json_records(path, stats, strict_utf8=True):
      step = record.get("step", -1)
      if latest is None or (isinstance(step, int) and step >= latest.get("step", -1)):
        latest = record
    run.skipped_lines += stats.skipped
    if latest is None:
      continue
    values = {k: v for k, v in ((k, _number(v)) for k, v in latest.items() if k != "step")
              if v is not None}
    source = (items_lib.task_source(task_name) if task_name.startswith(items_lib.TASK_PREFIX)
              else task_name)
    run.tasks[source] = Task(task_name, source, _family(task_name, values),
                             latest.get("step"), values)
  if not run.tasks:
    raise ReportError(f"run {name!r}: the metrics files in {where} hold no metrics")
  return run


def parse_run_flag(value: str) -> Tuple[str, str]:
  name, sep, directory = value.partition("=")
  if not sep or not name.strip() or not directory.strip():
    raise ReportError(f"--run needs NAME=EVAL_DIR, got {value!r}")
  return name.strip(), os.path.expanduser(directory.strip())


# --- numbers ---------------------------------------------------------------------------------
def _finite(value: Optional[float]) -> Optional[float]:
  return value if value is not None and math.isfinite(value) else None


def _mean(values) -> Optional[float]:
  values = [v for v in values if v is not None]
  return sum(values) / len(values) if values else None


def _sources(runs: Sequence[Run], family: str) -> List[str]:
  seen = {}
  for run in runs:
    for source, task in run.tasks.items():
      if task.family == family:
        seen[source] = True
  return sorted(seen)


def _value(run: Run, source: str, key: str) -> Optional[float]:
  task = run.tasks.get(source)
  return None if task is None else _finite(task.metrics.get(key))


def _paper_same(source: str) -> Optional[Tuple[str, float, float]]:
  benchmark = PAPER_SAME.get(_VERSION_RE.sub("", source))
  for family_rows in PAPER.values():
    for row in family_rows:
      if row[0] == benchmark:
        return row
  return None


def split_of(source: str) -> str:
  """'held-out' (a generator held out by construction), 'in-distribution' (a generator
  whose questions mirror the annotation corpus's), 'benchmark' (ASDiv, a user's file)."""
  generator = registry.generators().get(source)
  if generator is None:
    return BENCHMARK
  return HELDOUT if generator.heldout else IN_DISTRIBUTION


def interval(accuracy: Optional[float], n: Optional[float]
             ) -> Tuple[Optional[float], Optional[float]]:
  """The 95% Wilson interval (percent) of an accuracy (percent) over n examples."""
  if accuracy is None or not n:
    return None, None
  return metrics.wilson_interval(round(accuracy * n / 100.0), n)


def pooled(tasks: Mapping[str, Mapping[str, Optional[float]]], sources: Sequence[str]
           ) -> Dict[str, Optional[float]]:
  """Accuracy over the examples of several tasks together (each task weighted by its N),
  with N and the 95% Wilson interval: {"accuracy", "n", "low", "high"}."""
  correct = n = 0.0
  for source in sources:
    acc, count = tasks[source].get("accuracy"), tasks[source].get("n")
    if acc is None or not count:
      return {"accuracy": None, "n": None, "low": None, "high": None}
    correct += round(acc * count / 100.0)
    n += count
  if not n:
    return {"accuracy": None, "n": None, "low": None, "high": None}
  low, high = metrics.wilson_interval(correct, n)
  return {"accuracy": 100.0 * correct / n, "n": n, "low": low, "high": high}


def tool_selection(run: Run) -> Dict[str, Dict[str, Any]]:
  """The run's tool-selection matrix: per family, pooled over its tasks (weighted by their
  examples), the % of outputs whose first call went to each tool, that called none, and
  whose first call went to a tool that does not fit the family (`items.ACCEPTED_TOOLS`;
  None for a family without a rule)."""
  sums: Dict[str, Dict[str, float]] = {}
  for task in run.tasks.values():
    m = task.metrics
    n = _finite(m.get(metrics.NUM_EXAMPLES))
    if not n or _finite(m.get(metrics.CALL_RATE)) is None:
      continue
    acc = sums.setdefault(task.family, {"n": 0.0, "none": 0.0, "tools": {}})
    acc["n"] += n
    acc["none"] += n * (100.0 - m[metrics.CALL_RATE])
    for key, value in m.items():
      if key.startswith(metrics.CALL_RATE_PREFIX) and _finite(value) is not None:
        tool = key[len(metrics.CALL_RATE_PREFIX):]
        acc["tools"][tool] = acc["tools"].get(tool, 0.0) + n * value
  out = {}
  for family, acc in sums.items():
    n = acc["n"]
    tools = {t: v / n for t, v in sorted(acc["tools"].items())}
    accepted = items_lib.ACCEPTED_TOOLS.get(family)
    wrong = (None if accepted is None
             else sum(v for t, v in tools.items() if t not in accepted))
    out[family] = {"n": n, "tools": tools, "none": acc["none"] / n, "wrong_tool": wrong}
  return out


def summarize(runs: Sequence[Run]) -> Dict[str, Any]:
  """Everything the report shows, as plain data (report.json)."""
  families = {}
  for family in ACCURACY_FAMILIES:
    sources = [s for s in _sources(runs, family)
               if any(_value(r, s, metrics.ACCURACY) is not None for r in runs)]
    if not sources:
      continue
    splits = {s: split_of(s) for s in sources}
    sources.sort(key=lambda s: ((HELDOUT, BENCHMARK, IN_DISTRIBUTION).index(splits[s]), s))
    accuracy = {r.name: {s: _value(r, s, metrics.ACCURACY) for s in sources} for r in runs}
    rows = {r.name: {s: {"accuracy": _value(r, s, metrics.ACCURACY),
                         "n": _value(r, s, metrics.NUM_EXAMPLES),
                         "call_text_rate": _value(r, s, metrics.CALL_TEXT_RATE),
                         "empty_rate": _value(r, s, metrics.EMPTY_RATE)} for s in sources}
            for r in runs}
    for per in rows.values():
      for row in per.values():
        row["low"], row["high"] = interval(row["accuracy"], row["n"])
    groups = {split: [s for s in sources if splits[s] == split]
              for split in (HELDOUT, IN_DISTRIBUTION, BENCHMARK)}
    families[family] = {
        "title": FAMILY_TITLES.get(family, family),
        "rule": FAMILY_RULES.get(family, ""),
        "tasks": sources,
        "split": splits,
        "accuracy": accuracy,
        "rows": rows,
        "num_examples": {s: next((_value(r, s, metrics.NUM_EXAMPLES) for r in runs
                                  if _value(r, s, metrics.NUM_EXAMPLES) is not None), None)
                         for s in sources},
        "mean": {name: _mean(values.values()) for name, values in accuracy.items()},
        # Examples of the held-out generators (and benchmarks) pooled: the headline.
        "pooled": {split: {r.name: pooled(rows[r.name], group) for r in runs}
                   for split, group in (("heldout", groups[HELDOUT] + groups[BENCHMARK]),
                                        ("in_distribution", groups[IN_DISTRIBUTION]))
                   if group},
        "paper_same": {s: _paper_same(s) for s in sources if _paper_same(s)},
        "paper": [dict(benchmark=b, gpt_j=g, toolformer=t) for b, g, t in PAPER.get(family, ())],
        "paper_table": PAPER_TABLES.get(family),
    }
  calls = {}
  for run in runs:
    per_task = {}
    for source, task in sorted(run.tasks.items()):
      if metrics.CALL_RATE not in task.metrics:
        continue
      tools = {k[len(metrics.CALL_RATE_PREFIX):]: v for k, v in task.metrics.items()
               if k.startswith(metrics.CALL_RATE_PREFIX) and math.isfinite(v)}
      per_task[source] = {
          "family": task.family, "call_rate": _finite(task.metrics[metrics.CALL_RATE]),
          "call_ok_rate": _finite(task.metrics.get(metrics.CALL_OK_RATE)),
          "call_result_right_rate": _finite(task.metrics.get(metrics.CALL_RESULT_RIGHT_RATE)),
          "expected_tool": items_lib.EXPECTED_TOOL.get(task.family),
          "tools": tools,
          "accuracy_with_call": _finite(task.metrics.get(metrics.ACCURACY_WITH_CALL)),
          "accuracy_without_call": _finite(task.metrics.get(metrics.ACCURACY_WITHOUT_CALL)),
      }
    calls[run.name] = per_task
  ranks = {run.name: {b: sum(t.metrics.get(b, 0.0) for t in run.tasks.values())
                      for b in metrics.RANK_BIN_NAMES} for run in runs}
  lm_sources = _sources(runs, items_lib.LM)
  perplexity = {r.name: {s: _value(r, s, metrics.PERPLEXITY) for s in lm_sources} for r in runs}
  return {
      "runs": [{"name": r.name, "directory": r.directory, "skipped_lines": r.skipped_lines,
                "tasks": {s: {"task": t.name, "family": t.family, "step": t.step,
                              "metrics": t.metrics} for s, t in r.tasks.items()}}
               for r in runs],
      "families": families,
      "calls": calls,
      "selection": {run.name: tool_selection(run) for run in runs},
      "paper_call_rates": {f: {"tool": t, "rate": v} for f, (t, v) in PAPER_CALL_RATES.items()},
      "trigger_ranks": ranks,
      "perplexity": perplexity,
      "paper_perplexity": [dict(benchmark=b, gpt_j=g, toolformer=t) for b, g, t in PAPER[items_lib.LM]],
      "paper_perplexity_table": PAPER_TABLES[items_lib.LM],
  }


# --- markdown --------------------------------------------------------------------------------
def _fmt(value: Optional[float], digits: int = 1) -> str:
  return reporting.fmt(value, f".{digits}f")


_table = reporting.table  # every column left-aligned


def _cell(row: Mapping[str, Optional[float]]) -> str:
  """'45.0 [35.6, 54.8]' (accuracy and its interval), '–' when missing."""
  if row.get("accuracy") is None:
    return "–"
  if row.get("low") is None:
    return _fmt(row["accuracy"])
  return f"{_fmt(row['accuracy'])} [{_fmt(row['low'])}, {_fmt(row['high'])}]"


def _paper_line(rows) -> str:
  return ", ".join(f"{r['benchmark']} {r['gpt_j']} → {r['toolformer']}" for r in rows)


def _selection_markdown(summary: Mapping[str, Any]) -> List[str]:
  """Per run that made calls: family x (each tool, none, wrong tool), % of outputs."""
  out = []
  for run, per in summary.get("selection", {}).items():
    tools = sorted({t for f in per.values() for t, v in f["tools"].items() if v > 0})
    if not tools:
      continue
    if not out:
      out += ["", "## Tool selection", "",
              "Per family, % of outputs whose first call went to each tool or that called "
              "none; wrong tool: a first call to a tool that does not fit the family (on "
              "`notool`, any call). Fits: " + "; ".join(
                  f"{f}: {', '.join(t) or 'none'}"
                  for f, t in items_lib.ACCEPTED_TOOLS.items()) + "."]
    out += ["", f"Run `{run}`:", ""]
    out += _table(["family", "n"] + tools + ["none", "wrong tool"],
                  [[family, _fmt(f["n"], 0)] + [_fmt(f["tools"].get(t, 0.0)) for t in tools]
                   + [_fmt(f["none"]), _fmt(f["wrong_tool"])]
                   for family, f in sorted(per.items())])
  return out


def render_markdown(summary: Mapping[str, Any], images: Mapping[str, str]) -> str:
  runs = [r["name"] for r in summary["runs"]]
  out = ["# Toolformer evaluation", ""]
  out += _table(["run", "directory", "tasks", "step"],
                [[r["name"], f"`{r['directory']}`", str(len(r["tasks"])),
                  ", ".join(sorted({str(t["step"]) for t in r["tasks"].values()}))]
                 for r in summary["runs"]])
  out += ["", "Accuracy in % of examples; `–`: the run has no such task. Paper: GPT-J 6.7B "
          "→ Toolformer, zero-shot (Schick et al. 2023); only ASDiv is the paper's own "
          "benchmark, the generated tasks are analogues.", ""]
  for family, data in summary["families"].items():
    out += [f"## {data['title']}", ""]
    if data.get("rule"):
      out += [f"Metric: {data['rule']}. Each cell: accuracy [95% Wilson interval]; n: "
              "examples per task; held-out tasks are none of the annotation corpus's "
              "templates, in-distribution ones mirror its question-answer documents.", ""]
    header = ["task", "split", "n"] + runs + ["paper (GPT-J → Toolformer)"]
    rows = []
    for source in data["tasks"]:
      same = data["paper_same"].get(source)
      rows.append([f"`{source}`", data["split"][source], _fmt(data["num_examples"][source], 0)]
                  + [_cell(data["rows"][r][source]) for r in runs]
                  + [f"{same[0]}: {same[1]} → {same[2]}" if same else ""])
    for split, label in (("heldout", "held-out + benchmarks, pooled"),
                         ("in_distribution", "in-distribution, pooled")):
      pooled_rows = data["pooled"].get(split)
      if pooled_rows:
        n = next((v["n"] for v in pooled_rows.values() if v["n"]), None)
        rows.append([f"**{label}**", "", _fmt(n, 0)]
                    + [f"**{_cell(pooled_rows[r])}**" for r in runs] + [""])
    out += _table(header, rows)
    out += ["", "Outputs holding call text / with no answer words (% of examples; 0 call "
            "text where calls are disabled):", ""]
    out += _table(["task"] + runs, [
        [f"`{source}`"] + [f"{_fmt(data['rows'][r][source]['call_text_rate'])} / "
                           f"{_fmt(data['rows'][r][source]['empty_rate'])}" for r in runs]
        for source in data["tasks"]])
    if data["paper"]:
      out += ["", f"Paper ({data['paper_table']}), this family: {_paper_line(data['paper'])}."]
    if family in images:
      out += ["", f"![accuracy {family}]({images[family]})"]
    out.append("")
  out += ["## Tool calls", "",
          "Examples whose output made a call (%), and in brackets the share whose first call "
          "went to the family's main tool. Paper (Toolformer): "
          + "; ".join(f"{v['tool']} on {v['rate']}% of {f} examples"
                      for f, v in summary["paper_call_rates"].items()) + ".", ""]
  sources = sorted({s for per in summary["calls"].values() for s in per})
  rows = []
  for source in sources:
    info = next(per[source] for per in summary["calls"].values() if source in per)
    tool = info["expected_tool"]
    cells = []
    for r in runs:
      c = summary["calls"][r].get(source)
      if c is None:
        cells.append("–")
        continue
      share = c["tools"].get(tool) if tool else None
      cells.append(_fmt(c["call_rate"]) + (f" ({_fmt(share)})" if share is not None else ""))
    paper = summary["paper_call_rates"].get(info["family"])
    rows.append([f"`{source}`", tool or ""] + cells + [
        f"{paper['tool']} {paper['rate']}" if paper else ""])
  out += _table(["task", "main tool"] + runs + ["paper"], rows)
  for r in runs:
    per = summary["calls"][r]
    used = sorted({t for c in per.values() for t, v in c["tools"].items() if v > 0})
    if not used:
      continue
    out += ["", f"First call's tool, run `{r}` (% of examples; ok: it returned a result; right "
            "result: the result holds the answer; accuracy with / without a call):", ""]
    out += _table(["task"] + used + ["ok", "right result", "acc. with call", "acc. without"],
                  [[f"`{s}`"] + [_fmt(c["tools"].get(t)) for t in used]
                   + [_fmt(c["call_ok_rate"]), _fmt(c["call_result_right_rate"]),
                      _fmt(c["accuracy_with_call"]), _fmt(c["accuracy_without_call"])]
                   for s, c in per.items()])
  if "call_rates" in images:
    out += ["", f"![call rates]({images['call_rates']})"]
  out += _selection_markdown(summary)
  out += ["", "## \" [\" rank at the trigger", "",
          "First calls by the rank of \" [\" among the next-token logits when the call was "
          f"triggered (all tasks; the paper triggers at rank < 10, k = 10).", ""]
  labels = [b[len(metrics.RANK_PREFIX):] for b in metrics.RANK_BIN_NAMES]
  out += _table(["rank"] + runs, [[label] + [_fmt(summary["trigger_ranks"][r][b], 0)
                                             for r in runs]
                                  for label, b in zip(labels, metrics.RANK_BIN_NAMES)])
  if "trigger_rank" in images:
    out += ["", f"![trigger rank]({images['trigger_rank']})"]
  out += ["", "## Perplexity, API calls disabled", ""]
  lm = sorted({s for per in summary["perplexity"].values() for s in per})
  if lm:
    out += _table(["task"] + runs, [[f"`{s}`"] + [_fmt(summary["perplexity"][r].get(s), 2)
                                                  for r in runs] for s in lm])
  else:
    out.append("No perplexity task in these runs.")
  out += ["", f"Paper ({summary['paper_perplexity_table']}): "
          f"{_paper_line(summary['paper_perplexity'])}."]
  if "perplexity" in images:
    out += ["", f"![perplexity]({images['perplexity']})"]
  return "\n".join(out) + "\n"


# --- plots -----------------------------------------------------------------------------------
def _bars(path: str, groups: Sequence[str], series: Mapping[str, Sequence[Optional[float]]],
          title: str, ylabel: str, paper: Optional[Mapping[str, Sequence[Optional[float]]]] = None
          ) -> None:
  pyplot = reporting.pyplot()
  names = list(series) + list(paper or {})
  width = 0.8 / max(1, len(names))
  fig, ax = pyplot.subplots(figsize=(max(5.0, 1.1 * len(groups) * max(1, len(names)) * 0.5 + 2), 3.6))
  for k, name in enumerate(names):
    values = (series.get(name) if name in series else paper[name])
    xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(groups))]
    ys = [0.0 if v is None else v for v in values]
    if paper and name in paper:  # the paper's bars: hatched greys
      grey = ("lightgray", "darkgray", "gray")[list(paper).index(name) % 3]
      ax.bar(xs, ys, width, label=name, hatch="//", color=grey, edgecolor="black")
    else:
      ax.bar(xs, ys, width, label=name)
  ax.set_xticks(range(len(groups)))
  ax.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7)
  reporting.save_figure(fig, path, dpi=110)


def draw(summary: Mapping[str, Any], out_dir: str) -> Dict[str, str]:
  """The PNG charts; returns {key: file name} of those drawn."""
  runs = [r["name"] for r in summary["runs"]]
  images = {}
  for family, data in summary["families"].items():
    paper = None
    if data["paper_same"]:
      paper = {label: [(data["paper_same"][s][i] if s in data["paper_same"] else None)
                       for s in data["tasks"]]
               for label, i in (("paper GPT-J", 1), ("paper Toolformer", 2))}
    name = f"accuracy_{family}.png"
    _bars(os.path.join(out_dir, name), data["tasks"],
          {r: [data["accuracy"][r][s] for s in data["tasks"]] for r in runs},
          data["title"], "accuracy (%)", paper)
    images[family] = name
  sources = sorted({s for per in summary["calls"].values() for s in per})
  if sources:
    _bars(os.path.join(out_dir, "call_rates.png"), sources,
          {r: [summary["calls"][r].get(s, {}).get("call_rate") for s in sources] for r in runs},
          "examples with a call", "% of examples")
    images["call_rates"] = "call_rates.png"
    labels = [b[len(metrics.RANK_PREFIX):] for b in metrics.RANK_BIN_NAMES]
    _bars(os.path.join(out_dir, "trigger_rank.png"), labels,
          {r: [summary["trigger_ranks"][r][b] for b in metrics.RANK_BIN_NAMES] for r in runs},
          "rank of \" [\" when a call was triggered", "first calls")
    images["trigger_rank"] = "trigger_rank.png"
  lm = sorted({s for per in summary["perplexity"].values() for s in per})
  if lm:
    _bars(os.path.join(out_dir, "perplexity.png"), lm,
          {r: [summary["perplexity"][r].get(s) for s in lm] for r in runs},
          "perplexity, API calls disabled", "perplexity")
    images["perplexity"] = "perplexity.png"
  return images


def write_report(runs: Sequence[Tuple[str, str]], out_dir: str) -> Dict[str, Any]:
  """Loads the runs, writes report.md / report.json / PNGs to out_dir; returns the summary."""
  names = [n for n, _ in runs]
  if not runs:
    raise ReportError("no runs: pass --run NAME=EVAL_DIR at least once")
  if len(set(names)) != len(names):
    raise ReportError(f"run names must be unique, got {names}")
  loaded = [load_run(name, directory) for name, directory in runs]
  os.makedirs(out_dir, exist_ok=True)
  summary = summarize(loaded)
  images = draw(summary, out_dir)
  with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as f:
    json.dump({**summary, "images": images}, f, indent=1, ensure_ascii=False)
  with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
    f.write(render_markdown(summary, images))
  return summary
