"""The paper's benchmarks (and their usual successors) by name, read from the user's copies
of their published files: the reader, the zero-shot prompt, the metric, the paper's figure.

  name      family  task source              file, as its authors release it         match
  asdiv     math    math_asdiv               ASDiv.xml (asdiv.py)                    number
  svamp     math    math_svamp               SVAMP.json                              number
  mawps     math    math_mawps               MAWPS *.json (a file or a folder)       number
  gsm8k     math    math_gsm8k               GSM8K test.jsonl (not in the paper)     number
  lama      facts   facts_lama_<subset>      LAMA data/<Subset>/*.jsonl              words:5
  nq_open   qa      qa_nq_open               NQ-open.dev.jsonl                       words:20
  triviaqa  qa      qa_triviaqa              TriviaQA qa/*-dev.json                  words:20
  webqs     qa      qa_webqs                 webquestions.examples.test.json         words:20
  mlqa      mlqa    mlqa_<split>_<lang>      MLQA_V1/<split>/<split>-context-en-     words:10
                                             question-<lang>.json (a file or folder)
  templama  dates   dates_templama           TempLAMA jsonl                          words:5

A benchmark with subsets also takes `<name>_<subset>` (lama_squad, lama_google_re,
lama_trex, lama_conceptnet; mlqa_es, mlqa_de, ...): the subset of a LAMA file the path
does not name, or the one question language of an MLQA folder.

Metrics, as the paper defines them (Schick et al. 2023, Sec. 4.2; metrics.py applies them):
  math (4.2.2)   the first number of the output is the answer ("number").
  LAMA (4.2.1)   the answer is within the first five words ("words:5"); only examples whose
                 [MASK] is the sentence's last token are kept, so that a left-to-right
                 model completes the statement.
  QA (4.2.3)     the answer is within the first 20 words ("words:20").
  MLQA (4.2.4)   the generation, capped at 10 words, contains the answer ("words:10").
  TempLAMA       the paper gives accuracy without a rule of its own; its cloze queries are
                 scored with the LAMA rule, and kept, as LAMA's, when "_X_" ends the query.
  GSM8K          not in the paper; the math rule.
Where the file lists several answers (TriviaQA's aliases, NQ's and WebQuestions' answer
lists, LAMA's obj_aliases, TempLAMA's answers) any of them counts.

Prompts (zero-shot): questions in the one question format of every eval task
(`items.question_prompt`: "Question: ...\\nAnswer: The answer is"); SVAMP's question is its
Body + " " + Question, as ASDiv's; MLQA's English paragraph comes before its question;
LAMA's statement is given up to its [MASK], TempLAMA's query up to its "_X_" after the
query's year ("In 2019, Cristiano Ronaldo plays for").

Tools: the paper takes WikiSearch away on LAMA (its statements are Wikipedia's) and QA on
the QA benchmarks (Atlas was fine-tuned on Natural Questions): `Benchmark.excluded_tools`,
which `generate --benchmark` applies and an eval run applies with --gin.TOOLS.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple
import xml.etree.ElementTree as ET

from toolformer_jax import corpora
from toolformer_jax.evaluation import asdiv
from toolformer_jax.evaluation import benchmark_files
from toolformer_jax.evaluation import benchmark_formats as formats
from toolformer_jax.evaluation import items as items_lib
from toolformer_jax.evaluation import metrics

Example = benchmark_files.Example
FormatError = benchmark_files.FormatError
MLQA_WORDS = 10  # MLQA: the generation capped at 10 words (Sec. 4.2.4)


# --- prompts -------------------------------------------------------------------------------
def _question(example: Example) -> str:
  return items_lib.question_prompt(example.question)


def _nq_question(example: Example) -> str:
  """NQ-open's questions are lower case without a question mark: one is added."""
  question = example.question.rstrip()
  return items_lib.question_prompt(question if question.endswith("?") else question + "?")


def _statement(example: Example) -> str:
  return example.question


def _dated_statement(example: Example) -> str:
  return f"In {example.date}, {example.question}"


def _mlqa_question(example: Example) -> str:
  return f"{example.context}\n{items_lib.question_prompt(example.question)}"


def _read_asdiv(path: str, stats: corpora.ReadStats) -> List[Example]:
  try:
    problems = asdiv.read_asdiv(path, stats)
  except ET.ParseError as e:
    raise FormatError(f"{path} is not XML ({e}); expected ASDiv.xml: <Problem> elements "
                      "with Body, Question and Answer") from None
  return [Example(id=p.id, question=p.text, answers=(items_lib.format_number(p.answer),))
          for p in problems]


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """One benchmark: how its file is read, prompted and scored."""

  name: str  # the name of BENCHMARK_PATHS and `generate --benchmark`
  family: str
  source: str  # the task source (with subsets: its prefix, '_<subset>' follows)
  match: str
  release: str  # the authors' file names and where they publish them
  reader: Callable[..., List[Example]]  # (path, stats[, subset]) -> examples
  prompt: Callable[[Example], str]
  subsets: Tuple[str, ...] = ()  # lama: the subsets; mlqa: question languages
  excluded_tools: Tuple[str, ...] = ()  # tools the paper takes away on this benchmark
  paper: Tuple[Tuple[str, str], ...] = ()  # (task source, the row of report.PAPER)

  def source_of(self, example: Example) -> str:
    return f"{self.source}_{example.subset}" if self.subsets else self.source

  def read(self, path: str, stats: corpora.ReadStats, subset: Optional[str] = None
           ) -> List[Example]:
    if self.subsets:
      return self.reader(path, stats, subset)
    return self.reader(path, stats)


_BENCHMARKS = (
    Benchmark("asdiv", items_lib.MATH, asdiv.NAME, metrics.NUMBER,
              "ASDiv.xml (Miao et al. 2020; github.com/chaochun/nlu-asdiv-dataset, "
              "dataset/ASDiv.xml; CC BY-NC)", _read_asdiv, _question,
              paper=((asdiv.NAME, "ASDiv"),)),
    Benchmark("svamp", items_lib.MATH, "math_svamp", metrics.NUMBER,
              "SVAMP.json (Patel et al. 2021; github.com/arkilpatel/SVAMP)",
              formats.read_svamp, _question, paper=(("math_svamp", "SVAMP"),)),
    Benchmark("mawps", items_lib.MATH, "math_mawps", metrics.NUMBER,
              "MAWPS's JSON lists (Koncel-Kedziorski et al. 2016; one file, or a folder "
              "of them)", formats.read_mawps, _question, paper=(("math_mawps", "MAWPS"),)),
    Benchmark("gsm8k", items_lib.MATH, "math_gsm8k", metrics.NUMBER,
              "grade_school_math/data/test.jsonl (Cobbe et al. 2021; "
              "github.com/openai/grade-school-math); not in the paper",
              formats.read_gsm8k, _question),
    Benchmark("lama", items_lib.FACTS, "facts_lama", metrics.FACT_MATCH,
              "LAMA's data.zip (Petroni et al. 2019; github.com/facebookresearch/LAMA): "
              "data/Squad/test.jsonl, data/Google_RE/*_test.jsonl, data/TREx/P*.jsonl "
              "(the folder, or one file)", formats.read_lama, _statement,
              subsets=formats.LAMA_SUBSETS, excluded_tools=("WikiSearch",),
              paper=(("facts_lama_squad", "LAMA SQuAD"),
                     ("facts_lama_google_re", "LAMA Google-RE"),
                     ("facts_lama_trex", "LAMA T-REx"))),
    Benchmark("nq_open", items_lib.QA, "qa_nq_open", metrics.QA_MATCH,
              "NQ-open.dev.jsonl (Lee et al. 2019; github.com/google-research-datasets/"
              "natural-questions, nq_open/)", formats.read_nq_open, _nq_question,
              excluded_tools=("QA",), paper=(("qa_nq_open", "NQ"),)),
    Benchmark("triviaqa", items_lib.QA, "qa_triviaqa", metrics.QA_MATCH,
              "TriviaQA's qa/*.json, e.g. qa/wikipedia-dev.json or "
              "triviaqa-unfiltered/unfiltered-web-dev.json (Joshi et al. 2017; "
              "nlp.cs.washington.edu/triviaqa)", formats.read_triviaqa, _question,
              excluded_tools=("QA",), paper=(("qa_triviaqa", "TriviaQA"),)),
    Benchmark("webqs", items_lib.QA, "qa_webqs", metrics.QA_MATCH,
              "webquestions.examples.test.json (Berant et al. 2013, the WebQuestions "
              "release of SEMPRE)", formats.read_webqs, _question, excluded_tools=("QA",),
              paper=(("qa_webqs", "WebQS"),)),
    Benchmark("mlqa", items_lib.MULTILINGUAL, "mlqa", metrics.words_spec(MLQA_WORDS),
              "MLQA_V1.zip (Lewis et al. 2020; github.com/facebookresearch/MLQA): "
              "MLQA_V1/test/test-context-en-question-<lang>.json (a file, or the folder)",
              formats.read_mlqa, _mlqa_question, subsets=formats.MLQA_LANGUAGES),
    Benchmark("templama", items_lib.DATES, "dates_templama", metrics.FACT_MATCH,
              "TempLAMA's test.json, jsonl (Dhingra et al. 2022; "
              "github.com/google-research/language, language/templama)",
              formats.read_templama, _dated_statement,
              paper=(("dates_templama", "TempLAMA"),)),
)
BENCHMARKS: Dict[str, Benchmark] = {b.name: b for b in _BENCHMARKS}
NAMES = tuple(BENCHMARKS)


def paper_rows() -> Dict[str, str]:
  """{task source: the name of its row in report.PAPER} of every benchmark the paper ran."""
  return {source: row for b in _BENCHMARKS for source, row in b.paper}


def parse_name(name: str) -> Tuple[Benchmark, Optional[str]]:
  """'svamp' -> (svamp, None); 'lama_trex' -> (lama, 'trex'); ValueError on others."""
  if not isinstance(name, str):
    raise ValueError(f"a benchmark name must be a string, got {name!r}")
  if name in BENCHMARKS:
    return BENCHMARKS[name], None
  base, _, subset = name.partition("_")
  benchmark = BENCHMARKS.get(base)
  if benchmark is not None and subset in benchmark.subsets:
    return benchmark, subset
  named = ", ".join(f"{b.name}_<{'|'.join(b.subsets)}>" for b in _BENCHMARKS if b.subsets)
  raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(NAMES)} (and {named})")


def check_paths(paths: Optional[Mapping[str, Any]]) -> Dict[str, str]:
  """BENCHMARK_PATHS checked: {name: path} with known names and non-blank paths."""
  if paths is None:
    return {}
  if not isinstance(paths, Mapping):
    raise ValueError(f"BENCHMARK_PATHS must be a dict {{name: path}}, got {paths!r}")
  out = {}
  for name, path in paths.items():
    parse_name(name)
    if not isinstance(path, str) or not path.strip():
      raise ValueError(f"BENCHMARK_PATHS[{name!r}] must be a path, got {path!r}")
    out[name] = os.path.expanduser(path.strip())
  return out


def read(name: str, path: str, subset: Optional[str] = None,
         stats: Optional[corpora.ReadStats] = None) -> Dict[str, List[Example]]:
  """{task source: examples in file order} of a benchmark file (or folder); fails now on a
  missing file or one of another format (FormatError naming the expected one)."""
  benchmark, named = parse_name(name)
  if subset is not None and named is not None and subset != named:
    raise ValueError(f"benchmark {name!r} names the subset {named!r}, not {subset!r}")
  subset = subset or named
  if subset is not None and subset not in benchmark.subsets:
    raise ValueError(f"benchmark {benchmark.name!r} has "
                     + (f"the subsets {', '.join(benchmark.subsets)}, not {subset!r}"
                        if benchmark.subsets else f"no subsets (got {subset!r})"))
  path = os.path.expanduser(str(path))
  own = stats is None
  stats = stats or corpora.ReadStats(f"{benchmark.name} {path}")
  examples = benchmark.read(path, stats, subset)
  if own:
    stats.log_summary()
  out: Dict[str, List[Example]] = {}
  for example in examples:
    out.setdefault(benchmark.source_of(example), []).append(example)
  if not out:
    raise FormatError(f"{path}: no {benchmark.name} example to evaluate ({stats.summary()})")
  return out


def to_item(benchmark: Benchmark, example: Example) -> items_lib.EvalItem:
  """The zero-shot eval item of one example (module docstring: prompt and match)."""
  return items_lib.EvalItem(
      id=f"{benchmark.source_of(example)}-{example.id}", inputs=benchmark.prompt(example),
      targets=example.answers[0], answers=tuple(example.answers), match=benchmark.match,
      family=benchmark.family, language=example.language)


def _first(examples: List[Example], count: Optional[int]) -> List[Example]:
  if count is None:
    return examples
  if isinstance(count, bool) or not isinstance(count, int) or count < 0:
    raise ValueError(f"a number of examples must be an int >= 0, got {count!r}")
  return examples[:count]


def eval_items(name: str, path: str, subset: Optional[str] = None,
               count: Optional[int] = None) -> Dict[str, List[items_lib.EvalItem]]:
  """{task source: eval items} of a benchmark file (the first `count` of each source)."""
  benchmark = parse_name(name)[0]
  out = {}
  for source, examples in read(name, path, subset).items():
    items = [to_item(benchmark, e) for e in _first(examples, count)]
    for item in items:
      problem = item.problem()
      if problem:  # the readers keep only scorable answers: this is a bug
        raise ValueError(f"{benchmark.name}: item {item.id} cannot be scored: {problem}")
    out[source] = items
  return out


def generate_records(name: str, path: str, subset: Optional[str] = None,
                     count: Optional[int] = None) -> List[Dict[str, Any]]:
  """`generate --benchmark` input records: {"id", "benchmark", "task", "question",
  "answers", "match", "inputs"} (+ "context" for MLQA, "date" for TempLAMA), the first
  `count` of each task source."""
  benchmark = parse_name(name)[0]
  records = []
  for source, examples in read(name, path, subset).items():
    for example in _first(examples, count):
      item = to_item(benchmark, example)
      record = {"id": item.id, "benchmark": benchmark.name, "task": source,
                "question": example.question, "answers": list(example.answers),
                "match": benchmark.match, "inputs": item.inputs}
      if example.context:
        record["context"] = example.context
      if example.date:
        record["date"] = example.date
      records.append(record)
  return records
