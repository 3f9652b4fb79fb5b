"""Bake, half-bake, pursue and bake in sequence: a prompt u becomes LoRA weights.

Prompt Baking (Bhargava et al., arXiv 2409.13697). The teacher is the same
PeftModel with its adapter disabled (so it cannot drift with training), shown u
as the system turn; the student is the adapter, shown no system turn. Steps:

1. sample train and held-out trajectories from the prompted teacher
   (``trajectories.sample``, shared-prefix KV cache);
2. keep the teacher's log-probs on them (the teacher is frozen within a bake):
   the sampler's own logits at each sampled token, or one teacher pass
   (``loss.teacher_targets``) where those are not kept or do not line up;
3. train the adapter on the chunked fp32 KL; every ``eval_every`` steps measure
   held-out KL and strength s = 1 - KL(teacher||baked)/KL(teacher||unbaked);
4. stop at the target strength (half-baking: the adapter is bisected between
   the two checkpoints around the crossing until the measured strength is
   within 0.02 of the target) or when held-out KL stops falling (full bake;
   the best checkpoint is kept).

Pursuit (section 5 of the paper): round r's teacher is the round r-1 baked
model prompted with u; its targets are frozen before round r trains. Sequences
merge each bake into the weights before the next; since LoRA deltas add, the
saved adapters stacked in order equal the merged model; earlier layers are
kept by a KL anchor on their x0 (``bake_sequence(keep_earlier=True)``).
"""

from __future__ import annotations

from typing import Any

from selfbake.baking.adapter import check_adapter, load_adapter_state, merged_copy, with_adapter
from selfbake.baking.baker import Baker, _batches
from selfbake.baking.result import BakeResult
from selfbake.baking.resume import BakeState
from selfbake.baking.settings import BakeSettings
from selfbake.baking.teacher_student import TargetForm, _layout, pearson, target_form
from selfbake.baking.trajectories import Question

__all__ = [  # the bake's API; the names from its lower modules stay importable from here
    "BakeResult",
    "BakeSettings",
    "Baker",
    "TargetForm",
    "_batches",
    "_layout",
    "bake",
    "bake_sequence",
    "check_adapter",
    "half_bake",
    "load_adapter_state",
    "merged_copy",
    "pearson",
    "pursue",
    "target_form",
    "with_adapter",
]


def _split_questions(
    questions: list[Question], settings: BakeSettings
) -> tuple[list[Question], list[Question]]:
    return questions[: settings.n_train], questions[settings.n_train : settings.n_train + settings.n_val]


def bake(
    model,
    tokenizer,
    prompt: str,
    questions: list[Question],
    settings: BakeSettings,
    *,
    anchors=(),
    state: BakeState | None = None,
    **hooks,
) -> BakeResult:
    """Bake ``prompt`` into a LoRA adapter. ``questions`` holds n_train + n_val x0s (train first).

    ``anchors``: (system, questions, tools) groups whose current behaviour must be kept.
    ``state``: where a killed run left its work (``resume.BakeState``); finished work is not redone.
    """
    if len(questions) < settings.n_train + settings.n_val:
        raise ValueError(f"need {settings.n_train + settings.n_val} x0 questions, got {len(questions)}")
    train_q, val_q = _split_questions(questions, settings)
    baker = Baker(model, tokenizer, prompt, settings)
    baker.anchors = list(anchors)
    return _run_or_restore(baker, train_q, val_q, state, hooks)


def _run_or_restore(
    baker: Baker, train_q, val_q, state: BakeState | None, hooks: dict, **run_args
) -> BakeResult:
    """Run one unit of baking; with ``state``, a finished unit is restored and a killed one resumed."""
    done = state.result() if state else None
    if done:
        return baker.restore(done, state, hooks.get("advance"), hooks.get("sampled"))
    result = baker.run(train_q, val_q, state=state, **run_args, **hooks)
    if state:
        state.save_result(result.saved())
    return result


def half_bake(
    model,
    tokenizer,
    prompt: str,
    questions: list[Question],
    settings: BakeSettings,
    strength: float = 0.5,
    **hooks,
) -> BakeResult:
    """Bake until the measured held-out strength reaches ``strength`` (not a guessed epoch)."""
    return bake(
        model, tokenizer, prompt, questions, settings.model_copy(update={"strength": strength}), **hooks
    )


def pursue(
    model,
    tokenizer,
    prompt: str,
    questions: list[Question],
    settings: BakeSettings,
    rounds: int = 2,
    *,
    state: BakeState | None = None,
    **hooks,
) -> list[BakeResult]:
    """Round 1 bakes; each later round's teacher is the current baked model prompted with u.

    With ``state``, round r keeps its work in ``state/round_r``."""
    unit = (lambda r: state.unit(f"round_{r}")) if state else (lambda r: None)
    results = [bake(model, tokenizer, prompt, questions, settings, state=unit(1), **hooks)]
    baked = results[0].model
    for r in range(1, rounds):
        round_settings = settings.model_copy(update={"seed": settings.seed + r})
        baker = Baker(baked, tokenizer, prompt, round_settings)
        train_q, val_q = _split_questions(questions, settings)
        results.append(
            _run_or_restore(
                baker,
                train_q,
                val_q,
                unit(r + 1),
                hooks,
                teacher_uses_adapter=True,
                step_offset=sum(x.steps for x in results),
            )
        )
    return results


def bake_sequence(
    model,
    tokenizer,
    prompts: list[str],
    questions: list[list[Question]],
    settings: list[BakeSettings],
    *,
    keep_earlier: bool = True,
    state: BakeState | None = None,
    **hooks,
) -> tuple[Any, list[BakeResult]]:
    """Bake each prompt on top of the previous ones (merged after each); returns (merged model, layers).

    Each layer's teacher is the current model prompted with its u, which on this
    model's language answers *only* as u says, so a later layer would erase an
    earlier one; ``keep_earlier`` anchors earlier layers' x0 (unprompted, as the
    merged model answers them) with the KL anchor of ``Baker.retain_set``.
    """
    current = model
    layers: list[BakeResult] = []
    anchors: list = []
    for i, (prompt, qs, s) in enumerate(zip(prompts, questions, settings, strict=True), 1):
        result = bake(
            current,
            tokenizer,
            prompt,
            qs,
            s,
            anchors=anchors if keep_earlier else (),
            state=state.unit(f"layer_{i}") if state else None,
            step_offset=sum(x.steps for x in layers),
            **hooks,
        )
        layers.append(result)
        current = merged_copy(result.model)
        # later layers keep this one: its x0, unprompted, as the merged model now answers them
        anchors = anchors + [(None, qs[: max(1, s.n_retain // len(prompts))], tuple(s.tools))]
    return current, layers
