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

With `lora_rank` r > 0 every targeted projection also holds `lora_a` [inputs..., r] and
`lora_b` [r, outputs...] beside its kernel (`toolformer_jax.networks.lora`; the MLP
targets are mlp_in = gate and up, mlp_out = down).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import flax.linen as nn
import jax

from toolformer_jax.networks import decoder
from toolformer_jax.networks import layers

Array = jax.Array

# The one place LLaMA-family sizes are written; gin model files name a preset
# (`llama.LlamaConfig.preset = 'smollm2_135m'`).
LLAMA_PRESETS = {
    # Unit tests: vocab 97, d_model 32, 4 heads (2 KV heads) of 8 dims, 2 layers.
    "tiny": dict(vocab_size=97, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                 head_dim=8, d_ff=64, rms_norm_eps=1e-5, rope_theta=10000.0,
                 tie_embeddings=True),
    # SmolLM2-135M(-Instruct): 30 layers, d_model 576, 9 heads (3 KV heads), tied embeddings.
    "smollm2_135m": dict(vocab_size=49152, d_model=576, num_layers=30, num_heads=9,
                         num_kv_heads=3, head_dim=64, d_ff=1536, rms_norm_eps=1e-5,
                         rope_theta=100000.0, tie_embeddings=True),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LlamaConfig(decoder.DecoderConfig):
  """Static shape and numerics of a LLaMA-style decoder (`LlamaConfig(preset='tiny')`).

  Attention logits, softmax and norms always run in float32, and the returned logits are
  float32, whatever `dtype` is.
  """
  PRESETS: ClassVar = LLAMA_PRESETS
  FALLBACKS: ClassVar = dict(rms_norm_eps=1e-5, rope_theta=10000.0, tie_embeddings=True)

  num_kv_heads: Optional[int] = None
  rms_norm_eps: Optional[float] = None
  rope_theta: Optional[float] = None
  tie_embeddings: Optional[bool] = None

  def validate(self):
    value = self.num_kv_heads
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
      raise ValueError(f"LlamaConfig.num_kv_heads must be a positive int, got {value!r}")
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

  @property
  def attention_spec(self) -> layers.AttentionSpec:
    return layers.AttentionSpec(num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
                                head_dim=self.head_dim, rotary_dim=self.head_dim,
                                rotary_base=float(self.rope_theta), rotary_interleaved=False,
                                use_bias=False)


class SwiGLU(nn.Module):
  """LLaMA's gated MLP: down(silu(gate(x)) * up(x))."""
  config: LlamaConfig

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    cfg = self.config

    def dense(features, axes, target, name):
      return layers.DenseGeneral(features=(features,), kernel_axes=axes, dtype=cfg.jnp_dtype,
                                 param_dtype=cfg.jnp_param_dtype, lora=cfg.lora_for(target),
                                 name=name)

    gate = dense(cfg.d_ff, ("embed", "mlp"), "mlp_in", "gate")(x, deterministic)  # [b, l, mlp]
    up = dense(cfg.d_ff, ("embed", "mlp"), "mlp_in", "up")(x, deterministic)  # [b, l, mlp]
    hidden = nn.silu(gate) * up  # [batch, length, mlp]
    hidden = layers.with_sharding_constraint(hidden, ("batch", "length", "mlp"))
    return dense(cfg.d_model, ("mlp", "embed"), "mlp_out", "down")(
        hidden, deterministic)  # [batch, length, embed]


def _rms_norm(config: LlamaConfig, name: str) -> nn.Module:
  return layers.RMSNorm(epsilon=config.rms_norm_eps, dtype=config.jnp_dtype,
                        param_dtype=config.jnp_param_dtype, name=name)


class LlamaBlock(nn.Module):
  """One pre-norm decoder block: attention and SwiGLU, each with a residual connection."""
  config: LlamaConfig
  decode: bool = False
  prefill: bool = False
  deterministic: bool = True  # False enables LoRA dropout

  @nn.compact
  def __call__(self, x: Array, positions: Array, mask: Optional[Array],
               prefill_lengths: Optional[Array], decode_lengths: Optional[Array]) -> Array:
    cfg = self.config
    # x: [batch, length, embed]
    h = _rms_norm(cfg, "attention_norm")(x)
    h = layers.SelfAttention(cfg.attention_spec, dtype=cfg.jnp_dtype,
                             param_dtype=cfg.jnp_param_dtype, lora=cfg.lora,
                             lora_targets=cfg.attention_lora_targets, name="attention")(
                                 h, positions, mask, decode=self.decode, prefill=self.prefill,
                                 prefill_lengths=prefill_lengths,
                                 decode_lengths=decode_lengths,
                                 deterministic=self.deterministic)
    x = x + h
    x = layers.with_sharding_constraint(x, ("batch", "length", "embed"))
    h = SwiGLU(cfg, name="mlp")(_rms_norm(cfg, "mlp_norm")(x), self.deterministic)
    x = x + h
    return layers.with_sharding_constraint(x, ("batch", "length", "embed"))


class Llama(decoder.Decoder):
  """LLaMA-style decoder on the shared trunk: RMSNorm blocks, `final_norm`, logits from
  the tied embedding table or an untied `lm_head` without bias."""
  config: LlamaConfig

  block_cls: ClassVar = LlamaBlock
  final_norm_name: ClassVar = "final_norm"

  def make_norm(self, name: str) -> nn.Module:
    return _rms_norm(self.config, name)

  def tie_embeddings(self) -> bool:
    return bool(self.config.tie_embeddings)
