"""Calculator: + - * / (and bounded powers) over exact rationals, rounded to 2 decimals.

`Calculator(400 / 1400)` -> `0.29`. The expression is tokenised and parsed by a small
recursive-descent parser into a tree of whitelisted nodes (number, unary -/+, + - * /
**); nothing is ever handed to Python's eval/exec/compile. It is bounded by construction:
the input length, token count and nesting depth are capped, every literal's size and
exponent are capped, and before each operation the size of its result is estimated from
the operands' bit lengths and refused if over the cap. A wall-clock budget is checked as a
last resort. Arithmetic is exact (fractions), so rounding is exact half-away-from-zero.

Accepted number spellings: 12, -3.5, .5, 1,234,567.89 (thousands separators), 1.5e3;
the unicode minus, times and division signs; "^" as a synonym of "**".
"""
from __future__ import annotations

import dataclasses
import re
import time
from fractions import Fraction
from typing import List, Optional, Tuple, Union

import gin

from toolformer_jax.tools import base
from toolformer_jax.tools import call_format

_TOKEN_RE = re.compile(
    r"\s*(?:"
    r"(?P<num>(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?"
    r"|\.[0-9]+(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<op>\*\*|[-+*/^()])"
    r")")
_TRANSLATE = str.maketrans({
    "\u2212": "-",  # minus sign
    "\u00d7": "*",  # multiplication sign
    "\u22c5": "*",  # dot operator
    "\u00f7": "/",  # division sign
    "\u2215": "/",  # division slash
})

# A parsed expression: ("num", Fraction) | ("neg", node) | (op, left, right).
Node = Tuple


@gin.configurable(module="toolformer_jax.tools")
@dataclasses.dataclass(frozen=True)
class CalculatorConfig:
  """Bounds of the calculator.

  decimals: digits after the point in results (the paper rounds to 2).
  max_chars / max_tokens / max_depth: input size and nesting bounds.
  max_literal_digits / max_literal_exponent: per-number bounds (digits, |e| in 1e5).
  max_exponent: the largest |n| in x ** n (integer n only).
  max_bits: the largest numerator/denominator of any intermediate value, in bits.
  max_result_digits: the largest integer part of a printed result, in digits.
  max_seconds: wall-clock budget of one evaluation.
  """

  decimals: int = 2
  max_chars: int = 256
  max_tokens: int = 128
  max_depth: int = 32
  max_literal_digits: int = 40
  max_literal_exponent: int = 60
  max_exponent: int = 256
  max_bits: int = 2048
  max_result_digits: int = 40
  max_seconds: float = 0.25


def _tokenize(expr: str, cfg: CalculatorConfig) -> List[Tuple[str, Union[str, Fraction], int, str]]:
  """(kind, value, position, source text) per token; kind is "num" or "op"."""
  tokens = []
  pos = 0
  n = len(expr)
  while pos < n:
    m = _TOKEN_RE.match(expr, pos)
    if m is None or m.end() == pos:
      # Only whitespace left, or an unexpected character.
      rest = expr[pos:]
      if not rest.strip():
        break
      bad = rest.lstrip()[0]
      where = pos + len(rest) - len(rest.lstrip())
      raise base.ToolError(f"unexpected character {bad!r} at position {where}")
    if m.group("num") is not None:
      tokens.append(("num", _number(m.group("num"), cfg), m.start("num"), m.group("num")))
    elif m.group("op") is not None:
      op = m.group("op")
      tokens.append(("op", "**" if op == "^" else op, m.start("op"), op))
    else:  # trailing whitespace
      break
    pos = m.end()
    if len(tokens) > cfg.max_tokens:
      raise base.ToolRefused(f"expression has more than {cfg.max_tokens} tokens")
  return tokens


def _number(text: str, cfg: CalculatorConfig) -> Fraction:
  text = text.replace(",", "")
  mantissa, _, exponent = text.lower().partition("e")
  digits = mantissa.replace(".", "").lstrip("0")
  if len(digits) > cfg.max_literal_digits:
    raise base.ToolRefused(f"number {text[:20]}... has more than {cfg.max_literal_digits} digits")
  if exponent:
    e = exponent.lstrip("+-").lstrip("0")
    if len(e) > 6 or (e and int(e) > cfg.max_literal_exponent):
      raise base.ToolRefused(f"exponent of {text[:40]} is larger than {cfg.max_literal_exponent}")
  return Fraction(text)


class _Parser:
  """expr := term (("+"|"-") term)*; term := unary (("*"|"/") unary)*;
  unary := ("+"|"-") unary | power; power := atom ("**" unary)?; atom := num | "(" expr ")".
  """

  def __init__(self, tokens, cfg: CalculatorConfig):
    self.tokens = tokens
    self.i = 0
    self.cfg = cfg

  def _peek(self):
    return self.tokens[self.i] if self.i < len(self.tokens) else ("end", None, -1, "")

  def _take(self):
    tok = self._peek()
    self.i += 1
    return tok

  def parse(self) -> Node:
    if not self.tokens:
      raise base.ToolError("empty expression")
    node = self._expr(0)
    kind, _, pos, src = self._peek()
    if kind != "end":
      raise base.ToolError(f"unexpected {src!r} at position {pos}")
    return node

  def _check_depth(self, depth: int) -> None:
    if depth > self.cfg.max_depth:
      raise base.ToolRefused(f"expression nested deeper than {self.cfg.max_depth}")

  def _expr(self, depth: int) -> Node:
    self._check_depth(depth)
    node = self._term(depth + 1)
    while self._peek()[:2] in (("op", "+"), ("op", "-")):
      op = self._take()[1]
      node = (op, node, self._term(depth + 1))
    return node

  def _term(self, depth: int) -> Node:
    node = self._unary(depth + 1)
    while self._peek()[:2] in (("op", "*"), ("op", "/")):
      op = self._take()[1]
      node = (op, node, self._unary(depth + 1))
    return node

  def _unary(self, depth: int) -> Node:
    self._check_depth(depth)
    if self._peek()[:2] in (("op", "+"), ("op", "-")):
      op = self._take()[1]
      operand = self._unary(depth + 1)
      return ("neg", operand) if op == "-" else operand
    return self._power(depth + 1)

  def _power(self, depth: int) -> Node:
    node = self._atom(depth + 1)
    if self._peek()[:2] == ("op", "**"):
      self._take()
      node = ("**", node, self._unary(depth + 1))
    return node

  def _atom(self, depth: int) -> Node:
    self._check_depth(depth)
    kind, value, pos, src = self._take()
    if kind == "num":
      return ("num", value)
    if (kind, value) == ("op", "("):
      node = self._expr(depth + 1)
      kind, value, pos, src = self._take()
      if (kind, value) != ("op", ")"):
        raise base.ToolError("missing ')'" if kind == "end" else
                             f"expected ')' at position {pos}, got {src!r}")
      return node
    if kind == "end":
      raise base.ToolError("expression ends early")
    raise base.ToolError(f"unexpected {src!r} at position {pos}")


def _bits(x: Fraction) -> Tuple[int, int]:
  return abs(x.numerator).bit_length(), x.denominator.bit_length()


class _Evaluator:
  """Evaluates a parsed tree, refusing any step whose result would exceed the bounds."""

  def __init__(self, cfg: CalculatorConfig):
    self.cfg = cfg
    self.deadline = time.monotonic() + cfg.max_seconds

  def _limit(self, num_bits: int, den_bits: int) -> None:
    if max(num_bits, den_bits) > self.cfg.max_bits:
      raise base.ToolRefused("intermediate result too large")

  def evaluate(self, node: Node) -> Fraction:
    if time.monotonic() > self.deadline:
      raise base.ToolRefused("evaluation took too long")
    kind = node[0]
    if kind == "num":
      return node[1]
    if kind == "neg":
      return -self.evaluate(node[1])
    a = self.evaluate(node[1])
    b = self.evaluate(node[2])
    (an, ad), (bn, bd) = _bits(a), _bits(b)
    if kind in ("+", "-"):
      self._limit(max(an + bd, bn + ad) + 1, ad + bd)
      return a + b if kind == "+" else a - b
    if kind == "*":
      self._limit(an + bn, ad + bd)
      return a * b
    if kind == "/":
      if b == 0:
        raise base.ToolError("division by zero")
      self._limit(an + bd, ad + bn)
      return a / b
    if kind == "**":
      if b.denominator != 1:
        raise base.ToolError("only whole-number exponents are supported")
      e = b.numerator
      if abs(e) > self.cfg.max_exponent:
        raise base.ToolRefused(f"exponent larger than {self.cfg.max_exponent}")
      if a == 0 and e < 0:
        raise base.ToolError("division by zero")
      self._limit(an * abs(e), ad * abs(e))
      return a ** e
    raise AssertionError(f"unknown node {kind!r}")  # the parser builds no other nodes


def format_number(value: Fraction, decimals: int) -> str:
  """Rounds half away from zero to `decimals` places; drops trailing zeros ("5", "0.29")."""
  scale = 10 ** decimals
  scaled = abs(value) * scale
  rounded = int(scaled + Fraction(1, 2))  # floor(x + 1/2) for x >= 0
  whole, frac = divmod(rounded, scale)
  text = str(whole)
  if decimals and frac:
    text += "." + str(frac).rjust(decimals, "0").rstrip("0")
  if value < 0 and rounded != 0:
    text = "-" + text
  return text


def evaluate(expression: str, config: Optional[CalculatorConfig] = None) -> str:
  """Evaluates an arithmetic expression and formats it; raises ToolError/ToolRefused."""
  config = config or CalculatorConfig()
  if len(expression) > config.max_chars:
    raise base.ToolRefused(f"expression longer than {config.max_chars} characters")
  expr = expression.translate(_TRANSLATE)
  tree = _Parser(_tokenize(expr, config), config).parse()
  value = _Evaluator(config).evaluate(tree)
  scaled_digits = len(str(abs(value.numerator) // value.denominator))
  if scaled_digits > config.max_result_digits:
    raise base.ToolRefused(f"result has more than {config.max_result_digits} digits")
  return format_number(value, config.decimals)


@gin.configurable(module="toolformer_jax.tools")
class Calculator(base.Tool):
  """Arithmetic on the numbers in a document, as in the paper."""

  name = "Calculator"
  example = "Calculator(400 / 1400)"
  description = "+ - * / and parentheses over numbers; result rounded to 2 decimals"

  def __init__(self, config: Optional[CalculatorConfig] = None):
    self.config = config or CalculatorConfig()
    self.max_args_chars = self.config.max_chars + 2

  def __call__(self, args: str, context: base.Context = None) -> str:
    del context
    return evaluate(call_format.text_argument(args), self.config)
