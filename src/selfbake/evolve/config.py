"""Settings of ``selfbake evolve`` (and of ``selfbake.evolve.evolve``), validated before any model loads."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from selfbake.config import Config, comma_list


class EvolveConfig(Config):
    """Settings of ``selfbake evolve``."""

    model: str = Field(
        "bundled", description="model: bundled (default), a directory, a hub id, random:llama-tiny"
    )
    tool_suite: str = Field("tool_bundled", description="A-cycle suite: YAML file or shipped name")
    benchmark_suite: str = Field("benchmark_bundled", description="B-cycle suite: YAML file or shipped name")
    forgetting: list[str] = Field(
        default_factory=lambda: ["brackets"],
        description="families outside both suites, re-scored under their own prompts at the end",
    )
    forgetting_n: int = Field(100, gt=0, description="frozen test items per forgetting family")
    proposer: str = Field("self", description="self, mutate, or list:FILE (one prompt per line)")
    proposal_style: Literal["auto", "self_describe", "chat"] = Field(
        "auto",
        description="how 'self' asks: the bundled model's describe-yourself requests, or a chat request "
        "(auto: self_describe for the bundled model)",
    )
    k: int = Field(4, gt=0, description="candidate prompts per cycle")
    max_prompt_chars: int = Field(400, gt=0, description="longer proposals are dropped")
    propose_temperature: float = Field(0.7, gt=0.0, description="sampling temperature of proposals")
    initial_tool_prompt: str | None = Field(
        None, description="half-bake this tool prompt first, before the first cycle (as published)"
    )
    max_cycles: int = Field(6, gt=0, description="cycles at most (A and B count one each)")
    patience: int = Field(
        2, gt=0, description="stop when both cycle kinds plateaued this many times in a row"
    )
    alpha: float = Field(
        0.05, gt=0.0, le=1.0, description="level of the paired tests (gate and keep decision)"
    )
    race_alpha: float = Field(0.05, gt=0.0, le=1.0, description="racing: drop level, split over the looks")
    race_correction: Literal["none", "bonferroni"] = Field(
        "none", description="racing: test each look at race_alpha (none) or split it over the looks"
    )
    min_delta: float = Field(0.5, description="points (of 100) a kept layer must gain on confirm")
    race_first: int = Field(10, gt=0, description="racing: dev items in the first batch")
    race_growth: float = Field(1.5, gt=1.0, description="racing: each batch end is the last times this")
    budget: int = Field(0, ge=0, description="metric calls per cycle's race (0 = K x dev items)")
    bake_strength: float = Field(0.5, gt=0.0, le=1.0, description="half-bake strength of a winner")
    bake_n_train: int = Field(64, gt=0, description="trajectories per half-bake")
    bake_n_val: int = Field(16, gt=0, description="held-out trajectories per half-bake")
    bake_max_epochs: int = Field(4, gt=0, description="epochs per half-bake at most")
    bake_max_new_tokens: int = Field(96, gt=0, description="trajectory length cap per half-bake")
    bake_rank: int = Field(8, gt=0, description="LoRA rank of each layer")
    bake_lr: float = Field(3e-3, gt=0.0, description="learning rate of each half-bake")
    keep_earlier: bool = Field(True, description="anchor earlier layers' x0 while baking a new one")
    max_new_tokens: int | None = Field(
        None, gt=0, description="answer length cap when scoring (default: each task's)"
    )
    batch_size: int = Field(64, gt=0, description="prompts per generation batch when scoring")
    seed: int = Field(0, description="random seed (the test split's seed is fixed at 0)")
    dtype: str = Field("float32", description="float32 (CPU training), bfloat16 or float16")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    out: str | None = Field(None, description="run directory (default runs/evolve-<time>)")
    overwrite: bool = Field(
        False, description="replace the run in --out (without it, an unfinished run is resumed)"
    )
    report_to: Literal["none", "wandb", "tensorboard", "trackio"] = Field(
        "none", description="experiment tracker"
    )

    @field_validator("forgetting", mode="before")
    @classmethod
    def _families(cls, value):
        return comma_list(value)

    @field_validator("proposer")
    @classmethod
    def _proposer(cls, value: str) -> str:
        if value in ("self", "mutate") or (value.startswith("list:") and len(value) > 5):
            return value
        raise ValueError("expected self, mutate or list:FILE")

    @model_validator(mode="after")
    def _check(self):
        if self.budget and self.budget < self.k:
            raise ValueError(f"budget {self.budget} cannot score {self.k} candidates on one item")
        return self
