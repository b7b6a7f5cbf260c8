"""Model sources every CLI accepts: 'smollm2', a .gguf file, an HF GPT-J directory or a
t5x checkpoint directory, and how the first three load as (network, params).

Params come back in the project's id space (the seqio vocabulary's): HF GPT-J rows are
remapped by `vocab_rows`, gguf ids are the file's own.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple


class ConvertError(ValueError):
  """Bad conversion arguments or inputs."""


def input_kind(path: str) -> str:
  """'gguf', 'hf_gptj' or 't5x' for an --input value."""
  if path == "smollm2" or path.endswith(".gguf"):
    return "gguf"
  if os.path.isfile(os.path.join(path, "config.json")):
    return "hf_gptj"
  if os.path.isdir(os.path.join(path, "state")):
    return "t5x"
  raise ConvertError(f"--input {path!r} is neither 'smollm2', a .gguf file, an HF GPT-J "
                     "directory (config.json) nor a t5x checkpoint_<step> directory (state/)")


def load_network(path: str, *, scan_layers: bool = False,
                 dtype: Optional[str] = None) -> Tuple[Any, Dict[str, Any], str]:
  """(flax module, numpy params in the project's id space, kind) for an HF or gguf input."""
  kind = input_kind(path)
  if kind == "gguf":
    from toolformer_jax.checkpoints import gguf  # pylint: disable=g-import-not-at-top
    from toolformer_jax.networks import llama  # pylint: disable=g-import-not-at-top
    from toolformer_jax import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
    gguf_path = vocab_lib.smollm2_gguf_path() if path == "smollm2" else path
    config, params = gguf.load_gguf_llama(gguf_path, scan_layers=scan_layers, dtype=dtype)
    return llama.Llama(config), params, kind
  if kind == "hf_gptj":
    from toolformer_jax.checkpoints import hf_gptj  # pylint: disable=g-import-not-at-top
    from toolformer_jax.checkpoints import vocab_rows  # pylint: disable=g-import-not-at-top
    from toolformer_jax.networks import gptj  # pylint: disable=g-import-not-at-top
    config, params = hf_gptj.load_hf_gptj(path, scan_layers=scan_layers, dtype=dtype)
    return gptj.GPTJ(config), vocab_rows.gptj_params_to_seqio_ids(params), kind
  raise ConvertError(f"{path} is a t5x checkpoint; it converts only --to orbax")


