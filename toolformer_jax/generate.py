r"""Generate with tool calls: Toolformer's decoding from the command line.

  python -m toolformer_jax.generate --gin_search_paths=gin \
      --gin_file=models/smollm2_135m.gin --checkpoint=smollm2 \
      --prompt="The ratio of 400 to 1400 is"
  python -m toolformer_jax.generate --gin_file=models/gptj_6b.gin \
      --checkpoint=/ckpt/toolformer_6b/checkpoint_2000 \
      --input=prompts.jsonl --output=outputs.jsonl [--tools=off] [--max_calls=3]
  python -m toolformer_jax.generate --checkpoint=/ckpt/toolformer_6b \
      --benchmark=svamp --benchmark_path=/data/SVAMP.json --num_examples=20 \
      --output=svamp.jsonl [--tools=off]

The model comes from the gin model file (MODEL, VOCABULARY) with
models/base/tool_decoding.gin on top (the same ToolSampler decode_fn `t5x.infer` uses with
gin/runs/infer_tools.gin), decoding runs through the model's `predict_batch_with_aux`.
--checkpoint is a t5x checkpoint (`.../checkpoint_<step>`, or a MODEL_DIR: its latest
checkpoint) or anything `toolformer_jax.checkpoints.sources.load_network` takes ('smollm2',
the embedded default; a .gguf file; an HF GPT-J directory). --input records are JSON
objects with "inputs" (other fields are kept); each output record adds "output" (the
generated text, inserted calls included) and "calls" (tool, args, result, status, rank and
probability of " [" at the trigger, step). With --prompt the output is printed with its
calls highlighted. Ends with a one-line summary.

--benchmark=NAME reads the first --num_examples examples of a benchmark file
(--benchmark_path; NAME one of toolformer_jax.evaluation.benchmarks.NAMES: svamp, asdiv,
mawps, gsm8k, lama, nq_open, triviaqa, webqs, mlqa, templama, or lama_<subset> /
mlqa_<language>; --benchmark_subset picks LAMA's subset or MLQA's question language) and
prompts them as the eval tasks do; each output record carries the benchmark's "question",
gold "answers" and "match" beside the "output", and "correct" (the paper's rule for that
benchmark), and the summary gives the accuracy. Unless TOOLS is bound, the tools the
paper takes away on that benchmark are left out (WikiSearch on LAMA, QA on the QA
benchmarks).
"""
from __future__ import annotations

import collections
import glob
import json
import os
import sys
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from absl import app
from absl import flags
import gin
import jax
import jax.numpy as jnp
import numpy as np

from toolformer_jax import cli

FLAGS = flags.FLAGS
TOOL_DECODING_GIN = "models/base/tool_decoding.gin"
DEFAULT_MODEL_GIN = "models/smollm2_135m.gin"


def define_flags() -> None:
  """The CLI flags (defined only when run as a program, so importing this module defines
  none)."""
  cli.define_gin_flags(
      f"Model gin files (searched in --gin_search_paths; default {DEFAULT_MODEL_GIN}). "
      f"{TOOL_DECODING_GIN} and {cli.NO_TRAINING_GIN} are added after them.")
  flags.DEFINE_string(
      "checkpoint", "smollm2", "A t5x checkpoint directory (checkpoint_<step>, or a "
      "MODEL_DIR) or a model source: 'smollm2', a .gguf file, an HF GPT-J directory.")
  flags.DEFINE_string("prompt", None, "One prompt; the output is printed.")
  flags.DEFINE_string("input", None, "A .jsonl file of records with \"inputs\".")
  flags.DEFINE_string("output", None,
                      "Where the output .jsonl goes (with --input or --benchmark).")
  flags.DEFINE_string(
      "benchmark", None, "A benchmark of toolformer_jax.evaluation.benchmarks (svamp, asdiv, "
      "mawps, gsm8k, lama, nq_open, triviaqa, webqs, mlqa, templama; lama_trex, mlqa_es, "
      "...): its examples are the prompts.")
  flags.DEFINE_string("benchmark_path", None, "The benchmark's file or folder (--benchmark).")
  flags.DEFINE_string("benchmark_subset", None,
                      "LAMA's subset (squad, google_re, trex, conceptnet) or MLQA's question "
                      "language (es, de, ...); default: from the file.")
  flags.DEFINE_integer("num_examples", None,
                       "The first N examples of the benchmark (of each LAMA subset or MLQA "
                       "language); default: all.")
  flags.DEFINE_enum("tools", "on", ["on", "off", "off_unmasked"],
                    "Tool calls on; off (as the paper's disabled Toolformer: no token "
                    "holding '[' is generated); or off_unmasked (plain decoding, a "
                    "diagnostic: call text may appear and runs nothing).")
  flags.DEFINE_integer(
      "trigger_top_k", 10, "Emit ' [' when it is among this many most likely next tokens.")
  flags.DEFINE_integer("max_calls", 1, "Calls per output.")
  flags.DEFINE_integer(
      "max_decode_steps", 64, "Tokens generated per prompt (inserted results included).")
  flags.DEFINE_float("temperature", 0.0, "Sampling temperature (0: greedy).")
  flags.DEFINE_integer("topk", 0, "Sample from the top k tokens (0: all).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_integer("batch_size", 8, "Prompts decoded together.")
  flags.DEFINE_enum("color", "auto", ["auto", "always", "never"],
                    "Highlight calls with ANSI colours (--prompt).")


@gin.configurable("toolformer_generate")
def _configured(model=gin.REQUIRED):
  return model


class GenerateError(ValueError):
  """Bad flags or inputs (printed as one line)."""


# --- model and parameters ----------------------------------------------------------------
def build_model(gin_files: Sequence[str], bindings: Sequence[str],
                search_paths: Optional[Sequence[str]] = None):
  """The gin MODEL with tool decoding (models/base/tool_decoding.gin) on top (and
  runs/base/no_training.gin: nothing trains)."""
  files = (list(gin_files) or [DEFAULT_MODEL_GIN]) + [TOOL_DECODING_GIN, cli.NO_TRAINING_GIN]
  with gin.unlock_config():
    cli.parse_gin(files, ["toolformer_generate.model = %MODEL"] + list(bindings),
                  search_paths, finalize=False)
  return _configured()


def latest_checkpoint(path: str) -> str:
  """`path` if it is a checkpoint_<step> directory, else its newest such subdirectory."""
  if os.path.isdir(os.path.join(path, "state")):
    return path
  steps = []
  for sub in glob.glob(os.path.join(path, "checkpoint_*")):
    tail = os.path.basename(sub).split("_")[-1]
    if tail.isdigit() and os.path.isdir(os.path.join(sub, "state")):
      steps.append((int(tail), sub))
  if not steps:
    raise GenerateError(f"{path} holds no t5x checkpoint (checkpoint_<step>/state)")
  return max(steps)[1]


def load_params(checkpoint: str, module) -> Tuple[Any, str]:
  """(params for `module`, a description) from a t5x checkpoint or a model source."""
  from toolformer_jax.checkpoints import sources  # pylint: disable=g-import-not-at-top
  from toolformer_jax.checkpoints import t5x_export  # pylint: disable=g-import-not-at-top
  is_t5x = os.path.isdir(checkpoint) and (
      os.path.isdir(os.path.join(checkpoint, "state"))
      or glob.glob(os.path.join(checkpoint, "checkpoint_*")))
  if is_t5x:
    path = latest_checkpoint(checkpoint)
    params, step = t5x_export.load_t5x_params(path)
    what = f"t5x checkpoint {path} (step {step})"
  else:
    try:
      _, params, kind = sources.load_network(checkpoint,
                                             scan_layers=bool(module.config.scan_layers))
    except (sources.ConvertError, FileNotFoundError) as e:
      raise GenerateError(str(e)) from e
    what = f"{kind} {checkpoint}"
  try:
    t5x_export.check_params(params, module)
  except ValueError as e:
    raise GenerateError(f"{what} does not fit the gin model: {e}") from e
  return params, what


# --- decoding ---------------------------------------------------------------------------
def read_records(path: str) -> List[Dict[str, Any]]:
  """The {"inputs": str, ...} records of a jsonl file, through the corpora record layer: a
  line that is not a JSON object or has no "inputs" string is counted, logged and skipped."""
  from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
  stats = corpora.ReadStats(path)
  records = []
  for number, record in corpora.iter_json_records(path, stats):
    if not isinstance(record.get("inputs"), str):
      stats.skip(corpora.missing("inputs"), f"{path}:{number}")
      continue
    stats.count_read()
    records.append(record)
  if stats.skipped:
    stats.log_summary()
  if not records:
    raise GenerateError(f"{path}: no records" + (f" ({stats.summary()})" if stats.skipped
                                                 else ""))
  return records


class Generator:
  """Batched tool-use generation with a t5x model (`predict_batch_with_aux`)."""

  def __init__(self, model, params, max_decode_steps: int, temperature: float = 0.0,
               topk: int = 0, batch_size: int = 8, seed: int = 0):
    if max_decode_steps < 1 or batch_size < 1:
      raise GenerateError("--max_decode_steps and --batch_size must be >= 1")
    self.model = model
    self.vocabulary = model.output_vocabulary
    self.params = jax.device_put(params)
    self.max_decode_steps = max_decode_steps
    self.batch_size = batch_size
    self.rng = jax.random.PRNGKey(seed)
    decoder_params = dict(temperature=temperature, topk=topk,
                          max_decode_steps=max_decode_steps)
    self._predict = jax.jit(lambda p, tokens, causal, rng: model.predict_batch_with_aux(
        p, {"decoder_input_tokens": tokens, "decoder_causal_attention": causal},
        decoder_params=dict(decoder_params, decode_rng=rng)))

  def encode(self, prompts: Sequence[str]) -> List[List[int]]:
    out = []
    for i, prompt in enumerate(prompts):
      ids = [t for t in self.vocabulary.encode(prompt) if t != 0]
      if not ids:
        raise GenerateError(f"prompt {i} is empty")
      out.append(ids)
    return out

  def length_for(self, prompt_ids: Sequence[Sequence[int]]) -> int:
    """Feature length: BOS + the longest prompt + the decode steps, rounded up to 32."""
    need = 1 + max(len(p) for p in prompt_ids) + self.max_decode_steps
    return -(-need // 32) * 32

  def generate(self, prompts: Sequence[str], progress: Optional[Any] = None
               ) -> Iterable[Tuple[str, List[Dict[str, Any]], List[int]]]:
    """(output text, calls, output tokens) per prompt, in order."""
    from toolformer_jax.decoding import tool_decoding  # pylint: disable=g-import-not-at-top
    ids = self.encode(prompts)
    length = self.length_for(ids)
    for start in range(0, len(ids), self.batch_size):
      chunk = ids[start:start + self.batch_size]
      rows = chunk + [chunk[-1]] * (self.batch_size - len(chunk))  # fixed shape
      tokens = np.zeros((self.batch_size, length), np.int32)
      causal = np.zeros((self.batch_size, length), np.int32)
      for b, row in enumerate(rows):
        tokens[b, 1:1 + len(row)] = row
        causal[b, :1 + len(row)] = 1
      self.rng, rng = jax.random.split(self.rng)
      out, aux = self._predict(self.params, jnp.asarray(tokens), jnp.asarray(causal), rng)
      out, aux = np.asarray(out), jax.tree.map(np.asarray, aux)
      for b in range(len(chunk)):
        row = out[b, :self.max_decode_steps].tolist()
        if 0 in row:
          row = row[:row.index(0)]
        calls = tool_decoding.calls_from_aux(row, tool_decoding.split_aux(aux, b),
                                             self.vocabulary)
        yield self.vocabulary.decode(row), calls, row
      if progress is not None:
        progress.update(len(chunk))


# --- presentation -----------------------------------------------------------------------
def highlight(vocabulary, tokens: Sequence[int], calls: Sequence[Dict[str, Any]],
              color: bool) -> str:
  """The output text with each call span marked (ANSI colours, or «...» without)."""
  if not calls:
    return vocabulary.decode(list(tokens))
  pieces, pos = [], 0
  for call in calls:
    start, end = call["position"], call["end"]
    pieces.append(vocabulary.decode(list(tokens[pos:start])))
    span = vocabulary.decode(list(tokens[start:end]))
    ok = call["status"] == "ok"
    pieces.append(f"\033[1;{'36' if ok else '31'}m{span}\033[0m" if color else f"«{span}»")
    pos = end
  pieces.append(vocabulary.decode(list(tokens[pos:])))
  return "".join(pieces)


def describe(call: Dict[str, Any]) -> str:
  name = call["tool"] or "?"
  args = call["args"] if call["args"] is not None else call["text"]
  return (f"{name}({args}) -> {call['result']!r} [{call['status']}; ' [' rank "
          f"{call['trigger_rank']}, p={call['trigger_prob']:.3f}, step {call['step']}]")


def summary(counts: collections.Counter, outputs: int, seconds: float, where: str) -> str:
  statuses = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
  return (f"generate: {outputs} outputs, {sum(counts.values())} calls ({statuses}) in "
          f"{seconds:.1f} s{where}")


# --- main -------------------------------------------------------------------------------
def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  given = [f for f in ("prompt", "input", "benchmark") if getattr(FLAGS, f) is not None]
  if len(given) != 1:
    raise app.UsageError("give exactly one of --prompt, --input or --benchmark")
  if FLAGS.prompt is None and not FLAGS.output:
    raise app.UsageError(f"--{given[0]} needs --output")
  if (FLAGS.benchmark is None) != (FLAGS.benchmark_path is None):
    raise app.UsageError("--benchmark and --benchmark_path go together")
  try:
    return _run()
  except GenerateError as e:
    print(f"generate: error: {e}", file=sys.stderr)
    return 1


def benchmark_records(name: str, path: str, subset: Optional[str] = None,
                      count: Optional[int] = None) -> List[Dict[str, Any]]:
  """The records of `--benchmark` (benchmarks.generate_records; errors as GenerateError)."""
  from toolformer_jax.evaluation import benchmarks  # pylint: disable=g-import-not-at-top
  try:
    return benchmarks.generate_records(name, path, subset, count)
  except (ValueError, FileNotFoundError) as e:
    raise GenerateError(str(e)) from e


def paper_tools_binding(name: str, bindings: Sequence[str]) -> List[str]:
  """["TOOLS = [...]"]: every tool but those the paper takes away on benchmark `name`;
  [] when the benchmark takes none away or a binding already sets TOOLS."""
  from toolformer_jax.evaluation import benchmarks  # pylint: disable=g-import-not-at-top
  from toolformer_jax.tools import registry  # pylint: disable=g-import-not-at-top
  excluded = benchmarks.parse_name(name)[0].excluded_tools
  if not excluded or any(b.replace(" ", "").startswith("TOOLS=") for b in bindings):
    return []
  return [f"TOOLS = {[t for t in registry.DEFAULT_TOOLS if t not in excluded]!r}"]


def score(record: Dict[str, Any], output: str) -> bool:
  """Whether `output` answers a benchmark record (its answers and match)."""
  from toolformer_jax.evaluation import metrics  # pylint: disable=g-import-not-at-top
  return metrics.is_correct(output, record["answers"], record["match"])


def _run() -> int:
  start = time.time()
  if FLAGS.prompt is not None:
    records = [{"inputs": FLAGS.prompt}]
  elif FLAGS.benchmark is not None:
    records = benchmark_records(FLAGS.benchmark, FLAGS.benchmark_path,
                                FLAGS.benchmark_subset, FLAGS.num_examples)
    if not records:
      raise GenerateError(f"--num_examples={FLAGS.num_examples}: no examples")
  else:
    records = read_records(FLAGS.input)
  top_k = FLAGS.trigger_top_k if FLAGS.tools == "on" else 0
  bindings = [f"TOOL_TRIGGER_TOP_K = {top_k}", f"TOOL_MAX_CALLS = {FLAGS.max_calls}",
              f"TOOL_BLOCK_CALLS_WHEN_OFF = {FLAGS.tools != 'off_unmasked'}"]
  if FLAGS.benchmark is not None:
    bindings += paper_tools_binding(FLAGS.benchmark, FLAGS.gin_bindings)
  model = build_model(FLAGS.gin_file, bindings + list(FLAGS.gin_bindings),
                      FLAGS.gin_search_paths)
  params, what = load_params(FLAGS.checkpoint, model.module)
  tools = (f"on (top-{top_k}, {FLAGS.max_calls} call(s))" if top_k else
           {"off": "off (call opener masked)", "off_unmasked": "off (unmasked)"}[FLAGS.tools])
  print(f"generate: {what}; tools {tools}", file=sys.stderr)
  generator = Generator(model, params, FLAGS.max_decode_steps, FLAGS.temperature,
                        FLAGS.topk, min(FLAGS.batch_size, len(records)), FLAGS.seed)
  counts: collections.Counter = collections.Counter()
  prompts = [r["inputs"] for r in records]
  if FLAGS.prompt is not None:
    (text, calls, tokens), = generator.generate(prompts)
    color = FLAGS.color == "always" or (FLAGS.color == "auto" and sys.stdout.isatty())
    print(FLAGS.prompt + highlight(generator.vocabulary, tokens, calls, color))
    for i, call in enumerate(calls, 1):
      print(f"  call {i}: {describe(call)}")
      counts[call["status"]] += 1
    print(summary(counts, 1, time.time() - start, ""), file=sys.stderr)
    return 0

  try:
    import tqdm  # pylint: disable=g-import-not-at-top
    progress = tqdm.tqdm(total=len(prompts), desc="generate", unit="prompt", file=sys.stderr)
  except ImportError:  # pragma: no cover
    progress = None
  tmp = FLAGS.output + ".tmp"
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
  correct = 0
  with open(tmp, "w") as f:
    for record, (text, calls, _) in zip(records, generator.generate(prompts, progress)):
      for call in calls:
        counts[call["status"]] += 1
      out = dict(record, output=text, calls=calls)
      if FLAGS.benchmark is not None:
        out["correct"] = score(record, text)
        correct += out["correct"]
      f.write(json.dumps(out, ensure_ascii=False) + "\n")
  os.replace(tmp, FLAGS.output)
  if progress is not None:
    progress.close()
  where = f" -> {FLAGS.output}"
  if FLAGS.benchmark is not None:
    where += (f"; {FLAGS.benchmark}: {correct} of {len(records)} correct "
              f"({100.0 * correct / len(records):.1f}%)")
  print(summary(counts, len(records), time.time() - start, where))
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main)
