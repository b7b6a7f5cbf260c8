"""The CLI convention (`toolformer_jax.cli`): every `python -m toolformer_jax.<name>` answers
--help with exit 0, and those that take gin list the gin flags."""
import json
import os
import subprocess
import sys

import pytest

from toolformer_jax import cli

# (module, takes gin); a module absent from this checkout is left out.
CLIS = [("annotate", True), ("convert", True), ("generate", True), ("tools", True),
        ("demo", False), ("report", False)]

# Runs each CLI as `python -m` runs it (runpy, run_name="__main__"), with --help, in one
# process: the flags a CLI defined are deleted after it, so the next defines its own.
_SCRIPT = r"""
import contextlib, importlib.util, io, json, runpy, sys
from absl import app, flags
app.define_help_flags()
results = {}
for name in json.loads(sys.argv[1]):
  module = "toolformer_jax." + name
  spec = importlib.util.find_spec(module)
  if spec is not None and spec.submodule_search_locations is not None:
    module += ".__main__"
    spec = importlib.util.find_spec(module)
  if spec is None:
    continue
  out, err, code = io.StringIO(), io.StringIO(), "returned"
  sys.argv = [spec.origin, "--help"]
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      runpy.run_module(module, run_name="__main__", alter_sys=True)
  except SystemExit as e:
    code = e.code
  defined = flags.FLAGS.get_key_flags_for_module(spec.origin)
  for flag in defined:
    for key in {flag.name, flag.short_name} - {None}:
      if key in flags.FLAGS:
        delattr(flags.FLAGS, key)
  results[name] = {"code": code, "help": out.getvalue(), "err": err.getvalue()[-2000:],
                   "flags": sorted(f.name for f in defined)}
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def helps():
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps([n for n, _ in CLIS])],
                        capture_output=True, text=True, env=env, timeout=600, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULTS ")]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  return json.loads(lines[-1][len("RESULTS "):])


def test_the_four_clis_exist(helps):
  assert {"annotate", "convert", "generate", "tools"} <= set(helps)


@pytest.mark.parametrize("name, takes_gin", CLIS)
def test_help_exits_0(helps, name, takes_gin):
  if name not in helps:
    pytest.skip(f"no toolformer_jax.{name} CLI in this checkout")
  result = helps[name]
  assert result["code"] in (0, None), result["err"]
  assert result["help"].strip(), result["err"]
  if takes_gin:
    assert set(cli.GIN_FLAG_NAMES) <= set(result["flags"])
    assert "--gin_file" in result["help"]
    assert "--gin_search_paths" in result["help"]


def test_rewrite_gin_flags():
  assert cli.rewrite_gin_flags(["--gin.A.b=1", "--gin_file=x.gin", "pos"]) == [
      "--gin_bindings=A.b = 1", "--gin_file=x.gin", "pos"]


def test_default_search_paths(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert cli.gin_search_paths() == [cli.REPO_GIN_DIR]
  (tmp_path / "gin").mkdir()
  assert cli.gin_search_paths() == ["gin", cli.REPO_GIN_DIR]
  assert cli.gin_search_paths(["a", "b"]) == ["a", "b"]
  assert os.path.isfile(os.path.join(cli.REPO_GIN_DIR, cli.NO_TRAINING_GIN))


def test_no_training_gin_binds_train_steps():
  import gin  # pylint: disable=g-import-not-at-top
  try:
    cli.parse_gin([cli.NO_TRAINING_GIN], ["X = 1"], [cli.REPO_GIN_DIR], finalize=False)
    assert gin.query_parameter("%TRAIN_STEPS") is None
  finally:
    gin.clear_config()


def test_run_exit_codes(capsys):
  """--help exits 0; a bad flag exits run's usage_exit_code (1 unless the CLI says)."""
  main = lambda argv: len(argv)  # noqa: E731
  with pytest.raises(SystemExit) as e:
    cli.run(main, argv=["prog", "--help"])
  assert e.value.code == 0
  with pytest.raises(SystemExit) as e:
    cli.run(main, argv=["prog", "--no_such_flag_here=1"], usage_exit_code=2)
  assert e.value.code == 2
  assert "no_such_flag_here" in capsys.readouterr().err
