"""The corpus readers (toolformer_jax.corpora) count and skip malformed records, never fail."""
import gzip
import json

import pytest

from toolformer_jax import corpora

GOOD = json.dumps({"id": "d1", "text": "First document.", "date": "2023-01-30"})

# (name, lines of a jsonl file, ids read, skipped by reason, blank lines)
JSONL_CASES = [
    ("good lines", [GOOD, json.dumps({"id": 7, "text": "Second.", "language": "en"})],
     ["d1", "7"], {}, 0),
    ("malformed json", [GOOD, '{"id": "d2", "text": ', "not json at all"],
     ["d1"], {"malformed_json": 2}, 0),
    ("not an object", [GOOD, "[1, 2]", '"a string"', "3"], ["d1"], {"not_an_object": 3}, 0),
    ("missing text", [GOOD, json.dumps({"id": "d2"}), json.dumps({"id": "d3", "text": "  "}),
                      json.dumps({"id": "d4", "text": ["a", "list"]})],
     ["d1"], {"missing_text": 3}, 0),
    ("bad date", [GOOD, json.dumps({"id": "d2", "text": "t", "date": "2023-02-30"}),
                  json.dumps({"id": "d3", "text": "t", "date": "30/01/2023"}),
                  json.dumps({"id": "d4", "text": "t", "date": "20230130"}),
                  json.dumps({"id": "d5", "text": "t", "date": 2023}),
                  json.dumps({"id": "d6", "text": "t", "date": None})],
     ["d1", "d6"], {"bad_date": 4}, 0),
    ("bad id and language", [json.dumps({"id": ["x"], "text": "t"}),
                             json.dumps({"id": True, "text": "t"}),
                             json.dumps({"id": "d3", "text": "t", "language": 5})],
     [], {"bad_id": 2, "bad_language": 1}, 0),
    ("empty lines", ["", GOOD, "   ", "\t", ""], ["d1"], {}, 4),
    ("default ids", [json.dumps({"text": "no id"}), "", json.dumps({"text": "again"})],
     ["docs.jsonl:1", "docs.jsonl:3"], {}, 1),
    ("all reasons", [GOOD, "{bad", "[]", json.dumps({"id": "x"}),
                     json.dumps({"text": "t", "date": "yesterday"}), ""],
     ["d1"], {"malformed_json": 1, "not_an_object": 1, "missing_text": 1, "bad_date": 1}, 1),
]


def _write(path, lines):
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wt", encoding="utf-8") as f:
    f.write("".join(line + "\n" for line in lines))
  return path


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
@pytest.mark.parametrize("name,lines,ids,reasons,blank", JSONL_CASES,
                         ids=[c[0] for c in JSONL_CASES])
def test_read_jsonl(tmp_path, suffix, name, lines, ids, reasons, blank):
  del name
  path = _write(tmp_path / f"docs{suffix}", lines)
  stats = corpora.ReadStats()
  docs = list(corpora.read_jsonl(path, stats))
  if suffix == ".jsonl":  # ids default to the file name
    assert [d.id for d in docs] == ids
  assert stats.read == len(docs) == len(ids)
  assert dict(stats.skipped_by_reason) == reasons
  assert stats.skipped == sum(reasons.values())
  assert stats.blank_lines == blank
  assert stats.read + stats.skipped + stats.blank_lines == len(lines)


def test_document_fields(tmp_path):
  path = _write(tmp_path / "d.jsonl", [
      json.dumps({"id": " a ", "text": " keeps its spaces ", "date": "2024-02-29",
                  "language": "es", "extra": 1}),
      json.dumps({"text": "minimal"})])
  first, second = corpora.read_jsonl(path)
  assert first == corpora.Document(id="a", text=" keeps its spaces ", date="2024-02-29",
                                   language="es")
  assert second == corpora.Document(id="d.jsonl:2", text="minimal")


def test_summary_names_every_reason(tmp_path):
  path = _write(tmp_path / "d.jsonl", [GOOD, "{bad", json.dumps({"id": "x"})])
  stats = corpora.ReadStats("my corpus")
  list(corpora.read_jsonl(path, stats))
  assert stats.summary() == ("my corpus: 1 records read, 2 skipped "
                             "(malformed_json 1, missing_text 1)")


def test_one_stats_gathers_several_files(tmp_path):
  stats = corpora.ReadStats()
  for i in range(3):
    list(corpora.read_jsonl(_write(tmp_path / f"{i}.jsonl", [GOOD, "{bad"]), stats))
  assert stats.read == 3 and stats.skipped_by_reason == {"malformed_json": 3}


def test_invalid_utf8_is_replaced_not_fatal(tmp_path):
  path = tmp_path / "d.jsonl"
  path.write_bytes(b'{"id": "a", "text": "caf\xe9"}\n' + GOOD.encode() + b"\n")
  docs = list(corpora.read_jsonl(path))
  assert [d.text for d in docs] == ["caf\ufffd", "First document."]


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_read_text(tmp_path, suffix):
  path = _write(tmp_path / f"plain{suffix}", ["one document", "", "  ", "another\r"])
  stats = corpora.ReadStats()
  docs = list(corpora.read_text(path, stats))
  assert [d.text for d in docs] == ["one document", "another"]
  assert [d.id for d in docs] == [f"plain{suffix}:1", f"plain{suffix}:4"]
  assert (stats.read, stats.skipped, stats.blank_lines) == (2, 0, 2)


@pytest.mark.parametrize("name,kind", [("a.jsonl", "jsonl"), ("a.json", "jsonl"),
                                       ("a.jsonl.gz", "jsonl"), ("a.txt", "text"),
                                       ("a", "text")])
def test_read_documents_picks_the_reader_by_suffix(tmp_path, name, kind):
  path = _write(tmp_path / name, [GOOD])
  (doc,) = corpora.read_documents(path)
  assert doc.text == ("First document." if kind == "jsonl" else GOOD)


WIKI_CASES = [
    ("bundled fields", {"title": "Paris", "extract": "Paris is a city.",
                        "description": "Capital of France"},
     corpora.wikipedia_article("Paris", "Paris is a city.", "Capital of France"), None),
    ("kilt paragraphs", {"wikipedia_title": "Berlin", "text": ["Berlin", "A city.", "Big."]},
     corpora.wikipedia_article("Berlin", "A city.\nBig."), None),
    ("no title", {"title": "", "text": "t"}, None, "missing_title"),
    ("no text", {"title": "T", "extract": " "}, None, "missing_text"),
    ("not an object", ["a list"], None, "not_an_object"),
]


@pytest.mark.parametrize("name,record,article,reason", WIKI_CASES,
                         ids=[c[0] for c in WIKI_CASES])
def test_read_wikipedia_jsonl_and_bundled_json(tmp_path, name, record, article, reason):
  del name
  jsonl = _write(tmp_path / "w.jsonl", [json.dumps(record), "{bad", ""])
  bundled = tmp_path / "w.json"
  bundled.write_text(json.dumps({"key": record}))
  for path, extra_skips in ((jsonl, {"malformed_json": 1}), (bundled, {})):
    stats = corpora.ReadStats()
    docs = list(corpora.read_wikipedia(path, stats))
    assert docs == ([] if article is None else [article])
    expected = dict(extra_skips, **({reason: 1} if reason else {}))
    assert dict(stats.skipped_by_reason) == expected
  if article is not None:
    assert article.id == article.title


def test_bundled_corpus_and_missing_files(tmp_path):
  path = corpora.resolve_corpus_path(None)
  assert path == corpora.bundled_corpus_path() and path.name == "summaries_en-us.json"
  with pytest.raises(FileNotFoundError, match="corpus file not found"):
    corpora.resolve_corpus_path(tmp_path / "none.jsonl")
  with pytest.raises(FileNotFoundError, match="no bundled corpus"):
    corpora.bundled_corpus_path("xx-yy")


@pytest.mark.parametrize("line,fields,reasons", [
    (b'{"tool": "QA", "text": "x"}', ("QA", "x"), {}),
    (b'{"tool": "QA"}', None, {"missing_text": 1}),
    (b'{"tool": " ", "text": "x"}', None, {"missing_tool": 1}),
    (b'{"tool": ', None, {"malformed_json": 1}),
    (b"", None, {}),
])
def test_record_layer(line, fields, reasons):
  stats = corpora.ReadStats()
  record = corpora.parse_json_line(line, stats)
  got = None if record is None else corpora.required_strings(record, ("tool", "text"), stats)
  assert got == fields
  assert dict(stats.skipped_by_reason) == reasons
  assert stats.blank_lines == int(not line)


def test_heldout_split_rule():
  """sha256(title)'s first 8 bytes mod 1000 < HELDOUT_PER_MILLE (50): about 5% held out,
  by title only (pinned: changing it would move documents between train and validation)."""
  import hashlib  # pylint: disable=g-import-not-at-top
  assert corpora.HELDOUT_PER_MILLE == 50
  heldout = [i for i in range(2000) if corpora.is_heldout(f"Title {i}")]
  assert len(heldout) == 104 and heldout[:5] == [39, 55, 59, 93, 113]
  for i in range(200):
    digest = hashlib.sha256(f"Title {i}".encode("utf-8")).digest()
    assert corpora.is_heldout(f"Title {i}") == (int.from_bytes(digest[:8], "big") % 1000 < 50)
