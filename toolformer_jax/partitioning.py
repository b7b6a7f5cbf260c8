"""Mesh sharding for the project's own jitted code (annotation, decoding, benchmarks).

Training and evaluation are sharded by t5x itself. For everything else the project uses
the same machinery t5x uses: a `('data', 'model')` mesh and flax logical-axis rules that
map the parameter axis names declared by the networks (via `params_axes`) to mesh axes.
`make_partitioner` returns t5x's own `PjitPartitioner` (imported lazily, so that the core
package imports without t5x); this module adds only what t5x lacks: the project's rule
list, parameter shardings from a `params_axes` tree, and a t5x-free mesh builder.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import flax
from flax.linen import partitioning as flax_partitioning
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

Rules = Tuple[Tuple[str, Optional[str]], ...]

# t5x's standard rules (activation and parameter partitioning dims 1) for the axis names the
# networks use, mapped as `t5x.partitioning.standard_logical_axis_rules()` maps them (tests
# check they agree); written out so that this module imports without t5x.
T5X_STANDARD_RULES: Rules = (
    ("batch", "data"),
    ("vocab", "model"),
    ("embed", None),
    ("mlp", "model"),
    ("heads", "model"),
    ("kv", None),
    ("joined_kv", "model"),
    ("length", None),
    ("layers", None),
)
# What the project adds to t5x's rules: `kv_heads` for grouped-query attention and
# `lora_rank`, the low-rank axis of LoRA adapters (replicated; their other axes shard as
# their kernel's). t5x's runs get them through `t5x_additional_rules` (bound in
# gin/models/base/decoder.gin).
PROJECT_RULES: Rules = (
    ("kv_heads", "model"),
    ("lora_rank", None),
)
# The rules of the project's own jitted code; axis names not listed are replicated.
LOGICAL_AXIS_RULES: Rules = T5X_STANDARD_RULES + PROJECT_RULES

MESH_AXES = ("data", "model")


def t5x_additional_rules() -> list:
  """PROJECT_RULES as t5x's `standard_logical_axis_rules(additional_rules=...)` takes them.

  With them t5x's rules map every axis name of the networks as LOGICAL_AXIS_RULES does
  (gin/models/base/decoder.gin binds this).
  """
  return list(PROJECT_RULES)


def make_mesh(num_partitions: int = 1, devices: Optional[Sequence[Any]] = None) -> Mesh:
  """A `('data', 'model')` mesh over all (or the given) devices, model axis innermost."""
  devices = list(jax.devices() if devices is None else devices)
  if num_partitions < 1 or len(devices) % num_partitions:
    raise ValueError(f"num_partitions={num_partitions} must divide the device count "
                     f"{len(devices)}")
  grid = np.asarray(devices, dtype=object).reshape(len(devices) // num_partitions,
                                                   num_partitions)
  return Mesh(grid, MESH_AXES)


def make_partitioner(num_partitions: int = 1, **kwargs):
  """t5x's `PjitPartitioner` with the project's logical-axis rules (needs t5x).

  On CPU, t5x's default mesh ignores `num_partitions` and puts every device on `model`
  (`get_cpu_mesh`); a real `data x model` mesh there needs `model_parallel_submesh =
  (1, 1, 1, num_partitions)`, which this passes for CPU backends. The same holds for gin
  runs of `t5x.train` on fake CPU devices.
  """
  try:
    from t5x import partitioning as t5x_partitioning  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # pragma: no cover - t5x is part of `make install`
    raise ImportError("make_partitioner needs t5x; run `make install` (see README)") from e
  if jax.devices()[0].platform == "cpu" and "model_parallel_submesh" not in kwargs:
    kwargs["model_parallel_submesh"] = (1, 1, 1, num_partitions)
    num_partitions = None
  return t5x_partitioning.PjitPartitioner(num_partitions=num_partitions,
                                          logical_axis_rules=LOGICAL_AXIS_RULES, **kwargs)


def logical_to_spec(names: Optional[Sequence[Optional[str]]],
                    rules: Sequence[Tuple[str, Optional[str]]] = LOGICAL_AXIS_RULES
                    ) -> PartitionSpec:
  """Logical axis names (e.g. `('embed', 'heads', 'kv')`) -> a mesh PartitionSpec."""
  if names is None:
    return PartitionSpec()
  return flax_partitioning.logical_to_mesh_axes(tuple(names), rules)


def param_specs(params_axes: Any,
                rules: Sequence[Tuple[str, Optional[str]]] = LOGICAL_AXIS_RULES) -> Any:
  """The `params_axes` collection of an initialised network -> a tree of PartitionSpecs.

  The result has the structure of the `params` collection.
  """
  axis_names = flax.core.unfreeze(flax_partitioning.get_axis_names(params_axes))
  return jax.tree.map(lambda names: logical_to_spec(names, rules), axis_names,
                      is_leaf=lambda x: isinstance(x, PartitionSpec))


def _check_divisible(path, shape: Tuple[int, ...], spec: PartitionSpec, mesh: Mesh) -> None:
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    if axes is None:
      continue
    size = math.prod(mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes))
    if dim % size:
      raise ValueError(f"parameter {jax.tree_util.keystr(path)} dimension {dim} is not "
                       f"divisible by mesh axes {axes} of size {size}; use fewer "
                       f"partitions (num_partitions)")


def param_shardings(params: Any, params_axes: Any, mesh: Mesh,
                    rules: Sequence[Tuple[str, Optional[str]]] = LOGICAL_AXIS_RULES) -> Any:
  """NamedShardings for `params` (checked for divisibility with a clear error)."""
  specs = param_specs(params_axes, rules)
  if jax.tree.structure(specs) != jax.tree.structure(params):
    raise ValueError("params_axes does not match the params tree: every parameter needs "
                     "logical axis names (create it with param_with_axes)")
  jax.tree_util.tree_map_with_path(
      lambda path, p, s: _check_divisible(path, np.shape(p), s, mesh), params, specs)
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs)


def shard_params(params: Any, params_axes: Any, mesh: Mesh,
                 rules: Sequence[Tuple[str, Optional[str]]] = LOGICAL_AXIS_RULES) -> Any:
  """Places `params` on `mesh` according to their logical axes."""
  return jax.device_put(params, param_shardings(params, params_axes, mesh, rules))


def data_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
  """Batch-major inputs: batch over `data`, the rest replicated."""
  return NamedSharding(mesh, PartitionSpec("data", *([None] * (ndim - 1))))
