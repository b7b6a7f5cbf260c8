"""CachedGreedyDecoder equals greedy decoding by full recompute and t5x's own decoding."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toolformer_jax.decoding.greedy import CachedGreedyDecoder, prompt_features
from toolformer_jax.networks import llama
from toolformer_jax.networks.gptj import GPTJ, GPTJConfig

STEPS = 12
LENGTH = 32
MODULES = {
    "gptj": GPTJ(GPTJConfig.from_preset("tiny")),
    "gptj_scan": GPTJ(GPTJConfig.from_preset("tiny", scan_layers=True)),
    "llama": llama.Llama(llama.LlamaConfig.from_preset("tiny")),
}


def _init(module, seed=0):
  """Initialised params with every leaf perturbed and the matrices scaled up.

  At plain initialisation the logits are nearly flat and greedy decoding repeats one token;
  larger weights give clear, varied winners, so equal token sequences mean something.
  """
  ones = jnp.ones((1, 8), jnp.int32)
  params = module.init(jax.random.PRNGKey(seed), ones, ones, enable_dropout=False)["params"]
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
  return jax.tree.unflatten(treedef, [
      leaf * 5.0 + 0.1 * jax.random.normal(key, leaf.shape, leaf.dtype) if leaf.ndim > 1
      else leaf + 0.1 * jax.random.normal(key, leaf.shape, leaf.dtype)
      for key, leaf in zip(keys, leaves)])


def _prompts(module):
  rng = np.random.RandomState(0)
  return [rng.randint(1, module.config.vocab_size, n).tolist() for n in (3, 9)]


def _recompute(module, params, prompts, steps):
  """Greedy by one full causal forward per token over BOS + prompt + generated tokens.

  Returns (new tokens per prompt, next-token logits [batch, steps, vocab]).
  """
  forward = jax.jit(lambda p, x: module.apply({"params": p}, x, enable_dropout=False))
  outputs, all_logits = [], []
  for prompt in prompts:
    sequence, row_logits = [0] + list(prompt), []
    for _ in range(steps):
      padded = np.zeros((1, LENGTH), np.int32)  # fixed shape: one compilation; causal
      padded[0, :len(sequence)] = sequence  # attention makes the zeros after it irrelevant
      logits = np.asarray(forward(params, jnp.asarray(padded)))[0, len(sequence) - 1]
      row_logits.append(logits)
      sequence.append(int(logits.argmax()))
    outputs.append(sequence[1 + len(prompt):])
    all_logits.append(np.stack(row_logits))
  return outputs, np.stack(all_logits)


# The scanned GPT-J (~13 s on 2 cores) runs in the slow suite.
@pytest.mark.parametrize("name", ["gptj", pytest.param("gptj_scan", marks=pytest.mark.slow), "llama"])
def test_cached_greedy_equals_recompute(name):
  module = MODULES[name]
  params = _init(module)
  prompts = _prompts(module)
  decoded, step_logits = CachedGreedyDecoder(module, max_length=LENGTH)(params, prompts, STEPS)
  expected, expected_logits = _recompute(module, params, prompts, STEPS)
  assert step_logits.shape == (2, STEPS, module.config.vocab_size)
  assert [len(row) for row in decoded] == [STEPS, STEPS]
  assert decoded == expected
  np.testing.assert_allclose(step_logits, expected_logits, atol=1e-4, rtol=0)
  # The tokens are greedy picks of these logits, and the rows are not one repeated token.
  assert decoded == step_logits.argmax(-1).tolist()
  assert all(len(set(row)) > 1 for row in decoded), decoded


@pytest.mark.parametrize("name", [pytest.param("gptj", marks=pytest.mark.slow), "llama"])  # ~9 s each
def test_cached_greedy_equals_t5x_predict_batch(name):
  """t5x's DecoderOnlyModel.predict_batch (temperature 0) on the same prompt features."""
  import seqio  # pylint: disable=g-import-not-at-top
  from t5x import decoding  # pylint: disable=g-import-not-at-top
  from t5x import models as t5x_models  # pylint: disable=g-import-not-at-top

  module = MODULES[name]
  params = _init(module)
  prompts = _prompts(module)
  vocab_size = module.config.vocab_size
  model = t5x_models.DecoderOnlyModel(module, seqio.PassThroughVocabulary(vocab_size),
                                      optimizer_def=None,
                                      decode_fn=decoding.temperature_sample)
  tokens, causal = prompt_features(prompts, LENGTH)
  predicted, _ = model.predict_batch_with_aux(
      params, {"decoder_input_tokens": tokens, "decoder_causal_attention": causal},
      decoder_params={"temperature": 0.0, "eos_id": vocab_size + 1})  # an id never decoded
  predicted = np.asarray(predicted)  # [batch, LENGTH]: each row's generated tokens first
  decoded, _ = CachedGreedyDecoder(module, max_length=LENGTH)(params, prompts, STEPS)
  assert decoded == predicted[:, :STEPS].tolist()


def test_stops_rows_at_eos():
  module = MODULES["gptj"]
  params = _init(module, seed=1)
  prompts = [[5, 6, 7], [9, 8, 7, 6, 5]]
  decoder = CachedGreedyDecoder(module, max_length=LENGTH)
  full, _ = decoder(params, prompts, STEPS)
  eos = full[0][3]  # pretend the 4th generated token of row 0 is EOS
  cut, cut_logits = decoder(params, prompts, STEPS, eos_id=eos)
  # Each row stops right after its own first EOS; a row without one decodes every step.
  for row, full_row in zip(cut, full):
    assert row == (full_row[:full_row.index(eos) + 1] if eos in full_row else full_row)
  assert len(cut[0]) <= 4
  # Decoding ends once every row has stopped, else after STEPS steps.
  assert cut_logits.shape[1] == max(len(row) for row in cut)


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
