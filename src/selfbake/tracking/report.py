"""``selfbake report RUN_DIR``: one self-contained HTML page for a run, shaped by the command that wrote it.

A bake's page shows the before/after table the terminal prints, its layers and
its training curves; an eval's shows accuracy per task as bars with 95 %
intervals; an iteration's, accuracy per iteration as curves
(``report_sections`` decides, per command). Figures are matplotlib PNGs
embedded as base64 and the page is rendered by a jinja2 template with
autoescaping: no network, no external assets, nothing to run in the browser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from selfbake.errors import UserError
from selfbake.tracking.report_sections import infer_command, sections_for
from selfbake.tracking.rundir import atomic_write_text

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>selfbake {{ command }} report: {{ name }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0 1.4em}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:left;font-size:14px;vertical-align:top}thead th{background:#f4f4f4}caption{text-align:left;
color:#555;font-size:13px;padding-bottom:4px;caption-side:top}
figure{display:inline-block;margin:6px}figure img{border:1px solid #eee;max-width:100%}
.note{color:#444;font-size:14px}pre{background:#f8f8f8;padding:1em;overflow:auto;font-size:13px}
</style></head><body>
<h1>{{ name }}</h1>
<p class="sub">selfbake {{ command }}{% if not finished %} — <b>unfinished run</b> (no summary.json){% endif %}</p>
{% for section in sections %}
<section><h2>{{ section.title }}</h2>
{% for table in section.tables %}
<table>{% if table.caption %}<caption>{{ table.caption }}</caption>{% endif %}
<thead><tr>{% for column in table.columns %}<th>{{ column }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in table.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>
{% endfor %}
{% for note in section.notes %}<p class="note">{{ note }}</p>{% endfor %}
{% for figure in section.figures %}<figure><img class="plot" alt="{{ figure.alt }}"
 src="data:image/png;base64,{{ figure.png }}"></figure>{% endfor %}
</section>
{% endfor %}
{% if config %}<section><h2>Config</h2><pre>{{ config }}</pre></section>{% endif %}
</body></html>
"""


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
    if summary is not None and not isinstance(summary, dict):
        raise UserError(f"{summary_path} is not a JSON object")
    command = infer_command(summary, metrics)
    config_path = run_dir / "config.yaml"
    page = (
        jinja2.Environment(autoescape=True)
        .from_string(TEMPLATE)
        .render(
            name=run_dir.resolve().name,
            command=command,
            finished=summary is not None,
            sections=sections_for(command, summary, metrics),
            config=config_path.read_text() if config_path.exists() else "",
        )
    )
    return atomic_write_text(run_dir / "report.html", page)
