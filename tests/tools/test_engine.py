"""The execution engine: batches, the memo cache, counters, timeouts and the sandbox.

Misbehaving tools (slow, crashing, reaching for files or processes) are defined here:
no real tool misbehaves, which is what the engine's second line of defence is for.
"""
import importlib
import os
import socket
import subprocess
import sys
import threading
import time

import gin
import pytest

from toolformer_jax.tools import base
from toolformer_jax.tools import calculator
from toolformer_jax.tools import calendar_tool
from toolformer_jax.tools import engine
from toolformer_jax.tools.call_format import ToolCall


class Sleepy(base.Tool):
  name = "Sleepy"

  def __init__(self):
    self.release = threading.Event()

  def __call__(self, args, context=None):
    if args == "forever":
      self.release.wait(30)
    else:
      time.sleep(float(args))
    return "awake"


class Rogue(base.Tool):
  """Tries what a tool must never do; returns text if the attempt was not stopped."""

  name = "Rogue"

  def __call__(self, args, context=None):
    if args == "open":
      with open("rogue-was-here.txt", "w") as f:
        f.write("x")
    elif args == "read":
      with open("/etc/hostname") as f:
        f.read()
    elif args == "listdir":
      os.listdir(".")
    elif args == "eval":
      return str(eval("1 + 1"))  # pylint: disable=eval-used
    elif args == "process":
      subprocess.run(["true"], check=False)
    elif args == "socket":
      socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", 9))
    elif args == "import":  # loading a module reads files
      fresh = [m for m in ("tabnanny", "colorsys", "sched", "wave", "chunk")
               if m not in sys.modules]
      importlib.import_module(fresh[0])
    elif args == "crash":
      raise RuntimeError("boom")
    elif args == "exit":
      raise SystemExit(3)
    elif args == "not-text":
      return 42
    return "escaped"


@pytest.fixture
def executor():
  tools = {"Calculator": calculator.Calculator(), "Calendar": calendar_tool.Calendar(),
           "Sleepy": Sleepy(), "Rogue": Rogue()}
  with engine.ToolExecutor(tools, max_workers=2, timeout_s=5.0) as ex:
    yield ex


def test_batch_in_order_with_every_status(executor):
  results = executor.execute_batch([
      ToolCall("Calculator", "400 / 1400"),
      "Calculator(1 / 0)",
      "Calculator(9 ** 9 ** 9)",
      "Nope(1)",
      "Calculator(1",
      ToolCall("Calendar", ""),
  ])
  assert [r.status for r in results] == ["ok", "error", "refused", "refused", "refused", "ok"]
  assert results[0].text == "0.29" and results[0].tool == "Calculator"
  assert "division by zero" in results[1].text
  assert "unknown tool 'Nope'" in results[3].text
  assert "malformed call" in results[4].text
  counters = executor.counters
  assert (counters["ok"], counters["error"], counters["refused"], counters["timeout"]) == (
      2, 1, 3, 0)


def test_cache_and_in_batch_deduplication(executor):
  calls = ["Calculator(2 + 2)"] * 3 + ["Calculator(3 + 3)"]
  first = executor.execute_batch(calls)
  assert [r.text for r in first] == ["4", "4", "4", "6"]
  assert [r.cached for r in first] == [False, True, True, False]
  assert executor.counters["executed"] == 2
  again = executor.execute("Calculator(2 + 2)")
  assert again.cached and again.text == "4"
  assert executor.counters["executed"] == 2
  assert executor.counters["cache_hits"] == 3


def test_cache_key_includes_the_document_date(executor):
  results = executor.execute_batch(["Calendar()", "Calendar()", "Calendar()"],
                                   [{"date": "2023-01-30"}, {"date": "2024-02-29"},
                                    {"url": "https://x.org/2023/01/30/a"}])
  assert [r.text for r in results] == ["Today is Monday, January 30, 2023.",
                                       "Today is Thursday, February 29, 2024.",
                                       "Today is Monday, January 30, 2023."]
  assert [r.cached for r in results] == [False, False, True]


def test_cache_is_bounded():
  with engine.ToolExecutor({"Calculator": calculator.Calculator()}, cache_size=2) as ex:
    ex.execute_batch([f"Calculator({i} + 1)" for i in range(5)])
    assert len(ex._cache) == 2
    assert ex.execute("Calculator(4 + 1)").cached
    assert not ex.execute("Calculator(0 + 1)").cached


def test_over_long_arguments_are_refused_before_running(executor):
  result = executor.execute(ToolCall("Calculator", "1+" * 5000 + "1"))
  assert result.status == "refused" and "longer than" in result.text
  assert executor.counters["executed"] == 0


def test_timeout_returns_without_waiting_for_the_tool(executor):
  tool = executor.tools["Sleepy"]
  executor.timeouts["Sleepy"] = 0.3
  start = time.monotonic()
  results = executor.execute_batch([ToolCall("Sleepy", "forever"), "Calculator(1 + 1)"])
  elapsed = time.monotonic() - start
  tool.release.set()
  assert [r.status for r in results] == ["timeout", "ok"]
  assert "timed out after 0.3 s" in results[0].text
  assert elapsed < 10  # the tool would have waited 30 s
  assert executor.counters["timeout"] == 1


def test_stuck_workers_are_replaced():
  sleepy = Sleepy()
  with engine.ToolExecutor({"Sleepy": sleepy, "Calculator": calculator.Calculator()},
                           max_workers=1, timeout_s=0.2) as ex:
    # The first call occupies the only worker until released; the others still run.
    results = ex.execute_batch([ToolCall("Sleepy", "forever"), ToolCall("Sleepy", "0"),
                                "Calculator(6 * 7)"])
    sleepy.release.set()
  assert [r.status for r in results] == ["timeout", "ok", "ok"]
  assert results[2].text == "42"


@pytest.mark.parametrize("attempt", ["open", "read", "listdir", "eval", "process", "socket",
                                     "import"])
def test_sandbox_refuses_files_processes_network_and_code(executor, attempt, tmp_path,
                                                         monkeypatch):
  monkeypatch.chdir(tmp_path)
  result = executor.execute(ToolCall("Rogue", attempt))
  assert result.status == "refused", result
  assert "forbidden operation" in result.text
  assert os.listdir(tmp_path) == []


def test_sandbox_is_off_outside_calls(executor, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  rogue = executor.tools["Rogue"]
  # Inside a call the audit hook is installed and refuses the operation...
  for attempt, event in (("open", "open"), ("listdir", "os.listdir"), ("eval", "compile")):
    result = executor.execute(ToolCall("Rogue", attempt))
    assert result.status == "refused", result
    assert result.text.endswith(f"forbidden operation: {event}"), result
  assert not (tmp_path / "rogue-was-here.txt").exists()
  # ... and outside a call (the hook stays installed: hooks cannot be removed) the very
  # same tool code runs unhindered, in this thread and in a plain new one.
  assert rogue("open") == "escaped"
  assert (tmp_path / "rogue-was-here.txt").read_text() == "x"
  assert rogue("listdir") == "escaped" and rogue("eval") == "2"
  outcome = []
  thread = threading.Thread(target=lambda: outcome.append(rogue("listdir")))
  thread.start()
  thread.join()
  assert outcome == ["escaped"]
  # A later call is guarded again: the guard is per call, not switched off for good.
  again = executor.execute(ToolCall("Rogue", "read"))
  assert again.status == "refused" and "forbidden operation: open" in again.text


@pytest.mark.parametrize("attempt, text", [
    ("crash", "internal error: RuntimeError: boom"),
    ("exit", "internal error: SystemExit: 3"),
    ("not-text", "tool returned int, not text"),
])
def test_tool_failures_become_error_results(executor, attempt, text):
  result = executor.execute(ToolCall("Rogue", attempt))
  assert result.status == "error" and result.text == text


@pytest.mark.parametrize("call", [None, 42, ToolCall(None, "x"), ToolCall("Calculator", None)])
def test_non_calls_are_refused(executor, call):
  assert executor.execute(call).status == "refused"


def test_bad_context_is_an_error(executor):
  result = executor.execute("Calendar()", context=["not", "a", "mapping"])
  assert result.status == "error"


def test_mismatched_contexts_is_a_caller_bug(executor):
  with pytest.raises(ValueError):
    executor.execute_batch(["Calendar()"], [None, None])


def test_batching_tool_receives_chunks():
  class Echo(base.Tool):
    name = "Echo"
    batch_size = 3

    def __init__(self):
      self.batches = []

    def call_batch(self, calls):
      self.batches.append(len(calls))
      return [args.upper() if args != "bad" else base.ToolError("bad input")
              for args, _ in calls]

    def __call__(self, args, context=None):
      return self.call_batch([(args, context)])[0]

  echo = Echo()
  with engine.ToolExecutor({"Echo": echo}) as ex:
    results = ex.execute_batch([ToolCall("Echo", w) for w in ["a", "b", "bad", "c", "d"]])
  assert [r.text for r in results] == ["A", "B", "bad input", "C", "D"]
  assert [r.status for r in results] == ["ok", "ok", "error", "ok", "ok"]
  assert sorted(echo.batches) == [2, 3]


def test_default_tools_come_from_the_registry(index, retrieval_config):
  """No tools given: all five, built by the registry with gin bindings applied."""
  with gin.unlock_config():
    gin.parse_config(f"RetrievalConfig.cache_dir = '{retrieval_config.cache_dir}'")
  try:
    with engine.ToolExecutor() as ex:
      assert sorted(ex.tools) == ["Calculator", "Calendar", "MT", "QA", "WikiSearch"]
      assert ex.tools["QA"].index is index  # the index built for these tests, shared
      results = ex.execute_batch(['QA("Who wrote the novel Nineteen Eighty-Four?")',
                                  'MT("El gat menja peix.")', 'WikiSearch("Eurovision")'])
  finally:
    gin.clear_config()
  assert [r.status for r in results] == ["ok", "ok", "ok"]
  assert results[0].text == "George Orwell" and "fish" in results[1].text
