import pytest

from selfbake.errors import UserError
from selfbake.tools import Tool, calculator, get_tools


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("12*34", "408"),
        ("0.1 + 0.2", "0.3"),
        ("7/4", "1.75"),
        ("(3 - 5) * -2", "4"),
        ("2**64", "18446744073709551616"),
        ("10 // 3", "3"),
        ("10 % 3", "1"),
        ("3 × 4 − 1", "11"),
        ("123456789123456789 * 987654321987654321", str(123456789123456789 * 987654321987654321)),
    ],
)
def test_calculator_is_exact(expr, expected):
    assert calculator(expr) == expected


def test_calculator_repeating_decimal():
    assert calculator("1/3") == "1/3 ≈ 0.333333333333"


@pytest.mark.parametrize(
    "expr, message",
    [
        ("", "empty"),
        ("1/0", "division by zero"),
        ("__import__('os').system('true')", "unsupported syntax"),
        ("2 ** 100000", "exponent larger"),
        ("9 ** 9 ** 9", "exponent larger"),
        ("1 +", "cannot parse"),
        ("x" * 600, "longer than"),
        ("2 ** 0.5", "whole-number exponents"),
    ],
)
def test_calculator_refuses_safely(expr, message):
    result = calculator(expr)
    assert result.startswith("error:") and message in result


def test_tool_never_raises_and_truncates():
    def boom(_):
        raise RuntimeError("kaput")

    tool = Tool("boom", "fails", "x", boom)
    assert tool("anything") == "error: RuntimeError: kaput"
    long = Tool("long", "long output", "x", lambda s: "y" * 5000, max_result_chars=100)
    assert len(long("")) < 120 and long("").endswith("[truncated]")


def test_registry():
    [calc] = get_tools(["calculator"])
    assert calc("2+3") == "5"
    assert calc.schema()["function"]["parameters"]["required"] == ["expression"]
    with pytest.raises(UserError, match="unknown tool 'calculater'"):
        get_tools(["calculater"])
