"""Import a llama.cpp gguf LLaMA checkpoint (e.g. SmolLM2-135M-Instruct) as `Llama` params.

Every tensor is dequantized to float32 with `gguf.quants.dequantize` (F32, F16, BF16, Q4_x,
Q8_0, K-quants, ...). gguf lists dimensions innermost first; the reader's numpy arrays are
already in row-major order, i.e. PyTorch's `[out_features, in_features]` for linear weights.

Q/K layout: llama.cpp's converter permutes the rows of every Q and K head from Hugging
Face's "rotate_half" order (feature i pairs with i + head_dim/2) to the interleaved order
(features 2i, 2i+1 pair) that its rotary kernel uses. This loader undoes that permutation,
so the parameters are in Hugging Face's layout and `Llama` applies rotate_half rotary
(`rotary_interleaved=False`). Both choices give identical attention scores; the HF layout
lets the same network take HF safetensors checkpoints and a LlamaForCausalLM as reference.

Load time for SmolLM2-135M (Q4_1, 272 tensors) is about 3 s on 2 CPU cores (0.7 s
parsing, 1.2 s dequantizing), so no on-disk cache of the float32 params is kept.

Errors: a malformed file raises one `GgufFormatError` (a ValueError) naming every missing,
unexpected or mis-shaped tensor, or the bad metadata key.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
import gguf
import numpy as np

from toolformer_jax import gguf_reader
from toolformer_jax.networks import decoder
from toolformer_jax.networks import layers
from toolformer_jax.networks import llama

Params = Dict[str, Any]
# The shared gguf reading layer (also used by the gguf vocabulary), under this module's names.
GgufFormatError = gguf_reader.GgufFormatError
open_reader = gguf_reader.open_reader


# ----------------------------------------------------------------------------- metadata


def _int_key(reader, key: str, path: str, default: Optional[int] = None) -> int:
  if key not in reader.fields:
    if default is None:
      raise GgufFormatError(f"{path}: metadata key {key!r} is missing")
    return default
  value = gguf_reader.field_value(reader, key)
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
    raise GgufFormatError(f"{path}: metadata {key!r} must be a positive integer, got "
                          f"{value!r}")
  return int(value)


def _float_key(reader, key: str, path: str, default: Optional[float] = None) -> float:
  if key not in reader.fields:
    if default is None:
      raise GgufFormatError(f"{path}: metadata key {key!r} is missing")
    return default
  value = gguf_reader.field_value(reader, key)
  if (isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or
      not np.isfinite(value) or value <= 0):
    raise GgufFormatError(f"{path}: metadata {key!r} must be a positive number, got "
                          f"{value!r}")
  return float(value)


def config_from_gguf_metadata(reader, path: str) -> llama.LlamaConfig:
  """Builds a `LlamaConfig` from a GGUFReader's `llama.*` and tokenizer metadata."""
  if "general.architecture" not in reader.fields:
    raise GgufFormatError(f"{path}: metadata key 'general.architecture' is missing")
  arch = gguf_reader.field_value(reader, "general.architecture")
  if arch != "llama":
    raise GgufFormatError(f"{path}: general.architecture is {arch!r}; only 'llama' is "
                          "supported")
  p = "llama."
  num_layers = _int_key(reader, p + "block_count", path)
  d_model = _int_key(reader, p + "embedding_length", path)
  d_ff = _int_key(reader, p + "feed_forward_length", path)
  num_heads = _int_key(reader, p + "attention.head_count", path)
  num_kv_heads = _int_key(reader, p + "attention.head_count_kv", path, default=num_heads)
  if d_model % num_heads:
    raise GgufFormatError(f"{path}: llama.embedding_length ({d_model}) is not a multiple of "
                          f"llama.attention.head_count ({num_heads})")
  head_dim = _int_key(reader, p + "attention.key_length", path, default=d_model // num_heads)
  value_dim = _int_key(reader, p + "attention.value_length", path, default=head_dim)
  if value_dim != head_dim:
    raise GgufFormatError(f"{path}: llama.attention.value_length ({value_dim}) differs from "
                          f"key_length ({head_dim}); not supported")
  if num_heads % num_kv_heads:
    raise GgufFormatError(f"{path}: llama.attention.head_count ({num_heads}) is not a "
                          f"multiple of llama.attention.head_count_kv ({num_kv_heads})")
  rope_dims = _int_key(reader, p + "rope.dimension_count", path, default=head_dim)
  if rope_dims != head_dim:
    raise GgufFormatError(f"{path}: llama.rope.dimension_count ({rope_dims}) differs from the "
                          f"head size ({head_dim}); partial rotary is not supported")
  if p + "rope.scaling.type" in reader.fields:
    scaling = gguf_reader.field_value(reader, p + "rope.scaling.type")
    if scaling not in ("none", ""):
      raise GgufFormatError(f"{path}: llama.rope.scaling.type = {scaling!r} is not supported")
  if p + "expert_count" in reader.fields and gguf_reader.field_value(reader, p + "expert_count"):
    raise GgufFormatError(f"{path}: llama.expert_count is set; mixture-of-experts models are "
                          "not supported")
  rope_theta = _float_key(reader, p + "rope.freq_base", path, default=10000.0)
  eps = _float_key(reader, p + "attention.layer_norm_rms_epsilon", path)

  if "tokenizer.ggml.tokens" in reader.fields:
    vocab_size = len(reader.fields["tokenizer.ggml.tokens"].data)
    if p + "vocab_size" in reader.fields:
      declared = _int_key(reader, p + "vocab_size", path)
      if declared != vocab_size:
        raise GgufFormatError(f"{path}: llama.vocab_size ({declared}) disagrees with the "
                              f"{vocab_size} entries of tokenizer.ggml.tokens")
  else:
    vocab_size = _int_key(reader, p + "vocab_size", path)
  return llama.LlamaConfig(vocab_size=vocab_size, d_model=d_model, num_layers=num_layers,
                           num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
                           d_ff=d_ff, rms_norm_eps=eps, rope_theta=rope_theta,
                           tie_embeddings=True)


# ----------------------------------------------------------------------------- tensors


def expected_tensor_shapes(config: llama.LlamaConfig) -> Dict[str, Tuple[int, ...]]:
  """gguf tensor name -> numpy shape ([out, in] for linear weights); without output.weight."""
  d, hd = config.d_model, config.head_dim
  q_rows, kv_rows = config.num_heads * hd, config.num_kv_heads * hd
  shapes = {"token_embd.weight": (config.vocab_size, d), "output_norm.weight": (d,)}
  for i in range(config.num_layers):
    shapes.update({
        f"blk.{i}.attn_norm.weight": (d,),
        f"blk.{i}.attn_q.weight": (q_rows, d),
        f"blk.{i}.attn_k.weight": (kv_rows, d),
        f"blk.{i}.attn_v.weight": (kv_rows, d),
        f"blk.{i}.attn_output.weight": (d, q_rows),
        f"blk.{i}.ffn_norm.weight": (d,),
        f"blk.{i}.ffn_gate.weight": (config.d_ff, d),
        f"blk.{i}.ffn_up.weight": (config.d_ff, d),
        f"blk.{i}.ffn_down.weight": (d, config.d_ff),
    })
  return shapes


def unpermute_rotary_rows(weight: np.ndarray, num_heads: int) -> np.ndarray:
  """Undoes llama.cpp's Q/K row permutation: interleaved pairs -> rotate_half halves.

  weight: [num_heads * head_dim, d_model] in gguf order, where row 2i + j of a head holds
  Hugging Face row j * head_dim/2 + i. Returns the Hugging Face order.
  """
  rows, cols = weight.shape
  half = rows // num_heads // 2
  w = weight.reshape(num_heads, half, 2, cols)  # [heads, head_dim/2, 2, d_model]
  return w.swapaxes(1, 2).reshape(rows, cols)  # [heads * head_dim, d_model]


def _dequantize(tensor, path: str) -> np.ndarray:
  try:
    array = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
  except (NotImplementedError, ValueError) as e:
    raise GgufFormatError(f"{path}: cannot dequantize tensor {tensor.name!r} of type "
                          f"{tensor.tensor_type.name}: {e}") from e
  array = np.array(array, dtype=np.float32, copy=True)  # detach from the memory map
  if not np.isfinite(array).all():
    raise GgufFormatError(f"{path}: tensor {tensor.name!r} holds NaN or infinite values")
  return array


def _check_tensors(reader, config: llama.LlamaConfig, path: str) -> bool:
  """Checks names and shapes; returns whether an untied `output.weight` is present."""
  expected = expected_tensor_shapes(config)
  present = {t.name: tuple(int(n) for n in reversed(t.shape)) for t in reader.tensors}
  untied = "output.weight" in present
  if untied:
    expected["output.weight"] = (config.vocab_size, config.d_model)
  problems: List[str] = []
  missing = [name for name in expected if name not in present]
  if missing:
    problems.append(f"missing tensors {missing}")
  unknown = [name for name in present if name not in expected]
  if unknown:
    problems.append(f"unexpected tensors {unknown}")
  for name, shape in present.items():
    if name in expected and shape != expected[name]:
      problems.append(f"tensor {name!r} has shape {shape}, expected {expected[name]}")
  if problems:
    raise GgufFormatError(f"{path}: not a LLaMA checkpoint matching its metadata "
                          f"({config.num_layers} layers, d_model {config.d_model}, "
                          f"vocab {config.vocab_size}): " + "; ".join(problems))
  return untied


def load_gguf_llama(path: str, *, scan_layers: bool = False,
                    dtype: Optional[str] = None) -> Tuple[llama.LlamaConfig, Params]:
  """Reads a LLaMA-architecture gguf file into `(LlamaConfig, params)` for `llama.Llama`.

  Args:
    path: the .gguf file.
    scan_layers: return the scanned layout (`layers/block`, leading layers axis) and a config
      with `scan_layers=True`.
    dtype: if given ("float32", "bfloat16", "float16"), parameters are cast to it and the
      config's `dtype` and `param_dtype` are set to it; otherwise everything is float32.

  Returns:
    The config and a nested dict of numpy arrays (the `params` collection).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"gguf file not found: {path}")
  if dtype is not None and dtype not in decoder.DTYPES:
    raise ValueError(f"dtype must be one of {sorted(decoder.DTYPES)} or None, got {dtype!r}")
  start = time.time()
  reader = open_reader(path)
  config = config_from_gguf_metadata(reader, path)
  untied = _check_tensors(reader, config, path)
  if untied or scan_layers or dtype is not None:
    overrides = dict(tie_embeddings=not untied, scan_layers=scan_layers)
    if dtype is not None:
      overrides.update(dtype=dtype, param_dtype=dtype)
    config = dataclasses.replace(config, **overrides)

  tensors = {t.name: t for t in reader.tensors}
  w = lambda name: _dequantize(tensors[name], path)  # pylint: disable=unnecessary-lambda-assignment
  d, hd = config.d_model, config.head_dim
  heads, kv_heads = config.num_heads, config.num_kv_heads

  params: Params = {
      "token_embedder": {"embedding": w("token_embd.weight")},  # [vocab, embed]
      "final_norm": {"scale": w("output_norm.weight")},  # [embed]
  }
  if untied:
    params["lm_head"] = {"kernel": w("output.weight").T}  # [embed, vocab]
  for i in range(config.num_layers):
    b = f"blk.{i}."
    q = unpermute_rotary_rows(w(b + "attn_q.weight"), heads)  # [heads * hd, embed]
    k = unpermute_rotary_rows(w(b + "attn_k.weight"), kv_heads)  # [kv_heads * hd, embed]
    v = w(b + "attn_v.weight")  # [kv_heads * hd, embed]
    o = w(b + "attn_output.weight")  # [embed, heads * hd]
    params[f"layers_{i}"] = {
        "attention_norm": {"scale": w(b + "attn_norm.weight")},
        "attention": {
            "query": {"kernel": q.T.reshape(d, heads, hd)},  # [embed, heads, kv]
            "key": {"kernel": k.T.reshape(d, kv_heads, hd)},  # [embed, kv_heads, kv]
            "value": {"kernel": v.T.reshape(d, kv_heads, hd)},  # [embed, kv_heads, kv]
            "out": {"kernel": o.T.reshape(heads, hd, d)},  # [heads, kv, embed]
        },
        "mlp_norm": {"scale": w(b + "ffn_norm.weight")},
        "mlp": {
            "gate": {"kernel": w(b + "ffn_gate.weight").T},  # [embed, mlp]
            "up": {"kernel": w(b + "ffn_up.weight").T},  # [embed, mlp]
            "down": {"kernel": w(b + "ffn_down.weight").T},  # [mlp, embed]
        },
    }
  del reader, tensors  # release the memory map

  params = _map_leaves(lambda a: np.ascontiguousarray(a, dtype=config.jnp_param_dtype), params)
  if scan_layers:
    params = layers.stack_layer_params(params, config.num_layers)
  logging.info("Loaded %s (%d layers, d_model %d, vocab %d) in %.1f s", path,
               config.num_layers, config.d_model, config.vocab_size, time.time() - start)
  return config, params


def _map_leaves(fn, tree):
  if isinstance(tree, dict):
    return {k: _map_leaves(fn, v) for k, v in tree.items()}
  return fn(tree)
