"""At annotation the retrieval tools return no passage of the document being annotated."""
import pytest

from toolformer_jax import corpora
from toolformer_jax.annotate import pipeline
from toolformer_jax.tools import base
from toolformer_jax.tools import engine
from toolformer_jax.tools import qa
from toolformer_jax.tools import retrieval
from toolformer_jax.tools import wikisearch

TITLE = "Eurovision Song Contest"


@pytest.fixture(scope="module")
def article(articles):
  return next(a for a in articles if a.title == TITLE)


def _context(doc_id, text):
  return {base.CONTEXT_TEXT: text[:20], base.CONTEXT_DOCUMENT_ID: doc_id,
          base.CONTEXT_DOCUMENT: text}


def test_wikisearch_leaves_out_the_annotated_article(index, article):
  tool = wikisearch.WikiSearch(index=index)
  whole = tool(f'"{TITLE}"')
  assert whole.startswith("The Eurovision Song Contest")  # inference: the index is whole
  assert tool.exclusion.own_document_calls == 0
  # The document by its id (Wikipedia documents carry their title as id).
  by_id = tool(f'"{TITLE}"', _context(TITLE, "Some text that quotes nothing of it."))
  # By its text, under another id (a corpus whose ids differ from the index's).
  by_text = tool(f'"{TITLE}"', _context("doc-17", "Intro. " + article.text + " More."))
  for snippet in (by_id, by_text):
    assert snippet and snippet not in article.text and not snippet.startswith(
        "The Eurovision Song Contest, often")
  assert tool.exclusion.own_document_calls == 2
  # Another document's annotation sees the article.
  assert tool(f'"{TITLE}"', _context("Cat", "Cats are small.")) == whole
  assert tool.exclusion.own_document_calls == 2


def test_qa_reads_no_passage_of_the_annotated_article(index, articles):
  tool = qa.QA(index=index)
  lithuania = next(a for a in articles if a.title == "Lithuania")
  question = "What is the capital of Lithuania?"
  assert tool(f'"{question}"') == "Vilnius"
  context = _context("Lithuania", lithuania.text)
  passages = tool.exclusion.search(question, tool.num_passages, context)
  assert passages and all(p.title != "Lithuania" for p in passages)
  assert all(retrieval._squeeze(p.text) not in retrieval._squeeze(lithuania.text)
             for p in passages)
  whole = tool.index.search(question, k=tool.num_passages)
  assert any(p.title == "Lithuania" for p in whole)  # the exclusion had work to do
  try:
    tool(f'"{question}"', context)
  except base.ToolError:
    pass  # no other passage answers it: an error, never the document's own passage
  assert tool.exclusion.own_document_calls == 2


def test_short_passages_are_not_matched_by_content():
  passage = retrieval.Passage(passage_id=0, article_id=0, title="X", description="",
                              text="It is a city.")
  assert not retrieval.OwnDocumentExclusion.is_own(passage, _context("d", "It is a city."))
  long = retrieval.Passage(passage_id=0, article_id=0, title="X", description="",
                           text="Vilnius is the capital and largest city of Lithuania.")
  assert retrieval.OwnDocumentExclusion.is_own(
      long, _context("d", "Intro.  Vilnius is the capital\nand largest city of Lithuania. End"))


def test_results_are_memoised_per_document(index, article):
  tools = {"WikiSearch": wikisearch.WikiSearch(index=index)}
  with engine.ToolExecutor(tools, max_workers=1) as executor:
    call = f'WikiSearch("{TITLE}")'
    own, other, again = executor.execute_batch(
        [call, call, call], [_context(TITLE, article.text), _context("Cat", "Cats."),
                             _context(TITLE, article.text)])
  assert own.ok and other.ok and own.text != other.text and again.text == own.text
  assert other.text.startswith("The Eurovision Song Contest")


def test_annotation_calls_know_their_document():
  doc = corpora.Document(id="Lithuania", text="Lithuania is a country. Its capital is",
                         date="2020-01-02")
  context = pipeline.call_context(doc, 23)
  assert context == {base.CONTEXT_TEXT: "Lithuania is a country.",
                     base.CONTEXT_DOCUMENT_ID: "Lithuania",
                     base.CONTEXT_DOCUMENT: doc.text, "date": "2020-01-02"}
  assert "date" not in pipeline.call_context(corpora.Document(id="a", text="b"), 0)
