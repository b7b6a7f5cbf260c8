"""`python -m t5x.infer` with gin/runs/infer_tools.gin: predictions carry their calls.

A random gptj_tiny checkpoint (the session fixture) is made to call the real Calculator
once per output by a scripted logit callback bound through gin (tool_script.py); t5x's
predict_with_aux writes the predictions, their tokens and the calls' aux outputs, which
must describe the same calls the prediction texts contain.
"""
import json
import os
import subprocess
import sys

import gin
import pytest

from t5x_testlib import GIN_DIR, quote, REPO, run_t5x, subprocess_env
from toolformer_jax import models as toolformer_models

from toolformer_jax import vocab as vocab_lib
from toolformer_jax.decoding import tool_decoding
from toolformer_jax.tools import call_format

PROMPTS = ["Twelve eggs:", "Three boxes of four eggs make", "Counting the eggs in the basket"]
INFER_GIN = ("runs/infer_tools.gin", "models/gptj_tiny.gin")


def _script_gin(tmp_path, monkeypatch):
  """A gin file binding tool_script's scripted Calculator call (on PYTHONPATH)."""
  script_gin = tmp_path / "script.gin"
  script_gin.write_text(
      "from __gin__ import dynamic_registration\n"
      "import tool_script\n"
      "from toolformer_jax.decoding import tool_decoding\n"
      "tool_decoding.ToolSampler.logit_callback_fn = @tool_script.calculator_script()\n")
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(  # the subprocess imports tool_script
      [str(REPO / "tests" / "t5x")] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  return script_gin


def _infer(tmp_path, initial_checkpoint, monkeypatch, **bindings):
  prompts = tmp_path / "prompts.jsonl"
  prompts.write_text("".join(json.dumps({"inputs": p}) + "\n" for p in PROMPTS))
  script_gin = _script_gin(tmp_path, monkeypatch)
  out_dir = tmp_path / "infer"
  run = run_t5x("t5x.infer", INFER_GIN + (str(script_gin),), {
      "PROMPT_FILES": f"[{quote(prompts)}]",
      "CHECKPOINT_PATH": quote(initial_checkpoint),
      "INFER_OUTPUT_DIR": quote(out_dir),
      "TASK_FEATURE_LENGTHS": "{'inputs': 16, 'targets': 24}",
      "TOOLS": "['Calculator']",
      "utils.DatasetConfig.batch_size": "4",
      **bindings,
  }, str(tmp_path / "infer.log"))
  assert run.returncode == 0, run.log[-3000:]
  (output,) = [p for p in out_dir.glob("*-predict_with_aux.jsonl*")
               if not p.name.endswith("COMPLETED")]
  return [json.loads(line) for line in output.read_text().splitlines()]


def test_t5x_infer_writes_predictions_with_their_calls(tmp_path, initial_checkpoint,
                                                       monkeypatch):
  rows = _infer(tmp_path, initial_checkpoint, monkeypatch)
  vocabulary = vocab_lib.Gpt2Vocabulary()
  assert [r["inputs"]["inputs_pretokenized"] for r in rows] == PROMPTS
  for row in rows:
    prediction, aux = row["prediction"], row["aux"]
    assert " [Calculator(3 * 4) -> 12]" in prediction, prediction
    calls = tool_decoding.calls_from_aux(row["prediction_tokens"], aux, vocabulary)
    spans = [s for s in call_format.find_calls(prediction) if s.closed]
    assert [(c["tool"], c["args"], c["result"]) for c in calls] == [
        (s.call.tool, s.call.args, s.result) for s in spans] == [("Calculator", "3 * 4", "12")]
    (call,) = calls
    assert call["status"] == "ok" and call["step"] == 2 and call["trigger_rank"] == 0
    # The aux positions index the prediction tokens: " [" is the third generated token.
    assert call["position"] == 2
    assert vocabulary.decode(row["prediction_tokens"][:call["position"]]) == prediction[
        :prediction.index(" [Calculator")]


@pytest.fixture
def clean_gin():
  yield
  gin.clear_config()


@pytest.mark.parametrize("bindings,top_k", [([], 10), (["TOOL_TRIGGER_TOP_K = 0"], 0)])
def test_tool_decoding_gin_swaps_the_decode_fn_and_one_binding_turns_tools_off(
    bindings, top_k, clean_gin):
  gin.clear_config()
  gin.add_config_file_search_path(str(GIN_DIR))
  gin.parse_config_files_and_bindings(
      [str(GIN_DIR / "models/gptj_tiny.gin"), str(GIN_DIR / "models/base/tool_decoding.gin")],
      ["TRAIN_STEPS = None", "TOOLS = ['Calculator']"] + bindings, finalize_config=False)
  model = gin.get_configurable(toolformer_models.ToolformerDecoderOnlyModel)()
  sampler = model._decode_fn  # pylint: disable=protected-access
  assert isinstance(sampler, tool_decoding.ToolSampler)
  assert (sampler.trigger_top_k, sampler.max_calls) == (top_k, 1)
  assert sampler.vocabulary == model.output_vocabulary
  if top_k:
    assert sorted(sampler.executor.tools) == ["Calculator"]
  else:
    assert sampler.executor is None and not sampler.tools_on


def test_generate_cli_writes_outputs_with_calls(tmp_path, initial_checkpoint, monkeypatch):
  """python -m toolformer_jax.generate on a t5x checkpoint: records keep their fields and
  gain "output" and "calls"."""
  records = [{"inputs": p, "id": i} for i, p in enumerate(PROMPTS)]
  (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  script_gin = _script_gin(tmp_path, monkeypatch)
  proc = subprocess.run(
      [sys.executable, "-m", "toolformer_jax.generate", f"--gin_search_paths={GIN_DIR}",
       "--gin_file=models/gptj_tiny.gin", f"--gin_file={script_gin}",
       f"--checkpoint={initial_checkpoint}", f"--input={tmp_path / 'in.jsonl'}",
       f"--output={tmp_path / 'out.jsonl'}", "--max_decode_steps=20", "--batch_size=2",
       "--gin.TOOLS=['Calculator']"],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "generate: 3 outputs, 3 calls (ok 3)" in proc.stdout
  rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
  assert [(r["inputs"], r["id"]) for r in rows] == [(r["inputs"], r["id"]) for r in records]
  for row in rows:
    assert " [Calculator(3 * 4) -> 12]" in row["output"]
    (call,) = row["calls"]
    assert (call["tool"], call["args"], call["result"], call["status"]) == (
        "Calculator", "3 * 4", "12", "ok")
