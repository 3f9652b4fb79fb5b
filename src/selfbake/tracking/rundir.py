"""Every command that computes writes a run directory.

Layout: ``config.yaml`` (the resolved config), ``metrics.jsonl`` (a line per
logged step), ``samples.jsonl`` where samples exist, artifacts, and
``summary.json`` written last and atomically: a directory without summary.json
is an unfinished run, never a finished one with missing parts.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from selfbake.errors import UserError


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write to a temp file in the same directory, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    return value


def default_run_path(command: str, root: str | Path = "runs") -> Path:
    """runs/<command>-<time>, with -2, -3... when runs start within the same second."""
    base = Path(root) / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


class RunDir:
    """A run directory; ``finish(summary)`` marks it complete."""

    def __init__(self, path: str | Path, *, overwrite: bool = False, reporters: list | None = None):
        self.path = Path(path)
        if (self.path / "summary.json").exists() and not overwrite:
            raise UserError(
                f"{self.path} already holds a finished run (summary.json); choose another --out or pass overwrite=true"
            )
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"run directory {self.path} exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / "summary.json").exists():  # overwriting a finished run: its metrics go with it
            (self.path / "metrics.jsonl").unlink(missing_ok=True)
        (self.path / "summary.json").unlink(missing_ok=True)
        self.reporters = reporters or []
        self.started = time.time()

    def write_config(self, config: dict[str, Any]) -> Path:
        return atomic_write_text(
            self.path / "config.yaml", yaml.safe_dump(_jsonable(config), sort_keys=False)
        )

    def log(self, step: int | None = None, **metrics: Any) -> None:
        record = {"step": step, "time": round(time.time() - self.started, 3), **_jsonable(metrics)}
        with open(self.path / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        numeric = {
            k: v for k, v in record.items() if isinstance(v, (int, float)) and k not in ("step", "time")
        }
        for reporter in self.reporters:
            reporter.log(numeric, step)

    def write_samples(self, records: list[dict[str, Any]], name: str = "samples.jsonl") -> Path:
        text = "".join(json.dumps(_jsonable(r), ensure_ascii=False) + "\n" for r in records)
        return atomic_write_text(self.path / name, text)

    def artifact(self, name: str) -> Path:
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def finish(self, summary: dict[str, Any]) -> Path:
        summary = {**summary, "seconds": summary.get("seconds", round(time.time() - self.started, 3))}
        for reporter in self.reporters:
            reporter.finish(_jsonable(summary))
        return atomic_write_text(self.path / "summary.json", json.dumps(_jsonable(summary), indent=2) + "\n")


def open_run(
    command: str, config, out: str | None, *, overwrite: bool = False, report_to: str = "none"
) -> RunDir:
    """A run directory for ``command`` with its resolved config written and trackers attached."""
    from selfbake.tracking.reporters import make_reporters

    run = RunDir(Path(out) if out else default_run_path(command), overwrite=overwrite)
    resolved = config.model_dump(mode="json")
    run.write_config(resolved)
    run.reporters = make_reporters(report_to, run.path, resolved)
    return run
