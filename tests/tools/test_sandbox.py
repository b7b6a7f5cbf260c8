"""The sandbox guard on its own: what it refuses, what it lets a tool's backend do."""
import concurrent.futures
import contextvars
import shutil
import subprocess

import pytest

from toolformer_jax.tools import sandbox

TRUE = shutil.which("true")


def test_refuses_paths_but_not_descriptors(tmp_path):
  target = tmp_path / "x.txt"
  with sandbox.guarded():
    with pytest.raises(sandbox.SandboxViolation, match="open"):
      open(target, "w")  # pylint: disable=consider-using-with
  assert not target.exists()
  read_fd, write_fd = __import__("os").pipe()
  with sandbox.guarded():
    with open(write_fd, "w") as f:  # an already open descriptor: no file-system access
      f.write("ok")
  with open(read_fd) as f:
    assert f.read() == "ok"


def test_processes_only_for_declared_backends():
  with sandbox.guarded():
    with pytest.raises(sandbox.SandboxViolation, match="subprocess.Popen"):
      subprocess.run([TRUE], check=False)
  with sandbox.guarded(allowed_executables=[TRUE]):
    assert subprocess.run([TRUE], check=False).returncode == 0
    with pytest.raises(sandbox.SandboxViolation):
      subprocess.run([TRUE], shell=True, check=False)  # runs /bin/sh, not the backend
    with pytest.raises(sandbox.SandboxViolation):
      subprocess.run(["true"], check=False)  # a name looked up on PATH is not the backend


def test_refuses_code_execution():
  with sandbox.guarded():
    with pytest.raises(sandbox.SandboxViolation, match="compile"):
      eval("1 + 1")  # pylint: disable=eval-used
    with pytest.raises(sandbox.SandboxViolation):
      exec("x = 1")  # pylint: disable=exec-used
  assert eval("1 + 1") == 2  # pylint: disable=eval-used


def test_guard_follows_copied_contexts_into_threads(tmp_path):
  def attempt():
    with open(tmp_path / "y.txt", "w") as f:
      f.write("y")

  with concurrent.futures.ThreadPoolExecutor(1) as pool, sandbox.guarded():
    future = pool.submit(contextvars.copy_context().run, attempt)
    with pytest.raises(sandbox.SandboxViolation):
      future.result()
  assert not (tmp_path / "y.txt").exists()


def test_guards_nest_and_unwind():
  with sandbox.guarded(allowed_executables=[TRUE]):
    with sandbox.guarded():
      with pytest.raises(sandbox.SandboxViolation):
        subprocess.run([TRUE], check=False)
    assert subprocess.run([TRUE], check=False).returncode == 0
