"""The gin files: every model size builds, the schedule is the paper's, bad configs fail early."""
import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from t5x import partitioning as t5x_partitioning

from t5x_testlib import GIN_DIR, TRAIN_GIN, quote, run_t5x, train_bindings
from toolformer_jax import models as toolformer_models
from toolformer_jax import partitioning
from toolformer_jax import vocab as vocab_lib
from toolformer_jax.networks import gptj
from toolformer_jax.networks import llama


def _parse(model_file, bindings=()):
  gin.clear_config()
  gin.add_config_file_search_path(str(GIN_DIR))
  gin.parse_config_files_and_bindings([str(GIN_DIR / model_file)], list(bindings),
                                      finalize_config=False)


@pytest.fixture
def clean_gin():
  yield
  gin.clear_config()


def _model(model_file, train_steps="None"):
  _parse(model_file, [f"TRAIN_STEPS = {train_steps}"])
  return gin.get_configurable(toolformer_models.ToolformerDecoderOnlyModel)()


@pytest.mark.parametrize("model_file,preset,params_millions", [
    ("models/gptj_tiny.gin", "tiny", 6.6),
    ("models/gptj_125m.gin", "125m", 163.0),
    ("models/gptj_1b.gin", "1b", 1014.0),
    ("models/gptj_6b.gin", "6b", 6051.0),
])
def test_gptj_model_files(model_file, preset, params_millions, clean_gin):
  model = _model(model_file)
  assert isinstance(model.module, gptj.GPTJ)
  assert model.input_vocabulary == vocab_lib.Gpt2Vocabulary()
  config = model.module.config
  assert config.preset == preset  # sizes come from the one preset table
  expected = gptj.GPTJConfig.from_preset(preset, vocab_size=50400)
  for field in ("d_model", "num_layers", "num_heads", "head_dim", "rotary_dim", "d_ff",
                "layer_norm_eps", "rotary_base", "max_positions"):
    assert getattr(config, field) == getattr(expected, field), field
  assert config.vocab_size == model.input_vocabulary.vocab_size == 50400
  assert gptj.count_params(config) / 1e6 == pytest.approx(params_millions, rel=0.01)


def test_smollm2_model_file(clean_gin):
  model = _model("models/smollm2_135m.gin")
  assert isinstance(model.module, llama.Llama)
  assert model.module.config.preset == "smollm2_135m"
  assert model.module.config == llama.LlamaConfig.from_preset("smollm2_135m")
  assert model.input_vocabulary == vocab_lib.GgufBpeVocabulary()


def test_schedule_of_the_model_files_is_the_papers(clean_gin):
  """lr 1e-5, linear warm-up over the first 10% of 2000 steps, constant to the end."""
  model = _model("models/gptj_6b.gin", train_steps=2000)
  schedule = gin.get_configurable(toolformer_models.learning_rate)()
  assert float(schedule(0)) == 0.0
  assert float(schedule(200)) == pytest.approx(1e-5)
  assert float(schedule(2000)) == pytest.approx(1e-5)
  # The optimizer the model carries applies it: Adam's normalised step on a bias (not
  # weight-decayed) equals the learning rate.
  optax_optimizer = model.optimizer_def.optax_optimizer
  params = {"bias": jnp.zeros(2)}
  grads = {"bias": jnp.full(2, 0.5)}

  @jax.jit
  def run(params):
    def step(carry, _):
      params, state = carry
      updates, state = optax_optimizer.update(grads, state, params)
      return (params, state), updates["bias"][0]
    _, updates = jax.lax.scan(step, (params, optax_optimizer.init(params)), None, length=2001)
    return updates

  updates = np.asarray(run(params))
  assert updates[0] == 0.0  # step 0
  assert -updates[100] == pytest.approx(5e-6, rel=1e-3)
  assert -updates[200] == pytest.approx(1e-5, rel=1e-3)  # end of warm-up
  assert -updates[2000] == pytest.approx(1e-5, rel=1e-3)  # end


def test_gin_axis_rules_equal_the_project_rules(clean_gin):
  _model("models/gptj_tiny.gin")
  rules = gin.get_configurable(t5x_partitioning.standard_logical_axis_rules)()
  names = [name for name, _ in partitioning.LOGICAL_AXIS_RULES]
  from flax.linen import partitioning as flax_partitioning  # pylint: disable=g-import-not-at-top
  for name in names:
    assert flax_partitioning.logical_to_mesh_axes((name,), rules) == \
        partitioning.logical_to_spec((name,)), name


@pytest.mark.parametrize("binding,message", [
    ({"gptj.GPTJConfig.num_layer": "3"}, "num_layer"),
    # ~8 s each on 2 cores (a t5x.train start-up): the slow suite has these two.
    pytest.param({"MIXTURE_OR_TASK_NAME": quote("toolformer_no_such_task")},
                 "toolformer_no_such_task", marks=pytest.mark.slow),
    pytest.param({"ANNOTATED_DIR": quote("/nonexistent/annotated")}, "does not exist",
                 marks=pytest.mark.slow),
    # An unrolled checkpoint for a scanned model (gptj_6b scans; convert --scan_layers).
    ({"gptj.GPTJConfig.scan_layers": "True"}, "does not fit the model"),
])
def test_bad_config_fails_at_start_up(binding, message, initial_checkpoint, tmp_path):
  bindings = train_bindings(tmp_path / "model", initial_checkpoint, 4, **binding)
  run = run_t5x("t5x.train", TRAIN_GIN, bindings, str(tmp_path / "train.log"))
  assert run.returncode != 0
  assert message in run.log
  assert "Starting main loop" not in run.log
