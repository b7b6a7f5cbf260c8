"""The Tool protocol, the result type the engine returns, and the errors tools raise.

A tool is a callable `tool(args, context) -> str` with a `name` (the API name the model
writes, e.g. "Calculator") and an `example` call for documentation. Inside a tool,
expected failures are raised as `ToolError` (bad input, no answer) or `ToolRefused`
(input the tool will not run: too large, disallowed syntax). The execution engine turns
every outcome into a `ToolResult`; nothing raises past it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Hashable, List, Mapping, Optional, Sequence, Tuple, Union

# Outcome of one call, as counted by the engine.
STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_TIMEOUT = "timeout"
STATUS_REFUSED = "refused"
STATUSES = (STATUS_OK, STATUS_ERROR, STATUS_TIMEOUT, STATUS_REFUSED)

# What a call knows of its document: record fields (Calendar reads `date`, `url`, ...) and,
# under CONTEXT_TEXT, the text before the call (annotation: the document's; tool decoding:
# the prompt and what the model wrote before the call).
Context = Optional[Mapping[str, Any]]
CONTEXT_TEXT = "text"
# At annotation only: the document being annotated, by its id and its whole text. The
# retrieval tools return no passage of that document (a call must not copy the text it is
# scored on); at inference these keys are absent and the index is whole.
CONTEXT_DOCUMENT_ID = "document_id"
CONTEXT_DOCUMENT = "document"


class ToolError(Exception):
  """An expected failure of a call (bad arguments, nothing found, backend error)."""

  status = STATUS_ERROR


class ToolRefused(ToolError):
  """A call the tool will not run (over a size/time bound, disallowed construct)."""

  status = STATUS_REFUSED


class ToolUnavailable(RuntimeError):
  """A tool cannot be constructed on this machine (missing backend); raised at start-up."""


@dataclasses.dataclass(frozen=True)
class ToolResult:
  """What the engine returns for one call: a result text or an error message."""

  tool: str
  args: str
  status: str  # one of STATUSES
  text: str  # the result when ok, else a one-line error message
  seconds: float = 0.0
  cached: bool = False

  @property
  def ok(self) -> bool:
    return self.status == STATUS_OK


class Tool:
  """Base class for tools. Subclasses set `name`, `example`, `description`, `__call__`.

  `max_args_chars` bounds the argument string; the engine refuses longer ones before
  the tool sees them. `batch_size` > 1 tells the engine that `call_batch` is cheaper than
  single calls (e.g. one translator process for many inputs). `cache_key` says what a
  result depends on (Calendar: the document's date), for the engine's memo.
  """

  name: str = ""
  example: str = ""
  description: str = ""
  max_args_chars: int = 4096
  batch_size: int = 1
  # Absolute paths of the fixed backend programs the tool runs (e.g. apertium); the
  # engine's sandbox refuses any other process, file or network access during a call.
  allowed_executables: Tuple[str, ...] = ()
  # The tool's own per-task time limit for the engine (None: the engine's timeout_s).
  default_timeout_s: Optional[float] = None

  def __call__(self, args: str, context: Context = None) -> str:
    raise NotImplementedError

  def cache_key(self, args: str, context: Context = None) -> Hashable:
    """The part of a call the result depends on; the engine memoises on (name, key)."""
    del context
    return args

  def call_batch(
      self, calls: Sequence[Tuple[str, Context]]
  ) -> List[Union[str, ToolError]]:
    """Runs several calls; returns a result text or a ToolError per call, in order."""
    out: List[Union[str, ToolError]] = []
    for args, context in calls:
      try:
        out.append(self(args, context))
      except ToolError as e:
        out.append(e)
    return out


def one_line(text: str, max_chars: int = 300) -> str:
  """Collapses whitespace and truncates, for error messages."""
  text = " ".join(str(text).split())
  if len(text) > max_chars:
    text = text[: max_chars - 3] + "..."
  return text
