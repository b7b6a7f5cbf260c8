"""The benchmark readers on small files the tests write in each published format
(tests/benchmark_samples.py), malformed records among them; files of another kind; the
items' prompts and the paper's metrics; the paper's figures each benchmark sits beside."""
import json
import logging
import pathlib

import pytest

from benchmark_samples import SAMPLES, write_lama, write_mlqa, write_svamp
from toolformer_jax import corpora
from toolformer_jax.evaluation import asdiv
from toolformer_jax.evaluation import benchmarks
from toolformer_jax.evaluation import metrics
from toolformer_jax.evaluation import report


def test_every_benchmark_has_a_sample():
  assert set(SAMPLES) == set(benchmarks.NAMES) - {"asdiv"}  # ASDiv: tests/evaluation/test_asdiv.py


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_reads_the_published_format_and_skips_malformed_records(name, tmp_path):
  sample = SAMPLES[name]
  stats = corpora.ReadStats(name)
  by_source = benchmarks.read(name, str(sample.write(tmp_path)), stats=stats)
  got = [(source, e.id, e.question, e.answers) for source, examples in by_source.items()
         for e in examples]
  assert got == sample.examples
  assert dict(stats.skipped_by_reason) == sample.skipped
  assert stats.read == len(sample.examples)


@pytest.mark.parametrize("name, where", [
    ("svamp", "SVAMP.json[2]"),  # a JSON list: the record's index
    ("gsm8k", "test.jsonl:2"),  # jsonl: the line
    ("mlqa", "test-context-en-question-es.json[data 0 paragraph 0 question 1]"),
])
def test_a_malformed_record_is_named(name, where, tmp_path, caplog):
  path = SAMPLES[name].write(tmp_path)
  with caplog.at_level(logging.WARNING):
    benchmarks.read(name, str(path))
  assert any(where in r.getMessage() for r in caplog.records), caplog.text


FormatError = benchmarks.FormatError


def _file(path, text):
  path.write_text(text)
  return path


def _jsonl(path, *records):
  return _file(path, "".join(json.dumps(r) + "\n" for r in records))


# (benchmark, write(tmp_path) -> path, error, what the message must say)
WRONG_FILES = [
    ("svamp", lambda d: _jsonl(d / "SVAMP.json", {"ID": "a", "Body": "b"}, {"ID": "c"}),
     FormatError, r"is jsonl .*expected SVAMP\.json: one JSON list"),
    ("svamp", lambda d: _file(d / "SVAMP.json", '{"ID": 1}'),
     FormatError, r"JSON dict, not a list; expected SVAMP\.json"),
    ("svamp", lambda d: d / "missing.json", FileNotFoundError,
     r"not found: .*expected SVAMP\.json: one JSON list"),
    ("webqs", lambda d: d, FormatError, r"is a folder.*webquestions"),
    ("mawps", lambda d: _jsonl(d / "AddSub.json", {"sQuestion": "x"}, {"sQuestion": "y"}),
     FormatError, r"is jsonl .*expected MAWPS"),
    ("nq_open", lambda d: _file(d / "NQ-open.dev.jsonl", '[{"question": "q"}]'), FormatError,
     r"JSON list, not jsonl; expected NQ-open\.dev\.jsonl"),
    ("gsm8k", lambda d: _file(d / "test.jsonl", "<Problem>1</Problem>\n"), FormatError,
     r"no record of the expected format \(malformed_json 1\); expected GSM8K"),
    ("templama", lambda d: _jsonl(d / "test.json", {"question": "q", "answer": ["a"]}),
     FormatError, r"missing_query 1\); expected TempLAMA"),
    ("triviaqa", lambda d: _file(d / "dev.json", "[]"),
     FormatError, r'no "Data" list; expected TriviaQA'),
    ("mlqa", lambda d: _file(d / "mlqa_es.json", '{"data": []}'),
     FormatError, r"name gives its languages.*test-context-en-question-es"),
    ("lama", lambda d: _jsonl(d / "facts.jsonl", {"obj_label": "Paris",
                                                  "masked_sentences": ["It is [MASK] ."]}),
     FormatError, r"cannot tell its LAMA subset"),
    ("asdiv", lambda d: _file(d / "ASDiv.xml", '{"Body": 1}'),
     FormatError, r"not XML .*expected ASDiv\.xml"),
]


@pytest.mark.parametrize("name, write, error, message", WRONG_FILES)
def test_a_file_of_another_kind_fails_naming_the_expected_format(name, write, error,
                                                                 message, tmp_path):
  path = write(tmp_path)
  with pytest.raises(error, match=message):
    benchmarks.read(name, str(path))


def test_subsets_from_the_name_or_the_caller(tmp_path):
  data = write_lama(tmp_path)
  (source, examples), = benchmarks.read("lama_trex", str(data / "TREx" / "P36.jsonl")).items()
  assert source == "facts_lama_trex" and [e.id for e in examples] == ["t-1"]
  # A file whose path names no subset takes the one given (here Squad's file, renamed).
  renamed = tmp_path / "facts.jsonl"
  renamed.write_text((data / "Squad" / "test.jsonl").read_text())
  assert list(benchmarks.read("lama", str(renamed), subset="squad")) == ["facts_lama_squad"]
  # Without one, the records say: Squad's sub_label.
  assert list(benchmarks.read("lama", str(renamed))) == ["facts_lama_squad"]
  # A subset given with LAMA's folder keeps that subset's files; a file of another fails.
  assert list(benchmarks.read("lama_google_re", str(data))) == ["facts_lama_google_re"]
  with pytest.raises(FormatError, match="is a LAMA trex file, not squad"):
    benchmarks.read("lama_squad", str(data / "TREx" / "P36.jsonl"))
  folder = write_mlqa(tmp_path)
  assert list(benchmarks.read("mlqa_es", str(folder))) == ["mlqa_test_es"]
  assert list(benchmarks.read("mlqa", str(folder), subset="de")) == ["mlqa_test_de"]
  with pytest.raises(ValueError, match="names the subset 'es', not 'de'"):
    benchmarks.read("mlqa_es", str(folder), subset="de")
  with pytest.raises(ValueError, match="no subsets"):
    benchmarks.read("svamp", str(write_svamp(tmp_path)), subset="x")
  with pytest.raises(ValueError, match=r"unknown benchmark 'lama_wiki'.*lama_<squad\|"):
    benchmarks.parse_name("lama_wiki")


# (benchmark, source, the first item's inputs, match)
PROMPTS = [
    ("svamp", "math_svamp", "Question: A shelf holds 3 rows of 4 jars How many jars are on "
     "the shelf?\nAnswer: The answer is", "number"),
    ("gsm8k", "math_gsm8k", "Question: A farm sells 1,000 eggs a day and 250 more on "
     "Sundays. How many eggs does it sell on a Sunday?\nAnswer: The answer is", "number"),
    ("lama", "facts_lama_google_re", "Ada Example was born in", "words:5"),
    ("nq_open", "qa_nq_open", "Question: who painted the test portrait?\nAnswer: The answer "
     "is", "words:20"),
    ("webqs", "qa_webqs", "Question: who founded testville?\nAnswer: The answer is",
     "words:20"),
    ("mlqa", "mlqa_test_es", "The test lighthouse stands on Cape Test. It was built in 1901 "
     "by Ada Example.\nQuestion: ¿Quién construyó el faro?\nAnswer: The answer is",
     "words:10"),
    ("templama", "dates_templama", "In 2019, Ada Example plays for", "words:5"),
]


@pytest.mark.parametrize("name, source, inputs, match", PROMPTS)
def test_items_have_the_zero_shot_prompt_and_the_papers_metric(name, source, inputs, match,
                                                                tmp_path):
  items = benchmarks.eval_items(name, str(SAMPLES[name].write(tmp_path)))
  item = items[source][0]
  assert (item.inputs, item.match, item.problem()) == (inputs, match, None)
  assert item.id.startswith(source + "-")
  assert len(benchmarks.eval_items(name, str(SAMPLES[name].write(tmp_path)), count=1)[
      source]) == 1


# (benchmark, source, output, correct): the paper's rules as each benchmark applies them.
SCORES = [
    ("svamp", "math_svamp", " 12 jars", True),
    ("svamp", "math_svamp", " 3 rows of 4, so 12", False),  # the first number
    ("lama", "facts_lama_google_re", " the city of Testville City.", True),  # an alias
    ("lama", "facts_lama_google_re", " one small town by its old river Testville", False),  # 8th
    ("triviaqa", "qa_triviaqa", " Examples, the band", True),  # an alias
    ("mlqa", "mlqa_test_es", " " + "it was " * 4 + "Ada Example", True),  # 9th word
    ("mlqa", "mlqa_test_es", " " + "it was " * 5 + "Ada Example", False),  # 11th word
    ("nq_open", "qa_nq_open", " " + "well " * 19 + "Ada Example", True),  # 20th word
    ("nq_open", "qa_nq_open", " " + "well " * 20 + "Ada Example", False),
    ("templama", "dates_templama", " Example City in 2019", True),  # any answer of the date
]


@pytest.mark.parametrize("name, source, output, correct", SCORES)
def test_outputs_are_scored_with_the_papers_rule(name, source, output, correct, tmp_path):
  item = benchmarks.eval_items(name, str(SAMPLES[name].write(tmp_path)))[source][0]
  assert metrics.is_correct(output, item.answers, item.match) is correct


def test_each_benchmark_of_the_paper_sits_beside_its_figures():
  rows = {row[0]: row for family in report.PAPER.values() for row in family}
  for source, row in benchmarks.paper_rows().items():
    assert row in rows, (source, row)
    assert report._paper_same(source) == rows[row]  # pylint: disable=protected-access
  assert report._paper_same("qa_nq_open") == ("NQ", 12.8, 17.7)  # pylint: disable=protected-access
  assert report._paper_same("math_gsm8k") is None  # pylint: disable=protected-access
  assert report._paper_same("facts_leads_v1") is None  # pylint: disable=protected-access
  assert report.split_of("math_svamp") == report.BENCHMARK


def test_generate_records_carry_the_question_and_answers(tmp_path):
  records = benchmarks.generate_records("templama", str(SAMPLES["templama"].write(tmp_path)))
  assert records == [{
      "id": "dates_templama-Q9_P54_2019", "benchmark": "templama", "task": "dates_templama",
      "question": "Ada Example plays for", "answers": ["Example United", "Example City"],
      "match": "words:5", "inputs": "In 2019, Ada Example plays for", "date": "2019"}]
  mlqa = benchmarks.generate_records("mlqa", str(write_mlqa(tmp_path)), count=1)
  assert [r["task"] for r in mlqa] == ["mlqa_test_de", "mlqa_test_es"]  # the first of each
  assert mlqa[0]["context"].startswith("The test lighthouse")
  with pytest.raises(ValueError, match="an int >= 0"):
    benchmarks.generate_records("mlqa", str(write_mlqa(tmp_path)), count=-1)


def test_benchmark_paths_are_checked():
  assert benchmarks.check_paths(None) == {}
  assert benchmarks.check_paths({"lama_trex": " /d/P36.jsonl "}) == {"lama_trex": "/d/P36.jsonl"}
  with pytest.raises(ValueError, match="unknown benchmark 'squad'"):
    benchmarks.check_paths({"squad": "/d"})
  with pytest.raises(ValueError, match="must be a path"):
    benchmarks.check_paths({"svamp": ""})
  with pytest.raises(ValueError, match="must be a dict"):
    benchmarks.check_paths(["svamp"])


REAL_ASDIV = pathlib.Path("/work/shared/data/asdiv")


@pytest.mark.skipif(not (REAL_ASDIV / "ASDiv.xml").is_file(),
                    reason="ASDiv.xml is not in /work/shared/data/asdiv (CC BY-NC, not bundled)")
def test_asdiv_by_name_gives_the_asdiv_items():
  (items,) = benchmarks.eval_items("asdiv", str(REAL_ASDIV)).values()
  assert items == asdiv.asdiv_items(str(REAL_ASDIV))
  assert len(items) == 2093
