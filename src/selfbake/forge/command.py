"""``selfbake forge``: train, save an ordinary Hugging Face directory, measure, write the model card."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from selfbake.forge.train import ForgeConfig, total_steps, train
from selfbake.models import save
from selfbake.tracking import RunDir, progress_bar
from selfbake.tracking.progress import make_console


def run_forge(config: ForgeConfig) -> Path:
    console = make_console()
    out = Path(config.out)
    run = RunDir(out / "forge-run", overwrite=True)
    run.write_config(config.model_dump(mode="json"))
    total = total_steps(config)
    with progress_bar(total, "forging") as advance:
        model, tokenizer, stats = train(config, log=run.log, advance=advance)
    stats.update(torch=torch.__version__, machine=f"{platform.machine()}, {torch.get_num_threads()} threads")
    model.to(torch.float16 if not config.quick else torch.float32)
    save(model, tokenizer, out)
    model.float()
    (out / "forge_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    table = None
    if config.measure:
        from selfbake.forge.behaviour import measure, write_card

        # the frozen test split (seed 0, kept out of every curriculum), whatever the forge seed
        table = measure(model, tokenizer, n=config.measure_n, seed=0, console=console)
        write_card(out, config, stats, table)
    else:
        from selfbake.forge.behaviour import write_card

        write_card(out, config, stats, None)
    (out / "forge_state.pt").unlink(missing_ok=True)
    run.finish({"command": "forge", **stats, "behaviour": table})
    console.print(
        f"model directory: {out}  ({stats['parameters'] / 1e6:.2f}M parameters, {stats['steps']} steps, {stats['train_seconds']:.0f} s)"
    )
    return out
