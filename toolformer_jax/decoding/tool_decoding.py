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
            `trigger_top_k = 0` turns tools off: as the paper's "Toolformer
            (disabled)", no token that could open a call (its text holds "[") is ever
            generated (`block_calls_when_off`; False: plain temperature sampling, which
            may write call text that runs nothing, a diagnostic);
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
calls to the aux outputs (`capture_aux`): their keys, the status codes and their
decoding (`calls_from_aux`, `split_aux`) are `aux_schema`'s.

One concern per module: this one holds the jitted loop (`ToolSampler`, the gin
configurable); `sampling` the sampling math and cache layout; `tool_runner` the
host side (marker tables, the io_callback target that runs the tools); `aux_schema`
the aux outputs. The module imports without t5x (its cache layout helpers are the
network's own).
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import flax
import jax
from jax import lax
from jax import random
from jax.experimental import io_callback
import jax.numpy as jnp

from toolformer_jax.decoding import aux_schema
from toolformer_jax.decoding import sampling
from toolformer_jax.decoding import tool_runner
# Re-exported: callers (generate, benchmarks, tests, gin/README) read them from here.
from toolformer_jax.decoding.aux_schema import AUX_KEYS  # pylint: disable=unused-import
from toolformer_jax.decoding.aux_schema import STATUS_CODES  # pylint: disable=unused-import
from toolformer_jax.decoding.aux_schema import STATUS_UNFINISHED  # pylint: disable=unused-import
from toolformer_jax.decoding.aux_schema import calls_from_aux  # pylint: disable=unused-import
from toolformer_jax.decoding.aux_schema import split_aux  # pylint: disable=unused-import
from toolformer_jax.decoding.sampling import MIN_TEMPERATURE  # pylint: disable=unused-import
from toolformer_jax.decoding.sampling import NEG_INF  # pylint: disable=unused-import
from toolformer_jax.decoding.sampling import expand_cache  # pylint: disable=unused-import
from toolformer_jax.decoding.sampling import expand_rows  # pylint: disable=unused-import
from toolformer_jax.decoding.sampling import topk_mask  # pylint: disable=unused-import
from toolformer_jax.decoding.sampling import topp_mask  # pylint: disable=unused-import
from toolformer_jax.decoding.tool_runner import MarkerTables  # pylint: disable=unused-import
from toolformer_jax.decoding.tool_runner import marker_tables  # pylint: disable=unused-import

Array = jax.Array

_EXTRA_POSITIONS = 2  # t5x's garbage positions appended to the sequences

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
  block_calls_when_off: with tools off, mask every token whose text holds "[" at every
    step, so an output holds no call text (the paper's disabled decoding); False decodes
    as temperature_sample does (a diagnostic: the model may write calls that never run).
  max_calls: calls per output. max_call_tokens: tokens after " [" before a call that has
    not reached "->" is cut off (refused). max_result_tokens: tokens inserted per call
    (result and "]"; >= 2). error_chars: characters of an error message inserted.
  temperature, topk, topp, rescale_log_probs, max_decode_steps, logit_callback_fn:
    defaults of temperature_sample's arguments of the same names (the call's arguments
    win). A logit_callback_fn(logits, state) receives this sampler's ToolSamplingState and
    runs before the trigger (it sees and may change the logits the trigger ranks).
  """

  def __init__(self, vocabulary, executor=None, tools: Optional[Sequence[str]] = None,
               trigger_top_k: int = 10, block_calls_when_off: bool = True,
               max_calls: int = 1, max_call_tokens: int = 48,
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
    if not isinstance(block_calls_when_off, bool):
      raise ValueError(f"block_calls_when_off must be a bool, got {block_calls_when_off!r}")
    self.block_calls_when_off = block_calls_when_off
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
    if not (sampling.is_tracer(topp) or sampling.is_tracer(topk)) and topp and topk:
      raise ValueError("At most one of `topp` or `topk` may be non-zero.")

    if num_decodes > 1:
      inputs = sampling.expand_rows(inputs, num_decodes)
      cache = sampling.expand_cache(cache, num_decodes, cache_offset, initial_index is not None)
      if initial_index is not None:
        initial_index = sampling.expand_rows(initial_index, num_decodes)

    sequences, log_prob, records, num_calls = self._loop(
        inputs, cache, tokens_to_logits, eos_id, decode_rng, num_decodes,
        jnp.asarray(temperature), topk, topp, initial_index, max_decode_steps, rescale,
        state_callback_fn, logit_callback_fn)

    batch = inputs.shape[0] // num_decodes
    offset = 1 + (jnp.zeros_like(num_calls) if initial_index is None else initial_index)
    to_output = lambda p: jnp.where(p >= 0, p - offset[:, None], -1)
    aux = {
        aux_schema.CALL_COUNT: num_calls,
        aux_schema.CALL_POSITION: to_output(records.position),
        aux_schema.CALL_MARKER_POSITION: to_output(records.marker),
        aux_schema.CALL_RESULT_LENGTH: records.result_length,
        aux_schema.CALL_STATUS: records.status,
        aux_schema.CALL_TRIGGER_RANK: records.trigger_rank,
        aux_schema.CALL_TRIGGER_PROB: records.trigger_prob,
        aux_schema.CALL_FORCED: records.forced,
        aux_schema.CALL_STEP: records.step,
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
      if not sampling.is_tracer(max_decode_steps) and max_decode_steps > length:
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
        self._host_execute, eos_id=None if sampling.is_tracer(eos_id) else int(eos_id))

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
      new_cache = sampling.like(new_cache, frozen_cache)
      if logit_callback_fn is not None:
        logits = logit_callback_fn(logits, state)
      if tools_on or self.block_calls_when_off:
        if tables is None:
          tables = tool_runner.marker_tables(self.vocabulary).padded(logits.shape[-1])
      if not tools_on and self.block_calls_when_off:  # disabled: no call opener, ever
        logits = jnp.where(tables.opens_call[None, :], sampling.NEG_INF, logits)
      next_token, next_log_prob = sampling.sample(logits, rng1, temperature, topk, topp, rescale,
                                          num_decodes)

      i = jnp.minimum(state.cur_index, max_decode_len)
      next_input_token = jnp.take_along_axis(state.sequences, (i + 1)[:, None], axis=1)[:, 0]
      out_of_prompt = next_input_token == 0
      ended_before = state.ended[:, 0]

      if tools_on:
        call_id = tables.call_id
        call_logit = logits[:, call_id]
        rank = jnp.sum(logits > call_logit[:, None], axis=-1).astype(jnp.int32)
        prob = jnp.exp(call_logit - jax.nn.logsumexp(logits, axis=-1))
        eligible = (out_of_prompt & ~ended_before & ~state.in_call
                    & (state.num_calls < self.max_calls))
        forced = eligible & (rank < self.trigger_top_k)
        next_token = jnp.where(forced, call_id, next_token)
        next_log_prob = jnp.where(
            forced, sampling.forced_log_prob(logits, call_id, temperature, rescale, num_decodes),
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
    return sampling.like(new_cache, cache)

  def _tool_progress(self, state: ToolSamplingState, new: ToolSamplingState,
                     tables: tool_runner.MarkerTables, eligible, forced, rank, prob, max_decode_len,
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
  def runner(self) -> tool_runner.ToolRunner:
    """The host-side tool runner with this sampler's current settings."""
    return tool_runner.ToolRunner(
        vocabulary=self.vocabulary, executor=self.executor,
        max_call_tokens=self.max_call_tokens, max_result_tokens=self.max_result_tokens,
        error_chars=self.error_chars)

  def _host_execute(self, sequences, call_start, marker, do_call, capped, *,
                    eos_id: Optional[int] = None):
    """io_callback target (`tool_runner.ToolRunner.execute`): runs the calls of the rows in
    `do_call` as one engine batch; never raises."""
    return self.runner().execute(sequences, call_start, marker, do_call, capped,
                                 eos_id=eos_id)
