"""Exact arithmetic for the model, without ``eval``; it returns a string and never raises.

The expression is parsed with ``ast`` and only number literals, + - * / // %
**, unary signs and parentheses are accepted; everything is computed with
``fractions.Fraction`` (a literal is read from its source text, so ``0.1`` is
exactly 1/10 and ``1e999`` is exactly 10**999), so 0.1 + 0.2 is 0.3.

Limits keep a hostile expression from eating the machine, and each is checked
*before* the work it bounds: input length; exponent size; the size of a power,
bounded from log10|base| x exponent before it is computed (``(7**2000)**10000``
is refused in microseconds instead of computed for half a minute); every
intermediate result at most ``MAX_DIGITS`` digits in numerator and
denominator, below Python's int-to-string limit (4300 digits), so formatting a
result can never raise.

Output: integers in full; terminating decimals exactly, every digit (``1/2**100``
gives all 100 decimals) when that takes at most ``MAX_DIGITS`` characters;
anything else as the exact fraction ``p/q`` followed by ``≈`` and a decimal
rounded to 12 significant digits, so a rounded value is always marked as one.
"""

from __future__ import annotations

import ast
import math
import operator
from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction

MAX_CHARS = 500
MAX_EXPONENT = 10_000
MAX_DIGITS = 4_000  # below sys.get_int_max_str_digits() (4300), so str() of any result is safe
APPROX_DIGITS = 12
_LOG10_2 = math.log10(2)

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


def _digits(n: int) -> int:
    """Decimal digits of |n|, without converting a huge number to a string."""
    n = abs(n)
    if n.bit_length() * _LOG10_2 > MAX_DIGITS + 2:
        return int(n.bit_length() * _LOG10_2)  # far over the limit; an exact count is not needed
    return len(str(n))


def _check_size(value: Fraction) -> Fraction:
    if max(_digits(value.numerator), _digits(value.denominator)) > MAX_DIGITS:
        raise CalcError(f"result has more than {MAX_DIGITS} digits")
    return value


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise CalcError("only whole-number exponents are supported")
    if abs(exponent) > MAX_EXPONENT:
        raise CalcError(f"exponent larger than {MAX_EXPONENT}")
    if base == 0 and exponent < 0:
        raise CalcError("division by zero")
    # |p/q| ** e has about |e| * log10(max(|p|, q)) digits: refuse before computing it
    bits = max(abs(base.numerator).bit_length(), base.denominator.bit_length())
    if abs(int(exponent)) * (bits - 1) * _LOG10_2 > MAX_DIGITS:
        raise CalcError(f"result has more than {MAX_DIGITS} digits")
    return _check_size(base ** int(exponent))


def _literal(node: ast.Constant, source: str) -> Fraction:
    if isinstance(node.value, int):
        return _check_size(Fraction(node.value))
    text = ast.get_source_segment(source, node) or repr(node.value)
    try:
        decimal = Decimal(text.replace("_", ""))
    except InvalidOperation:
        raise CalcError(f"not a number: {text[:40]}") from None
    if not decimal.is_finite() or abs(decimal.adjusted()) > MAX_DIGITS:
        raise CalcError(f"result has more than {MAX_DIGITS} digits")
    return _check_size(Fraction(decimal))


def _eval(node: ast.AST, source: str) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body, source)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _literal(node, source)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _eval(node.operand, source)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, source), _eval(node.right, source)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINARY.get(type(node.op))
        if op is None:
            raise CalcError(f"operator {type(node.op).__name__} is not supported")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise CalcError("division by zero")
        return _check_size(Fraction(op(left, right)))
    raise CalcError(f"unsupported syntax: {ast.dump(node)[:40]}")


def _exact_decimal(value: Fraction) -> str | None:
    """All digits of a terminating decimal (denominator 2^a 5^b), or None when it does not terminate
    or would be longer than MAX_DIGITS characters."""
    den, twos, fives = value.denominator, 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    if den != 1:
        return None
    places = max(twos, fives)
    if places + _digits(value.numerator) > MAX_DIGITS:
        return None
    scaled = abs(value.numerator) * (10**places // value.denominator)  # exact: den divides 10**places
    whole, frac = divmod(scaled, 10**places)
    text = f"{whole}.{str(frac).zfill(places)}".rstrip("0").rstrip(".")
    return ("-" if value < 0 else "") + text


def format_number(value: Fraction) -> str:
    """Integers in full; terminating decimals exactly; otherwise 'p/q ≈ d' (d to 12 significant digits)."""
    if value.denominator == 1:
        return str(value.numerator)
    exact = _exact_decimal(value)
    if exact is not None:
        return exact
    with localcontext() as ctx:
        ctx.prec = APPROX_DIGITS
        approx = Decimal(value.numerator) / Decimal(value.denominator)
    text = f"{approx:f}" if -7 <= approx.adjusted() < APPROX_DIGITS else f"{approx:e}"
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return f"{value.numerator}/{value.denominator} ≈ {text}"


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly; returns the result or 'error: ...', never raises."""
    try:
        return _calculate(expression)
    except CalcError as exc:
        return f"error: {exc}"
    except (RecursionError, MemoryError):
        return "error: expression too deeply nested"
    except Exception as exc:  # a model's input must never take the caller down
        return f"error: {type(exc).__name__}: {str(exc)[:80]}"


def _calculate(expression: str) -> str:
    text = str(expression).strip()
    text = text.replace("×", "*").replace("÷", "/").replace("−", "-").replace("^", "**")
    if not text:
        return "error: empty expression"
    if len(text) > MAX_CHARS:
        return f"error: expression longer than {MAX_CHARS} characters"
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return f"error: cannot parse {text[:60]!r}"
    return format_number(_eval(tree, text))
