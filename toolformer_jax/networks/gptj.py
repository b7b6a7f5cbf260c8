"""GPT-J as a Flax module with t5x's decoder-only calling convention.

Architecture (Wang & Komatsuzaki 2021; HF `GPTJForCausalLM` is the parity reference):
token embedding (untied), then per block ONE shared LayerNorm feeding attention and MLP in
parallel, `x + attn(ln(x)) + mlp(ln(x))`; rotary positions on the first `rotary_dim`
features of each head with interleaved pairs; q/k/v/out projections without bias; MLP
fc_in -> gelu (tanh form, "gelu_new") -> fc_out with biases; final LayerNorm `ln_f`; output
projection `lm_head` with bias.

Parameter tree (unrolled layout; `scan_layers=True` puts the blocks under
`layers/block/...` with a leading `layers` axis):

  token_embedder/embedding        [vocab, embed]
  layers_{i}/ln/{scale,bias}      [embed]
  layers_{i}/attn/query/kernel    [embed, heads, head_dim]   (also key, value)
  layers_{i}/attn/out/kernel      [heads, head_dim, embed]
  layers_{i}/mlp/fc_in/kernel     [embed, mlp]    bias [mlp]
  layers_{i}/mlp/fc_out/kernel    [mlp, embed]    bias [embed]
  ln_f/{scale,bias}               [embed]
  lm_head/kernel                  [embed, vocab]  bias [vocab]

With `lora_rank` r > 0 every targeted projection also holds `lora_a` [inputs..., r] and
`lora_b` [r, outputs...] beside its kernel (`toolformer_jax.networks.lora`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from toolformer_jax.networks import decoder
from toolformer_jax.networks import layers

Array = jax.Array

# The one place GPT-J sizes are written; gin model files name a preset
# (`gptj.GPTJConfig.preset = '125m'`).
GPTJ_PRESETS = {
    # Unit tests: small vocabulary, everything else GPT-J shaped (rotary_dim < head_dim).
    "tiny": dict(vocab_size=512, d_model=64, num_layers=2, num_heads=4, head_dim=16,
                 rotary_dim=8, d_ff=256),
    # 162M (the untied lm_head makes it larger than GPT-2 small): GPT-2-small widths with
    # GPT-J's vocabulary and a 1/4 rotary fraction.
    "125m": dict(vocab_size=50400, d_model=768, num_layers=12, num_heads=12, head_dim=64,
                 rotary_dim=16, d_ff=3072),
    # 1.01B.
    "1b": dict(vocab_size=50400, d_model=2048, num_layers=16, num_heads=16, head_dim=128,
               rotary_dim=32, d_ff=8192),
    # EleutherAI GPT-J 6B.
    "6b": dict(vocab_size=50400, d_model=4096, num_layers=28, num_heads=16, head_dim=256,
               rotary_dim=64, d_ff=16384),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class GPTJConfig(decoder.DecoderConfig):
  """Shape and numerics of a GPT-J network: `GPTJConfig(preset='6b')` is GPT-J 6B.

  `max_positions` is HF's `n_positions`, kept for checkpoint export; the network itself
  does not limit length.
  """
  PRESETS: ClassVar = GPTJ_PRESETS

  rotary_dim: Optional[int] = None
  layer_norm_eps: float = 1e-5
  rotary_base: float = 10000.0
  max_positions: int = 2048

  def validate(self):
    for name in ("rotary_dim", "max_positions"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"GPTJConfig.{name} must be a positive int, got {value!r}")
    if self.d_model != self.num_heads * self.head_dim:
      raise ValueError(f"GPTJConfig: d_model ({self.d_model}) must equal num_heads * head_dim "
                       f"({self.num_heads} * {self.head_dim}) as in GPT-J")
    if self.rotary_dim % 2:
      raise ValueError(f"GPTJConfig.rotary_dim must be even, got {self.rotary_dim}")
    if self.rotary_dim > self.head_dim:
      raise ValueError(f"GPTJConfig.rotary_dim ({self.rotary_dim}) must be <= head_dim "
                       f"({self.head_dim})")
    if not self.layer_norm_eps > 0:
      raise ValueError(f"GPTJConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps}")
    if not self.rotary_base > 0:
      raise ValueError(f"GPTJConfig.rotary_base must be > 0, got {self.rotary_base}")

  @property
  def attention_spec(self) -> layers.AttentionSpec:
    return layers.AttentionSpec(num_heads=self.num_heads, num_kv_heads=self.num_heads,
                                head_dim=self.head_dim, rotary_dim=self.rotary_dim,
                                rotary_base=self.rotary_base, rotary_interleaved=True,
                                use_bias=False)


class GPTJMLP(nn.Module):
  """fc_in -> gelu (tanh approximation) -> fc_out, both with biases."""
  config: GPTJConfig

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    cfg = self.config
    h = layers.DenseGeneral(features=(cfg.d_ff,), kernel_axes=("embed", "mlp"), use_bias=True,
                            bias_axes=("mlp",), dtype=cfg.jnp_dtype,
                            param_dtype=cfg.jnp_param_dtype, lora=cfg.lora_for("mlp_in"),
                            name="fc_in")(x, deterministic)  # [b, l, mlp]
    h = jax.nn.gelu(h, approximate=True)
    h = layers.with_sharding_constraint(h, ("batch", "length", "mlp"))
    return layers.DenseGeneral(features=(cfg.d_model,), kernel_axes=("mlp", "embed"),
                               use_bias=True, bias_axes=("embed",), dtype=cfg.jnp_dtype,
                               param_dtype=cfg.jnp_param_dtype, lora=cfg.lora_for("mlp_out"),
                               name="fc_out")(h, deterministic)  # [b, l, embed]


class GPTJBlock(nn.Module):
  """One GPT-J block: `x + attn(ln(x)) + mlp(ln(x))` with a single shared LayerNorm."""
  config: GPTJConfig
  decode: bool = False
  prefill: bool = False
  deterministic: bool = True  # False enables LoRA dropout

  @nn.compact
  def __call__(self, x: Array, positions: Array, mask: Optional[Array],
               prefill_lengths: Optional[Array], decode_lengths: Optional[Array]) -> Array:
    cfg = self.config
    h = layers.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=cfg.jnp_dtype,
                         param_dtype=cfg.jnp_param_dtype, name="ln")(x)  # [b, l, embed]
    attn = layers.SelfAttention(cfg.attention_spec, dtype=cfg.jnp_dtype,
                                param_dtype=cfg.jnp_param_dtype, lora=cfg.lora,
                                lora_targets=cfg.attention_lora_targets, name="attn")(
                                    h, positions, mask, decode=self.decode,
                                    prefill=self.prefill, prefill_lengths=prefill_lengths,
                                    decode_lengths=decode_lengths,
                                    deterministic=self.deterministic)
    mlp = GPTJMLP(cfg, name="mlp")(h, self.deterministic)
    y = x + attn + mlp  # [batch, length, embed]
    return layers.with_sharding_constraint(y, ("batch", "length", "embed"))


class GPTJ(decoder.Decoder):
  """GPT-J on the shared trunk: LayerNorm blocks, final `ln_f`, untied `lm_head` with bias.

  Returns float32 logits [batch, length, vocab] by default (see `decoder.Decoder` for the
  other outputs and the KV cache).
  """
  config: GPTJConfig

  block_cls: ClassVar = GPTJBlock
  final_norm_name: ClassVar = "ln_f"
  head_bias: ClassVar = True

  def make_norm(self, name: str) -> nn.Module:
    return layers.LayerNorm(epsilon=self.config.layer_norm_eps, dtype=self.config.jnp_dtype,
                            param_dtype=self.config.jnp_param_dtype, name=name)


def count_params(config: GPTJConfig) -> int:
  """Number of parameters of `GPTJ(config)`, computed from shapes only (nothing allocated)."""
  return decoder.count_params(GPTJ(config))
