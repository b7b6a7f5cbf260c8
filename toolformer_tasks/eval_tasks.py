"""Eval tasks and the eval mixture for `python -m t5x.eval` (gin/runs/eval_tools.gin).

Task names are `toolformer_eval_<source>` plus the vocabulary's suffix (vocabularies.py),
and the source's first word is its family (the report's tables):

  toolformer_eval_math_asdiv                ASDiv, read from ASDIV_PATH / $TOOLFORMER_ASDIV_PATH
                                            (or 'tfds:DATA_DIR', asdiv_tfds.py)
  toolformer_eval_<benchmark source>        the paper's benchmarks read from their published
                                            files, registered only when BENCHMARK_PATHS names
                                            them (`register_benchmark_tasks`;
                                            toolformer_jax.evaluation.benchmarks: math_svamp,
                                            math_mawps, math_gsm8k, facts_lama_<subset>,
                                            qa_nq_open, qa_triviaqa, qa_webqs,
                                            mlqa_<split>_<lang>, dates_templama)
  toolformer_eval_<generator>               one per generator of toolformer_jax.evaluation
                                            (math_templates_v2, math_gsm_symbolic_v2,
                                            math_basic_arithmetic_v2, facts_geography_v1,
                                            facts_leads_v1, qa_leads_v2, dates_given_v2,
                                            dates_calendar_v2, mlqa_es_v2, mlqa_fr_v2)
  toolformer_eval_lm_wiki                   held-out Wikipedia perplexity (scored: no
                                            decoding, so API calls are always disabled)
  toolformer_eval_jsonl_<name>              the user's own jsonl (`register_jsonl_task`)
  toolformer_eval                           the mixture `eval_mixture` builds

Generation tasks have `inputs` (the prompt, no EOS), `targets` (the gold answer) and the
string features `answers` (a JSON list) and `match` that `metrics.postprocess` turns into
the metric's targets; their one metric fn, `metrics.tool_eval_metrics`, takes aux values,
so seqio calls t5x's predict_with_aux once per example (the calls of tool-use decoding are
in the aux). A prompt longer than the inputs length loses its beginning, not its end
(`keep_last_tokens`). All tasks have the one split `validation`.

The LM task feeds the same PrefixLM feature converter as the generation tasks: each
document (+ EOS) is cut into chunks of the targets length, and each chunk is scored with
up to the inputs length of the tokens before it as context (no loss there), so every token
counts exactly once (`context_chunks`). Without lengths (auto) documents stay whole.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from absl import logging
import numpy as np
import seqio
import tensorflow as tf

from toolformer_jax import corpora
from toolformer_jax.evaluation import asdiv
from toolformer_jax.evaluation import benchmarks
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import registry
from toolformer_tasks import asdiv_tfds
from toolformer_tasks import lm
from toolformer_tasks import preprocessors
from toolformer_tasks import vocabularies

SPLIT = "validation"
TASK_PREFIX = items_lib.TASK_PREFIX
MIXTURE = "toolformer_eval"
LM_SOURCE = "lm_wiki"
JSONL_PREFIX = "jsonl_"
BAD_ANSWERS = "bad_answers"


def task_name(source: str, vocabulary: seqio.Vocabulary) -> str:
  return TASK_PREFIX + source + vocabularies.suffix_for(vocabulary)


family_of = items_lib.family_of


def _replace(name: str) -> None:
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)


# --- preprocessors ---------------------------------------------------------------------------
def keep_last_tokens(dataset: tf.data.Dataset, sequence_length=None, key: str = "inputs"
                     ) -> tf.data.Dataset:
  """Keeps the last tokens of `key` that fit its length (a prompt ends with its question)."""
  length = None if sequence_length is None else sequence_length.get(key)
  if length is None:
    return dataset

  def cut(ex):
    ex = dict(ex)
    ex[key] = ex[key][-length:]  # [<= length]
    return ex

  return dataset.map(cut, num_parallel_calls=tf.data.AUTOTUNE)


def context_chunks(dataset: tf.data.Dataset, sequence_length=None) -> tf.data.Dataset:
  """{targets: document tokens} -> chunks {inputs: preceding context, targets: chunk}."""
  t_len = None if sequence_length is None else sequence_length.get("targets")
  i_len = 0 if sequence_length is None else (sequence_length.get("inputs") or 0)
  if t_len is None:
    return dataset.map(lambda ex: {"inputs": tf.zeros([0], tf.int32),
                                   "targets": ex["targets"]})
  if t_len < 1:
    raise ValueError(f"context_chunks: targets length must be >= 1, got {t_len}")

  def chunks(ex):
    tokens = ex["targets"]  # [n]
    starts = tf.range(0, tf.size(tokens), t_len)  # [num_chunks]

    def one(start):
      context = tf.maximum(start - i_len, 0)
      return {"inputs": tokens[context:start], "targets": tokens[start:start + t_len]}

    return tf.data.Dataset.from_tensor_slices(starts).map(one)

  return dataset.flat_map(chunks)


# --- generation tasks ------------------------------------------------------------------------
def _items_dataset(items: Sequence[items_lib.EvalItem], few_shot: bool) -> tf.data.Dataset:
  column = lambda values: np.asarray(list(values), dtype=object)
  return tf.data.Dataset.from_tensor_slices({
      "inputs": column(items_lib.with_few_shot(i) if few_shot else i.inputs for i in items),
      "targets": column(i.targets for i in items),
      "answers": column(json.dumps(list(i.answers), ensure_ascii=False) for i in items),
      "match": column(i.match for i in items),
      "id": column(i.id for i in items),
  })


def _generation_features(vocabulary: seqio.Vocabulary) -> dict:
  return {"inputs": seqio.Feature(vocabulary=vocabulary, add_eos=False, dtype=tf.int32),
          "targets": seqio.Feature(vocabulary=vocabulary, add_eos=False, dtype=tf.int32)}


def register_items_task(name: str, make_items: Callable[[], List[items_lib.EvalItem]],
                        vocabulary: seqio.Vocabulary, few_shot: bool = False) -> str:
  """A generation task over `make_items()` (called once, when the data is first read)."""
  make_items = functools.lru_cache(maxsize=1)(make_items)

  def dataset_fn(split, shuffle_files, seed=None):
    del shuffle_files, seed
    if split != SPLIT:
      raise ValueError(f"task {name!r} has only the split {SPLIT!r}, not {split!r}")
    items = make_items()
    if not items:
      raise ValueError(f"task {name!r} has no items")
    return _items_dataset(items, few_shot)

  _replace(name)
  seqio.TaskRegistry.add(
      name, source=seqio.FunctionDataSource(dataset_fn, splits=(SPLIT,)),
      preprocessors=[seqio.preprocessors.tokenize, keep_last_tokens],
      output_features=_generation_features(vocabulary),
      postprocess_fn=metrics.postprocess, metric_fns=[metrics.tool_eval_metrics])
  return name


def register_generator_task(generator: str, vocabulary: seqio.Vocabulary,
                            count: Optional[int] = None, seed: int = items_lib.TEST_SEED,
                            few_shot: bool = False) -> str:
  spec = registry.get(generator)
  return register_items_task(task_name(spec.full_name, vocabulary),
                             lambda: spec.generate(count, seed), vocabulary, few_shot)


def register_asdiv_task(vocabulary: seqio.Vocabulary, path: Optional[str] = None,
                        count: Optional[int] = None, few_shot: bool = False) -> str:
  """ASDiv from `path` (ASDiv.xml or its directory; None: $TOOLFORMER_ASDIV_PATH), or from
  the TFDS dataset toolformer_asdiv with path 'tfds:[DATA_DIR]' (asdiv_tfds.py)."""
  name = task_name(asdiv.NAME, vocabulary)
  if path and path.startswith(asdiv_tfds.TFDS_PREFIX):
    data_dir = path[len(asdiv_tfds.TFDS_PREFIX):] or None
    problems = asdiv_tfds.read_problems(data_dir)  # builds now if needed, not inside t5x
    return register_items_task(name, lambda: asdiv.asdiv_items(count=count, problems=problems),
                               vocabulary, few_shot)
  path = asdiv.resolve_path(path)  # fails now, not inside t5x, if the file is missing
  return register_items_task(name, lambda: asdiv.asdiv_items(path, count), vocabulary,
                             few_shot)


def register_benchmark_tasks(vocabulary: seqio.Vocabulary, name: str, path: str,
                             count: Optional[int] = None, few_shot: bool = False
                             ) -> List[str]:
  """The generation tasks of one benchmark file or folder (`name` as in
  toolformer_jax.evaluation.benchmarks, whose docstring gives each benchmark's format,
  zero-shot prompt and the paper's metric): one task per source it holds (LAMA: one per
  subset; MLQA: one per split and question language), of its first `count` examples
  (None: all). The file is read now: a missing file, or one in another format, fails at
  start-up with a message naming the expected format, not inside t5x. ASDiv given as
  'tfds:DATA_DIR' is read from its TFDS dataset (register_asdiv_task)."""
  benchmark, _ = benchmarks.parse_name(name)
  if benchmark.name == "asdiv" and str(path).startswith(asdiv_tfds.TFDS_PREFIX):
    return [register_asdiv_task(vocabulary, path, count, few_shot)]
  names = []
  for source, items in benchmarks.eval_items(name, path, count=count).items():
    names.append(register_items_task(task_name(source, vocabulary),
                                     lambda items=items: items, vocabulary, few_shot))
    logging.info("benchmark %s: %d items from %s (%s)", source, len(items), path,
                 benchmark.release)
  return names


def register_lm_task(vocabulary: seqio.Vocabulary, corpus_path: Optional[str] = None) -> str:
  """The held-out LM task as context chunks (module docstring), metric `perplexity`."""
  name = task_name(LM_SOURCE, vocabulary)
  _replace(name)
  seqio.TaskRegistry.add(
      name,
      source=seqio.FunctionDataSource(
          functools.partial(lm.wiki_dataset_fn, corpus_path=corpus_path),
          splits=(SPLIT,)),
      preprocessors=[
          preprocessors.drop_blank_texts,
          functools.partial(preprocessors.select_features, keys=("text",)),
          functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
          functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False),
          seqio.preprocessors.append_eos,
          context_chunks,
      ],
      output_features={
          "inputs": seqio.Feature(vocabulary=vocabulary, add_eos=False, dtype=tf.int32),
          "targets": seqio.Feature(vocabulary=vocabulary, add_eos=True, dtype=tf.int32)},
      postprocess_fn=lm.count_target_tokens, metric_fns=[lm.perplexity])
  return name


# --- the user's jsonl ------------------------------------------------------------------------
def read_jsonl_items(path: str, match: str = metrics.QA_MATCH, family: str = items_lib.CUSTOM,
                     stats: Optional[corpora.ReadStats] = None) -> List[items_lib.EvalItem]:
  """Items of a jsonl file: {"inputs", "targets", "answers": [...] (default [targets]),
  "match" (default `match`)}; bad records are counted and skipped."""
  metrics.parse_match(match)
  own = stats is None
  stats = stats or corpora.ReadStats(f"eval jsonl {path}")
  out = []
  for number, record in corpora.iter_json_records(path, stats):
    where = f"{path}:{number}"
    if corpora.required_strings(record, ("inputs", "targets"), stats, where) is None:
      continue
    answers = record.get("answers", [record["targets"]])
    item_match = record.get("match", match)
    problem = (metrics.check_answers(answers, item_match) if isinstance(item_match, str)
               else "match is not a string")
    if problem:
      stats.skip(BAD_ANSWERS, where)
      continue
    item = items_lib.EvalItem(
        id=str(record.get("id", f"{os.path.basename(path)}:{number}")),
        inputs=record["inputs"], targets=record["targets"], answers=tuple(answers),
        match=item_match, family=family)
    stats.count_read()
    out.append(item)
  if own:
    stats.log_summary()
  return out


def register_jsonl_task(path: str, vocabulary: seqio.Vocabulary, name: Optional[str] = None,
                        match: str = metrics.QA_MATCH, few_shot: bool = False) -> str:
  """A generation task over the user's jsonl (see read_jsonl_items); returns its name."""
  files = tf.io.gfile.glob(os.path.expanduser(path))
  if len(files) != 1:
    raise FileNotFoundError(f"eval jsonl {path!r} matches {len(files)} files (one needed)")
  name = name or os.path.splitext(os.path.basename(files[0]))[0]
  clean = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
  return register_items_task(task_name(JSONL_PREFIX + clean, vocabulary),
                             lambda: read_jsonl_items(files[0], match), vocabulary, few_shot)


# --- the mixture -----------------------------------------------------------------------------
def default_sources(with_asdiv: bool = False) -> List[str]:
  """Every generator, ASDiv (with_asdiv, or a path in the environment), the LM task."""
  sources = sorted(registry.generators())
  if with_asdiv or os.environ.get(asdiv.ENV_PATH):
    sources.insert(0, asdiv.NAME)
  return sources + [LM_SOURCE]


def expand_sources(sources: Optional[Iterable[str]], with_asdiv: bool = False) -> List[str]:
  """Sources as given, with family names ('math') standing for all of their generators
  (ASDiv among them when with_asdiv or $TOOLFORMER_ASDIV_PATH is set); None: all."""
  with_asdiv = with_asdiv or bool(os.environ.get(asdiv.ENV_PATH))
  if sources is None:
    return default_sources(with_asdiv)
  if isinstance(sources, str):
    sources = [sources]
  known = registry.generators()
  out = []
  for source in sources:
    if source in known or source in (asdiv.NAME, LM_SOURCE):
      out.append(source)
    elif source in items_lib.FAMILIES:
      if source == items_lib.MATH and with_asdiv:
        out.append(asdiv.NAME)
      out += [n for n, g in sorted(known.items()) if g.family == source]
      if source == items_lib.LM:
        out.append(LM_SOURCE)
    else:
      raise ValueError(f"unknown eval task source {source!r}; known: {asdiv.NAME}, "
                       f"{LM_SOURCE}, {', '.join(sorted(known))} or a family "
                       f"({', '.join(items_lib.FAMILIES)})")
  return list(dict.fromkeys(out))


def eval_mixture(vocabulary: seqio.Vocabulary, tasks: Optional[Sequence[str]] = None,
                 asdiv_path: Optional[str] = None, jsonl_files: Sequence[str] = (),
                 jsonl_match: str = metrics.QA_MATCH, few_shot: bool = False,
                 num_generated: Union[None, int, Mapping[str, int]] = None,
                 seed: Optional[int] = None, split: str = "test",
                 corpus_path: Optional[str] = None, name: str = MIXTURE,
                 benchmark_paths: Optional[Mapping[str, str]] = None,
                 benchmark_num_examples: Optional[int] = None) -> str:
  """Registers the eval tasks named by `tasks` (sources or families; None: all), the
  user's jsonl files ("path" or "name=path") and the benchmark files, and a mixture of
  them; returns its name.

  asdiv_path: ASDiv.xml or its directory; given, ASDiv joins the default task list.
  benchmark_paths: {benchmark name: file or folder} (toolformer_jax.evaluation.benchmarks:
    'svamp', 'lama', 'lama_trex', 'nq_open', ...): their tasks join the mixture whatever
    `tasks` says (tasks=[]: the benchmarks alone); 'asdiv' here is ASDIV_PATH.
  benchmark_num_examples: the first N examples of each benchmark task (None: all).
  few_shot: prepend each family's tool demonstration (items.FEW_SHOT) to every prompt.
  num_generated: items per generator (None: each generator's default count), or a dict
    {source or family: count} (a source's entry wins over its family's; others: default).
  split: 'dev' (the seed settings are chosen on) or 'test' (the one reports give);
    seed: an explicit generator seed instead of the split's.
  """
  if seed is None:
    seed = items_lib.split_seed(split)
  paths = benchmarks.check_paths(benchmark_paths)
  if "asdiv" in paths:
    if asdiv_path and os.path.expanduser(asdiv_path) != paths["asdiv"]:
      raise ValueError(f"ASDIV_PATH ({asdiv_path!r}) and BENCHMARK_PATHS['asdiv'] "
                       f"({paths['asdiv']!r}) name different files: give one")
    asdiv_path = None  # registered below, with the other benchmarks
  sources = expand_sources(tasks, with_asdiv=bool(asdiv_path))
  if "asdiv" in paths:
    sources = [s for s in sources if s != asdiv.NAME]
  counts = _counts(num_generated, sources)
  names = []
  for source in sources:
    if source == asdiv.NAME:
      names.append(register_asdiv_task(vocabulary, asdiv_path, few_shot=few_shot))
    elif source == LM_SOURCE:
      names.append(register_lm_task(vocabulary, corpus_path))
    else:
      names.append(register_generator_task(source, vocabulary, counts.get(source), seed,
                                           few_shot))
  if isinstance(jsonl_files, str):
    jsonl_files = [jsonl_files]
  for entry in jsonl_files or ():
    label, sep, path = entry.partition("=")
    names.append(register_jsonl_task(path if sep else label, vocabulary,
                                     name=label if sep else None, match=jsonl_match,
                                     few_shot=few_shot))
  for benchmark, path in paths.items():
    names += register_benchmark_tasks(vocabulary, benchmark, path,
                                      count=benchmark_num_examples, few_shot=few_shot)
  names = list(dict.fromkeys(names))  # 'lama' and 'lama_trex' may name one task
  if not names:
    raise ValueError("eval_mixture: no tasks")
  mixture = name + vocabularies.suffix_for(vocabulary)
  if mixture in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(mixture)
  seqio.MixtureRegistry.add(mixture, [(n, 1.0) for n in names])
  logging.info("eval mixture %s: %s", mixture, ", ".join(names))
  return mixture


def _counts(num_generated, sources: Sequence[str]) -> Dict[str, Optional[int]]:
  """{source: items} from eval_mixture's num_generated (module docstring of eval_mixture)."""
  if num_generated is None or isinstance(num_generated, int):
    return {s: num_generated for s in sources}
  if not isinstance(num_generated, Mapping):
    raise ValueError(f"num_generated must be an int, a dict or None, got {num_generated!r}")
  unknown = [k for k in num_generated if k not in sources and k not in items_lib.FAMILIES]
  if unknown:
    raise ValueError(f"num_generated names {unknown}, not among the tasks {list(sources)} "
                     "or a family")
  out = {}
  for source in sources:
    count = num_generated.get(source, num_generated.get(items_lib.family_of(source)))
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                              or count < 0):
      raise ValueError(f"num_generated[{source!r}] must be an int >= 0, got {count!r}")
    out[source] = count
  return out


def eval_output_dir(checkpoint_path: str, trigger_top_k: int, few_shot: bool = False) -> str:
  """eval_tools.gin's default EVAL_OUTPUT_DIR: beside the checkpoint, named after it and
  the tool setting ('/m/checkpoint_2000' -> '/m/eval_checkpoint_2000_tools_on'), so that
  the tools-on and tools-off runs of one checkpoint never share a directory."""
  if not isinstance(checkpoint_path, str) or not checkpoint_path.strip():
    raise ValueError(f"CHECKPOINT_PATH must be a path, got {checkpoint_path!r}")
  path = os.path.normpath(os.path.expanduser(checkpoint_path))
  label = f"eval_{os.path.basename(path)}_tools_{'on' if trigger_top_k else 'off'}"
  return os.path.join(os.path.dirname(path), label + ("_few_shot" if few_shot else ""))


def register_builtin(vocabulary: seqio.Vocabulary) -> None:
  """The generator and LM tasks under their default settings (import time: cheap, the
  items are made when a task's data is first read)."""
  for generator in registry.generators():
    register_generator_task(generator, vocabulary)
  register_lm_task(vocabulary)
  if os.environ.get(asdiv.ENV_PATH):
    try:
      register_asdiv_task(vocabulary)
    except FileNotFoundError as e:
      logging.warning("toolformer_tasks: no ASDiv task: %s", e)
