"""The benchmark files as SeqIO eval tasks (toolformer_tasks.eval_tasks, no t5x):
registered only when BENCHMARK_PATHS names them, one task per source, examples carrying
the gold answers and the paper's match; a wrong file fails at registration."""
import json

import pytest
import seqio

from benchmark_samples import SAMPLES, write_lama, write_nq_open, write_svamp
import toolformer_tasks
from toolformer_jax.evaluation import asdiv
from toolformer_jax.evaluation import benchmarks
from toolformer_jax.evaluation import metrics
from toolformer_tasks import eval_tasks
from toolformer_tasks import vocabularies

LENGTHS = {"inputs": 64, "targets": 8}


@pytest.fixture(scope="module")
def vocabulary():
  return vocabularies.gpt2_vocabulary()


def _examples(name):
  task = seqio.get_mixture_or_task(name)
  return list(task.get_dataset(LENGTHS, split=eval_tasks.SPLIT, shuffle=False)
              .as_numpy_iterator())


def test_benchmark_tasks_only_with_their_paths(vocabulary, tmp_path, monkeypatch):
  monkeypatch.delenv(asdiv.ENV_PATH, raising=False)
  assert not [n for n in seqio.TaskRegistry.names() if "svamp" in n or "lama" in n]
  paths = {"svamp": str(write_svamp(tmp_path)), "lama": str(write_lama(tmp_path)),
           "nq_open": str(write_nq_open(tmp_path))}
  mixture = toolformer_tasks.eval_mixture(vocabulary, tasks=[], benchmark_paths=paths,
                                          benchmark_num_examples=2, name="toolformer_eval_b")
  names = [t.name for t in seqio.get_mixture_or_task(mixture).tasks]
  assert sorted(names) == [
      "toolformer_eval_facts_lama_google_re", "toolformer_eval_facts_lama_squad",
      "toolformer_eval_facts_lama_trex", "toolformer_eval_math_svamp",
      "toolformer_eval_qa_nq_open"]
  assert [eval_tasks.family_of(n) for n in sorted(names)] == ["facts"] * 3 + ["math", "qa"]
  svamp = _examples("toolformer_eval_math_svamp")
  assert [e["id"].decode() for e in svamp] == ["math_svamp-chal-1", "math_svamp-chal-2"]
  nq = _examples("toolformer_eval_qa_nq_open")[0]
  assert nq["inputs_pretokenized"].decode() == (
      "Question: who painted the test portrait?\nAnswer: The answer is")
  assert metrics.postprocess(nq["targets_pretokenized"], example=nq, is_target=True) == {
      "answers": ["Ada Example", "A. Example"], "match": metrics.QA_MATCH}
  lama = _examples("toolformer_eval_facts_lama_trex")[0]
  assert (lama["inputs_pretokenized"], json.loads(lama["answers"]), lama["match"]) == (
      b"The capital of Mockland is", ["Mockton"], b"words:5")


def test_a_wrong_file_fails_at_registration(vocabulary, tmp_path):
  wrong = tmp_path / "SVAMP.json"
  wrong.write_text('{"ID": 1, "Body": "x"}\n{"ID": 2, "Body": "y"}\n')
  with pytest.raises(benchmarks.FormatError, match="expected SVAMP.json: one JSON list"):
    toolformer_tasks.eval_mixture(vocabulary, tasks=[], benchmark_paths={"svamp": str(wrong)})
  with pytest.raises(FileNotFoundError, match="expected NQ-open.dev.jsonl"):
    toolformer_tasks.eval_mixture(vocabulary, tasks=[],
                                  benchmark_paths={"nq_open": str(tmp_path / "none.jsonl")})
  with pytest.raises(ValueError, match="unknown benchmark 'nq'"):
    toolformer_tasks.eval_mixture(vocabulary, tasks=[], benchmark_paths={"nq": "/x"})


def test_asdiv_by_benchmark_path_is_asdiv_path(vocabulary, tmp_path, monkeypatch):
  monkeypatch.delenv(asdiv.ENV_PATH, raising=False)
  path = tmp_path / asdiv.FILE_NAME
  path.write_text('<?xml version="1.0" ?><Machine-Reading-Corpus-File><ProblemSet>'
                  '<Problem ID="p1"><Body>Ann has 3 bags of 4 beads.</Body><Question>How '
                  'many beads?</Question><Answer>12 (beads)</Answer></Problem>'
                  '</ProblemSet></Machine-Reading-Corpus-File>')
  by_path = eval_tasks.register_asdiv_task(vocabulary, str(path))
  expected = [dict(e) for e in _examples(by_path)]
  mixture = toolformer_tasks.eval_mixture(vocabulary, tasks=["math"], num_generated=1,
                                          benchmark_paths={"asdiv": str(path)},
                                          name="toolformer_eval_asdiv_b")
  names = [t.name for t in seqio.get_mixture_or_task(mixture).tasks]
  assert names.count("toolformer_eval_math_asdiv") == 1
  got = _examples("toolformer_eval_math_asdiv")
  assert [e["inputs_pretokenized"] for e in got] == [e["inputs_pretokenized"] for e in expected]
  assert [e["id"] for e in got] == [b"math_asdiv-p1"]
  with pytest.raises(ValueError, match="name different files"):
    toolformer_tasks.eval_mixture(vocabulary, tasks=[], asdiv_path=str(tmp_path / "other"),
                                  benchmark_paths={"asdiv": str(path)})


@pytest.mark.parametrize("name", ["gsm8k", "mawps", "triviaqa", "webqs", "mlqa", "templama"])
def test_every_format_registers(vocabulary, name, tmp_path):
  path = SAMPLES[name].write(tmp_path)
  names = eval_tasks.register_benchmark_tasks(vocabulary, name, str(path))
  assert names == [eval_tasks.task_name(s, vocabulary)
                   for s in dict.fromkeys(e[0] for e in SAMPLES[name].examples)]
  first = _examples(names[0])[0]
  assert first["id"].decode() == f"{SAMPLES[name].examples[0][0]}-{SAMPLES[name].examples[0][1]}"
