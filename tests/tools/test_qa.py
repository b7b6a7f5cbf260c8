"""QA: BM25 passages + the extractive reader on the probe set; the LM-reader hook."""
import pytest

from toolformer_jax.tools import base
from toolformer_jax.tools import probes
from toolformer_jax.tools import qa
from toolformer_jax.tools import retrieval

# Measured exact match on the 150 fact probes (seed 0): 0.973 (seeds 1, 2: 0.973, 0.980).
# The probes are template questions whose answers the templates cut from the corpus, so
# this measures the reader on well-posed questions, not open-domain QA.
EXACT_MATCH_FLOOR = 0.90


@pytest.fixture(scope="module")
def tool(index):
  return qa.QA(index=index)


@pytest.mark.parametrize("question, answer", [
    ("Who wrote the novel Nineteen Eighty-Four?", "George Orwell"),
    ("What is the capital of Lithuania?", "Vilnius"),
    ("In what year was David Attenborough born?", "1926"),
    ("In what year did Baruch Spinoza die?", "1677"),
    ("Who directed the film Battleship Potemkin?", "Sergei Eisenstein"),
])
def test_answers(tool, question, answer):
  assert tool(f'"{question}"') == answer


@pytest.mark.parametrize("question, qtype", [
    ("When was the Eiffel Tower built?", "year"),
    ("In what year did X die?", "year"),
    ("How many moons does Mars have?", "number"),
    ("Who painted the Mona Lisa?", "person"),
    ("Where is Timbuktu?", "place"),
    ("What is the capital of Peru?", "place"),
    ("What is the largest planet?", "entity"),
])
def test_question_type(question, qtype):
  assert qa.question_type(question) == qtype


def test_empty_question_is_an_error(tool):
  with pytest.raises(base.ToolError):
    tool('""')


def test_exact_match_on_probes(tool, probe_set, capsys):
  facts = [p for p in probe_set if p.kind == "fact"]
  assert len(facts) >= 100
  correct = 0
  for p in facts:
    try:
      correct += probes.normalize_answer(tool(p.query)) == probes.normalize_answer(p.answer)
    except base.ToolError:
      pass
  rate = correct / len(facts)
  with capsys.disabled():
    print(f"\nQA exact match (extractive reader): {rate:.3f} on {len(facts)} fact probes")
  assert rate >= EXACT_MATCH_FLOOR


def test_rank_prefers_longer_names():
  passage = retrieval.Passage(0, 0, "Citizen Kane", "1941 film by Orson Welles",
                              "Citizen Kane is a film. Welles directed it. Welles starred.", 1.0)
  ranked = qa.ExtractiveReader().rank("Who directed the film Citizen Kane?", [passage])
  assert ranked[0][0] == "Orson Welles"


def test_lm_reader_hook(index):
  """The hook gets a prompt with passages and question; the first line is the answer."""
  prompts = []

  def generate(prompt):
    prompts.append(prompt)
    return " George Orwell.\nQuestion: something else"

  tool = qa.QA(reader=qa.LMReader(generate, max_passages=2), index=index)
  assert tool('"Who wrote Nineteen Eighty-Four?"') == "George Orwell"
  prompt = prompts[0]
  assert prompt.startswith(qa.LMReader.INSTRUCTION)
  assert prompt.count("Passage (") == 2
  assert "Passage (Nineteen Eighty-Four)" in prompt
  assert prompt.endswith("Question: Who wrote Nineteen Eighty-Four?\nAnswer:")


def test_lm_reader_without_output_is_an_error(index):
  tool = qa.QA(reader=qa.LMReader(lambda prompt: "  \n "), index=index)
  with pytest.raises(base.ToolError, match="no answer"):
    tool("Who wrote Nineteen Eighty-Four?")
