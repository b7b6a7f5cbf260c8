"""Annotation throughput: the filter kernel and forked-cache call sampling versus the
straightforward way, measured side by side in one run.

Filter (prefix mode). Candidates scored per second by `LossDifferenceFilter` (one jitted
kernel, rows shared per document and prefix, truncated at i + window, log-probs only where
a weight needs them) versus a per-candidate transformers PyTorch loop that runs three
full-document forwards per candidate ([0] + ids(z) + ids(x) for z = empty, e(c), e(c, r);
log_softmax over the full logits), as public re-implementations filter. Same weights: a
~125M GPT-J with random weights made by transformers, imported with `load_hf_gptj`; real
GPT-2 BPE (HF ids) on bundled Wikipedia leads of 100-200 tokens, Calculator calls at
several positions of each (before number tokens where there are any). Prints the max
|loss difference| between the two, and the kernel's FLOP/s as a fraction of this machine's
float32 matmul peak (a large jitted matmul, measured in the same run, best of its rounds).

Call sampling. Calls per second of `CallSampler.encode_documents` + `sample_calls` (the
prompt prefix prefilled once, each document appended to it once, the KV cache forked into
one row per position, one extend per generated token for all rows) versus recomputing the prefix at every step (one full
forward of [0] + P(x) + x_{<i} + " [" + generated per row and token, logits only at the
last position, lengths padded to multiples of 64 so it compiles a few shapes). Greedy by
default, so both must write the same calls: the run prints how many agree. Model:
SmolLM2-135M (`--sampling_model smollm2`, the Calculator prompt) or the same random GPT-J.

Compile time and first calls are excluded on both sides of each comparison. The PyTorch
loop and the recompute baseline run on a subset of the candidates / rows (flags): their
cost is linear in it, so rates compare.

  python benchmarks/annotate.py [--filter_docs 3] [--positions 2] [--calls 2]
      [--baseline_candidates 4] [--rounds 2] [--sampling_docs 1] [--sampling_positions 4]
      [--baseline_rows 1] [--max_call_tokens 12] [--sampling_model smollm2|gptj_125m]
      [--peak_size 2048] [--threads N] [--skip filter|sampling]

The defaults take about 5 minutes on 2 busy CPU cores; the filter's rows are padded to
FilterConfig.rows_per_batch (16), so small runs execute more padding than the pipeline's
batches of 8 documents do (the "useful" FLOP/s line shows how much).
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np
import torch

from toolformer_jax import corpora
from toolformer_jax.annotate import loss_filter
from toolformer_jax.annotate import sampling
from toolformer_jax.tools import call_format
from toolformer_jax.vocab import Gpt2Vocabulary

import forward as forward_benchmark  # benchmarks/forward.py, beside this script

WINDOW = 5


# ----------------------------------------------------------------------------- setup


def random_gptj(tmp: str):
  """(module, params, torch model) of the ~125M GPT-J preset with one set of random weights."""
  return forward_benchmark.gptj_pair(tmp)


def wikipedia_texts(encode, count: int, low: int = 100, high: int = 200, skip: int = 0):
  """`count` bundled English leads of low..high tokens under `encode` (in file order)."""
  out = []
  stats = corpora.ReadStats("wikipedia")
  for k, doc in enumerate(corpora.read_wikipedia(corpora.bundled_corpus_path("en-us"), stats,
                                                 language="en")):
    if k < skip:
      continue
    if low <= len(encode(doc.text)) <= high:
      out.append(doc.text)
      if len(out) == count:
        return out
  raise SystemExit(f"only {len(out)} bundled leads of {low}-{high} tokens")


def calculator_candidates(documents, tokenizer, positions: int, calls: int, seed: int = 0):
  """Calculator candidates at `positions` positions per document, `calls` calls each."""
  rng = np.random.default_rng(seed)
  candidates = []
  for d, ids in documents.items():
    digits = [i for i in range(1, len(ids)) if any(ch.isdigit() for ch in
                                                   tokenizer.decode([ids[i]]))]
    others = [i for i in range(1, len(ids)) if i not in digits]
    rng.shuffle(digits)
    rng.shuffle(others)
    for i in sorted((digits + others)[:positions]):
      for _ in range(calls):
        a, b = (int(v) for v in rng.integers(2, 1000, size=2))
        op = "+-*/"[int(rng.integers(4))]
        value = {"+": a + b, "-": a - b, "*": a * b, "/": round(a / b, 2)}[op]
        call = call_format.parse_call(f"Calculator({a} {op} {b})")
        candidates.append(loss_filter.Candidate(
            doc=d, token_position=int(i), prefix_call=call_format.render_call(call),
            prefix_call_result=call_format.render_call(call, f"{value:g}")))
  return candidates


def matmul_peak(size: int, rounds: int = 5) -> float:
  """Best FLOP/s of a jitted float32 [size, size] @ [size, size] on this machine."""
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((size, size), np.float32))
  b = jnp.asarray(rng.standard_normal((size, size), np.float32))
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  best = float("inf")
  for _ in range(rounds):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2.0 * size ** 3 / best


# ----------------------------------------------------------------------------- filter


def torch_losses(torch_model, tokenize, doc_ids, candidate):
  """(L(empty), L(e(c)), L(e(c, r))) with three full-document PyTorch forwards."""
  weights = loss_filter.loss_weights(WINDOW)
  out = []
  for z in ("", candidate.prefix_call, candidate.prefix_call_result):
    z_ids = tokenize(z) if z else []
    sequence = [loss_filter.START_ID] + z_ids + list(doc_ids)
    with torch.inference_mode():
      logits = torch_model(torch.tensor([sequence])).logits[0]
      log_probs = torch.log_softmax(logits, dim=-1).double().numpy()
    offset, i, loss = 1 + len(z_ids), candidate.token_position, 0.0
    for t, w in enumerate(weights):
      if i + t >= len(doc_ids):
        break
      k = offset + i + t
      loss -= w * log_probs[k - 1, sequence[k]]
    out.append(loss)
  return out


def kernel_flops(config, params, tokens_shape, positions_shape, lengths=None, needed=None):
  """Matmul FLOPs of one kernel call: padded shapes, or the real rows when given
  `lengths` (tokens per row) and `needed` (log-probs per row); causal attention counts
  half of the score matrix for real rows, all of it for padded ones (XLA computes it)."""
  body = sum(np.size(x) for x in jax.tree.leaves(params)) - np.size(
      params["token_embedder"]["embedding"]) - sum(
          np.size(x) for x in jax.tree.leaves(params["lm_head"]))
  attention = 4 * config.num_layers * config.num_heads * config.head_dim
  head = 2 * config.d_model * config.vocab_size
  if lengths is None:
    rows, length = tokens_shape
    return rows * (2 * body * length + attention * length * length
                   + head * positions_shape[1])
  return sum(2 * body * n + attention * n * (n + 1) / 2 + head * p
             for n, p in zip(lengths, needed))


def bench_filter(args, tmp):
  tokenizer = Gpt2Vocabulary().tokenizer
  tokenize = lambda s: tokenizer.encode(s).ids
  module, params, torch_model = random_gptj(tmp)
  texts = wikipedia_texts(tokenize, args.filter_docs)
  documents = {d: tokenize(t) for d, t in enumerate(texts)}
  candidates = calculator_candidates(documents, tokenizer, args.positions, args.calls)
  lengths = [len(x) for x in documents.values()]
  print(f"[filter] GPT-J 125m (random weights, float32), {len(documents)} Wikipedia leads of "
        f"{min(lengths)}-{max(lengths)} tokens, {len(candidates)} Calculator candidates "
        f"({args.positions} positions x {args.calls} calls per document)")
  params = jax.tree.map(jnp.asarray, params)
  scorer = loss_filter.LossDifferenceFilter(module, params, tokenize,
                                           loss_filter.FilterConfig(window=WINDOW))
  kernel = scorer._kernel  # pylint: disable=protected-access
  calls = []

  def timed_kernel(*kernel_args):
    start = time.perf_counter()
    out = kernel(*kernel_args).block_until_ready()
    calls.append((time.perf_counter() - start, kernel_args[1].shape, kernel_args[2].shape))
    return out

  scorer._kernel = timed_kernel  # pylint: disable=protected-access
  scores = scorer.score(documents, candidates)  # compiles every bucket shape
  rows, _, _ = scorer.plan(documents, candidates)
  compiled = len(scorer.compiled_shapes)
  score_times, kernel_times = [], []
  for _ in range(args.rounds):
    calls.clear()
    start = time.perf_counter()
    scorer.score(documents, candidates)
    score_times.append(time.perf_counter() - start)
    kernel_times.append(sum(c[0] for c in calls))
  jax_seconds, jax_kernel = statistics.median(score_times), statistics.median(kernel_times)
  jax_rate = len(candidates) / jax_seconds

  step = max(1, len(candidates) // max(1, args.baseline_candidates))
  subset = list(range(0, len(candidates), step))[:args.baseline_candidates]
  torch_model(torch.tensor([[0] + documents[0]]))  # first call
  worst_loss, worst_gain = 0.0, 0.0
  start = time.perf_counter()
  reference = [torch_losses(torch_model, tokenize, documents[candidates[k].doc], candidates[k])
               for k in subset]
  torch_seconds = time.perf_counter() - start
  for k, (empty, call, call_result) in zip(subset, reference):
    s = scores[k]
    worst_loss = max(worst_loss, abs(s.loss_empty - empty), abs(s.loss_call - call),
                     abs(s.loss_call_result - call_result))
    worst_gain = max(worst_gain, abs((s.loss_minus - s.loss_plus)
                                     - (min(empty, call) - call_result)))
  torch_rate = len(subset) / torch_seconds
  peak = max(matmul_peak(args.peak_size), matmul_peak(args.peak_size))
  padded = sum(kernel_flops(module.config, params, t, p) for _, t, p in calls)
  useful = kernel_flops(module.config, params, None, None, [len(r.tokens) for r in rows],
                        [len(r.positions) for r in rows])
  torch_lengths = [1 + len(tokenize(z)) + len(documents[candidates[k].doc])
                   for k in subset for z in ("", candidates[k].prefix_call,
                                             candidates[k].prefix_call_result)]
  torch_flops = kernel_flops(module.config, params, None, None, torch_lengths,
                             torch_lengths)  # full logits: the head at every position
  print(f"  jax filter   {jax_rate:8.2f} candidates/s  ({jax_seconds:.2f} s per pass of "
        f"{len(candidates)}, median of {args.rounds}; kernel {jax_kernel:.2f} s, "
        f"{len(rows)} rows in {len(calls)} batches, "
        f"{compiled} compiled shapes)")
  print(f"  torch loop   {torch_rate:8.2f} candidates/s  ({torch_seconds:.2f} s for "
        f"{len(subset)} candidates, {3 * len(subset)} full-document forwards)")
  print(f"  ratio jax/torch {jax_rate / torch_rate:6.1f}x candidates/s;  max |loss diff| "
        f"{worst_loss:.1e}, max |(L- - L+) diff| {worst_gain:.1e} over {len(subset)} "
        f"candidates")
  print(f"  matmul peak (jitted f32 {args.peak_size}^2 @ {args.peak_size}^2, best) "
        f"{peak / 1e9:.1f} GFLOP/s;  kernel executed {padded / jax_kernel / 1e9:.1f} "
        f"GFLOP/s = {padded / jax_kernel / peak:.0%} of peak (padded shapes), useful "
        f"{useful / jax_kernel / 1e9:.1f} GFLOP/s = {useful / jax_kernel / peak:.0%} "
        f"(real tokens, causal half); torch loop {torch_flops / torch_seconds / 1e9:.1f} "
        f"GFLOP/s = {torch_flops / torch_seconds / peak:.0%}")
  print(f"  work: jax kernel {padded / 1e9:.0f} GFLOP executed ({useful / 1e9:.0f} useful) "
        f"for {len(candidates)} candidates = {padded / len(candidates) / 1e9:.2f} GFLOP per "
        f"candidate; torch {torch_flops / len(subset) / 1e9:.2f} GFLOP per candidate")


# ----------------------------------------------------------------------------- sampling


def recompute_calls(module, params, vocabulary, contexts, starts, wanted, call_start_id,
                    max_call_tokens):
  """Greedy calls with one full forward per generated token and row (no cache)."""
  forward = jax.jit(lambda p, t, last: module.apply(
      {"params": p}, t, enable_dropout=False, output="logits", output_positions=last))

  def run(warm_only=False):
    texts, seen = [], set()
    for d, i in wanted:
      sequence = list(contexts[d][:starts[d] + i]) + [call_start_id]
      generated, text = [], ""
      for _ in range(max_call_tokens):
        length = -(-len(sequence) // 64) * 64
        if warm_only:
          if length not in seen:
            seen.add(length)
            forward(params, jnp.zeros((1, length), jnp.int32),
                    jnp.zeros((1, 1), jnp.int32)).block_until_ready()
          sequence = sequence + [0]
          continue
        tokens = np.zeros((1, length), np.int32)
        tokens[0, :len(sequence)] = sequence
        logits = forward(params, tokens, np.array([[len(sequence) - 1]], np.int32))
        chosen = int(np.argmax(np.asarray(logits)[0, 0]))
        generated.append(chosen)
        sequence.append(chosen)
        text = vocabulary.decode(generated)
        if call_format.CALL_END in text or call_format.RESULT_MARKER in text:
          break
      texts.append(text)
    return texts

  return run


def _cut(text: str) -> str:
  for marker in (call_format.CALL_END, call_format.RESULT_MARKER):
    text = text.split(marker)[0]
  return text.strip()


def bench_sampling(args, tmp):
  if args.sampling_model == "smollm2":
    from toolformer_jax import convert  # pylint: disable=g-import-not-at-top
    from toolformer_jax.vocab import GgufBpeVocabulary  # pylint: disable=g-import-not-at-top
    module, params, _ = convert.load_network("smollm2")
    vocabulary = GgufBpeVocabulary()
    name = "SmolLM2-135M"
  else:
    from toolformer_jax.convert import load_network  # pylint: disable=g-import-not-at-top
    random_gptj(tmp)
    module, params, _ = load_network(tmp)
    vocabulary = Gpt2Vocabulary()
    name = "GPT-J 125m (random weights)"
  params = jax.tree.map(jnp.asarray, params)
  config = sampling.SamplingConfig(tau_s=0.0, top_k_positions=args.sampling_positions,
                                   calls_per_position=1, max_call_tokens=args.max_call_tokens,
                                   temperature=0.0, max_document_tokens=200)
  sampler = sampling.CallSampler(module, params, vocabulary, config)
  prompt = sampling.Prompt.load("Calculator")
  encode = lambda s: [int(t) for t in vocabulary.encode(s)]
  texts = wikipedia_texts(encode, args.sampling_docs, skip=200)
  docs = [sampler.document_ids(t) for t in texts]
  encoded = sampler.encode_documents(prompt, docs)
  positions = [sampler.select_positions(p) for p in encoded.probs]
  contexts, starts = sampler._contexts(prompt, docs)  # pylint: disable=protected-access
  wanted = [(d, i) for d, ps in enumerate(positions) for i in ps]
  print(f"[sampling] {name}, Calculator prompt, {len(docs)} Wikipedia leads of "
        f"{min(map(len, docs))}-{max(map(len, docs))} tokens (contexts of "
        f"{min(map(len, contexts))}-{max(map(len, contexts))} tokens), top "
        f"{args.sampling_positions} positions each by p(\" [\"): {len(wanted)} rows, greedy, "
        f"at most {args.max_call_tokens} call tokens")
  rng = jax.random.PRNGKey(0)
  sampler.sample_calls(encoded, positions, rng)  # compile
  times, sampled = [], None
  for _ in range(args.rounds):
    start = time.perf_counter()  # the documents' pass (the cache calls fork from) + calls
    sampled = sampler.sample_calls(sampler.encode_documents(prompt, docs), positions, rng)
    times.append(time.perf_counter() - start)
  fork_seconds = statistics.median(times)
  fork_rate = len(wanted) / fork_seconds
  forked = [s.text for calls in sampled for s in calls]
  step = max(1, len(wanted) // max(1, args.baseline_rows))
  subset = list(range(0, len(wanted), step))[:args.baseline_rows]
  baseline = recompute_calls(module, params, vocabulary, contexts, starts,
                             [wanted[k] for k in subset], sampler.call_start_id,
                             args.max_call_tokens)
  baseline(warm_only=True)  # compile every padded length it will meet
  start = time.perf_counter()
  recomputed = baseline()
  recompute_seconds = time.perf_counter() - start
  recompute_rate = len(subset) / recompute_seconds
  agree = sum(_cut(recomputed[j]) == forked[k] for j, k in enumerate(subset))
  tokens = sum(len(vocabulary.encode(t)) for t in recomputed)
  print(f"  forked cache {fork_rate:8.3f} calls/s  ({fork_seconds:.2f} s for {len(wanted)} "
        f"calls, median of {args.rounds}: the prompt prefix cached, {len(docs)} document extends, "
        f"one extend per token)")
  print(f"  recompute    {recompute_rate:8.3f} calls/s  ({recompute_seconds:.2f} s for "
        f"{len(subset)} calls, {tokens} generated tokens = full forwards)")
  print(f"  ratio forked/recompute {fork_rate / recompute_rate:6.1f}x calls/s;  identical "
        f"greedy calls {agree}/{len(subset)};  e.g. {forked[subset[0]]!r}")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--filter_docs", type=int, default=3)
  parser.add_argument("--positions", type=int, default=2, help="filter: positions per doc")
  parser.add_argument("--calls", type=int, default=2, help="filter: calls per position")
  parser.add_argument("--baseline_candidates", type=int, default=4,
                      help="filter: candidates the PyTorch loop scores")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--peak_size", type=int, default=2048)
  parser.add_argument("--sampling_docs", type=int, default=1)
  parser.add_argument("--sampling_positions", type=int, default=4)
  parser.add_argument("--baseline_rows", type=int, default=1,
                      help="sampling: rows the recompute baseline decodes")
  parser.add_argument("--max_call_tokens", type=int, default=12)
  parser.add_argument("--sampling_model", default="smollm2", choices=["smollm2", "gptj_125m"])
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--skip", default="", help="comma list of filter, sampling")
  args = parser.parse_args(argv)
  torch.set_num_threads(args.threads)
  skip = set(filter(None, args.skip.split(",")))
  print(f"float32, jax devices {jax.devices()}, torch threads {args.threads}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
  start = time.perf_counter()
  with tempfile.TemporaryDirectory() as tmp:
    if "filter" not in skip:
      bench_filter(args, tmp)
    if "sampling" not in skip:
      bench_sampling(args, tmp)
  print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  main()
