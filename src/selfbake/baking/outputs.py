"""What a bake leaves in its run directory, and how to load it back.

``adapter/`` (PEFT; one ``layer_N_NAME/`` per prompt of a sequence) with ``layers.json``,
``merged/`` with ``--merge`` or a sequence, ``checkpoints/[layer_N/]{latest,best}``, and the
model card ``README.md``. ``load_baked`` reads them back: the base model with its adapters
stacked in order, or the merged model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfbake.baking.options import BakeConfig
from selfbake.baking.plan import slug
from selfbake.models import load, load_adapter_stack


class CheckpointSaver:
    """``checkpoints/[layer_N/]{latest,best}``: the adapter at the last and at the best validation."""

    def __init__(self, out: Path, prompts: list[str]):
        self.out = out
        self.layered = len(prompts) > 1
        self.layer_of = {prompt: i for i, prompt in enumerate(prompts, 1)}

    def __call__(self, model, *, prompt: str, step: int, val_kl: float, strength: float, best: bool) -> None:
        root = self.out / "checkpoints" / (f"layer_{self.layer_of[prompt]}" if self.layered else "")
        for name in ("latest", "best") if best else ("latest",):
            model.save_pretrained(root / name)
            (root / name / "checkpoint.json").write_text(
                json.dumps({"step": step, "val_kl": val_kl, "strength": strength}) + "\n"
            )


def write_layers(out: Path, layers: list[dict[str, Any]]) -> None:
    """``adapter/layers.json``: each baked layer's name, prompt, strength and adapter directory."""
    (out / "adapter").mkdir(exist_ok=True)
    (out / "adapter" / "layers.json").write_text(
        json.dumps(
            [
                {
                    "name": layer["name"],
                    "prompt": layer["prompt"],
                    "strength": layer["strength"],
                    "dir": "." if len(layers) == 1 else f"layer_{i}_{slug(layer['name'])}",
                }
                for i, layer in enumerate(layers, 1)
            ],
            indent=2,
        )
        + "\n"
    )


def write_card(out: Path, config: BakeConfig, layers: list[dict[str, Any]], base: str) -> Path:
    lines = [
        "---",
        "library_name: peft",
        f"base_model: {base}",
        "tags: [selfbake, prompt-baking]",
        "---",
        "",
        "# Baked adapter",
        "",
        "Made with `selfbake bake` (Prompt Baking, Bhargava et al., arXiv 2409.13697): the model with no "
        "system prompt behaves like the base model prompted with the layers below.",
        "",
        "## Layers, in the order they were baked",
        "",
        "| # | name | strength | held-out KL (unbaked -> baked) | prompt |",
        "|---|---|---|---|---|",
    ]
    for i, layer in enumerate(layers, 1):
        lines.append(
            f"| {i} | {layer['name']} | {layer['strength']:.3f} | {layer['kl_unbaked']:.4f} -> "
            f"{layer['kl_baked']:.4f} | {layer['prompt'][:120]} |"
        )
    lines += [
        "",
        "Strength = 1 - KL(teacher||baked) / KL(teacher||unbaked) on held-out trajectories.",
        "",
        "## Load",
        "",
        "```python",
        "from selfbake.baking import load_baked",
        f"model, tokenizer = load_baked('{out}')",
        "```",
        "",
        "Settings: "
        + json.dumps({k: v for k, v in config.model_dump(mode="json").items() if k not in ("list_presets",)}),
        "",
    ]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def load_baked(path: str | Path, *, merged: bool = False, dtype: str = "float32"):
    """(model, tokenizer) from a ``selfbake bake`` output: the base with its adapters stacked, or the merged model.

    The models layer reads the run (``models.load_adapter_stack``): the same adapter names (``default``, or
    ``layer_N`` for a sequence), the run's seed for a ``random:`` base, and a one-line ``WeightsError`` naming
    a corrupt file.
    """
    if merged:
        return load(str(Path(path) / "merged"), dtype=dtype)
    return load_adapter_stack(path, dtype=dtype)
