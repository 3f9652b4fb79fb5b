"""What a report shows for each command: its own tables and the plots that make sense for it.

A run directory says which command wrote it in ``summary.json``'s ``command``
key (every command writes it; ``config.yaml`` does not name the command). An
unfinished run has no summary, so the command is inferred from the keys of
its ``metrics.jsonl`` lines (``infer_command``). Each builder reads only the
JSON a command writes, never the command's code, so ``tracking`` stays below
the commands in the import order.

- bake: the before/after behaviour table the terminal prints (per layer of a
  sequence), the layers table, pursuit rounds, and the training curves
  (loss, held-out KL, strength, throughput per step);
- eval: a table per task and a bar per task with its 95 % interval and the
  chance baseline;
- iterate: baseline vs best with the paired test, accuracy per iteration as
  curves (dev / test / hard) and as a table;
- forge, generate and anything else: the summary's numbers as tables (nested
  dicts as their own tables, never a JSON blob) and a curve for every metric
  logged at two or more steps.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from selfbake.tracking.report_plots import Bar, Figure, Series, curves, grouped_interval_bars, interval_bars

SKIP_SERIES = {"step", "time", "n", "iteration", "seed"}
CONDITIONS = ("base_unprompted", "base_prompted", "baked_unprompted", "baked_reprompted")
STRENGTH_NOTE = (
    "strength = 1 − KL(prompted base ‖ baked) / KL(prompted base ‖ unbaked) on held-out trajectories: "
    "1 means the baked model without the prompt matches the base model with it."
)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Section:
    title: str
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def infer_command(summary: dict | None, metrics: list[dict]) -> str:
    """The command that wrote the run: summary.json's ``command``, else guessed from metrics keys."""
    if summary is not None:  # every command writes its name into summary.json; without it: unknown
        return summary["command"] if isinstance(summary.get("command"), str) else "run"
    keys = {k for record in metrics for k in record}
    if keys & {"strength", "val_kl"}:
        return "bake"
    if "split" in keys:
        return "iterate"
    if {"task", "accuracy"} <= keys:
        return "eval"
    return "run"


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    if isinstance(value, list) and all(isinstance(x, (int, float)) for x in value):
        return "[" + ", ".join(fmt(x) for x in value) + "]"
    return str(value)


def interval(cell: dict | None) -> str:
    """``{"rate", "n", "ci95"}`` as the terminal writes it: 0.750 [0.409, 0.929] n=8."""
    if not isinstance(cell, dict) or "rate" not in cell:
        return "—"
    low, high = cell.get("ci95", [None, None])
    return f"{cell['rate']:.3f} [{low:.3f}, {high:.3f}] n={cell.get('n')}"


def series_from(metrics: list[dict], group_key: str | None = None) -> dict[str, Series]:
    """metric name -> {group label: (xs, ys)}; x is ``step`` (else the line number), groups from ``group_key``."""
    out: dict[str, Series] = defaultdict(dict)
    for index, record in enumerate(metrics):
        x = record.get("step")
        x = index if not isinstance(x, (int, float)) or isinstance(x, bool) else x
        group = str(record.get(group_key, "")) if group_key else ""
        for key, value in record.items():
            if key in SKIP_SERIES or key == group_key or isinstance(value, bool):
                continue
            if not isinstance(value, (int, float)):
                continue
            xs, ys = out[key].setdefault(group, ([], []))
            xs.append(x)
            ys.append(value)
    return dict(out)


def curve_figures(metrics: list[dict], *, group_key: str | None = None, xlabel: str = "step", titles=None):
    """A curve per metric that has two or more points; single points go to a table instead."""
    figures, single = [], []
    for name, groups in sorted(series_from(metrics, group_key).items()):
        long = {g or name: s for g, s in groups.items() if len(set(s[0])) >= 2}  # a curve needs 2+ x values
        if long:
            title = (titles or {}).get(name, name)
            labelled = [f"{g}/{name}" for g in groups if g and g in long]
            alt = f"{title}: " + ", ".join(labelled) if labelled else ""
            figures.append(curves(title, long, xlabel=xlabel, alt=alt))
        for g, (xs, ys) in groups.items():
            if len(set(xs)) < 2:
                single += [
                    [f"{g}/{name}" if g else name, fmt(x), fmt(y)] for x, y in zip(xs, ys, strict=True)
                ]
    return figures, (
        Table(["metric", xlabel, "value"], single, "logged at one step only (not a curve)")
        if single
        else None
    )


def facts_table(data: dict, keys: list[str] | None = None, caption: str = "") -> Table:
    keys = [k for k in (keys or list(data)) if k in data and not isinstance(data[k], (dict, list))]
    return Table(["", "value"], [[k.replace("_", " "), fmt(data[k])] for k in keys], caption)


def generic_tables(data: dict, title: str = "summary") -> list[Table]:
    """Scalars in one table; each nested dict its own table; a list of dicts as rows; no JSON blobs."""
    tables = [facts_table(data, caption=title)]
    for key, value in data.items():
        if isinstance(value, dict) and value:
            tables.extend(generic_tables(value, f"{title} › {key}"))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.append(records_table(value, f"{title} › {key}"))
        elif isinstance(value, list):
            tables[0].rows.append([key.replace("_", " "), ", ".join(fmt(v) for v in value)])
    return [t for t in tables if t.rows]


def records_table(records: list[dict], caption: str = "") -> Table:
    columns = list(dict.fromkeys(k for r in records for k, v in r.items() if not isinstance(v, (dict, list))))
    return Table(columns, [[fmt(r.get(c)) for c in columns] for r in records], caption)


# --- bake


def bake_sections(summary: dict | None, metrics: list[dict]) -> list[Section]:
    sections = []
    if summary:
        behaviour = summary.get("behaviour") or {}
        tables = behaviour if any(c in behaviour for c in CONDITIONS) else None
        per_layer = {"": behaviour} if tables else {k: v for k, v in behaviour.items() if isinstance(v, dict)}
        for name, table in per_layer.items():
            sections.append(_behaviour_section(name, table))
        if not behaviour:
            sections.append(Section("Before / after", notes=["not measured (--measure-n 0)"]))
        layers = summary.get("layers") or []
        section = Section("Layers", notes=[STRENGTH_NOTE])
        if layers:
            section.tables.append(_layers_table(layers))
        section.tables.append(
            facts_table(
                summary,
                ["model", "strength", "kl_unbaked", "kl_baked", "steps", "trajectory_tokens", "tokens_per_s"]
                + ["bake_seconds", "total_seconds"],
                "the last layer; tokens_per_s: trajectory tokens per second of the whole bake (end to end)",
            )
        )
        sections.append(section)
        if summary.get("pursuit"):
            sections.append(Section("Pursuit rounds", tables=[_pursuit_table(summary["pursuit"])]))
    figures, single = curve_figures(
        metrics,
        group_key="layer" if any("layer" in m for m in metrics) else None,
        titles={"tokens_per_s": "training tokens per second (per step)", "val_kl": "held-out KL"},
    )
    sections.append(Section("Training curves", figures=figures, tables=[single] if single else []))
    return sections


def _behaviour_section(name: str, table: dict) -> Section:
    behaviour, task = table.get("behaviour", "none"), table.get("task", "?")
    has_behaviour = any("behaviour" in table.get(c, {}) for c in CONDITIONS)
    columns = ["condition"] + ([f"behaviour ({behaviour})"] if has_behaviour else []) + [f"accuracy ({task})"]
    rows, groups = [], defaultdict(list)
    for condition in CONDITIONS:
        cell = table.get(condition)
        if not isinstance(cell, dict):
            continue
        label = condition.replace("_", " ")
        row = [label] + ([interval(cell.get("behaviour"))] if has_behaviour else [])
        rows.append(row + [interval(cell.get("accuracy"))])
        for measure, key in ((f"behaviour ({behaviour})", "behaviour"), (f"accuracy ({task})", "accuracy")):
            value = cell.get(key)
            if isinstance(value, dict) and "rate" in value:
                low, high = value.get("ci95", [None, None])
                groups[measure].append(Bar(label, value["rate"], low, high, value.get("n")))
    decoding = "greedy" if not table.get("temperature") else f"T={table['temperature']}"
    caption = f"frozen test split, {decoding}" + (
        f", levels {fmt(table['levels'])}" if table.get("levels") else ""
    )
    section = Section(f"Before / after{': ' + name if name else ''}", tables=[Table(columns, rows, caption)])
    paired = (table.get("baked_unprompted_vs_base_prompted") or {}).get("accuracy")
    if paired:
        section.notes.append(
            f"baked unprompted − base prompted accuracy: {paired['diff']:+.3f} "
            f"(paired on n={paired['n']} items, McNemar p={paired['p_value']:.3g})"
        )
    if groups:
        section.figures.append(grouped_interval_bars(f"before / after{': ' + name if name else ''}", groups))
    examples = [
        [c.replace("_", " "), str(table[c]["example"])[:240]]
        for c in CONDITIONS
        if table.get(c, {}).get("example")
    ]
    if examples:
        section.tables.append(
            Table(["condition", "first answer"], examples, "an example answer per condition")
        )
    return section


def _layers_table(layers: list[dict]) -> Table:
    columns = ["#", "name", "prompt", "strength", "KL unbaked", "KL baked", "steps", "NLL r²", "seconds"]
    rows = [
        [
            i,
            layer.get("name"),
            str(layer.get("prompt", ""))[:160],
            fmt(layer.get("strength")),
            fmt(layer.get("kl_unbaked")),
            fmt(layer.get("kl_baked")),
            fmt(layer.get("steps")),
            fmt((layer.get("nll_alignment") or {}).get("r2")),
            fmt(layer.get("seconds")),
        ]
        for i, layer in enumerate(layers, 1)
    ]
    return Table(columns, rows, "baked layers, in order (a sequence stacks them)")


def _pursuit_table(rounds: list[dict]) -> Table:
    rows = []
    for row in rounds:
        vs = row.get("vs_round_1") or {}
        rows.append(
            [
                row.get("round"),
                fmt(row.get("strength")),
                interval(row.get("behaviour")),
                interval(row.get("accuracy")),
                fmt((vs.get("behaviour") or {}).get("diff")),
                fmt((vs.get("accuracy") or {}).get("diff")),
            ]
        )
    columns = ["round", "strength", "behaviour", "accuracy", "Δ behaviour vs 1", "Δ accuracy vs 1"]
    return Table(columns, rows, "each round's adapter, unprompted, paired against round 1 (same items)")


# --- eval


def eval_sections(summary: dict | None, metrics: list[dict]) -> list[Section]:
    if not summary:
        return generic_sections(summary, metrics)
    tasks = summary.get("tasks") or {}
    condition = summary.get("system")
    rows, bars = [], []
    for name, result in tasks.items():
        low, high = (result.get("ci95") or [None, None])[:2]
        extra = {k: v for k, v in result.items() if k not in ("accuracy", "n", "ci95", "baseline")}
        rows.append(
            [
                name,
                result.get("n"),
                f"{result.get('accuracy', 0.0):.3f}",
                f"[{low:.3f}, {high:.3f}]" if low is not None else "—",
            ]
            + [fmt(result.get("baseline")), ", ".join(f"{k} {fmt(v)}" for k, v in extra.items())]
        )
        bars.append(Bar(name, result.get("accuracy", 0.0), low, high, result.get("n")))
    aggregate = summary.get("aggregate") or {}
    if aggregate:
        rows.append(["all (weighted)", aggregate.get("n"), f"{aggregate.get('accuracy', 0.0):.3f}", ""])
        rows[-1] += [fmt(aggregate.get("baseline")), ""]
    caption = f"split {summary.get('split')}, seed {summary.get('seed')}, system prompt: " + (
        repr(condition) if condition is not None else "none"
    )
    table = Table(["task", "n", "accuracy", "95% CI", "baseline", "other"], rows, caption)
    baselines = {r.get("baseline") for r in tasks.values()}
    baseline = baselines.pop() if len(baselines) == 1 else None
    figure = interval_bars(
        f"accuracy per task — {summary.get('model')}", bars, xlabel="accuracy", baseline=baseline
    )
    notes = ["95 % intervals are Wilson score intervals; the baseline is chance (or majority) accuracy."]
    if len(baselines) > 1 or baseline is None:
        notes.append("each task's baseline is in the table")
    run = facts_table(summary, ["model", "system", "split", "seed", "seconds"], "run")
    return [Section("Accuracy", tables=[table, run], figures=[figure] if bars else [], notes=notes)]


# --- iterate


def iterate_sections(summary: dict | None, metrics: list[dict]) -> list[Section]:
    sections = []
    if summary:
        keys = ["task", "n_test", "baseline_test_accuracy", "baseline_ci95", "best_iteration"]
        keys += ["best_test_accuracy", "best_ci95", "diff", "p_value", "best_adapter", "iterations_run"]
        tables = [
            facts_table({**summary, **_spans(summary)}, keys, "frozen test split: base vs best iteration")
        ]
        if isinstance(summary.get("hard"), dict):
            tables.append(
                facts_table(summary["hard"], caption="harder problems (out of the training levels)")
            )
        if summary.get("per_iteration"):
            tables.append(records_table(summary["per_iteration"], "accuracy per iteration"))
        sections.append(Section("Expert iteration", tables=tables))
    figures, single = curve_figures(metrics, group_key="split", xlabel="iteration")
    sections.append(Section("Per iteration", figures=figures, tables=[single] if single else []))
    return sections


def _spans(summary: dict) -> dict:
    return {k: fmt(v) for k, v in summary.items() if k.endswith("ci95") and isinstance(v, list)}


# --- forge, generate and any other run


def generic_sections(summary: dict | None, metrics: list[dict]) -> list[Section]:
    sections = []
    if summary:
        behaviour = summary.get("behaviour")
        rest = {k: v for k, v in summary.items() if k != "behaviour"}
        sections.append(Section("Summary", tables=generic_tables(rest)))
        if isinstance(behaviour, dict) and behaviour:
            sections.append(Section("Behaviour", tables=generic_tables(behaviour, "behaviour")))
    figures, single = curve_figures(
        metrics, group_key="split" if any("split" in m for m in metrics) else None
    )
    if figures or single:
        sections.append(Section("Metrics", figures=figures, tables=[single] if single else []))
    return sections


BUILDERS = {"bake": bake_sections, "eval": eval_sections, "iterate": iterate_sections}


def sections_for(command: str, summary: dict | None, metrics: list[dict]) -> list[Section]:
    return BUILDERS.get(command, generic_sections)(summary, metrics)
