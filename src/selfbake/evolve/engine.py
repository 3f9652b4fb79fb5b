"""``evolve(model, config)``: set up the run directory, alternate cycles until both plateau, report.

The cycles themselves are in ``loop``; this module validates settings before
any model loads, resumes an unfinished run in ``--out``, decides when to stop
(both cycle kinds plateaued ``patience`` times in a row, or ``max_cycles``),
and writes the final report, the only place that reads the frozen test split.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfbake import tasks
from selfbake.config import resumable
from selfbake.errors import UserError
from selfbake.evolve import outputs
from selfbake.evolve import proposers as P
from selfbake.evolve.cache import EvalCache
from selfbake.evolve.config import EvolveConfig
from selfbake.evolve.evaluator import Evaluator, aggregate, paired
from selfbake.evolve.loop import Context, PlateauTracker, bake_layer, run_cycle
from selfbake.evolve.state import ModelState, Stages
from selfbake.evolve.suites import TRAIN_ITEMS, SuiteSplits, load_suite
from selfbake.models import load
from selfbake.tracking.rundir import open_run

RESUME_IGNORES = ("out", "overwrite", "device", "report_to", "batch_size")


@dataclass
class EvolveResult:
    layers: list[dict[str, Any]]
    lineage: list[dict[str, Any]]
    summary: dict[str, Any]
    run_dir: Path


def check(config: EvolveConfig) -> tuple[dict[str, SuiteSplits], list[str] | None]:
    """Everything that can be wrong with the settings, found before a model is loaded."""
    suites = {"tool": load_suite(config.tool_suite), "benchmark": load_suite(config.benchmark_suite)}
    in_suites = {e.task for s in suites.values() for e in s.tasks}
    for family in config.forgetting:
        if family not in tasks.names():
            raise UserError(f"--forgetting: unknown task family '{family}'")
        if family in in_suites:
            raise UserError(
                f"--forgetting: '{family}' is in a suite; the forgetting check needs families outside both"
            )
    if config.bake_n_train + config.bake_n_val > TRAIN_ITEMS:
        raise UserError(
            f"--bake-n-train + --bake-n-val must be at most {TRAIN_ITEMS} (the x0 pool of a task)"
        )
    listed = P.read_list(config.proposer[5:]) if config.proposer.startswith("list:") else None
    return {kind: SuiteSplits(s, config.seed) for kind, s in suites.items()}, listed


def final_report(ctx: Context, base: ModelState, final: ModelState) -> dict[str, Any]:
    """The only reader of the test split: base vs final, both unprompted, paired on the same items."""
    performance: dict[str, Any] = {}
    for kind, label in (("tool", "tool_suite"), ("benchmark", "benchmark_avg")):
        splits = ctx.splits[kind]
        splits.unlock_test()
        items = splits.test()
        before = ctx.evaluator.outcomes(base, splits, None, items, "final")
        after = ctx.evaluator.outcomes(final, splits, None, items, "final")
        performance[f"{label}_initial"] = aggregate(splits, items, before)
        performance[f"{label}_final"] = aggregate(splits, items, after)
        performance[f"{label}_improvement"] = paired(splits, items, before, after)
    forgetting: dict[str, Any] = {}
    if ctx.config.forgetting:
        from selfbake.baking import forgetting as measure_forgetting

        try:
            forgetting = measure_forgetting(
                base.model(), final.model(), ctx.tokenizer, ctx.config.forgetting, n=ctx.config.forgetting_n, seed=0,
                batch_size=ctx.config.batch_size,
            )  # fmt: skip
        except KeyError as exc:
            forgetting = {
                "error": f"no own-prompt entry for family {exc.args[0]} in selfbake.baking.forgetting"
            }
    return {
        "performance": performance,
        "forgetting": forgetting,
        "metric_calls": ctx.evaluator.calls("final"),
    }


def evolve(model=None, config: EvolveConfig | None = None, *, console=None) -> EvolveResult:
    """Run (or resume) the loop. ``model``: a spec string, a (model, tokenizer) pair, or None for config.model."""
    config = config or EvolveConfig()
    if isinstance(model, str):
        config = config.model_copy(update={"model": model})
    say = console.print if console is not None else (lambda *a, **k: None)
    splits, listed = check(config)
    if isinstance(model, tuple):
        if config.out is None:
            raise UserError("evolving an in-memory model needs config.out (its base weights are saved there)")
        base_dir = Path(config.out) / "base"
        if not base_dir.exists():
            model[0].save_pretrained(base_dir)
            model[1].save_pretrained(base_dir)
        config = config.model_copy(update={"model": str(base_dir)})
    resuming = bool(config.out) and resumable(config, Path(config.out), "evolve", RESUME_IGNORES)
    run = open_run("evolve", config, config.out, overwrite=config.overwrite, report_to=config.report_to)
    out = run.path
    (out / "metrics.jsonl").unlink(missing_ok=True)  # rebuilt from the stage markers in order
    if not resuming:  # a fresh start (or --overwrite) scores everything anew
        (out / "eval_cache.jsonl").unlink(missing_ok=True)
        shutil.rmtree(out / "state", ignore_errors=True)
    say(
        f"{'resuming' if resuming else 'run directory'}: {out} (if killed, rerun the same command)",
        markup=False,
    )
    _, tokenizer = load(config.model, dtype=config.dtype, device="cpu", seed=config.seed)
    evaluator = Evaluator(
        EvalCache(out / "eval_cache.jsonl"),
        tokenizer,
        batch_size=config.batch_size,
        seed=config.seed,
        max_new_tokens=config.max_new_tokens,
    )
    stages = Stages(out / "state", run)
    ctx = Context(config, tokenizer, splits, evaluator, stages, out, listed, say)
    base = ModelState(config.model, dtype=config.dtype, device=config.device, seed=config.seed)
    state = base
    started = time.perf_counter()
    if config.initial_tool_prompt:
        layer = stages(
            "initial_bake",
            lambda: bake_layer(ctx, state, config.initial_tool_prompt, "tool", 0, "initial_tool"),
        )
        state = state.with_layer(layer, layer["merged"])
        say(f"initial tool prompt half-baked (strength {layer['strength']:.3f})", markup=False)
    records: list[dict[str, Any]] = []
    plateaus = PlateauTracker(config.patience)
    count, seen, winners = {"tool": 0, "benchmark": 0}, set(), []
    stopped = "max_cycles"
    for cycle in range(1, config.max_cycles + 1):
        kind = "tool" if cycle % 2 == 1 else "benchmark"
        count[kind] += 1
        record, state = run_cycle(ctx, state, kind, cycle, count[kind], seen, winners)
        records.append(record)
        if record["winner"]:
            winners.append({"kind": kind, "prompt": record["winner"]})
        say(cycle_line(record), markup=False)
        if plateaus.update(kind, record["decide"]["plateau"]):
            stopped = "plateau"
            break
    final = stages("final", lambda: final_report(ctx, base, state))
    model_dir = out / "model"
    if not model_dir.exists():
        state.model().save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
    initial = [state.layers[0]] if config.initial_tool_prompt and state.layers else []
    layers = state.layers
    rows = outputs.lineage(records, set())
    outputs.write_lineage(out, rows)
    outputs.write_layers(out, layers, config.model)
    timing = timing_of(records, final, initial)
    calls = calls_of(records, final)
    summary = outputs.summary(
        model_path=model_dir, performance=final["performance"], layers=layers, records=records,
        stopped=stopped, forgetting=final["forgetting"], timing=timing, metric_calls=calls,
    )  # fmt: skip
    bench = final["performance"]["benchmark_avg_final"]["score"]
    run.log(
        step=len(records) + 1,
        **{"phase6/total_iterations": len(records), "phase6/final_benchmark_avg": bench},
    )
    summary["wall_seconds_this_process"] = round(time.perf_counter() - started, 2)
    run.finish(summary)
    shutil.rmtree(
        out / "state" / "models", ignore_errors=True
    )  # merged weights per bake: model/ is the result
    return EvolveResult(layers, rows, summary, out)


def timing_of(records, final, initial) -> dict[str, float]:
    bake = sum(r["bake"]["seconds"] for r in records if r["bake"]) + sum(x["seconds"] for x in initial)
    test = sum((r["race"] or {}).get("seconds", 0) + r["decide"]["seconds"] for r in records)
    hours = lambda s: round(s / 3600, 4)  # noqa: E731
    return {"total_hours": hours(bake + test), "baking_hours": hours(bake), "testing_hours": hours(test)}


def calls_of(records, final) -> dict[str, Any]:
    race = sum(r["race"]["race_calls"] for r in records if r["race"])
    full = sum(r["race"]["full_calls"] for r in records if r["race"])
    per_cycle = [
        {"cycle": r["cycle"], "racing": r["race"]["race_calls"] if r["race"] else 0,
         "full_evaluation": r["race"]["full_calls"] if r["race"] else 0,
         "stage_scorings": (r["race"]["metric_calls"] if r["race"] else 0) + r["decide"]["metric_calls"]}
        for r in records
    ]  # fmt: skip
    total = sum(c["stage_scorings"] for c in per_cycle) + final["metric_calls"]
    return {
        "total": total,
        "racing": race,
        "full_evaluation_equivalent": full,
        "final_report": final["metric_calls"],
        "per_cycle": per_cycle,
    }


def cycle_line(record: dict[str, Any]) -> str:
    kind, d, race = record["kind"], record["decide"], record["race"]
    dropped = sum(1 for p in record["proposals"] if p["dropped"])
    head = f"cycle {record['cycle']} ({kind}): {len(record['proposals'])} proposals, {dropped} invalid"
    if race is None:
        return f"{head}; plateau: {d['reason']}"
    w = race["entrants"][race["winner"]]["dev"]
    head += (
        f"; racing spent {race['race_calls']} metric calls (full evaluation: {race['full_calls']}); "
        f"winner {record['winner'][:80]!r} dev {w['score']:.3f} {w['ci95']} n={w['n']} vs current "
        f"{race['incumbent_dev']['score']:.3f}"
    )
    if record["bake"]:
        head += f"; baked to strength {record['bake']['strength']:.3f} in {record['bake']['seconds']:.0f} s"
    return f"{head}; {'KEPT' if d['kept'] else 'plateau'}: {d['reason']}"
