"""Tests for toolformer_jax.checkpoints.gguf on small gguf files written with gguf.GGUFWriter.

Each file holds a random tiny LLaMA in Hugging Face layout, converted the way llama.cpp's
converter does (Q/K rows permuted to interleaved rotary order, some tensors quantized).
The loaded network must match a transformers LlamaForCausalLM built from the Hugging Face
layout weights, and malformed files must fail with one error naming the problem.
"""
import dataclasses
from typing import Dict

import gguf
import numpy as np
import pytest

import jax

from toolformer_jax.checkpoints import gguf as gguf_ckpt
from toolformer_jax.networks import llama

TINY = llama.LlamaConfig(vocab_size=64, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                         head_dim=8, d_ff=64, rms_norm_eps=1e-5, rope_theta=10000.0)
Q8_0, F16 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F16
# How the test files store tensors (the rest is F32).
STORAGE = {"token_embd.weight": Q8_0, "ffn_up": Q8_0, "ffn_down": F16}


def llama_cpp_permute(weight: np.ndarray, num_heads: int) -> np.ndarray:
  """HF rows (rotate_half halves) -> llama.cpp's interleaved rotary rows, per head."""
  rows, cols = weight.shape
  return (weight.reshape(num_heads, 2, rows // num_heads // 2, cols)
          .swapaxes(1, 2).reshape(rows, cols))


def storage_type(name: str):
  for key, kind in STORAGE.items():
    if key in name:
      return kind
  return None


def round_trip(array: np.ndarray, kind) -> np.ndarray:
  """The float32 values a tensor holds after being stored as `kind`."""
  if kind is None:
    return array
  return gguf.quants.dequantize(gguf.quants.quantize(array, kind), kind).astype(np.float32)


def random_hf_weights(config: llama.LlamaConfig, untied: bool, seed: int = 0) -> Dict[str, np.ndarray]:
  """Random weights under gguf names but in Hugging Face layout, already storage-rounded."""
  rng = np.random.default_rng(seed)
  shapes = dict(gguf_ckpt.expected_tensor_shapes(config))
  if untied:
    shapes["output.weight"] = (config.vocab_size, config.d_model)
  weights = {}
  for name, shape in shapes.items():
    if len(shape) == 1:
      value = 1.0 + 0.1 * rng.standard_normal(shape)
    else:
      value = rng.standard_normal(shape) / np.sqrt(shape[-1])
    weights[name] = round_trip(value.astype(np.float32), storage_type(name))
  return weights


def base_metadata(config: llama.LlamaConfig) -> dict:
  return {
      "llama.block_count": config.num_layers,
      "llama.context_length": 128,
      "llama.embedding_length": config.d_model,
      "llama.feed_forward_length": config.d_ff,
      "llama.attention.head_count": config.num_heads,
      "llama.attention.head_count_kv": config.num_kv_heads,
      "llama.rope.freq_base": float(config.rope_theta),
      "llama.rope.dimension_count": config.head_dim,
      "llama.attention.layer_norm_rms_epsilon": float(config.rms_norm_eps),
      "tokenizer.ggml.model": "gpt2",
      "tokenizer.ggml.tokens": [f"<t{i}>" for i in range(config.vocab_size)],
  }


def write_gguf(path, hf_weights, *, config=TINY, arch="llama", metadata=None,
               drop_keys=(), drop_tensors=(), extra_tensors=None):
  """Writes a gguf file as llama.cpp would: permuted Q/K rows, mixed storage types."""
  writer = gguf.GGUFWriter(str(path), arch)
  values = base_metadata(config)
  values.update(metadata or {})
  for key, value in values.items():
    if key in drop_keys:
      continue
    if isinstance(value, str):
      writer.add_string(key, value)
    elif isinstance(value, list):
      writer.add_array(key, value)
    elif isinstance(value, float):
      writer.add_float32(key, value)
    else:
      writer.add_uint32(key, value)
  tensors = dict(hf_weights)
  tensors.update(extra_tensors or {})
  for name, value in tensors.items():
    if name in drop_tensors:
      continue
    if name.endswith("attn_q.weight"):
      value = llama_cpp_permute(value, config.num_heads)
    elif name.endswith("attn_k.weight"):
      value = llama_cpp_permute(value, config.num_kv_heads)
    kind = storage_type(name)
    if kind == Q8_0:
      writer.add_tensor(name, gguf.quants.quantize(value, Q8_0), raw_dtype=Q8_0)
    elif kind == F16:
      writer.add_tensor(name, value.astype(np.float16))
    else:
      writer.add_tensor(name, np.ascontiguousarray(value, np.float32))
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  return str(path)


def hf_reference_logits(config: llama.LlamaConfig, hf_weights, tokens: np.ndarray,
                        untied: bool) -> np.ndarray:
  """transformers LlamaForCausalLM logits from the Hugging Face layout weights."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(2)
  hf_config = transformers.LlamaConfig(
      vocab_size=config.vocab_size, hidden_size=config.d_model,
      intermediate_size=config.d_ff, num_hidden_layers=config.num_layers,
      num_attention_heads=config.num_heads, num_key_value_heads=config.num_kv_heads,
      head_dim=config.head_dim, hidden_act="silu", rms_norm_eps=config.rms_norm_eps,
      rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
      tie_word_embeddings=not untied, max_position_embeddings=128)
  names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
           "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
           "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
           "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
  state = {"model.embed_tokens.weight": hf_weights["token_embd.weight"],
           "model.norm.weight": hf_weights["output_norm.weight"],
           "lm_head.weight": hf_weights.get("output.weight", hf_weights["token_embd.weight"])}
  for name, value in hf_weights.items():
    if name.startswith("blk."):
      _, layer, kind, _ = name.split(".")
      state[f"model.layers.{layer}.{names[kind]}.weight"] = value
  model = transformers.LlamaForCausalLM(hf_config).eval()
  model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()},
                        strict=True)
  with torch.no_grad():
    return model(torch.from_numpy(tokens).long()).logits.numpy()


TOKENS = np.array([[3, 17, 42, 5, 60, 1, 9, 33, 12, 7], [50, 2, 2, 8, 19, 41, 63, 30, 4, 11]],
                  np.int32)


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("untied", [False, True])
def test_tiny_gguf_loads_and_matches_transformers(tmp_path, untied):
  hf_weights = random_hf_weights(TINY, untied)
  path = write_gguf(tmp_path / "tiny.gguf", hf_weights)
  config, params = gguf_ckpt.load_gguf_llama(path)
  assert config == dataclasses.replace(TINY, tie_embeddings=not untied,
                                       rms_norm_eps=config.rms_norm_eps)
  assert config.rms_norm_eps == pytest.approx(1e-5, rel=1e-6)
  assert ("lm_head" in params) == untied
  # Q is back in Hugging Face row order, exactly.
  np.testing.assert_array_equal(
      params["layers_1"]["attention"]["query"]["kernel"],
      hf_weights["blk.1.attn_q.weight"].T.reshape(32, 4, 8))
  np.testing.assert_array_equal(
      params["layers_0"]["attention"]["key"]["kernel"],
      hf_weights["blk.0.attn_k.weight"].T.reshape(32, 2, 8))
  assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(params))

  ours = np.asarray(jax.jit(llama.Llama(config).apply)({"params": params}, TOKENS))
  theirs = hf_reference_logits(config, hf_weights, TOKENS, untied)
  np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def test_scan_layers_and_dtype_options(tmp_path):
  hf_weights = random_hf_weights(TINY, untied=False)
  path = write_gguf(tmp_path / "tiny.gguf", hf_weights)
  config, params = gguf_ckpt.load_gguf_llama(path)
  scan_config, scan_params = gguf_ckpt.load_gguf_llama(path, scan_layers=True)
  assert scan_config.scan_layers and not config.scan_layers
  assert scan_params["layers"]["block"]["mlp"]["up"]["kernel"].shape == (2, 32, 64)
  unrolled = jax.jit(llama.Llama(config).apply)({"params": params}, TOKENS)
  scanned = jax.jit(llama.Llama(scan_config).apply)({"params": scan_params}, TOKENS)
  np.testing.assert_allclose(scanned, unrolled, atol=1e-6, rtol=0)

  bf16_config, bf16_params = gguf_ckpt.load_gguf_llama(path, dtype="bfloat16")
  assert (bf16_config.dtype, bf16_config.param_dtype) == ("bfloat16", "bfloat16")
  assert {leaf.dtype.name for leaf in jax.tree.leaves(bf16_params)} == {"bfloat16"}
  with pytest.raises(ValueError, match="dtype"):
    gguf_ckpt.load_gguf_llama(path, dtype="int8")


def test_unpermute_inverts_llama_cpp_and_matches_transformers():
  from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(1)
  hf = rng.standard_normal((9 * 64, 576)).astype(np.float32)
  stored = llama_cpp_permute(hf, 9)
  assert not np.array_equal(stored, hf)
  np.testing.assert_array_equal(gguf_ckpt.unpermute_rotary_rows(stored, 9), hf)
  processor = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
  k_stored = llama_cpp_permute(hf[:3 * 64], 3)
  np.testing.assert_array_equal(gguf_ckpt.unpermute_rotary_rows(k_stored, 3),
                                processor.process(k_stored, "blk.0.attn_k.weight").weights)


def test_fast_reader_reads_the_same_as_gguf_reader(tmp_path):
  path = write_gguf(tmp_path / "tiny.gguf", random_hf_weights(TINY, untied=False))
  fast, plain = gguf_ckpt.open_reader(path), gguf.GGUFReader(path)
  assert list(fast.fields) == list(plain.fields)
  for key in plain.fields:
    assert fast.fields[key].contents() == plain.fields[key].contents(), key
  assert [t.name for t in fast.tensors] == [t.name for t in plain.tensors]
  for a, b in zip(fast.tensors, plain.tensors):
    assert a.tensor_type == b.tensor_type
    np.testing.assert_array_equal(a.data, b.data)


# ----------------------------------------------------------------------------- malformed files


MALFORMED = {
    "missing_tensor": (dict(drop_tensors=["blk.1.ffn_up.weight"]),
                       "missing tensors ['blk.1.ffn_up.weight']"),
    "extra_tensor": (dict(extra_tensors={"blk.0.attn_q.bias": np.zeros(32, np.float32)}),
                     "unexpected tensors ['blk.0.attn_q.bias']"),
    "rope_freqs": (dict(extra_tensors={"rope_freqs.weight": np.ones(4, np.float32)}),
                   "unexpected tensors ['rope_freqs.weight']"),
    "extra_layer": (dict(extra_tensors={"blk.2.attn_norm.weight": np.ones(32, np.float32)}),
                    "unexpected tensors ['blk.2.attn_norm.weight']"),
    "wrong_shape": (dict(extra_tensors={"blk.0.ffn_gate.weight": np.zeros((96, 32), np.float32)}),
                    "tensor 'blk.0.ffn_gate.weight' has shape (96, 32), expected (64, 32)"),
    "block_count_too_large": (dict(metadata={"llama.block_count": 3}),
                              "missing tensors ['blk.2.attn_norm.weight'"),
    "non_finite_tensor": (dict(extra_tensors={"output_norm.weight": np.full(32, np.nan,
                                                                             np.float32)}),
                          "tensor 'output_norm.weight' holds NaN"),
    "missing_rms_eps": (dict(drop_keys=["llama.attention.layer_norm_rms_epsilon"]),
                        "'llama.attention.layer_norm_rms_epsilon' is missing"),
    "missing_block_count": (dict(drop_keys=["llama.block_count"]),
                            "'llama.block_count' is missing"),
    "zero_heads": (dict(metadata={"llama.attention.head_count": 0}),
                   "'llama.attention.head_count' must be a positive integer"),
    "heads_as_string": (dict(metadata={"llama.attention.head_count": "four"}),
                        "'llama.attention.head_count' must be a positive integer"),
    "kv_heads_do_not_divide": (dict(metadata={"llama.attention.head_count_kv": 3}),
                               "llama.attention.head_count_kv (3)"),
    "negative_rope_base": (dict(metadata={"llama.rope.freq_base": -1.0}),
                           "'llama.rope.freq_base' must be a positive number"),
    "partial_rotary": (dict(metadata={"llama.rope.dimension_count": 4}),
                       "llama.rope.dimension_count (4)"),
    "vocab_size_disagrees": (dict(metadata={"llama.vocab_size": 65}),
                             "llama.vocab_size (65) disagrees"),
    "rope_scaling": (dict(metadata={"llama.rope.scaling.type": "yarn"}),
                     "llama.rope.scaling.type = 'yarn'"),
    "other_architecture": (dict(arch="gptj"), "general.architecture is 'gptj'"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_gguf_fails_with_one_clear_error(tmp_path, case):
  kwargs, message = MALFORMED[case]
  path = write_gguf(tmp_path / f"{case}.gguf", random_hf_weights(TINY, untied=False), **kwargs)
  with pytest.raises(gguf_ckpt.GgufFormatError) as error:
    gguf_ckpt.load_gguf_llama(path)
  assert message in str(error.value)
  assert path in str(error.value)


def test_not_a_gguf_file(tmp_path):
  path = tmp_path / "weights.gguf"
  path.write_bytes(b"PK\x03\x04" + bytes(64))
  with pytest.raises(gguf_ckpt.GgufFormatError, match="not a readable gguf file"):
    gguf_ckpt.load_gguf_llama(str(path))
  with pytest.raises(FileNotFoundError):
    gguf_ckpt.load_gguf_llama(str(tmp_path / "absent.gguf"))
