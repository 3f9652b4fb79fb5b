"""The evolve loop: A-cycles (tool prompts) and B-cycles (self-written thinking prompts), each winner
half-baked as a new anchored layer, alternating until both plateau.

Fixes the published recipe's selection (winners by raw 1-2 point score
differences, a 0.5-point stop rule, the same items for choosing and reporting):
candidates race on paired dev items (``racing``), the winner must beat the
current model on those dev items before it is baked, and the baked layer is
kept only if the new model, unprompted, beats the previous one on confirm
items by a paired test at ``alpha`` *and* by ``min_delta`` points; the frozen
test split is read once, by the final report. Half-baking and stacking use
Prompt Baking (Bhargava et al., arXiv 2409.13697) through ``selfbake.baking``'s
public API: ``half_bake`` to a measured strength, with the earlier layers' x0
anchored as ``bake_sequence`` does, then ``merged_copy``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfbake.baking import BakeSettings, Question, half_bake, merged_copy
from selfbake.evolve import proposers as P
from selfbake.evolve.config import EvolveConfig
from selfbake.evolve.evaluator import Evaluator, aggregate, beats, paired
from selfbake.evolve.racing import race
from selfbake.evolve.state import ModelState, Stages
from selfbake.evolve.suites import SuiteSplits

KINDS = {"tool": "tool_iteration", "benchmark": "persona_iteration"}


class PlateauTracker:
    """Stop once every cycle kind has plateaued ``patience`` times in a row (a kept layer resets its kind)."""

    def __init__(self, patience: int, kinds=("tool", "benchmark")):
        self.patience = patience
        self.streak = dict.fromkeys(kinds, 0)

    def update(self, kind: str, plateaued: bool) -> bool:
        """Record one cycle; True when the loop should stop."""
        self.streak[kind] = self.streak[kind] + 1 if plateaued else 0
        return min(self.streak.values()) >= self.patience


@dataclass
class Context:
    config: EvolveConfig
    tokenizer: Any
    splits: dict[str, SuiteSplits]
    evaluator: Evaluator
    stages: Stages
    out: Path
    listed: list[str] | None
    say: Any  # console print


def bake_questions(splits: SuiteSplits, config: EvolveConfig) -> list[Question]:
    rows = splits.train(config.bake_n_train + config.bake_n_val)
    return [Question(splits.task(r.task).prompt(r.item), r.item) for r in rows]


def suite_tools(splits: SuiteSplits, evaluator: Evaluator) -> list[str]:
    return sorted({t for e in splits.suite.tasks for t in evaluator.tools(splits, e.task)})


def bake_layer(ctx: Context, state: ModelState, prompt: str, kind: str, cycle: int, label: str) -> dict:
    """Half-bake ``prompt`` on top of ``state``; writes the adapter and the merged model; returns the layer."""
    config, splits = ctx.config, ctx.splits[kind]
    settings = BakeSettings(
        n_train=config.bake_n_train,
        n_val=config.bake_n_val,
        max_new_tokens=config.bake_max_new_tokens,
        max_epochs=config.bake_max_epochs,
        rank=config.bake_rank,
        lr=config.bake_lr,
        seed=config.seed + cycle,
        tools=suite_tools(splits, ctx.evaluator),
        train_batch_size=min(16, config.bake_n_train),
        sample_batch_size=config.batch_size,
    )
    anchors = []
    if config.keep_earlier and state.layers:
        share = max(1, config.bake_n_train // (len(state.layers) + 1))
        for layer in state.layers:
            earlier = ctx.splits[layer["kind"]]
            anchors.append(
                (None, bake_questions(earlier, config)[:share], tuple(suite_tools(earlier, ctx.evaluator)))
            )
    started = time.perf_counter()
    result = half_bake(
        state.model(), ctx.tokenizer, prompt, bake_questions(splits, config), settings,
        strength=config.bake_strength, anchors=anchors,
    )  # fmt: skip
    adapter = ctx.out / "adapters" / label
    result.model.save_pretrained(adapter)
    merged_dir = ctx.out / "state" / "models" / label
    merged_copy(result.model).save_pretrained(merged_dir)
    ctx.tokenizer.save_pretrained(merged_dir)
    state.forget_weights()
    seconds = time.perf_counter() - started
    identity = {"kind": kind, "prompt": prompt, "settings": settings.model_dump(mode="json"), "cycle": cycle}
    return {
        "identity": identity,
        "kind": kind,
        "prompt": prompt,
        "cycle": cycle,
        "strength": round(result.strength, 4),
        "kl_unbaked": round(result.kl_unbaked, 5),
        "kl_baked": round(result.kl_baked, 5),
        "adapter": str(adapter.relative_to(ctx.out)),
        "merged": str(merged_dir),
        "seconds": round(seconds, 2),
    }


def propose(
    ctx: Context, state: ModelState, kind: str, cycle: int, nth: int, seen: set[str], winners: list[str]
):
    config = ctx.config
    style = config.proposal_style
    if style == "auto":
        style = "self_describe" if config.model == "bundled" else "chat"
    common = {
        "seed": config.seed * 1000 + cycle,
        "temperature": config.propose_temperature,
        "max_new_tokens": 96,
    }
    proposer = config.proposer
    same_kind = [w["prompt"] for w in winners if w["kind"] == kind]
    if proposer == "mutate" and same_kind:
        found = P.propose_mutations(
            state.model(), ctx.tokenizer, k=config.k, incumbent=same_kind[-1],
            earlier=[w["prompt"] for w in winners[:-1]], **common,
        )  # fmt: skip
    elif proposer.startswith("list:"):
        found = P.propose_list(ctx.listed or [], k=config.k, cycle=cycle)
    else:  # self, and mutate before there is an incumbent to rewrite
        found = P.propose_self(state.model(), ctx.tokenizer, k=config.k, kind=kind, style=style, **common)
    P.validate(found, set(seen), config.max_prompt_chars)
    return {"proposals": [p.__dict__ for p in found]}


def race_stage(ctx: Context, state: ModelState, kind: str, cycle: int, nth: int, texts: list[str]) -> dict:
    config, splits, ev = ctx.config, ctx.splits[kind], ctx.evaluator
    name = f"cycle_{cycle}_race"
    started = time.perf_counter()
    dev = splits.dev()

    def score_batch(index: int, start: int, stop: int) -> list[bool]:
        return ev.outcomes(state, splits, texts[index], dev[start:stop], name)

    result = race(
        len(texts), len(dev), score_batch, alpha=config.race_alpha, first=config.race_first,
        growth=config.race_growth, budget=config.budget or None,
        correction=config.race_correction,
    )  # fmt: skip
    entrants = []
    for e in result.entrants:
        entrants.append(
            {
                "rounds": e.rounds,
                "dropped": e.drop_reason,
                "dev": aggregate(splits, dev[: len(e.outcomes)], e.outcomes) if e.outcomes else None,
            }
        )
    winner_outcomes = result.entrants[result.winner].outcomes
    used = dev[: len(winner_outcomes)]
    incumbent = ev.outcomes(state, splits, None, used, name)
    gate = paired(splits, used, incumbent, winner_outcomes)
    prefix = f"{KINDS[kind]}_{nth}"
    metrics = []
    for j, e in enumerate(entrants, 1):
        if e["dev"] is None:
            continue
        if kind == "tool":
            values = {f"{prefix}/variant_{j}_score": e["dev"]["score"]}
        else:
            values = {f"{prefix}/self_prompt_{j}_{t}": v["rate"] for t, v in e["dev"]["tasks"].items()}
            values[f"{prefix}/self_prompt_{j}_avg"] = e["dev"]["score"]
        metrics.append({"step": cycle, "values": values})
    return {
        "winner": result.winner,
        "entrants": entrants,
        "race_calls": result.metric_calls,
        "full_calls": len(texts) * len(dev),
        "items_used": result.items_used,
        "stopped": result.stopped,
        "incumbent_dev": aggregate(splits, used, incumbent),
        "gate": gate,
        "passed_gate": beats(gate, config.alpha, config.min_delta),
        "metric_calls": ev.calls(name),
        "seconds": round(time.perf_counter() - started, 2),
        "metrics": metrics,
    }


def decide_stage(
    ctx: Context, state: ModelState, kind: str, cycle: int, nth: int, race_p, bake_p, winner: str
):
    config, splits, ev = ctx.config, ctx.splits[kind], ctx.evaluator
    name = f"cycle_{cycle}_decide"
    started = time.perf_counter()
    payload: dict[str, Any] = {"kept": False, "comparison": None}
    if race_p is None:
        payload["reason"] = "no valid proposal"
    elif bake_p is None:
        g = race_p["gate"]
        payload["reason"] = (
            f"winner does not beat the current model on dev ({g['diff'] * 100:+.1f} points, p={g['p_value']:.3g})"
        )
    else:
        confirm = splits.confirm()
        before = ev.outcomes(state, splits, None, confirm, name)
        after = ev.outcomes(state.with_layer(bake_p, bake_p["merged"]), splits, None, confirm, name)
        cmp = paired(splits, confirm, before, after)
        payload.update(
            comparison=cmp,
            confirm_before=aggregate(splits, confirm, before),
            confirm_after=aggregate(splits, confirm, after),
            kept=beats(cmp, config.alpha, config.min_delta),
        )
        payload["reason"] = (
            "kept" if payload["kept"]
            else f"new layer does not beat the previous model on confirm ({cmp['diff'] * 100:+.1f} points, "
            f"p={cmp['p_value']:.3g}; needs p <= {config.alpha} and >= {config.min_delta} points)"
        )  # fmt: skip
    payload["plateau"] = not payload["kept"]
    prefix = f"{KINDS[kind]}_{nth}"
    values: dict[str, Any] = {
        f"{prefix}/improvement": payload["comparison"]["diff"] if payload["comparison"] else 0.0,
        f"{prefix}/plateau": int(payload["plateau"]),
        f"{prefix}/baking_time_sec": bake_p["seconds"] if bake_p else 0.0,
    }
    if race_p is not None:
        w = race_p["winner"]
        values.update(
            {
                f"{prefix}/winner_id": w + 1,
                f"{prefix}/winner_score": race_p["entrants"][w]["dev"]["score"],
                f"{prefix}/winner_prompt": winner,
                f"{prefix}/metric_calls": race_p["metric_calls"],
            }
        )
    payload["metric_calls"] = ev.calls(name)
    payload["seconds"] = round(time.perf_counter() - started, 2)
    payload["metrics"] = [{"step": cycle, "values": values}]
    return payload


def run_cycle(
    ctx: Context, state: ModelState, kind: str, cycle: int, nth: int, seen: set[str], winners: list
):
    """One A- or B-cycle; returns (cycle record, new state)."""
    proposed = ctx.stages(
        f"cycle_{cycle}_propose", lambda: propose(ctx, state, kind, cycle, nth, seen, winners)
    )
    proposals = proposed["proposals"]
    valid = [p for p in proposals if not p["dropped"]]
    seen.update(P.normalise(p["text"]) for p in valid)
    texts = [p["text"] for p in valid]
    race_p = bake_p = None
    if texts:
        race_p = ctx.stages(f"cycle_{cycle}_race", lambda: race_stage(ctx, state, kind, cycle, nth, texts))
        if race_p["passed_gate"]:
            label = f"cycle_{cycle}_{kind}"
            bake_p = ctx.stages(
                f"cycle_{cycle}_bake",
                lambda: bake_layer(ctx, state, texts[race_p["winner"]], kind, cycle, label),
            )
    winner = texts[race_p["winner"]] if race_p else ""
    decided = ctx.stages(
        f"cycle_{cycle}_decide", lambda: decide_stage(ctx, state, kind, cycle, nth, race_p, bake_p, winner)
    )
    if decided["kept"]:
        state = state.with_layer(bake_p, bake_p["merged"])
    record = {
        "cycle": cycle, "kind": kind, "nth": nth, "proposals": proposals, "race": race_p,
        "bake": bake_p, "decide": decided, "winner": winner,
    }  # fmt: skip
    return record, state
