"""Retrieval and QA probes generated from a Wikipedia corpus (seeded, versioned).

Two kinds of probe, both with the article they come from:
  * title: the query is an article's title; a hit is a top-1 passage from that article.
  * fact: a question whose answer is stated in the article's description or lead, made
    from four templates:
      life span  "Portuguese novelist (1922–2010)"  -> In what year was X born? / did X die?
      born       "American filmmaker (born 1942)"   -> In what year was X born?
      creator    "1949 dystopian novel by George Orwell" -> Who wrote X?
      capital    "Its capital is Vilnius."           -> What is the capital of X?
    The answer is the span the template matched; exact match uses SQuAD normalisation.
The probe set depends only on the corpus, the seed and PROBES_VERSION.
"""
from __future__ import annotations

import dataclasses
import random
import re
import string
from typing import Iterable, List

from toolformer_jax import corpora

PROBES_VERSION = 1

_LIFE_RE = re.compile(r"\((?:c\. )?([0-9]{3,4})\s*[\u2013-]\s*(?:c\. )?([0-9]{3,4})\)\s*$")
_BORN_RE = re.compile(r"\(born ([0-9]{4})\)\s*$")
_WORK_RE = re.compile(
    r"\b(novel|novella|book|poem|play|treatise|essay|film|painting|opera|symphony|song|"
    r"album|sculpture|ballet)\b.* by ((?:[A-Z][\w.'-]*)(?: (?:[A-Z][\w.'-]*|de|van|von|da))*)"
    r"\s*$")
_CAPITAL_RE = re.compile(r"\b[Ii]ts capital(?: and (?:largest|most populous) city)? is "
                         r"([A-Z][\w-]+(?: (?:(?:de|la|del|of|el|es) )*[A-Z][\w-]+)*)")
_DISAMBIGUATION_RE = re.compile(r"\s*\([^()]*\)$")
_CREATOR_VERBS = {
    "novel": "wrote", "novella": "wrote", "book": "wrote", "poem": "wrote", "play": "wrote",
    "treatise": "wrote", "essay": "wrote", "film": "directed", "painting": "painted",
    "opera": "composed", "symphony": "composed", "song": "wrote", "album": "recorded",
    "sculpture": "made", "ballet": "composed",
}


@dataclasses.dataclass(frozen=True)
class Probe:
  kind: str  # "title" or "fact"
  query: str
  answer: str  # the expected title (title probes) or answer span (fact probes)
  title: str  # the source article
  template: str = ""  # fact probes: born, died, creator, capital


def normalize_answer(text: str) -> str:
  """SQuAD-style normalisation: lowercase, no punctuation/articles, single spaces."""
  text = text.lower()
  text = "".join(c for c in text if c not in string.punctuation and c not in "\u2013\u2014")
  text = re.sub(r"\b(a|an|the)\b", " ", text)
  return " ".join(text.split())


def fact_probes(article: corpora.Document) -> List[Probe]:
  """The fact questions the templates make from one article (possibly none)."""
  description, source = article.description, article.title
  title = _DISAMBIGUATION_RE.sub("", article.title)  # "Utopia (book)" -> "Utopia"
  out = []
  m = _LIFE_RE.search(description)
  if m:
    out.append(Probe("fact", f"In what year was {title} born?", m.group(1), source, "born"))
    out.append(Probe("fact", f"In what year did {title} die?", m.group(2), source, "died"))
  m = _BORN_RE.search(description)
  if m:
    out.append(Probe("fact", f"In what year was {title} born?", m.group(1), source, "born"))
  m = _WORK_RE.search(description)
  if m:
    verb = _CREATOR_VERBS[m.group(1)]
    out.append(Probe("fact", f"Who {verb} the {m.group(1)} {title}?", m.group(2), source,
                     "creator"))
  m = _CAPITAL_RE.search(article.text)
  if m:
    out.append(Probe("fact", f"What is the capital of {title}?", m.group(1), source,
                     "capital"))
  return out


def generate_probes(articles: Iterable[corpora.Document], num_title: int = 100,
                    num_fact: int = 150, seed: int = 0) -> List[Probe]:
  """`num_title` title probes and `num_fact` fact probes sampled with `seed`.

  Fact probes are sampled evenly over templates where a template has few instances.
  """
  articles = list(articles)
  rng = random.Random(f"probes-v{PROBES_VERSION}-{seed}")
  titles = [a for a in articles if len(a.title) >= 3]
  title_probes = [Probe("title", a.title, a.title, a.title)
                  for a in rng.sample(titles, min(num_title, len(titles)))]
  by_template = {}
  for article in articles:
    for probe in fact_probes(article):
      by_template.setdefault(probe.template, []).append(probe)
  facts: List[Probe] = []
  groups = [by_template[k] for k in sorted(by_template)]
  for group in groups:
    rng.shuffle(group)
  # Round-robin over templates so the small ones are represented.
  i = 0
  while len(facts) < num_fact and any(i < len(g) for g in groups):
    for group in groups:
      if i < len(group) and len(facts) < num_fact:
        facts.append(group[i])
    i += 1
  return title_probes + facts
