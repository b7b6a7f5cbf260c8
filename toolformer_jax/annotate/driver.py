"""The annotation run: which shards, the model, the corpus, writing and the summary.

`run` is what `python -m toolformer_jax.annotate` calls after parsing gin; every argument
is a gin binding of the annotation run files (gin/runs/annotate_*.gin).
"""

from __future__ import annotations

import collections
import os
import time
from typing import Any, Dict, Mapping, Optional, Sequence

import gin
import jax
import jax.numpy as jnp

from toolformer_jax import corpora
from toolformer_jax import partitioning
from toolformer_jax.annotate import loss_filter
from toolformer_jax.annotate import heuristics
from toolformer_jax.annotate import pipeline
from toolformer_jax.annotate import sampling


def open_corpus(name: str, stats: corpora.ReadStats):
  """Documents of CORPUS: '+'-joined parts, each 'wikipedia[:LANG]', a jsonl or text path,
  a generated kind 'KIND[:N]' such as 'arithmetic:200' or 'geography:64' (see
  `annotate.synthetic_docs.DOCUMENT_KINDS`), or a built TFDS
  dataset 'tfds:NAME[/CONFIG][:SPLIT]' (data_dir, manual_dir: $TOOLFORMER_TFDS_DATA_DIR,
  $TOOLFORMER_TFDS_MANUAL_DIR; see `annotate.tfds_corpora`)."""
  for part in name.split("+"):
    kind, _, arg = part.partition(":")
    if kind == "tfds":
      from toolformer_jax.annotate import tfds_corpora  # pylint: disable=g-import-not-at-top
      yield from tfds_corpora.read_tfds(arg, stats)
    elif kind == "wikipedia":
      language = arg or "en-us"
      yield from corpora.read_wikipedia(corpora.bundled_corpus_path(language), stats,
                                        language=language.split("-")[0])
    elif kind in _generated_kinds():
      from toolformer_jax.annotate import synthetic_docs  # pylint: disable=g-import-not-at-top
      yield from synthetic_docs.documents(kind, int(arg) if arg else 200)
    elif os.path.exists(part):
      yield from corpora.read_documents(part, stats)
    else:
      raise ValueError(f"CORPUS part {part!r} is neither 'wikipedia[:LANG]', a generated "
                       f"kind 'KIND[:N]' ({', '.join(sorted(_generated_kinds()))}), "
                       "'tfds:NAME[/CONFIG][:SPLIT]' nor an existing jsonl/text path")


def _generated_kinds():
  from toolformer_jax.annotate import synthetic_docs  # pylint: disable=g-import-not-at-top
  return synthetic_docs.DOCUMENT_KINDS


def load_model(checkpoint: str, network=None, scan_layers: bool = False):
  """(module, params) for a t5x checkpoint directory (with the gin NETWORK) or anything
  `convert` reads ('smollm2', a .gguf file, an HF GPT-J directory). Unrolled layers by
  default: scanned ones compile faster, but a scanned decode step rewrites the whole
  stacked cache (SmolLM2, 8 rows, 448 slots: 1.22 s a step scanned, 0.30 s unrolled).
  """
  from toolformer_jax.checkpoints import sources  # pylint: disable=g-import-not-at-top
  kind = sources.input_kind(checkpoint)
  if kind == "t5x":
    if network is None:
      raise ValueError("a t5x checkpoint needs the model gin file's NETWORK")
    from toolformer_jax.checkpoints import t5x_export  # pylint: disable=g-import-not-at-top
    params, _ = t5x_export.load_t5x_params(checkpoint)
    t5x_export.check_params(params, network)
    return network, params
  module, params, _ = sources.load_network(checkpoint, scan_layers=scan_layers)
  return module, params


def local_mesh(num_partitions: int = 1):
  """The ('data', 'model') mesh over this process's devices, or None on one device.

  Hosts annotate different corpus shards at their own pace, so each shards its batches
  over its own devices: a mesh spanning hosts would make every host wait for the slowest
  one at every step, for work that needs no communication."""
  devices = jax.local_devices()
  if len(devices) == 1 and num_partitions == 1:
    return None
  return partitioning.make_mesh(num_partitions, devices)


def tool_settings(tools: Sequence[str],
                  tool_overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                  tau_f: Optional[float] = None) -> Dict[str, pipeline.ToolSettings]:
  """Each tool's settings: the paper's, then its tool_overrides entry, then tau_f (every
  tool's filter threshold, e.g. a demo size's; None: the tool's own)."""
  if tau_f is not None:
    tool_overrides = {t: dict(v) for t, v in (tool_overrides or {}).items()}
    for tool in tools:
      tool_overrides.setdefault(tool, {})["tau_f"] = float(tau_f)
  return pipeline.tool_settings(tools, tool_overrides)


@gin.configurable(denylist=["shard_index", "num_shards", "process_index", "process_count",
                            "progress"])
def run(annotate_dir: str = gin.REQUIRED,
        corpus: str = "wikipedia",
        tools: Sequence[str] = ("Calculator", "Calendar", "WikiSearch", "QA", "MT"),
        max_documents: Optional[int] = None,
        checkpoint: str = "smollm2",
        network=None,
        vocabulary=None,
        scan_layers: bool = False,
        tool_overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
        tau_f: Optional[float] = None,
        sampling_config: sampling.SamplingConfig = sampling.SamplingConfig(),
        filter_config: loss_filter.FilterConfig = loss_filter.FilterConfig(),
        heuristics_config: heuristics.HeuristicsConfig = heuristics.HeuristicsConfig(),
        prompt_files: Optional[Mapping[str, str]] = None,
        documents_per_batch: int = 8,
        max_calls_per_document: int = 1,
        executor_workers: int = 4,
        num_partitions: int = 1,
        compare_inline: bool = False,
        seed: int = 0,
        shard_index: Optional[int] = None,
        num_shards: int = 1,
        process_index: int = 0,
        process_count: int = 1,
        progress: bool = True) -> Dict[str, Any]:
  """Annotates this process's corpus shards; returns the summed counts."""
  from toolformer_jax.tools import engine, registry  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  if vocabulary is None:
    raise ValueError("run.vocabulary is not bound: include a model gin file")
  settings = tool_settings(tools, tool_overrides, tau_f)  # bad config fails here
  if compare_inline and filter_config.mode != "prefix":
    raise ValueError("compare_inline scores inline beside the prefix-mode filter; it needs "
                     f"FilterConfig.mode = 'prefix', not {filter_config.mode!r}")
  prompts = {t: sampling.Prompt.load(t, (prompt_files or {}).get(t)) for t in tools}
  if num_shards < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"bad sharding: num_shards={num_shards}, process "
                     f"{process_index} of {process_count}")
  shards = ([shard_index] if shard_index is not None
            else [s for s in range(num_shards) if s % process_count == process_index])
  if shard_index is not None and not 0 <= shard_index < num_shards:
    raise ValueError(f"--shard_index {shard_index} outside [0, {num_shards})")
  os.makedirs(annotate_dir, exist_ok=True)
  todo = [s for s in shards if not pipeline.shard_done(annotate_dir, s, num_shards)]
  skipped = len(shards) - len(todo)
  totals = collections.Counter()
  if todo:
    module, params = load_model(checkpoint, network, scan_layers)
    mesh = local_mesh(num_partitions)
    if mesh is None:
      params = jax.tree.map(jnp.asarray, params)
    else:
      from toolformer_jax.checkpoints import t5x_export  # pylint: disable=g-import-not-at-top
      params = partitioning.shard_params(params, t5x_export.check_params(params, module),
                                         mesh)
    sampler = sampling.CallSampler(module, params, vocabulary, sampling_config, mesh)
    scorer = loss_filter.LossDifferenceFilter(
        module, params, lambda s: [int(t) for t in vocabulary.encode(s)], filter_config,
        mesh)
    executor = engine.ToolExecutor(registry.build_tools(list(tools)),
                                   max_workers=executor_workers)
    annotator = pipeline.Annotator(sampler, scorer, executor, tools, settings, prompts,
                                   heuristics_config, documents_per_batch,
                                   max_calls_per_document, seed, compare_inline)
    for shard in todo:
      stats = corpora.ReadStats("corpus")
      documents = pipeline.shard_documents(open_corpus(corpus, stats), shard, num_shards,
                                           max_documents)
      annotator.stage_seconds.clear()  # per shard, as the manifest reports it
      annotated, candidates, counts = annotator.annotate(documents, shard, progress)
      counts["corpus_skipped"] = dict(stats.skipped_by_reason)
      manifest = {
          "version": pipeline.MANIFEST_VERSION, "shard": shard, "num_shards": num_shards,
          "checkpoint": checkpoint, "network": type(module).__name__,
          "network_config": repr(module.config), "vocabulary": str(vocabulary),
          "corpus": corpus, "max_documents": max_documents, "seed": seed,
          "prompts": {t: p.path for t, p in prompts.items()},
          "settings": {t: vars(s) for t, s in settings.items()},
          "sampling": vars(sampling_config), "filter": {
              k: v for k, v in vars(filter_config).items()},
          "max_calls_per_document": max_calls_per_document, "counts": counts,
          "mesh": dict(mesh.shape) if mesh is not None else None,
          "stage_seconds": dict(annotator.stage_seconds),
      }
      pipeline.write_shard(annotate_dir, shard, num_shards, annotated, candidates, manifest)
      totals["documents"] += counts["documents"]
      totals["annotated"] += counts["annotated_documents"]
      for tool, tc in counts["tools"].items():
        totals[f"{tool}_scored"] += tc.get("scored", 0)
        totals[f"{tool}_kept"] += tc.get("kept", 0)
    executor.close()
  report_note = ""
  if process_index == 0 and all(pipeline.shard_done(annotate_dir, s, num_shards)
                                for s in range(num_shards)):
    from toolformer_jax.annotate import report  # pylint: disable=g-import-not-at-top
    report_note = f"; report {report.write_report(annotate_dir)}"
  per_tool = ", ".join(f"{t} {totals[t + '_kept']}/{totals[t + '_scored']}" for t in tools)
  print(f"annotated {totals['documents']} documents in {len(todo)} shards "
        f"({skipped} already done) in {time.perf_counter() - start:.0f} s: "
        f"{totals['annotated']} with calls; kept/scored per tool: {per_tool}; "
        f"output in {annotate_dir}{report_note}")
  return dict(totals)


