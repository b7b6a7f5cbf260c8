"""The demo end to end at --size tiny (slow)."""
import glob
import json
import os

import pytest

from demo import test_corpus
from demo import test_runner
from toolformer_jax.demo import plan as plan_lib
from toolformer_jax.demo import report as demo_report
from toolformer_jax.demo import runner


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_tiny_demo_runs_every_stage(tmp_path):
  assert test_runner.run_cli(["--out_dir", str(tmp_path), "--size", "tiny"]) == 0
  plan = plan_lib.Plan(str(tmp_path), "tiny", 1)
  assert all(step.done() for step in plan.steps())
  report = (tmp_path / "report.md").read_text()
  for heading in ("## Round 1", "### Annotation", "### Fine-tuning", "## Toolformer evaluation",
                  "| `math_templates_v1` |"):
    assert heading in report
  assert (tmp_path / "training_curve_r1.png").exists()
  assert demo_report.read_scalars(os.path.join(plan.model_dir(1), "train"))
  assert demo_report.read_scalars(os.path.join(plan.model_dir(1, True), "train"))
  for run, *_ in plan.eval_runs():
    assert os.listdir(os.path.join(plan.eval_dir(run), "inference_eval")), run
  texts = []
  for path in glob.glob(os.path.join(plan.annotated_dir(1), "annotated-*.jsonl")):
    texts += [json.loads(line)["text"] for line in open(path) if line.strip()]
  assert texts and any(" [Calculator(" in t or " [Calendar(" in t for t in texts)
  annotated_text = "\n".join(texts)
  assert not [q for _, q in test_corpus.eval_questions() if q in annotated_text]
  # A rerun skips every step but the report (its inputs change with --rounds).
  assert set(runner.run_plan(plan, plan_lib.STAGES)) == {"report"}


