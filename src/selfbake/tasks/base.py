"""The task contract every loop judges a model by, and deterministic frozen splits.

A task makes or loads ``Item``s, turns one into a user turn, extracts an answer
from free text and verifies it. Procedural tasks generate items from a seed and
a difficulty; benchmark tasks read their public file format. ``splits``
follows DESIGN.md's measurement rules: the test split is generated first from
its own fixed seed (``TEST_SEED``, never the run's ``--seed``), hashed, and
every train/dev candidate whose hash is in it is dropped, so no test item is
ever trained on or selected with, and every run of every command reports on
the same items. The bundled model's curriculum leaves out exactly these items.

``extract`` and ``verify`` (and ``verify_mode``) read a model's output, and one odd output must not
stop an eval or an iterate run: every task class's own methods of those names are
wrapped (``__init_subclass__``) so an exception becomes "no answer" / "wrong",
with the reason kept in ``task.judge_errors`` and logged. A ``UserError`` (a
setting the user must fix) still propagates.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from selfbake.errors import UserError

Scoring = Literal["generate", "loglikelihood", "code"]
TEST_SEED = 0  # the frozen test split's seed, whatever a run's --seed (forge excluded seed 0's items)
MAX_DRAWS_PER_ITEM = 20  # draws per wanted item before a family is judged too small for the request


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


MAX_JUDGE_ERRORS = 100  # reasons kept per task object
log = logging.getLogger(__name__)


def _never_raises(method, fallback):
    """``method`` (extract or verify) returning ``fallback`` instead of raising on a model's output."""

    @functools.wraps(method)
    def safe(self, item_or_text, *args):
        try:
            return method(self, item_or_text, *args)
        except UserError:
            raise
        except Exception as exc:
            reason = f"{method.__name__} raised {type(exc).__name__}: {str(exc)[:200]}"
            errors = self.__dict__.setdefault("judge_errors", [])
            if len(errors) < MAX_JUDGE_ERRORS:
                errors.append(reason)
            log.warning("task %s: %s (counted as %s)", self.name, reason, fallback)
            return fallback

    safe.never_raises = True
    return safe


class Task:
    """Base class. Subclasses set ``name`` and override ``sample`` (procedural) or ``load`` (benchmarks)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, fallback in (("extract", None), ("verify", False), ("verify_mode", False)):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "never_raises", False):
                setattr(cls, name, _never_raises(method, fallback))

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
        stream = self.item_stream(seed, difficulty)
        return [next(stream) for _ in range(n)]

    def item_stream(self, seed: int, difficulty: int | None = None) -> Iterator[Item]:
        """Endless items from a seed; ``generate_items(n)`` is its first n (so longer draws extend shorter)."""
        rng = random.Random(f"{self.name}:{seed}")
        levels = [difficulty] if difficulty is not None else list(self.difficulties)
        i = 0
        while True:
            yield self.sample(rng, levels[i % len(levels)])
            i += 1

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


Task.verify = _never_raises(Task.verify, False)


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
    """Deterministic, disjoint splits. The test split is frozen: it depends only on (task, difficulty),
    never on ``seed`` or n_train/n_dev; ``seed`` picks the train and dev items.

    A family with fewer distinct items than asked for (brackets at difficulty 1 has 56) is a UserError
    that says how many exist."""
    test = _unique(task.item_stream(TEST_SEED * 1000 + 999, difficulty), n_test, set())
    excluded = {item.key for item in test}
    rest = _unique(task.item_stream(seed * 1000 + 1, difficulty), n_train + n_dev, excluded)
    if len(test) < n_test or len(rest) < n_train + n_dev:
        level = f"difficulty {difficulty}" if difficulty is not None else "its mix of difficulties"
        found = count_distinct(task, difficulty)
        raise UserError(
            f"task {task.name} at {level} has {found} distinct items, fewer than the {n_train + n_dev + n_test} "
            f"asked for ({n_train} train + {n_dev} dev + {n_test} test); ask for fewer or use a harder level"
        )
    return Splits(train=rest[:n_train], dev=rest[n_train:], test=test)


def count_distinct(task: Task, difficulty: int | None, patience: int = 5_000, limit: int = 50_000) -> str:
    """How many distinct items a family makes at a difficulty: draws until ``patience`` draws in a row bring
    nothing new (exact for small families); "at least N" when ``limit`` draws end first."""
    seen: set[str] = set()
    since_new = 0
    for draws, item in enumerate(task.item_stream(TEST_SEED * 1000 + 999, difficulty), 1):
        if item.key in seen:
            since_new += 1
            if since_new >= patience:
                return str(len(seen))
        else:
            seen.add(item.key)
            since_new = 0
        if draws >= limit:
            break
    return f"at least {len(seen)}"


def test_items(task: Task, n: int, seed: int, levels: tuple[int, ...]) -> list[Item]:
    """The frozen test split spread evenly over difficulty levels (n items in all).

    ``seed`` is accepted for the callers' sake and does not change the items: the test split is frozen."""
    per = -(-n // len(levels))
    items: list[Item] = []
    for level in levels:
        items += splits(task, 0, 0, per, seed=seed, difficulty=level).test
    return items[:n]


def _unique(stream: Iterator[Item], n: int, excluded: set[str]) -> list[Item]:
    """The first n items of the stream not excluded and not repeated; fewer when the family runs dry."""
    seen = set(excluded)
    out: list[Item] = []
    for _ in range(n * MAX_DRAWS_PER_ITEM + 100):
        if len(out) == n:
            break
        item = next(stream)
        if item.key in seen:
            continue
        seen.add(item.key)
        out.append(item)
    return out
