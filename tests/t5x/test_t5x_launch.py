"""launch/launch.py: exact commands (--dry_run), failure handling, and a real 2-process run."""
import importlib.util
import os
import shlex
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from t5x_testlib import (GIN_DIR, REPO, TRAIN_GIN, checkpoint_steps, read_scalars,
                         subprocess_env, train_bindings)

LAUNCH = REPO / "launch" / "launch.py"


def _load_launch():
  spec = importlib.util.spec_from_file_location("toolformer_launch", LAUNCH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _dry_run(*args, xla_flags=""):
  result = subprocess.run([sys.executable, str(LAUNCH), "--dry_run", *args], capture_output=True,
                          text=True, check=True, env=dict(os.environ, XLA_FLAGS=xla_flags))
  return [shlex.split(line) for line in result.stdout.splitlines()]


T5X_ARGS = ["--", "--gin_search_paths=gin", "--gin_file=runs/finetune_toolformer.gin",
            "--gin.MODEL_DIR='gs://bucket/run'"]


def test_tpu_dry_run_is_one_gcloud_ssh_to_all_workers():
  (cmd,) = _dry_run("tpu", "--tpu_name", "v4-64", "--zone", "us-central2-b", "--project", "p",
                    *T5X_ARGS)
  assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "v4-64"]
  assert "--worker=all" in cmd and "--zone=us-central2-b" in cmd and "--project=p" in cmd
  remote = [a for a in cmd if a.startswith("--command=")][0][len("--command="):]
  assert remote.startswith("cd ~/toolformer_jax && ")
  assert shlex.split(remote.split(" && ", 1)[1])[1:] == [
      "python3", "-m", "t5x.train", *T5X_ARGS[1:]]


def test_gpu_dry_run_gives_each_host_its_process_index():
  commands = _dry_run("gpu", "--hosts", "node0,node1,node2", "--port", "9999", *T5X_ARGS)
  assert [c[1] for c in commands] == ["node0", "node1", "node2"]
  for index, cmd in enumerate(commands):
    remote = shlex.split(cmd[2].split(" && ", 1)[1])
    assert remote[remote.index("-m") + 1] == "t5x.train"
    assert remote[-4:] == ["--multiprocess_gpu", "--coordinator_address=node0:9999",
                           "--process_count=3", f"--process_index={index}"]
    assert "--gin.MODEL_DIR='gs://bucket/run'" in remote


def test_local_dry_run_sets_fake_devices_and_gloo():
  """The fake device count replaces the caller's; the caller's other XLA flags stay."""
  commands = _dry_run("--module", "t5x.eval", "local", "--num_processes", "2",
                      "--devices_per_process", "3", "--port", "1234", *T5X_ARGS,
                      xla_flags="--xla_force_host_platform_device_count=8 --xla_dump_to=/tmp/d")
  assert len(commands) == 2
  for index, cmd in enumerate(commands):
    flags = [a for a in cmd if a.startswith("XLA_FLAGS=")]
    assert flags == ["XLA_FLAGS=--xla_force_host_platform_device_count=3 --xla_dump_to=/tmp/d"]
    assert "JAX_CPU_COLLECTIVES_IMPLEMENTATION=gloo" in cmd
    assert cmd[cmd.index("-m") + 1] == "t5x.eval"
    assert cmd[-1] == f"--process_index={index}"


def test_run_all_stops_the_others_when_one_fails(tmp_path):
  launch = _load_launch()
  start = time.monotonic()
  status = launch.run_all([[sys.executable, "-c", "import time; time.sleep(120)"],
                           [sys.executable, "-c", "import sys; sys.exit(3)"]],
                          str(tmp_path), poll_seconds=0.1)
  elapsed = time.monotonic() - start
  assert status == 3
  # The sleeper was stopped, not waited for: run_all returned long before its 120 s.
  assert elapsed < 60, elapsed
  assert (tmp_path / "process_0.log").exists() and (tmp_path / "process_1.log").exists()


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow  # ~40 s on 2 cores
def test_two_processes_train_on_one_4_device_mesh(initial_checkpoint, tmp_path):
  """Two t5x.train processes on localhost (2 fake CPU devices each) form one 2x2 mesh."""
  model_dir = tmp_path / "model"
  bindings = train_bindings(model_dir, initial_checkpoint, 4, EVAL_PERIOD="4",
                            **{"partitioning.PjitPartitioner.num_partitions": "2",
                               "train.train_eval_dataset_cfg": "None"})
  args = [f"--gin_search_paths={GIN_DIR}", *(f"--gin_file={f}" for f in TRAIN_GIN),
          *(f"--gin.{k}={v}" for k, v in bindings.items())]
  log_dir = tmp_path / "logs"
  result = subprocess.run(
      [sys.executable, str(LAUNCH), "--python", sys.executable, "--log_dir", str(log_dir),
       "local", "--num_processes", "2", "--devices_per_process", "2",
       "--port", str(_free_port()), "--", *args],
      cwd=REPO, capture_output=True, text=True, env=subprocess_env(), timeout=600,
      check=False)
  logs = [(log_dir / f"process_{i}.log").read_text(errors="replace") for i in range(2)]
  assert result.returncode == 0, "\n".join(log[-2000:] for log in logs)
  for log in logs:
    assert "Finished." in log
  assert checkpoint_steps(model_dir)[-1] == 4
  # Each host fed its own input shard and checkpointed its own pipeline position.
  dataset_dir = model_dir / "checkpoint_4" / "dataset"
  assert (dataset_dir / "process_0-of-2" / "train_ds-000-of-002.index").exists()
  assert (dataset_dir / "process_1-of-2" / "train_ds-001-of-002.index").exists()
  info = (model_dir / "model-info.txt").read_text()
  assert any("lm_head/kernel" in line and "'model'" in line for line in info.splitlines())
  losses = read_scalars(model_dir, "train", "loss")
  assert sorted(losses) == [1, 2, 3, 4] and all(np.isfinite(list(losses.values())))
  assert losses[1] > 10.0  # a fresh GPT-2-vocabulary model: about ln(50400)
