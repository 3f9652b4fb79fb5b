"""Run ``selfbake iterate``: stages in order, resumed from the files a killed run left, then the summary."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from selfbake.config import changed_settings
from selfbake.errors import UserError
from selfbake.iteration.loop import IterateConfig, Problems, evaluate, sample_stage, train_stage
from selfbake.tasks.stats import paired_summary
from selfbake.tracking.progress import make_console
from selfbake.tracking.rundir import RunDir, atomic_write_text, default_run_path

RESUME_IGNORES = ("out", "overwrite", "device")


def _check_config(config: IterateConfig, out: Path) -> None:
    """A run directory holds one experiment: resuming with other settings is an error, not a mix."""
    if config.overwrite and out.exists():
        shutil.rmtree(out)
        return
    saved = out / "config.yaml"
    if not saved.exists():
        return
    changed = changed_settings(config, saved, RESUME_IGNORES)
    if changed:
        raise UserError(
            f"{out} holds a run with other settings ({', '.join(changed)}); resume with the same settings, "
            "or pass --overwrite or another --out"
        )


def _validate(config: IterateConfig) -> None:
    from selfbake import tasks

    for name in config.task:
        task = tasks.get(name)
        if not hasattr(task, "sample") or task.sample.__func__ is tasks.Task.sample:
            raise UserError(f"task '{name}' has no problem generator; iterate needs a procedural task")
        if config.verify == "code" and task.scoring != "code":
            raise UserError(
                f"--verify code needs a code task (tests run in the sandbox); '{name}' is not one"
            )
        if config.verify == "answer" and task.scoring != "generate":
            raise UserError(f"task '{name}' is a {task.scoring} task; use --verify code for code tasks")
        bad = [lvl for lvl in config.levels + config.hard_levels if lvl not in task.difficulties]
        if bad:
            raise UserError(f"task '{name}' has no difficulty {bad[0]} (it has {list(task.difficulties)})")


def _histogram(path: Path, rates: dict[str, float], iteration: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(list(rates), list(rates.values()))
    ax.set_ylim(0, 1)
    ax.set_xlabel("difficulty")
    ax.set_ylabel("train problems solved (any of K)")
    ax.set_title(f"iteration {iteration}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _metrics_lines(evals: list[dict], samples: list[dict]) -> list[dict]:
    lines = []
    by_iter = {s["iteration"]: s for s in samples}
    for e in evals:
        it = e["iteration"]
        for split in ("dev", "test", "hard"):
            if split not in e:
                continue
            row = e[split]
            line = {
                "step": it,
                "split": split,
                "accuracy": row["accuracy"]["rate"],
                "n": row["accuracy"]["n"],
                "ci95": row["accuracy"]["ci95"],
            }
            line.update({k: v for k, v in row.items() if k.startswith(("pass@", "distinct"))})
            if split == "test" and it in by_iter:
                line.update({k: by_iter[it][k] for k in ("sampled", "correct", "kept", "solved_problems")})
            lines.append(line)
    return lines


def run_iterate(config: IterateConfig) -> dict[str, Any]:
    console = make_console()
    _validate(config)
    out = Path(config.out) if config.out else default_run_path("iterate")
    _check_config(config, out)
    run = RunDir(out, overwrite=config.overwrite)
    run.write_config(config.model_dump(mode="json"))
    for sub in ("solutions", "adapters", "evals", "histograms"):
        (out / sub).mkdir(exist_ok=True)
    problems = Problems(config)
    started = time.perf_counter()

    def adapter(it: int) -> Path | None:
        return out / "adapters" / f"iter_{it}" if it > 0 else None

    def eval_file(it: int) -> Path:
        return out / "evals" / f"iter_{it}.json"

    def stage(it: int) -> None:
        if not eval_file(it).exists():
            result = evaluate(config, problems, it, adapter(it))
            atomic_write_text(eval_file(it), json.dumps(result) + "\n")

    evals: list[dict] = []
    samples: list[dict] = []
    console.print(
        f"iterate: {', '.join(config.task)} levels {config.levels}; {len(problems.train)} train / "
        f"{len(problems.dev)} dev / {len(problems.test)} test (hash {problems.test_hash()}) / "
        f"{len(problems.hard)} hard; K={config.samples_per_problem}, {config.training}"
    )
    stage(0)
    evals.append(json.loads(eval_file(0).read_text()))
    best, stale = 0, 0
    for it in range(1, config.iterations + 1):
        sol_file = out / "solutions" / f"iter_{it}.jsonl"
        meta_file = out / "solutions" / f"iter_{it}.json"
        if not meta_file.exists():
            record = sample_stage(config, problems, it, adapter(it - 1))
            atomic_write_text(sol_file, "".join(json.dumps(s) + "\n" for s in record.pop("solutions")))
            atomic_write_text(meta_file, json.dumps(record) + "\n")
        meta = json.loads(meta_file.read_text())
        samples.append(meta)
        _histogram(out / "histograms" / f"iter_{it}.png", meta["solve_rate_by_difficulty"], it)
        if not adapter(it).exists():
            solutions = [json.loads(line) for line in sol_file.read_text().splitlines() if line.strip()]
            train_stage(config, it, solutions, adapter(it - 1), adapter(it))
        stage(it)
        evals.append(json.loads(eval_file(it).read_text()))
        atomic_write_text(
            out / "metrics.jsonl", "".join(json.dumps(x) + "\n" for x in _metrics_lines(evals, samples))
        )
        dev = [e["dev"]["accuracy"]["rate"] for e in evals]
        console.print(
            f"iteration {it}: kept {meta['kept']} of {meta['correct']} correct / {meta['sampled']} sampled; "
            f"dev {dev[-1]:.3f}, test {evals[-1]['test']['accuracy']['rate']:.3f}"
        )
        if dev[-1] > dev[best]:
            best, stale = it, 0
        else:
            stale += 1
            if stale >= config.patience:
                console.print(f"dev accuracy did not improve for {stale} iteration(s): stopping")
                break
    atomic_write_text(
        out / "metrics.jsonl", "".join(json.dumps(x) + "\n" for x in _metrics_lines(evals, samples))
    )
    summary = _summary(config, problems, evals, best, time.perf_counter() - started)
    _print_table(console, evals, samples, best)
    run.finish(summary)
    console.print(f"run directory: {out}", markup=False, soft_wrap=True)
    return summary


def _summary(config, problems, evals, best: int, seconds: float) -> dict[str, Any]:
    base, top = evals[0], evals[best]
    summary: dict[str, Any] = {
        "command": "iterate",
        "task": config.task,
        "n_test": len(problems.test),
        "test_hash": problems.test_hash(),
        "baseline_test_accuracy": base["test"]["accuracy"]["rate"],
        "baseline_ci95": base["test"]["accuracy"]["ci95"],
        "best_iteration": best,
        "best_test_accuracy": top["test"]["accuracy"]["rate"],
        "best_ci95": top["test"]["accuracy"]["ci95"],
        **{k: v for k, v in paired_summary(base["test"]["flags"], top["test"]["flags"]).items() if k != "n"},
        "best_adapter": f"adapters/iter_{best}" if best else None,
        "iterations_run": len(evals) - 1,
        "seconds_this_session": round(seconds, 1),
    }
    if "hard" in base:
        summary["hard"] = {
            "n": base["hard"]["accuracy"]["n"],
            "baseline_accuracy": base["hard"]["accuracy"]["rate"],
            "best_accuracy": top["hard"]["accuracy"]["rate"],
            "best_ci95": top["hard"]["accuracy"]["ci95"],
            **paired_summary(base["hard"]["flags"], top["hard"]["flags"]),
        }
    summary["per_iteration"] = [
        {
            "iteration": e["iteration"],
            **{f"{s}_accuracy": e[s]["accuracy"]["rate"] for s in ("dev", "test", "hard") if s in e},
            **{k: v for k, v in e["test"].items() if k.startswith(("pass@", "distinct"))},
        }
        for e in evals
    ]
    return summary


def _print_table(console, evals: list[dict], samples: list[dict], best: int) -> None:
    table = Table(title="expert iteration: accuracy per iteration (greedy; 95% Wilson intervals)")
    for column in ("iter", "kept / correct / sampled", "dev", "test", "hard", "test pass@K", "distinct-2"):
        table.add_column(column)
    by_iter = {s["iteration"]: s for s in samples}

    def cell(e, split):
        if split not in e:
            return "-"
        a = e[split]["accuracy"]
        return f"{a['rate']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}] n={a['n']}"

    for e in evals:
        it = e["iteration"]
        s = by_iter.get(it)
        passk = next((f"{v:.3f}" for k, v in e["test"].items() if k.startswith("pass@")), "-")
        table.add_row(
            f"{it}{' *' if it == best else ''}",
            f"{s['kept']} / {s['correct']} / {s['sampled']}" if s else "(base)",
            cell(e, "dev"),
            cell(e, "test"),
            cell(e, "hard"),
            passk,
            f"{e['test']['distinct_2']:.3f}" if "distinct_2" in e["test"] else "-",
        )
    console.print(table)
