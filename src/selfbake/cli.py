"""The command line: one table maps each subcommand to a config class and a plain function.

Flags are built from the config's fields (name, type, description), so
``--help`` always matches what the command accepts. Every command also takes
``--config FILE.yaml`` and ``key=value`` overrides (precedence: YAML < flags <
overrides). Mistakes the user can fix exit with code 2 and one line on stderr;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import traceback
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from selfbake import __version__
from selfbake.config import Config, resolve
from selfbake.errors import UserError


class ReportConfig(Config):
    """Settings of ``selfbake report``."""

    run_dir: str = Field(description="run directory to summarise", json_schema_extra={"positional": True})


class EnvConfig(Config):
    """Settings of ``selfbake env``."""

    format: typing.Literal["text", "json"] = Field("text", description="a list to paste, or one JSON object")


def cmd_env(config: EnvConfig) -> None:
    """Print what a bug report needs: versions, platform, device, threads, CUDA and GPUs."""
    import json

    from selfbake.environment import environment, format_environment

    facts = environment()
    print(json.dumps(facts, indent=2) if config.format == "json" else format_environment(facts))


def cmd_generate(config) -> None:
    from selfbake.generate import run_generate

    run_generate(config)


def cmd_report(config: ReportConfig) -> None:
    from selfbake.tracking import write_report

    path = write_report(config.run_dir)
    print(f"report: {path}")


def cmd_eval(config) -> None:
    from selfbake.evaluate import run_eval

    run_eval(config)


def _eval_config():
    from selfbake.evaluate import EvalConfig

    return EvalConfig


def cmd_forge(config) -> None:
    from selfbake.forge.command import run_forge

    run_forge(config)


def _forge_config():
    from selfbake.forge.train import ForgeConfig

    return ForgeConfig


def cmd_bake(config) -> None:
    from selfbake.baking.command import run_bake

    run_bake(config)


def _bake_config():
    from selfbake.baking.command import BakeConfig

    return BakeConfig


def cmd_iterate(config) -> None:
    from selfbake.iteration.command import run_iterate

    run_iterate(config)


def _iterate_config():
    from selfbake.iteration.loop import IterateConfig

    return IterateConfig


def cmd_evolve(config) -> None:
    from selfbake.evolve.command import run_evolve

    run_evolve(config)


def _evolve_config():
    from selfbake.evolve import EvolveConfig

    return EvolveConfig


def _generate_config():
    from selfbake.generate import GenerateConfig

    return GenerateConfig


@dataclass(frozen=True)
class Command:
    help: str
    config: Callable[[], type[Config]]
    run: Callable[[Any], None]


# the commands whose models may call run_code (tools, code tasks): they take --unsafe-code
RUNS_MODEL_CODE = {"generate", "eval", "bake", "iterate", "evolve"}

COMMANDS: dict[str, Command] = {
    "generate": Command(
        "sample answers from a model, optionally calling tools", _generate_config, cmd_generate
    ),
    "eval": Command(
        "score a model on tasks: accuracy, 95% interval, baseline; --compare two runs", _eval_config, cmd_eval
    ),
    "bake": Command(
        "bake a prompt into LoRA weights (Prompt Baking): half-bake, pursue, sequence, measure",
        _bake_config,
        cmd_bake,
    ),
    "iterate": Command(
        "expert iteration: learn from verified own solutions; frozen test, resumable",
        _iterate_config,
        cmd_iterate,
    ),
    "evolve": Command(
        "the model searches for its own tool and thinking prompts, races them, bakes winners; resumable",
        _evolve_config,
        cmd_evolve,
    ),
    "forge": Command("train the bundled tiny chat model from scratch on CPU", _forge_config, cmd_forge),
    "report": Command(
        "write RUN_DIR/report.html: summary table and metric plots", lambda: ReportConfig, cmd_report
    ),
    "env": Command(
        "print versions, platform, device, CUDA and GPUs for a bug report", lambda: EnvConfig, cmd_env
    ),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise UserError(f"{message} (see '{self.prog} --help')")


def _unwrap(annotation):
    """(base type, is_list, choices) of a field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0])
    if origin is list:
        return _unwrap(typing.get_args(annotation)[0])[0], True, None
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), False, choices
    return annotation, False, None


def _flag_groups(parser: argparse.ArgumentParser, cls: type[Config]) -> list[tuple[str, Any]]:
    """(field name, parser or argparse group) in --help order. A config's ``help_groups`` (title -> field
    names) puts its flags in those groups, in that order; the group with no names takes the rest."""
    groups = getattr(cls, "help_groups", None)
    if not groups:
        return [(name, parser) for name in cls.model_fields]
    named = {name for names in groups.values() for name in names}
    out = []
    for title, names in groups.items():
        group = parser.add_argument_group(title)
        out += [(name, group) for name in names or [n for n in cls.model_fields if n not in named]]
    return out


def add_config_flags(parser: argparse.ArgumentParser, cls: type[Config]) -> None:
    for name, target in _flag_groups(parser, cls):
        field = cls.model_fields[name]
        base, is_list, choices = _unwrap(field.annotation)
        extra = field.json_schema_extra or {}
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if field.is_required():
            help_text = (field.description or "") + " (required)"
        else:
            help_text = (field.description or "") + (
                "" if default in (None, []) else f" (default: {default})"
            )
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        if isinstance(extra, dict) and extra.get("positional"):
            target.add_argument(name, metavar=name.upper(), help=help_text)
            continue
        flag = "--" + name.replace("_", "-")
        if base is bool:
            target.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif is_list and isinstance(extra, dict) and extra.get("nargs"):
            target.add_argument(
                flag,
                dest=name,
                nargs=extra["nargs"],
                type=base,
                default=None,
                metavar=extra.get("metavar", name.upper()),
                help=help_text,
            )
        elif is_list:
            target.add_argument(
                flag,
                dest=name,
                action="append",
                type=str,  # the config's validator splits "a,b" and converts
                default=None,
                metavar=name.upper(),
                help=help_text,
            )
        else:
            target.add_argument(
                flag,
                dest=name,
                type=base,
                choices=choices,
                default=None,
                metavar=None if choices else name.upper(),
                help=help_text,
            )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="selfbake",
        description="A language model improves itself: bake prompts into weights, evolve, iterate, distill, synthesize.",
        epilog="Every command takes --config FILE.yaml and key=value overrides. Run 'selfbake COMMAND --help'.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"selfbake {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=command.help.replace("%", "%%"),
            description=command.help,  # argparse %-formats a description only when it holds %(prog)
            epilog="Settings can also come from --config FILE.yaml and key=value overrides (YAML < flags < overrides).",
            allow_abbrev=False,
        )
        p.add_argument("--config", dest="_config_file", metavar="FILE.yaml", help="YAML file of settings")
        p.add_argument("--debug", dest="_debug", action="store_true", help="show full tracebacks")
        if name in RUNS_MODEL_CODE:
            p.add_argument(
                "--unsafe-code",
                dest="_unsafe_code",
                action="store_true",
                help="run model-written code even where the sandbox cannot isolate it (no user namespaces)",
            )
        add_config_flags(p, command.config())
    return parser


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.-]*=")


def _split_leftovers(leftovers: list[str], parser: argparse.ArgumentParser, command: str) -> list[str]:
    overrides = []
    for token in leftovers:
        if _OVERRIDE.match(token):
            overrides.append(token)
            continue
        if token.startswith("--"):
            sub = parser._subparsers._group_actions[0].choices[command]  # noqa: SLF001
            flags = [s for a in sub._actions for s in a.option_strings]  # noqa: SLF001
            hint = difflib.get_close_matches(token.split("=")[0], flags, n=1, cutoff=0.5)
            raise UserError(f"unknown option '{token}'" + (f"; did you mean '{hint[0]}'?" if hint else ""))
        raise UserError(f"unexpected argument '{token}' (settings go as --flag VALUE or key=value)")
    return overrides


def run(argv: list[str]) -> None:
    parser = build_parser()
    args, leftovers = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        raise UserError("no command given")
    overrides = _split_leftovers(leftovers, parser, args.command)
    if getattr(args, "_unsafe_code", False):
        from selfbake.tools.sandbox import allow_unsafe_code

        allow_unsafe_code()
    command = COMMANDS[args.command]
    flags = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}
    config = resolve(command.config(), config_file=args._config_file, flags=flags, overrides=overrides)
    command.run(config)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        run(argv)
    except UserError as exc:
        if debug:
            traceback.print_exc()
        print(f"selfbake: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "selfbake: interrupted (bake, eval, iterate and forge resume when run again with the same --out)",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:
        if debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"selfbake: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
