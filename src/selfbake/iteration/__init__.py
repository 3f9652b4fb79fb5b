"""Expert iteration (STaR, arXiv 2203.14465; RFT, arXiv 2308.01825; ReST-EM, arXiv 2312.06585)."""

from selfbake.iteration.command import run_iterate
from selfbake.iteration.loop import IterateConfig, Problems
from selfbake.iteration.solutions import Solution, distinct_n, hinted_prompt, leaks_hint, select, signature

__all__ = [
    "IterateConfig",
    "Problems",
    "Solution",
    "distinct_n",
    "hinted_prompt",
    "leaks_hint",
    "run_iterate",
    "select",
    "signature",
]
