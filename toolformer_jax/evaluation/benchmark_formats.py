"""Readers of the paper's benchmark files (and their usual successors), each in the format
its authors publish. Nothing is downloaded: every reader takes a local path.

Each reader returns `Example`s (benchmark_files.py, with `FormatError` and the file layer)
in file order and counts what it read in a `corpora.ReadStats`. One record that does not
fit the format is counted under its reason, named (file and line, or list index; the
first few are logged) and skipped. A file of another kind fails at once with
`FormatError`, whose message names the expected format: a jsonl file where one JSON
document is expected (or a JSON list where jsonl is), a file that is not JSON, a JSON
document of another shape, or a file none of whose records fits. A missing file raises
FileNotFoundError naming the format as well.

  read_svamp     SVAMP.json (Patel et al. 2021): one JSON list of {"ID", "Body",
                 "Question", "Equation", "Answer", "Type"}; the question is Body + " " +
                 Question, the answer a number.
  read_mawps     MAWPS (Koncel-Kedziorski et al. 2016): JSON lists of {"iIndex",
                 "sQuestion", "lEquations", "lSolutions"} (a file, or a folder of them);
                 a problem with several solutions is skipped (several_answers).
  read_gsm8k     GSM8K's test.jsonl (Cobbe et al. 2021): {"question", "answer"}, the
                 answer the number after its final "#### ".
  read_lama      LAMA (Petroni et al. 2019), jsonl per relation or source (a file, or the
                 folder of data.zip): {"sub_label", "obj_label", "masked_sentences": [...]}
                 (SQuAD, Google-RE, ConceptNet; "obj_aliases" accepted too) or T-REx's
                 {"obj_label", "evidences": [{"masked_sentence"}]}. Kept: records with a
                 sentence whose one [MASK] is its last token (closing punctuation aside),
                 the paper's filter; the others are counted as mask_not_last. The subset
                 (squad, google_re, trex, conceptnet) comes from the path (LAMA's folders
                 Squad, Google_RE, TREx, ConceptNet), else the caller, else the records; a
                 subset given with a folder keeps that subset's files.
  read_nq_open   Natural Questions open (NQ-open.dev.jsonl, Lee et al. 2019):
                 {"question", "answer": [...]}.
  read_triviaqa  TriviaQA's qa/*.json (Joshi et al. 2017): {"Data": [{"QuestionId",
                 "Question", "Answer": {"Value", "Aliases", "NormalizedAliases"}}]}; every
                 alias is an answer.
  read_webqs     WebQuestions (Berant et al. 2013), webquestions.examples.test.json: one
                 JSON list of {"utterance", "targetValue": "(list (description X) ...)"}.
  read_mlqa      MLQA (Lewis et al. 2020), SQuAD v1.1 json: {"data": [{"paragraphs":
                 [{"context", "qas": [{"id", "question", "answers": [{"text"}]}]}]}]}; the
                 split and languages come from the file name
                 (<split>-context-<lang>-question-<lang>.json); a folder gives its files
                 with English contexts and questions in another language (the paper's).
  read_templama  TempLAMA (Dhingra et al. 2022) jsonl: {"query" with "_X_", "answer":
                 [{"name"}], "date"}; kept as LAMA's: "_X_" the query's last token.

Pure Python: no TensorFlow, seqio or t5x (toolformer_tasks registers the tasks).
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

from toolformer_jax import corpora
from toolformer_jax.evaluation import benchmark_files as files

# Skip reasons (besides corpora's malformed_json, not_an_object and missing_<field>).
BAD_ANSWER = "bad_answer"  # no answer that can be scored (not a number, no words)
SEVERAL_ANSWERS = "several_answers"  # math: more than one solution (the first-number rule)
NO_FINAL_ANSWER = "no_final_answer"  # GSM8K: no "#### N"
MASK_NOT_LAST = "mask_not_last"  # LAMA/TempLAMA: no sentence ends with its one blank
BAD_TARGET_VALUE = "bad_target_value"  # WebQuestions: no (description ...) in targetValue

LAMA_SUBSETS = ("squad", "google_re", "trex", "conceptnet")
LAMA_MASK = "[MASK]"
TEMPLAMA_BLANK = "_X_"
LAMA_SKIPPED_FILES = ("relations.jsonl",)  # data.zip's relation templates: no facts
MLQA_LANGUAGES = ("en", "es", "de", "ar", "hi", "vi", "zh")

SVAMP_FORMAT = ('SVAMP.json: one JSON list of {"ID", "Body", "Question", "Equation", '
                '"Answer", "Type"}')
MAWPS_FORMAT = ('MAWPS: JSON lists of {"iIndex", "sQuestion", "lEquations", "lSolutions"} '
                '(a .json file or a folder of them)')
GSM8K_FORMAT = 'GSM8K test.jsonl: one {"question", "answer": "... #### N"} per line'
LAMA_FORMAT = ('LAMA jsonl: one {"sub_label", "obj_label", "masked_sentences": [...]} (or '
               'T-REx\'s "evidences": [{"masked_sentence"}]) per line (a file, or the '
               'folder of data.zip)')
NQ_OPEN_FORMAT = 'NQ-open.dev.jsonl: one {"question", "answer": [...]} per line'
TRIVIAQA_FORMAT = ('TriviaQA qa/*.json: one JSON object {"Data": [{"Question", "Answer": '
                   '{"Value", "Aliases", "NormalizedAliases"}}]}')
WEBQS_FORMAT = ('WebQuestions webquestions.examples.test.json: one JSON list of '
                '{"utterance", "targetValue": "(list (description ...))"}')
MLQA_FORMAT = ('MLQA <split>-context-<lang>-question-<lang>.json: SQuAD v1.1 json {"data": '
               '[{"paragraphs": [{"context", "qas": [{"id", "question", "answers": '
               '[{"text"}]}]}]}]}')
TEMPLAMA_FORMAT = ('TempLAMA jsonl: one {"query": "... _X_.", "answer": [{"name"}], "date"} '
                   'per line')


# --- math ----------------------------------------------------------------------------------
def read_svamp(path: str, stats: corpora.ReadStats) -> List[files.Example]:
  data = files.json_list(path, SVAMP_FORMAT)
  check, out = files.FileCheck(path, stats, SVAMP_FORMAT), []
  for index, record in enumerate(data):
    where = files.where(path, index)
    if not isinstance(record, dict):
      stats.skip(corpora.NOT_AN_OBJECT, where)
      continue
    fields = corpora.required_strings(record, ("Body", "Question"), stats, where)
    if fields is None:
      continue
    answer = files.number_answer(record.get("Answer"))
    if answer is None:
      stats.skip(BAD_ANSWER, where)
      continue
    check.fitting += 1
    stats.count_read()
    out.append(files.Example(id=files.record_id(record.get("ID"), f"svamp-{index}"),
                             question=files.text(f"{fields[0]} {fields[1]}"),
                             answers=(answer,)))
  check.done()
  return out


def read_mawps(path: str, stats: corpora.ReadStats) -> List[files.Example]:
  out = []
  for file in files.files_of(path, "*.json", MAWPS_FORMAT):
    data = files.json_list(file, MAWPS_FORMAT)
    check = files.FileCheck(file, stats, MAWPS_FORMAT)
    stem = os.path.splitext(os.path.basename(file))[0]
    for index, record in enumerate(data):
      where = files.where(file, index)
      if not isinstance(record, dict):
        stats.skip(corpora.NOT_AN_OBJECT, where)
        continue
      fields = corpora.required_strings(record, ("sQuestion",), stats, where)
      if fields is None:
        continue
      solutions = record.get("lSolutions")
      if not isinstance(solutions, list) or not solutions:
        stats.skip(corpora.missing("lSolutions"), where)
        continue
      if len(solutions) > 1:
        check.fitting += 1
        stats.skip(SEVERAL_ANSWERS, where)
        continue
      answer = files.number_answer(solutions[0])
      if answer is None:
        stats.skip(BAD_ANSWER, where)
        continue
      check.fitting += 1
      stats.count_read()
      number = files.record_id(record.get("iIndex"), str(index))
      out.append(files.Example(id=f"{stem}-{number}", question=files.text(fields[0]),
                               answers=(answer,)))
    check.done()
  return out


def read_gsm8k(path: str, stats: corpora.ReadStats) -> List[files.Example]:
  check, out = files.FileCheck(path, stats, GSM8K_FORMAT), []
  name = os.path.basename(path)
  for number, record in files.jsonl(path, stats, GSM8K_FORMAT):
    where = files.line(path, number)
    fields = corpora.required_strings(record, ("question", "answer"), stats, where)
    if fields is None:
      continue
    _, marker, final = fields[1].rpartition("####")
    if not marker:
      stats.skip(NO_FINAL_ANSWER, where)
      continue
    answer = files.number_answer(final.strip())
    if answer is None:
      stats.skip(BAD_ANSWER, where)
      continue
    check.fitting += 1
    stats.count_read()
    out.append(files.Example(id=f"{name}:{number}", question=files.text(fields[0]),
                             answers=(answer,)))
  check.done()
  return out


# --- LAMA ----------------------------------------------------------------------------------
_LAMA_PATH_KEYS = (("googlere", "google_re"), ("trex", "trex"), ("squad", "squad"),
                   ("conceptnet", "conceptnet"))


def lama_subset_of_path(path: str) -> Optional[str]:
  """The LAMA subset a path names (its deepest folder or file name that names one)."""
  for part in reversed(os.path.normpath(str(path)).split(os.sep)):
    key = re.sub(r"[^a-z0-9]", "", part.lower())
    for word, subset in _LAMA_PATH_KEYS:
      if word in key:
        return subset
  return None


def _lama_subset_of_record(record: Dict[str, Any]) -> Optional[str]:
  if "predicate_id" in record:
    return "trex"
  if str(record.get("pred", "")).startswith("/people/"):
    return "google_re"
  if record.get("sub_label") == "Squad":
    return "squad"
  return None


def _lama_sentences(record: Dict[str, Any]) -> Optional[List[str]]:
  sentences = record.get("masked_sentences")
  if sentences is None and isinstance(record.get("evidences"), list):
    sentences = [e.get("masked_sentence") for e in record["evidences"] if isinstance(e, dict)]
  if not isinstance(sentences, list):
    return None
  sentences = [s for s in sentences if isinstance(s, str) and LAMA_MASK in s]
  return sentences or None


def read_lama(path: str, stats: corpora.ReadStats, subset: Optional[str] = None
              ) -> List[files.Example]:
  if subset is not None and subset not in LAMA_SUBSETS:
    raise ValueError(f"unknown LAMA subset {subset!r}; known: {', '.join(LAMA_SUBSETS)}")
  paths = [f for f in files.files_of(path, "*.jsonl", LAMA_FORMAT)
           if os.path.basename(f) not in LAMA_SKIPPED_FILES]
  out = []
  for file in paths:
    file_subset = lama_subset_of_path(file)
    if subset is not None and file_subset not in (None, subset):
      if len(paths) > 1:
        continue  # a folder: another subset's file
      raise files.FormatError(f"{file} is a LAMA {file_subset} file, not {subset}")
    file_subset = file_subset or subset
    check = files.FileCheck(file, stats, LAMA_FORMAT)
    name = os.path.basename(file)
    for number, record in files.jsonl(file, stats, LAMA_FORMAT):
      where = files.line(file, number)
      if corpora.required_strings(record, ("obj_label",), stats, where) is None:
        continue
      sentences = _lama_sentences(record)
      if sentences is None:
        stats.skip(corpora.missing("masked_sentences"), where)
        continue
      aliases = record.get("obj_aliases")
      aliases = aliases if isinstance(aliases, list) else []
      answers = files.word_answers([record["obj_label"]] + aliases)
      if not answers:
        stats.skip(BAD_ANSWER, where)
        continue
      check.fitting += 1
      prefixes = (files.cloze_prefix(s, LAMA_MASK) for s in sentences)
      prefix = next((p for p in prefixes if p), None)
      if prefix is None:
        stats.skip(MASK_NOT_LAST, where)
        continue
      if file_subset is None:
        file_subset = _lama_subset_of_record(record)
        if file_subset is None:
          raise files.FormatError(
              f"{file}: cannot tell its LAMA subset; name it (lama_squad, lama_google_re, "
              f"lama_trex, lama_conceptnet) or keep LAMA's folder names (Squad, Google_RE, "
              f"TREx, ConceptNet)")
      stats.count_read()
      record_id = files.record_id(record.get("uuid", record.get("id")), f"{name}:{number}")
      out.append(files.Example(id=record_id, question=prefix, answers=answers,
                               subset=file_subset))
    check.done()
  return out


# --- open-domain QA ------------------------------------------------------------------------
def read_nq_open(path: str, stats: corpora.ReadStats) -> List[files.Example]:
  check, out = files.FileCheck(path, stats, NQ_OPEN_FORMAT), []
  name = os.path.basename(path)
  for number, record in files.jsonl(path, stats, NQ_OPEN_FORMAT):
    where = files.line(path, number)
    fields = corpora.required_strings(record, ("question",), stats, where)
    if fields is None:
      continue
    answers = record.get("answer")
    answers = files.word_answers(answers) if isinstance(answers, list) else ()
    if not answers:
      stats.skip(BAD_ANSWER, where)
      continue
    check.fitting += 1
    stats.count_read()
    out.append(files.Example(id=f"{name}:{number}", question=files.text(fields[0]),
                             answers=answers))
  check.done()
  return out


def read_triviaqa(path: str, stats: corpora.ReadStats) -> List[files.Example]:
  data = files.load_json(path, TRIVIAQA_FORMAT)
  if not isinstance(data, dict) or not isinstance(data.get("Data"), list):
    raise files.FormatError(f"{path} has no \"Data\" list; expected {TRIVIAQA_FORMAT}")
  check, out = files.FileCheck(path, stats, TRIVIAQA_FORMAT), []
  for index, record in enumerate(data["Data"]):
    where = files.where(path, index)
    if not isinstance(record, dict):
      stats.skip(corpora.NOT_AN_OBJECT, where)
      continue
    fields = corpora.required_strings(record, ("Question",), stats, where)
    if fields is None:
      continue
    answer = record.get("Answer")
    if not isinstance(answer, dict):  # the test files ship without answers
      stats.skip(corpora.missing("Answer"), where)
      continue
    values = [answer.get("Value")]
    for key in ("Aliases", "NormalizedAliases"):
      if isinstance(answer.get(key), list):
        values += answer[key]
    answers = files.word_answers(values)
    if not answers:
      stats.skip(BAD_ANSWER, where)
      continue
    check.fitting += 1
    stats.count_read()
    out.append(files.Example(id=files.record_id(record.get("QuestionId"), f"triviaqa-{index}"),
                             question=files.text(fields[0]), answers=answers))
  check.done()
  return out


# (description X) or (description "X Y"), with \" and \\ escapes inside quotes.
_DESCRIPTION_RE = re.compile(r'\(description\s+(?:"((?:[^"\\]|\\.)*)"|([^()\s"]+))\s*\)')


def webqs_answers(target_value: str) -> List[str]:
  """The descriptions of a WebQuestions targetValue, '(list (description X) ...)'."""
  if not target_value.strip().startswith("(list"):
    return []
  return [re.sub(r"\\(.)", r"\1", m.group(1)) if m.group(1) is not None else m.group(2)
          for m in _DESCRIPTION_RE.finditer(target_value)]


def read_webqs(path: str, stats: corpora.ReadStats) -> List[files.Example]:
  data = files.json_list(path, WEBQS_FORMAT)
  check, out = files.FileCheck(path, stats, WEBQS_FORMAT), []
  for index, record in enumerate(data):
    where = files.where(path, index)
    if not isinstance(record, dict):
      stats.skip(corpora.NOT_AN_OBJECT, where)
      continue
    fields = corpora.required_strings(record, ("utterance", "targetValue"), stats, where)
    if fields is None:
      continue
    answers = files.word_answers(webqs_answers(fields[1]))
    if not answers:
      stats.skip(BAD_TARGET_VALUE, where)
      continue
    check.fitting += 1
    stats.count_read()
    out.append(files.Example(id=f"webqs-{index}", question=files.text(fields[0]),
                             answers=answers))
  check.done()
  return out


# --- MLQA ----------------------------------------------------------------------------------
_MLQA_NAME_RE = re.compile(r"(?P<split>[a-z]+)-context-(?P<context>[a-z]{2})-question-"
                           r"(?P<question>[a-z]{2})\.json$")


def mlqa_languages(path: str) -> Tuple[str, str, str]:
  """(split, context language, question language) from an MLQA file name."""
  m = _MLQA_NAME_RE.search(os.path.basename(path))
  if m is None:
    raise files.FormatError(f"{path}: an MLQA file's name gives its languages, e.g. "
                      f"test-context-en-question-es.json; expected {MLQA_FORMAT}")
  return m.group("split"), m.group("context"), m.group("question")


def mlqa_files(path: str, language: Optional[str] = None) -> List[str]:
  """The MLQA file `path`, or a folder's files with English contexts and questions in
  another language (`language` alone if given)."""
  if not os.path.isdir(os.path.expanduser(str(path))):
    return files.files_of(path, "*.json", MLQA_FORMAT)
  paths = []
  for file in files.files_of(path, "*-context-*-question-*.json", MLQA_FORMAT):
    _, context, question = mlqa_languages(file)
    if context == "en" and question != "en" and language in (None, question):
      paths.append(file)
  if not paths:
    raise FileNotFoundError(f"{path} holds no MLQA file with English contexts and "
                            f"questions in {language or 'another language'}; expected "
                            f"{MLQA_FORMAT}")
  return paths


def _mlqa_paragraphs(data: Any, path: str, stats: corpora.ReadStats
                     ) -> Iterator[Tuple[str, str, Any]]:
  """(label, context, qas) of each paragraph of a SQuAD v1.1 document ('data 0 paragraph
  3': where it is)."""
  for a, article in enumerate(data["data"]):
    paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
    if not isinstance(paragraphs, list):
      stats.skip(corpora.missing("paragraphs"), files.where(path, f"data {a}"))
      continue
    for p, paragraph in enumerate(paragraphs):
      label = f"data {a} paragraph {p}"
      if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
        stats.skip(corpora.missing("qas"), files.where(path, label))
        continue
      where = files.where(path, label)
      if corpora.required_strings(paragraph, ("context",), stats, where) is None:
        continue
      yield label, paragraph["context"], paragraph["qas"]


def read_mlqa(path: str, stats: corpora.ReadStats, language: Optional[str] = None
              ) -> List[files.Example]:
  out = []
  for file in mlqa_files(path, language):
    split, _, question_language = mlqa_languages(file)
    if language is not None and question_language != language:
      raise files.FormatError(f"{file} holds questions in {question_language!r}, not "
                              f"{language!r}")
    subset = f"{split}_{question_language}"
    data = files.load_json(file, MLQA_FORMAT)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
      raise files.FormatError(f"{file} has no \"data\" list; expected {MLQA_FORMAT}")
    check = files.FileCheck(file, stats, MLQA_FORMAT)
    for label, context, qas in _mlqa_paragraphs(data, file, stats):
      for q, qa in enumerate(qas):
        qa_where = files.where(file, f"{label} question {q}")
        if not isinstance(qa, dict):
          stats.skip(corpora.NOT_AN_OBJECT, qa_where)
          continue
        if corpora.required_strings(qa, ("question",), stats, qa_where) is None:
          continue
        answers = qa.get("answers")
        answers = files.word_answers([a.get("text") for a in answers if isinstance(a, dict)]
                               if isinstance(answers, list) else [])
        if not answers:
          stats.skip(BAD_ANSWER, qa_where)
          continue
        check.fitting += 1
        stats.count_read()
        out.append(files.Example(
            id=files.record_id(qa.get("id"), f"{subset}-{len(out)}"),
            question=files.text(qa["question"]), answers=answers, subset=subset,
            context=files.text(context), language=question_language))
    check.done()
  return out


# --- TempLAMA ------------------------------------------------------------------------------
def read_templama(path: str, stats: corpora.ReadStats) -> List[files.Example]:
  check, out = files.FileCheck(path, stats, TEMPLAMA_FORMAT), []
  name = os.path.basename(path)
  for number, record in files.jsonl(path, stats, TEMPLAMA_FORMAT):
    where = files.line(path, number)
    if corpora.required_strings(record, ("query",), stats, where) is None:
      continue
    date = record.get("date")
    if isinstance(date, bool) or not isinstance(date, (str, int)) or not str(date).strip():
      stats.skip(corpora.missing("date"), where)
      continue
    answers = record.get("answer")
    answers = files.word_answers([a.get("name") for a in answers if isinstance(a, dict)]
                           if isinstance(answers, list) else [])
    if not answers:
      stats.skip(BAD_ANSWER, where)
      continue
    check.fitting += 1
    prefix = files.cloze_prefix(record["query"], TEMPLAMA_BLANK)
    if prefix is None:
      stats.skip(MASK_NOT_LAST, where)
      continue
    stats.count_read()
    out.append(files.Example(id=files.record_id(record.get("id"), f"{name}:{number}"),
                             question=prefix, answers=answers, date=str(date).strip()))
  check.done()
  return out
