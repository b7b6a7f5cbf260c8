"""The demo's sizes and its plan: every step of a run, with its paths and its command.

A size is a gin file, gin/runs/demo/<size>.gin, binding one `DemoSize` (everything --size
changes) and the annotation macros of runs/annotate_smollm2.gin; `load_size` reads it.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shutil
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from toolformer_jax.demo import corpus

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIN_DIR = os.path.join(REPO, "gin")
MODEL_GIN = "models/smollm2_135m.gin"
ANNOTATE_GIN = "runs/annotate_smollm2.gin"
SIZES_GIN_DIR = "runs/demo"  # under GIN_DIR: <size>.gin per size
STAGES = ("corpus", "convert", "annotate", "train", "eval", "report")
ALL_TOOLS = ("Calculator", "Calendar", "WikiSearch", "QA", "MT")
DONE = "DONE.json"
PAPER_CALENDAR_RUN = "finetuned_paper_calendar"  # tools on, Calendar without arguments
SIZE_FILE = "size.json"  # in the out dir: the size row its steps were run with
GENERATED_KINDS = corpus.GENERATED_KINDS


@dataclasses.dataclass(frozen=True)
class DemoSize:
  """One size (a gin/runs/demo/<size>.gin file): everything `--size` changes."""

  wikipedia_docs: int  # bundled leads of train entities (knowledge_docs.annotatable_lead)
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
  eval_examples: int  # items per held-out generator (the headline) and examples per task
  indist_examples: int  # items per in-distribution generator
  eval_targets_length: int  # generated tokens per eval example (call included)
  eval_inputs_length: int  # prompt tokens (questions; a few-shot run gets 160 more)
  base_few_shot: bool  # also evaluate the base model tools on behind a demonstration
  tau_f: Optional[float] = None  # every tool's filter threshold; None: the per-tool table's
  geography_docs: int = 0  # annotate.knowledge_docs 'geography' (train countries' facts)
  names_mt_docs: int = 0  # 'names_mt' (Spanish/French names and their English meaning)
  # {generator: items} in place of eval_examples / indist_examples for those generators.
  task_examples: Tuple[Tuple[str, int], ...] = ()

  def __post_init__(self):
    for name in ("tools", "eval_tasks"):  # gin lists (the TOOLS macro) as tuples
      if isinstance(getattr(self, name), list):
        object.__setattr__(self, name, tuple(getattr(self, name)))
    if isinstance(self.task_examples, Mapping):  # a gin dict, as sorted pairs
      object.__setattr__(self, "task_examples", tuple(sorted(self.task_examples.items())))


def validate_size(name: str, size: DemoSize) -> None:
  """Raises ValueError naming what is wrong with a size."""
  counts = {f.name: getattr(size, f.name) for f in dataclasses.fields(size)
            if f.type in ("int", int)}
  bad = {k: v for k, v in counts.items()
         if not isinstance(v, int) or isinstance(v, bool) or v < 0}
  if bad:
    raise ValueError(f"size {name!r}: counts must be ints >= 0, got {bad}")
  positive = ("top_k_positions", "calls_per_position", "train_steps", "batch_size",
              "train_length", "eval_examples", "indist_examples", "eval_targets_length",
              "eval_inputs_length")
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
  bad = [(k, v) for k, v in size.task_examples
         if not isinstance(v, int) or isinstance(v, bool) or v < 1]
  if bad:
    raise ValueError(f"size {name!r}: task_examples must be ints >= 1, got {bad}")


# --- the sizes' gin files --------------------------------------------------------------------
def size_file(name: str) -> str:
  """The size's gin file, relative to GIN_DIR (as the annotation command names it)."""
  return f"{SIZES_GIN_DIR}/{name}.gin"


def size_names() -> List[str]:
  """The sizes: gin/runs/demo/*.gin, sorted."""
  return sorted(os.path.splitext(f)[0]
                for f in os.listdir(os.path.join(GIN_DIR, SIZES_GIN_DIR)) if f.endswith(".gin"))


class _Macro:
  def __init__(self, name: str):
    self.name = name


class _Delegate:
  """gin's parser delegate: macros are resolved after parsing; no configurable references."""

  def configurable_reference(self, scoped_name, evaluate):
    raise ValueError(f"a demo size file binds values and macros only, not @{scoped_name}")

  def macro(self, name):
    return _Macro(name)


def _resolve(value: Any, macros: Dict[str, Any]) -> Any:
  if isinstance(value, _Macro):
    if value.name not in macros:
      raise ValueError(f"macro %{value.name} is not bound in the size file")
    return _resolve(macros[value.name], macros)
  if isinstance(value, (list, tuple)):
    return type(value)(_resolve(v, macros) for v in value)
  if isinstance(value, dict):
    return {k: _resolve(v, macros) for k, v in value.items()}
  return value


def parse_size(path: str) -> DemoSize:
  """The DemoSize a size gin file binds (its `plan.DemoSize` parameters, macros resolved),
  read with gin's parser: gin's global configuration is left alone."""
  from gin import config_parser  # pylint: disable=g-import-not-at-top
  macros, fields = {}, {}
  with open(path, encoding="utf-8") as f:
    for statement in config_parser.ConfigParser(f, _Delegate()):
      if isinstance(statement, (config_parser.ImportStatement,
                                config_parser.BlockDeclaration)):
        continue
      if not isinstance(statement, config_parser.BindingStatement) or statement.scope:
        raise ValueError(f"{path}: a demo size file holds no includes or scopes "
                         f"({statement})")
      if not statement.arg_name:
        macros[statement.selector] = statement.value
      elif statement.selector.split(".")[-1] == "DemoSize":
        fields[statement.arg_name] = statement.value
      else:
        raise ValueError(f"{path}: binds {statement.selector}.{statement.arg_name}; a demo "
                         "size file binds DemoSize and macros only")
  try:
    return DemoSize(**_resolve(fields, macros))
  except TypeError as e:
    raise ValueError(f"{path}: {e}") from e


def load_size(name: str) -> DemoSize:
  """The size `name` (gin/runs/demo/<name>.gin)."""
  if name not in size_names():
    raise ValueError(f"unknown size {name!r}; known: {', '.join(size_names())}")
  return parse_size(os.path.join(GIN_DIR, size_file(name)))


def sizes() -> Dict[str, DemoSize]:
  return {name: load_size(name) for name in size_names()}


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
  fresh: bool = False  # an unfinished output is removed first (it cannot be resumed)
  after: Optional[object] = None  # runs in process once the command succeeded

  def done(self) -> bool:
    return os.path.exists(os.path.join(self.output, DONE))


def gin_str(value: str) -> str:
  """A gin string literal (double quotes: the printed commands stay readable in a shell)."""
  return json.dumps(value, ensure_ascii=False)


def gin_list(values: Sequence[str]) -> str:
  return "[" + ", ".join(gin_str(v) for v in values) + "]"


def round_tail(r: int) -> str:
  """The suffix of round r's eval runs: none for round 1 (so that a later --rounds 2 reuses
  round 1's evals), '_rR' after."""
  return "" if r == 1 else f"_r{r}"


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


def keep_latest_checkpoint(model_dir: str) -> List[str]:
  """Removes every checkpoint_N of model_dir but the latest (the one the demo evaluates:
  t5x's step-0 copy of the initial checkpoint goes); returns the removed paths."""
  keep = latest_checkpoint(model_dir)
  removed = [p for p in glob.glob(os.path.join(model_dir, "checkpoint_*")) if p != keep]
  for path in removed:
    shutil.rmtree(path)
  return removed


class Plan:
  """The steps of one demo run: paths and commands, from the size and --rounds."""

  def __init__(self, out_dir: str, size_name: str, rounds: int,
               python: str = sys.executable):
    if rounds < 1:
      raise ValueError(f"--rounds must be >= 1, got {rounds}")
    self.out_dir = os.path.abspath(out_dir)  # orbax needs absolute paths
    self.size_name, self.size, self.rounds = size_name, load_size(size_name), rounds
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
    """(run name, model: 'base' or 'model_R' / 'control_R', tools on, few-shot). Tools off
    is the paper's disabled decoding (the call opener masked); `finetuned_paper_calendar`
    evaluates the date tasks with the paper's argument-free Calendar."""
    runs = [("base_tools_off", "base", False, False)]
    if self.size.base_few_shot:
      runs.append(("base_tools_on", "base", True, True))
    for r in range(1, self.rounds + 1):
      tail = round_tail(r)
      runs += [(f"finetuned_tools_off{tail}", f"model_{r}", False, False),
               (f"finetuned_tools_on{tail}", f"model_{r}", True, False),
               (f"control{tail}", f"control_{r}", False, False)]
      if self.date_sources():
        runs.append((f"{PAPER_CALENDAR_RUN}{tail}", f"model_{r}", True, False))
    return runs

  def eval_sources(self) -> List[str]:
    """The size's eval tasks with families expanded to their generators' names."""
    from toolformer_jax.evaluation import registry  # pylint: disable=g-import-not-at-top
    known = registry.generators()
    out = []
    for task in self.size.eval_tasks:
      family = [n for n, g in sorted(known.items()) if g.family == task]
      out += family or [task]
    return list(dict.fromkeys(out))

  def date_sources(self) -> List[str]:
    return [s for s in self.eval_sources() if s.startswith("dates_")]

  def eval_counts(self) -> Dict[str, int]:
    """{generator: items}: task_examples' count where it names the generator, else
    eval_examples for the held-out ones and indist_examples for the rest."""
    from toolformer_jax.evaluation import registry  # pylint: disable=g-import-not-at-top
    known = registry.generators()
    sources = [s for s in self.eval_sources() if s in known]
    given = dict(self.size.task_examples)
    unknown = sorted(set(given) - set(sources))
    if unknown:
      raise ValueError(f"size {self.size_name!r}: task_examples names {unknown}, which are "
                       f"not among its eval tasks' generators {sources}")
    return {s: given.get(s, self.size.eval_examples if known[s].heldout
                         else self.size.indist_examples) for s in sources}

  def eval_dir(self, run: str) -> str:
    return os.path.join(self.out_dir, "eval", run)

  def model_path(self, model: str) -> str:
    """The checkpoint directory a step reads (resolved when the step starts)."""
    if model == "base":
      return latest_checkpoint(self.base_dir)
    kind, r = model.split("_")
    return latest_checkpoint(self.model_dir(int(r), control=kind == "control"))

  def _annotate(self, r: int) -> List[str]:
    # The annotation settings (tools, the per-tool table, k, m, tau_f, forced tool names)
    # are the run file's, with the size file's macros.
    checkpoint = "smollm2" if r == 1 else self.model_path(f"model_{r - 1}")
    return [self.python, "-m", "toolformer_jax.annotate", f"--gin_search_paths={GIN_DIR}",
            f"--gin_file={ANNOTATE_GIN}", f"--gin_file={size_file(self.size_name)}",
            f"--gin.ANNOTATE_DIR={gin_str(self.annotated_dir(r))}",
            f"--gin.CORPUS={gin_str(self.corpus_path)}",
            f"--gin.CHECKPOINT={gin_str(checkpoint)}"]

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
          "nothing to fine-tune on; raise TOP_K_POSITIONS / CALLS_PER_POSITION or the "
          f"corpus sizes, or lower TAU_F, in gin/{size_file(self.size_name)}")
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
            # Checkpoints for evaluation: parameters and step (a third of the size).
            "--gin.SAVE_OPTIMIZER_STATE=False",
            f"--gin.EVALUATOR_NUM_EXAMPLES={s.eval_examples}"]

  def _eval(self, run: str, model: str, tools_on: bool, few_shot: bool) -> List[str]:
    s = self.size
    paper_calendar = run.startswith(PAPER_CALENDAR_RUN)
    tasks = self.date_sources() if paper_calendar else list(s.eval_tasks)
    counts = {k: v for k, v in self.eval_counts().items()
              if not paper_calendar or k in tasks}
    most = max([s.eval_examples] + list(counts.values()))
    return [self.python, "-m", "t5x.eval", f"--gin_search_paths={GIN_DIR}",
            "--gin_file=runs/eval_tools.gin", f"--gin_file={MODEL_GIN}",
            f"--gin.CHECKPOINT_PATH={gin_str(self.model_path(model))}",
            f"--gin.EVAL_OUTPUT_DIR={gin_str(self.eval_dir(run))}",
            *([] if tools_on else ["--gin.TOOL_TRIGGER_TOP_K=0"]),
            *(["--gin.toolformer_jax.tools.Calendar.accept_arguments=False"]
              if paper_calendar else []),
            f"--gin.EVAL_FEW_SHOT={few_shot}", f"--gin.EVAL_TASKS={gin_list(tasks)}",
            "--gin.EVAL_SPLIT='test'",
            f"--gin.EVAL_NUM_GENERATED={json.dumps(counts)}",
            f"--gin.seqio.Evaluator.num_examples={most}",
            # No padding rows to decode when a task has fewer examples than a batch.
            f"--gin.utils.DatasetConfig.batch_size={min(32, most)}",
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
      for name, control in ((f"train_r{r}", False), (f"train_control_r{r}", True)):
        model_dir = self.model_dir(r, control)
        steps.append(Step("train", name, model_dir, fresh=True,
                          fn=lambda r=r, c=control: self._train(r, c),
                          after=lambda d=model_dir: keep_latest_checkpoint(d)))
    for run, model, tools_on, few_shot in self.eval_runs():
      steps.append(Step("eval", f"eval_{run}", self.eval_dir(run),
                        fn=lambda a=(run, model, tools_on, few_shot): self._eval(*a)))
    steps.append(Step("report", "report", os.path.join(self.out_dir, "eval_report"),
                      fn=self.report_command, rerun=True))
    # Rounds interleave: round R+1's annotation needs round R's fine-tuned model.
    return order_by_round(steps)

  def write_corpus(self) -> None:
    records = corpus.build_corpus(self.size)
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
