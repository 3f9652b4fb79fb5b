"""The tables ``selfbake bake`` prints: presets, before/after behaviour, pursuit, drift, forgetting.

Each cell is a rate with its 95 % Wilson interval and n; paired differences carry their exact
McNemar p. Under the before/after table one line says what its terms mean and points to the
concept page, so a reader need not guess what "strength" or "held-out KL" measure.
"""

from __future__ import annotations

from rich.table import Table

from selfbake.baking import measure, presets
from selfbake.baking.result import BakeResult

CONCEPT_PAGE = "docs/concepts/strength.md"

TERMS = (
    "held-out KL: per-token KL(prompted model || baked) on trajectories not trained on; strength = 1 - held-out "
    "KL / the unbaked model's; NLL alignment r^2: how well per-trajectory NLLs track the prompted model's; "
    f"re-prompted: the baked model given the prompt again. See {CONCEPT_PAGE}"
)


def print_presets(console) -> None:
    table = Table(title="bake presets (--prompt-file NAME)")
    for column in ("name", "behaviour", "x0 task", "tools", "prompt"):
        table.add_column(column, overflow="fold")
    for p in presets.PRESETS.values():
        table.add_row(
            p.name,
            p.behaviour,
            f"{p.task}:{','.join(map(str, p.levels))}",
            ",".join(p.tools) or "-",
            p.text if len(p.text) < 90 else p.text[:87] + "...",
        )
    console.print(table)


def cell(x: dict | None) -> str:
    if not x:
        return "-"
    return f"{x['rate']:.3f} [{x['ci95'][0]:.3f}, {x['ci95'][1]:.3f}] n={x['n']}"


def delta(d: dict | None) -> str:
    return f"{d['diff']:+.3f} (McNemar p={d['p_value']:.3g})" if d else "—"


def behaviour_table(console, title: str, table: dict, result: BakeResult | None) -> None:
    view = Table(title=title)
    for column in ("condition", f"behaviour ({table['behaviour']})", f"accuracy ({table['task']})"):
        view.add_column(column)
    for condition in measure.CONDITIONS:
        if condition in table:
            view.add_row(
                condition.replace("_", " "),
                cell(table[condition].get("behaviour")),
                cell(table[condition]["accuracy"]),
            )
    console.print(view)
    cmp = table.get("baked_unprompted_vs_base_prompted")
    if cmp:
        acc = cmp["accuracy"]
        console.print(
            f"baked unprompted - base prompted accuracy: {acc['diff']:+.3f} "
            f"(paired on n={acc['n']} items, McNemar p={acc['p_value']:.3g})"
        )
    if result is not None:
        console.print(
            f"strength {result.strength:.3f} (held-out KL {result.kl_baked:.4f} vs unbaked "
            f"{result.kl_unbaked:.4f}, n={result.nll.get('n')} trajectories); NLL alignment "
            f"r^2={result.nll.get('r2')}"
        )


def explain_terms(console) -> None:
    console.print(TERMS, style="dim", markup=False)


def pursuit_table(console, rows: list[dict], results: list[BakeResult]) -> None:
    view = Table(title="pursuit: each round's adapter, unprompted, paired against round 1 (same items)")
    for column in ("round", "strength", "behaviour", "accuracy", "Δ behaviour vs 1", "Δ accuracy vs 1"):
        view.add_column(column)
    for row, result in zip(rows, results, strict=True):
        vs = row.get("vs_round_1", {})
        view.add_row(
            str(row["round"]),
            f"{result.strength:.3f}",
            cell(row.get("behaviour")),
            cell(row["accuracy"]),
            delta(vs.get("behaviour")),
            delta(vs.get("accuracy")),
        )
    console.print(view)


def drift_table(console, behaviour: str, rows: list[dict]) -> None:
    view = Table(title=f"drift: {behaviour} rate vs unrelated turns before the question")
    for column in ("turns", "base prompted", "baked unprompted"):
        view.add_column(column)
    for row in rows:
        view.add_row(str(row["turns"]), cell(row["base_prompted"]), cell(row["baked_unprompted"]))
    console.print(view)


def forgetting_table(console, result: dict) -> None:
    view = Table(title="forgetting: other families under their own prompts")
    for column in ("family", "prompt", "before", "after", "change (paired)"):
        view.add_column(column)
    for family, row in result.items():
        view.add_row(
            family, row["prompt"] or "(none)", cell(row["before"]), cell(row["after"]), delta(row["change"])
        )
    console.print(view)
