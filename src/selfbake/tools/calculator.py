"""Exact arithmetic for the model, without ``eval``.

The expression is parsed with ``ast`` and only number literals, + - * / // %
**, unary signs and parentheses are accepted; everything is computed with
``fractions.Fraction`` so 0.1 + 0.2 is 0.3. Limits keep a hostile expression
from eating the machine: input length, exponent size and result size.
"""

from __future__ import annotations

import ast
import operator
from decimal import Decimal
from fractions import Fraction

MAX_CHARS = 500
MAX_EXPONENT = 10_000
MAX_DIGITS = 5_000

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


class CalcError(ValueError):
    pass


def _check_size(value: Fraction) -> Fraction:
    if max(len(str(abs(value.numerator))), len(str(value.denominator))) > MAX_DIGITS:
        raise CalcError(f"result has more than {MAX_DIGITS} digits")
    return value


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(Decimal(repr(node.value))) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if right.denominator != 1:
                raise CalcError("only whole-number exponents are supported")
            if abs(right) > MAX_EXPONENT:
                raise CalcError(f"exponent larger than {MAX_EXPONENT}")
            if left == 0 and right < 0:
                raise CalcError("division by zero")
            return _check_size(left ** int(right))
        op = _BINARY.get(type(node.op))
        if op is None:
            raise CalcError(f"operator {type(node.op).__name__} is not supported")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise CalcError("division by zero")
        return _check_size(Fraction(op(left, right)))
    raise CalcError(f"unsupported syntax: {ast.dump(node)[:40]}")


def format_number(value: Fraction) -> str:
    """Integers as integers; terminating decimals exactly; others to 12 significant digits."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den == 1:
        text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{value.numerator}/{value.denominator} ≈ {float(value):.12g}"


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly; returns the result or 'error: ...'."""
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("−", "-").replace("^", "**")
    if not text:
        return "error: empty expression"
    if len(text) > MAX_CHARS:
        return f"error: expression longer than {MAX_CHARS} characters"
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return f"error: cannot parse '{expression.strip()[:60]}'"
    try:
        return format_number(_eval(tree))
    except CalcError as exc:
        return f"error: {exc}"
    except (RecursionError, MemoryError):
        return "error: expression too deeply nested"
