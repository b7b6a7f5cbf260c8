r"""Annotate a corpus with API calls (Toolformer's self-supervised data generation).

  python -m toolformer_jax.annotate --gin_search_paths=gin \
      --gin_file=runs/annotate_smollm2.gin --gin.ANNOTATE_DIR="'/tmp/annotated'" \
      [--gin.CORPUS="'wikipedia+arithmetic'"] [--gin.TOOLS="['Calculator', 'Calendar']"] \
      [--gin.MAX_DOCUMENTS=200] [--gin.CHECKPOINT="'smollm2'"] \
      [--shard_index=I] [--num_shards=N] [--process_index=P --process_count=Q]

Writes, per corpus shard, annotated-*.jsonl (what the SeqIO tasks read),
candidates-*.jsonl.gz (every scored call) and manifest-*.json; reruns skip finished
shards. Ends with a one-line summary.
"""

from __future__ import annotations

from absl import app
from absl import flags

from toolformer_jax import gin_flags
import gin
import jax

_GIN_FILES = flags.DEFINE_multi_string("gin_file", [], "Gin files (searched in --gin_search_paths).")
_GIN_BINDINGS = flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings (also --gin.NAME=VALUE).")
_GIN_SEARCH_PATHS = flags.DEFINE_list("gin_search_paths", ["gin"], "Where gin files are looked up.")
_SHARD_INDEX = flags.DEFINE_integer("shard_index", None, "Run only this corpus shard.")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 1, "Corpus shards in all.")
_PROCESS_INDEX = flags.DEFINE_integer("process_index", 0, "This process (host) of a multi-host run.")
_PROCESS_COUNT = flags.DEFINE_integer("process_count", 1, "Processes (hosts) in all.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0; set for a multi-host run "
                                   "(jax.distributed.initialize)")
_MULTIPROCESS = flags.DEFINE_bool("multiprocess_gpu", False,
                                  "Accepted for launch/launch.py (t5x's flag name): with "
                                  "--coordinator_address every backend initializes "
                                  "jax.distributed.")
_QUIET = flags.DEFINE_bool("quiet", False, "No progress bars.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if _COORDINATOR.value:
    jax.distributed.initialize(_COORDINATOR.value, _PROCESS_COUNT.value, _PROCESS_INDEX.value)
  # Imported after jax.distributed.initialize: the pipeline's modules touch JAX on import.
  from toolformer_jax.annotate import driver  # pylint: disable=g-import-not-at-top
  for path in _GIN_SEARCH_PATHS.value:
    gin.add_config_file_search_path(path)
  gin.parse_config_files_and_bindings(_GIN_FILES.value, _GIN_BINDINGS.value)
  driver.run(shard_index=_SHARD_INDEX.value, num_shards=_NUM_SHARDS.value,
      process_index=_PROCESS_INDEX.value, process_count=_PROCESS_COUNT.value,
      progress=not _QUIET.value)


if __name__ == "__main__":
  gin_flags.run(main)
