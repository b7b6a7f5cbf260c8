"""LoRA (Hu et al. 2021, arXiv 2106.09685) on the project's networks: adapters as a config.

An adapted network is the same network with `lora_rank` r > 0 in its config
(`decoder.DecoderConfig`): every targeted projection (`lora_targets`: query, key, value,
out, mlp_in, mlp_out) computes `x W + (alpha / r) x A B` with its frozen kernel W
[inputs..., outputs...], A = `lora_a` [inputs..., r] (random) and B = `lora_b`
[r, outputs...] (zero), so at initialisation it is exactly its base. The adapters carry
the kernel's logical axis names plus `lora_rank` (replicated) and shard with their kernel.

This module holds what works on such networks and their parameter trees, without t5x:

  adapt(network, rank, ...)   the network with adapters (gin/models/lora.gin binds it)
  is_adapter(path)            whether a parameter path names an adapter
  param_labels(params)        'adapter' / 'frozen' per leaf (optax.multi_transform labels)
  split / combine             params <-> (frozen base params, adapters)
  merge(params, alpha)        W + (alpha / r) A B folded into every kernel, adapters gone:
                              the plain network's params (no adapter code needed to use them)
  merged_network(network)     the plain network the merged params belong to

Parameter trees are nested dicts (or FrozenDicts); paths are tuples of keys.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Any, Mapping, Optional, Sequence, Tuple

from flax import traverse_util
import jax
import numpy as np

from toolformer_jax.networks import decoder

ADAPTER_NAMES = ("lora_a", "lora_b")
ADAPTER = "adapter"
FROZEN = "frozen"


def adapt(network: decoder.Decoder, rank: int, alpha: float = 16.0, dropout: float = 0.0,
          targets: Sequence[str] = decoder.LORA_TARGETS,
          param_dtype: str = "float32") -> decoder.Decoder:
  """`network` with LoRA adapters of `rank` on `targets` (its config validates them)."""
  if not isinstance(network, decoder.Decoder):
    raise TypeError(f"adapt needs a toolformer_jax decoder network, got {type(network)!r}")
  config = dataclasses.replace(network.config, lora_rank=rank, lora_alpha=alpha,
                               lora_dropout=dropout, lora_targets=tuple(targets),
                               lora_param_dtype=param_dtype)
  return network.clone(config=config)


def merged_network(network: decoder.Decoder) -> decoder.Decoder:
  """The plain network (lora_rank 0) whose params `merge` of `network`'s params gives."""
  return network.clone(config=dataclasses.replace(network.config, lora_rank=0))


def _key_name(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def is_adapter(path: Sequence[Any]) -> bool:
  """Whether a parameter path (dict keys or jax key-path entries) ends in an adapter."""
  return bool(path) and _key_name(path[-1]) in ADAPTER_NAMES


def _flat(params: Mapping[str, Any]) -> dict:
  return dict(traverse_util.flatten_dict(params))


def has_adapters(params: Mapping[str, Any]) -> bool:
  return any(is_adapter(path) for path in _flat(params))


def param_labels(params: Any) -> Any:
  """ADAPTER for every adapter leaf, FROZEN for the rest, in the structure of `params`.

  For `optax.multi_transform`; raises ValueError if `params` holds no adapter (a model
  without `lora_rank`), since training would then change nothing.
  """
  labels = jax.tree_util.tree_map_with_path(
      lambda path, _: ADAPTER if is_adapter(path) else FROZEN, params)
  if ADAPTER not in jax.tree.leaves(labels):
    raise ValueError("no LoRA adapters (lora_a/lora_b) in the parameters: the adapters-only "
                     "optimizer needs a network with lora_rank > 0 (gin/models/lora.gin)")
  return labels


def split(params: Mapping[str, Any]) -> Tuple[dict, dict]:
  """(frozen base params, adapters) as two nested dicts."""
  flat = _flat(params)
  frozen = {k: v for k, v in flat.items() if not is_adapter(k)}
  adapters = {k: v for k, v in flat.items() if is_adapter(k)}
  return traverse_util.unflatten_dict(frozen), traverse_util.unflatten_dict(adapters)


def combine(frozen: Mapping[str, Any], adapters: Mapping[str, Any]) -> dict:
  """Inverse of `split` (raises on a path in both)."""
  flat, extra = _flat(frozen), _flat(adapters)
  both = sorted("/".join(k) for k in set(flat) & set(extra))
  if both:
    raise ValueError(f"paths in both trees: {both[:5]}")
  flat.update(extra)
  return traverse_util.unflatten_dict(flat)


def adapter_rank(params: Mapping[str, Any]) -> int:
  """The rank r of the adapters in `params` (all the same), 0 when there are none."""
  ranks = {tuple(np.shape(v))[-1] for k, v in _flat(params).items() if k[-1] == "lora_a"}
  if len(ranks) > 1:
    raise ValueError(f"adapters of different ranks {sorted(ranks)} in one tree")
  return ranks.pop() if ranks else 0


def merge_kernel(kernel: Any, a: Any, b: Any, scale: float) -> np.ndarray:
  """kernel + scale * A B, contracting the rank axis; computed in float32, kernel's dtype out.

  kernel [L..., inputs..., outputs...], a [L..., inputs..., r], b [L..., r, outputs...],
  where L... are leading axes shared by all three (the `layers` axis of scanned layers).
  """
  kernel, a, b = np.asarray(kernel), np.asarray(a), np.asarray(b)
  lead = a.ndim + b.ndim - 2 - kernel.ndim
  n_in = a.ndim - lead - 1
  n_out = b.ndim - lead - 1
  if lead < 0 or n_in < 1 or n_out < 1 or a.shape[-1] != b.shape[lead]:
    raise ValueError(f"adapter shapes A {a.shape}, B {b.shape} do not fit kernel "
                     f"{kernel.shape}")
  letters = iter(string.ascii_letters)
  lead_s = "".join(next(letters) for _ in range(lead))
  in_s = "".join(next(letters) for _ in range(n_in))
  out_s = "".join(next(letters) for _ in range(n_out))
  rank_s = next(letters)
  delta = np.einsum(f"{lead_s}{in_s}{rank_s},{lead_s}{rank_s}{out_s}->{lead_s}{in_s}{out_s}",
                    a.astype(np.float32), b.astype(np.float32))
  if delta.shape != kernel.shape:
    raise ValueError(f"A B has shape {delta.shape}, kernel {kernel.shape}")
  merged = kernel.astype(np.float32) + np.float32(scale) * delta
  return merged.astype(kernel.dtype)


def merge(params: Mapping[str, Any], alpha: float, rank: Optional[int] = None) -> dict:
  """Plain params with W + (alpha / r) A B in every adapted kernel and no adapters.

  `rank` (optional) is checked against the adapters' shapes. Raises ValueError when
  `params` holds no adapters or an adapter without its kernel.
  """
  found = adapter_rank(params)
  if found == 0:
    raise ValueError("no LoRA adapters (lora_a/lora_b) to merge in these parameters")
  if rank is not None and rank != found:
    raise ValueError(f"adapters have rank {found}, the config says {rank}")
  scale = float(alpha) / found
  flat = _flat(params)
  out = {k: np.asarray(v) for k, v in flat.items() if not is_adapter(k)}
  owners = sorted({k[:-1] for k in flat if is_adapter(k)})
  for owner in owners:
    parts = {name: flat.get(owner + (name,)) for name in ("kernel",) + ADAPTER_NAMES}
    missing = [name for name, v in parts.items() if v is None]
    if missing:
      raise ValueError(f"{'/'.join(owner)} lacks {missing} for a merge")
    out[owner + ("kernel",)] = merge_kernel(parts["kernel"], parts["lora_a"], parts["lora_b"],
                                            scale)
  return traverse_util.unflatten_dict(out)


def count(params: Mapping[str, Any]) -> Tuple[int, int]:
  """(adapter parameters, frozen parameters) of a tree (arrays or shape structs)."""
  adapters = frozen = 0
  for k, v in _flat(params).items():
    size = int(np.prod(np.shape(v)))
    if is_adapter(k):
      adapters += size
    else:
      frozen += size
  return adapters, frozen
