"""Suites (YAML: tasks with weights, sizes, levels) and their three splits, with the test split locked.

Why three splits: racing picks a winner on **dev**; whether the baked winner is
kept is decided on **confirm**, items racing never saw (so the winner's lucky dev
items cannot decide its own acceptance); the frozen **test** split is read once,
by the final report. The published recipe selects and reports on the same items.
The test split is generated from a fixed seed (``TEST_SEED``, as ``forge``'s
behaviour table and ``bake``'s measurement do), independent of ``--seed``, and
``SuiteSplits.test`` raises until ``unlock_test`` is called, so no choice can
depend on a test item without the run failing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfbake import tasks
from selfbake.config import read_yaml
from selfbake.errors import UserError
from selfbake.tasks.base import Item, Task

TEST_SEED = 0  # the frozen test split, whatever --seed
DEFAULT_SUITES = {"tool": "tool_bundled.yaml", "benchmark": "benchmark_bundled.yaml"}


class SuiteTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str
    weight: float = Field(1.0, gt=0)
    levels: list[int] = Field(default_factory=list, description="difficulty levels; empty = all")
    tools: list[str] | None = Field(None, description="tools the answer may call; absent = the task's own")
    dev: int = Field(60, gt=0)
    confirm: int = Field(60, gt=0)
    test: int = Field(100, gt=0)


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    tasks: list[SuiteTask] = Field(min_length=1)


def suite_path(spec: str) -> Path:
    """A suite file: a path, or the name of a shipped suite (tool_bundled, benchmark_bundled)."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = (
        resources.files("selfbake.evolve") / "suites" / (spec if spec.endswith(".yaml") else f"{spec}.yaml")
    )
    if shipped.is_file():
        return Path(str(shipped))
    raise UserError(f"suite '{spec}' is not a file nor a shipped suite (tool_bundled, benchmark_bundled)")


def load_suite(spec: str) -> Suite:
    path = suite_path(spec)
    data = read_yaml(path)
    try:
        suite = Suite(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UserError(f"suite {path}: {where}: {err['msg']}") from None
    for entry in suite.tasks:
        task = tasks.get(entry.task)
        bad = [lv for lv in entry.levels if lv not in task.difficulties]
        if bad and not isinstance(task, tasks.Benchmark):
            raise UserError(
                f"suite {path}: task {entry.task} has no level {bad[0]} (levels: {list(task.difficulties)})"
            )
    return suite


@dataclass(frozen=True)
class Scored:
    """One dev/confirm/test item of a suite: which task it belongs to, and the item."""

    task: str
    item: Item


class LockedSplitError(RuntimeError):
    """The frozen test split was asked for before the final report."""


class SuiteSplits:
    """dev / confirm / test / train items of every task of a suite; ``test`` only after ``unlock_test``."""

    def __init__(self, suite: Suite, seed: int):
        self.suite = suite
        self.seed = seed
        self._test: dict[str, list[Item]] = {}
        self._dev: dict[str, list[Item]] = {}
        self._confirm: dict[str, list[Item]] = {}
        self._train: dict[str, list[Item]] = {}
        self._unlocked = False
        self.test_reads = 0
        for entry in suite.tasks:
            self._make(entry)

    def task(self, name: str) -> Task:
        return tasks.get(name)

    def entry(self, name: str) -> SuiteTask:
        return next(e for e in self.suite.tasks if e.task == name)

    def _make(self, entry: SuiteTask) -> None:
        task = tasks.get(entry.task)
        levels = tuple(entry.levels) or tuple(task.difficulties)
        n_pool = entry.dev + entry.confirm + TRAIN_ITEMS
        if isinstance(task, tasks.Benchmark):
            everything = sorted(task.generate_items(10**9, TEST_SEED), key=lambda i: i.key)
            test, pool = everything[: entry.test], everything[entry.test :]
            random.Random(f"evolve:{self.seed}").shuffle(pool)
        else:
            test = tasks.test_items(task, entry.test, TEST_SEED, levels)
            banned = {i.key for i in test}
            pool, seen = [], set(banned)
            per = -(-n_pool // len(levels))
            for level in levels:
                made = task.generate_items(per * 3 + 10, seed=7_000_003 + self.seed, difficulty=level)
                fresh = [i for i in made if i.key not in seen and not seen.add(i.key)][:per]
                pool += fresh
            random.Random(f"evolve:{entry.task}:{self.seed}").shuffle(pool)
        if len(pool) < entry.dev + entry.confirm:
            raise UserError(
                f"task {entry.task}: only {len(pool)} items for dev {entry.dev} + confirm {entry.confirm}"
            )
        self._test[entry.task] = test
        self._dev[entry.task] = pool[: entry.dev]
        self._confirm[entry.task] = pool[entry.dev : entry.dev + entry.confirm]
        self._train[entry.task] = pool[entry.dev + entry.confirm :]

    def dev(self) -> list[Scored]:
        """Dev items of all tasks interleaved so that every prefix holds the tasks in proportion (racing)."""
        return _interleave(self._dev)

    def confirm(self) -> list[Scored]:
        return _interleave(self._confirm)

    def train(self, n: int) -> list[Scored]:
        """x0 questions for baking a winner: neither dev, confirm nor test items."""
        return _interleave(self._train)[:n]

    def unlock_test(self) -> None:
        self._unlocked = True

    def test(self) -> list[Scored]:
        if not self._unlocked:
            raise LockedSplitError(
                f"the frozen test split of suite '{self.suite.name}' is read only by the final report"
            )
        self.test_reads += 1
        return _interleave(self._test)

    def test_keys_unchecked(self) -> set[str]:
        """The test items' content hashes, for asserting in tests that no choice touched them."""
        return {i.key for items in self._test.values() for i in items}


TRAIN_ITEMS = 256  # bake x0 pool per task (the bake takes n_train + n_val of the suite's)


def _interleave(by_task: dict[str, list[Item]]) -> list[Scored]:
    rows = [
        ((i + 0.5) / len(items), order, Scored(name, item))
        for order, (name, items) in enumerate(by_task.items())
        for i, item in enumerate(items)
    ]
    return [row[2] for row in sorted(rows, key=lambda r: (r[0], r[1]))]
