"""The seeded synthetic documents: deterministic per (kind, version, index), versioned ids,
right answers, texts that agree with their dates, and each kind passes its tool's rule."""
import collections
import datetime
import os
import re
import subprocess
import sys

import pytest

from toolformer_jax import corpora
from toolformer_jax.annotate import synthetic_docs
from toolformer_jax.annotate import heuristics

COUNT = 500
KINDS = sorted(synthetic_docs.DOCUMENT_KINDS)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def test_kinds():
  assert KINDS == ["arithmetic", "arithmetic_qa", "dated", "dated_offset_qa", "dated_qa",
                   "geography", "names_mt"]


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_per_index(kind):
  make = synthetic_docs.DOCUMENT_KINDS[kind]
  first = [make(i) for i in range(50)]
  assert [make(i) for i in reversed(range(50))] == first[::-1]  # no state between calls
  assert list(synthetic_docs.documents(kind, 50)) == first
  assert list(synthetic_docs.documents(kind, 10, start=20)) == first[20:30]
  assert len({(d.text, d.date) for d in first}) > 40  # and not all alike


# Pinned v1 output: changing a template or the seeding needs a new VERSION.
GOLDEN = [
    corpora.Document(id="arithmetic-v1-000000", text="Lena had 220 shells and got 893 more, "
                     "so Lena had 1113 shells.", language="en"),
    corpora.Document(id="arithmetic-v1-000007", text="Maya had 993 stamps and gave away "
                     "525, so 468 stamps were left.", language="en"),
    corpora.Document(id="dated-v1-000000", text="This note was written on a Sunday. Tonight "
                     "is the science exhibition, so the hall closes early.",
                     date="2026-10-11", language="en"),
    corpora.Document(id="dated-v1-000001", text="It is April 2015, and the preparations for "
                     "the chess final have started.", date="2015-04-06", language="en"),
    corpora.Document(id="arithmetic_qa-v1-000001", text="Question: Ravi had 203 marbles and "
                     "gave away 165. How many marbles were left?\nAnswer: 38", language="en"),
    corpora.Document(id="arithmetic_qa-v1-000004", text="Question: What is 123 divided by 3?"
                     "\nAnswer: 41", language="en"),
    corpora.Document(id="dated_qa-v1-000000", text="Question: What is the date today?\n"
                     "Answer: January 19, 2018", date="2018-01-19", language="en"),
    corpora.Document(id="dated_offset_qa-v1-000000", text="Question: Which date was 93 days "
                     "ago?\nAnswer: January 28, 2015", date="2015-05-01", language="en"),
    corpora.Document(id="dated_offset_qa-v1-000001", text="Question: 44 years from now, which "
                     "year will it be?\nAnswer: 2069", date="2025-07-28", language="en"),
]


@pytest.mark.parametrize("expected", GOLDEN, ids=lambda d: d.id)
def test_pinned_documents(expected):
  kind, _, index = expected.id.split("-")
  assert kind in KINDS
  assert synthetic_docs.DOCUMENT_KINDS[kind](int(index)) == expected


def test_same_documents_in_another_process():
  """Seeds are strings hashed by `random` itself, not by Python's randomized hash()."""
  code = ("from toolformer_jax.annotate import synthetic_docs; "
          "print([(d.id, d.text, d.date) for k in sorted(synthetic_docs.DOCUMENT_KINDS) "
          "for d in synthetic_docs.documents(k, 20)])")
  env = dict(os.environ, PYTHONHASHSEED="12345")
  out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                       capture_output=True, text=True).stdout.strip()
  here = [(d.id, d.text, d.date) for k in KINDS for d in synthetic_docs.documents(k, 20)]
  assert out == repr(here)


@pytest.mark.parametrize("kind", KINDS)
def test_versioned_ids(kind, monkeypatch):
  module = sys.modules[synthetic_docs.DOCUMENT_KINDS[kind].__module__]  # the kind's VERSION
  docs = list(synthetic_docs.documents(kind, COUNT))
  assert all(re.fullmatch(rf"{kind}-{module.VERSION}-\d{{6}}", d.id) for d in docs)
  assert [int(d.id.rsplit("-", 1)[1]) for d in docs] == list(range(COUNT))
  assert synthetic_docs.DOCUMENT_KINDS[kind](1234567).id == f"{kind}-{module.VERSION}-1234567"
  monkeypatch.setattr(module, "VERSION", "v999")
  other = list(synthetic_docs.documents(kind, COUNT))
  assert all(d.id.startswith(f"{kind}-v999-") for d in other)
  # the version seeds the documents too: another version is another corpus
  assert sum(a.text != b.text for a, b in zip(docs, other)) > COUNT * 0.9


def test_generate_rejects_bad_arguments():
  with pytest.raises(ValueError, match="unknown document kind 'weather'"):
    list(synthetic_docs.documents("weather", 1))
  with pytest.raises(ValueError, match="count must be >= 0"):
    list(synthetic_docs.documents("dated", -1))
  assert not list(synthetic_docs.documents("dated", 0))


ARITHMETIC = {
    "+": re.compile(r"(\w+) had (\d+) (\w+) and got (\d+) more, so \1 had (\d+) \3\."),
    "-": re.compile(r"\w+ had (\d+) (\w+) and gave away (\d+), so (\d+) \2 were left\."),
    "*": re.compile(r"Each box holds (\d+) (\w+)\. \w+ filled (\d+) boxes, which makes "
                    r"(\d+) \2 in all\."),
    "/": re.compile(r"\w+ shared (\d+) (\w+) equally among (\d+) friends, so each friend "
                    r"got (\d+) \2\."),
}


def _check_arithmetic(text):
  """The operation a document states; asserts its stated answer is right."""
  for op, pattern in ARITHMETIC.items():
    m = pattern.fullmatch(text)
    if m is None:
      continue
    if op == "+":
      a, b, answer = int(m[2]), int(m[4]), int(m[5])
      assert a + b == answer, text
    elif op == "-":
      a, b, answer = int(m[1]), int(m[3]), int(m[4])
      assert a - b == answer and answer > 0, text
    elif op == "*":
      a, b, answer = int(m[1]), int(m[3]), int(m[4])
      assert a * b == answer, text
    else:
      total, friends, each = int(m[1]), int(m[3]), int(m[4])
      assert total % friends == 0 and total // friends == each, text
    return op
  raise AssertionError(f"no template matches {text!r}")


def test_every_arithmetic_answer_is_right():
  ops = collections.Counter(_check_arithmetic(d.text)
                            for d in synthetic_docs.documents("arithmetic", COUNT))
  assert set(ops) == set("+-*/") and min(ops.values()) > COUNT / 8


DATED = (
    re.compile(r"This note was written on a (?P<weekday>\w+)\. Tonight is .+, so the hall "
               r"closes early\."),
    re.compile(r"It is (?P<month>\w+) (?P<year>\d{4}), and the preparations for .+ have "
               r"started\."),
    re.compile(r"Today is (?P<weekday>\w+), (?P<month>\w+) (?P<day>\d{1,2})\. Volunteers "
               r"for .+ meet at noon\."),
)


def test_dated_text_agrees_with_its_date():
  templates = collections.Counter()
  for d in synthetic_docs.documents("dated", COUNT):
    day = datetime.date.fromisoformat(d.date)
    assert datetime.date(2015, 1, 1) <= day <= datetime.date(2027, 1, 1)
    matches = [(k, p.fullmatch(d.text)) for k, p in enumerate(DATED) if p.fullmatch(d.text)]
    assert len(matches) == 1, d.text
    template, m = matches[0]
    templates[template] += 1
    named = m.groupdict()
    if "weekday" in named:
      assert named["weekday"] == WEEKDAYS[day.weekday()], (d.date, d.text)
    if "month" in named:
      assert named["month"] == MONTHS[day.month - 1], (d.date, d.text)
    if "day" in named:
      assert int(named["day"]) == day.day, (d.date, d.text)
    if "year" in named:
      assert int(named["year"]) == day.year, (d.date, d.text)
  assert sorted(templates) == [0, 1, 2] and min(templates.values()) > COUNT / 6


def test_documents_read_back_as_valid_records():
  """Generated documents satisfy the corpus record rules (a jsonl round trip keeps them)."""
  stats = corpora.ReadStats()
  for kind in KINDS:
    for d in synthetic_docs.documents(kind, 50):
      record = {"id": d.id, "text": d.text, "date": d.date, "language": d.language}
      assert corpora.document_from_record(record, stats, "", "") == d
  assert stats.skipped == 0


QA_FORMS = {
    "+": re.compile(r"\w+ had (\d+) (\w+) and got (\d+) more\. How many \2 did \w+ end up "
                    r"with\?"),
    "-": re.compile(r"\w+ had (\d+) (\w+) and gave away (\d+)\. How many \2 were left\?"),
    "*": re.compile(r"Each box holds (\d+) (\w+) and \w+ filled (\d+) boxes\. How many \2 "
                    r"is that\?"),
    "/": re.compile(r"\w+ shared (\d+) (\w+) equally among (\d+) friends\. How many \2 did "
                    r"each friend get\?"),
}
BARE = re.compile(r"What is (-?\d+) (plus|minus|times|divided by|[-+*/]) (-?\d+)\?")
WORDS = {"plus": "+", "minus": "-", "times": "*", "divided by": "/"}


def test_every_arithmetic_question_has_the_right_answer():
  forms = collections.Counter()
  for d in synthetic_docs.documents("arithmetic_qa", COUNT):
    question, answer = re.fullmatch(r"Question: (.+)\nAnswer: (-?\d+)", d.text).groups()
    bare = BARE.fullmatch(question)
    if bare:
      a, op, b = int(bare[1]), WORDS.get(bare[2], bare[2]), int(bare[3])
      forms["words" if bare[2] in WORDS else
            "signed" if min(a, b) < 0 else "symbols"] += 1
    else:
      (op, m), = [(o, p.fullmatch(question)) for o, p in QA_FORMS.items()
                  if p.fullmatch(question)]
      a, b = int(m[1]), int(m[3])
      forms["problem"] += 1
    expected = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
    assert (op != "/" or a % b == 0) and int(answer) == expected, d.text
    assert heuristics.select("Calculator", [d])[1]["kept"] == 1, d.text
  assert set(forms) == {"words", "symbols", "signed", "problem"}
  assert min(forms.values()) > COUNT / 10


def test_dated_questions_are_answered_from_the_records_date():
  kinds = collections.Counter()
  for d in synthetic_docs.documents("dated_qa", COUNT):
    day = datetime.date.fromisoformat(d.date)
    question, answer = re.fullmatch(r"Question: (.+)\nAnswer: (.+)", d.text).groups()
    expected = {"Which day of the week is it today?": WEEKDAYS[day.weekday()],
                "Which year is it now?": str(day.year),
                "What is the date today?": f"{MONTHS[day.month - 1]} {day.day}, {day.year}",
                "Which month are we in?": MONTHS[day.month - 1]}[question]
    assert answer == expected, (d.date, d.text)
    kinds[question] += 1
  assert len(kinds) == 4 and min(kinds.values()) > COUNT / 6


def test_offset_questions_are_answered_by_the_calendars_offset_call():
  """The span a question names ("3 days ago") is a Calendar argument whose result, on the
  record's date, holds the answer; and the answer agrees with the standard library."""
  from toolformer_jax.tools import calendar_tool
  tool = calendar_tool.Calendar()
  words = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
           "nine": 9, "ten": 10}
  asked = collections.Counter()
  for d in synthetic_docs.documents("dated_offset_qa", COUNT):
    today = datetime.date.fromisoformat(d.date)
    question, answer = re.fullmatch(r"Question: (.+)\nAnswer: (.+)", d.text).groups()
    until = re.search(rf"((?:{'|'.join(MONTHS)}) \d+, \d{{4}})(?:\?| is how many)", question)
    if until:  # the days until a date: Calendar(<date>) says how many
      day = datetime.datetime.strptime(until[1], "%B %d, %Y").date()
      assert answer == str((day - today).days) and 2 <= int(answer) <= 400, d.text
      assert f" is {answer} days from today." in tool(until[1], {"date": d.date}), d.text
      asked["until"] += 1
      continue
    span = re.search(r"(\w+) (day|week|year)s? (ago|from now)", question, re.I)
    count = int(words.get(span[1].lower(), span[1]))
    sign = -1 if span[3] == "ago" else 1
    if span[2] == "year":
      expected = str(today.year + sign * count)
    else:
      day = today + datetime.timedelta(days=sign * count * (7 if span[2] == "week" else 1))
      expected = (WEEKDAYS[day.weekday()] if "weekday" in question
                  else f"{MONTHS[day.month - 1]} {day.day}, {day.year}")
    assert answer == expected, d.text
    assert answer in tool(span[0], {"date": d.date}), d.text
    asked[(span[2], span[3], "weekday" in question)] += 1
    assert calendar_tool.date_from_text(question) is None  # the text never states the day
  assert len(asked) == 9 and min(asked.values()) > COUNT / 20


@pytest.mark.parametrize("kind, tool", [("arithmetic", "Calculator"), ("dated", "Calendar"),
                                        ("arithmetic_qa", "Calculator"),
                                        ("dated_qa", "Calendar"),
                                        ("dated_offset_qa", "Calendar")])
def test_each_kind_passes_its_tools_heuristic(kind, tool):
  docs = list(synthetic_docs.documents(kind, COUNT))
  kept, counts = heuristics.select(tool, docs)
  assert counts == {"seen": COUNT, "kept": COUNT}
  assert kept == docs
