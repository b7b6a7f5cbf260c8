"""WikiSearch: BM25 over Wikipedia passages, returning the best short snippet.

`WikiSearch("Eurovision Song Contest")` -> `The Eurovision Song Contest, often known simply
as Eurovision, is an international song competition organised annually by ...`.
At annotation the document being annotated is not searched (see
`retrieval.OwnDocumentExclusion`). The snippet is taken from the top passage: its sentence sharing the most query words
(the earliest on ties, so title queries get the lead sentence), extended by the
following sentences up to `snippet_chars` and cut at a word boundary.
"""
from __future__ import annotations

from typing import Hashable, Optional

import gin

from toolformer_jax.tools import base
from toolformer_jax.tools import call_format
from toolformer_jax.tools import retrieval


def best_snippet(text: str, query: str, snippet_chars: int) -> str:
  """The window of `text` (sentence-aligned, <= snippet_chars) that best matches `query`."""
  sentences = retrieval.split_sentences(text)
  if not sentences:
    return ""
  query_tokens = set(retrieval.tokenize(query))
  overlaps = [len(query_tokens.intersection(retrieval.tokenize(s))) for s in sentences]
  best = max(range(len(sentences)), key=lambda i: (overlaps[i], -i))
  snippet = sentences[best]
  for sentence in sentences[best + 1:]:
    if len(snippet) + 1 + len(sentence) > snippet_chars:
      break
    snippet += " " + sentence
  return truncate_words(snippet, snippet_chars)


def truncate_words(text: str, max_chars: int) -> str:
  """`text` cut to at most `max_chars` at a word boundary, with "..." when cut."""
  if len(text) <= max_chars:
    return text
  cut = text[: max(0, max_chars - 3)]
  if " " in cut:
    cut = cut[: cut.rindex(" ")]
  return cut.rstrip(" ,;:") + "..."


@gin.configurable(module="toolformer_jax.tools")
class WikiSearch(base.Tool):
  """Wikipedia search (BM25) returning a short snippet, as in the paper."""

  name = "WikiSearch"
  example = 'WikiSearch("Eurovision Song Contest")'
  description = "BM25 search over Wikipedia; returns the best short snippet"
  max_args_chars = 512

  def __init__(self, snippet_chars: int = 240,
               retrieval_config: Optional[retrieval.RetrievalConfig] = None,
               index: Optional[retrieval.PassageIndex] = None, show_progress: bool = True):
    """index: an already loaded index (else loaded or built from `retrieval_config`)."""
    if snippet_chars < 20:
      raise ValueError(f"WikiSearch.snippet_chars must be >= 20, got {snippet_chars}")
    self.snippet_chars = snippet_chars
    self.index = index or retrieval.load_index(retrieval_config, show_progress=show_progress)
    self.exclusion = retrieval.OwnDocumentExclusion(self.index)

  def cache_key(self, args: str, context: base.Context = None) -> Hashable:
    return (call_format.text_argument(args), self.exclusion.document_key(context))

  def __call__(self, args: str, context: base.Context = None) -> str:
    query = call_format.text_argument(args)
    if not query:
      raise base.ToolError("empty query")
    hits = self.exclusion.search(query, 1, context)
    if not hits:
      raise base.ToolError(f"no Wikipedia passage matches {base.one_line(query, 80)!r}")
    return best_snippet(hits[0].text, query, self.snippet_chars)
