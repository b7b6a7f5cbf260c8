"""ASDiv (Miao et al. 2020), one of the paper's math benchmarks, read from the user's copy.

ASDiv is CC BY-NC 4.0: the project never bundles it. `read_asdiv(path)` reads ASDiv.xml
(the file, or a directory holding it, like a TFDS manual_dir) given by the caller, by gin
(`ASDIV_PATH` in gin/runs/eval_tools.gin) or by $TOOLFORMER_ASDIV_PATH; or, built once
into a TFDS dataset, from a TFDS data_dir (toolformer_tasks.asdiv_tfds). The file is
<Problem ID Grade Source> elements with Body, Question, Solution-Type, Answer ("9
(apples)") and Formula.

The paper scores the first number of the output, so only problems with one numeric answer
are kept: integers, decimals and fractions ("5/2", "-(1/3)"), units in parentheses
dropped. The others (names, yes/no, times such as "3:30 p.m.", ratios "3:4", several
answers "8 (km/hour); 3 (km/hour)") are counted by reason and skipped, as is any problem
missing a field.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import List, Optional
import xml.etree.ElementTree as ET

from toolformer_jax import corpora
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics

ENV_PATH = "TOOLFORMER_ASDIV_PATH"
FILE_NAME = "ASDiv.xml"
NAME = "math_asdiv"  # not generated: the items are the file's (no version, no seed)
NON_NUMERIC = "non_numeric_answer"
SEVERAL_ANSWERS = "several_answers"
_UNIT_RE = re.compile(r"\s+\([^()]*\)\s*$")  # " (apples)"; not "-(1/3)"


@dataclasses.dataclass(frozen=True)
class Problem:
  id: str
  body: str
  question: str
  answer: float
  answer_text: str  # the numeric answer as written in the file, unit removed
  solution_type: str
  formula: str
  grade: Optional[int]

  @property
  def text(self) -> str:
    return f"{self.body} {self.question}"


def resolve_path(path: Optional[str] = None) -> str:
  """ASDiv.xml from `path` (a file or a directory with it), else $TOOLFORMER_ASDIV_PATH."""
  path = path or os.environ.get(ENV_PATH)
  if not path:
    raise FileNotFoundError(
        f"no ASDiv path: pass one (gin: --gin.ASDIV_PATH=\"'/data/asdiv'\") or set "
        f"${ENV_PATH}; ASDiv (CC BY-NC) is not bundled, see "
        "github.com/chaochun/nlu-asdiv-dataset")
  path = os.path.expanduser(str(path))
  if os.path.isdir(path):
    path = os.path.join(path, FILE_NAME)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"ASDiv file not found: {path}")
  return path


def answer_value(answer: str) -> Optional[float]:
  """The numeric value of an ASDiv answer ("9 (apples)" -> 9.0), None if it is not one."""
  text = _UNIT_RE.sub("", answer.strip())
  return metrics.parse_number(text)


def read_asdiv(path: Optional[str] = None, stats: Optional[corpora.ReadStats] = None
               ) -> List[Problem]:
  """The numeric problems of ASDiv.xml, in file order (others counted in `stats`)."""
  path = resolve_path(path)
  own_stats = stats is None
  stats = stats or corpora.ReadStats(f"ASDiv {path}")
  root = ET.parse(path).getroot()  # a malformed file fails as a whole
  problems = []
  for number, element in enumerate(root.iter("Problem"), 1):
    where = f"{path}[{element.get('ID') or number}]"
    fields = {}
    for tag in ("Body", "Question", "Answer"):
      fields[tag] = " ".join((element.findtext(tag) or "").split())
      if not fields[tag]:
        stats.skip(corpora.missing(tag.lower()), where)
        break
    else:
      answer = fields["Answer"]
      if ";" in answer:
        stats.skip(SEVERAL_ANSWERS, where)
        continue
      value = answer_value(answer)
      if value is None:
        stats.skip(NON_NUMERIC, where)
        continue
      grade = element.get("Grade")
      stats.count_read()
      problems.append(Problem(
          id=element.get("ID") or f"asdiv-{number}", body=fields["Body"],
          question=fields["Question"], answer=value,
          answer_text=_UNIT_RE.sub("", answer).strip(),
          solution_type=(element.findtext("Solution-Type") or "").strip(),
          formula=(element.findtext("Formula") or "").strip(),
          grade=int(grade) if grade and grade.isdigit() else None))
  if own_stats:
    stats.log_summary()
  return problems


def asdiv_items(path: Optional[str] = None, count: Optional[int] = None,
                problems: Optional[List[Problem]] = None) -> List[items_lib.EvalItem]:
  """ASDiv's problems (read from `path`, or given) as eval items (all, or the first
  `count`), zero-shot questions."""
  if problems is None:
    problems = read_asdiv(path)
  if count is not None:
    problems = problems[:count]
  return [items_lib.EvalItem(
      id=f"{NAME}-{p.id}", inputs=items_lib.question_prompt(p.text),
      targets=items_lib.format_number(p.answer), answers=(items_lib.format_number(p.answer),),
      match=metrics.NUMBER, family=items_lib.MATH) for p in problems]
