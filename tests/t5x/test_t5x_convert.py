"""`python -m toolformer_jax.convert`: HF GPT-J / t5x -> t5x or orbax, and the vocabulary swap."""
import json
import subprocess
import sys

import numpy as np
import pytest

from t5x_testlib import REPO, gptj_tiny_config, quote, run_t5x, subprocess_env
from toolformer_jax import convert
from toolformer_jax import vocab as vocab_lib
from toolformer_jax.checkpoints import vocab_rows

TEXTS = [
    "Hello world! This is a test of the scoring path.",
    "The capital of France is Paris. 400 / 1400 = 0.29!",
    "Toolformer [Calculator(400 / 1400) -> 0.29] calls tools.",
]


def _convert_cli(*args):
  return subprocess.run([sys.executable, "-m", "toolformer_jax.convert", *args], cwd=REPO,
                        capture_output=True, text=True, env=subprocess_env(), check=False)


def test_gptj_params_to_seqio_ids_swaps_pad_and_bang():
  rows, embed = 50400, 3
  rng = np.random.default_rng(0)
  params = {"token_embedder": {"embedding": rng.normal(size=(rows, embed))},
            "lm_head": {"kernel": rng.normal(size=(embed, rows)), "bias": rng.normal(size=rows)},
            "ln_f": {"scale": np.ones(embed)}}
  out = vocab_rows.gptj_params_to_seqio_ids(params)
  emb, kernel, bias = (out["token_embedder"]["embedding"], out["lm_head"]["kernel"],
                       out["lm_head"]["bias"])
  hf_emb, hf_kernel, hf_bias = (params["token_embedder"]["embedding"],
                                params["lm_head"]["kernel"], params["lm_head"]["bias"])
  bang, eos = vocab_lib.SEQIO_BANG_ID, vocab_lib.GPT2_EOS_ID
  np.testing.assert_array_equal(emb[bang], hf_emb[0])  # "!" moved to 50257
  np.testing.assert_array_equal(kernel[:, bang], hf_kernel[:, 0])
  assert bias[bang] == hf_bias[0]
  np.testing.assert_array_equal(emb[0], hf_emb[eos])  # PAD embeds like <|endoftext|>
  # PAD is never predicted.
  assert not kernel[:, 0].any() and bias[0] == vocab_rows.PAD_LOGIT_BIAS
  others = np.r_[1:bang, bang + 1:rows]
  np.testing.assert_array_equal(emb[others], hf_emb[others])
  np.testing.assert_array_equal(bias[others], hf_bias[others])
  assert out["ln_f"] is params["ln_f"]
  assert hf_bias[0] != vocab_rows.PAD_LOGIT_BIAS  # the input is not modified


def test_gptj_params_to_seqio_ids_needs_the_padded_rows():
  params = {"token_embedder": {"embedding": np.zeros((50257, 2))},
            "lm_head": {"kernel": np.zeros((2, 50257)), "bias": np.zeros(50257)}}
  with pytest.raises(ValueError, match="50257"):
    vocab_rows.gptj_params_to_seqio_ids(params)


@pytest.mark.parametrize("make,kind", [
    (lambda d: "smollm2", "gguf"),
    (lambda d: str(d / "model.gguf"), "gguf"),
    (lambda d: (d / "config.json").write_text("{}") and str(d), "hf_gptj"),
    (lambda d: (d / "state").mkdir() or str(d), "t5x"),
])
def test_input_kind(tmp_path, make, kind):
  assert convert.input_kind(make(tmp_path)) == kind


def test_cli_reports_bad_input(tmp_path):
  result = _convert_cli("--to", "t5x", "--input", str(tmp_path), "--output_dir",
                        str(tmp_path / "out"))
  assert result.returncode == 1
  assert "convert: error:" in result.stderr and "neither" in result.stderr


@pytest.fixture(scope="module")
def hf_tiny(tmp_path_factory):
  """A randomly initialised HF GPTJForCausalLM with gptj_tiny's shape, saved to disk."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  config = gptj_tiny_config()
  torch.manual_seed(0)
  hf_config = transformers.GPTJConfig(
      vocab_size=config.vocab_size, n_positions=config.max_positions, n_embd=config.d_model,
      n_layer=config.num_layers, n_head=config.num_heads, rotary_dim=config.rotary_dim,
      n_inner=config.d_ff, layer_norm_epsilon=config.layer_norm_eps)
  model = transformers.GPTJForCausalLM(hf_config).eval()
  with torch.no_grad():  # a non-trivial output bias, so the lm_head permutation matters
    model.lm_head.bias.normal_(0.0, 0.5)
  path = tmp_path_factory.mktemp("hf_tiny")
  model.save_pretrained(str(path))
  return path, model


def _transformers_scores(model, texts):
  """Summed log-likelihood of text + <|endoftext|> after <|endoftext|>, in transformers."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  encoder_json, vocab_bpe = vocab_lib.gpt2_bpe_paths()
  tokenizer = transformers.GPT2TokenizerFast(vocab=encoder_json, merges=vocab_bpe)
  eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
  assert eos == 50256
  scores = []
  for text in texts:
    ids = tokenizer(text)["input_ids"]
    assert len(ids) >= len(text.split())
    inputs, targets = [eos] + ids, ids + [eos]
    with torch.no_grad():
      logits = model(torch.tensor([inputs])).logits[0].double()  # [length, 50400]
    # GPT-J's untrained padding row 50257 holds PAD after conversion, which is never
    # predicted; exclude it here too (with it, scores differ by ~1e-5 per token).
    logits[:, vocab_lib.SEQIO_BANG_ID] = -float("inf")
    log_probs = torch.log_softmax(logits, dim=-1)
    scores.append(float(sum(log_probs[i, t] for i, t in enumerate(targets))))
  return scores


@pytest.mark.slow  # ~35 s each on 2 cores
@pytest.mark.parametrize("scanned", [False, True], ids=["unrolled", "scanned"])
def test_converted_hf_gptj_scores_like_transformers_in_t5x_infer(hf_tiny, tmp_path, scanned):
  """Scanned: the layer layout of gptj_1b/gptj_6b (nn.scan over layers, full remat)."""
  hf_path, hf_model = hf_tiny
  result = _convert_cli("--to", "t5x", "--input", str(hf_path), "--output_dir",
                        str(tmp_path / "t5x"), *(["--scan_layers"] if scanned else []))
  assert result.returncode == 0, result.stderr[-3000:]
  checkpoint = tmp_path / "t5x" / "checkpoint_0"
  assert f"wrote {checkpoint}" in result.stdout

  texts_file = tmp_path / "texts.jsonl"
  texts_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
  out_dir = tmp_path / "infer"
  run = run_t5x("t5x.infer", ("runs/score_texts.gin", "models/gptj_tiny.gin"), {
      "TEXT_FILES": f"[{quote(texts_file)}]",
      "CHECKPOINT_PATH": quote(checkpoint),
      "INFER_OUTPUT_DIR": quote(out_dir),
      "TASK_FEATURE_LENGTHS": "{'targets': 64}",
      **({"gptj.GPTJConfig.scan_layers": "True", "gptj.GPTJConfig.remat_policy": "'full'"}
         if scanned else {}),
  }, str(tmp_path / "infer.log"))
  assert run.returncode == 0, run.log[-3000:]
  (output,) = [p for p in out_dir.glob("*-score.jsonl*") if not p.name.endswith("COMPLETED")]
  rows = [json.loads(line) for line in output.read_text().splitlines()]
  assert [r["inputs"]["targets_pretokenized"] for r in rows] == TEXTS
  expected = _transformers_scores(hf_model, TEXTS)
  np.testing.assert_allclose([r["score"] for r in rows], expected, atol=1e-3, rtol=0)


def test_t5x_checkpoint_to_orbax_params(hf_tiny, tmp_path):
  hf_path, _ = hf_tiny
  assert _convert_cli("--to", "t5x", "--input", str(hf_path), "--output_dir",
                      str(tmp_path / "t5x")).returncode == 0
  result = _convert_cli("--to", "orbax", "--input", str(tmp_path / "t5x" / "checkpoint_0"),
                        "--output_dir", str(tmp_path / "orbax"))
  assert result.returncode == 0, result.stderr[-3000:]
  from toolformer_jax.checkpoints import hf_gptj  # pylint: disable=g-import-not-at-top
  from toolformer_jax.checkpoints import orbax_io  # pylint: disable=g-import-not-at-top
  params = orbax_io.restore_params(str(tmp_path / "orbax"))
  _, hf_params = hf_gptj.load_hf_gptj(str(hf_path))
  expected = vocab_rows.gptj_params_to_seqio_ids(hf_params)
  import jax  # pylint: disable=g-import-not-at-top
  jax.tree.map(np.testing.assert_array_equal, params, expected)
