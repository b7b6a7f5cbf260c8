"""The annotation report on shards written here with the pipeline's own writer.

Three shards of a 3-shard run, two present (shard 2 is missing, as in a run still going):
Calculator and Calendar candidates with chosen losses, a document with two inserted calls,
and malformed lines appended to the files afterwards.
"""

import gzip
import json
import os
import re

import pytest
from PIL import Image

from toolformer_jax import cli
from toolformer_jax import report as report_cli
from toolformer_jax.annotate import pipeline
from toolformer_jax.annotate import schema
from toolformer_jax.annotate import report
from toolformer_jax.tools import call_format

DOCS = {
    "d0": "Tom had 87 apples and got 170 more, so he had 257 apples.",
    "d1": "The treaty was signed in Vienna on that Friday, two weeks before the vote.",
    "d2": "A box holds 12 eggs, so 3 boxes hold 36 eggs and 5 boxes hold 60 eggs.",
    "d3": "The festival started last Monday and lasts until the end of the month.",
}
# doc, tool, call, result, text before which the call goes, (L empty, L call, L call+result),
# p(" [") at the position. Calculator's tau_f is 0.5 and Calendar's 1.0 in the manifests.
CANDIDATES = {
    0: [("d0", "Calculator", "Calculator(87 + 170)", "257", " 257", (3.0, 2.9, 1.5), 0.04),
        ("d0", "Calculator", "Calculator(87 - 170)", "-83", " 257", (3.0, 3.1, 3.2), 0.04),
        ("d1", "Calendar", "Calendar()", "Today is Friday, March 3, 2023.", " Friday",
         (4.0, 4.5, 2.8), 0.02),
        ("d1", "Calendar", "Calendar()", "Today is Friday, March 3, 2023.", " two",
         (2.0, 2.2, 1.7), 0.001)],
    1: [("d2", "Calculator", "Calculator(3 * 12)", "36", " 36", (2.5, 2.4, 1.7), 0.01),
        ("d2", "Calculator", "Calculator(5 * 12)", "60", " 60", (2.6, 2.7, 1.7), 0.03),
        ("d2", "Calculator", "Calculator(12 + 3)", "15", " 3", (1.0, 1.1, 0.9), 0.002),
        ("d2", "Calculator", "Calculator(5 + 3)", "8", " 5", (1.5, 1.45, 1.0), 0.005),
        ("d3", "Calendar", "Calendar()", "Today is Monday, May 8, 2023.", " last",
         (3.0, 3.3, 2.1), 0.003)],
}
GAINS = {"Calculator": [1.4, -0.2, 0.7, 0.9, 0.1, 0.45], "Calendar": [1.2, 0.3, 0.9]}
TAU_F = {"Calculator": 0.5, "Calendar": 1.0}


def _candidate(doc, tool, call, result, before, losses, p):
  empty, call_loss, call_result = losses
  parsed = call_format.parse_call(call)
  minus = min(empty, call_loss)
  return {"doc_id": doc, "tool": tool, "call": call, "result": result,
          "char_position": DOCS[doc].index(before),
          "token_position": len(DOCS[doc][:DOCS[doc].index(before)].split()),
          "prefix_call": call_format.render_call(parsed),
          "prefix_call_result": call_format.render_call(parsed, result),
          "loss_empty": empty, "loss_call": call_loss, "loss_call_result": call_result,
          "loss_minus": minus, "loss_plus": call_result,
          "kept": minus - call_result >= TAU_F[tool], "p_call_start": p}


def _annotated(candidates):
  """The annotated records the pipeline's merge makes (up to 2 calls per document)."""
  out = []
  for doc, text in DOCS.items():
    kept = [c for c in candidates if c["doc_id"] == doc and c["kept"]]
    if not kept:
      continue
    annotated, inserted = pipeline.merge(text, kept, 2)
    best = max(inserted, key=lambda c: c["loss_minus"] - c["loss_plus"])
    out.append({"doc_id": doc, "tool": best["tool"], "text": annotated, "call": best["call"],
                "result": best["result"], "char_position": best["char_position"],
                "loss_minus": best["loss_minus"], "loss_plus": best["loss_plus"],
                "calls": [{k: c[k] for k in ("tool", "call", "result", "char_position")}
                          for c in inserted]})
  return out


def _manifest(shard, candidates, annotated, seconds):
  tools = {}
  for tool in TAU_F:
    mine = [c for c in candidates if c["tool"] == tool]
    tools[tool] = {"heuristic_seen": 2, "heuristic_kept": 1 + len(mine) // 3,
                   "positions": len(mine) + 1, "sampled": 3 * len(mine), "unparsable": 2,
                   "other_tool": 1, "duplicates": len(mine) - 1,
                   "own_document_excluded": 1, "tool_error": 1,
                   "scored": len(mine), "kept": sum(c["kept"] for c in mine)}
  if shard == 0:  # the pipeline's first refused calls, and one malformed entry (ignored)
    tools["Calendar"][schema.REFUSED_CALLS_KEY] = [
        {"call": "Calendar(3 days)", "status": "error", "message": "say which way"},
        {"call": "Calendar(x)", "status": 7}]
  return {"version": 1, "shard": shard, "num_shards": 3, "checkpoint": "smollm2",
          "counts": {"documents": 2, "annotated_documents": len(annotated), "tools": tools,
                     "corpus_skipped": {"empty text": shard}},
          "settings": {t: {"tau_s": 0.0, "top_k_positions": 5, "calls_per_position": 5,
                           "tau_f": TAU_F[t]} for t in TAU_F},
          "filter": {"tau_f": 1.0, "window": 5, "cost_lambda": 0.0},
          "stage_seconds": dict(zip(report.STAGES, seconds))}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("annotated"))
  for shard, seconds in ((0, (1.5, 4.0, 0.5, 2.0)), (1, (2.5, 6.0, 1.5, 3.0))):
    candidates = [_candidate(*c) for c in CANDIDATES[shard]]
    annotated = _annotated(candidates)
    paths = pipeline.write_shard(root, shard, 3, annotated, candidates,
                                 _manifest(shard, candidates, annotated, seconds))
    if shard == 0:
      with open(paths["annotated"], "a", encoding="utf-8") as f:
        f.write("{not json\n\n")  # a blank line is not malformed
        f.write(json.dumps({"doc_id": "x", "tool": "Calculator"}) + "\n")
    else:
      with gzip.open(paths["candidates"], "at", encoding="utf-8") as f:
        bad = dict(candidates[0], loss_plus=float("nan"))
        f.write(json.dumps(bad) + "\n")
        f.write(json.dumps(dict(candidates[0], kept="yes")) + "\n")
        f.write("[1, 2]\n")
  with open(os.path.join(root, "notes.txt"), "w") as f:
    f.write("not a shard\n")
  return root


@pytest.fixture(scope="module")
def written(run_dir, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("report"))
  path = report.write_report(run_dir, out)
  with open(os.path.join(out, "report.json")) as f:
    numbers = json.load(f)
  with open(path) as f:
    markdown = f.read()
  return out, path, numbers, markdown


def _table_rows(markdown, heading):
  """{first cell: cells} of the first table after `heading`."""
  section = markdown.split(heading, 1)[1]
  rows = {}
  for line in section.splitlines():
    if line.startswith("| ") and not line.startswith("|---"):
      cells = [c.strip() for c in line.strip("|").split("|")]
      rows[cells[0]] = cells[1:]
    elif rows and not line.startswith("|"):
      break
  return rows


def test_json_numbers(written):
  _, path, numbers, _ = written
  assert os.path.basename(path) == "report.md"
  assert numbers["shards"]["num_shards"] == [3]
  assert numbers["shards"]["complete"] == 2
  assert numbers["shards"]["incomplete_or_missing"] == ["00002-of-00003"]
  assert numbers["documents"] == 4 and numbers["annotated_documents"] == 3
  assert numbers["corpus_skipped"] == {"empty text": 1}
  assert numbers["malformed"] == {"annotated: missing fields": 1, "annotated: not JSON": 1,
                                  "candidates: non-boolean kept": 1,
                                  "candidates: non-numeric field": 1,
                                  "candidates: not an object": 1}
  assert numbers["malformed_total"] == 5
  assert numbers["stage_seconds"] == pytest.approx(
      {"positions": 4.0, "calls": 10.0, "execute": 2.0, "filter": 5.0})
  assert list(numbers["tools"]) == ["Calculator", "Calendar"]
  calc, cal = numbers["tools"]["Calculator"], numbers["tools"]["Calendar"]
  assert (calc["scored"], calc["kept"], calc["keep_rate"]) == (6, 3, 0.5)
  assert (cal["scored"], cal["kept"]) == (3, 1)
  assert cal["keep_rate"] == pytest.approx(1 / 3)
  assert calc["tau_f"] == [0.5] and cal["tau_f"] == [1.0]
  assert calc["tau_f_from"] == "manifest"
  assert calc["clearing"] == {"0.5": 3, "1": 1, "2": 0}
  assert cal["clearing"] == {"0.5": 2, "1": 1, "2": 0}
  assert calc["paper_kept_tau_1"] == 994 and cal["paper_kept_tau_1"] == 20587
  assert calc["annotated_records"] == 2 and cal["annotated_records"] == 1
  assert calc["manifest_kept"] == 3
  assert calc["gain"]["n"] == 6
  assert calc["gain"]["max"] == pytest.approx(max(GAINS["Calculator"]))
  assert calc["gain"]["mean"] == pytest.approx(sum(GAINS["Calculator"]) / 6)
  assert calc["gain"]["median"] == pytest.approx(0.575)
  p = calc["p_call_start"]
  assert p["kept"]["n"] == 3 and p["rejected"]["n"] == 3 and p["missing"] == 0
  assert p["kept"]["median"] == pytest.approx(0.03)
  assert p["rejected"]["median"] == pytest.approx(0.005)
  assert calc["funnel"] == {"heuristic_seen": 4, "heuristic_kept": 3, "no_allowed_position": 0,
                            "over_max_documents": 0, "positions": 8,
                            "sampled": 18, "unparsable": 4, "other_tool": 2,
                            "duplicates": 4, "own_document_excluded": 2, "tool_errors": 2,
                            "scored": 6, "kept": 3}
  assert calc["tool_errors"] == {"error": 2}
  assert set(numbers["plots"]) == {"counts", "loss_gain", "p_call_start", "stages"}


def test_markdown_tables(written):
  _, _, _, markdown = written
  rows = _table_rows(markdown, "## Candidates and kept calls per tool")
  assert rows["tool"][:3] == ["scored", "kept", "keep rate"]
  assert rows["Calculator"] == ["6", "3", "50.0%", "0.5", "2", "3", "1", "0", "994"]
  assert rows["Calendar"] == ["3", "1", "33.3%", "1", "1", "2", "1", "0", "20,587"]
  gains = _table_rows(markdown, "## L- - L+ per tool")
  assert gains["Calculator"][:2] == ["6", f"{sum(GAINS['Calculator']) / 6:.3f}"]
  assert gains["Calendar"][-1] == "1.200"
  p = _table_rows(markdown, '## p(" [") at kept versus rejected positions')
  assert p["Calculator"][:2] == ["3", "3.00e-02"] and p["Calculator"][3:5] == ["3", "5.00e-03"]
  stages = _table_rows(markdown, "## Stages")
  assert stages["stage"] == ["Calculator", "Calendar"]
  assert stages["sampled"] == ["18", "9"] and stages["tool_errors"] == ["2", "2"]
  seconds = _table_rows(markdown.split("## Stages", 1)[1], "| stage | seconds")
  assert seconds["calls"] == ["10.0", "48%"]
  assert seconds["all"] == ["21.0", f"{9 / 21:.1f} scored candidates/s"]
  assert "00002-of-00003" in markdown and "skipped: 5" in markdown
  for name in ("counts.png", "loss_gain.png", "p_call_start.png", "stages.png"):
    assert f"]({name})" in markdown


def test_pngs_are_valid(written):
  out = written[0]
  for name in written[2]["plots"].values():
    with open(os.path.join(out, name), "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(os.path.join(out, name)) as image:
      image.verify()
    with Image.open(os.path.join(out, name)) as image:
      assert image.format == "PNG" and min(image.size) > 100


def test_passages_highlight_the_call(written):
  numbers, markdown = written[2], written[3]
  samples = numbers["tools"]["Calculator"]["samples"]
  assert [s["doc_id"] for s in samples] == ["d0", "d2"]  # best gain first
  for s in samples:
    start, end = s["span"]
    assert s["text"][start:end] == f" [{s['call']} -> {s['result']}]"
  # d2 carries two calls; its best (5 * 12) comes after the inserted 3 * 12 call.
  d2 = samples[1]
  assert d2["call"] == "Calculator(5 * 12)"
  assert d2["text"].count(" [Calculator(") == 2 and d2["span"][0] > d2["char_position"]
  section = markdown.split("### Calculator", 1)[1].split("###", 1)[0]
  bold = re.findall(r"\*\*(.+?)\*\*", section)
  assert bold == [r"\[Calculator\(87 \+ 170\) \-\> 257\]",
                  r"\[Calculator\(5 \* 12\) \-\> 60\]"]
  assert "L- - L+ = 1.400" in section


def test_locate_call_without_calls_list_and_missing_call():
  record = {"text": "It is 7 [Calculator(3 + 4) -> 7] 7 days.", "call": "Calculator(3 + 4)",
            "result": "7", "char_position": 0}
  assert report.locate_call(record) == (7, 32)  # found by search when the offset is off
  assert report.locate_call(dict(record, result="8")) is None
  sample = {"text": "plain text", "span": None}
  assert "not found" in report.passage_markdown(sample)


def test_cli_and_empty_dir(run_dir, tmp_path, capsys):
  report_cli.define_flags()
  assert cli.call(report_cli.main, ["--annotation", run_dir, "--out", str(tmp_path / "r"),
                                    "--samples", "1"]) == 0
  line = capsys.readouterr().out.strip().splitlines()[-1]
  assert "Calculator 3/6, Calendar 1/3" in line and "5 malformed" in line
  assert (tmp_path / "r" / "report.md").exists()
  with open(tmp_path / "r" / "report.json") as f:
    assert len(json.load(f)["tools"]["Calculator"]["samples"]) == 1
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no annotation shards"):
    report.write_report(str(tmp_path / "empty"))
  assert cli.call(report_cli.main, ["--annotation", str(tmp_path / "empty")]) == 1
  assert capsys.readouterr().err.strip().startswith("error: no annotation shards")
  assert cli.call(report_cli.main, ["--annotation", str(tmp_path / "absent"),
                                    "--out", str(tmp_path / "o")]) == 1
  assert capsys.readouterr().err.strip().startswith("error: no annotation directory")
  assert not (tmp_path / "absent").exists() and not (tmp_path / "o").exists()
  assert cli.call(report_cli.main, ["--annotation", run_dir, "--run", f"x={run_dir}"]) == 2
  assert "not both" in capsys.readouterr().err


def test_refused_calls_are_listed(written):
  _, _, numbers, markdown = written
  tools = numbers["tools"]
  assert tools["Calendar"]["refused_calls"] == [
      {"call": "Calendar(3 days)", "status": "error", "message": "say which way"}]
  assert tools["Calculator"]["refused_calls"] == []
  rows = _table_rows(markdown, "## Refused calls")
  assert rows.pop("tool") == ["call", "status", "message"]
  assert rows == {"Calendar": [r"Calendar\(3 days\)", "error", "say which way"]}

