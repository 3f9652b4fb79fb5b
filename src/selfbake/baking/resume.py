"""What a killed bake leaves behind so that running it again finishes it instead of starting over.

A bake on a real model runs for hours (sampling, then training); losing it to
a pre-empted machine is the common failure. Each unit of work (a bake, a
pursuit round, a sequence layer) keeps, under ``state/<unit>/``:

- ``train.jsonl`` / ``val.jsonl``: the sampled trajectories (sampling is not redone);
- ``training.pt``: at each validation, everything the training loop needs to go
  on from that step exactly (adapter, AdamW moments, batch order, RNG state,
  best and previous checkpoints, history);
- ``result.pt``: the finished unit (adapter weights and figures), so it is skipped.

Every file is written to a temporary name and renamed. Each save records how many
lines ``metrics.jsonl`` had; resuming from it drops the lines the killed run
logged after it, so the metrics of a resumed run read like an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from selfbake.baking.trajectories import Trajectory
from selfbake.tracking.rundir import atomic_write_text


class BakeState:
    """One unit's resumable state in ``root``; ``metrics`` is the run's metrics.jsonl (or None)."""

    def __init__(self, root: str | Path, metrics: str | Path | None = None):
        self.root = Path(root)
        self.metrics = Path(metrics) if metrics else None

    def unit(self, name: str) -> BakeState:
        return BakeState(self.root / name, self.metrics)

    # metrics.jsonl bookkeeping
    def _mark(self) -> int:
        if self.metrics is None or not self.metrics.exists():
            return 0
        with open(self.metrics, "rb") as fh:
            return sum(1 for _ in fh)

    def rewind_metrics(self, mark: int) -> None:
        """Keep the first ``mark`` lines of metrics.jsonl (what was logged before the state was saved)."""
        if self.metrics is None or not self.metrics.exists():
            return
        lines = self.metrics.read_text().splitlines(keepends=True)
        if len(lines) > mark:
            atomic_write_text(self.metrics, "".join(lines[:mark]))

    # trajectories
    def save_sampled(self, train: list[Trajectory], val: list[Trajectory], seconds: float) -> None:
        for split, trajectories in (("train", train), ("val", val)):
            text = "".join(json.dumps(t.to_record(), ensure_ascii=False) + "\n" for t in trajectories)
            atomic_write_text(self.root / f"{split}.jsonl", text)
        done = {"seconds": seconds, "metrics_mark": self._mark()}
        atomic_write_text(self.root / "sampled.json", json.dumps(done) + "\n")  # last: marks both complete

    def sampled_info(self) -> dict[str, Any] | None:
        """{"seconds", "metrics_mark"} of a finished sampling stage, else None (trajectories not read)."""
        done = self.root / "sampled.json"
        return json.loads(done.read_text()) if done.exists() else None

    def sampled(self) -> tuple[list[Trajectory], list[Trajectory], dict[str, Any]] | None:
        """(train, val, ``sampled_info``) when sampling finished, else None."""
        info = self.sampled_info()
        if info is None:
            return None

        def read(split: str) -> list[Trajectory]:
            lines = (self.root / f"{split}.jsonl").read_text().splitlines()
            return [Trajectory.from_record(json.loads(line)) for line in lines if line]

        return read("train"), read("val"), info

    # training loop state and finished results
    def save_training(self, payload: dict[str, Any]) -> None:
        _atomic_save({**payload, "metrics_mark": self._mark()}, self.root / "training.pt")

    def training(self) -> dict[str, Any] | None:
        return _load(self.root / "training.pt")

    def save_result(self, payload: dict[str, Any]) -> None:
        _atomic_save(payload, self.root / "result.pt")
        (self.root / "training.pt").unlink(missing_ok=True)  # superseded

    def result(self) -> dict[str, Any] | None:
        return _load(self.root / "result.pt")


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path) -> dict[str, Any] | None:
    # written by this module only: plain containers, numbers, strings and tensors
    return torch.load(path, weights_only=True) if path.exists() else None
