"""Runs one tool call from the command line.

  python -m toolformer_jax.tools 'Calculator(400 / 1400)'        # prints 0.29
  python -m toolformer_jax.tools --list                          # tools, one example each
  python -m toolformer_jax.tools --date 2023-01-30 'Calendar()'
  python -m toolformer_jax.tools --date 2023-01-30 'Calendar(3 days ago)'  # Friday, January 27, 2023.
  python -m toolformer_jax.tools --gin.WikiSearch.snippet_chars=300 'WikiSearch("Paris")'

A malformed, refused or failed call prints one line on stderr and exits non-zero
(1: the call failed or was refused, 2: bad command line, 3: a tool could not be built).
Gin flags follow t5x (`toolformer_jax.cli`): --gin_file (repeatable), --gin_search_paths
(comma-separated; default ./gin, then the repository's gin/), --gin.NAME=VALUE and
--gin_bindings='NAME = VALUE'.
"""
from __future__ import annotations

import json
import sys
from typing import List

from absl import flags

from toolformer_jax import cli
from toolformer_jax.tools import base
from toolformer_jax.tools import engine
from toolformer_jax.tools import call_format
from toolformer_jax.tools import registry

FLAGS = flags.FLAGS
EXIT_CALL_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def define_flags() -> None:
  """The CLI flags (defined only when run as a program: importing this module defines none)."""
  flags.DEFINE_bool("list", False, "List the tools with an example each.")
  flags.DEFINE_string("date", None, "The document's date (YYYY-MM-DD), for Calendar.")
  flags.DEFINE_string("url", None, "The document's URL (a date in it is used by Calendar).")
  flags.DEFINE_float("timeout_s", 30.0, "Per-call timeout.")
  flags.DEFINE_bool("json", False, "Print the full result as JSON.")
  cli.define_gin_flags()


def _fail(code: int, message: str) -> int:
  print(f"error: {base.one_line(message, 400)}", file=sys.stderr)
  return code


def main(argv: List[str]) -> int:
  """argv: the program name and the positional arguments (one call)."""
  if len(argv) > 2:
    return _fail(EXIT_USAGE, f"give one call, not {len(argv) - 1}: {argv[1:]}")
  if FLAGS.list:
    for name, example, description in registry.tool_examples():
      print(f"{name:<11} {example:<48} {description}")
    return 0
  if len(argv) < 2:
    return _fail(EXIT_USAGE, "give a call such as 'Calculator(400 / 1400)', or --list")
  call = call_format.parse_call(argv[1])
  if isinstance(call, call_format.ParseError):
    return _fail(EXIT_CALL_FAILED, f"malformed call: {call}")
  unknown = registry.unknown_tool_error(call.tool, registry.TOOL_CLASSES)
  if unknown:
    return _fail(EXIT_CALL_FAILED, unknown)
  try:
    cli.parse_gin_flags(finalize=False)
  except Exception as e:  # pylint: disable=broad-except
    return _fail(EXIT_USAGE, f"bad gin configuration: {type(e).__name__}: {e}")
  try:
    tools = registry.build_tools([call.tool])
  except (base.ToolUnavailable, FileNotFoundError, ValueError, OSError) as e:
    return _fail(EXIT_UNAVAILABLE, f"cannot build {call.tool}: {e}")
  context = {k: v for k, v in (("date", FLAGS.date), ("url", FLAGS.url)) if v}
  with engine.ToolExecutor(tools, max_workers=1, timeout_s=FLAGS.timeout_s) as executor:
    result = executor.execute(call, context or None)
  if FLAGS.json:
    print(json.dumps({"tool": result.tool, "args": result.args, "status": result.status,
                      "text": result.text, "seconds": round(result.seconds, 6)},
                     ensure_ascii=False))
  elif result.ok:
    print(result.text)
  if not result.ok:
    return _fail(EXIT_CALL_FAILED, f"{result.tool} call {result.status}: {result.text}")
  return 0


if __name__ == "__main__":
  define_flags()
  cli.run(main, usage_exit_code=EXIT_USAGE)
