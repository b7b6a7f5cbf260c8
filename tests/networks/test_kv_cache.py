"""The network API annotation and decoding build on: selected log-probs, cache fork/extend.

Every check compares against a full recompute of the same token sequence with the plain
forward pass (logits [batch, length, vocab]), in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toolformer_jax.networks import kv_cache
from toolformer_jax.networks import llama
from toolformer_jax.networks.gptj import GPTJ, GPTJConfig

NETWORKS = {
    "gptj": lambda scan: GPTJ(GPTJConfig.from_preset("tiny", scan_layers=scan)),
    "llama": lambda scan: llama.Llama(llama.LlamaConfig.from_preset("tiny",
                                                                    scan_layers=scan)),
    "llama_untied": lambda scan: llama.Llama(llama.LlamaConfig.from_preset(
        "tiny", scan_layers=scan, tie_embeddings=False)),
}


def _init(name, scan):
  module = NETWORKS[name](scan)
  params = module.init(jax.random.PRNGKey(1), jnp.ones((1, 8), jnp.int32),
                       enable_dropout=False)["params"]
  return module, params


_FORWARDS = {}


def _full_logits(module, params, ids, length=24):
  """Plain causal forward of `ids` (right-padded to a fixed length: one compile)."""
  if module not in _FORWARDS:
    _FORWARDS[module] = jax.jit(lambda p, t: module.apply({"params": p}, t,
                                                          enable_dropout=False))
  padded = np.zeros((1, length), np.int32)
  padded[0, :len(ids)] = ids
  return np.asarray(_FORWARDS[module](params, padded))[0, :len(ids)]  # [len, vocab]


def _tokens(rng, vocab, n):
  return [int(t) for t in rng.integers(1, vocab, size=n)]


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("chunk_size", [1, 3, 128])
def test_log_probs_equal_log_softmax_of_full_logits(name, chunk_size):
  module, params = _init(name, scan=False)
  vocab = module.config.vocab_size
  rng = np.random.default_rng(0)
  ids = jnp.asarray([_tokens(rng, vocab, 11), _tokens(rng, vocab, 11)], jnp.int32)
  full = jax.nn.log_softmax(module.apply({"params": params}, ids, enable_dropout=False))
  targets = jnp.asarray(rng.integers(0, vocab, size=(2, 11)), jnp.int32)
  every = module.apply({"params": params}, ids, enable_dropout=False, output="log_probs",
                       output_tokens=targets, chunk_size=chunk_size)  # [2, 11]
  expected = jnp.take_along_axis(full, targets[..., None], axis=-1)[..., 0]
  np.testing.assert_allclose(every, expected, atol=1e-5)

  positions = jnp.asarray([[0, 4, 10], [7, 7, 2]], jnp.int32)
  picked_tokens = jnp.asarray([[3, 5, 8], [1, 2, 9]], jnp.int32)
  some = module.apply({"params": params}, ids, enable_dropout=False, output="log_probs",
                      output_positions=positions, output_tokens=picked_tokens,
                      chunk_size=chunk_size)  # [2, 3]
  for b in range(2):
    for p in range(3):
      want = full[b, positions[b, p], picked_tokens[b, p]]
      assert abs(float(some[b, p]) - float(want)) < 1e-5


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_hidden_and_selected_logits_equal_full_logits(name):
  module, params = _init(name, scan=False)
  ids = jnp.asarray([_tokens(np.random.default_rng(1), module.config.vocab_size, 9)])
  full = module.apply({"params": params}, ids, enable_dropout=False)
  hidden = module.apply({"params": params}, ids, enable_dropout=False, output="hidden")
  assert hidden.shape == (1, 9, module.config.d_model)
  last = module.apply({"params": params}, ids, enable_dropout=False,
                      output_positions=jnp.asarray([[8, 3]]))
  np.testing.assert_allclose(last[0, 0], full[0, 8], atol=1e-5)
  np.testing.assert_allclose(last[0, 1], full[0, 3], atol=1e-5)


def test_output_arguments_are_checked():
  module, params = _init("gptj", scan=False)
  ids = jnp.ones((1, 4), jnp.int32)
  with pytest.raises(ValueError, match="output must be one of"):
    module.apply({"params": params}, ids, output="probs")
  with pytest.raises(ValueError, match="needs output_tokens"):
    module.apply({"params": params}, ids, output="log_probs")
  with pytest.raises(ValueError, match="needs prefill_lengths"):
    module.apply({"params": params}, ids, prefill=True, mutable=["cache"])


# ~10 s each on 2 cores: the default suite runs one scanned and one unrolled network.
@pytest.mark.parametrize("name,scan", [
    ("gptj", True), ("llama", False),
    pytest.param("gptj", False, marks=pytest.mark.slow),
    pytest.param("llama", True, marks=pytest.mark.slow)])
def test_fork_and_extend_equal_full_recompute(name, scan):
  module, params = _init(name, scan)
  vocab = module.config.vocab_size
  rng = np.random.default_rng(2)
  prefix = _tokens(rng, vocab, 9)
  cache = kv_cache.init_cache(module, params, batch=1, length=24)
  padded = jnp.asarray([prefix + [0, 0, 0]], jnp.int32)  # [1, 12], 9 real tokens
  _, cache = jax.jit(lambda c, t: kv_cache.prefill(module, params, c, t, jnp.asarray([9])))(
      cache, padded)
  np.testing.assert_array_equal(kv_cache.cache_index(module, cache), [9])

  # Three rows of the one prefix, resuming at slots 9, 5 and 0; extends of 4, 3, 2 tokens.
  starts, lengths = [9, 5, 0], [4, 3, 2]
  cache = jax.jit(lambda c: kv_cache.fork(module, c, rows=jnp.asarray([0, 0, 0]),
                                           index=jnp.asarray(starts)))(cache)
  new = [_tokens(rng, vocab, 4) for _ in starts]
  logits, cache = jax.jit(
      lambda c, t, n: kv_cache.extend(module, params, c, t, n))(
          cache, jnp.asarray(new, jnp.int32), jnp.asarray(lengths, jnp.int32))
  np.testing.assert_array_equal(kv_cache.cache_index(module, cache), [13, 8, 2])
  sequences = []
  for r, (start, n) in enumerate(zip(starts, lengths)):
    sequence = prefix[:start] + new[r][:n]
    sequences.append(sequence)
    sequence_logits = _full_logits(module, params, sequence)
    np.testing.assert_allclose(np.asarray(logits[r, :n]), sequence_logits[start:start + n],
                               atol=1e-5)

  # Then a t5x-style one-token step on every row.
  step = _tokens(rng, vocab, 3)
  logits, cache = jax.jit(lambda c, t: module.apply(
      {"params": params, "cache": c}, t, enable_dropout=False, decode=True,
      mutable=["cache"]))(cache, jnp.asarray(step, jnp.int32)[:, None])
  cache = cache["cache"]
  for r in range(3):
    sequence_logits = _full_logits(module, params, sequences[r] + [step[r]])
    np.testing.assert_allclose(np.asarray(logits[r, 0]), sequence_logits[-1], atol=1e-5)


@pytest.mark.parametrize("scan", [pytest.param(False, marks=pytest.mark.slow), True])  # ~10 s each
def test_extend_past_the_end_of_the_cache_raises(scan):
  module, params = _init("llama", scan)
  cache = kv_cache.init_cache(module, params, batch=2, length=8)
  _, cache = kv_cache.prefill(module, params, cache, jnp.ones((2, 6), jnp.int32), [6, 3])
  # Row 1 has room (3 + 3 <= 8), row 0 does not (6 + 3 > 8).
  with pytest.raises(Exception, match=r"KV cache overflow: rows \[0\]"):
    out, _ = kv_cache.extend(module, params, cache, jnp.ones((2, 3), jnp.int32))
    jax.block_until_ready(out)
  # Row 0 taking 2 of the 3 tokens fits.
  out, cache = kv_cache.extend(module, params, cache, jnp.ones((2, 3), jnp.int32), [2, 3])
  np.testing.assert_array_equal(kv_cache.cache_index(module, cache), [8, 6])
  with pytest.raises(ValueError, match="9 new tokens per row exceed the cache length 8"):
    kv_cache.extend(module, params, cache, jnp.ones((2, 9), jnp.int32))
  with pytest.raises(ValueError, match="exceeds the cache length"):
    kv_cache.prefill(module, params, cache, jnp.ones((2, 9), jnp.int32), [9, 9])
