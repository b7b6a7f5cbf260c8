"""Documents where the knowledge tools can help, and the entity split that keeps the facts
eval unseen.

Two seeded, versioned kinds (functions of (kind, version, index), as synthetic_docs'):
  geography  a few sentences about one country whose later words state facts QA and
             WikiSearch return: "The capital of Peru is Lima. Peru lies in South America."
             (several wordings per fact, the fact's value last).
  names_mt   a country's, capital's or language's name in Spanish or French standing in
             English text, its English meaning following: 'Spanish speakers call the
             country "Alemania", which is Germany in English.' (MT's material; the pairs
             are the geography package's own names, not machine translations).

The entity split (`corpora.is_heldout_entity`): a held-out country is never the subject of
a document here, and `annotatable_lead` keeps out of the annotation corpus the Wikipedia
leads of held-out entities and of held-out countries' names and capitals. The facts eval
(evaluation/fact_items.py) asks only about held-out entities; the tools' indexes hold all.
"""

from __future__ import annotations

import functools
import random
from typing import FrozenSet, List, Tuple

from toolformer_jax import corpora
from toolformer_jax import geography

VERSION = "v1"

# (relation, wordings): {of} the country after "of", {start} at a sentence start, {value}
# the fact (always last, so that a call before it can help the words that follow).
_WORDINGS = {
    "capital": ("The capital of {of} is {value}.",
                "The capital city of {of} is {value}.",
                "Visitors to {of} often arrive first in its capital, {value}.",
                "The government of {of} sits in the capital, {value}."),
    "continent": ("{start} is a country in {value}.",
                  "{start} lies in {value}.",
                  "On a map, {start} is found in {value}."),
    "currency": ("The official currency of {of} is the {value}.",
                 "In {of}, prices are given in the {value}.",
                 "Shops in {of} take payment in the {value}."),
    "language": ("The official language of {of} is {value}.",
                 "{start} has one official language, {value}.",
                 "Laws in {of} are written in {value}."),
}
_LANGUAGE_NAMES = {"es": "Spanish", "fr": "French"}
# (what is named, wording): {lang} Spanish/French, {foreign} the foreign name, {english}.
_MT_WORDINGS = (
    ('{lang} speakers call the {what} "{foreign}", which is {english} in English.'),
    ('In a {lang} atlas the {what} appears as "{foreign}"; in English it is {english}.'),
    ('The {lang} name "{foreign}" refers to the {what} known in English as {english}.'),
)


def _rng(kind: str, index: int) -> random.Random:
  return random.Random(f"toolformer-knowledge-{kind}-{VERSION}-{index}")


def _base_title(title: str) -> str:
  """'Georgia (country)' -> 'Georgia'."""
  return title.split(" (", 1)[0].strip()


@functools.lru_cache(maxsize=None)
def heldout_country_names() -> FrozenSet[str]:
  """English names and capitals of the held-out countries (their leads stay out too)."""
  names = set()
  for country in geography.countries():
    if corpora.is_heldout_entity(country.names["en"]):
      names.add(country.names["en"])
      names.update(country.capitals["en"])
  return frozenset(names)


def annotatable_lead(title: str) -> bool:
  """May the Wikipedia lead titled `title` be annotated? Not if it is a held-out entity
  (every LM validation document is one) or names a held-out country or its capital."""
  base = _base_title(title)
  return not (corpora.is_heldout_entity(title) or corpora.is_heldout_entity(base)
              or base in heldout_country_names())


@functools.lru_cache(maxsize=None)
def train_countries() -> Tuple[geography.Country, ...]:
  """The countries whose facts may be annotated (sorted by code)."""
  return tuple(c for c in geography.countries()
               if not corpora.is_heldout_entity(c.names["en"]))


def _facts(country: geography.Country) -> List[Tuple[str, str]]:
  """(relation, English value) of the facts one country has (one language only)."""
  out = [("capital", country.capitals["en"][0]), ("continent", country.regions["en"][0])]
  if country.currencies["en"]:
    out.append(("currency", country.currencies["en"][0]))
  if country.num_languages == 1 and country.languages["en"]:
    out.append(("language", country.languages["en"][0]))
  return out


def _end(sentence: str) -> str:
  """One full stop at the end where a value brings its own ('Washington, D.C.')."""
  return sentence[:-1] if sentence.endswith("..") else sentence


def geography_document(index: int) -> corpora.Document:
  """Two to four facts of one train country, each in a wording drawn for this index."""
  countries = train_countries()
  country = countries[index % len(countries)]
  r = _rng("geography", index)
  facts = _facts(country)
  r.shuffle(facts)
  facts = facts[:r.randint(min(2, len(facts)), len(facts))]
  name = country.names["en"]
  of, start = geography.english_country(name), geography.english_country(name, start=True)
  text = " ".join(_end(r.choice(_WORDINGS[relation]).format(of=of, start=start, value=value))
                  for relation, value in facts)
  return corpora.Document(id=f"geography-{VERSION}-{index:06d}", text=text, language="en")


def _name_pairs(country: geography.Country) -> List[Tuple[str, str, str, str]]:
  """(language, what, foreign name, English name) where the two names differ."""
  out = []
  for lang in _LANGUAGE_NAMES:
    pairs = [("country", country.names.get(lang), country.names["en"]),
             ("capital", (country.capitals.get(lang) or ("",))[0], country.capitals["en"][0])]
    if country.num_languages == 1 and country.languages.get(lang):
      pairs.append(("language", country.languages[lang][0], country.languages["en"][0]))
    # Names with a full stop ("Washington D. C.") would end the quoted phrase early.
    out += [(lang, what, foreign, english) for what, foreign, english in pairs
            if foreign and english and foreign.lower() != english.lower()
            and "." not in foreign + english]
  return out


@functools.lru_cache(maxsize=None)
def _mt_pool() -> Tuple[Tuple[str, str, str, str], ...]:
  return tuple(p for c in train_countries() for p in _name_pairs(c))


def names_mt_document(index: int) -> corpora.Document:
  """One or two foreign names of train countries' facts with their English meaning."""
  pool = _mt_pool()
  r = _rng("names_mt", index)
  chosen = [pool[index % len(pool)]] + ([r.choice(pool)] if r.random() < 0.5 else [])
  sentences = []
  for lang, what, foreign, english in chosen:
    what = {"country": "country", "capital": "city", "language": "language"}[what]
    sentences.append(r.choice(_MT_WORDINGS).format(
        lang=_LANGUAGE_NAMES[lang], what=what, foreign=foreign, english=english))
  return corpora.Document(id=f"names_mt-{VERSION}-{index:06d}", text=" ".join(sentences),
                          language="en")
