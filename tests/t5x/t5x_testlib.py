"""Helpers and fixtures of the t5x tests: t5x entry points run in subprocesses with gin/.

The expensive pieces are session-scoped fixtures (registered by conftest.py): one tiny
initial checkpoint and one reference fine-tuning run (`reference_run`), which several tests
compare against.
"""
import atexit
import dataclasses
import glob
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest

from cpu_env import xla_flags

REPO = pathlib.Path(__file__).resolve().parents[2]
GIN_DIR = REPO / "gin"
SEQ_LEN = 32
BATCH = 8
REFERENCE_STEPS = 20  # the paper's 10% warm-up is then 2 steps: a visible linear ramp
REFERENCE_LR = 1e-2  # high on purpose: the loss must drop clearly within a few steps
# JAX's persistent compilation cache, shared by the subprocesses of one test session: the
# runs compile the same tiny programs (same executables, so no effect on the numbers).
JAX_CACHE_DIR = tempfile.mkdtemp(prefix="toolformer_t5x_tests_jax_cache_")
atexit.register(shutil.rmtree, JAX_CACHE_DIR, ignore_errors=True)


def subprocess_env(devices: int = 1, **extra: str) -> Dict[str, str]:
  env = dict(os.environ)
  env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0",
             JAX_COMPILATION_CACHE_DIR=JAX_CACHE_DIR,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  env["XLA_FLAGS"] = xla_flags(devices)
  env.update(extra)
  return env


def t5x_command(module: str, gin_files: Sequence[str], bindings: Dict[str, str]) -> List[str]:
  cmd = [sys.executable, "-m", module, f"--gin_search_paths={GIN_DIR}"]
  cmd += [f"--gin_file={f}" for f in gin_files]
  cmd += [f"--gin.{k}={v}" for k, v in bindings.items()]
  return cmd


@dataclasses.dataclass
class Run:
  returncode: int
  log: str
  seconds: float


def run_t5x(module: str, gin_files: Sequence[str], bindings: Dict[str, str], log_path: str,
            devices: int = 1, timeout: float = 600) -> Run:
  """Runs `python -m <module>` to completion; its output goes to `log_path`."""
  start = time.time()
  with open(log_path, "w") as log:
    proc = subprocess.run(t5x_command(module, gin_files, bindings), cwd=REPO, stdout=log,
                          stderr=subprocess.STDOUT, env=subprocess_env(devices),
                          timeout=timeout, check=False)
  return Run(proc.returncode, pathlib.Path(log_path).read_text(errors="replace"),
             time.time() - start)


def quote(value: str) -> str:
  return repr(str(value))


def train_bindings(model_dir, initial_checkpoint: Optional[str], steps: int,
                   **overrides: str) -> Dict[str, str]:
  """Small-run bindings on top of runs/finetune_toolformer.gin (values are gin literals)."""
  bindings = {
      "MODEL_DIR": quote(model_dir),
      "INITIAL_CHECKPOINT_PATH": quote(initial_checkpoint) if initial_checkpoint else "None",
      "TASK_FEATURE_LENGTHS": f"{{'targets': {SEQ_LEN}}}",
      "BATCH_SIZE": str(BATCH),
      "TRAIN_STEPS": str(steps),
      "LEARNING_RATE": str(REFERENCE_LR),
      "EVAL_PERIOD": str(REFERENCE_STEPS),
      "utils.SaveCheckpointConfig.period": "4",
      "train.stats_period": "1",
      "train.run_eval_before_training": "False",
      "train.infer_eval_dataset_cfg": "None",
  }
  bindings.update(overrides)
  return bindings


TRAIN_GIN = ("runs/finetune_toolformer.gin", "models/gptj_tiny.gin")


def read_scalars(model_dir, run: str, tag: str) -> Dict[int, float]:
  """{step: value} of a TensorBoard scalar written by t5x under MODEL_DIR/<run>."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  values = {}
  for path in sorted(glob.glob(os.path.join(str(model_dir), run, "events.out.tfevents.*"))):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.tag == tag:
          values[event.step] = float(tf.make_ndarray(value.tensor)) if value.HasField(
              "tensor") else float(value.simple_value)
  return values


def checkpoint_steps(model_dir) -> List[int]:
  """Steps of the committed t5x checkpoints under `model_dir`."""
  steps = []
  for path in glob.glob(os.path.join(str(model_dir), "checkpoint_*")):
    name = os.path.basename(path)
    if name.split("_")[-1].isdigit() and os.path.exists(os.path.join(path, "commit_success.txt")):
      steps.append(int(name.split("_")[-1]))
  return sorted(steps)


def kill_group(proc: subprocess.Popen) -> None:
  if proc.poll() is None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def train_then_sigkill(gin_files: Sequence[str], bindings: Dict[str, str], model_dir,
                       log_path, min_step: int = 4) -> List[int]:
  """Starts `t5x.train`, SIGKILLs it once a checkpoint of step >= min_step is committed;
  returns the committed checkpoint steps. Fails if the run ended before it was killed."""
  with open(log_path, "w") as log:
    proc = subprocess.Popen(t5x_command("t5x.train", gin_files, bindings), stdout=log,
                            stderr=subprocess.STDOUT, env=subprocess_env(),
                            start_new_session=True)
  try:
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
      if any(s >= min_step for s in checkpoint_steps(model_dir)):
        break
      time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
  finally:
    kill_group(proc)
  return checkpoint_steps(model_dir)


def max_abs_diff(a, b) -> float:
  import jax  # pylint: disable=g-import-not-at-top
  diffs = jax.tree.leaves(jax.tree.map(
      lambda x, y: float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))),
      a, b))
  return max(diffs)


@pytest.fixture(scope="session")
def initial_checkpoint(tmp_path_factory) -> str:
  """A randomly initialised gptj_tiny (GPT-2 vocabulary) as a t5x checkpoint at step 0."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from toolformer_jax.checkpoints import t5x_export  # pylint: disable=g-import-not-at-top
  from toolformer_jax.networks import gptj  # pylint: disable=g-import-not-at-top
  config = gptj_tiny_config()
  module = gptj.GPTJ(config)
  tokens = jnp.ones((1, 8), jnp.int32)
  params = module.init(jax.random.PRNGKey(0), tokens, tokens, enable_dropout=False)["params"]
  params = jax.tree.map(np.asarray, params)
  return t5x_export.save_t5x_checkpoint(params, module, str(tmp_path_factory.mktemp("init")))


def gptj_tiny_config():
  """The GPTJConfig that gin/models/gptj_tiny.gin binds (parsed from the gin files)."""
  import gin  # pylint: disable=g-import-not-at-top
  from toolformer_jax.networks import gptj  # pylint: disable=g-import-not-at-top
  with gin.unlock_config():
    gin.clear_config()
    gin.add_config_file_search_path(str(GIN_DIR))
    gin.parse_config_files_and_bindings([str(GIN_DIR / "models/gptj_tiny.gin")],
                                        ["TRAIN_STEPS = None"], skip_unknown=False,
                                        finalize_config=False)
    config = gin.get_configurable(gptj.GPTJConfig)()
    gin.clear_config()
  return config


@dataclasses.dataclass
class ReferenceRun:
  model_dir: pathlib.Path
  run: Run
  losses: Dict[int, float]


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, initial_checkpoint) -> ReferenceRun:
  """gptj_tiny fine-tuned for REFERENCE_STEPS steps on one CPU device, checkpoints every 4."""
  model_dir = tmp_path_factory.mktemp("reference") / "model"
  run = run_t5x("t5x.train", TRAIN_GIN,
                train_bindings(model_dir, initial_checkpoint, REFERENCE_STEPS),
                str(model_dir.parent / "train.log"))
  assert run.returncode == 0, run.log[-3000:]
  return ReferenceRun(model_dir, run, read_scalars(model_dir, "train", "loss"))
