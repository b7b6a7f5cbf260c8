"""Tool-use decoding (ToolSampler as t5x's decode_fn) on a tiny GPT-J with the GPT-2 BPE.

Calls are scripted through temperature_sample's `logit_callback_fn`: the callback puts
" [" at a chosen rank at a chosen position (the trigger decides whether that emits it),
forces the tokens of a call after it ("Calculator(400 / 1400) ->"), and keeps " [" out of
the top-k everywhere else, so a random network makes exactly the calls a test wants. The
tools are real (the engine with the Calculator, plus a slow tool for timeouts).
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpu_env import cpu_subprocess_env

from toolformer_jax import vocab as vocab_lib
from toolformer_jax.decoding import aux_schema
from toolformer_jax.decoding import tool_decoding
from toolformer_jax.decoding.greedy import prompt_features
from toolformer_jax.networks.gptj import GPTJ, GPTJConfig
from toolformer_jax.tools import base as tool_base
from toolformer_jax.tools import calculator
from toolformer_jax.tools import engine

LENGTH = 48
VOCAB = vocab_lib.Gpt2Vocabulary()
CALL_ID = vocab_lib.single_token_id(VOCAB, " [")
PROMPTS = ["The ratio of 400 to 1400 is", "Out of 1400 voters,", "In 2010 the town had 400",
           "Four"]


class Sleepy(tool_base.Tool):
  name = "Sleepy"
  example = "Sleepy(1)"

  def __call__(self, args, context=None):
    time.sleep(float(args))
    return "awake"


@pytest.fixture(scope="module")
def network():
  module = GPTJ(GPTJConfig.from_preset("tiny", vocab_size=50400))

  @jax.jit
  def init(rng):
    ones = jnp.ones((1, 8), jnp.int32)
    params = module.init(rng, ones, ones, enable_dropout=False)["params"]
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    # Larger weights: clear, varied greedy winners (as in test_greedy).
    return jax.tree.unflatten(treedef, [
        leaf * 5.0 + 0.1 * jax.random.normal(key, leaf.shape) if leaf.ndim > 1
        else leaf + 0.1 * jax.random.normal(key, leaf.shape)
        for key, leaf in zip(keys, leaves)])

  return module, init(jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def executor():
  with engine.ToolExecutor({"Calculator": calculator.Calculator(), "Sleepy": Sleepy()},
                           timeout_s=0.5) as ex:
    yield ex


def make_model(module, decode_fn):
  from toolformer_jax import models  # pylint: disable=g-import-not-at-top
  return models.ToolformerDecoderOnlyModel(module, VOCAB, optimizer_def=None,
                                           decode_fn=decode_fn)


def features(prompts=PROMPTS, length=LENGTH):
  tokens, causal = prompt_features([VOCAB.encode(p) for p in prompts], length)
  return {"decoder_input_tokens": jnp.asarray(tokens),
          "decoder_causal_attention": jnp.asarray(causal)}


SLOTS, SCRIPT_WIDTH = 3, 24


def script_table(scripts):
  """[batch, SLOTS, SCRIPT_WIDTH] ids of each row's scripted calls, -1 padded.

  scripts: per row, a call text ("Calculator(2 + 3) ->") or a list of them (one per slot).
  """
  table = np.full((len(scripts), SLOTS, SCRIPT_WIDTH), -1, np.int32)
  for b, calls in enumerate(scripts):
    for slot, call in enumerate([calls] if isinstance(calls, str) else calls):
      ids = VOCAB.encode(call)
      table[b, slot, :len(ids)] = ids
  return table


def trigger_table(trigger_at):
  """[batch, SLOTS + 1] sequence positions where each row's next call is wanted (-1 never;
  rows not given: never)."""
  at = np.full((len(PROMPTS), SLOTS + 1), -1, np.int32)
  for b, row in enumerate(trigger_at):
    at[b, :len(row)] = row
  return at


def scripted(table, at, rank):
  """A logit_callback_fn (arrays may be traced): row b puts " [" at rank `rank` once its
  next position reaches at[b, slot] (slot = calls made so far), forces the slot's script
  while its call is open, and pushes " [" to the bottom everywhere else."""

  def callback(logits, state):
    rows = jnp.arange(logits.shape[0])
    slot = jnp.minimum(state.num_calls, at.shape[1] - 1)
    want = at[rows, slot]
    trigger = ~state.in_call & (want >= 0) & (state.cur_index + 1 >= want)
    others = logits.at[:, CALL_ID].set(-jnp.inf)
    ordered = jnp.sort(others, axis=-1)[:, ::-1]
    below = jnp.take(ordered, jnp.maximum(rank, 1), axis=-1)
    above = jnp.take(ordered, jnp.maximum(rank - 1, 0), axis=-1)
    value = jnp.where(rank == 0, ordered[:, 0] + 1.0, (above + below) / 2)
    logits = others.at[:, CALL_ID].set(jnp.where(trigger, value, -1e9))
    open_slot = jnp.clip(state.num_calls - 1, 0, table.shape[1] - 1)
    offset = jnp.clip(state.cur_index - state.call_start, 0, table.shape[2] - 1)
    forced = table[rows, open_slot, offset]
    force = (state.in_call & (state.cur_index - state.call_start < table.shape[2])
             & (forced >= 0))
    boost = jax.nn.one_hot(jnp.maximum(forced, 0), logits.shape[-1]) * 1e9
    return jnp.where(force[:, None], logits + boost, logits)

  return callback


def suppress_call(logits, state):
  del state
  return logits.at[:, CALL_ID].set(-1e9)


def predict(model, params, batch, **decoder_params):
  fn = jax.jit(lambda p, b, rng: model.predict_batch_with_aux(
      p, b, decoder_params=dict(decoder_params, decode_rng=rng)))
  tokens, aux = fn(params, batch, jax.random.PRNGKey(7))
  return np.asarray(tokens), jax.tree.map(np.asarray, aux)


def text_of(tokens):
  return VOCAB.decode([int(t) for t in tokens])


def prompt_lengths(batch):
  return np.asarray(batch["decoder_causal_attention"]).sum(-1) - 1


# --------------------------------------------------------------------------- parity
_T5X_RUNS = {}


@pytest.mark.parametrize("sampling", [dict(temperature=0.0), dict(temperature=1.0, topk=20),
                                      dict(temperature=0.7, topk=0)],
                         ids=["greedy", "topk20", "temperature0.7"])
@pytest.mark.parametrize("k", [0, 10], ids=["tools_off_unmasked", "never_in_top_k"])
def test_without_calls_equals_t5x_temperature_sample(network, executor, k, sampling):
  """t5x's own temperature_sample and the sampler, both with " [" pushed to the bottom
  of the logits (so with k = 10 it never enters the top k): the same tokens and scores,
  batch 3 with prompts of different lengths. Tools off is the unmasked diagnostic here
  (the masked one: the tests below)."""
  from t5x import decoding  # pylint: disable=g-import-not-at-top
  module, params = network
  batch = features()
  key = tuple(sorted(sampling.items()))
  if key not in _T5X_RUNS:
    _T5X_RUNS[key] = predict(make_model(module, decoding.temperature_sample), params, batch,
                             logit_callback_fn=suppress_call, **sampling)
  expected, expected_aux = _T5X_RUNS[key]
  sampler = tool_decoding.ToolSampler(VOCAB, executor, trigger_top_k=k,
                                      block_calls_when_off=False)
  got, aux = predict(make_model(module, sampler), params, batch,
                     logit_callback_fn=suppress_call, **sampling)
  np.testing.assert_array_equal(got, expected)
  np.testing.assert_allclose(aux["scores"], expected_aux["scores"], rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(aux["call_count"], 0)
  assert len({tuple(r) for r in got}) == len(got)  # rows differ: the test means something
  assert len(set(got[0].tolist())) > 5


def promote_brackets(logits, state):
  """Every token whose text holds "[" above all others (" [" first)."""
  del state
  opens = jnp.asarray(tool_decoding.marker_tables(VOCAB).padded(logits.shape[-1]).opens_call)
  top = jnp.max(logits, axis=-1, keepdims=True)
  logits = jnp.where(opens[None, :], top + 5.0, logits)
  return logits.at[:, CALL_ID].set(top[:, 0] + 10.0)


@pytest.mark.parametrize("sampling", [dict(temperature=0.0), dict(temperature=1.0, topk=20)],
                         ids=["greedy", "topk20"])
def test_tools_off_never_writes_call_text(network, executor, sampling):
  """Tools off as the paper's disabled Toolformer: even when every token holding "[" is
  the most likely one, none is generated; the unmasked diagnostic writes them (so the
  check can fail); and the masked decoding is t5x's temperature_sample under the same mask."""
  from t5x import decoding  # pylint: disable=g-import-not-at-top
  module, params = network
  batch = features()
  opens = tool_decoding.marker_tables(VOCAB).opens_call
  assert opens[CALL_ID] and opens.sum() > 10  # " [", "[", "([", ... all masked
  generated = lambda tokens: [row[row > 0] for row in tokens]  # the outputs, prompts removed
  masked, aux = predict(make_model(module, tool_decoding.ToolSampler(VOCAB, executor,
                                                                     trigger_top_k=0)),
                        params, batch, logit_callback_fn=promote_brackets, **sampling)
  assert all(len(g) and not opens[g].any() for g in generated(masked))
  assert not any("[" in text_of(g) for g in generated(masked))
  np.testing.assert_array_equal(aux["call_count"], 0)
  unmasked, _ = predict(make_model(module, tool_decoding.ToolSampler(
      VOCAB, executor, trigger_top_k=0, block_calls_when_off=False)), params, batch,
      logit_callback_fn=promote_brackets, **sampling)
  assert all(opens[g].any() for g in generated(unmasked))

  def promote_then_mask(logits, state):
    return jnp.where(jnp.asarray(opens)[None, :logits.shape[-1]], -1.0e7,
                     promote_brackets(logits, state))

  expected, _ = predict(make_model(module, decoding.temperature_sample), params, batch,
                        logit_callback_fn=promote_then_mask, **sampling)
  np.testing.assert_array_equal(masked, expected)


def test_num_decodes_and_all_decodes_equal_t5x(network, executor):
  from t5x import decoding  # pylint: disable=g-import-not-at-top
  module, params = network
  batch = features()
  outs = []
  for fn in (decoding.temperature_sample, tool_decoding.ToolSampler(VOCAB, executor)):
    model = make_model(module, fn)
    run = jax.jit(lambda p, b, m=model: m.predict_batch_with_aux(
        p, b, num_decodes=3, return_all_decodes=True,
        decoder_params=dict(temperature=1.0, topk=0, logit_callback_fn=suppress_call,
                            decode_rng=jax.random.PRNGKey(3))))
    outs.append(jax.tree.map(np.asarray, run(params, batch)))
  (t5x_tokens, t5x_aux), (tokens, aux) = outs
  np.testing.assert_array_equal(tokens, t5x_tokens)
  np.testing.assert_allclose(aux["scores"], t5x_aux["scores"], rtol=1e-6, atol=1e-6)
  assert aux["call_position"].shape == (len(PROMPTS), 3, 1)


# ------------------------------------------------------------------------ one call
def build_run(module, executor, steps=None, **sampler_kwargs):
  """run(params, batch, script table, trigger table, rank) -> (tokens, aux): greedy tool
  decoding of a batch with scripted calls; `steps` (a list) records every step's
  (cur_index, ended, logits)."""
  sampler = tool_decoding.ToolSampler(VOCAB, executor, **sampler_kwargs)
  model = make_model(module, sampler)

  def run(params, batch, table, at, rank):
    callback = scripted(table, at, rank)
    if steps is not None:
      inner = callback

      def callback(logits, state):  # pylint: disable=function-redefined
        jax.debug.callback(lambda *a: steps.append(tuple(map(np.asarray, a))),
                           state.cur_index, state.ended[:, 0], logits)
        return inner(logits, state)

    return model.predict_batch_with_aux(
        params, batch, decoder_params=dict(temperature=0.0, logit_callback_fn=callback))

  return run


_COMPILED = {}


def _forced_run(network, executor, trigger_at, rank=0, script="Calculator(400 / 1400) ->",
                per_row=None, record=False, **sampler_kwargs):
  """Greedy tool decoding of PROMPTS with scripted calls; (batch, tokens, aux[, steps]).

  One compilation per sampler setting: the scripts, triggers and rank are arguments.
  """
  module, params = network
  key = (id(executor), record, tuple(sorted(sampler_kwargs.items())))
  if key not in _COMPILED:
    steps = [] if record else None
    _COMPILED[key] = (jax.jit(build_run(module, executor, steps, **sampler_kwargs)), steps)
  run, steps = _COMPILED[key]
  batch = features()
  scripts = per_row or [script] * len(PROMPTS)  # per_row: one script per prompt
  tokens, aux = run(params, batch, jnp.asarray(script_table(scripts)),
                    jnp.asarray(trigger_table(trigger_at)), jnp.asarray(rank, jnp.int32))
  out = (batch, np.asarray(tokens), jax.tree.map(np.asarray, aux))
  if record:
    recorded = list(steps)
    steps.clear()
    return out + (recorded,)
  return out


def test_forced_call_runs_the_calculator_and_continues(network, executor):
  lengths = prompt_lengths(features())
  at = [[int(lengths[0]) + 3]]  # row 0 calls after 2 generated tokens
  batch, tokens, aux, record = _forced_run(network, executor, at, record=True)
  text = text_of(tokens[0])
  assert " [Calculator(400 / 1400) -> 0.29]" in text, text
  calls = aux_schema.calls_from_aux(tokens[0], aux_schema.split_aux(aux, 0), VOCAB)
  assert len(calls) == 1
  call = calls[0]
  assert (call["tool"], call["args"], call["result"], call["status"]) == (
      "Calculator", "400 / 1400", "0.29", "ok")
  assert call["trigger_rank"] == 0 and call["forced"] and 0 < call["trigger_prob"] <= 1
  assert call["position"] == 2  # two generated tokens, then " ["
  # Exactly what the engine returned plus "]", right after the "->" token.
  marker = int(aux["call_marker_position"][0, 0])
  inserted = tokens[0, marker + 1:marker + 1 + int(aux["call_result_length"][0, 0])]
  assert inserted.tolist() == VOCAB.encode(" 0.29]")
  # Decoding goes on after "]".
  assert (tokens[0, marker + 1 + len(inserted):] != 0).sum() > 3
  assert aux["call_count"].tolist() == [1, 0, 0, 0]

  # Every step's logits (after the insertion too) equal a full recompute of the final
  # token sequence at the fed position.
  module, params = network
  full_seq = np.zeros((len(PROMPTS), LENGTH), np.int32)
  for b in range(len(PROMPTS)):
    n = int(lengths[b])
    full_seq[b, :1 + n] = np.asarray(batch["decoder_input_tokens"][b, :1 + n])
    full_seq[b, 1 + n:] = tokens[b, :LENGTH - 1 - n]
  full = np.asarray(module.apply({"params": params}, jnp.asarray(full_seq), enable_dropout=False))
  checked_after = 0
  for cur_index, ended, logits in record:
    for b in range(len(PROMPTS)):
      if ended[b] or cur_index[b] >= LENGTH:
        continue
      np.testing.assert_allclose(logits[b], full[b, cur_index[b]], atol=1e-4, rtol=0)
      checked_after += b == 0 and cur_index[b] > marker + int(lengths[0])
  assert checked_after > 3  # steps of row 0 after its inserted result were compared


@pytest.mark.parametrize("rank,k,called", [(3, 10, True), (3, 3, False), (2, 3, True)])
def test_trigger_fires_when_call_token_is_in_top_k(network, executor, rank, k, called):
  lengths = prompt_lengths(features())
  _, tokens, aux = _forced_run(network, executor, [[int(lengths[0]) + 2]],
                               rank=rank, **({} if k == 10 else {"trigger_top_k": k}))
  assert int(aux["call_count"][0]) == int(called)
  if called:
    assert int(aux["call_trigger_rank"][0, 0]) == rank
    assert aux["call_forced"][0, 0] == 1  # emitted by the trigger, not sampled
    assert " [Calculator(400 / 1400) -> 0.29]" in text_of(tokens[0])
  else:
    assert " [" not in text_of(tokens[0])


def test_a_calling_row_does_not_change_the_others(network, executor):
  lengths = prompt_lengths(features())
  _, quiet, _ = _forced_run(network, executor, [])
  # Even rows call, then odd rows: every row calls once and stays quiet once.
  for parity in (0, 1):
    callers = [row for row in range(len(PROMPTS)) if row % 2 == parity]
    at = [[int(lengths[row]) + 2] if row in callers else [-1] for row in range(len(PROMPTS))]
    _, tokens, aux = _forced_run(network, executor, at)
    for row in range(len(PROMPTS)):
      if row in callers:
        assert int(aux["call_count"][row]) == 1
        assert not np.array_equal(tokens[row], quiet[row])
      else:
        assert int(aux["call_count"][row]) == 0
        np.testing.assert_array_equal(tokens[row], quiet[row])


@pytest.mark.slow  # ~45 s on 2 cores: its recording executor compiles its own decode loop
def test_each_call_gets_the_text_before_it_as_context(network):
  """The engine receives, per call, the prompt and the output before the call's " [" (the
  Calendar reads a date stated there)."""
  seen = []

  class Recorder(calculator.Calculator):
    def __call__(self, args, context=None):
      seen.append(dict(context or {}))
      return super().__call__(args, context)

  lengths = prompt_lengths(features())
  with engine.ToolExecutor({"Calculator": Recorder()}, cache_size=0) as ex:
    _, tokens, aux = _forced_run(network, ex, [[-1], [int(lengths[1]) + 3]])
  assert int(aux["call_count"][1]) == 1 and len(seen) == 1
  before = text_of(tokens[1]).split(" [Calculator(")[0]
  assert set(seen[0]) == {tool_base.CONTEXT_TEXT}
  assert seen[0][tool_base.CONTEXT_TEXT].endswith(PROMPTS[1] + before), seen


@pytest.mark.slow  # as above: its own executor, its own compilation
def test_rows_calling_in_the_same_step_go_to_the_engine_together(network):
  seen = []

  class Recorder(calculator.Calculator):
    batch_size = 8

    def call_batch(self, calls):
      seen.append(len(calls))
      return super().call_batch(calls)

  lengths = prompt_lengths(features())
  # Same script length, each row triggered 2 steps in: all rows reach "->" in one step.
  per_row = ["Calculator(1 + 1) ->", "Calculator(2 + 2) ->", "Calculator(3 + 3) ->",
             "Calculator(4 + 4) ->"]
  with engine.ToolExecutor({"Calculator": Recorder()}, cache_size=0) as ex:
    _, tokens, aux = _forced_run(network, ex, [[int(n) + 2] for n in lengths], per_row=per_row)
  assert seen == [4]
  for b, expected in enumerate(["2", "4", "6", "8"]):
    (call,) = aux_schema.calls_from_aux(tokens[b], aux_schema.split_aux(aux, b), VOCAB)
    assert call["result"] == expected and call["step"] == int(aux["call_step"][0, 0])


# --------------------------------------------------------------- several calls, errors
def test_chained_calls_and_max_calls(network, executor):
  scripts = ["Calculator(2 + 3) ->", "Calculator(5 * 7) ->", "Calculator(1 - 9) ->"]
  lengths = prompt_lengths(features())
  at = [[int(lengths[0]) + 2, 0, 0]]  # three calls wanted, back to back
  for max_calls in (1, 2, 3):
    _, tokens, aux = _forced_run(network, executor, at, script=scripts,
                                 **({} if max_calls == 1 else {"max_calls": max_calls}))
    calls = aux_schema.calls_from_aux(tokens[0], aux_schema.split_aux(aux, 0), VOCAB)
    assert [c["result"] for c in calls] == ["5", "35", "-8"][:max_calls]
    assert int(aux["call_count"][0]) == max_calls
    text = text_of(tokens[0])
    assert (" [Calculator(2 + 3) -> 5] [Calculator(5 * 7) -> 35]" in text) == (max_calls >= 2)


@pytest.mark.parametrize("script,status,result", [
    ("Calculator(1 / 0) ->", "error", "error: division by zero"),
    ("Calculator(2 +) ->", "error", None),
    ("Calcu(2) ->", "refused", "refused: unknown tool 'Calcu'"),
    ("Calculator 2 ->", "refused", "refused: malformed call"),
    ("Sleepy(3) ->", "timeout", "timeout: timed out after 0.5 s"),
])
def test_bad_calls_insert_an_error_and_decoding_goes_on(network, executor, script, status,
                                                         result):
  lengths = prompt_lengths(features())
  start = time.time()
  _, tokens, aux = _forced_run(network, executor, [[int(lengths[0]) + 2]],
                               script=script)
  (call,) = aux_schema.calls_from_aux(tokens[0], aux_schema.split_aux(aux, 0), VOCAB)
  assert call["status"] == status
  assert call["result"].startswith(result or status + ": "), call
  end = int(aux["call_marker_position"][0, 0]) + int(aux["call_result_length"][0, 0])
  assert text_of(tokens[0, :end + 1]).endswith("]")
  assert (tokens[0, end + 1:] != 0).sum() > 3
  if status == "timeout":
    assert time.time() - start < 30


def test_results_are_capped_in_tokens(network, executor):
  lengths = prompt_lengths(features())
  _, tokens, aux = _forced_run(network, executor, [[int(lengths[0]) + 2]],
                               script="Calcu(2) ->", max_result_tokens=5)
  assert int(aux["call_result_length"][0, 0]) == 5
  (call,) = aux_schema.calls_from_aux(tokens[0], aux_schema.split_aux(aux, 0), VOCAB)
  marker = int(aux["call_marker_position"][0, 0])
  assert VOCAB.decode([int(tokens[0, marker + 5])]) == "]"
  assert call["result"].startswith("refused")


def test_a_call_without_marker_is_cut_off(network, executor):
  lengths = prompt_lengths(features())
  _, tokens, aux = _forced_run(network, executor, [[int(lengths[0]) + 2]],
                               script="Calculator(1 + 1 + 1 + 1 + 1 + 1", max_call_tokens=6)
  (call,) = aux_schema.calls_from_aux(tokens[0], aux_schema.split_aux(aux, 0), VOCAB)
  assert call["status"] == "refused" and "within 6 tokens" in call["result"]
  marker = int(aux["call_marker_position"][0, 0])
  assert marker - call["position"] == 6


def test_stock_t5x_model_fails_clearly(network, executor):
  from t5x import models as t5x_models  # pylint: disable=g-import-not-at-top
  module, params = network
  lengths = prompt_lengths(features())
  callback = scripted(jnp.asarray(script_table(["Calculator(1 + 1) ->"] * len(PROMPTS))),
                      jnp.asarray(trigger_table([[int(lengths[0]) + 2]])), 0)
  model = t5x_models.DecoderOnlyModel(module, VOCAB, optimizer_def=None,
                                      decode_fn=tool_decoding.ToolSampler(VOCAB, executor))
  with pytest.raises(TypeError, match="ToolformerDecoderOnlyModel"):
    jax.eval_shape(lambda p: model.predict_batch_with_aux(
        p, features(), decoder_params=dict(logit_callback_fn=callback)), params)


def test_extend_of_zero_tokens_on_a_row_past_the_end_is_allowed():
  """t5x's loop keeps stepping finished rows past the end of the cache; the insertion
  extend gives them 0 tokens, which must not count as an overflow."""
  from toolformer_jax.networks import kv_cache  # pylint: disable=g-import-not-at-top
  module = GPTJ(GPTJConfig.from_preset("tiny"))

  @jax.jit
  def run(rng):
    ones = jnp.ones((1, 8), jnp.int32)
    params = module.init(rng, ones, ones, enable_dropout=False)["params"]
    cache = kv_cache.init_cache(module, params, batch=2, length=8)
    cache = kv_cache.set_index(module, cache, jnp.asarray([11, 2]))  # row 0: stepped past
    _, cache = kv_cache.extend(module, params, cache, jnp.ones((2, 3), jnp.int32), [0, 3])
    return kv_cache.cache_index(module, cache)

  np.testing.assert_array_equal(run(jax.random.PRNGKey(0)), [11, 5])


# ------------------------------------------------------------------------- sharding
_SHARDED_SCRIPT = r"""
import os, pickle, sys
sys.path[:0] = [sys.argv[1], os.path.dirname(sys.argv[1])]  # its module and cpu_env
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import PartitionSpec as P
import test_tool_decoding as T
from toolformer_jax import partitioning
from toolformer_jax.tools import calculator, engine

with open(sys.argv[2], "rb") as f:
  params, args = pickle.load(f)
module = T.GPTJ(T.GPTJConfig.from_preset("tiny", vocab_size=50400))
ones = jnp.ones((1, 8), jnp.int32)
axes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), ones, ones,
                                          enable_dropout=False))["params_axes"]
run = T.build_run(module, engine.ToolExecutor({"Calculator": calculator.Calculator()}))
partitioner = partitioning.make_partitioner(num_partitions=2)
sharded_run = partitioner.partition(
    run, in_axis_resources=(partitioning.param_specs(axes), P("data"), P("data"), P("data"),
                            None),
    out_axis_resources=P())
out = jax.tree.map(np.asarray, sharded_run(params, *args))
with open(sys.argv[3], "wb") as f:
  pickle.dump({"mesh": dict(partitioner.mesh.shape), "devices": jax.device_count(),
               "out": out}, f)
"""


def test_sharded_decoding_on_a_2x2_mesh_equals_one_device(network, executor, tmp_path):
  """The same scripted calls through t5x's partitioner on data=2 x model=2 fake CPU
  devices (params split along model, the batch along data) give the same tokens and
  calls as one device."""
  import os  # pylint: disable=g-import-not-at-top
  import pickle  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  lengths = prompt_lengths(features())
  at = [[int(lengths[0]) + 2], [-1], [int(lengths[2]) + 4]]
  batch, tokens, aux = _forced_run(network, executor, at)
  assert aux["call_count"].tolist() == [1, 0, 1, 0]
  args = (batch, script_table(["Calculator(400 / 1400) ->"] * len(PROMPTS)),
          trigger_table(at), np.int32(0))
  with open(tmp_path / "in.pkl", "wb") as f:
    pickle.dump((jax.tree.map(np.asarray, network[1]), jax.tree.map(np.asarray, args)), f)
  env = cpu_subprocess_env(devices=4)
  proc = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT, os.path.dirname(__file__),
                         str(tmp_path / "in.pkl"), str(tmp_path / "out.pkl")],
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(tmp_path / "out.pkl", "rb") as f:
    result = pickle.load(f)
  assert result["devices"] == 4 and result["mesh"] == {"data": 2, "model": 2}
  sharded_tokens, sharded_aux = result["out"]
  np.testing.assert_array_equal(sharded_tokens, tokens)
  assert sorted(sharded_aux) == sorted(aux)
  for name, value in aux.items():
    if np.issubdtype(value.dtype, np.floating):  # a vocab-sharded softmax: rounding only
      np.testing.assert_allclose(sharded_aux[name], value, rtol=1e-5, atol=1e-6)
    else:
      np.testing.assert_array_equal(sharded_aux[name], value, err_msg=name)


# ------------------------------------------------------------------------- SmolLM2
@pytest.mark.slow  # SmolLM2-135M: ~30 s on 2 cores (loading, compiling)
def test_smollm2_calls_the_calculator_by_itself():
  """The real model, prompted with three Calculator demonstrations, opens a call through
  the top-10 trigger, writes it to "->", gets the engine's result and goes on; the logits
  after the insertion equal a full recompute of the final sequence."""
  from toolformer_jax.checkpoints import sources  # pylint: disable=g-import-not-at-top
  module, params, _ = sources.load_network("smollm2")
  vocabulary = vocab_lib.GgufBpeVocabulary()
  prompt = ("Out of 1400 participants, 400 [Calculator(400 / 1400) -> 0.29] 29% passed.\n"
            "A box holds 12 eggs, so 7 boxes hold [Calculator(12 * 7) -> 84] 84 eggs.\n"
            "A crate holds 59 bottles, so 8 crates hold")
  ids = vocabulary.encode(prompt)
  length = len(ids) + 1 + 24
  tokens, causal = prompt_features([ids], length)
  steps = []

  def record(logits, state):
    jax.debug.callback(lambda *a: steps.append(tuple(map(np.asarray, a))), state.cur_index,
                       logits)
    return logits

  with engine.ToolExecutor({"Calculator": calculator.Calculator()}) as ex:
    from toolformer_jax import models  # pylint: disable=g-import-not-at-top
    model = models.ToolformerDecoderOnlyModel(
        module, vocabulary, optimizer_def=None,
        decode_fn=tool_decoding.ToolSampler(vocabulary, ex, logit_callback_fn=record))
    out, aux = jax.jit(lambda p, t, c: model.predict_batch_with_aux(
        p, {"decoder_input_tokens": t, "decoder_causal_attention": c}))(
            params, jnp.asarray(tokens), jnp.asarray(causal))
    out, aux = np.asarray(out), jax.tree.map(np.asarray, aux)  # (runs the calls)
  row = out[0, :length - 1 - len(ids)].tolist()
  (call,) = aux_schema.calls_from_aux(row, aux_schema.split_aux(aux, 0), vocabulary)
  assert (call["tool"], call["args"], call["result"], call["status"]) == (
      "Calculator", "59 * 8", "472", "ok"), vocabulary.decode(row)
  assert vocabulary.decode(row).startswith(" [Calculator(59 * 8) -> 472]")
  full = np.asarray(module.apply({"params": params},
                                 jnp.asarray([[0] + ids + row][:1]), enable_dropout=False))[0]
  after = [(c[0], l[0]) for c, l in steps if c[0] >= len(ids) + call["end"]]
  assert after
  for position, logits in after:
    if position < full.shape[0]:
      np.testing.assert_allclose(logits, full[position], atol=1e-4, rtol=0)
