"""Vocabulary rows of imported checkpoints, put into the id space of the project's vocabularies.

GPT-J. HF GPT-J ids are GPT-2's, where id 0 is the ordinary token "!"; the project's seqio
vocabulary (`toolformer_jax.vocab.Gpt2Vocabulary`) swaps ids 0 and 50257 so that 0 can be
PAD (seqio's padding and t5x's first decoder input). `gptj_params_to_seqio_ids` therefore
permutes the rows of the embedding and the columns of lm_head (kernel and bias) with that
swap ("!" moves to row 50257, one of GPT-J's 143 untrained padding rows), then
  * sets embedding row 0 (PAD) to a copy of row 50256 (<|endoftext|>): t5x feeds 0 as the
    first decoder input, so every sequence is conditioned as if it followed <|endoftext|>,
    the document separator GPT-J saw in pre-training;
  * sets lm_head column 0 to zero and its bias to PAD_LOGIT_BIAS, so PAD is never predicted
    (its probability underflows to 0; the gradient on it is 0, so training keeps it there).
The untrained padding row 50257 of HF GPT-J is thereby dropped.

gguf (SmolLM2) ids are the file's own, with PAD 0 = <|endoftext|>: no change is needed.

Separate from the importers (`hf_gptj`, `gguf`), which return parameters in the files' own
id space (what HF's reference implementations compare against); the conversion CLI
(`toolformer_jax.convert`) applies this on the way to t5x or orbax checkpoints.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np


PAD_LOGIT_BIAS = -1e9


def gptj_params_to_seqio_ids(params: Dict[str, Any]) -> Dict[str, Any]:
  """HF-id-space GPT-J params -> the id space of `Gpt2Vocabulary` (module docstring).

  Returns a new tree; only token_embedder/embedding and lm_head/{kernel,bias} change.
  Raises ValueError for tables too small to take the swap.
  """
  # vocab (seqio, TensorFlow) only here, so importing this module loads neither.
  from toolformer_jax import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  embedding = np.asarray(params["token_embedder"]["embedding"])  # [vocab, embed]
  kernel = np.asarray(params["lm_head"]["kernel"])  # [embed, vocab]
  bias = np.asarray(params["lm_head"]["bias"])  # [vocab]
  rows = embedding.shape[0]
  if rows <= vocab_lib.SEQIO_BANG_ID or kernel.shape[-1] != rows or bias.shape != (rows,):
    raise ValueError(
        f"GPT-J vocabulary tables of {rows} rows (lm_head {kernel.shape}, bias {bias.shape})"
        f" cannot take the GPT-2 id swap: need > {vocab_lib.SEQIO_BANG_ID} rows everywhere")
  order = vocab_lib.seqio_ids_to_gpt2(np.arange(rows))  # seqio id -> HF row
  embedding = embedding[order]
  kernel = kernel[:, order]
  bias = bias[order]
  pad, eos = vocab_lib.SEQIO_PAD_ID, vocab_lib.GPT2_EOS_ID
  embedding[pad] = embedding[eos]
  kernel[:, pad] = 0
  bias[pad] = PAD_LOGIT_BIAS
  out = dict(params)
  out["token_embedder"] = dict(params["token_embedder"], embedding=embedding)
  out["lm_head"] = dict(params["lm_head"], kernel=kernel, bias=bias)
  return out
