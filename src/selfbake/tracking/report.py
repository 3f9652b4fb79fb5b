"""``selfbake report RUN_DIR``: one self-contained HTML page for a run.

The page holds the summary as a table, the resolved config, and a matplotlib
plot (embedded as base64 PNG) of every numeric series in metrics.jsonl, with
``step`` (or the line number) on the x axis; lines tagged with a ``split``
(expert iteration's dev/test/hard per iteration) give one series per split. No network, no external assets.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from selfbake.errors import UserError
from selfbake.tracking.rundir import atomic_write_text

SKIP_SERIES = {"step", "time"}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    records = []
    if not path.exists():
        return records
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise UserError(f"{path}: line {number} is not valid JSON") from None
    return records


def numeric_series(records: list[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    series: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for index, record in enumerate(records):
        x = record.get("step")
        x = index if not isinstance(x, (int, float)) else x
        split = record.get("split")  # lines of several splits (dev, test) make one series each
        prefix = f"{split}/" if isinstance(split, str) else ""
        for key, value in record.items():
            if key in SKIP_SERIES or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            xs, ys = series[prefix + key]
            xs.append(x)
            ys.append(value)
    return dict(series)


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def plot_png(name: str, xs: list[float], ys: list[float]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(4.8, 3.0), dpi=110)
    ax.plot(xs, ys, marker="o" if len(xs) < 40 else None, linewidth=1.5)
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=all(float(x).is_integer() for x in xs)))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}</td></tr>"
        for k, v in rows
    )
    return f"<table>{body}</table>"


def write_report(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    summary_path = run_dir / "summary.json"
    metrics = read_metrics(run_dir / "metrics.jsonl")
    if not summary_path.exists() and not metrics:
        raise UserError(f"{run_dir} is not a selfbake run directory (no summary.json or metrics.jsonl)")
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    except json.JSONDecodeError:
        raise UserError(f"{summary_path} is not valid JSON") from None
    config_path = run_dir / "config.yaml"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>selfbake report: {html.escape(run_dir.name)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin-bottom:1.5em}th,td{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left;font-size:14px}th{background:#f4f4f4}img{margin:6px;border:1px solid #eee}"
        "pre{background:#f8f8f8;padding:1em;overflow:auto}",
        "</style></head><body>",
        f"<h1>{html.escape(run_dir.name)}</h1>",
        "<h2>Summary</h2>",
        _table(flatten(summary)) if summary is not None else "<p><b>Unfinished run:</b> no summary.json.</p>",
    ]
    series = numeric_series(metrics)
    parts.append(f"<h2>Metrics ({len(metrics)} records, {len(series)} series)</h2>")
    for name, (xs, ys) in sorted(series.items()):
        parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{plot_png(name, xs, ys)}'>")
    if config_path.exists():
        parts.append(f"<h2>Config</h2><pre>{html.escape(config_path.read_text())}</pre>")
    parts.append("</body></html>")
    return atomic_write_text(run_dir / "report.html", "\n".join(parts))
