"""Running the demo's steps: logs, progress echoes, DONE markers and resuming; the CLI."""
import os

import pytest
from absl import app

from toolformer_jax import cli
from toolformer_jax.demo import __main__ as demo_main
from toolformer_jax.demo import plan as plan_lib
from toolformer_jax.demo import runner


def test_unknown_stages_are_refused():
  with pytest.raises(ValueError, match="unknown stages"):
    runner.select([], ["train", "deploy"])


def test_complete_steps_are_skipped_and_force_reruns_them(tmp_path, monkeypatch):
  plan = plan_lib.Plan(str(tmp_path), "tiny", 1)
  ran = []

  def fake_run(step, log_dir):
    ran.append(step.name)
    os.makedirs(step.output, exist_ok=True)
    open(os.path.join(step.output, plan_lib.DONE), "w").write('{"seconds": 0}')
    return 0.0

  monkeypatch.setattr(runner, "run_step", fake_run)
  runner.run_plan(plan, ["corpus", "convert"])
  assert ran == ["corpus", "convert"]
  runner.run_plan(plan, ["corpus", "convert"])  # complete: nothing runs
  assert ran == ["corpus", "convert"]
  os.remove(os.path.join(plan.base_dir, plan_lib.DONE))  # an interrupted convert reruns
  runner.run_plan(plan, ["corpus", "convert"])
  assert ran == ["corpus", "convert", "convert"]
  stale = os.path.join(plan.base_dir, "stale")
  open(stale, "w").close()
  runner.run_plan(plan, ["convert"], force=True)  # force starts from an empty directory
  assert ran[-1] == "convert" and not os.path.exists(stale)
  runner.run_plan(plan, ["report"])
  runner.run_plan(plan, ["report"])  # done, but rewritten: --rounds may have added runs
  assert ran[-2:] == ["report", "report"]
  assert os.path.exists(os.path.join(plan.out_dir, "report.md"))


def test_run_step_logs_output_marks_done_and_reports_failures(tmp_path):
  ok = plan_lib.Step("corpus", "ok", str(tmp_path / "ok"),
                     command=["python3", "-c", "print('hello from the step')"])
  runner.run_step(ok, str(tmp_path / "logs"))
  assert ok.done()
  assert "hello from the step" in (tmp_path / "logs" / "ok.log").read_text()
  bad = plan_lib.Step("corpus", "bad", str(tmp_path / "bad"),
                      command=["python3", "-c", "import sys; print('boom'); sys.exit(3)"])
  with pytest.raises(RuntimeError, match=r"exited with 3(.|\n)*boom"):
    runner.run_step(bad, str(tmp_path / "logs"))
  assert not bad.done()


def test_a_fine_tune_keeps_its_latest_checkpoint_and_an_unfinished_one_starts_afresh(
    tmp_path, monkeypatch):
  plan = plan_lib.Plan(str(tmp_path), "tiny", 1)
  train = [s for s in plan.steps() if s.name == "train_r1"][0]
  assert train.fresh and train.output == plan.model_dir(1)
  # An interrupted fine-tune left a checkpoint it cannot resume from (no optimizer state).
  os.makedirs(os.path.join(train.output, "checkpoint_8", "state"))
  script = ("import os, sys\n"
            "assert not os.path.exists(sys.argv[1] + '/checkpoint_8'), 'not started afresh'\n"
            "for step in (0, 20):\n"
            "  os.makedirs(f'{sys.argv[1]}/checkpoint_{step}/state')\n")
  monkeypatch.setattr(train, "fn", lambda: ["python3", "-c", script, train.output])
  monkeypatch.setattr(plan, "steps", lambda: [train])
  runner.run_plan(plan, ["train"])
  assert sorted(os.listdir(train.output)) == ["DONE.json", "checkpoint_20"]
  assert plan.model_path("model_1") == os.path.join(train.output, "checkpoint_20")


def test_keep_latest_checkpoint(tmp_path):
  for step in (0, 4, 12):
    os.makedirs(tmp_path / f"checkpoint_{step}" / "state")
  (tmp_path / "train").mkdir()
  removed = plan_lib.keep_latest_checkpoint(str(tmp_path))
  assert sorted(os.path.basename(p) for p in removed) == ["checkpoint_0", "checkpoint_4"]
  assert sorted(os.listdir(tmp_path)) == ["checkpoint_12", "train"]
  assert plan_lib.keep_latest_checkpoint(str(tmp_path)) == []


def test_a_running_step_echoes_its_latest_log_line(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(runner, "PROGRESS_SECONDS", 0.2)
  code = ("import sys, time\n"
          "for k in range(3):\n"
          "  sys.stderr.write(f'\\rshard 0 Calculator: {k}/3'); sys.stderr.flush(); time.sleep(0.5)\n"
          "print('\\nI1201 16:00:00.000000 140 train.py:12] Training: step 2', flush=True)\n"
          "time.sleep(0.6)\n")
  step = plan_lib.Step("train", "slow", str(tmp_path / "slow"), command=["python3", "-c", code])
  runner.run_step(step, str(tmp_path / "logs"))
  out = "\n".join(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("    ["))  # the echoed lines, not the command
  assert "shard 0 Calculator: 1/3" in out  # the progress bar's state after its \r
  assert "] Training: step 2" in out and "train.py:12]" not in out  # absl prefix cut
  assert out.count("Training: step 2") == 1  # an unchanged line is not repeated


def test_last_log_line(tmp_path):
  log = tmp_path / "x.log"
  log.write_text("")
  assert runner.last_log_line(str(log)) == ""
  log.write_text("first\nbar 1/9\rbar 2/9\r\n\n")
  assert runner.last_log_line(str(log)) == "bar 2/9"
  log.write_text("x" * 500)
  assert runner.last_log_line(str(log), width=20) == "x" * 17 + "..."


# --- the CLI ---------------------------------------------------------------------------------
def run_cli(args):
  demo_main.define_flags()
  return cli.call(demo_main.main, args)


def test_cli_refuses_bad_stages_rounds_and_another_sizes_out_dir(tmp_path, monkeypatch):
  ran = []
  monkeypatch.setattr(runner, "run_plan", lambda *a: ran.append(a) or {})
  with pytest.raises(app.UsageError, match="unknown stages"):
    run_cli(["--out_dir", str(tmp_path), "--stages", "annotate,nope"])
  with pytest.raises(app.UsageError, match="rounds"):
    run_cli(["--out_dir", str(tmp_path), "--rounds", "0"])
  plan_lib.Plan(str(tmp_path), "tiny", 1).claim_out_dir()
  with pytest.raises(app.UsageError, match="holds a demo of size 'tiny'"):
    run_cli(["--out_dir", str(tmp_path), "--size", "full"])
  assert not ran
  with pytest.raises(app.UsageError, match="unrecognized arguments"):
    run_cli(["--out_dir", str(tmp_path), "extra"])


def test_cli_default_out_dir_names_the_size(tmp_path, monkeypatch):
  ran = []
  monkeypatch.setattr(runner, "run_plan", lambda *a: ran.append(a) or {})
  monkeypatch.chdir(tmp_path)
  assert run_cli(["--size", "full", "--stages", "report"]) == 0
  assert ran[-1][0].out_dir == str(tmp_path / "out" / "demo_full")
  assert run_cli(["--stages", "report"]) == 0
  assert ran[-1][0].out_dir == str(tmp_path / "out" / "demo")
  assert ran[-1][1] == ["report"]
