"""Typed command configs: YAML file, then CLI flags, then key=value overrides.

Every command's settings are a pydantic model with ``extra="forbid"``, so a
typo is an error that names the key and suggests the closest valid one, never a
silently ignored setting. The resolved config is what a run directory records.
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from selfbake.errors import UserError


class Config(BaseModel):
    """Base for command configs: unknown keys rejected, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def comma_list(value: Any) -> list[str]:
    """A list setting given as repeated flags, a YAML list, or 'a,b' in one string."""
    if isinstance(value, str):
        value = [value]
    return [x.strip() for item in value or [] for x in str(item).split(",") if x.strip()]


class ModelRunConfig(Config):
    """Settings shared by commands that load a model, sample from it and write a run directory."""

    model: str = Field(
        "bundled", description="model: bundled (the default), a directory, a hub id, or random:llama-tiny"
    )
    system: str | None = Field(None, description="system prompt; absent = no system turn at all")
    tools: list[str] = Field(
        default_factory=list, description="tools the model may call, repeatable or comma-separated"
    )
    tool_format: Literal["auto", "tag", "hermes"] = Field("auto", description="tool-call format")
    max_tool_calls: int = Field(4, ge=0, description="tool calls allowed per answer")
    seed: int = Field(0, description="random seed")
    batch_size: int = Field(32, gt=0, description="prompts per generation batch")
    dtype: str = Field("auto", description="auto, float32, bfloat16 or float16")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    out: str | None = Field(None, description="run directory (default runs/<command>-<time>)")
    overwrite: bool = Field(False, description="replace a finished run in --out")
    report_to: Literal["none", "wandb", "tensorboard", "trackio"] = Field(
        "none", description="experiment tracker"
    )

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_list(cls, value):
        return comma_list(value)


def changed_settings(config: BaseModel, saved: Path, ignore: tuple[str, ...] = ()) -> list[str]:
    """Settings of ``config`` that differ from a run's saved ``config.yaml`` (a resumed run must match)."""
    before = yaml.safe_load(saved.read_text()) or {}
    now = config.model_dump(mode="json")
    return [k for k in now if k not in ignore and before.get(k) != now[k]]


def resumable(config: BaseModel, out: Path, command: str, ignore: tuple[str, ...] = ()) -> bool:
    """True when ``out`` holds an unfinished ``command`` run (its ``state/``) to resume; other settings are an
    error. With ``config.overwrite`` the old state and metrics lines are removed and the run starts clean."""
    if getattr(config, "overwrite", False):
        shutil.rmtree(out / "state", ignore_errors=True)
        (out / "metrics.jsonl").unlink(missing_ok=True)
        return False
    saved = out / "config.yaml"
    if (out / "summary.json").exists() or not saved.exists() or not (out / "state").is_dir():
        return False
    changed = changed_settings(config, saved, ignore)
    if changed:
        raise UserError(
            f"{out} holds an unfinished {command} with other settings ({', '.join(changed)}); run it again with "
            "the same settings to resume it, or pass --overwrite or another --out"
        )
    return True


def closest_key(key: str, valid: list[str]) -> str | None:
    matches = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return matches[0] if matches else None


def check_keys(cls: type[Config], values: dict[str, Any], source: str) -> None:
    valid = sorted(cls.model_fields)
    for key in values:
        if key not in cls.model_fields:
            hint = closest_key(key, valid)
            suggestion = f"; did you mean '{hint}'?" if hint else f"; valid keys: {', '.join(valid)}"
            raise UserError(f"unknown config key '{key}' in {source}{suggestion}")


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"malformed YAML in {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value, not {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML, so 3 is an int and [a, b] a list."""
    if "=" not in text:
        raise UserError(f"override '{text}' is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip().replace("-", "_")
    if not key:
        raise UserError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        if err["type"] == "missing":
            parts.append(f"missing required setting '{loc}'")
        elif err["type"] == "extra_forbidden":
            parts.append(f"unknown config key '{loc}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg} (got {json.dumps(err.get('input'), default=str)})")
    return "invalid config: " + "; ".join(parts)


def resolve(
    cls: type[Config],
    *,
    config_file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Merge YAML < explicit flags < key=value overrides into a validated config."""
    values: dict[str, Any] = {}
    if config_file is not None:
        from_file = read_yaml(config_file)
        check_keys(cls, from_file, str(config_file))
        values.update(from_file)
    values.update({k: v for k, v in (flags or {}).items() if v is not None})
    parsed = dict(parse_override(o) for o in overrides or [])
    check_keys(cls, parsed, "overrides")
    values.update(parsed)
    try:
        return cls(**values)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc)) from None


def to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
