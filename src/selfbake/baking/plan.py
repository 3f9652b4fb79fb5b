"""What ``selfbake bake`` was asked to bake: each prompt resolved (text, file or preset) into a ``Plan``.

A plan holds one prompt with its x0 questions, the behaviour to count and the tools; the
command checks every plan (prompt source, x0 spec, behaviour and family names) before the
model is loaded, so a mistake costs no time.
"""

from __future__ import annotations

import re
from pathlib import Path

from selfbake.baking import measure, presets
from selfbake.baking.adapter import HIDDEN_NEEDS_FROZEN_HEAD, targets_lm_head
from selfbake.baking.families import FORGETTING_FAMILIES
from selfbake.baking.options import BakeConfig
from selfbake.baking.settings import BakeSettings
from selfbake.baking.trajectories import load_questions
from selfbake.errors import UserError


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "prompt"


def resolve_prompt(source: str) -> tuple[str, presets.Preset | None]:
    """(text, preset or None) from a preset name or a text file."""
    if presets.is_preset(source):
        try:
            preset = presets.get(source)
        except KeyError as exc:
            raise UserError(str(exc.args[0])) from None
        return preset.text, preset
    path = Path(source)
    if not path.is_file():
        raise UserError(f"prompt file '{source}' does not exist (and is not a preset; see --list-presets)")
    text = path.read_text().strip()
    if not text:
        raise UserError(f"prompt file '{source}' is empty")
    return text, None


class Plan:
    """What to bake and how to judge it, for one prompt."""

    def __init__(self, text: str, preset: presets.Preset | None, config: BakeConfig):
        self.text = text
        self.name = preset.name if preset else slug(text)
        self.behaviour = config.behaviour or (preset.behaviour if preset else "none")
        default_task = preset.task if preset else "arithmetic"
        self.levels = preset.levels if preset else (2, 3)
        self.x0 = config.x0 or f"task:{default_task}:{','.join(map(str, self.levels))}"
        kind, value = (config.x0 or "task:").split(":", 1)[0], None
        self.task = default_task
        if config.x0 and kind == "task":
            value = config.x0.split(":")
            self.task = value[1]
            if len(value) > 2 and value[2]:
                self.levels = tuple(int(x) for x in value[2].split(","))
        self.tools = tuple(config.tools) or (preset.tools if preset else ())
        measure.detector(self.behaviour)  # fail early on a bad behaviour name

    def settings(self, config: BakeConfig) -> BakeSettings:
        fields = BakeSettings.model_fields
        return BakeSettings(**{k: getattr(config, k) for k in fields}).model_copy(
            update={"tools": list(self.tools)}
        )

    def questions(self, config: BakeConfig) -> list:
        """The n_train + n_val x0 questions this plan bakes on (train first)."""
        s = self.settings(config)
        return load_questions(self.x0, s.n_train + s.n_val, config.seed, self.levels)


def make_plans(config: BakeConfig) -> list[Plan]:
    """One plan per prompt to bake, every input checked: a mistake is a one-line ``UserError``."""
    sources = list(config.sequence)
    if sum(bool(x) for x in (config.prompt, config.prompt_file, sources)) != 1:
        raise UserError("give exactly one of --prompt TEXT, --prompt-file FILE|PRESET or --sequence A B ...")
    if config.prompt is not None and not config.prompt.strip():
        raise UserError("--prompt is empty")
    if sources and len(sources) < 2:
        raise UserError("--sequence needs at least two prompts")
    resolved = (
        [(config.prompt, None)]
        if config.prompt
        else [resolve_prompt(s) for s in sources or [config.prompt_file]]
    )
    try:
        plans = [Plan(text, preset, config) for text, preset in resolved]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for plan in plans:
        load_questions(plan.x0, 1, config.seed)  # validate the x0 spec before loading the model
    for flag, families in (("--forgetting", config.forgetting), ("--retain", config.retain)):
        unknown = [f for f in families if f not in FORGETTING_FAMILIES]
        if unknown:
            raise UserError(
                f"{flag}: unknown family '{unknown[0]}' (choose from {', '.join(FORGETTING_FAMILIES)})"
            )
    if sources and config.pursue:
        raise UserError("--pursue applies to a single prompt, not to --sequence")
    if config.kl == "full" and config.teacher_cache == "hidden" and targets_lm_head(config):
        raise UserError(HIDDEN_NEEDS_FROZEN_HEAD)  # before the model loads (check_adapter checks after)
    return plans
