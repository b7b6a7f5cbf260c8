r"""The report CLI: the eval report of t5x.eval runs, or an annotation run's report.

  python -m toolformer_jax.report --run NAME=EVAL_DIR [--run ...] --out DIR
  python -m toolformer_jax.report --annotation ANNOTATE_DIR [--out DIR] [--samples 3]

--run (repeatable): the eval report of several t5x.eval runs side by side
(toolformer_jax.evaluation.report) into --out. --annotation: the report of an annotation
run (toolformer_jax.annotate.report) into --out, default the annotation directory.
Both end with a one-line summary. A bad --run or a run without metrics is one line on
stderr and exit status 2; an annotation directory without shards is one line
("error: ...") and exit status 1; flags that do not parse exit 2.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags
from absl import logging

from toolformer_jax import cli

FLAGS = flags.FLAGS
EXIT_USAGE = 2  # argparse's, as before the absl flags


def define_flags() -> None:
  """The CLI flags (once per process; importing this module defines none)."""
  if "annotation" in FLAGS:
    return
  flags.DEFINE_multi_string("run", [], "NAME=EVAL_DIR: a run's name and t5x.eval output "
                            "directory (repeatable)")
  flags.DEFINE_string("annotation", None,
                      "an annotation run's directory: write its report instead")
  flags.DEFINE_string("out", None, "directory for report.md, report.json and the PNGs "
                      "(needed for --run; default for --annotation: its directory)")
  flags.DEFINE_integer("samples", 3, "--annotation: annotated passages per tool")


def _usage(message: str) -> int:
  print(f"report: {message}", file=sys.stderr)
  return EXIT_USAGE


def eval_main() -> int:
  from toolformer_jax.evaluation import report  # pylint: disable=g-import-not-at-top
  if not FLAGS.out:
    return _usage("--out is required with --run")
  try:
    summary = report.write_report([report.parse_run_flag(v) for v in FLAGS.run], FLAGS.out)
  except report.ReportError as e:
    return _usage(str(e))
  tasks = {s for r in summary["runs"] for s in r["tasks"]}
  skipped = sum(r["skipped_lines"] for r in summary["runs"])
  print(f"report: {len(summary['runs'])} runs, {len(tasks)} tasks, "
        f"{len(summary['families'])} task families"
        + (f", {skipped} malformed metric lines skipped" if skipped else "")
        + f" -> {os.path.join(FLAGS.out, 'report.md')}")
  return 0


def annotation_main() -> int:
  from toolformer_jax.annotate import report  # pylint: disable=g-import-not-at-top
  try:
    path = report.write_report(FLAGS.annotation, FLAGS.out, FLAGS.samples, progress=True)
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  with open(os.path.join(os.path.dirname(path), "report.json"), encoding="utf-8") as f:
    numbers = json.load(f)
  per_tool = ", ".join(f"{tool} {e['kept']}/{e['scored']}"
                       for tool, e in numbers["tools"].items())
  print(f"report of {numbers['shards']['complete']} shards ({numbers['documents']} "
        f"documents, {numbers['malformed_total']} malformed lines skipped); kept/scored per "
        f"tool: {per_tool}; written to {path}")
  return 0


def main(argv) -> int:
  if not FLAGS["verbosity"].present:  # stderr: warnings (skipped lines) and errors only
    logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    return _usage(f"unrecognized arguments: {' '.join(argv[1:])}")
  if FLAGS.annotation is not None:
    if FLAGS.run:
      return _usage("pass --run or --annotation, not both")
    return annotation_main()
  return eval_main()


if __name__ == "__main__":
  define_flags()
  cli.run(main, usage_exit_code=EXIT_USAGE)
