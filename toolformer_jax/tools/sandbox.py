"""A guard that stops tool calls from touching files, the network or processes.

While `guarded()` is active in a context (the engine enters it around every tool call),
a Python audit hook (PEP 578) refuses the audited operations that reach outside the
process: opening a path, socket operations, starting processes (except the executables
the running tool declares as its fixed backend, e.g. apertium for MT), file-system
changes and listings, and compile/exec of code (so an eval-based tool would be stopped
too). The refusal is a `SandboxViolation` raised from the operation itself; the engine
reports it as a refused call.

The guard is a second line of defence: the tools are written not to do any of this. The
hook is installed once per process and is inert outside guarded contexts (one context
variable lookup per audit event). Guard state is a context variable, so work a tool hands
to a thread pool with `contextvars.copy_context().run` stays guarded.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from typing import FrozenSet, Iterator, Optional, Sequence

from toolformer_jax.tools import base

_BLOCKED_EVENTS = frozenset({
    "open", "compile", "exec", "import", "code.__new__", "function.__new__",
    "marshal.load", "marshal.loads", "pickle.find_class",
    "subprocess.Popen", "os.system", "os.fork", "os.forkpty", "os.posix_spawn",
    "os.spawn", "os.exec", "os.kill", "os.killpg", "os.startfile",
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
    "os.truncate", "os.symlink", "os.link", "os.utime", "os.chdir", "os.chflags",
    "os.listdir", "os.scandir", "os.walk", "os.putenv", "os.unsetenv", "os.setxattr",
    "os.removexattr", "glob.glob", "glob.glob/2", "shutil.copyfile", "shutil.copymode",
    "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.rmtree",
    "shutil.make_archive", "shutil.unpack_archive", "tempfile.mkstemp", "tempfile.mkdtemp",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata",
    "mmap.__new__", "sqlite3.connect", "urllib.Request", "http.client.connect",
    "ftplib.connect", "smtplib.connect", "poplib.connect", "imaplib.open", "nntplib.connect",
    "telnetlib.Telnet.open", "webbrowser.open", "pty.spawn", "sys.addaudithook",
})
_BLOCKED_PREFIXES = ("socket.", "os.exec", "os.spawn", "os.posix_spawn", "ctypes.",
                     "shutil.", "urllib.", "http.", "winreg.", "msvcrt.", "_winapi.")

# The executables the current tool may start (None: not guarded).
_ALLOWED: contextvars.ContextVar[Optional[FrozenSet[str]]] = contextvars.ContextVar(
    "toolformer_jax_tool_guard", default=None)
_INSTALL_LOCK = threading.Lock()
_INSTALLED = False


class SandboxViolation(base.ToolRefused):
  """A tool call attempted an operation outside the process."""


def _process_allowed(event: str, args, allowed: FrozenSet[str]) -> bool:
  if event == "subprocess.Popen":
    executable, argv = args[0], args[1]
    first = argv[0] if isinstance(argv, (list, tuple)) and argv else argv
    names = {os.fspath(x) for x in (executable, first) if isinstance(x, (str, os.PathLike))}
    return bool(names) and names <= allowed
  if event == "os.posix_spawn":
    return isinstance(args[0], str) and args[0] in allowed
  return False


def _hook(event: str, args) -> None:
  allowed = _ALLOWED.get()
  if allowed is None:
    return
  if event in _BLOCKED_EVENTS or event.startswith(_BLOCKED_PREFIXES):
    if event == "open" and isinstance(args[0], int):
      return  # wraps an already open descriptor (e.g. a pipe to an allowed backend)
    if _process_allowed(event, args, allowed):
      return
    raise SandboxViolation(f"tool call attempted a forbidden operation: {event}")


def install() -> None:
  """Installs the audit hook (once per process; hooks cannot be removed)."""
  global _INSTALLED
  with _INSTALL_LOCK:
    if not _INSTALLED:
      sys.addaudithook(_hook)
      _INSTALLED = True


@contextlib.contextmanager
def guarded(allowed_executables: Sequence[str] = ()) -> Iterator[None]:
  """Refuses file, network and process access (bar `allowed_executables`) inside."""
  install()
  token = _ALLOWED.set(frozenset(os.fspath(p) for p in allowed_executables))
  try:
    yield
  finally:
    _ALLOWED.reset(token)
