"""The demo's annotation corpus: the documents of the size, of the kinds the held-out
template test covers."""
from toolformer_jax.demo import corpus
from toolformer_jax.demo import plan as plan_lib


def test_corpus_has_the_sizes_documents():
  size = plan_lib.load_size("tiny")
  records = corpus.build_corpus(size)
  kinds = [r["id"].split("-")[0] for r in records]
  for kind, field in corpus.GENERATED_KINDS.items():
    assert kinds.count(kind) == getattr(size, field), kind
  assert sum(kinds.count(k) > 0 for k in corpus.GENERATED_KINDS) >= 5
  assert len(records) == size.wikipedia_docs + sum(
      getattr(size, f) for f in corpus.GENERATED_KINDS.values())
  assert all(r["date"] for r in records if r["id"].startswith("dated"))


def test_the_default_corpus_is_what_the_template_test_covers():
  """Every generated document of the default demo corpus is a synthetic_docs document (the
  kinds tests/evaluation/test_heldout_templates.py renders against the held-out eval
  templates), and every lead is of a train entity (never of the LM task's validation
  split)."""
  import sys  # pylint: disable=g-import-not-at-top
  from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
  from toolformer_jax.annotate import synthetic_docs  # pylint: disable=g-import-not-at-top
  records = corpus.build_corpus(plan_lib.load_size("default"))
  generated = [r for r in records if r["id"].split("-")[0] in corpus.GENERATED_KINDS]
  assert generated and len(generated) < len(records)
  for r in generated:
    kind, version, index = r["id"].split("-")
    assert version == sys.modules[synthetic_docs.DOCUMENT_KINDS[kind].__module__].VERSION
    assert synthetic_docs.DOCUMENT_KINDS[kind](int(index)).text == r["text"]
  leads = [r for r in records if r not in generated]
  heldout = [r["id"] for r in leads if corpora.is_heldout_entity(r["id"])]
  assert leads and not heldout
