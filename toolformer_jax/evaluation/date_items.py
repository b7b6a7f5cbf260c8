"""Questions relative to today, in the image of the paper's synthetic Dateset (Sec. 4.2.6;
generated here from the project's own templates, not the Dateset). In-distribution: their
kinds mirror the annotation corpus's offset questions (the held-out date questions:
heldout_items.py).

  dates_given_v2     today's date is stated in the prompt ("Today is Friday, May 5,
                     2017."), a random day of 2000-2030 per item
  dates_calendar_v2  as in the Dateset, the prompt does not say what day it is; only the
                     Calendar tool knows. Items are distinct (`items.distinct`). Today is
                     the Calendar's fallback date
                     (`toolformer_jax.tools.calendar_tool.DEFAULT_FALLBACK_DATE`, what tool
                     decoding's Calendar returns: no document date is passed to it and the
                     prompt states none); a run that binds another `Calendar.fallback_date`
                     must pass the same `today` to the task.

On dates_given_v2 the Calendar reads the stated date from the text before the call (its
`use_text`), so a call such as Calendar(3 days ago) is answered relative to that day.

Questions and their matches: the weekday some days ago / ahead (`weekday`), the date some
days or weeks ago / ahead (`date`: exact), the number of days until a date and the year
some years ago (`number`). Phrasings differ from the annotation's dated notes and from the
Calendar prompt's examples.
"""
from __future__ import annotations

import datetime
from typing import List, Optional

from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import registry
from toolformer_jax.tools import calendar_tool

_START, _END = datetime.date(2000, 1, 1), datetime.date(2030, 12, 31)
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
                 8: "eight", 9: "nine", 10: "ten"}


def long_date(day: datetime.date) -> str:
  """'January 30, 2023'."""
  return f"{metrics.MONTHS[day.month - 1].capitalize()} {day.day}, {day.year}"


def weekday_name(day: datetime.date) -> str:
  return metrics.WEEKDAYS[day.weekday()].capitalize()


def _days(r, n: int) -> str:
  if n == 1:
    return "1 day"
  return f"{_NUMBER_WORDS[n] if n in _NUMBER_WORDS and r.random() < 0.5 else n} days"


def _question(r, today: datetime.date) -> tuple:
  """(question, targets, answers, match) about `today`."""
  kind = r.randrange(6)
  n = r.choice((1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 45, 60, 90, 100))
  if kind == 0:
    day = today - datetime.timedelta(days=n)
    return (f"What day of the week was it {_days(r, n)} ago?", weekday_name(day),
            (weekday_name(day),), metrics.WEEKDAY)
  if kind == 1:
    day = today + datetime.timedelta(days=n)
    return (f"What day of the week will it be {_days(r, n)} from now?", weekday_name(day),
            (weekday_name(day),), metrics.WEEKDAY)
  if kind == 2:
    day = today - datetime.timedelta(days=n)
    return (f"What was the date {_days(r, n)} ago?", long_date(day), (day.isoformat(),),
            metrics.DATE)
  if kind == 3:
    weeks = r.randint(1, 10)
    day = today + datetime.timedelta(weeks=weeks)
    span = "1 week" if weeks == 1 else f"{weeks} weeks"
    return (f"What will the date be {span} from today?", long_date(day), (day.isoformat(),),
            metrics.DATE)
  if kind == 4:
    day = today + datetime.timedelta(days=r.randint(2, 400))
    left = (day - today).days
    return (f"How many days are left until {long_date(day)}?", str(left), (str(left),),
            metrics.NUMBER)
  years = r.randint(2, 60)
  return (f"What year was it {years} years ago?", str(today.year - years),
          (str(today.year - years),), metrics.NUMBER)


@registry.register("dates_given", "v2", items_lib.DATES, 300,
                   "questions relative to a date stated in the prompt")
def given_date_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  name = "dates_given_v2"
  out = []
  for i in range(count):
    r = items_lib.rng(name, seed, i)
    today = _START + datetime.timedelta(days=r.randint(0, (_END - _START).days))
    question, target, answers, match = _question(r, today)
    stated = f"Today is {weekday_name(today)}, {long_date(today)}."
    out.append(items_lib.EvalItem(
        id=items_lib.item_id(name, seed, i),
        inputs=items_lib.question_prompt(f"{stated} {question}"), targets=target,
        answers=answers, match=match, family=items_lib.DATES))
  return out


def calendar_today(today: Optional[str] = None) -> datetime.date:
  value = today or calendar_tool.DEFAULT_FALLBACK_DATE
  day = calendar_tool.parse_date_value(value)
  if day is None:
    raise ValueError(f"today must be a YYYY-MM-DD date, got {value!r}")
  return day


@registry.register("dates_calendar", "v2", items_lib.DATES, 200,
                   "questions relative to today, a date only the Calendar tool gives")
def calendar_date_items(count: int, seed: int, today: Optional[str] = None
                        ) -> List[items_lib.EvalItem]:
  return today_items("dates_calendar_v2", count, seed, _question, today)


def today_items(full_name: str, count: int, seed: int, question_fn, today: Optional[str]
                ) -> List[items_lib.EvalItem]:
  """`count` distinct items of `question_fn(rng, today) -> (question, target, answers,
  match)` about the Calendar's today (the prompt states no date)."""
  day = calendar_today(today)
  out = []
  drawn = items_lib.distinct(full_name, seed, count, lambda r: question_fn(r, day))
  for i, (question, target, answers, match) in enumerate(drawn):
    out.append(items_lib.EvalItem(
        id=items_lib.item_id(full_name, seed, i), inputs=items_lib.question_prompt(question),
        targets=target, answers=answers, match=match, family=items_lib.DATES))
  return out
