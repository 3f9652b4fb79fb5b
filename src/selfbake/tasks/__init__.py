"""Tasks: verifiable problem generators and benchmark loaders, one contract for all.

``get("arithmetic")`` returns a procedural family; ``get("gsm8k")`` a benchmark on the
Hub data set lm-eval uses (local cache first), ``get("gsm8k:/data/gsm8k/test.jsonl")`` on a
local file in the benchmark's public format and ``get("gsm8k:fixture")`` on its tiny
synthetic test fixture. ``names()`` lists everything.
"""

from __future__ import annotations

from selfbake.errors import UserError
from selfbake.tasks.base import Item, Splits, Task, splits, test_items
from selfbake.tasks.benchmarks import Benchmark, benchmark_classes
from selfbake.tasks.procedural import RPN, Arithmetic, Brackets
from selfbake.tasks.toolfamilies import Bignum, CodeRepair, FileRead, Lookup

PROCEDURAL = {cls.name: cls for cls in (Arithmetic, RPN, Brackets, Bignum, Lookup, FileRead, CodeRepair)}


def names() -> list[str]:
    return list(PROCEDURAL) + list(benchmark_classes())


def get(spec: str, *, num_fewshot: int = 0) -> Task:
    """A task by name; benchmarks accept ``name:PATH`` for a local data file."""
    name, _, path = spec.partition(":")
    if name in PROCEDURAL:
        if path:
            raise UserError(f"task '{name}' is generated, it takes no data path")
        return PROCEDURAL[name]()
    benchmarks = benchmark_classes()
    if name in benchmarks:
        return benchmarks[name](path=path or None, num_fewshot=num_fewshot)
    import difflib

    hint = difflib.get_close_matches(name, names(), n=1)
    raise UserError(
        f"unknown task '{name}'"
        + (f"; did you mean '{hint[0]}'?" if hint else f" (available: {', '.join(names())})")
    )


__all__ = ["Benchmark", "Item", "Splits", "Task", "get", "names", "splits", "test_items"]
