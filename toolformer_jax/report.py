"""`python -m toolformer_jax.report --run NAME=EVAL_DIR ... --out DIR`: the eval report of
several t5x.eval runs (toolformer_jax.evaluation.report; the annotation's report is
toolformer_jax.annotate.report)."""
import sys

from toolformer_jax.evaluation.report import main

if __name__ == "__main__":
  sys.exit(main())
