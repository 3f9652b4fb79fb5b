"""The LoRA adapter a bake trains: make it, check it can be trained as asked, save and merge it.

peft does the work (``get_peft_model``, ``merge_and_unload``); this module turns a bad
``--target-modules`` into a one-line user error and copies adapter weights in and out, which
the bake's checkpoints, bisection and resume all need.
"""

from __future__ import annotations

import copy
import re

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from selfbake.baking import loss as L
from selfbake.baking.settings import BakeSettings
from selfbake.errors import UserError
from selfbake.models import peft_deprecation_quiet

HIDDEN_NEEDS_FROZEN_HEAD = (
    "--teacher-cache hidden needs a frozen LM head, but the adapter trains it "
    "(drop the head from --target-modules, or use --teacher-cache logprobs)"
)


def load_adapter_state(model, state: dict[str, torch.Tensor]) -> None:
    """Copy saved adapter weights (``BakeResult.adapter_state``) back into the model in place."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v)


def with_adapter(model, settings: BakeSettings, name: str = "default"):
    """Wrap a causal LM in a fresh zero-initialised LoRA adapter (a PeftModel is returned as is)."""
    if isinstance(model, PeftModel):
        return model
    targets = settings.target_modules
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        # "q_proj,v_proj" is a list of names; one name, "all-linear" or a regex stays a string (peft's rules)
        target_modules=[t.strip() for t in targets.split(",") if t.strip()] if "," in targets else targets,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(settings.seed)
    try:
        with peft_deprecation_quiet():
            return get_peft_model(model, config, adapter_name=name)
    except ValueError as exc:  # peft's NoMatchingPeftModuleError and friends: a bad --target-modules
        raise UserError(f"--target-modules {targets!r}: {str(exc).splitlines()[0]}") from None


def check_adapter(model, settings: BakeSettings) -> None:
    """Refuse settings the adapter cannot honour, before any sampling."""
    if settings.kl == "full" and settings.teacher_cache == "hidden" and not L.head_is_frozen(model):
        raise UserError(HIDDEN_NEEDS_FROZEN_HEAD)


def targets_lm_head(settings: BakeSettings) -> bool:
    """Whether --target-modules names the usual LM head ``lm_head`` (by peft's matching rules: a list
    matches a name or its last part; one string is a regex matched against the whole module name).
    Known before the model loads; ``check_adapter`` checks the loaded model for any head name."""
    targets = settings.target_modules
    if "," in targets:
        return "lm_head" in [t.strip() for t in targets.split(",")]
    try:
        return targets != "all-linear" and re.fullmatch(targets, "lm_head") is not None
    except re.error:
        return False  # peft reports the bad pattern when the adapter is made


def merged_copy(peft_model):
    """A plain transformers model with the adapter's weights merged in (the PeftModel is untouched)."""
    return copy.deepcopy(peft_model).merge_and_unload()
