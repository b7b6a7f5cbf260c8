"""The loss-difference filter: one jitted kernel scores every candidate call in batch.

Convention (the paper's prefix mode). For a document x with token ids ids(x), a candidate
call c with result r at token position i (the first token of x after the call), and a
prefix z, the scored sequence is

  [0] + ids(z) + ids(x)[: i + window]

with 0 the start id t5x feeds and z tokenized on its own, and

  L_i(z) = -sum_{t < window, i + t < len(x)} w_t log p(x_{i+t} | [0], z, x_{<i+t})

with w~_t = max(0, 1 - 0.2 t) normalised over the window ((5, 4, 3, 2, 1) / 15 for the
paper's 5); terms past the document's end are dropped, not renormalised. With
z in {empty, e(c, empty), e(c, r)}: L- = min(L_i(empty), L_i(e(c, empty))),
L+ = L_i(e(c, r)), and a call is kept if L- - L+ >= tau_f (+ cost_lambda * tokens(call)
when the optional cost term is on).

No waste: a document's empty-prefix losses at all its candidate positions come from one
row ([0] + ids(x) up to the last position needed); candidates of a document that share a
prefix z share one row that scores every position needing it; a row asks the network for
log-probabilities only at the tokens some weight needs (`output="log_probs"`), and rows
are padded into a few static bucket shapes, so the kernel compiles once per bucket.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from typing import Callable, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from toolformer_jax import partitioning

START_ID = 0  # the id t5x shifts in before every sequence


def loss_weights(window: int = 5) -> np.ndarray:
  """w_t = max(0, 1 - 0.2 t) normalised to sum 1: (5, 4, 3, 2, 1) / 15 for window 5."""
  if window < 1:
    raise ValueError(f"window must be >= 1, got {window}")
  raw = np.maximum(0.0, 1.0 - 0.2 * np.arange(window))
  if raw.sum() <= 0:
    raise ValueError(f"window {window} has no positive weight")
  return raw / raw.sum()


@dataclasses.dataclass(frozen=True)
class FilterConfig:
  """Thresholds and shapes of the filter (gin-bindable in the annotation run files)."""
  tau_f: float = 1.0
  window: int = 5
  cost_lambda: float = 0.0  # keep if L- - L+ >= tau_f + cost_lambda * tokens(call)
  rows_per_batch: int = 16
  length_buckets: Tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
  # 'prefix' (the paper): z before the document. 'inline': z inserted at position i,
  # [0] + x[:i] + z + x[i:i+window], every candidate of a document continuing from one
  # prefilled KV cache of [0] + x.
  mode: str = "prefix"

  def __post_init__(self):
    loss_weights(self.window)
    if self.mode not in ("prefix", "inline"):
      raise ValueError(f"mode must be 'prefix' or 'inline', got {self.mode!r}")
    if self.rows_per_batch < 1:
      raise ValueError(f"rows_per_batch must be >= 1, got {self.rows_per_batch}")
    if list(self.length_buckets) != sorted(set(self.length_buckets)) or not self.length_buckets:
      raise ValueError(f"length_buckets must be increasing, got {self.length_buckets}")


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One proposed call, before scoring. `doc` keys the document's token ids."""
  doc: Hashable
  token_position: int  # i: index in ids(x) of the first token after the call
  prefix_call: str  # e(c, empty), e.g. " [Calculator(3 + 4) ->]"
  prefix_call_result: str  # e(c, r), e.g. " [Calculator(3 + 4) -> 7]"


@dataclasses.dataclass(frozen=True)
class Scores:
  loss_empty: float
  loss_call: float
  loss_call_result: float
  loss_minus: float
  loss_plus: float
  call_tokens: int
  kept: bool


@dataclasses.dataclass
class _Row:
  tokens: List[int]
  positions: List[int] = dataclasses.field(default_factory=list)  # logits index per needed lp
  targets: List[int] = dataclasses.field(default_factory=list)
  queries: List[List[Tuple[int, float]]] = dataclasses.field(default_factory=list)


def _bucket(n: int, buckets: Sequence[int]) -> int:
  for b in buckets:
    if n <= b:
      return b
  raise ValueError(f"a scored sequence of {n} tokens exceeds the largest length bucket "
                   f"{buckets[-1]}")


def _pow2(n: int, floor: int = 8) -> int:
  return max(floor, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


class LossDifferenceFilter:
  """Scores candidates with a network (`networks.decoder.Decoder`) and its params.

  `tokenize` maps a prefix string z to ids (the vocabulary's encode, no EOS). With a
  `mesh`, rows are sharded over its `data` axis and params must already be placed on it
  (`partitioning.shard_params`); `rows_per_batch` is rounded up to a multiple of the
  data axis.
  """

  def __init__(self, module, params, tokenize: Callable[[str], List[int]],
               config: FilterConfig = FilterConfig(), mesh: Optional[Mesh] = None):
    self.module = module
    self.params = params
    self.tokenize = tokenize
    self.config = config
    self.weights = loss_weights(config.window)
    self.mesh = mesh
    data = mesh.shape["data"] if mesh is not None else 1
    self.data_size = data
    self.rows_per_batch = -(-config.rows_per_batch // data) * data
    self.forwards = 0  # rows run through the network (for reports and tests)
    self.compiled_shapes = set()

    def kernel(params, tokens, positions, targets, weights):
      # tokens [rows, length]; positions/targets [rows, p]; weights [rows, queries, p]
      log_probs = module.apply({"params": params}, tokens, enable_dropout=False,
                               output="log_probs", output_positions=positions,
                               output_tokens=targets)  # [rows, p]
      return -jnp.einsum("rqp,rp->rq", weights, log_probs)  # [rows, queries]

    if mesh is None:
      self._kernel = jax.jit(kernel)
    else:
      rows2 = NamedSharding(mesh, PartitionSpec("data", None))
      rows3 = NamedSharding(mesh, PartitionSpec("data", None, None))
      self._kernel = jax.jit(kernel, in_shardings=(None, rows2, rows2, rows2, rows3),
                             out_shardings=rows2)

    from toolformer_jax.networks import kv_cache  # pylint: disable=g-import-not-at-top

    def place(arrays):
      # Rows over `data`; placed explicitly (a multi-process run refuses numpy inputs
      # with sharded in_shardings, even on a mesh of its own devices).
      if mesh is None:
        return arrays
      return tuple(jax.device_put(a, partitioning.data_sharding(mesh, a.ndim))
                   for a in arrays)

    self._place = place

    @functools.partial(jax.jit, static_argnums=(3,))
    def inline_prefill(params, tokens, targets, cache_length):
      # tokens [docs, L] = [0] + x; targets [docs, L] = x: log p(x_j | [0], x_<j) at j.
      cache = kv_cache.init_cache(module, params, tokens.shape[0], cache_length)
      lengths = jnp.full((tokens.shape[0],), tokens.shape[1], jnp.int32)
      log_probs, cache = kv_cache.prefill(module, params, cache, tokens, lengths,
                                          output="log_probs", output_tokens=targets)
      return log_probs, cache

    @jax.jit
    def inline_kernel(params, cache, source, index, tokens, lengths, positions, targets,
                      weights):
      # Row r continues document source[r] after its first index[r] slots with
      # tokens[r, :lengths[r]] = ids(z) + x[i:i+window].
      rows_cache = kv_cache.fork(module, cache, source, index)
      log_probs, _ = kv_cache.extend(module, params, rows_cache, tokens, lengths,
                                     output="log_probs", output_positions=positions,
                                     output_tokens=targets)  # [rows, p]
      return -jnp.einsum("rp,rp->r", weights, log_probs)  # [rows]

    self._inline_prefill = inline_prefill
    self._inline_kernel = inline_kernel

  # ------------------------------------------------------------------ planning

  def _add_query(self, row: _Row, offset: int, doc_ids: Sequence[int], i: int,
                 needed: Dict[int, int]) -> int:
    """Adds L_i to `row` (whose x starts at row index `offset`); returns the query index."""
    terms = []
    for t, w in enumerate(self.weights):
      if i + t >= len(doc_ids):
        break  # past the document's end: dropped, not renormalised
      k = offset + i + t  # row index of x_{i+t}; its log-prob comes from logits at k - 1
      if k not in needed:
        needed[k] = len(row.positions)
        row.positions.append(k - 1)
        row.targets.append(row.tokens[k])
      terms.append((needed[k], float(w)))
    row.queries.append(terms)
    return len(row.queries) - 1

  def plan(self, documents: Mapping[Hashable, Sequence[int]],
           candidates: Sequence[Candidate]):
    """Rows to run and, per candidate, (row, query) for its empty / call / call+result."""
    by_prefix = collections.defaultdict(set)  # (doc, z) -> positions i
    for c in candidates:
      n = len(documents[c.doc])
      if not 0 <= c.token_position < n:
        raise ValueError(f"candidate at token {c.token_position} of a {n}-token document")
      for z in ("", c.prefix_call, c.prefix_call_result):
        by_prefix[(c.doc, z)].add(c.token_position)
    rows, where = [], {}
    z_cache = {}
    for (doc, z), positions in by_prefix.items():
      doc_ids = list(documents[doc])
      if z not in z_cache:
        z_cache[z] = list(self.tokenize(z)) if z else []
      z_ids = z_cache[z]
      end = min(len(doc_ids), max(positions) + self.config.window)
      row = _Row(tokens=[START_ID] + z_ids + doc_ids[:end])
      needed = {}
      for i in sorted(positions):
        where[(doc, z, i)] = (len(rows), self._add_query(row, 1 + len(z_ids), doc_ids, i,
                                                         needed))
      rows.append(row)
    return rows, where, z_cache

  # ------------------------------------------------------------------ running

  def _run(self, rows: List[_Row]) -> List[np.ndarray]:
    """Per row, its query losses, running rows in bucketed batches."""
    groups = collections.defaultdict(list)
    for r, row in enumerate(rows):
      shape = (_bucket(len(row.tokens), self.config.length_buckets),
               _pow2(len(row.positions)), _pow2(len(row.queries), floor=1))
      groups[shape].append(r)
    out = [None] * len(rows)
    for (length, p, q), members in sorted(groups.items()):
      for start in range(0, len(members), self.rows_per_batch):
        batch = members[start:start + self.rows_per_batch]
        # A power of two up to rows_per_batch (a multiple of the data axis).
        size = min(self.rows_per_batch, max(self.data_size, _pow2(len(batch), floor=1)))
        size = -(-size // self.data_size) * self.data_size
        tokens = np.zeros((size, length), np.int32)
        positions = np.zeros((size, p), np.int32)
        targets = np.zeros((size, p), np.int32)
        weights = np.zeros((size, q, p), np.float32)
        for b, r in enumerate(batch):
          row = rows[r]
          tokens[b, :len(row.tokens)] = row.tokens
          positions[b, :len(row.positions)] = row.positions
          targets[b, :len(row.targets)] = row.targets
          for qi, terms in enumerate(row.queries):
            for pi, w in terms:
              weights[b, qi, pi] = w
        losses = np.asarray(self._kernel(self.params, *self._place(
            (tokens, positions, targets, weights))))
        self.compiled_shapes.add((size, length, p, q))
        self.forwards += len(batch)
        for b, r in enumerate(batch):
          out[r] = losses[b, :len(rows[r].queries)]
    return out

  def _inline_losses(self, documents, candidates, z_ids) -> Dict[Tuple, float]:
    """{(doc, z, i): L_i(z)} in inline mode (z = '' from the document's own forward)."""
    w = self.weights
    out = {}
    docs = sorted({c.doc for c in candidates}, key=str)
    per_batch = self.rows_per_batch
    for first in range(0, len(docs), per_batch):
      batch_docs = docs[first:first + per_batch]
      longest = max(len(documents[d]) for d in batch_docs)
      length = _bucket(longest + 1, self.config.length_buckets)
      extend_width = _pow2(max(len(z_ids[z]) for z in z_ids) + self.config.window)
      tokens = np.zeros((per_batch, length), np.int32)
      targets = np.zeros((per_batch, length), np.int32)
      for b, d in enumerate(batch_docs):
        ids = list(documents[d])
        tokens[b, :len(ids) + 1] = [START_ID] + ids
        targets[b, :len(ids)] = ids
      doc_log_probs, cache = self._inline_prefill(self.params, tokens, targets,
                                                  length + extend_width)
      doc_log_probs = np.asarray(doc_log_probs)
      self.forwards += len(batch_docs)
      slot = {d: b for b, d in enumerate(batch_docs)}
      jobs = []
      for c in candidates:
        if c.doc not in slot:
          continue
        ids, i = documents[c.doc], c.token_position
        terms = [(t, wt) for t, wt in enumerate(w) if i + t < len(ids)]
        out[(c.doc, "", i)] = -sum(wt * doc_log_probs[slot[c.doc], i + t] for t, wt in terms)
        for z in (c.prefix_call, c.prefix_call_result):
          if (c.doc, z, i) not in out:
            out[(c.doc, z, i)] = None
            jobs.append((c.doc, z, i, terms))
      width = self.config.window
      for start in range(0, len(jobs), self.rows_per_batch):
        chunk = jobs[start:start + self.rows_per_batch]
        n = self.rows_per_batch
        source = np.zeros((n,), np.int32)
        index = np.zeros((n,), np.int32)
        row_tokens = np.zeros((n, extend_width), np.int32)
        lengths = np.zeros((n,), np.int32)
        positions = np.zeros((n, width), np.int32)
        row_targets = np.zeros((n, width), np.int32)
        weights = np.zeros((n, width), np.float32)
        for r, (d, z, i, terms) in enumerate(chunk):
          ids, zi = documents[d], z_ids[z]
          new = zi + list(ids[i:i + width])
          source[r], index[r] = slot[d], 1 + i
          row_tokens[r, :len(new)], lengths[r] = new, len(new)
          for k, (t, wt) in enumerate(terms):
            positions[r, k] = len(zi) + t - 1  # logits before x_{i+t}
            row_targets[r, k] = ids[i + t]
            weights[r, k] = wt
        losses = np.asarray(self._inline_kernel(self.params, cache, source, index,
                                                row_tokens, lengths, positions,
                                                row_targets, weights))
        self.forwards += len(chunk)
        self.compiled_shapes.add(("inline", n, length, extend_width))
        for r, (d, z, i, _) in enumerate(chunk):
          out[(d, z, i)] = float(losses[r])
    return out

  def score(self, documents: Mapping[Hashable, Sequence[int]],
            candidates: Sequence[Candidate]) -> List[Scores]:
    """Scores every candidate; `documents` maps each candidate's `doc` to ids(x)."""
    if not candidates:
      return []
    for c in candidates:
      n = len(documents[c.doc])
      if not 0 <= c.token_position < n:
        raise ValueError(f"candidate at token {c.token_position} of a {n}-token document")
    if self.config.mode == "inline":
      z_ids = {z: list(self.tokenize(z)) for c in candidates
               for z in (c.prefix_call, c.prefix_call_result)}
      inline = self._inline_losses(documents, candidates, z_ids)
      loss = lambda doc, z, i: inline[(doc, z, i)]
    else:
      rows, where, z_ids = self.plan(documents, candidates)
      losses = self._run(rows)

      def loss(doc, z, i):
        r, q = where[(doc, z, i)]
        return float(losses[r][q])

    cfg = self.config
    scores = []
    for c in candidates:
      empty = loss(c.doc, "", c.token_position)
      call = loss(c.doc, c.prefix_call, c.token_position)
      call_result = loss(c.doc, c.prefix_call_result, c.token_position)
      minus, plus = min(empty, call), call_result
      call_tokens = len(z_ids[c.prefix_call_result])
      threshold = cfg.tau_f + cfg.cost_lambda * call_tokens
      scores.append(Scores(loss_empty=empty, loss_call=call, loss_call_result=call_result,
                           loss_minus=minus, loss_plus=plus, call_tokens=call_tokens,
                           kept=bool(minus - plus >= threshold)))
    return scores


def data_mesh(num_partitions: int = 1) -> Mesh:
  """The project's ('data', 'model') mesh over every device (rows shard on `data`)."""
  return partitioning.make_mesh(num_partitions)
