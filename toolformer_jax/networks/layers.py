"""Building blocks shared by the project's decoder networks (GPT-J, LLaMA/SmolLM2).

Every parameter is created with `flax.linen.partitioning.param_with_axes`, so a
`params_axes` collection names its logical axes; t5x's partitioner maps those names to the
mesh (see `toolformer_jax.partitioning`). Logical axis names used here:

  vocab, embed, mlp, heads, kv_heads, kv, layers  (parameters)
  lora_rank                                       (LoRA adapters' low-rank axis: replicated)
  batch, length, heads, kv                        (activations)

The attention layer follows t5x's decoding protocol:
  * `decode=True` on a fresh module (no `cache` collection yet) creates a full-length
    cache `cached_key/cached_value: [batch, max_length, kv_heads, head_dim]` and
    `cache_index: [batch]` and otherwise runs an ordinary forward pass;
  * `prefill=True, prefill_lengths=[batch]` runs the prompt in parallel, stores its keys
    and values and sets `cache_index = prefill_lengths` (positions from there on are
    recomputed by the decode steps);
  * `decode=True` with an existing cache runs one token per example (t5x's decode step)
    or n tokens per example (an extend step; `decode_lengths[b]` of them real) from
    position `cache_index[b]` on, writes their keys/values there and advances the index;
  * a prefill shorter than the cache fills its first slots (a shared prefix that is
    then forked and extended, see `kv_cache`).
The batch axis leads every cache leaf, so t5x can tile it for `num_decodes > 1`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence, Tuple

import flax.linen as nn
from flax.linen import partitioning
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
DType = Any
Initializer = Callable[..., Array]

param_with_axes = partitioning.param_with_axes
with_sharding_constraint = partitioning.with_sharding_constraint

_MASK_VALUE = -1e30  # added to masked attention logits (computed in float32)


def _normalize_axes(axes: Sequence[int], ndim: int) -> Tuple[int, ...]:
  return tuple(a if a >= 0 else ndim + a for a in axes)


LORA_AXIS = "lora_rank"  # logical name of the adapters' low-rank axis (replicated)


@dataclasses.dataclass(frozen=True)
class LoraSpec:
  """A LoRA adapter (Hu et al. 2021) on a projection: `y = x W + (alpha / rank) x A B`.

  A (`lora_a`, [inputs..., rank]) starts random (normal, stddev 1/sqrt(fan_in)) and B
  (`lora_b`, [rank, outputs...]) at zero, so an adapted network starts as its base.
  `dropout` applies to the adapter's input only (when dropout is enabled); the adapters
  are stored in `param_dtype` whatever the base kernel's dtype.
  """
  rank: int
  alpha: float
  dropout: float = 0.0
  param_dtype: DType = jnp.float32

  @property
  def scale(self) -> float:
    return self.alpha / self.rank


def lora_a_init(fan_in_axes: Tuple[int, ...]) -> Initializer:
  """normal(0, 1/fan_in) over the input axes of A (the leading ones)."""
  def init(key, shape, dtype=jnp.float32):
    fan_in = int(np.prod([shape[a] for a in fan_in_axes]))
    return (jax.random.normal(key, shape, jnp.float32) / np.sqrt(fan_in)).astype(dtype)
  return init


class DenseGeneral(nn.Module):
  """A linear map over one or more trailing input axes to one or more output axes.

  `kernel_axes` names every kernel dimension (input axes first, then outputs);
  `bias_axes` names the output dimensions. With `lora` the map gains a low-rank adapter
  (`LoraSpec`): `lora_a` [inputs..., rank] with the kernel's input axis names and
  `lora_b` [rank, outputs...] with its output axis names, the rank axis named
  `LORA_AXIS`, so adapters shard like their kernel. `deterministic=False` enables the
  adapter's dropout (it needs a 'dropout' rng).
  """
  features: Tuple[int, ...]
  kernel_axes: Tuple[str, ...]
  axis: Tuple[int, ...] = (-1,)
  use_bias: bool = False
  bias_axes: Tuple[str, ...] = ()
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32
  kernel_init: Initializer = nn.initializers.normal(stddev=0.02)
  lora: Optional[LoraSpec] = None

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    features = tuple(self.features)
    axis = _normalize_axes(self.axis, x.ndim)
    in_shape = tuple(x.shape[a] for a in axis)
    if len(self.kernel_axes) != len(in_shape) + len(features):
      raise ValueError(f"kernel_axes {self.kernel_axes} do not match kernel rank "
                       f"{len(in_shape) + len(features)}")
    kernel = param_with_axes("kernel", self.kernel_init, in_shape + features,
                             self.param_dtype, axes=tuple(self.kernel_axes))
    kernel = kernel.astype(self.dtype)
    contract = (axis, tuple(range(len(axis))))
    y = jax.lax.dot_general(x.astype(self.dtype), kernel, (contract, ((), ())))
    if self.lora is not None:
      y = y + self._adapter(x, axis, in_shape, features, deterministic)
    if self.use_bias:
      if len(self.bias_axes) != len(features):
        raise ValueError(f"bias_axes {self.bias_axes} do not match features {features}")
      bias = param_with_axes("bias", nn.initializers.zeros, features, self.param_dtype,
                             axes=tuple(self.bias_axes))
      y = y + bias.astype(self.dtype)
    return y

  def _adapter(self, x: Array, axis: Tuple[int, ...], in_shape: Tuple[int, ...],
               features: Tuple[int, ...], deterministic: bool) -> Array:
    """(alpha / rank) * dropout(x) A B: [..., outputs...]."""
    spec, n_in = self.lora, len(in_shape)
    a = param_with_axes("lora_a", lora_a_init(tuple(range(n_in))), in_shape + (spec.rank,),
                        spec.param_dtype, axes=tuple(self.kernel_axes[:n_in]) + (LORA_AXIS,))
    b = param_with_axes("lora_b", nn.initializers.zeros, (spec.rank,) + features,
                        spec.param_dtype, axes=(LORA_AXIS,) + tuple(self.kernel_axes[n_in:]))
    if spec.dropout > 0:
      x = nn.Dropout(rate=spec.dropout, name="lora_dropout")(x, deterministic=deterministic)
    contract = (axis, tuple(range(n_in)))
    low = jax.lax.dot_general(x.astype(self.dtype), a.astype(self.dtype),
                              (contract, ((), ())))  # [..., rank] (x's other axes first)
    delta = jax.lax.dot_general(low, b.astype(self.dtype),
                                (((low.ndim - 1,), (0,)), ((), ())))  # [..., outputs...]
    return delta * jnp.asarray(spec.scale, self.dtype)


class Embed(nn.Module):
  """Token embedding table `[vocab, embed]` (also the tied output head's kernel)."""
  num_embeddings: int
  features: int
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32
  embedding_init: Initializer = nn.initializers.normal(stddev=0.02)

  def setup(self):
    self.embedding = param_with_axes("embedding", self.embedding_init,
                                     (self.num_embeddings, self.features), self.param_dtype,
                                     axes=("vocab", "embed"))

  def __call__(self, token_ids: Array) -> Array:
    # [batch, length] -> [batch, length, embed]
    return jnp.take(self.embedding, token_ids, axis=0).astype(self.dtype)


class LayerNorm(nn.Module):
  """LayerNorm with scale and bias over `embed`, statistics in float32."""
  epsilon: float = 1e-5
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    features = x.shape[-1]
    scale = param_with_axes("scale", nn.initializers.ones, (features,), self.param_dtype,
                            axes=("embed",))
    bias = param_with_axes("bias", nn.initializers.zeros, (features,), self.param_dtype,
                           axes=("embed",))
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon)
    return (y * scale.astype(jnp.float32) + bias.astype(jnp.float32)).astype(self.dtype)


class RMSNorm(nn.Module):
  """RMSNorm with a scale over `embed`, statistics in float32."""
  epsilon: float = 1e-5
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    features = x.shape[-1]
    scale = param_with_axes("scale", nn.initializers.ones, (features,), self.param_dtype,
                            axes=("embed",))
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.epsilon)
    return (y * scale.astype(jnp.float32)).astype(self.dtype)


# ----------------------------------------------------------------------------- rotary


def rotary_angles(positions: Array, rotary_dim: int, base: float) -> Array:
  """Angles `positions * base^(-2i/rotary_dim)`: [batch, length] -> [batch, length, rotary_dim/2]."""
  inv_freq = 1.0 / (base ** (np.arange(0, rotary_dim, 2, dtype=np.float32) / rotary_dim))
  return positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)


def apply_rotary(x: Array, positions: Array, rotary_dim: int, base: float,
                 interleaved: bool) -> Array:
  """Rotates the first `rotary_dim` features of every head.

  interleaved=True pairs features (0,1), (2,3), ... (GPT-J's rotate_every_two);
  interleaved=False pairs feature i with i + rotary_dim/2 (LLaMA/NeoX rotate_half).
  x: [batch, length, heads, head_dim]; positions: [batch, length].
  """
  angles = rotary_angles(positions, rotary_dim, base)[:, :, None, :]  # [b, l, 1, r/2]
  sin, cos = jnp.sin(angles), jnp.cos(angles)
  x_rot, x_pass = x[..., :rotary_dim].astype(jnp.float32), x[..., rotary_dim:]
  if interleaved:
    x1, x2 = x_rot[..., 0::2], x_rot[..., 1::2]  # [b, l, h, r/2]
    y1 = x1 * cos - x2 * sin
    y2 = x2 * cos + x1 * sin
    y = jnp.stack([y1, y2], axis=-1).reshape(x_rot.shape)
  else:
    half = rotary_dim // 2
    x1, x2 = x_rot[..., :half], x_rot[..., half:]
    y = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return jnp.concatenate([y.astype(x.dtype), x_pass], axis=-1)


# ----------------------------------------------------------------------------- masks


def make_attention_mask(length: int,
                        segment_ids: Optional[Array] = None,
                        key_valid: Optional[Array] = None,
                        bidirectional: Optional[Array] = None,
                        batch: int = 1) -> Array:
  """Boolean attention mask [batch, 1, q_length, kv_length] for a full-sequence pass.

  Causal, restricted to equal segment ids (packing) and to valid keys; `bidirectional`
  ([batch, length], 1 on a prefix) lets prefix positions see each other (prefix LM).
  """
  idx = jnp.arange(length)
  mask = (idx[:, None] >= idx[None, :])[None, None]  # [1, 1, q, k]
  if bidirectional is not None:
    prefix = bidirectional.astype(bool)
    mask = mask | (prefix[:, None, :, None] & prefix[:, None, None, :])
  if segment_ids is not None:
    mask = mask & (segment_ids[:, None, :, None] == segment_ids[:, None, None, :])
  if key_valid is not None:
    mask = mask & key_valid.astype(bool)[:, None, None, :]
  return jnp.broadcast_to(mask, (mask.shape[0] if mask.shape[0] > 1 else batch, 1, length,
                                 length))


def dot_product_attention(query: Array, key: Array, value: Array, mask: Array,
                          dtype: DType) -> Array:
  """Grouped-query attention with float32 logits and softmax.

  query: [batch, q_len, heads, head_dim]; key/value: [batch, kv_len, kv_heads, head_dim];
  mask: boolean, broadcastable to [batch, 1, q_len, kv_len]. Returns [batch, q_len, heads,
  head_dim].
  """
  b, q_len, heads, head_dim = query.shape
  kv_heads = key.shape[2]
  groups = heads // kv_heads
  q = query.astype(jnp.float32).reshape(b, q_len, kv_heads, groups, head_dim)
  q = q * (1.0 / np.sqrt(head_dim))
  logits = jnp.einsum("bqhgd,bkhd->bhgqk", q, key.astype(jnp.float32))  # [b, kvh, g, q, k]
  logits = jnp.where(mask[:, :, None], logits, _MASK_VALUE)
  weights = jax.nn.softmax(logits, axis=-1).astype(dtype)
  out = jnp.einsum("bhgqk,bkhd->bqhgd", weights, value.astype(dtype))
  return out.reshape(b, q_len, heads, head_dim)


# ----------------------------------------------------------------------------- attention


@dataclasses.dataclass(frozen=True)
class AttentionSpec:
  """Static shape of a self-attention layer."""
  num_heads: int
  num_kv_heads: int
  head_dim: int
  rotary_dim: int
  rotary_base: float
  rotary_interleaved: bool
  use_bias: bool = False


class SelfAttention(nn.Module):
  """Causal self-attention with rotary positions and t5x's KV-cache protocol.

  `lora` adds an adapter to each projection named in `lora_targets` (query, key, value,
  out); `deterministic=False` enables the adapters' dropout.
  """
  spec: AttentionSpec
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32
  kernel_init: Initializer = nn.initializers.normal(stddev=0.02)
  lora: Optional[LoraSpec] = None
  lora_targets: Tuple[str, ...] = ()

  def _proj(self, name: str, **kwargs) -> DenseGeneral:
    return DenseGeneral(use_bias=self.spec.use_bias, dtype=self.dtype,
                        param_dtype=self.param_dtype, kernel_init=self.kernel_init,
                        lora=self.lora if name in self.lora_targets else None, name=name,
                        **kwargs)

  @nn.compact
  def __call__(self, x: Array, positions: Array, mask: Optional[Array], *,
               decode: bool = False, prefill: bool = False,
               prefill_lengths: Optional[Array] = None,
               decode_lengths: Optional[Array] = None,
               deterministic: bool = True) -> Array:
    s = self.spec
    query = self._proj("query", features=(s.num_heads, s.head_dim),
                       kernel_axes=("embed", "heads", "kv"), bias_axes=("heads", "kv"))(
                           x, deterministic)  # [b, l, heads, head_dim]
    key = self._proj("key", features=(s.num_kv_heads, s.head_dim),
                     kernel_axes=("embed", "kv_heads", "kv"), bias_axes=("kv_heads", "kv"))(
                         x, deterministic)  # [b, l, kv_heads, head_dim]
    value = self._proj("value", features=(s.num_kv_heads, s.head_dim),
                       kernel_axes=("embed", "kv_heads", "kv"),
                       bias_axes=("kv_heads", "kv"))(x, deterministic)  # [b, l, kv_heads, hd]
    query = with_sharding_constraint(query, ("batch", "length", "heads", "kv"))
    key = with_sharding_constraint(key, ("batch", "length", "kv_heads", "kv"))
    value = with_sharding_constraint(value, ("batch", "length", "kv_heads", "kv"))

    if prefill and decode:
      raise ValueError("prefill and decode cannot both be set")
    batch, length = x.shape[0], x.shape[1]
    cache_ready = self.has_variable("cache", "cached_key")
    if decode or prefill:
      cache_shape = (batch, length, s.num_kv_heads, s.head_dim)
      cached_key = self.variable("cache", "cached_key", jnp.zeros, cache_shape, key.dtype)
      cached_value = self.variable("cache", "cached_value", jnp.zeros, cache_shape,
                                   value.dtype)
      cache_index = self.variable("cache", "cache_index", jnp.zeros, (batch,), jnp.int32)

    if decode and cache_ready:
      # Extend: `length` new tokens per row (one in t5x's decode steps), the first
      # `decode_lengths[b]` of them real, at positions cache_index[b], cache_index[b] + 1...
      index = cache_index.value  # [b]
      lengths = (jnp.full((batch,), length, jnp.int32) if decode_lengths is None
                 else decode_lengths.astype(jnp.int32))  # [b]
      positions = index[:, None] + jnp.arange(length, dtype=jnp.int32)[None, :]  # [b, l]
      query = apply_rotary(query, positions, s.rotary_dim, s.rotary_base,
                           s.rotary_interleaved)
      key = apply_rotary(key, positions, s.rotary_dim, s.rotary_base, s.rotary_interleaved)
      max_length = cached_key.value.shape[1]
      # Scatter only the real new tokens into their slots (a slot past the end, or a
      # padding token's, is dropped): the cache is updated in place when it is donated,
      # not rewritten (a full-cache select made a SmolLM2 one-token step of 32 rows 4x
      # slower on CPU).
      real = jnp.arange(length, dtype=jnp.int32)[None, :] < lengths[:, None]  # [b, l]
      slots = jnp.where(real, positions, max_length)  # [b, l]; max_length = dropped
      rows = jnp.broadcast_to(jnp.arange(batch, dtype=jnp.int32)[:, None], (batch, length))
      keys = cached_key.value.at[rows, slots].set(
          key.astype(cached_key.value.dtype), mode="drop")  # [b, L, kv_heads, head_dim]
      values = cached_value.value.at[rows, slots].set(
          value.astype(cached_value.value.dtype), mode="drop")
      cached_key.value, cached_value.value = keys, values
      cache_index.value = index + lengths
      # Token t of row b sees cache slots p <= index[b] + t.
      step_mask = (jnp.arange(max_length)[None, None, :]
                   <= positions[:, :, None])[:, None]  # [b, 1, l, L]
      out = dot_product_attention(query, keys, values, step_mask, self.dtype)
    else:
      query = apply_rotary(query, positions, s.rotary_dim, s.rotary_base,
                           s.rotary_interleaved)
      key = apply_rotary(key, positions, s.rotary_dim, s.rotary_base, s.rotary_interleaved)
      if prefill:
        if prefill_lengths is None:
          raise ValueError("prefill=True needs prefill_lengths [batch]")
        max_length = cached_key.value.shape[1]
        if length > max_length:
          raise ValueError(f"KV cache overflow: a {length}-token prefill exceeds the cache "
                           f"length {max_length}")
        keep = (jnp.arange(length)[None, :] < prefill_lengths[:, None])[:, :, None, None]
        pad = ((0, 0), (0, max_length - length), (0, 0), (0, 0))
        cached_key.value = jnp.pad(jnp.where(keep, key, 0).astype(cached_key.value.dtype), pad)
        cached_value.value = jnp.pad(jnp.where(keep, value, 0).astype(cached_value.value.dtype),
                                     pad)
        cache_index.value = prefill_lengths.astype(jnp.int32)
      if mask is None:  # e.g. the cache-creating call: plain causal attention
        mask = make_attention_mask(length, batch=batch)
      out = dot_product_attention(query, key, value, mask, self.dtype)

    out = with_sharding_constraint(out, ("batch", "length", "heads", "kv"))
    return self._proj("out", features=(x.shape[-1],), axis=(-2, -1),
                      kernel_axes=("heads", "kv", "embed"), bias_axes=("embed",))(
                          out, deterministic)


# ----------------------------------------------------------------------------- layer stack


REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "minimal": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


def check_remat_policy(name: str) -> None:
  if name not in REMAT_POLICIES:
    raise ValueError(f"unknown remat_policy {name!r}; choose one of {sorted(REMAT_POLICIES)}")


class _ScanAdapter(nn.Module):
  """Wraps a block `(x, *args) -> x` into the `(carry, *args) -> (carry, None)` scan form."""
  block_cls: Any
  block_kwargs: Any

  @nn.compact
  def __call__(self, x, *args):
    return self.block_cls(**dict(self.block_kwargs), name="block")(x, *args), None


def run_layer_stack(block_cls: type, block_kwargs: dict, num_layers: int, scan: bool,
                    remat_policy: str, x: Array, *args) -> Array:
  """Applies `num_layers` blocks, unrolled (`layers_0`, `layers_1`, ...) or with nn.scan.

  Must be called inside a compact module method. `args` are arrays (or None) shared by
  every layer. With `scan=True` parameters and cache gain a leading `layers` axis and live
  under `layers/block/...`.
  """
  check_remat_policy(remat_policy)
  policy = REMAT_POLICIES[remat_policy]
  cls = block_cls
  if remat_policy != "none":
    cls = nn.remat(block_cls, policy=policy, prevent_cse=not scan)
  if not scan:
    for i in range(num_layers):
      x = cls(**block_kwargs, name=f"layers_{i}")(x, *args)
    return x
  scanned = partitioning.scan_with_axes(
      _ScanAdapter,
      variable_axes={"params": 0, "cache": 0},
      split_rngs={"params": True, "dropout": True},
      in_axes=(nn.broadcast,) * len(args),
      length=num_layers,
      axis_name="layers",
  )
  frozen_kwargs = tuple(sorted(block_kwargs.items()))
  x, _ = scanned(block_cls=cls, block_kwargs=frozen_kwargs, name="layers")(x, *args)
  return x


def default_positions(batch: int, length: int) -> Array:
  return jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32)[None, :], (batch, length))


def stack_layer_params(params: dict, num_layers: int) -> dict:
  """Unrolled params (`layers_0` ... `layers_{n-1}`) -> the scanned layout (`layers/block`).

  Checkpoint importers build the unrolled layout; this converts it for
  `scan_layers=True` networks (leading `layers` axis on every per-layer leaf).
  """
  names = [f"layers_{i}" for i in range(num_layers)]
  missing = [n for n in names if n not in params]
  if missing:
    raise KeyError(f"missing per-layer params: {missing}")
  out = {k: v for k, v in params.items() if k not in names}
  out["layers"] = {"block": jax.tree.map(lambda *xs: np.stack(xs), *[params[n] for n in names])}
  return out


def unstack_layer_params(params: dict) -> dict:
  """The scanned layout (`layers/block`, leading layers axis) -> `layers_0` ... `layers_{n-1}`."""
  out = {k: v for k, v in params.items() if k != "layers"}
  block = params["layers"]["block"]
  num_layers = jax.tree.leaves(block)[0].shape[0]
  for i in range(num_layers):
    out[f"layers_{i}"] = jax.tree.map(lambda x, i=i: x[i], block)
  return out


def decoder_inputs(decoder_input_tokens: Array,
                   decoder_target_tokens: Optional[Array] = None,
                   decoder_segment_ids: Optional[Array] = None,
                   decoder_positions: Optional[Array] = None,
                   decoder_causal_attention: Optional[Array] = None,
                   decode: bool = False) -> Tuple[Array, Array, Optional[Array]]:
  """t5x's decoder features -> (token ids, positions, attention mask) for a network.

  Keys whose target is 0 are masked only when targets are given (t5x's convention; a
  plain `apply(params, tokens)` is purely causal). One-token decode steps take positions
  and the mask from the cache, so `mask` is None when `decode` is set.
  Returns tokens [batch, length] int32, positions [batch, length] int32 and a boolean mask
  [batch, 1, length, length] or None.
  """
  if decoder_input_tokens.ndim != 2:
    raise ValueError(f"decoder_input_tokens must be [batch, length], got shape "
                     f"{decoder_input_tokens.shape}")
  tokens = decoder_input_tokens.astype(jnp.int32)  # t5x initialises with float inputs
  batch, length = tokens.shape
  if decoder_positions is None:
    positions = default_positions(batch, length)
  else:
    positions = decoder_positions.astype(jnp.int32)
  if decode:
    return tokens, positions, None
  key_valid = None if decoder_target_tokens is None else decoder_target_tokens > 0
  mask = make_attention_mask(length, segment_ids=decoder_segment_ids, key_valid=key_valid,
                             bidirectional=decoder_causal_attention, batch=batch)
  return tokens, positions, mask
