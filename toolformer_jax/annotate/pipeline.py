"""The annotation pipeline: corpus shard -> per tool: heuristics -> positions -> calls ->
execution -> filter -> merge -> annotated records + candidates audit + manifest.

Work is split into `num_shards` corpus shards (document k of the corpus belongs to shard
k % num_shards); each shard is written atomically (temporary files, then renames, the
manifest last), so a rerun skips finished shards and redoes a shard killed midway without
duplicates. Randomness is derived from (seed, shard, tool, batch), so a resumed run writes
exactly what an uninterrupted one does.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import os
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from absl import logging
import jax
import numpy as np
import tqdm

from toolformer_jax import corpora
from toolformer_jax.annotate import loss_filter
from toolformer_jax.annotate import heuristics
from toolformer_jax.annotate import sampling
from toolformer_jax.annotate import schema
from toolformer_jax.tools import base as tool_base
from toolformer_jax.tools import call_format

MANIFEST_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ToolSettings:
  """Per-tool thresholds (paper defaults; gin run files set per-model values)."""
  tau_s: float = 0.05
  top_k_positions: int = 5
  calls_per_position: int = 5
  tau_f: float = 1.0
  # heuristics.POSITION_RULES name (e.g. "number"): calls only where the following text
  # starts with what the result can stand for; None: the paper's any position.
  position_rule: Optional[str] = None
  # At most this many of the documents the tool's heuristic selects, per shard, in corpus
  # order (a time budget for tools that run on every document); None: all of them.
  max_documents: Optional[int] = None
  # With SamplingConfig.force_tool_name, text written after "Name(" before sampling
  # starts (e.g. '"' so that QA's argument opens as its prompt's quoted questions do).
  argument_prefix: str = ""

  def __post_init__(self):
    if self.max_documents is not None and (
        not isinstance(self.max_documents, int) or isinstance(self.max_documents, bool)
        or self.max_documents < 1):
      raise ValueError(f"max_documents must be an int >= 1 or None, got "
                       f"{self.max_documents!r}")
    if self.position_rule is not None and self.position_rule not in heuristics.POSITION_RULES:
      raise ValueError(f"unknown position_rule {self.position_rule!r}; known: "
                       f"{sorted(heuristics.POSITION_RULES)}")


PAPER_SETTINGS = {
    "Calculator": ToolSettings(tau_s=0.0, top_k_positions=20, calls_per_position=10,
                               tau_f=0.5),
    "MT": ToolSettings(tau_s=0.0, top_k_positions=20, calls_per_position=10, tau_f=0.5),
    "WikiSearch": ToolSettings(),
    "QA": ToolSettings(),
    "Calendar": ToolSettings(),
}


def tool_settings(tools: Sequence[str], overrides: Optional[Mapping[str, Mapping]] = None
                  ) -> Dict[str, ToolSettings]:
  """Paper settings for `tools`, with per-tool field overrides ({'MT': {'tau_f': 0.7}})."""
  out = {}
  for tool in tools:
    if tool not in PAPER_SETTINGS:
      raise ValueError(f"unknown tool {tool!r}; known: {sorted(PAPER_SETTINGS)}")
    out[tool] = dataclasses.replace(PAPER_SETTINGS[tool], **dict((overrides or {}).get(tool, {})))
  unknown = sorted(set(overrides or {}) - set(PAPER_SETTINGS))
  if unknown:
    raise ValueError(f"settings given for unknown tools {unknown}")
  return out


def shard_paths(annotate_dir: str, shard: int, num_shards: int) -> Dict[str, str]:
  stem = f"{shard:05d}-of-{num_shards:05d}"
  return {
      "annotated": os.path.join(annotate_dir, f"annotated-{stem}.jsonl"),
      "candidates": os.path.join(annotate_dir,
                                 f"{schema.CANDIDATES_FILE_PART}-{stem}.jsonl.gz"),
      "manifest": os.path.join(annotate_dir, f"manifest-{stem}.json"),
  }


def shard_documents(documents: Iterable[corpora.Document], shard: int, num_shards: int,
                    max_documents: Optional[int]) -> List[corpora.Document]:
  out = []
  for k, doc in enumerate(documents):
    if max_documents is not None and k >= max_documents:
      break
    if k % num_shards == shard:
      out.append(doc)
  return out


def call_context(doc, char: int) -> dict:
  """What a call at character `char` of `doc` knows: the text before it, the record's date
  (when it has one) and the document itself, by id and text (the retrieval tools return
  none of its passages: a call must not copy the text it is scored on)."""
  return {tool_base.CONTEXT_TEXT: doc.text[:char], tool_base.CONTEXT_DOCUMENT_ID: doc.id,
          tool_base.CONTEXT_DOCUMENT: doc.text, **({"date": doc.date} if doc.date else {})}


def _char_position(vocabulary, ids: Sequence[int], i: int) -> int:
  return len(vocabulary.decode(list(ids[:i]))) if i else 0


def merge(text: str, kept: List[Dict[str, Any]], max_calls: int) -> Tuple[str, List[Dict]]:
  """Inserts the best kept call per position, best first, at most `max_calls`, no two at
  one character position; returns the annotated text and the inserted candidates."""
  best = {}
  for c in kept:
    gain = c["loss_minus"] - c["loss_plus"]
    if c["char_position"] not in best or gain > best[c["char_position"]][0]:
      best[c["char_position"]] = (gain, c)
  chosen = [c for _, c in sorted(best.values(), key=lambda gc: -gc[0])][:max_calls]
  out = text
  for c in sorted(chosen, key=lambda c: -c["char_position"]):  # right to left
    p = c["char_position"]
    out = out[:p] + c["prefix_call_result"] + out[p:]
  return out, sorted(chosen, key=lambda c: c["char_position"])


class Annotator:
  """Runs every tool over documents with one sampler, filter and tool executor."""

  def __init__(self, sampler: sampling.CallSampler, scorer: loss_filter.LossDifferenceFilter,
               executor, tools: Sequence[str], settings: Mapping[str, ToolSettings],
               prompts: Mapping[str, sampling.Prompt],
               heuristics_config: heuristics.HeuristicsConfig = heuristics.HeuristicsConfig(),
               documents_per_batch: int = 8, max_calls_per_document: int = 1,
               seed: int = 0, compare_inline: bool = False):
    self.sampler, self.scorer, self.executor = sampler, scorer, executor
    self.tools, self.settings, self.prompts = list(tools), dict(settings), dict(prompts)
    self.heuristics_config = heuristics_config
    self.documents_per_batch = documents_per_batch
    self.max_calls_per_document = max_calls_per_document
    self.seed = seed
    self.compare_inline = compare_inline  # also score inline; record its keep decision
    self.stage_seconds = collections.Counter()

  def _tool_sampler_config(self, tool: str) -> sampling.SamplingConfig:
    s = self.settings[tool]
    return dataclasses.replace(self.sampler.config, tau_s=s.tau_s,
                               top_k_positions=s.top_k_positions,
                               calls_per_position=s.calls_per_position,
                               argument_prefix=s.argument_prefix)

  def annotate(self, documents: Sequence[corpora.Document], shard: int, progress: bool = True
               ) -> Tuple[List[Dict], List[Dict], Dict[str, Any]]:
    """(annotated records, candidate records, counts) for one shard's documents."""
    vocabulary = self.sampler.vocabulary
    counts: Dict[str, Any] = {"documents": len(documents), "tools": {}}
    candidates_out: List[Dict] = []
    for tool_number, tool in enumerate(self.tools):
      tc = collections.Counter()
      selected, hcounts = heuristics.select(tool, documents, self.heuristics_config)
      tc.update({"heuristic_" + k: v for k, v in hcounts.items()})
      # Token ids and, under a position rule, where a call may stand, before any model
      # work: a document with no such position gets no call, so it is not encoded.
      rule = self.settings[tool].position_rule
      entries = []  # (document, ids, allowed positions or None)
      for doc in selected:
        x = self.sampler.document_ids(doc.text)
        if not x:
          tc["empty_documents"] += 1
          continue
        allowed = None
        if rule is not None:
          # The text after each position, as the candidate's char_position names it;
          # the text before it lazily (only rules that read it build it).
          chars = [_char_position(vocabulary, x, i) for i in range(len(x))]
          allowed = heuristics.allowed_positions(rule, [doc.text[c:] for c in chars],
                                                 (doc.text[:c] for c in chars))
          if not any(allowed):
            tc["no_allowed_position"] += 1
            continue
        entries.append((doc, x, allowed))
      cap = self.settings[tool].max_documents
      if cap is not None and len(entries) > cap:
        tc["over_max_documents"] = len(entries) - cap
        entries = entries[:cap]
      self.sampler.config = self._tool_sampler_config(tool)
      self.scorer.config = dataclasses.replace(self.scorer.config,
                                               tau_f=self.settings[tool].tau_f)
      prompt = self.prompts[tool]
      batches = range(0, len(entries), self.documents_per_batch)
      for batch_number, start in enumerate(tqdm.tqdm(
          batches, desc=f"shard {shard} {tool}", disable=not progress, leave=False)):
        docs, ids, allowed_positions = zip(*entries[start:start + self.documents_per_batch])
        rng = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(
            jax.random.PRNGKey(self.seed), shard), tool_number), batch_number)
        t0 = time.perf_counter()
        encoded = self.sampler.encode_documents(prompt, ids)
        positions = []
        for allowed, probs in zip(allowed_positions, encoded.probs):
          if allowed is not None:  # p = 0 where the rule forbids a call: never selected
            probs = np.where(allowed, probs, 0.0)
          positions.append(self.sampler.select_positions(probs))
        t1 = time.perf_counter()
        sampled = self.sampler.sample_calls(encoded, positions, rng)
        t2 = time.perf_counter()
        tc["positions"] += sum(len(p) for p in positions)
        # Dedupe, parse, execute.
        proposals = []  # (doc k, sampled call, char position of the call in the text)
        for k, calls in enumerate(sampled):
          seen = set()
          for s in calls:
            tc["sampled"] += 1
            if s.call is None:
              tc["unparsable"] += 1
              continue
            if s.call.tool != tool:
              tc["other_tool"] += 1
              continue
            key = (s.token_position, str(s.call))
            if key in seen:
              tc["duplicates"] += 1
              continue
            seen.add(key)
            proposals.append((k, s, _char_position(vocabulary, ids[k], s.token_position)))
        contexts = [call_context(docs[k], char) for k, _, char in proposals]
        exclusion = getattr(self.executor.tools.get(tool), "exclusion", None)
        own_before = exclusion.own_document_calls if exclusion is not None else 0
        results = self.executor.execute_batch([s.call for _, s, _ in proposals], contexts)
        if exclusion is not None:
          tc["own_document_excluded"] += exclusion.own_document_calls - own_before
        t3 = time.perf_counter()
        filter_candidates, rows = [], []
        for (k, s, char), result in zip(proposals, results):
          if not result.ok:
            tc["tool_" + result.status] += 1
            refused = tc.setdefault(schema.REFUSED_CALLS_KEY, [])
            if len(refused) < schema.REFUSED_CALLS:  # the report's refused-calls diagnostic
              refused.append(dict(zip(schema.REFUSED_CALL_FIELDS,
                                      (str(s.call), result.status, result.text[:160]))))
            continue
          z_call = call_format.render_empty_result(s.call)
          z_result = call_format.render_call(s.call, result.text)
          filter_candidates.append(loss_filter.Candidate(
              doc=k, token_position=s.token_position, prefix_call=z_call,
              prefix_call_result=z_result))
          rows.append((k, s, char, result))
        scores = self.scorer.score(dict(enumerate(ids)), filter_candidates)
        t4 = time.perf_counter()
        inline = self._inline_scores(dict(enumerate(ids)), filter_candidates)
        t5 = time.perf_counter()
        for n, ((k, s, char, result), c, score) in enumerate(
            zip(rows, filter_candidates, scores)):
          tc["scored"] += 1
          tc["kept"] += int(score.kept)
          candidates_out.append({
              "doc_id": docs[k].id, "tool": tool, "call": str(s.call),
              "result": call_format.clean_result(result.text),
              "char_position": char,
              "token_position": s.token_position, "prefix_call": c.prefix_call,
              "prefix_call_result": c.prefix_call_result,
              "loss_empty": score.loss_empty, "loss_call": score.loss_call,
              "loss_call_result": score.loss_call_result, "loss_minus": score.loss_minus,
              "loss_plus": score.loss_plus, "kept": score.kept,
              "p_call_start": s.p_call_start})
          if inline is not None:
            other = inline[n]
            candidates_out[-1].update(loss_minus_inline=other.loss_minus,
                                      loss_plus_inline=other.loss_plus,
                                      kept_inline=other.kept)
            tc["inline_kept"] += int(other.kept)
            tc["inline_agree"] += int(other.kept == score.kept)
        for stage, seconds in (("positions", t1 - t0), ("calls", t2 - t1),
                               ("execute", t3 - t2), ("filter", t4 - t3),
                               ("filter_inline", t5 - t4)):
          self.stage_seconds[stage] += seconds
      counts["tools"][tool] = dict(tc)
    annotated = self._merge(documents, candidates_out)
    counts["annotated_documents"] = len(annotated)
    return annotated, candidates_out, counts

  def _inline_scores(self, documents, candidates) -> Optional[List[loss_filter.Scores]]:
    """The same candidates scored in inline mode (call inserted at i), or None when off."""
    if not self.compare_inline or not candidates:
      return None
    prefix_config = self.scorer.config
    self.scorer.config = dataclasses.replace(prefix_config, mode="inline")
    try:
      return self.scorer.score(documents, candidates)
    finally:
      self.scorer.config = prefix_config

  def _merge(self, documents: Sequence[corpora.Document], candidates: List[Dict]) -> List[Dict]:
    by_doc = collections.defaultdict(list)
    for c in candidates:
      if c["kept"]:
        by_doc[c["doc_id"]].append(c)
    out = []
    for doc in documents:
      if doc.id not in by_doc:
        continue
      # Positions are in ids(x)[:max_document_tokens]; char positions index the full text.
      text, inserted = merge(doc.text, by_doc[doc.id], self.max_calls_per_document)
      best = max(inserted, key=lambda c: c["loss_minus"] - c["loss_plus"])
      out.append({"doc_id": doc.id, "tool": best["tool"], "text": text,
                  "call": best["call"], "result": best["result"],
                  "char_position": best["char_position"], "loss_minus": best["loss_minus"],
                  "loss_plus": best["loss_plus"],
                  "calls": [{k: c[k] for k in ("tool", "call", "result", "char_position")}
                            for c in inserted]})
    return out


def _write_atomic(path: str, lines: Iterable[str], compress: bool = False) -> None:
  tmp = path + ".tmp"
  opener = gzip.open if compress else open
  with opener(tmp, "wt", encoding="utf-8") as f:
    for line in lines:
      f.write(line + "\n")
  os.replace(tmp, path)


def write_shard(annotate_dir: str, shard: int, num_shards: int, annotated: List[Dict],
                candidates: List[Dict], manifest: Dict[str, Any]) -> Dict[str, str]:
  paths = shard_paths(annotate_dir, shard, num_shards)
  for r in annotated:
    schema.check_record(r, schema.ANNOTATED_FIELDS, "annotated")
  for r in candidates:
    schema.check_record(r, schema.CANDIDATE_FIELDS, "candidate")
  _write_atomic(paths["annotated"], (json.dumps(r, ensure_ascii=False) for r in annotated))
  _write_atomic(paths["candidates"], (json.dumps(r, ensure_ascii=False) for r in candidates),
                compress=True)
  _write_atomic(paths["manifest"], [json.dumps(manifest, indent=1, sort_keys=True)])
  return paths


def shard_done(annotate_dir: str, shard: int, num_shards: int) -> bool:
  paths = shard_paths(annotate_dir, shard, num_shards)
  return all(os.path.exists(p) for p in paths.values())
