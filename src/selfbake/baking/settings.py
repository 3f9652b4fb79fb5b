"""The settings of one bake: how trajectories are sampled, how the adapter is shaped and trained.

A module of its own because the bake (``bake``), its measurement (``measure``) and the
command (``options.BakeConfig`` extends it) all read it, and none of them should import
another just to get it. Prompt Baking: Bhargava et al., arXiv 2409.13697.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from selfbake.config import Config, comma_list


class BakeSettings(Config):
    """How one bake trains. The CLI's ``BakeConfig`` extends this with model, prompt and output settings."""

    n_train: int = Field(256, gt=0, description="training trajectories (one per x0 question)")
    n_val: int = Field(64, gt=0, description="held-out trajectories for validation KL and strength")
    temperature: float = Field(
        1.0,
        gt=0.0,
        description="trajectory sampling temperature (1 = the prompted model's own distribution)",
    )
    max_new_tokens: int = Field(96, gt=0, description="trajectory length cap, tokens per model turn")
    strength: float | None = Field(
        None, gt=0.0, le=1.0, description="target strength for half-baking (absent = bake fully)"
    )
    rank: int = Field(8, gt=0, description="LoRA rank")
    alpha: float = Field(16.0, gt=0.0, description="LoRA alpha")
    target_modules: str = Field(
        "all-linear", description="LoRA target modules: all-linear, comma-separated names, or a regex (peft)"
    )
    lr: float = Field(3e-3, gt=0.0, description="AdamW learning rate")
    train_batch_size: int = Field(16, gt=0, description="trajectories per optimiser step")
    max_epochs: int = Field(10, gt=0, description="epochs over the trajectories at most")
    # 3 stopped the bundled reasoning bake at strength 0.968 while its held-out KL could still fall by a third
    patience: int = Field(6, gt=0, description="evaluations without a 1% fall in held-out KL before stopping")
    eval_every: int = Field(
        0,
        ge=0,
        description="optimiser steps between validations (0 = every step when half-baking, else 4 per epoch)",
    )
    kl: Literal["full", "topk"] = Field(
        "full", description="exact full-vocabulary KL, or top-k with a tail bucket (approximate, faster)"
    )
    top_k: int = Field(256, gt=0, description="k for kl=topk")
    teacher_cache: Literal["auto", "logprobs", "hidden"] = Field(
        "auto",
        description="full KL: keep the frozen teacher's log-probs [tokens, vocab], or its final hidden "
        "states [tokens, hidden] with log-probs recomputed per chunk (exact, any vocabulary); "
        "auto: log-probs up to 1 GiB",
    )
    chunk: int = Field(
        0, ge=0, description="rows of [rows, vocab] fp32 logits at once (0 = as many as fit 64 MiB)"
    )
    select: Literal["best", "last"] = Field(
        "best", description="full bake: keep the checkpoint with the lowest held-out KL, or the last"
    )
    tools: list[str] = Field(default_factory=list, description="tools trajectories may call")
    max_tool_calls: int = Field(4, ge=0, description="tool calls per trajectory at most")
    retain: list[str] = Field(
        default_factory=list,
        description="task families whose own-prompt behaviour the adapter must keep (a KL anchor to the base)",
    )
    n_retain: int = Field(128, gt=0, description="anchor trajectories, split over the retain families")
    retain_weight: float = Field(1.0, ge=0.0, description="weight of the anchor KL in the loss")
    seed: int = Field(0, description="random seed")
    sample_batch_size: int = Field(64, gt=0, description="trajectories per generation batch")
    group_by_length: bool = Field(
        False,
        description="train on batches of similar-length trajectories (fixed batch groups; held-out KL after "
        "12 steps 9% higher on the bundled model; with padding_free there is no padding to save)",
    )
    padding_free: bool = Field(
        True,
        description="run each batch's sequences concatenated in one row, attention within each (same numbers "
        "as padded batches, ~20% faster steps measured); models that fail a packing probe run padded",
    )

    @field_validator("tools", "retain", mode="before")
    @classmethod
    def _tools_list(cls, value):
        return comma_list(value)
