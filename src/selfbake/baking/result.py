"""What one bake returns (``BakeResult``): the baked model, its strength and held-out KL, timings.

``saved()`` is what a resumed run restores of a finished bake; ``summary()`` is what
``summary.json`` and the model card show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from selfbake.baking.trajectories import Trajectory


@dataclass
class BakeResult:
    model: Any  # PeftModel with the baked adapter active
    prompt: str
    strength: float
    kl_unbaked: float
    kl_baked: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    sample_seconds: float = 0.0
    train_seconds: float = 0.0
    trajectory_tokens: int = 0
    trained_tokens: int = 0
    steps: int = 0
    val: list[Trajectory] = field(default_factory=list, repr=False)
    train: list[Trajectory] = field(default_factory=list, repr=False)
    nll: dict[str, Any] = field(default_factory=dict)
    kl_mode: str = "full"
    adapter_state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    _SAVED = (
        "strength", "kl_unbaked", "kl_baked", "history", "seconds", "sample_seconds", "train_seconds",
        "trajectory_tokens", "trained_tokens", "steps", "nll", "kl_mode", "adapter_state",
    )  # fmt: skip

    def saved(self) -> dict[str, Any]:
        """What a resumed run needs of this finished bake (everything but the model and trajectories)."""
        return {k: getattr(self, k) for k in self._SAVED}

    def summary(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "strength": round(self.strength, 4),
            "kl_unbaked": round(self.kl_unbaked, 5),
            "kl_baked": round(self.kl_baked, 5),
            "seconds": round(self.seconds, 2),
            "sample_seconds": round(self.sample_seconds, 2),
            "train_seconds": round(self.train_seconds, 2),
            "trajectory_tokens": self.trajectory_tokens,
            "trained_tokens": self.trained_tokens,
            # sampled trajectory tokens over the whole bake (sampling, teacher targets, training, validation)
            "trajectory_tokens_per_s_end_to_end": (
                round(self.trajectory_tokens / self.seconds, 1) if self.seconds else None
            ),
            "steps": self.steps,
            "kl_mode": self.kl_mode,
            "nll_alignment": self.nll,
        }
