"""Task families, each with its own prompt: what a bake must not forget.

The bake's KL anchor (``--retain``, ``Baker.retain_set``) keeps a family's own-prompt behaviour,
and ``measure.forgetting`` re-scores it before and after; both read this table, so it lives
below them both.
"""

from __future__ import annotations

from selfbake.tasks import language

FORGETTING_FAMILIES: dict[str, tuple[str | None, tuple[int, ...], tuple[str, ...]]] = {
    # family: (its own prompt, difficulty levels, tools)
    "rpn": (None, (2, 3), ()),
    "brackets": (None, (2, 3), ()),
    "bignum": (language.TOOLS[0], (1, 2), ("calculator",)),
    "arithmetic": (language.REASONING[0], (2, 3), ()),
}
