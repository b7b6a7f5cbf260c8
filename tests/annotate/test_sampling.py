"""Position and call sampling against full recomputation with the same tiny networks.

`encode_documents` (prompt prefix cached once, each document appended in one extend) must
give the p(" [") of a full forward of [0] + P(x) + x, and greedy `sample_calls` (forked
cache, one extend per token, finished rows compacted away) must write the calls that a
loop of full forwards writes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toolformer_jax.annotate import sampling
from toolformer_jax.networks.gptj import GPTJ, GPTJConfig
from toolformer_jax.networks.llama import Llama, LlamaConfig
from toolformer_jax.tools import call_format
from toolformer_jax.vocab import Gpt2Vocabulary

DOCUMENTS = ["Tom had 87 apples and got 170 more, so he had 257 apples.",
             "Paris is the capital of France.",
             "42",
             "The recipe needs 3 cups of flour for each of the 12 cakes."]
GPT2_VOCAB = 50400  # GPT-J's embedding rows (the GPT-2 BPE ids fit)


@pytest.fixture(scope="module")
def vocabulary():
  return Gpt2Vocabulary()


def _network(family):
  if family == "gptj":
    module = GPTJ(GPTJConfig.from_preset("tiny", vocab_size=GPT2_VOCAB))
  else:
    module = Llama(LlamaConfig.from_preset("tiny", vocab_size=GPT2_VOCAB))
  params = module.init(jax.random.PRNGKey(0), jnp.ones((1, 8), jnp.int32),
                       enable_dropout=False)["params"]
  return module, params


PAD_TO = 512  # every reference forward has this length (causal: padding after is inert)


def _full_log_probs(module, params, tokens):
  """log p(. | tokens[:k + 1]) for every k of `tokens` ([len(tokens), vocab])."""
  padded = np.zeros((1, PAD_TO), np.int32)
  padded[0, :len(tokens)] = tokens
  return np.asarray(_forward(module, params, padded))[:len(tokens)]


def _forward(module, params, tokens):
  return _FORWARDS.setdefault(id(module), jax.jit(
      lambda p, t: jax.nn.log_softmax(module.apply({"params": p}, t, enable_dropout=False)
                                      [0].astype(jnp.float32), axis=-1)))(params, tokens)


_FORWARDS = {}


@pytest.mark.parametrize("family", ["gptj", pytest.param("llama", marks=pytest.mark.slow)])
def test_position_probs_equal_a_full_forward(family, vocabulary):
  module, params = _network(family)
  sampler = sampling.CallSampler(module, params, vocabulary, sampling.SamplingConfig())
  prompt = sampling.Prompt.load("Calculator")
  docs = [sampler.document_ids(t) for t in DOCUMENTS]
  encoded = sampler.encode_documents(prompt, docs)
  contexts, starts = sampler._contexts(prompt, docs)  # pylint: disable=protected-access
  for d, ids in enumerate(docs):
    log_probs = _full_log_probs(module, params, contexts[d])
    expected = np.exp(log_probs[starts[d] - 1 + np.arange(len(ids)), sampler.call_start_id])
    np.testing.assert_allclose(encoded.probs[d], expected, rtol=1e-4, atol=1e-7)
  # A second batch reuses the cached prompt prefix (one prefix forward in all).
  sampler.encode_documents(prompt, docs[:2])
  assert sampler.forwards == 1 + len(docs) + 2


def _reference_call(module, params, vocabulary, context, call_start_id, max_tokens):
  """Greedy continuation after " [" by full forwards, cut like the sampler cuts it."""
  tokens, generated = list(context) + [call_start_id], []
  text = ""
  for _ in range(max_tokens):
    chosen = int(np.argmax(_full_log_probs(module, params, tokens)[-1]))
    tokens.append(chosen)
    generated.append(chosen)
    text = vocabulary.decode(generated)
    if call_format.CALL_END in text or call_format.RESULT_MARKER in text:
      break
  return text, len(generated)


def _with_end_bias(params, end_id, bias):
  """GPT-J params whose head favours "]" by `bias` (so greedy calls end at varied steps)."""
  head = dict(params["lm_head"])
  head["bias"] = head["bias"].at[end_id].add(bias)
  return {**params, "lm_head": head}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_greedy_calls_equal_recomputation_with_compaction(vocabulary):
  module, base = _network("gptj")
  base = jax.tree.map(lambda x: 3.0 * x, base)  # sharper: calls then differ by context
  end_id = vocabulary.encode(call_format.CALL_END)[0]
  max_tokens = 6
  config = sampling.SamplingConfig(tau_s=0.0, top_k_positions=3, calls_per_position=1,
                                   max_call_tokens=max_tokens, temperature=0.0,
                                   rows_per_batch=8)
  prompt = sampling.Prompt.load("Calculator")
  probe = sampling.CallSampler(module, base, vocabulary, config)
  docs = [probe.document_ids(t) for t in DOCUMENTS]
  contexts, starts = probe._contexts(prompt, docs)  # pylint: disable=protected-access
  positions = [sorted({0, len(x) // 2, len(x) - 1}) for x in docs]
  wanted = [(d, i) for d, ps in enumerate(positions) for i in ps]
  # Bias "]" by less than its smallest first-step margin, as little as makes some calls
  # end within two tokens while others run on, so the sampler compacts its rows mid-way.
  margins = []
  for d, i in wanted:
    first = _full_log_probs(module, base, contexts[d][:starts[d] + i]
                            + [probe.call_start_id])[-1]
    margins.append(float(first.max() - first[end_id]))
  for bias in np.linspace(0.3, 1.0, 8) * min(margins):
    params = _with_end_bias(base, end_id, float(bias))
    reference = [_reference_call(module, params, vocabulary, contexts[d][:starts[d] + i],
                                 probe.call_start_id, max_tokens) for d, i in wanted]
    steps = [n for _, n in reference][:config.rows_per_batch]
    if any(0 < sum(n > k for n in steps) <= len(steps) // 2 for k in range(1, max_tokens)):
      break  # after some step at most half the rows still run: the sampler compacts
  else:
    pytest.fail(f"no bias for ']' made calls end at varied steps: {steps}")
  assert len({text for text, _ in reference}) > 3, reference
  sampler = sampling.CallSampler(module, params, vocabulary, config)
  encoded = sampler.encode_documents(prompt, docs)
  sampled = sampler.sample_calls(encoded, positions, jax.random.PRNGKey(0))
  got = [s for calls in sampled for s in calls]
  assert [(s.token_position) for s in got] == [i for _, i in wanted]
  for s, (text, _) in zip(got, reference):
    cut = text.split(call_format.CALL_END)[0].split(call_format.RESULT_MARKER)[0].strip()
    assert s.text == cut


