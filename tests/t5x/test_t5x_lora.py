"""LoRA with `python -m t5x.train` (gin/models/lora.gin): adapters-only training, the
optimizer state, merge / adapters-only export, resumption after SIGKILL."""
import json
import subprocess
import sys

from flax import traverse_util
import jax
import numpy as np
import pytest

from t5x_testlib import (REPO, TRAIN_GIN, gptj_tiny_config, max_abs_diff, quote,
                         read_scalars, run_t5x, subprocess_env, train_bindings,
                         train_then_sigkill)
from toolformer_jax.checkpoints import t5x_export
from toolformer_jax.networks import gptj
from toolformer_jax.networks import lora

RANK = 4
LORA_STEPS = 12  # checkpoints every 4 (train_bindings): the kill test stops after the first
LORA_GIN = TRAIN_GIN + ("models/lora.gin",)
MODEL_GIN = ("models/gptj_tiny.gin", "models/lora.gin")


def lora_bindings(model_dir, initial_checkpoint, steps=LORA_STEPS, **overrides):
  return train_bindings(model_dir, initial_checkpoint, steps, LORA_RANK=str(RANK),
                        EVAL_PERIOD=str(steps), **{"train.train_eval_dataset_cfg": "None"},
                        **overrides)


def adapted_network():
  return lora.adapt(gptj.GPTJ(gptj_tiny_config()), rank=RANK)


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, initial_checkpoint):
  """gptj_tiny + rank-4 adapters fine-tuned for LORA_STEPS steps, checkpoints every 4."""
  model_dir = tmp_path_factory.mktemp("lora") / "model"
  run = run_t5x("t5x.train", LORA_GIN, lora_bindings(model_dir, initial_checkpoint),
                str(model_dir.parent / "train.log"))
  assert run.returncode == 0, run.log[-3000:]
  return model_dir, run


def _params(checkpoint_dir):
  params, _ = t5x_export.load_t5x_params(str(checkpoint_dir))
  return {"/".join(k): v for k, v in traverse_util.flatten_dict(params).items()}


def _state_metadata(checkpoint_dir):
  """{path: shape} of every array t5x stored under state/ (parameters and optimizer)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with ocp.PyTreeCheckpointer() as checkpointer:
    metadata = checkpointer.metadata(str(checkpoint_dir / "state"))
  tree = getattr(metadata, "item_metadata", metadata)
  tree = getattr(tree, "tree", tree)
  return {"/".join(k): tuple(v.shape) for k, v in traverse_util.flatten_dict(tree).items()}


def test_frozen_weights_stay_bit_identical_and_adapters_move(lora_run, initial_checkpoint):
  model_dir, run = lora_run
  assert "adapter tensors start from scratch (A random, B = 0)" in run.log
  initial = _params(initial_checkpoint)
  start = _params(model_dir / "checkpoint_0")  # t5x's step-0 save: restored + fresh adapters
  final = _params(model_dir / f"checkpoint_{LORA_STEPS}")
  adapters = sorted(n for n in final if n.endswith(("/lora_a", "/lora_b")))
  assert len(adapters) == 2 * 6 * 2  # layers x targets x (A, B)
  assert sorted(set(final) - set(adapters)) == sorted(initial)
  for name, value in initial.items():
    assert final[name].dtype == value.dtype and final[name].tobytes() == value.tobytes(), name
  for name in adapters:
    if name.endswith("lora_b"):
      assert not start[name].any(), name  # B = 0 at the start
      assert np.abs(final[name]).max() > 1e-4, name
    else:
      assert np.std(start[name]) > 0, name
      assert np.abs(final[name] - start[name]).max() > 1e-5, name
  # It learns (ln 50400 = 10.8 at the start).
  losses = read_scalars(model_dir, "train", "loss")
  assert sorted(losses) == list(range(1, LORA_STEPS + 1)), losses
  assert np.mean([losses[s] for s in (10, 11, 12)]) < np.mean([losses[s] for s in (1, 2, 3)])


def test_optimizer_state_holds_only_adapter_moments(lora_run):
  model_dir, _ = lora_run
  stored = _state_metadata(model_dir / f"checkpoint_{LORA_STEPS}")
  params = {n[len("target/"):]: s for n, s in stored.items() if n.startswith("target/")}
  adapter_shapes = {n: s for n, s in params.items() if n.endswith(("/lora_a", "/lora_b"))}
  optimizer = {n: s for n, s in stored.items() if n.startswith("state/param_states/")}
  moments = {}
  for name, shape in optimizer.items():
    if name.endswith("/count"):
      assert shape == (), name
      continue
    parts = name.split("/")
    kind = next(p for p in ("mu", "nu") if p in parts)  # AdamW's two moments
    param = "/".join(parts[parts.index(kind) + 1:])
    assert param in adapter_shapes, name
    assert shape == adapter_shapes[param], name
    moments.setdefault(kind, set()).add(param)
  assert moments == {"mu": set(adapter_shapes), "nu": set(adapter_shapes)}
  # In bytes: two float32 moments per adapter parameter, nothing for the frozen weights.
  adapter_count = sum(int(np.prod(s)) for s in adapter_shapes.values())
  state_count = sum(int(np.prod(s)) for s in optimizer.values())
  assert state_count == 2 * adapter_count + sum(1 for n in optimizer if n.endswith("/count"))
  assert adapter_count < 0.01 * sum(int(np.prod(s)) for s in params.values())


def _convert_cli(*args):
  return subprocess.run([sys.executable, "-m", "toolformer_jax.convert", *args], cwd=REPO,
                        capture_output=True, text=True, env=subprocess_env(), check=False)


def _gin_flags(rank=RANK):
  return ["--gin_search_paths=gin", *(f"--gin_file={f}" for f in MODEL_GIN),
          f"--gin.LORA_RANK={rank}"]


@pytest.fixture(scope="module")
def merged_checkpoint(lora_run, tmp_path_factory):
  model_dir, _ = lora_run
  out = tmp_path_factory.mktemp("merged")
  result = _convert_cli("--merge_lora", "--to", "t5x", "--input",
                        str(model_dir / f"checkpoint_{LORA_STEPS}"), "--output_dir",
                        str(out), *_gin_flags())
  assert result.returncode == 0, result.stderr[-3000:]
  path = out / f"checkpoint_{LORA_STEPS}"
  assert f"wrote merged LoRA {path}" in result.stdout
  return path


def test_merged_checkpoint_is_plain_and_gives_the_adapted_logits(lora_run, merged_checkpoint,
                                                                 initial_checkpoint):
  model_dir, _ = lora_run
  trained, _ = t5x_export.load_t5x_params(str(model_dir / f"checkpoint_{LORA_STEPS}"))
  merged, step = t5x_export.load_t5x_params(str(merged_checkpoint))
  assert step == LORA_STEPS
  plain = gptj.GPTJ(gptj_tiny_config())
  t5x_export.check_params(merged, plain)  # exactly the plain network's names and shapes
  tokens = jax.random.randint(jax.random.PRNGKey(0), (2, 24), 1, 50400)
  adapted_logits = np.asarray(jax.jit(lambda p, t: adapted_network().apply(
      {"params": p}, t, enable_dropout=False))(trained, tokens))
  merged_logits = np.asarray(jax.jit(lambda p, t: plain.apply(
      {"params": p}, t, enable_dropout=False))(merged, tokens))
  np.testing.assert_allclose(merged_logits, adapted_logits, atol=1e-5, rtol=0)
  base, _ = t5x_export.load_t5x_params(str(initial_checkpoint))
  base_logits = np.asarray(jax.jit(lambda p, t: plain.apply(
      {"params": p}, t, enable_dropout=False))(base, tokens))
  assert np.abs(base_logits - adapted_logits).max() > 1e-3  # the adapters did something


def test_adapters_only_export_puts_back_onto_the_base(lora_run, initial_checkpoint, tmp_path):
  from toolformer_jax import convert  # pylint: disable=g-import-not-at-top
  model_dir, _ = lora_run
  checkpoint = model_dir / f"checkpoint_{LORA_STEPS}"
  result = _convert_cli("--lora_adapters_only", "--input", str(checkpoint), "--output_dir",
                        str(tmp_path / "export"), *_gin_flags())
  assert result.returncode == 0, result.stderr[-3000:]
  adapters, meta = convert.load_lora_adapters(str(tmp_path / "export"))
  assert not lora.split(adapters)[0]  # adapters only
  assert (meta["rank"], meta["alpha"], meta["step"]) == (RANK, 16.0, LORA_STEPS)
  assert meta["targets"] == list(lora.decoder.LORA_TARGETS)
  assert meta["parameters"] == lora.count(adapters)[0]
  base, _ = t5x_export.load_t5x_params(str(initial_checkpoint))
  trained, _ = t5x_export.load_t5x_params(str(checkpoint))
  assert max_abs_diff(lora.combine(base, adapters), trained) == 0


def test_lora_conversion_errors(lora_run, initial_checkpoint, tmp_path):
  from toolformer_jax import convert  # pylint: disable=g-import-not-at-top
  model_dir, _ = lora_run
  checkpoint = str(model_dir / f"checkpoint_{LORA_STEPS}")
  gin_paths = [str(REPO / "gin")]
  with pytest.raises(convert.ConvertError, match="include models/lora.gin"):
    convert.lora_network_from_gin(["models/gptj_tiny.gin"], search_paths=gin_paths)
  rank8 = convert.lora_network_from_gin(MODEL_GIN, ["LORA_RANK = 8"], search_paths=gin_paths)
  assert rank8.config.lora_rank == 8
  with pytest.raises(ValueError, match="does not fit the LoRA network"):
    convert.convert_lora("merge", checkpoint, str(tmp_path / "a"), rank8)
  with pytest.raises(convert.ConvertError, match="holds no LoRA adapters"):
    convert.convert_lora("merge", str(initial_checkpoint), str(tmp_path / "b"),
                         adapted_network())
  # Through the CLI: a one-line error and exit status 1.
  result = _convert_cli("--lora_adapters_only", "--to", "t5x", "--input", checkpoint,
                        "--output_dir", str(tmp_path / "c"), *_gin_flags())
  assert result.returncode == 1, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1].startswith("convert: error: ")
  assert "use --to orbax" in result.stderr
  assert not (tmp_path / "c").exists()


@pytest.mark.slow  # ~43 s on 2 cores; the plain fine-tune's resume test stays in the default suite
def test_sigkill_then_rerun_resumes_to_the_uninterrupted_lora_run(lora_run, initial_checkpoint,
                                                                  tmp_path):
  reference_dir, _ = lora_run
  model_dir = tmp_path / "model"
  bindings = lora_bindings(model_dir, initial_checkpoint)
  saved = train_then_sigkill(LORA_GIN, bindings, model_dir, tmp_path / "killed.log")
  assert saved and 4 <= saved[-1] < LORA_STEPS, saved

  rerun = run_t5x("t5x.train", LORA_GIN, bindings, str(tmp_path / "rerun.log"))
  assert rerun.returncode == 0, rerun.log[-3000:]
  assert f"Starting main loop over steps {saved[-1]}-{LORA_STEPS}" in rerun.log
  # Resumed from its own checkpoint (adapters and optimizer state), not the initial one.
  assert "adapter tensors start from scratch" not in rerun.log
  resumed, step = t5x_export.load_t5x_params(str(model_dir / f"checkpoint_{LORA_STEPS}"))
  reference, _ = t5x_export.load_t5x_params(
      str(reference_dir / f"checkpoint_{LORA_STEPS}"))
  assert step == LORA_STEPS
  assert max_abs_diff(resumed, reference) <= 1e-6


@pytest.mark.slow  # two t5x.infer runs, ~30 s each on 2 cores
def test_t5x_infer_scores_the_merged_checkpoint_like_the_adapted_one(lora_run,
                                                                     merged_checkpoint,
                                                                     tmp_path):
  """The merged checkpoint needs no adapter code: the plain model file scores it."""
  model_dir, _ = lora_run
  texts = ["Hello world! This is a test of the scoring path.",
           "Toolformer [Calculator(400 / 1400) -> 0.29] calls tools."]
  texts_file = tmp_path / "texts.jsonl"
  texts_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))

  def score(gin_files, checkpoint, name, **extra):
    out_dir = tmp_path / name
    run = run_t5x("t5x.infer", ("runs/score_texts.gin",) + gin_files, {
        "TEXT_FILES": f"[{quote(texts_file)}]", "CHECKPOINT_PATH": quote(checkpoint),
        "INFER_OUTPUT_DIR": quote(out_dir), "TASK_FEATURE_LENGTHS": "{'targets': 64}",
        **extra}, str(tmp_path / f"{name}.log"))
    assert run.returncode == 0, run.log[-3000:]
    (output,) = [p for p in out_dir.glob("*-score.jsonl*") if not p.name.endswith("COMPLETED")]
    return [json.loads(line)["score"] for line in output.read_text().splitlines()]

  merged = score(("models/gptj_tiny.gin",), merged_checkpoint, "merged")
  adapted = score(MODEL_GIN, model_dir / f"checkpoint_{LORA_STEPS}", "adapted",
                  LORA_RANK=str(RANK))
  np.testing.assert_allclose(merged, adapted, atol=1e-3, rtol=0)
