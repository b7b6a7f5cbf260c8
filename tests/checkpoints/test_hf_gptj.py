"""HF GPT-J checkpoints: logits parity with PyTorch GPTJForCausalLM, export, bad input."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers

from toolformer_jax.checkpoints import hf_gptj
from toolformer_jax.checkpoints.hf_gptj import HFCheckpointError, load_hf_gptj, save_hf_gptj
from toolformer_jax.networks import layers
from toolformer_jax.networks.gptj import GPTJ, GPTJConfig

ATOL = 1e-4
# HF GPTJConfig kwargs: rotary_dim < head_dim, rotary_dim == head_dim, many small heads.
HF_CONFIGS = {
    "partial_rotary": dict(vocab_size=96, n_embd=64, n_layer=2, n_head=4, rotary_dim=8),
    "full_rotary": dict(vocab_size=80, n_embd=48, n_layer=3, n_head=3, rotary_dim=16,
                        n_inner=72),
    "small_heads": dict(vocab_size=64, n_embd=64, n_layer=1, n_head=8, rotary_dim=4),
}


def make_hf_model(seed: int, **kwargs) -> transformers.GPTJForCausalLM:
  """A random GPTJForCausalLM whose every tensor (LayerNorms, biases too) is perturbed."""
  torch.manual_seed(seed)
  config = transformers.GPTJConfig(n_positions=64, bos_token_id=None, eos_token_id=None,
                                   **kwargs)
  model = transformers.GPTJForCausalLM(config).eval()
  with torch.no_grad():
    for param in model.parameters():
      param.add_(0.05 * torch.randn_like(param))
  return model


def hf_logits(model, tokens: np.ndarray, attention_mask: np.ndarray = None) -> np.ndarray:
  with torch.no_grad():
    mask = None if attention_mask is None else torch.tensor(attention_mask)
    return model(torch.tensor(tokens), attention_mask=mask).logits.numpy()  # [b, l, vocab]


def our_logits(config: GPTJConfig, params, tokens, targets=None) -> np.ndarray:
  targets = None if targets is None else jnp.asarray(targets)
  return np.asarray(GPTJ(config).apply({"params": params}, jnp.asarray(tokens), targets,
                                       enable_dropout=False))


def right_padded_batch(vocab_size: int, lengths, seed: int):
  """Tokens [batch, max_len] in [1, vocab) with zeros after each length, and the 0/1 mask."""
  rng = np.random.RandomState(seed)
  mask = (np.arange(max(lengths))[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
  return rng.randint(1, vocab_size, (len(lengths), max(lengths))) * mask, mask


def max_real_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
  return float(np.abs(a - b)[mask.astype(bool)].max())


@pytest.mark.parametrize("name", sorted(HF_CONFIGS))
def test_logits_match_pytorch(name, tmp_path):
  model = make_hf_model(seed=len(name), **HF_CONFIGS[name])
  model.save_pretrained(tmp_path)
  config, params = load_hf_gptj(tmp_path)
  assert config.d_ff == HF_CONFIGS[name].get("n_inner", 4 * HF_CONFIGS[name]["n_embd"])

  # One odd-length sequence, then a right-padded batch compared at its real positions.
  tokens, mask = right_padded_batch(config.vocab_size, [13], seed=1)
  diff = float(np.abs(our_logits(config, params, tokens) - hf_logits(model, tokens)).max())
  assert diff <= ATOL
  tokens, mask = right_padded_batch(config.vocab_size, [11, 7, 3], seed=2)
  ours = our_logits(config, params, tokens, targets=tokens)  # targets==0 masks pad keys
  padded_diff = max_real_diff(ours, hf_logits(model, tokens, mask), mask)
  assert padded_diff <= ATOL
  print(f"{name}: max abs diff {diff:.2e} (unpadded), {padded_diff:.2e} (padded batch)")


def test_sharded_checkpoint_and_scan_layers(tmp_path):
  model = make_hf_model(seed=3, **HF_CONFIGS["partial_rotary"])
  model.save_pretrained(tmp_path, max_shard_size="40KB")
  assert os.path.exists(tmp_path / hf_gptj.INDEX_FILE)
  assert len([n for n in os.listdir(tmp_path) if n.endswith(".safetensors")]) > 1
  tokens, mask = right_padded_batch(96, [9, 5], seed=4)
  reference = hf_logits(model, tokens, mask)
  config, params = load_hf_gptj(tmp_path)
  diff = max_real_diff(our_logits(config, params, tokens, tokens), reference, mask)
  scan_config, scan_params = load_hf_gptj(tmp_path, scan_layers=True)
  assert scan_config.scan_layers and "layers" in scan_params
  assert scan_params["layers"]["block"]["attn"]["query"]["kernel"].shape == (2, 64, 4, 16)
  stacked = dict(_flatten(layers.stack_layer_params(params, config.num_layers)))
  assert stacked.keys() == dict(_flatten(scan_params)).keys()
  for key, value in _flatten(scan_params):
    np.testing.assert_array_equal(value, stacked[key])
  scan_diff = max_real_diff(our_logits(scan_config, scan_params, tokens, tokens), reference,
                            mask)
  print(f"sharded: {diff:.2e}, scanned: {scan_diff:.2e}")
  assert diff <= ATOL and scan_diff <= ATOL


def test_save_round_trip_loads_in_pytorch(tmp_path):
  model = make_hf_model(seed=5, **HF_CONFIGS["full_rotary"])
  model.save_pretrained(tmp_path / "src")
  config, params = load_hf_gptj(tmp_path / "src", scan_layers=True)
  save_hf_gptj(config, params, tmp_path / "out")  # scanned layout is unstacked on export
  reloaded = transformers.GPTJForCausalLM.from_pretrained(tmp_path / "out").eval()
  tokens, _ = right_padded_batch(config.vocab_size, [10], seed=6)
  np.testing.assert_array_equal(hf_logits(reloaded, tokens), hf_logits(model, tokens))
  config2, params2 = load_hf_gptj(tmp_path / "out", scan_layers=True)
  assert config2 == config
  flat, flat2 = dict(_flatten(params)), dict(_flatten(params2))
  assert flat.keys() == flat2.keys()
  for key, value in flat.items():
    np.testing.assert_array_equal(value, flat2[key])


def _flatten(tree, prefix=()):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _flatten(value, prefix + (key,))
    else:
      yield prefix + (key,), value


def test_bfloat16_checkpoint_and_dtype_argument(tmp_path):
  model = make_hf_model(seed=8, **HF_CONFIGS["small_heads"]).to(torch.bfloat16)
  model.save_pretrained(tmp_path)
  config, params = load_hf_gptj(tmp_path)  # BF16 tensors widen to float32
  wte = model.transformer.wte.weight.detach().float().numpy()
  np.testing.assert_array_equal(params["token_embedder"]["embedding"], wte)
  assert params["token_embedder"]["embedding"].dtype == np.float32
  config16, params16 = load_hf_gptj(tmp_path, dtype="bfloat16")
  assert config16.param_dtype == "bfloat16" and config16.dtype == "bfloat16"
  assert params16["lm_head"]["kernel"].dtype == jnp.bfloat16
  np.testing.assert_array_equal(params16["lm_head"]["kernel"].astype(np.float32),
                                model.lm_head.weight.detach().float().numpy().T)


def test_loading_does_not_import_torch(tmp_path):
  model = make_hf_model(seed=9, **HF_CONFIGS["small_heads"])
  model.save_pretrained(tmp_path)
  script = ("import sys; from toolformer_jax.checkpoints.hf_gptj import load_hf_gptj; "
            f"load_hf_gptj({str(tmp_path)!r}); "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=False)
  assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


# ----------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
  """A valid 2-layer checkpoint written by save_hf_gptj (no torch involved)."""
  config = dataclasses.replace(GPTJConfig.from_preset("tiny"), vocab_size=32, d_ff=96)
  params = GPTJ(config).init(jax.random.PRNGKey(0),
                             jnp.ones((1, 2), jnp.int32))["params"]
  path = tmp_path_factory.mktemp("good")
  save_hf_gptj(config, params, path)
  return path


def _rewrite_tensors(path, edit):
  file = os.path.join(path, hf_gptj.WEIGHTS_FILE)
  tensors = dict(safetensors.numpy.load_file(file))
  edit(tensors)
  safetensors.numpy.save_file(tensors, file, metadata={"format": "pt"})


def _rewrite_config(path, edit):
  file = os.path.join(path, hf_gptj.CONFIG_FILE)
  with open(file) as fh:
    config = json.load(fh)
  edit(config)
  with open(file, "w") as fh:
    json.dump(config, fh)


BAD_CHECKPOINTS = {
    "missing_tensor": (lambda t: t.pop("transformer.h.1.mlp.fc_in.bias"), None,
                       "transformer.h.1.mlp.fc_in.bias: missing"),
    "extra_tensor": (lambda t: t.update({"transformer.h.2.ln_1.weight": np.ones(64, np.float32)}),
                     None, "transformer.h.2.ln_1.weight: unknown"),
    "wrong_shape": (lambda t: t.update({"transformer.h.0.attn.q_proj.weight":
                                        np.zeros((64, 32), np.float32)}),
                    None, r"transformer.h.0.attn.q_proj.weight: shape \(64, 32\)"),
    "integer_tensor": (lambda t: t.update({"lm_head.bias": np.zeros(32, np.int32)}), None,
                       "lm_head.bias: dtype I32"),
    "missing_field": (None, lambda c: c.pop("n_embd"), "missing field.*n_embd"),
    "not_gptj": (None, lambda c: c.update(model_type="llama"), "model_type is 'llama'"),
    "indivisible_heads": (None, lambda c: c.update(n_head=5), "n_embd.*n_head"),
    "odd_rotary": (None, lambda c: c.update(rotary_dim=7), "rotary_dim"),
    "activation": (None, lambda c: c.update(activation_function="relu"),
                   "activation_function"),
    "tied": (None, lambda c: c.update(tie_word_embeddings=True), "tie_word_embeddings"),
    # A config that disagrees with the tensors: every tensor is reported by name.
    "config_vs_tensors": (None, lambda c: c.update(n_inner=128),
                          r"transformer.h.0.mlp.fc_in.weight: shape \(96, 64\)"),
}


@pytest.mark.parametrize("name", sorted(BAD_CHECKPOINTS))
def test_malformed_checkpoint_raises_one_clear_error(name, good_checkpoint, tmp_path):
  edit_tensors, edit_config, message = BAD_CHECKPOINTS[name]
  for file in os.listdir(good_checkpoint):
    (tmp_path / file).write_bytes((good_checkpoint / file).read_bytes())
  load_hf_gptj(tmp_path)  # the unedited copy loads
  if edit_tensors:
    _rewrite_tensors(tmp_path, edit_tensors)
  if edit_config:
    _rewrite_config(tmp_path, edit_config)
  with pytest.raises(HFCheckpointError, match=message):
    load_hf_gptj(tmp_path)


def test_unknown_layout_and_bad_index(tmp_path, good_checkpoint):
  with pytest.raises(HFCheckpointError, match="config.json not found"):
    load_hf_gptj(tmp_path)
  with open(tmp_path / "config.json", "w") as fh:
    fh.write((good_checkpoint / "config.json").read_text())
  (tmp_path / "pytorch_model.bin").write_bytes(b"")
  with pytest.raises(HFCheckpointError, match="pytorch_model.bin"):
    load_hf_gptj(tmp_path)
  index = {"weight_map": {"lm_head.bias": "model-00001-of-00002.safetensors"}}
  (tmp_path / hf_gptj.INDEX_FILE).write_text(json.dumps(index))
  with pytest.raises(HFCheckpointError, match="model-00001-of-00002.safetensors"):
    load_hf_gptj(tmp_path)


def test_known_buffers_are_ignored(good_checkpoint, tmp_path):
  for file in os.listdir(good_checkpoint):
    (tmp_path / file).write_bytes((good_checkpoint / file).read_bytes())
  _, expected = load_hf_gptj(tmp_path)
  causal = np.tril(np.ones((64, 64), bool))[None, None]  # older releases' attn.bias buffer
  _rewrite_tensors(tmp_path, lambda t: t.update({
      "transformer.h.0.attn.bias": causal, "transformer.h.1.attn.bias": causal,
      "transformer.h.0.attn.masked_bias": np.array(-1e9, np.float32)}))
  _, params = load_hf_gptj(tmp_path)
  np.testing.assert_array_equal(params["layers_1"]["attn"]["out"]["kernel"],
                                expected["layers_1"]["attn"]["out"]["kernel"])
