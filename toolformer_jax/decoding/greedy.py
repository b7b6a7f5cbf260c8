"""Greedy decoding with the KV cache, calling a network exactly as t5x's DecoderOnlyModel.

The cache is created, prefilled and stepped as `DecoderOnlyModel._compute_kv_cache` and
`_compute_logits_from_slice` do, so this decoder exercises the same contract t5x relies
on, without importing t5x. Prompts are laid out as seqio's DecoderFeatureConverter lays
out predict inputs: position 0 holds the shifted-in BOS (id 0), the prompt follows.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np


def prompt_features(prompts: Sequence[Sequence[int]], length: int
                    ) -> Tuple[np.ndarray, np.ndarray]:
  """(decoder_input_tokens, decoder_causal_attention), both [batch, length] int32."""
  tokens = np.zeros((len(prompts), length), np.int32)  # [batch, length]
  causal = np.zeros((len(prompts), length), np.int32)  # [batch, length]
  for b, prompt in enumerate(prompts):
    if not prompt:
      raise ValueError(f"prompt {b} is empty")
    if 0 in prompt:
      raise ValueError(f"prompt {b} contains id 0 (PAD); it would be read as padding")
    if len(prompt) + 1 >= length:
      raise ValueError(f"prompt {b} has {len(prompt)} tokens; max_length {length} leaves "
                       "no room to decode")
    tokens[b, 1:1 + len(prompt)] = prompt
    causal[b, :len(prompt) + 1] = 1
  return tokens, causal


class CachedGreedyDecoder:
  """Batched greedy decoding for a network module (GPTJ or Llama) with a fixed max length."""

  def __init__(self, module, max_length: int):
    self.module = module
    self.max_length = max_length

    def init_cache(params, inputs):
      _, variables = module.apply({"params": params}, jnp.ones_like(inputs),
                                  jnp.ones_like(inputs), enable_dropout=False, decode=True,
                                  mutable=["cache"])
      return variables["cache"]

    def prefill(params, cache, inputs, causal, lengths):
      _, variables = module.apply({"params": params, "cache": cache},
                                  decoder_input_tokens=inputs, decoder_target_tokens=causal,
                                  mutable=["cache"], enable_dropout=False, prefill=True,
                                  prefill_lengths=lengths)
      return variables["cache"]

    def step(params, cache, token_ids):
      logits, variables = module.apply({"params": params, "cache": cache}, token_ids,
                                       token_ids, enable_dropout=False, decode=True,
                                       max_decode_length=max_length, mutable=["cache"])
      return logits[:, 0], variables["cache"]  # [batch, vocab]

    self._init_cache = jax.jit(init_cache)
    self._prefill = jax.jit(prefill)
    self._step = jax.jit(step, donate_argnums=(1,))

  def __call__(self, params, prompts: Sequence[Sequence[int]], steps: int,
               eos_id: Optional[int] = None) -> Tuple[List[List[int]], np.ndarray]:
    """Returns (new tokens per prompt, cut after EOS, and step logits [batch, steps, vocab])."""
    tokens, causal = prompt_features(prompts, self.max_length)
    lengths = causal.sum(-1) - 1  # [batch] prompt lengths (excluding BOS)
    if int(lengths.max()) + steps >= self.max_length:
      raise ValueError(f"{steps} steps after a {int(lengths.max())}-token prompt exceed "
                       f"max_length {self.max_length}")
    inputs = jnp.asarray(tokens)
    cache = self._init_cache(params, inputs)
    cache = self._prefill(params, cache, inputs, jnp.asarray(causal), jnp.asarray(lengths))
    rows = np.arange(len(prompts))
    index = lengths.copy()
    new_tokens = [[] for _ in prompts]
    finished = np.zeros(len(prompts), bool)
    step_logits = []
    for _ in range(steps):
      current = tokens[rows, index][:, None]  # [batch, 1]: the last known token of each row
      logits, cache = self._step(params, cache, jnp.asarray(current))
      logits = np.asarray(logits)
      step_logits.append(logits)
      chosen = logits.argmax(-1)
      index = index + 1
      tokens[rows, index] = chosen
      for b in np.flatnonzero(~finished):
        new_tokens[b].append(int(chosen[b]))
        finished[b] = eos_id is not None and chosen[b] == eos_id
      if finished.all():
        break
    return new_tokens, np.stack(step_logits, axis=1)
