"""The textual API-call format of Toolformer: ` [Tool(args) -> result]` and ` [Tool(args)]`.

Rendering is exact (`render_call`). Parsing is total: `parse_call` returns a `ToolCall` or a
`ParseError`, and `find_calls` scans arbitrary (model-generated) text and returns the calls
it finds, including a truncated call at the end of the text (e.g. ` [QA("Who` or the
pending ` [Calculator(1 + 2) ->` a decoder pauses on). Neither raises on any input.

Argument grammar: the arguments run from "(" to the matching ")". Parentheses nest;
square brackets nest; a quoted string ('...' or "...", backslash escapes) may contain any
of "()[]->"; a quote only opens a string where a string can start (after "(", ",", "[", a
space or another opening bracket), so apostrophes in words ("O'Brien") are plain text.
If a quote never closes, the arguments are re-read with quotes as plain characters. A "]"
with no "[" inside the arguments ends the candidate: the call is malformed. A new call
opener ("[Name(") inside the arguments or the result also ends the candidate, which keeps
the scan linear on adversarial input.
"""
from __future__ import annotations

import dataclasses
import re
from typing import List, Optional, Tuple, Union

CALL_START = " ["  # the paper's "<API>" written as plain text
RESULT_MARKER = "->"  # the paper's "→"; a decoder pauses after " ->"
CALL_END = "]"  # the paper's "</API>"

MAX_NAME_CHARS = 64
DEFAULT_MAX_CALL_CHARS = 4096

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,%d}" % (MAX_NAME_CHARS - 1))
_OPENER_RE = re.compile(r"\[[ \t]{0,8}([A-Za-z_][A-Za-z0-9_]{0,%d})\(" % (MAX_NAME_CHARS - 1))
_SPECIAL_RE = re.compile(r"""[()\[\]'"\\]""")
_STRING_START_PREV = frozenset("([{,=: \t\n")
_QUOTE_PAIRS = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"))


@dataclasses.dataclass(frozen=True)
class ToolCall:
  """One API call: the tool's name and its raw argument string."""

  tool: str
  args: str

  def __str__(self) -> str:
    return f"{self.tool}({self.args})"


@dataclasses.dataclass(frozen=True)
class ParseError:
  """Why a string is not a call, and the character offset where parsing stopped."""

  message: str
  position: int

  def __str__(self) -> str:
    return f"{self.message} (at character {self.position})"


@dataclasses.dataclass(frozen=True)
class CallSpan:
  """A call found in text. `text[start:end]` is the call including its leading space.

  closed: the call ends with "]". result: the text after "->" (None without "->").
  A span that is not closed was cut off by the end of the text.
  """

  call: ToolCall
  result: Optional[str]
  start: int
  end: int
  closed: bool
  args_closed: bool = True

  @property
  def pending(self) -> bool:
    """True for ` [Tool(args) ->` at the end of the text: a result is to be inserted."""
    return (not self.closed and self.args_closed and self.result is not None
            and not self.result.strip())


# ----------------------------------------------------------------------------- render


def clean_result(text: str) -> str:
  """Makes a tool result safe to embed: one line, no square brackets."""
  text = " ".join(str(text).split())
  return text.replace("[", "(").replace("]", ")")


def render_call(call: ToolCall, result: Optional[str] = None) -> str:
  """` [Tool(args) -> result]`, or ` [Tool(args)]` when result is None.

  Raises ValueError if the call would not parse back to itself (a programming error:
  calls come from `parse_call`/`find_calls` or from code with well-formed arguments).
  """
  text = str(call)
  parsed = parse_call(text)
  if isinstance(parsed, ParseError) or parsed != call:
    raise ValueError(f"cannot render {text!r}: {parsed}")
  if result is None:
    return f"{CALL_START}{text}{CALL_END}"
  return f"{CALL_START}{text} {RESULT_MARKER} {clean_result(result)}{CALL_END}"


def render_empty_result(call: ToolCall) -> str:
  """` [Tool(args) ->]`: the paper's e(c, empty), the call with the arrow and an empty result
  (the filter's L- prefix beside the empty one)."""
  return f"{render_pending(call)}{CALL_END}"


def render_pending(call: ToolCall) -> str:
  """` [Tool(args) ->`: the prefix a decoder emits before the tool's result."""
  return f"{CALL_START}{call} {RESULT_MARKER}"


def render_completion(result: str) -> str:
  """What follows a pending call once the tool answered: ` 0.29]`."""
  return f" {clean_result(result)}{CALL_END}"


def quote_argument(text: str) -> str:
  """A double-quoted argument: `say "hi"` -> `"say \\"hi\\""`."""
  return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_argument(args: str) -> str:
  """The text of a one-string argument: strips one level of matching quotes.

  `"Who is X?"` -> `Who is X?`; unquoted arguments are returned stripped.
  """
  s = args.strip()
  for open_q, close_q in _QUOTE_PAIRS:
    if len(s) >= 2 and s[0] == open_q and s[-1] == close_q:
      inner = s[1:-1]
      if open_q in ('"', "'"):
        inner = re.sub(r"\\(.)", r"\1", inner, flags=re.DOTALL)
      return inner.strip()
  return s


# ------------------------------------------------------------------------------ parse


def _scan_args(text: str, pos: int, stop: int, quotes: bool) -> Tuple[int, str]:
  """Scans arguments starting after "(" at `pos`, up to index `stop`.

  Returns (index of the closing ")", "") on success, else (index where it stopped, reason)
  with reason one of "eof" (ran into `stop`), "bracket" (unmatched "]"), "quote"
  (unterminated string).
  """
  depth = 1  # parentheses
  brackets = 0
  i = pos
  while True:
    m = _SPECIAL_RE.search(text, i, stop)
    if m is None:
      return stop, "eof"
    j = m.start()
    ch = text[j]
    if ch == "(":
      depth += 1
    elif ch == ")":
      depth -= 1
      if depth == 0:
        return j, ""
    elif ch == "[":
      brackets += 1
    elif ch == "]":
      if brackets == 0:
        return j, "bracket"
      brackets -= 1
    elif ch in "'\"" and quotes:
      prev = text[j - 1] if j > pos else "("
      if prev in _STRING_START_PREV:
        k = j + 1
        while True:
          q = text.find(ch, k, stop)
          if q < 0:
            return stop, "quote"
          # Count backslashes before the quote: an odd number escapes it.
          b = q - 1
          while b >= k and text[b] == "\\":
            b -= 1
          if (q - 1 - b) % 2 == 0:
            break
          k = q + 1
        i = q + 1
        continue
    i = j + 1


def _scan_args_any(text: str, pos: int, stop: int) -> Tuple[int, str]:
  end, reason = _scan_args(text, pos, stop, quotes=True)
  if reason == "quote":
    end, reason = _scan_args(text, pos, stop, quotes=False)
  return end, reason


def parse_call(text: str, max_chars: int = DEFAULT_MAX_CALL_CHARS) -> Union[ToolCall, ParseError]:
  """Parses exactly one `Tool(args)` (surrounding whitespace allowed). Never raises."""
  if not isinstance(text, str):
    return ParseError("a call must be a string", 0)
  if len(text) > max_chars:
    return ParseError(f"call longer than {max_chars} characters", max_chars)
  start = len(text) - len(text.lstrip())
  stop = len(text.rstrip())
  if start >= stop:
    return ParseError("empty call", start)
  m = _NAME_RE.match(text, start, stop)
  if m is None:
    return ParseError("expected a tool name", start)
  name_end = m.end()
  if name_end >= stop or text[name_end] != "(":
    return ParseError("expected '(' after the tool name", name_end)
  end, reason = _scan_args_any(text, name_end + 1, stop)
  if reason == "eof":
    return ParseError("unbalanced parentheses: missing ')'", end)
  if reason == "bracket":
    return ParseError("unbalanced ']' inside the arguments", end)
  if end + 1 != stop:
    return ParseError("unexpected text after the closing ')'", end + 1)
  return ToolCall(text[start:name_end], text[name_end + 1:end])


def find_calls(text: str, max_call_chars: int = DEFAULT_MAX_CALL_CHARS) -> List[CallSpan]:
  """All calls in `text`, in order, including a truncated one at the end. Never raises.

  Candidates that are malformed (unbalanced "]", text between ")" and "]" other than
  "-> result", a call longer than `max_call_chars`) are skipped.
  """
  if not isinstance(text, str):
    return []
  openers = [(m.start(), m.end(), m.group(1)) for m in _OPENER_RE.finditer(text)]
  spans: List[CallSpan] = []
  n = len(text)
  last_end = 0
  for idx, (bracket, args_start, name) in enumerate(openers):
    if bracket < last_end:
      continue
    boundary = openers[idx + 1][0] if idx + 1 < len(openers) else n
    limit = min(boundary, bracket + max_call_chars)
    start = bracket - 1 if bracket > 0 and text[bracket - 1] == " " else bracket
    if limit < n and text.find(")", args_start, limit) < 0:
      continue  # cannot close before the next opener: not a call (fast path)
    call_end, reason = _scan_args_any(text, args_start, limit)
    call = ToolCall(name, text[args_start:call_end])
    if reason:
      if reason == "eof" and limit == n:  # cut off inside the arguments
        spans.append(CallSpan(call, None, start, n, closed=False, args_closed=False))
        last_end = n
      continue
    k = call_end + 1
    while k < limit and text[k] in " \t":
      k += 1
    if k < limit and text[k] == CALL_END:
      spans.append(CallSpan(call, None, start, k + 1, closed=True))
      last_end = k + 1
    elif text.startswith(RESULT_MARKER, k) and k + len(RESULT_MARKER) <= limit:
      r0 = k + len(RESULT_MARKER)
      close = text.find(CALL_END, r0, limit)
      if close >= 0:
        spans.append(CallSpan(call, text[r0:close].strip(), start, close + 1, closed=True))
        last_end = close + 1
      elif limit == n:  # the result is still being written (or is empty: pending)
        spans.append(CallSpan(call, text[r0:n].strip(), start, n, closed=False))
        last_end = n
    elif limit == n and RESULT_MARKER.startswith(text[k:n]):  # cut off after ")"
      spans.append(CallSpan(call, None, start, n, closed=False))
      last_end = n
  return spans


def find_pending_call(text: str) -> Optional[CallSpan]:
  """The call at the end of `text` awaiting its result (` [Tool(args) ->`), if any."""
  spans = find_calls(text)
  if spans and spans[-1].pending and spans[-1].end == len(text):
    return spans[-1]
  return None


def strip_calls(text: str) -> str:
  """Removes every closed call span (with its leading space) from `text`."""
  out = []
  pos = 0
  for span in find_calls(text):
    if span.closed:
      out.append(text[pos:span.start])
      pos = span.end
  out.append(text[pos:])
  return "".join(out)
