"""A generation task over the user's prompts, for `python -m t5x.infer` (gin/runs/infer_tools.gin).

Prompts come from .jsonl files (one record per line with an "inputs" string, the records
`python -m toolformer_jax.generate --input` reads) or plain-text files (one prompt per
line), in file order. Each becomes an example with `inputs` (the prompt's tokens, no EOS)
and empty `targets`, so seqio's DecoderFeatureConverter gives t5x the prompt as a
prefix (`decoder_causal_attention`) and t5x generates up to the targets' feature length.
The output lines of t5x.infer keep the prompt as `inputs_pretokenized`.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import List, Optional, Sequence

from absl import logging
import numpy as np
import seqio
import tensorflow as tf

from toolformer_tasks import vocabularies

SPLIT = "test"  # t5x's infer.gin reads this split


def read_prompts(path: str) -> List[str]:
  """The prompts of one .jsonl (records with "inputs") or text file (one per line)."""
  prompts, skipped = [], 0
  with tf.io.gfile.GFile(path, "r") as f:
    for line_number, line in enumerate(f, 1):
      line = line.rstrip("\n")
      if not line.strip():
        continue
      if path.endswith((".jsonl", ".json")):
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          record = None
        text = record.get("inputs") if isinstance(record, dict) else None
        if not isinstance(text, str) or not text.strip():
          skipped += 1
          logging.warning("%s:%d: not a record with an \"inputs\" string; skipped", path,
                          line_number)
          continue
        prompts.append(text)
      else:
        prompts.append(line)
  if skipped:
    logging.warning("%s: %d lines skipped", path, skipped)
  return prompts


def register_prompts_task(paths: Sequence[str], vocabulary: seqio.Vocabulary,
                          name: Optional[str] = None) -> str:
  """Registers the task over the prompts of `paths` (files or globs); returns its name."""
  if isinstance(paths, str):
    paths = [paths]
  files = sorted({f for p in paths for f in tf.io.gfile.glob(os.path.expanduser(p))})
  if not files:
    raise FileNotFoundError(f"no prompt files match {list(paths)}")
  prompts = tuple(p for f in files for p in read_prompts(f))
  if not prompts:
    raise ValueError(f"{files}: no prompts")
  if name is None:
    digest = hashlib.sha1("\n".join(files).encode("utf-8")).hexdigest()[:10]
    name = f"toolformer_prompts_{digest}{vocabularies.suffix_for(vocabulary)}"

  def dataset_fn(split, shuffle_files, seed=None):
    del shuffle_files, seed
    if split != SPLIT:
      raise ValueError(f"task {name!r} has only the split {SPLIT!r}, not {split!r}")
    return tf.data.Dataset.from_tensor_slices({
        "inputs": np.asarray(prompts, dtype=object),
        "targets": np.asarray([""] * len(prompts), dtype=object)})

  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(
      name,
      source=seqio.FunctionDataSource(dataset_fn, splits=(SPLIT,),
                                      num_input_examples={SPLIT: len(prompts)}),
      preprocessors=[seqio.preprocessors.tokenize],
      output_features={
          "inputs": seqio.Feature(vocabulary=vocabulary, add_eos=False, dtype=tf.int32),
          "targets": seqio.Feature(vocabulary=vocabulary, add_eos=False, dtype=tf.int32),
      })
  logging.info("prompts task %s: %d prompts from %s", name, len(prompts), files)
  return name
