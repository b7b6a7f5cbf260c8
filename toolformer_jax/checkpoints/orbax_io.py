"""Orbax save/restore of a params tree, restorable onto any mesh.

This is the project's own parameter format (what `python -m toolformer_jax.convert --to
orbax` writes). t5x training checkpoints are written and read by t5x itself.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp


def save_params(directory: str, params: Any, *, overwrite: bool = False) -> str:
  """Writes `params` (numpy or jax arrays, sharded or not) to `directory`; returns it."""
  directory = os.path.abspath(directory)
  if os.path.exists(directory) and not overwrite:
    raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it")
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(directory, params, force=overwrite)
  return directory


def restore_params(directory: str, shardings: Optional[Any] = None) -> Any:
  """Reads params saved by `save_params`.

  shardings: None -> numpy arrays on the host; a tree of `jax.sharding.Sharding` matching
  the saved tree (e.g. from `partitioning.param_shardings`) -> jax arrays laid out on that
  mesh, whatever mesh they were saved from.
  """
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no orbax checkpoint at {directory}")
  with ocp.StandardCheckpointer() as checkpointer:
    metadata = checkpointer.metadata(directory)
    tree = getattr(metadata, "item_metadata", metadata)
    tree = getattr(tree, "tree", tree)
    if shardings is None:
      target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), tree)
      restored = checkpointer.restore(directory, target)
      return jax.tree.map(np.asarray, restored)
    if jax.tree.structure(shardings) != jax.tree.structure(tree):
      raise ValueError("shardings tree does not match the saved params tree")
    target = jax.tree.map(lambda m, s: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=s),
                          tree, shardings)
    return checkpointer.restore(directory, target)
