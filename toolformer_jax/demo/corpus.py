"""The demo's annotation corpus: bundled Wikipedia leads and generated documents."""

from __future__ import annotations

from typing import Dict, List

# annotate.synthetic_docs kind -> the DemoSize field that counts its documents.
GENERATED_KINDS = {"arithmetic": "arithmetic_docs", "dated": "dated_docs",
                   "arithmetic_qa": "arithmetic_qa_docs", "dated_qa": "dated_qa_docs",
                   "dated_offset_qa": "dated_offset_qa_docs", "geography": "geography_docs",
                   "names_mt": "names_mt_docs"}


def build_corpus(size) -> List[Dict[str, str]]:
  """The annotation corpus of a DemoSize as jsonl records {"id", "text", "date"?,
  "language"}: the first `wikipedia_docs` leads of train entities (never a held-out entity:
  the held-out-LM task's validation split, the perplexity eval, is among them, and the facts
  eval asks about them), then the generated documents, interleaved."""
  from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
  from toolformer_jax.annotate import knowledge_docs  # pylint: disable=g-import-not-at-top
  from toolformer_jax.annotate import synthetic_docs  # pylint: disable=g-import-not-at-top
  wiki = []
  if size.wikipedia_docs:
    stats = corpora.ReadStats("bundled Wikipedia leads")
    for doc in corpora.read_wikipedia(corpora.bundled_corpus_path("en-us"), stats,
                                      language="en"):
      if knowledge_docs.annotatable_lead(doc.title or doc.id):
        wiki.append(doc)
        if len(wiki) == size.wikipedia_docs:
          break
  parts = [wiki] + [list(synthetic_docs.documents(kind, getattr(size, field)))
                    for kind, field in GENERATED_KINDS.items()]
  docs = []
  for i in range(max(len(p) for p in parts)):
    docs += [p[i] for p in parts if i < len(p)]
  records = []
  for doc in docs:
    record = {"id": doc.id, "text": doc.text, "language": doc.language or "en"}
    if doc.date:
      record["date"] = doc.date
    records.append(record)
  return records
