"""Tool-use decoding (Toolformer's inference procedure) as a t5x decode_fn.

`ToolSampler` is called exactly as t5x calls `decoding.temperature_sample` (keyword
arguments inputs, cache, tokens_to_logits, eos_id, decode_rng, num_decodes, temperature,
topk, topp, cache_offset, initial_index, max_decode_steps, ...) and returns the same
`(decodes [batch, num_decodes, length], log_probs [batch, num_decodes])`, sorted the same
way. It runs its own jitted `lax.while_loop` that follows temperature_sample step for step
(same RNG stream, same top-k/top-p masks, same EOS and length rules), so when no call is
triggered its tokens are temperature_sample's. On top of that, per row:

  trigger   if " [" is among the `trigger_top_k` most likely next tokens (the paper: 10)
            and the row has calls left (`max_calls`), " [" is emitted;
            `trigger_top_k = 0` turns tools off entirely (plain temperature sampling);
  call      the row decodes freely until it emits "->" (a token ending in "->", or ">"
            after "-"), or `max_call_tokens` tokens after " [";
  execute   in that step, every row that reached "->" goes to the tools' engine
            (`tools.ToolExecutor.execute_batch`, concurrent, with timeouts; it never
            raises) through one `jax.experimental.io_callback` from inside the loop;
            rows not in a call keep decoding in the same step;
  insert    the tokenised result plus "]" (` 0.29]`, `render_completion`; at most
            `max_result_tokens` tokens, cut to fit the sequence) is written into the
            sequence, and into the KV cache by ONE extend step of the network
            (`decode_lengths` per row) at the start of the next loop step, before the
            usual one-token step; decoding goes on after "]".
            A parse error, unknown tool, tool error or timeout inserts
            `<status>: <message>` (cut to `error_chars`) instead of a result.

The extend step needs a `tokens_to_logits` that accepts a `DecodingState` with
`decode_lengths` (cur_token [batch, n]): `toolformer_jax.models.ToolformerDecoderOnlyModel`
provides it (its `_compute_logits_from_slice`), and its `predict_batch_with_aux` adds the
calls to the aux outputs (`capture_aux`). Aux outputs, per row and call slot
([batch, (num_decodes,) max_calls]), positions counted in the returned (prefix-removed)
tokens as t5x's predict_batch_with_aux returns them:

  call_count [batch]       calls started (at most max_calls)
  call_position            index of the " [" token (-1: no call in this slot)
  call_marker_position     index of the "->" token (or the last call token when capped)
  call_result_length       tokens inserted after it (result and "]")
  call_status              index into tools.STATUSES (ok, error, timeout, refused);
                           -1: the call did not finish (EOS or the length limit first)
  call_trigger_rank        rank of " [" among the next-token logits at the trigger step
  call_trigger_prob        its probability p(" [") there (softmax of the raw logits)
  call_forced              1 if the trigger emitted " [", 0 if it was sampled anyway
  call_step                decoding-loop step of the trigger

`calls_from_aux` turns them (with the tokens) into records with tool, arguments and result
text. The module imports without t5x (its cache layout helpers are the network's own).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from absl import logging
import flax
from flax import traverse_util
import jax
from jax import lax
from jax import random
from jax.experimental import io_callback
import jax.numpy as jnp
import numpy as np

from toolformer_jax import vocab as vocab_lib
from toolformer_jax.tools import base as tool_base
from toolformer_jax.tools import call_format

Array = jax.Array

# temperature_sample's constants (t5x.decoding), so that the masks and the greedy switch
# behave identically.
NEG_INF = np.array(-1.0e7)
MIN_TEMPERATURE = np.array(1e-4)
_EXTRA_POSITIONS = 2  # t5x's garbage positions appended to the sequences

STATUS_UNFINISHED = -1
STATUS_CODES = {name: code for code, name in enumerate(tool_base.STATUSES)}

AUX_KEYS = ("call_count", "call_position", "call_marker_position", "call_result_length",
            "call_status", "call_trigger_rank", "call_trigger_prob", "call_forced",
            "call_step")


# ----------------------------------------------------------------------------- states
@flax.struct.dataclass
class DecodingState:
  """What tokens_to_logits receives: t5x's `DecodingState` fields plus `decode_lengths`.

  decode_lengths None: a one-token step (cur_token [batch, 1]), t5x's protocol.
  decode_lengths [batch]: an extend step: cur_token [batch, n], row b appends its first
  decode_lengths[b] tokens (0 leaves the row untouched); the logits returned are those at
  each row's last real token.
  """
  cur_index: Array
  sequences: Array
  cur_token: Array
  cache: Any
  decode_lengths: Optional[Array] = None


@flax.struct.dataclass
class CallRecords:
  """Per row and call slot ([batch, max_calls]); positions are sequence positions."""
  position: Array
  marker: Array
  result_length: Array
  status: Array
  trigger_rank: Array
  trigger_prob: Array
  forced: Array
  step: Array

  @classmethod
  def empty(cls, batch: int, slots: int) -> "CallRecords":
    minus = jnp.full((batch, slots), -1, jnp.int32)
    return cls(position=minus, marker=minus, result_length=jnp.zeros_like(minus),
               status=minus, trigger_rank=minus,
               trigger_prob=jnp.zeros((batch, slots), jnp.float32),
               forced=jnp.zeros_like(minus), step=minus)

  def put(self, mask: Array, slot: Array, **values) -> "CallRecords":
    """Writes `values` ([batch]) at each row's `slot` where `mask` ([batch]) holds."""
    slots = self.position.shape[1]
    where = mask[:, None] & (jnp.arange(slots)[None, :] == slot[:, None])  # [b, slots]
    updates = {name: jnp.where(where, jnp.asarray(value)[:, None].astype(
        getattr(self, name).dtype), getattr(self, name)) for name, value in values.items()}
    return self.replace(**updates)


@flax.struct.dataclass
class ToolSamplingState:
  """t5x's `SamplingLoopState` fields (what logit/state callbacks read) plus the tools'.

  feed_len [batch]: tokens at the end of each row's sequence not yet in the cache (1 in
  plain steps; 1 + inserted tokens right after an insertion). in_call / call_start: the
  row is inside a call opened by the " [" at sequence position call_start.
  """
  step: Array
  cur_index: Array
  sequences: Array
  cache: Any
  cur_token: Array
  ended: Array
  rng: Array
  log_prob: Array
  feed_len: Array
  in_call: Array
  call_start: Array
  num_calls: Array
  calls: CallRecords


# ---------------------------------------------------------------------------- sampling
def _is_tracer(value: Any) -> bool:
  return isinstance(value, jax.core.Tracer)


def topk_mask(x: Array, k: Union[int, Array]) -> Array:
  """Keeps the values >= the k-th largest per row (ties may keep more), others NEG_INF."""
  if _is_tracer(k):
    kth = jnp.take(jnp.sort(x, axis=-1)[..., ::-1], jnp.maximum(k, 1) - 1, axis=-1)[..., None]
  else:
    kth = lax.top_k(x, int(k))[0][..., -1:]
  return jnp.where(x >= kth, x, jnp.full_like(x, NEG_INF))


def topp_mask(logits: Array, p: Union[float, Array]) -> Array:
  """Keeps the smallest set of most likely values whose probability mass is >= p."""
  probs = jax.nn.softmax(logits, axis=-1)
  ordered = jnp.sort(probs, axis=-1)[..., ::-1]
  mass = jnp.cumsum(ordered, axis=-1)
  last = jnp.minimum(jnp.sum(mass < p, axis=-1, keepdims=True), probs.shape[-1] - 1)
  threshold = jnp.take_along_axis(ordered, last, axis=-1)
  return jnp.where(probs >= threshold, logits, jnp.full_like(logits, NEG_INF))


def _sample(logits: Array, rng: Array, temperature: Array, topk, topp, rescale: bool,
            num_decodes: int) -> Tuple[Array, Array]:
  """One sampling step with temperature_sample's semantics: (tokens [b], log probs [b])."""

  def nonzero(logits, temperature):
    scaled = logits / jnp.maximum(temperature, MIN_TEMPERATURE)
    if _is_tracer(topk) or topk:
      scaled = lax.cond(topk > 0, lambda: topk_mask(scaled, topk), lambda: scaled)
    if _is_tracer(topp) or topp:
      scaled = topp_mask(scaled, topp)
    token = random.categorical(rng, scaled).astype(jnp.int32)
    log_probs = jax.nn.log_softmax(scaled if rescale else logits)
    return token, jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]

  def zero(logits, temperature):
    del temperature
    token = jnp.argmax(logits, -1).astype(jnp.int32)
    if rescale:
      return token, jnp.zeros_like(token, dtype=jnp.float32)
    log_probs = jax.nn.log_softmax(logits)
    return token, jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]

  if temperature.ndim == 1:  # one temperature per example
    def per_row(row_logits, row_temperature):
      return lax.cond(row_temperature > MIN_TEMPERATURE, nonzero, zero, row_logits[None],
                      row_temperature)

    token, log_prob = jax.vmap(per_row)(logits, jnp.repeat(temperature, num_decodes))
    return token[:, 0], log_prob[:, 0]
  return lax.cond(temperature > MIN_TEMPERATURE, nonzero, zero, logits, temperature)


def _forced_log_prob(logits: Array, token_id: int, temperature: Array, rescale: bool,
                     num_decodes: int) -> Array:
  """The log-probability a forced token adds to the score (masks aside)."""
  if not rescale:
    return jax.nn.log_softmax(logits)[:, token_id]
  temps = (jnp.repeat(temperature, num_decodes) if temperature.ndim == 1
           else jnp.broadcast_to(temperature, logits.shape[:1]))
  scaled = jax.nn.log_softmax(logits / jnp.maximum(temps, MIN_TEMPERATURE)[:, None])
  return jnp.where(temps > MIN_TEMPERATURE, scaled[:, token_id], 0.0)


# ------------------------------------------------------------------------ cache layout
def expand_rows(x: Array, n: int, offset: int = 0) -> Array:
  """Repeats every row n times along axis `offset` (row r -> rows r*n .. r*n+n-1)."""
  return jnp.repeat(x, n, axis=offset)


def expand_cache(cache: Any, n: int, offset: int, include_index: bool) -> Any:
  """The cache for num_decodes = n, as t5x's `cache_map(flat_batch_beam_expand)` builds it."""
  frozen = isinstance(cache, flax.core.FrozenDict)
  flat = traverse_util.flatten_dict(flax.core.unfreeze(cache) if frozen else cache)
  skip = {"cached_bias", "position_embedder_index"}
  if not include_index:
    skip.add("cache_index")
  flat = {k: (v if k[-1] in skip else expand_rows(v, n, offset)) for k, v in flat.items()}
  out = traverse_util.unflatten_dict(flat)
  return flax.core.freeze(out) if frozen else out


def _like(cache: Any, reference: Any) -> Any:
  """`cache` frozen exactly when `reference` is (lax.cond branches must agree)."""
  if isinstance(reference, flax.core.FrozenDict):
    return flax.core.freeze(cache)
  return flax.core.unfreeze(cache) if isinstance(cache, flax.core.FrozenDict) else cache


# ---------------------------------------------------------------------------- markers
@dataclasses.dataclass(frozen=True)
class MarkerTables:
  """Token-level facts about the call format for one vocabulary (host numpy, [vocab])."""
  call_id: int  # " ["
  ends_arrow: np.ndarray  # the token's text ends with "->"
  ends_dash: np.ndarray  # ... ends with "-"
  is_gt: np.ndarray  # ... is ">"
  special: np.ndarray  # PAD, EOS: never inserted

  def padded(self, size: int) -> "MarkerTables":
    def pad(table):
      if len(table) >= size:
        return table[:size]
      return np.concatenate([table, np.zeros(size - len(table), table.dtype)])
    return MarkerTables(self.call_id, pad(self.ends_arrow), pad(self.ends_dash),
                        pad(self.is_gt), pad(self.special))


_TABLES: Dict[Any, MarkerTables] = {}
_TABLES_LOCK = threading.Lock()


def marker_tables(vocabulary) -> MarkerTables:
  """MarkerTables of `vocabulary` (decodes every id once; cached per vocabulary)."""
  with _TABLES_LOCK:
    try:
      cached = _TABLES.get(vocabulary)
    except TypeError:  # an unhashable vocabulary
      cached = None
    if cached is not None:
      return cached
  call_id = vocab_lib.single_token_id(vocabulary, call_format.CALL_START)
  size = int(vocabulary.vocab_size)
  texts = [vocabulary.decode([i]) for i in range(size)]
  ends_arrow = np.asarray([t.endswith(call_format.RESULT_MARKER) for t in texts])
  ends_dash = np.asarray([t.endswith(call_format.RESULT_MARKER[0]) for t in texts])
  is_gt = np.asarray([t == call_format.RESULT_MARKER[1:] for t in texts])
  special = np.zeros(size, bool)
  for i in (vocabulary.pad_id, vocabulary.eos_id):
    if i is not None and 0 <= i < size:
      special[i] = True
  ends_arrow &= ~special
  tables = MarkerTables(call_id, ends_arrow, ends_dash, is_gt, special)
  with _TABLES_LOCK:
    try:
      _TABLES[vocabulary] = tables
    except TypeError:
      pass
  return tables


# ---------------------------------------------------------------------------- sampler
class _Capture:
  def __init__(self):
    self.aux: Optional[Dict[str, Array]] = None


class ToolSampler:
  """A t5x decode_fn with Toolformer's tool calls (module docstring). Gin-configurable.

  vocabulary: the model's (seqio) vocabulary; " [" must be one token of it.
  executor: a `tools.ToolExecutor`; None builds one over `tools` (names; None: every
    enabled tool, `tools.build_tools`) when tools are on (`trigger_top_k > 0`).
  trigger_top_k: emit " [" when it is among this many most likely tokens (0: tools off).
  max_calls: calls per output. max_call_tokens: tokens after " [" before a call that has
    not reached "->" is cut off (refused). max_result_tokens: tokens inserted per call
    (result and "]"; >= 2). error_chars: characters of an error message inserted.
  temperature, topk, topp, rescale_log_probs, max_decode_steps, logit_callback_fn:
    defaults of temperature_sample's arguments of the same names (the call's arguments
    win). A logit_callback_fn(logits, state) receives this sampler's ToolSamplingState and
    runs before the trigger (it sees and may change the logits the trigger ranks).
  """

  def __init__(self, vocabulary, executor=None, tools: Optional[Sequence[str]] = None,
               trigger_top_k: int = 10, max_calls: int = 1, max_call_tokens: int = 48,
               max_result_tokens: int = 32, error_chars: int = 80,
               temperature: float = 0.0, topk: int = 0, topp: float = 0.0,
               rescale_log_probs: bool = True, max_decode_steps: Optional[int] = None,
               logit_callback_fn: Optional[Callable] = None):
    if isinstance(trigger_top_k, bool) or not isinstance(trigger_top_k, int) or trigger_top_k < 0:
      raise ValueError(f"trigger_top_k must be an int >= 0 (0: tools off), got {trigger_top_k!r}")
    if not isinstance(max_calls, int) or max_calls < 1:
      raise ValueError(f"max_calls must be an int >= 1, got {max_calls!r}")
    if not isinstance(max_call_tokens, int) or max_call_tokens < 2:
      raise ValueError(f"max_call_tokens must be an int >= 2, got {max_call_tokens!r}")
    if not isinstance(max_result_tokens, int) or max_result_tokens < 2:
      raise ValueError(f"max_result_tokens must be an int >= 2 (a result token and ']'), "
                       f"got {max_result_tokens!r}")
    self.vocabulary = vocabulary
    self.trigger_top_k = trigger_top_k
    self.max_calls = max_calls
    self.max_call_tokens = max_call_tokens
    self.max_result_tokens = max_result_tokens
    self.error_chars = error_chars
    self.defaults = dict(temperature=temperature, topk=topk, topp=topp,
                         rescale_log_probs=rescale_log_probs,
                         max_decode_steps=max_decode_steps,
                         logit_callback_fn=logit_callback_fn)
    if executor is None and trigger_top_k > 0:
      from toolformer_jax.tools import engine  # pylint: disable=g-import-not-at-top
      from toolformer_jax.tools import registry  # pylint: disable=g-import-not-at-top
      built = registry.build_tools() if tools is None else registry.build_tools(enabled=tools)
      executor = engine.ToolExecutor(built)
    self.executor = executor
    self._local = threading.local()

  @property
  def tools_on(self) -> bool:
    return self.trigger_top_k > 0

  # --------------------------------------------------------------------- aux capture
  @contextlib.contextmanager
  def capture_aux(self):
    """Within it, calls of this sampler (while tracing) store their aux in the yielded
    object's `.aux` ([batch, num_decodes, ...], sorted like the decodes)."""
    stack = getattr(self._local, "stack", None)
    if stack is None:
      stack = self._local.stack = []
    box = _Capture()
    stack.append(box)
    try:
      yield box
    finally:
      stack.pop()

  def __call__(self, **kwargs) -> Tuple[Array, Array]:
    decodes, log_probs, aux = self.decode_with_aux(**kwargs)
    stack = getattr(self._local, "stack", None)
    if stack:
      stack[-1].aux = aux
    return decodes, log_probs

  # ------------------------------------------------------------------------ decoding
  def decode_with_aux(self, *, inputs: Array, cache: Any, tokens_to_logits: Callable,
                      eos_id: int, decode_rng: Optional[Array] = None, num_decodes: int = 1,
                      temperature=None, topk=None, topp=None, cache_offset: int = 0,
                      initial_index: Optional[Array] = None, max_decode_steps=None,
                      max_decode_steps_hard_limit: Optional[int] = None,
                      rescale_log_probs: Optional[bool] = None,
                      state_callback_fn: Optional[Callable] = None,
                      logit_callback_fn: Optional[Callable] = None
                      ) -> Tuple[Array, Array, Dict[str, Array]]:
    """temperature_sample's arguments -> (decodes, log probs, aux), module docstring."""
    pick = lambda value, name: self.defaults[name] if value is None else value
    temperature = pick(temperature, "temperature")
    topk = pick(topk, "topk")
    topp = pick(topp, "topp")
    rescale = pick(rescale_log_probs, "rescale_log_probs")
    max_decode_steps = pick(max_decode_steps, "max_decode_steps")
    logit_callback_fn = pick(logit_callback_fn, "logit_callback_fn")
    if decode_rng is None:
      decode_rng = random.PRNGKey(0)
    if (max_decode_steps_hard_limit is not None and max_decode_steps_hard_limit > 0
        and max_decode_steps is not None):
      max_decode_steps = jnp.minimum(max_decode_steps, max_decode_steps_hard_limit)
    if not (_is_tracer(topp) or _is_tracer(topk)) and topp and topk:
      raise ValueError("At most one of `topp` or `topk` may be non-zero.")

    if num_decodes > 1:
      inputs = expand_rows(inputs, num_decodes)
      cache = expand_cache(cache, num_decodes, cache_offset, initial_index is not None)
      if initial_index is not None:
        initial_index = expand_rows(initial_index, num_decodes)

    sequences, log_prob, records, num_calls = self._loop(
        inputs, cache, tokens_to_logits, eos_id, decode_rng, num_decodes,
        jnp.asarray(temperature), topk, topp, initial_index, max_decode_steps, rescale,
        state_callback_fn, logit_callback_fn)

    batch = inputs.shape[0] // num_decodes
    offset = 1 + (jnp.zeros_like(num_calls) if initial_index is None else initial_index)
    to_output = lambda p: jnp.where(p >= 0, p - offset[:, None], -1)
    aux = {
        "call_count": num_calls,
        "call_position": to_output(records.position),
        "call_marker_position": to_output(records.marker),
        "call_result_length": records.result_length,
        "call_status": records.status,
        "call_trigger_rank": records.trigger_rank,
        "call_trigger_prob": records.trigger_prob,
        "call_forced": records.forced,
        "call_step": records.step,
    }
    unflat = lambda x: x.reshape((batch, num_decodes) + x.shape[1:])
    decodes = unflat(sequences)
    log_prob = unflat(log_prob)
    aux = {k: unflat(v) for k, v in aux.items()}
    # Sort by increasing log-probability, as temperature_sample does.
    order = jnp.argsort(log_prob, axis=-1)  # [batch, num_decodes]
    take = lambda x: jnp.take_along_axis(
        x, order.reshape(order.shape + (1,) * (x.ndim - 2)), axis=1)
    return take(decodes), take(log_prob), {k: take(v) for k, v in aux.items()}

  def _loop(self, inputs, cache, tokens_to_logits, eos_id, rng0, num_decodes, temperature,
            topk, topp, initial_index, max_decode_steps, rescale, state_callback_fn,
            logit_callback_fn):
    batch, length = inputs.shape
    max_decode_len = length
    if max_decode_steps is not None:
      if not _is_tracer(max_decode_steps) and max_decode_steps > length:
        raise ValueError("Cannot decode more steps than the sequence length.")
      max_decode_len = jnp.minimum(length, jnp.sum(inputs != 0, axis=1) + max_decode_steps)
    sequences0 = jnp.append(inputs, jnp.zeros((batch, _EXTRA_POSITIONS), inputs.dtype), axis=1)
    if initial_index is None:
      i0 = jnp.zeros((batch,), jnp.int32)
      token0 = jnp.zeros((batch, 1), jnp.int32)
    else:
      i0 = initial_index.astype(jnp.int32)
      token0 = jnp.take_along_axis(sequences0, i0[:, None], axis=1)
    end_marker = jnp.array(eos_id)
    initial_eos_count = jnp.sum(sequences0 == end_marker, axis=-1, keepdims=True)
    slots = self.max_calls
    state0 = ToolSamplingState(
        step=jnp.zeros((), jnp.int32), cur_index=i0, sequences=sequences0, cache=cache,
        cur_token=token0, ended=jnp.zeros((batch, 1), jnp.bool_), rng=rng0,
        log_prob=jnp.zeros((batch,), jnp.float32),
        feed_len=jnp.ones((batch,), jnp.int32), in_call=jnp.zeros((batch,), jnp.bool_),
        call_start=jnp.zeros((batch,), jnp.int32), num_calls=jnp.zeros((batch,), jnp.int32),
        calls=CallRecords.empty(batch, slots))
    tools_on = self.tools_on
    tables = None
    host_execute = functools.partial(
        self._host_execute, eos_id=None if _is_tracer(eos_id) else int(eos_id))

    def body(state: ToolSamplingState) -> ToolSamplingState:
      nonlocal tables
      if state_callback_fn is not None:
        state = state_callback_fn(state)
      rng1, rng2 = random.split(state.rng)
      frozen_cache = state.cache
      cache = state.cache
      if tools_on:
        extend_lengths = jnp.where((state.feed_len > 1) & ~state.ended[:, 0],
                                   state.feed_len - 1, 0)
        cache = lax.cond(
            jnp.any(extend_lengths > 0),
            lambda c: self._extend(tokens_to_logits, state, c, extend_lengths),
            lambda c: c, cache)
      logits, new_cache = tokens_to_logits(DecodingState(
          cur_index=state.cur_index, sequences=state.sequences[:, :-_EXTRA_POSITIONS],
          cur_token=state.cur_token, cache=cache))
      new_cache = _like(new_cache, frozen_cache)
      if logit_callback_fn is not None:
        logits = logit_callback_fn(logits, state)
      next_token, next_log_prob = _sample(logits, rng1, temperature, topk, topp, rescale,
                                          num_decodes)

      i = jnp.minimum(state.cur_index, max_decode_len)
      next_input_token = jnp.take_along_axis(state.sequences, (i + 1)[:, None], axis=1)[:, 0]
      out_of_prompt = next_input_token == 0
      ended_before = state.ended[:, 0]

      if tools_on:
        if tables is None:
          tables = marker_tables(self.vocabulary).padded(logits.shape[-1])
        call_id = tables.call_id
        call_logit = logits[:, call_id]
        rank = jnp.sum(logits > call_logit[:, None], axis=-1).astype(jnp.int32)
        prob = jnp.exp(call_logit - jax.nn.logsumexp(logits, axis=-1))
        eligible = (out_of_prompt & ~ended_before & ~state.in_call
                    & (state.num_calls < self.max_calls))
        forced = eligible & (rank < self.trigger_top_k)
        next_token = jnp.where(forced, call_id, next_token)
        next_log_prob = jnp.where(
            forced, _forced_log_prob(logits, call_id, temperature, rescale, num_decodes),
            next_log_prob)

      next_token = next_token * out_of_prompt + next_input_token * ~out_of_prompt
      next_log_prob = state.log_prob + (next_log_prob * out_of_prompt) * (
          ~ended_before).astype(jnp.int32)
      next_token_or_endpad = next_token[:, None] * ~state.ended
      one_hot = jax.nn.one_hot(i + 1, state.sequences.shape[1], dtype=state.sequences.dtype)
      new_sequences = state.sequences * (1 - one_hot) + next_token_or_endpad * one_hot
      cur_eos_count = jnp.sum(new_sequences == end_marker, axis=-1, keepdims=True)
      ended = (state.ended | (cur_eos_count > initial_eos_count)
               | (i >= max_decode_len - 1)[:, None])
      new_state = state.replace(step=state.step + 1, cur_index=i + 1,
                                sequences=new_sequences, cache=new_cache,
                                cur_token=next_token_or_endpad, ended=ended, rng=rng2,
                                log_prob=next_log_prob, feed_len=jnp.ones_like(state.feed_len))
      if not tools_on:
        return new_state
      return self._tool_progress(state, new_state, tables, eligible, forced, rank, prob,
                                 max_decode_len, host_execute)

    final = lax.while_loop(lambda s: ~jnp.all(s.ended), body, state0)
    if state_callback_fn is not None:
      final = state_callback_fn(final)
    return (final.sequences[:, 1:-1], final.log_prob, final.calls, final.num_calls)

  def _extend(self, tokens_to_logits, state: ToolSamplingState, cache, lengths):
    """Writes each row's pending tokens but the last (the marker and the inserted result
    without its final token) into the cache in one network call."""
    width = self.max_result_tokens
    start = state.cur_index - state.feed_len + 1  # the marker's position
    positions = jnp.clip(start[:, None] + jnp.arange(width)[None, :], 0,
                         state.sequences.shape[1] - 1)
    tokens = jnp.take_along_axis(state.sequences, positions, axis=1)  # [batch, width]
    try:
      logits, new_cache = tokens_to_logits(DecodingState(
          cur_index=start, sequences=state.sequences[:, :-_EXTRA_POSITIONS],
          cur_token=tokens, cache=cache, decode_lengths=lengths))
    except (ValueError, TypeError) as e:
      raise TypeError(
          "tool decoding writes inserted results with one extend step: tokens_to_logits "
          "must accept a DecodingState with decode_lengths and cur_token [batch, n] "
          "(toolformer_jax.models.ToolformerDecoderOnlyModel provides it; t5x's stock "
          f"DecoderOnlyModel does not): {e}") from e
    if logits.shape[:1] != tokens.shape[:1] or logits.ndim != 2:
      raise TypeError(f"tokens_to_logits returned logits {logits.shape} for an extend step "
                      "of [batch, n] tokens; expected [batch, vocab] (see ToolSampler)")
    return _like(new_cache, cache)

  def _tool_progress(self, state: ToolSamplingState, new: ToolSamplingState,
                     tables: MarkerTables, eligible, forced, rank, prob, max_decode_len,
                     host_execute: Callable) -> ToolSamplingState:
    """Opens calls at " [", detects "->" (or the cap), runs the tools and inserts results."""
    pos = new.cur_index  # where this step's token went
    token = new.cur_token[:, 0]
    ended = new.ended[:, 0]
    started = eligible & (token == tables.call_id) & ~ended
    calls = new.calls.put(started, state.num_calls, position=pos, trigger_rank=rank,
                          trigger_prob=prob, forced=forced.astype(jnp.int32),
                          step=jnp.broadcast_to(state.step, pos.shape))
    num_calls = state.num_calls + started.astype(jnp.int32)

    prev = jnp.take_along_axis(state.sequences, (pos - 1)[:, None], axis=1)[:, 0]
    ends_arrow = jnp.asarray(tables.ends_arrow)
    is_marker = ends_arrow[token] | (jnp.asarray(tables.is_gt)[token]
                                     & jnp.asarray(tables.ends_dash)[prev])
    open_call = state.in_call & ~ended
    reached = open_call & is_marker
    capped = open_call & ~is_marker & (pos - state.call_start >= self.max_call_tokens)
    do_call = reached | capped
    in_call = (open_call & ~do_call) | started
    call_start = jnp.where(started, pos, state.call_start)

    width = self.max_result_tokens
    batch, total = new.sequences.shape

    def run_tools(sequences):
      shapes = (jax.ShapeDtypeStruct((batch, width), jnp.int32),
                jax.ShapeDtypeStruct((batch,), jnp.int32),
                jax.ShapeDtypeStruct((batch,), jnp.int32))
      result, result_len, status = io_callback(
          host_execute, shapes, sequences, state.call_start, pos, do_call, capped,
          ordered=False)
      room = jnp.maximum(max_decode_len - pos, 0)
      n = jnp.where(do_call, jnp.minimum(result_len, room), 0)
      offsets = jnp.arange(total)[None, :] - (pos + 1)[:, None]  # [batch, total]
      write = (offsets >= 0) & (offsets < n[:, None])
      values = jnp.take_along_axis(result, jnp.clip(offsets, 0, width - 1), axis=1)
      return jnp.where(write, values, sequences), n, status

    def no_tools(sequences):
      zeros = jnp.zeros((batch,), jnp.int32)
      return sequences, zeros, zeros - 1

    sequences, n, status = lax.cond(jnp.any(do_call), run_tools, no_tools, new.sequences)
    calls = calls.put(do_call, num_calls - 1, marker=pos, result_length=n, status=status)
    cur_index = jnp.where(do_call, pos + n, pos)
    cur_token = jnp.take_along_axis(sequences, cur_index[:, None], axis=1)
    cur_token = jnp.where(new.ended, new.cur_token, cur_token)
    ended = new.ended | (do_call & (pos + n >= max_decode_len))[:, None]
    return new.replace(sequences=sequences, cur_index=cur_index, cur_token=cur_token,
                       ended=ended, feed_len=jnp.where(do_call, n + 1, 1),
                       in_call=in_call & ~ended[:, 0], call_start=call_start,
                       num_calls=num_calls, calls=calls)

  # ---------------------------------------------------------------------- host side
  def _host_execute(self, sequences, call_start, marker, do_call, capped, *,
                    eos_id: Optional[int] = None):
    """io_callback target: runs the calls of the rows in `do_call` as one engine batch.

    Returns (tokens [batch, max_result_tokens], lengths [batch], status codes [batch]).
    Never raises (an exception here would abort the whole decode).
    """
    sequences, call_start, marker = map(np.asarray, (sequences, call_start, marker))
    do_call, capped = np.asarray(do_call, bool), np.asarray(capped, bool)
    batch = sequences.shape[0]
    width = self.max_result_tokens
    out = np.zeros((batch, width), np.int32)
    lengths = np.zeros((batch,), np.int32)
    status = np.full((batch,), STATUS_UNFINISHED, np.int32)
    rows = [int(b) for b in np.flatnonzero(do_call)]
    try:
      texts: Dict[int, str] = {}
      runnable: List[int] = []
      for b in rows:
        ids = sequences[b, call_start[b] + 1:marker[b] + 1]
        text = self.vocabulary.decode([int(t) for t in ids])
        if capped[b]:
          texts[b] = self._completion(
              tool_base.STATUS_REFUSED,
              f"call not closed with '{call_format.RESULT_MARKER}' within "
              f"{self.max_call_tokens} tokens", with_marker=True)
          status[b] = STATUS_CODES[tool_base.STATUS_REFUSED]
          continue
        cut = text.rfind(call_format.RESULT_MARKER)
        texts[b] = text[:cut] if cut >= 0 else text
        runnable.append(b)
      if runnable:
        if self.executor is None:
          raise RuntimeError("ToolSampler has no executor")
        # Each call's context: the text before it (prompt and output so far; the Calendar
        # reads a date stated there as today).
        contexts = [{tool_base.CONTEXT_TEXT: self.vocabulary.decode(
            [int(t) for t in sequences[b, :call_start[b]]])} for b in runnable]
        results = self.executor.execute_batch([texts[b].strip() for b in runnable], contexts)
        for b, result in zip(runnable, results):
          status[b] = STATUS_CODES.get(result.status, STATUS_CODES[tool_base.STATUS_ERROR])
          texts[b] = self._completion(result.status, result.text)
      for b in rows:
        ids = self._result_ids(texts[b], eos_id)
        out[b, :len(ids)] = ids
        lengths[b] = len(ids)
    except Exception as e:  # pylint: disable=broad-except
      logging.exception("tool decoding: the host-side call step failed")
      message = self._completion(tool_base.STATUS_ERROR,
                                 f"internal error: {type(e).__name__}: {e}")
      try:
        ids = self._result_ids(message, eos_id)
      except Exception:  # pylint: disable=broad-except
        ids = []
      for b in rows:
        out[b] = 0
        out[b, :len(ids)] = ids
        lengths[b] = len(ids)
        status[b] = STATUS_CODES[tool_base.STATUS_ERROR]
    return out, lengths, status

  def _completion(self, status: str, text: str, with_marker: bool = False) -> str:
    """The text inserted after "->": ` result]`, or ` <status>: <message>]`."""
    if status != tool_base.STATUS_OK:
      text = f"{status}: {tool_base.one_line(text, self.error_chars)}"
    completion = call_format.render_completion(text)
    return f" {call_format.RESULT_MARKER}{completion}" if with_marker else completion

  def _result_ids(self, completion: str, eos_id: Optional[int] = None) -> List[int]:
    """Token ids of `completion` (ends with "]"), PAD/EOS removed, cut to the cap with
    "]" kept."""
    tables = marker_tables(self.vocabulary)
    clean = lambda ids: [int(t) for t in ids if t != eos_id and not (
        0 <= t < len(tables.special) and tables.special[t])]
    ids = clean(self.vocabulary.encode(completion))
    if len(ids) <= self.max_result_tokens:
      return ids
    end = clean(self.vocabulary.encode(call_format.CALL_END))
    body = clean(self.vocabulary.encode(completion[:-len(call_format.CALL_END)]))
    return body[:self.max_result_tokens - len(end)] + end


# ------------------------------------------------------------------------ aux -> calls
def calls_from_aux(tokens: Sequence[int], aux: Mapping[str, Any], vocabulary
                   ) -> List[Dict[str, Any]]:
  """The calls of ONE output: `tokens` as predict_batch_with_aux returns them and that
  row's aux values (call_* arrays [max_calls], call_count a scalar).

  Each call: tool, args (None if the call text does not parse), result (the inserted text
  without "]"), status (a tools.STATUSES name or "unfinished"), trigger_rank,
  trigger_prob, forced, step, text (the call text), position (of " [" in `tokens`) and
  end (one past the inserted "]"; len(tokens) for an unfinished call).
  """
  tokens = [int(t) for t in np.asarray(tokens).reshape(-1)]
  count = int(np.asarray(aux["call_count"]).reshape(()))
  calls = []
  for slot in range(count):
    get = lambda name: np.asarray(aux[name]).reshape(-1)[slot]
    position, marker = int(get("call_position")), int(get("call_marker_position"))
    length, code = int(get("call_result_length")), int(get("call_status"))
    status = tool_base.STATUSES[code] if 0 <= code < len(tool_base.STATUSES) else "unfinished"
    end = marker + 1 if marker >= 0 else len(tokens)
    call_text = vocabulary.decode(tokens[position + 1:end]) if position >= 0 else ""
    cut = call_text.rfind(call_format.RESULT_MARKER)
    if marker >= 0 and cut >= 0 and call_text[cut:].strip() == call_format.RESULT_MARKER:
      call_text = call_text[:cut]
    parsed = call_format.parse_call(call_text)
    result = None
    if marker >= 0 and status != "unfinished":
      result = vocabulary.decode(tokens[marker + 1:marker + 1 + length]).strip()
      if result.startswith(call_format.RESULT_MARKER):
        result = result[len(call_format.RESULT_MARKER):].strip()
      if result.endswith(call_format.CALL_END):
        result = result[:-len(call_format.CALL_END)].rstrip()
    calls.append({
        "tool": parsed.tool if isinstance(parsed, call_format.ToolCall) else None,
        "args": parsed.args if isinstance(parsed, call_format.ToolCall) else None,
        "text": call_text.strip(),
        "result": result,
        "status": status,
        "trigger_rank": int(get("call_trigger_rank")),
        "trigger_prob": float(get("call_trigger_prob")),
        "forced": bool(get("call_forced")),
        "step": int(get("call_step")),
        "position": position,
        "end": marker + 1 + length if result is not None else len(tokens),
    })
  return calls


def split_aux(aux: Mapping[str, Any], row: int) -> Dict[str, np.ndarray]:
  """Row `row` of batched aux outputs (numpy)."""
  return {k: np.asarray(v)[row] for k, v in aux.items() if k in AUX_KEYS}
