"""Seeded, versioned synthetic documents for the Calculator and Calendar tools.

The bundled Wikipedia leads hold little arithmetic and no document dates, so on the
embedded default these give the two tools material: statements ('arithmetic', 'dated')
and the same facts as question-answer pairs ('arithmetic_qa', 'dated_qa': "Question:
...\nAnswer: ...", the shape in which questions are asked at inference), and questions about
a day some days, weeks or years from the record's date ('dated_offset_qa', answered by an
offset Calendar call such as Calendar(3 days ago)). Every document is a function of
(kind, version, index): the same call always yields the same documents. The eval item
generators (toolformer_jax/evaluation/) use other templates and seeds, so no eval item is
produced here.
"""

from __future__ import annotations

import datetime
import random
from typing import Iterator

from toolformer_jax import corpora
from toolformer_jax.annotate import knowledge_docs

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


_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
                8: "eight", 9: "nine", 10: "ten"}
# (unit, direction) -> question templates; {span} is e.g. "3 days ago" / "2 weeks from now".
_OFFSET_QUESTIONS = {
    ("day", "weekday"): ("Which weekday was {span}?", "{Span}, which weekday was it?",
                         "Which weekday is {span}?", "{Span}, which weekday will it be?"),
    ("day", "date"): ("Which date was {span}?", "Give the date {span}.",
                      "Which date is {span}?", "Give the date {span}."),
    ("week", "date"): ("Which date was {span}?", "Give the date {span}.",
                       "Which date is {span}?", "Give the date {span}."),
    ("year", "year"): ("Which year was {span}?", "{Span}, which year was it?",
                       "Which year is {span}?", "{Span}, which year will it be?"),
}


def dated_offset_qa_document(index: int) -> corpora.Document:
  """A question about the day some days, weeks or years before or after the record's date
  (Calendar's today), answered with that day's weekday, date or year, or about the days
  from today until a date."""
  r = _rng("dated_offset_qa", index)
  today = datetime.date(2015, 1, 1) + datetime.timedelta(days=r.randint(0, 365 * 12))
  kinds = sorted(_OFFSET_QUESTIONS) + [("until", "days")]
  unit, asked = kinds[r.randrange(len(kinds))]
  if unit == "until":  # the days from today to a date, answered by Calendar(<date>)
    day = today + datetime.timedelta(days=r.randint(2, 400))
    said = f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"
    question = r.choice((f"How many days remain until {said}?",
                         f"{said} is how many days away?"))
    return _offset_document(index, today, question, str((day - today).days))
  count = {"day": r.randint(1, 100), "week": r.randint(1, 10), "year": r.randint(2, 60)}[unit]
  past = r.random() < 0.5
  sign = -1 if past else 1
  day = today + datetime.timedelta(days=sign * count * (7 if unit == "week" else 1))
  year = today.year + sign * count  # the only answer of a year question
  said = _COUNT_WORDS[count] if count in _COUNT_WORDS and r.random() < 0.5 else str(count)
  span = f"{said} {unit}{'' if count == 1 else 's'} {'ago' if past else 'from now'}"
  template = _OFFSET_QUESTIONS[(unit, asked)][(0 if past else 2) + r.randrange(2)]
  question = template.format(span=span, Span=span[0].upper() + span[1:])
  answer = {"weekday": _WEEKDAYS[day.weekday()], "year": str(year),
            "date": f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"}[asked]
  return _offset_document(index, today, question, answer)


def _offset_document(index: int, today: datetime.date, question: str, answer: str
                     ) -> corpora.Document:
  # The day is not stated in the text: a stated "Monday, May 4, 2015" draws calls whose
  # result shares its words (measured: wrong calls there gained L- - L+ of 1.5-2.3).
  return corpora.Document(id=f"dated_offset_qa-{VERSION}-{index:06d}",
                          text=f"Question: {question}\nAnswer: {answer}",
                          date=today.isoformat(), language="en")


# Every generated kind (the knowledge tools' kinds: annotate/knowledge_docs.py).
DOCUMENT_KINDS = {"arithmetic": arithmetic_document, "dated": dated_document,
                  "arithmetic_qa": arithmetic_qa_document, "dated_qa": dated_qa_document,
                  "dated_offset_qa": dated_offset_qa_document,
                  "geography": knowledge_docs.geography_document,
                  "names_mt": knowledge_docs.names_mt_document}


# The tools whose calls fit each kind's documents (a kept call of another tool is a
# wrong-tool call: the demo's report counts them per round), and for the Wikipedia leads
# (LEAD_KIND: a document id that names no generated kind). Calendar returns today's date,
# which no undated lead needs.
LEAD_KIND = "wikipedia"
FITTING_TOOLS = {"arithmetic": ("Calculator",), "arithmetic_qa": ("Calculator",),
                 "dated": ("Calendar",), "dated_qa": ("Calendar",),
                 "dated_offset_qa": ("Calendar",), "geography": ("QA", "WikiSearch"),
                 "names_mt": ("MT",), LEAD_KIND: ("QA", "WikiSearch", "Calculator", "MT")}


def kind_of(doc_id: str) -> str:
  """The generated kind of a document id ('geography-v1-000003' -> 'geography'), else
  LEAD_KIND."""
  kind = doc_id.split("-", 1)[0]
  return kind if kind in DOCUMENT_KINDS else LEAD_KIND


def documents(kind: str, count: int, start: int = 0) -> Iterator[corpora.Document]:
  if kind not in DOCUMENT_KINDS:
    raise ValueError(f"unknown document kind {kind!r}; known: {sorted(DOCUMENT_KINDS)}")
  if count < 0:
    raise ValueError(f"count must be >= 0, got {count}")
  for index in range(start, start + count):
    yield DOCUMENT_KINDS[kind](index)
