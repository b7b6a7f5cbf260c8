"""WikiSearch against the bundled Wikipedia leads: snippets and the probe set's hit rate."""
import gin
import pytest

from toolformer_jax.tools import base
from toolformer_jax.tools import probes
from toolformer_jax.tools import wikisearch

# Measured on the 250-probe set (seed 0, PROBES_VERSION 1): title 1.00, fact 0.99 (top
# passage from the source article or containing the answer). Floors leave a margin.
TITLE_HIT_FLOOR = 0.95
FACT_HIT_FLOOR = 0.90


@pytest.fixture(scope="module")
def tool(index):
  return wikisearch.WikiSearch(index=index)


def test_title_query_returns_the_lead(tool):
  snippet = tool('"Eurovision Song Contest"')
  assert snippet.startswith("The Eurovision Song Contest")
  assert len(snippet) <= 240


def test_snippet_is_the_matching_sentence(tool):
  assert "Vilnius" in tool("capital of Lithuania")
  assert "1968" in tool('"2001: A Space Odyssey"')


@pytest.mark.parametrize("args", ['""', "   ", '"the of"', '"qqqzzzxxx"'])
def test_no_match_is_an_error(tool, args):
  with pytest.raises(base.ToolError):
    tool(args)


@pytest.mark.parametrize("chars", [20, 60, 120, 400])
def test_snippet_length_bound(index, chars):
  tool = wikisearch.WikiSearch(snippet_chars=chars, index=index)
  for query in ["Paris", "photosynthesis", "Who wrote Hamlet?", "Roman Empire decline"]:
    snippet = tool(query)
    assert 0 < len(snippet) <= chars


def test_snippet_chars_from_gin(index):
  with gin.unlock_config():
    gin.parse_config("WikiSearch.snippet_chars = 60")
  try:
    assert wikisearch.WikiSearch(index=index).snippet_chars == 60
  finally:
    gin.clear_config()
  assert wikisearch.WikiSearch(index=index).snippet_chars == 240


def test_truncate_words():
  assert wikisearch.truncate_words("short", 10) == "short"
  assert wikisearch.truncate_words("one two three four", 12) == "one two..."


def test_probe_hit_rates(index, probe_set, capsys):
  """Top-1 retrieval on >= 100 title queries and >= 100 fact questions."""
  titles = [p for p in probe_set if p.kind == "title"]
  facts = [p for p in probe_set if p.kind == "fact"]
  assert len(titles) >= 100 and len(facts) >= 100
  title_hits = sum(bool(h) and h[0].title == p.title
                   for p in titles for h in [index.search(p.query, 1)])
  fact_hits = 0
  for p in facts:
    hits = index.search(p.query, 1)
    if hits and (hits[0].title == p.title or probes.normalize_answer(p.answer) in
                 probes.normalize_answer(hits[0].description + " " + hits[0].text)):
      fact_hits += 1
  title_rate, fact_rate = title_hits / len(titles), fact_hits / len(facts)
  with capsys.disabled():
    print(f"\nWikiSearch top-1: titles {title_rate:.3f} ({len(titles)}), "
          f"facts {fact_rate:.3f} ({len(facts)})")
  assert title_rate >= TITLE_HIT_FLOOR
  assert fact_rate >= FACT_HIT_FLOOR
