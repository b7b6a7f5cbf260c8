"""t5x's command-line spelling for the project's own CLIs (annotate, convert, generate).

`--gin.NAME=VALUE` is rewritten to `--gin_bindings=NAME = VALUE` before absl parses the
flags, as `python -m t5x.train` does; `run(main)` is `absl.app.run` with that rewrite.
"""

from __future__ import annotations

from typing import Sequence

from absl import app


def rewrite_gin_flags(argv: Sequence[str]) -> list:
  """`--gin.NAME=VALUE` -> `--gin_bindings=NAME = VALUE`; other arguments unchanged."""
  out = []
  for arg in argv:
    if arg.startswith("--gin.") and "=" in arg:
      name, value = arg[len("--gin."):].split("=", 1)
      arg = f"--gin_bindings={name} = {value}"
    out.append(arg)
  return out


def run(main) -> None:
  app.run(main, flags_parser=lambda argv: app.parse_flags_with_usage(rewrite_gin_flags(argv)))
