"""``selfbake evolve`` on the command line: run the loop, print the cycles and the frozen-test table."""

from __future__ import annotations

from rich.table import Table

from selfbake.evolve.config import EvolveConfig
from selfbake.evolve.engine import evolve
from selfbake.tracking.progress import make_console


def _cell(x: dict) -> str:
    return f"{x['score']:.3f} [{x['ci95'][0]:.3f}, {x['ci95'][1]:.3f}] n={x['n']}"


def run_evolve(config: EvolveConfig) -> dict:
    console = make_console()
    result = evolve(None, config, console=console)
    perf = result.summary["performance"]
    view = Table(title="frozen test split (seed 0), unprompted: base vs evolved")
    for column in ("suite", "base", "evolved", "change (paired)"):
        view.add_column(column)
    for label, name in (("tool_suite", "tool suite"), ("benchmark_avg", "benchmark suite (weighted)")):
        imp = perf[f"{label}_improvement"]
        view.add_row(
            name,
            _cell(perf[f"{label}_initial"]),
            _cell(perf[f"{label}_final"]),
            f"{imp['diff']:+.3f} [{imp['ci95'][0]:+.3f}, {imp['ci95'][1]:+.3f}] McNemar p={imp['p_value']:.3g}",
        )
    console.print(view)
    for family, row in result.summary["forgetting"].items():
        if isinstance(row, dict):
            ch = row["change"]
            console.print(
                f"forgetting {family}: {ch['diff']:+.3f} (n={ch['n']}, McNemar p={ch['p_value']:.3g})"
            )
    calls = result.summary["metric_calls"]
    console.print(
        f"layers kept: {len(result.layers)}; metric calls {calls['total']} (racing {calls['racing']} vs "
        f"{calls['full_evaluation_equivalent']} for full evaluation); run directory: {result.run_dir}",
        markup=False,
    )
    return result.summary
