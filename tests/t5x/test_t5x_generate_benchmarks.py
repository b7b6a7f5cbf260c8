"""`python -m toolformer_jax.generate --benchmark=NAME --benchmark_path=FILE
--num_examples=N`: quick runs on a prefix of a benchmark file, each output record carrying
the benchmark's question and gold answers beside the output."""
import json
import subprocess
import sys

import pytest

from benchmark_samples import SVAMP, write_lama, write_svamp
from t5x_testlib import GIN_DIR, REPO, subprocess_env
from toolformer_jax import generate


def test_generate_on_a_prefix_of_a_benchmark_file(tmp_path, initial_checkpoint, monkeypatch):
  script_gin = tmp_path / "script.gin"
  script_gin.write_text(
      "from __gin__ import dynamic_registration\n"
      "import tool_script\n"
      "from toolformer_jax.decoding import tool_decoding\n"
      "tool_decoding.ToolSampler.logit_callback_fn = @tool_script.calculator_script()\n")
  monkeypatch.setenv("PYTHONPATH", str(REPO / "tests" / "t5x"))  # tool_script
  out = tmp_path / "svamp_out.jsonl"
  proc = subprocess.run(
      [sys.executable, "-m", "toolformer_jax.generate", f"--gin_search_paths={GIN_DIR}",
       "--gin_file=models/gptj_tiny.gin", f"--gin_file={script_gin}",
       f"--checkpoint={initial_checkpoint}", "--benchmark=svamp",
       f"--benchmark_path={write_svamp(tmp_path)}", "--num_examples=2", f"--output={out}",
       "--max_decode_steps=20", "--batch_size=2", "--gin.TOOLS=['Calculator']"],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert [(r["id"], r["question"], r["answers"]) for r in rows] == [
      (f"{s}-{i}", q, list(a)) for s, i, q, a in SVAMP[:2]]
  for row in rows:
    assert row["benchmark"] == "svamp" and row["task"] == "math_svamp"
    assert row["match"] == "number" and row["inputs"].startswith("Question: ")
    assert " [Calculator(3 * 4) -> 12]" in row["output"]
    assert row["calls"][0]["result"] == "12" and isinstance(row["correct"], bool)
  correct = sum(r["correct"] for r in rows)
  assert (f"generate: 2 outputs, 2 calls (ok 2)" in proc.stdout
          and f"svamp: {correct} of 2 correct" in proc.stdout), proc.stdout


def test_benchmark_flags_records_and_the_papers_tools(tmp_path):
  records = generate.benchmark_records("lama", str(write_lama(tmp_path)), "trex", 1)
  assert [(r["task"], r["question"], r["answers"]) for r in records] == [
      ("facts_lama_trex", "The capital of Mockland is", ["Mockton"])]
  with pytest.raises(generate.GenerateError, match="expected LAMA jsonl"):
    generate.benchmark_records("lama", str(tmp_path / "none.jsonl"))
  # LAMA without WikiSearch, the QA benchmarks without QA, unless TOOLS is bound.
  (lama,) = generate.paper_tools_binding("lama", [])
  assert lama.startswith("TOOLS = ") and "WikiSearch" not in lama and "'QA'" in lama
  (nq,) = generate.paper_tools_binding("nq_open", [])
  assert "'QA'" not in nq and "WikiSearch" in nq
  assert generate.paper_tools_binding("nq_open", ["TOOLS = ['Calculator']"]) == []
  assert generate.paper_tools_binding("svamp", []) == []
  assert generate.score({"answers": ["12"], "match": "number"}, " 12 jars")
