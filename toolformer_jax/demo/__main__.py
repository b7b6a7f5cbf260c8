"""The Toolformer demo: every stage of the loop on SmolLM2-135M (see toolformer_jax.demo).

  python -m toolformer_jax.demo [--size tiny|default|full] [--rounds N] [--out_dir DIR]
      [--stages corpus,convert,annotate,train,eval,report] [--force]

Sizes are gin/runs/demo/<size>.gin. A bad size, stage or round count, or an out dir that
holds another size, is a usage error (exit status 2); a failed step exits 1.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags

from toolformer_jax import cli
from toolformer_jax.demo import plan as plan_lib
from toolformer_jax.demo import runner

FLAGS = flags.FLAGS
EXIT_USAGE = 2  # argparse's, as before the absl flags


def define_flags() -> None:
  """The CLI flags (once per process; importing this module defines none)."""
  if "stages" in FLAGS:
    return
  flags.DEFINE_string("out_dir", None,
                      "default: out/demo, or out/demo_<size> for a size not 'default'")
  flags.DEFINE_enum("size", "default", plan_lib.size_names(),
                    "a gin/runs/demo/<size>.gin file")
  flags.DEFINE_integer("rounds", 1,
                       "round R+1 re-annotates with round R's fine-tuned checkpoint")
  flags.DEFINE_string("stages", ",".join(plan_lib.STAGES),
                      f"comma-separated subset of {','.join(plan_lib.STAGES)}")
  flags.DEFINE_bool("force", False,
                    "rerun the selected stages even where their output is complete")


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unrecognized arguments: {' '.join(argv[1:])}", EXIT_USAGE)
  size = FLAGS.size
  try:
    out_dir = FLAGS.out_dir or ("out/demo" if size == "default" else f"out/demo_{size}")
    plan = plan_lib.Plan(out_dir, size, FLAGS.rounds)
    stages = [s.strip() for s in FLAGS.stages.split(",") if s.strip()]
    runner.select([], stages)
    plan.claim_out_dir()
  except ValueError as e:
    raise app.UsageError(str(e), EXIT_USAGE) from e
  print(f"demo: size {size} ({plan.size}), {FLAGS.rounds} round(s), in {plan.out_dir}",
        flush=True)
  start = time.perf_counter()
  try:
    runner.run_plan(plan, stages, FLAGS.force)
  except (RuntimeError, FileNotFoundError) as e:
    print(f"demo: FAILED: {e}", file=sys.stderr)
    return 1
  report = os.path.join(plan.out_dir, "report.md")
  where = (f"report at {report}" if os.path.exists(report)
           else "no report yet (run --stages report)")
  print(f"demo: {time.perf_counter() - start:.0f} s; {where}", flush=True)
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main, usage_exit_code=EXIT_USAGE)
