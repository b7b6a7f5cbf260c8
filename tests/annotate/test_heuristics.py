"""Per-tool document heuristics: one table per rule, the bounded Calculator search against a
brute-force reference, and `select`'s counts."""
import itertools
import random
import time

import re

import pytest

from toolformer_jax import corpora
from toolformer_jax.annotate import heuristics
from toolformer_jax.tools import registry

CFG = heuristics.HeuristicsConfig()


def doc(text, date=None, doc_id="d"):
  return corpora.Document(id=doc_id, text=text, date=date)


# --- Calculator ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("no digits", []),
    ("Of 1,200 seats, 300 were empty and 900 taken.", [1200, 300, 900]),
    ("12,345,678 people", [12345678]),
    ("A 2.5 kg bag and a 1.25 kg bag", [2.5, 1.25]),
    ("1,234.5 km", [1234.5]),
    ("lists 3,4,5", [3, 4, 5]),
    ("rooms A2 and B12, the 3rd floor", [3]),  # digits glued after letters are names
    ("version 1.2.3", [1.2]),
    ("on 2019-02-15", [2019, 2, 15]),
])
def test_numbers(text, expected):
  assert heuristics.numbers(text) == expected


@pytest.mark.parametrize("text, expected", [
    # an arithmetic relation among >= 3 numbers, one row per operation
    ("12 + 30 = 42", True),
    ("Ana had 80 stamps, gave away 25 and kept 55.", True),
    ("She bought 3 packs of 4 pens, 12 pens in all.", True),
    ("72 sweets shared by 8 children is 9 each.", True),
    # commas in numbers: the relation only holds if 1,200 is read as 1200
    ("Of 1,200 seats, 300 were empty and 900 taken.", True),
    ("In all, 1,250 came on Monday and 2,750 on Tuesday: 4,000 visitors.", True),
    # decimals, and the 1% tolerance
    ("A 2.5 kg bag and a 1.25 kg bag weigh 3.75 kg together.", True),
    ("22 / 7 = 3.14", True),  # 3.1429, 0.09% off
    ("400 / 1400 = 0.29", False),  # 0.2857, 1.5% off
    # no relation, or too few numbers
    ("In 1969, 3 astronauts flew 384,400 km to the Moon.", False),
    ("Add 12 and 30.", False),
    ("The trip took 7 days, 5 hours and 13 minutes.", False),
    ("", False),
    # trivial relations: an operand comes out again (x * 1, x + 0, or within 1%), or 0
    ("Room 1 of 5 has 5 chairs.", False),  # 5 / 5 = 1 and 5 * 1 = 5
    ("Group 0 had 17 members, group 2 had 17 too.", False),
    ("The war began in 1899, after the 1898 treaty, and lasted 4 years from 1899.", False),
    ("She scored 6, he scored 6, and the draw left 0 points between them.", False),
    ("Twice 6 is 12, and 6 and 6 make 12.", True),  # equal operands are fine
])
def test_calculator(text, expected):
  assert heuristics.calculator(doc(text), CFG) is expected


def test_calculator_min_numbers_and_tolerance_are_config():
  text = "12 + 30 = 42"
  assert not heuristics.calculator(doc(text), heuristics.HeuristicsConfig(min_numbers=4))
  assert heuristics.calculator(doc("400 / 1400 = 0.29"),
                               heuristics.HeuristicsConfig(relative_tolerance=0.02))


def _no_relation(count):
  """Numbers without any non-trivial relation: 1.7 * 2**k."""
  return [1.7 * 2 ** k for k in range(count)]


def test_calculator_tries_only_the_first_max_numbers_and_stays_fast():
  filler = " ".join(f"{v:.1f}" for v in _no_relation(45))
  text = f"{filler}. Finally 12 + 30 = 42."
  start = time.perf_counter()
  assert not heuristics.calculator(doc(text), CFG)  # the relation is past number 40
  assert heuristics.calculator(doc(text), heuristics.HeuristicsConfig(max_numbers=60))
  huge = doc(" ".join(str(7 + 10 * k) for k in range(20000)))
  heuristics.calculator(huge, CFG)
  assert time.perf_counter() - start < 2.0


def test_relation_search_is_subcubic():
  values = _no_relation(160)  # worst case: nothing found, every pair tried
  start = time.perf_counter()
  assert not heuristics.has_arithmetic_relation(values, 0.01)
  # the O(n^3) search took ~5 s here (2 shared cores); O(n^2 log n) takes ~0.2 s
  assert time.perf_counter() - start < 2.0


def _reference(values, tolerance):
  """The rule spelled out: every (a, b, c) of distinct indices, O(n^3)."""
  close = lambda r, c: abs(r - c) <= tolerance * max(abs(c), 1e-9)
  for (i, a), (j, b) in itertools.permutations(enumerate(values), 2):
    for r in (a + b, a - b, a * b, a / b if b and not close(a, b) else None):
      if r is None or close(r, 0) or close(r, a) or close(r, b):
        continue
      if any(close(r, c) for k, c in enumerate(values) if k not in (i, j)):
        return True
  return False


def test_relation_search_equals_the_brute_force_reference():
  rng = random.Random(0)
  found = 0
  for trial in range(600):
    n = rng.randint(0, 7)
    if trial % 3 == 0:
      values = [float(rng.randint(0, 12)) for _ in range(n)]
    elif trial % 3 == 1:
      values = [round(rng.uniform(0, 50), rng.choice((0, 1, 2))) for _ in range(n)]
    else:
      values = [float(rng.choice((1, 2, 3, 4, 6, 8, 12, 24, 100, 101, 1000))) for _ in range(n)]
    tolerance = rng.choice((0.0, 0.01, 0.05))
    expected = _reference(values, tolerance)
    found += expected
    assert heuristics.has_arithmetic_relation(values, tolerance) is expected, (values,
                                                                              tolerance)
  assert 100 < found < 500  # both outcomes well represented


# --- Calendar --------------------------------------------------------------------------------
@pytest.mark.parametrize("date, expected", [
    ("2021-03-04", True),
    (None, False),
    ("", False),
])
def test_calendar(date, expected):
  assert heuristics.calendar(doc("The meeting is next week.", date=date), CFG) is expected


# --- MT --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    # a Spanish, French or Catalan sentence inside English text
    ("We stopped at a small cafe near the station. El camarero nos dijo que la cocina "
     "estaba cerrada hasta las ocho. So we walked on.", True),
    ("My grandmother always said: Cada día es una nueva oportunidad para aprender algo. "
     "I still think about it.", True),
    ("The sign on the door read: Nous sommes fermés pour les vacances jusqu'au mois "
     "prochain. We had to come back later.", True),
    ("Il fait très beau aujourd'hui et nous allons à la plage cet après-midi. The "
     "children loved the idea.", True),
    ("Els nens juguen al parc cada tarda després de l'escola. The park is big.", True),
    # pure English
    ("The library opens at nine in the morning. Students usually arrive before the doors "
     "open and wait outside.", False),
    ("Federico del Sagrado Corazón de Jesús García Lorca was a Spanish poet, playwright, "
     "and theatre director.", False),  # py3langid: es 0.59, under the 0.8 threshold
    # too short to identify, or a language MT does not translate
    ("He waved and said: Hola, amigo. Then he left.", False),
    ("The museum guide explained the history. Wir haben das Museum am Sonntag mit der "
     "ganzen Familie besucht. Then we had lunch.", False),
    ("", False),
])
def test_machine_translation(text, expected):
  assert heuristics.machine_translation(doc(text), CFG) is expected


def test_machine_translation_languages_and_threshold_are_config():
  german = doc("The museum guide explained the history. Wir haben das Museum am Sonntag mit "
               "der ganzen Familie besucht. Then we had lunch.")
  assert heuristics.machine_translation(german, heuristics.HeuristicsConfig(
      mt_languages=("de",)))
  lorca = doc("Federico del Sagrado Corazón de Jesús García Lorca was a Spanish poet, "
              "playwright, and theatre director.")
  assert heuristics.machine_translation(lorca, heuristics.HeuristicsConfig(
      mt_min_confidence=0.5))
  spanish = doc("El camarero nos dijo que la cocina estaba cerrada hasta las ocho.")
  assert not heuristics.machine_translation(spanish, heuristics.HeuristicsConfig(
      mt_min_sentence_chars=100))


def test_machine_translation_fast_path_agrees_with_the_full_ranking():
  aliases = {"ext": "es", "an": "es", "ast": "es"}
  languages = frozenset(("es", "ca", "gl", "eu", "fr"))
  leads = list(corpora.read_wikipedia(corpora.bundled_corpus_path("es-es"),
                                      corpora.ReadStats()))[:40]
  sentences = [s for d in leads for s in heuristics._SENTENCE_RE.findall(d.text)]
  sentences += ["Then we had lunch.", "Hola, amigo.", "Marajó is a large coastal island."]
  for sentence in sentences:
    for threshold in (0.3, 0.8):
      language, p = heuristics.sentence_language(sentence, aliases)
      assert heuristics._translatable(sentence, languages, aliases, threshold) is (
          language in languages and p >= threshold), sentence


@pytest.mark.parametrize("language, low, high", [("en-us", 0, 0.01), ("es-es", 0.95, 1),
                                                 ("fr-fr", 0.95, 1)])
def test_machine_translation_on_the_bundled_leads(language, low, high):
  """English leads stay out; a Spanish or French lead after an English sentence gets in."""
  leads = list(corpora.read_wikipedia(corpora.bundled_corpus_path(language),
                                      corpora.ReadStats()))[:100]
  prefix = "" if language == "en-us" else "This is what the encyclopedia says about it. "
  kept = sum(heuristics.machine_translation(doc(prefix + d.text), CFG) for d in leads)
  assert low <= kept / len(leads) <= high


# --- WikiSearch, QA, select ------------------------------------------------------------------
@pytest.mark.parametrize("tool", ["WikiSearch", "QA"])
@pytest.mark.parametrize("text", ["", "Anything at all.", "12 + 30 = 42"])
def test_every_document(tool, text):
  assert heuristics.RULES[tool](doc(text), CFG) is True


def test_every_registered_tool_has_a_rule():
  assert set(registry.DEFAULT_TOOLS) <= set(heuristics.RULES)


DOCS = [
    doc("12 + 30 = 42", doc_id="sum"),
    doc("No numbers here.", date="2020-05-01", doc_id="dated"),
    doc("She bought 3 packs of 4 pens, 12 pens in all.", date="2021-01-02", doc_id="pens"),
    doc("Room 1 of 5 has 5 chairs.", doc_id="room"),
    doc("El camarero nos dijo que la cocina estaba cerrada hasta las ocho.", doc_id="es"),
]


@pytest.mark.parametrize("tool, kept_ids", [
    ("Calculator", ["sum", "pens"]),
    ("Calendar", ["dated", "pens"]),
    ("MT", ["es"]),
    ("WikiSearch", ["sum", "dated", "pens", "room", "es"]),
    ("QA", ["sum", "dated", "pens", "room", "es"]),
])
def test_select_counts(tool, kept_ids):
  kept, counts = heuristics.select(tool, iter(DOCS))  # any iterable, read once
  assert [d.id for d in kept] == kept_ids
  assert counts == {"seen": len(DOCS), "kept": len(kept_ids)}


def test_select_config_empty_input_and_unknown_tool():
  kept, counts = heuristics.select("Calculator", DOCS, heuristics.HeuristicsConfig(
      min_numbers=4))
  assert not kept and counts == {"seen": 5, "kept": 0}
  assert heuristics.select("Calendar", []) == ([], {"seen": 0, "kept": 0})
  with pytest.raises(ValueError, match="no document heuristic for tool 'Weather'"):
    heuristics.select("Weather", DOCS)


@pytest.mark.parametrize("rule, suffix, allowed", [
    ("number", " 42 apples.", True),
    ("number", "42", True),
    ("number", " -3 degrees", True),
    ("number", " \u22123", True),
    ("number", " apples", False),
    ("number", "Answer: 5", False),  # only what follows at once counts
    ("number", "", False),
    ("date", " Monday, May 3", True),
    ("date", " December", True),
    ("date", " 2019.", True),
    ("date", " 20190 km", False),  # not a year
    ("date", " 19 people", False),
    ("date", " 95", True),  # a number that ends the text: an answer such as a count of days
    ("date", " 95 \n", True),
    ("date", " Mondays", False),
    ("date", " Mon", False),
    ("date", "", False),
    ("entity", " Lima.", True),
    ("entity", " \"Alemania\"", True),
    ("entity", " Ãsia", True),
    ("entity", " 1879, in Ulm", True),
    ("entity", " the Peruvian sol", False),
    ("entity", " 42 apples", False),  # not a year
    ("entity", " A", False),  # a lone capital letter is no name
    ("entity", "", False),
])
def test_position_rules(rule, suffix, allowed):
  assert heuristics.allowed_positions(rule, [suffix]) == [allowed]


def _allowed_words(rule, text):
  """The words of `text` a call may stand before (positions at each space)."""
  starts = [m.start() for m in re.finditer(r"\s\S", text)]
  allowed = heuristics.allowed_positions(rule, [text[i:] for i in starts],
                                         (text[:i] for i in starts))
  return [text[i:].split()[0].strip('.,;"') for i, a in zip(starts, allowed) if a]


@pytest.mark.parametrize("rule, text, words", [
    # new_entity: a name or year not yet in the document, inside a sentence.
    ("new_entity", "Visitors to Cuba often arrive in its capital, Havana. Cuba is big.",
     ["Cuba", "Havana"]),
    ("new_entity", "Peru lies in South America.", ["South", "America"]),
    ("new_entity", "Ada Lovelace was born in 1815. In 1815 she lived in London.",
     ["Lovelace", "1815", "London"]),
    # answer_entity: besides, the sentence already names something to ask about, and the
    # position is not inside a name.
    ("answer_entity", "Visitors to Cuba often arrive in its capital, Havana. Cuba is big.",
     ["Havana"]),
    ("answer_entity", "Peru lies in South America. Peru uses the Sol.", ["Sol"]),
    ("answer_entity", 'Spanish speakers call the country "Alemania", which is Germany.',
     ["Germany"]),
    ("answer_entity", "Ada Lovelace was born in London in 1815. The house is in Kent.",
     ["London", "1815"]),
    ("answer_entity", "The capital of Peru is Lima.", ["Lima"]),
])
def test_entity_position_rules_read_the_text_before(rule, text, words):
  assert _allowed_words(rule, text) == words
  with pytest.raises(ValueError, match="needs the text before each position"):
    heuristics.allowed_positions(rule, [" Lima"])


def test_position_rule_none_allows_every_position_and_unknown_rules_fail():
  assert heuristics.allowed_positions(None, ["a", " 1", ""]) == [True, True, True]
  with pytest.raises(ValueError, match="unknown position rule 'weekday'"):
    heuristics.allowed_positions("weekday", ["x"])


# --- MT: quoted phrases ---------------------------------------------------------------------

@pytest.mark.parametrize("text, phrases", [
    ('Spanish speakers call it "Alemania", which is Germany.', ["Alemania"]),
    ("He said \u00ab bonjour \u00bb and \u201cAdi\u00f3s\u201d.", ["Adi\u00f3s", "bonjour"]),
    ('A "42" and a "one two three four five six seven" and "" stay out.', []),
    ('No quotes at all.', []),
])
def test_quoted_phrases(text, phrases):
  assert sorted(heuristics.quoted_phrases(text, max_words=6)) == phrases


def test_a_quoted_phrase_that_mt_translates_selects_the_document():
  docs = [doc('Spanish speakers call the country "Alemania", which is Germany in English.',
              doc_id="name"),
          doc('The French name "Kaboul" refers to the city known as Kabul.', doc_id="fr"),
          doc('Fans called him "the king" for years.', doc_id="english"),
          doc('The word "Xqzvw" means nothing.', doc_id="unknown"),
          doc("El camarero nos dijo que la cocina estaba cerrada hasta las ocho.",
              doc_id="sentence")]
  kept, counts = heuristics.select("MT", docs)
  assert [d.id for d in kept] == ["name", "fr", "sentence"]
  assert counts == {"seen": 5, "kept": 3, "quoted_phrase": 2}
  kept, counts = heuristics.select("MT", docs, heuristics.HeuristicsConfig(
      mt_quoted_phrases=False))
  assert [d.id for d in kept] == ["sentence"] and counts == {"seen": 5, "kept": 1}
