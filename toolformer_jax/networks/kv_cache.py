"""KV-cache operations on t5x's cache protocol: create, prefill, fork, extend.

Annotation and tool-use decoding encode a shared prefix (prompt + document) once and
continue many rows from their own points of it:

  cache = init_cache(module, params, batch=1, length=L)          # zeros, full length L
  hidden, cache = prefill(module, params, cache, prefix_ids, [n])  # slots 0..n-1
  cache = fork(module, cache, rows=[0, 0, 0], index=[i0, i1, i2])  # 3 rows of the prefix,
                                                                   # row r resumes at i_r
  logits, cache = extend(module, params, cache, new_ids [3, m], lengths)  # m tokens per row

Rows resume at `index[r]` <= the prefilled length: slots from there on are overwritten by
the row's next tokens and never seen before that (attention reads slots < the row's
position only). `module` is a `networks.decoder.Decoder` (GPTJ, Llama); every function is
pure and jittable (wrap them in jax.jit with the module and static sizes closed over).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import jax
import jax.numpy as jnp

Array = jax.Array
Cache = Any


def batch_axis(module) -> int:
  """The cache's batch axis: 1 when layers are scanned (a leading layers axis), else 0."""
  return 1 if module.scan_layers else 0


def init_cache(module, params, batch: int, length: int) -> Cache:
  """A zero cache for `batch` rows of `length` slots (t5x's cache-creating call)."""
  ones = jnp.ones((batch, length), jnp.int32)
  _, variables = module.apply({"params": params}, ones, ones, enable_dropout=False,
                              decode=True, mutable=["cache"])
  return variables["cache"]


def prefill(module, params, cache: Cache, tokens: Array, lengths: Array, *,
            output: str = "hidden", **output_kwargs) -> Tuple[Array, Cache]:
  """Runs `tokens` [batch, n] (n <= cache length) causally and stores the first
  `lengths[b]` keys/values of each row in slots 0.. of `cache`; `cache_index = lengths`.

  Returns the network's `output` for the prefix (hidden states by default; see
  `Decoder` for `output_positions` / `output_tokens`) and the new cache.
  """
  out, variables = module.apply({"params": params, "cache": cache}, tokens,
                                enable_dropout=False, prefill=True,
                                prefill_lengths=jnp.asarray(lengths, jnp.int32),
                                output=output, mutable=["cache"], **output_kwargs)
  return out, variables["cache"]


def cache_index(module, cache: Cache) -> Array:
  """Each row's next write slot [batch]."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(cache):
    if getattr(path[-1], "key", None) == "cache_index":
      return leaf[0] if module.scan_layers else leaf
  raise ValueError("not a KV cache: no cache_index leaf")


def fork(module, cache: Cache, rows: Array, index: Optional[Array] = None) -> Cache:
  """A cache whose row r is row `rows[r]` of `cache`, resuming at slot `index[r]`.

  rows: [new_batch] int; index: [new_batch] int (default: the source rows' own index).
  """
  axis = batch_axis(module)
  rows = jnp.asarray(rows, jnp.int32)
  forked = jax.tree.map(lambda leaf: jnp.take(leaf, rows, axis=axis), cache)
  if index is None:
    return forked
  return set_index(module, forked, index)


def set_index(module, cache: Cache, index: Array) -> Cache:
  """`cache` with every layer's `cache_index` set to `index` [batch]."""
  index = jnp.asarray(index, jnp.int32)

  def replace(path, leaf):
    if getattr(path[-1], "key", None) != "cache_index":
      return leaf
    if index.shape != leaf.shape[batch_axis(module):]:
      raise ValueError(f"index {index.shape} does not match the cache's batch "
                       f"{leaf.shape[batch_axis(module):]}")
    return jnp.broadcast_to(index, leaf.shape)

  return jax.tree_util.tree_map_with_path(replace, cache)


def extend(module, params, cache: Cache, tokens: Array, lengths: Optional[Array] = None, *,
           output: str = "logits", **output_kwargs) -> Tuple[Array, Cache]:
  """Appends `tokens` [batch, m] at each row's `cache_index` in one call.

  Row b takes its first `lengths[b]` tokens (default m; 0 leaves the row unchanged) and
  advances its index by that much; outputs at the other positions are meaningless.
  Positions are the rows' own (index + 0, 1, ...). Raises if a row would write past
  the end of the cache. Returns the network's `output` ([batch, m, vocab] logits by
  default) and the new cache.
  """
  if lengths is not None:
    lengths = jnp.asarray(lengths, jnp.int32)
  else:
    lengths = jnp.full((tokens.shape[0],), tokens.shape[1], jnp.int32)
  out, variables = module.apply({"params": params, "cache": cache}, tokens,
                                enable_dropout=False, decode=True, decode_lengths=lengths,
                                output=output, mutable=["cache"], **output_kwargs)
  return out, variables["cache"]
