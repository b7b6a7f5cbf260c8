#!/usr/bin/env python3
r"""Multi-host launch of t5x entry points: one process per host, all on one global mesh.

Every process runs the same `python -m t5x.train ...` (or t5x.eval / t5x.infer); t5x builds
one global mesh over the devices of all processes and feeds each host its own shard of the
input (seqio ShardInfo from the partitioner's data layout). Three modes:

  tpu    A Cloud TPU VM slice: `gcloud compute tpus tpu-vm ssh --worker=all` runs the
         command on every worker; the TPU runtime connects the hosts (as in t5x's own
         instructions), no coordinator flags needed.
  gpu    Multi-node GPU: one ssh per host; process i gets `--multiprocess_gpu
         --coordinator_address=<first host>:<port> --process_count=N --process_index=i`,
         which makes t5x call jax.distributed.initialize.
  local  N processes on this machine, each with D fake CPU devices and CPU collectives
         (gloo), through the same coordinator flags: the multi-host code path without a
         cluster (tests, dry rehearsals of a config).

Everything after `--` is passed to the t5x module unchanged (gin flags). `--dry_run` prints
the exact commands and exits. Otherwise the commands run in parallel; when one fails the
others are stopped, and the exit status is the first failure's.

  python launch/launch.py --dry_run tpu --tpu_name my-v4-64 --zone us-central2-b \
      --workdir '~/toolformer_jax' -- --gin_search_paths=gin \
      --gin_file=runs/finetune_toolformer.gin --gin_file=models/gptj_6b.gin \
      --gin.MODEL_DIR="'gs://bucket/toolformer_6b'" \
      --gin.partitioning.PjitPartitioner.num_partitions=8
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def _env_prefix(env: Dict[str, str]) -> str:
  return " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())


def _module_command(python: str, module: str, args: Sequence[str]) -> List[str]:
  return [python, "-m", module, *args]


def coordinator_flags(address: str, count: int, index: int) -> List[str]:
  """t5x's flags that make it call jax.distributed.initialize (named after GPUs, any backend)."""
  return ["--multiprocess_gpu", f"--coordinator_address={address}",
          f"--process_count={count}", f"--process_index={index}"]


def tpu_commands(opts: argparse.Namespace, t5x_args: Sequence[str]) -> List[List[str]]:
  remote = " ".join(shlex.quote(a) for a in _module_command(opts.python, opts.module,
                                                             t5x_args))
  remote = f"cd {opts.workdir} && {_env_prefix(QUIET_ENV)} {remote}"
  cmd = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", opts.tpu_name, f"--zone={opts.zone}",
         "--worker=all", f"--command={remote}"]
  if opts.project:
    cmd.insert(6, f"--project={opts.project}")
  return [cmd]


def gpu_commands(opts: argparse.Namespace, t5x_args: Sequence[str]) -> List[List[str]]:
  hosts = [h for h in opts.hosts.split(",") if h]
  if not hosts:
    raise SystemExit("launch gpu: --hosts needs at least one host")
  address = f"{hosts[0]}:{opts.port}"
  commands = []
  for index, host in enumerate(hosts):
    args = [*t5x_args, *coordinator_flags(address, len(hosts), index)]
    remote = " ".join(shlex.quote(a) for a in _module_command(opts.python, opts.module, args))
    commands.append([*shlex.split(opts.ssh), host,
                     f"cd {opts.workdir} && {_env_prefix(QUIET_ENV)} {remote}"])
  return commands


DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def local_env(devices_per_process: int) -> Dict[str, str]:
  """Each local process's environment: the caller's XLA flags with the fake device count set."""
  kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG)]
  return {**QUIET_ENV, "TF_ENABLE_ONEDNN_OPTS": "0", "JAX_PLATFORMS": "cpu",
          "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
          "XLA_FLAGS": " ".join([f"{DEVICE_COUNT_FLAG}={devices_per_process}", *kept])}


def local_commands(opts: argparse.Namespace, t5x_args: Sequence[str]) -> List[List[str]]:
  if opts.num_processes < 1 or opts.devices_per_process < 1:
    raise SystemExit("launch local: --num_processes and --devices_per_process must be >= 1")
  address = f"127.0.0.1:{opts.port}"
  env = local_env(opts.devices_per_process)
  return [["env", *(f"{k}={v}" for k, v in env.items()),
           *_module_command(opts.python, opts.module,
                            [*t5x_args, *coordinator_flags(address, opts.num_processes, i)])]
          for i in range(opts.num_processes)]


def run_all(commands: Sequence[Sequence[str]], log_dir: Optional[str],
            poll_seconds: float = 0.5) -> int:
  """Runs `commands` in parallel; stops the rest when one fails. Returns the exit status."""
  procs, logs = [], []
  if log_dir:
    os.makedirs(log_dir, exist_ok=True)
  for i, cmd in enumerate(commands):
    out = None
    if log_dir:
      out = open(os.path.join(log_dir, f"process_{i}.log"), "wb")  # pylint: disable=R1732
      logs.append(out)
    procs.append(subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT if out else None,
                                  start_new_session=True))
  status = 0
  try:
    while any(p.poll() is None for p in procs):
      failed = [p for p in procs if p.poll() not in (None, 0)]
      if failed:
        status = failed[0].returncode
        print(f"launch: process {procs.index(failed[0])} exited with {status}; stopping the "
              "others", file=sys.stderr)
        for p in procs:
          if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
        break
      time.sleep(poll_seconds)
    for p in procs:
      p.wait()
    if status == 0:
      status = next((p.returncode for p in procs if p.returncode != 0), 0)
  finally:
    for f in logs:
      f.close()
  print(f"launch: {len(procs)} processes finished, exit status {status}")
  return status


def parse(argv: Sequence[str]):
  argv = list(argv)
  t5x_args: List[str] = []
  if "--" in argv:
    split = argv.index("--")
    argv, t5x_args = argv[:split], argv[split + 1:]
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dry_run", action="store_true", help="print the commands and exit")
  parser.add_argument("--module", default="t5x.train",
                      help="the entry point (t5x.train, t5x.eval, t5x.infer)")
  parser.add_argument("--python", default="python3", help="python on the hosts")
  parser.add_argument("--log_dir", default=None, help="per-process logs (local, gpu)")
  modes = parser.add_subparsers(dest="mode", required=True)
  tpu = modes.add_parser("tpu", help="every worker of a Cloud TPU VM slice")
  tpu.add_argument("--tpu_name", required=True)
  tpu.add_argument("--zone", required=True)
  tpu.add_argument("--project", default=None)
  tpu.add_argument("--workdir", default="~/toolformer_jax",
                   help="checkout on the workers (gin/ must be there)")
  gpu = modes.add_parser("gpu", help="one process per GPU host over ssh")
  gpu.add_argument("--hosts", required=True, help="comma-separated; the first coordinates")
  gpu.add_argument("--port", type=int, default=12355, help="coordinator port")
  gpu.add_argument("--ssh", default="ssh", help="ssh command (e.g. 'ssh -i key')")
  gpu.add_argument("--workdir", default="~/toolformer_jax")
  local = modes.add_parser("local", help="N processes with fake CPU devices on this machine")
  local.add_argument("--num_processes", type=int, default=2)
  local.add_argument("--devices_per_process", type=int, default=2)
  local.add_argument("--port", type=int, default=12355, help="coordinator port")
  opts = parser.parse_args(argv)
  return opts, t5x_args


def main(argv: Sequence[str]) -> int:
  opts, t5x_args = parse(argv)
  build = {"tpu": tpu_commands, "gpu": gpu_commands, "local": local_commands}[opts.mode]
  commands = build(opts, t5x_args)
  if opts.dry_run:
    for cmd in commands:
      print(shlex.join(cmd))
    return 0
  return run_all(commands, opts.log_dir)


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
