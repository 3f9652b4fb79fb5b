"""``selfbake bake``: bake a prompt (or a sequence) into a model, measure it, write adapter + card.

Prompt Baking (Bhargava et al., arXiv 2409.13697). The command resolves the
prompt (text, file or preset), samples x0 questions, bakes (half-bakes,
pursues), saves a PEFT adapter (and with ``--merge`` a merged model), measures
behaviour under the four conditions on the frozen test split, and prints the
before/after table. Everything lands in the run directory ``--out``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import Field, field_validator
from rich.table import Table

from selfbake.baking import measure, presets
from selfbake.baking.bake import (
    BakeResult,
    BakeSettings,
    bake,
    bake_sequence,
    check_adapter,
    load_adapter_state,
    merged_copy,
    pursue,
    with_adapter,
)
from selfbake.baking.resume import BakeState
from selfbake.baking.trajectories import load_questions
from selfbake.config import comma_list, resumable
from selfbake.errors import UserError
from selfbake.models import load
from selfbake.tracking import progress_bar
from selfbake.tracking.progress import make_console
from selfbake.tracking.rundir import open_run


class BakeConfig(BakeSettings):
    """Settings of ``selfbake bake``."""

    model: str = Field(
        "bundled", description="model: bundled (default), a directory, a hub id, random:llama-tiny"
    )
    prompt: str | None = Field(None, description="the prompt u to bake, as text")
    prompt_file: str | None = Field(
        None, description="a text file with u, or a preset name (see --list-presets)"
    )
    sequence: list[str] = Field(
        default_factory=list,
        description="bake these presets/files in order, each on top of the last",
        json_schema_extra={"nargs": "+"},
    )
    x0: str | None = Field(
        None, description="x0 questions: task:NAME[:LEVELS] or a JSONL file (default: the preset's task)"
    )
    behaviour: str | None = Field(
        None, description="behaviour to count: steps, tool_call, verify, marker:STYLE, regex:PATTERN, none"
    )
    keep_earlier: bool = Field(
        True,
        description="in a sequence, anchor earlier layers' behaviour on their x0 (KL to the merged model)",
    )
    pursue: int = Field(0, ge=0, description="pursuit rounds after the first bake (0 = plain bake)")
    merge: bool = Field(False, description="also write a merged model directory (out/merged)")
    measure_n: int = Field(
        300, ge=0, description="test items per condition in the before/after table (0 = skip)"
    )
    measure_temperature: float = Field(
        0.0, ge=0.0, description="decoding for the table: 0 = greedy; >0 = one seeded sample per item"
    )
    drift: bool = Field(False, description="also measure behaviour vs number of unrelated earlier turns")
    forgetting: list[str] = Field(
        default_factory=list,
        description="task families to re-score under their own prompts (e.g. rpn,bignum)",
    )
    list_presets: bool = Field(False, description="print the preset prompts and exit")

    @field_validator("forgetting", mode="before")
    @classmethod
    def _families(cls, value):
        return comma_list(value)

    batch_size: int = Field(64, gt=0, description="prompts per evaluation generation batch")
    dtype: str = Field("float32", description="float32 (CPU training), bfloat16 or float16")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    out: str | None = Field(None, description="run directory (default runs/bake-<time>)")
    overwrite: bool = Field(
        False, description="replace the run in --out (without it, an unfinished bake there is resumed)"
    )
    report_to: str = Field("none", description="experiment tracker: none, wandb, tensorboard, trackio")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "prompt"


def resolve_prompt(source: str) -> tuple[str, presets.Preset | None]:
    """(text, preset or None) from a preset name or a text file."""
    if presets.is_preset(source):
        try:
            preset = presets.get(source)
        except KeyError as exc:
            raise UserError(str(exc.args[0])) from None
        return preset.text, preset
    path = Path(source)
    if not path.is_file():
        raise UserError(f"prompt file '{source}' does not exist (and is not a preset; see --list-presets)")
    text = path.read_text().strip()
    if not text:
        raise UserError(f"prompt file '{source}' is empty")
    return text, None


class Plan:
    """What to bake and how to judge it, for one prompt."""

    def __init__(self, text: str, preset: presets.Preset | None, config: BakeConfig):
        self.text = text
        self.name = preset.name if preset else _slug(text)
        self.behaviour = config.behaviour or (preset.behaviour if preset else "none")
        default_task = preset.task if preset else "arithmetic"
        self.levels = preset.levels if preset else (2, 3)
        self.x0 = config.x0 or f"task:{default_task}:{','.join(map(str, self.levels))}"
        kind, value = (config.x0 or "task:").split(":", 1)[0], None
        self.task = default_task
        if config.x0 and kind == "task":
            value = config.x0.split(":")
            self.task = value[1]
            if len(value) > 2 and value[2]:
                self.levels = tuple(int(x) for x in value[2].split(","))
        self.tools = tuple(config.tools) or (preset.tools if preset else ())
        measure.detector(self.behaviour)  # fail early on a bad behaviour name

    def settings(self, config: BakeConfig) -> BakeSettings:
        fields = BakeSettings.model_fields
        return BakeSettings(**{k: getattr(config, k) for k in fields}).model_copy(
            update={"tools": list(self.tools)}
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


def _cell(x: dict | None) -> str:
    if not x:
        return "-"
    return f"{x['rate']:.3f} [{x['ci95'][0]:.3f}, {x['ci95'][1]:.3f}] n={x['n']}"


def behaviour_table(console, title: str, table: dict, result: BakeResult | None) -> None:
    view = Table(title=title)
    for column in ("condition", f"behaviour ({table['behaviour']})", f"accuracy ({table['task']})"):
        view.add_column(column)
    for condition in measure.CONDITIONS:
        if condition in table:
            view.add_row(
                condition.replace("_", " "),
                _cell(table[condition].get("behaviour")),
                _cell(table[condition]["accuracy"]),
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


def _measure_args(plan: Plan, config: BakeConfig) -> dict[str, Any]:
    return {
        "behaviour_name": plan.behaviour,
        "task": plan.task,
        "levels": plan.levels,
        "tools": plan.tools,
        "n": config.measure_n,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "temperature": config.measure_temperature,
    }


def _delta(d: dict | None) -> str:
    return f"{d['diff']:+.3f} (McNemar p={d['p_value']:.3g})" if d else "—"


def pursuit_table(console, rows: list[dict], results: list[BakeResult]) -> None:
    view = Table(title="pursuit: each round's adapter, unprompted, paired against round 1 (same items)")
    for column in ("round", "strength", "behaviour", "accuracy", "Δ behaviour vs 1", "Δ accuracy vs 1"):
        view.add_column(column)
    for row, result in zip(rows, results, strict=True):
        vs = row.get("vs_round_1", {})
        view.add_row(
            str(row["round"]),
            f"{result.strength:.3f}",
            _cell(row.get("behaviour")),
            _cell(row["accuracy"]),
            _delta(vs.get("behaviour")),
            _delta(vs.get("accuracy")),
        )
    console.print(view)


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


# settings that do not change what is baked: a killed run may be resumed with other values
RESUME_IGNORES = (
    "out", "overwrite", "device", "report_to", "list_presets",
    "measure_n", "measure_temperature", "drift", "forgetting", "batch_size",
)  # fmt: skip


def run_bake(config: BakeConfig) -> dict[str, Any]:
    console = make_console()
    if config.list_presets:
        print_presets(console)
        return {}
    sources = list(config.sequence)
    if sum(bool(x) for x in (config.prompt, config.prompt_file, sources)) != 1:
        raise UserError("give exactly one of --prompt TEXT, --prompt-file FILE|PRESET or --sequence A B ...")
    if config.prompt is not None and not config.prompt.strip():
        raise UserError("--prompt is empty")
    if sources and len(sources) < 2:
        raise UserError("--sequence needs at least two prompts")
    resolved = (
        [(config.prompt, None)]
        if config.prompt
        else [resolve_prompt(s) for s in sources or [config.prompt_file]]
    )
    try:
        plans = [Plan(text, preset, config) for text, preset in resolved]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for plan in plans:
        load_questions(plan.x0, 1, config.seed)  # validate the x0 spec before loading the model
    for flag, families in (("--forgetting", config.forgetting), ("--retain", config.retain)):
        unknown = [f for f in families if f not in measure.FORGETTING_FAMILIES]
        if unknown:
            raise UserError(
                f"{flag}: unknown family '{unknown[0]}' (choose from {', '.join(measure.FORGETTING_FAMILIES)})"
            )
    if sources and config.pursue:
        raise UserError("--pursue applies to a single prompt, not to --sequence")
    resuming = bool(config.out) and resumable(config, Path(config.out), "bake", RESUME_IGNORES)
    run = open_run("bake", config, config.out, overwrite=config.overwrite, report_to=config.report_to)
    state = BakeState(run.path / "state", run.path / "metrics.jsonl")
    if resuming:
        console.print(f"resuming the unfinished bake in {run.path} (finished work is kept)", markup=False)
    else:
        console.print(f"run directory: {run.path} (if killed, run again with --out {run.path})", markup=False)
    started = time.perf_counter()
    model, tokenizer = load(config.model, dtype=config.dtype, device=config.device, seed=config.seed)
    model = with_adapter(model, plans[0].settings(config))  # a bad --target-modules fails before sampling
    check_adapter(model, plans[0].settings(config))
    out = run.path
    summary: dict[str, Any] = {"command": "bake", "model": config.model}
    rounds = max(1, config.pursue + 1)

    def steps_estimate(s: BakeSettings) -> int:
        return s.max_epochs * -(-s.n_train // s.train_batch_size)

    total = sum(steps_estimate(p.settings(config)) for p in plans) * rounds
    layer_of = {p.text: i for i, p in enumerate(plans, 1)}

    def save_checkpoint(model, *, prompt: str, step: int, val_kl: float, strength: float, best: bool) -> None:
        """checkpoints/[layer_N/]{latest,best}: the adapter at the last and at the best validation."""
        root = out / "checkpoints" / (f"layer_{layer_of[prompt]}" if len(plans) > 1 else "")
        for name in ("latest", "best") if best else ("latest",):
            model.save_pretrained(root / name)
            (root / name / "checkpoint.json").write_text(
                json.dumps({"step": step, "val_kl": val_kl, "strength": strength}) + "\n"
            )

    with progress_bar(total, "baking") as advance:
        if len(plans) == 1:
            plan = plans[0]
            settings = plan.settings(config)
            questions = load_questions(plan.x0, settings.n_train + settings.n_val, config.seed, plan.levels)
            if config.pursue:
                results = pursue(
                    model,
                    tokenizer,
                    plan.text,
                    questions,
                    settings,
                    rounds=rounds,
                    state=state,
                    log=run.log,
                    advance=advance,
                    checkpoint=save_checkpoint,
                )
            else:
                results = [
                    bake(
                        model,
                        tokenizer,
                        plan.text,
                        questions,
                        settings,
                        state=state.unit("bake"),
                        log=run.log,
                        advance=advance,
                        checkpoint=save_checkpoint,
                    )
                ]
            baked_model = results[-1].model
            baked_model.save_pretrained(out / "adapter")
            tokenizer.save_pretrained(out / "adapter")
            layer_results = [results[-1]]
            final = baked_model
            base = baked_model  # the PeftModel: adapter off = base
        else:
            plain_base, _ = load(config.model, dtype=config.dtype, device=config.device, seed=config.seed)
            qs = [
                load_questions(
                    p.x0, p.settings(config).n_train + p.settings(config).n_val, config.seed, p.levels
                )
                for p in plans
            ]
            final, layer_results = bake_sequence(
                model,
                tokenizer,
                [p.text for p in plans],
                qs,
                [p.settings(config) for p in plans],
                keep_earlier=config.keep_earlier,
                state=state,
                log=run.log,
                advance=advance,
                checkpoint=save_checkpoint,
            )
            for i, (plan, result) in enumerate(zip(plans, layer_results, strict=True), 1):
                result.model.save_pretrained(out / "adapter" / f"layer_{i}_{_slug(plan.name)}")
            tokenizer.save_pretrained(out / "adapter")
            results = layer_results
            base = plain_base
    layers = [
        {"name": p.name, "prompt": p.text, **r.summary()} for p, r in zip(plans, layer_results, strict=True)
    ]
    (out / "adapter").mkdir(exist_ok=True)
    (out / "adapter" / "layers.json").write_text(
        json.dumps(
            [
                {
                    "name": layer["name"],
                    "prompt": layer["prompt"],
                    "strength": layer["strength"],
                    "dir": "." if len(plans) == 1 else f"layer_{i}_{_slug(layer['name'])}",
                }
                for i, layer in enumerate(layers, 1)
            ],
            indent=2,
        )
        + "\n"
    )
    if config.merge or len(plans) > 1:
        merged = final if len(plans) > 1 else merged_copy(final)
        merged.save_pretrained(out / "merged")
        tokenizer.save_pretrained(out / "merged")
    run.write_samples(
        [
            {"x0": t.x0, "continuation": t.continuation, "finish_reason": t.finish_reason}
            for r in results
            for t in r.train
        ],
        "trajectories.jsonl",
    )
    summary["layers"] = layers
    if config.pursue:
        summary["rounds"] = [r.summary() for r in results]
    last = layer_results[-1]
    summary.update({k: v for k, v in last.summary().items() if k != "prompt"})
    summary["seconds"] = round(sum(r.seconds for r in results), 2)
    summary["bake_seconds"] = summary["seconds"]
    summary["trajectory_tokens"] = sum(r.trajectory_tokens for r in results)
    summary["tokens_per_s"] = round(summary["trajectory_tokens"] / summary["seconds"], 1)
    console.print(f"baked in {summary['seconds']:.1f} s; adapter: {out / 'adapter'}")
    behaviours = {}
    if config.measure_n:
        for plan, result in zip(plans, layer_results, strict=True):
            table = measure.behaviour(base, final, tokenizer, plan.text, **_measure_args(plan, config))
            table.pop("_flags")
            behaviours[plan.name] = table
            behaviour_table(
                console,
                f"{plan.name}: before / after (frozen test split, seed {config.seed}, "
                f"{'greedy' if not config.measure_temperature else f'T={config.measure_temperature}'})",
                table,
                result,
            )
    summary["behaviour"] = behaviours if len(plans) > 1 else next(iter(behaviours.values()), {})
    if config.pursue and config.measure_n:
        plan = plans[0]
        summary["pursuit"] = measure.rounds(
            final,
            tokenizer,
            plan.text,
            [r.adapter_state for r in results],
            load_adapter_state,
            **_measure_args(plan, config),
        )
        pursuit_table(console, summary["pursuit"], results)
    if config.drift:
        plan = plans[-1]
        rows = measure.drift(
            base,
            final,
            tokenizer,
            plan.text,
            behaviour_name=plan.behaviour,
            task=plan.task,
            levels=plan.levels,
            n=min(config.measure_n or 100, 100),
            seed=config.seed,
            batch_size=config.batch_size,
        )
        summary["drift"] = rows
        view = Table(title=f"drift: {plan.behaviour} rate vs unrelated turns before the question")
        for column in ("turns", "base prompted", "baked unprompted"):
            view.add_column(column)
        for row in rows:
            view.add_row(str(row["turns"]), _cell(row["base_prompted"]), _cell(row["baked_unprompted"]))
        console.print(view)
    if config.forgetting:
        result = measure.forgetting(
            base,
            final,
            tokenizer,
            config.forgetting,
            n=config.measure_n or 300,
            seed=config.seed,
            batch_size=config.batch_size,
        )
        summary["forgetting"] = result
        view = Table(title="forgetting: other families under their own prompts")
        for column in ("family", "prompt", "before", "after", "change (paired)"):
            view.add_column(column)
        for family, row in result.items():
            ch = row["change"]
            view.add_row(
                family,
                row["prompt"] or "(none)",
                _cell(row["before"]),
                _cell(row["after"]),
                _delta(ch),
            )
        console.print(view)
    write_card(out, config, layers, config.model)
    summary["total_seconds"] = round(time.perf_counter() - started, 2)
    run.finish(summary)
    shutil.rmtree(state.root, ignore_errors=True)  # only a killed run needs it
    console.print(f"run directory: {out}")
    return summary


def load_baked(path: str | Path, *, merged: bool = False, dtype: str = "float32"):
    """(model, tokenizer) from a ``selfbake bake`` output: the base with its adapters stacked, or the merged model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if merged:
        model = AutoModelForCausalLM.from_pretrained(path / "merged", dtype=getattr(torch, dtype))
        return model, AutoTokenizer.from_pretrained(path / "merged")
    layers = json.loads((path / "adapter" / "layers.json").read_text())
    base, tokenizer = load(_base_spec(path), dtype=dtype)
    if len(layers) == 1:
        return PeftModel.from_pretrained(base, path / "adapter"), tokenizer
    model = None
    names = []
    for i, layer in enumerate(layers, 1):
        name = f"layer_{i}"
        names.append(name)
        if model is None:
            model = PeftModel.from_pretrained(base, path / "adapter" / layer["dir"], adapter_name=name)
        else:
            model.load_adapter(path / "adapter" / layer["dir"], adapter_name=name)
    model.base_model.set_adapter(names)
    return model, tokenizer


def _base_spec(path: Path) -> str:
    return yaml.safe_load((path / "config.yaml").read_text())["model"]
