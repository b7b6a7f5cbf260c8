"""Answer matching and call statistics of the eval metrics, table-driven."""
import datetime
import json
import math

import numpy as np
import pytest

from toolformer_jax.evaluation import metrics

CALL = " [Calculator(87 + 170) -> 257]"


@pytest.mark.parametrize("text,expected", [
    ("The answer is 42.", 42.0),
    ("1,234 apples", 1234.0),
    ("It costs $1,687.50 in total", 1687.5),
    ("about 3.14159 or so", 3.14159),
    ("-17 degrees", -17.0),
    ("a loss of -3.5 points", -3.5),
    ("half is 5/2 cups", 2.5),
    (".5 of it", 0.5),
    ("25% of the class", 25.0),
    ("on 2023-01-30 we met", 2023.0),  # the first number, whatever it belongs to
    ("no digits at all", None),
    ("x2 and then 7", 7.0),  # digits inside a word are not a number
    ("1,23 is not grouped", 1.0),
])
def test_first_number(text, expected):
  assert metrics.first_number(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("9", 9.0), ("1,720", 1720.0), ("2.5", 2.5), ("5/2", 2.5), ("-(1/3)", -1 / 3),
    ("-129", -129.0), ("3:4", None), ("Yes", None), ("12 apples", None), ("1/0", None),
])
def test_parse_number_of_gold_answers(text, expected):
  value = metrics.parse_number(text)
  assert (value is None) == (expected is None)
  if expected is not None:
    assert math.isclose(value, expected)


@pytest.mark.parametrize("prediction,answers,match,correct", [
    # math: the first number of the model's own words
    (" 257 apples", ["257"], "number", True),
    (" It is 1,234.", ["1234"], "number", True),
    (" 1234.00", ["1,234"], "number", True),
    (" 33.33", ["33.333333"], "number", True),  # the Calculator's two decimals
    (" 33.3", ["33.333333"], "number", False),
    (" 256 or 257", ["257"], "number", False),  # only the first number counts
    (CALL + " 257 apples", ["257"], "number", True),  # the call's numbers are not the answer
    (" [Calculator(87 + 170) -> 257] 258", ["257"], "number", False),
    (" [Calc 87 -> refused: no tool] 257", ["257"], "number", True),  # a malformed call
    (" none", ["257"], "number", False),
    (" 2.5 cups", ["5/2"], "number", True),
    # facts: the answer within the first five words, any casing, articles ignored
    (" paris, of course.", ["Paris"], "words:5", True),
    (" The PARIS region", ["Paris"], "words:5", True),
    (" a city called Bogota", ["Bogotá"], "words:5", True),  # accents ignored
    (" the Euro.", ["Euro"], "words:5", True),
    (" one two three four five Paris", ["Paris"], "words:5", False),
    (" one two three four Paris", ["Paris"], "words:5", True),
    (" the one the two the three the four Paris", ["Paris"], "words:5", True),  # articles
    (" Fitzgerald, F. Scott", ["F. Scott Fitzgerald", "Fitzgerald"], "words:5", True),
    (" Scott wrote it", ["F. Scott Fitzgerald"], "words:5", False),
    (" Parisian food", ["Paris"], "words:5", False),  # whole words only
    (" Paris\n\nQuestion: Rome", ["Rome"], "words:20", False),  # cut at the blank line
    (" In 1,775 she", ["1775"], "words:5", True),
    # dates: the first complete date must be the gold date
    (" January 27, 2023", ["2023-01-27"], "date", True),
    (" It was Friday, January 27th 2023.", ["2023-01-27"], "date", True),
    (" 27 January 2023", ["2023-01-27"], "date", True),
    (" the 27th of Jan. 2023", ["2023-01-27"], "date", True),
    (" 2023-01-27", ["2023-01-27"], "date", True),
    (" 01/27/2023", ["2023-01-27"], "date", True),
    (" January 26, 2023 or January 27, 2023", ["2023-01-27"], "date", False),
    (" January 27", ["2023-01-27"], "date", False),  # a date needs its year
    (" February 30, 2023", ["2023-02-28"], "date", False),  # not a date at all
    # weekdays: the first weekday named
    (" friday", ["Friday"], "weekday", True),
    (" Thursday or Friday", ["Friday"], "weekday", False),
    (" It will be Sunday.", ["Sunday"], "weekday", True),
])
def test_is_correct(prediction, answers, match, correct):
  assert metrics.is_correct(prediction, answers, match) is correct


def test_first_date_and_weekday():
  assert metrics.first_date("met on March 3, 2021 and 2021-03-01") == datetime.date(2021, 3, 3)
  assert metrics.first_date("nothing") is None
  assert metrics.first_weekday("on a MONDAY morning") == "monday"


def test_answer_text_removes_calls_including_a_cut_off_one():
  assert metrics.answer_text(CALL + " 257 apples") == "257 apples"
  assert metrics.answer_text(" 5 and [Calculator(3 * ") == "5 and"
  assert metrics.answer_text("\n\n  Rome\n\nMore") == "Rome"


@pytest.mark.parametrize("spec,parsed", [
    ("words:5", ("words", 5)), ("number", ("number", None)), ("date", ("date", None)),
    ("weekday", ("weekday", None))])
def test_parse_match(spec, parsed):
  assert metrics.parse_match(spec) == parsed


@pytest.mark.parametrize("spec", ["words", "words:0", "words:x", "number:3", "exact", 5])
def test_parse_match_rejects_bad_specs(spec):
  with pytest.raises(ValueError):
    metrics.parse_match(spec)


@pytest.mark.parametrize("answers,match,ok", [
    (["Paris"], "words:5", True), ([], "words:5", False), ("Paris", "words:5", False),
    (["12"], "number", True), (["twelve"], "number", False), (["2023-01-30"], "date", True),
    (["30/01/2023"], "date", False), (["Friday"], "weekday", True), (["Fri"], "weekday", False),
    ([""], "words:5", False)])
def test_check_answers(answers, match, ok):
  assert (metrics.check_answers(answers, match) is None) is ok


def _aux(counts, statuses, ranks, probs):
  """Batched aux values as t5x returns them (call_count [N], call_* [N, 1])."""
  col = lambda v, dtype: np.asarray(v, dtype)[:, None]
  return {"call_count": np.asarray(counts, np.int32),
          "call_status": col(statuses, np.int32), "call_trigger_rank": col(ranks, np.int32),
          "call_trigger_prob": col(probs, np.float32), "scores": np.zeros(len(counts))}


def test_tool_eval_metrics_accuracy_and_calls():
  targets = [{"answers": ["257"], "match": "number"}] * 4 + [
      {"answers": ["Paris"], "match": "words:5"}]
  predictions = [
      CALL + " 257",  # call, ok, correct
      " [QA(\"sum?\") -> 257] 12",  # call to QA, wrong
      " 257",  # no call, correct
      " [Calc 3 -> error: x] 257",  # a call whose text names no tool: unparsed; correct
      " [Calculator(1 +",  # started, never finished (status -1), wrong
  ]
  aux = _aux([1, 1, 0, 1, 1], [0, 0, -1, 1, -1], [0, 3, -1, 12, 1],
             [0.5, 0.1, 0.0, 0.01, 0.2])
  m = metrics.tool_eval_metrics(targets, predictions, aux)
  assert m[metrics.NUM_EXAMPLES] == 5
  assert m[metrics.ACCURACY] == pytest.approx(60.0)
  assert m[metrics.CALL_RATE] == pytest.approx(80.0)
  assert m[metrics.CALL_OK_RATE] == pytest.approx(40.0)
  # the Calculator's 257 and QA's 257 hold the answer (QA's was not copied); the error does not
  assert m[metrics.CALL_RESULT_RIGHT_RATE] == pytest.approx(40.0)
  assert m[metrics.call_rate_name("Calculator")] == pytest.approx(40.0)
  assert m[metrics.call_rate_name("QA")] == pytest.approx(20.0)
  assert m[metrics.call_rate_name(metrics.UNPARSED_TOOL)] == pytest.approx(20.0)
  assert m[metrics.call_rate_name("WikiSearch")] == 0.0
  assert m[metrics.ACCURACY_WITH_CALL] == pytest.approx(50.0)
  assert m[metrics.ACCURACY_WITHOUT_CALL] == pytest.approx(100.0)
  assert m[metrics.TRIGGER_RANK_MEAN] == pytest.approx((0 + 3 + 12 + 1) / 4)
  assert m[metrics.TRIGGER_PROB_MEAN] == pytest.approx((0.5 + 0.1 + 0.01 + 0.2) / 4)
  hist = {name: m[name] for name in metrics.RANK_BIN_NAMES}
  assert hist[metrics.rank_bin_name(0)] == 1 and hist[metrics.rank_bin_name(1)] == 1
  assert hist[metrics.rank_bin_name(3)] == 1 and hist[metrics.RANK_OVERFLOW] == 1
  assert sum(hist.values()) == 4


def test_tool_eval_metrics_without_calls_or_aux():
  targets = [{"answers": ["3"], "match": "number"}] * 2
  for aux in (None, {}, _aux([0, 0], [-1, -1], [-1, -1], [0, 0])):
    m = metrics.tool_eval_metrics(targets, [" 3", " 4"], aux)
    assert m[metrics.ACCURACY] == 50.0 and m[metrics.CALL_RATE] == 0.0
    assert math.isnan(m[metrics.ACCURACY_WITH_CALL]) and math.isnan(m[metrics.TRIGGER_RANK_MEAN])
    assert all(m[name] == 0 for name in metrics.RANK_BIN_NAMES)


def test_tool_eval_metrics_is_a_predict_with_aux_metric_for_seqio():
  import inspect  # pylint: disable=g-import-not-at-top
  required = [name for name, p in inspect.signature(metrics.tool_eval_metrics).parameters.items()
              if p.default is inspect.Parameter.empty]
  assert required == ["targets", "predictions", "aux_values"]


def test_postprocess_reads_answers_and_match_from_the_example():
  example = {"answers": json.dumps(["Bogotá", "Bogota"]).encode(), "match": b"words:5"}
  assert metrics.postprocess("Bogotá", example=example, is_target=True) == {
      "answers": ["Bogotá", "Bogota"], "match": "words:5"}
  assert metrics.postprocess(" a prediction", example=example) == " a prediction"
  with pytest.raises(ValueError):
    metrics.postprocess("x", example={"targets": b"x"}, is_target=True)


@pytest.mark.parametrize("result, answers, match, holds", [
    ("257", ["257"], "number", True),
    ("256.9999999", ["257"], "number", True),
    ("1,250", ["1250"], "number", True),
    ("Sunday, January 30, 2011.", ["2011"], "number", True),  # not its first number
    ("Sunday, January 30, 2011.", ["2012"], "number", False),
    ("Friday, January 27, 2023.", ["2023-01-27"], "date", True),
    ("Today is Monday, January 30, 2023.", ["2023-01-27"], "date", False),
    ("Friday, January 27, 2023.", ["Friday"], "weekday", True),
    ("Friday, January 27, 2023.", ["Monday"], "weekday", False),
    ("Paris is the capital of France", ["Paris"], "words:5", True),
])
def test_result_holds_answer(result, answers, match, holds):
  assert metrics.result_holds_answer(result, answers, match) is holds

