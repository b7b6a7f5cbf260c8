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


def test_effect_table_compares_with_base_and_the_targets():
  summary = {"families": {
      "math": {"mean": {"base_tools_off": 10.0, "finetuned_tools_on": 30.0, "control": 12.0}},
      "dates": {"mean": {"base_tools_off": 0.0, "finetuned_tools_on": 5.0, "control": 0.0}}},
      "perplexity": {"base_tools_off": {"lm_wiki": 20.0}, "finetuned_tools_off": {"lm_wiki": 21.5},
                     "control": {"lm_wiki": 20.5}}}
  rows = [[c.strip() for c in line.strip("|").split("|")]
          for line in demo_report.effect_lines(summary, 1)[2:]]
  assert rows[0][1:] == ["math accuracy (mean of its tasks)", "10.0", "30.0", "12.0", "20.0",
                         "+15 points", "yes"]
  assert rows[1][5:] == ["5.0", "+10 points", "no"]
  assert rows[2][5:] == ["+7.5%", "within 5%", "no"]
  # Two rounds name their runs with _rR; missing runs show as '-'.
  rows = demo_report.effect_lines(summary, 2)
  assert len(rows) == 2 + 2 * 3 and rows[2].count("| - |") >= 2


def test_annotation_rates_from_the_annotation_report(tmp_path):
  (tmp_path / "report.json").write_text(json.dumps({"documents": 10, "tools": {
      "Calculator": {"scored": 20, "kept": 5, "p_call_start": {
          "kept": {"median": 0.2}, "rejected": {"median": 0.05}}},
      "MT": {"scored": 0, "kept": 0}}}))
  rates = demo_report.annotation_rates(str(tmp_path))
  assert rates["Calculator"] == {"scored": 20, "kept": 5, "proposal_rate": 2.0,
                                 "keep_rate": 0.25, "p_kept": 0.2, "p_rejected": 0.05}
  assert rates["MT"]["keep_rate"] == 0.0 and rates["MT"]["p_kept"] is None
