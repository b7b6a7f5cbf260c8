"""toolformer_jax.reporting: the report helpers, table-driven."""
import pytest

from toolformer_jax import reporting


@pytest.mark.parametrize("args, expected", [
    ((None,), "–"),
    ((1.23456,), "1.235"),
    ((None, ".1f", "-"), "-"),
    ((2.5, ".1f"), "2.5"),
    ((7, ".0f"), "7"),
    ((0.1234, ".1%"), "12.3%"),
    ((18526, ","), "18,526"),
    ((1.2345e-5, ".2e"), "1.23e-05"),
    ((0.01234, ".3g", "-"), "0.0123"),
])
def test_fmt(args, expected):
  assert reporting.fmt(*args) == expected


@pytest.mark.parametrize("align, separator", [
    ("l", "|---|---|---|"),
    ("lr", "|---|---:|---:|"),
    ("r", "|---:|---:|---:|"),
    ("lrc", "|---|---:|:---:|"),
    ("rl", "|---:|---|---|"),
])
def test_table_alignment(align, separator):
  lines = reporting.table(["a", "b", "c"], [["x", 1, None]], align=align)
  assert lines == ["| a | b | c |", separator, "| x | 1 | None |"]


def test_table_without_rows_and_bad_align():
  assert reporting.table(["only"], []) == ["| only |", "|---|"]
  with pytest.raises(ValueError):
    reporting.table(["a"], [], align="x")


@pytest.mark.parametrize("text, expected", [
    ("plain words", "plain words"),
    ("a\n  b\tc ", "a b c"),
    ("Calculator(3 + 4)", r"Calculator\(3 \+ 4\)"),
    ("<b>&", r"\<b\>\&"),
    ("[x]_*`|#!~-.{}\\", r"\[x\]\_\*\`\|\#\!\~\-\.\{\}\\"),
])
def test_md_literal(text, expected):
  assert reporting.md_literal(text) == expected


def test_pyplot_is_agg_and_save_figure(tmp_path):
  plt = reporting.pyplot()
  import matplotlib  # pylint: disable=g-import-not-at-top
  assert matplotlib.get_backend().lower() == "agg"
  fig, ax = plt.subplots()
  ax.plot([0, 1], [1, 0])
  path = str(tmp_path / "f.png")
  assert reporting.save_figure(fig, path) == path
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert not plt.fignum_exists(fig.number)
