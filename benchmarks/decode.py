"""Tool-use decoding throughput: the project's ToolSampler versus the public re-implementations' way.

Model: SmolLM2-135M (the shipped gguf, float32), batch 16, greedy. Two measurements, each
side by side in one run (compile time and first calls excluded, rounds interleaved):

1. Prompts that trigger calls (three Calculator demonstrations, then a question): the
   project's decoding (t5x's DecoderOnlyModel.predict_batch_with_aux with ToolSampler as
   decode_fn: one batched jitted loop, calls run from inside it, results written into the
   KV cache by one extend step) versus what public Toolformer re-implementations do, per
   example: transformers `generate` (with the same top-k trigger as a LogitsProcessor)
   until "->", run the tool, re-encode the whole text with the result, generate again.
   Both generate `--steps` tokens per example (inserted results included) with the same
   engine and Calculator; the outputs are compared.
2. Prompts that trigger no call: ToolSampler (tools on, top-10 trigger) versus t5x's own
   `decoding.temperature_sample` (temperature 0), same model call.

  python benchmarks/decode.py [--steps 32] [--batch 16] [--rounds 1] [--overhead_rounds 3]
      [--threads N]

Prints examples/s and tokens/s per side and the ratios; for context also t5x's plain
temperature_sample on the calling prompts (the same decoding without tools). The texts
of the two sides part after the first result: the re-encoded text tokenises the result's
surroundings differently from the tokens the batched decoder inserted.
"""

import argparse
import os
import random
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from forward import llama_pair  # pylint: disable=g-import-not-at-top,wrong-import-position

from toolformer_jax import vocab as vocab_lib  # pylint: disable=wrong-import-position
from toolformer_jax.decoding import tool_decoding  # pylint: disable=wrong-import-position
from toolformer_jax.tools import calculator  # pylint: disable=wrong-import-position
from toolformer_jax.tools import engine  # pylint: disable=wrong-import-position
from toolformer_jax.tools import call_format  # pylint: disable=wrong-import-position

DEMOS = ("Out of 1400 participants, 400 [Calculator(400 / 1400) -> 0.29] 29% passed the test.\n"
         "The price rose from 20 to 25 dollars, an increase of [Calculator(25 - 20) -> 5] 5 "
         "dollars.\n"
         "A box holds 12 eggs, so 7 boxes hold [Calculator(12 * 7) -> 84] 84 eggs.\n")
QUIET = (
    "The river flows slowly through the old town and past the mill, where",
    "She walked to the market early in the morning to buy fresh bread and",
    "The committee met on a cold winter evening to discuss the plans for",
    "In the spring the gardens behind the palace are full of",
    "He had always wanted to learn how to play the violin, so",
    "The small village lies at the foot of a green hill, surrounded by",
    "After the storm had passed, the fishermen went down to the harbour to",
    "The library was quiet except for the sound of",
    "Her grandmother told stories about the forest and the animals that",
    "The train left the station slowly, and soon the city was",
    "Most birds build their nests in the branches of tall trees, but some",
    "The old castle on the cliff has been empty for many years, and",
    "When the children came home from school, they found",
    "The recipe calls for butter, sugar and flour, which are mixed until",
    "The painter spent the whole summer by the sea, trying to capture",
    "On the first day of the festival, the streets were filled with",
)


def call_prompts(n: int):
  rng = random.Random(0)
  out = []
  for _ in range(n):
    a, b = rng.randint(10, 99), rng.randint(2, 9)
    out.append(DEMOS + f"A crate holds {a} bottles, so {b} crates hold")
  return out


def quiet_prompts(n: int):
  return [QUIET[i % len(QUIET)] for i in range(n)]


# --- the project's way ------------------------------------------------------------------
class JaxSide:
  """predict_batch_with_aux of ToolformerDecoderOnlyModel with a given decode_fn."""

  def __init__(self, module, params, vocabulary, decode_fn, steps: int):
    from toolformer_jax import models  # pylint: disable=g-import-not-at-top
    self.model = models.ToolformerDecoderOnlyModel(module, vocabulary, optimizer_def=None,
                                                   decode_fn=decode_fn)
    self.vocabulary = vocabulary
    self.steps = steps
    self.params = jax.device_put(params)
    self._fn = jax.jit(lambda p, tokens, causal: self.model.predict_batch_with_aux(
        p, {"decoder_input_tokens": tokens, "decoder_causal_attention": causal},
        decoder_params=dict(temperature=0.0, max_decode_steps=steps)))

  def features(self, prompts):
    ids = [self.vocabulary.encode(p) for p in prompts]
    length = -(-(1 + max(map(len, ids)) + self.steps) // 32) * 32
    tokens = np.zeros((len(ids), length), np.int32)
    causal = np.zeros((len(ids), length), np.int32)
    for b, row in enumerate(ids):
      tokens[b, 1:1 + len(row)] = row
      causal[b, :1 + len(row)] = 1
    return jnp.asarray(tokens), jnp.asarray(causal)

  def __call__(self, features):
    tokens, aux = self._fn(self.params, *features)
    return jax.tree.map(np.asarray, (tokens, aux))

  def texts(self, out):
    tokens, aux = out
    texts, calls = [], []
    for b in range(tokens.shape[0]):
      row = tokens[b, :self.steps].tolist()
      row = row[:row.index(0)] if 0 in row else row
      texts.append(self.vocabulary.decode(row))
      if "call_count" in aux:
        calls.append(tool_decoding.calls_from_aux(row, tool_decoding.split_aux(aux, b),
                                                  self.vocabulary))
    return texts, calls


# --- the re-implementations' way ----------------------------------------------------------
class TopKTrigger(transformers.LogitsProcessor):
  """Emits " [" when it is among the k most likely next tokens and the row has a call left
  and is not inside one (batch 1)."""

  def __init__(self, call_id: int, k: int, state: dict):
    self.call_id, self.k, self.state = call_id, k, state

  def __call__(self, input_ids, scores):
    if self.state["calls_left"] > 0 and not self.state["in_call"]:
      rank = int((scores[0] > scores[0, self.call_id]).sum())
      if rank < self.k:
        forced = torch.full_like(scores, -float("inf"))
        forced[0, self.call_id] = 0.0
        return forced
    return scores


class StopAtMarker(transformers.StoppingCriteria):
  """Stops after a token ending in "->" inside a call; tracks the call state."""

  def __init__(self, call_id: int, marker_ids, state: dict):
    self.call_id, self.marker_ids, self.state = call_id, set(marker_ids), state

  def __call__(self, input_ids, scores, **kwargs):
    last = int(input_ids[0, -1])
    if last == self.call_id and self.state["calls_left"] > 0 and not self.state["in_call"]:
      self.state["in_call"] = True
      return torch.tensor([False])
    return torch.tensor([self.state["in_call"] and last in self.marker_ids])


class TorchSide:
  """Per example: generate until "->", run the tool, re-encode everything, generate again."""

  def __init__(self, torch_model, vocabulary, executor, steps: int, k: int = 10,
               max_calls: int = 1):
    self.model, self.vocabulary, self.executor = torch_model, vocabulary, executor
    self.steps, self.k, self.max_calls = steps, k, max_calls
    self.call_id = vocab_lib.single_token_id(vocabulary, call_format.CALL_START)
    tables = tool_decoding.marker_tables(vocabulary)
    self.marker_ids = np.flatnonzero(tables.ends_arrow).tolist()
    self.eos = vocabulary.eos_id

  def one(self, prompt: str):
    state = {"calls_left": self.max_calls, "in_call": False}
    processors = transformers.LogitsProcessorList([TopKTrigger(self.call_id, self.k, state)])
    stopping = transformers.StoppingCriteriaList([StopAtMarker(self.call_id, self.marker_ids,
                                                               state)])
    generated = ""
    budget = self.steps
    calls = []
    while budget > 0:
      ids = torch.tensor([self.vocabulary.encode(prompt + generated)])  # re-encode it all
      with torch.no_grad():
        out = self.model.generate(ids, attention_mask=torch.ones_like(ids),
                                  max_new_tokens=budget, do_sample=False,
                                  logits_processor=processors, stopping_criteria=stopping,
                                  eos_token_id=self.eos, pad_token_id=0)
      new = out[0, ids.shape[1]:].tolist()
      budget -= len(new)
      generated += self.vocabulary.decode(new)
      if not (state["in_call"] and new and new[-1] in self.marker_ids) or budget <= 0:
        break
      start = generated.rfind(call_format.CALL_START)
      call_text = generated[start + len(call_format.CALL_START):generated.rfind(
          call_format.RESULT_MARKER)].strip()
      result = self.executor.execute(call_text)
      text = result.text if result.ok else f"{result.status}: {result.text}"
      completion = call_format.render_completion(text)
      completion_ids = self.vocabulary.encode(completion)[:budget]
      generated += self.vocabulary.decode(completion_ids)
      budget -= len(completion_ids)
      calls.append((call_text, text))
      state["calls_left"] -= 1
      state["in_call"] = False
    return generated, calls

  def __call__(self, prompts):
    return [self.one(p) for p in prompts]


# --- measurement --------------------------------------------------------------------------
def timed(fn, *args):
  start = time.perf_counter()
  out = fn(*args)
  return time.perf_counter() - start, out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=32, help="tokens generated per example")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--rounds", type=int, default=1, help="rounds of measurement 1")
  parser.add_argument("--overhead_rounds", type=int, default=3, help="rounds of measurement 2")
  parser.add_argument("--threads", type=int, default=None, help="torch threads")
  parser.add_argument("--parts", default="1,2", help="which measurements (1: calls, 2: "
                      "overhead without calls)")
  args = parser.parse_args(argv)
  if args.threads:
    torch.set_num_threads(args.threads)
  print(f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}")

  module, params, torch_model = llama_pair()
  vocabulary = vocab_lib.GgufBpeVocabulary()
  executor = engine.ToolExecutor({"Calculator": calculator.Calculator()}, cache_size=0)
  sampler = tool_decoding.ToolSampler(vocabulary, executor, trigger_top_k=10, max_calls=1)

  parts = {int(p) for p in args.parts.split(",")}
  if 1 in parts:
    measure_calls(args, module, params, torch_model, vocabulary, executor, sampler)
  if 2 in parts:
    measure_overhead(args, module, params, vocabulary, sampler)
  executor.close()


def measure_calls(args, module, params, torch_model, vocabulary, executor, sampler):
  """1. Prompts that call: ToolSampler (batch) vs per-example generate / tool / re-encode."""
  prompts = call_prompts(args.batch)
  from t5x import decoding  # pylint: disable=g-import-not-at-top
  jax_side = JaxSide(module, params, vocabulary, sampler, args.steps)
  no_tools = JaxSide(module, params, vocabulary, decoding.temperature_sample, args.steps)
  torch_side = TorchSide(torch_model, vocabulary, executor, args.steps)
  features = jax_side.features(prompts)
  compile_s, out = timed(jax_side, features)
  no_tools(features)
  texts, jax_calls = jax_side.texts(out)
  torch_side(prompts[:1])  # warm-up
  jax_times, torch_times, plain_times = [], [], []
  for _ in range(args.rounds):
    seconds, out = timed(jax_side, features)
    jax_times.append(seconds)
    seconds, torch_out = timed(torch_side, prompts)
    torch_times.append(seconds)
    plain_times.append(timed(no_tools, features)[0])
  jax_s, torch_s = statistics.median(jax_times), statistics.median(torch_times)
  plain_s = statistics.median(plain_times)
  made = sum(len(c) for c in jax_calls)
  torch_made = sum(len(c) for _, c in torch_out)

  def through_first_result(text):
    start = text.find(call_format.CALL_START)
    end = text.find(call_format.CALL_END, start)
    return text if start < 0 or end < 0 else text[:end + 1]

  same = sum(through_first_result(a) == through_first_result(b)
             for a, (b, _) in zip(texts, torch_out))
  same_calls = sum([(c["text"], c["result"]) for c in jc] == tc
                   for jc, (_, tc) in zip(jax_calls, torch_out))
  n = len(prompts)
  print(f"\n1. calling prompts: SmolLM2-135M, batch {n}, {args.steps} tokens per example, "
        f"greedy, top-10 trigger, 1 call (first jit call {compile_s:.1f} s, excluded)")
  print(f"  ToolSampler (t5x predict_batch_with_aux) {jax_s:7.2f} s  {n / jax_s:6.2f} ex/s  "
        f"{n * args.steps / jax_s:7.1f} tok/s  calls {made}/{n}")
  print(f"  transformers per example + re-encode     {torch_s:7.2f} s  {n / torch_s:6.2f} ex/s  "
        f"{n * args.steps / torch_s:7.1f} tok/s  calls {torch_made}/{n}")
  print(f"  t5x temperature_sample, no tools       {plain_s:7.2f} s  {n / plain_s:6.2f} ex/s  "
        f"{n * args.steps / plain_s:7.1f} tok/s  (the same prompts, for context)")
  print(f"  speed-up {torch_s / jax_s:.2f}x (goal >= 5x); same calls and results in "
        f"{same_calls}/{n}, identical text through the first result in {same}/{n}")
  example = jax_calls[0][0] if jax_calls and jax_calls[0] else None
  if example:
    print(f"  e.g. {example['text']} -> {example['result']} ({example['status']}, ' [' rank "
          f"{example['trigger_rank']})")



def measure_overhead(args, module, params, vocabulary, sampler):
  """2. Prompts that never call: ToolSampler (tools on) vs t5x's temperature_sample."""
  from t5x import decoding  # pylint: disable=g-import-not-at-top
  quiet = quiet_prompts(args.batch)
  n = len(quiet)
  plain = JaxSide(module, params, vocabulary, decoding.temperature_sample, args.steps)
  tools = JaxSide(module, params, vocabulary, sampler, args.steps)
  features = plain.features(quiet)
  plain(features), tools(features)  # compile
  plain_times, tools_times, plain_out, tools_out = [], [], None, None
  for round_index in range(args.overhead_rounds):  # alternating order: drift hits both
    for side in ((plain, tools) if round_index % 2 == 0 else (tools, plain)):
      seconds, side_out = timed(side, features)
      if side is plain:
        plain_times.append(seconds)
        plain_out = side_out
      else:
        tools_times.append(seconds)
        tools_out = side_out
  plain_s, tools_s = statistics.median(plain_times), statistics.median(tools_times)
  calls = int(tools_out[1]["call_count"].sum())
  equal = bool(np.array_equal(plain_out[0], tools_out[0]))
  print(f"\n2. prompts without calls: batch {n}, {args.steps} tokens per example, greedy")
  print(f"  t5x decoding.temperature_sample {plain_s:7.2f} s  {n * args.steps / plain_s:7.1f} tok/s")
  print(f"  ToolSampler, tools on (top-10)  {tools_s:7.2f} s  {n * args.steps / tools_s:7.1f} tok/s"
        f"  calls {calls}")
  print(f"  overhead {tools_s / plain_s:.3f}x (goal <= 1.2x); identical tokens: {equal}")


if __name__ == "__main__":
  main()
