"""The ASDiv reader on the real file (../shared/data/asdiv/ASDiv.xml, CC BY-NC: read, never
bundled) and on small files with bad records."""
import pathlib

import pytest

from toolformer_jax import corpora
from toolformer_jax.evaluation import asdiv
from toolformer_jax.evaluation import metrics

REPO = pathlib.Path(__file__).resolve().parents[2]
REAL = next((p for p in (REPO.parent / "shared/data/asdiv/ASDiv.xml",
                         pathlib.Path("/work/shared/data/asdiv/ASDiv.xml")) if p.is_file()), None)
needs_real = pytest.mark.skipif(REAL is None, reason="ASDiv.xml is not in ../shared/data/asdiv/ "
                                "(CC BY-NC, not bundled with the project)")


@needs_real
def test_reads_the_real_file():
  stats = corpora.ReadStats("asdiv")
  problems = asdiv.read_asdiv(str(REAL.parent), stats)  # a directory, like a manual_dir
  # 2,305 problems: 2,093 with one numeric answer; names, yes/no, times, ratios (122) and
  # several answers (90) are counted and skipped.
  assert (len(problems), stats.read, stats.skipped) == (2093, 2093, 212)
  assert dict(stats.skipped_by_reason) == {asdiv.NON_NUMERIC: 122, asdiv.SEVERAL_ANSWERS: 90}
  by_id = {p.id: p for p in problems}
  first = by_id["nluds-0001"]
  assert (first.body, first.question, first.answer, first.solution_type, first.grade) == (
      "Seven red apples and two green apples are in the basket.",
      "How many apples are in the basket?", 9.0, "Addition", 1)
  assert by_id["nluds-0008"].answer == 4 and by_id["nluds-0008"].formula == "21-17=4"
  assert by_id["nluds-1312"].answer == 2.5 and by_id["nluds-1312"].answer_text == "5/2"
  assert by_id["nluds-1331"].answer == pytest.approx(-1 / 3)
  assert by_id["nluds-2305"].answer == 40
  assert "nluds-0030" not in by_id  # answer "Mrs. Hilt"
  assert "nluds-1427" not in by_id  # "8 (km/hour); 3 (km/hour)"
  items = asdiv.asdiv_items(str(REAL), count=3)
  assert items[0].inputs == ("Question: Seven red apples and two green apples are in the "
                             "basket. How many apples are in the basket?\nAnswer: The answer is")
  assert items[0].answers == ("9",) and items[0].match == metrics.NUMBER
  assert all(i.problem() is None for i in items)


def test_bad_records_are_counted_and_skipped(tmp_path):
  path = tmp_path / "ASDiv.xml"
  path.write_text("""<?xml version="1.0" encoding="UTF-8" ?>
<Machine-Reading-Corpus-File><ProblemSet>
  <Problem ID="a" Grade="2"><Body>Ann has 1,200 beads.</Body><Question>How many?</Question>
    <Answer>1,200 (beads)</Answer></Problem>
  <Problem ID="b"><Body>No question here.</Body><Answer>3</Answer></Problem>
  <Problem ID="c"><Body>B.</Body><Question>Who?</Question><Answer>Bryan</Answer></Problem>
  <Problem ID="d"><Body>Ratio.</Body><Question>What?</Question><Answer>3:4</Answer></Problem>
  <Problem ID="e"><Body>Half.</Body><Question>What?</Question><Answer>0.5</Answer></Problem>
</ProblemSet></Machine-Reading-Corpus-File>""")
  stats = corpora.ReadStats("tiny")
  problems = asdiv.read_asdiv(str(path), stats)
  assert [(p.id, p.answer) for p in problems] == [("a", 1200.0), ("e", 0.5)]
  assert dict(stats.skipped_by_reason) == {"missing_question": 1, asdiv.NON_NUMERIC: 2}


def test_path_from_the_environment_and_clear_errors(tmp_path, monkeypatch):
  monkeypatch.delenv(asdiv.ENV_PATH, raising=False)
  with pytest.raises(FileNotFoundError, match="not bundled"):
    asdiv.resolve_path(None)
  with pytest.raises(FileNotFoundError, match="not found"):
    asdiv.resolve_path(str(tmp_path))  # a directory without ASDiv.xml
  (tmp_path / asdiv.FILE_NAME).write_text("<x/>")
  monkeypatch.setenv(asdiv.ENV_PATH, str(tmp_path))
  assert asdiv.resolve_path(None) == str(tmp_path / asdiv.FILE_NAME)


@needs_real
def test_tfds_builder_from_a_manual_dir_and_the_task_reading_it(tmp_path, monkeypatch):
  from toolformer_tasks import asdiv_tfds  # pylint: disable=g-import-not-at-top
  from toolformer_tasks import eval_tasks  # pylint: disable=g-import-not-at-top
  from toolformer_tasks import vocabularies  # pylint: disable=g-import-not-at-top
  import seqio  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv(asdiv.ENV_PATH, raising=False)
  data_dir = tmp_path / "tfds"
  builder = asdiv_tfds.build(str(data_dir), manual_dir=str(REAL.parent))
  assert builder.info.splits[asdiv_tfds.SPLIT].num_examples == 2093
  assert dict(builder.info.metadata["skipped"]) == {asdiv.NON_NUMERIC: 122,
                                                    asdiv.SEVERAL_ANSWERS: 90}
  from_tfds = asdiv_tfds.read_problems(str(data_dir))
  assert from_tfds == asdiv.read_asdiv(str(REAL))  # the same problems, in file order
  name = eval_tasks.register_asdiv_task(vocabularies.gpt2_vocabulary(), f"tfds:{data_dir}",
                                        count=2)
  task = seqio.get_mixture_or_task(name)
  first = next(iter(task.get_dataset(None, split="validation", shuffle=False).as_numpy_iterator()))
  assert first["targets_pretokenized"] == b"9" and first["match"] == b"number"
