"""CachedGreedyDecoder equals greedy decoding by full recompute, for both networks."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toolformer_jax.decoding.greedy import CachedGreedyDecoder, prompt_features
from toolformer_jax.networks import llama
from toolformer_jax.networks.gptj import GPTJ, GPTJConfig

STEPS = 12


def _recompute(module, params, prompts, steps):
  """Greedy by one full causal forward per token over BOS + prompt + generated tokens."""
  forward = jax.jit(lambda p, x: module.apply({"params": p}, x, enable_dropout=False))
  outputs = []
  for prompt in prompts:
    sequence = [0] + list(prompt)
    for _ in range(steps):
      padded = np.zeros((1, 32), np.int32)  # fixed shape: one compilation; causal attention
      padded[0, :len(sequence)] = sequence  # makes the zeros after the sequence irrelevant
      logits = np.asarray(forward(params, jnp.asarray(padded)))[0, len(sequence) - 1]
      sequence.append(int(logits.argmax()))
    outputs.append(sequence[1 + len(prompt):])
  return outputs


@pytest.mark.parametrize("module", [
    GPTJ(GPTJConfig.preset("tiny")),
    GPTJ(GPTJConfig.preset("tiny", scan_layers=True)),
    llama.Llama(llama.tiny()),
], ids=["gptj", "gptj_scan", "llama"])
def test_cached_greedy_equals_recompute(module):
  ones = jnp.ones((1, 8), jnp.int32)
  params = module.init(jax.random.PRNGKey(0), ones, ones, enable_dropout=False)["params"]
  rng = np.random.RandomState(0)
  prompts = [rng.randint(1, module.config.vocab_size, n).tolist() for n in (3, 9)]
  decoded, step_logits = CachedGreedyDecoder(module, max_length=32)(params, prompts, STEPS)
  assert step_logits.shape == (2, STEPS, module.config.vocab_size)
  assert decoded == _recompute(module, params, prompts, STEPS)


def test_stops_rows_at_eos():
  module = GPTJ(GPTJConfig.preset("tiny"))
  ones = jnp.ones((1, 8), jnp.int32)
  params = module.init(jax.random.PRNGKey(1), ones, ones, enable_dropout=False)["params"]
  decoder = CachedGreedyDecoder(module, max_length=32)
  full, _ = decoder(params, [[5, 6, 7]], STEPS)
  eos = full[0][3]  # pretend the 4th generated token is EOS
  cut, _ = decoder(params, [[5, 6, 7]], STEPS, eos_id=eos)
  assert cut[0] == full[0][:full[0].index(eos) + 1]


@pytest.mark.parametrize("prompts,length,message", [
    ([[]], 16, "empty"),
    ([[3, 0, 4]], 16, "PAD"),
    ([list(range(1, 20))], 16, "no room"),
])
def test_bad_prompts_fail_clearly(prompts, length, message):
  with pytest.raises(ValueError, match=message):
    prompt_features(prompts, length)


def test_prompt_layout_matches_seqio_predict_features():
  tokens, causal = prompt_features([[7, 8], [9]], 6)
  np.testing.assert_array_equal(tokens, [[0, 7, 8, 0, 0, 0], [0, 9, 0, 0, 0, 0]])
  np.testing.assert_array_equal(causal, [[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
