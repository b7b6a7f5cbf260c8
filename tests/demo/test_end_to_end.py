"""The demo end to end at --size tiny (slow)."""
import glob
import json
import os

import pytest

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
  assert "## The effect" in report and "SmolLM2-135M-Instruct (Q4_1 gguf" in report
  # The numbers the report must carry: every run's rows with their N and intervals, and
  # no call text where calls are disabled.
  with open(tmp_path / "eval_report" / "report.json") as f:
    summary = json.load(f)
  counts = plan.eval_counts()
  names = [run for run, *_ in plan.eval_runs()]
  for family in ("math", "dates"):
    data = summary["families"][family]
    for source in data["tasks"]:
      assert data["num_examples"][source] == counts[source], source
      assert data["split"][source] == ("held-out" if "heldout" in source
                                       else "in-distribution"), source
    heldout = [s for s in data["tasks"] if data["split"][s] == "held-out"]
    for run in names:
      if run == "base_tools_on" or (run.startswith(plan_lib.PAPER_CALENDAR_RUN)
                                    and family != "dates"):
        continue
      pooled = data["pooled"]["heldout"][run]
      assert pooled["n"] == sum(counts[s] for s in heldout), (family, run)
      assert 0 <= pooled["low"] <= pooled["accuracy"] <= pooled["high"] <= 100
      for source in data["tasks"]:
        row = data["rows"][run].get(source)
        if row is None or row["accuracy"] is None:
          continue
        if "tools_off" in run or run == "control":
          assert row["call_text_rate"] == 0.0, (run, source)
        assert 0 <= row["empty_rate"] <= 100
  effect = [line for line in report.splitlines() if line.startswith("| 1 | ")]
  assert any(line.startswith("| 1 | math, held-out |") for line in effect)
  assert any("the paper's Calendar" in line for line in effect)
  assert any("(n=2)" in line for line in effect)  # tiny: one held-out task of 2 per family
  assert (tmp_path / "training_curve_r1.png").exists()
  assert demo_report.read_scalars(os.path.join(plan.model_dir(1), "train"))
  assert demo_report.read_scalars(os.path.join(plan.model_dir(1, True), "train"))
  for run, *_ in plan.eval_runs():
    assert os.listdir(os.path.join(plan.eval_dir(run), "inference_eval")), run
  texts = []
  for path in glob.glob(os.path.join(plan.annotated_dir(1), "annotated-*.jsonl")):
    texts += [json.loads(line)["text"] for line in open(path) if line.strip()]
  assert texts and any(" [Calculator(" in t or " [Calendar(" in t for t in texts)
  # A rerun skips every step but the report (its inputs change with --rounds).
  assert set(runner.run_plan(plan, plan_lib.STAGES)) == {"report"}


