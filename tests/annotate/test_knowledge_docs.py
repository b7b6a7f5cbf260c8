"""The knowledge tools' documents: true facts, the entity split, pinned v1 output."""
import re

from toolformer_jax import corpora
from toolformer_jax import geography
from toolformer_jax.annotate import knowledge_docs

COUNT = 600  # > 4 x the 136 train countries: every country, several wordings each


def _pattern(wording: str) -> re.Pattern:
  out = re.escape(wording)
  for field in ("of", "start", "value", "lang", "what", "foreign", "english"):
    out = out.replace(re.escape("{" + field + "}"), f"(?P<{field}>.+?)")
  return re.compile(out)


FACT_PATTERNS = [(relation, _pattern(w)) for relation, wordings in
                 knowledge_docs._WORDINGS.items() for w in wordings]
MT_PATTERNS = [_pattern(w) for w in knowledge_docs._MT_WORDINGS]


def _sentences(text):
  return re.split(r"(?<=[.;])\s+(?=[A-Z\"])", text)


def test_every_geography_sentence_states_its_countrys_fact():
  by_name = {}
  for c in geography.countries():
    by_name[geography.english_country(c.names["en"])] = c
    by_name[geography.english_country(c.names["en"], start=True)] = c
  relations = set()
  for doc in (knowledge_docs.geography_document(i) for i in range(COUNT)):
    subjects = set()
    for sentence in _sentences(doc.text):
      found = [(rel, m) for rel, p in FACT_PATTERNS for m in [p.fullmatch(sentence)] if m]
      assert found, sentence
      relation, m = found[0]
      country = by_name[m.groupdict().get("of") or m.group("start")]
      value = m.group("value")  # a value ending in "." ("Washington D.C.") keeps one
      facts = {"capital": country.capitals, "continent": country.regions,
                       "currency": country.currencies,
                       "language": country.languages}[relation]["en"]
      assert value in facts or value + "." in facts, sentence
      subjects.add(country.code)
      relations.add(relation)
    assert len(subjects) == 1, doc.text  # one country per document
  assert relations == {"capital", "continent", "currency", "language"}


def test_no_heldout_country_is_a_documents_subject():
  heldout = {c.names["en"] for c in geography.countries()
             if corpora.is_heldout_entity(c.names["en"])}
  assert 40 <= len(heldout) <= 80  # ~30% of 194
  subjects = set()
  for i in range(COUNT):
    text = knowledge_docs.geography_document(i).text
    subjects.update(c.names["en"] for c in knowledge_docs.train_countries()
                    if geography.english_country(c.names["en"]) in text
                    or geography.english_country(c.names["en"], start=True) in text)
  assert subjects == {c.names["en"] for c in knowledge_docs.train_countries()}
  for name in heldout:
    for i in range(COUNT):
      doc = knowledge_docs.geography_document(i)
      assert not re.search(rf"\b(?:of|the) {re.escape(name)}(?![\w-])|^{re.escape(name)} ",
                           doc.text), (name, doc.text)


def test_mt_documents_pair_a_foreign_name_with_its_english_one():
  pairs = {(lang, f, e) for c in geography.countries() for lang, _, f, e in
           knowledge_docs._name_pairs(c)}
  languages = set()
  for i in range(COUNT):
    for sentence in _sentences(knowledge_docs.names_mt_document(i).text):
      m = next((m for p in MT_PATTERNS for m in [p.fullmatch(sentence)] if m), None)
      assert m, sentence
      lang = {"Spanish": "es", "French": "fr"}[m.group("lang")]
      assert (lang, m.group("foreign"), m.group("english")) in pairs, sentence
      assert m.group("foreign").lower() != m.group("english").lower()
      languages.add(lang)
  assert languages == {"es", "fr"}
  assert {p[3] for p in knowledge_docs._mt_pool()} <= {
      v for c in knowledge_docs.train_countries()
      for v in (c.names["en"], c.capitals["en"][0], *c.languages["en"])}


def test_annotatable_leads_follow_the_entity_split():
  heldout_country = next(c for c in geography.countries()
                         if corpora.is_heldout_entity(c.names["en"]))
  assert not knowledge_docs.annotatable_lead(heldout_country.names["en"])
  assert not knowledge_docs.annotatable_lead(heldout_country.capitals["en"][0])
  assert not knowledge_docs.annotatable_lead(f"{heldout_country.names['en']} (country)")
  titles = [f"Title {i}" for i in range(3000)]
  validation = [t for t in titles if corpora.is_heldout(t)]
  assert validation and not any(knowledge_docs.annotatable_lead(t) for t in validation)
  share = sum(map(knowledge_docs.annotatable_lead, titles)) / len(titles)
  assert 0.65 < share < 0.75  # 1 - HELDOUT_ENTITY_PER_MILLE / 1000


# Pinned v1 output: changing a wording or the seeding needs a new VERSION.
GOLDEN = {
    0: "The capital city of Afghanistan is Kabul. Afghanistan lies in Asia.",
    1: ("Visitors to Albania often arrive first in its capital, Tirana. Shops in Albania "
        "take payment in the Albanian Lek."),
}
GOLDEN_MT = {0: 'In a Spanish atlas the country appears as "Afganistán"; in English it is '
                "Afghanistan."}


def test_pinned_documents():
  for i, text in GOLDEN.items():
    assert knowledge_docs.geography_document(i) == corpora.Document(
        id=f"geography-v1-{i:06d}", text=text, language="en")
  for i, text in GOLDEN_MT.items():
    assert knowledge_docs.names_mt_document(i).text == text
