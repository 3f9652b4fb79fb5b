"""The statistics every report uses: Wilson intervals, exact McNemar, paired bootstrap, pass@k.

DESIGN.md's measurement rules: every accuracy has an n and a 95 % interval,
every "A beats B" is a paired comparison on the same items.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (good at 0 %, 100 % and small n)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b (A right, B wrong) and c."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(
    a: Sequence[bool], b: Sequence[bool], n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of (b - a) over paired items and its 95 % percentile bootstrap interval."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    n = len(a)
    if n == 0:
        return (0.0, 0.0, 0.0)
    diffs = [int(y) - int(x) for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    return (sum(diffs) / n, means[int(0.025 * n_boot)], means[int(0.975 * n_boot) - 1])


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): 1 - C(n-c, k) / C(n, k), computed stably."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def rate_summary(flags: Sequence[bool]) -> dict:
    """Rate of True with n and its 95 % Wilson interval."""
    k, n = sum(flags), len(flags)
    lo, hi = wilson(k, n)
    return {"rate": round(k / n, 4) if n else 0.0, "n": n, "ci95": [round(lo, 4), round(hi, 4)]}


def paired_summary(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """b - a on the same items, with the exact McNemar p."""
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    return {
        "diff": round((sum(b) - sum(a)) / len(a), 4),
        "p_value": mcnemar_exact(only_a, only_b),
        "n": len(a),
    }
