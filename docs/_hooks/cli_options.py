"""MkDocs hook: option tables on the command pages, generated from the CLI's own parser.

A command page writes `<!-- cli-options: bake -->`, on a line of its own, where its options belong. At build time this hook
asks `selfbake.cli.build_parser()` (the parser that prints `selfbake bake --help`) for that command's
arguments, group by group, and renders each flag with its metavar or choices and its help text as argparse
expands it (defaults included). So the tables cannot drift from `--help`: a renamed flag, a new group or a
changed default shows up in the next build, and a page naming a command that no longer exists fails the
(strict) build. Reading argparse's action list is what sphinx-argparse and mkdocs-click do as well; the one
MkDocs plugin for argparse found (mkdocs-argparse 0.0.1) is a first release, so the ~40 lines live here.
"""

from __future__ import annotations

import argparse
import re

from mkdocs.exceptions import PluginError

MARKER = re.compile(r"^<!--\s*cli-options:\s*([\w-]+)\s*-->\s*$", re.M)  # a line of its own


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:  # noqa: SLF001 (argparse keeps subcommands there)
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:  # noqa: SLF001
            return action.choices[command]
    raise PluginError(f"cli-options: no command '{command}' in `selfbake --help`")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _flag(action: argparse.Action) -> str:
    """`--flag VALUE` as --help's usage line writes it (choices in braces); `--x`, `--no-x` for switches."""
    if not action.option_strings:  # a positional argument
        return f"`{action.metavar or action.dest}`"
    if action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction):
        return ", ".join(f"`{s}`" for s in action.option_strings)
    if action.choices:
        value = "{" + ",".join(map(str, action.choices)) + "}"
    elif isinstance(action.metavar, tuple):
        value = " ".join(action.metavar)
    else:
        value = action.metavar or action.dest.upper()
    return ", ".join(f"`{s} {value}`" for s in action.option_strings)


def options_markdown(command: str) -> str:
    """Markdown tables, one per argument group, of `selfbake COMMAND --help`."""
    from selfbake.cli import build_parser

    sub = _subparser(build_parser(), command)
    formatter = sub._get_formatter()  # noqa: SLF001
    parts = []
    for group in sub._action_groups:  # noqa: SLF001
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]  # noqa: SLF001
        actions = [a for a in actions if "-h" not in a.option_strings]
        if not actions:
            continue
        rows = [f"| {_flag(a)} | {_cell(formatter._expand_help(a))} |" for a in actions]  # noqa: SLF001
        parts.append(f"**{group.title}**\n\n| option | what it sets |\n|---|---|\n" + "\n".join(rows))
    return "\n\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARKER.sub(lambda m: options_markdown(m.group(1)), markdown)
