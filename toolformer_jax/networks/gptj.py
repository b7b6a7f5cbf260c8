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
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from toolformer_jax.networks import layers

Array = jax.Array


def _check_dtype_name(field: str, name: str) -> None:
  try:
    dtype = jnp.dtype(name)
  except TypeError as e:
    raise ValueError(f"GPTJConfig.{field}={name!r} is not a dtype name") from e
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"GPTJConfig.{field}={name!r} must be a floating dtype")


@dataclasses.dataclass(frozen=True)
class GPTJConfig:
  """Shape and numerics of a GPT-J network (defaults: GPT-J 6B).

  `dtype` is the activation/compute dtype and `param_dtype` the storage dtype of the
  parameters; both are dtype names so gin files can bind them. `max_positions` is HF's
  `n_positions`, kept for checkpoint export; the network itself does not limit length.
  """
  vocab_size: int = 50400
  d_model: int = 4096
  num_layers: int = 28
  num_heads: int = 16
  head_dim: int = 256
  rotary_dim: int = 64
  d_ff: int = 16384
  layer_norm_eps: float = 1e-5
  rotary_base: float = 10000.0
  max_positions: int = 2048
  dtype: str = "float32"
  param_dtype: str = "float32"
  scan_layers: bool = False
  remat_policy: str = "none"

  def __post_init__(self):
    for name in ("vocab_size", "d_model", "num_layers", "num_heads", "head_dim", "rotary_dim",
                 "d_ff", "max_positions"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
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
    _check_dtype_name("dtype", self.dtype)
    _check_dtype_name("param_dtype", self.param_dtype)
    layers.check_remat_policy(self.remat_policy)

  @property
  def attention_spec(self) -> layers.AttentionSpec:
    return layers.AttentionSpec(num_heads=self.num_heads, num_kv_heads=self.num_heads,
                                head_dim=self.head_dim, rotary_dim=self.rotary_dim,
                                rotary_base=self.rotary_base, rotary_interleaved=True,
                                use_bias=False)

  @classmethod
  def preset(cls, name: str, **overrides) -> "GPTJConfig":
    """A named size from `GPTJ_PRESETS`, with field overrides (e.g. scan_layers=True)."""
    if name not in GPTJ_PRESETS:
      raise ValueError(f"unknown GPT-J preset {name!r}; choose one of {sorted(GPTJ_PRESETS)}")
    return dataclasses.replace(GPTJ_PRESETS[name], **overrides)


GPTJ_PRESETS = {
    # Unit tests: small vocabulary, everything else GPT-J shaped (rotary_dim < head_dim).
    "tiny": GPTJConfig(vocab_size=512, d_model=64, num_layers=2, num_heads=4, head_dim=16,
                       rotary_dim=8, d_ff=256),
    # ~125M: GPT-2-small widths with GPT-J's vocabulary and a 1/4 rotary fraction.
    "125m": GPTJConfig(d_model=768, num_layers=12, num_heads=12, head_dim=64, rotary_dim=16,
                       d_ff=3072),
    # ~1.1B.
    "1b": GPTJConfig(d_model=2048, num_layers=16, num_heads=16, head_dim=128, rotary_dim=32,
                     d_ff=8192),
    # EleutherAI GPT-J 6B.
    "6b": GPTJConfig(),
}


class GPTJMLP(nn.Module):
  """fc_in -> gelu (tanh approximation) -> fc_out, both with biases."""
  config: GPTJConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
    h = layers.DenseGeneral(features=(cfg.d_ff,), kernel_axes=("embed", "mlp"), use_bias=True,
                            bias_axes=("mlp",), dtype=dtype, param_dtype=param_dtype,
                            name="fc_in")(x)  # [batch, length, mlp]
    h = jax.nn.gelu(h, approximate=True)
    h = layers.with_sharding_constraint(h, ("batch", "length", "mlp"))
    return layers.DenseGeneral(features=(cfg.d_model,), kernel_axes=("mlp", "embed"),
                               use_bias=True, bias_axes=("embed",), dtype=dtype,
                               param_dtype=param_dtype, name="fc_out")(h)  # [b, l, embed]


class GPTJBlock(nn.Module):
  """One GPT-J block: `x + attn(ln(x)) + mlp(ln(x))` with a single shared LayerNorm."""
  config: GPTJConfig
  decode: bool = False
  prefill: bool = False

  @nn.compact
  def __call__(self, x: Array, positions: Array, mask: Optional[Array],
               prefill_lengths: Optional[Array]) -> Array:
    cfg = self.config
    dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
    h = layers.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=dtype, param_dtype=param_dtype,
                         name="ln")(x)  # [batch, length, embed]
    attn = layers.SelfAttention(cfg.attention_spec, dtype=dtype, param_dtype=param_dtype,
                                name="attn")(h, positions, mask, decode=self.decode,
                                             prefill=self.prefill,
                                             prefill_lengths=prefill_lengths)
    mlp = GPTJMLP(cfg, name="mlp")(h)
    y = x + attn + mlp  # [batch, length, embed]
    return layers.with_sharding_constraint(y, ("batch", "length", "embed"))


class GPTJ(nn.Module):
  """GPT-J decoder returning float32 logits [batch, length, vocab].

  Follows t5x's `DecoderOnlyModel` module contract: keys whose `decoder_target_tokens`
  entry is 0 are masked (when targets are given), `decoder_segment_ids` and
  `decoder_positions` describe packed sequences, `decoder_causal_attention` makes a
  prefix bidirectional, and `decode` / `prefill` drive the KV cache (see
  `layers.SelfAttention`). GPT-J has no dropout, so `enable_dropout` changes nothing.
  """
  config: GPTJConfig

  @property
  def scan_layers(self) -> bool:
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
    del enable_dropout, max_decode_length  # no dropout; cache length is fixed at cache init
    cfg = self.config
    dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
    tokens, positions, mask = layers.decoder_inputs(
        decoder_input_tokens, decoder_target_tokens, decoder_segment_ids, decoder_positions,
        decoder_causal_attention, decode)  # [b, l], [b, l], [b, 1, l, l] or None
    x = layers.Embed(num_embeddings=cfg.vocab_size, features=cfg.d_model, dtype=dtype,
                     param_dtype=param_dtype, name="token_embedder")(tokens)  # [b, l, embed]
    x = layers.with_sharding_constraint(x, ("batch", "length", "embed"))

    x = layers.run_layer_stack(GPTJBlock, dict(config=cfg, decode=decode, prefill=prefill),
                               cfg.num_layers, cfg.scan_layers, cfg.remat_policy, x,
                               positions, mask, prefill_lengths)  # [batch, length, embed]
    x = layers.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=dtype, param_dtype=param_dtype,
                         name="ln_f")(x)
    logits = layers.DenseGeneral(features=(cfg.vocab_size,), kernel_axes=("embed", "vocab"),
                                 use_bias=True, bias_axes=("vocab",), dtype=dtype,
                                 param_dtype=param_dtype, name="lm_head")(x)
    logits = logits.astype(jnp.float32)  # [batch, length, vocab]
    return layers.with_sharding_constraint(logits, ("batch", "length", "vocab"))


def count_params(config: GPTJConfig) -> int:
  """Number of parameters of `GPTJ(config)`, computed from shapes only (nothing allocated)."""
  tokens = jax.ShapeDtypeStruct((1, 1), jnp.int32)
  shapes = jax.eval_shape(lambda t: GPTJ(config).init(jax.random.PRNGKey(0), t), tokens)
  return sum(int(x.size) for x in jax.tree.leaves(shapes["params"]))
