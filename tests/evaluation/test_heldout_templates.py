"""Held out by construction: no held-out eval template is, or shares four words with, a
template of the annotation corpus.

A template is a rendered text with its slots replaced by placeholders: numbers (digits,
signs, decimals and number words), and the names, objects, events, months and weekdays of
either side's vocabulary. Every corpus document kind (annotate.synthetic_docs) and every
held-out generator is rendered often enough to produce each of its templates (counted
below), and the check runs over those placeholder forms, so a paraphrase that keeps four
words of a corpus wording fails it, whatever numbers or names it is drawn with.
"""
import re

import pytest

from toolformer_jax.annotate import synthetic_docs
from toolformer_jax.evaluation import heldout_items
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import math_items
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import registry

RUN = 4  # words: the longest run a held-out template may share with a corpus one is 3
SLOT = "<>"
_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "ten", "eleven", "twelve")
_SLOT_WORDS = frozenset(w.lower() for w in (
    synthetic_docs._NAMES + synthetic_docs._ITEMS + synthetic_docs._MONTHS  # pylint: disable=protected-access
    + synthetic_docs._WEEKDAYS + math_items.NAMES + math_items.OBJECTS  # pylint: disable=protected-access
    + heldout_items.PEOPLE + _NUMBER_WORDS))
_EVENTS = tuple(synthetic_docs._EVENTS)  # pylint: disable=protected-access
_NUMBER_RE = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def template(text: str) -> tuple:
  """The words of `text` with every slot a placeholder (lower case, no punctuation)."""
  for event in _EVENTS:
    text = text.replace(event, f" {SLOT} ")
  text = _NUMBER_RE.sub(f" {SLOT} ", text)
  words = re.sub(r"[^\w<>']+", " ", text.lower()).split()
  return tuple(SLOT if w in _SLOT_WORDS or w.rstrip("'s") in _SLOT_WORDS else w
               for w in words)


def runs(words: tuple, n: int = RUN) -> set:
  """Every run of n consecutive words none of which is a placeholder."""
  return {words[i:i + n] for i in range(len(words) - n + 1) if SLOT not in words[i:i + n]}


def corpus_templates(count: int = 3000) -> set:
  out = set()
  for kind in synthetic_docs.DOCUMENT_KINDS:
    out |= {template(d.text) for d in synthetic_docs.documents(kind, count)}
  return out


def heldout_generators():
  return {n: g for n, g in registry.generators().items()
          if g.heldout and g.heldout_by == registry.TEMPLATES}


def heldout_templates(seeds=(items_lib.DEV_SEED, items_lib.TEST_SEED), count=100) -> dict:
  out = {}
  for name, generator in heldout_generators().items():
    n = 20 if "gsm_symbolic" in name else count  # reasoning-gym: slow to render
    for seed in seeds:
      for item in generator.generate(n, seed):
        out.setdefault(template(item.inputs), name)
  return out


@pytest.fixture(scope="module")
def corpus():
  return corpus_templates()


@pytest.fixture(scope="module")
def heldout():
  return heldout_templates()


def test_templates_are_rendered_with_placeholders():
  assert template("Question: Tom had 12 apples and got 3 more.\nAnswer: 15") == (
      "question", SLOT, "had", SLOT, SLOT, "and", "got", SLOT, "more", "answer", SLOT)
  assert template("Which weekday was three days ago?") == (
      "which", "weekday", "was", SLOT, "days", "ago")
  assert template("Volunteers for the chess final meet at noon.") == (
      "volunteers", "for", SLOT, "meet", "at", "noon")
  assert runs(("a", "b", SLOT, "c", "d", "e", "f")) == {("c", "d", "e", "f")}


def test_every_template_is_rendered(corpus, heldout):
  # Each corpus kind's branches and each held-out generator's kinds all appear (the
  # counts are the templates the code holds; a new branch raises them).
  assert len(corpus) >= 40
  names = {}
  for t, name in heldout.items():
    names.setdefault(name, set()).add(t)
  assert len(names["math_heldout_v1"]) >= 12  # 10 kinds, unit changes in 3 wordings
  assert len(names["dates_heldout_v1"]) == 6


def test_no_heldout_template_is_a_corpus_template_or_shares_four_words(corpus, heldout):
  corpus_runs = set().union(*(runs(t) for t in corpus))
  for t, name in heldout.items():
    assert t not in corpus, (name, t)
    shared = runs(t) & corpus_runs
    assert not shared, (name, " ".join(t), shared)


def test_the_check_fails_on_a_paraphrase_of_a_corpus_template(corpus):
  """The deliberately broken input: held-out-looking questions that keep a corpus wording
  (other names and numbers, words added or changed) are caught."""
  corpus_runs = set().union(*(runs(t) for t in corpus))
  for text in ("Question: Priya shared 48 feathers equally among 6 friends. How many "
               "feathers did each friend get in the end?\nAnswer: The answer is",
               "Question: Which weekday will it be 12 days from now?\nAnswer:",
               "Question: How many days remain until March 3, 2024?\nAnswer:"):
    assert runs(template(text)) & corpus_runs, text


def test_heldout_items_are_distinct_and_scorable():
  for name, generator in heldout_generators().items():
    if "gsm_symbolic" in name:
      continue
    for seed in (items_lib.DEV_SEED, items_lib.TEST_SEED):
      items = generator.generate(generator.default_count, seed)
      assert len({i.inputs for i in items}) == len(items) == generator.default_count
      assert all(i.problem() is None for i in items)
      assert all(i.inputs.endswith(items_lib.ANSWER_CUE) for i in items)
    dev = {i.inputs for i in generator.generate(50, items_lib.DEV_SEED)}
    test = {i.inputs for i in generator.generate(50, items_lib.TEST_SEED)}
    assert dev != test
  answers = [metrics.parse_number(i.targets)
             for i in registry.generate("math_heldout_v1", 100, items_lib.TEST_SEED)]
  assert all(a is not None and a > 0 for a in answers)


def test_the_in_distribution_date_questions_fail_the_check(corpus):
  """The families labelled in-distribution are so by this very check: their date questions
  keep corpus wordings ("day of the week", "days from now")."""
  corpus_runs = set().union(*(runs(t) for t in corpus))
  for name in ("dates_calendar_v2", "dates_given_v2"):
    generator = registry.get(name)
    assert not generator.heldout
    caught = [i for i in generator.generate(100, items_lib.DEV_SEED)
              if runs(template(i.inputs)) & corpus_runs]
    assert len(caught) >= 20, name
