"""Runs one tool call from the command line.

  python -m toolformer_jax.tools 'Calculator(400 / 1400)'        # prints 0.29
  python -m toolformer_jax.tools --list                          # tools, one example each
  python -m toolformer_jax.tools --date 2023-01-30 'Calendar()'
  python -m toolformer_jax.tools --date 2023-01-30 'Calendar(3 days ago)'  # Friday, January 27, 2023.
  python -m toolformer_jax.tools --gin.WikiSearch.snippet_chars=300 'WikiSearch("Paris")'

A malformed, refused or failed call prints one line on stderr and exits non-zero
(1: the call failed or was refused, 2: bad command line, 3: a tool could not be built).
Gin flags follow t5x: --gin_file (repeatable), --gin_search_paths (comma-separated),
--gin.NAME=VALUE and --gin_bindings='NAME = VALUE'.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence

import gin

from toolformer_jax.tools import base
from toolformer_jax.tools import engine
from toolformer_jax.tools import call_format
from toolformer_jax.tools import registry

EXIT_CALL_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def _rewrite_gin_flags(argv: Sequence[str]) -> List[str]:
  """--gin.NAME=VALUE -> --gin_bindings 'NAME = VALUE' (as t5x does)."""
  out = []
  for arg in argv:
    if arg.startswith("--gin.") and "=" in arg:
      name, value = arg[len("--gin."):].split("=", 1)
      out += ["--gin_bindings", f"{name} = {value}"]
    else:
      out.append(arg)
  return out


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m toolformer_jax.tools",
      description="Run one Toolformer tool call, e.g. 'Calculator(400 / 1400)'.")
  p.add_argument("call", nargs="?", help="a call such as 'Calculator(400 / 1400)'")
  p.add_argument("--list", action="store_true", help="list the tools with an example each")
  p.add_argument("--date", help="the document's date (YYYY-MM-DD), for Calendar")
  p.add_argument("--url", help="the document's URL (a date in it is used by Calendar)")
  p.add_argument("--timeout_s", type=float, default=30.0, help="per-call timeout")
  p.add_argument("--json", action="store_true", help="print the full result as JSON")
  p.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
  p.add_argument("--gin_bindings", action="append", default=[], help="gin binding")
  p.add_argument("--gin_search_paths", default="", help="comma-separated gin search paths")
  return p


def _fail(code: int, message: str) -> int:
  print(f"error: {base.one_line(message, 400)}", file=sys.stderr)
  return code


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = _parser().parse_args(_rewrite_gin_flags(argv))
  if args.list:
    for name, example, description in registry.tool_examples():
      print(f"{name:<11} {example:<48} {description}")
    return 0
  if args.call is None:
    return _fail(EXIT_USAGE, "give a call such as 'Calculator(400 / 1400)', or --list")
  call = call_format.parse_call(args.call)
  if isinstance(call, call_format.ParseError):
    return _fail(EXIT_CALL_FAILED, f"malformed call: {call}")
  unknown = registry.unknown_tool_error(call.tool, registry.TOOL_CLASSES)
  if unknown:
    return _fail(EXIT_CALL_FAILED, unknown)
  try:
    for path in filter(None, args.gin_search_paths.split(",")):
      gin.add_config_file_search_path(path)
    gin.parse_config_files_and_bindings(args.gin_file, args.gin_bindings,
                                        finalize_config=False)
  except Exception as e:  # pylint: disable=broad-except
    return _fail(EXIT_USAGE, f"bad gin configuration: {type(e).__name__}: {e}")
  try:
    tools = registry.build_tools([call.tool])
  except (base.ToolUnavailable, FileNotFoundError, ValueError, OSError) as e:
    return _fail(EXIT_UNAVAILABLE, f"cannot build {call.tool}: {e}")
  context = {k: v for k, v in (("date", args.date), ("url", args.url)) if v}
  with engine.ToolExecutor(tools, max_workers=1, timeout_s=args.timeout_s) as executor:
    result = executor.execute(call, context or None)
  if args.json:
    print(json.dumps({"tool": result.tool, "args": result.args, "status": result.status,
                      "text": result.text, "seconds": round(result.seconds, 6)},
                     ensure_ascii=False))
  elif result.ok:
    print(result.text)
  if not result.ok:
    return _fail(EXIT_CALL_FAILED, f"{result.tool} call {result.status}: {result.text}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
