"""Seeded, versioned generators of documents for the Calculator and Calendar tools.

The bundled Wikipedia leads hold little arithmetic and no document dates, so on the
embedded default these give the two tools material: statements ('arithmetic', 'dated')
and the same facts as question-answer pairs ('arithmetic_qa', 'dated_qa': "Question:
...\nAnswer: ...", the shape in which questions are asked at inference). Every document is a function of
(kind, version, index): the same call always yields the same documents. Evaluation
generators use other templates and seeds (tasks/), so no eval item is produced here.
"""

from __future__ import annotations

import datetime
import random
from typing import Iterator

from toolformer_jax import corpora

VERSION = "v1"
_NAMES = ("Tom", "Ana", "Lena", "Omar", "Yuki", "Ravi", "Sara", "Ivan", "Maya", "Noah")
_ITEMS = ("apples", "books", "stamps", "coins", "marbles", "cards", "shells", "stickers")
_EVENTS = ("the library fair", "the town council meeting", "the school concert",
           "the harvest market", "the chess final", "the science exhibition")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _rng(kind: str, index: int) -> random.Random:
  return random.Random(f"toolformer-annotate-{kind}-{VERSION}-{index}")


def arithmetic_document(index: int) -> corpora.Document:
  """One- or two-sentence word problems stated with their answer."""
  r = _rng("arithmetic", index)
  name, item = r.choice(_NAMES), r.choice(_ITEMS)
  op = r.choice("+-*/")
  if op == "+":
    a, b = r.randint(10, 999), r.randint(10, 999)
    text = f"{name} had {a} {item} and got {b} more, so {name} had {a + b} {item}."
  elif op == "-":
    a = r.randint(100, 999)
    b = r.randint(10, a - 1)
    text = f"{name} had {a} {item} and gave away {b}, so {a - b} {item} were left."
  elif op == "*":
    a, b = r.randint(3, 40), r.randint(3, 40)
    text = (f"Each box holds {a} {item}. {name} filled {b} boxes, which makes "
            f"{a * b} {item} in all.")
  else:
    b, q = r.randint(2, 12), r.randint(3, 60)
    text = (f"{name} shared {b * q} {item} equally among {b} friends, so each friend got "
            f"{q} {item}.")
  return corpora.Document(id=f"arithmetic-{VERSION}-{index:06d}", text=text, language="en")


def dated_document(index: int) -> corpora.Document:
  """A note whose text names its own date (the record's date is Calendar's today)."""
  r = _rng("dated", index)
  day = datetime.date(2015, 1, 1) + datetime.timedelta(days=r.randint(0, 365 * 12))
  event = r.choice(_EVENTS)
  weekday, month = _WEEKDAYS[day.weekday()], _MONTHS[day.month - 1]
  template = r.randrange(3)
  if template == 0:
    text = f"This note was written on a {weekday}. Tonight is {event}, so the hall closes early."
  elif template == 1:
    text = f"It is {month} {day.year}, and the preparations for {event} have started."
  else:
    text = (f"Today is {weekday}, {month} {day.day}. Volunteers for {event} meet at "
            f"noon.")
  return corpora.Document(id=f"dated-{VERSION}-{index:06d}", text=text,
                          date=day.isoformat(), language="en")


_OPERATION_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}


def arithmetic_qa_document(index: int) -> corpora.Document:
  """A word problem or a bare operation asked as a question, then its answer."""
  r = _rng("arithmetic_qa", index)
  name, item = r.choice(_NAMES), r.choice(_ITEMS)
  op, form = r.choice("+-*/"), r.randrange(4)
  if op == "+":
    a, b = r.randint(10, 999), r.randint(10, 999)
    result = a + b
    problem = f"{name} had {a} {item} and got {b} more. How many {item} did {name} end up with?"
  elif op == "-":
    a = r.randint(100, 999)
    b = r.randint(10, a - 1)
    result = a - b
    problem = f"{name} had {a} {item} and gave away {b}. How many {item} were left?"
  elif op == "*":
    a, b = r.randint(3, 40), r.randint(3, 40)
    result = a * b
    problem = f"Each box holds {a} {item} and {name} filled {b} boxes. How many {item} is that?"
  else:
    b, result = r.randint(2, 12), r.randint(3, 60)
    a = b * result
    problem = (f"{name} shared {a} {item} equally among {b} friends. How many {item} did "
               f"each friend get?")
  if form == 1:  # the bare operation, in words
    problem = f"What is {a} {_OPERATION_WORDS[op]} {b}?"
  elif form == 2:  # and in symbols
    problem = f"What is {a} {op} {b}?"
  elif form == 3:  # in symbols, with signed operands
    a, b = r.choice((a, -a)), r.choice((b, -b))
    result = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]  # b divides a exactly
    problem = f"What is {a} {op} {b}?"
  return corpora.Document(id=f"arithmetic_qa-{VERSION}-{index:06d}",
                          text=f"Question: {problem}\nAnswer: {result}", language="en")


def dated_qa_document(index: int) -> corpora.Document:
  """A question about the current day, answered from the record's date (Calendar's today)."""
  r = _rng("dated_qa", index)
  day = datetime.date(2015, 1, 1) + datetime.timedelta(days=r.randint(0, 365 * 12))
  weekday, month = _WEEKDAYS[day.weekday()], _MONTHS[day.month - 1]
  kind = r.randrange(4)
  if kind == 0:
    question, answer = "Which day of the week is it today?", weekday
  elif kind == 1:
    question, answer = "Which year is it now?", str(day.year)
  elif kind == 2:
    question, answer = "What is the date today?", f"{month} {day.day}, {day.year}"
  else:
    question, answer = "Which month are we in?", month
  return corpora.Document(id=f"dated_qa-{VERSION}-{index:06d}",
                          text=f"Question: {question}\nAnswer: {answer}",
                          date=day.isoformat(), language="en")


GENERATORS = {"arithmetic": arithmetic_document, "dated": dated_document,
              "arithmetic_qa": arithmetic_qa_document, "dated_qa": dated_qa_document}


def generate(kind: str, count: int, start: int = 0) -> Iterator[corpora.Document]:
  if kind not in GENERATORS:
    raise ValueError(f"unknown generator {kind!r}; known: {sorted(GENERATORS)}")
  if count < 0:
    raise ValueError(f"count must be >= 0, got {count}")
  for index in range(start, start + count):
    yield GENERATORS[kind](index)
