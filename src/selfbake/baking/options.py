"""The settings of ``selfbake bake`` (``BakeConfig``): what to bake, how to measure it, where to write.

``BakeSettings`` (one bake's training) is extended with the model, the prompt source, the
measurement and the run directory. ``help_groups`` orders ``--help``: essentials first,
then measurement, then the tuning flags.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from selfbake.baking.settings import BakeSettings
from selfbake.config import comma_list


class BakeConfig(BakeSettings):
    """Settings of ``selfbake bake``."""

    # --help shows the flags in these groups, in this order; the empty group takes every other field
    help_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "essentials": (
            "model", "prompt", "prompt_file", "sequence", "list_presets", "out", "overwrite",
            "x0", "behaviour", "tools", "strength", "pursue", "merge",
        ),
        "measurement (the before/after table and its extras)": (
            "measure_n", "measure_temperature", "drift", "forgetting", "batch_size",
        ),
        "run": ("device", "dtype", "seed", "report_to"),
        "tuning (trajectories, LoRA, training, KL)": (),
    }  # fmt: skip

    model: str = Field(
        "bundled", description="model: bundled (default), a directory, a hub id, random:llama-tiny"
    )
    prompt: str | None = Field(None, description="the prompt u to bake, as text")
    prompt_file: str | None = Field(
        None, description="a text file with u, or a preset name (see --list-presets)"
    )
    sequence: list[str] = Field(
        default_factory=list,
        description="bake these presets/files in order, each on top of the last",
        json_schema_extra={"nargs": "+"},
    )
    x0: str | None = Field(
        None, description="x0 questions: task:NAME[:LEVELS] or a JSONL file (default: the preset's task)"
    )
    behaviour: str | None = Field(
        None, description="behaviour to count: steps, tool_call, verify, marker:STYLE, regex:PATTERN, none"
    )
    keep_earlier: bool = Field(
        True,
        description="in a sequence, anchor earlier layers' behaviour on their x0 (KL to the merged model)",
    )
    pursue: int = Field(0, ge=0, description="pursuit rounds after the first bake (0 = plain bake)")
    merge: bool = Field(False, description="also write a merged model directory (out/merged)")
    measure_n: int = Field(
        300, ge=0, description="test items per condition in the before/after table (0 = skip)"
    )
    measure_temperature: float = Field(
        0.0, ge=0.0, description="decoding for the table: 0 = greedy; >0 = one seeded sample per item"
    )
    drift: bool = Field(False, description="also measure behaviour vs number of unrelated earlier turns")
    forgetting: list[str] = Field(
        default_factory=list,
        description="task families to re-score under their own prompts (e.g. rpn,bignum)",
    )
    list_presets: bool = Field(False, description="print the preset prompts and exit")

    @field_validator("forgetting", mode="before")
    @classmethod
    def _families(cls, value):
        return comma_list(value)

    batch_size: int = Field(64, gt=0, description="prompts per evaluation generation batch")
    dtype: str = Field("float32", description="float32 (CPU training), bfloat16 or float16")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    out: str | None = Field(None, description="run directory (default runs/bake-<time>)")
    overwrite: bool = Field(
        False, description="replace the run in --out (without it, an unfinished bake there is resumed)"
    )
    report_to: str = Field("none", description="experiment tracker: none, wandb, tensorboard, trackio")


# settings that do not change what is baked: a killed run may be resumed with other values
RESUME_IGNORES = (
    "out", "overwrite", "device", "report_to", "list_presets",
    "measure_n", "measure_temperature", "drift", "forgetting", "batch_size",
)  # fmt: skip
