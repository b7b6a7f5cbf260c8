"""`python -m t5x.eval` with gin/runs/eval_tools.gin on a tiny model, tools on and off.

The random gptj_tiny checkpoint (session fixture) is made to call the real Calculator once
per output by the scripted logit callback of tool_script.py; with TOOL_TRIGGER_TOP_K=0 (the
one binding that turns tools off) the same run makes no call. Both runs evaluate a small
mixture (a math generator, a date generator, the held-out perplexity task, and two
benchmark files in their published formats that the test writes, SVAMP.json and TempLAMA's
jsonl, through BENCHMARK_PATHS) and write seqio metrics, which must be what the metric fn
gives on the per-example outputs and aux values the same run wrote.
"""
import json
import math
import os
import pathlib

import pytest

from benchmark_samples import SVAMP, TEMPLAMA, write_svamp, write_templama
from t5x_testlib import GIN_DIR, quote, REPO, run_t5x
from toolformer_jax.evaluation import metrics

EVAL_GIN = ("runs/eval_tools.gin", "models/gptj_tiny.gin")
GENERATION_TASKS = ("toolformer_eval_math_templates_v2", "toolformer_eval_dates_given_v2")
LM_TASK = "toolformer_eval_lm_wiki"
EXAMPLES = 4
# The benchmark tasks and the (source, id, question, answers) their files hold.
BENCHMARK_TASKS = {"toolformer_eval_math_svamp": SVAMP,
                   "toolformer_eval_dates_templama": TEMPLAMA}


def _eval(tmp_path_factory, initial_checkpoint, label, **bindings):
  tmp = tmp_path_factory.mktemp(label)
  script_gin = tmp / "script.gin"
  script_gin.write_text(
      "from __gin__ import dynamic_registration\n"
      "import tool_script\n"
      "from toolformer_jax.decoding import tool_decoding\n"
      "tool_decoding.ToolSampler.logit_callback_fn = @tool_script.calculator_script()\n")
  benchmark_paths = {"svamp": str(write_svamp(tmp)), "templama": str(write_templama(tmp))}
  out_dir = bindings.pop("out_dir", tmp / "eval")
  if out_dir is not None:
    bindings["EVAL_OUTPUT_DIR"] = quote(out_dir)
  else:  # eval_tools.gin's default: beside the checkpoint, named after the tool setting
    out_dir = os.path.join(os.path.dirname(initial_checkpoint),
                           f"eval_{os.path.basename(initial_checkpoint)}_tools_off")
  old = os.environ.get("PYTHONPATH")
  os.environ["PYTHONPATH"] = os.pathsep.join(  # the subprocess imports tool_script
      [str(REPO / "tests" / "t5x")] + ([old] if old else []))
  try:
    run = run_t5x("t5x.eval", EVAL_GIN + (str(script_gin),), {
        "CHECKPOINT_PATH": quote(initial_checkpoint),
        "EVAL_TASKS": "['math_templates_v2', 'dates_given_v2', 'lm_wiki']",
        "EVAL_NUM_GENERATED": str(EXAMPLES),
        "TASK_FEATURE_LENGTHS": "{'inputs': 32, 'targets': 16}",
        "utils.DatasetConfig.batch_size": "4",
        "seqio.Evaluator.num_examples": "8",  # the LM task: its first 8 chunks
        "TOOLS": "['Calculator']",
        "BENCHMARK_PATHS": repr(benchmark_paths),
        **bindings,
    }, str(tmp / "eval.log"))
  finally:
    if old is None:
      os.environ.pop("PYTHONPATH")
    else:
      os.environ["PYTHONPATH"] = old
  assert run.returncode == 0, run.log[-3000:]
  return pathlib.Path(out_dir) / "inference_eval"


def _metrics(directory, task):
  lines = (directory / f"{task}-metrics.jsonl").read_text().splitlines()
  assert len(lines) == 1
  return json.loads(lines[0])


def _outputs(directory, task):
  (path,) = directory.glob(f"{task}-0*.jsonl")
  return [json.loads(line) for line in path.read_text().splitlines()]


def _same(a, b):
  return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


def _recomputed(rows):
  """The metric fn on what the run wrote per example (targets, predictions, aux)."""
  aux = {k[len("aux_"):]: [r[k] for r in rows] for k in rows[0] if k.startswith("aux_")}
  return metrics.tool_eval_metrics([r["target"] for r in rows],
                                   [r["prediction"] for r in rows], aux)


@pytest.fixture(scope="module")
def tools_on(tmp_path_factory, initial_checkpoint):
  return _eval(tmp_path_factory, initial_checkpoint, "tools_on")


@pytest.fixture(scope="module")
def tools_off(tmp_path_factory, initial_checkpoint):
  # No EVAL_OUTPUT_DIR: the run file's default directory for the tools-off run.
  return _eval(tmp_path_factory, initial_checkpoint, "tools_off", TOOL_TRIGGER_TOP_K="0",
               out_dir=None)


def test_t5x_eval_tools_on_writes_accuracy_and_the_calls(tools_on):
  for task in GENERATION_TASKS:
    logged = _metrics(tools_on, task)
    rows = _outputs(tools_on, task)
    assert len(rows) == EXAMPLES == logged[metrics.NUM_EXAMPLES]
    for row in rows:
      assert " [Calculator(3 * 4) -> 12]" in row["prediction"]
      assert row["aux_call_count"] == 1 and row["aux_call_status"] == [0]
      assert set(row["target"]) == {"answers", "match"}
    assert logged[metrics.CALL_RATE] == 100.0
    assert logged[metrics.call_rate_name("Calculator")] == 100.0
    assert logged[metrics.CALL_OK_RATE] == 100.0
    assert logged[metrics.rank_bin_name(0)] == EXAMPLES  # the script makes " [" the top token
    recomputed = _recomputed(rows)
    assert set(recomputed) == set(logged) - {"step"}
    assert all(_same(logged[k], v) for k, v in recomputed.items()), (logged, recomputed)


def test_t5x_eval_tools_off_by_one_binding(tools_off):
  for task in GENERATION_TASKS:
    logged = _metrics(tools_off, task)
    rows = _outputs(tools_off, task)
    assert len(rows) == EXAMPLES
    assert all(row["aux_call_count"] == 0 for row in rows)
    assert not any("-> 12]" in row["prediction"] for row in rows)
    assert logged[metrics.CALL_RATE] == 0.0 and logged[metrics.rank_bin_name(0)] == 0
    recomputed = _recomputed(rows)
    assert all(_same(logged[k], v) for k, v in recomputed.items()), (logged, recomputed)


@pytest.mark.parametrize("on", [True, False], ids=["tools_on", "tools_off"])
def test_t5x_eval_scores_the_benchmark_files(on, tools_on, tools_off):
  directory = tools_on if on else tools_off
  for task, examples in BENCHMARK_TASKS.items():
    logged, rows = _metrics(directory, task), _outputs(directory, task)
    assert logged[metrics.NUM_EXAMPLES] == len(rows) == len(examples)
    assert [r["target"]["answers"] for r in rows] == [list(e[3]) for e in examples]
    assert {r["target"]["match"] for r in rows} == {
        metrics.NUMBER if "svamp" in task else metrics.FACT_MATCH}
    assert logged[metrics.CALL_RATE] == (100.0 if on else 0.0)
    assert all((" [Calculator(3 * 4) -> 12]" in r["prediction"]) == on for r in rows)
    recomputed = _recomputed(rows)
    assert all(_same(logged[k], v) for k, v in recomputed.items()), (logged, recomputed)


def test_t5x_eval_perplexity_does_not_depend_on_the_decoding(tools_on, tools_off):
  on, off = _metrics(tools_on, LM_TASK), _metrics(tools_off, LM_TASK)
  assert on["num_tokens"] == off["num_tokens"] == 8 * 16  # 8 full chunks of 16 tokens
  assert math.isfinite(on[metrics.PERPLEXITY]) and on[metrics.PERPLEXITY] > 1
  assert on[metrics.PERPLEXITY] == off[metrics.PERPLEXITY]


def test_report_of_the_two_runs(tools_on, tools_off, tmp_path):
  from toolformer_jax.evaluation import report  # pylint: disable=g-import-not-at-top
  summary = report.write_report([("tools_off", str(tools_off.parent)),
                                 ("tools_on", str(tools_on.parent))], str(tmp_path))
  md = (tmp_path / "report.md").read_text()
  assert "| `math_templates_v2` | Calculator | 0.0 (0.0) | 100.0 (100.0) | Calculator 97.9 |" in md
  benchmark_examples = sum(len(e) for e in BENCHMARK_TASKS.values())
  assert summary["trigger_ranks"]["tools_on"][metrics.rank_bin_name(0)] == (
      2 * EXAMPLES + benchmark_examples)
  assert set(summary["families"]) == {"math", "dates"}
  assert (tmp_path / "perplexity.png").stat().st_size > 0
  # The benchmark files' rows, beside the paper's figures of the same benchmark.
  assert "| `math_svamp` | benchmark | 3 |" in md and "| SVAMP: 5.2 → 29.4 |" in md
  assert "| `dates_templama` | benchmark | 1 |" in md and "| TempLAMA: 13.7 → 16.3 |" in md
  assert "Paper (Table 4), this family: ASDiv 7.5 → 40.4" in md
