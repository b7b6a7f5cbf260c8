"""The demo's sizes (gin/runs/demo/<size>.gin), its plan, and the commands of its steps."""
import dataclasses
import os

import pytest

from toolformer_jax import cli
from toolformer_jax.annotate import driver
from toolformer_jax.annotate import pipeline
from toolformer_jax.demo import plan as plan_lib
from toolformer_jax.demo import runner


# --- sizes -----------------------------------------------------------------------------------
def test_the_sizes_are_the_gin_files():
  assert plan_lib.size_names() == ["default", "full", "tiny"]


@pytest.mark.parametrize("name", ["default", "full", "tiny"])
def test_every_size_is_valid(name):
  plan_lib.validate_size(name, plan_lib.load_size(name))


def test_sizes_grow_from_tiny_to_full():
  sizes = plan_lib.sizes()
  tiny, default, full = (sizes[n] for n in ("tiny", "default", "full"))
  for field in ("arithmetic_docs", "dated_docs", "train_steps", "indist_examples"):
    assert getattr(tiny, field) < getattr(default, field) < getattr(full, field), field
  # The headline tasks: >= 100 items from the default size on.
  assert tiny.eval_examples < default.eval_examples <= full.eval_examples
  assert default.eval_examples >= 100
  assert default.tools == full.tools == plan_lib.ALL_TOOLS


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
    ({"task_examples": (("math_heldout_v1", 0),)}, "task_examples must be ints >= 1"),
])
def test_bad_sizes_are_refused(change, message):
  with pytest.raises(ValueError, match=message):
    plan_lib.validate_size("bad", dataclasses.replace(plan_lib.load_size("tiny"), **change))


def test_task_examples_override_the_counts_of_the_generators_they_name(tmp_path):
  plan = plan_lib.Plan(str(tmp_path), "default", rounds=1)
  plan.size = dataclasses.replace(plan.size, task_examples=())
  before = plan.eval_counts()
  assert before["math_heldout_v1"] == plan.size.eval_examples
  assert before["math_templates_v2"] == plan.size.indist_examples
  plan.size = dataclasses.replace(plan.size, task_examples={"math_heldout_v1": 7})
  assert plan.size.task_examples == (("math_heldout_v1", 7),)
  assert plan.eval_counts() == dict(before, math_heldout_v1=7)
  plan.size = dataclasses.replace(plan.size, task_examples={"facts_leads_v1": 7})
  with pytest.raises(ValueError, match=r"task_examples names \['facts_leads_v1'\]"):
    plan.eval_counts()


def test_a_size_file_binds_demo_size_and_macros_only(tmp_path):
  good = tmp_path / "good.gin"
  text = (plan_lib.GIN_DIR + "/" + plan_lib.size_file("tiny"))
  good.write_text(open(text, encoding="utf-8").read())
  assert plan_lib.parse_size(str(good)) == plan_lib.load_size("tiny")
  other = tmp_path / "other.gin"
  other.write_text(good.read_text() + "\ndriver.run.seed = 3\n")
  with pytest.raises(ValueError, match="binds DemoSize and macros only"):
    plan_lib.parse_size(str(other))
  unbound = tmp_path / "unbound.gin"
  unbound.write_text(good.read_text().replace("TAU_F = -1000.0", ""))
  with pytest.raises(ValueError, match="macro %TAU_F is not bound"):
    plan_lib.parse_size(str(unbound))
  missing = tmp_path / "missing.gin"
  missing.write_text(good.read_text().replace("  train_steps = 2\n", ""))
  with pytest.raises(ValueError, match="train_steps"):
    plan_lib.parse_size(str(missing))
  with pytest.raises(ValueError, match="unknown size 'huge'"):
    plan_lib.load_size("huge")


# What the annotation CLI gets per size from runs/annotate_smollm2.gin followed by the size
# file: (tau_s, k, m, tau_f, position_rule, max_documents) per tool. These are the settings
# the demo measured (README "The demo"); the annotation CLI alone must get them.
EXPECTED_SETTINGS = {
    "tiny": {"Calculator": (0.0, 1, 4, -1000.0, "number", None),
             "Calendar": (0.0, 1, 4, -1000.0, "date", None)},
    "default": {"Calculator": (0.0, 2, 3, 0.6, "number", None),
                "Calendar": (0.0, 2, 3, 0.5, "date", None),
                "WikiSearch": (0.0, 1, 2, 1.0, "answer_entity", None),
                "QA": (0.0, 2, 2, 0.5, "answer_entity", None),
                "MT": (0.0, 2, 2, 0.4, "answer_entity", None)},
    "full": {"Calculator": (0.0, 2, 4, 0.6, "number", None),
             "Calendar": (0.0, 2, 4, 0.5, "date", None),
             "WikiSearch": (0.0, 1, 2, 1.0, "answer_entity", None),
             "QA": (0.0, 2, 2, 0.5, "answer_entity", None),
             "MT": (0.0, 2, 2, 0.4, "answer_entity", None)},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_SETTINGS))
def test_the_annotation_cli_gets_each_sizes_settings_from_gin(name):
  import gin  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  try:
    cli.parse_gin([plan_lib.ANNOTATE_GIN, plan_lib.size_file(name)],
                  ['ANNOTATE_DIR = "unused"'], [plan_lib.GIN_DIR])
    bound = gin.get_bindings(driver.run)
    forced = gin.get_bindings("toolformer_jax.annotate.sampling.SamplingConfig")
  finally:
    gin.clear_config()
  settings = driver.tool_settings(bound["tools"], bound["tool_overrides"], bound["tau_f"])
  got = {tool: (s.tau_s, s.top_k_positions, s.calls_per_position, s.tau_f, s.position_rule,
                s.max_documents) for tool, s in settings.items()}
  assert got == EXPECTED_SETTINGS[name]
  assert forced["force_tool_name"] is True
  size = plan_lib.load_size(name)  # the demo reads the same macros
  assert tuple(bound["tools"]) == size.tools
  assert all(isinstance(s, pipeline.ToolSettings) for s in settings.values())


# --- the plan ------------------------------------------------------------------------------
def test_unknown_size_and_rounds_are_refused(tmp_path):
  with pytest.raises(ValueError, match="unknown size"):
    plan_lib.Plan(str(tmp_path), "huge", 1)
  with pytest.raises(ValueError, match="rounds"):
    plan_lib.Plan(str(tmp_path), "tiny", 0)


def test_an_out_dir_holds_one_size(tmp_path, monkeypatch):
  """A run of another size (or of an edited size file) in an out dir is refused before any
  step runs: its complete steps would otherwise be skipped as done."""
  plan_lib.Plan(str(tmp_path), "tiny", 1).claim_out_dir()
  plan_lib.Plan(str(tmp_path), "tiny", 2).claim_out_dir()  # more rounds: the same steps
  with pytest.raises(ValueError, match="holds a demo of size 'tiny'"):
    plan_lib.Plan(str(tmp_path), "default", 1).claim_out_dir()
  tiny = plan_lib.load_size("tiny")
  monkeypatch.setattr(plan_lib, "load_size",
                      lambda name: dataclasses.replace(tiny, train_steps=3))
  with pytest.raises(ValueError, match="train_steps=3"):
    plan_lib.Plan(str(tmp_path), "tiny", 1).claim_out_dir()


def test_plan_orders_rounds_and_names_every_run(tmp_path):
  plan = plan_lib.Plan(str(tmp_path), "tiny", 2)
  names = [s.name for s in plan.steps()]
  assert names == [
      "corpus", "convert",
      "annotate_r1", "train_r1", "train_control_r1", "eval_base_tools_off",
      "eval_base_tools_on", "eval_finetuned_tools_off", "eval_finetuned_tools_on",
      "eval_control", "eval_finetuned_paper_calendar",
      "annotate_r2", "train_r2", "train_control_r2", "eval_finetuned_tools_off_r2",
      "eval_finetuned_tools_on_r2", "eval_control_r2", "eval_finetuned_paper_calendar_r2",
      "report"]
  assert {s.name for s in runner.select(plan.steps(), ["eval"])} == {
      n for n in names if n.startswith("eval_")}


def _fake_checkpoint(model_dir, step):
  os.makedirs(os.path.join(model_dir, f"checkpoint_{step}"))


def fake_annotation(plan, r, records=1):
  os.makedirs(plan.annotated_dir(r), exist_ok=True)
  with open(os.path.join(plan.annotated_dir(r), "annotated-00000-of-00001.jsonl"), "w") as f:
    f.write('{"tool": "Calendar", "text": "x"}\n' * records)


def test_commands_name_the_right_checkpoints_and_data(tmp_path):
  plan = plan_lib.Plan(str(tmp_path), "tiny", 2)
  fake_annotation(plan, 1)
  fake_annotation(plan, 2)
  _fake_checkpoint(plan.base_dir, 0)
  _fake_checkpoint(plan.model_dir(1), 2)
  _fake_checkpoint(plan.model_dir(1), 0)
  _fake_checkpoint(plan.model_dir(1, control=True), 2)
  steps = {s.name: s for s in plan.steps()}
  first, second = steps["annotate_r1"].fn(), steps["annotate_r2"].fn()
  assert '--gin.CHECKPOINT="smollm2"' in first
  assert f'--gin.CHECKPOINT="{plan.model_dir(1)}/checkpoint_2"' in second
  # The settings are the gin files' (the run file, then the size's), nothing else.
  assert [a for a in first if a.startswith("--gin_file")] == [
      "--gin_file=runs/annotate_smollm2.gin", "--gin_file=runs/demo/tiny.gin"]
  assert sorted(a.split("=")[0] for a in first if a.startswith("--gin.")) == [
      "--gin.ANNOTATE_DIR", "--gin.CHECKPOINT", "--gin.CORPUS"]
  control = steps["train_control_r2"].fn()
  assert "--gin.WITHOUT_CALLS=True" in control
  assert f'--gin.ANNOTATED_DIR="{plan.annotated_dir(2)}"' in control
  assert f'--gin.INITIAL_CHECKPOINT_PATH="{plan.base_dir}/checkpoint_0"' in control
  assert "--gin.WITHOUT_CALLS=False" in steps["train_r1"].fn()
  # Both fine-tunes write evaluation checkpoints (no optimizer state).
  assert all("--gin.SAVE_OPTIMIZER_STATE=False" in steps[n].fn()
             for n in ("train_r1", "train_control_r2"))
  base_on = steps["eval_base_tools_on"].fn()
  assert "--gin.EVAL_FEW_SHOT=True" in base_on
  assert "--gin.utils.DatasetConfig.batch_size=2" in base_on  # tiny: 2 examples a task
  assert not any(a.startswith("--gin.TOOL_TRIGGER_TOP_K") for a in base_on)
  assert "--gin.TOOL_TRIGGER_TOP_K=0" in steps["eval_base_tools_off"].fn()
  control_eval = steps["eval_control"].fn()
  assert "--gin.TOOL_TRIGGER_TOP_K=0" in control_eval
  assert f'--gin.CHECKPOINT_PATH="{plan.model_dir(1, True)}/checkpoint_2"' in control_eval
  assert "--gin.train.stats_period=1" in control  # tiny: 2 steps, a loss at each
  # The test seed; held-out and in-distribution generators with their own counts.
  assert "--gin.EVAL_SPLIT='test'" in control_eval
  assert ('--gin.EVAL_NUM_GENERATED={"math_heldout_v1": 2, "dates_heldout_v1": 2, '
          '"math_templates_v2": 2, "dates_calendar_v2": 2}') in control_eval
  # The paper's argument-free Calendar, on the date tasks only, tools on.
  paper = steps["eval_finetuned_paper_calendar"].fn()
  assert "--gin.toolformer_jax.tools.Calendar.accept_arguments=False" in paper
  assert '--gin.EVAL_TASKS=["dates_heldout_v1", "dates_calendar_v2"]' in paper
  assert '--gin.EVAL_NUM_GENERATED={"dates_heldout_v1": 2, "dates_calendar_v2": 2}' in paper
  assert not any(a.startswith("--gin.TOOL_TRIGGER_TOP_K") for a in paper)
  assert f'--gin.CHECKPOINT_PATH="{plan.model_dir(1)}/checkpoint_2"' in paper
  assert not any("accept_arguments" in a for a in steps["eval_finetuned_tools_on"].fn())
  report = steps["report"].fn()
  assert report.count("--run") == 10


def test_a_missing_checkpoint_or_empty_annotation_is_a_clear_error(tmp_path):
  plan = plan_lib.Plan(str(tmp_path), "tiny", 1)
  train = {s.name: s for s in plan.steps()}["train_r1"]
  fake_annotation(plan, 1, records=0)
  with pytest.raises(RuntimeError, match="kept no calls"):
    train.fn()
  fake_annotation(plan, 1, records=2)
  assert plan.kept_records(1) == 2
  with pytest.raises(FileNotFoundError, match="no checkpoint_N"):
    train.fn()
