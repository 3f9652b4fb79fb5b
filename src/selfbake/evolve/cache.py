"""The evaluation cache: every (model state, system prompt, item, decoding) is scored once per run.

Why: racing re-scores the incumbent every cycle, a plateaued cycle leaves the
model unchanged, and a killed run must resume without paying for its finished
work again. The key is the model-state fingerprint (``fingerprint``: the base
model and the ordered list of kept layers, not a hash of the weights, which
for a large model would cost a pass over every parameter), the system prompt
(None = no system turn), the task and the item's content hash, and the decoding
settings. The cache is an append-only JSON-lines file in the run directory, so a
line written before a kill is kept and a torn last line is ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def fingerprint(base: str, layers: list[dict[str, Any]]) -> str:
    """Model-state id: the base model spec and the kept layers (prompt, kind, bake settings) in order."""
    payload = json.dumps([base, layers], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def entry_key(state: str, system: str | None, task: str, item_key: str, decoding: dict[str, Any]) -> str:
    payload = json.dumps([state, system, task, item_key, decoding], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


class EvalCache:
    """Outcomes (correct or not) by key, persisted as ``eval_cache.jsonl``; counts hits and new scorings."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.outcomes: dict[str, bool] = {}
        self.stage_of: dict[str, str] = {}  # which stage first scored each key
        self.hits = 0
        self.misses = 0
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a kill
                self.outcomes[row["key"]] = bool(row["correct"])
                self.stage_of.setdefault(row["key"], row.get("stage", ""))

    def get(self, key: str) -> bool | None:
        value = self.outcomes.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put_many(self, rows: list[dict[str, Any]]) -> None:
        """rows: {"key", "correct", ...context}; appended and flushed in one write."""
        with open(self.path, "a") as fh:
            fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            fh.flush()
        for r in rows:
            self.outcomes[r["key"]] = bool(r["correct"])
            self.stage_of.setdefault(r["key"], r.get("stage", ""))
