"""Running the demo's steps: subprocesses with their output in logs, progress echoed,
DONE.json markers (a complete step is skipped on a rerun)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from typing import Dict, List, Sequence

from toolformer_jax.demo import plan as plan_lib
from toolformer_jax.demo.plan import DONE, STAGES, Plan, Step

PROGRESS_SECONDS = 30  # how often a running step's latest log line is echoed


def subprocess_env() -> Dict[str, str]:
  env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
             TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (plan_lib.REPO, env.get("PYTHONPATH")) if p)
  return env


def last_log_line(path: str, width: int = 150) -> str:
  """The latest line (or progress-bar state: text after a carriage return) of a log, with
  absl's "I1201 12:00:00.000 123 file.py:12]" prefix cut, shortened to `width`."""
  with open(path, "rb") as f:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - 4096))
    tail = f.read().decode("utf-8", errors="replace")
  pieces = [p.strip() for p in re.split(r"[\r\n]", tail) if p.strip()]
  if not pieces:
    return ""
  line = re.sub(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] ", "", pieces[-1])
  return line if len(line) <= width else line[:width - 3] + "..."


def run_step(step: Step, log_dir: str) -> float:
  """Runs one step (its output streamed to log_dir/<name>.log); returns seconds."""
  os.makedirs(step.output, exist_ok=True)
  os.makedirs(log_dir, exist_ok=True)
  log_path = os.path.join(log_dir, f"{step.name}.log")
  start = time.perf_counter()
  command = step.fn() if step.command is None else step.command
  if command is not None:  # in-process steps return None
    print("  $ " + shlex.join(command), flush=True)
    with open(log_path, "w", encoding="utf-8") as log:
      proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              cwd=plan_lib.REPO, env=subprocess_env())
      shown = None
      while proc.poll() is None:
        try:
          proc.wait(timeout=PROGRESS_SECONDS)
        except subprocess.TimeoutExpired:
          line = last_log_line(log_path)
          if line and line != shown:
            print(f"    [{time.perf_counter() - start:5.0f} s] {line}", flush=True)
            shown = line
    if proc.returncode:
      with open(log_path, encoding="utf-8", errors="replace") as f:
        tail = "".join(f.readlines()[-15:])
      raise RuntimeError(f"{step.name} exited with {proc.returncode}; log {log_path}; "
                         f"its end:\n{tail}")
  if step.after is not None:
    step.after()
  seconds = time.perf_counter() - start
  with open(os.path.join(step.output, DONE), "w", encoding="utf-8") as f:
    json.dump({"step": step.name, "command": command, "seconds": seconds}, f)
  return seconds


def select(steps: Sequence[Step], stages: Sequence[str]) -> List[Step]:
  unknown = [s for s in stages if s not in STAGES]
  if unknown:
    raise ValueError(f"unknown stages {unknown}; known: {', '.join(STAGES)}")
  return [s for s in steps if s.stage in stages]


def run_plan(plan: Plan, stages: Sequence[str], force: bool = False) -> Dict[str, float]:
  """Runs the selected stages' steps in order, skipping complete ones unless force;
  returns {step: seconds} of the steps that ran."""
  chosen = select(plan.steps(), stages)
  timings = {}
  for number, step in enumerate(chosen, start=1):
    prefix = f"[{number}/{len(chosen)}] {step.stage}: {step.name}"
    if step.done() and not force and not step.rerun:
      print(f"{prefix}: done already ({step.output}; --force reruns it)", flush=True)
      continue
    if (force or step.fresh) and os.path.isdir(step.output):
      shutil.rmtree(step.output)
    print(f"{prefix} -> {step.output}", flush=True)
    timings[step.name] = run_step(step, plan.logs)
    print(f"  {step.name}: {timings[step.name]:.0f} s", flush=True)
    if step.stage == "report":
      from toolformer_jax.demo import report  # pylint: disable=g-import-not-at-top
      print(f"report: {report.write(plan)}", flush=True)
  return timings
