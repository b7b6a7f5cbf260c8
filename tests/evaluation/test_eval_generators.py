"""Eval generators: deterministic per seed, versioned, scorable, and disjoint from anything
the annotation corpus's synthetic documents (toolformer_jax.annotate.synthetic_docs) can produce."""
import collections
import hashlib
import json
import re

import pytest

from toolformer_jax.annotate import synthetic_docs
from toolformer_jax.evaluation import date_items
from toolformer_jax.evaluation import fact_items
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import math_items
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import registry

GENERATORS = registry.generators()
# What seed 0 gives, per generator: a change here without a new version name would silently
# change a benchmark that earlier reports were computed on. Bump the generator's version
# (and put the new fingerprint here) instead.
FINGERPRINTS = {
    "dates_calendar_v2": "7cafdf97d3417f9a",
    "dates_given_v2": "358a1ffe2a29709a",
    "dates_heldout_v1": "7ba7adfcf0893150",
    "facts_geography_v1": "5b39a75ee2c8096d",
    "facts_heldout_v1": "336aeca02ef27f1b",
    "facts_leads_v1": "a456f45a7662d226",
    "math_basic_arithmetic_v2": "f99027f07ddfbbaf",
    "math_gsm_symbolic_v2": "efda26d92ccdb778",
    "math_heldout_v1": "e006f87d23ed81e3",
    "math_templates_v2": "18c4b21b027030c1",
    "mlqa_es_v2": "6c29f3491f08ede3",
    "mlqa_fr_v2": "b231e44eb65b65b8",
    "notool_context_v1": "5a9cdee3c8f92d43",
    "qa_heldout_v1": "6959bc2fc190ff06",
    "qa_leads_v2": "c9f80269a59c275d",
}
COUNT = 60


def fingerprint(items):
  text = json.dumps([[i.id, i.inputs, i.targets, list(i.answers), i.match] for i in items],
                    ensure_ascii=False)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@pytest.fixture(scope="module")
def seed0():
  return {name: g.generate(COUNT, seed=0) for name, g in GENERATORS.items()}


def test_every_generator_has_a_versioned_name_and_a_family():
  assert sorted(GENERATORS) == sorted(FINGERPRINTS)
  for name, generator in GENERATORS.items():
    assert re.fullmatch(r"[a-z_]+_v\d+", name), name
    assert name == f"{generator.name}_{generator.version}"
    assert generator.family in items_lib.FAMILIES
    assert name.startswith(generator.family + "_")  # the task name's family


def test_generators_are_deterministic_per_seed(seed0):
  for name, generator in GENERATORS.items():
    again = generator.generate(COUNT, seed=0)
    assert again == seed0[name], name
    other = generator.generate(COUNT, seed=1)
    assert [i.inputs for i in other] != [i.inputs for i in seed0[name]], name
    assert len({i.id for i in seed0[name]}) == len(seed0[name]), f"{name}: ids repeat"


def test_fingerprints_pin_each_version(seed0):
  got = {name: fingerprint(items) for name, items in seed0.items()}
  assert got == FINGERPRINTS


def test_items_are_scorable_and_their_own_target_is_correct(seed0):
  for name, items in seed0.items():
    assert len(items) == COUNT, name
    for item in items:
      assert item.problem() is None, (name, item)
      # A model that writes exactly the target is right; one that writes nothing is not.
      assert metrics.is_correct(" " + item.targets, item.answers, item.match), (name, item)
      assert not metrics.is_correct(" I do not know.", item.answers, item.match), (name, item)


def test_each_generator_mixes_its_kinds(seed0):
  kinds = {name: collections.Counter(i.match for i in items) for name, items in seed0.items()}
  assert set(kinds["dates_given_v2"]) == {metrics.DATE, metrics.WEEKDAY, metrics.NUMBER}
  assert set(kinds["dates_calendar_v2"]) == {metrics.DATE, metrics.WEEKDAY, metrics.NUMBER}
  relations = collections.Counter(i.id.rsplit("-", 1)[-1] for i in seed0["facts_geography_v1"])
  assert set(relations) == {"capital", "continent", "currency", "language"}
  languages = {i.language for i in seed0["mlqa_es_v2"]} | {i.language for i in seed0["mlqa_fr_v2"]}
  assert languages == {"es", "fr"}


def test_geography_facts_in_three_languages():
  countries = {c.code: c for c in fact_items.countries()}
  assert len(countries) == 194
  france = countries["FRA"]
  assert france.capitals["en"][0] == "Paris" and "Europe" in france.regions["en"]
  assert "Euro" in france.currencies["en"] and france.languages["fr"] == ("français",)
  assert countries["DEU"].names["es"] == "Alemania"
  assert "Washington" in countries["USA"].capitals["en"]
  english = dict((k, (t, a)) for k, t, a in fact_items.geography_facts("en"))
  assert english["USA-capital"] == ("The capital of the United States is",
                                    countries["USA"].capitals["en"])
  spanish = dict((k, (t, a)) for k, t, a in fact_items.geography_facts("es"))
  assert spanish["GBR-capital"][0] == "¿Cuál es la capital de Reino Unido?"
  assert {"London", "Londres"} <= set(spanish["GBR-capital"][1])


def test_lead_facts_from_descriptions():
  from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
  docs = [corpora.wikipedia_article("Jane Austen", "x", "English novelist (1775–1817)"),
          corpora.wikipedia_article("Qing dynasty", "x", "Manchu-led dynasty of China (1644–1912)"),
          corpora.wikipedia_article("Jochi", "x", "Mongol prince and general (c. 1182 – c. 1225)"),
          corpora.wikipedia_article("Rod Laver", "x", "Australian tennis player (born 1938)"),
          corpora.wikipedia_article("The Great Gatsby", "x", "1925 novel by F. Scott Fitzgerald"),
          corpora.wikipedia_article("Plato", "x", "Greek philosopher (c. 428 – 348 BC)")]
  facts = {(f.title, f.kind): f for f in fact_items.lead_facts(docs)}
  assert sorted(facts) == [("Jane Austen", "born"), ("Jane Austen", "died"),
                           ("Qing dynasty", "began"), ("Qing dynasty", "ended"),
                           ("Rod Laver", "born"), ("The Great Gatsby", "creator"),
                           ("The Great Gatsby", "year")]
  assert fact_items.completion(facts["Jane Austen", "born"]) == (
      "Jane Austen (English novelist) was born in the year")
  assert fact_items.question(facts["The Great Gatsby", "creator"]) == (
      "Who wrote the novel The Great Gatsby?")
  assert facts["The Great Gatsby", "creator"].answers == ("F. Scott Fitzgerald", "Fitzgerald")
  assert fact_items.question(facts["Jane Austen", "died"], "es") == "¿En qué año murió Jane Austen?"
  assert fact_items.question(facts["Qing dynasty", "ended"], "fr") is None


def test_lead_facts_come_from_the_heldout_split_only(seed0):
  from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
  facts = fact_items.leads_facts(heldout_only=True)
  assert len(facts) > 100
  assert all(corpora.is_heldout(f.title) for f in facts)


def test_calendar_dates_are_relative_to_the_calendar_tools_date():
  from toolformer_jax.tools import calendar_tool  # pylint: disable=g-import-not-at-top
  today = date_items.calendar_today()
  assert today.isoformat() == calendar_tool.DEFAULT_FALLBACK_DATE
  items = date_items.calendar_date_items(40, 0, today="2020-02-29")
  year_items = [i for i in items if "years ago" in i.inputs]
  assert year_items and all(
      int(i.targets) == 2020 - int(re.search(r"(\d+) years ago", i.inputs).group(1))
      for i in year_items)
  assert all("Today is" not in i.inputs for i in items)


def _question_text(item):
  return item.inputs.replace("Question:", " ").replace("Answer:", " ")


def test_eval_vocabulary_and_streams_are_apart_from_the_annotation_corpus():
  # Vocabulary: the math templates share no name or object with the annotation's documents.
  template_words = set(metrics.normalize_words(" ".join(
      math_items.NAMES + math_items.OBJECTS + math_items.SHOPS + math_items.PRICED)))
  annotation_words = set(metrics.normalize_words(" ".join(
      synthetic_docs._NAMES + synthetic_docs._ITEMS + synthetic_docs._EVENTS)))  # pylint: disable=protected-access
  assert not template_words & annotation_words
  # Text: tests/evaluation/test_heldout_templates.py (template level, held-out families).
  # And the annotation's own random streams are keyed apart from the eval ones.
  assert items_lib.rng("math_templates_v2", 0, 0).random() != synthetic_docs._rng(  # pylint: disable=protected-access
      "arithmetic", 0).random()


def test_few_shot_demonstrations_are_not_eval_items(seed0):
  demos = set()
  for family, text in items_lib.FEW_SHOT.items():
    assert family in items_lib.EXPECTED_TOOL
    assert f"[{items_lib.EXPECTED_TOOL[family]}(" in text  # demonstrates the family's tool
    demos |= {q.strip() for q in re.findall(r"Question:(.*?)\nAnswer:", text)}
  for items in seed0.values():
    for item in items:
      assert _question_text(item).strip() not in demos
      assert items_lib.with_few_shot(item).endswith(item.inputs)
