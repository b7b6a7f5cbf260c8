"""The one command-line convention of the project's CLIs: t5x's.

Every CLI is a top-level `python -m toolformer_jax.<name>` (annotate, convert, demo,
generate, report, tools; library modules have no `main`). It defines its flags with absl
in a `define_flags()` function (so importing it defines none and several CLIs can be
imported in one process), has `main(argv)` (argv: the program name and the positional
arguments left after the flags; its return value is the exit status) and ends with

  if __name__ == "__main__":
    define_flags()
    cli.run(main)

Gin is taken as t5x takes it: `--gin_file` (repeatable), `--gin_search_paths`
(comma-separated), `--gin.NAME=VALUE` or `--gin_bindings='NAME = VALUE'`
(`define_gin_flags`, parsed by `parse_gin_flags`). Gin files are looked up in
DEFAULT_GIN_SEARCH_PATHS (./gin, then the repository's gin/) unless --gin_search_paths is
given. `--help` exits 0; a flag that does not parse exits 1 (absl's status) unless the CLI
gives run() another usage_exit_code. Tests call a CLI's main through `call`.
"""

from __future__ import annotations

import os
import sys
import textwrap
from typing import Callable, List, Optional, Sequence

from absl import app
from absl import flags

REPO_GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")
# The current directory's gin/ first (a user's own files), then the repository's.
DEFAULT_GIN_SEARCH_PATHS = ("gin", REPO_GIN_DIR)
# The run file of a program that builds a model from a model file but trains nothing.
NO_TRAINING_GIN = "runs/base/no_training.gin"

GIN_FLAG_NAMES = ("gin_file", "gin_bindings", "gin_search_paths")


def _calling_module_name(depth: int = 2) -> str:
  """absl's name for the module that called our caller ('__main__' is sys.argv[0])."""
  name = sys._getframe(depth).f_globals.get("__name__", "")  # pylint: disable=protected-access
  return sys.argv[0] if name == "__main__" else name


def define_gin_flags(gin_file_help: str = "Gin files (searched in --gin_search_paths).") -> None:
  """Defines --gin_file, --gin_bindings and --gin_search_paths (once per process) and makes
  them key flags of the calling module (so its --help lists them)."""
  if "gin_file" not in flags.FLAGS:
    flags.DEFINE_multi_string("gin_file", [], gin_file_help)
    flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings (also as --gin.NAME=VALUE).")
    flags.DEFINE_list("gin_search_paths", None,
                      "Where gin files are looked up (default: ./gin, then the repository's "
                      "gin/).")
  module = _calling_module_name()
  for name in GIN_FLAG_NAMES:
    flags.FLAGS.register_key_flag_for_module(module, flags.FLAGS[name])


def gin_search_paths(paths: Optional[Sequence[str]] = None) -> List[str]:
  """The given search paths, or the default ones that exist."""
  if paths:
    return list(paths)
  return [p for p in DEFAULT_GIN_SEARCH_PATHS if os.path.isdir(p)]


def parse_gin(files: Sequence[str], bindings: Sequence[str] = (),
              search_paths: Optional[Sequence[str]] = None, *,
              finalize: bool = True) -> None:
  """Adds the search paths and parses the gin files, then the bindings."""
  import gin  # pylint: disable=g-import-not-at-top
  for path in gin_search_paths(search_paths):
    gin.add_config_file_search_path(path)
  gin.parse_config_files_and_bindings(list(files), list(bindings), finalize_config=finalize)


def parse_gin_flags(*, finalize: bool = True, extra_files: Sequence[str] = (),
                    default_files: Sequence[str] = (),
                    extra_bindings: Sequence[str] = ()) -> None:
  """parse_gin with this process's gin flags (define_gin_flags first).

  Files: --gin_file (or default_files when none is given), then extra_files. Bindings:
  extra_bindings, then --gin_bindings (so the command line wins).
  """
  files = list(flags.FLAGS.gin_file) or list(default_files)
  parse_gin(files + list(extra_files), list(extra_bindings) + list(flags.FLAGS.gin_bindings),
            flags.FLAGS.gin_search_paths, finalize=finalize)


def rewrite_gin_flags(argv: Sequence[str]) -> List[str]:
  """`--gin.NAME=VALUE` -> `--gin_bindings=NAME = VALUE`; other arguments unchanged."""
  out = []
  for arg in argv:
    if arg.startswith("--gin.") and "=" in arg:
      name, value = arg[len("--gin."):].split("=", 1)
      arg = f"--gin_bindings={name} = {value}"
    out.append(arg)
  return out


def parse_flags(argv: Sequence[str], usage_exit_code: int = 1) -> List[str]:
  """Parses argv (program name first) into absl's FLAGS; returns the program name and the
  positional arguments. A flag that does not parse prints absl's two lines on stderr and
  exits usage_exit_code; --help (and --helpshort/--helpfull/--helpxml) exit 0."""
  try:
    return flags.FLAGS(rewrite_gin_flags(argv))
  except flags.Error as error:
    message = str(error)
    if "\n" in message:
      message = "\n" + textwrap.indent(message, "  ")
    sys.stderr.write(f"FATAL Flags parsing error: {message}\n")
    sys.stderr.write("Pass --helpshort or --helpfull to see help on flags.\n")
    sys.exit(usage_exit_code)
  except SystemExit as e:  # absl's help flags print the help and exit 1 while parsing
    sys.exit(0 if e.code == 1 else e.code)


def run(main: Callable[[List[str]], Optional[int]], *, usage_exit_code: int = 1,
        argv: Optional[Sequence[str]] = None) -> None:
  """absl.app.run(main) with t5x's --gin.NAME=VALUE spelling; main's return value is the
  exit status (None: 0)."""
  app.run(lambda args: sys.exit(main(args) or 0),
          argv=None if argv is None else list(argv),
          flags_parser=lambda args: parse_flags(args, usage_exit_code))


def call(main: Callable[[List[str]], Optional[int]], args: Sequence[str],
         prog: str = "prog") -> Optional[int]:
  """main's return value for the command-line arguments args (no program name): parses
  them into FLAGS (define the CLI's flags first) and restores every flag afterwards. For
  tests; a flag that does not parse raises flags.Error."""
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  with flagsaver.flagsaver():
    positional = flags.FLAGS([prog, *rewrite_gin_flags(args)])
    return main(positional)
