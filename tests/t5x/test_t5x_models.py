"""toolformer_jax.models: the t5x glue (perplexity metric, schedule, restore transform, data)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import seqio
import tensorflow as tf
from t5x import checkpoints
from t5x import optimizers

from toolformer_jax import models
from toolformer_jax.networks import gptj

VOCAB = 97


def _model(**kwargs):
  config = gptj.GPTJConfig.from_preset("tiny", vocab_size=VOCAB)
  return models.ToolformerDecoderOnlyModel(
      module=gptj.GPTJ(config), vocabulary=seqio.PassThroughVocabulary(VOCAB),
      optimizer_def=optimizers.adamw(learning_rate=1e-3), **kwargs)


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  targets = rng.integers(1, VOCAB, size=(2, 12)).astype(np.int32)
  targets[1, 9:] = 0  # padding
  inputs = np.concatenate([np.zeros((2, 1), np.int32), targets[:, :-1]], axis=1)
  return {"decoder_input_tokens": inputs, "decoder_target_tokens": targets,
          "decoder_loss_weights": (targets > 0).astype(np.float32)}


def _reference_perplexity(model, params, batch):
  logits = model._compute_logits(params, batch)  # pylint: disable=protected-access
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  token_lp = np.take_along_axis(np.asarray(log_probs),
                                batch["decoder_target_tokens"][..., None], axis=-1)[..., 0]
  weights = batch["decoder_loss_weights"]
  return float(np.exp(-np.sum(token_lp * weights) / np.sum(weights)))


@pytest.mark.parametrize("kwargs", [
    {}, {"loss_normalizing_factor": "NUM_REAL_TARGET_TOKENS"},
    {"loss_normalizing_factor": 3.0}, {"loss_normalizing_factor": "NUM_TOTAL_TARGET_TOKENS"},
    {"z_loss": 1e-4},
    {"label_smoothing": 0.1}])
def test_perplexity_metric_is_exp_of_mean_token_nll(kwargs):
  model = _model(**kwargs)
  batch = _batch()
  params = model.get_initial_variables(
      jax.random.PRNGKey(0), {"decoder_input_tokens": (2, 12)},
      {"decoder_input_tokens": jnp.int32})["params"]
  _, metrics = model.loss_fn(params, batch, dropout_rng=None)
  assert float(metrics["perplexity"].compute()) == pytest.approx(
      _reference_perplexity(model, params, batch), rel=1e-4)


def test_perplexity_accumulates_tokens_not_batch_means():
  a = models.Perplexity(total=jnp.array(2.0), count=jnp.array(1.0))
  b = models.Perplexity(total=jnp.array(4.0), count=jnp.array(4.0))
  assert float(a.merge(b).compute()) == pytest.approx(np.exp(6.0 / 5.0))


@pytest.mark.parametrize("step,expected", [
    (0, 0.0), (100, 5e-6), (199, 1e-5 * 199 / 200), (200, 1e-5), (1000, 1e-5), (2000, 1e-5)])
def test_learning_rate_is_the_papers(step, expected):
  schedule = models.learning_rate(2000, peak_learning_rate=1e-5, warmup_fraction=0.1)
  assert float(schedule(step)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("train_steps", [None, 0])
def test_learning_rate_without_training_is_constant(train_steps):
  assert float(models.learning_rate(train_steps)(0)) == pytest.approx(1e-5)


@pytest.mark.parametrize("kwargs,error", [
    ({"train_steps": -1}, "positive int"), ({"train_steps": 1.5}, "positive int"),
    ({"train_steps": 10, "peak_learning_rate": 0}, "peak_learning_rate"),
    ({"train_steps": 10, "warmup_fraction": 1.0}, "warmup_fraction")])
def test_learning_rate_rejects_bad_arguments(kwargs, error):
  with pytest.raises(ValueError, match=error):
    models.learning_rate(**kwargs)


def test_weight_decay_mask_decays_matrices_only():
  params = {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3), "emb": jnp.ones((4, 2)),
            "scale": jnp.ones(2)}
  assert models.weight_decay_mask(params) == {"kernel": True, "bias": False, "emb": True,
                                              "scale": False}


def test_save_best_checkpointer_is_a_partial_t5x_reads():
  best = models.save_best_checkpointer("toolformer_lm_wiki")
  assert isinstance(best, functools.partial) and best.func is checkpoints.SaveBestCheckpointer
  assert best.keywords["metric_name_to_monitor"] == \
      "inference_eval/toolformer_lm_wiki/eval/perplexity"
  assert best.keywords["metric_mode"] == "min"
  with pytest.raises(ValueError, match="metric_mode"):
    models.save_best_checkpointer("x", metric_mode="lowest")


def _state(params, with_optimizer=True):
  state = {"target": params, "state": {"step": np.int32(7)}}
  if with_optimizer:
    state["state"]["param_states"] = {"mu": params}
  return state


def test_initial_checkpoint_transform_keeps_only_parameters():
  params = {"a": {"kernel": np.zeros((2, 3))}, "b": np.zeros(4)}
  out = models.initial_checkpoint_transform(_state(params), _state(params))
  assert set(out) == {"target"} and out["target"] is params


def test_initial_checkpoint_transform_passes_through_when_resuming():
  state = _state({"b": np.zeros(4)})
  assert models.initial_checkpoint_transform(state, state, is_resuming=True) is state


@pytest.mark.parametrize("ckpt,error", [
    ({"b": np.zeros(4)}, "1 missing"),
    ({"a": {"kernel": np.zeros((3, 2))}, "b": np.zeros(4)}, "mis-shaped"),
])
def test_initial_checkpoint_transform_names_what_does_not_fit(ckpt, error):
  model_params = {"a": {"kernel": np.zeros((2, 3))}, "b": np.zeros(4)}
  with pytest.raises(ValueError, match=error):
    models.initial_checkpoint_transform(_state(ckpt, False), _state(model_params))


def test_initial_checkpoint_transform_needs_target():
  with pytest.raises(ValueError, match="no 'target'"):
    models.initial_checkpoint_transform({"state": {}}, _state({"b": np.zeros(1)}))


def test_resumable_iterator_restores_position_or_starts_fresh(tmp_path):
  ds = tf.data.Dataset.range(10).map(lambda x: {"x": x})
  it = models.ResumableTfDatasetIterator(ds, checkpoint=True)
  next(it), next(it), next(it)
  it.save(str(tmp_path / "pos"))
  resumed = models.ResumableTfDatasetIterator(ds, checkpoint=True)
  resumed.restore(str(tmp_path / "pos"))
  assert int(next(resumed)["x"]) == 3
  fresh = models.ResumableTfDatasetIterator(ds, checkpoint=True)
  fresh.restore(str(tmp_path / "no_state_here"))
  assert int(next(fresh)["x"]) == 0


def test_clipped_adamw_through_t5x_wrapper_follows_the_schedule():
  """The OPTIMIZER composition of gin/models/base/decoder.gin, built in Python."""
  optimizer = optimizers.chain([optax.clip_by_global_norm(1.0),
                                optax.adamw(models.learning_rate(20), weight_decay=0.01,
                                            mask=models.weight_decay_mask)])
  params = {"bias": jnp.zeros(3)}
  state = optimizer.init_state(params)
  grads = {"bias": jnp.full(3, 0.1)}
  updates = []
  for _ in range(4):
    new_params, state = optimizer.apply_gradient(None, params, state, grads)
    updates.append(float(new_params["bias"][0] - params["bias"][0]))
    params = new_params
  # Warm-up over 2 steps: lr 0, 5e-6, 1e-5, 1e-5 (Adam's normalised step is ~1).
  np.testing.assert_allclose(updates, [0.0, -5e-6, -1e-5, -1e-5], rtol=1e-3, atol=1e-12)
