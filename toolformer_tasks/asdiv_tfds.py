"""ASDiv as a TFDS dataset (`toolformer_asdiv`), built from the user's copy in a manual_dir.

ASDiv is CC BY-NC 4.0, so TFDS cannot download it: put ASDiv.xml (from
github.com/chaochun/nlu-asdiv-dataset) in a folder and build once,

    python -m toolformer_tasks.asdiv_tfds --manual_dir=/data/asdiv --data_dir=/data/tfds

after which the eval task reads the built dataset (a TFDS data_dir may be a bucket) with
`--gin.ASDIV_PATH="'tfds:/data/tfds'"` (eval_tasks.register_asdiv_task). The build keeps
the numeric problems that `toolformer_jax.evaluation.asdiv.read_asdiv` keeps, in file
order (one split, 'test'), and records what it read and skipped in the dataset's metadata
({'read': N, 'skipped': {reason: N}}).
"""
from __future__ import annotations

import argparse
import os
from typing import List, Optional

import numpy as np
import tensorflow_datasets as tfds

from toolformer_jax import corpora
from toolformer_jax.evaluation import asdiv

NAME = "toolformer_asdiv"
SPLIT = "test"
TFDS_PREFIX = "tfds:"
_TEXT = ("id", "body", "question", "answer_text", "solution_type", "formula")


# Run as a script, this file is __main__ besides toolformer_tasks.asdiv_tfds (which the
# package imports): only the package's copy registers the builder with TFDS.
class ToolformerAsdiv(tfds.core.GeneratorBasedBuilder,
                      skip_registration=__name__ == "__main__"):
  """ASDiv's problems with one numeric answer, from ASDiv.xml in manual_dir."""

  name = NAME
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "numeric ASDiv problems: id, body, question, answer, "
                            "answer_text, solution_type, formula, grade (-1: unknown)"}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Put ASDiv.xml (github.com/chaochun/nlu-asdiv-dataset, CC BY-NC 4.0) in a folder and pass
  it as the manual_dir (--manual_dir, DownloadConfig(manual_dir=...)) or with
  ${asdiv.ENV_PATH}.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    features = {k: tfds.features.Text() for k in _TEXT}
    features["answer"] = tfds.features.Scalar(dtype=np.float64)
    features["grade"] = tfds.features.Scalar(dtype=np.int32)
    return tfds.core.DatasetInfo(
        builder=self, description="ASDiv (Miao et al. 2020), the numeric problems.",
        features=tfds.features.FeaturesDict(features),
        homepage="https://github.com/chaochun/nlu-asdiv-dataset", disable_shuffling=True,
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    path = os.fspath(dl_manager.manual_dir)
    try:
      asdiv.resolve_path(path)
    except FileNotFoundError as e:
      raise FileNotFoundError(f"{e}\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}") from e
    return {SPLIT: self._generate_examples(path)}

  def _generate_examples(self, path: str):
    stats = corpora.ReadStats(NAME)
    for problem in asdiv.read_asdiv(path, stats):
      yield problem.id, {
          "id": problem.id, "body": problem.body, "question": problem.question,
          "answer": problem.answer, "answer_text": problem.answer_text,
          "solution_type": problem.solution_type, "formula": problem.formula,
          "grade": -1 if problem.grade is None else problem.grade}
    self.info.metadata["read"] = stats.read
    self.info.metadata["skipped"] = dict(sorted(stats.skipped_by_reason.items()))
    stats.log_summary()


def build(data_dir: Optional[str] = None, manual_dir: Optional[str] = None
          ) -> tfds.core.DatasetBuilder:
  """The builder in data_dir, built from manual_dir (or $TOOLFORMER_ASDIV_PATH) if needed."""
  builder = tfds.builder(NAME, data_dir=os.path.expanduser(data_dir) if data_dir else None)
  if not builder.is_prepared():
    manual_dir = manual_dir or os.environ.get(asdiv.ENV_PATH)
    if manual_dir and os.path.isfile(manual_dir):
      manual_dir = os.path.dirname(manual_dir)
    config = (tfds.download.DownloadConfig(manual_dir=os.path.expanduser(manual_dir))
              if manual_dir else None)
    builder.download_and_prepare(download_config=config)
  return builder


def read_problems(data_dir: Optional[str] = None) -> List[asdiv.Problem]:
  """The problems of the built dataset (built first from $TOOLFORMER_ASDIV_PATH if needed)."""
  builder = build(data_dir)
  problems = []
  for ex in tfds.as_numpy(builder.as_dataset(split=SPLIT, shuffle_files=False)):
    text = {k: ex[k].decode("utf-8") for k in _TEXT}
    grade = int(ex["grade"])
    problems.append(asdiv.Problem(
        id=text["id"], body=text["body"], question=text["question"],
        # tf.Example stores floats in 32 bits: the exact value comes from the text.
        answer=asdiv.answer_value(text["answer_text"]), answer_text=text["answer_text"],
        solution_type=text["solution_type"], formula=text["formula"],
        grade=None if grade < 0 else grade))
  return problems


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m toolformer_tasks.asdiv_tfds",
                                   description="Build the toolformer_asdiv TFDS dataset.")
  parser.add_argument("--manual_dir", required=True, help="folder with ASDiv.xml")
  parser.add_argument("--data_dir", default=None, help="TFDS data_dir (default: TFDS's)")
  args = parser.parse_args(argv)
  from toolformer_tasks import asdiv_tfds  # pylint: disable=g-import-not-at-top,import-self
  builder = asdiv_tfds.build(args.data_dir, args.manual_dir)
  print(f"{NAME}: {builder.info.splits[SPLIT].num_examples} problems in {builder.data_dir} "
        f"(skipped: {dict(builder.info.metadata.get('skipped', {}))})")


if __name__ == "__main__":
  main()
