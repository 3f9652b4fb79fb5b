"""Tools a model may call: plain functions with limits that never raise into the caller."""

from selfbake.tools.calculator import calculator
from selfbake.tools.registry import Tool, get_tools, tool_names

__all__ = ["Tool", "calculator", "get_tools", "tool_names"]
