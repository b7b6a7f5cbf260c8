"""Position sampling and call sampling under a tool's few-shot prompt P(x).

P(x) is `before + x + middle` (the prompt file with the document in place of <INPUT>),
after which the model writes x again, with calls. Every piece is tokenized on its own
and the ids are concatenated, so the second copy of x carries exactly ids(x), the
token positions the filter scores.

* One pass per batch of documents (`encode_documents`): [0] + ids(before) is prefilled
  ONCE per prompt into a one-row KV cache, forked to one row per document, and each row
  is extended by ids(x) + ids(middle) + ids(x) in one call that returns
  p_i = p(" [" | P(x), x_{<i}) at every i (the network's selected log-probs, no
  [batch, length, vocab] tensor); the top k positions with p_i > tau_s are kept.
* Calls (`sample_calls`): that same cache is forked into one row per (position, sample),
  each row resuming at its position i, fed " [" and sampled one token per step (one
  extend call for all rows) until "]" or "->" or a length cap. Finished rows take 0
  tokens per step, and the rows still running are compacted into a smaller cache when
  they fit in half of it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

from toolformer_jax.networks import kv_cache
from toolformer_jax.tools import call_format

PROMPT_DIR = os.path.join(os.path.dirname(__file__), "prompts")
INPUT_MARKER = "<INPUT>"
START_ID = 0


@dataclasses.dataclass(frozen=True)
class Prompt:
  """A few-shot prompt split around the document: P(x) = before + x + middle."""
  tool: str
  before: str
  middle: str
  path: str

  @classmethod
  def load(cls, tool: str, path: Optional[str] = None) -> "Prompt":
    """The prompt file for `tool` (default: prompts/<tool lower-case>.txt)."""
    path = path or os.path.join(PROMPT_DIR, f"{tool.lower()}.txt")
    if not os.path.isfile(path):
      raise FileNotFoundError(f"no prompt file for tool {tool!r} at {path}")
    with open(path, encoding="utf-8") as f:
      text = f.read()
    if text.count(INPUT_MARKER) != 1:
      raise ValueError(f"prompt {path} must contain {INPUT_MARKER} exactly once")
    before, middle = text.split(INPUT_MARKER)
    return cls(tool=tool, before=before, middle=middle.rstrip("\n"), path=path)


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """The paper's defaults (tau_s 0.05, k 5, m 5); gin run files set per-model values."""
  tau_s: float = 0.05
  top_k_positions: int = 5
  calls_per_position: int = 5
  max_call_tokens: int = 32
  temperature: float = 1.0  # 0 = greedy
  max_document_tokens: int = 256
  rows_per_batch: int = 32  # sampled calls decoded together (cache rows per fork)
  # Write the prompt's tool name and "(" after " [" instead of sampling them; the call
  # then ends where its parentheses close.
  force_tool_name: bool = False
  argument_prefix: str = ""  # with force_tool_name: written after "Name(" too
  seed: int = 0

  def __post_init__(self):
    if not 0.0 <= self.tau_s <= 1.0:
      raise ValueError(f"tau_s must be in [0, 1], got {self.tau_s}")
    for name in ("top_k_positions", "calls_per_position", "max_call_tokens",
                 "max_document_tokens", "rows_per_batch"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.temperature < 0:
      raise ValueError(f"temperature must be >= 0, got {self.temperature}")
    if self.argument_prefix and not self.force_tool_name:
      raise ValueError("argument_prefix needs force_tool_name (it follows the forced name)")


def _bucket(n: int, floor: int = 8) -> int:
  """Powers of two (batch sizes and short lengths)."""
  return max(floor, 1 << math.ceil(math.log2(max(n, 1))))


def _round_up(n: int, multiple: int = 64) -> int:
  """Sequence lengths: multiples of 64, so a prompt-sized prefix wastes little."""
  return max(multiple, -(-n // multiple) * multiple)


@dataclasses.dataclass(frozen=True)
class SampledCall:
  token_position: int
  text: str  # what the model wrote after " [", cut at "]" / "->"
  call: Optional[call_format.ToolCall]  # None when it does not parse
  p_call_start: float  # p(" [") at the position


@dataclasses.dataclass
class EncodedDocuments:
  """A batch of documents run under a prompt: what position and call sampling share."""
  prompt: Prompt
  ids: List[List[int]]  # ids(x) per document
  probs: List[np.ndarray]  # p(" [") before every x_i, [len(x)] per document
  starts: List[int]  # the cache slot of x_0's second copy, per document
  cache: object  # KV cache, one row per document (padded to a power of two)


class CallSampler:
  """Samples positions and calls for batches of documents with one network."""

  def __init__(self, module, params, vocabulary, config: SamplingConfig = SamplingConfig(),
               mesh: Optional[Mesh] = None):
    """With a `mesh`, document and call rows are sharded over its `data` axis (batches
    padded to a multiple of it) and `params` must already be placed on the mesh."""
    self.module = module
    self.mesh = mesh
    self.rows_floor = mesh.shape["data"] if mesh is not None else 1
    self.params = params
    self.vocabulary = vocabulary
    self.config = config
    from toolformer_jax import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
    self.call_start_id = vocab_lib.single_token_id(vocabulary, call_format.CALL_START)
    self._encode_cache = {}
    self.forwards = 0  # prefix forwards (positions and prefills), for reports and benchmarks

    @functools.partial(jax.jit, static_argnums=(3,))
    def prefill(params, tokens, lengths, cache_length):
      cache = kv_cache.init_cache(module, params, tokens.shape[0], cache_length)
      _, cache = kv_cache.prefill(module, params, cache, tokens, lengths)
      return cache

    @functools.partial(jax.jit, donate_argnums=(1,))
    def extend_log_probs(params, cache, tokens, lengths, read_at):
      # tokens [docs, n] after each row's cache_index; read_at [docs, p]: log p(" [")
      # from the logits at those extension indices.
      return kv_cache.extend(module, params, cache, tokens, lengths, output="log_probs",
                             output_positions=read_at,
                             output_tokens=jnp.full(read_at.shape, self.call_start_id,
                                                    jnp.int32))

    @jax.jit
    def fork(cache, rows, index):
      return kv_cache.fork(module, cache, rows, index)

    @functools.partial(jax.jit, donate_argnums=(1,))
    def step(params, cache, tokens, lengths, rng):
      # tokens [rows, n]: row r appends its first lengths[r] and samples after the last.
      last = jnp.maximum(lengths - 1, 0)[:, None]  # [rows, 1]
      logits, cache = kv_cache.extend(module, params, cache, tokens, lengths,
                                      output_positions=last)
      logits = logits[:, 0]  # [rows, vocab]
      if config.temperature == 0:
        chosen = jnp.argmax(logits, axis=-1)
      else:
        chosen = jax.random.categorical(rng, logits / config.temperature, axis=-1)
      return chosen.astype(jnp.int32), cache

    self._extend_log_probs = extend_log_probs
    self._prompt_caches = {}
    self._prefill = prefill
    self._fork = fork
    self._compact = jax.jit(lambda cache, rows: kv_cache.fork(module, cache, rows))
    self._step = step

  # -------------------------------------------------------------------- helpers

  def _shard(self, tree, axis: int = 0):
    """Every array of `tree` with its rows (axis `axis`) over the mesh's `data` axis."""
    if self.mesh is None:
      return tree

    def place(leaf):
      spec = [None] * np.ndim(leaf)
      spec[axis] = "data"
      return jax.device_put(leaf, NamedSharding(self.mesh, PartitionSpec(*spec)))

    return jax.tree.map(place, tree)

  def _shard_cache(self, cache):
    """A KV cache with its rows over `data` (every leaf has them on `batch_axis`)."""
    return self._shard(cache, kv_cache.batch_axis(self.module))

  def encode(self, text: str) -> List[int]:
    if text not in self._encode_cache:
      self._encode_cache[text] = [int(t) for t in self.vocabulary.encode(text)]
    return self._encode_cache[text]

  def document_ids(self, text: str) -> List[int]:
    return [int(t) for t in self.vocabulary.encode(text)][:self.config.max_document_tokens]

  def _contexts(self, prompt: Prompt, docs: Sequence[Sequence[int]]):
    """[0] + ids(before) + ids(x) + ids(middle) + ids(x) per document, and where x restarts."""
    before, middle = self.encode(prompt.before), self.encode(prompt.middle)
    rows, starts = [], []
    for ids in docs:
      head = [START_ID] + before + list(ids) + middle
      rows.append(head + list(ids))
      starts.append(len(head))
    return rows, starts

  # -------------------------------------------------------------------- positions

  def _prompt_cache(self, prompt: Prompt, cache_length: int):
    """The KV cache (one row) of [0] + ids(before), computed once per prompt and length."""
    key = (prompt.tool, prompt.before, cache_length)
    if key not in self._prompt_caches:
      prefix = [START_ID] + self.encode(prompt.before)
      tokens = np.zeros((1, _round_up(len(prefix))), np.int32)
      tokens[0, :len(prefix)] = prefix
      self._prompt_caches[key] = self._prefill(self.params, tokens,
                                               np.asarray([len(prefix)], np.int32),
                                               cache_length)
      self.forwards += 1
    return self._prompt_caches[key]

  def encode_documents(self, prompt: Prompt, docs: Sequence[Sequence[int]]
                       ) -> EncodedDocuments:
    """One extend of ids(x) + ids(middle) + ids(x) per document after the cached prompt
    prefix: p_i = p(" [" | P(x), x_{<i}) at every i (selected log-probs, no vocabulary-
    wide tensor) and the KV cache that call sampling forks from."""
    cfg = self.config
    prefix_length = 1 + len(self.encode(prompt.before))
    middle = self.encode(prompt.middle)
    if not docs:
      return EncodedDocuments(prompt, [], [], [], None)
    width = _round_up(max(2 * len(x) + len(middle) for x in docs))  # extension tokens
    cache_length = _round_up(prefix_length + width + 1 + cfg.max_call_tokens)
    batch = _bucket(len(docs), floor=self.rows_floor)
    tokens = np.zeros((batch, width), np.int32)
    lengths = np.zeros((batch,), np.int32)
    read_at = np.zeros((batch, _bucket(max(len(x) for x in docs))), np.int32)
    starts = []
    for b, ids in enumerate(docs):
      row = list(ids) + middle + list(ids)
      tokens[b, :len(row)] = row
      lengths[b] = len(row)
      restart = len(ids) + len(middle)  # where the second copy of x begins
      read_at[b, :len(ids)] = restart - 1 + np.arange(len(ids))  # logits before x_i
      starts.append(prefix_length + restart)
    prompt_cache = self._prompt_cache(prompt, cache_length)
    cache = self._shard_cache(self._fork(prompt_cache, np.zeros((batch,), np.int32),
                                   np.full((batch,), prefix_length, np.int32)))
    log_probs, cache = self._extend_log_probs(self.params, cache, *self._shard(
        (tokens, lengths, read_at)))
    log_probs = np.asarray(log_probs)  # [batch, positions]
    self.forwards += len(docs)
    probs = [np.exp(log_probs[b, :len(ids)]) for b, ids in enumerate(docs)]
    return EncodedDocuments(prompt, [list(x) for x in docs], probs, starts, cache)

  def position_probs(self, prompt: Prompt, docs: Sequence[Sequence[int]]) -> List[np.ndarray]:
    """p_i = p(" [" before x_i) for every i of every document ([len(x)] each)."""
    return self.encode_documents(prompt, docs).probs

  def select_positions(self, probs: np.ndarray) -> List[int]:
    """Top k positions with p_i > tau_s (ties to the earlier position)."""
    cfg = self.config
    order = sorted(range(len(probs)), key=lambda i: (-float(probs[i]), i))
    return sorted(i for i in order[:cfg.top_k_positions] if probs[i] > cfg.tau_s)

  # -------------------------------------------------------------------- calls

  def sample_calls(self, encoded: EncodedDocuments, positions: Sequence[Sequence[int]],
                   rng: jax.Array) -> List[List[SampledCall]]:
    """m sampled calls per kept position of every encoded document (duplicates kept)."""
    cfg = self.config
    out: List[List[SampledCall]] = [[] for _ in encoded.ids]
    samples = [(d, i) for d, ps in enumerate(positions) for i in ps
               for _ in range(cfg.calls_per_position)]
    texts = [""] * len(samples)
    for first in range(0, len(samples), cfg.rows_per_batch):
      chunk = samples[first:first + cfg.rows_per_batch]
      rng, chunk_rng = jax.random.split(rng)
      for r, text in enumerate(self._decode_rows(encoded.cache, chunk, encoded.starts,
                                                 chunk_rng, encoded.prompt.tool)):
        texts[first + r] = text
    for r, (d, i) in enumerate(samples):
      text = texts[r]
      for marker in (call_format.CALL_END, call_format.RESULT_MARKER):
        text = text.split(marker)[0]
      if cfg.force_tool_name and _parentheses_closed(text):
        text = text[:_closing_index(text) + 1]
      text = text.strip()
      parsed = call_format.parse_call(text)
      call = parsed if isinstance(parsed, call_format.ToolCall) else None
      out[d].append(SampledCall(token_position=i, text=text, call=call,
                                p_call_start=float(encoded.probs[d][i])))
    return out

  def _decode_rows(self, cache, chunk, starts, rng, tool: str) -> List[str]:
    """Forks one cache row per (document, position) of `chunk`, feeds " [" (and with
    `force_tool_name` the tool's "Name(") and samples until every row has written "]" or
    "->" (or closed its parentheses) or the length cap; returns the texts."""
    cfg = self.config
    num_rows = _bucket(len(chunk), floor=self.rows_floor)
    source = np.zeros((num_rows,), np.int32)
    index = np.zeros((num_rows,), np.int32)
    for r, (d, i) in enumerate(chunk):
      source[r], index[r] = d, starts[d] + i
    rows_cache = self._shard_cache(self._fork(cache, source, index))
    forced = self.encode(f"{tool}({cfg.argument_prefix}") if cfg.force_tool_name else []
    first = np.asarray([self.call_start_id] + forced, np.int32)
    generated = [list(forced) for _ in range(len(chunk))]
    texts = [""] * len(chunk)
    # slot_of[r]: the cache row of sample r (-1 once it has finished); the rows still
    # running are compacted into a smaller cache when they fit in half of it, so a few
    # long calls do not keep every finished row stepping.
    slot_of = np.arange(len(chunk))
    current = np.broadcast_to(first, (num_rows, len(first)))
    lengths = np.zeros((num_rows,), np.int32)
    lengths[:len(chunk)] = len(first)
    for _ in range(cfg.max_call_tokens):
      rng, key = jax.random.split(rng)
      chosen, rows_cache = self._step(self.params, rows_cache,
                                      *self._shard((current, lengths)), key)
      chosen = np.asarray(chosen)
      for r in np.flatnonzero(slot_of >= 0):
        generated[r].append(int(chosen[slot_of[r]]))
        texts[r] = self.vocabulary.decode(generated[r])
        if (call_format.CALL_END in texts[r] or call_format.RESULT_MARKER in texts[r]
            or (forced and _parentheses_closed(texts[r]))):
          slot_of[r] = -1
      running = np.flatnonzero(slot_of >= 0)
      if not len(running):
        break
      last_tokens = chosen[slot_of[running]]  # [running]
      if _bucket(len(running), floor=self.rows_floor) <= num_rows // 2:
        num_rows = _bucket(len(running), floor=self.rows_floor)
        keep = np.zeros((num_rows,), np.int32)
        keep[:len(running)] = slot_of[running]
        rows_cache = self._shard_cache(self._compact(rows_cache, keep))
        slot_of[running] = np.arange(len(running))
      current = np.zeros((num_rows, 1), np.int32)
      lengths = np.zeros((num_rows,), np.int32)
      current[slot_of[running], 0] = last_tokens
      lengths[slot_of[running]] = 1
    return texts


def _closing_index(text: str) -> int:
  """Index of the ")" matching the first "(" of `text`, or -1."""
  depth = 0
  for k, ch in enumerate(text):
    if ch == "(":
      depth += 1
    elif ch == ")":
      depth -= 1
      if depth == 0:
        return k
  return -1


def _parentheses_closed(text: str) -> bool:
  return _closing_index(text) >= 0
