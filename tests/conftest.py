"""Test-wide environment: quiet TF, bit-stable CPU numerics, TF kept off accelerators.

These variables must be set before jax or tensorflow is imported anywhere.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from cpu_env import BASE_XLA_FLAGS  # pylint: disable=wrong-import-position

if BASE_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):  # tiny programs: compile them fast
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {BASE_XLA_FLAGS}".strip()
