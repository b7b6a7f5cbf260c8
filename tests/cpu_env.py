"""XLA flags of the test processes: conftest.py sets them before jax loads; subprocesses add fake devices.

The tests compile hundreds of tiny programs, and on 2 cores compiling them, not running them,
is most of the suite's time. XLA's CPU backend at optimization level 0 compiles them 2-3x
faster (tests/networks/test_lora.py's eight heaviest tests: 84 s -> 35 s); the programs and
their results within the tests' tolerances stay the same. Only the tests use it: the product
compiles at XLA's default level.
"""
import os
from typing import Dict

BASE_XLA_FLAGS = "--xla_backend_optimization_level=0"


def xla_flags(devices: int = 1) -> str:
  """XLA_FLAGS for a test process with `devices` fake CPU devices."""
  if devices < 1:
    raise ValueError(f"devices must be >= 1, got {devices}")
  if devices == 1:
    return BASE_XLA_FLAGS
  return f"{BASE_XLA_FLAGS} --xla_force_host_platform_device_count={devices}"


def cpu_subprocess_env(devices: int = 1) -> Dict[str, str]:
  """This process's environment for a jax subprocess on `devices` fake CPU devices."""
  return dict(os.environ, XLA_FLAGS=xla_flags(devices), JAX_PLATFORMS="cpu")
