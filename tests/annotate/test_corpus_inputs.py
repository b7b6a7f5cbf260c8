"""Corpus inputs of the annotation run (`driver.open_corpus`): TFDS datasets built by the
project's builders (ccnet from a manual_dir, wikipedia_leads from the bundled file), any
built TFDS dataset, and a jsonl corpus with corrupt lines."""
import gzip
import itertools
import json
import random

import pytest
import tensorflow_datasets as tfds

from toolformer_jax import corpora
from toolformer_jax.annotate import driver
from toolformer_jax.annotate import tfds_corpora


def _write_shard(path, lines):
  path.parent.mkdir(parents=True, exist_ok=True)
  with gzip.open(path, "wt", encoding="utf-8") as f:
    for line in lines:
      f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


def _ccnet_record(url, text, date="2019-02-15T19:05:03Z", title="A title", **extra):
  record = {"url": url, "date_download": date, "digest": f"sha1:{len(text):040x}",
            "length": len(text), "nlines": text.count("\n") + 1, "source_domain": "x.org",
            "title": title, "raw_content": text, "cc_segment": "seg",
            "original_nlines": 9, "original_length": 999, "language": "en",
            "language_score": 0.97, "perplexity": 210.4, "bucket": "head"}
  record.update(extra)
  return {k: v for k, v in record.items() if v is not None}


@pytest.fixture(scope="module")
def ccnet_dirs(tmp_path_factory):
  """A manual_dir of CCNet shards (one corrupt line) and the documents they hold."""
  root = tmp_path_factory.mktemp("ccnet")
  manual, data = root / "manual", root / "data"
  head = [_ccnet_record("https://a.org/1", "First page.\nIts second line.", title="One"),
          _ccnet_record("https://a.org/2", "Second page.", date="2019-03-01T00:00:00Z",
                        title=" Two "),
          '{"url": "https://a.org/broken", "raw_content": "cut off',
          "",
          _ccnet_record("https://a.org/3", "Third page.", language="fr", title=None)]
  middle = [_ccnet_record(None, "No url, so the digest is the id.", digest="sha1:ABC"),
            _ccnet_record(None, "Neither url nor digest.", digest=None, date=None,
                          title="")]
  _write_shard(manual / "mined" / "2019-09" / "en_head_0000.json.gz", head)
  _write_shard(manual / "mined" / "2019-09" / "en_middle_0000.json.gz", middle)
  (manual / "README.txt").write_text("not a shard\n")
  Doc = corpora.Document  # pylint: disable=invalid-name
  expected = [
      Doc("https://a.org/1", "First page.\nIts second line.", "2019-02-15", "en", "One"),
      Doc("https://a.org/2", "Second page.", "2019-03-01", "en", "Two"),
      Doc("https://a.org/3", "Third page.", "2019-02-15", "fr"),
      Doc("sha1:ABC", "No url, so the digest is the id.", "2019-02-15", "en", "A title"),
      Doc("mined/2019-09/en_middle_0000.json.gz:2", "Neither url nor digest.", None, "en"),
  ]
  return manual, data, expected


def test_ccnet_through_open_corpus(ccnet_dirs, monkeypatch):
  manual, data, expected = ccnet_dirs
  monkeypatch.setenv(tfds_corpora.DATA_DIR_ENV, str(data))
  monkeypatch.setenv(tfds_corpora.MANUAL_DIR_ENV, str(manual))
  stats = corpora.ReadStats()
  assert list(driver.open_corpus("tfds:ccnet", stats)) == expected
  assert stats.read == len(expected) and stats.skipped == 0
  builder = tfds.builder("ccnet", data_dir=str(data))
  assert builder.is_prepared() and str(builder.version) == "1.0.0"
  assert set(builder.info.features) == set(tfds_corpora.DOCUMENT_FIELDS)
  assert builder.info.splits["train"].num_examples == len(expected)
  # the build counted and skipped the corrupt line; the blank line is not a record
  assert dict(builder.info.metadata) == {"read": 5, "skipped": {"malformed_json": 1}}
  urls = [ex["url"].decode() for ex in tfds.as_numpy(builder.as_dataset(split="train"))]
  assert urls == ["https://a.org/1", "https://a.org/2", "https://a.org/3", "", ""]


def test_ccnet_built_dataset_is_reused_and_sliced(ccnet_dirs, monkeypatch):
  manual, data, expected = ccnet_dirs
  # what `python -m toolformer_jax.annotate --prepare_tfds=ccnet` prints
  assert tfds_corpora.build("ccnet", str(data), str(manual)) == (
      f"ccnet/1.0.0 in {data}/ccnet/1.0.0: train 5 examples; skipped at build: "
      "{'malformed_json': 1}")
  monkeypatch.setenv(tfds_corpora.DATA_DIR_ENV, str(data))
  monkeypatch.setenv(tfds_corpora.PREPARE_ENV, "0")  # built: no manual_dir needed
  monkeypatch.delenv(tfds_corpora.MANUAL_DIR_ENV, raising=False)
  stats = corpora.ReadStats()
  assert list(driver.open_corpus("tfds:ccnet:train[1:3]", stats)) == expected[1:3]
  docs = list(driver.open_corpus("tfds:ccnet:train[:1]+tfds:ccnet:train[-1:]", stats))
  assert docs == [expected[0], expected[-1]] and stats.read == 4


@pytest.mark.parametrize("record, expected, reason", [
    ({"url": "u", "raw_content": "t", "date_download": "2020-02-29T10:00:00Z"},
     corpora.Document("u", "t", "2020-02-29"), None),
    ({"url": "u", "raw_content": "t", "date_download": "2020-02-29"},
     corpora.Document("u", "t", "2020-02-29"), None),
    ({"url": " u ", "raw_content": "t", "title": "  T  "},
     corpora.Document("u", "t", title="T"), None),
    ({"url": "u", "raw_content": "t", "title": 7}, corpora.Document("u", "t"), None),
    ({"url": "u"}, None, "missing_raw_content"),
    ({"url": "u", "raw_content": "  "}, None, "missing_raw_content"),
    ({"url": "u", "raw_content": "t", "date_download": "2019-02-30T00:00:00Z"}, None,
     "bad_date"),
    ({"url": "u", "raw_content": "t", "date_download": 20190215}, None, "bad_date"),
    ({"url": "u", "raw_content": "t", "language": 3}, None, "bad_language"),
])
def test_ccnet_record(record, expected, reason):
  stats = corpora.ReadStats()
  parsed = tfds_corpora.ccnet_document(record, stats, "here", "default")
  if reason is None:
    assert parsed == (expected, record["url"].strip()) and not stats.skipped
  else:
    assert parsed is None and dict(stats.skipped_by_reason) == {reason: 1}


def test_ccnet_needs_shards_in_manual_dir(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(AssertionError, match="does not exist or is empty"):
    tfds_corpora.load_builder("ccnet", data_dir=str(tmp_path / "d1"), manual_dir=str(empty))
  (tmp_path / "docs").mkdir()
  (tmp_path / "docs" / "notes.txt").write_text("no shards here\n")
  with pytest.raises(FileNotFoundError, match="no CCNet shards"):
    tfds_corpora.load_builder("ccnet", data_dir=str(tmp_path / "d2"),
                              manual_dir=str(tmp_path / "docs"))


def test_not_built_and_prepare_off_fails(tmp_path, monkeypatch):
  monkeypatch.setenv(tfds_corpora.DATA_DIR_ENV, str(tmp_path))
  monkeypatch.setenv(tfds_corpora.PREPARE_ENV, "0")
  with pytest.raises(FileNotFoundError, match="is not built"):
    list(driver.open_corpus("tfds:wikipedia_leads/es", corpora.ReadStats()))


@pytest.mark.parametrize("spec, expected", [
    ("ccnet", ("ccnet", "train")),
    ("wikipedia_leads/fr:train", ("wikipedia_leads/fr", "train")),
    ("c4/en:validation[:1000]", ("c4/en", "validation[:1000]")),
])
def test_parse_spec(spec, expected):
  assert tfds_corpora.parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", ":train"])
def test_parse_spec_rejects(spec):
  with pytest.raises(ValueError, match="NAME"):
    tfds_corpora.parse_spec(spec)


def test_wikipedia_leads_configs():
  configs = {c.name: c for c in tfds_corpora.WikipediaLeads.BUILDER_CONFIGS}
  assert sorted(configs) == ["en", "en_sample", "es", "fr"]
  for name in ("en", "es", "fr"):
    assert configs[name].max_articles is None
    assert corpora.bundled_corpus_path(configs[name].language).is_file()
  assert (configs["en_sample"].language, configs["en_sample"].max_articles) == ("en-us", 200)


def test_wikipedia_leads_through_open_corpus(tmp_path, monkeypatch):
  """The sample config reads the real bundled file: its articles are the first of
  'wikipedia', field for field, in order."""
  monkeypatch.setenv(tfds_corpora.DATA_DIR_ENV, str(tmp_path))
  stats = corpora.ReadStats()
  docs = list(driver.open_corpus("tfds:wikipedia_leads/en_sample", stats))
  reference = list(itertools.islice(driver.open_corpus("wikipedia", corpora.ReadStats()),
                                    200))
  assert docs == reference and len(docs) == 200 and stats.read == 200
  assert all(d.language == "en" and d.id == d.title and not d.date for d in docs)
  assert sum(bool(d.description) for d in docs) > 180
  builder = tfds.builder("wikipedia_leads/en_sample", data_dir=str(tmp_path))
  assert dict(builder.info.metadata) == {"read": 200, "skipped": {}}
  first = next(iter(tfds.as_numpy(builder.as_dataset(split="train[:1]"))))
  title = reference[0].title.replace(" ", "_")
  assert first["url"].decode() == f"https://en.wikipedia.org/wiki/{title}"
  mixed = list(driver.open_corpus("tfds:wikipedia_leads/en_sample:train[:3]+arithmetic:2",
                                  corpora.ReadStats()))
  assert [d.id for d in mixed] == [d.id for d in reference[:3]] + [
      "arithmetic-v1-000000", "arithmetic-v1-000001"]


class ToolformerTestTexts(tfds.core.GeneratorBasedBuilder):
  """A user's dataset: only text and date features, no id; TFDS's own example order."""

  VERSION = tfds.core.Version("0.1.0")
  EXAMPLES = [{"text": "good one", "date": "2021-06-01"}, {"text": "", "date": ""},
              {"text": "bad date", "date": "2021-13-01"}, {"text": "no date", "date": ""},
              {"text": "good two", "date": ""}]

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        {"text": tfds.features.Text(), "date": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for key, example in enumerate(self.EXAMPLES):
      yield key, example


def test_any_tfds_dataset_with_a_text_feature(tmp_path):
  stats = corpora.ReadStats()
  docs = list(tfds_corpora.read_tfds("toolformer_test_texts", stats, data_dir=str(tmp_path)))
  assert sorted((d.text, d.date) for d in docs) == [
      ("good one", "2021-06-01"), ("good two", None), ("no date", None)]
  assert dict(stats.skipped_by_reason) == {"missing_text": 1, "bad_date": 1}
  assert stats.read == 3
  ids = [d.id for d in docs]
  assert all(i.startswith("toolformer_test_texts:train:") for i in ids) and len(set(ids)) == 3
  again = list(tfds_corpora.read_tfds("toolformer_test_texts", None, data_dir=str(tmp_path)))
  assert again == docs  # a fixed order, so the pipeline's shards are stable


# --- jsonl with 1% corrupt lines -------------------------------------------------------------
CORRUPT_LINES = [
    ('{"id": "broken-1", "text": "cut off', "malformed_json"),
    ("not json at all", "malformed_json"),
    ('{"id": "broken-3", "text": "x",, "date": null}', "malformed_json"),
    ("\x00\x01\x02 binary junk", "malformed_json"),
    ('{"id": "no-text-1", "date": "2020-01-01"}', "missing_text"),
    ('{"id": "no-text-2", "text": "   "}', "missing_text"),
    ('{"id": "no-text-3", "text": 42}', "missing_text"),
    ('{"id": "bad-date-1", "text": "A day that never was.", "date": "2021-02-30"}',
     "bad_date"),
    ('{"id": "bad-date-2", "text": "Some day.", "date": "yesterday"}', "bad_date"),
    ('{"id": "bad-date-3", "text": "Digits only.", "date": 20210101}', "bad_date"),
]


def _clean_records(count):
  rng = random.Random(0)
  records = []
  for k in range(count):
    record = {"id": f"doc-{k:04d}", "text": f"Document {k}: {rng.random():.6f} é ✓"}
    if k % 3 == 0:
      record["date"] = f"20{10 + k % 15:02d}-{1 + k % 12:02d}-{1 + k % 28:02d}"
    if k % 5 == 0:
      record["language"] = "en"
    records.append(json.dumps(record, ensure_ascii=k % 2 == 0))
  return records


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_jsonl_with_one_percent_corrupt_lines(tmp_path, suffix):
  clean = _clean_records(990)
  corrupt = list(clean)
  rng = random.Random(1)
  for line, _ in CORRUPT_LINES:  # 10 of 1000 lines
    corrupt.insert(rng.randrange(len(corrupt) + 1), line)
  paths = {}
  for name, lines in (("clean", clean), ("corrupt", corrupt)):
    path = tmp_path / f"{name}{suffix}"
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")
    paths[name] = str(path)
  clean_stats, corrupt_stats = corpora.ReadStats(), corpora.ReadStats()
  expected = list(driver.open_corpus(paths["clean"], clean_stats))
  docs = list(driver.open_corpus(paths["corrupt"], corrupt_stats))
  assert len(expected) == 990 and clean_stats.skipped == 0
  assert docs == expected
  assert corpora.Document("doc-0003", expected[3].text, "2013-04-04") == expected[3]
  assert corrupt_stats.read == 990
  reasons = {}
  for _, reason in CORRUPT_LINES:
    reasons[reason] = reasons.get(reason, 0) + 1
  assert dict(corrupt_stats.skipped_by_reason) == reasons
