"""Score a model state under a system prompt on suite items, through the cache; suite-level statistics.

Why here and not in ``selfbake.scoring``: the loop scores the same (model,
prompt, item) many times over (racing's re-looks, the incumbent every cycle, a
resumed run), so every outcome goes through ``EvalCache`` and only new
scorings count as metric calls. Suite aggregates are weighted means of
per-task accuracies; their intervals use the normal approximation of the
weighted sum (Wilson for a one-task suite), and a paired comparison of two
models reports the weighted difference with the exact McNemar p on the pooled
discordant items (``selfbake.tasks.stats``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from selfbake.evolve.cache import EvalCache, entry_key
from selfbake.evolve.suites import Scored, SuiteSplits
from selfbake.scoring import score
from selfbake.tasks.stats import Z95, mcnemar_exact, wilson


class Evaluator:
    def __init__(
        self, cache: EvalCache, tokenizer, *, batch_size: int, seed: int, max_new_tokens: int | None = None
    ):
        self.cache = cache
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.seed = seed
        self.max_new_tokens = max_new_tokens
        self.metric_calls = 0  # new scorings in this process
        self.stage_calls: dict[str, set[str]] = {}  # keys a stage scored itself (stable across resumes)

    def outcomes(
        self, state, splits: SuiteSplits, system: str | None, items: Sequence[Scored], stage: str
    ) -> list[bool]:
        """0/1 outcomes of ``state`` (a ``ModelState``) prompted with ``system`` on ``items``, in order."""
        keys, missing = [], {}
        for index, row in enumerate(items):
            decoding = self.decoding(splits, row.task)
            key = entry_key(state.fingerprint, system, row.task, row.item.key, decoding)
            keys.append(key)
            if self.cache.get(key) is None:
                missing.setdefault(row.task, []).append((index, key))
        for task_name, rows in missing.items():
            task = splits.task(task_name)
            tools = self.tools(splits, task_name)
            result = score(
                state.model(),
                self.tokenizer,
                task,
                [items[i].item for i, _ in rows],
                system=system,
                tools=tools or None,
                batch_size=self.batch_size,
                seed=self.seed,
                max_new_tokens=self.max_new_tokens,
            )
            self.metric_calls += len(rows)
            self.cache.put_many(
                [
                    {"key": key, "correct": bool(r["correct"]), "task": task_name, "item": items[i].item.key,
                     "state": state.fingerprint, "system": system, "stage": stage}
                    for (i, key), r in zip(rows, result.records, strict=True)
                ]
            )  # fmt: skip
        own = self.stage_calls.setdefault(stage, set())
        own.update(k for k in keys if self.cache.stage_of.get(k) == stage)
        return [self.cache.outcomes[k] for k in keys]

    def calls(self, stage: str) -> int:
        """Metric calls a stage spent: the scorings it made itself, also when part of them were made
        by a killed earlier attempt of the same stage (so a resumed run reports the same count)."""
        return len(self.stage_calls.get(stage, ()))

    @staticmethod
    def tools(splits: SuiteSplits, task_name: str) -> list[str]:
        entry = splits.entry(task_name)
        return list(entry.tools) if entry.tools is not None else list(splits.task(task_name).tools)

    def decoding(self, splits: SuiteSplits, task_name: str) -> dict:
        task = splits.task(task_name)
        return {
            "greedy": True,
            "max_new_tokens": self.max_new_tokens or task.max_new_tokens,
            "tools": self.tools(splits, task_name),
        }


def by_task(items: Sequence[Scored], outcomes: Sequence[bool]) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {}
    for row, hit in zip(items, outcomes, strict=True):
        out.setdefault(row.task, []).append(bool(hit))
    return out


def aggregate(splits: SuiteSplits, items: Sequence[Scored], outcomes: Sequence[bool]) -> dict:
    """Per-task rate (n, Wilson 95 %) and the weighted suite score with its 95 % interval."""
    groups = by_task(items, outcomes)
    per_task, total_w, mean, var = {}, 0.0, 0.0, 0.0
    for name, flags in groups.items():
        n, k = len(flags), sum(flags)
        lo, hi = wilson(k, n)
        per_task[name] = {"rate": round(k / n, 4), "n": n, "ci95": [round(lo, 4), round(hi, 4)]}
        w = splits.entry(name).weight
        total_w += w
        mean += w * k / n
        var += w * w * (k / n) * (1 - k / n) / n
    mean, sd = mean / total_w, math.sqrt(var) / total_w
    if len(groups) == 1:
        ci = next(iter(per_task.values()))["ci95"]
    else:
        ci = [round(max(0.0, mean - Z95 * sd), 4), round(min(1.0, mean + Z95 * sd), 4)]
    return {"score": round(mean, 4), "n": len(outcomes), "ci95": ci, "tasks": per_task}


def paired(
    splits: SuiteSplits, items: Sequence[Scored], before: Sequence[bool], after: Sequence[bool]
) -> dict:
    """after - before on the same items: weighted difference, its 95 % interval, exact McNemar p (pooled)."""
    a, b = by_task(items, before), by_task(items, after)
    total_w, diff, var = 0.0, 0.0, 0.0
    for name in a:
        d = [int(y) - int(x) for x, y in zip(a[name], b[name], strict=True)]
        n, m = len(d), sum(d) / len(d)
        w = splits.entry(name).weight
        total_w += w
        diff += w * m
        var += w * w * (sum((x - m) ** 2 for x in d) / max(1, n - 1)) / n
    diff, sd = diff / total_w, math.sqrt(var) / total_w
    only_before = sum(1 for x, y in zip(before, after, strict=True) if x and not y)
    only_after = sum(1 for x, y in zip(before, after, strict=True) if y and not x)
    return {
        "diff": round(diff, 4),
        "ci95": [round(diff - Z95 * sd, 4), round(diff + Z95 * sd, 4)],
        "p_value": mcnemar_exact(only_before, only_after),
        "discordant": [only_before, only_after],
        "n": len(before),
    }


def beats(comparison: dict, alpha: float, min_delta_points: float) -> bool:
    """The keep rule: significantly better (paired p <= alpha) and by at least min_delta points."""
    return comparison["p_value"] <= alpha and comparison["diff"] * 100 >= min_delta_points
