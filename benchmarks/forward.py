"""Forward-pass throughput: JAX (this project) versus transformers PyTorch, same weights.

Models: the ~125M GPT-J preset (random weights, made by transformers and imported with
`load_hf_gptj`) and SmolLM2-135M (the shipped gguf, imported with `load_gguf_llama`; the
PyTorch side is a LlamaForCausalLM holding the same float32 weights). Both frameworks run
float32 inference on this CPU, interleaved round by round so that machine noise hits both
alike; compile time (jit) and the first PyTorch call are excluded.

  python benchmarks/forward.py [--batch 8] [--length 256] [--rounds 5] [--threads N]
      [--models gptj_125m,smollm2_135m] [--scoring_only]

Prints tokens/s per model and framework and the JAX/PyTorch ratio (median of the rounds).
Then, for the first model, what the network's selected outputs save over full logits
(time and XLA's peak temporary memory, same jit, interleaved rounds): log p of 5 chosen
tokens per row (the filter's need) and of one token at every position (position
sampling), each versus full [batch, length, vocab] logits + log_softmax + gather.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np
import torch
import transformers

from toolformer_jax.checkpoints.gguf import load_gguf_llama
from toolformer_jax.checkpoints.hf_gptj import config_to_hf, load_hf_gptj
from toolformer_jax.networks.gptj import GPTJ, GPTJConfig
from toolformer_jax.networks.llama import Llama
from toolformer_jax.vocab import smollm2_gguf_path


def gptj_pair(tmp: str):
  """(jax_fn, params, torch_model) for the ~125M GPT-J preset with shared random weights."""
  hf_config = transformers.GPTJConfig(**config_to_hf(GPTJConfig.from_preset("125m")))
  torch.manual_seed(0)
  torch_model = transformers.GPTJForCausalLM(hf_config).eval()
  torch_model.save_pretrained(tmp, safe_serialization=True)
  config, params = load_hf_gptj(tmp)
  return GPTJ(config), params, torch_model


def llama_pair():
  """(module, params, torch_model) for SmolLM2-135M with the gguf's dequantised weights."""
  config, params = load_gguf_llama(smollm2_gguf_path())
  hf_config = transformers.LlamaConfig(
      vocab_size=config.vocab_size, hidden_size=config.d_model,
      intermediate_size=config.d_ff, num_hidden_layers=config.num_layers,
      num_attention_heads=config.num_heads, num_key_value_heads=config.num_kv_heads,
      head_dim=config.head_dim, rms_norm_eps=config.rms_norm_eps,
      rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
      tie_word_embeddings=config.tie_embeddings, attention_bias=False, mlp_bias=False)
  embed = config.d_model
  state = {"model.embed_tokens.weight": params["token_embedder"]["embedding"],
           "model.norm.weight": params["final_norm"]["scale"]}
  for i in range(config.num_layers):
    layer, prefix = params[f"layers_{i}"], f"model.layers.{i}."
    attention = layer["attention"]
    for ours, theirs in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
      state[prefix + f"self_attn.{theirs}.weight"] = attention[ours]["kernel"].reshape(embed, -1).T
    state[prefix + "self_attn.o_proj.weight"] = attention["out"]["kernel"].reshape(-1, embed).T
    for name in ("gate", "up", "down"):
      state[prefix + f"mlp.{name}_proj.weight"] = layer["mlp"][name]["kernel"].T
    state[prefix + "input_layernorm.weight"] = layer["attention_norm"]["scale"]
    state[prefix + "post_attention_layernorm.weight"] = layer["mlp_norm"]["scale"]
  state["lm_head.weight"] = state["model.embed_tokens.weight"]
  torch_model = transformers.LlamaForCausalLM(hf_config).eval()
  torch_model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                               for k, v in state.items()}, strict=True)
  return Llama(config), params, torch_model


def forward_flops_per_token(module, params, length: int) -> float:
  """Matmul FLOPs per token: 2 x (weights used in matmuls) + causal attention scores/mixing.

  The embedding lookup is free unless the table is tied to the output projection.
  """
  config = module.config
  n_params = sum(np.size(x) for x in jax.tree.leaves(params))
  if not getattr(config, "tie_embeddings", False):
    n_params -= np.size(params["token_embedder"]["embedding"])
  attention = 2 * 2 * config.num_layers * config.num_heads * config.head_dim * length / 2
  return 2.0 * n_params + attention


def measure(name, module, params, torch_model, tokens, rounds):
  """Median tokens/s of both frameworks, and the largest logit difference."""
  forward = jax.jit(lambda p, t: module.apply({"params": p}, t, enable_dropout=False))
  device_params = jax.device_put(params)
  device_tokens = jnp.asarray(tokens)
  jax_logits = np.asarray(forward(device_params, device_tokens))  # compile + warm-up
  torch_tokens = torch.from_numpy(tokens.astype(np.int64))
  with torch.inference_mode():
    torch_logits = torch_model(torch_tokens).logits.numpy()  # warm-up
  max_diff = float(np.abs(jax_logits - torch_logits).max())
  n_tokens = tokens.size
  jax_rates, torch_rates = [], []
  for _ in range(rounds):
    start = time.perf_counter()
    forward(device_params, device_tokens).block_until_ready()
    jax_rates.append(n_tokens / (time.perf_counter() - start))
    start = time.perf_counter()
    with torch.inference_mode():
      torch_model(torch_tokens)
    torch_rates.append(n_tokens / (time.perf_counter() - start))
  jax_rate, torch_rate = statistics.median(jax_rates), statistics.median(torch_rates)
  gflops = forward_flops_per_token(module, params, tokens.shape[1]) / 1e9
  print(f"{name:14s} jax {jax_rate:8.1f} tok/s ({jax_rate * gflops:5.1f} GFLOP/s)   "
        f"torch {torch_rate:8.1f} tok/s ({torch_rate * gflops:5.1f} GFLOP/s)   "
        f"ratio jax/torch {jax_rate / torch_rate:5.2f}x   max|logit diff| {max_diff:.1e}")
  return jax_rate / torch_rate


def _temp_bytes(jitted, *args) -> int:
  """XLA's temporary (peak working) memory for one call, from the compiled executable."""
  return int(jitted.lower(*args).compile().memory_analysis().temp_size_in_bytes)


def measure_scoring(name, module, params, tokens, rounds, positions_per_row=5):
  """Selected log-probs versus full logits, at a few positions and at every position."""
  batch, length = tokens.shape
  rng = np.random.default_rng(1)
  positions = jnp.asarray(np.sort(rng.integers(0, length, size=(batch, positions_per_row))),
                          jnp.int32)
  picked = jnp.asarray(rng.integers(1, module.config.vocab_size,
                                    size=(batch, positions_per_row)), jnp.int32)
  everywhere = jnp.full((batch, length), 11, jnp.int32)  # e.g. the id of " ["

  def full_at_positions(p, t):
    logp = jax.nn.log_softmax(module.apply({"params": p}, t, enable_dropout=False))
    rows = jnp.take_along_axis(logp, positions[..., None], axis=1)  # [b, k, vocab]
    return jnp.take_along_axis(rows, picked[..., None], axis=-1)[..., 0]

  def selected_at_positions(p, t):
    return module.apply({"params": p}, t, enable_dropout=False, output="log_probs",
                        output_positions=positions, output_tokens=picked)

  def full_everywhere(p, t):
    logp = jax.nn.log_softmax(module.apply({"params": p}, t, enable_dropout=False))
    return jnp.take_along_axis(logp, everywhere[..., None], axis=-1)[..., 0]

  def selected_everywhere(p, t):
    return module.apply({"params": p}, t, enable_dropout=False, output="log_probs",
                        output_tokens=everywhere, chunk_size=64)

  device_params, device_tokens = jax.device_put(params), jnp.asarray(tokens)
  print(f"{name}: selected log-probs versus full logits (batch {batch} x {length})")
  for label, full_fn, selected_fn in (
      (f"{positions_per_row} positions/row", full_at_positions, selected_at_positions),
      ("every position  ", full_everywhere, selected_everywhere)):
    full_jit, selected_jit = jax.jit(full_fn), jax.jit(selected_fn)
    diff = float(np.abs(np.asarray(full_jit(device_params, device_tokens))
                        - np.asarray(selected_jit(device_params, device_tokens))).max())
    full_mem = _temp_bytes(full_jit, device_params, device_tokens)
    selected_mem = _temp_bytes(selected_jit, device_params, device_tokens)
    full_times, selected_times = [], []
    for _ in range(rounds):
      start = time.perf_counter()
      full_jit(device_params, device_tokens).block_until_ready()
      full_times.append(time.perf_counter() - start)
      start = time.perf_counter()
      selected_jit(device_params, device_tokens).block_until_ready()
      selected_times.append(time.perf_counter() - start)
    full_t, selected_t = statistics.median(full_times), statistics.median(selected_times)
    print(f"  {label}  full {full_t * 1e3:7.1f} ms {full_mem / 2**20:7.1f} MiB   "
          f"selected {selected_t * 1e3:7.1f} ms {selected_mem / 2**20:7.1f} MiB   "
          f"time full/selected {full_t / selected_t:4.2f}x   "
          f"memory full/selected {full_mem / selected_mem:4.2f}x   max|diff| {diff:.1e}")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--length", type=int, default=256)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--models", default="gptj_125m,smollm2_135m")
  parser.add_argument("--scoring_only", action="store_true",
                      help="only the selected-outputs comparison (no PyTorch rounds)")
  args = parser.parse_args(argv)
  torch.set_num_threads(args.threads)
  rng = np.random.default_rng(0)
  print(f"batch {args.batch} x length {args.length}, float32, {args.rounds} interleaved "
        f"rounds, torch threads {args.threads}, jax devices {jax.devices()}")
  with tempfile.TemporaryDirectory() as tmp:
    for number, name in enumerate(args.models.split(",")):
      if name == "gptj_125m":
        module, params, torch_model = gptj_pair(tmp)
      elif name == "smollm2_135m":
        module, params, torch_model = llama_pair()
      else:
        sys.exit(f"unknown model {name!r}")
      vocab = module.config.vocab_size
      tokens = rng.integers(1, min(vocab, 50257), size=(args.batch, args.length),
                            dtype=np.int32)
      if not args.scoring_only:
        measure(name, module, params, torch_model, tokens, args.rounds)
      if number == 0:
        measure_scoring(name, module, params, tokens, args.rounds)
      del module, params, torch_model


if __name__ == "__main__":
  main()
