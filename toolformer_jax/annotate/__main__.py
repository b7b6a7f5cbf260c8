r"""Annotate a corpus with API calls (Toolformer's self-supervised data generation).

  python -m toolformer_jax.annotate --gin_search_paths=gin \
      --gin_file=runs/annotate_smollm2.gin --gin.ANNOTATE_DIR="'/tmp/annotated'" \
      [--gin.CORPUS="'wikipedia+arithmetic'"] [--gin.TOOLS="['Calculator', 'Calendar']"] \
      [--gin.MAX_DOCUMENTS=200] [--gin.CHECKPOINT="'smollm2'"] \
      [--shard_index=I] [--num_shards=N] [--process_index=P --process_count=Q]

Writes, per corpus shard, annotated-*.jsonl (what the SeqIO tasks read),
candidates-*.jsonl.gz (every scored call) and manifest-*.json; reruns skip finished
shards. Ends with a one-line summary.

A TFDS corpus (CORPUS part 'tfds:NAME[/CONFIG][:SPLIT]', `annotate.tfds_corpora`) is built
on first use; build it once ahead of a multi-process run (each process would otherwise race
to build the same dataset), which prints a one-line summary and annotates nothing:

  python -m toolformer_jax.annotate --prepare_tfds=ccnet --data_dir=D --manual_dir=DIR

Gin flags follow t5x (`toolformer_jax.cli`); gin files are looked up in ./gin, then the
repository's gin/, unless --gin_search_paths is given.
"""

from __future__ import annotations

from absl import app
from absl import flags
import jax

from toolformer_jax import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The CLI flags (defined only when run as a program: importing this module defines none)."""
  cli.define_gin_flags()
  flags.DEFINE_integer("shard_index", None, "Run only this corpus shard.")
  flags.DEFINE_integer("num_shards", 1, "Corpus shards in all.")
  flags.DEFINE_integer("process_index", 0, "This process (host) of a multi-host run.")
  flags.DEFINE_integer("process_count", 1, "Processes (hosts) in all.")
  flags.DEFINE_string("coordinator_address", None,
                      "host:port of process 0; set for a multi-host run "
                      "(jax.distributed.initialize)")
  flags.DEFINE_bool("multiprocess_gpu", False,
                    "Accepted for launch/launch.py (t5x's flag name): with "
                    "--coordinator_address every backend initializes jax.distributed.")
  flags.DEFINE_bool("quiet", False, "No progress bars.")
  flags.DEFINE_string(
      "prepare_tfds", None, "Only build (if needed) this TFDS corpus, NAME[/CONFIG] (ccnet, "
      "wikipedia_leads/CONFIG or any registered dataset), print a one-line summary and "
      "exit; annotates nothing.")
  flags.DEFINE_string("data_dir", None, "With --prepare_tfds: the TFDS data_dir (default: "
                      "$TOOLFORMER_TFDS_DATA_DIR or TFDS's).")
  flags.DEFINE_string("manual_dir", None, "With --prepare_tfds: the manual_dir (default: "
                      "$TOOLFORMER_TFDS_MANUAL_DIR or <data_dir>/downloads/manual).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if FLAGS.prepare_tfds is not None:
    from toolformer_jax.annotate import tfds_corpora  # pylint: disable=g-import-not-at-top
    print(tfds_corpora.build(FLAGS.prepare_tfds, FLAGS.data_dir, FLAGS.manual_dir))
    return
  if FLAGS.data_dir is not None or FLAGS.manual_dir is not None:
    raise app.UsageError("--data_dir and --manual_dir apply to --prepare_tfds only")
  if FLAGS.coordinator_address:
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.process_count,
                               FLAGS.process_index)
  # Imported after jax.distributed.initialize: the pipeline's modules touch JAX on import.
  from toolformer_jax.annotate import driver  # pylint: disable=g-import-not-at-top
  cli.parse_gin_flags()
  driver.run(shard_index=FLAGS.shard_index, num_shards=FLAGS.num_shards,
      process_index=FLAGS.process_index, process_count=FLAGS.process_count,
      progress=not FLAGS.quiet)


if __name__ == "__main__":
  define_flags()
  cli.run(main)
