"""The facts eval held out by entity: every item is about a held-out entity, and nothing the
annotation corpus may hold (knowledge documents, annotatable leads) is about one."""
import re

import pytest

from toolformer_jax import corpora
from toolformer_jax import geography
from toolformer_jax.annotate import knowledge_docs
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import registry

SEEDS = (items_lib.DEV_SEED, items_lib.TEST_SEED)
_GEO_KEY = re.compile(r"(?P<code>[A-Z]{3})-(?:capital|continent|currency|language)")


def entity_generators():
  return {n: g for n, g in registry.generators().items()
          if g.heldout and g.heldout_by == registry.ENTITIES}


def _entity(item, seed) -> str:
  """The entity an item asks about: a country's English name or a lead's title."""
  key = item.id.split(f"-s{seed}-", 1)[1]
  m = _GEO_KEY.fullmatch(key)
  if m:
    return next(c.names["en"] for c in geography.countries() if c.code == m["code"])
  return key.rsplit("-", 1)[0]


@pytest.fixture(scope="module")
def eval_entities():
  out = {}
  for name, generator in entity_generators().items():
    for seed in SEEDS:
      items = generator.generate(None, seed)
      assert len(items) == generator.default_count, name
      out.setdefault(name, set()).update(_entity(i, seed) for i in items)
  return out


def test_there_are_entity_heldout_facts_and_questions():
  assert {g.family for g in entity_generators().values()} == {items_lib.FACTS, items_lib.QA}


def test_every_item_is_about_a_heldout_entity(eval_entities):
  for name, entities in eval_entities.items():
    countries = {c.names["en"] for c in geography.countries()} & entities
    assert len(countries) >= 20 and len(entities - countries) >= 100, name  # both sources
    assert all(corpora.is_heldout_entity(e) for e in entities), name


def test_no_annotatable_document_is_about_an_eval_entity(eval_entities):
  entities = set().union(*eval_entities.values())
  assert not [e for e in entities if knowledge_docs.annotatable_lead(e)]
  train = {c.names["en"] for c in knowledge_docs.train_countries()}
  assert not entities & train
  # The knowledge documents' subjects (every train country, several times over).
  for i in range(3 * len(train)):
    text = knowledge_docs.geography_document(i).text
    for name in entities & {c.names["en"] for c in geography.countries()}:
      assert not re.search(rf"\b(?:of|the) {re.escape(name)}(?![\w-])|^{re.escape(name)} ",
                           text), (name, text)


def test_a_corpus_of_every_annotatable_lead_holds_no_eval_entity(eval_entities):
  entities = set().union(*eval_entities.values())
  leads = [d for d in corpora.read_wikipedia(corpora.bundled_corpus_path())
           if knowledge_docs.annotatable_lead(d.title)]
  assert len(leads) > 5000
  assert not {d.title for d in leads} & entities
