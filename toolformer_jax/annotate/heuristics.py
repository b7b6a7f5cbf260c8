"""Per-tool document heuristics (the paper, Sec. 3 / App. A): which documents a tool's
prompt is run on. Every rule is a small pure function of a document; `select` counts.

  Calculator  >= 3 numbers, two of which give a third by + - * / (within 1%, relative);
              trivial relations do not count: a result equal, within the tolerance, to
              one of its operands (x + 0, x * 1, but also 1899 - 4 ~ 1899 at 1%, which
              made a year mentioned twice look like arithmetic), a result of 0
              (x - x, 0 * y), or x / x = 1. Numbers are
              unsigned integers or decimals, with optional thousands commas (1,234.5);
              only the first `max_numbers` of a document are tried, in O(n^2 log n).
  Calendar    the document has a date (its record's date, Calendar's "today")
  MT          some sentence (>= `mt_min_sentence_chars`) is identified, with probability
              >= `mt_min_confidence`, as one of the languages MT translates
              (`mt_languages`; default: the MT tool's own, es ca gl eu fr), py3langid's
              regional varieties of Spanish counted as Spanish (as the MT tool does).
              English prose with Spanish names is rarely taken for Spanish at 0.8 (1 of
              the 10,033 bundled English leads: a sentence that is mostly a long Spanish
              name); other languages, which the MT tool would refuse, are not selected.
              Or (`mt_quoted_phrases`) a quoted phrase of at most `mt_quoted_max_words`
              words that the MT tool translates into something else: names and short
              phrases ("Alemania", "Kaboul") are too short for language identification,
              so the tool's own dictionaries decide (one batch per `select`).
  WikiSearch, QA  every document

Position rules (an extension; the paper samples positions by p(" [") alone): a tool's
`position_rule` (pipeline.ToolSettings) limits the positions a call may be sampled at to
those whose following text begins, after spaces, with what the tool's result can stand
for: "number" (a digit, optionally signed: Calculator) or "date" (a weekday, a month, a
four-digit year, or a number that ends the text, such as a count of days: Calendar). A small model ranks positions poorly (p(" [") of 0.01-0.1 at
most positions of a short document); the rule spends its k positions where a result helps.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import functools
import re
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from toolformer_jax import corpora

_NUMBER_RE = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])\d+(?:\.\d+)?")
_SENTENCE_RE = re.compile(r"[^.!?]+[.!?]?")
_QUOTED_RE = re.compile(r'"([^"\n]{2,120})"|\u201c([^\u201d\n]{2,120})\u201d|\u00ab\s*([^\u00bb\n]{2,120}?)\s*\u00bb')
_ZERO = 1e-9  # |c| below this counts as 0 in the relative tolerance (as before)


@dataclasses.dataclass(frozen=True)
class HeuristicsConfig:
  min_numbers: int = 3
  max_numbers: int = 40  # more numbers than this: only the first are tried
  relative_tolerance: float = 0.01
  mt_min_sentence_chars: int = 20
  mt_min_confidence: float = 0.8
  mt_languages: Optional[Tuple[str, ...]] = None  # None: the MT tool's source languages
  mt_quoted_phrases: bool = True
  mt_quoted_max_words: int = 6


def numbers(text: str) -> List[float]:
  return [float(m.group().replace(",", "")) for m in _NUMBER_RE.finditer(text)]


def _close(r: float, c: float, tolerance: float) -> bool:
  return abs(r - c) <= tolerance * max(abs(c), _ZERO)


def has_arithmetic_relation(values: List[float], tolerance: float) -> bool:
  """True if a op b == c (within `tolerance`, relative to c) for distinct indices a, b, c
  and op in + - * /, trivial relations excepted (see the module doc).

  Each of the n^2 ordered pairs looks its four results up in the sorted values (bisect),
  so the cost is O(n^2 log n), not the O(n^3) of trying every third number.
  """
  order = sorted(range(len(values)), key=lambda k: values[k])
  ordered = [values[k] for k in order]
  for i, a in enumerate(values):
    for j, b in enumerate(values):
      if i == j:
        continue
      quotient = a / b if b and not _close(a, b, tolerance) else None  # not x / x = 1
      for r in (a + b, a - b, a * b, quotient):
        if r is None or _close(r, 0.0, tolerance) or _close(r, a, tolerance) or _close(
            r, b, tolerance):
          continue  # trivial: 0, or one of the operands again
        lo, hi = _window(r, tolerance)
        for position in range(bisect.bisect_left(ordered, lo), len(ordered)):
          c = ordered[position]
          if c > hi:
            break
          if order[position] not in (i, j) and _close(r, c, tolerance):
            return True
  return False


def _window(r: float, tolerance: float) -> Tuple[float, float]:
  """An interval holding every c with |r - c| <= tolerance * |c| (r not ~0), a little wide.

  Such a c has r's sign and |r| / (1 + tol) <= |c| <= |r| / (1 - tol) (no bound above for
  tol >= 1).
  """
  near, far = abs(r) / (1 + tolerance), (abs(r) / (1 - tolerance) if tolerance < 1
                                         else float("inf"))
  margin = 1e-9 * abs(r)  # rounding in the divisions; `_close` decides
  near, far = near - margin, far + margin
  return (near, far) if r > 0 else (-far, -near)


def calculator(doc: corpora.Document, cfg: HeuristicsConfig) -> bool:
  values = numbers(doc.text)[:cfg.max_numbers]
  return len(values) >= cfg.min_numbers and has_arithmetic_relation(
      values, cfg.relative_tolerance)


def calendar(doc: corpora.Document, cfg: HeuristicsConfig) -> bool:
  del cfg
  return bool(doc.date)


@functools.lru_cache(maxsize=None)
def _language_identifier():
  from py3langid import langid  # pylint: disable=g-import-not-at-top
  return langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)


@functools.lru_cache(maxsize=None)
def _mt_languages(configured: Optional[Tuple[str, ...]]) -> Tuple[frozenset, Dict[str, str]]:
  from toolformer_jax.tools import mt  # pylint: disable=g-import-not-at-top
  languages = mt.DEFAULT_PIPELINES if configured is None else configured
  return frozenset(languages), dict(mt.DEFAULT_LANGUAGE_ALIASES)


def sentence_language(sentence: str, aliases: Dict[str, str]) -> Tuple[str, float]:
  """py3langid's most likely language of `sentence` and its probability, with the
  probabilities of `aliases` (regional varieties) added to their main language."""
  merged: Dict[str, float] = collections.defaultdict(float)
  for language, p in _language_identifier().rank(sentence):
    merged[aliases.get(language, language)] += p
  return max(merged.items(), key=lambda item: item[1])


def _translatable(sentence: str, languages: frozenset, aliases: Dict[str, str],
                  min_confidence: float) -> bool:
  """sentence_language(sentence) is in `languages` with probability >= min_confidence."""
  top, p = _language_identifier().classify(sentence)
  top = aliases.get(top, top)
  if p > 0.5:  # then top's merged probability (>= p) is the largest: decided without rank
    if top not in languages:
      return False
    if p >= min_confidence:
      return True
  language, p = sentence_language(sentence, aliases)
  return language in languages and p >= min_confidence


def quoted_phrases(text: str, max_words: int) -> List[str]:
  """Phrases in double quotes ("...", \u201c...\u201d, \u00ab...\u00bb) of 1-`max_words` words with a letter."""
  out = []
  for m in _QUOTED_RE.finditer(text):
    phrase = next(g for g in m.groups() if g is not None).strip()
    if phrase and len(phrase.split()) <= max_words and any(c.isalpha() for c in phrase):
      out.append(phrase)
  return out


def _normal(text: str) -> str:
  return " ".join(re.findall(r"\w+", text.casefold()))


@functools.lru_cache(maxsize=None)
def _mt_tool():
  from toolformer_jax.tools import mt  # pylint: disable=g-import-not-at-top
  return mt.MT()


def translated_phrases(phrases: List[str]) -> List[bool]:
  """Per phrase, whether the MT tool translates it into other words (one batch)."""
  if not phrases:
    return []
  results = _mt_tool().call_batch([(f'"{p}"', None) for p in phrases])
  return [isinstance(r, str) and _normal(r) != _normal(p) for p, r in zip(phrases, results)]


def _quoted_foreign(documents: List[corpora.Document], cfg: HeuristicsConfig) -> List[bool]:
  """Per document, whether one of its quoted phrases is translated (one MT batch)."""
  phrases = [quoted_phrases(d.text, cfg.mt_quoted_max_words) for d in documents]
  flat = sorted({p for ps in phrases for p in ps})
  translated = dict(zip(flat, translated_phrases(flat)))
  return [any(translated[p] for p in ps) for ps in phrases]


def machine_translation(doc: corpora.Document, cfg: HeuristicsConfig) -> bool:
  """The sentence rule (the quoted-phrase rule needs the MT tool: see `select`)."""
  languages, aliases = _mt_languages(cfg.mt_languages)
  for sentence in _SENTENCE_RE.findall(doc.text):
    if len(sentence.strip()) >= cfg.mt_min_sentence_chars and _translatable(
        sentence, languages, aliases, cfg.mt_min_confidence):
      return True
  return False


def every_document(doc: corpora.Document, cfg: HeuristicsConfig) -> bool:
  del doc, cfg
  return True


RULES: Dict[str, Callable[[corpora.Document, HeuristicsConfig], bool]] = {
    "Calculator": calculator,
    "Calendar": calendar,
    "MT": machine_translation,
    "WikiSearch": every_document,
    "QA": every_document,
}


_WEEKDAY_MONTH = ("Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|"
                  "February|March|April|May|June|July|August|September|October|"
                  "November|December")
_CAPITAL = "A-Z\u00c0-\u00de"  # a name's first letter
_SENTENCE_PUNCT = r"[.!?:;\n][\"')\]]*"  # what ends a sentence, closing quotes included
_ENTITY_RE = re.compile(rf"\s*[\"']?(?:[{_CAPITAL}][\w'-]|\d{{3,4}}\b)")
POSITION_RULES: Dict[str, "re.Pattern[str]"] = {
    "number": re.compile(r"\s*[-\u2212]?\d"),
    # ... or a number that ends the text (an answer: the days until a date)
    "date": re.compile(rf"\s*(?:(?:{_WEEKDAY_MONTH})\b|\d{{4}}\b|\d+\s*$)"),
    # Before a name or a year (what QA and WikiSearch return: "is [QA(...)] Lima").
    "entity": _ENTITY_RE,
    # The same, but only a name or year new to the document and inside a sentence (a
    # sentence's first word is capitalised anyway; a name already written needs no tool):
    # "Peru lies in [QA(...)] South America", not "[..] Peru lies" nor a second "Peru".
    "new_entity": _ENTITY_RE,
    # A new name or year inside a sentence that already names something to ask about (a
    # name past its first word, or a first word the document named before): "The capital
    # of Peru is [QA(...)] Lima", not "Visitors to [..] Cuba" (nothing to look up yet).
    "answer_entity": _ENTITY_RE,
}
# Rules that also read the text before the position (allowed_positions' `prefixes`).
_NEW_WORD_RULES = frozenset({"new_entity", "answer_entity"})
_SUBJECT_RULES = frozenset({"answer_entity"})
_SENTENCE_START_RE = re.compile(rf"(?:^|{_SENTENCE_PUNCT}\s+)(?=\S)")
_SENTENCE_END_RE = re.compile(rf"(?:^|{_SENTENCE_PUNCT})\s*$")
_NAME_RE = re.compile(rf"(?<![\w'-])[\"']?([{_CAPITAL}][\w'-]*|\d{{3,4}}\b)")
_ENDS_IN_NAME_RE = re.compile(rf"(?<![\w'-])[{_CAPITAL}][\w'-]*\s*$")
_FIRST_WORD_RE = re.compile(r"\s*[\"']?([\w'-]+)")


def _has_word(text: str, word: str) -> bool:
  """`word` occurs in `text` as a whole word (case kept)."""
  return re.search(rf"(?<![\w'-]){re.escape(word)}(?![\w'-])", text) is not None


def _new_in_sentence(prefix: str, suffix: str) -> bool:
  """The word starting `suffix` is inside a sentence and not in `prefix` (case kept)."""
  if _SENTENCE_END_RE.search(prefix):
    return False
  word = _FIRST_WORD_RE.match(suffix)
  return word is not None and not _has_word(prefix, word.group(1))


# Capitalised at a sentence start without naming anything.
_FUNCTION_WORDS = frozenset(
    "A An The In On At Of To For From With By As It Its This That These Those There He She "
    "They His Her Their When While After Before During If".split())


def _names_a_subject(prefix: str) -> bool:
  """The sentence ending `prefix` already names something, and `prefix` does not end inside
  a name ("in South [..] America"): a name or year past the sentence's first word, or a
  first word the document named before the sentence."""
  if _ENDS_IN_NAME_RE.search(prefix):
    return False
  starts = [m.end() for m in _SENTENCE_START_RE.finditer(prefix)]
  start = starts[-1] if starts else 0
  sentence, before = prefix[start:], prefix[:start]
  for name in _NAME_RE.finditer(sentence):
    word = name.group(1)
    if name.start() > 0 or (word not in _FUNCTION_WORDS and _has_word(before, word)):
      return True
  return False


def allowed_positions(rule: Optional[str], suffixes: Iterable[str],
                      prefixes: Optional[Iterable[str]] = None) -> List[bool]:
  """Per token position, whether `rule` allows a call before it; `suffixes[i]` is the
  document's text from token i on, `prefixes[i]` the text before it (read only by the
  'new_entity' and 'answer_entity' rules). rule None: every position."""
  suffixes = list(suffixes)
  if rule is None:
    return [True for _ in suffixes]
  if rule not in POSITION_RULES:
    raise ValueError(f"unknown position rule {rule!r}; known: {sorted(POSITION_RULES)}")
  pattern = POSITION_RULES[rule]
  allowed = [pattern.match(text) is not None for text in suffixes]
  if rule in _NEW_WORD_RULES:
    if prefixes is None:
      raise ValueError(f"position rule {rule!r} needs the text before each position")
    subject = rule in _SUBJECT_RULES
    allowed = [a and _new_in_sentence(p, x) and (not subject or _names_a_subject(p))
               for a, p, x in zip(allowed, prefixes, suffixes)]
  return allowed


def select(tool: str, documents: Iterable[corpora.Document],
           cfg: HeuristicsConfig = HeuristicsConfig()
           ) -> Tuple[List[corpora.Document], Dict[str, int]]:
  """The documents `tool` is run on, and counts {'seen', 'kept'}."""
  if tool not in RULES:
    raise ValueError(f"no document heuristic for tool {tool!r}; known: {sorted(RULES)}")
  rule = RULES[tool]
  documents = list(documents)
  chosen = [rule(doc, cfg) for doc in documents]
  counts = collections.Counter(seen=len(documents), kept=sum(chosen))
  if tool == "MT" and cfg.mt_quoted_phrases:
    rest = [k for k, c in enumerate(chosen) if not c]
    for k, foreign in zip(rest, _quoted_foreign([documents[k] for k in rest], cfg)):
      if foreign:
        chosen[k] = True
        counts["kept"] += 1
        counts["quoted_phrase"] += 1
  return [d for d, c in zip(documents, chosen) if c], dict(counts)
