"""The paper's control: the same documents fine-tuned without their calls."""
import json

import pytest


def test_control_records_are_the_documents_without_their_calls(tmp_path):
  from toolformer_jax.annotate import pipeline
  from toolformer_tasks import annotated
  document = "Tom had 12 apples and got 30 more, so Tom had 42 apples. Today is Monday."
  kept = [{"char_position": 41, "loss_minus": 2.0, "loss_plus": 0.5,
           "prefix_call_result": " [Calculator(12 + 30) -> 42]"},
          {"char_position": 67, "loss_minus": 1.0, "loss_plus": 0.5,
           "prefix_call_result": " [Calendar() -> Today is Monday, January 30, 2023.]"}]
  text, inserted = pipeline.merge(document, kept, max_calls=2)
  assert text != document
  record = {"doc_id": "d", "tool": "Calculator", "text": text, "call": "Calculator(12 + 30)",
            "result": "42", "char_position": 41,
            "calls": [{"tool": "Calculator", "call": "Calculator(12 + 30)", "result": "42",
                       "char_position": 41},
                      {"tool": "Calendar", "call": "Calendar()",
                       "result": "Today is Monday, January 30, 2023.", "char_position": 67}]}
  assert len(inserted) == 2
  assert annotated.text_without_calls(record) == document
  one = dict(record, calls=None, text=pipeline.merge(document, kept[:1], 1)[0])
  assert annotated.text_without_calls(one) == document
  with pytest.raises(ValueError, match="not in its text"):
    annotated.text_without_calls(dict(record, text=document))

  shard = tmp_path / "annotated-00000-of-00001.jsonl"
  shard.write_text(json.dumps(record) + "\n" + json.dumps(dict(one, doc_id="e")) + "\n")
  files = annotated.find_shards(str(tmp_path))
  with_calls = [ex["text"].decode() for ex in
                annotated.tool_dataset(files, "Calculator").as_numpy_iterator()]
  without = [ex["text"].decode() for ex in
             annotated.tool_dataset(files, "Calculator", without_calls=True)
             .as_numpy_iterator()]
  assert with_calls == [record["text"], one["text"]]
  assert without == [document, document]


def test_control_mixture_has_its_own_name_and_needs_shards(tmp_path):
  import seqio
  from toolformer_tasks import annotated
  from toolformer_tasks import vocabularies
  vocabulary = next(iter(vocabularies.builtin_vocabularies().values()))
  record = {"doc_id": "d", "tool": "Calculator", "text": "a [Calculator(1 + 2) -> 3] 3",
            "call": "Calculator(1 + 2)", "result": "3", "char_position": 1}
  (tmp_path / "annotated-00000-of-00001.jsonl").write_text(json.dumps(record) + "\n")
  name = annotated.register_toolformer_tasks(vocabulary, str(tmp_path), without_calls=True)
  assert name.startswith("toolformer_all_nocalls")
  tasks = [t.name for t in seqio.get_mixture_or_task(name).tasks]
  assert tasks and all("_nocalls" in t for t in tasks)
  with pytest.raises(ValueError, match="needs annotated shards"):
    annotated.register_toolformer_tasks(vocabulary, None, without_calls=True)


