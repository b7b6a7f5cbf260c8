"""The filter kernel against a plain PyTorch per-candidate computation of the convention.

A random tiny transformers GPTJForCausalLM is saved and imported with `load_hf_gptj`, so
both sides hold the same weights; the GPT-2 BPE (HF ids) tokenizes documents and calls.
"""

import numpy as np
import pytest
import torch
import transformers

from toolformer_jax.annotate import loss_filter
from toolformer_jax.checkpoints import load_hf_gptj
from toolformer_jax.networks.gptj import GPTJ
from toolformer_jax.vocab import Gpt2Vocabulary

DOCUMENTS = [
    "Tom had 87 apples and got 170 more, so he had 257 apples.",
    "The recipe needs 3 cups of flour for each of the 12 cakes, 36 cups in all.",
    "Paris is the capital of France.",
    "In 1969, 600 million people watched the landing on television.",
    "42",
]
CALLS = [("Calculator(87 + 170)", "257"), ("Calculator(3 * 12)", "36"),
         ("WikiSearch(capital of France)", "Paris is the capital and largest city of France."),
         ("Calendar()", "Today is Monday, December 1, 2026."), ("QA(Who landed?)", "Apollo 11")]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  hf_config = transformers.GPTJConfig(vocab_size=50400, n_embd=64, n_layer=2, n_head=4,
                                      rotary_dim=8, n_inner=128, n_positions=256)
  torch.manual_seed(0)
  torch_model = transformers.GPTJForCausalLM(hf_config).eval()
  path = tmp_path_factory.mktemp("gptj")
  torch_model.save_pretrained(path, safe_serialization=True)
  config, params = load_hf_gptj(str(path))
  tokenizer = Gpt2Vocabulary().tokenizer
  return GPTJ(config), params, torch_model, lambda s: tokenizer.encode(s).ids


@pytest.fixture(scope="module")
def scorer(model):
  """One filter (its jitted kernels compile once); tests set its config."""
  module, params, _, tokenize = model
  return loss_filter.LossDifferenceFilter(module, params, tokenize)


def _score(scorer, config, documents, candidates):
  scorer.config = config
  return scorer.score(documents, candidates)


def _candidates(tokenize):
  """>= 50 candidates: every document, calls at its start and its last tokens, varied z."""
  documents, candidates = {}, []
  rng = np.random.default_rng(0)
  for d, text in enumerate(DOCUMENTS):
    ids = tokenize(text)
    documents[d] = ids
    positions = sorted({0, len(ids) - 1, max(0, len(ids) - 3)}
                       | set(rng.integers(0, len(ids), size=10).tolist()))
    for i in positions:
      for call, result in (CALLS[d], CALLS[(d + 1) % len(CALLS)]):
        candidates.append(loss_filter.Candidate(
            doc=d, token_position=int(i), prefix_call=f" [{call} ->]",
            prefix_call_result=f" [{call} -> {result}]"))
  return documents, candidates


def _reference_loss(torch_model, tokenize, doc_ids, z, i):
  """L_i(z) by the convention, one forward of [0] + ids(z) + ids(x)[:i+5] in PyTorch."""
  weights = [5 / 15, 4 / 15, 3 / 15, 2 / 15, 1 / 15]
  z_ids = tokenize(z) if z else []
  sequence = [0] + z_ids + doc_ids[:i + 5]
  with torch.inference_mode():
    logits = torch_model(torch.tensor([sequence])).logits[0].double()
  log_probs = torch.log_softmax(logits, dim=-1)
  offset = 1 + len(z_ids)
  loss = 0.0
  for t, w in enumerate(weights):
    if i + t >= len(doc_ids):
      break
    k = offset + i + t
    loss -= w * float(log_probs[k - 1, sequence[k]])
  return loss


def test_weights_are_the_papers():
  np.testing.assert_allclose(loss_filter.loss_weights(5), np.array([5, 4, 3, 2, 1]) / 15)
  np.testing.assert_allclose(loss_filter.loss_weights(2), [1 / 1.8, 0.8 / 1.8])
  np.testing.assert_allclose(loss_filter.loss_weights(8), np.array([5, 4, 3, 2, 1, 0, 0, 0]) / 15)
  with pytest.raises(ValueError, match="window"):
    loss_filter.loss_weights(0)


def test_kernel_equals_pytorch_per_candidate(model):
  module, params, torch_model, tokenize = model
  documents, candidates = _candidates(tokenize)
  assert len(candidates) >= 50
  scorer = loss_filter.LossDifferenceFilter(module, params, tokenize,
                                           loss_filter.FilterConfig(tau_f=0.0))
  scores = scorer.score(documents, candidates)  # a fresh filter: counts its own forwards
  worst = 0.0
  for c, s in zip(candidates, scores):
    doc_ids = documents[c.doc]
    empty = _reference_loss(torch_model, tokenize, doc_ids, "", c.token_position)
    call = _reference_loss(torch_model, tokenize, doc_ids, c.prefix_call, c.token_position)
    call_result = _reference_loss(torch_model, tokenize, doc_ids, c.prefix_call_result,
                                  c.token_position)
    for ours, theirs in ((s.loss_empty, empty), (s.loss_call, call),
                         (s.loss_call_result, call_result),
                         (s.loss_minus - s.loss_plus, min(empty, call) - call_result)):
      worst = max(worst, abs(ours - theirs))
    assert s.kept == (s.loss_minus - s.loss_plus >= 0.0)
  assert worst < 1e-4, worst
  # One row per distinct (document, prefix), not three per candidate.
  distinct = {(c.doc, z) for c in candidates for z in ("", c.prefix_call, c.prefix_call_result)}
  assert scorer.forwards == len(distinct) < 3 * len(candidates)
  assert len(scorer.compiled_shapes) <= 6


def test_keep_rule_thresholds_and_cost(model, scorer):
  tokenize = model[3]
  documents, candidates = _candidates(tokenize)
  candidates = candidates[:12]
  base = _score(scorer, loss_filter.FilterConfig(tau_f=0.0), documents, candidates)
  gains = np.array([s.loss_minus - s.loss_plus for s in base])
  tau = float(np.median(gains))
  strict = _score(scorer, loss_filter.FilterConfig(tau_f=tau), documents, candidates)
  assert [s.kept for s in strict] == [bool(g >= tau) for g in gains]
  lam = 0.01
  costly = _score(scorer, loss_filter.FilterConfig(tau_f=tau, cost_lambda=lam), documents,
                  candidates)
  for c, s, g in zip(candidates, costly, gains):
    assert s.call_tokens == len(tokenize(c.prefix_call_result))
    assert s.kept == bool(g >= tau + lam * s.call_tokens)


def test_bad_candidates_and_configs_fail_loudly(model, scorer):
  module, params, _, tokenize = model
  scorer.config = loss_filter.FilterConfig()
  with pytest.raises(ValueError, match="candidate at token 9 of a 3-token document"):
    scorer.score({0: [5, 6, 7]}, [loss_filter.Candidate(0, 9, " [A()]", " [A() -> 1]")])
  with pytest.raises(ValueError, match="length_buckets"):
    loss_filter.FilterConfig(length_buckets=(64, 32))
  with pytest.raises(ValueError, match="exceeds the largest length bucket"):
    loss_filter.LossDifferenceFilter(
        module, params, tokenize, loss_filter.FilterConfig(length_buckets=(8,))).score(
            {0: list(range(1, 20))}, [loss_filter.Candidate(0, 10, " [A()]", " [A() -> 1]")])


def _reference_inline_loss(torch_model, tokenize, doc_ids, z, i):
  """L_i(z) with z inserted at i: [0] + ids(x)[:i] + ids(z) + ids(x)[i:i+5], in PyTorch."""
  weights = [5 / 15, 4 / 15, 3 / 15, 2 / 15, 1 / 15]
  z_ids = tokenize(z) if z else []
  sequence = [0] + doc_ids[:i] + z_ids + doc_ids[i:i + 5]
  with torch.inference_mode():
    log_probs = torch.log_softmax(torch_model(torch.tensor([sequence])).logits[0].double(), -1)
  loss = 0.0
  for t, w in enumerate(weights):
    if i + t >= len(doc_ids):
      break
    k = 1 + i + len(z_ids) + t
    loss -= w * float(log_probs[k - 1, sequence[k]])
  return loss


def test_inline_mode_equals_pytorch_and_shares_the_empty_loss(model, scorer):
  _, _, torch_model, tokenize = model
  documents, candidates = _candidates(tokenize)
  candidates = candidates[::3]
  inline = _score(scorer, loss_filter.FilterConfig(tau_f=0.0, mode="inline"), documents,
                  candidates)
  prefix = _score(scorer, loss_filter.FilterConfig(tau_f=0.0), documents, candidates)
  worst = 0.0
  for c, s, p in zip(candidates, inline, prefix):
    doc_ids = documents[c.doc]
    assert abs(s.loss_empty - p.loss_empty) < 1e-4
    for ours, z in ((s.loss_call, c.prefix_call), (s.loss_call_result, c.prefix_call_result)):
      worst = max(worst, abs(ours - _reference_inline_loss(torch_model, tokenize, doc_ids, z,
                                                           c.token_position)))
  assert worst < 1e-4, worst
  with pytest.raises(ValueError, match="mode must be"):
    loss_filter.FilterConfig(mode="suffix")
