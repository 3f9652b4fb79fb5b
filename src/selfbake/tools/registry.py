"""The tool registry the generation tool-call loop uses.

Every tool takes one string argument (an expression, a path, a query, code)
and returns a string: its result, or a message starting with "error:". A tool
never raises into the caller: ``Tool.__call__`` turns any exception into an
error string the model can read. Tools that need a place to work (a file root,
a database, a corpus) are bound to it by ``get_tools(names, context)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from selfbake.errors import UserError
from selfbake.tools.calculator import calculator
from selfbake.tools.files import read_file
from selfbake.tools.search import search
from selfbake.tools.sql import sql_query


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

    def describe(self) -> str:
        """One line for a prompt that lists tools (tag format)."""
        return f"{self.name}: {self.description} Call as <call>{self.name}: {self.parameter}</call>"


def _run_code_tool(code: str) -> str:
    from selfbake.tools.sandbox import run_code

    return run_code(code, timeout_s=5).summary()


def _run_code_factory(ctx: dict[str, Any]) -> Callable[[str], str]:
    from selfbake.tools.sandbox import ensure_available

    ensure_available()  # no isolation and no --unsafe-code: one clear error now, not one per tool call
    return _run_code_tool


# name -> (description, parameter, factory(context) -> fn)
SPECS: dict[str, tuple[str, str, Callable[[dict[str, Any]], Callable[[str], str]]]] = {
    "calculator": (
        "Exact arithmetic on integers and decimals: + - * / // % ** and parentheses.",
        "expression",
        lambda ctx: calculator,
    ),
    "run_code": (
        "Run a Python program in a sandbox and return its output.",
        "code",
        _run_code_factory,
    ),
    "read_file": (
        "Read a text file (path relative to the data directory).",
        "path",
        lambda ctx: partial(read_file, root=ctx.get("files_root", "")),
    ),
    "sql_query": (
        "Run one read-only SQL query on the sqlite database.",
        "query",
        lambda ctx: partial(sql_query, db=ctx.get("db", "")),
    ),
    "search": (
        "Search the local document collection; returns the best passages.",
        "query",
        lambda ctx: partial(search, corpus=ctx.get("corpus", "")),
    ),
}


def tool_names() -> list[str]:
    return sorted(SPECS)


def get_tools(names: list[str], context: dict[str, Any] | None = None) -> list[Tool]:
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise UserError(f"unknown tool '{unknown[0]}' (available: {', '.join(tool_names())})")
    context = context or {}
    tools = []
    for name in names:
        description, parameter, factory = SPECS[name]
        tools.append(Tool(name, description, parameter, factory(context)))
    return tools
