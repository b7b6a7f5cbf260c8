"""The pieces of the demo's report.md: training curves, links, the effect table, rates."""
import json

import pytest

from toolformer_jax.demo import report as demo_report


def test_training_curve_reader_and_plot(tmp_path):
  import tensorflow as tf
  run_dir = tmp_path / "train"
  writer = tf.summary.create_file_writer(str(run_dir))
  with writer.as_default():
    for step, loss in ((1, 3.5), (2, 3.0), (4, 2.25)):
      tf.summary.scalar("loss", loss, step=step)
      tf.summary.scalar("learning_rate", 0.1, step=step)
  writer.close()
  assert demo_report.read_scalars(str(run_dir)) == {1: 3.5, 2: 3.0, 4: 2.25}
  assert demo_report.read_scalars(str(run_dir), "learning_rate") == pytest.approx(
      {1: 0.1, 2: 0.1, 4: 0.1})
  assert demo_report.read_scalars(str(tmp_path / "missing")) == {}
  png = demo_report.plot_curves({"with calls": {1: 3.5, 2: 3.0}, "control": {}},
                                str(tmp_path / "curve.png"))
  assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_relink_reroots_relative_links_only():
  md = "![a](acc.png) [b](http://x/y.png) ![c](/abs.png) [d](#top)"
  assert demo_report._relink(md, "eval_report") == (
      "![a](eval_report/acc.png) [b](http://x/y.png) ![c](/abs.png) [d](#top)")


def _pooled(correct, n):
  from toolformer_jax.evaluation import report as eval_report  # pylint: disable=g-import-not-at-top
  return eval_report.pooled({"t": {"accuracy": 100.0 * correct / n, "n": n}}, ["t"])


def test_effect_table_compares_tools_on_with_the_control_and_the_targets():
  summary = {"families": {
      "math": {"pooled": {"heldout": {
          "base_tools_off": _pooled(5, 100), "finetuned_tools_off": _pooled(8, 100),
          "finetuned_tools_on": _pooled(40, 100), "control": _pooled(10, 100)},
          "in_distribution": {"finetuned_tools_on": _pooled(20, 30), "control": _pooled(3, 30)}}},
      # +16 points over the control but the intervals overlap: dates need no separation.
      "dates": {"pooled": {"heldout": {
          "base_tools_off": _pooled(0, 100), "finetuned_tools_off": _pooled(2, 100),
          "finetuned_tools_on": _pooled(20, 100), "control": _pooled(4, 100),
          "finetuned_paper_calendar": _pooled(1, 100)}}}},
      "perplexity": {"base_tools_off": {"lm_wiki": 20.0}, "finetuned_tools_off": {"lm_wiki": 21.5},
                     "control": {"lm_wiki": 20.5}}}
  rows = [[c.strip() for c in line.strip("|").split("|")]
          for line in demo_report.effect_lines(summary, 1)[2:]]
  assert rows[0][1:] == ["math, held-out", "5.0 [2.2, 11.2] (n=100)", "8.0 [4.1, 15.0] (n=100)",
                         "40.0 [30.9, 49.8] (n=100)", "10.0 [5.5, 17.4] (n=100)", "+30.0",
                         "+15 points, intervals apart", "yes"]
  assert rows[1][1] == "math, in-distribution" and rows[1][6:] == ["+56.7", "(no target)", ""]
  assert rows[2][1] == "dates, held-out" and rows[2][6:] == ["+16.0", "+10 points", "yes"]
  assert rows[3][1].startswith("dates, held-out, the paper's Calendar")
  assert rows[3][4] == "1.0 [0.2, 5.4] (n=100)"
  assert rows[4][6:] == ["+4.9%", "within 5% of control", "yes"]
  # A gain over the target whose intervals overlap misses the math target.
  summary["families"]["math"]["pooled"]["heldout"]["finetuned_tools_on"] = _pooled(11, 40)
  summary["families"]["math"]["pooled"]["heldout"]["control"] = _pooled(4, 40)
  row = demo_report.effect_lines(summary, 1)[2]
  assert row.endswith("| +17.5 | +15 points, intervals apart | no |"), row
  # With two rounds, round 1's runs keep their names (a later --rounds 2 reuses them) and
  # round 2's carry _r2; missing runs show as '-'.
  rows = demo_report.effect_lines(summary, 2)
  assert len(rows) == 2 + 5 + 4  # round 2: no paper-Calendar run
  assert rows[2:7] == demo_report.effect_lines(summary, 1)[2:]
  assert rows[-1].startswith("| 2 | perplexity") and rows[-1].count("| - |") >= 2


def test_annotation_rates_from_the_annotation_report(tmp_path):
  (tmp_path / "report.json").write_text(json.dumps({"documents": 10, "tools": {
      "Calculator": {"scored": 20, "kept": 5, "p_call_start": {
          "kept": {"median": 0.2}, "rejected": {"median": 0.05}}},
      "MT": {"scored": 0, "kept": 0}}}))
  rates = demo_report.annotation_rates(str(tmp_path))
  assert rates["Calculator"] == {"scored": 20, "kept": 5, "proposal_rate": 2.0,
                                 "keep_rate": 0.25, "p_kept": 0.2, "p_rejected": 0.05}
  assert rates["MT"]["keep_rate"] == 0.0 and rates["MT"]["p_kept"] is None


def test_kept_calls_by_document_kind_and_wrong_tool_counts(tmp_path):
  rounds = []
  for r, records in enumerate([
      [("arithmetic-v1-000001", ["Calculator"]), ("geography-v1-000002", ["QA"]),
       ("Jane Austen", ["WikiSearch", "QA"])],
      [("arithmetic-v1-000001", ["Calendar"]), ("dated-v1-000004", ["Calendar"]),
       ("Jane Austen", ["Calendar"]), ("names_mt-v1-000000", ["MT"])]], start=1):
    directory = tmp_path / f"round_{r}"
    directory.mkdir()
    with open(directory / "annotated-00000-of-00001.jsonl", "w") as f:
      for doc_id, tools in records:
        f.write(json.dumps({"doc_id": doc_id, "tool": tools[0],
                            "calls": [{"tool": t} for t in tools]}) + "\n")
      f.write("not json\n")  # counted and skipped
    rounds.append(demo_report.kept_by_kind(str(directory)))
  assert rounds[0] == {"arithmetic": {"Calculator": 1}, "geography": {"QA": 1},
                       "wikipedia": {"WikiSearch": 1, "QA": 1}}
  assert [demo_report.wrong_tool_calls(k) for k in rounds] == [0, 2]  # Calendar on a sum, a lead
  lines = demo_report.kept_by_kind_lines(rounds)
  assert "| 2 | arithmetic | 0 | 1 | 0 | 0 | 0 |" in lines
  assert lines[-1].endswith("round 1 0, round 2 2.")
