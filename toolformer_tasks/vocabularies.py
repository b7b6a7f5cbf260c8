"""Which vocabulary a task is registered with, and the task-name suffix that says so.

A SeqIO task tokenizes with one vocabulary, and t5x refuses to train a model on a task whose
vocabulary differs from the model's. The project's tasks are therefore registered once per
vocabulary: GPT-2/GPT-J BPE (`Gpt2Vocabulary`, the GPT-J models) under the plain names
(`toolformer_lm_wiki`, `toolformer_all`, ...), the SmolLM2 gguf vocabulary with the suffix
`_smollm2`, and any other vocabulary with `_v<hash>` (registered on demand by
`toolformer_tasks.lm_task` and `toolformer_tasks.toolformer_mixture`, which the run files
call with the model's VOCABULARY).
"""
from __future__ import annotations

import functools
import hashlib
from typing import Optional

from absl import logging
import seqio

from toolformer_jax import vocab as vocab_lib


@functools.lru_cache(maxsize=None)
def gpt2_vocabulary() -> vocab_lib.Gpt2Vocabulary:
  return vocab_lib.Gpt2Vocabulary()


@functools.lru_cache(maxsize=None)
def smollm2_vocabulary() -> vocab_lib.GgufBpeVocabulary:
  return vocab_lib.GgufBpeVocabulary()


def _try(factory) -> Optional[seqio.Vocabulary]:
  try:
    return factory()
  except FileNotFoundError as e:  # the package shipping the tokenizer is not installed
    logging.warning("toolformer_tasks: skipping a vocabulary: %s", e)
    return None


def builtin_vocabularies() -> dict:
  """{suffix: vocabulary} for the vocabularies registered at import (missing ones skipped)."""
  found = {"": _try(gpt2_vocabulary), "_smollm2": _try(smollm2_vocabulary)}
  return {suffix: v for suffix, v in found.items() if v is not None}


def suffix_for(vocabulary: seqio.Vocabulary) -> str:
  """The task-name suffix of `vocabulary` ('' for GPT-2, '_smollm2', else '_v<hash>')."""
  if not isinstance(vocabulary, seqio.Vocabulary):
    raise TypeError(f"expected a seqio.Vocabulary, got {type(vocabulary).__name__}")
  for suffix, known in builtin_vocabularies().items():
    if vocabulary == known:
      return suffix
  digest = hashlib.sha1(repr(vocabulary).encode("utf-8")).hexdigest()[:8]
  return f"_v{digest}"
