"""Checkpoint import/export: HF GPT-J safetensors, gguf (SmolLM2), orbax params.

`load_hf_gptj(path) -> (GPTJConfig, params)`; `load_gguf_llama(path) -> (LlamaConfig,
params)`; `orbax_io.save_params` / `orbax_io.restore_params` for the project's own format.
t5x checkpoints: `t5x_export` (needs t5x) and `python -m toolformer_jax.convert`.
GPT-J vocabulary rows into the seqio vocabulary's id space: `vocab_rows` (not imported here:
it needs the vocabulary, hence TensorFlow).
"""
from toolformer_jax.checkpoints.gguf import load_gguf_llama
from toolformer_jax.checkpoints.hf_gptj import HFCheckpointError
from toolformer_jax.checkpoints.hf_gptj import load_hf_gptj
from toolformer_jax.checkpoints.hf_gptj import save_hf_gptj
