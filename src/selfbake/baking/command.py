"""``selfbake bake``: bake a prompt (or a sequence) into a model, measure it, write adapter + card.

Prompt Baking (Bhargava et al., arXiv 2409.13697). ``run_bake`` runs named stages:
plan (resolve and check every input), open (the run directory, resumable), load (the
model with a fresh adapter), bake (sample trajectories and train, per prompt, pursuit
round or sequence layer), save (adapters, layers.json, merged model, trajectories),
measure (behaviour under the four conditions on the frozen test split, pursuit, drift,
forgetting), report (the tables) and finish (card and summary.json). Everything lands in
the run directory ``--out``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfbake.baking import measure, tables
from selfbake.baking.adapter import check_adapter, load_adapter_state, merged_copy, with_adapter
from selfbake.baking.bake import bake, bake_sequence, pursue
from selfbake.baking.families import FORGETTING_FAMILIES
from selfbake.baking.options import RESUME_IGNORES, BakeConfig
from selfbake.baking.outputs import CheckpointSaver, load_baked, write_card, write_layers
from selfbake.baking.plan import Plan, make_plans, slug
from selfbake.baking.result import BakeResult
from selfbake.baking.resume import BakeState
from selfbake.config import resumable
from selfbake.models import load
from selfbake.tracking.progress import make_console, phase_bars
from selfbake.tracking.rundir import RunDir, open_run

__all__ = ["BakeConfig", "load_baked", "run_bake"]


@dataclass
class BakeRun:
    """What the stages of one ``selfbake bake`` hand each other."""

    config: BakeConfig
    plans: list[Plan]
    console: Any
    run: RunDir
    state: BakeState
    started: float
    model: Any = None
    tokenizer: Any = None
    results: list[BakeResult] = field(default_factory=list)  # every bake: pursuit rounds or layers
    layer_results: list[BakeResult] = field(default_factory=list)  # the final result of each prompt
    final: Any = None  # the baked model: the PeftModel, or the merged model of a sequence
    base: Any = None  # the model before baking (the PeftModel itself: adapter off is the base)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.run.path


def open_stage(config: BakeConfig, plans: list[Plan], console) -> BakeRun:
    """The run directory: a new one, or the unfinished bake in ``--out`` resumed."""
    resuming = bool(config.out) and resumable(config, Path(config.out), "bake", RESUME_IGNORES)
    run = open_run("bake", config, config.out, overwrite=config.overwrite, report_to=config.report_to)
    if resuming:
        console.print(f"resuming the unfinished bake in {run.path} (finished work is kept)", markup=False)
    else:
        console.print(
            f"run directory: {run.path} (if killed, run again with --out {run.path})",
            markup=False,
            soft_wrap=True,
        )
    state = BakeState(run.path / "state", run.path / "metrics.jsonl")
    return BakeRun(config, plans, console, run, state, started=time.perf_counter())


def load_stage(job: BakeRun) -> None:
    """The model with a fresh adapter: a bad --target-modules fails before sampling."""
    config = job.config
    model, job.tokenizer = load(config.model, dtype=config.dtype, device=config.device, seed=config.seed)
    job.model = with_adapter(model, job.plans[0].settings(config))
    check_adapter(job.model, job.plans[0].settings(config))


def bake_stage(job: BakeRun) -> None:
    """Sample trajectories and train: one bake, pursuit rounds, or a sequence of layers."""
    config, plans = job.config, job.plans
    rounds = max(1, config.pursue + 1)
    settings = [p.settings(config) for p in plans]
    steps = sum(s.max_epochs * -(-s.n_train // s.train_batch_size) for s in settings) * rounds
    trajectories = sum(s.n_train + s.n_val for s in settings) * rounds
    hooks: dict[str, Any] = {
        "state": job.state,
        "log": job.run.log,
        "checkpoint": CheckpointSaver(job.out, [p.text for p in plans]),
    }
    with phase_bars() as bars:
        hooks["sampled"] = bars.bar("sampling trajectories", trajectories)
        hooks["advance"] = bars.bar("training steps (at most)", steps)
        if len(plans) == 1:
            _bake_one(job, plans[0], rounds, hooks)
        else:
            _bake_sequence(job, hooks)


def _bake_one(job: BakeRun, plan: Plan, rounds: int, hooks: dict[str, Any]) -> None:
    config, state = job.config, hooks.pop("state")
    questions = plan.questions(config)
    settings = plan.settings(config)
    if config.pursue:
        results = pursue(
            job.model, job.tokenizer, plan.text, questions, settings, rounds=rounds, state=state, **hooks
        )
    else:
        results = [
            bake(job.model, job.tokenizer, plan.text, questions, settings, state=state.unit("bake"), **hooks)
        ]
    job.results, job.layer_results = results, [results[-1]]
    job.final = job.base = results[-1].model  # the PeftModel: adapter off = base


def _bake_sequence(job: BakeRun, hooks: dict[str, Any]) -> None:
    config, plans = job.config, job.plans
    job.base, _ = load(config.model, dtype=config.dtype, device=config.device, seed=config.seed)
    questions = [p.questions(config) for p in plans]
    job.final, job.layer_results = bake_sequence(
        job.model,
        job.tokenizer,
        [p.text for p in plans],
        questions,
        [p.settings(config) for p in plans],
        keep_earlier=config.keep_earlier,
        **hooks,
    )
    job.results = job.layer_results


def save_stage(job: BakeRun) -> list[dict[str, Any]]:
    """adapter/ (one layer_N_NAME/ per prompt of a sequence), layers.json, merged/, trajectories.jsonl."""
    out, plans, tokenizer = job.out, job.plans, job.tokenizer
    if len(plans) == 1:
        job.final.save_pretrained(out / "adapter")
    else:
        for i, (plan, result) in enumerate(zip(plans, job.layer_results, strict=True), 1):
            result.model.save_pretrained(out / "adapter" / f"layer_{i}_{slug(plan.name)}")
    tokenizer.save_pretrained(out / "adapter")
    layers = [
        {"name": p.name, "prompt": p.text, **r.summary()}
        for p, r in zip(plans, job.layer_results, strict=True)
    ]
    write_layers(out, layers)
    if job.config.merge or len(plans) > 1:
        merged = job.final if len(plans) > 1 else merged_copy(job.final)
        merged.save_pretrained(out / "merged")
        tokenizer.save_pretrained(out / "merged")
    job.run.write_samples(
        [
            {"x0": t.x0, "continuation": t.continuation, "finish_reason": t.finish_reason}
            for r in job.results
            for t in r.train
        ],
        "trajectories.jsonl",
    )
    return layers


def timing_summary(job: BakeRun, layers: list[dict[str, Any]]) -> None:
    summary = job.summary = {"command": "bake", "model": job.config.model, "layers": layers}
    if job.config.pursue:
        summary["rounds"] = [r.summary() for r in job.results]
    summary.update({k: v for k, v in job.layer_results[-1].summary().items() if k != "prompt"})
    summary["seconds"] = round(sum(r.seconds for r in job.results), 2)
    summary["bake_seconds"] = summary["seconds"]
    summary["trajectory_tokens"] = sum(r.trajectory_tokens for r in job.results)
    summary["trajectory_tokens_per_s_end_to_end"] = round(
        summary["trajectory_tokens"] / summary["seconds"], 1
    )
    job.console.print(f"baked in {summary['seconds']:.1f} s; adapter: {job.out / 'adapter'}")


def measure_stage(job: BakeRun) -> None:
    """The before/after behaviour table per prompt, and pursuit rounds, drift and forgetting if asked.
    Measured first, under progress bars; ``report_stage`` prints them."""
    config, plans, summary = job.config, job.plans, job.summary
    n_items = {
        p.name: len(measure.test_items(p.task, config.measure_n, config.seed, p.levels)) for p in plans
    }
    behaviours: dict[str, Any] = {}
    with phase_bars() as bars:
        if config.measure_n:
            for plan in plans:
                answered = bars.bar(f"measuring {plan.name}", len(measure.CONDITIONS) * n_items[plan.name])
                table = measure.behaviour(
                    job.base,
                    job.final,
                    job.tokenizer,
                    plan.text,
                    **_measure_args(plan, config),
                    on_batch=answered,
                )
                table.pop("_flags")
                behaviours[plan.name] = table
        summary["behaviour"] = behaviours if len(plans) > 1 else next(iter(behaviours.values()), {})
        if config.pursue and config.measure_n:
            plan = plans[0]
            answered = bars.bar("measuring pursuit rounds", len(job.results) * n_items[plan.name])
            summary["pursuit"] = measure.rounds(
                job.final,
                job.tokenizer,
                plan.text,
                [r.adapter_state for r in job.results],
                load_adapter_state,
                **_measure_args(plan, config),
                on_batch=answered,
            )
        if config.drift:
            summary["drift"] = _drift(job, bars)
        if config.forgetting:
            n = config.measure_n or 300
            items = sum(
                len(measure.test_items(f, n, config.seed, FORGETTING_FAMILIES[f][1]))
                for f in config.forgetting
            )
            answered = bars.bar("measuring forgetting", 2 * items)
            summary["forgetting"] = measure.forgetting(
                job.base,
                job.final,
                job.tokenizer,
                config.forgetting,
                n=n,
                seed=config.seed,
                batch_size=config.batch_size,
                on_batch=answered,
            )


def _measure_args(plan: Plan, config: BakeConfig) -> dict[str, Any]:
    return {
        "behaviour_name": plan.behaviour,
        "task": plan.task,
        "levels": plan.levels,
        "tools": plan.tools,
        "n": config.measure_n,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "temperature": config.measure_temperature,
    }


def _drift(job: BakeRun, bars) -> list[dict[str, Any]]:
    config, plan = job.config, job.plans[-1]
    n = min(config.measure_n or 100, 100)
    turns = (0, 1, 2, 4)
    answered = bars.bar(
        "measuring drift", 2 * len(turns) * len(measure.test_items(plan.task, n, config.seed, plan.levels))
    )
    return measure.drift(
        job.base,
        job.final,
        job.tokenizer,
        plan.text,
        behaviour_name=plan.behaviour,
        task=plan.task,
        levels=plan.levels,
        turns=turns,
        n=n,
        seed=config.seed,
        batch_size=config.batch_size,
        on_batch=answered,
    )


def report_stage(job: BakeRun) -> None:
    """The tables, in the order they were measured, and one line on what their terms mean."""
    config, console, summary = job.config, job.console, job.summary
    behaviours = summary["behaviour"] if len(job.plans) > 1 else {job.plans[0].name: summary["behaviour"]}
    decoding = "greedy" if not config.measure_temperature else f"T={config.measure_temperature}"
    for plan, result in zip(job.plans, job.layer_results, strict=True):
        if plan.name in behaviours and behaviours[plan.name]:
            title = f"{plan.name}: before / after (frozen test split, seed {config.seed}, {decoding})"
            tables.behaviour_table(console, title, behaviours[plan.name], result)
    if "pursuit" in summary:
        tables.pursuit_table(console, summary["pursuit"], job.results)
    if config.drift:
        tables.drift_table(console, job.plans[-1].behaviour, summary["drift"])
    if config.forgetting:
        tables.forgetting_table(console, summary["forgetting"])
    if config.measure_n:
        tables.explain_terms(console)


def finish_stage(job: BakeRun, layers: list[dict[str, Any]]) -> None:
    """The model card and summary.json; the resume state is dropped (only a killed run needs it)."""
    write_card(job.out, job.config, layers, job.config.model)
    job.summary["total_seconds"] = round(time.perf_counter() - job.started, 2)
    job.run.finish(job.summary)
    shutil.rmtree(job.state.root, ignore_errors=True)
    job.console.print(
        f"done in {job.summary['total_seconds']:.0f} s: summary.json, README.md (model card) and adapter/ "
        "are in the run directory above"
    )


def run_bake(config: BakeConfig) -> dict[str, Any]:
    console = make_console()
    if config.list_presets:
        tables.print_presets(console)
        return {}
    plans = make_plans(config)
    job = open_stage(config, plans, console)
    load_stage(job)
    bake_stage(job)
    layers = save_stage(job)
    timing_summary(job, layers)
    measure_stage(job)
    report_stage(job)
    finish_stage(job, layers)
    return job.summary
