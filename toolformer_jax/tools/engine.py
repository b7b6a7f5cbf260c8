"""The execution engine: runs batches of tool calls from untrusted (model) text safely.

`ToolExecutor.execute_batch(calls, contexts)` returns one `ToolResult` per call, in order,
and never raises for a call: a malformed call, an unknown tool or over-long arguments
are refused before running; a tool's `ToolError` is an error result; any other exception
is an error result naming its type; a call still running after `timeout_s` is a timeout
result (its thread is abandoned, and if abandoned threads fill the pool a fresh pool takes
the remaining work).

Calls run on a bounded thread pool inside `sandbox.guarded`, which refuses file, network
and process access except a tool's declared backend program. Results of "ok", "error" and
"refused" calls are memoised in an LRU cache keyed by (tool, tool.cache_key(args,
context)); identical calls in one batch run once. Tools with `batch_size > 1` receive
their calls in chunks through `call_batch`. Counters: ok, error, timeout, refused (every
returned result), cache_hits, executed (calls that ran a tool).
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import queue
import threading
import time
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple, Union

import gin

from toolformer_jax.tools import base
from toolformer_jax.tools import call_format
from toolformer_jax.tools import registry
from toolformer_jax.tools import sandbox

CallLike = Union[call_format.ToolCall, str]
_POLL_S = 0.05


class _Task:
  """One unit of pool work: a tool and the (key, args, context) of the calls it runs."""

  def __init__(self, tool: base.Tool, items: List[Tuple[Hashable, str, base.Context]]):
    self.tool = tool
    self.items = items
    self.started: Optional[float] = None
    self.future: Optional[concurrent.futures.Future] = None


@gin.configurable(module="toolformer_jax.tools")
class ToolExecutor:
  """Runs tool calls with a worker pool, per-call timeouts, a memo cache and counters."""

  def __init__(self, tools: Optional[Mapping[str, base.Tool]] = None, max_workers: int = 4,
               timeout_s: float = 10.0, cache_size: int = 100_000,
               timeouts: Optional[Mapping[str, float]] = None, sandboxed: bool = True):
    """tools: API name -> tool (default: `registry.build_tools()`, all enabled tools).

    timeouts: per-tool limits; otherwise a tool's `default_timeout_s` (MT: a batch of
    apertium runs), else `timeout_s`. A batched task (see Tool.batch_size) has one
    limit for the whole batch. sandboxed: run calls inside
    `sandbox.guarded` (leave on; off only to measure its cost).
    """
    if tools is None:
      tools = registry.build_tools()
    if max_workers < 1 or timeout_s <= 0:
      raise ValueError("ToolExecutor needs max_workers >= 1 and timeout_s > 0")
    self.tools: Dict[str, base.Tool] = dict(tools)
    self.max_workers = max_workers
    self.timeout_s = timeout_s
    self.timeouts = dict(timeouts or {})
    self.cache_size = cache_size
    self.sandboxed = sandboxed
    if sandboxed:
      sandbox.install()
    self._cache: "collections.OrderedDict[Tuple[str, Hashable], base.ToolResult]" = (
        collections.OrderedDict())
    self._lock = threading.Lock()
    self._counters = collections.Counter({s: 0 for s in base.STATUSES})
    self._counters.update({"cache_hits": 0, "executed": 0, "abandoned_threads": 0})
    self._pool = self._new_pool()
    self._abandoned = 0  # timed-out tasks whose threads may still be running
    self._running: set = set()  # tasks a worker is executing now

  def _new_pool(self) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(self.max_workers,
                                                 thread_name_prefix="toolformer-tool")

  # ---------------------------------------------------------------------------- public

  @property
  def counters(self) -> Dict[str, int]:
    with self._lock:
      return dict(self._counters)

  def execute(self, call: CallLike, context: base.Context = None) -> base.ToolResult:
    return self.execute_batch([call], [context])[0]

  def execute_batch(self, calls: Sequence[CallLike],
                    contexts: Optional[Sequence[base.Context]] = None) -> List[base.ToolResult]:
    """One result per call, in order. Never raises for a call."""
    if contexts is None:
      contexts = [None] * len(calls)
    if len(contexts) != len(calls):
      raise ValueError(f"{len(calls)} calls but {len(contexts)} contexts")
    results: List[Optional[base.ToolResult]] = [None] * len(calls)
    waiting: Dict[Tuple[str, Hashable], List[int]] = {}
    pending: Dict[Tuple[str, Hashable], Tuple[base.Tool, str, base.Context]] = {}
    for i, (call, context) in enumerate(zip(calls, contexts)):
      prepared = self._prepare(call, context)
      if isinstance(prepared, base.ToolResult):
        results[i] = prepared
        continue
      key, tool, args = prepared
      cached = self._cache_get(key)
      if cached is not None:
        results[i] = dataclasses.replace(cached, cached=True, seconds=0.0)
        self._count("cache_hits")
        continue
      waiting.setdefault(key, []).append(i)
      pending.setdefault(key, (tool, args, context))
    if pending:
      for key, result in self._run(pending).items():
        if result.status != base.STATUS_TIMEOUT:
          self._cache_put(key, result)
        first, *repeats = waiting[key]
        results[first] = result
        for i in repeats:  # the same call again in this batch
          results[i] = dataclasses.replace(result, cached=True)
        if repeats:
          self._count("cache_hits", len(repeats))
    with self._lock:
      for r in results:
        self._counters[r.status] += 1  # type: ignore[union-attr]
    return results  # type: ignore[return-value]

  def close(self) -> None:
    self._pool.shutdown(wait=False, cancel_futures=True)

  def __enter__(self) -> "ToolExecutor":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # ------------------------------------------------------------------------- internals

  def _count(self, name: str, n: int = 1) -> None:
    with self._lock:
      self._counters[name] += n

  def _prepare(self, call: Any, context: base.Context):
    """(cache key, tool, args) for a runnable call, else a refused/error ToolResult."""
    if isinstance(call, str):
      parsed = call_format.parse_call(call)
      if isinstance(parsed, call_format.ParseError):
        return base.ToolResult("?", base.one_line(call, 80), base.STATUS_REFUSED,
                               f"malformed call: {parsed}")
      call = parsed
    if not isinstance(call, call_format.ToolCall) or not isinstance(call.args, str) or (
        not isinstance(call.tool, str)):
      return base.ToolResult("?", "", base.STATUS_REFUSED, "not a ToolCall or call string")
    unknown = registry.unknown_tool_error(call.tool, self.tools)
    if unknown:
      return base.ToolResult(call.tool[:64], call.args[:80], base.STATUS_REFUSED, unknown)
    tool = self.tools[call.tool]
    if len(call.args) > tool.max_args_chars:
      return base.ToolResult(call.tool, call.args[:80], base.STATUS_REFUSED,
                             f"arguments longer than {tool.max_args_chars} characters")
    try:
      with self._guard(tool):  # cache_key reads the untrusted call too
        key = (call.tool, tool.cache_key(call.args, context))
        hash(key)
    except Exception as e:  # pylint: disable=broad-except
      return base.ToolResult(call.tool, call.args, base.STATUS_ERROR,
                             f"bad call context: {type(e).__name__}: {base.one_line(e, 120)}")
    return key, tool, call.args

  def _run(self, pending: Mapping[Tuple[str, Hashable], Tuple[base.Tool, str, base.Context]]
           ) -> Dict[Tuple[str, Hashable], base.ToolResult]:
    by_tool: Dict[str, List[Tuple[Hashable, str, base.Context]]] = {}
    tools: Dict[str, base.Tool] = {}
    for key, (tool, args, context) in pending.items():
      by_tool.setdefault(key[0], []).append((key, args, context))
      tools[key[0]] = tool
    tasks: List[_Task] = []
    for name, items in by_tool.items():
      size = max(1, int(getattr(tools[name], "batch_size", 1)))
      for s in range(0, len(items), size):
        tasks.append(_Task(tools[name], items[s:s + size]))
    out: Dict[Tuple[str, Hashable], base.ToolResult] = {}
    finished: "queue.SimpleQueue[_Task]" = queue.SimpleQueue()
    for task in tasks:
      self._submit(task, finished)
    unresolved = set(tasks)
    while unresolved:
      try:
        task = finished.get(timeout=self._next_wait())
        # A cancelled future of a task moved to a fresh pool also lands here: skip it.
        if task in unresolved and task.future.done():
          out.update(self._collect(task))
          unresolved.discard(task)
      except queue.Empty:
        pass
      # Expire running tasks past their limit (at most max_workers + abandoned to scan).
      now = time.monotonic()
      with self._lock:
        running = list(self._running)
      for task in running:
        if (task in unresolved and not task.future.done() and
            now - task.started > self._timeout(task.tool)):
          out.update(self._timed_out(task))
          unresolved.discard(task)
      if unresolved and self._abandoned >= self.max_workers:
        self._replace_pool(unresolved, finished)
    return out

  def _submit(self, task: _Task, finished: "queue.SimpleQueue[_Task]") -> None:
    task.future = self._pool.submit(self._work, task)
    task.future.add_done_callback(lambda _, t=task: finished.put(t))

  def _next_wait(self) -> float:
    """Seconds until the earliest running task's deadline (at most _POLL_S)."""
    now = time.monotonic()
    wait = _POLL_S
    with self._lock:
      for task in self._running:
        wait = min(wait, task.started + self._timeout(task.tool) - now)
    return max(wait, 0.001)

  def _guard(self, tool: base.Tool):
    if self.sandboxed:
      return sandbox.guarded(tool.allowed_executables)
    return contextlib.nullcontext()

  def _timeout(self, tool: base.Tool) -> float:
    if tool.name in self.timeouts:
      return self.timeouts[tool.name]
    return getattr(tool, "default_timeout_s", None) or self.timeout_s

  def _work(self, task: _Task) -> List[Tuple[str, float, str]]:
    """Runs a task in a worker thread: [(status, seconds, text)] per item."""
    task.started = time.monotonic()
    with self._lock:
      self._running.add(task)
    tool = task.tool
    calls = [(args, context) for _, args, context in task.items]
    try:
      with self._guard(tool):
        if len(calls) == 1:
          try:
            outputs: List[Any] = [tool(*calls[0])]
          except base.ToolError as e:
            outputs = [e]
        else:
          outputs = list(tool.call_batch(calls))
      if len(outputs) != len(calls):
        raise RuntimeError(f"call_batch returned {len(outputs)} results for {len(calls)}")
    except Exception as e:  # pylint: disable=broad-except
      outputs = [e] * len(calls)
    finally:
      with self._lock:
        self._running.discard(task)
    seconds = (time.monotonic() - task.started) / len(calls)
    self._count("executed", len(calls))
    return [_outcome(o, seconds) for o in outputs]

  def _collect(self, task: _Task) -> Dict[Tuple[str, Hashable], base.ToolResult]:
    try:
      outcomes = task.future.result()
    except BaseException as e:  # pylint: disable=broad-except
      outcomes = [_outcome(e, 0.0)] * len(task.items)
    return {key: base.ToolResult(task.tool.name, args, status, text, seconds)
            for (key, args, _), (status, seconds, text) in zip(task.items, outcomes)}

  def _timed_out(self, task: _Task) -> Dict[Tuple[str, Hashable], base.ToolResult]:
    with self._lock:
      self._abandoned += 1
      self._counters["abandoned_threads"] += 1
    limit = self._timeout(task.tool)
    task.future.add_done_callback(self._release_abandoned)
    return {key: base.ToolResult(task.tool.name, args, base.STATUS_TIMEOUT,
                                 f"timed out after {limit:g} s", limit)
            for key, args, _ in task.items}

  def _release_abandoned(self, _future) -> None:
    with self._lock:
      self._abandoned = max(0, self._abandoned - 1)

  def _replace_pool(self, unresolved, finished: "queue.SimpleQueue[_Task]") -> None:
    """Moves tasks that have not started to a fresh pool; stuck threads stay abandoned."""
    old = self._pool
    self._pool = self._new_pool()
    with self._lock:
      self._abandoned = 0
    for task in unresolved:
      if task.started is None and task.future.cancel():
        self._submit(task, finished)
    old.shutdown(wait=False, cancel_futures=True)

  def _cache_get(self, key) -> Optional[base.ToolResult]:
    with self._lock:
      result = self._cache.get(key)
      if result is not None:
        self._cache.move_to_end(key)
      return result

  def _cache_put(self, key, result: base.ToolResult) -> None:
    if self.cache_size <= 0:
      return
    with self._lock:
      self._cache[key] = result
      self._cache.move_to_end(key)
      while len(self._cache) > self.cache_size:
        self._cache.popitem(last=False)


def _outcome(output: Any, seconds: float) -> Tuple[str, float, str]:
  if isinstance(output, str):
    return base.STATUS_OK, seconds, output
  if isinstance(output, base.ToolError):
    return output.status, seconds, base.one_line(output)
  if isinstance(output, BaseException):
    return base.STATUS_ERROR, seconds, f"internal error: {type(output).__name__}: " + (
        base.one_line(output, 200))
  return base.STATUS_ERROR, seconds, f"tool returned {type(output).__name__}, not text"
