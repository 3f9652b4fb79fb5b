"""How well a bake took: strength, NLL alignment, behaviour, drift and forgetting.

Prompt Baking (Bhargava et al., arXiv 2409.13697) judges a bake by whether the
unprompted baked model behaves like the prompted original. ``behaviour``
measures that on the task's frozen test split under four conditions (base
unprompted, base prompted, baked unprompted, baked re-prompted) with n, 95 %
Wilson intervals and exact McNemar tests on the same items. ``drift`` puts
unrelated turns before the question (the paper's "prompt decay" concern);
``forgetting`` re-scores other task families, each under its own prompt,
before and after. Strength and NLL alignment come from the bake itself
(``BakeResult``), on held-out trajectories; ``strength`` measures them again
for any baked adapter on trajectories you give it (or sample).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from peft import PeftModel

from selfbake import tasks
from selfbake.baking.families import FORGETTING_FAMILIES
from selfbake.baking.settings import BakeSettings
from selfbake.baking.teacher_student import TeacherStudent, target_form
from selfbake.baking.trajectories import Question
from selfbake.generation import SamplingParams, TransformersBackend
from selfbake.models import render_chat
from selfbake.scoring import score
from selfbake.tasks import language
from selfbake.tasks.stats import paired_summary as paired
from selfbake.tasks.stats import rate_summary as rate


def strength(
    model, tokenizer, prompt: str, held_out: list, settings: BakeSettings | None = None
) -> dict[str, Any]:
    """Strength 1 - KL(teacher||baked) / KL(teacher||unbaked) and NLL alignment of a baked adapter.

    ``model`` is the baked PeftModel: adapter off it is the base, which shown ``prompt``
    as its system turn is the teacher and shown nothing is the unbaked student.
    ``held_out``: trajectories sampled from the prompted base (``Trajectory``), or x0
    ``Question``s to sample them from (at ``settings.temperature``).
    """
    if not isinstance(model, PeftModel):
        raise ValueError("strength needs the baked PeftModel (with the adapter off it is the base model)")
    settings = settings or BakeSettings()
    views = TeacherStudent(model, tokenizer, prompt, settings)
    if held_out and isinstance(held_out[0], Question):
        held_out = views.sample(held_out, teacher_uses_adapter=False)
    kept, teacher, student = views.encode_kept(held_out)
    if not student:
        raise ValueError("no held-out trajectory has a token to measure")
    form = target_form(settings, model, sum(sum(e.trained) for e in student))
    targets = views.targets(teacher, form, teacher_uses_adapter=False, sampled=kept)
    kl_baked, nll = views.held_out(student, targets)
    with model.disable_adapter():
        kl_unbaked = views.val_kl(student, targets)
    return {
        "strength": 1.0 - kl_baked / kl_unbaked if kl_unbaked > 0 else 1.0,
        "kl_baked": kl_baked,
        "kl_unbaked": kl_unbaked,
        "n": len(student),
        "nll_alignment": nll,
    }


CONDITIONS = ("base_unprompted", "base_prompted", "baked_unprompted", "baked_reprompted")


def detector(name: str) -> Callable[[dict], bool] | None:
    """A behaviour test over a scored record: steps, tool_call, verify, marker:STYLE, regex:PATTERN, none."""
    if name == "none":
        return None
    if name == "steps":
        return lambda r: language.has_steps(r["output"])
    if name == "tool_call":
        return lambda r: bool(r.get("tool_calls")) or language.has_tool_call(r["output"])
    if name == "verify":
        return lambda r: language.has_verification(r["output"])
    if name.startswith("marker:"):
        style = name.split(":", 1)[1]
        if style not in language.STYLES:
            raise ValueError(f"unknown style marker '{style}' (known: {', '.join(language.STYLES)})")
        return lambda r: language.has_marker(style, r["output"])
    if name.startswith("regex:"):
        pattern = re.compile(name.split(":", 1)[1], re.M)
        return lambda r: bool(pattern.search(r["output"]))
    raise ValueError(
        f"unknown behaviour '{name}' (steps, tool_call, verify, marker:STYLE, regex:PATTERN, none)"
    )


def test_items(task_name: str, n: int, seed: int, levels: tuple[int, ...]) -> list:
    return tasks.test_items(tasks.get(task_name), n, seed, levels)


def _adapter(model, on: bool):
    if on or not hasattr(model, "disable_adapter"):
        return nullcontext()
    return model.disable_adapter()


def _view(base, baked, condition: str):
    """(model, context) for a condition; base may be the baked PeftModel itself (adapter switched off)."""
    if condition.startswith("baked"):
        return baked, nullcontext()
    if base is baked:
        return baked, _adapter(baked, False)
    return base, nullcontext()


def _score_view(
    base, baked, condition, tokenizer, task_obj, items, *, tools=(), temperature=0.0, **score_args
):
    """Score the items under one condition's model view: greedy, or one seeded sample per item.
    ``score_args``: system, batch_size, seed, on_batch (``scoring.score``)."""
    model, context = _view(base, baked, condition)
    with context:
        return score(
            model,
            tokenizer,
            task_obj,
            items,
            tools=list(tools) or None,
            temperature=temperature,
            sample_single=temperature > 0,
            **score_args,
        )


def behaviour(
    base,
    baked,
    tokenizer,
    prompt: str,
    *,
    behaviour_name: str,
    task: str,
    levels: tuple[int, ...],
    tools: tuple[str, ...] | list[str] = (),
    n: int = 300,
    seed: int = 0,
    batch_size: int = 64,
    conditions: tuple[str, ...] = CONDITIONS,
    temperature: float = 0.0,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Behaviour rate and accuracy under each condition on the same frozen test items.

    temperature 0 = greedy answers; > 0 samples one answer per item (seeded), which
    shows a partial bake's graded effect that greedy decoding rounds to 0 or 1.
    ``on_batch(n)`` is told of answers as they finish (for a progress bar).
    """
    detect = detector(behaviour_name)
    items = test_items(task, n, seed, levels)
    task_obj = tasks.get(task)
    out: dict[str, Any] = {
        "task": task,
        "levels": list(levels),
        "behaviour": behaviour_name,
        "n": len(items),
        "temperature": temperature,
    }
    flags: dict[str, dict[str, list[bool]]] = {}
    common = {"tools": tools, "batch_size": batch_size, "seed": seed, "on_batch": on_batch}
    for condition in conditions:
        system = prompt if condition in ("base_prompted", "baked_reprompted") else None
        result = _score_view(
            base,
            baked,
            condition,
            tokenizer,
            task_obj,
            items,
            system=system,
            temperature=temperature,
            **common,
        )
        acc = [bool(r["correct"]) for r in result.records]
        beh = [detect(r) for r in result.records] if detect else []
        flags[condition] = {"accuracy": acc, "behaviour": beh}
        out[condition] = {
            "accuracy": rate(acc),
            **({"behaviour": rate(beh)} if detect else {}),
            "example": result.records[0]["output"] if result.records else "",
        }
    if "base_prompted" in flags and "baked_unprompted" in flags:
        out["baked_unprompted_vs_base_prompted"] = {
            "accuracy": paired(flags["base_prompted"]["accuracy"], flags["baked_unprompted"]["accuracy"]),
            **(
                {
                    "behaviour": paired(
                        flags["base_prompted"]["behaviour"], flags["baked_unprompted"]["behaviour"]
                    )
                }
                if detect
                else {}
            ),
        }
    out["_flags"] = flags
    return out


def rounds(
    model,
    tokenizer,
    prompt: str,
    states: list[dict],
    load_state: Callable[[Any, dict], None],
    **kwargs,
) -> list[dict[str, Any]]:
    """Pursuit: each round's adapter, unprompted, on the same items; paired against round 1.

    ``states`` are the rounds' adapter weights in order; the model is left holding the last.
    """
    rows, first = [], None
    for i, state in enumerate(states, 1):
        load_state(model, state)
        table = behaviour(model, model, tokenizer, prompt, conditions=("baked_unprompted",), **kwargs)
        flags = table["_flags"]["baked_unprompted"]
        first = first or flags
        row: dict[str, Any] = {
            "round": i,
            **{k: v for k, v in table["baked_unprompted"].items() if k != "example"},
        }
        if i > 1:
            row["vs_round_1"] = {
                "accuracy": paired(first["accuracy"], flags["accuracy"]),
                **(
                    {"behaviour": paired(first["behaviour"], flags["behaviour"])}
                    if flags["behaviour"]
                    else {}
                ),
            }
        rows.append(row)
    return rows


UNRELATED = [
    ("What is the capital of the made-up land of Vel?", "I do not know."),
    ("Close the brackets: ( [", "] )"),
    ("Evaluate RPN: 3 4 +", "7"),
    ("Say something nice.", "You are doing well."),
    ("What is 2 + 2?", "4"),
    ("Name a colour.", "Blue."),
]


def drift(
    base,
    baked,
    tokenizer,
    prompt: str,
    *,
    behaviour_name: str,
    task: str,
    levels: tuple[int, ...],
    turns: tuple[int, ...] = (0, 1, 2, 4),
    n: int = 100,
    seed: int = 0,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Behaviour rate vs the number of unrelated turns before the question: base prompted vs baked unprompted."""
    detect = detector(behaviour_name)
    if detect is None:
        return []
    task_obj = tasks.get(task)
    items = test_items(task, n, seed, levels)
    params = SamplingParams(temperature=0.0, max_new_tokens=task_obj.max_new_tokens, seed=seed)
    rows = []
    for k in turns:
        history = []
        for q, a in UNRELATED[:k]:
            history += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        row: dict[str, Any] = {"turns": k}
        for condition, system in (("base_prompted", prompt), ("baked_unprompted", None)):
            prompts = [render_chat(tokenizer, task_obj.prompt(i), system, history=history) for i in items]
            model, context = _view(base, baked, condition)
            with context:
                samples = TransformersBackend(
                    model, tokenizer, batch_size=batch_size, on_batch=on_batch
                ).generate(prompts, params)
            row[condition] = rate([detect({"output": s.text, "tool_calls": []}) for s in samples])
        rows.append(row)
    return rows


def forgetting(
    base,
    baked,
    tokenizer,
    families: list[str],
    *,
    n: int = 300,
    seed: int = 0,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Accuracy on other families, each under its own prompt: base vs baked, paired on the same items."""
    out = {}
    for family in families:
        system, levels, tools = FORGETTING_FAMILIES[family]
        items = test_items(family, n, seed, levels)
        task_obj = tasks.get(family)
        acc = {}
        for name, condition in (("before", "base_prompted"), ("after", "baked_reprompted")):
            common = {"tools": tools, "batch_size": batch_size, "seed": seed, "on_batch": on_batch}
            result = _score_view(base, baked, condition, tokenizer, task_obj, items, system=system, **common)
            acc[name] = [bool(r["correct"]) for r in result.records]
        out[family] = {
            "prompt": system,
            "before": rate(acc["before"]),
            "after": rate(acc["after"]),
            "change": paired(acc["before"], acc["after"]),
        }
    return out
