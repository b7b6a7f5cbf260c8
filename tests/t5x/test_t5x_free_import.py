"""The core package and the task registrations import without t5x (only the glue needs it)."""
import subprocess
import sys

from t5x_testlib import REPO, subprocess_env

# Modules that drive t5x and are allowed to import it.
T5X_GLUE = ("toolformer_jax.models", "toolformer_jax.checkpoints.t5x_export")

SCRIPT = f"""
import importlib, pkgutil, sys

class BlockT5x:
  def find_spec(self, name, path=None, target=None):
    if name == "t5x" or name.startswith("t5x."):
      raise ImportError("t5x is blocked in this test")
    return None

sys.meta_path.insert(0, BlockT5x())
import toolformer_jax
imported = []
for info in pkgutil.walk_packages(toolformer_jax.__path__, "toolformer_jax."):
  if info.name in {T5X_GLUE!r} or info.name.endswith(".__main__"):
    continue
  importlib.import_module(info.name)
  imported.append(info.name)
import toolformer_tasks
import seqio
assert "toolformer_lm_wiki" in seqio.TaskRegistry.names()
assert not [m for m in sys.modules if m == "t5x" or m.startswith("t5x.")]
print("IMPORTED", len(imported), " ".join(imported))
"""


def test_core_package_and_tasks_import_without_t5x():
  result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True,
                          text=True, env=subprocess_env(), timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  line = [l for l in result.stdout.splitlines() if l.startswith("IMPORTED")][0]
  imported = line.split()[2:]
  for module in ("toolformer_jax.networks.gptj", "toolformer_jax.networks.llama",
                 "toolformer_jax.vocab", "toolformer_jax.convert",
                 "toolformer_jax.checkpoints.hf_gptj"):
    assert module in imported
