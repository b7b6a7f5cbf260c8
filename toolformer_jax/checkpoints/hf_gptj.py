"""Hugging Face GPT-J checkpoints (safetensors) <-> `toolformer_jax.networks.gptj` params.

`load_hf_gptj` reads a directory holding `config.json` and either `model.safetensors` or
`model.safetensors.index.json` with its shards, as written by
`GPTJForCausalLM.save_pretrained`. It reads with `safetensors` in numpy mode (no torch)
one tensor at a time, so peak host memory is about one copy of the converted params.
Every problem (bad config, missing / unknown / mis-shaped tensor) is found before any
tensor data is read and raised as one `HFCheckpointError` naming the offending keys.

`save_hf_gptj` is the inverse: it writes a directory that `from_pretrained` accepts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import jax
import ml_dtypes
import numpy as np
from safetensors import safe_open
import safetensors.numpy

from toolformer_jax.networks import layers
from toolformer_jax.networks.gptj import GPTJConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

# Non-parameter buffers that some GPT-J checkpoints carry; they are derived from the
# config and skipped. `{i}` stands for a layer index < num_layers.
IGNORED_BUFFERS = (
    "transformer.h.{i}.attn.bias",  # causal-mask buffer (older transformers releases)
    "transformer.h.{i}.attn.masked_bias",  # mask fill value buffer (older releases)
    "transformer.rotary_emb.embed_positions",  # sinusoid table buffer
)

# HF config.json fields that must be present (no silent 6B defaults for sizes).
REQUIRED_HF_FIELDS = ("n_embd", "n_layer", "n_head", "vocab_size")


class HFCheckpointError(ValueError):
  """A Hugging Face checkpoint that does not describe a GPT-J this project can load."""


Params = Dict[str, Any]
Transform = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class _Entry:
  """One HF tensor: its shape there, where it lives in our params, and both conversions."""
  hf_name: str
  hf_shape: Tuple[int, ...]
  path: Tuple[str, ...]
  to_ours: Transform
  to_hf: Transform
  layer: Optional[int] = None  # block index for per-layer tensors (path[0] == "layers_{i}")


# ----------------------------------------------------------------------------- config


def config_from_hf(hf: Mapping[str, Any], source: str = CONFIG_FILE) -> GPTJConfig:
  """Maps an HF `GPTJConfig` dict to ours; HF defaults apply to the optional fields."""
  model_type = hf.get("model_type")
  if model_type != "gptj":
    raise HFCheckpointError(f"{source}: model_type is {model_type!r}, expected 'gptj'")
  missing = [f for f in REQUIRED_HF_FIELDS if hf.get(f) is None]
  if missing:
    raise HFCheckpointError(f"{source}: missing field(s) {missing}")
  activation = hf.get("activation_function", "gelu_new")
  if activation != "gelu_new":
    raise HFCheckpointError(f"{source}: activation_function is {activation!r}; only "
                            f"'gelu_new' (GPT-J's tanh GELU) is supported")
  if hf.get("tie_word_embeddings", False):
    raise HFCheckpointError(f"{source}: tie_word_embeddings is true; GPT-J's lm_head is untied")
  d_model, num_heads = hf["n_embd"], hf["n_head"]
  if not (isinstance(d_model, int) and isinstance(num_heads, int) and num_heads > 0
          and d_model % num_heads == 0):
    raise HFCheckpointError(f"{source}: n_embd ({d_model!r}) must be divisible by n_head "
                            f"({num_heads!r})")
  head_dim = d_model // num_heads
  rotary_dim = hf.get("rotary_dim", 64)
  n_inner = hf.get("n_inner")
  try:
    return GPTJConfig(
        vocab_size=hf["vocab_size"],
        d_model=d_model,
        num_layers=hf["n_layer"],
        num_heads=num_heads,
        head_dim=head_dim,
        rotary_dim=head_dim if rotary_dim is None else rotary_dim,
        d_ff=4 * d_model if n_inner is None else n_inner,
        layer_norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
        max_positions=hf.get("n_positions", 2048),
    )
  except ValueError as e:
    raise HFCheckpointError(f"{source}: inconsistent GPT-J config: {e}") from e


def config_to_hf(config: GPTJConfig) -> Dict[str, Any]:
  """The HF config.json dict for `config` (fields GPTJForCausalLM reads)."""
  if config.rotary_base != 10000.0:
    raise HFCheckpointError(f"HF GPT-J fixes the rotary base at 10000, got {config.rotary_base}")
  return {
      "architectures": ["GPTJForCausalLM"],
      "model_type": "gptj",
      "vocab_size": config.vocab_size,
      "n_positions": config.max_positions,
      "n_embd": config.d_model,
      "n_layer": config.num_layers,
      "n_head": config.num_heads,
      "rotary_dim": config.rotary_dim,
      "n_inner": config.d_ff,
      "activation_function": "gelu_new",
      "layer_norm_epsilon": config.layer_norm_eps,
      "resid_pdrop": 0.0,
      "embd_pdrop": 0.0,
      "attn_pdrop": 0.0,
      "initializer_range": 0.02,
      "tie_word_embeddings": False,
      # GPT-2 BPE's <|endoftext|>, only where the vocabulary has it.
      "bos_token_id": 50256 if config.vocab_size > 50256 else None,
      "eos_token_id": 50256 if config.vocab_size > 50256 else None,
      "torch_dtype": "float32",
  }


# ----------------------------------------------------------------------------- name map


def name_map(config: GPTJConfig) -> List[_Entry]:
  """Every HF tensor of a GPTJForCausalLM with `config`, in checkpoint order."""
  d, h, hd, f, v = (config.d_model, config.num_heads, config.head_dim, config.d_ff,
                    config.vocab_size)
  same = lambda x: x
  transpose = lambda x: np.ascontiguousarray(x.T)
  # nn.Linear stores [out, in]; ours are [in..., out...].
  qkv_in = lambda x: np.ascontiguousarray(x.T).reshape(d, h, hd)  # [h*hd, d] -> [d, h, hd]
  qkv_out = lambda x: np.ascontiguousarray(x.reshape(d, h * hd).T)
  out_in = lambda x: np.ascontiguousarray(x.T).reshape(h, hd, d)  # [d, h*hd] -> [h, hd, d]
  out_out = lambda x: np.ascontiguousarray(x.reshape(h * hd, d).T)

  entries = [_Entry("transformer.wte.weight", (v, d), ("token_embedder", "embedding"), same,
                    same)]
  for i in range(config.num_layers):
    p, layer = f"transformer.h.{i}.", f"layers_{i}"
    entries += [
        _Entry(p + "ln_1.weight", (d,), (layer, "ln", "scale"), same, same, i),
        _Entry(p + "ln_1.bias", (d,), (layer, "ln", "bias"), same, same, i),
        _Entry(p + "attn.q_proj.weight", (h * hd, d), (layer, "attn", "query", "kernel"),
               qkv_in, qkv_out, i),
        _Entry(p + "attn.k_proj.weight", (h * hd, d), (layer, "attn", "key", "kernel"),
               qkv_in, qkv_out, i),
        _Entry(p + "attn.v_proj.weight", (h * hd, d), (layer, "attn", "value", "kernel"),
               qkv_in, qkv_out, i),
        _Entry(p + "attn.out_proj.weight", (d, h * hd), (layer, "attn", "out", "kernel"),
               out_in, out_out, i),
        _Entry(p + "mlp.fc_in.weight", (f, d), (layer, "mlp", "fc_in", "kernel"), transpose,
               transpose, i),
        _Entry(p + "mlp.fc_in.bias", (f,), (layer, "mlp", "fc_in", "bias"), same, same, i),
        _Entry(p + "mlp.fc_out.weight", (d, f), (layer, "mlp", "fc_out", "kernel"), transpose,
               transpose, i),
        _Entry(p + "mlp.fc_out.bias", (d,), (layer, "mlp", "fc_out", "bias"), same, same, i),
    ]
  entries += [
      _Entry("transformer.ln_f.weight", (d,), ("ln_f", "scale"), same, same),
      _Entry("transformer.ln_f.bias", (d,), ("ln_f", "bias"), same, same),
      _Entry("lm_head.weight", (v, d), ("lm_head", "kernel"), transpose, transpose),
      _Entry("lm_head.bias", (v,), ("lm_head", "bias"), same, same),
  ]
  return entries


def _ignored_names(config: GPTJConfig) -> set:
  names = set()
  for pattern in IGNORED_BUFFERS:
    if "{i}" in pattern:
      names.update(pattern.format(i=i) for i in range(config.num_layers))
    else:
      names.add(pattern)
  return names


# ----------------------------------------------------------------------------- loading


def _read_json(path: str) -> Any:
  if not os.path.isfile(path):
    raise HFCheckpointError(f"{path} not found")
  try:
    with open(path, encoding="utf-8") as fh:
      return json.load(fh)
  except json.JSONDecodeError as e:
    raise HFCheckpointError(f"{path} is not valid JSON: {e}") from e


def _weight_files(path: str) -> Dict[str, Optional[List[str]]]:
  """Maps each safetensors file to the tensor names the index lists for it (None: no index)."""
  single, index = os.path.join(path, WEIGHTS_FILE), os.path.join(path, INDEX_FILE)
  if os.path.isfile(single):
    return {single: None}
  if os.path.isfile(index):
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
      raise HFCheckpointError(f"{index}: no non-empty 'weight_map' object")
    files: Dict[str, Optional[List[str]]] = {}
    for name, shard in weight_map.items():
      files.setdefault(os.path.join(path, shard), []).append(name)
    for shard in files:
      if not os.path.isfile(shard):
        raise HFCheckpointError(f"{index} names shard {shard}, which does not exist")
    return files
  others = sorted(n for n in os.listdir(path)
                  if n.endswith((".bin", ".pt", ".msgpack", ".h5")))
  hint = f" (found {others}; convert them to safetensors first)" if others else ""
  raise HFCheckpointError(f"{path}: neither {WEIGHTS_FILE} nor {INDEX_FILE} found{hint}")


def _read_tensor(handle, filename: str, name: str) -> np.ndarray:
  """Reads one tensor; BF16, which numpy lacks, is read as raw bits via the file header."""
  if handle.get_slice(name).get_dtype() != "BF16":
    return handle.get_tensor(name)
  # safetensors layout: u64 little-endian header size, JSON header, then the data buffer.
  with open(filename, "rb") as fh:
    header_size = int.from_bytes(fh.read(8), "little")
    info = json.loads(fh.read(header_size))[name]
  start, end = info["data_offsets"]
  raw = np.memmap(filename, dtype=np.uint16, mode="r", offset=8 + header_size + start,
                  shape=((end - start) // 2,))
  return np.array(raw).view(ml_dtypes.bfloat16).reshape(info["shape"])


def _set(tree: Params, path: Tuple[str, ...], value: np.ndarray) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _get(tree: Mapping, path: Tuple[str, ...]) -> Any:
  for key in path:
    tree = tree[key]
  return tree


def _check_tensors(path: str, config: GPTJConfig, entries: Mapping[str, _Entry],
                   listed: Mapping[str, Optional[List[str]]],
                   handles: Mapping[str, Any]) -> Dict[str, str]:
  """Validates names and shapes against the config; returns tensor name -> file."""
  location: Dict[str, str] = {}
  problems: List[str] = []
  for filename, handle in handles.items():
    names = list(handle.keys())
    for name in names:
      if name in location:
        problems.append(f"{name}: in both {location[name]} and {filename}")
      location[name] = filename
    expected = listed[filename]
    if expected is not None:
      for name in sorted(set(expected) - set(names)):
        problems.append(f"{name}: listed in {INDEX_FILE} but absent from {filename}")
      for name in sorted(set(names) - set(expected)):
        problems.append(f"{name}: in {filename} but not listed in {INDEX_FILE}")
  present = set(location)
  for name in sorted(set(entries) - present):
    problems.append(f"{name}: missing")
  for name in sorted(present - set(entries) - _ignored_names(config)):
    problems.append(f"{name}: unknown tensor for a GPT-J with {config.num_layers} layers")
  for name in sorted(present & set(entries)):
    info = handles[location[name]].get_slice(name)
    shape = tuple(info.get_shape())
    if shape != entries[name].hf_shape:
      problems.append(f"{name}: shape {shape}, expected {entries[name].hf_shape} from "
                      f"{CONFIG_FILE}")
    if info.get_dtype() not in ("F16", "BF16", "F32", "F64"):
      problems.append(f"{name}: dtype {info.get_dtype()} is not floating point")
  if problems:
    raise HFCheckpointError(f"{path}: checkpoint does not match {CONFIG_FILE}:\n  " +
                            "\n  ".join(problems))
  return location


def load_hf_gptj(path: str, *, scan_layers: bool = False,
                 dtype: Optional[Any] = None) -> Tuple[GPTJConfig, Params]:
  """Loads an HF GPT-J safetensors checkpoint directory as (config, numpy params).

  Params are float32 unless `dtype` (e.g. "bfloat16") is given, in which case the returned
  config's `dtype` and `param_dtype` are set to it as well. `scan_layers=True` returns the
  scanned layout (`layers/block/...`, as `layers.stack_layer_params` makes it) and sets
  `config.scan_layers`.
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    raise HFCheckpointError(f"{path} is not a directory")
  config_path = os.path.join(path, CONFIG_FILE)
  config = config_from_hf(_read_json(config_path), source=config_path)
  target = np.dtype(np.float32) if dtype is None else np.dtype(jax.numpy.dtype(dtype))
  overrides: Dict[str, Any] = {"scan_layers": scan_layers}
  if dtype is not None:
    overrides.update(dtype=target.name, param_dtype=target.name)
  config = dataclasses.replace(config, **overrides)

  entries = {e.hf_name: e for e in name_map(config)}
  listed = _weight_files(path)
  params: Params = {}
  with contextlib.ExitStack() as stack:
    handles = {f: stack.enter_context(safe_open(f, framework="np")) for f in listed}
    location = _check_tensors(path, config, entries, listed, handles)
    for name, entry in entries.items():
      value = entry.to_ours(_read_tensor(handles[location[name]], location[name], name))
      if scan_layers and entry.layer is not None:
        # Write straight into the stacked [layers, ...] array: no second full copy.
        stacked_path = ("layers", "block") + entry.path[1:]
        try:
          stacked = _get(params, stacked_path)
        except KeyError:
          stacked = np.empty((config.num_layers,) + value.shape, target)
          _set(params, stacked_path, stacked)
        stacked[entry.layer] = value
      else:
        _set(params, entry.path, np.ascontiguousarray(value.astype(target)))
  return config, params


# ----------------------------------------------------------------------------- saving


def save_hf_gptj(config: GPTJConfig, params: Mapping, path: str) -> None:
  """Writes `params` (unrolled or scanned layout) as an HF GPT-J checkpoint directory.

  Tensors are stored as float16 if the params are float16, else float32 (bfloat16 is
  widened losslessly, since numpy safetensors cannot write it).
  """
  path = os.fspath(path)
  params = jax.tree.map(np.asarray, dict(params))
  if "layers" in params:
    params = layers.unstack_layer_params(params)
  os.makedirs(path, exist_ok=True)
  tensors: Dict[str, np.ndarray] = {}
  for entry in name_map(config):
    try:
      value = _get(params, entry.path)
    except (KeyError, TypeError) as e:
      raise HFCheckpointError(f"params lack {'/'.join(entry.path)} (for {entry.hf_name})") from e
    if value.dtype != np.float16:
      value = value.astype(np.float32)
    hf_value = entry.to_hf(value)
    if tuple(hf_value.shape) != entry.hf_shape:
      raise HFCheckpointError(f"{'/'.join(entry.path)}: shape {value.shape} does not give "
                              f"{entry.hf_name} shape {entry.hf_shape}")
    tensors[entry.hf_name] = np.ascontiguousarray(hf_value)
  safetensors.numpy.save_file(tensors, os.path.join(path, WEIGHTS_FILE),
                              metadata={"format": "pt"})
  hf_config = config_to_hf(config)
  if any(t.dtype == np.float16 for t in tensors.values()):
    hf_config["torch_dtype"] = "float16"
  with open(os.path.join(path, CONFIG_FILE), "w", encoding="utf-8") as fh:
    json.dump(hf_config, fh, indent=2, sort_keys=True)
