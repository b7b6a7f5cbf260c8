"""Scripted calls for the t5x.infer tool-decoding test, bound through gin.

`calculator_script()` is a ToolSampler logit_callback_fn: at decoding step 2 of every row
it makes " [" the most likely token (so the trigger fires), then forces the tokens of
SCRIPT until the call is closed by "->"; " [" is pushed to the bottom everywhere else.
A random tiny model thus calls the real Calculator exactly once per output.
"""
import jax
import jax.numpy as jnp

from toolformer_jax import vocab as vocab_lib

SCRIPT = "Calculator(3 * 4) ->"
TRIGGER_STEP = 2


def calculator_script():
  vocabulary = vocab_lib.Gpt2Vocabulary()
  call_id = vocab_lib.single_token_id(vocabulary, " [")
  script = jnp.asarray(vocabulary.encode(SCRIPT), jnp.int32)

  def callback(logits, state):
    top = jnp.max(logits, axis=-1)
    trigger = (state.step == TRIGGER_STEP) & (state.num_calls == 0)
    logits = logits.at[:, call_id].set(jnp.where(trigger, top + 1.0, -1e9))
    offset = state.cur_index - state.call_start
    forced = script[jnp.clip(offset, 0, script.shape[0] - 1)]
    force = state.in_call & (offset < script.shape[0])
    boost = jax.nn.one_hot(forced, logits.shape[-1]) * 1e9
    return jnp.where(force[:, None], logits + boost, logits)

  return callback
