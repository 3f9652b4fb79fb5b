"""What an evolve run leaves behind: lineage.jsonl, layers.json, the model card, summary.json's shape.

Why one module: the published recipe's output shape (``summary.json``:
success, model_path, performance, baked_layers, convergence, timing) is a
contract with its users; keeping it in one place keeps the names stable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfbake.tracking.rundir import atomic_write_text


def lineage(records: list[dict[str, Any]], kept_labels: set[str]) -> list[dict[str, Any]]:
    """One row per candidate ever proposed: text, cycle, proposer, parents, dev scores, racing, fate."""
    rows = []
    for rec in records:
        race, valid_index = rec["race"], 0
        for j, p in enumerate(rec["proposals"], 1):
            row = {
                "id": f"c{rec['cycle']}.{j}",
                "cycle": rec["cycle"],
                "kind": rec["kind"],
                "text": p["text"],
                "proposer": p["proposer"],
                "parents": p["parents"],
                "dropped": p["dropped"],
            }
            if not p["dropped"] and race is not None:
                entrant = race["entrants"][valid_index]
                winner = race["winner"] == valid_index
                row.update(
                    dev=entrant["dev"],
                    racing_rounds=entrant["rounds"],
                    dropped=entrant["dropped"],
                    winner=winner,
                    baked=winner and rec["bake"] is not None,
                    kept=winner and rec["decide"]["kept"],
                )
                valid_index += 1
            rows.append(row)
    return rows


def write_lineage(out: Path, rows: list[dict[str, Any]]) -> Path:
    return atomic_write_text(
        out / "lineage.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )


def write_layers(out: Path, layers: list[dict[str, Any]], base: str) -> None:
    """layers.json (the adapters in stacking order) and README.md, the model card."""
    listed = [
        {k: layer[k] for k in ("kind", "cycle", "prompt", "strength", "kl_unbaked", "kl_baked", "adapter")}
        for layer in layers
    ]
    atomic_write_text(out / "layers.json", json.dumps(listed, indent=2, ensure_ascii=False) + "\n")
    lines = [
        "---",
        "library_name: transformers",
        f"base_model: {base}",
        "tags: [selfbake, prompt-baking, evolve]",
        "---",
        "",
        "# Evolved model",
        "",
        "Made with `selfbake evolve`: prompts the model proposed, selected by racing on dev items and kept "
        "only when the baked layer beat the previous model on confirm items (paired test), each half-baked "
        "(Prompt Baking, Bhargava et al., arXiv 2409.13697) on top of the last. `model/` holds the merged "
        "weights; `adapters/` the LoRA layers, each relative to the model before it.",
        "",
        "| # | cycle | kind | strength | held-out KL (unbaked -> baked) | prompt |",
        "|---|---|---|---|---|---|",
    ]
    for i, layer in enumerate(layers, 1):
        lines.append(
            f"| {i} | {layer['cycle']} | {layer['kind']} | {layer['strength']:.3f} | "
            f"{layer['kl_unbaked']:.4f} -> {layer['kl_baked']:.4f} | {layer['prompt'][:160]} |"
        )
    if not layers:
        lines.append("| - | - | - | - | - | no layer was kept: the model is the base model |")
    atomic_write_text(out / "README.md", "\n".join(lines) + "\n")


def summary(
    *,
    model_path: Path,
    performance: dict[str, Any],
    layers: list[dict[str, Any]],
    records: list[dict[str, Any]],
    stopped: str,
    forgetting: dict[str, Any],
    timing: dict[str, float],
    metric_calls: dict[str, Any],
) -> dict[str, Any]:
    a = [r for r in records if r["kind"] == "tool"]
    b = [r for r in records if r["kind"] == "benchmark"]
    return {
        "command": "evolve",
        "success": True,
        "model_path": str(model_path),
        "performance": performance,
        "baked_layers": {
            "tool_prompts": [x["prompt"] for x in layers if x["kind"] == "tool"],
            "self_prompts": [x["prompt"] for x in layers if x["kind"] == "benchmark"],
            "order": [{"kind": x["kind"], "prompt": x["prompt"], "strength": x["strength"]} for x in layers],
        },
        "convergence": {
            "total_iterations": len(records),
            "a_cycles": len(a),
            "b_cycles": len(b),
            "final_a_plateau": bool(a and a[-1]["decide"]["plateau"]),
            "final_b_plateau": bool(b and b[-1]["decide"]["plateau"]),
            "stopped": stopped,
        },
        "timing": timing,
        "metric_calls": metric_calls,
        "forgetting": forgetting,
    }
