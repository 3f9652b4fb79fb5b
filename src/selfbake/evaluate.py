"""``selfbake eval``: accuracy with n, 95 % Wilson interval and a chance baseline, per task;
``--compare RUN_A RUN_B``: a paired McNemar test on the items both runs scored.

Procedural tasks draw the requested split from ``tasks.splits`` (the test split
is frozen by its seed); benchmarks use the first ``n`` items of their data, and the
table and ``summary.json`` say where that data came from (hub id and revision, file
and sha256, or "(fixture)" for the synthetic test fixtures).
A suite file weights tasks: ``tasks: [{name: arithmetic, weight: 2, n: 100}, ...]``.
A killed eval keeps the tasks it finished (``state/task_N.json``): the same
command with the same ``--out`` scores only the rest.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rich.console import Console
from rich.table import Table

from selfbake import tasks as task_registry
from selfbake.config import ModelRunConfig, comma_list, read_yaml, resumable
from selfbake.errors import UserError
from selfbake.models import load
from selfbake.scoring import TaskResult, score
from selfbake.tasks.base import Task
from selfbake.tasks.stats import mcnemar_exact, paired_bootstrap
from selfbake.tracking import progress_bar
from selfbake.tracking.progress import make_console
from selfbake.tracking.rundir import atomic_write_text, open_run


class SuiteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    weight: float = Field(1.0, gt=0)
    n: int | None = Field(None, gt=0)
    difficulty: int | None = None


class EvalConfig(ModelRunConfig):
    """Settings of ``selfbake eval``."""

    task: list[str] = Field(
        default_factory=list,
        description="task, repeatable; benchmarks take name:PATH (tasks: "
        + ", ".join(task_registry.names())
        + ")",
    )
    tools: list[str] = Field(
        default_factory=list, description="tools to allow, comma-separated; 'task' = each task's own tools"
    )
    suite: str | None = Field(None, description="YAML suite: tasks with weights (and optional n, difficulty)")
    n: int = Field(100, gt=0, description="items per task")
    split: Literal["train", "dev", "test"] = Field("test", description="split of procedural tasks")
    difficulty: int | None = Field(
        None, description="difficulty of procedural tasks; absent = a mix of all levels"
    )
    chat: bool | None = Field(
        None, description="render benchmarks with the chat template (procedural tasks always are)"
    )
    num_fewshot: int = Field(0, ge=0, description="few-shot examples for benchmarks")
    k: int = Field(1, gt=0, description="samples per item for pass@k (1 = greedy)")
    max_new_tokens: int | None = Field(None, gt=0, description="override the task's generation budget")
    compare: list[str] = Field(
        default_factory=list,
        description="compare two eval runs item by item (paired McNemar test)",
        json_schema_extra={"nargs": 2, "metavar": ("RUN_A", "RUN_B")},
    )

    @field_validator("task", mode="before")
    @classmethod
    def _task_list(cls, value):
        return comma_list(value)

    @model_validator(mode="after")
    def check(self):
        if self.compare:
            if len(self.compare) != 2:
                raise ValueError("--compare takes exactly two run directories")
            return self
        if not self.task and not self.suite:
            raise ValueError("no task: give --task NAME (repeatable) or --suite FILE.yaml")
        return self


def load_suite(path: str) -> list[SuiteEntry]:
    data = read_yaml(path)
    entries = data.get("tasks")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"suite {path} needs a non-empty list under 'tasks'")
    out = []
    for number, entry in enumerate(entries, 1):
        if isinstance(entry, str):
            entry = {"name": entry}
        try:
            out.append(SuiteEntry(**entry))
        except Exception as exc:  # pydantic's message, on one line
            raise UserError(f"suite {path}, task {number}: {str(exc).splitlines()[0]}") from None
    return out


def items_for(task: Task, config: EvalConfig, n: int, difficulty: int | None):
    if isinstance(task, task_registry.Benchmark):
        items = task.generate_items(n, config.seed)
        if not items:
            raise UserError(f"task {task.name} has no items")
        return items
    split = task_registry.splits(
        task,
        n if config.split == "train" else 0,
        n if config.split == "dev" else 0,
        n,
        seed=config.seed,
        difficulty=difficulty,
    )
    return getattr(split, config.split)


def data_source(task: Task) -> dict | None:
    """Where a benchmark's items came from (None for generated tasks)."""
    source = getattr(task, "data_source", None)
    return source.as_dict() if source is not None else None


def print_results(
    console: Console,
    results: list[TaskResult],
    weights: dict[str, float],
    aggregate: dict,
    sources: list[str] | None = None,
) -> None:
    table = Table(title="selfbake eval")
    for column in ("task", "n", "accuracy", "95% CI", "baseline", "other", "data"):
        table.add_column(column, justify="left" if column in ("task", "other", "data") else "right")
    for r, source in zip(results, sources or [""] * len(results), strict=True):
        other = ", ".join(f"{k} {v:.3f}" for k, v in r.metrics.items())
        table.add_row(
            r.task + (" (fixture)" if source == "(fixture)" else ""),
            str(r.n),
            f"{r.accuracy:.3f}",
            f"[{r.ci95[0]:.3f}, {r.ci95[1]:.3f}]",
            f"{r.baseline:.3f}",
            other,
            source or "generated",
        )
    if len(results) > 1:
        table.add_row(
            "aggregate (weighted)",
            str(aggregate["n"]),
            f"{aggregate['accuracy']:.3f}",
            "",
            f"{aggregate['baseline']:.3f}",
            "",
            "",
        )
    console.print(table)


RESUME_IGNORES = ("out", "overwrite", "device", "report_to")


def finished_tasks(config: EvalConfig, out: Path) -> dict[int, TaskResult]:
    """The tasks an unfinished eval in ``out`` already scored, by position; other settings are an error."""
    state = out / "state"
    if not resumable(config, out, "eval", RESUME_IGNORES):
        return {}
    done = {}
    for path in state.glob("task_*.json"):
        saved = json.loads(path.read_text())
        step = saved.pop("step")
        done[step] = TaskResult(**{**saved, "ci95": tuple(saved["ci95"])})
    metrics = out / "metrics.jsonl"
    if metrics.exists():  # drop what the killed run logged for a task it did not save
        lines = [line for line in metrics.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line).get("step") in done]
        atomic_write_text(metrics, "".join(line + "\n" for line in kept))
    return done


def save_task(out: Path, step: int, result: TaskResult) -> None:
    record = {"step": step, **{k: getattr(result, k) for k in result.__dataclass_fields__}}
    atomic_write_text(out / "state" / f"task_{step}.json", json.dumps(record, ensure_ascii=False))


def run_eval(config: EvalConfig, console: Console | None = None) -> Path | None:
    console = console or make_console()
    if config.compare:
        run_compare(config.compare[0], config.compare[1], console)
        return None
    entries = load_suite(config.suite) if config.suite else []
    entries += [SuiteEntry(name=name) for name in config.task]
    resolved = [(task_registry.get(e.name, num_fewshot=config.num_fewshot), e) for e in entries]
    plans = []
    for task, entry in resolved:
        n = entry.n or config.n
        tools = list(task.tools) if config.tools == ["task"] else config.tools
        plans.append(
            (
                task,
                entry,
                items_for(
                    task, config, n, entry.difficulty if entry.difficulty is not None else config.difficulty
                ),
                tools,
            )
        )
    done = finished_tasks(config, Path(config.out)) if config.out else {}
    model, tokenizer = None, None
    if len(done) < len(plans):
        model, tokenizer = load(config.model, dtype=config.dtype, device=config.device, seed=config.seed)
    run = open_run("eval", config, config.out, overwrite=config.overwrite, report_to=config.report_to)
    if done:
        console.print(
            f"resuming the unfinished eval in {run.path}: {len(done)} of {len(plans)} tasks already scored",
            markup=False,
        )
    else:
        console.print(
            f"run directory: {run.path} (if killed, run again with --out {run.path})",
            markup=False,
            soft_wrap=True,
        )
    results, records = [], []

    def answers(task: Task, items: list) -> int:  # progress unit: k per generated item, one per choice item
        return len(items) * (1 if task.scoring == "loglikelihood" else config.k)

    with progress_bar(sum(answers(task, items) for task, _, items, _ in plans), "evaluating") as advance:
        for step, (task, _entry, items, tools) in enumerate(plans):
            if step in done:
                if (done[step].task, len(done[step].records)) != (task.name, len(items)):
                    raise UserError(
                        f"{run.path}: task {step + 1} was {done[step].task} on {len(done[step].records)} items "
                        f"and is now {task.name} on {len(items)} (did the suite change?); pass --overwrite"
                    )
                results.append(done[step])
                records.extend(done[step].records)
                advance(answers(task, items))
                continue
            result = score(
                model,
                tokenizer,
                task,
                items,
                system=config.system,
                tools=tools or None,
                chat=config.chat,
                k=config.k,
                max_new_tokens=config.max_new_tokens,
                batch_size=config.batch_size,
                seed=config.seed,
                tool_format=config.tool_format,
                max_tool_calls=config.max_tool_calls,
                on_batch=advance,
            )
            results.append(result)
            records.extend(result.records)
            run.log(step, task=task.name, accuracy=result.accuracy, n=result.n, **result.metrics)
            save_task(run.path, step, result)
    weights = {entry.name: entry.weight for _, entry in resolved}
    weight_sum = sum(weights[e.name] for _, e in resolved)
    aggregate = {
        "accuracy": sum(weights[e.name] * r.accuracy for (_, e), r in zip(resolved, results, strict=True))
        / weight_sum,
        "baseline": sum(weights[e.name] * r.baseline for (_, e), r in zip(resolved, results, strict=True))
        / weight_sum,
        "n": sum(r.n for r in results),
        "weights": weights,
    }
    labels = [t.data_source.label() if getattr(t, "data_source", None) else "" for t, _ in resolved]
    print_results(console, results, weights, aggregate, labels)
    run.write_samples(records)
    summary = {
        "command": "eval",
        "model": config.model,
        "system": config.system,
        "split": config.split,
        "seed": config.seed,
        "tasks": {
            e.name: {**r.summary(), **({"data_source": data_source(t)} if data_source(t) else {})}
            for (t, e), r in zip(resolved, results, strict=True)
        },
        "aggregate": aggregate,
    }
    run.finish(summary)
    shutil.rmtree(run.path / "state", ignore_errors=True)
    console.print(f"run directory: {run.path}", markup=False, soft_wrap=True)
    return run.path


def read_samples(run_dir: str) -> dict[tuple[str, str], float]:
    path = Path(run_dir) / "samples.jsonl"
    if not (Path(run_dir) / "summary.json").exists():
        raise UserError(f"{run_dir} is not a finished eval run (no summary.json)")
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if rows and "key" not in rows[0]:
        raise UserError(f"{run_dir} has no per-item keys; is it an eval run?")
    return {(r["task"], r["key"]): r["correct"] for r in rows}


def source_labels(run_dir: str) -> list[str]:
    """The benchmark data sources a finished eval run recorded, as short labels."""
    from selfbake.tasks.benchmark_data import DataSource

    tasks = json.loads((Path(run_dir) / "summary.json").read_text()).get("tasks", {})
    labels = []
    for name, entry in tasks.items():
        source = dict(entry.get("data_source") or {})
        if source:
            labels.append(f"{name} {DataSource(source.pop('kind'), source).label()}")
    return labels


def run_compare(run_a: str, run_b: str, console: Console) -> dict:
    a, b = read_samples(run_a), read_samples(run_b)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise UserError(
            f"{run_a} and {run_b} scored no item in common; compare runs on the same tasks, split and seed"
        )
    table = Table(title=f"paired comparison: B = {run_b} vs A = {run_a}")
    table.caption = "data: " + "; ".join(
        f"{which} {', '.join(labels) or 'none recorded'}"
        for which, labels in (("A", source_labels(run_a)), ("B", source_labels(run_b)))
    )
    for column in ("task", "n paired", "acc A", "acc B", "B - A", "95% CI (bootstrap)", "p (McNemar)"):
        table.add_column(column, justify="left" if column == "task" else "right")
    out = {}
    for task in sorted({t for t, _ in shared}) + ["all"]:
        keys = [k for k in shared if task in ("all", k[0])]
        xa = [bool(a[k]) for k in keys]
        xb = [bool(b[k]) for k in keys]
        only_a = sum(x and not y for x, y in zip(xa, xb, strict=True))
        only_b = sum(y and not x for x, y in zip(xa, xb, strict=True))
        diff, lo, hi = paired_bootstrap(xa, xb)
        p = mcnemar_exact(only_a, only_b)
        out[task] = {
            "n": len(keys),
            "acc_a": sum(xa) / len(keys),
            "acc_b": sum(xb) / len(keys),
            "diff": diff,
            "ci95": [lo, hi],
            "p_value": p,
        }
        table.add_row(
            task,
            str(len(keys)),
            f"{out[task]['acc_a']:.3f}",
            f"{out[task]['acc_b']:.3f}",
            f"{diff:+.3f}",
            f"[{lo:+.3f}, {hi:+.3f}]",
            f"{p:.4g}",
        )
    console.print(table)
    return out
