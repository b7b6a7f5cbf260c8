"""The command line: `python -m toolformer_jax.tools 'Calculator(400 / 1400)'` prints 0.29."""
import json
import os
import subprocess
import sys

import gin
import pytest

from absl import flags

from toolformer_jax import cli
from toolformer_jax.tools import __main__ as tools_main

if "timeout_s" not in flags.FLAGS:
  tools_main.define_flags()


def _main(args):
  """main as the command line calls it: cli.call parses the flags (and restores them)."""
  return cli.call(tools_main.main, args)


@pytest.fixture(autouse=True)
def clean_gin():
  yield
  gin.clear_config()


def test_module_entry_point(tmp_path):
  env = dict(os.environ, TOOLFORMER_JAX_CACHE=str(tmp_path))
  ok = subprocess.run([sys.executable, "-m", "toolformer_jax.tools", "Calculator(400 / 1400)"],
                      capture_output=True, text=True, env=env, timeout=120, check=False)
  assert (ok.returncode, ok.stdout) == (0, "0.29\n")
  bad = subprocess.run([sys.executable, "-m", "toolformer_jax.tools", "Calculator(400 / "],
                       capture_output=True, text=True, env=env, timeout=120, check=False)
  assert bad.returncode != 0 and bad.stdout == ""
  assert len(bad.stderr.strip().splitlines()) == 1
  assert bad.stderr.startswith("error: malformed call")
  usage = subprocess.run([sys.executable, "-m", "toolformer_jax.tools", "--timeout_s=soon",
                          "Calculator(1)"], capture_output=True, text=True, env=env,
                         timeout=120, check=False)
  assert usage.returncode == 2 and "--timeout_s" in usage.stderr


@pytest.mark.parametrize("argv, code, out, err", [
    (["Calculator(2 + 2)"], 0, "4\n", ""),
    (["--date", "2023-01-30", "Calendar()"], 0, "Today is Monday, January 30, 2023.\n", ""),
    (["--date", "2023-01-30", "Calendar(2 weeks from now)"], 0, "Monday, February 13, 2023.\n",
     ""),
    (["--url", "https://x.org/2019/07/04/p", "Calendar()"], 0,
     "Today is Thursday, July 4, 2019.\n", ""),
    (["--gin.CalculatorConfig.decimals=4", "Calculator(1 / 3)"], 0, "0.3333\n", ""),
    (["Calculator(9 ** 9 ** 9)"], 1, "", "error: Calculator call refused: exponent larger than 256\n"),
    (["Calculator(1 / 0)"], 1, "", "error: Calculator call error: division by zero\n"),
    (["Weather(Paris)"], 1, "", "error: unknown tool 'Weather'"),
    (["not a call"], 1, "", "error: malformed call"),
    ([], 2, "", "error: give a call"),
    (["Calculator(1)", "Calculator(2)"], 2, "", "error: give one call"),
    (["--gin.NoSuchThing.x=1", "Calculator(1)"], 2, "", "error: bad gin configuration"),
])
def test_main(argv, code, out, err, capsys):
  assert _main(argv) == code
  captured = capsys.readouterr()
  assert captured.out == out
  assert captured.err.startswith(err)
  assert captured.err.count("\n") == (1 if err else 0)


def test_list(capsys):
  assert _main(["--list"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in lines] == ["QA", "Calculator", "WikiSearch", "MT",
                                                 "Calendar"]
  assert "Calculator(400 / 1400)" in lines[1]


def test_json_output(capsys):
  assert _main(["--json", "Calculator(400 / 1400)"]) == 0
  record = json.loads(capsys.readouterr().out)
  assert (record["tool"], record["status"], record["text"]) == ("Calculator", "ok", "0.29")


def test_unavailable_backend_exit_code(capsys):
  assert _main(["--gin.MT.apertium_binary='no-such-apertium'", 'MT("hola")']) == 3
  assert "apt-get install" in capsys.readouterr().err
