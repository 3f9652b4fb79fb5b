"""Which of the model's own attempts become training data: verified, deduplicated, capped, hint-free.

Expert iteration (STaR, Zelikman et al. 2022, arXiv 2203.14465; RFT, Yuan et al.
2023, arXiv 2308.01825; ReST-EM, Singh et al. 2023, arXiv 2312.06585) trains on
the model's correct solutions. RFT showed that *distinct* reasoning paths are
what helps, so samples that reach the answer the same way are collapsed by a
reasoning signature (the sequence of intermediate results and the final
answer; the normalised text when there are no intermediate results), and at most ``cap`` are kept per problem so easy problems do not
drown hard ones. STaR's rationalisation re-asks unsolved problems with the
answer as a hint; the hint is never part of the saved training text, and a
sample that repeats the hint verbatim is dropped rather than trained on.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import Any

from selfbake.tasks.base import Item, Task

_RESULT = re.compile(r"=\s*(-?\d+(?:\.\d+)?)")
HINT = "(Hint: the answer is {answer}.)"


@dataclass
class Solution:
    """One verified attempt at a training problem."""

    key: str  # the problem's content hash
    prompt: str  # the user turn, never containing a hint
    output: str  # the model's text
    difficulty: int | None
    signature: str
    rationalised: bool = False

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def signature(task: Task, text: str) -> str:
    """How an answer was reached: the intermediate results ('= N' steps) then the final answer.

    A solution without such steps (brackets, a direct answer) has no path to compare, so its
    signature is the whole normalised text (case and spacing folded): two different texts are two
    solutions, not one."""
    steps = _RESULT.findall(text)
    if steps:
        return " ".join(steps) + f" -> {task.extract(text)}"
    return "text: " + " ".join(text.lower().split())


def hinted_prompt(task: Task, item: Item) -> str:
    """The rationalisation prompt: the question with the answer as a hint after it."""
    return f"{task.prompt(item)} {HINT.format(answer=item.answer)}"


def leaks_hint(text: str, item: Item) -> bool:
    """True when an output repeats the hint (it would teach the model to expect one)."""
    lowered = text.lower()
    return "hint" in lowered or HINT.format(answer=item.answer).lower() in lowered


def select(solutions: list[Solution], cap: int, seed: int) -> list[Solution]:
    """Distinct signatures per problem, at most ``cap`` each (a seeded choice among the distinct ones)."""
    by_key: dict[str, dict[str, Solution]] = {}
    for s in solutions:
        by_key.setdefault(s.key, {}).setdefault(s.signature, s)
    rng = random.Random(seed)
    kept: list[Solution] = []
    for key in sorted(by_key):
        distinct = list(by_key[key].values())
        if len(distinct) > cap:
            distinct = rng.sample(distinct, cap)
        kept += distinct
    return kept


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams in the texts (whitespace tokens), 0 when there are none."""
    grams = [tuple(t[i : i + n]) for t in (x.split() for x in texts) for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
