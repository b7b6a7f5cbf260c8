"""`python -m t5x.train` with the project's gin files: learning, resumption, mesh sharding."""
import shutil

import numpy as np
import pytest

from t5x_testlib import (REFERENCE_LR, REFERENCE_STEPS, TRAIN_GIN, checkpoint_steps,
                         max_abs_diff, read_scalars, run_t5x, train_bindings,
                         train_then_sigkill)


def test_loss_drops_and_eval_reports_perplexity(reference_run):
  losses = reference_run.losses
  assert sorted(losses) == list(range(1, REFERENCE_STEPS + 1)), losses
  first = np.mean([losses[s] for s in (1, 2, 3)])
  last = np.mean([losses[s] for s in (REFERENCE_STEPS - 2, REFERENCE_STEPS - 1,
                                      REFERENCE_STEPS)])
  # ln(50400) = 10.8 at initialisation; a clear drop, not noise.
  assert first > 10.0
  assert last < first - 1.0, losses
  # Held-out perplexity (the project's metric) from the train-eval at the last step.
  perplexity = read_scalars(reference_run.model_dir, "training_eval/toolformer_lm_wiki",
                            "perplexity")
  loss = read_scalars(reference_run.model_dir, "training_eval/toolformer_lm_wiki", "loss")
  assert set(perplexity) == {REFERENCE_STEPS}
  assert perplexity[REFERENCE_STEPS] == pytest.approx(np.exp(loss[REFERENCE_STEPS]), rel=1e-4)
  assert perplexity[REFERENCE_STEPS] < 50400


def test_logged_schedule_is_linear_warmup_over_10_percent_then_constant(reference_run):
  """The learning rate t5x logged at every step: the paper's schedule, at REFERENCE_LR."""
  lr = read_scalars(reference_run.model_dir, "train", "learning_rate/current")
  assert sorted(lr) == list(range(1, REFERENCE_STEPS + 1)), lr
  warmup = round(0.1 * REFERENCE_STEPS)
  assert warmup == 2
  # Logged at step s is the rate of the s-th update (optimizer step s - 1): it rises
  # linearly from 0 over the first `warmup` updates, then stays at the peak.
  assert lr[1] == 0.0
  assert lr[2] == pytest.approx(REFERENCE_LR / 2, rel=1e-6)
  assert all(lr[s] == pytest.approx(REFERENCE_LR, rel=1e-6)
             for s in range(warmup + 1, REFERENCE_STEPS + 1)), lr
  np.testing.assert_allclose(
      [lr[s] for s in range(1, REFERENCE_STEPS + 1)],
      [REFERENCE_LR * min(1.0, (s - 1) / warmup) for s in range(1, REFERENCE_STEPS + 1)],
      rtol=1e-6, atol=0)


@pytest.mark.slow  # ~27 s on 2 cores; tests/test_partitioning.py shards params in the default suite
def test_2x2_mesh_shards_params_on_model_and_matches_one_device(reference_run,
                                                                initial_checkpoint, tmp_path):
  model_dir = tmp_path / "model"
  steps = 6
  run = run_t5x("t5x.train", TRAIN_GIN,
                train_bindings(model_dir, initial_checkpoint, steps,
                               EVAL_PERIOD=str(steps),
                               # The reference run's schedule (its 2-step warm-up), so
                               # that the first steps' losses can be compared.
                               **{"toolformer_models.learning_rate.train_steps":
                                      str(REFERENCE_STEPS),
                                  # On CPU t5x ignores num_partitions (its CPU mesh puts
                                  # every local device on `model`): a 2x2 mesh needs the
                                  # submesh.
                                  "partitioning.PjitPartitioner.num_partitions": "None",
                                  "partitioning.PjitPartitioner.model_parallel_submesh":
                                      "(1, 1, 1, 2)",
                                  "train.train_eval_dataset_cfg": "None"}),
                str(tmp_path / "train.log"), devices=4)
  assert run.returncode == 0, run.log[-3000:]
  assert "global_mesh devices shape: (2, 2)" in run.log, run.log[-3000:]
  info = (model_dir / "model-info.txt").read_text()
  sharded = [line.split()[1] for line in info.splitlines()
             if line.startswith("Variable ") and "'model'" in line and "param_states" not in line]
  for name in ("token_embedder/embedding", "lm_head/kernel", "layers_0/mlp/fc_in/kernel",
               "layers_0/attn/query/kernel", "layers_1/attn/out/kernel"):
    assert name in sharded, info
  losses = read_scalars(model_dir, "train", "loss")
  for step in range(1, 6):
    assert losses[step] == pytest.approx(reference_run.losses[step], abs=1e-4), (
        step, losses, reference_run.losses)


@pytest.mark.slow  # ~40 s on 2 cores
def test_sigkill_then_rerun_resumes_and_matches_uninterrupted(reference_run,
                                                              initial_checkpoint, tmp_path):
  model_dir = tmp_path / "model"
  bindings = train_bindings(model_dir, initial_checkpoint, REFERENCE_STEPS)
  saved = train_then_sigkill(TRAIN_GIN, bindings, model_dir, tmp_path / "killed.log")
  assert saved and 4 <= saved[-1] < REFERENCE_STEPS, saved

  rerun = run_t5x("t5x.train", TRAIN_GIN, bindings, str(tmp_path / "rerun.log"))
  assert rerun.returncode == 0, rerun.log[-3000:]
  assert f"Starting main loop over steps {saved[-1]}-{REFERENCE_STEPS}" in rerun.log

  from toolformer_jax.checkpoints import t5x_export  # pylint: disable=g-import-not-at-top
  resumed, step = t5x_export.load_t5x_params(str(model_dir / f"checkpoint_{REFERENCE_STEPS}"))
  reference, ref_step = t5x_export.load_t5x_params(
      str(reference_run.model_dir / f"checkpoint_{REFERENCE_STEPS}"))
  assert step == ref_step == REFERENCE_STEPS
  assert max_abs_diff(resumed, reference) <= 1e-6


@pytest.fixture
def finished_run_dir(reference_run, tmp_path):
  """A MODEL_DIR of its own holding the reference run's final checkpoint (left untouched)."""
  model_dir = tmp_path / "model"
  name = f"checkpoint_{REFERENCE_STEPS}"
  shutil.copytree(reference_run.model_dir / name, model_dir / name)
  return model_dir


def test_second_invocation_resumes_to_new_train_steps(reference_run, finished_run_dir,
                                                      tmp_path):
  model_dir = finished_run_dir
  assert checkpoint_steps(model_dir) == [REFERENCE_STEPS]
  new_steps = REFERENCE_STEPS + 4
  run = run_t5x("t5x.train", TRAIN_GIN,
                train_bindings(model_dir, None, new_steps, EVAL_PERIOD=str(new_steps)),
                str(tmp_path / "resume.log"))
  assert run.returncode == 0, run.log[-3000:]
  assert f"Starting main loop over steps {REFERENCE_STEPS}-{new_steps}" in run.log
  assert checkpoint_steps(model_dir)[-1] == new_steps
  losses = read_scalars(model_dir, "train", "loss")
  assert sorted(losses) == list(range(REFERENCE_STEPS + 1, new_steps + 1)), losses
  # It continued from the trained state, not from scratch (ln 50400 = 10.8).
  assert max(losses[s] for s in range(REFERENCE_STEPS + 1, new_steps + 1)) < \
      np.mean([reference_run.losses[s] for s in (1, 2, 3)]) - 1.0
  # The shared reference run was left as it was.
  assert checkpoint_steps(reference_run.model_dir)[-1] == REFERENCE_STEPS


def _state_keys(checkpoint_dir) -> set:
  """The top-level 'state' entries a t5x orbax checkpoint stores (from its metadata)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with ocp.PyTreeCheckpointer() as checkpointer:
    metadata = checkpointer.metadata(str(checkpoint_dir / "state"))
  tree = getattr(metadata, "item_metadata", metadata)
  tree = getattr(tree, "tree", tree)
  return set(tree["state"])


def test_checkpoints_without_optimizer_state_hold_the_params_and_step(reference_run,
                                                                     initial_checkpoint,
                                                                     tmp_path):
  """SAVE_OPTIMIZER_STATE=False: the checkpoints hold the parameters (the reference run's)
  and the step, not AdamW's moments (t5x's InferenceState layout)."""
  model_dir = tmp_path / "model"
  steps = 4
  lean = {"SAVE_OPTIMIZER_STATE": "False",
          "utils.SaveCheckpointConfig.period": str(steps), "EVAL_PERIOD": str(steps),
          "toolformer_models.learning_rate.train_steps": str(REFERENCE_STEPS)}
  run = run_t5x("t5x.train", TRAIN_GIN, train_bindings(model_dir, initial_checkpoint, steps,
                                                       **lean),
                str(tmp_path / "train.log"))
  assert run.returncode == 0, run.log[-3000:]
  # t5x writes one before the first step; keep-best keeps it (it has no metric).
  assert checkpoint_steps(model_dir) == [0, steps]
  assert _state_keys(model_dir / "checkpoint_0") == {"step"}
  assert _state_keys(model_dir / f"checkpoint_{steps}") == {"step"}
  assert "param_states" in _state_keys(reference_run.model_dir / f"checkpoint_{steps}")
  from toolformer_jax.checkpoints import t5x_export  # pylint: disable=g-import-not-at-top
  lean_params, step = t5x_export.load_t5x_params(str(model_dir / f"checkpoint_{steps}"))
  reference, _ = t5x_export.load_t5x_params(
      str(reference_run.model_dir / f"checkpoint_{steps}"))
  assert step == steps
  assert max_abs_diff(lean_params, reference) <= 1e-6
