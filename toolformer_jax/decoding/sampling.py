"""The sampling math of tool-use decoding, with t5x's temperature_sample semantics.

Top-k / top-p masks, one sampling step (`sample`: temperature, the greedy switch below
MIN_TEMPERATURE, per-example temperatures), the log-probability of a forced token, and the
cache layout helpers for num_decodes > 1 (rows expanded as t5x's
`cache_map(flat_batch_beam_expand)` does). Pure jax; no t5x import.
"""
from __future__ import annotations

from typing import Any, Tuple, Union

import flax
from flax import traverse_util
import jax
from jax import lax
from jax import random
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# temperature_sample's constants (t5x.decoding), so that the masks and the greedy switch
# behave identically.
NEG_INF = np.array(-1.0e7)
MIN_TEMPERATURE = np.array(1e-4)


def is_tracer(value: Any) -> bool:
  return isinstance(value, jax.core.Tracer)


# ---------------------------------------------------------------------------- sampling
def topk_mask(x: Array, k: Union[int, Array]) -> Array:
  """Keeps the values >= the k-th largest per row (ties may keep more), others NEG_INF."""
  if is_tracer(k):
    kth = jnp.take(jnp.sort(x, axis=-1)[..., ::-1], jnp.maximum(k, 1) - 1, axis=-1)[..., None]
  else:
    kth = lax.top_k(x, int(k))[0][..., -1:]
  return jnp.where(x >= kth, x, jnp.full_like(x, NEG_INF))


def topp_mask(logits: Array, p: Union[float, Array]) -> Array:
  """Keeps the smallest set of most likely values whose probability mass is >= p."""
  probs = jax.nn.softmax(logits, axis=-1)
  ordered = jnp.sort(probs, axis=-1)[..., ::-1]
  mass = jnp.cumsum(ordered, axis=-1)
  last = jnp.minimum(jnp.sum(mass < p, axis=-1, keepdims=True), probs.shape[-1] - 1)
  threshold = jnp.take_along_axis(ordered, last, axis=-1)
  return jnp.where(probs >= threshold, logits, jnp.full_like(logits, NEG_INF))


def sample(logits: Array, rng: Array, temperature: Array, topk, topp, rescale: bool,
           num_decodes: int) -> Tuple[Array, Array]:
  """One sampling step with temperature_sample's semantics: (tokens [b], log probs [b])."""

  def nonzero(logits, temperature):
    scaled = logits / jnp.maximum(temperature, MIN_TEMPERATURE)
    if is_tracer(topk) or topk:
      scaled = lax.cond(topk > 0, lambda: topk_mask(scaled, topk), lambda: scaled)
    if is_tracer(topp) or topp:
      scaled = topp_mask(scaled, topp)
    token = random.categorical(rng, scaled).astype(jnp.int32)
    log_probs = jax.nn.log_softmax(scaled if rescale else logits)
    return token, jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]

  def zero(logits, temperature):
    del temperature
    token = jnp.argmax(logits, -1).astype(jnp.int32)
    if rescale:
      return token, jnp.zeros_like(token, dtype=jnp.float32)
    log_probs = jax.nn.log_softmax(logits)
    return token, jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]

  if temperature.ndim == 1:  # one temperature per example
    def per_row(row_logits, row_temperature):
      return lax.cond(row_temperature > MIN_TEMPERATURE, nonzero, zero, row_logits[None],
                      row_temperature)

    token, log_prob = jax.vmap(per_row)(logits, jnp.repeat(temperature, num_decodes))
    return token[:, 0], log_prob[:, 0]
  return lax.cond(temperature > MIN_TEMPERATURE, nonzero, zero, logits, temperature)


def forced_log_prob(logits: Array, token_id: int, temperature: Array, rescale: bool,
                    num_decodes: int) -> Array:
  """The log-probability a forced token adds to the score (masks aside)."""
  if not rescale:
    return jax.nn.log_softmax(logits)[:, token_id]
  temps = (jnp.repeat(temperature, num_decodes) if temperature.ndim == 1
           else jnp.broadcast_to(temperature, logits.shape[:1]))
  scaled = jax.nn.log_softmax(logits / jnp.maximum(temps, MIN_TEMPERATURE)[:, None])
  return jnp.where(temps > MIN_TEMPERATURE, scaled[:, token_id], 0.0)


# ------------------------------------------------------------------------ cache layout
def expand_rows(x: Array, n: int, offset: int = 0) -> Array:
  """Repeats every row n times along axis `offset` (row r -> rows r*n .. r*n+n-1)."""
  return jnp.repeat(x, n, axis=offset)


def expand_cache(cache: Any, n: int, offset: int, include_index: bool) -> Any:
  """The cache for num_decodes = n, as t5x's `cache_map(flat_batch_beam_expand)` builds it."""
  frozen = isinstance(cache, flax.core.FrozenDict)
  flat = traverse_util.flatten_dict(flax.core.unfreeze(cache) if frozen else cache)
  skip = {"cached_bias", "position_embedder_index"}
  if not include_index:
    skip.add("cache_index")
  flat = {k: (v if k[-1] in skip else expand_rows(v, n, offset)) for k, v in flat.items()}
  out = traverse_util.unflatten_dict(flat)
  return flax.core.freeze(out) if frozen else out


def like(cache: Any, reference: Any) -> Any:
  """`cache` frozen exactly when `reference` is (lax.cond branches must agree)."""
  if isinstance(reference, flax.core.FrozenDict):
    return flax.core.freeze(cache)
  return flax.core.unfreeze(cache) if isinstance(cache, flax.core.FrozenDict) else cache
