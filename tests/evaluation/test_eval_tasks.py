"""The eval tasks as SeqIO registers them (no t5x): features, the mixture, the LM task's
context chunks, the user's jsonl."""
import json

import numpy as np
import pytest
import seqio
import tensorflow as tf

import toolformer_tasks
from toolformer_tasks import eval_tasks
from toolformer_tasks import vocabularies
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import registry

LENGTHS = {"inputs": 48, "targets": 8}


@pytest.fixture(scope="module")
def vocabulary():
  return vocabularies.gpt2_vocabulary()


def _examples(name, lengths=LENGTHS):
  task = seqio.get_mixture_or_task(name)
  return list(task.get_dataset(lengths, split=eval_tasks.SPLIT, shuffle=False).as_numpy_iterator())


def test_mixture_of_sources_and_families(vocabulary):
  name = toolformer_tasks.eval_mixture(vocabulary, tasks=["dates", "math_templates_v2", "lm"],
                                       num_generated=3, name="toolformer_eval_test")
  tasks = sorted(t.name for t in seqio.get_mixture_or_task(name).tasks)
  assert tasks == ["toolformer_eval_dates_calendar_v2", "toolformer_eval_dates_given_v2",
                   "toolformer_eval_dates_heldout_v1",
                   "toolformer_eval_lm_wiki", "toolformer_eval_math_templates_v2"]
  assert [eval_tasks.family_of(t) for t in tasks] == ["dates", "dates", "dates", "lm", "math"]
  assert eval_tasks.family_of("toolformer_eval_mlqa_es_v2_smollm2") == "mlqa"
  with pytest.raises(ValueError, match="unknown eval task source"):
    toolformer_tasks.eval_mixture(vocabulary, tasks=["nonsense_v9"])


def test_generation_examples_carry_answers_and_match(vocabulary):
  name = eval_tasks.register_generator_task("dates_given_v2", vocabulary, count=4, seed=0)
  items = registry.get("dates_given_v2").generate(4, 0)
  examples = _examples(name)
  assert [e["id"].decode() for e in examples] == [i.id for i in items]
  for ex, item in zip(examples, items):
    assert ex["inputs_pretokenized"].decode() == item.inputs
    assert vocabulary.decode(ex["inputs"].tolist()) == item.inputs[-len(vocabulary.decode(
        ex["inputs"].tolist())):]  # the prompt's end is kept
    assert metrics.postprocess(ex["targets_pretokenized"], example=ex, is_target=True) == {
        "answers": list(item.answers), "match": item.match}


def test_long_prompts_keep_their_end(vocabulary):
  name = eval_tasks.register_generator_task("math_templates_v2", vocabulary, count=2,
                                            few_shot=True)
  (ex, _) = _examples(name, {"inputs": 12, "targets": 8})
  assert ex["inputs"].shape == (12,)
  assert vocabulary.decode(ex["inputs"].tolist()).endswith("\nAnswer: The answer is")
  assert ex["inputs_pretokenized"].decode().startswith(items_lib.FEW_SHOT[items_lib.MATH])


def test_lm_task_scores_every_token_once_with_its_context(vocabulary):
  name = eval_tasks.register_lm_task(vocabulary)
  lengths = {"inputs": 5, "targets": 7}
  chunks = _examples(name, lengths)[:400]
  whole = _examples(name, None)  # no lengths: whole documents, empty context
  assert all(len(e["inputs"]) == 0 for e in whole[:20])
  # Rebuild the first documents from the chunks: targets concatenate to the document, and
  # each chunk's inputs are the tokens right before it (at most 5).
  doc, docs = [], []
  for ex in chunks:
    if len(ex["inputs"]) == 0 and doc:
      docs.append(doc)
      doc = []
    assert len(ex["inputs"]) <= 5 and 1 <= len(ex["targets"]) <= 7
    if doc:
      assert ex["inputs"].tolist() == doc[-len(ex["inputs"]):]
    doc += ex["targets"].tolist()
  assert len(docs) >= 3
  for rebuilt, ex in zip(docs, whole):
    assert rebuilt == ex["targets"].tolist()
    assert rebuilt[-1] == vocabulary.eos_id


def test_jsonl_task_counts_and_skips_bad_records(tmp_path, vocabulary):
  path = tmp_path / "mine.jsonl"
  path.write_text("\n".join([
      json.dumps({"inputs": "Q: 2+2?\nA:", "targets": "4", "match": "number"}),
      json.dumps({"inputs": "The capital of Peru is", "targets": "Lima",
                  "answers": ["Lima", "Ciudad de los Reyes"]}),
      "not json",
      json.dumps({"inputs": "no targets"}),
      json.dumps({"inputs": "x", "targets": "y", "match": "number"}),  # y is not a number
      json.dumps({"inputs": "x", "targets": "y", "answers": "y"}),  # answers not a list
  ]) + "\n")
  from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
  stats = corpora.ReadStats("mine")
  items = eval_tasks.read_jsonl_items(str(path), match="words:5", stats=stats)
  assert [(i.targets, i.answers, i.match) for i in items] == [
      ("4", ("4",), "number"), ("Lima", ("Lima", "Ciudad de los Reyes"), "words:5")]
  assert dict(stats.skipped_by_reason) == {corpora.MALFORMED_JSON: 1, "missing_targets": 1,
                                           eval_tasks.BAD_ANSWERS: 2}
  mixture = toolformer_tasks.eval_mixture(vocabulary, tasks=[], jsonl_files=[f"my data={path}"],
                                          name="toolformer_eval_jsonl_test")
  (task,) = seqio.get_mixture_or_task(mixture).tasks
  assert task.name == "toolformer_eval_jsonl_my_data"
  assert eval_tasks.family_of(task.name) == items_lib.CUSTOM
  assert [e["targets_pretokenized"] for e in _examples(task.name)] == [b"4", b"Lima"]


def test_asdiv_task_needs_a_path(vocabulary, monkeypatch, tmp_path):
  monkeypatch.delenv("TOOLFORMER_ASDIV_PATH", raising=False)
  with pytest.raises(FileNotFoundError, match="ASDIV_PATH"):
    toolformer_tasks.eval_mixture(vocabulary, tasks=["math_asdiv"])


def test_default_eval_output_dir_names_the_checkpoint_and_the_tools():
  assert eval_tasks.eval_output_dir("/m/checkpoint_2000", 10) == "/m/eval_checkpoint_2000_tools_on"
  assert eval_tasks.eval_output_dir("/m/checkpoint_2000/", 0, few_shot=True) == (
      "/m/eval_checkpoint_2000_tools_off_few_shot")
  with pytest.raises(ValueError):
    eval_tasks.eval_output_dir(None, 10)


def test_asdiv_joins_the_math_family_when_a_path_is_given(monkeypatch):
  monkeypatch.delenv("TOOLFORMER_ASDIV_PATH", raising=False)
  assert "math_asdiv" not in eval_tasks.expand_sources(["math"])
  math = eval_tasks.expand_sources(["math"], with_asdiv=True)
  assert math[0] == "math_asdiv" and len(math) == 5
  assert "math_asdiv" in eval_tasks.expand_sources(None, with_asdiv=True)
  monkeypatch.setenv("TOOLFORMER_ASDIV_PATH", "/somewhere")
  assert "math_asdiv" in eval_tasks.expand_sources(None)
  assert eval_tasks.expand_sources(["qa_leads_v2"]) == ["qa_leads_v2"]


def test_heldout_rule_has_one_copy():
  from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
  from toolformer_tasks import lm  # pylint: disable=g-import-not-at-top
  assert lm.is_heldout is corpora.is_heldout is toolformer_tasks.is_heldout
  assert lm.HELDOUT_PER_MILLE == corpora.HELDOUT_PER_MILLE
