"""BM25 passage retrieval over a Wikipedia corpus, shared by WikiSearch and QA.

Articles are cut into passages of about `passage_words` words at sentence boundaries
(each keeps its article's title; the first also the article's short description). A
passage is indexed as its title (repeated `title_weight` times), description and text,
tokenised by `tokenize`: lowercase, accents folded, English stopwords dropped, plural -s
stripped. Scoring is bm25s's eager BM25 (Lucene variant).

The index is built once and saved under `<cache_dir>/wikisearch/<key>/` (key: a hash of
the corpus file's path, size and mtime and of the index settings); later runs load it
memory-mapped (the score matrix, passage offsets and passage text), so opening it is
fast and its pages are shared between processes. `cache_dir` defaults to
$TOOLFORMER_JAX_CACHE or ~/.cache/toolformer_jax. Building writes to a temporary
directory renamed into place, so concurrent builders never see a partial index.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import sys
import tempfile
import threading
import time
import unicodedata
from typing import Dict, List, Optional, Sequence, Tuple

import bm25s
import bm25s.stopwords
import bm25s.tokenization
import gin
import numpy as np
import tqdm

from toolformer_jax import corpora

INDEX_FORMAT_VERSION = 1
CACHE_ENV = "TOOLFORMER_JAX_CACHE"

_WORD_RE = re.compile(r"\w+")
_STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN)
# A sentence ends at . ! or ? followed by space and an upper-case letter, digit or quote.
_SENTENCE_END_RE = re.compile(r"([.!?])[\"')\]\u201d]*\s+(?=[A-Z0-9\"'(\u201c\u00c0-\u024f])")
_ABBREVIATION_RE = re.compile(
    r"\b(?:[A-Z]|Mr|Mrs|Ms|Dr|St|Jr|Sr|Mt|Ft|No|Vol|vs|etc|ca|c|approx|Inc|Ltd|Co|"
    r"Gen|Col|Capt|Lt|Sgt|Prof|Rev|Hon)\.$")


def default_cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get(CACHE_ENV) or
                      os.path.join(os.path.expanduser("~"), ".cache", "toolformer_jax"))


def _fold(text: str) -> str:
  if text.isascii():
    return text.lower()
  decomposed = unicodedata.normalize("NFKD", text.lower())
  return "".join(c for c in decomposed if not unicodedata.combining(c))


def _stem(word: str) -> str:
  """Strips English plural endings (the 'S' stemmer): cities->city, horses->horse, cats->cat."""
  if len(word) <= 3 or not word.isalpha():
    return word
  if word.endswith("ies") and not word.endswith(("eies", "aies")):
    return word[:-3] + "y"
  if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
    return word[:-1]
  if word.endswith("s") and not word.endswith(("us", "ss", "is")):
    return word[:-1]
  return word


def tokenize(text: str) -> List[str]:
  """Index/query tokens: folded lowercase words, stopwords and 1-letter words dropped."""
  out = []
  for word in _WORD_RE.findall(_fold(text)):
    if word in _STOPWORDS or (len(word) == 1 and not word.isdigit()):
      continue
    out.append(_stem(word))
  return out


def split_sentences(text: str) -> List[str]:
  """Splits prose into sentences (keeps initials such as 'Arthur C. Clarke' together)."""
  sentences = []
  start = 0
  for m in _SENTENCE_END_RE.finditer(text):
    if m.group(1) == "." and _ABBREVIATION_RE.search(text, max(start, m.start() - 8),
                                                     m.start() + 1):
      continue
    sentence = text[start:m.end()].strip()
    if sentence:
      sentences.append(sentence)
    start = m.end()
  tail = text[start:].strip()
  if tail:
    sentences.append(tail)
  return sentences


def split_passages(text: str, passage_words: int) -> List[str]:
  """Groups an article's sentences into passages of about `passage_words` words."""
  passages: List[str] = []
  current: List[str] = []
  count = 0
  for paragraph in text.split("\n"):
    for sentence in split_sentences(paragraph):
      words = sentence.split()
      while len(words) > passage_words:  # a run-on "sentence": cut it by words
        head, words = words[:passage_words], words[passage_words:]
        if current:
          passages.append(" ".join(current))
          current, count = [], 0
        passages.append(" ".join(head))
      if count and count + len(words) > passage_words:
        passages.append(" ".join(current))
        current, count = [], 0
      current.append(" ".join(words))
      count += len(words)
  if current:
    passages.append(" ".join(current))
  return [p for p in passages if p]


@gin.configurable(module="toolformer_jax.tools")
@dataclasses.dataclass(frozen=True)
class RetrievalConfig:
  """Where the corpus and the index live, and how passages are cut and scored.

  corpus_path: a jsonl(.gz) {title, text} dump (e.g. KILT) or None for the bundled
    English Wikipedia leads (both read by `toolformer_jax.corpora.read_wikipedia`).
  cache_dir: index cache root; None: $TOOLFORMER_JAX_CACHE or ~/.cache/toolformer_jax.
  """

  corpus_path: Optional[str] = None
  cache_dir: Optional[str] = None
  passage_words: int = 100
  title_weight: int = 2
  k1: float = 1.5
  b: float = 0.75


@dataclasses.dataclass(frozen=True)
class Passage:
  passage_id: int
  article_id: int
  title: str
  description: str
  text: str
  score: float = 0.0


class PassageIndex:
  """A loaded (memory-mapped) BM25 index with its passages. Thread-safe for search."""

  def __init__(self, directory: pathlib.Path):
    self.directory = pathlib.Path(directory)
    with open(self.directory / "meta.json", encoding="utf-8") as f:
      self.meta = json.load(f)
    self._bm25 = bm25s.BM25.load(str(self.directory / "bm25"), mmap=True,
                                 load_vocab=True, show_progress=False)
    self._vocab: Dict[str, int] = self._bm25.vocab_dict
    # [num_passages, 6]: title, description and text (start, end) byte offsets in store.
    self._offsets = np.load(self.directory / "offsets.npy", mmap_mode="r")
    self._article_ids = np.load(self.directory / "article_ids.npy", mmap_mode="r")
    self._store = np.memmap(self.directory / "store.bin", dtype=np.uint8, mode="r")
    self.num_passages = int(self._offsets.shape[0])
    self.num_articles = int(self.meta["num_articles"])

  def _slice(self, start: int, end: int) -> str:
    return self._store[start:end].tobytes().decode("utf-8")

  def passage(self, passage_id: int, score: float = 0.0) -> Passage:
    o = self._offsets[passage_id]
    return Passage(passage_id=int(passage_id), article_id=int(self._article_ids[passage_id]),
                   title=self._slice(o[0], o[1]), description=self._slice(o[2], o[3]),
                   text=self._slice(o[4], o[5]), score=float(score))

  def idf(self, token: str) -> float:
    """BM25 inverse document frequency of an index token (0.0 for unknown tokens)."""
    token_id = self._vocab.get(token)
    indptr = self._bm25.scores["indptr"]
    if token_id is None or token_id + 1 >= len(indptr):
      return 0.0
    df = int(indptr[token_id + 1] - indptr[token_id])
    return float(np.log(1.0 + (self.num_passages - df + 0.5) / (df + 0.5)))

  def token_ids(self, query: str) -> np.ndarray:
    ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
    return np.asarray(ids, dtype=np.int32)  # [query_tokens]

  def scores(self, query: str) -> np.ndarray:
    """BM25 score of every passage for `query`: [num_passages] float32."""
    ids = self.token_ids(query)
    if ids.size == 0:
      return np.zeros(self.num_passages, dtype=np.float32)
    return self._bm25.get_scores_from_ids(ids)

  def search(self, query: str, k: int = 5, title_boost: float = 0.5,
             rerank_depth: int = 20) -> List[Passage]:
    """The top-`k` passages with a positive score, best first.

    Title match: among the best `rerank_depth` passages by BM25, a passage whose article
    title is the query (same tokens) or a multi-word phrase of it gains
    `title_boost * best_score * (title tokens / query tokens)`, so `WikiSearch("Cat")`
    finds "Cat" before "Siamese cat" and "When did John Steinbeck die?" the article on him.
    """
    scores = self.scores(query)  # [num_passages]
    k = max(0, min(k, self.num_passages))
    if k == 0 or not scores.any():
      return []
    depth = min(max(k, rerank_depth), self.num_passages)
    top = np.argpartition(-scores, depth - 1)[:depth]
    top = top[scores[top] > 0]
    final = {int(i): float(scores[i]) for i in top}
    query_tokens = tokenize(query)
    if title_boost and query_tokens:
      best = max(final.values())
      for i in final:
        o = self._offsets[i]
        title_tokens = tokenize(self._slice(o[0], o[1]))
        n = len(title_tokens)
        if n and (title_tokens == query_tokens or (n >= 2 and _contains(query_tokens,
                                                                          title_tokens))):
          final[i] += title_boost * best * n / len(query_tokens)
    order = sorted(final, key=lambda i: (-final[i], i))[:k]
    return [self.passage(i, final[i]) for i in order]


# Passages shorter than this are not matched against the document's text by content (a
# short passage, e.g. a one-line stub, can occur in an unrelated document).
OWN_PASSAGE_MIN_CHARS = 40
# How many passages beyond k a search that excludes its document looks at.
OWN_PASSAGE_EXTRA = 8


def _squeeze(text: str) -> str:
  return " ".join(text.split())


class OwnDocumentExclusion:
  """For the retrieval tools: a search that returns no passage of the document a call is
  annotated in (`base.CONTEXT_DOCUMENT_ID` / `base.CONTEXT_DOCUMENT` in the context).

  A passage is the document's own when its article title is the document's id (corpora
  give Wikipedia articles their title as id) or when its text occurs in the document's
  text (whitespace folded; passages of at least OWN_PASSAGE_MIN_CHARS), which covers a
  corpus whose ids differ from the index's. Without those context keys (inference) the
  search is the index's own. `own_document_calls` counts the calls whose top-k held an
  own passage (thread-safe; the annotation report shows it per tool).
  """

  def __init__(self, index: "PassageIndex"):
    self.index = index
    self.own_document_calls = 0
    self._own_lock = threading.Lock()

  @staticmethod
  def document_key(context) -> Optional[Tuple[str, str]]:
    """(id, sha1 of the text) of the context's document, or None at inference."""
    from toolformer_jax.tools import base  # pylint: disable=g-import-not-at-top
    if not context or (base.CONTEXT_DOCUMENT_ID not in context
                       and base.CONTEXT_DOCUMENT not in context):
      return None
    text = str(context.get(base.CONTEXT_DOCUMENT) or "")
    return (str(context.get(base.CONTEXT_DOCUMENT_ID) or ""),
            hashlib.sha1(text.encode("utf-8")).hexdigest())

  @staticmethod
  def is_own(passage: Passage, context) -> bool:
    from toolformer_jax.tools import base  # pylint: disable=g-import-not-at-top
    doc_id = str(context.get(base.CONTEXT_DOCUMENT_ID) or "")
    if doc_id and passage.title == doc_id:
      return True
    text = _squeeze(passage.text)
    return (len(text) >= OWN_PASSAGE_MIN_CHARS
            and text in _squeeze(str(context.get(base.CONTEXT_DOCUMENT) or "")))

  def search(self, query: str, k: int, context) -> List[Passage]:
    """The index's top-k for `query` without the context document's passages."""
    if self.document_key(context) is None:
      return self.index.search(query, k=k)
    depth = k + OWN_PASSAGE_EXTRA
    hits = self.index.search(query, k=depth, rerank_depth=max(20, depth))
    own = [self.is_own(h, context) for h in hits]
    if any(own[:k]):
      with self._own_lock:
        self.own_document_calls += 1
    return [h for h, o in zip(hits, own) if not o][:k]


def _contains(seq: Sequence[str], sub: Sequence[str]) -> bool:
  n = len(sub)
  return any(list(seq[i:i + n]) == list(sub) for i in range(len(seq) - n + 1))


def _index_key(path: pathlib.Path, config: RetrievalConfig) -> str:
  stat = path.stat()
  ident = {
      "format": INDEX_FORMAT_VERSION,
      "path": str(path.resolve()),
      "size": stat.st_size,
      "mtime_ns": stat.st_mtime_ns,
      "passage_words": config.passage_words,
      "title_weight": config.title_weight,
      "k1": config.k1,
      "b": config.b,
  }
  return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def index_directory(config: RetrievalConfig) -> pathlib.Path:
  path = corpora.resolve_corpus_path(config.corpus_path)
  root = pathlib.Path(config.cache_dir) if config.cache_dir else default_cache_dir()
  return root / "wikisearch" / _index_key(path, config)


def build_index(config: RetrievalConfig, directory: pathlib.Path,
                show_progress: bool = True) -> None:
  """Reads the corpus, builds the BM25 index and writes it to `directory` atomically."""
  corpus_path = corpora.resolve_corpus_path(config.corpus_path)
  t0 = time.time()
  vocab: Dict[str, int] = {}
  token_ids: List[List[int]] = []
  offsets: List[Tuple[int, int, int, int, int, int]] = []
  article_ids: List[int] = []
  store = bytearray()

  def put(text: str) -> Tuple[int, int]:
    data = text.encode("utf-8")
    start = len(store)
    store.extend(data)
    return start, len(store)

  stats = corpora.ReadStats(f"wikisearch corpus {corpus_path}")
  articles = corpora.read_wikipedia(corpus_path, stats)
  num_articles = 0
  for article in tqdm.tqdm(articles, desc="wikisearch: indexing", unit=" articles",
                           disable=not show_progress, mininterval=1.0):
    title_span = put(article.title)
    title_tokens = tokenize(article.title) * config.title_weight
    for j, text in enumerate(split_passages(article.text, config.passage_words)):
      description = article.description if j == 0 else ""
      tokens = title_tokens + tokenize(description) + tokenize(text)
      token_ids.append([vocab.setdefault(t, len(vocab)) for t in tokens])
      offsets.append(title_span + put(description) + put(text))
      article_ids.append(num_articles)
    num_articles += 1
  stats.log_summary()
  if not offsets:
    raise ValueError(f"corpus {corpus_path} has no usable articles")

  directory.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=".build-", dir=directory.parent))
  try:
    retriever = bm25s.BM25(k1=config.k1, b=config.b, method="lucene")
    retriever.index(bm25s.tokenization.Tokenized(ids=token_ids, vocab=vocab),
                    show_progress=False)
    retriever.save(str(tmp / "bm25"), show_progress=False)
    np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    np.save(tmp / "article_ids.npy", np.asarray(article_ids, dtype=np.int32))
    with open(tmp / "store.bin", "wb") as f:
      f.write(store)
    meta = {
        "format": INDEX_FORMAT_VERSION,
        "corpus_path": str(corpus_path),
        "num_articles": num_articles,
        "num_passages": len(offsets),
        "skipped_records": stats.skipped,
        "skipped_by_reason": dict(stats.skipped_by_reason),
        "vocab_size": len(vocab),
        "config": dataclasses.asdict(config),
        "build_seconds": round(time.time() - t0, 3),
    }
    with open(tmp / "meta.json", "w", encoding="utf-8") as f:
      json.dump(meta, f, indent=1)
    os.chmod(tmp, 0o755)
    try:
      os.rename(tmp, directory)
    except OSError:
      if not (directory / "meta.json").is_file():  # not a finished concurrent build
        raise
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)
  summary = (f"wikisearch: indexed {num_articles} articles as {len(offsets)} passages in "
             f"{time.time() - t0:.1f} s -> {directory}")
  if show_progress:
    print(summary, file=sys.stderr)
  logging.info(summary)


_LOADED: Dict[Tuple[RetrievalConfig, str], PassageIndex] = {}
_LOAD_LOCK = threading.Lock()


def load_index(config: Optional[RetrievalConfig] = None,
               show_progress: bool = True) -> PassageIndex:
  """The index for `config`: loaded from the cache (built first if missing); memoised."""
  config = config or RetrievalConfig()
  directory = index_directory(config)
  key = (config, str(directory))
  with _LOAD_LOCK:
    index = _LOADED.get(key)
    if index is None:
      if not (directory / "meta.json").is_file():
        build_index(config, directory, show_progress=show_progress)
      index = PassageIndex(directory)
      _LOADED[key] = index
  return index
