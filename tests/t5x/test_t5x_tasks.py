"""SeqIO registrations in toolformer_tasks/ (import name toolformer_tasks): preprocessors, splits, shards."""
import gzip
import json

import numpy as np
import pytest
import seqio
import tensorflow as tf

import toolformer_tasks
from toolformer_tasks import annotated
from toolformer_tasks import lm
from toolformer_tasks import preprocessors
from toolformer_tasks import vocabularies


@pytest.mark.parametrize("num_tokens,length,expected", [
    (10, 4, [4, 4, 2]),
    (8, 4, [4, 4]),
    (3, 4, [3]),
    (1, 1, [1]),
    (0, 4, []),
    (9, 32, [9]),
])
def test_split_tokens_keeps_every_token_in_order(num_tokens, length, expected):
  tokens = np.arange(1, num_tokens + 1, dtype=np.int32)
  ds = tf.data.Dataset.from_tensors({"targets": tokens})
  chunks = [ex["targets"] for ex in
            preprocessors.split_tokens(ds, {"targets": length}).as_numpy_iterator()]
  assert [len(c) for c in chunks] == expected
  joined = np.concatenate(chunks) if chunks else np.zeros([0], np.int32)
  np.testing.assert_array_equal(joined, tokens)


@pytest.mark.parametrize("sequence_length", [None, {"inputs": 4}])
def test_split_tokens_without_a_length_passes_through(sequence_length):
  ds = tf.data.Dataset.from_tensors({"targets": np.arange(1, 11, dtype=np.int32)})
  out = list(preprocessors.split_tokens(ds, sequence_length).as_numpy_iterator())
  assert len(out) == 1 and len(out[0]["targets"]) == 10


def test_split_tokens_rejects_bad_length():
  ds = tf.data.Dataset.from_tensors({"targets": np.arange(3, dtype=np.int32)})
  with pytest.raises(ValueError, match=">= 1"):
    preprocessors.split_tokens(ds, {"targets": 0})


@pytest.mark.parametrize("text,kept", [
    ("a document", True), ("", False), ("   \n\t", False), (" x ", True)])
def test_drop_blank_texts(text, kept):
  ds = tf.data.Dataset.from_tensors({"text": text})
  assert len(list(preprocessors.drop_blank_texts(ds).as_numpy_iterator())) == int(kept)


def test_select_features_keeps_only_named():
  ds = tf.data.Dataset.from_tensors({"text": "a", "title": "b", "id": 3})
  (ex,) = list(preprocessors.select_features(ds, ["text"]).as_numpy_iterator())
  assert list(ex) == ["text"]


def test_heldout_split_is_deterministic_disjoint_and_about_five_percent():
  docs = lm.wiki_documents()
  train, validation = docs[lm.TRAIN], docs[lm.VALIDATION]
  total = len(train) + len(validation)
  assert total > 9000
  assert 0.04 < len(validation) / total < 0.06
  assert not set(train) & set(validation)
  # Deterministic across processes and runs (not Python's salted hash()): the held-out
  # titles are pinned, as computed from the SHA-256 of the title.
  heldout = [i for i in range(2000) if lm.is_heldout(f"Title {i}")]
  assert heldout[:12] == [39, 55, 59, 93, 113, 142, 147, 158, 160, 162, 169, 241]
  assert len(heldout) == 104  # 5.2% of 2000


def test_builtin_registrations():
  assert toolformer_tasks.WIKI_LM_TASK in seqio.TaskRegistry.names()
  assert toolformer_tasks.MIXTURE in seqio.MixtureRegistry.names()
  gpt2 = vocabularies.gpt2_vocabulary()
  assert toolformer_tasks.lm_task(gpt2) == "toolformer_lm_wiki"
  assert toolformer_tasks.lm_task(vocabularies.smollm2_vocabulary()) == \
      "toolformer_lm_wiki_smollm2"
  task = seqio.get_mixture_or_task("toolformer_lm_wiki")
  assert task.output_features["targets"].vocabulary == gpt2
  assert set(task.splits) == {"train", "validation"}


def test_lm_task_chunks_end_with_eos_and_decode_to_corpus_text():
  vocab = vocabularies.gpt2_vocabulary()
  task = seqio.get_mixture_or_task("toolformer_lm_wiki")
  examples = list(task.get_dataset({"targets": 64}, split="validation", shuffle=False)
                  .take(200).as_numpy_iterator())
  lengths = [len(ex["targets"]) for ex in examples]
  assert max(lengths) == 64 and min(lengths) >= 1
  # Chunks of one document are consecutive; the document's last chunk ends with EOS.
  ends = [i for i, ex in enumerate(examples) if ex["targets"][-1] == vocab.eos_id]
  assert ends
  first_doc = np.concatenate([ex["targets"] for ex in examples[:ends[0] + 1]])
  assert vocab.decode(first_doc.tolist()) == lm.wiki_documents()[lm.VALIDATION][0]


def test_perplexity_metric_and_token_counting_postprocessor():
  example = {"targets": np.array([5, 6, 7, 50256], np.int32)}
  assert lm.count_target_tokens("ignored", example=example, is_target=True) == 4
  assert lm.count_target_tokens("prediction", example=example, is_target=False) == "prediction"
  result = lm.perplexity(targets=[4, 6], scores=[-4.0, -16.0])
  assert result["perplexity"] == pytest.approx(np.exp(2.0))
  assert result["num_tokens"] == 10
  with pytest.raises(ValueError):
    lm.perplexity(targets=[0], scores=[0.0])


def test_text_files_task(tmp_path):
  path = tmp_path / "texts.jsonl"
  path.write_text('{"text": "First document!"}\n'
                  'not json\n'
                  '{"text": ""}\n'
                  '{"text": "Second one."}\n')
  vocab = vocabularies.gpt2_vocabulary()
  name = toolformer_tasks.text_files_task([str(path)], vocab)
  task = seqio.get_mixture_or_task(name)
  examples = list(task.get_dataset({"targets": 16}, split="validation", shuffle=False)
                  .as_numpy_iterator())
  assert [ex["targets_pretokenized"].decode() for ex in examples] == [
      "First document!", "Second one."]
  assert all(ex["targets"][-1] == vocab.eos_id for ex in examples)
  with pytest.raises(FileNotFoundError):
    toolformer_tasks.text_files_task([str(tmp_path / "nothing*.jsonl")], vocab)


@pytest.mark.parametrize("tool,name", [
    ("Calculator", "toolformer_calculator"), ("WikiSearch", "toolformer_wikisearch"),
    ("MT", "toolformer_mt"), (" Machine Translation ", "toolformer_machine_translation")])
def test_tool_task_names(tool, name):
  assert annotated.tool_task_name(tool) == name


@pytest.mark.parametrize("line,parsed", [
    ('{"tool": "Calculator", "text": "x [Calculator(1+1) -> 2] y"}',
     ("Calculator", "x [Calculator(1+1) -> 2] y")),
    ('{"tool": "", "text": "t"}', None),
    ('{"tool": "QA", "text": "  "}', None),
    ('{"tool": "QA"}', None),
    ('[1, 2]', None),
    ('{"tool": "QA", "text": ', None),
])
def test_parse_record(line, parsed):
  assert annotated.parse_record(line.encode()) == parsed


def _record(tool, text, i):
  return {"doc_id": f"d{i}", "tool": tool, "text": text, "call": "c", "result": "r",
          "char_position": 3, "loss_minus": 2.0, "loss_plus": 0.5}


@pytest.fixture
def restore_default_mixture():
  yield
  annotated._register(None, vocabularies.gpt2_vocabulary())  # pylint: disable=protected-access


def test_annotated_shards_register_tool_tasks_and_mixture(tmp_path, restore_default_mixture):
  shard_dir = tmp_path / "annotated"
  shard_dir.mkdir()
  calc = [_record("Calculator", f"Total: 3 + 4 [Calculator(3 + 4) -> 7] is seven {i}.", i)
          for i in range(3)]
  wiki = [_record("WikiSearch", f"Paris [WikiSearch(Paris) -> capital] {i}.", i)
          for i in range(2)]
  with open(shard_dir / "shard-00000.jsonl", "w") as f:
    for r in calc[:2] + wiki[:1]:
      f.write(json.dumps(r) + "\n")
    f.write("{broken\n")
    f.write(json.dumps({"tool": "Calculator"}) + "\n")
  with gzip.open(shard_dir / "shard-00001.jsonl.gz", "wt") as f:
    for r in calc[2:] + wiki[1:]:
      f.write(json.dumps(r) + "\n")
  with tf.io.TFRecordWriter(str(shard_dir / "shard-00002.tfrecord")) as writer:
    example = tf.train.Example(features=tf.train.Features(feature={
        "tool": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Calendar"])),
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[b"Today [Calendar() -> Monday] is Monday."]))}))
    writer.write(example.SerializeToString())
  # Audit file with rejected calls: never trained on.
  with open(shard_dir / "candidates-00000.jsonl", "w") as f:
    f.write(json.dumps(_record("Calculator", "REJECTED", 9)) + "\n")

  counts, skipped = annotated.count_tools(annotated.find_shards(str(shard_dir)))
  assert counts == {"Calculator": 3, "WikiSearch": 2, "Calendar": 1} and skipped == 2

  vocab = vocabularies.gpt2_vocabulary()
  name = toolformer_tasks.toolformer_mixture(vocab, str(shard_dir))
  assert name == "toolformer_all"
  mixture = seqio.get_mixture_or_task(name)
  rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
  assert rates == {"toolformer_calculator": 3.0, "toolformer_calendar": 1.0,
                   "toolformer_wikisearch": 2.0}
  calc_task = seqio.get_mixture_or_task("toolformer_calculator")
  texts = [vocab.decode(ex["targets"].tolist()) for ex in
           calc_task.get_dataset({"targets": 256}, split="train",
                                 shuffle=False).as_numpy_iterator()]
  assert texts == [r["text"] for r in calc]
  calendar = list(seqio.get_mixture_or_task("toolformer_calendar").get_dataset(
      {"targets": 256}, split="train", shuffle=False).as_numpy_iterator())
  assert vocab.decode(calendar[0]["targets"].tolist()) == \
      "Today [Calendar() -> Monday] is Monday."
  mixed = list(mixture.get_dataset({"targets": 256}, split="train", shuffle=False,
                                   num_epochs=1).take(6).as_numpy_iterator())
  assert all("REJECTED" not in vocab.decode(ex["targets"].tolist()) for ex in mixed)


def test_lm_fraction_mixes_plain_text_beside_the_records(tmp_path, restore_default_mixture):
  with open(tmp_path / "annotated-00000.jsonl", "w") as f:
    for i in range(3):
      f.write(json.dumps(_record("Calculator", f"Sum {i} [Calculator(1 + {i}) -> {i + 1}]", i))
              + "\n")
    f.write(json.dumps(_record("Calendar", "Today [Calendar() -> Monday] is Monday.", 9)) + "\n")
  vocab = vocabularies.gpt2_vocabulary()
  name = toolformer_tasks.toolformer_mixture(vocab, str(tmp_path), lm_fraction=0.5)
  mixture = seqio.get_mixture_or_task(name)
  rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
  # 4 records: the LM task gets as much weight as all of them together at 0.5.
  assert rates == {"toolformer_calculator": 3.0, "toolformer_calendar": 1.0,
                   "toolformer_lm_wiki": 4.0}
  name = toolformer_tasks.toolformer_mixture(vocab, str(tmp_path), lm_fraction=0.2)
  rates = {t.name: seqio.get_mixture_or_task(name).get_rate(t)
           for t in seqio.get_mixture_or_task(name).tasks}
  assert rates["toolformer_lm_wiki"] == pytest.approx(1.0)  # rebuilt for the new fraction
  control = toolformer_tasks.toolformer_mixture(vocab, str(tmp_path), without_calls=True,
                                                lm_fraction=0.5)
  assert "toolformer_lm_wiki" in [t.name for t in seqio.get_mixture_or_task(control).tasks]
  for bad in (1.0, -0.1):
    with pytest.raises(ValueError, match="lm_fraction must be in"):
      toolformer_tasks.toolformer_mixture(vocab, str(tmp_path), lm_fraction=bad)


def test_no_annotated_dir_falls_back_to_lm_task(monkeypatch, restore_default_mixture):
  monkeypatch.delenv(annotated.ANNOTATED_DIR_ENV, raising=False)
  name = toolformer_tasks.toolformer_mixture(vocabularies.gpt2_vocabulary(), None)
  mixture = seqio.get_mixture_or_task(name)
  assert [t.name for t in mixture.tasks] == ["toolformer_lm_wiki"]


def test_env_variable_configures_the_directory(monkeypatch, tmp_path, restore_default_mixture):
  monkeypatch.setenv(annotated.ANNOTATED_DIR_ENV, str(tmp_path / "missing"))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    toolformer_tasks.toolformer_mixture(vocabularies.gpt2_vocabulary(), None)


@pytest.mark.parametrize("files,error", [
    ({}, "holds no annotated shards"),
    ({"candidates.jsonl": '{"tool": "QA", "text": "x"}\n'}, "holds no annotated shards"),
    ({"a.jsonl": "not json\n{}\n"}, "no usable records"),
])
def test_bad_annotated_dirs_fail_clearly(tmp_path, files, error, restore_default_mixture):
  for name, content in files.items():
    (tmp_path / name).write_text(content)
  with pytest.raises((FileNotFoundError, ValueError), match=error):
    toolformer_tasks.toolformer_mixture(vocabularies.gpt2_vocabulary(), str(tmp_path))


def test_vocabulary_suffixes():
  assert vocabularies.suffix_for(vocabularies.gpt2_vocabulary()) == ""
  assert vocabularies.suffix_for(vocabularies.smollm2_vocabulary()) == "_smollm2"
  other = seqio.PassThroughVocabulary(size=10)
  assert vocabularies.suffix_for(other).startswith("_v")
  with pytest.raises(TypeError):
    vocabularies.suffix_for("gpt2")
