"""GPT-J network: config validation, t5x module contract, masking, KV-cache decoding.

Parity against PyTorch `GPTJForCausalLM` lives in tests/checkpoints/test_hf_gptj.py.
"""

import dataclasses
import functools

import flax
from flax.linen import partitioning as nn_partitioning
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toolformer_jax.networks.gptj import GPTJ, GPTJ_PRESETS, GPTJConfig, count_params

TINY = GPTJConfig.from_preset("tiny")
DECODE_STEPS = 16


def random_params(config: GPTJConfig, seed: int = 0) -> dict:
  """Initialised params with every leaf perturbed (non-trivial LayerNorms and biases).

  Larger weights than the 0.02 init spread the logits, so greedy argmax has clear winners.
  """
  model = GPTJ(config)
  params = model.init(jax.random.PRNGKey(seed), jnp.ones((1, 4), jnp.int32))["params"]
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
  noisy = []
  for key, leaf in zip(keys, leaves):
    noise = jax.random.normal(key, leaf.shape, leaf.dtype)
    noisy.append(leaf * 5.0 + 0.1 * noise if leaf.ndim > 1 else leaf + 0.1 * noise)
  return jax.tree.unflatten(treedef, noisy)


@functools.lru_cache(maxsize=None)
def _jitted_apply(config):
  return jax.jit(functools.partial(GPTJ(config).apply, enable_dropout=False))


def forward(config, params, tokens, **kwargs):
  """Full-sequence logits [batch, length, vocab] (jitted per config)."""
  return _jitted_apply(config)({"params": params}, tokens, **kwargs)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize("overrides, field", [
    (dict(rotary_dim=7), "rotary_dim"),
    (dict(rotary_dim=32), "rotary_dim"),  # > head_dim 16
    (dict(d_model=60), "d_model"),  # != num_heads * head_dim
    (dict(num_layers=0), "num_layers"),
    (dict(vocab_size=-3), "vocab_size"),
    (dict(layer_norm_eps=0.0), "layer_norm_eps"),
    (dict(dtype="int32"), "dtype"),
    (dict(param_dtype="float33"), "param_dtype"),
    (dict(remat_policy="sometimes"), "remat_policy"),
])
def test_config_rejects_bad_fields(overrides, field):
  with pytest.raises(ValueError, match=field):
    dataclasses.replace(TINY, **overrides)


def test_unknown_preset():
  with pytest.raises(ValueError, match="unknown GPTJConfig preset"):
    GPTJConfig.from_preset("7b")


@pytest.mark.parametrize("name", sorted(GPTJ_PRESETS))
def test_param_count_matches_closed_form(name):
  c = GPTJConfig.from_preset(name)
  d, f, v = c.d_model, c.d_ff, c.vocab_size
  per_layer = 2 * d + 4 * d * d + (d * f + f) + (f * d + d)
  expected = v * d + c.num_layers * per_layer + 2 * d + (d * v + v)
  assert count_params(c) == expected
  if name == "6b":
    assert expected == 6_050_882_784  # EleutherAI GPT-J 6B


# ----------------------------------------------------------------------------- t5x contract


@pytest.mark.parametrize("scan", [False, True])
def test_t5x_init_gives_params_axes_for_every_param(scan):
  from t5x import models as t5x_models  # pylint: disable=g-import-not-at-top
  import seqio  # pylint: disable=g-import-not-at-top

  config = dataclasses.replace(TINY, scan_layers=scan)
  model = t5x_models.DecoderOnlyModel(
      GPTJ(config), seqio.PassThroughVocabulary(config.vocab_size), optimizer_def=None)
  variables = model.get_initial_variables(jax.random.PRNGKey(0),
                                          {"decoder_input_tokens": (2, 8)})
  params = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables["params"]))
  axes = flax.traverse_util.flatten_dict(
      nn_partitioning.get_axis_names(flax.core.unfreeze(variables["params_axes"])),
      is_leaf=lambda k, x: isinstance(x, jax.sharding.PartitionSpec))
  assert set(params) == set(axes)
  for key, value in params.items():
    names = tuple(axes[key])
    assert len(names) == value.ndim, (key, names, value.shape)
    assert all(isinstance(n, str) for n in names), (key, names)
    in_block = key[0] in ("layers", "layers_0", "layers_1")
    assert (names[0] == "layers") == (scan and in_block), (key, names)
  assert axes[(("layers", "block") if scan else ("layers_0",)) +
              ("attn", "query", "kernel")][-3:] == ("embed", "heads", "kv")
  assert tuple(axes[("lm_head", "kernel")]) == ("embed", "vocab")
  assert GPTJ(config).scan_layers == scan


def test_scan_and_remat_give_same_logits():
  params = random_params(TINY)
  tokens = jax.random.randint(jax.random.PRNGKey(3), (2, 9), 1, TINY.vocab_size)
  ref = forward(TINY, params, tokens)
  scan_cfg = dataclasses.replace(TINY, scan_layers=True, remat_policy="full")
  from toolformer_jax.networks import layers  # pylint: disable=g-import-not-at-top
  scanned = layers.stack_layer_params(params, TINY.num_layers)
  np.testing.assert_allclose(forward(scan_cfg, scanned, tokens), ref, atol=1e-5, rtol=0)
  remat_cfg = dataclasses.replace(TINY, remat_policy="minimal")
  np.testing.assert_allclose(forward(remat_cfg, params, tokens), ref, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- masking


def test_packed_sequences_equal_separate_forwards():
  params = random_params(TINY)
  rng = np.random.RandomState(0)
  a, b = rng.randint(1, TINY.vocab_size, 5), rng.randint(1, TINY.vocab_size, 7)
  pad = 3
  tokens = np.concatenate([a, b, np.zeros(pad, int)])[None]  # [1, 15]
  segments = np.array([[1] * 5 + [2] * 7 + [0] * pad])
  positions = np.array([list(range(5)) + list(range(7)) + [0] * pad])
  packed = forward(TINY, params, jnp.asarray(tokens), decoder_target_tokens=jnp.asarray(tokens),
                   decoder_segment_ids=jnp.asarray(segments),
                   decoder_positions=jnp.asarray(positions))  # [1, 15, vocab]
  alone_a = forward(TINY, params, jnp.asarray(a[None]))
  alone_b = forward(TINY, params, jnp.asarray(b[None]))
  np.testing.assert_allclose(packed[0, :5], alone_a[0], atol=1e-4, rtol=0)
  np.testing.assert_allclose(packed[0, 5:12], alone_b[0], atol=1e-4, rtol=0)
  # Without segment ids the second sequence sees the first: a real difference.
  unpacked = forward(TINY, params, jnp.asarray(tokens), decoder_positions=jnp.asarray(positions))
  assert float(jnp.abs(unpacked[0, 5:12] - alone_b[0]).max()) > 1e-2


def test_target_padding_masks_keys():
  params = random_params(TINY)
  tokens = jax.random.randint(jax.random.PRNGKey(1), (1, 9), 1, TINY.vocab_size)
  targets = tokens.at[0, 3].set(0)  # key 3 is masked for every query
  changed = tokens.at[0, 3].set((tokens[0, 3] + 1) % TINY.vocab_size)
  out = forward(TINY, params, tokens, decoder_target_tokens=targets)
  out_changed = forward(TINY, params, changed, decoder_target_tokens=targets)
  np.testing.assert_allclose(out[0, 4:], out_changed[0, 4:], atol=1e-5, rtol=0)
  plain = forward(TINY, params, tokens)
  plain_changed = forward(TINY, params, changed)
  assert float(jnp.abs(plain[0, 4:] - plain_changed[0, 4:]).max()) > 1e-2


def test_causal_attention_prefix_is_bidirectional():
  params = random_params(TINY)
  tokens = jax.random.randint(jax.random.PRNGKey(2), (1, 10), 1, TINY.vocab_size)
  prefix = jnp.asarray([[1] * 4 + [0] * 6])  # positions 0..3 see each other
  at3 = tokens.at[0, 3].set((tokens[0, 3] + 1) % TINY.vocab_size)
  at6 = tokens.at[0, 6].set((tokens[0, 6] + 1) % TINY.vocab_size)
  base = forward(TINY, params, tokens, decoder_causal_attention=prefix)
  # Position 0 sees the prefix token at 3 ...
  moved = forward(TINY, params, at3, decoder_causal_attention=prefix)
  assert float(jnp.abs(base[0, 0] - moved[0, 0]).max()) > 1e-2
  # ... but still not the suffix token at 6, and without the prefix it stays causal.
  moved = forward(TINY, params, at6, decoder_causal_attention=prefix)
  np.testing.assert_allclose(base[0, :6], moved[0, :6], atol=1e-5, rtol=0)
  causal = forward(TINY, params, tokens)
  moved = forward(TINY, params, at3)
  np.testing.assert_allclose(causal[0, :3], moved[0, :3], atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- decoding


def greedy_by_recompute(config, params, buffer, cur, steps):
  """Greedy decoding that recomputes the full sequence each step (no cache).

  buffer: [batch, length] tokens, zeros after each example's `cur` (next write position).
  Returns the filled buffer and the per-step next-token logits [steps, batch, vocab].
  """
  rows = np.arange(buffer.shape[0])
  buffer, cur, all_logits = np.array(buffer), np.array(cur), []
  for _ in range(steps):
    logits = np.asarray(forward(config, params, jnp.asarray(buffer)))[rows, np.minimum(cur, buffer.shape[1]) - 1]
    live = cur < buffer.shape[1]
    buffer[rows[live], cur[live]] = logits.argmax(-1)[live]
    cur = cur + 1
    all_logits.append(logits)
  return buffer, np.stack(all_logits)


@pytest.mark.parametrize("scan", [False, True])
def test_kv_cache_greedy_equals_recompute(scan):
  config = dataclasses.replace(TINY, scan_layers=scan)
  params = random_params(TINY)
  if scan:
    from toolformer_jax.networks import layers  # pylint: disable=g-import-not-at-top
    params = layers.stack_layer_params(params, TINY.num_layers)
  model = GPTJ(config)
  prompt_lengths = np.array([5, 8])
  batch, length = 2, int(prompt_lengths.max()) + DECODE_STEPS
  rng = np.random.RandomState(4)
  in_prompt = np.arange(length)[None, :] < prompt_lengths[:, None]  # [batch, length]
  prompts = np.where(in_prompt, rng.randint(1, config.vocab_size, (batch, length)), 0)

  expected, expected_logits = greedy_by_recompute(config, params, prompts, prompt_lengths,
                                                  DECODE_STEPS)

  # t5x's sequence: cache init, prefill of all prompt tokens but the last, one-token steps.
  ones = jnp.ones((batch, length), jnp.int32)
  _, variables = model.apply({"params": params}, ones, ones, enable_dropout=False, decode=True,
                             mutable=["cache"])
  prefill_logits, variables = model.apply(
      {"params": params, "cache": variables["cache"]}, jnp.asarray(prompts),
      jnp.asarray(in_prompt.astype(np.int32)), enable_dropout=False, prefill=True,
      prefill_lengths=jnp.asarray(prompt_lengths - 1), mutable=["cache"])
  cache = variables["cache"]
  full_logits = forward(config, params, jnp.asarray(prompts))
  for b, n in enumerate(prompt_lengths):
    np.testing.assert_allclose(prefill_logits[b, :n], full_logits[b, :n], atol=1e-4, rtol=0)

  @jax.jit
  def step(cache, token):
    logits, new_vars = model.apply({"params": params, "cache": cache}, token, token,
                                   enable_dropout=False, decode=True,
                                   max_decode_length=length, mutable=["cache"])
    return logits[:, 0], new_vars["cache"]  # [batch, vocab]

  rows = np.arange(batch)
  tokens, cur = np.array(prompts), np.array(prompt_lengths)
  worst = 0.0
  for i in range(DECODE_STEPS):
    logits, cache = step(cache, jnp.asarray(tokens[rows, cur - 1][:, None]))
    np.testing.assert_allclose(logits, expected_logits[i], atol=1e-4, rtol=0)
    worst = max(worst, float(np.abs(logits - expected_logits[i]).max()))
    live = cur < length
    tokens[rows[live], cur[live]] = np.asarray(logits).argmax(-1)[live]
    cur = cur + 1
  np.testing.assert_array_equal(tokens, expected)
  print(f"scan={scan}: cached vs recomputed logits max abs diff {worst:.2e}")
  for b, n in enumerate(prompt_lengths):  # 16 real, varied tokens were decoded per example
    continuation = expected[b, n:n + DECODE_STEPS]
    assert (continuation != 0).all() and len(set(continuation.tolist())) > 4


@pytest.mark.parametrize("scan", [False, True])
def test_t5x_predict_batch_matches_greedy_recompute(scan):
  from t5x import models as t5x_models  # pylint: disable=g-import-not-at-top
  import seqio  # pylint: disable=g-import-not-at-top

  config = dataclasses.replace(TINY, scan_layers=scan)
  params = random_params(TINY, seed=7)
  if scan:
    from toolformer_jax.networks import layers  # pylint: disable=g-import-not-at-top
    params = layers.stack_layer_params(params, TINY.num_layers)
  model = t5x_models.DecoderOnlyModel(
      GPTJ(config), seqio.PassThroughVocabulary(config.vocab_size), optimizer_def=None)

  # seqio.DecoderFeatureConverter layout for inputs of lengths 4 and 7 (targets blank):
  # decoder_input_tokens = [0, inputs..., 0...], causal attention on BOS + inputs.
  input_lengths = np.array([4, 7])
  batch, length = 2, 1 + int(input_lengths.max()) + DECODE_STEPS
  rng = np.random.RandomState(5)
  positions = np.arange(length)[None, :]
  is_input = (positions >= 1) & (positions <= input_lengths[:, None])
  input_tokens = np.where(is_input, rng.randint(1, config.vocab_size, (batch, length)), 0)
  causal_attention = (positions <= input_lengths[:, None]).astype(np.int32)
  batch_features = {
      "decoder_input_tokens": jnp.asarray(input_tokens),
      "decoder_target_tokens": jnp.asarray(np.roll(input_tokens, -1, axis=1)),
      "decoder_causal_attention": jnp.asarray(causal_attention),
      "decoder_loss_weights": jnp.asarray(1 - causal_attention),
  }
  decoded, _ = model.predict_batch_with_aux(
      params, batch_features,
      decoder_params={"temperature": 0.0, "eos_id": config.vocab_size + 1})  # no eos

  expected, _ = greedy_by_recompute(TINY, random_params(TINY, seed=7), input_tokens,
                                    input_lengths + 1, length - 1 - int(input_lengths.min()))
  for b, n in enumerate(input_lengths):
    generated = expected[b, n + 1:]
    assert len(generated) >= DECODE_STEPS
    np.testing.assert_array_equal(np.asarray(decoded)[b, :len(generated)], generated)
