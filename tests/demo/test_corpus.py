"""The demo's annotation corpus: the documents of the size, none an eval question."""
import re

from toolformer_jax.demo import corpus
from toolformer_jax.demo import plan as plan_lib
from toolformer_jax.evaluation import registry


def test_corpus_has_the_sizes_documents():
  size = plan_lib.load_size("tiny")
  records = corpus.build_corpus(size)
  kinds = [r["id"].split("-")[0] for r in records]
  for kind, field in corpus.GENERATED_KINDS.items():
    assert kinds.count(kind) == getattr(size, field) > 0, kind
  assert len(records) == size.wikipedia_docs + sum(
      getattr(size, f) for f in corpus.GENERATED_KINDS.values())
  assert all(r["date"] for r in records if r["id"].startswith("dated"))


def eval_questions():
  """(generator, question text) of every registered eval generator's items."""
  questions = []
  for generator in registry.generators().values():
    for item in generator.generate():
      match = re.search(r"Question: (.*)\nAnswer:", item.inputs, re.S)
      questions.append((generator.full_name, (match.group(1) if match else item.inputs)
                        .strip()))
  return questions


def test_no_eval_question_occurs_in_the_default_demo_corpus():
  records = corpus.build_corpus(plan_lib.load_size("default"))
  assert any(r["id"].startswith("arithmetic") for r in records)
  text = "\n".join(r["text"] for r in records)
  questions = eval_questions()
  assert len(questions) > 500
  leaked = [(g, q) for g, q in questions if q in text]
  assert not leaked, leaked[:5]
