"""The demo: its sizes table, stage plan and resume logic, report pieces, no leakage between
its annotation corpus and the eval items; end to end at --size tiny (slow)."""
import dataclasses
import glob
import json
import os
import re

import pytest

from toolformer_jax import demo
from toolformer_jax import demo_report


# --- sizes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(demo.SIZES))
def test_every_size_is_valid(name):
  demo.validate_size(name, demo.SIZES[name])


def test_sizes_grow_from_tiny_to_full():
  tiny, default, full = (demo.SIZES[n] for n in ("tiny", "default", "full"))
  for field in ("arithmetic_docs", "dated_docs", "train_steps", "eval_examples"):
    assert getattr(tiny, field) < getattr(default, field) < getattr(full, field), field
  assert default.tools == full.tools == demo.ALL_TOOLS


@pytest.mark.parametrize("change, message", [
    ({"train_steps": 0}, "must be > 0"),
    ({"batch_size": -1}, "ints >= 0"),
    ({"top_k_positions": 1.5}, "ints >= 0"),
    ({"wikipedia_docs": 0, "arithmetic_docs": 0, "dated_docs": 0, "arithmetic_qa_docs": 0,
      "dated_qa_docs": 0, "dated_offset_qa_docs": 0}, "no documents"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0"),
    ({"tools": ("Calculator", "Search")}, "subset"),
    ({"tools": ()}, "subset"),
    ({"eval_tasks": ()}, "no eval tasks"),
    ({"tau_f": "low"}, "tau_f"),
])
def test_bad_sizes_are_refused(change, message):
  with pytest.raises(ValueError, match=message):
    demo.validate_size("bad", dataclasses.replace(demo.SIZES["tiny"], **change))


def test_unknown_size_rounds_and_stages_are_refused(tmp_path):
  with pytest.raises(ValueError, match="unknown size"):
    demo.Plan(str(tmp_path), "huge", 1)
  with pytest.raises(ValueError, match="rounds"):
    demo.Plan(str(tmp_path), "tiny", 0)
  with pytest.raises(ValueError, match="unknown stages"):
    demo.select([], ["train", "deploy"])
  with pytest.raises(SystemExit):
    demo.main(["--out_dir", str(tmp_path), "--stages", "annotate,nope"])


def test_an_out_dir_holds_one_size(tmp_path, monkeypatch, capsys):
  """A run of another size (or of an edited row) in an out dir is refused before any step
  runs: its complete steps would otherwise be skipped as done."""
  demo.Plan(str(tmp_path), "tiny", 1).claim_out_dir()
  demo.Plan(str(tmp_path), "tiny", 2).claim_out_dir()  # more rounds: the same steps
  with pytest.raises(ValueError, match="holds a demo of size 'tiny'"):
    demo.Plan(str(tmp_path), "default", 1).claim_out_dir()
  monkeypatch.setitem(demo.SIZES, "tiny", dataclasses.replace(demo.SIZES["tiny"],
                                                              train_steps=3))
  with pytest.raises(ValueError, match="train_steps=3"):
    demo.Plan(str(tmp_path), "tiny", 1).claim_out_dir()
  ran = []
  monkeypatch.setattr(demo, "run_plan", lambda *a: ran.append(a) or {})
  with pytest.raises(SystemExit):
    demo.main(["--out_dir", str(tmp_path), "--size", "full"])
  assert not ran and "holds a demo of size 'tiny'" in capsys.readouterr().err
  monkeypatch.chdir(tmp_path)  # the default out dir names the size
  assert demo.main(["--size", "full", "--stages", "report"]) == 0
  assert ran[-1][0].out_dir == str(tmp_path / "out" / "demo_full")
  assert demo.main(["--stages", "report"]) == 0
  assert ran[-1][0].out_dir == str(tmp_path / "out" / "demo")


# --- the plan and resuming -------------------------------------------------------------------
def test_plan_orders_rounds_and_names_every_run(tmp_path):
  plan = demo.Plan(str(tmp_path), "tiny", 2)
  names = [s.name for s in plan.steps()]
  assert names == [
      "corpus", "convert",
      "annotate_r1", "train_r1", "train_control_r1", "eval_base_tools_off",
      "eval_base_tools_on", "eval_finetuned_tools_off_r1", "eval_finetuned_tools_on_r1",
      "eval_control_r1",
      "annotate_r2", "train_r2", "train_control_r2", "eval_finetuned_tools_off_r2",
      "eval_finetuned_tools_on_r2", "eval_control_r2", "report"]
  assert {s.name for s in demo.select(plan.steps(), ["eval"])} == {
      n for n in names if n.startswith("eval_")}


def _fake_checkpoint(model_dir, step):
  os.makedirs(os.path.join(model_dir, f"checkpoint_{step}"))


def _fake_annotation(plan, r, records=1):
  os.makedirs(plan.annotated_dir(r), exist_ok=True)
  with open(os.path.join(plan.annotated_dir(r), "annotated-00000-of-00001.jsonl"), "w") as f:
    f.write('{"tool": "Calendar", "text": "x"}\n' * records)


def test_commands_name_the_right_checkpoints_and_data(tmp_path):
  plan = demo.Plan(str(tmp_path), "tiny", 2)
  _fake_annotation(plan, 1)
  _fake_annotation(plan, 2)
  _fake_checkpoint(plan.base_dir, 0)
  _fake_checkpoint(plan.model_dir(1), 2)
  _fake_checkpoint(plan.model_dir(1), 0)
  _fake_checkpoint(plan.model_dir(1, control=True), 2)
  steps = {s.name: s for s in plan.steps()}
  first, second = steps["annotate_r1"].fn(), steps["annotate_r2"].fn()
  assert '--gin.CHECKPOINT="smollm2"' in first
  assert f'--gin.CHECKPOINT="{plan.model_dir(1)}/checkpoint_2"' in second
  assert '--gin.TOOLS=["Calculator", "Calendar"]' in first
  assert ('--gin.driver.run.tool_overrides={"Calculator": {"tau_s": 0.0, "top_k_positions": '
          '1, "calls_per_position": 4, "position_rule": "number", "tau_f": -1000.0}, '
          '"Calendar": {"tau_s": 0.0, "top_k_positions": 1, "calls_per_position": 4, '
          '"position_rule": "date", "tau_f": -1000.0}}') in first
  assert "--gin.sampling.SamplingConfig.force_tool_name=True" in first
  control = steps["train_control_r2"].fn()
  assert "--gin.WITHOUT_CALLS=True" in control
  assert f'--gin.ANNOTATED_DIR="{plan.annotated_dir(2)}"' in control
  assert f'--gin.INITIAL_CHECKPOINT_PATH="{plan.base_dir}/checkpoint_0"' in control
  assert "--gin.WITHOUT_CALLS=False" in steps["train_r1"].fn()
  base_on = steps["eval_base_tools_on"].fn()
  assert "--gin.EVAL_FEW_SHOT=True" in base_on
  assert "--gin.utils.DatasetConfig.batch_size=2" in base_on  # tiny: 2 examples a task
  assert not any(a.startswith("--gin.TOOL_TRIGGER_TOP_K") for a in base_on)
  assert "--gin.TOOL_TRIGGER_TOP_K=0" in steps["eval_base_tools_off"].fn()
  control_eval = steps["eval_control_r1"].fn()
  assert "--gin.TOOL_TRIGGER_TOP_K=0" in control_eval
  assert f'--gin.CHECKPOINT_PATH="{plan.model_dir(1, True)}/checkpoint_2"' in control_eval
  assert "--gin.train.stats_period=1" in control  # tiny: 2 steps, a loss at each
  report = steps["report"].fn()
  assert report.count("--run") == 8


def test_a_missing_checkpoint_or_empty_annotation_is_a_clear_error(tmp_path):
  plan = demo.Plan(str(tmp_path), "tiny", 1)
  train = {s.name: s for s in plan.steps()}["train_r1"]
  _fake_annotation(plan, 1, records=0)
  with pytest.raises(RuntimeError, match="kept no calls"):
    train.fn()
  _fake_annotation(plan, 1, records=2)
  assert plan.kept_records(1) == 2
  with pytest.raises(FileNotFoundError, match="no checkpoint_N"):
    train.fn()


def test_complete_steps_are_skipped_and_force_reruns_them(tmp_path, monkeypatch):
  plan = demo.Plan(str(tmp_path), "tiny", 1)
  ran = []

  def fake_run(step, log_dir):
    ran.append(step.name)
    os.makedirs(step.output, exist_ok=True)
    open(os.path.join(step.output, demo.DONE), "w").write('{"seconds": 0}')
    return 0.0

  monkeypatch.setattr(demo, "run_step", fake_run)
  demo.run_plan(plan, ["corpus", "convert"])
  assert ran == ["corpus", "convert"]
  demo.run_plan(plan, ["corpus", "convert"])  # complete: nothing runs
  assert ran == ["corpus", "convert"]
  os.remove(os.path.join(plan.base_dir, demo.DONE))  # an interrupted convert reruns
  demo.run_plan(plan, ["corpus", "convert"])
  assert ran == ["corpus", "convert", "convert"]
  stale = os.path.join(plan.base_dir, "stale")
  open(stale, "w").close()
  demo.run_plan(plan, ["convert"], force=True)  # force starts from an empty directory
  assert ran[-1] == "convert" and not os.path.exists(stale)
  demo.run_plan(plan, ["report"])
  demo.run_plan(plan, ["report"])  # done, but rewritten: --rounds may have added runs
  assert ran[-2:] == ["report", "report"]
  assert os.path.exists(os.path.join(plan.out_dir, "report.md"))


def test_run_step_logs_output_marks_done_and_reports_failures(tmp_path):
  ok = demo.Step("corpus", "ok", str(tmp_path / "ok"),
                 command=["python3", "-c", "print('hello from the step')"])
  demo.run_step(ok, str(tmp_path / "logs"))
  assert ok.done()
  assert "hello from the step" in (tmp_path / "logs" / "ok.log").read_text()
  bad = demo.Step("corpus", "bad", str(tmp_path / "bad"),
                  command=["python3", "-c", "import sys; print('boom'); sys.exit(3)"])
  with pytest.raises(RuntimeError, match=r"exited with 3(.|\n)*boom"):
    demo.run_step(bad, str(tmp_path / "logs"))
  assert not bad.done()


def test_a_running_step_echoes_its_latest_log_line(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(demo, "PROGRESS_SECONDS", 0.2)
  code = ("import sys, time\n"
          "for k in range(3):\n"
          "  sys.stderr.write(f'\\rshard 0 Calculator: {k}/3'); sys.stderr.flush(); time.sleep(0.5)\n"
          "print('\\nI1201 16:00:00.000000 140 train.py:12] Training: step 2', flush=True)\n"
          "time.sleep(0.6)\n")
  step = demo.Step("train", "slow", str(tmp_path / "slow"), command=["python3", "-c", code])
  demo.run_step(step, str(tmp_path / "logs"))
  out = "\n".join(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("    ["))  # the echoed lines, not the command
  assert "shard 0 Calculator: 1/3" in out  # the progress bar's state after its \r
  assert "] Training: step 2" in out and "train.py:12]" not in out  # absl prefix cut
  assert out.count("Training: step 2") == 1  # an unchanged line is not repeated


def test_last_log_line(tmp_path):
  log = tmp_path / "x.log"
  log.write_text("")
  assert demo.last_log_line(str(log)) == ""
  log.write_text("first\nbar 1/9\rbar 2/9\r\n\n")
  assert demo.last_log_line(str(log)) == "bar 2/9"
  log.write_text("x" * 500)
  assert demo.last_log_line(str(log), width=20) == "x" * 17 + "..."


# --- corpus and leakage ----------------------------------------------------------------------
def test_corpus_has_the_sizes_documents(tmp_path):
  size = demo.SIZES["tiny"]
  records = demo.build_corpus(size)
  kinds = [r["id"].split("-")[0] for r in records]
  for kind, field in demo.GENERATED_KINDS.items():
    assert kinds.count(kind) == getattr(size, field) > 0, kind
  assert len(records) == size.wikipedia_docs + sum(
      getattr(size, f) for f in demo.GENERATED_KINDS.values())
  assert all(r["date"] for r in records if r["id"].startswith("dated"))


def _questions():
  from toolformer_jax.evaluation import items as items_lib
  questions = []
  for generator in items_lib.generators().values():
    for item in generator.generate():
      match = re.search(r"Question: (.*)\nAnswer:", item.inputs, re.S)
      questions.append((generator.full_name, (match.group(1) if match else item.inputs)
                        .strip()))
  return questions


def test_no_eval_question_occurs_in_the_default_demo_corpus():
  records = demo.build_corpus(demo.SIZES["default"])
  assert any(r["id"].startswith("arithmetic") for r in records)
  corpus = "\n".join(r["text"] for r in records)
  questions = _questions()
  assert len(questions) > 500
  leaked = [(g, q) for g, q in questions if q in corpus]
  assert not leaked, leaked[:5]


# --- the no-calls control --------------------------------------------------------------------
def test_control_records_are_the_documents_without_their_calls(tmp_path):
  from toolformer_jax.annotate import pipeline
  from toolformer_tasks import annotated
  document = "Tom had 12 apples and got 30 more, so Tom had 42 apples. Today is Monday."
  kept = [{"char_position": 41, "loss_minus": 2.0, "loss_plus": 0.5,
           "prefix_call_result": " [Calculator(12 + 30) -> 42]"},
          {"char_position": 67, "loss_minus": 1.0, "loss_plus": 0.5,
           "prefix_call_result": " [Calendar() -> Today is Monday, January 30, 2023.]"}]
  text, inserted = pipeline.merge(document, kept, max_calls=2)
  assert text != document
  record = {"doc_id": "d", "tool": "Calculator", "text": text, "call": "Calculator(12 + 30)",
            "result": "42", "char_position": 41,
            "calls": [{"tool": "Calculator", "call": "Calculator(12 + 30)", "result": "42",
                       "char_position": 41},
                      {"tool": "Calendar", "call": "Calendar()",
                       "result": "Today is Monday, January 30, 2023.", "char_position": 67}]}
  assert len(inserted) == 2
  assert annotated.text_without_calls(record) == document
  one = dict(record, calls=None, text=pipeline.merge(document, kept[:1], 1)[0])
  assert annotated.text_without_calls(one) == document
  with pytest.raises(ValueError, match="not in its text"):
    annotated.text_without_calls(dict(record, text=document))

  shard = tmp_path / "annotated-00000-of-00001.jsonl"
  shard.write_text(json.dumps(record) + "\n" + json.dumps(dict(one, doc_id="e")) + "\n")
  files = annotated.find_shards(str(tmp_path))
  with_calls = [ex["text"].decode() for ex in
                annotated.tool_dataset(files, "Calculator").as_numpy_iterator()]
  without = [ex["text"].decode() for ex in
             annotated.tool_dataset(files, "Calculator", without_calls=True)
             .as_numpy_iterator()]
  assert with_calls == [record["text"], one["text"]]
  assert without == [document, document]


def test_control_mixture_has_its_own_name_and_needs_shards(tmp_path):
  import seqio
  from toolformer_tasks import annotated
  from toolformer_tasks import vocabularies
  vocabulary = next(iter(vocabularies.builtin_vocabularies().values()))
  record = {"doc_id": "d", "tool": "Calculator", "text": "a [Calculator(1 + 2) -> 3] 3",
            "call": "Calculator(1 + 2)", "result": "3", "char_position": 1}
  (tmp_path / "annotated-00000-of-00001.jsonl").write_text(json.dumps(record) + "\n")
  name = annotated.register_toolformer_tasks(vocabulary, str(tmp_path), without_calls=True)
  assert name.startswith("toolformer_all_nocalls")
  tasks = [t.name for t in seqio.get_mixture_or_task(name).tasks]
  assert tasks and all("_nocalls" in t for t in tasks)
  with pytest.raises(ValueError, match="needs annotated shards"):
    annotated.register_toolformer_tasks(vocabulary, None, without_calls=True)


# --- report pieces ---------------------------------------------------------------------------
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


# --- end to end ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_tiny_demo_runs_every_stage(tmp_path):
  assert demo.main(["--out_dir", str(tmp_path), "--size", "tiny"]) == 0
  plan = demo.Plan(str(tmp_path), "tiny", 1)
  assert all(step.done() for step in plan.steps())
  report = (tmp_path / "report.md").read_text()
  for heading in ("## Round 1", "### Annotation", "### Fine-tuning", "## Toolformer evaluation",
                  "| `math_templates_v1` |"):
    assert heading in report
  assert (tmp_path / "training_curve_r1.png").exists()
  assert demo_report.read_scalars(os.path.join(plan.model_dir(1), "train"))
  assert demo_report.read_scalars(os.path.join(plan.model_dir(1, True), "train"))
  for run, *_ in plan.eval_runs():
    assert os.listdir(os.path.join(plan.eval_dir(run), "inference_eval")), run
  texts = []
  for path in glob.glob(os.path.join(plan.annotated_dir(1), "annotated-*.jsonl")):
    texts += [json.loads(line)["text"] for line in open(path) if line.strip()]
  assert texts and any(" [Calculator(" in t or " [Calendar(" in t for t in texts)
  annotated_text = "\n".join(texts)
  assert not [q for _, q in _questions() if q in annotated_text]
  # A rerun skips every step but the report (its inputs change with --rounds).
  assert set(demo.run_plan(plan, demo.STAGES)) == {"report"}


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
