"""Parameters <-> t5x checkpoints (t5x's orbax/OCDBT format), for `python -m t5x.train/infer/eval`.

`save_t5x_checkpoint` writes `<output_dir>/checkpoint_<step>` the way t5x itself writes an
inference state: `state/` holds {'target': params, 'state': {'step': step}} with the
parameter names the network declares (checked against `module.init` shapes before anything
is written). It goes through t5x's own `OrbaxCheckpointManagerInterface`, so the layout is
t5x's by construction. Fine-tuning (`gin/runs/finetune_toolformer.gin`) restores it as
INITIAL_CHECKPOINT_PATH; `t5x.infer`/`t5x.eval` restore it as CHECKPOINT_PATH.

`load_t5x_params` reads the parameters ('target') of any t5x checkpoint directory, including
those written by training (which also hold optimizer state), as numpy arrays on the host,
whatever mesh they were saved from.

Saving needs t5x (imported here); loading needs only orbax.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Tuple

from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

STATE_ITEM = "state"  # t5x's orbax item name


class T5xCheckpointError(ValueError):
  """Parameters that do not fit the network, or a directory that is no t5x checkpoint."""


def network_variable_shapes(module: nn.Module, length: int = 8) -> Mapping[str, Any]:
  """Shapes of `module.init` variables (params and params_axes) as t5x initialises them."""
  tokens = jnp.ones((1, length), jnp.int32)
  return jax.eval_shape(
      lambda: module.init(jax.random.PRNGKey(0), tokens, tokens, enable_dropout=False))


def _flat_shapes(tree: Mapping[str, Any]) -> Dict[str, Optional[Tuple[int, ...]]]:
  """{"a/b/kernel": shape} of a nested parameter dict (None where a leaf has no shape)."""
  flat = traverse_util.flatten_dict(dict(tree))
  return {"/".join(k): (None if getattr(v, "shape", None) is None else tuple(v.shape))
          for k, v in flat.items()}


def check_fit(params: Mapping[str, Any], wanted: Mapping[str, Any], *, what: str,
              allow_unexpected: bool = False, max_listed: int = 20) -> Tuple[str, ...]:
  """The one check that a parameter tree fits the one a model wants (names and shapes).

  `params` and `wanted` are nested dicts whose leaves have `.shape` (arrays,
  ShapeDtypeStructs, t5x's lazy arrays); a leaf without a shape matches any shape.
  Raises T5xCheckpointError ("<what>: N missing, M mis-shaped[, K unexpected]
  parameters", then one line per parameter) when a wanted parameter is missing or has
  another shape, or (unless `allow_unexpected`) `params` has one the model does not.
  Returns the names of the unexpected parameters.
  """
  have, want = _flat_shapes(params), _flat_shapes(wanted)
  missing = sorted(set(want) - set(have))
  unexpected = sorted(set(have) - set(want))
  mis_shaped = sorted(n for n in set(want) & set(have)
                      if None not in (have[n], want[n]) and have[n] != want[n])
  counts = [(len(missing), "missing"), (len(mis_shaped), "mis-shaped")]
  if not allow_unexpected:
    counts.append((len(unexpected), "unexpected"))
  if any(n for n, _ in counts):
    lines = ([f"missing: {n} {want[n]}" for n in missing[:max_listed]] +
             [f"{n}: checkpoint {have[n]} vs model {want[n]}" for n in mis_shaped[:max_listed]])
    if not allow_unexpected:
      lines += [f"unexpected: {n} {have[n]}" for n in unexpected[:max_listed]]
    raise T5xCheckpointError(f"{what}: " + ", ".join(f"{n} {label}" for n, label in counts) +
                             " parameters\n  " + "\n  ".join(lines))
  return tuple(unexpected)


def check_params(params: Mapping[str, Any], module: nn.Module) -> Mapping[str, Any]:
  """Raises T5xCheckpointError unless `params` has exactly the module's names and shapes.

  Returns the module's `params_axes` collection.
  """
  variables = network_variable_shapes(module)
  if "params_axes" not in variables:
    raise T5xCheckpointError(f"{type(module).__name__} declares no params_axes (create its "
                             "parameters with flax.linen.partitioning.param_with_axes)")
  check_fit(params, variables["params"], what=f"params do not fit {type(module).__name__}")
  return variables["params_axes"]


def save_t5x_checkpoint(params: Mapping[str, Any], module: nn.Module, output_dir: str, *,
                        step: int = 0, dtype: Optional[str] = None,
                        logical_axis_rules: Optional[Tuple] = None) -> str:
  """Writes `params` as the t5x checkpoint `<output_dir>/checkpoint_<step>`; returns its path.

  dtype: store parameters in this dtype (e.g. "bfloat16"); default: as given.
  logical_axis_rules: for the partitioner that records the parameter layout (default: the
    project's rules); a checkpoint restores onto any mesh regardless.
  """
  from t5x import checkpoints as t5x_checkpoints  # pylint: disable=g-import-not-at-top
  from t5x import partitioning as t5x_partitioning  # pylint: disable=g-import-not-at-top
  from t5x import train_state as t5x_train_state  # pylint: disable=g-import-not-at-top
  from toolformer_jax import partitioning  # pylint: disable=g-import-not-at-top

  params_axes = check_params(params, module)
  cast = (lambda x: np.asarray(x)) if dtype is None else (
      lambda x: np.asarray(x).astype(jnp.dtype(dtype)))
  params = jax.tree.map(cast, dict(params))
  output_dir = os.path.abspath(output_dir)
  path = os.path.join(output_dir, f"checkpoint_{step}")
  if os.path.exists(path):
    raise FileExistsError(f"{path} exists; remove it or choose another output_dir/step")
  os.makedirs(output_dir, exist_ok=True)

  state = t5x_train_state.InferenceState.create({"params": params, "params_axes": params_axes})
  state = state.replace_step(np.asarray(step, np.int32))
  partitioner = t5x_partitioning.PjitPartitioner(
      num_partitions=1,
      logical_axis_rules=logical_axis_rules or partitioning.LOGICAL_AXIS_RULES)
  manager = t5x_checkpoints.OrbaxCheckpointManagerInterface(
      output_dir, train_state=state, partitioner=partitioner)
  manager.save(state)
  manager.wait_until_finished()
  manager.close()
  if not os.path.isdir(os.path.join(path, STATE_ITEM)):
    raise T5xCheckpointError(f"t5x did not write {path}/{STATE_ITEM}")
  return path


def _state_dir(checkpoint_dir: str) -> str:
  checkpoint_dir = os.path.abspath(checkpoint_dir)
  state_dir = os.path.join(checkpoint_dir, STATE_ITEM)
  if not os.path.isdir(state_dir):
    raise T5xCheckpointError(f"{checkpoint_dir} is not a t5x orbax checkpoint (no "
                             f"{STATE_ITEM}/ directory; pass .../checkpoint_<step>)")
  return state_dir


def load_t5x_params(checkpoint_dir: str) -> Tuple[dict, int]:
  """(params as nested numpy dicts, step) of a t5x checkpoint `.../checkpoint_<step>`."""
  state_dir = _state_dir(checkpoint_dir)
  with ocp.PyTreeCheckpointer() as checkpointer:
    metadata = checkpointer.metadata(state_dir)
    tree = getattr(metadata, "item_metadata", metadata)
    tree = getattr(tree, "tree", tree)
    if "target" not in tree:
      raise T5xCheckpointError(f"{checkpoint_dir} has no parameters ('target')")
    wanted = {"target": tree["target"]}
    if "state" in tree and "step" in tree["state"]:
      wanted["state"] = {"step": tree["state"]["step"]}
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
    restored = checkpointer.restore(
        state_dir, args=ocp.args.PyTreeRestore(item=wanted, restore_args=restore_args,
                                               partial_restore=True))
  params = jax.tree.map(np.asarray, restored["target"])
  step = int(np.asarray(restored.get("state", {}).get("step", 0)))
  return params, step
