"""t5x glue for fine-tuning with `python -m t5x.train` (imports t5x; the core package does not).

What t5x lacks and Toolformer fine-tuning needs, and nothing more:

* `ToolformerDecoderOnlyModel`: t5x's stock `DecoderOnlyModel` plus a `perplexity` metric.
  The paper evaluates perplexity on held-out text during fine-tuning and keeps the best
  checkpoint; t5x reports only losses. The metric accumulates summed token NLL and token
  counts across eval batches and exponentiates at the end (exp of the mean, not a mean of
  per-batch perplexities); tokens weigh what t5x's loss weights say (1 per target token
  unless `loss_normalizing_factor='AVERAGE_PER_SEQUENCE'` reweights them). Training,
  scoring and decoding are the stock ones.
* Tool-use decoding: with `decode_fn = ToolSampler(...)` (toolformer_jax.decoding.
  tool_decoding; gin/models/base/tool_decoding.gin) `_compute_logits_from_slice` also runs
  the sampler's extend step (several tokens per row in one call, `decode_lengths`), and
  `predict_batch_with_aux` adds the calls made (`call_*` arrays) to the aux outputs.
* `learning_rate`: the paper's schedule (lr 1e-5, linear warm-up over the first 10% of the
  steps from 0, then constant) as an optax schedule for `optax.adamw`; t5x's
  `create_learning_rate_scheduler` cannot express "10% of TRAIN_STEPS".
* `weight_decay_mask`: AdamW decays matrices (kernels, embeddings) only, not biases and norm
  scales.
* `save_best_checkpointer`: keep-best by a metric with t5x's orbax checkpoint manager. t5x
  reads the metric settings only from a `functools.partial` of `SaveBestCheckpointer`,
  which gin cannot write; this returns one.
* `checkpoint_contents`: checkpoints without the optimizer state (parameters and step), for
  runs that are evaluated, not resumed (the demo: two rounds of four fine-tunes).
* `get_dataset`: t5x's `utils.get_dataset` whose iterator restores its saved position when
  the checkpoint has one and otherwise starts at the beginning. With
  `SaveCheckpointConfig.save_dataset = True` (exact resumption of the input pipeline after
  preemption) t5x would otherwise fail to start from a parameters-only initial checkpoint,
  because it restores pipeline state from whatever checkpoint it restores.
* `initial_checkpoint_transform`: fine-tuning starts from a converted checkpoint holding
  parameters only (`python -m toolformer_jax.convert --to t5x`). This restore
  transformation checks that the checkpoint has every parameter of the model (names and,
  where recorded, shapes) and takes only the parameters from it; the step and the optimizer
  state start fresh (with `fallback_to_scratch`). On resumption from MODEL_DIR it changes
  nothing, so a preempted run continues exactly. A LoRA model (gin/models/lora.gin) starts
  from the same plain checkpoint: its adapters are not in it, so they start from scratch
  (A random, B = 0: the base model exactly) while every base weight is checked and restored.
* `adapters_only`: the optimizer of LoRA fine-tuning, t5x's optax wrapper around
  `optax.multi_transform` that runs the usual chain (clipping, AdamW) on the adapters and
  `optax.set_to_zero` on everything else, so the frozen weights never change and the
  optimizer state (AdamW's moments) holds the adapters alone. Gradient clipping then sees
  the adapters' gradients only.
"""
from __future__ import annotations

import functools
from typing import Any, Mapping, Optional, Sequence

from absl import logging
from clu import metrics as clu_metrics
from clu.data import dataset_iterator as clu_dataset_iterator
import flax
from flax import traverse_util
import jax
import jax.numpy as jnp
import optax
from t5x import checkpoints
from t5x import losses
from t5x import models
from t5x import optimizers
from t5x import utils
import tensorflow as tf

from toolformer_jax.checkpoints import t5x_export
from toolformer_jax.networks import lora


# --- model -----------------------------------------------------------------------------------
@flax.struct.dataclass
class Perplexity(clu_metrics.Average):
  """exp(summed token NLL / number of tokens), accumulated over batches."""

  def compute(self) -> jnp.ndarray:
    return jnp.exp(super().compute())


class ToolformerDecoderOnlyModel(models.DecoderOnlyModel):
  """`models.DecoderOnlyModel` with a `perplexity` metric (see module docstring)."""

  def _compute_metrics(self, logits, targets, mask, loss, z_loss=None, segment_ids=None):
    metrics = super()._compute_metrics(logits=logits, targets=targets, mask=mask, loss=loss,
                                       z_loss=z_loss, segment_ids=segment_ids)
    weights = jnp.ones(targets.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
    factor = self._normalizing_factor(weights)
    if self._label_smoothing == 0 and self._z_loss == 0 and factor is not None:
      nll_sum = loss * factor  # t5x's loss is then the summed token cross-entropy / factor
    else:
      log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # [b, l, vocab]
      token_log_probs = jnp.take_along_axis(
          log_probs, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]  # [b, l]
      nll_sum = -jnp.sum(token_log_probs * weights)
    metrics["perplexity"] = Perplexity(total=nll_sum, count=jnp.sum(weights))
    return metrics

  def _normalizing_factor(self, weights: jnp.ndarray) -> Optional[Any]:
    """What t5x divided the summed loss by, where it is known here; else None."""
    factor = self._loss_normalizing_factor
    if factor is None:
      return 1.0
    if isinstance(factor, str):
      factor = losses.convert_special_loss_normalizing_factor_to_enum(factor)
    if factor == losses.SpecialLossNormalizingFactor.NUM_REAL_TARGET_TOKENS:
      return jnp.sum(weights)
    if isinstance(factor, (int, float)) and not isinstance(factor, bool):
      return float(factor)
    return None

  # Tool-use decoding (toolformer_jax.decoding.tool_decoding.ToolSampler as decode_fn).
  def _compute_logits_from_slice(self, decoding_state, params, max_decode_length):
    """t5x's one-token step, plus the extend step of tool decoding: a state with
    `decode_lengths` [batch] appends that many of its cur_token [batch, n] per row to the
    cache in one call and returns the logits at each row's last real token."""
    lengths = getattr(decoding_state, "decode_lengths", None)
    if lengths is None:
      return super()._compute_logits_from_slice(decoding_state, params, max_decode_length)
    tokens = decoding_state.cur_token
    logits, new_vars = self.module.apply(
        {"params": params, "cache": decoding_state.cache}, tokens, tokens,
        enable_dropout=False, decode=True, max_decode_length=max_decode_length,
        decode_lengths=lengths, output_positions=jnp.maximum(lengths - 1, 0)[:, None],
        mutable=["cache"])
    return logits[:, 0], new_vars["cache"]

  def predict_batch_with_aux(self, params, batch, rng=None, **kwargs):
    """t5x's, plus the calls of a tool-using decode_fn (one with `capture_aux`) in aux."""
    capture = getattr(self._decode_fn, "capture_aux", None)
    if capture is None:
      return super().predict_batch_with_aux(params, batch, rng, **kwargs)
    with capture() as box:
      sequences, aux = super().predict_batch_with_aux(params, batch, rng, **kwargs)
    calls = box.aux or {}
    if not kwargs.get("return_all_decodes", False):
      calls = {k: v[:, -1] for k, v in calls.items()}  # the decode t5x returns
    return sequences, {**aux, **calls}


# --- optimizer -------------------------------------------------------------------------------
def learning_rate(train_steps: Optional[int], peak_learning_rate: float = 1e-5,
                  warmup_fraction: float = 0.1) -> optax.Schedule:
  """Linear warm-up from 0 to `peak_learning_rate` over `warmup_fraction` of the steps.

  The value at optimizer step s (0-based count of updates done) is
  peak * min(1, s / warmup_steps) with warmup_steps = round(warmup_fraction * train_steps)
  (at least 1). `train_steps` None or 0 (eval and infer runs, which never update) gives
  the constant peak.
  """
  if not peak_learning_rate > 0:
    raise ValueError(f"peak_learning_rate must be > 0, got {peak_learning_rate}")
  if not 0 <= warmup_fraction < 1:
    raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
  if train_steps is None or (isinstance(train_steps, int) and train_steps == 0):
    logging.info("learning_rate: no TRAIN_STEPS (not a training run); constant %g",
                 peak_learning_rate)
    return optax.constant_schedule(peak_learning_rate)
  if isinstance(train_steps, bool) or not isinstance(train_steps, int) or train_steps < 1:
    raise ValueError(f"train_steps must be a positive int, got {train_steps!r}")
  if warmup_fraction == 0:
    return optax.constant_schedule(peak_learning_rate)
  warmup_steps = max(1, round(warmup_fraction * train_steps))
  return optax.warmup_constant_schedule(init_value=0.0, peak_value=peak_learning_rate,
                                        warmup_steps=warmup_steps)


def weight_decay_mask(params: Any) -> Any:
  """True for parameters with >= 2 dimensions (decayed by AdamW), False for the rest."""
  return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def adapters_only(transformations: Sequence[optax.GradientTransformation]
                  ) -> optimizers.OptaxWrapper:
  """`transformations` chained on the LoRA adapters, zero updates for every other parameter.

  A t5x optimizer (t5x's partition rules cover multi_transform's and masked's states, so
  the adapters' moments shard like the adapters). Fails at initialisation if the model
  has no adapters.
  """
  return optimizers.OptaxWrapper(optax.multi_transform(
      {lora.ADAPTER: optax.chain(*transformations), lora.FROZEN: optax.set_to_zero()},
      lora.param_labels))


# --- checkpoints -----------------------------------------------------------------------------
def save_best_checkpointer(eval_task_name: str,
                           metric_path: str = "inference_eval/{task}/eval/perplexity",
                           metric_mode: str = "min",
                           keep_checkpoints_without_metrics: bool = True,
                           force_keep_period: Optional[int] = None):
  """`SaveBestCheckpointer` bound to one eval metric, in the form t5x's orbax path reads.

  `metric_path` is `<TensorBoard run under MODEL_DIR>/<tag>` with `{task}` replaced by
  `eval_task_name`. The default is the exact validation perplexity of the infer-eval
  (seqio writes its metrics as `eval/<name>`); the teacher-forced one is
  'training_eval/{task}/perplexity'. With `utils.SaveCheckpointConfig.keep = k` the k best
  checkpoints are kept, plus those not yet evaluated (always including the newest, which
  resumption needs).
  """
  if metric_mode not in ("min", "max"):
    raise ValueError(f"metric_mode must be 'min' or 'max', got {metric_mode!r}")
  if not eval_task_name:
    raise ValueError("save_best_checkpointer needs eval_task_name")
  metric_name = metric_path.format(task=eval_task_name)
  if metric_name.count("/") < 1:
    raise ValueError(f"metric path {metric_name!r} must be '<run>/<tag>'")
  return functools.partial(checkpoints.SaveBestCheckpointer,
                           metric_name_to_monitor=metric_name,
                           metric_mode=metric_mode,
                           keep_checkpoints_without_metrics=keep_checkpoints_without_metrics,
                           force_keep_period=force_keep_period)


def initial_checkpoint_transform(ckpt_state: Mapping[str, Any],
                                 model_state: Mapping[str, Any],
                                 is_resuming: bool = False) -> Mapping[str, Any]:
  """Restore transformation for INITIAL_CHECKPOINT_PATH (see module docstring).

  Raises ValueError (`t5x_export.T5xCheckpointError`, the check `convert --to t5x` runs too)
  naming the parameters the checkpoint lacks or has with another shape.
  """
  if is_resuming:
    return ckpt_state
  if "target" not in ckpt_state:
    raise ValueError("the initial checkpoint has no 'target' (parameters); convert one with "
                     "`python -m toolformer_jax.convert --to t5x`")
  wanted = model_state["target"]
  if not lora.has_adapters(ckpt_state["target"]):
    # A plain checkpoint for a LoRA model: the adapters start from scratch (fallback).
    wanted, adapters = lora.split(wanted)
    if adapters:
      logging.info("initial checkpoint: no LoRA adapters in it; %d adapter tensors start "
                   "from scratch (A random, B = 0)",
                   len(traverse_util.flatten_dict(adapters)))
  unused = t5x_export.check_fit(
      ckpt_state["target"], wanted, allow_unexpected=True,
      what="the initial checkpoint does not fit the model (is the model gin file the one the "
      "checkpoint was converted for, with the same --scan_layers?)")
  if unused:
    logging.warning("initial checkpoint: %d parameters not in the model are ignored: %s",
                    len(unused), list(unused[:10]))
  logging.info("initial checkpoint: restoring %d parameters; step and optimizer state "
               "start fresh", len(traverse_util.flatten_dict(dict(wanted))))
  return {"target": ckpt_state["target"]}


def checkpoint_contents(optimizer_state: bool = True) -> list:
  """`utils.SaveCheckpointConfig.state_transformation_fns` for what a checkpoint holds.

  optimizer_state=False saves the parameters and the step only (t5x's InferenceState
  layout, as `convert --to t5x` writes): a third of the size with AdamW, for runs that are
  evaluated and not resumed. t5x.train cannot resume from such a checkpoint (its resumption
  restores the optimizer state strictly); t5x.eval, t5x.infer and the annotation CLI read it.
  """
  if optimizer_state:
    return []

  def drop_optimizer_state(state_dict, parameter_infos):
    def without(tree):
      tree = dict(tree)
      tree["state"] = {k: v for k, v in tree["state"].items() if k != "param_states"}
      return tree
    return without(state_dict), without(parameter_infos)

  return [drop_optimizer_state]


# --- input pipeline --------------------------------------------------------------------------
class ResumableTfDatasetIterator(clu_dataset_iterator.TfDatasetIterator):
  """A checkpointed tf.data iterator that starts afresh if a checkpoint holds no state for it."""

  def restore(self, filename) -> None:
    if not tf.io.gfile.exists(f"{filename}.index"):
      logging.warning("no input-pipeline state at %s (a parameters-only checkpoint): the "
                      "training data starts from the beginning", filename)
      return
    super().restore(filename)


def get_dataset(cfg: utils.DatasetConfig, shard_id: int, num_shards: int,
                feature_converter_cls, num_epochs: Optional[int] = None,
                continue_from_last_checkpoint: bool = False):
  """`t5x.utils.get_dataset` wrapped in a `ResumableTfDatasetIterator` (module docstring)."""
  ds = utils.get_dataset(cfg, shard_id, num_shards, feature_converter_cls,
                         num_epochs=num_epochs,
                         continue_from_last_checkpoint=continue_from_last_checkpoint)
  if isinstance(ds, tf.data.Dataset):
    return ResumableTfDatasetIterator(ds, checkpoint=True)
  return ds
