"""The demo's report.md: per round the annotation's proposal and keep rates, the training
curves (a PNG from t5x's TensorBoard event files), and the eval table and plots that
`python -m toolformer_jax.report` wrote (see toolformer_jax.demo)."""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Dict, List

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


# The demo's targets on the held-out generated tasks: (family, points over base tools off).
TARGETS = (("math", 15.0), ("dates", 10.0))
PERPLEXITY_TOLERANCE = 0.05  # fine-tuned tools-off perplexity within 5% of base's


def effect_lines(summary: Dict, rounds: int) -> List[str]:
  """The headline table from the eval report's report.json: per round, each family's mean
  accuracy of base (tools off), the fine-tuned model tools on and the no-calls control,
  against its target, and the held-out perplexity against base's."""
  families, perplexity = summary.get("families", {}), summary.get("perplexity", {})
  lines = ["| round | measure | base (tools off) | fine-tuned, tools on | control (no calls) "
           "| fine-tuned - base | target | reached |", "|---|---|---:|---:|---:|---:|---|---|"]
  fmt = lambda v: reporting.fmt(v, ".1f", missing="-")
  for r in range(1, rounds + 1):
    tail = "" if rounds == 1 else f"_r{r}"
    for family, target in TARGETS:
      means = families.get(family, {}).get("mean", {})
      base, tuned = means.get("base_tools_off"), means.get(f"finetuned_tools_on{tail}")
      gain = None if base is None or tuned is None else tuned - base
      met = "-" if gain is None else ("yes" if gain >= target else "no")
      lines.append(f"| {r} | {family} accuracy (mean of its tasks) | {fmt(base)} | "
                   f"{fmt(tuned)} | {fmt(means.get(f'control{tail}'))} | {fmt(gain)} | "
                   f"+{target:g} points | {met} |")
    sources = sorted(perplexity.get("base_tools_off", {}))
    for source in sources:
      base = perplexity["base_tools_off"].get(source)
      tuned = perplexity.get(f"finetuned_tools_off{tail}", {}).get(source)
      control = perplexity.get(f"control{tail}", {}).get(source)
      ratio = None if not base or tuned is None else tuned / base - 1.0
      reached = "-" if ratio is None else ("yes" if ratio <= PERPLEXITY_TOLERANCE else "no")
      lines.append(f"| {r} | perplexity, `{source}` (tools off) | {fmt(base)} | "
                   f"{fmt(tuned)} (tools off) | {fmt(control)} | "
                   f"{'-' if ratio is None else f'{100 * ratio:+.1f}%'} | within "
                   f"{100 * PERPLEXITY_TOLERANCE:g}% | {reached} |")
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
           "SmolLM2-135M; corpus `corpus/corpus.jsonl`.", ""]
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
                  "Held-out generated eval tasks (never seen by annotation or training); "
                  "accuracy in points.", "", *effect_lines(summary, plan.rounds), ""]
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
