"""The tool registry the generation tool-call loop uses.

Every tool takes one string argument (an expression, a path, a query) and
returns a string: its result, or a message starting with "error:". A tool
never raises into the caller: ``Tool.__call__`` turns any exception into an
error string the model can read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from selfbake.errors import UserError
from selfbake.tools.calculator import calculator


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameter: str
    fn: Callable[[str], str]
    max_result_chars: int = 2000

    def __call__(self, argument: str) -> str:
        try:
            result = str(self.fn(argument))
        except Exception as exc:  # a tool must never take the loop down
            result = f"error: {type(exc).__name__}: {exc}"
        if len(result) > self.max_result_chars:
            result = result[: self.max_result_chars] + " …[truncated]"
        return result

    def schema(self) -> dict:
        """OpenAI/Hugging Face function schema, for templates with native tool calling."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {self.parameter: {"type": "string"}},
                    "required": [self.parameter],
                },
            },
        }


REGISTRY: dict[str, Tool] = {
    "calculator": Tool(
        "calculator",
        "Exact arithmetic on integers and decimals: + - * / // % ** and parentheses.",
        "expression",
        calculator,
    ),
}


def tool_names() -> list[str]:
    return sorted(REGISTRY)


def get_tools(names: list[str]) -> list[Tool]:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise UserError(f"unknown tool '{unknown[0]}' (available: {', '.join(tool_names())})")
    return [REGISTRY[n] for n in names]
