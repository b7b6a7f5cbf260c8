"""Small benchmark files in each published format, written by the tests themselves (no
benchmark file is bundled), with malformed records among the good ones, and what reading
each must give.

`SAMPLES[name]` is a `Sample`: `write(directory) -> path` writes the file (or folder) that
BENCHMARK_PATHS / `generate --benchmark_path` would name; `examples` are the
(task source, id, question, answers) the reader must return, in order; `skipped` the
records it must count and skip, by reason. The problems, facts and questions are the
tests' own.
"""
import dataclasses
import json
import pathlib
from typing import Callable, Dict, List, Tuple


def _write_json(path: pathlib.Path, data) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
  return path


def _write_lines(path: pathlib.Path, lines) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join((l if isinstance(l, str) else json.dumps(l, ensure_ascii=False))
                          + "\n" for l in lines), encoding="utf-8")
  return path


# --- math ----------------------------------------------------------------------------------
def write_svamp(directory) -> pathlib.Path:
  return _write_json(pathlib.Path(directory) / "SVAMP.json", [
      {"ID": "chal-1", "Body": "A shelf holds 3 rows of 4 jars", "Question": "How many "
       "jars are on the shelf?", "Equation": "( 3.0 * 4.0 )", "Answer": 12.0,
       "Type": "Multiplication"},
      {"ID": "chal-2", "Body": "Mia had 30 stamps.  She gave 18 away.", "Question": "How "
       "many stamps does she have now?", "Equation": "( 30.0 - 18.0 )", "Answer": 12,
       "Type": "Subtraction"},
      {"ID": "chal-3", "Body": "A note without its question.", "Question": "",
       "Equation": "", "Answer": 1.0, "Type": "Addition"},
      {"ID": "chal-4", "Body": "Tom ran far.", "Question": "How far?", "Equation": "",
       "Answer": "very", "Type": "Common-Division"},
      "not a problem",
      {"ID": "chal-6", "Body": "Half of 3 pies were eaten.", "Question": "How many pies "
       "were eaten?", "Equation": "( 3.0 / 2.0 )", "Answer": 1.5, "Type": "Common-Division"},
  ])


def write_mawps(directory) -> pathlib.Path:
  folder = pathlib.Path(directory) / "mawps"
  _write_json(folder / "AddSub.json", [
      {"iIndex": 7, "sQuestion": "Ken has 5 kites and buys 7 more. How many kites does he "
       "have?", "lEquations": ["X=(5+7)"], "lSolutions": [12.0]},
      {"iIndex": 8, "lEquations": ["X=(1+1)"], "lSolutions": [2.0]},
      {"iIndex": 9, "sQuestion": "Two numbers sum to 10 and differ by 2. What are they?",
       "lEquations": ["X+Y=10", "X-Y=2"], "lSolutions": [6.0, 4.0]},
  ])
  _write_json(folder / "SingleOp.json", [
      {"iIndex": 1, "sQuestion": "A box of 48 pens is shared by 4 pupils. How many pens "
       "does each get?", "lEquations": ["X=(48/4)"], "lSolutions": [12]},
      {"iIndex": 2, "sQuestion": "What is it?", "lEquations": [], "lSolutions": []},
  ])
  return folder


def write_gsm8k(directory) -> pathlib.Path:
  return _write_lines(pathlib.Path(directory) / "test.jsonl", [
      {"question": "A farm sells 1,000 eggs a day and 250 more on Sundays. How many eggs "
       "does it sell on a Sunday?", "answer": "1000 + 250 = <<1000+250=1250>>1250\n#### 1,250"},
      {"question": "How many legs do 3 cats have?", "answer": "3 * 4 = 12 legs."},
      "{not json",
      "",
      {"question": "A debt of 5 dollars grows by 3. What is the balance?",
       "answer": "-5 - 3 = -8\n#### -8"},
  ])


SVAMP = [("math_svamp", "chal-1", "A shelf holds 3 rows of 4 jars How many jars are on the "
          "shelf?", ("12",)),
         ("math_svamp", "chal-2", "Mia had 30 stamps. She gave 18 away. How many stamps does "
          "she have now?", ("12",)),
         ("math_svamp", "chal-6", "Half of 3 pies were eaten. How many pies were eaten?",
          ("1.5",))]
MAWPS = [("math_mawps", "AddSub-7", "Ken has 5 kites and buys 7 more. How many kites does he "
          "have?", ("12",)),
         ("math_mawps", "SingleOp-1", "A box of 48 pens is shared by 4 pupils. How many pens "
          "does each get?", ("12",))]
GSM8K = [("math_gsm8k", "test.jsonl:1", "A farm sells 1,000 eggs a day and 250 more on "
          "Sundays. How many eggs does it sell on a Sunday?", ("1250",)),
         ("math_gsm8k", "test.jsonl:5", "A debt of 5 dollars grows by 3. What is the "
          "balance?", ("-8",))]


# --- LAMA ----------------------------------------------------------------------------------
def write_lama(directory) -> pathlib.Path:
  data = pathlib.Path(directory) / "LAMA" / "data"
  _write_lines(data / "relations.jsonl", [  # relation templates: not facts, left alone
      {"relation": "P36", "template": "The capital of [X] is [Y] .", "label": "capital"}])
  _write_lines(data / "Squad" / "test.jsonl", [
      {"masked_sentences": ["The longest river of the tests is the [MASK] ."],
       "obj_label": "Testriver", "id": "sq-1", "sub_label": "Squad"},
      {"masked_sentences": ["The [MASK] flows past the old mill."], "obj_label": "Millbrook",
       "id": "sq-2", "sub_label": "Squad"},
      {"masked_sentences": ["No blank in this one."], "obj_label": "x", "id": "sq-3",
       "sub_label": "Squad"},
  ])
  _write_lines(data / "Google_RE" / "place_of_birth_test.jsonl", [
      {"pred": "/people/person/place_of_birth", "sub_label": "Ada Example",
       "obj_label": "Testville", "obj_aliases": ["Testville City"], "uuid": "g-1",
       "masked_sentences": ["Ada Example ( born in [MASK] in 1901 ) wrote plays .",
                            "Ada Example was born in [MASK] ."]},
      {"pred": "/people/person/place_of_birth", "sub_label": "Bo Example", "uuid": "g-2",
       "masked_sentences": ["Bo Example was born in [MASK] ."]},
  ])
  _write_lines(data / "TREx" / "P36.jsonl", [
      {"uuid": "t-1", "obj_uri": "Q1", "obj_label": "Mockton", "sub_uri": "Q2",
       "sub_label": "Mockland", "predicate_id": "P36",
       "evidences": [{"sub_surface": "Mockland", "obj_surface": "Mockton",
                      "masked_sentence": "The capital of Mockland is [MASK]."}]},
      "[1, 2]",
  ])
  return data


LAMA = [("facts_lama_google_re", "g-1", "Ada Example was born in",
         ("Testville", "Testville City")),
        ("facts_lama_squad", "sq-1", "The longest river of the tests is the", ("Testriver",)),
        ("facts_lama_trex", "t-1", "The capital of Mockland is", ("Mockton",))]


# --- open-domain QA ------------------------------------------------------------------------
def write_nq_open(directory) -> pathlib.Path:
  return _write_lines(pathlib.Path(directory) / "NQ-open.dev.jsonl", [
      {"question": "who painted the test portrait", "answer": ["Ada Example", "A. Example"]},
      {"question": "where is the test lighthouse?", "answer": ["Cape Test"]},
      {"question": "who has no answer", "answer": []},
      {"answer": ["orphan"]},
      "[1, 2]",
  ])


def write_triviaqa(directory) -> pathlib.Path:
  return _write_json(pathlib.Path(directory) / "qa" / "wikipedia-dev.json", {
      "Data": [
          {"Question": "Which band recorded the album Test Pattern?", "QuestionId": "tq_1",
           "Answer": {"Value": "The Examples", "Aliases": ["The Examples", "Examples"],
                      "NormalizedAliases": ["examples", "the examples"],
                      "NormalizedValue": "the examples", "Type": "WikipediaEntity"}},
          {"Question": "A question of the test file, without its answer?",
           "QuestionId": "tq_2"},
          {"Question": "What is the test number?", "QuestionId": "tq_3",
           "Answer": {"Value": "42", "Aliases": [], "NormalizedAliases": ["42"]}},
          7,
      ],
      "Domain": "Wikipedia", "Split": "dev", "Version": 1.0, "VersionName": "1.0"})


def write_webqs(directory) -> pathlib.Path:
  return _write_json(pathlib.Path(directory) / "webquestions.examples.test.json", [
      {"url": "http://www.freebase.com/view/en/ada_example",
       "targetValue": "(list (description \"Ada \\\"A.\\\" Example\") (description Testville))",
       "utterance": "who founded testville?"},
      {"url": "http://www.freebase.com/view/en/x", "targetValue": "(list)",
       "utterance": "what has no answer?"},
      {"url": "http://www.freebase.com/view/en/y", "targetValue": "(list (description 1901))"},
  ])


NQ_OPEN = [("qa_nq_open", "NQ-open.dev.jsonl:1", "who painted the test portrait",
            ("Ada Example", "A. Example")),
           ("qa_nq_open", "NQ-open.dev.jsonl:2", "where is the test lighthouse?",
            ("Cape Test",))]
TRIVIAQA = [("qa_triviaqa", "tq_1", "Which band recorded the album Test Pattern?",
             ("The Examples",)),
            ("qa_triviaqa", "tq_3", "What is the test number?", ("42",))]
WEBQS = [("qa_webqs", "webqs-0", "who founded testville?", ('Ada "A." Example', "Testville"))]


# --- MLQA and TempLAMA ---------------------------------------------------------------------
def _squad(*paragraphs):
  return {"version": "1.0", "data": [{"title": "Test", "paragraphs": list(paragraphs)}]}


def write_mlqa(directory) -> pathlib.Path:
  folder = pathlib.Path(directory) / "MLQA_V1" / "test"
  context = "The test lighthouse stands on Cape Test. It was built in 1901 by Ada Example."
  _write_json(folder / "test-context-en-question-es.json", _squad(
      {"context": context, "qas": [
          {"id": "m1", "question": "¿Quién construyó el faro?",
           "answers": [{"text": "Ada Example", "answer_start": 52}]},
          {"id": "m2", "question": "¿Dónde está el faro?", "answers": []}]},
      {"qas": [{"id": "m3", "question": "¿Sin contexto?", "answers": [{"text": "x"}]}]}))
  _write_json(folder / "test-context-en-question-de.json", _squad(
      {"context": context, "qas": [
          {"id": "m4", "question": "Wann wurde der Leuchtturm gebaut?",
           "answers": [{"text": "1901", "answer_start": 43}]}]}))
  _write_json(folder / "test-context-es-question-es.json", _squad(  # not the paper's setting
      {"context": "El faro.", "qas": [{"id": "m5", "question": "¿Qué?",
                                       "answers": [{"text": "faro"}]}]}))
  return folder.parent


def write_templama(directory) -> pathlib.Path:
  return _write_lines(pathlib.Path(directory) / "templama" / "test.json", [
      {"query": "Ada Example plays for _X_.", "answer": [
          {"wikidata_id": "Q1", "name": "Example United"},
          {"wikidata_id": "Q2", "name": "Example City"}],
       "date": "2019", "id": "Q9_P54_2019", "relation": "P54"},
      {"query": "_X_ is the head coach of Example United.",
       "answer": [{"wikidata_id": "Q3", "name": "Bo Example"}], "date": "2018",
       "id": "Q3_P286_2018", "relation": "P286"},
      {"query": "Ada Example works for _X_.", "answer": [], "date": "2017", "id": "e3"},
      {"query": "Ada Example works for _X_.", "answer": [{"name": "Test Corp"}], "id": "e4"},
  ])


MLQA = [("mlqa_test_de", "m4", "Wann wurde der Leuchtturm gebaut?", ("1901",)),
        ("mlqa_test_es", "m1", "¿Quién construyó el faro?", ("Ada Example",))]
TEMPLAMA = [("dates_templama", "Q9_P54_2019", "Ada Example plays for",
             ("Example United", "Example City"))]


@dataclasses.dataclass(frozen=True)
class Sample:
  write: Callable[..., pathlib.Path]
  examples: List[Tuple[str, str, str, Tuple[str, ...]]]
  skipped: Dict[str, int]


SAMPLES = {
    "svamp": Sample(write_svamp, SVAMP, {"missing_Question": 1, "bad_answer": 1,
                                         "not_an_object": 1}),
    "mawps": Sample(write_mawps, MAWPS, {"missing_sQuestion": 1, "several_answers": 1,
                                         "missing_lSolutions": 1}),
    "gsm8k": Sample(write_gsm8k, GSM8K, {"no_final_answer": 1, "malformed_json": 1}),
    "lama": Sample(write_lama, LAMA, {"mask_not_last": 1, "missing_masked_sentences": 1,
                                      "missing_obj_label": 1, "not_an_object": 1}),
    "nq_open": Sample(write_nq_open, NQ_OPEN, {"bad_answer": 1, "missing_question": 1,
                                               "not_an_object": 1}),
    "triviaqa": Sample(write_triviaqa, TRIVIAQA, {"missing_Answer": 1, "not_an_object": 1}),
    "webqs": Sample(write_webqs, WEBQS, {"bad_target_value": 1, "missing_utterance": 1}),
    "mlqa": Sample(write_mlqa, MLQA, {"bad_answer": 1, "missing_context": 1}),
    "templama": Sample(write_templama, TEMPLAMA, {"mask_not_last": 1, "bad_answer": 1,
                                                  "missing_date": 1}),
}
