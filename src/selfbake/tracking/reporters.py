"""Optional experiment trackers behind one tiny interface: log(metrics, step), finish(summary).

W&B, TensorBoard and trackio are imported only when asked for, so the core
install needs none of them; a missing one is a one-line error naming the
extra to install.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from selfbake.errors import UserError

CHOICES = ("none", "wandb", "tensorboard", "trackio")


def _require(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"--report-to {extra} needs the '{extra}' package: pip install 'selfbake[{extra}]'"
        ) from None


class WandbReporter:
    def __init__(self, run_dir: Path, name: str, config: dict[str, Any]):
        wandb = _require("wandb", "wandb")
        self.run = wandb.init(project="selfbake", name=name, dir=str(run_dir), config=config)

    def log(self, metrics: dict[str, float], step: int | None) -> None:
        self.run.log(metrics, step=step)

    def finish(self, summary: dict[str, Any]) -> None:
        self.run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        self.run.finish()


class TensorboardReporter:
    def __init__(self, run_dir: Path, name: str, config: dict[str, Any]):
        _require("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.count = 0

    def log(self, metrics: dict[str, float], step: int | None) -> None:
        step = self.count if step is None else step
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.count += 1

    def finish(self, summary: dict[str, Any]) -> None:
        self.writer.close()


class TrackioReporter:
    def __init__(self, run_dir: Path, name: str, config: dict[str, Any]):
        self.trackio = _require("trackio", "trackio")
        self.trackio.init(project="selfbake", name=name, config=config)

    def log(self, metrics: dict[str, float], step: int | None) -> None:
        self.trackio.log(metrics, step=step)

    def finish(self, summary: dict[str, Any]) -> None:
        self.trackio.finish()


def make_reporters(report_to: str, run_dir: Path, config: dict[str, Any]) -> list:
    classes = {"wandb": WandbReporter, "tensorboard": TensorboardReporter, "trackio": TrackioReporter}
    if report_to == "none":
        return []
    if report_to not in classes:
        raise UserError(f"unknown --report-to '{report_to}' (choose {', '.join(CHOICES)})")
    return [classes[report_to](run_dir, run_dir.name, config)]
