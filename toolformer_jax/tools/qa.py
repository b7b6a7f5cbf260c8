"""QA: retrieval-augmented question answering in the spirit of Atlas (BM25 + a reader).

`QA("Who wrote the novel Nineteen Eighty-Four?")` -> `George Orwell`.

The question retrieves `num_passages` BM25 passages (the index WikiSearch uses); a reader
turns question + passages into a short answer. Readers are callables
`(question, passages) -> answer` that raise `ToolError` when they have no answer:
  * `ExtractiveReader` (the default, no model): chooses a span of the passages. Candidate
    spans are typed by the question (a year for "when/what year", a number for "how
    many", a capitalised name otherwise) and scored by the passage's BM25 weight, how many
    question words the sentence shares, the span's distance to them, and cue phrases
    ("born", "by", "capital is", life spans "(1632–1677)"); spans made of question words
    are excluded. Scores of the same span add up over passages.
  * `LMReader`: the hook for a language model. It builds an "answer briefly from the
    passages" prompt and calls any `generate_fn(prompt) -> str` (e.g. greedy decoding
    with a project model), keeping the first line of the output.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import gin

from toolformer_jax.tools import base
from toolformer_jax.tools import call_format
from toolformer_jax.tools import retrieval

Reader = Callable[[str, Sequence[retrieval.Passage]], str]

_YEAR_Q_RE = re.compile(r"\b(?:what|which) year\b|\bwhen\b|\byear\b|\bcentury\b")
_NUMBER_Q_RE = re.compile(
    r"\bhow (?:many|much|long|old|far|tall|high|big|large|deep|wide|heavy)\b|\bnumber of\b|"
    r"\bpopulation\b")
_PERSON_Q_RE = re.compile(r"^\s*(?:who|whom|whose)\b|\bwho\b")
_PLACE_Q_RE = re.compile(r"^\s*where\b|\bwhat (?:city|country|town|place|region)\b|\bcapital\b")
_CREATION_Q_RE = re.compile(
    r"\b(?:wrote|written|write|directed|direct|painted|paint|composed|compose|created|"
    r"create|designed|design|invented|invent|discovered|discover|built|founded|made|"
    r"recorded|sculpted|developed|author|director|composer|painter|creator|inventor)\b")
_BORN_Q_RE = re.compile(r"\bborn\b|\bbirth\b")
_DIED_Q_RE = re.compile(r"\b(?:die|died|death)\b")

_YEAR_RE = re.compile(r"(?<![\w,.])([1-9][0-9]{2,3})(?:\s*(BC|BCE|AD|CE))?(?![\w,]|\.[0-9])")
_NUMBER_RE = re.compile(r"(?<![\w.])([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?![\w])")
_NAME_PART = r"[A-Z\u00c0-\u00de][\w'\u2019.\-]*"
_NAME_RE = re.compile(
    _NAME_PART + r"(?:\s+(?:(?:of|de|da|del|della|van|von|der|den|du|la|le|al|bin|ibn|y)\s+)*"
    + _NAME_PART + r")*")
_WORD_RE = re.compile(r"\w+")
_POSSESSIVE_RE = re.compile(r"['\u2019]s?$")
_DEMONYM_RE = re.compile(r"^[A-Z][a-z]+(?:an|ian|ese|ish|ch|ic|i)$")
_LIFE_SPAN_RE = re.compile(r"\(([^()]*?)([1-9][0-9]{2,3})\s*[\u2013-]\s*(?:c\.\s*)?"
                           r"([1-9][0-9]{2,3})\)")
_LEADING_WORDS = frozenset(
    "the a an in on at of it its he she they his her their this that these those as by for "
    "from with during after before since when while although however and or but".split())
_WH_WORDS = frozenset("who whom whose what which when where why how year".split())


def question_type(question: str) -> str:
  """"year", "number", "person", "place" or "entity"."""
  q = question.lower()
  if _YEAR_Q_RE.search(q):
    return "year"
  if _NUMBER_Q_RE.search(q):
    return "number"
  if _PERSON_Q_RE.search(q):
    return "person"
  if _PLACE_Q_RE.search(q):
    return "place"
  return "entity"


def _candidates(sentence: str, qtype: str) -> List[Tuple[int, int, str]]:
  """(start, end, text) of the spans of the expected type in `sentence`."""
  out = []
  if qtype == "year":
    for m in _YEAR_RE.finditer(sentence):
      out.append((m.start(), m.end(), m.group(0)))
  elif qtype == "number":
    for m in _NUMBER_RE.finditer(sentence):
      out.append((m.start(), m.end(), m.group(0)))
  else:
    for m in _NAME_RE.finditer(sentence):
      text = _POSSESSIVE_RE.sub("", m.group(0)).rstrip(".'\u2019-")
      words = text.split()
      while words and words[0].lower() in _LEADING_WORDS:  # sentence-initial "The", "In"
        words = words[1:]
      if words:
        text = " ".join(words)
        start = m.start() + m.group(0).index(words[0])
        out.append((start, start + len(text), text))
  return out


@dataclasses.dataclass(frozen=True)
class _Question:
  text: str
  qtype: str
  keywords: frozenset  # retrieval tokens of the question minus wh-words
  creation: bool
  born: bool
  died: bool
  # "capital ... is X" / "X is the capital" around a candidate (None: no keywords).
  copula_before: Optional[re.Pattern] = None
  copula_after: Optional[re.Pattern] = None


def _analyse(question: str) -> _Question:
  q = question.lower()
  keywords = frozenset(t for t in retrieval.tokenize(question) if t not in _WH_WORDS)
  before = after = None
  if keywords:
    alternatives = "|".join(re.escape(k) for k in sorted(keywords))
    before = re.compile(
        rf"\b(?:{alternatives})\w*(?:\s+and\s+\w+\s+\w+)?\s+(?:is|was|are|were)\s+$")
    after = re.compile(rf"^\s*(?:is|was)\s+(?:the|a|its)\s+(?:{alternatives})")
  return _Question(question, question_type(question), keywords,
                   creation=bool(_CREATION_Q_RE.search(q)), born=bool(_BORN_Q_RE.search(q)),
                   died=bool(_DIED_Q_RE.search(q)), copula_before=before, copula_after=after)


@functools.lru_cache(maxsize=8192)
def _read_passage(title: str, description: str, text: str) -> Tuple[Tuple, ...]:
  """Per sentence: (sentence, its token set, ((word start, word token), ...)); memoised."""
  sentences = retrieval.split_sentences(text)
  if description:
    sentences.insert(0, f"{title}: {description}.")
  out = []
  for sentence in sentences:
    words = tuple((m.start(), _word_token(m.group(0))) for m in _WORD_RE.finditer(sentence))
    out.append((sentence, frozenset(retrieval.tokenize(sentence)), words))
  return tuple(out)


@functools.lru_cache(maxsize=65536)
def _word_token(word: str) -> Optional[str]:
  tokens = retrieval.tokenize(word)
  return tokens[0] if tokens else None


def _cue_bonus(q: _Question, sentence: str, start: int, end: int) -> float:
  before = sentence[max(0, start - 40):start].lower()
  after = sentence[end:end + 40].lower()
  bonus = 0.0
  if q.qtype == "year":
    # Case-sensitive: the verb "born", not the name "Max Born".
    cased_before = sentence[max(0, start - 40):start]
    if q.born and re.search(r"\b(?:born|birth)\b[^.;]*$", cased_before):
      bonus += 1.0
    if q.died and re.search(r"\b(?:died|death)\b[^.;]*$", cased_before):
      bonus += 1.0
    if re.search(r"\b(?:in|since|from|of)\s+$", before):
      bonus += 0.2
  if q.qtype in ("person", "entity") and q.creation and re.search(
      r"\bby\s+(?:(?:[a-z]+|[A-Z][a-z]+)\s+[a-z]+\s+)?$", sentence[max(0, start - 40):start]):
    bonus += 1.0  # "novel by George Orwell", "novel by American author J. D. Salinger"
  if q.qtype in ("place", "entity", "person") and q.copula_before is not None and (
      q.copula_before.search(before) or q.copula_after.search(after)):
    bonus += 1.5
  return bonus


def _life_span_bonus(q: _Question, sentence: str) -> Dict[int, float]:
  """Start offsets of years in "(1632–1677)" life spans, with a bonus for born/died.

  Only a span closely after a question word counts ("George Eliot: English novelist
  (1819–1880)"), not a work's dates further on ("Middlemarch (1871–1872)").
  """
  bonus: Dict[int, float] = {}
  if q.qtype != "year" or not (q.born or q.died):
    return bonus
  for m in _LIFE_SPAN_RE.finditer(sentence):
    if re.search(r"\b(?:r\.|ruled|reigned|reign|in office|fl\.)", m.group(1)):
      continue  # a reign, not a life span
    if not q.keywords.intersection(retrieval.tokenize(sentence[max(0, m.start() - 80):m.start()])):
      continue
    if q.born:
      bonus[m.start(2)] = 1.5
    if q.died:
      bonus[m.start(3)] = 1.5
  return bonus


@gin.configurable(module="toolformer_jax.tools")
class ExtractiveReader:
  """Chooses the answer span from the passages; needs no model."""

  def __init__(self, max_answer_words: int = 8, subspan_share: float = 0.5,
               idf: Optional[Callable[[str], float]] = None):
    """idf: token -> inverse document frequency, to weight question words (else uniform)."""
    self.max_answer_words = max_answer_words
    self.subspan_share = subspan_share
    self.idf = idf

  def _weights(self, keywords) -> Dict[str, float]:
    if self.idf is None:
      return {k: 1.0 for k in keywords}
    return {k: max(self.idf(k), 0.1) for k in keywords}

  def __call__(self, question: str, passages: Sequence[retrieval.Passage]) -> str:
    ranked = self.rank(question, passages)
    if not ranked:
      raise base.ToolError("no answer found in the retrieved passages")
    return ranked[0][0]

  def rank(self, question: str,
           passages: Sequence[retrieval.Passage]) -> List[Tuple[str, float]]:
    """Candidate answers with their scores, best first."""
    if not passages:
      raise base.ToolError("no passage to read")
    q = _analyse(question)
    question_tokens = set(retrieval.tokenize(question))
    weights = self._weights(q.keywords)
    total_weight = sum(weights.values()) or 1.0
    top = max(p.score for p in passages) or 1.0
    scores: Dict[str, List[float]] = {}
    spelling: Dict[str, str] = {}
    for passage in passages:
      weight = passage.score / top
      title_tokens = set(retrieval.tokenize(passage.title))
      # A passage is about its title: its sentences count as mentioning the title.
      implied = q.keywords & title_tokens
      for sentence, tokens, words in _read_passage(passage.title, passage.description,
                                                   passage.text):
        explicit = q.keywords & tokens
        # Words implied by the passage's title count half.
        overlap = (sum(weights[k] for k in explicit) +
                   0.5 * sum(weights[k] for k in implied - explicit)) / total_weight
        if overlap == 0:
          continue
        keyword_positions = [start for start, token in words if token in q.keywords]
        spans = _life_span_bonus(q, sentence)
        for start, end, text in _candidates(sentence, q.qtype):
          cand_tokens = retrieval.tokenize(text)
          if len(text.split()) > self.max_answer_words:
            continue
          if cand_tokens and all(t in question_tokens for t in cand_tokens):
            continue  # the answer does not repeat the question
          if keyword_positions:
            distance = min(abs(start - k) for k in keyword_positions)
            proximity = 1.0 / (1.0 + distance / 30.0)
          else:
            proximity = 0.0
          score = weight * (overlap + proximity + _cue_bonus(q, sentence, start, end) +
                            spans.get(start, 0.0))
          if cand_tokens and any(t in question_tokens for t in cand_tokens):
            score *= 0.5
          if _DEMONYM_RE.match(text) and re.match(r"\s+[a-z]", sentence[end:end + 2]):
            score *= 0.3  # "American author": an adjective, not a name
          key = " ".join(cand_tokens) or text.lower()
          scores.setdefault(key, []).append(score)
          if key not in spelling or len(text) > len(spelling[key]):
            spelling[key] = text
    totals = {k: _aggregate(v) for k, v in scores.items()}
    # A name inside a longer candidate ("Welles" in "Orson Welles") supports the longer one.
    for short in list(totals):
      for long in totals:
        if long != short and f" {short} " in f" {long} ":
          totals[long] += self.subspan_share * totals[short]
    order = sorted(totals, key=lambda k: (-totals[k], -len(k), k))
    return [(spelling[k], totals[k]) for k in order]


def _aggregate(scores: List[float]) -> float:
  """Best occurrence, plus a quarter of the others (repetition helps, but not most)."""
  best = max(scores)
  return best + 0.25 * (sum(scores) - best)


@gin.configurable(module="toolformer_jax.tools")
class LMReader:
  """Answers with a language model: `generate_fn(prompt) -> continuation` fills the hook.

  The prompt gives up to `max_passages` passages (title and text, each cut to
  `passage_chars`), the question, and asks for a brief answer; the first line of the
  continuation, cut to `max_answer_words` words, is the answer.
  """

  INSTRUCTION = "Answer the question briefly, using the passages."

  def __init__(self, generate_fn: Callable[[str], str], max_passages: int = 3,
               passage_chars: int = 600, max_answer_words: int = 10):
    if generate_fn is None:
      raise ValueError("LMReader needs a generate_fn(prompt) -> str")
    self.generate_fn = generate_fn
    self.max_passages = max_passages
    self.passage_chars = passage_chars
    self.max_answer_words = max_answer_words

  def prompt(self, question: str, passages: Sequence[retrieval.Passage]) -> str:
    parts = [self.INSTRUCTION, ""]
    for p in passages[: self.max_passages]:
      text = p.text if len(p.text) <= self.passage_chars else p.text[: self.passage_chars]
      parts.append(f"Passage ({p.title}): {text}")
    parts += ["", f"Question: {question}", "Answer:"]
    return "\n".join(parts)

  def __call__(self, question: str, passages: Sequence[retrieval.Passage]) -> str:
    output = self.generate_fn(self.prompt(question, passages))
    if not isinstance(output, str):
      raise base.ToolError("the LM reader's generate_fn did not return text")
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
      raise base.ToolError("the LM reader produced no answer")
    answer = " ".join(lines[0].split()[: self.max_answer_words]).strip()
    return answer.rstrip(".")


@gin.configurable(module="toolformer_jax.tools")
class QA(base.Tool):
  """Question answering over Wikipedia: BM25 passages + a reader."""

  name = "QA"
  example = 'QA("Who wrote the novel Nineteen Eighty-Four?")'
  description = "answers a factual question from retrieved Wikipedia passages"
  max_args_chars = 512

  def __init__(self, reader: Optional[Reader] = None, num_passages: int = 5,
               retrieval_config: Optional[retrieval.RetrievalConfig] = None,
               index: Optional[retrieval.PassageIndex] = None, show_progress: bool = True):
    self.num_passages = num_passages
    self.index = index or retrieval.load_index(retrieval_config, show_progress=show_progress)
    self.reader = reader if reader is not None else ExtractiveReader(idf=self.index.idf)
    self.exclusion = retrieval.OwnDocumentExclusion(self.index)

  def cache_key(self, args: str, context: base.Context = None) -> Hashable:
    return (call_format.text_argument(args), self.exclusion.document_key(context))

  def answer(self, question: str, context: base.Context = None) -> str:
    """The reader's answer from the top passages (at annotation: none of the document's
    own; see `retrieval.OwnDocumentExclusion`)."""
    passages = self.exclusion.search(question, self.num_passages, context)
    if not passages:
      raise base.ToolError(f"nothing retrieved for {base.one_line(question, 80)!r}")
    answer = self.reader(question, passages)
    return call_format.clean_result(answer)

  def __call__(self, args: str, context: base.Context = None) -> str:
    question = call_format.text_argument(args)
    if not question:
      raise base.ToolError("empty question")
    return self.answer(question, context)
