"""The task contract every loop judges a model by, and deterministic frozen splits.

A task makes or loads ``Item``s, turns one into a user turn, extracts an answer
from free text and verifies it. Procedural tasks generate items from a seed and
a difficulty; benchmark tasks read their public file format. ``splits``
follows DESIGN.md's measurement rules: the test split is generated first from
its own seed, hashed, and every train/dev candidate whose hash is in it is
dropped, so no test item is ever trained on or selected with.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any, Literal

Scoring = Literal["generate", "loglikelihood", "code"]


@dataclass(frozen=True)
class Item:
    question: str
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    choices: tuple[str, ...] | None = None  # for log-likelihood multiple choice: the continuations
    gold: int | None = None  # index of the right choice

    @property
    def key(self) -> str:
        """Content hash: equal questions are the same item, whatever their metadata."""
        payload = json.dumps([self.question, self.choices], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Task:
    """Base class. Subclasses set ``name`` and override ``sample`` (procedural) or ``load`` (benchmarks)."""

    name: str = ""
    description: str = ""
    scoring: Scoring = "generate"
    chat: bool = True  # render prompts with the chat template (benchmarks default to raw text, as lm-eval)
    tools: tuple[str, ...] = ()  # tools an answer may need
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 96
    difficulties: tuple[int, ...] = (1,)

    def sample(self, rng: random.Random, difficulty: int) -> Item:
        raise NotImplementedError(f"task {self.name} has no generator")

    def generate_items(self, n: int, seed: int, difficulty: int | None = None) -> list[Item]:
        rng = random.Random(f"{self.name}:{seed}")
        levels = [difficulty] if difficulty is not None else list(self.difficulties)
        return [self.sample(rng, levels[i % len(levels)]) for i in range(n)]

    def prompt(self, item: Item) -> str:
        return item.question

    def extract(self, text: str) -> str | None:
        raise NotImplementedError

    def verify(self, item: Item, text: str) -> bool:
        answer = self.extract(text)
        return answer is not None and self.normalize(answer) == self.normalize(item.answer)

    def normalize(self, answer: str) -> str:
        return answer.strip()

    def baseline(self, items: list[Item]) -> float:
        """Chance for multiple choice; otherwise the rate of always giving the most common answer."""
        if not items:
            return 0.0
        if self.scoring == "loglikelihood":
            return sum(1 / len(i.choices or [1]) for i in items) / len(items)
        counts: dict[str, int] = {}
        for item in items:
            key = self.normalize(item.answer)
            counts[key] = counts.get(key, 0) + 1
        return max(counts.values()) / len(items)

    def prepare(self, workdir) -> dict[str, Any]:
        """Create the resources the task's tools read (files, databases); returns tool settings."""
        return {}


@dataclass
class Splits:
    train: list[Item]
    dev: list[Item]
    test: list[Item]

    def keys(self, name: str) -> set[str]:
        return {item.key for item in getattr(self, name)}


def splits(
    task: Task, n_train: int, n_dev: int, n_test: int, seed: int = 0, difficulty: int | None = None
) -> Splits:
    """Deterministic, disjoint splits; the test split depends only on (task, seed), never on n_train/n_dev."""
    test = _unique(
        task.generate_items(n_test * 3 + 10, seed=seed * 1000 + 999, difficulty=difficulty), n_test, set()
    )
    excluded = {item.key for item in test}
    pool = task.generate_items((n_train + n_dev) * 3 + 10, seed=seed * 1000 + 1, difficulty=difficulty)
    rest = _unique(pool, n_train + n_dev, excluded)
    if len(test) < n_test or len(rest) < n_train + n_dev:
        raise ValueError(
            f"task {task.name} cannot make {n_train}/{n_dev}/{n_test} distinct items at this difficulty"
        )
    return Splits(train=rest[:n_train], dev=rest[n_train:], test=test)


def test_items(task: Task, n: int, seed: int, levels: tuple[int, ...]) -> list[Item]:
    """The frozen test split spread evenly over difficulty levels (n items in all)."""
    per = -(-n // len(levels))
    items: list[Item] = []
    for level in levels:
        items += splits(task, 0, 0, per, seed=seed, difficulty=level).test
    return items[:n]


def _unique(items: list[Item], n: int, excluded: set[str]) -> list[Item]:
    seen = set(excluded)
    out = []
    for item in items:
        if item.key in seen:
            continue
        seen.add(item.key)
        out.append(item)
        if len(out) == n:
            break
    return out
