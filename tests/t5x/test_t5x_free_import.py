"""The core package and the task registrations import without t5x (only the glue needs it),
and no `toolformer_jax` module outside a short allow-list loads seqio, TensorFlow,
tensorflow_datasets or t5x at import (the SeqIO layer, toolformer_tasks, sits above it)."""
import ast
import json
import pathlib
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


# Top-level packages of the TF/SeqIO/t5x stack that `toolformer_jax` imports only here.
TF_STACK = ("seqio", "tensorflow", "tensorflow_datasets", "t5x")

# The modules allowed to load them at import, each with why.
TF_STACK_ALLOWED = {
    "toolformer_jax.models": "t5x's model glue (t5x)",
    "toolformer_jax.checkpoints.t5x_export": "writes t5x checkpoints (t5x)",
    "toolformer_jax.vocab": "the vocabularies subclass seqio.Vocabulary, with a tf encode path",
    "toolformer_jax.annotate.tfds_corpora": "reads TFDS corpora (tensorflow_datasets)",
}

# Imports the given modules in order and stops at the first after which a TF_STACK package
# is in sys.modules: prints {"offender": name or None, "loaded": [...]}.
IMPORT_UNTIL_TF_STACK = """
import importlib, json, sys
stack, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in names:
  importlib.import_module(name)
  loaded = sorted({m.split(".")[0] for m in sys.modules} & set(stack))
  if loaded:
    print("RESULT " + json.dumps({"offender": name, "loaded": loaded}))
    break
else:
  print("RESULT " + json.dumps({"offender": None, "loaded": []}))
"""


def _package_modules():
  """Every module of toolformer_jax by file (new modules are covered as they appear)."""
  root = REPO / "toolformer_jax"
  names = []
  for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(REPO).with_suffix("").parts
    if "__pycache__" in parts:
      continue
    names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
  return names


def _module_level_imports(path: pathlib.Path):
  """The modules a file imports outside functions and classes (bodies of if/try included)."""
  names, todo = [], list(ast.parse(path.read_text()).body)
  while todo:
    node = todo.pop()
    if isinstance(node, ast.Import):
      names += [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    elif isinstance(node, (ast.If, ast.Try, ast.With)):
      for field in ("body", "orelse", "finalbody", "handlers"):
        todo += getattr(node, field, [])
    elif isinstance(node, ast.ExceptHandler):
      todo += node.body
  return names


def test_toolformer_jax_modules_import_without_the_tf_stack():
  modules = _package_modules()
  assert "toolformer_jax.evaluation.registry" in modules
  for allowed in TF_STACK_ALLOWED:  # the allow-list names real modules only
    assert allowed in modules, allowed
  # __main__ modules run their program on import: their module-level imports are checked.
  mains = [m for m in modules if m.endswith(".__main__")]
  for main in mains:
    for name in _module_level_imports(REPO / (main.replace(".", "/") + ".py")):
      assert name.split(".")[0] not in TF_STACK, (main, name)
      assert name not in TF_STACK_ALLOWED, (main, name)
  todo = [m for m in modules if m not in TF_STACK_ALLOWED and m not in mains]
  offenders = {}
  while todo:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_UNTIL_TF_STACK, json.dumps(TF_STACK), json.dumps(todo)],
        cwd=REPO, capture_output=True, text=True, env=subprocess_env(), timeout=300,
        check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")][-1]
    got = json.loads(line[len("RESULT "):])
    if got["offender"] is None:
      break
    offenders[got["offender"]] = got["loaded"]
    todo = todo[todo.index(got["offender"]) + 1:]
  assert not offenders, (
      f"these toolformer_jax modules load {'/'.join(TF_STACK)} at import: {offenders}; "
      "make the import lazy where it is incidental, else add the module to TF_STACK_ALLOWED "
      "with its reason")
