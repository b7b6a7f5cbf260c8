"""LLaMA-style decoder (SmolLM2) as a Flax linen module following t5x's module contract.

Architecture: token embedding -> N pre-norm blocks -> final RMSNorm -> logits. Each block is

  x = x + SelfAttention(RMSNorm(x))     # grouped-query attention, rotary on every head dim
  x = x + SwiGLU(RMSNorm(x))            # down(silu(gate(h)) * up(h))

with no biases anywhere. Rotary uses LLaMA's "rotate_half" pairing (feature i with
i + head_dim/2), i.e. the Hugging Face weight layout; `checkpoints.gguf` converts llama.cpp's
interleaved Q/K layout to it. Logits come from the tied embedding table (`token_embedder`)
or from an untied `lm_head`.

Parameter tree (unrolled; with `scan_layers=True` the blocks live under `layers/block` with a
leading `layers` axis):

  token_embedder/embedding                [vocab, embed]
  layers_{i}/attention_norm/scale         [embed]
  layers_{i}/attention/{query}/kernel     [embed, heads, kv]
  layers_{i}/attention/{key,value}/kernel [embed, kv_heads, kv]
  layers_{i}/attention/out/kernel         [heads, kv, embed]
  layers_{i}/mlp_norm/scale               [embed]
  layers_{i}/mlp/{gate,up}/kernel         [embed, mlp]
  layers_{i}/mlp/down/kernel              [mlp, embed]
  final_norm/scale                        [embed]
  lm_head/kernel                          [embed, vocab]   (only when tie_embeddings=False)
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from toolformer_jax.networks import layers

Array = jax.Array

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  """Static shape and numerics of a LLaMA-style decoder.

  `dtype` is the computation dtype, `param_dtype` the storage dtype of parameters (strings,
  so gin files can set them). Attention logits, softmax and norms always run in float32, and
  the returned logits are float32.
  """
  vocab_size: int
  d_model: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  d_ff: int
  rms_norm_eps: float = 1e-5
  rope_theta: float = 10000.0
  tie_embeddings: bool = True
  dtype: str = "float32"
  param_dtype: str = "float32"
  scan_layers: bool = False
  remat_policy: str = "none"

  def __post_init__(self):
    for name in ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads",
                 "head_dim", "d_ff"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"LlamaConfig.{name} must be a positive integer, got {value!r}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"LlamaConfig.num_heads ({self.num_heads}) must be a multiple of "
                       f"num_kv_heads ({self.num_kv_heads})")
    if self.head_dim % 2:
      raise ValueError(f"LlamaConfig.head_dim must be even for rotary embeddings, got "
                       f"{self.head_dim}")
    for name in ("rms_norm_eps", "rope_theta"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"LlamaConfig.{name} must be a positive number, got {value!r}")
    for name in ("dtype", "param_dtype"):
      if getattr(self, name) not in DTYPES:
        raise ValueError(f"LlamaConfig.{name} must be one of {sorted(DTYPES)}, got "
                         f"{getattr(self, name)!r}")
    layers.check_remat_policy(self.remat_policy)

  @property
  def jnp_dtype(self):
    return DTYPES[self.dtype]

  @property
  def jnp_param_dtype(self):
    return DTYPES[self.param_dtype]

  @property
  def attention_spec(self) -> layers.AttentionSpec:
    return layers.AttentionSpec(num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
                                head_dim=self.head_dim, rotary_dim=self.head_dim,
                                rotary_base=float(self.rope_theta), rotary_interleaved=False,
                                use_bias=False)


def smollm2_135m(**overrides) -> LlamaConfig:
  """SmolLM2-135M(-Instruct): 30 layers, d_model 576, 9 heads (3 KV heads), tied embeddings."""
  values = dict(vocab_size=49152, d_model=576, num_layers=30, num_heads=9, num_kv_heads=3,
                head_dim=64, d_ff=1536, rms_norm_eps=1e-5, rope_theta=100000.0,
                tie_embeddings=True)
  values.update(overrides)
  return LlamaConfig(**values)


def tiny(**overrides) -> LlamaConfig:
  """A 2-layer model for tests: vocab 97, d_model 32, 4 heads (2 KV heads) of 8 dims."""
  values = dict(vocab_size=97, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                head_dim=8, d_ff=64, rms_norm_eps=1e-5, rope_theta=10000.0,
                tie_embeddings=True)
  values.update(overrides)
  return LlamaConfig(**values)


class SwiGLU(nn.Module):
  """LLaMA's gated MLP: down(silu(gate(x)) * up(x))."""
  config: LlamaConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    dense = lambda features, axes, name: layers.DenseGeneral(  # pylint: disable=g-long-lambda
        features=(features,), kernel_axes=axes, dtype=cfg.jnp_dtype,
        param_dtype=cfg.jnp_param_dtype, name=name)
    gate = dense(cfg.d_ff, ("embed", "mlp"), "gate")(x)  # [batch, length, mlp]
    up = dense(cfg.d_ff, ("embed", "mlp"), "up")(x)  # [batch, length, mlp]
    hidden = nn.silu(gate) * up  # [batch, length, mlp]
    hidden = layers.with_sharding_constraint(hidden, ("batch", "length", "mlp"))
    return dense(cfg.d_model, ("mlp", "embed"), "down")(hidden)  # [batch, length, embed]


class LlamaBlock(nn.Module):
  """One pre-norm decoder block: attention and SwiGLU, each with a residual connection."""
  config: LlamaConfig
  decode: bool = False
  prefill: bool = False

  @nn.compact
  def __call__(self, x: Array, positions: Array, mask: Optional[Array],
               prefill_lengths: Optional[Array]) -> Array:
    cfg = self.config
    norm = lambda name: layers.RMSNorm(epsilon=cfg.rms_norm_eps, dtype=cfg.jnp_dtype,  # pylint: disable=g-long-lambda
                                       param_dtype=cfg.jnp_param_dtype, name=name)
    # x: [batch, length, embed]
    h = norm("attention_norm")(x)
    h = layers.SelfAttention(cfg.attention_spec, dtype=cfg.jnp_dtype,
                             param_dtype=cfg.jnp_param_dtype, name="attention")(
                                 h, positions, mask, decode=self.decode, prefill=self.prefill,
                                 prefill_lengths=prefill_lengths)
    x = x + h
    x = layers.with_sharding_constraint(x, ("batch", "length", "embed"))
    h = SwiGLU(cfg, name="mlp")(norm("mlp_norm")(x))
    x = x + h
    return layers.with_sharding_constraint(x, ("batch", "length", "embed"))


class Llama(nn.Module):
  """LLaMA-style decoder-only LM with t5x's DecoderOnlyModel call signature.

  Masking: without `decoder_target_tokens` attention is purely causal; with them, keys whose
  target is 0 (padding) are masked, as in t5x. `decoder_segment_ids` restrict attention to
  the same packed segment, `decoder_positions` feed the rotary embedding (default 0..L-1),
  and `decoder_causal_attention` (1 on an inputs prefix) makes that prefix bidirectional.
  The network has no dropout, so `enable_dropout` has no effect; `max_decode_length` is
  accepted for t5x and unused (the cache length is fixed by the cache-creating call).
  """
  config: LlamaConfig

  @property
  def scan_layers(self) -> bool:
    """Read by t5x (cache axis offset for decoding)."""
    return self.config.scan_layers

  @nn.compact
  def __call__(self,
               decoder_input_tokens: Array,
               decoder_target_tokens: Optional[Array] = None,
               decoder_segment_ids: Optional[Array] = None,
               decoder_positions: Optional[Array] = None,
               decoder_causal_attention: Optional[Array] = None,
               *,
               enable_dropout: bool = True,
               decode: bool = False,
               max_decode_length: Optional[int] = None,
               prefill: bool = False,
               prefill_lengths: Optional[Array] = None) -> Array:
    del enable_dropout, max_decode_length  # no dropout; cache length set at creation
    cfg = self.config
    if decode and prefill:
      raise ValueError("decode and prefill cannot both be set")
    if prefill and prefill_lengths is None:
      raise ValueError("prefill=True needs prefill_lengths [batch]")
    tokens, positions, mask = layers.decoder_inputs(
        decoder_input_tokens, decoder_target_tokens, decoder_segment_ids, decoder_positions,
        decoder_causal_attention, decode)  # [b, l], [b, l], [b, 1, l, l] or None

    embedder = layers.Embed(cfg.vocab_size, cfg.d_model, dtype=cfg.jnp_dtype,
                            param_dtype=cfg.jnp_param_dtype, name="token_embedder")
    x = embedder(tokens)  # [batch, length, embed]
    x = layers.with_sharding_constraint(x, ("batch", "length", "embed"))
    x = layers.run_layer_stack(LlamaBlock, dict(config=cfg, decode=decode, prefill=prefill),
                               cfg.num_layers, cfg.scan_layers, cfg.remat_policy, x,
                               positions, mask, prefill_lengths)  # [batch, length, embed]
    x = layers.RMSNorm(epsilon=cfg.rms_norm_eps, dtype=cfg.jnp_dtype,
                       param_dtype=cfg.jnp_param_dtype, name="final_norm")(x)
    if cfg.tie_embeddings:
      logits = embedder.attend(x)  # [batch, length, vocab]
    else:
      logits = layers.DenseGeneral(features=(cfg.vocab_size,), kernel_axes=("embed", "vocab"),
                                   dtype=cfg.jnp_dtype, param_dtype=cfg.jnp_param_dtype,
                                   name="lm_head")(x)  # [batch, length, vocab]
    logits = layers.with_sharding_constraint(logits, ("batch", "length", "vocab"))
    return logits.astype(jnp.float32)
