"""Tools a model may call: plain functions with limits that never raise into the caller."""

from selfbake.tools.calculator import calculator
from selfbake.tools.files import read_file
from selfbake.tools.registry import Tool, get_tools, tool_names
from selfbake.tools.sandbox import ExecResult, run_code
from selfbake.tools.search import search
from selfbake.tools.sql import sql_query

__all__ = [
    "ExecResult",
    "Tool",
    "calculator",
    "get_tools",
    "read_file",
    "run_code",
    "search",
    "sql_query",
    "tool_names",
]
