"""Shared fixtures for the tool tests: one BM25 index over the bundled corpus (built in a
temporary cache directory), the corpus, its probe set, and one MT instance."""
import pytest

from toolformer_jax import corpora
from toolformer_jax.tools import mt
from toolformer_jax.tools import probes
from toolformer_jax.tools import retrieval


@pytest.fixture(scope="session")
def retrieval_config(tmp_path_factory):
  return retrieval.RetrievalConfig(cache_dir=str(tmp_path_factory.mktemp("tool_cache")))


@pytest.fixture(scope="session")
def index(retrieval_config):
  return retrieval.load_index(retrieval_config, show_progress=False)


@pytest.fixture(scope="session")
def articles():
  return list(corpora.read_wikipedia(corpora.bundled_corpus_path()))


@pytest.fixture(scope="session")
def probe_set(articles):
  return probes.generate_probes(articles, num_title=100, num_fact=150, seed=0)


@pytest.fixture(scope="session")
def mt_tool():
  return mt.MT()
