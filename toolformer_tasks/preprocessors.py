"""SeqIO preprocessors of the project's tasks: small, pure tf.data functions.

Each takes and returns a `tf.data.Dataset` of feature dicts. SeqIO passes `sequence_length`
and `output_features` to preprocessors that declare those arguments.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import tensorflow as tf


def drop_blank_texts(dataset: tf.data.Dataset, key: str = "text") -> tf.data.Dataset:
  """Removes examples whose `key` string is empty or only whitespace."""
  return dataset.filter(lambda ex: tf.strings.length(tf.strings.strip(ex[key])) > 0)


def select_features(dataset: tf.data.Dataset, keys: Sequence[str]) -> tf.data.Dataset:
  """Keeps only the features named in `keys` (every one must exist)."""
  keys = tuple(keys)
  return dataset.map(lambda ex: {k: ex[k] for k in keys},
                     num_parallel_calls=tf.data.AUTOTUNE)


def split_tokens(dataset: tf.data.Dataset,
                 sequence_length: Optional[Mapping[str, int]] = None,
                 key: str = "targets") -> tf.data.Dataset:
  """Cuts the 1-d token feature `key` into consecutive chunks of at most its length.

  Every token of a long document is kept (nothing is trimmed away later); a document of n
  tokens becomes ceil(n / length) examples, only the last of which can be shorter. Other
  features are dropped, since they would no longer describe the chunk. Without a length
  (`sequence_length` None or without `key`, as in t5x's infer-eval which computes maximal
  lengths) the dataset passes through unchanged.
  """
  length = None if sequence_length is None else sequence_length.get(key)
  if length is None:
    return dataset
  if length < 1:
    raise ValueError(f"split_tokens: sequence length of {key!r} must be >= 1, got {length}")

  def _chunks(ex):
    tokens = ex[key]  # [n]
    starts = tf.range(0, tf.size(tokens), length)  # [num_chunks]
    return tf.data.Dataset.from_tensor_slices(starts).map(
        lambda start: {key: tokens[start:start + length]})

  return dataset.flat_map(_chunks)
