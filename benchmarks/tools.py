"""Tool throughput and latency: calls/s and p50/p99 per tool, cold and with the cache warm.

    python benchmarks/tools.py [--n 1000] [--tools Calculator,QA] [--workers 4]

Workloads are realistic calls built from the bundled data (seeded): arithmetic from random
numbers, document dates and URLs, Wikipedia titles and template questions from the
English leads, and first sentences of the Spanish and French leads for MT. For every
tool, all measured in this one run through the sandboxed ToolExecutor:
  cold 1-by-1   one call at a time, empty cache: latency p50/p99 and calls/s
  cold batch    every call in one execute_batch (worker pool; MT batches apertium runs)
  warm 1-by-1   the same calls again: answered from the cache
plus the sandbox's cost (Calculator 1-by-1 with the audit-hook guard on vs off) and the
ratios batch/1-by-1 and warm/cold. The index is built first if the cache lacks it.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Dict, List, Optional, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # pylint: disable=g-import-not-at-top
import tqdm  # pylint: disable=g-import-not-at-top

from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
from toolformer_jax.tools import calculator
from toolformer_jax.tools import calendar_tool
from toolformer_jax.tools import engine
from toolformer_jax.tools import call_format
from toolformer_jax.tools import mt
from toolformer_jax.tools import probes
from toolformer_jax.tools import qa
from toolformer_jax.tools import retrieval
from toolformer_jax.tools import wikisearch

ToolCall = call_format.ToolCall
Workload = List[Tuple[ToolCall, Optional[dict]]]


def _calculator_calls(r: random.Random, n: int) -> Workload:
  out = []
  for _ in range(n):
    a, b, c = r.randint(1, 5000), r.randint(1, 5000), round(r.uniform(0.1, 99.9), 1)
    expr = r.choice([f"{a} / {b}", f"{a} * {b}", f"({a} + {b}) * {c}", f"{a} - {b} / {c}",
                     f"{a:,} + {b:,}"])
    out.append((ToolCall("Calculator", expr), None))
  return out


def _calendar_calls(r: random.Random, n: int) -> Workload:
  out = []
  for _ in range(n):
    y, m, d = r.randint(1995, 2024), r.randint(1, 12), r.randint(1, 28)
    ctx = r.choice([{"date": f"{y}-{m:02d}-{d:02d}"},
                    {"url": f"https://news.example.com/{y}/{m:02d}/{d:02d}/story-{r.randint(1, 10**6)}"},
                    {"url": f"https://blog.example.org/post-{r.randint(1, 10**6)}"}])
    out.append((ToolCall("Calendar", ""), ctx))
  return out


def _search_calls(r: random.Random, n: int, articles) -> Workload:
  titles = r.sample([a.title for a in articles], n)
  return [(ToolCall("WikiSearch", call_format.quote_argument(t)), None) for t in titles]


def _qa_calls(r: random.Random, n: int, articles) -> Workload:
  facts = [p for a in articles for p in probes.fact_probes(a)]
  chosen = r.sample(facts, min(n, len(facts)))
  return [(ToolCall("QA", call_format.quote_argument(p.query)), None) for p in chosen]


def _mt_calls(r: random.Random, n: int) -> Workload:
  texts = []
  for language in ("es-es", "fr-fr"):
    for a in corpora.read_wikipedia(corpora.bundled_corpus_path(language)):
      first = a.text.split(". ")[0]
      if 20 <= len(first) <= 300:
        texts.append(first if first.endswith(".") else first + ".")
  return [(ToolCall("MT", call_format.quote_argument(t)), None)
          for t in r.sample(texts, min(n, len(texts)))]


def _measure(executor: engine.ToolExecutor, calls: Workload, desc: str) -> Dict[str, float]:
  """One call at a time: calls/s, p50 and p99 latency (ms), ok fraction."""
  latencies = []
  ok = 0
  start = time.perf_counter()
  for call, context in tqdm.tqdm(calls, desc=desc, leave=False, mininterval=1.0):
    t0 = time.perf_counter()
    ok += executor.execute(call, context).ok
    latencies.append(time.perf_counter() - t0)
  total = time.perf_counter() - start
  ms = np.asarray(latencies) * 1e3
  return {"calls_per_s": len(calls) / total, "p50_ms": float(np.percentile(ms, 50)),
          "p99_ms": float(np.percentile(ms, 99)), "ok": ok / len(calls)}


def _measure_batch(executor: engine.ToolExecutor, calls: Workload) -> Dict[str, float]:
  start = time.perf_counter()
  results = executor.execute_batch([c for c, _ in calls], [x for _, x in calls])
  total = time.perf_counter() - start
  return {"calls_per_s": len(calls) / total, "ok": sum(r.ok for r in results) / len(calls)}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--n", type=int, default=1000, help="calls per tool (MT: n / 4)")
  parser.add_argument("--tools", default="Calculator,Calendar,WikiSearch,QA,MT")
  parser.add_argument("--workers", type=int, default=4)
  parser.add_argument("--cache_dir", default=None, help="index cache (default: user cache)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--json", default=None, help="also write the figures to this file")
  args = parser.parse_args(argv)
  names = [t.strip() for t in args.tools.split(",") if t.strip()]
  r = random.Random(args.seed)

  t0 = time.perf_counter()
  need_index = bool({"WikiSearch", "QA"} & set(names))
  index = retrieval.load_index(retrieval.RetrievalConfig(cache_dir=args.cache_dir)) if (
      need_index) else None
  index_s = time.perf_counter() - t0
  articles = list(corpora.read_wikipedia(corpora.bundled_corpus_path())) if need_index else []
  builders = {
      "Calculator": lambda: (calculator.Calculator(), _calculator_calls(r, args.n)),
      "Calendar": lambda: (calendar_tool.Calendar(), _calendar_calls(r, args.n)),
      "WikiSearch": lambda: (wikisearch.WikiSearch(index=index),
                             _search_calls(r, args.n, articles)),
      "QA": lambda: (qa.QA(index=index), _qa_calls(r, args.n, articles)),
      "MT": lambda: (mt.MT(), _mt_calls(r, max(20, args.n // 4))),
  }
  rows = {}
  for name in names:
    tool, calls = builders[name]()
    with engine.ToolExecutor({name: tool}, max_workers=args.workers) as ex:
      cold = _measure(ex, calls, f"{name} cold")
      warm = _measure(ex, calls, f"{name} warm")
    with engine.ToolExecutor({name: tool}, max_workers=args.workers) as ex:
      batch = _measure_batch(ex, calls)
    rows[name] = {"n": len(calls), "cold": cold, "batch": batch, "warm": warm}

  sandbox = {}
  if "Calculator" in names:
    calls = _calculator_calls(random.Random(args.seed + 1), args.n)
    for guarded in (True, False):
      with engine.ToolExecutor({"Calculator": calculator.Calculator()}, max_workers=1,
                               sandboxed=guarded) as ex:
        sandbox["on" if guarded else "off"] = _measure(ex, calls, "sandbox")

  print(f"\nTool benchmark ({os.cpu_count()} CPUs, {args.workers} workers, seed {args.seed}); "
        f"index ready in {index_s:.2f} s" if need_index else "")
  header = (f"{'tool':<11}{'n':>6} | {'cold 1-by-1':>11} {'p50 ms':>8} {'p99 ms':>8} | "
            f"{'cold batch':>10} {'x 1-by-1':>8} | {'warm':>10} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'x cold':>8} | {'ok':>5}")
  print(header)
  print("-" * len(header))
  for name, row in rows.items():
    c, b, w = row["cold"], row["batch"], row["warm"]
    print(f"{name:<11}{row['n']:>6} | {c['calls_per_s']:>9.0f}/s {c['p50_ms']:>8.3f} "
          f"{c['p99_ms']:>8.3f} | {b['calls_per_s']:>8.0f}/s "
          f"{b['calls_per_s'] / c['calls_per_s']:>8.2f} | {w['calls_per_s']:>8.0f}/s "
          f"{w['p50_ms']:>8.3f} {w['p99_ms']:>8.3f} {w['calls_per_s'] / c['calls_per_s']:>8.1f} | "
          f"{c['ok']:>5.2f}")
  if sandbox:
    on, off = sandbox["on"], sandbox["off"]
    print(f"sandbox cost (Calculator, 1 worker, 1-by-1): on {on['calls_per_s']:.0f}/s "
          f"p50 {on['p50_ms']:.3f} ms, off {off['calls_per_s']:.0f}/s p50 "
          f"{off['p50_ms']:.3f} ms, ratio on/off {on['calls_per_s'] / off['calls_per_s']:.2f}")
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump({"rows": rows, "sandbox": sandbox, "index_s": index_s}, f, indent=1)
  total = sum(row["n"] for row in rows.values())
  print(f"done: {len(rows)} tools, {total} distinct calls, {time.perf_counter() - t0:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
