"""SeqIO tasks and mixtures of toolformer_jax (import name `toolformer_tasks`).

Importing this package registers, for each available vocabulary (GPT-2/GPT-J under the
plain names, SmolLM2's gguf vocabulary with the suffix `_smollm2`):

  toolformer_lm_wiki   held-out Wikipedia LM task (splits train, validation): perplexity
                       eval, and the stand-in training data before annotation exists
  toolformer_<tool>    one per tool found in the annotated shards of
                       $TOOLFORMER_ANNOTATED_DIR (split train)
  toolformer_all       the mixture of the tool tasks; without annotated shards it falls
                       back to toolformer_lm_wiki (logged)
  toolformer_all_nocalls  the control: the same records with their calls removed
                       (toolformer_mixture(without_calls=True); gin WITHOUT_CALLS)
  toolformer_eval_*    the eval tasks (eval_tasks.py); `eval_mixture` builds the mixture
                       `toolformer_eval` that gin/runs/eval_tools.gin evaluates

The gin run files call `toolformer_mixture` / `lm_task` with the model's VOCABULARY, which
registers (on demand) and names the tasks for that vocabulary, and takes the annotated
directory from the gin macro ANNOTATED_DIR. Needs seqio and TensorFlow, not t5x.
"""
from __future__ import annotations

from typing import Optional, Sequence

import seqio

from toolformer_jax import corpora
from toolformer_tasks import annotated
from toolformer_tasks import eval_tasks
from toolformer_tasks import lm
from toolformer_tasks import preprocessors
from toolformer_tasks import vocabularies

ANNOTATED_DIR_ENV = annotated.ANNOTATED_DIR_ENV
WIKI_LM_TASK = lm.WIKI_LM_TASK
MIXTURE = annotated.MIXTURE
is_heldout = corpora.is_heldout  # the held-out split rule (also lm.is_heldout)
eval_mixture = eval_tasks.eval_mixture


def lm_task(vocabulary: seqio.Vocabulary, corpus_path: Optional[str] = None) -> str:
  """Name of the held-out LM task for `vocabulary` (registered if needed)."""
  if corpus_path is None:
    name = WIKI_LM_TASK + vocabularies.suffix_for(vocabulary)
    if name in seqio.TaskRegistry.names():
      return name
  return lm.register_wiki_lm_task(vocabulary, corpus_path=corpus_path)


def toolformer_mixture(vocabulary: seqio.Vocabulary, annotated_dir: Optional[str] = None,
                       without_calls: bool = False, lm_fraction: float = 0.0) -> str:
  """Name of `toolformer_all` for `vocabulary` over `annotated_dir` (or the env variable);
  without_calls: the paper's control `toolformer_all_nocalls`, the same records with their
  calls removed. lm_fraction: share of plain-text examples from the LM task mixed in."""
  return annotated.register_toolformer_tasks(vocabulary, annotated_dir,
                                             without_calls=without_calls,
                                             lm_fraction=lm_fraction)


def text_files_task(paths: Sequence[str], vocabulary: seqio.Vocabulary,
                    name: Optional[str] = None) -> str:
  """Name of a targets-only task (split validation) over the user's text files."""
  return lm.register_text_files_task(paths, vocabulary, name=name)


def _register_builtin() -> None:
  for vocabulary in vocabularies.builtin_vocabularies().values():
    lm.register_wiki_lm_task(vocabulary)
    annotated.register_toolformer_tasks(vocabulary, warn_on_fallback=False)
    eval_tasks.register_builtin(vocabulary)


_register_builtin()
