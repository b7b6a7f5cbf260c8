"""Eval items, the task families and task names, the seeded item streams, and the prompt
formats (zero-shot in the paper's style, or with a few-shot tool demonstration).

An `EvalItem` is one zero-shot prompt (`inputs`), the gold answer as the model would write
it (`targets`), every accepted answer (`answers`) and how to match them (`match`, a spec
of `toolformer_jax.evaluation.metrics`). Generators (registry.py) are pure functions of
(count, seed): `generator_name(...)` is `<name>_<version>`, the version is bumped whenever
the items a seed gives change, and every random choice is drawn from a `random.Random`
keyed by the generator's full name, the seed and the item index (`rng`; the annotation
corpus's synthetic documents key theirs by "toolformer-annotate-...", so the two never
share a stream).

This module imports no generator module and not the registry: the generator modules
import it (and registry.py), never the other way round.
"""
from __future__ import annotations

import dataclasses
import random
import re
from typing import Callable, List, Optional, Sequence, Tuple

from toolformer_jax.evaluation import metrics

# Task families: the report's tables, the paper's benchmark groups.
MATH = "math"  # ASDiv, SVAMP, MAWPS
FACTS = "facts"  # LAMA (SQuAD, Google-RE, T-REx)
QA = "qa"  # WebQS, Natural Questions, TriviaQA
DATES = "dates"  # TempLAMA, Dateset
MULTILINGUAL = "mlqa"  # MLQA
LM = "lm"  # perplexity with API calls disabled
NOTOOL = "notool"  # questions no tool helps with (the answer is in the prompt)
CUSTOM = "jsonl"  # the user's own jsonl
FAMILIES = (MATH, FACTS, QA, DATES, MULTILINGUAL, NOTOOL, LM, CUSTOM)

# Eval task names: TASK_PREFIX + source (+ the vocabulary's suffix, toolformer_tasks.
# vocabularies: "_smollm2", or "_v" + 8 hex digits); a source's first word is its family.
TASK_PREFIX = "toolformer_eval_"
_VOCAB_SUFFIX_RE = re.compile(r"_(smollm2|v[0-9a-f]{8})$")


def task_source(name: str) -> str:
  """'toolformer_eval_math_asdiv_smollm2' -> 'math_asdiv' (the vocabulary suffix dropped)."""
  source = name[len(TASK_PREFIX):] if name.startswith(TASK_PREFIX) else name
  return _VOCAB_SUFFIX_RE.sub("", source)


def family_of(name: str) -> str:
  """The family of a task name or source ('toolformer_eval_mlqa_es_v2' -> 'mlqa')."""
  return task_source(name).split("_", 1)[0]


# The tool the paper's Toolformer mostly calls for each family.
EXPECTED_TOOL = {MATH: "Calculator", FACTS: "QA", QA: "WikiSearch", DATES: "Calendar",
                 MULTILINGUAL: "MT"}
# The tools whose call fits a family's items (a first call to any other is a wrong-tool
# call; on NOTOOL items every call is). Multilingual questions may be translated or looked
# up; families not listed (the user's jsonl) have no rule.
ACCEPTED_TOOLS = {MATH: ("Calculator",), DATES: ("Calendar",), FACTS: ("QA", "WikiSearch"),
                  QA: ("QA", "WikiSearch"), MULTILINGUAL: ("MT", "QA", "WikiSearch"),
                  NOTOOL: ()}


@dataclasses.dataclass(frozen=True)
class EvalItem:
  id: str
  inputs: str
  targets: str
  answers: Tuple[str, ...]
  match: str
  family: str
  language: str = "en"

  def problem(self) -> Optional[str]:
    """Why the item cannot be evaluated (None if it can)."""
    if not self.inputs.strip():
      return "empty inputs"
    if self.family not in FAMILIES:
      return f"unknown family {self.family!r}"
    return metrics.check_answers(list(self.answers), self.match)


# The two seeds of every generated family: settings (prompts, thresholds, sizes) are chosen
# on the dev seed's items; the reports give the test seed's, which nothing was tuned on.
DEV_SEED = 0
TEST_SEED = 2026
SPLIT_SEEDS = {"dev": DEV_SEED, "test": TEST_SEED}


def split_seed(split: str) -> int:
  """The seed of an eval split name ('dev' or 'test'); ValueError on any other."""
  if split not in SPLIT_SEEDS:
    raise ValueError(f"unknown eval split {split!r}; known: {', '.join(SPLIT_SEEDS)}")
  return SPLIT_SEEDS[split]


def rng(full_name: str, seed: int, index) -> random.Random:
  """The random stream of one item of one generator (module docstring)."""
  return random.Random(f"toolformer-eval-{full_name}-seed{int(seed)}-{index}")


def item_id(full_name: str, seed: int, index) -> str:
  return f"{full_name}-s{int(seed)}-{index}"


MAX_DRAWS = 50  # redraws per item before a generator gives up on distinct questions


def distinct(full_name: str, seed: int, count: int, draw: Callable[[random.Random], Tuple]
             ) -> List[Tuple]:
  """`count` draws `draw(rng) -> (question, ...)` with pairwise distinct questions: item i
  is drawn from its own stream, and again from its next streams while its question was
  already made (ValueError if MAX_DRAWS draws give none new)."""
  seen, out = set(), []
  for i in range(count):
    for attempt in range(MAX_DRAWS):
      drawn = draw(rng(full_name, seed, i if attempt == 0 else f"{i}-redraw{attempt}"))
      if drawn[0] not in seen:
        break
    else:
      raise ValueError(f"{full_name}: no new question for item {i} in {MAX_DRAWS} draws "
                       f"(count {count} is more than its templates make)")
    seen.add(drawn[0])
    out.append(drawn)
  return out


def sample(pool: Sequence, count: int, full_name: str, seed: int) -> List:
  """`count` elements of `pool` (all if fewer) in a seeded order."""
  order = list(pool)
  rng(full_name, seed, "order").shuffle(order)
  return order[:count]


# --- prompts ---------------------------------------------------------------------------------
# The answer cue ends every question prompt, so that every model is asked to answer in the
# same words: base, control and fine-tuned tools off alike. Chosen on the dev seed on the
# base model (SmolLM2-135M-Instruct, 12 math_templates and 6 dates_calendar items, tools
# off): "Question: ...\nAnswer:" left 16 of 18 outputs empty, "... Answer: The answer is" 0.
ANSWER_CUE = "The answer is"


def question_prompt(question: str) -> str:
  """The zero-shot question format of the math, QA, date and multilingual tasks."""
  return f"Question: {question.strip()}\nAnswer: {ANSWER_CUE}"


def format_number(value: float) -> str:
  """A gold number as a model would write it (integers without '.0', else <= 4 decimals)."""
  if float(value).is_integer():
    return str(int(value))
  return f"{value:.4f}".rstrip("0").rstrip(".")


# A few-shot demonstration per family, with calls in the paper's format: prepended to every
# input when the eval runs with `few_shot` (a base model has never seen a call otherwise).
# The demonstrations are not items of any generator (tests/evaluation checks this).
FEW_SHOT = {
    MATH: (
        "Question: A baker made 124 rolls in the morning and 87 in the afternoon. How many "
        "rolls did the baker make?\nAnswer: The answer is [Calculator(124 + 87) -> 211] 211\n\n"
        "Question: A theatre has 36 rows with 42 seats in each row. How many seats are "
        "there?\nAnswer: The answer is [Calculator(36 * 42) -> 1512] 1512\n\n"),
    FACTS: (
        "The Amazon River flows into the [QA(\"Into which ocean does the Amazon River "
        "flow?\") -> Atlantic Ocean] Atlantic Ocean.\n\n"
        "The Mona Lisa was painted by [QA(\"Who painted the Mona Lisa?\") -> Leonardo da "
        "Vinci] Leonardo da Vinci.\n\n"),
    QA: (
        "Question: Which gas do plants absorb from the air for photosynthesis?\nAnswer: The answer is "
        "[WikiSearch(\"photosynthesis gas absorbed\") -> Photosynthesis uses carbon dioxide "
        "and water] carbon dioxide\n\n"
        "Question: Who developed the theory of general relativity?\nAnswer: The answer is "
        "[WikiSearch(\"general relativity theory\") -> General relativity is the theory of "
        "gravitation published by Albert Einstein in 1915] Albert Einstein\n\n"),
    DATES: (
        "Question: What day of the week will it be tomorrow?\nAnswer: The answer is [Calendar(1 day from "
        "now) -> Wednesday, March 10, 2021.] Wednesday\n\n"
        "Question: What was the date two days ago?\nAnswer: The answer is [Calendar(2 days ago) -> "
        "Wednesday, October 13, 2010.] October 13, 2010\n\n"),
    MULTILINGUAL: (
        "Question: ¿Cuál es el río más largo de Europa?\nAnswer: The answer is [MT(\"¿Cuál es el río más "
        "largo de Europa?\") -> What is the longest river in Europe?] the Volga\n\n"
        "Question: Quel est le plus grand océan du monde ?\nAnswer: The answer is [MT(\"Quel est le plus "
        "grand océan du monde ?\") -> What is the largest ocean in the world?] the Pacific "
        "Ocean\n\n"),
}


def with_few_shot(item: EvalItem) -> str:
  """The item's inputs behind its family's demonstration (unchanged without one)."""
  return FEW_SHOT.get(item.family, "") + item.inputs
