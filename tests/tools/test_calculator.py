"""Calculator: exact arithmetic, the paper's rounding, and refusal of unbounded work."""
import pytest

from toolformer_jax.tools import base
from toolformer_jax.tools import calculator
from toolformer_jax.tools.calculator import Calculator, CalculatorConfig


@pytest.mark.parametrize("expression, expected", [
    ("400 / 1400", "0.29"),  # the paper's example
    ("2 + 3", "5"),
    ("18 + 12 * 3", "54"),
    ("(18 + 12) * 3", "90"),
    ("10 / 4", "2.5"),
    ("10 / 3", "3.33"),
    ("2 / 3", "0.67"),
    ("-3.5 - 2", "-5.5"),
    ("-(-(-2))", "-2"),
    ("+4", "4"),
    ("1,234.5 * 2", "2469"),
    ("1,000,000 / 3", "333333.33"),
    (".5 * 2", "1"),
    ("5.", "5"),
    ("1.5e3 + 1", "1501"),
    ("2 ** 10", "1024"),
    ("2 ^ 10", "1024"),
    ("2 ** -2", "0.25"),
    ("-2 ** 2", "-4"),  # ** binds tighter than unary minus, as in Python
    ("2 ** 3 ** 2", "512"),  # right-associative
    ("7 - 2 - 1", "4"),  # left-associative
    ("8 / 4 / 2", "1"),
    ("2.675", "2.68"),  # exact decimal: half rounds away from zero (floats give 2.67)
    ("-2.675", "-2.68"),
    ("0.125", "0.13"),
    ("-0.001", "0"),  # no "-0"
    ("0.1 + 0.2", "0.3"),
    ("3 \u2212 1", "2"),  # unicode minus
    ("6 \u00d7 7", "42"),
    ("9 \u00f7 3", "3"),
    ("  ( ( 1 ) )  ", "1"),
    ('"400 / 1400"', "0.29"),  # a quoted argument
    ("99999999999999999999 * 99999999999999999999",
     "9999999999999999999800000000000000000001"),
])
def test_values(expression, expected):
  assert Calculator()(expression) == expected


@pytest.mark.parametrize("expression, message", [
    ("1 / 0", "division by zero"),
    ("5 / (3 - 3)", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("2 ** 0.5", "whole-number exponents"),
    ("", "empty expression"),
    ("1 +", "ends early"),
    ("(1 + 2", "missing ')'"),
    ("1 + 2)", "unexpected ')'"),
    ("1 2", "unexpected '2'"),
    ("2(3)", "unexpected '('"),
    ("abc", "unexpected character 'a'"),
    ("1,2", "unexpected character ','"),
    ("\u0663 + 1", "unexpected character"),  # Arabic-Indic digit
    ("\uff13 + 1", "unexpected character"),  # fullwidth digit
    ("__import__('os')", "unexpected character '_'"),
    ("1 % 2", "unexpected character '%'"),
])
def test_errors(expression, message):
  with pytest.raises(base.ToolError) as info:
    Calculator()(expression)
  assert not isinstance(info.value, base.ToolRefused)
  assert message in str(info.value)


@pytest.mark.parametrize("expression, message", [
    ("9 ** 9 ** 9", "exponent larger than"),
    ("2 ** 100000", "exponent larger than"),
    ("10 ** 200 * 10 ** 200 * 10 ** 200 * 10 ** 200", "too large"),
    ("((9 ** 9) ** 9) ** 9", "too large"),
    ("1e999999999", "exponent of"),
    ("1" * 41, "more than 40 digits"),
    ("(" * 40 + "1" + ")" * 40, "nested deeper"),
    ("-" * 40 + "1", "nested deeper"),
    ("1" + "+1" * 100, "more than 128 tokens"),
    ("1 + " * 100 + "1", "longer than 256"),
    ("99999999999999999999 * 99999999999999999999 * 10", "more than 40 digits"),
])
def test_refusals(expression, message):
  with pytest.raises(base.ToolRefused) as info:
    Calculator()(expression)
  assert message in str(info.value)


def test_bounds_are_configurable():
  small = Calculator(CalculatorConfig(max_exponent=3, decimals=3))
  assert small("2 ** 3") == "8"
  assert small("1 / 3") == "0.333"
  with pytest.raises(base.ToolRefused):
    small("2 ** 4")


@pytest.mark.parametrize("value, decimals, expected", [
    (calculator.Fraction(1, 8), 2, "0.13"),
    (calculator.Fraction(-1, 8), 2, "-0.13"),
    (calculator.Fraction(1, 200), 2, "0.01"),
    (calculator.Fraction(1, 201), 2, "0"),
    (calculator.Fraction(5, 2), 0, "3"),
    (calculator.Fraction(123, 1), 2, "123"),
    (calculator.Fraction(101, 100), 2, "1.01"),
])
def test_format_number(value, decimals, expected):
  assert calculator.format_number(value, decimals) == expected
