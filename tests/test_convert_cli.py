"""`python -m toolformer_jax.convert --from {hf-gptj,gguf} --src PATH --out DIR` (orbax)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from toolformer_jax.checkpoints import orbax_io
from toolformer_jax.checkpoints.hf_gptj import load_hf_gptj
from toolformer_jax.checkpoints.vocab_rows import gptj_params_to_seqio_ids


def _convert(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "toolformer_jax.convert", *args], env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_hf_gptj(tmp_path_factory):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  config = transformers.GPTJConfig(vocab_size=50400, n_embd=32, n_layer=1, n_head=2,
                                   rotary_dim=8, n_inner=64)
  path = str(tmp_path_factory.mktemp("hf_gptj"))
  transformers.GPTJForCausalLM(config).save_pretrained(path)
  return path


def test_hf_gptj_to_orbax_holds_the_remapped_params(tiny_hf_gptj, tmp_path):
  out = str(tmp_path / "params")
  proc = _convert("--from", "hf-gptj", "--src", tiny_hf_gptj, "--out", out)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "convert: wrote" in proc.stdout
  restored = orbax_io.restore_params(out)
  _, params = load_hf_gptj(tiny_hf_gptj)
  expected = gptj_params_to_seqio_ids(params)
  np.testing.assert_array_equal(restored["token_embedder"]["embedding"],
                                expected["token_embedder"]["embedding"])
  np.testing.assert_array_equal(restored["layers_0"]["attn"]["query"]["kernel"],
                                params["layers_0"]["attn"]["query"]["kernel"])
  # "!" (GPT-2 id 0) now lives in row 50257; row 0 (PAD) copies <|endoftext|>.
  hf_embedding = params["token_embedder"]["embedding"]
  np.testing.assert_array_equal(restored["token_embedder"]["embedding"][50257], hf_embedding[0])
  np.testing.assert_array_equal(restored["token_embedder"]["embedding"][0], hf_embedding[50256])


@pytest.mark.parametrize("from_kind,message", [
    ("gguf", "--from gguf but --input"),
])
def test_from_kind_must_match_the_source(tiny_hf_gptj, tmp_path, from_kind, message):
  proc = _convert("--from", from_kind, "--src", tiny_hf_gptj, "--out", str(tmp_path / "x"))
  assert proc.returncode == 1
  last_line = proc.stderr.strip().splitlines()[-1]  # earlier lines: TF/absl start-up noise
  assert last_line.startswith("convert: error: ") and message in last_line
  assert not (tmp_path / "x").exists()
