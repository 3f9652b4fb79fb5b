"""Prompt baking (Bhargava et al., arXiv 2409.13697): turn a prompt into LoRA weights, and measure it."""

from selfbake.baking.bake import (
    Baker,
    BakeResult,
    BakeSettings,
    bake,
    bake_sequence,
    half_bake,
    merged_copy,
    pursue,
    with_adapter,
)
from selfbake.baking.command import BakeConfig, load_baked, run_bake
from selfbake.baking.measure import behaviour, drift, forgetting, strength
from selfbake.baking.presets import PRESETS, Preset
from selfbake.baking.trajectories import Question, Trajectory, encode, encode_pair, load_questions, sample

__all__ = [
    "PRESETS",
    "BakeConfig",
    "BakeResult",
    "BakeSettings",
    "Baker",
    "Preset",
    "Question",
    "Trajectory",
    "bake",
    "bake_sequence",
    "behaviour",
    "drift",
    "encode",
    "encode_pair",
    "forgetting",
    "half_bake",
    "load_baked",
    "load_questions",
    "merged_copy",
    "pursue",
    "run_bake",
    "sample",
    "strength",
    "with_adapter",
]
