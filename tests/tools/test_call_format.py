"""The call format: rendering, strict parsing and scanning of (model-generated) text."""
import pytest

from toolformer_jax.tools import call_format
from toolformer_jax.tools.call_format import ToolCall


@pytest.mark.parametrize("call, result, expected", [
    (ToolCall("Calculator", "400 / 1400"), "0.29", " [Calculator(400 / 1400) -> 0.29]"),
    (ToolCall("Calculator", "400 / 1400"), None, " [Calculator(400 / 1400)]"),
    (ToolCall("Calendar", ""), "Today is Monday, January 30, 2023.",
     " [Calendar() -> Today is Monday, January 30, 2023.]"),
    (ToolCall("QA", '"Who is X?"'), "Y", ' [QA("Who is X?") -> Y]'),
    # Results are made one line without square brackets, so they cannot end the call.
    (ToolCall("WikiSearch", '"a"'), "see [1]\nmore", ' [WikiSearch("a") -> see (1) more]'),
    (ToolCall("MT", '"x -> y ]"'), "x", ' [MT("x -> y ]") -> x]'),
])
def test_render(call, result, expected):
  assert call_format.render_call(call, result) == expected


def test_render_empty_result_is_the_papers_e_c_empty():
  call = ToolCall("Calculator", "3 + 4")
  assert call_format.render_empty_result(call) == " [Calculator(3 + 4) ->]"
  assert call_format.render_empty_result(ToolCall("Calendar", "")) == " [Calendar() ->]"


def test_render_pending_then_completion():
  call = ToolCall("Calculator", "1 + 2")
  text = "So" + call_format.render_pending(call)
  assert text == "So [Calculator(1 + 2) ->"
  text += call_format.render_completion("3")
  assert text == "So" + call_format.render_call(call, "3")
  assert call_format.find_calls(text)[0].result == "3"


@pytest.mark.parametrize("call", [ToolCall("Calculator", "(1"), ToolCall("QA", "a ] b"),
                                  ToolCall("1x", ""), ToolCall("QA", "a) b (c")])
def test_render_rejects_calls_that_would_not_parse_back(call):
  with pytest.raises(ValueError):
    call_format.render_call(call, "r")


@pytest.mark.parametrize("text, tool, args", [
    ("Calculator(400 / 1400)", "Calculator", "400 / 1400"),
    ("  Calendar()  ", "Calendar", ""),
    ("Calculator(2 * (3 + (4 - 1)))", "Calculator", "2 * (3 + (4 - 1))"),
    ('QA("What is f(x) -> y?")', "QA", '"What is f(x) -> y?"'),
    ('QA("a ] b")', "QA", '"a ] b"'),
    ("QA('single ) quoted')", "QA", "'single ) quoted'"),
    ('QA("escaped \\" quote )")', "QA", '"escaped \\" quote )"'),
    ("WikiSearch(O'Brien (born 1950))", "WikiSearch", "O'Brien (born 1950)"),
    ("QA(the '60s music)", "QA", "the '60s music"),  # unterminated quote: read as text
    ("QA(list[0] value)", "QA", "list[0] value"),
    ("MT(a -> b)", "MT", "a -> b"),
])
def test_parse_call(text, tool, args):
  assert call_format.parse_call(text) == ToolCall(tool, args)


@pytest.mark.parametrize("text, message", [
    ("", "empty call"),
    ("   ", "empty call"),
    ("(1 + 2)", "expected a tool name"),
    ("1Calculator(2)", "expected a tool name"),
    ("Calculator 1 + 2", "expected '('"),
    ("Calculator", "expected '('"),
    ("Calculator(1 + 2", "missing ')'"),
    ("Calculator((1 + 2)", "missing ')'"),
    ("QA(a ] b)", "unbalanced ']'"),
    ("Calculator(1) + 2", "unexpected text"),
    ("Calculator(1))", "unexpected text"),
    ("x" * 5000 + "(1)", "longer than"),
    (None, "must be a string"),
])
def test_parse_call_errors(text, message):
  result = call_format.parse_call(text)
  assert isinstance(result, call_format.ParseError)
  assert message in result.message


# (text, [(tool, args, result, closed)]) for find_calls.
FIND_CASES = [
    ("Out of 1400 participants, 400 (or [Calculator(400 / 1400) -> 0.29] 29%) passed.",
     [("Calculator", "400 / 1400", "0.29", True)]),
    ("The Brown Act [WikiSearch(\"Brown Act\")] is a law.",
     [("WikiSearch", '"Brown Act"', None, True)]),
    ('x [QA("What is f(x) -> y]?") -> z] w', [("QA", '"What is f(x) -> y]?"', "z", True)]),
    ("a [Calculator(1+2) -> 3] b [Calendar() -> Today is Monday, January 30, 2023.] c",
     [("Calculator", "1+2", "3", True),
      ("Calendar", "", "Today is Monday, January 30, 2023.", True)]),
    ("[ Calculator(1)]", [("Calculator", "1", None, True)]),
    # Truncated at the end of the text: inside the arguments, after ")", after "->".
    ('so [QA("Who', [("QA", '"Who', None, False)]),
    ("so [Calculator(1 + 2)", [("Calculator", "1 + 2", None, False)]),
    ("so [Calculator(1 + 2) -", [("Calculator", "1 + 2", None, False)]),
    ("so [Calculator(1 + 2) ->", [("Calculator", "1 + 2", "", False)]),
    ("so [Calculator(1 + 2) -> 3", [("Calculator", "1 + 2", "3", False)]),
    # Malformed candidates are skipped; a later good call is still found.
    ("bad [QA(a ] b) then [Calculator(2)]", [("Calculator", "2", None, True)]),
    ("bad [Calculator(1) oops] [Calendar()]", [("Calendar", "", None, True)]),
    ("nested [QA(x [Calculator(1)] y", [("Calculator", "1", None, True)]),
    ("no calls [here] or (there) -> ]", []),
    ("[[[[]]]]((((", []),
    ("[Calc(" + "(" * 100, [("Calc", "(" * 100, None, False)]),
]


@pytest.mark.parametrize("text, expected", FIND_CASES)
def test_find_calls(text, expected):
  spans = call_format.find_calls(text)
  got = [(s.call.tool, s.call.args, s.result, s.closed) for s in spans]
  assert got == expected
  for span in spans:
    piece = text[span.start:span.end]
    assert piece.lstrip().startswith("[")
    if span.closed:
      assert piece.endswith("]")


def test_render_then_find_round_trip():
  calls = [(ToolCall("Calculator", "2 * (3 + 4)"), "14"),
           (ToolCall("QA", '"Who said \\"no\\" -> why?"'), "Rosa Parks"),
           (ToolCall("MT", '"tortuga"'), None),
           (ToolCall("WikiSearch", '"a] [b"'), "x ] y")]
  text = "start" + "".join(call_format.render_call(c, r) + " mid" for c, r in calls)
  spans = call_format.find_calls(text)
  assert [s.call for s in spans] == [c for c, _ in calls]
  assert [s.result for s in spans] == ["14", "Rosa Parks", None, "x ) y"]
  assert call_format.strip_calls(text) == "start mid mid mid mid"


def test_pending_call():
  text = "It costs [Calculator(12 * 3) ->"
  span = call_format.find_pending_call(text)
  assert span is not None and span.call == ToolCall("Calculator", "12 * 3")
  assert call_format.find_pending_call(text + " 36]") is None
  assert call_format.find_pending_call(text + " 3") is None
  assert call_format.find_pending_call("no call ->") is None


def test_strip_calls_keeps_unclosed_text():
  assert call_format.strip_calls("a [Calculator(1) -> 1] b [QA(x") == "a b [QA(x"


@pytest.mark.parametrize("args, text", [
    ('"Who is X?"', "Who is X?"),
    ("'single'", "single"),
    ("  unquoted words ", "unquoted words"),
    ('"say \\"hi\\""', 'say "hi"'),
    ("\u201ccurly\u201d", "curly"),
    ('"unbalanced', '"unbalanced'),
    ("", ""),
])
def test_text_argument(args, text):
  assert call_format.text_argument(args) == text


def test_quote_argument_round_trips():
  for text in ['plain', 'with "quotes"', "back\\slash", 'a ] -> )']:
    quoted = call_format.quote_argument(text)
    assert call_format.text_argument(quoted) == text
    assert call_format.parse_call(f"QA({quoted})") == ToolCall("QA", quoted)


def test_scan_is_linear_on_opener_soup():
  # 100k call openers: each candidate's scan stops at the next opener.
  text = "[QA(" * 100_000
  spans = call_format.find_calls(text)
  assert len(spans) == 1 and not spans[0].closed
