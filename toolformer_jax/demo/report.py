"""The demo's report.md: per round the annotation's proposal and keep rates, the training
curves (a PNG from t5x's TensorBoard event files), and the eval table and plots that
`python -m toolformer_jax.report` wrote (see toolformer_jax.demo)."""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Dict, List

from toolformer_jax import assets
from toolformer_jax import reporting


def read_scalars(run_dir: str, tag: str = "loss") -> Dict[int, float]:
  """{step: value} of the scalar `tag` in the TensorBoard event files of run_dir (t5x
  writes MODEL_DIR/train/events.out.tfevents.*; values as tensors or simple_value)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  values = {}
  for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag == tag:
          values[int(event.step)] = (float(tf.make_ndarray(value.tensor))
                                     if value.HasField("tensor") else float(value.simple_value))
  return dict(sorted(values.items()))


def plot_curves(curves: Dict[str, Dict[int, float]], path: str, tag: str = "loss") -> str:
  """One line per run of {step: value}; writes and returns path (a PNG)."""
  plt = reporting.pyplot()
  fig, ax = plt.subplots(figsize=(6, 3.5))
  for name, values in curves.items():
    if values:
      ax.plot(list(values), list(values.values()), marker="o", label=name)
  ax.set_xlabel("step")
  ax.set_ylabel(f"training {tag}")
  ax.grid(alpha=0.3)
  if any(curves.values()):
    ax.legend()
  return reporting.save_figure(fig, path, dpi=100)


def annotation_rates(annotate_dir: str) -> Dict[str, Dict[str, float]]:
  """{tool: {"scored", "kept", "proposal_rate" (scored calls per document), "keep_rate",
  "p_kept" / "p_rejected" (median p(" [") at the positions of kept / rejected calls: how
  readily the model proposes a call there)}} from the annotation report's report.json."""
  with open(os.path.join(annotate_dir, "report.json"), encoding="utf-8") as f:
    numbers = json.load(f)
  documents = max(int(numbers.get("documents", 0)), 1)
  rates = {}
  for tool, entry in numbers["tools"].items():
    scored, kept = int(entry["scored"]), int(entry["kept"])
    p_start = entry.get("p_call_start") or {}
    rates[tool] = {"scored": scored, "kept": kept, "proposal_rate": scored / documents,
                   "keep_rate": kept / scored if scored else 0.0,
                   "p_kept": (p_start.get("kept") or {}).get("median"),
                   "p_rejected": (p_start.get("rejected") or {}).get("median")}
  return rates


def kept_by_kind(annotate_dir: str) -> Dict[str, Dict[str, int]]:
  """{document kind: {tool: kept calls}} of a round's annotated shards (every call of a
  record; the kinds of `synthetic_docs.kind_of`)."""
  from toolformer_jax.annotate import synthetic_docs  # pylint: disable=g-import-not-at-top
  from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
  out: Dict[str, Dict[str, int]] = {}
  stats = corpora.ReadStats(f"annotated shards of {annotate_dir}")
  for path in sorted(glob.glob(os.path.join(annotate_dir, "annotated-*.jsonl"))):
    for _, record in corpora.iter_json_records(path, stats):
      calls = record.get("calls") or [{"tool": record.get("tool")}]
      kind = synthetic_docs.kind_of(str(record.get("doc_id", "")))
      for call in calls:
        per = out.setdefault(kind, {})
        per[str(call.get("tool"))] = per.get(str(call.get("tool")), 0) + 1
  return out


def wrong_tool_calls(kept: Dict[str, Dict[str, int]]) -> int:
  """Kept calls of a tool that does not fit their document's kind."""
  from toolformer_jax.annotate import synthetic_docs  # pylint: disable=g-import-not-at-top
  return sum(n for kind, per in kept.items() for tool, n in per.items()
             if tool not in synthetic_docs.FITTING_TOOLS.get(kind, ()))


def kept_by_kind_lines(per_round: List[Dict[str, Dict[str, int]]]) -> List[str]:
  """Kept calls per round, document kind and tool, with each round's wrong-tool count."""
  tools = sorted({t for kept in per_round for per in kept.values() for t in per})
  if not tools:
    return []
  lines = ["| round | document kind | " + " | ".join(tools) + " |",
           "|---|---|" + "---:|" * len(tools)]
  for r, kept in enumerate(per_round, start=1):
    for kind in sorted(kept):
      lines.append(f"| {r} | {kind} | " + " | ".join(str(kept[kind].get(t, 0))
                                                     for t in tools) + " |")
  lines += ["", "Kept calls of a tool that does not fit the document's kind (wrong tool): "
            + ", ".join(f"round {r} {wrong_tool_calls(k)}"
                        for r, k in enumerate(per_round, start=1)) + "."]
  return lines


# The demo's targets, on the held-out tasks of the test seed: (family, points of fine-tuned
# tools on over the control, whether the two 95% intervals must not overlap).
TARGETS = (("math", 15.0, True), ("dates", 10.0, False), ("facts", 10.0, False))
PERPLEXITY_TOLERANCE = 0.05  # fine-tuned perplexity (calls disabled) within 5% of control's
EFFECT_COLUMNS = (("base_tools_off", "base"), ("finetuned_tools_off", "fine-tuned, disabled"),
                  ("finetuned_tools_on", "fine-tuned, tools on"), ("control", "control"))


def _pooled_cell(entry) -> str:
  if not entry or entry.get("accuracy") is None:
    return "-"
  return (f"{entry['accuracy']:.1f} [{entry['low']:.1f}, {entry['high']:.1f}] "
          f"(n={entry['n']:.0f})")


def effect_lines(summary: Dict, rounds: int) -> List[str]:
  """The headline table from the eval report's report.json: per round and family, the
  pooled accuracy [95% Wilson interval] (N) of the held-out tasks (and, below, of the
  in-distribution ones) for base, fine-tuned with calls disabled, fine-tuned tools on and
  the no-calls control; the gain of tools on over the control against its target; dates
  with the paper's argument-free Calendar; perplexity with calls disabled against the
  control's."""
  from toolformer_jax.demo import plan as plan_lib  # pylint: disable=g-import-not-at-top
  families, perplexity = summary.get("families", {}), summary.get("perplexity", {})
  lines = ["| round | tasks | " + " | ".join(label for _, label in EFFECT_COLUMNS)
           + " | tools on - control | target | reached |",
           "|---|---|" + "---:|" * len(EFFECT_COLUMNS) + "---:|---|---|"]
  for r in range(1, rounds + 1):
    tail = plan_lib.round_tail(r)
    for family, target, separate in TARGETS:
      pooled = families.get(family, {}).get("pooled", {})
      for split, label in (("heldout", "held-out"), ("in_distribution", "in-distribution")):
        runs = pooled.get(split)
        if not runs:
          continue
        get = lambda run: runs.get(run + tail if run != "base_tools_off" else run) or {}
        tuned, control = get("finetuned_tools_on"), get("control")
        gain = (None if tuned.get("accuracy") is None or control.get("accuracy") is None
                else tuned["accuracy"] - control["accuracy"])
        cells = [_pooled_cell(get(run)) for run, _ in EFFECT_COLUMNS]
        if split == "heldout":
          apart = gain is not None and tuned["low"] > control["high"]
          met = "-" if gain is None else (
              "yes" if gain >= target and (apart or not separate) else "no")
          rule = f"+{target:g} points" + (", intervals apart" if separate else "")
        else:
          met, rule = "", "(no target)"
        lines.append(f"| {r} | {family}, {label} | " + " | ".join(cells)
                     + f" | {reporting.fmt(gain, '+.1f', missing='-')} | {rule} | {met} |")
      paper = pooled.get("heldout", {}).get(plan_lib.PAPER_CALENDAR_RUN + tail)
      if family == "dates" and paper:
        lines.append(f"| {r} | dates, held-out, the paper's Calendar (no arguments) | - | - | "
                     f"{_pooled_cell(paper)} | - | - | (no target) | |")
    for source in sorted(perplexity.get("base_tools_off", {})):
      value = lambda run: perplexity.get(run, {}).get(source)
      base, tuned = value("base_tools_off"), value(f"finetuned_tools_off{tail}")
      control = value(f"control{tail}")
      ratio = None if not control or tuned is None else tuned / control - 1.0
      reached = "-" if ratio is None else ("yes" if abs(ratio) <= PERPLEXITY_TOLERANCE
                                           else "no")
      fmt = lambda v: reporting.fmt(v, ".2f", missing="-")
      lines.append(f"| {r} | perplexity, `{source}` | {fmt(base)} | {fmt(tuned)} | "
                   f"{fmt(tuned)} (calls disabled) | {fmt(control)} | "
                   f"{'-' if ratio is None else f'{100 * ratio:+.1f}%'} | within "
                   f"{100 * PERPLEXITY_TOLERANCE:g}% of control | {reached} |")
  return lines


def _relink(markdown: str, prefix: str) -> str:
  """Markdown links and images to relative files, re-rooted under prefix/."""
  return re.sub(r"(\]\()(?![a-z]+://|/|#)([^)]+\))", lambda m: m.group(1) + prefix + "/"
                + m.group(2), markdown)


def write(plan) -> str:
  """Writes <out_dir>/report.md (and training_curve_rR.png); returns its path."""
  out = plan.out_dir
  lines = ["# Toolformer demo", "",
           f"Size `{plan.size_name}` ({plan.size}), {plan.rounds} round(s); model "
           f"{assets.SMOLLM2_MODEL}; corpus `corpus/corpus.jsonl`.", ""]
  timings = []
  for step in plan.steps():  # in the order they ran
    done = os.path.join(step.output, "DONE.json")
    if os.path.exists(done):
      with open(done, encoding="utf-8") as f:
        timings.append(f"{step.name} {json.load(f)['seconds']:.0f} s")
  if timings:
    lines += ["Wall time per step: " + ", ".join(timings) + ".", ""]
  for r in range(1, plan.rounds + 1):
    annotated = plan.annotated_dir(r)
    rel = os.path.relpath(annotated, out)
    lines += [f"## Round {r}", "", f"### Annotation ([report]({rel}/report.md))", "",
              "| tool | calls scored | kept | proposal rate (scored / document) | keep rate "
              "| median p(\" [\") kept / rejected |", "|---|---|---|---|---|---|"]
    p_fmt = lambda v: reporting.fmt(v, ".3g", missing="-")
    try:
      for tool, e in annotation_rates(annotated).items():
        lines.append(f"| {tool} | {e['scored']} | {e['kept']} | {e['proposal_rate']:.2f} | "
                     f"{e['keep_rate']:.2f} | {p_fmt(e['p_kept'])} / "
                     f"{p_fmt(e['p_rejected'])} |")
    except FileNotFoundError:
      lines.append("| (no annotation report) | | | | |")
    if r == plan.rounds:  # every round's kept calls by document kind, once
      kept = [kept_by_kind(plan.annotated_dir(k)) for k in range(1, plan.rounds + 1)]
      by_kind = kept_by_kind_lines(kept)
      if by_kind:
        lines += ["", "### Kept calls by document kind (every round)", "", *by_kind]
    curves = {"with calls": read_scalars(os.path.join(plan.model_dir(r), "train")),
              "control (no calls)": read_scalars(os.path.join(plan.model_dir(r, True),
                                                              "train"))}
    png = plot_curves(curves, os.path.join(out, f"training_curve_r{r}.png"))
    lines += ["", "### Fine-tuning", "", f"![training loss]({os.path.basename(png)})", ""]
    for name, values in curves.items():
      if values:
        lines.append(f"- {name}: loss {values[min(values)]:.3f} at step {min(values)} -> "
                     f"{values[max(values)]:.3f} at step {max(values)}")
    lines.append("")
  summary_path = os.path.join(out, "eval_report", "report.json")
  if os.path.exists(summary_path):
    with open(summary_path, encoding="utf-8") as f:
      summary = json.load(f)
    lines[4:4] = ["## The effect", "",
                  "Test-seed items (settings were chosen on the dev seed). Held-out tasks: "
                  "templates, kinds and wordings none of the annotation corpus's documents "
                  "have; in-distribution tasks mirror them. Each cell: accuracy in % "
                  "[95% Wilson interval] (N), the tasks' examples pooled; every row is "
                  "asked in the same answer-eliciting prompt. Fine-tuned, disabled: the "
                  "call opener is never generated (the paper's disabled Toolformer). The "
                  "control is the same fine-tune on the same documents without calls. "
                  "Dates use the extended Calendar (offsets and distances: it computes "
                  "the question's date arithmetic when the model writes the offset); the "
                  "paper's Calendar only returns today's date.", "",
                  *effect_lines(summary, plan.rounds), ""]
  eval_md = os.path.join(out, "eval_report", "report.md")
  if os.path.exists(eval_md):  # its own '# ...' heading becomes a section of this report
    with open(eval_md, encoding="utf-8") as f:
      body = f.read()
    body = re.sub(r"^#", "##", body, flags=re.M)
    lines.append(_relink(body, "eval_report"))
  else:
    lines += ["## Evaluation", "", "(no eval report yet)"]
  path = os.path.join(out, "report.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines).rstrip() + "\n")
  return path
