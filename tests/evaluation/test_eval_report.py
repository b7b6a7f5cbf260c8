"""The eval report from saved t5x.eval outputs (seqio's <task>-metrics.jsonl files)."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import report

TARGET = {"answers": ["257"], "match": "number"}
FACT = {"answers": ["Paris"], "match": "words:5"}


def _aux(count, rank):
  n = len(count)
  return {"call_count": np.asarray(count), "call_status": np.zeros((n, 1), np.int32),
          "call_trigger_rank": np.asarray(rank)[:, None],
          "call_trigger_prob": np.full((n, 1), 0.2, np.float32)}


def _write(directory, task, *records):
  directory.mkdir(parents=True, exist_ok=True)
  with open(directory / f"{task}-metrics.jsonl", "w") as f:
    for record in records:
      f.write((record if isinstance(record, str) else json.dumps(record)) + "\n")


@pytest.fixture
def runs(tmp_path):
  """Two t5x.eval output directories as the seqio JSONLogger leaves them."""
  off = tmp_path / "off" / "inference_eval"
  on = tmp_path / "on"  # metrics directly in the directory given
  math_off = metrics.tool_eval_metrics([TARGET] * 4, [" 257", " 12", " 3", " 4"],
                                       _aux([0, 0, 0, 0], [-1] * 4))
  math_on = metrics.tool_eval_metrics(
      [TARGET] * 4, [" [Calculator(87 + 170) -> 257] 257"] * 3 + [" 5"],
      _aux([1, 1, 1, 0], [0, 2, 12, -1]))
  facts_on = metrics.tool_eval_metrics([FACT] * 2, [' [QA("capital?") -> Paris] Paris', " Rome"],
                                       _aux([1, 0], [1, -1]))
  _write(off, "toolformer_eval_math_asdiv_smollm2", {"step": 0, **math_off})
  _write(off, "toolformer_eval_lm_wiki_smollm2", {"step": 0, metrics.PERPLEXITY: 21.25})
  _write(on, "toolformer_eval_math_asdiv_smollm2",
         {"step": 0, **math_off}, "not json", {"step": 1000, **math_on})
  _write(on, "toolformer_eval_facts_geography_v1_smollm2", {"step": 1000, **facts_on})
  _write(on, "toolformer_eval_lm_wiki_smollm2", {"step": 1000, metrics.PERPLEXITY: 19.5})
  return [("tools_off", str(tmp_path / "off")), ("tools_on", str(on))]


def test_report_tables_json_and_charts(runs, tmp_path):
  out = tmp_path / "report"
  summary = report.write_report(runs, str(out))
  md = (out / "report.md").read_text()
  data = json.loads((out / "report.json").read_text())
  # Math: ASDiv is the paper's own benchmark, its figures beside it; the latest step wins.
  # With N, the 95% Wilson interval (1 of 4: 4.6-69.9; 3 of 4: 30.1-95.4) and the split.
  assert ("| `math_asdiv` | benchmark | 4 | 25.0 [4.6, 69.9] | 75.0 [30.1, 95.4] | "
          "ASDiv: 7.5 → 40.4 |") in md
  assert "Metric: correct if the first number of the output, with its sign" in md
  # Call text: 0 for the run without calls, 75 with; empty outputs: none.
  assert "| `math_asdiv` | 0.0 / 0.0 | 75.0 / 0.0 |" in md
  pooled = data["families"]["math"]["pooled"]["heldout"]["tools_on"]
  assert (pooled["n"], pooled["accuracy"]) == (4, 75.0)
  assert data["families"]["math"]["accuracy"] == {"tools_off": {"math_asdiv": 25.0},
                                                  "tools_on": {"math_asdiv": 75.0}}
  # Not in the first run; 1 of 2 right: 9.5-90.5.
  assert "| `facts_geography_v1` | in-distribution | 2 | – | 50.0 [9.5, 90.5] |  |" in md
  assert "LAMA T-REx 31.9 → 53.5" in md
  # Calls: rate and the family's main tool, with the paper's rate.
  assert "| `math_asdiv` | Calculator | 0.0 (0.0) | 75.0 (75.0) | Calculator 97.9 |" in md
  assert "| `facts_geography_v1` | QA | – | 50.0 (50.0) | QA 98.1 |" in md
  assert data["calls"]["tools_on"]["math_asdiv"]["tools"]["Calculator"] == 75.0
  # First calls per tool, ok, right result (257 holds the answer), accuracy with / without.
  assert "| `math_asdiv` | 75.0 | 0.0 | 75.0 | 75.0 | 100.0 | 0.0 |" in md
  assert data["calls"]["tools_on"]["math_asdiv"]["call_result_right_rate"] == 75.0
  # " [" ranks of the first calls over all tasks: 0, 2, 12 (math) and 1 (facts).
  ranks = data["trigger_ranks"]["tools_on"]
  assert (ranks["trigger_rank_0"], ranks["trigger_rank_1"], ranks["trigger_rank_2"],
          ranks[metrics.RANK_OVERFLOW]) == (1, 1, 1, 1)
  assert sum(data["trigger_ranks"]["tools_off"].values()) == 0
  assert "| `lm_wiki` | 21.25 | 19.50 |" in md and "WikiText 9.9 → 10.3" in md
  assert data["runs"][1]["skipped_lines"] == 1
  assert summary["perplexity"] == data["perplexity"]
  # Charts: real PNGs, linked from the markdown.
  import matplotlib.image  # pylint: disable=g-import-not-at-top
  for name in ("accuracy_math.png", "accuracy_facts.png", "call_rates.png", "trigger_rank.png",
               "perplexity.png"):
    assert f"]({name})" in md
    pixels = matplotlib.image.imread(str(out / name))
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert np.asarray(pixels).std() > 0  # not a blank canvas
  assert sorted(data["images"].values()) == sorted(
      ["accuracy_math.png", "accuracy_facts.png", "call_rates.png", "trigger_rank.png",
       "perplexity.png"])


def test_nan_metrics_are_shown_as_missing(tmp_path):
  d = tmp_path / "run"
  m = metrics.tool_eval_metrics([TARGET], [" 3"], None)
  assert math.isnan(m[metrics.ACCURACY_WITH_CALL])
  _write(d, "toolformer_eval_math_templates_v2", json.dumps({"step": 0, **m}))  # NaN in JSON
  summary = report.write_report([("a", str(d))], str(tmp_path / "out"))
  assert summary["calls"]["a"]["math_templates_v2"]["accuracy_with_call"] is None
  assert json.loads((tmp_path / "out" / "report.json").read_text())  # valid JSON


def test_cli_summary_and_one_line_errors(runs, tmp_path):
  out = tmp_path / "cli"
  args = [sys.executable, "-m", "toolformer_jax.report", "--out", str(out)]
  for name, directory in runs:
    args += ["--run", f"{name}={directory}"]
  ok = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
  assert ok.returncode == 0, ok.stderr
  assert ok.stdout.strip() == f"report: 2 runs, 3 tasks, 2 task families, 1 malformed metric " \
                              f"lines skipped -> {out / 'report.md'}"
  for bad, message in ((["--run", f"x={tmp_path / 'nope'}"], "is not a directory"),
                       (["--run", str(tmp_path)], "NAME=EVAL_DIR"),
                       (["--run", f"x={tmp_path / 'cli'}"], "no *-metrics.jsonl")):
    target = tmp_path / "never"
    proc = subprocess.run([sys.executable, "-m", "toolformer_jax.report", "--out", str(target)]
                          + bad, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not target.exists()


def test_tool_selection_matrix_from_known_outputs(tmp_path):
  """Which tool each output's first call went to, per family: the matrix and the
  wrong-tool rate (a call to a tool that does not fit the family; any call on notool)."""
  on = tmp_path / "on"
  math_on = metrics.tool_eval_metrics(
      [TARGET] * 4, [" [Calculator(87 + 170) -> 257] 257", " [Calculator(1 + 2) -> 3] 3",
                     " [Calendar() -> Today is Monday, May 4, 2026] 257", " 257"],
      _aux([1, 1, 1, 0], [0, 0, 1, -1]))
  notool = {"answers": ["green"], "match": "words:20"}
  notool_on = metrics.tool_eval_metrics(
      [notool] * 2, [' [QA("tin colour?") -> red] red', " green"], _aux([1, 0], [3, -1]))
  facts_on = metrics.tool_eval_metrics(
      [FACT] * 2, [' [QA("capital?") -> Paris] Paris', ' [WikiSearch("France") -> Paris] x'],
      _aux([1, 1], [1, 2]))
  _write(on, "toolformer_eval_math_heldout_v1_smollm2", {"step": 7, **math_on})
  _write(on, "toolformer_eval_notool_context_v1_smollm2", {"step": 7, **notool_on})
  _write(on, "toolformer_eval_facts_heldout_v1_smollm2", {"step": 7, **facts_on})
  summary = report.write_report([("tools_on", str(on))], str(tmp_path / "report"))
  matrix = summary["selection"]["tools_on"]
  assert matrix["math"]["n"] == 4
  assert matrix["math"]["tools"]["Calculator"] == 50.0
  assert matrix["math"]["tools"]["Calendar"] == 25.0
  assert matrix["math"]["none"] == 25.0 and matrix["math"]["wrong_tool"] == 25.0
  assert matrix["notool"]["tools"]["QA"] == 50.0
  assert matrix["notool"]["none"] == 50.0 and matrix["notool"]["wrong_tool"] == 50.0
  assert matrix["facts"]["tools"]["QA"] == matrix["facts"]["tools"]["WikiSearch"] == 50.0
  assert matrix["facts"]["none"] == 0.0 and matrix["facts"]["wrong_tool"] == 0.0
  md = (tmp_path / "report" / "report.md").read_text()
  assert "## Tool selection" in md
  assert "| math | 4 | 50.0 | 25.0 | 0.0 | 0.0 | 25.0 | 25.0 |" in md, md
  assert "| notool | 2 | 0.0 | 0.0 | 50.0 | 0.0 | 50.0 | 50.0 |" in md, md
