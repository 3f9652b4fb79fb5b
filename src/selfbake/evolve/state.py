"""Run-directory state of an evolve run: stage markers and the current model state.

Why: a killed run rerun with the same command must continue from the last
finished stage and end with the same layers and numbers. Each stage (propose,
race, bake, decide of every cycle; final) writes its result to
``state/<stage>.json`` atomically once it is done; a rerun replays finished
stages from their markers (re-logging their metric lines, so metrics.jsonl is
rebuilt in the same order) and runs the rest. The model after a kept layer is
written to disk and always *reloaded* from there, by an uninterrupted run too,
so both see bit-identical weights.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfbake.evolve.cache import fingerprint
from selfbake.models import load
from selfbake.tracking.rundir import RunDir, atomic_write_text

EXIT_AFTER_ENV = "SELFBAKE_EVOLVE_EXIT_AFTER"  # test hook: the process exits right after this stage's marker


class Stages:
    def __init__(self, root: Path, run: RunDir):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.run = run
        self.replayed: list[str] = []

    def __call__(self, name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = self.root / f"{name}.json"
        if path.exists():
            payload = json.loads(path.read_text())
            self.replayed.append(name)
        else:
            payload = work()
            atomic_write_text(path, json.dumps(payload, ensure_ascii=False) + "\n")
            if os.environ.get(EXIT_AFTER_ENV) == name:
                os._exit(17)
        for line in payload.get("metrics", []):
            self.run.log(step=line["step"], **line["values"])
        return payload


class ModelState:
    """The base model plus the kept layers; the weights load lazily, from disk."""

    def __init__(self, base: str, *, dtype: str, device: str, seed: int):
        self.base = base
        self.dtype, self.device, self.seed = dtype, device, seed
        self.layers: list[dict[str, Any]] = []  # kept layers, in order
        self.path: str | None = None  # merged weights of the last kept layer
        self._model = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(f"{self.base}@seed={self.seed}", [layer["identity"] for layer in self.layers])

    def model(self):
        if self._model is None:
            self._model, _ = load(
                self.path or self.base, dtype=self.dtype, device=self.device, seed=self.seed
            )
        return self._model

    def forget_weights(self) -> None:
        """Drop the in-memory model (a bake wraps it in place); the next use reloads it from disk."""
        self._model = None

    def with_layer(self, layer: dict[str, Any], path: str) -> ModelState:
        nxt = ModelState(self.base, dtype=self.dtype, device=self.device, seed=self.seed)
        nxt.layers = [*self.layers, layer]
        nxt.path = path
        return nxt
