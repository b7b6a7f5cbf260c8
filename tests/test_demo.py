"""`make demo` end to end (slow: loads SmolLM2 and runs t5x.train; `make test-slow`)."""
import json
import math

import pytest

from toolformer_jax import demo


@pytest.mark.slow
# ~200 s on 2 busy cores, near the 300 s default: room for a slower machine.
@pytest.mark.timeout(900)
def test_demo_runs_every_existing_stage(tmp_path):
  assert demo.main(["--out_dir", str(tmp_path), "--max_new_tokens", "6",
                    "--finetune_steps", "2"]) == 0
  report = json.loads((tmp_path / "report.json").read_text())
  assert "Paris" in report["stage_model"]["continuations"]["The capital of France is"]
  assert report["stage_tools"]["Calculator(400 / 1400)"] == {"ok": True, "text": "0.29"}
  assert all(result["ok"] for result in report["stage_tools"].values())
  finetune = report["stage_finetune"]
  assert finetune["checkpoints"] == ["checkpoint_0", "checkpoint_2"]
  assert math.isfinite(finetune["heldout"]["perplexity"])
  assert 1.0 < finetune["heldout"]["perplexity"] < 100.0
