"""Scoring of the eval tasks: answer matching as in the paper, and the calls each output made.

Matching (Schick et al. 2023, Sec. 4.2), on the model's own words (`answer_text`: inserted
calls removed, cut at the first blank line):

  words:N   one of the gold answers starts within the first N words (normalised: case,
            accents, punctuation and the articles of English, Spanish and French ignored;
            "1,234" reads as "1234"). Fact completion uses N = 5 (LAMA), questions N = 20.
  number    the first number of the output equals the gold number (commas as thousands
            separators, decimals, fractions like 5/2; equal if within 1e-6 relative or
            equal after rounding both to 2 decimals, the Calculator's precision).
  date      the first complete date of the output ("January 30, 2023", "30 January 2023",
            "2023-01-30", "01/30/2023") is the gold date (ISO YYYY-MM-DD).
  weekday   the first weekday named in the output is the gold weekday.

Calls, per example, from the aux outputs of tool-use decoding (t5x's predict_with_aux;
their schema and decoding: `toolformer_jax.decoding.aux_schema`): whether a call was
started (`call_count` > 0), the tool of the first call (read from the call text in the prediction; `unparsed` when the
model's call text names none), its status and the rank and probability of " [" when it was
triggered.

`tool_eval_metrics(targets, predictions, aux_values)` is a seqio predict_with_aux metric
fn; its targets are what `postprocess` makes of an example (answers and match spec). The
metric names below are the one list the tasks, the report and the tests use. Pure Python
and numpy: no TensorFlow, seqio or t5x import.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
import unicodedata
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from toolformer_jax.decoding import aux_schema
from toolformer_jax.tools import base as tool_base
from toolformer_jax.tools import call_format
from toolformer_jax.tools import registry

# --- match specs -----------------------------------------------------------------------------
WORDS = "words"
NUMBER = "number"
DATE = "date"
WEEKDAY = "weekday"
MATCH_KINDS = (WORDS, NUMBER, DATE, WEEKDAY)
FACT_WORDS = 5  # LAMA: the answer within the first five words
QA_WORDS = 20  # open-domain QA: within the first twenty words


def words_spec(n: int) -> str:
  return f"{WORDS}:{int(n)}"


FACT_MATCH = words_spec(FACT_WORDS)
QA_MATCH = words_spec(QA_WORDS)


def parse_match(spec: str) -> Tuple[str, Optional[int]]:
  """'words:5' -> ('words', 5); 'number' -> ('number', None). ValueError on anything else."""
  if not isinstance(spec, str):
    raise ValueError(f"a match spec must be a string, got {spec!r}")
  kind, _, arg = spec.strip().partition(":")
  if kind not in MATCH_KINDS:
    raise ValueError(f"unknown match {spec!r}; known: {', '.join(MATCH_KINDS)} "
                     f"(words:N for the first N words)")
  if kind == WORDS:
    if not arg.isdigit() or int(arg) < 1:
      raise ValueError(f"match {spec!r}: words needs a count >= 1, e.g. {FACT_MATCH!r}")
    return kind, int(arg)
  if arg:
    raise ValueError(f"match {spec!r}: {kind} takes no argument")
  return kind, None


# --- metric names ----------------------------------------------------------------------------
NUM_EXAMPLES = "num_examples"
ACCURACY = "accuracy"  # % of examples whose answer matches
ACCURACY_WITH_CALL = "accuracy_with_call"  # % correct among examples that made a call
ACCURACY_WITHOUT_CALL = "accuracy_without_call"
CALL_RATE = "call_rate"  # % of examples with at least one call started
CALL_OK_RATE = "call_ok_rate"  # % of examples whose first call returned a result
# % of examples whose first call returned a result that holds the answer (a right call,
# whether or not the model then copied it)
CALL_RESULT_RIGHT_RATE = "call_result_right_rate"
# % of outputs whose text holds call text (" [Tool(" or a bracketed "->"), whether or not
# a call ran: 0 for decoding with calls disabled (the opener masked)
CALL_TEXT_RATE = "call_text_rate"
EMPTY_RATE = "empty_rate"  # % of outputs with no answer words (calls removed)
TRIGGER_RANK_MEAN = "trigger_rank_mean"  # mean rank of " [" at the first call's trigger
TRIGGER_PROB_MEAN = "trigger_prob_mean"  # mean p(" [") there
PERPLEXITY = "perplexity"  # the held-out LM task's (toolformer_tasks.lm.perplexity)
UNPARSED_TOOL = "unparsed"
UNFINISHED = aux_schema.UNFINISHED
TOOLS = tuple(registry.DEFAULT_TOOLS)
RANK_BINS = 10  # ranks 0..9 (the paper's trigger top-k is 10), then one bin for the rest
CALL_RATE_PREFIX = CALL_RATE + "_"
RANK_PREFIX = "trigger_rank_"
RANK_OVERFLOW = f"{RANK_PREFIX}{RANK_BINS}plus"


def call_rate_name(tool: str) -> str:
  """Metric name of the % of examples whose first call went to `tool`."""
  return CALL_RATE_PREFIX + tool


def rank_bin_name(rank: int) -> str:
  """Metric name of the count of first calls triggered at " [" rank `rank`."""
  return RANK_OVERFLOW if rank >= RANK_BINS else f"{RANK_PREFIX}{int(rank)}"


RANK_BIN_NAMES = tuple(rank_bin_name(r) for r in range(RANK_BINS + 1))


# --- text normalisation ----------------------------------------------------------------------
_ARTICLES = frozenset({"a", "an", "the", "el", "la", "los", "las", "lo", "le", "les", "l",
                       "un", "una", "une", "des", "del", "du"})
# A bracketed span with a result marker that is not a well-formed call (" [Calc 3 -> refused:
# ...]"): tool decoding inserts a refusal after such text, which is not the model's answer.
_MALFORMED_CALL_RE = re.compile(r" ?\[[^\[\]\n]{0,400}?->[^\[\]\n]{0,400}\]")
_CALL_TEXT_RE = re.compile(r"\[\s*[A-Za-z_]\w*\s*\(|\[[^\[\]\n]{0,400}?->")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NON_WORD_RE = re.compile(r"[^\w\s]|_")


def strip_accents(text: str) -> str:
  decomposed = unicodedata.normalize("NFKD", text)
  return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_words(text: str) -> List[str]:
  """Lower-cased words without accents, punctuation or articles ('1,234' -> '1234')."""
  text = strip_accents(str(text)).lower()
  text = _THOUSANDS_RE.sub("", text)
  text = _NON_WORD_RE.sub(" ", text)
  return [w for w in text.split() if w not in _ARTICLES]


def answer_text(prediction: str) -> str:
  """The model's own words of an output: every call span removed (a call cut off by the
  end of the output too, and a malformed " [... -> ...]"), leading whitespace dropped,
  cut at the first blank line."""
  text = str(prediction)
  spans = call_format.find_calls(text)
  pieces, pos = [], 0
  for span in spans:
    pieces.append(text[pos:span.start])
    pos = span.end
  pieces.append(text[pos:])
  text = _MALFORMED_CALL_RE.sub("", "".join(pieces)).lstrip()
  cut = text.find("\n\n")
  return text if cut < 0 else text[:cut]


def has_call_text(prediction: str) -> bool:
  """True if the output holds call text: a "[" opening "Tool(", or a bracketed "->"."""
  return bool(_CALL_TEXT_RE.search(str(prediction)))


def is_empty(prediction: str) -> bool:
  """True if the output has no words of its own (only calls, whitespace or punctuation)."""
  return not normalize_words(answer_text(prediction))


def contains_answer(prediction: str, answers: Sequence[str], n: int) -> bool:
  """True if a gold answer's words start within the first n words of the output."""
  words = normalize_words(answer_text(prediction))
  for answer in answers:
    gold = normalize_words(answer)
    if not gold:
      continue
    for start in range(min(n, len(words) - len(gold) + 1)):
      if words[start:start + len(gold)] == gold:
        return True
  return False


# --- numbers ---------------------------------------------------------------------------------
_NUMBER_RE = re.compile(
    r"(?<![\w.])(-?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:/(\d+)(?![\d/]))?"
    r"|(?<![\w.])(-?)(\.\d+)")


def _number_from_match(m: re.Match) -> Optional[float]:
  if m.group(6) is not None:  # ".5"
    value = float(m.group(6))
    return -value if m.group(5) else value
  sign, whole, decimals, denominator = m.group(1), m.group(2), m.group(3), m.group(4)
  value = float(whole.replace(",", "") + (decimals or ""))
  if denominator is not None and not decimals:
    if int(denominator) == 0:
      return None
    value /= int(denominator)
  return -value if sign else value


def first_number(text: str) -> Optional[float]:
  """The first number written in `text` (None if there is none)."""
  for m in _NUMBER_RE.finditer(str(text)):
    value = _number_from_match(m)
    if value is not None:
      return value
  return None


def parse_number(text: str) -> Optional[float]:
  """A gold answer as a number: the whole string must be one number ('-(1/3)' allowed)."""
  s = str(text).strip().replace(" ", "")
  negative = s.startswith("-(") and s.endswith(")")
  if negative:
    s = s[2:-1]
  m = _NUMBER_RE.fullmatch(s)
  if m is None:
    return None
  value = _number_from_match(m)
  if value is None:
    return None
  return -value if negative else value


def numbers_match(predicted: float, gold: float) -> bool:
  if not (math.isfinite(predicted) and math.isfinite(gold)):
    return False
  if math.isclose(predicted, gold, rel_tol=1e-6, abs_tol=1e-9):
    return True
  return round(predicted, 2) == round(gold, 2)


# --- dates -----------------------------------------------------------------------------------
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH_ALT = "|".join([m for m in MONTHS] + [m[:3] for m in MONTHS if m != "may"] + ["sept"])
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_DATE_PATTERNS = (
    ("ymd", re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")),
    ("mdy", re.compile(rf"\b({_MONTH_ALT})\.?\s+{_DAY},?\s+(\d{{4}})\b", re.I)),
    ("dmy", re.compile(rf"(?<!\d){_DAY}\s+(?:of\s+)?({_MONTH_ALT})\.?,?\s+(\d{{4}})\b", re.I)),
    ("us", re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])")),
)
_WEEKDAY_RE = re.compile(r"\b(" + "|".join(WEEKDAYS) + r")\b", re.I)


def _month_number(name: str) -> int:
  name = name.lower().rstrip(".")
  for i, month in enumerate(MONTHS):
    if month.startswith(name[:3]):
      return i + 1
  raise ValueError(name)


def _date_from(kind: str, groups: Sequence[str]) -> Optional[datetime.date]:
  try:
    if kind == "ymd":
      y, m, d = int(groups[0]), int(groups[1]), int(groups[2])
    elif kind == "mdy":
      m, d, y = _month_number(groups[0]), int(groups[1]), int(groups[2])
    elif kind == "dmy":
      d, m, y = int(groups[0]), _month_number(groups[1]), int(groups[2])
    else:
      m, d, y = int(groups[0]), int(groups[1]), int(groups[2])
    return datetime.date(y, m, d)
  except ValueError:
    return None


def first_date(text: str) -> Optional[datetime.date]:
  """The first complete, valid date written in `text` (None if there is none)."""
  text = str(text)
  found = []
  for kind, pattern in _DATE_PATTERNS:
    for m in pattern.finditer(text):
      date = _date_from(kind, m.groups())
      if date is not None:
        found.append((m.start(), date))
        break
  return min(found)[1] if found else None


def parse_iso_date(text: str) -> Optional[datetime.date]:
  try:
    return datetime.date.fromisoformat(str(text).strip())
  except ValueError:
    return None


def first_weekday(text: str) -> Optional[str]:
  m = _WEEKDAY_RE.search(strip_accents(str(text)))
  return m.group(1).lower() if m else None


# --- one example -----------------------------------------------------------------------------
def is_correct(prediction: str, answers: Sequence[str], match: str) -> bool:
  """Whether `prediction` answers correctly under `match` (a spec, module docstring)."""
  kind, n = parse_match(match)
  if isinstance(answers, str):
    answers = [answers]
  if kind == WORDS:
    return contains_answer(prediction, answers, n)
  text = answer_text(prediction)
  if kind == NUMBER:
    predicted = first_number(text)
    golds = [g for g in (parse_number(a) for a in answers) if g is not None]
    return predicted is not None and any(numbers_match(predicted, g) for g in golds)
  if kind == DATE:
    predicted = first_date(text)
    return predicted is not None and predicted in {parse_iso_date(a) for a in answers}
  predicted = first_weekday(text)
  return predicted is not None and predicted in {a.strip().lower() for a in answers}


def result_holds_answer(result: str, answers: Sequence[str], match: str) -> bool:
  """Whether a tool's result holds the answer: `is_correct` of the result as an output, or
  for a number answer any number in it ("Sunday, January 30, 2011." holds 2011)."""
  if is_correct(result, answers, match):
    return True
  if parse_match(match)[0] != NUMBER:
    return False
  golds = [g for g in (parse_number(a) for a in answers) if g is not None]
  values = [v for v in map(_number_from_match, _NUMBER_RE.finditer(result)) if v is not None]
  return any(numbers_match(v, g) for v in values for g in golds)


def check_answers(answers: Sequence[str], match: str) -> Optional[str]:
  """Why `answers` cannot be scored under `match` (None if they can)."""
  try:
    kind, _ = parse_match(match)
  except ValueError as e:
    return str(e)
  if (isinstance(answers, str) or not isinstance(answers, (list, tuple))
      or not answers or not all(isinstance(a, str) and a.strip() for a in answers)):
    return "answers must be a non-empty list of non-empty strings"
  if kind == NUMBER and any(parse_number(a) is None for a in answers):
    return f"a number answer is not a number: {list(answers)!r}"
  if kind == DATE and any(parse_iso_date(a) is None for a in answers):
    return f"a date answer is not YYYY-MM-DD: {list(answers)!r}"
  if kind == WEEKDAY and any(a.strip().lower() not in WEEKDAYS for a in answers):
    return f"a weekday answer is not a weekday name: {list(answers)!r}"
  return None


@dataclasses.dataclass(frozen=True)
class ExampleCall:
  """The first call of one output (made False: the output made none)."""

  made: bool
  tool: Optional[str] = None  # a tool name, or UNPARSED_TOOL
  status: Optional[str] = None  # a tools.STATUSES name or UNFINISHED
  trigger_rank: Optional[int] = None
  trigger_prob: Optional[float] = None
  result: Optional[str] = None  # the tool's result written into the output, if any


def example_call(prediction: str, aux: Optional[Mapping[str, Any]]) -> ExampleCall:
  """The first call of an output from its aux row (call_count scalar, call_* [max_calls])."""
  first = aux_schema.first
  if (not aux or aux_schema.CALL_COUNT not in aux
      or int(first(aux[aux_schema.CALL_COUNT])) <= 0):
    return ExampleCall(made=False)
  spans = [s for s in call_format.find_calls(str(prediction))
           if str(prediction)[s.start:s.start + len(call_format.CALL_START)]
           == call_format.CALL_START]
  tool = spans[0].call.tool if spans else UNPARSED_TOOL
  status = aux_schema.status_name(
      first(aux.get(aux_schema.CALL_STATUS, [aux_schema.STATUS_UNFINISHED])))
  rank = aux.get(aux_schema.CALL_TRIGGER_RANK)
  prob = aux.get(aux_schema.CALL_TRIGGER_PROB)
  result = spans[0].result if spans and status == tool_base.STATUS_OK else None
  return ExampleCall(made=True, tool=tool, status=status, result=result,
                     trigger_rank=None if rank is None else int(first(rank)),
                     trigger_prob=None if prob is None else float(first(prob)))


aux_row = aux_schema.aux_row  # example `index` of batched aux values; the call_* keys only


# --- intervals ------------------------------------------------------------------------------
WILSON_Z = 1.959963984540054  # 95%


def wilson_interval(correct: float, n: float, z: float = WILSON_Z
                    ) -> Tuple[Optional[float], Optional[float]]:
  """The Wilson score interval of a proportion `correct` / `n`, in percent ((None, None)
  when n is 0): the interval every accuracy in the reports carries."""
  if not n or n <= 0:
    return None, None
  if not 0 <= correct <= n:
    raise ValueError(f"wilson_interval: correct must be in [0, n], got {correct} of {n}")
  p = correct / n
  denominator = 1.0 + z * z / n
  centre = (p + z * z / (2 * n)) / denominator
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
  return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


# --- seqio -----------------------------------------------------------------------------------
def postprocess(output: Any, example: Optional[Mapping[str, Any]] = None,
                is_target: bool = False) -> Any:
  """seqio postprocess_fn: a target becomes {"answers", "match"} read from the example's
  `answers` (a JSON list) and `match` features; predictions pass through."""
  if not is_target:
    return output
  if example is None or "answers" not in example or "match" not in example:
    raise ValueError("the eval tasks' targets need the example's 'answers' and 'match'")
  decode = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)
  return {"answers": json.loads(decode(example["answers"])), "match": decode(example["match"])}


def _percent(flags: Sequence[bool]) -> float:
  return 100.0 * float(np.mean(flags)) if len(flags) else float("nan")


def tool_eval_metrics(targets: Sequence[Mapping[str, Any]], predictions: Sequence[str],
                      aux_values: Optional[Mapping[str, Any]]) -> Dict[str, float]:
  """seqio predict_with_aux metric fn: accuracy and call statistics (names above).

  All three arguments are positional without defaults: that signature is how seqio tells
  a predict_with_aux metric (one decode with aux per example) from a predict metric.
  `aux_values` may be None or empty (no call_* keys: no calls)."""
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
  correct = [is_correct(p, t["answers"], t["match"]) for t, p in zip(targets, predictions)]
  calls = [example_call(p, aux_row(aux_values, i)) for i, p in enumerate(predictions)]
  made = [c.made for c in calls]
  metrics = {
      NUM_EXAMPLES: float(len(targets)),
      ACCURACY: _percent(correct),
      CALL_RATE: _percent(made),
      CALL_TEXT_RATE: _percent([has_call_text(p) for p in predictions]),
      EMPTY_RATE: _percent([is_empty(p) for p in predictions]),
      CALL_OK_RATE: _percent([c.status == tool_base.STATUS_OK for c in calls]),
      CALL_RESULT_RIGHT_RATE: _percent([
          c.result is not None and result_holds_answer(c.result, t["answers"], t["match"])
          for c, t in zip(calls, targets)]),
      ACCURACY_WITH_CALL: _percent([ok for ok, m in zip(correct, made) if m]),
      ACCURACY_WITHOUT_CALL: _percent([ok for ok, m in zip(correct, made) if not m]),
  }
  known = set(TOOLS)
  for tool in TOOLS + (UNPARSED_TOOL,):
    metrics[call_rate_name(tool)] = _percent([c.tool == tool for c in calls])
  other = [c.made and c.tool not in known and c.tool != UNPARSED_TOOL for c in calls]
  if any(other):  # a tool name the registry does not have (the call was refused)
    metrics[call_rate_name("other")] = _percent(other)
  ranks = [c.trigger_rank for c in calls if c.made and c.trigger_rank is not None
           and c.trigger_rank >= 0]
  probs = [c.trigger_prob for c in calls if c.made and c.trigger_prob is not None]
  metrics[TRIGGER_RANK_MEAN] = float(np.mean(ranks)) if ranks else float("nan")
  metrics[TRIGGER_PROB_MEAN] = float(np.mean(probs)) if probs else float("nan")
  for r in range(RANK_BINS + 1):
    metrics[rank_bin_name(r)] = 0.0
  for r in ranks:
    metrics[rank_bin_name(r)] += 1.0
  return metrics
