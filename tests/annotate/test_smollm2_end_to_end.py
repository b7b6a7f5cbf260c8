"""End to end on the embedded default: SmolLM2-135M annotates bundled Wikipedia leads and
generated documents with every tool, and the SeqIO mixture yields exactly what it kept.

Slow (SmolLM2 on CPU): a small corpus and few positions and samples per tool; the full
default run is `python -m toolformer_jax.annotate --gin_file=runs/annotate_smollm2.gin`.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = ["Calculator", "Calendar", "WikiSearch", "QA", "MT"]


def _corpus(path):
  """8 generated arithmetic and 4 dated documents, 8 English and 4 Spanish leads."""
  import itertools  # pylint: disable=g-import-not-at-top
  from toolformer_jax import corpora  # pylint: disable=g-import-not-at-top
  from toolformer_jax.annotate import synthetic_docs  # pylint: disable=g-import-not-at-top
  stats = corpora.ReadStats("wikipedia")
  docs = [*itertools.islice(synthetic_docs.documents("arithmetic", 8), 8),
          *itertools.islice(synthetic_docs.documents("dated", 4), 4)]
  for language, n in (("en-us", 8), ("es-es", 4)):
    docs += itertools.islice(corpora.read_wikipedia(corpora.bundled_corpus_path(language),
                                                    stats, language=language[:2]), n)
  with open(path, "w") as f:
    for d in docs:
      f.write(json.dumps({"id": d.id, "text": d.text,
                          **({"date": d.date} if d.date else {})}) + "\n")
  return str(path)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_smollm2_annotation_feeds_the_seqio_mixture(tmp_path):
  out = tmp_path / "annotated"
  corpus = _corpus(tmp_path / "corpus.jsonl")
  small = {t: {"tau_s": 0.0, "top_k_positions": 2, "calls_per_position": 3} for t in TOOLS}
  small["Calculator"] = {"tau_s": 0.0, "top_k_positions": 5, "calls_per_position": 5,
                         "tau_f": 0.5}
  command = [sys.executable, "-m", "toolformer_jax.annotate", "--gin_search_paths=gin",
             "--gin_file=runs/annotate_smollm2.gin", f"--gin.ANNOTATE_DIR='{out}'",
             f"--gin.CORPUS='{corpus}'", f"--gin.TOOLS={TOOLS}",
             f"--gin.driver.run.tool_overrides={small}",
             "--gin.sampling.SamplingConfig.max_document_tokens=64",
             "--num_shards=2", "--quiet"]
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=3600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "annotated 24 documents in 2 shards" in result.stdout

  records = []
  for name in sorted(os.listdir(out)):
    if name.startswith("annotated-"):
      with open(out / name) as f:
        records += [json.loads(line) for line in f]
  with open(out / "report.json") as f:
    report = json.load(f)
  assert set(report["tools"]) == set(TOOLS)  # every tool reached the filter
  assert sum(e["scored"] for e in report["tools"].values()) > 0
  assert records, "nothing kept"  # the generated arithmetic gives the Calculator material

  import seqio  # pylint: disable=g-import-not-at-top
  import toolformer_tasks  # pylint: disable=g-import-not-at-top
  from toolformer_tasks import vocabularies  # pylint: disable=g-import-not-at-top
  vocabulary = vocabularies.smollm2_vocabulary()
  name = toolformer_tasks.toolformer_mixture(vocabulary, str(out))
  assert name == "toolformer_all_smollm2"
  mixture = seqio.get_mixture_or_task(name)
  kwargs = dict(sequence_length={"targets": 4096}, split="train", shuffle=False,
                num_epochs=1, use_cached=False)
  decode = lambda ex: vocabulary.decode([int(t) for t in ex["targets"] if t != 0])
  # A seqio mixture stops at its first exhausted task in a single epoch, so the kept
  # examples are read task by task; the mixture itself must yield some of them.
  texts = sorted(decode(ex) for task in mixture.tasks
                 for ex in task.get_dataset(**kwargs).as_numpy_iterator())
  expected = sorted(r["text"] for r in records)
  assert len(texts) == len(expected)
  for got, want in zip(texts, expected):
    assert got.startswith(want), (got[:200], want[:200])
    assert " [" in got and " -> " in got
  mixed = [decode(ex) for ex in mixture.get_dataset(**kwargs).as_numpy_iterator()]
  assert mixed and all(text in texts for text in mixed)
