"""SeqIO tasks over annotated shards: `toolformer_<tool>` per tool and the `toolformer_all` mixture.

Annotated shards (written by the annotation pipeline) live in one directory, configured by
the gin macro ANNOTATED_DIR of the run files or the environment variable
TOOLFORMER_ANNOTATED_DIR. Files matching `SHARD_PATTERNS` there are read:

  *.jsonl / *.jsonl.gz   one JSON record per line
  *.tfrecord / *.tfrecord.gz   tf.train.Example records with bytes features

Files whose name contains "candidate" or "rejected" (the filter's audit files, which also
hold rejected calls) are never read. A record carries at least `tool` and `text` (the
document with its kept API calls inserted); the other fields of the record format (doc_id,
call, result, char_position, loss_minus, loss_plus) are ignored by training. A record that
is not valid JSON, or lacks a non-empty `tool` or `text`, is counted (per reason, in a
`toolformer_jax.corpora.ReadStats`), logged and skipped.

Registration scans the shards once to find the tools and count their records; then
`toolformer_<tool>` (lower-case, non-alphanumerics as "_", e.g. `toolformer_wikisearch`)
yields that tool's `text` as `targets` (tokenized, EOS, cut into feature-length chunks like
the LM task), and `toolformer_all` mixes the tool tasks in proportion to their record
counts, i.e. it samples the union of all kept examples (the paper's C*).

The paper's control, the same fine-tune on the same documents without API calls, is
`toolformer_all_nocalls` (tasks `toolformer_<tool>_nocalls`, `without_calls=True`): the
same records of the same shards, each `text` with its inserted calls removed
(`text_without_calls`: every call of the record's `calls`, or its `call`/`result`, rendered
as the pipeline inserted it and cut out), so the two runs see the same documents in the
same order and differ only by the calls. It reads jsonl shards (tfrecord ones do not keep
the calls: an error).

Without a configured directory, `toolformer_all` falls back to the held-out-LM task's
training split (`toolformer_lm_wiki`), with a warning, so that the fine-tuning command runs
before any annotation exists. A configured directory without readable shards is an error.
"""
from __future__ import annotations

import functools
import os
import re
from typing import Dict, Iterator, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import seqio
import tensorflow as tf

from toolformer_jax import corpora
from toolformer_jax.annotate import schema
from toolformer_tasks import lm
from toolformer_tasks import vocabularies

ANNOTATED_DIR_ENV = "TOOLFORMER_ANNOTATED_DIR"
MIXTURE = "toolformer_all"
WITHOUT_CALLS_SUFFIX = "_nocalls"
TASK_PREFIX = "toolformer_"
SHARD_PATTERNS = ("*.jsonl", "*.jsonl.gz", "*.tfrecord", "*.tfrecord.gz")
EXCLUDED_NAME_PARTS = ("candidate", "rejected")  # matches schema.CANDIDATES_FILE_PART


def tool_task_name(tool: str, suffix: str = "") -> str:
  """`toolformer_<tool>` with the tool name lower-cased and non-alphanumerics as '_'."""
  slug = re.sub(r"[^0-9a-z]+", "_", tool.strip().lower()).strip("_")
  if not slug:
    raise ValueError(f"tool name {tool!r} gives an empty task name")
  return f"{TASK_PREFIX}{slug}{suffix}"


def resolve_annotated_dir(annotated_dir: Optional[str]) -> Optional[str]:
  """The configured directory: the argument, else $TOOLFORMER_ANNOTATED_DIR, else None."""
  value = annotated_dir if annotated_dir else os.environ.get(ANNOTATED_DIR_ENV, "")
  return os.path.abspath(os.path.expanduser(value)) if value else None


def find_shards(directory: str) -> Tuple[str, ...]:
  """Shard files of `directory` (sorted), without the audit files."""
  if not tf.io.gfile.isdir(directory):
    raise FileNotFoundError(f"annotated shards directory {directory} does not exist "
                            f"(set by ANNOTATED_DIR or ${ANNOTATED_DIR_ENV})")
  files = set()
  for pattern in SHARD_PATTERNS:
    files.update(tf.io.gfile.glob(os.path.join(directory, pattern)))
  kept = sorted(f for f in files
                if not any(part in os.path.basename(f).lower() for part in EXCLUDED_NAME_PARTS))
  if not kept:
    raise FileNotFoundError(f"{directory} holds no annotated shards (patterns "
                            f"{', '.join(SHARD_PATTERNS)}, audit files excluded)")
  return tuple(kept)


def _is_tfrecord(path: str) -> bool:
  return path.endswith((".tfrecord", ".tfrecord.gz"))


# --- record parsing --------------------------------------------------------------------------
RECORD_FIELDS = schema.TRAINING_FIELDS  # written by toolformer_jax.annotate


def usable_fields(record: dict, stats: corpora.ReadStats,
                  where: str = "") -> Optional[Tuple[str, str]]:
  """(tool, text) of a record, or None (counted in `stats`) without a non-blank tool or text."""
  fields = corpora.required_strings(record, RECORD_FIELDS, stats, where)
  return None if fields is None else (fields[0].strip(), fields[1])


def text_without_calls(record: dict) -> str:
  """The record's document without its inserted calls: each call of `calls` (else the
  record's own `call` and `result`) rendered as the pipeline inserted it
  (` [Tool(args) -> result]`) and removed. Raises ValueError when a call is not in the
  text (a record not written by the annotation pipeline)."""
  from toolformer_jax.tools import call_format  # pylint: disable=g-import-not-at-top
  calls = record.get("calls")
  if not calls:
    calls = [{"call": record.get("call"), "result": record.get("result"),
              "char_position": record.get("char_position", 0)}]
  text = record["text"]
  # The k-th call (by position) starts at its char_position in the original document plus
  # the lengths of the calls before it; cut right to left so earlier offsets stay valid.
  rendered = []
  for c in sorted(calls, key=lambda c: c.get("char_position") or 0):
    if not isinstance(c.get("call"), str) or c.get("result") is None:
      raise ValueError(f"record {record.get('doc_id')!r}: call without 'call'/'result': {c}")
    parsed = call_format.parse_call(c["call"])
    if isinstance(parsed, call_format.ParseError):
      raise ValueError(f"record {record.get('doc_id')!r}: unparsable call {c['call']!r}")
    rendered.append((c.get("char_position") or 0, call_format.render_call(parsed,
                                                                           str(c["result"]))))
  offset, spans = 0, []
  for position, inserted in rendered:
    start = position + offset
    if text[start:start + len(inserted)] != inserted:
      start = text.find(inserted)
      if start < 0:
        raise ValueError(f"record {record.get('doc_id')!r}: call {inserted!r} is not in "
                         "its text")
    spans.append((start, start + len(inserted)))
    offset += len(inserted)
  for start, end in sorted(spans, reverse=True):
    text = text[:start] + text[end:]
  return text


def parse_record(line: bytes, stats: Optional[corpora.ReadStats] = None,
                 where: str = "", without_calls: bool = False) -> Optional[Tuple[str, str]]:
  """(tool, text) of one jsonl line, or None if it is not a usable record (counted);
  without_calls: the text with its calls removed (`text_without_calls`)."""
  stats = stats if stats is not None else corpora.ReadStats("annotated record")
  record = corpora.parse_json_line(line, stats, where)
  fields = None if record is None else usable_fields(record, stats, where)
  if fields is None or not without_calls:
    return fields
  return fields[0], text_without_calls(record)


_EXAMPLE_SPEC = {"tool": tf.io.FixedLenFeature([], tf.string, default_value=""),
                 "text": tf.io.FixedLenFeature([], tf.string, default_value="")}

# Records skipped while tf.data reads the shards (thread-safe: tf.data parses in parallel).
bad_records = corpora.ReadStats("annotated shards")


def _parse_json_line(line: np.ndarray, path: np.ndarray,
                     without_calls: np.ndarray) -> Tuple[bytes, bytes]:
  parsed = parse_record(bytes(line), bad_records, bytes(path).decode("utf-8", "replace"),
                        bool(without_calls))
  if parsed is None:
    return b"", b""
  return parsed[0].encode("utf-8"), parsed[1].encode("utf-8")


def _read_file(path: str, without_calls: bool = False) -> tf.data.Dataset:
  """{"tool", "text"} records of one shard; unusable ones come out with tool == ""."""
  compression = "GZIP" if path.endswith(".gz") else None
  if _is_tfrecord(path):
    if without_calls:
      raise ValueError(f"{path}: the no-calls control reads jsonl shards (a tfrecord "
                       "shard does not keep the calls to remove)")
    ds = tf.data.TFRecordDataset(path, compression_type=compression)
    return ds.map(lambda r: tf.io.parse_single_example(r, _EXAMPLE_SPEC))
  ds = tf.data.TextLineDataset(path, compression_type=compression)
  ds = ds.filter(lambda line: tf.strings.length(tf.strings.strip(line)) > 0)

  def _parse(line):
    tool, text = tf.numpy_function(_parse_json_line,
                                   [line, tf.constant(path), tf.constant(without_calls)],
                                   [tf.string, tf.string], stateful=False)
    tool.set_shape([])
    text.set_shape([])
    return {"tool": tool, "text": text}

  return ds.map(_parse)


def tool_dataset(files: Sequence[str], tool: str, without_calls: bool = False
                 ) -> tf.data.Dataset:
  """{"text"} of the records of `tool` in `files`, in file order (checkpointable);
  without_calls: each text with its calls removed (the control)."""
  datasets = [_read_file(f, without_calls) for f in files]
  ds = datasets[0]
  for other in datasets[1:]:
    ds = ds.concatenate(other)
  ds = ds.filter(lambda ex: tf.logical_and(
      tf.equal(tf.strings.strip(ex["tool"]), tool),
      tf.strings.length(tf.strings.strip(ex["text"])) > 0))
  return ds.map(lambda ex: {"text": ex["text"]})


# --- scanning --------------------------------------------------------------------------------
def _iter_records(path: str, stats: corpora.ReadStats) -> Iterator[Tuple[str, str]]:
  """The usable (tool, text) records of one shard; the others are counted in `stats`."""
  if _is_tfrecord(path):
    for number, ex in enumerate(_read_file(path).as_numpy_iterator()):
      record = {k: v.decode("utf-8", "replace") for k, v in ex.items()}
      fields = usable_fields(record, stats, f"{path}[{number}]")
      if fields is not None:
        yield fields
    return
  for number, record in corpora.iter_json_records(path, stats):
    fields = usable_fields(record, stats, f"{path}:{number}")
    if fields is not None:
      yield fields


def count_tools(files: Sequence[str], stats: Optional[corpora.ReadStats] = None
                ) -> Tuple[Dict[str, int], int]:
  """({tool: usable records}, unusable records) over `files` (counted by reason in `stats`)."""
  stats = stats if stats is not None else corpora.ReadStats("annotated shards")
  counts: Dict[str, int] = {}
  for path in files:
    for tool, _ in _iter_records(path, stats):
      stats.count_read()
      counts[tool] = counts.get(tool, 0) + 1
  return counts, stats.skipped


# --- registration ----------------------------------------------------------------------------
def _tool_dataset_fn(split: str, shuffle_files: bool, seed: Optional[int] = None, *,
                     files: Tuple[str, ...], tool: str, task: str,
                     without_calls: bool = False) -> tf.data.Dataset:
  del shuffle_files, seed
  if split != lm.TRAIN:
    raise ValueError(f"task {task!r} has only the split {lm.TRAIN!r}, not {split!r}; "
                     f"evaluate perplexity on {lm.WIKI_LM_TASK!r}")
  return tool_dataset(files, tool, without_calls)


def _replace_mixture(name: str, tasks_and_rates: list) -> None:
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  seqio.MixtureRegistry.add(name, tasks_and_rates)


_registered: Dict[str, Tuple[Optional[str], float]] = {}  # mixture -> (directory, lm_fraction)


def _register(annotated_dir: Optional[str], vocabulary: seqio.Vocabulary,
              without_calls: bool = False, lm_fraction: float = 0.0) -> str:
  suffix = (WITHOUT_CALLS_SUFFIX if without_calls else "") + vocabularies.suffix_for(
      vocabulary)
  mixture = MIXTURE + suffix
  key = (annotated_dir, lm_fraction)
  if _registered.get(mixture) == key and mixture in seqio.MixtureRegistry.names():
    return mixture
  name = _build(annotated_dir, vocabulary, suffix, mixture, without_calls, lm_fraction)
  _registered[mixture] = key
  return name


def _build(annotated_dir: Optional[str], vocabulary: seqio.Vocabulary, suffix: str,
           mixture: str, without_calls: bool = False, lm_fraction: float = 0.0) -> str:
  lm_task = lm.register_wiki_lm_task(vocabulary)
  if annotated_dir is None:
    logging.info(
        "%s: no annotated shards configured (gin ANNOTATED_DIR or $%s); it falls back to "
        "the LM task %s, i.e. fine-tuning without API calls.", mixture, ANNOTATED_DIR_ENV,
        lm_task)
    _replace_mixture(mixture, [(lm_task, 1.0)])
    return mixture
  files = find_shards(annotated_dir)
  if without_calls and any(_is_tfrecord(f) for f in files):
    raise ValueError(f"{mixture}: the no-calls control reads jsonl shards; {annotated_dir} "
                     "holds tfrecord ones, which do not keep the calls to remove")
  stats = corpora.ReadStats(f"{mixture} shards in {annotated_dir}")
  counts, _ = count_tools(files, stats)
  stats.log_summary()
  if not counts:
    raise ValueError(f"{annotated_dir}: the shards hold no usable records (need 'tool' and "
                     f"'text'; {stats.summary()})")
  tasks_and_rates = []
  for tool, count in sorted(counts.items()):
    task = tool_task_name(tool, suffix)
    source = seqio.FunctionDataSource(
        functools.partial(_tool_dataset_fn, files=files, tool=tool, task=task,
                          without_calls=without_calls),
        splits=(lm.TRAIN,), num_input_examples={lm.TRAIN: count})
    if task in seqio.TaskRegistry.names():
      seqio.TaskRegistry.remove(task)
    seqio.TaskRegistry.add(task, source=source, preprocessors=lm.chunked_lm_preprocessors(),
                           output_features=lm.lm_output_features(vocabulary), metric_fns=[])
    tasks_and_rates.append((task, float(count)))
  if lm_fraction > 0:  # plain text beside the annotated records, as in the paper's C*
    total = sum(rate for _, rate in tasks_and_rates)
    tasks_and_rates.append((lm_task, total * lm_fraction / (1.0 - lm_fraction)))
  _replace_mixture(mixture, tasks_and_rates)
  logging.info("%s: %s from %d shards in %s", mixture,
               ", ".join(f"{t} ({int(r)})" for t, r in tasks_and_rates), len(files),
               annotated_dir)
  return mixture


def register_toolformer_tasks(vocabulary: seqio.Vocabulary,
                              annotated_dir: Optional[str] = None,
                              warn_on_fallback: bool = True,
                              without_calls: bool = False, lm_fraction: float = 0.0) -> str:
  """Registers `toolformer_<tool>` tasks and the `toolformer_all` mixture; returns its name.

  Idempotent for the same (directory, vocabulary). The mixture name carries the
  vocabulary's suffix (see `toolformer_tasks.vocabularies`). Warns when it falls back to
  the LM task. without_calls: the control `toolformer_all_nocalls` over the same records
  with their calls removed. lm_fraction: the share of examples drawn from the LM task's
  training split (plain text; the paper fine-tunes on all of C*, most of which has no
  call), so that a short fine-tune on few records keeps the model's language modelling.
  """
  if not 0.0 <= lm_fraction < 1.0:
    raise ValueError(f"lm_fraction must be in [0, 1), got {lm_fraction!r}")
  directory = resolve_annotated_dir(annotated_dir)
  if without_calls and directory is None:
    raise ValueError("the no-calls control needs annotated shards (gin ANNOTATED_DIR or "
                     f"${ANNOTATED_DIR_ENV}): it is the same documents without their calls")
  name = _register(directory, vocabulary, without_calls, lm_fraction)
  if directory is None and warn_on_fallback:
    logging.warning("%s falls back to the LM task (no annotated shards configured: set gin "
                    "ANNOTATED_DIR or $%s); fine-tuning runs without API calls.", name,
                    ANNOTATED_DIR_ENV)
  return name
