"""The decoder trunk shared by every network of the project (GPT-J, LLaMA/SmolLM2).

A network is `embed -> N blocks -> final norm -> output head`; the families differ only in
their block, their norm and whether the head is tied to the embedding. `DecoderConfig`
holds what every family has (sizes by preset, numerics); `Decoder` is the flax module
with t5x's `DecoderOnlyModel` calling convention plus what annotation and tool-use decoding
need without a full [batch, length, vocab] tensor:

  output="logits"     float32 logits [batch, length, vocab] (t5x's contract; the default)
  output="hidden"     final-norm hidden states [batch, length, embed]
  output="log_probs"  log p(output_tokens) [batch, positions]: log_softmax of the logits
                      taken only where asked, in chunks of `chunk_size` positions, so at
                      most [batch, chunk_size, vocab] logits exist at once

`output_positions` ([batch, positions] int) selects the positions every output is taken
at (default: all). The KV cache follows t5x's protocol (see `layers.SelfAttention`) and
adds an extend step: `decode=True` on an existing cache with tokens [batch, n] appends
`decode_lengths[b]` (default n) tokens at each row's `cache_index`; an extend that would
write past the end of the cache raises (t5x's one-token steps keep t5x's behaviour: the
finished rows its loop keeps stepping write nothing past the end). `kv_cache` has the prefill / fork / extend functions built on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from toolformer_jax.networks import layers

Array = jax.Array

OUTPUTS = ("logits", "hidden", "log_probs")


# Compute and storage dtypes a config may name (float64 would silently be float32 under
# JAX's default x64-off mode, so it is not offered).
DTYPES = ("float32", "bfloat16", "float16")


def _check_dtype_name(owner: str, field: str, name: str) -> None:
  if name not in DTYPES:
    raise ValueError(f"{owner}.{field}={name!r} must be one of {DTYPES}")


# Projections a LoRA adapter can target, family-neutral: the attention projections, and
# the MLP's input side (GPT-J fc_in; LLaMA gate and up) and output side (fc_out; down).
LORA_TARGETS = ("query", "key", "value", "out", "mlp_in", "mlp_out")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DecoderConfig:
  """Sizes and numerics every decoder family shares.

  Every field whose default is None is a size: it comes from `preset` (a name in the
  family's `PRESETS`, the one place sizes are written; gin model files name a preset)
  unless it is given explicitly, which overrides the preset; `FALLBACKS` fill what is
  still unset. `dtype` is the compute dtype
  and `param_dtype` the storage dtype, both dtype names so gin can bind them.

  LoRA (`toolformer_jax.networks.lora`): `lora_rank` > 0 adds a low-rank adapter
  W + (lora_alpha / lora_rank) A B to every projection named in `lora_targets` (a subset
  of LORA_TARGETS), with dropout `lora_dropout` on the adapter's input and the adapters
  stored in `lora_param_dtype` (the base weights stay in `param_dtype`, which may be
  lower). `lora_rank = 0` (the default) is the plain network with today's parameter tree.
  """
  PRESETS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
  # Values for None fields that neither the preset nor the caller gives.
  FALLBACKS: ClassVar[Mapping[str, Any]] = {}

  preset: Optional[str] = dataclasses.field(default=None, compare=False)
  vocab_size: Optional[int] = None
  d_model: Optional[int] = None
  num_layers: Optional[int] = None
  num_heads: Optional[int] = None
  head_dim: Optional[int] = None
  d_ff: Optional[int] = None
  dtype: str = "float32"
  param_dtype: str = "float32"
  scan_layers: bool = False
  remat_policy: str = "none"
  lora_rank: int = 0
  lora_alpha: float = 16.0
  lora_dropout: float = 0.0
  lora_targets: Tuple[str, ...] = LORA_TARGETS
  lora_param_dtype: str = "float32"

  @classmethod
  def from_preset(cls, name: str, **overrides):
    """`cls(preset=name, **overrides)`, e.g. `GPTJConfig.from_preset('tiny', scan_layers=True)`."""
    return cls(preset=name, **overrides)

  def __post_init__(self):
    owner = type(self).__name__
    if self.preset is not None:
      if self.preset not in self.PRESETS:
        raise ValueError(f"unknown {owner} preset {self.preset!r}; choose one of "
                         f"{sorted(self.PRESETS)}")
      for name, value in self.PRESETS[self.preset].items():
        if getattr(self, name) is None:
          object.__setattr__(self, name, value)
    for name, value in self.FALLBACKS.items():
      if getattr(self, name) is None:
        object.__setattr__(self, name, value)
    missing = [f.name for f in dataclasses.fields(self)
               if f.name != "preset" and getattr(self, f.name) is None]
    if missing:
      raise ValueError(f"{owner}: {missing} not set; name a preset (one of "
                       f"{sorted(self.PRESETS)}) or give every size")
    for name in ("vocab_size", "d_model", "num_layers", "num_heads", "head_dim", "d_ff"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}.{name} must be a positive int, got {value!r}")
    _check_dtype_name(owner, "dtype", self.dtype)
    _check_dtype_name(owner, "param_dtype", self.param_dtype)
    layers.check_remat_policy(self.remat_policy)
    self.validate()
    self._validate_lora(owner)

  def validate(self) -> None:
    """Family-specific checks (raise ValueError)."""

  def _validate_lora(self, owner: str) -> None:
    rank, alpha, dropout = self.lora_rank, self.lora_alpha, self.lora_dropout
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
      raise ValueError(f"{owner}.lora_rank must be an int >= 0 (0: no adapters), got {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
      raise ValueError(f"{owner}.lora_alpha must be a number > 0, got {alpha!r}")
    if (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
        or not 0 <= dropout < 1):
      raise ValueError(f"{owner}.lora_dropout must be in [0, 1), got {dropout!r}")
    targets = self.lora_targets
    if isinstance(targets, str) or not isinstance(targets, (tuple, list)):
      raise ValueError(f"{owner}.lora_targets must be a sequence of names from "
                       f"{LORA_TARGETS}, got {targets!r}")
    targets = tuple(targets)
    object.__setattr__(self, "lora_targets", targets)  # hashable (gin may give a list)
    unknown = [t for t in targets if t not in LORA_TARGETS]
    if unknown:
      raise ValueError(f"{owner}.lora_targets: unknown {unknown}; choose from {LORA_TARGETS}")
    if len(set(targets)) != len(targets):
      raise ValueError(f"{owner}.lora_targets has duplicates: {targets}")
    _check_dtype_name(owner, "lora_param_dtype", self.lora_param_dtype)
    if rank == 0:
      return
    if not targets:
      raise ValueError(f"{owner}.lora_targets is empty but lora_rank={rank}; name at least "
                       f"one of {LORA_TARGETS} (or set lora_rank=0)")
    spec = self.attention_spec
    sides = {"query": (self.d_model, spec.num_heads * spec.head_dim),
             "key": (self.d_model, spec.num_kv_heads * spec.head_dim),
             "value": (self.d_model, spec.num_kv_heads * spec.head_dim),
             "out": (spec.num_heads * spec.head_dim, self.d_model),
             "mlp_in": (self.d_model, self.d_ff), "mlp_out": (self.d_ff, self.d_model)}
    too_small = {t: sides[t] for t in targets if rank > min(sides[t])}
    if too_small:
      raise ValueError(f"{owner}.lora_rank={rank} exceeds a side of the targeted "
                       f"projections (in, out) {too_small}: the update would not be low-rank")

  @property
  def lora(self) -> Optional[layers.LoraSpec]:
    """The adapter every targeted projection gets, or None (lora_rank = 0)."""
    if self.lora_rank == 0:
      return None
    return layers.LoraSpec(rank=self.lora_rank, alpha=float(self.lora_alpha),
                           dropout=float(self.lora_dropout),
                           param_dtype=jnp.dtype(self.lora_param_dtype))

  def lora_for(self, target: str) -> Optional[layers.LoraSpec]:
    """`lora` if `target` (a name in LORA_TARGETS) is adapted, else None."""
    if target not in LORA_TARGETS:
      raise ValueError(f"unknown LoRA target {target!r}; choose from {LORA_TARGETS}")
    return self.lora if target in self.lora_targets else None

  @property
  def attention_lora_targets(self) -> Tuple[str, ...]:
    return tuple(t for t in self.lora_targets if t in ("query", "key", "value", "out"))

  @property
  def jnp_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def jnp_param_dtype(self):
    return jnp.dtype(self.param_dtype)

  @property
  def attention_spec(self) -> layers.AttentionSpec:
    raise NotImplementedError


def _cache_leaf(cache: Mapping, name: str) -> Optional[Array]:
  """The first leaf called `name` in a cache tree (every layer holds the same index)."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(cache):
    if getattr(path[-1], "key", None) == name:
      return leaf
  return None


def _raise_cache_overflow(overflow, index, lengths, cache_length):
  if np.any(overflow):
    rows = np.flatnonzero(overflow)
    raise ValueError(
        f"KV cache overflow: rows {rows.tolist()} would write up to position "
        f"{(np.asarray(index) + np.asarray(lengths))[rows].tolist()} of a cache of length "
        f"{int(cache_length)}; create the cache longer")


def project_logits(x: Array, kernel: Array, bias: Optional[Array], dtype) -> Array:
  """The output head as pure math: [..., embed] x [embed, vocab] (+ bias) -> float32 logits."""
  logits = jnp.einsum("...e,ev->...v", x.astype(dtype), kernel.astype(dtype))
  if bias is not None:
    logits = logits + bias.astype(dtype)
  return logits.astype(jnp.float32)


def token_log_probs(hidden: Array, tokens: Array, kernel: Array, bias: Optional[Array],
                    dtype, chunk_size: int) -> Array:
  """log_softmax(head(hidden))[tokens], `chunk_size` positions at a time.

  hidden: [batch, positions, embed]; tokens: [batch, positions] int. Returns float32
  [batch, positions]. Chunking runs over positions rather than the vocabulary so a vocab
  axis sharded on the mesh stays whole (logsumexp is one reduction over it).
  """
  batch, positions, embed = hidden.shape
  chunk = max(1, min(chunk_size, positions))
  num_chunks = -(-positions // chunk)
  pad = num_chunks * chunk - positions
  h = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
  t = jnp.pad(tokens.astype(jnp.int32), ((0, 0), (0, pad)))
  h = h.reshape(batch, num_chunks, chunk, embed).swapaxes(0, 1)  # [chunks, b, c, embed]
  t = t.reshape(batch, num_chunks, chunk).swapaxes(0, 1)  # [chunks, b, c]

  def one_chunk(args):
    h_chunk, t_chunk = args
    logits = project_logits(h_chunk, kernel, bias, dtype)  # [b, c, vocab]
    logits = layers.with_sharding_constraint(logits, ("batch", "length", "vocab"))
    norm = jax.nn.logsumexp(logits, axis=-1)  # [b, c]
    picked = jnp.take_along_axis(logits, t_chunk[..., None], axis=-1)[..., 0]  # [b, c]
    return picked - norm

  out = jax.lax.map(one_chunk, (h, t))  # [chunks, b, c]
  return out.swapaxes(0, 1).reshape(batch, num_chunks * chunk)[:, :positions]


class OutputHead(nn.Module):
  """An untied output projection `lm_head`: kernel [embed, vocab] and an optional bias."""
  vocab_size: int
  features: int
  use_bias: bool
  param_dtype: Any = jnp.float32

  def setup(self):
    self.kernel = layers.param_with_axes("kernel", nn.initializers.normal(stddev=0.02),
                                         (self.features, self.vocab_size), self.param_dtype,
                                         axes=("embed", "vocab"))
    self.bias = (layers.param_with_axes("bias", nn.initializers.zeros, (self.vocab_size,),
                                        self.param_dtype, axes=("vocab",))
                 if self.use_bias else None)

  def __call__(self) -> Tuple[Array, Optional[Array]]:
    return self.kernel, self.bias


class Decoder(nn.Module):
  """Decoder-only LM trunk. Families set `block_cls`, `final_norm_name` and `make_norm`.

  Masking follows t5x: without `decoder_target_tokens` attention is purely causal; with
  them, keys whose target is 0 are masked; `decoder_segment_ids` and `decoder_positions`
  describe packed sequences; `decoder_causal_attention` (1 on an inputs prefix) makes the
  prefix bidirectional. The only dropout is LoRA's (`lora_dropout`, on the adapters'
  inputs), which `enable_dropout` turns on (it then needs a 'dropout' rng, as t5x's
  training step passes); `max_decode_length` is accepted for t5x (the cache length is fixed when
  the cache is created).
  """
  config: DecoderConfig

  block_cls: ClassVar[type]
  final_norm_name: ClassVar[str]
  head_bias: ClassVar[bool] = False

  def make_norm(self, name: str) -> nn.Module:
    raise NotImplementedError

  def tie_embeddings(self) -> bool:
    return False

  @property
  def scan_layers(self) -> bool:
    """Read by t5x (the cache's batch axis is 1 when layers are scanned)."""
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
               prefill_lengths: Optional[Array] = None,
               decode_lengths: Optional[Array] = None,
               output: str = "logits",
               output_positions: Optional[Array] = None,
               output_tokens: Optional[Array] = None,
               chunk_size: int = 128) -> Array:
    del max_decode_length
    cfg = self.config
    if decode and prefill:
      raise ValueError("decode and prefill cannot both be set")
    if prefill and prefill_lengths is None:
      raise ValueError("prefill=True needs prefill_lengths [batch]")
    if output not in OUTPUTS:
      raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if (output == "log_probs") != (output_tokens is not None):
      raise ValueError("output='log_probs' needs output_tokens, and only it takes them")
    if decode_lengths is not None and not decode:
      raise ValueError("decode_lengths is for decode (extend) steps")
    tokens, positions, mask = layers.decoder_inputs(
        decoder_input_tokens, decoder_target_tokens, decoder_segment_ids, decoder_positions,
        decoder_causal_attention, decode)  # [b, l], [b, l], [b, 1, l, l] or None
    batch, length = tokens.shape
    if decode and (length > 1 or decode_lengths is not None):
      # t5x's own one-token steps are exempt: its sampling loop keeps stepping rows that
      # have finished until every row has, and relies on their writes past the end being
      # dropped. Extend steps (the project's API) are checked.
      self._check_cache_room(length, decode_lengths)

    embedder = layers.Embed(cfg.vocab_size, cfg.d_model, dtype=cfg.jnp_dtype,
                            param_dtype=cfg.jnp_param_dtype, name="token_embedder")
    x = embedder(tokens)  # [batch, length, embed]
    x = layers.with_sharding_constraint(x, ("batch", "length", "embed"))
    x = layers.run_layer_stack(
        self.block_cls,
        dict(config=cfg, decode=decode, prefill=prefill, deterministic=not enable_dropout),
        cfg.num_layers,
        cfg.scan_layers, cfg.remat_policy, x, positions, mask, prefill_lengths,
        decode_lengths)  # [batch, length, embed]
    x = self.make_norm(self.final_norm_name)(x)  # [batch, length, embed]

    if output_positions is not None:
      x = jnp.take_along_axis(x, output_positions.astype(jnp.int32)[..., None], axis=1)
    if self.tie_embeddings():
      kernel, bias = embedder.embedding.T, None  # [embed, vocab]
    else:
      kernel, bias = OutputHead(cfg.vocab_size, cfg.d_model, self.head_bias,
                                param_dtype=cfg.jnp_param_dtype, name="lm_head")()
    if output == "hidden":
      return x  # [batch, positions, embed]
    if output == "log_probs":
      if output_tokens.shape != x.shape[:2]:
        raise ValueError(f"output_tokens {output_tokens.shape} must be [batch, positions] "
                         f"= {x.shape[:2]}")
      return token_log_probs(x, output_tokens, kernel, bias, cfg.jnp_dtype, chunk_size)
    logits = project_logits(x, kernel, bias, cfg.jnp_dtype)  # [batch, positions, vocab]
    return layers.with_sharding_constraint(logits, ("batch", "length", "vocab"))

  def _check_cache_room(self, length: int, decode_lengths: Optional[Array]) -> None:
    """Raises when a decode/extend step would write past the end of the cache."""
    cache = self.variables.get("cache", {})
    cached_key = _cache_leaf(cache, "cached_key")
    index = _cache_leaf(cache, "cache_index")
    if cached_key is None:
      return  # the cache-creating call
    layer_axis = 1 if self.config.scan_layers else 0
    cache_length = cached_key.shape[layer_axis + 1]
    if length > cache_length:
      raise ValueError(f"KV cache overflow: {length} new tokens per row exceed the cache "
                       f"length {cache_length}")
    if self.config.scan_layers:
      index = index[0]
    lengths = (jnp.full(index.shape, length, jnp.int32) if decode_lengths is None
               else decode_lengths.astype(jnp.int32))
    # A row given 0 tokens writes nothing, so it cannot overflow (t5x's loop keeps stepping
    # finished rows past the end; an extend leaves them at 0).
    overflow = (lengths > 0) & (index + lengths > cache_length)
    jax.debug.callback(_raise_cache_overflow, overflow, index, lengths, cache_length)


def count_params(module: Decoder) -> int:
  """Parameters of a network, from shapes only (nothing is allocated)."""
  tokens = jax.ShapeDtypeStruct((1, 1), jnp.int32)
  shapes = jax.eval_shape(lambda t: module.init(jax.random.PRNGKey(0), t), tokens)
  return sum(int(x.size) for x in jax.tree.leaves(shapes["params"]))
