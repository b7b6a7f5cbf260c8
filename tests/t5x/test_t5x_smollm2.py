"""The real pretrained SmolLM2-135M: gguf -> t5x checkpoint -> `t5x.eval` perplexity (slow)."""
import json

import pytest

from t5x_testlib import quote, run_t5x

from test_t5x_convert import _convert_cli


@pytest.mark.slow
def test_smollm2_converts_and_t5x_eval_reports_a_sane_perplexity(tmp_path):
  result = _convert_cli("--to", "t5x", "--input", "smollm2", "--output_dir",
                        str(tmp_path / "t5x"))
  assert result.returncode == 0, result.stderr[-3000:]
  out_dir = tmp_path / "eval"
  run = run_t5x("t5x.eval", ("runs/eval_toolformer.gin", "models/smollm2_135m.gin"), {
      "CHECKPOINT_PATH": quote(tmp_path / "t5x" / "checkpoint_0"),
      "EVAL_OUTPUT_DIR": quote(out_dir),
      "seqio.Evaluator.num_examples": "16",
      "utils.DatasetConfig.batch_size": "8",
  }, str(tmp_path / "eval.log"))
  assert run.returncode == 0, run.log[-3000:]
  assert "toolformer_lm_wiki_smollm2/perplexity" in run.log
  (metrics_file,) = out_dir.glob("inference_eval/toolformer_lm_wiki_smollm2-metrics.jsonl")
  metrics = json.loads(metrics_file.read_text().splitlines()[-1])
  perplexity = metrics["perplexity"] if "perplexity" in metrics else metrics["eval/perplexity"]
  # A pretrained 135M model on Wikipedia leads: ~10-30 (an untrained one: ~49152).
  assert 5.0 < perplexity < 60.0, metrics
