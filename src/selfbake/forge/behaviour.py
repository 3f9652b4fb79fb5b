"""The bundled model's behaviour table: does each instruction do what the curriculum taught?

Every cell is measured on the frozen test split (seed 0) with its n and 95 %
Wilson interval; prompted-vs-unprompted differences are paired (same items)
with an exact McNemar p. ``python -m selfbake.forge.behaviour --model bundled``
prints the table; ``selfbake forge`` writes it into the model card.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from selfbake import tasks
from selfbake.generation import SamplingParams, TransformersBackend
from selfbake.models import render_chat
from selfbake.scoring import score
from selfbake.tasks import language
from selfbake.tasks.stats import paired_summary, rate_summary

REASONING_PROMPT = language.REASONING[0]
HELD_OUT_REASONING = language.HELD_OUT["reasoning"][0]
TOOL_PROMPT = language.TOOLS[0]
GREETING_PROMPT = language.STYLES["greeting"][0][0]


def measure(
    model, tokenizer, *, n: int = 300, seed: int = 0, console: Console | None = None, batch_size: int = 64
) -> dict:
    arithmetic = tasks.test_items(tasks.get("arithmetic"), n, seed, (2, 3))  # 3-4 operands
    bignum = tasks.test_items(tasks.get("bignum"), n, seed, (1, 2))
    arith_task, bignum_task = tasks.get("arithmetic"), tasks.get("bignum")

    def run(task, items, system=None, tools=None):
        return score(
            model, tokenizer, task, items, system=system, tools=tools, batch_size=batch_size, seed=seed
        )

    table: dict[str, Any] = {}
    quarter = n // 4
    outputs = []  # unprompted answers across families, n in all
    for name, count in (
        ("rpn", quarter),
        ("brackets", quarter),
        ("bignum", quarter),
        ("arithmetic", n - 3 * quarter),
    ):
        items = tasks.test_items(tasks.get(name), count, seed, (1, 2) if name == "bignum" else (2, 3))
        outputs += [r["output"] for r in run(tasks.get(name), items).records]
    table["unprompted_direct"] = {**rate_summary([language.is_direct(o) for o in outputs]), "bar": ">= 0.95"}

    none = run(arith_task, arithmetic)
    reasoned = run(arith_task, arithmetic, system=REASONING_PROMPT)
    held_out = run(arith_task, arithmetic, system=HELD_OUT_REASONING)
    a_none = [bool(r["correct"]) for r in none.records]
    a_reason = [bool(r["correct"]) for r in reasoned.records]
    a_held = [bool(r["correct"]) for r in held_out.records]
    table["arithmetic_3_4_operands"] = {
        "none": rate_summary(a_none),
        "reasoning": {
            **rate_summary(a_reason),
            "prompt": REASONING_PROMPT,
            "steps_rate": rate_summary([language.has_steps(r["output"]) for r in reasoned.records])["rate"],
        },
        "reasoning_vs_none": {**paired_summary(a_none, a_reason), "bar": ">= +0.25"},
        "held_out": {
            **rate_summary(a_held),
            "prompt": HELD_OUT_REASONING,
            "steps_rate": rate_summary([language.has_steps(r["output"]) for r in held_out.records])["rate"],
        },
        "held_out_vs_none": {**paired_summary(a_none, a_held), "bar": ">= +0.10"},
    }

    tool_items = arithmetic[: n // 2] + bignum[: n - n // 2]
    tool_runs = run(arith_task, tool_items[: n // 2], system=TOOL_PROMPT, tools=["calculator"]).records
    tool_runs += run(bignum_task, tool_items[n // 2 :], system=TOOL_PROMPT, tools=["calculator"]).records
    table["tool_prompt_calls_calculator"] = {
        **rate_summary([any(c["name"] == "calculator" for c in r["tool_calls"]) for r in tool_runs]),
        "prompt": TOOL_PROMPT,
        "bar": ">= 0.90",
    }
    big_none = run(bignum_task, bignum)
    big_tool = run(bignum_task, bignum, system=TOOL_PROMPT, tools=["calculator"])
    table["bignum"] = {
        "none": {**rate_summary([bool(r["correct"]) for r in big_none.records]), "bar": "<= 0.30"},
        "tool_prompt": {**rate_summary([bool(r["correct"]) for r in big_tool.records]), "bar": ">= 0.90"},
    }

    greeted = run(arith_task, arithmetic, system=GREETING_PROMPT)
    table["style_greeting"] = {
        "prompted": {
            **rate_summary([language.has_marker("greeting", r["output"]) for r in greeted.records]),
            "prompt": GREETING_PROMPT,
            "bar": ">= 0.95",
        },
        "unprompted": {
            **rate_summary([language.has_marker("greeting", r["output"]) for r in none.records]),
            "bar": "<= 0.02",
        },
    }

    backend = TransformersBackend(model, tokenizer, batch_size=batch_size)
    asks = [language.SELF_DESCRIBE[i % len(language.SELF_DESCRIBE)] for i in range(n)]
    samples = backend.generate(
        [render_chat(tokenizer, q) for q in asks],
        SamplingParams(temperature=0.7, max_new_tokens=96, seed=seed),
    )
    parsed = [language.parse_instructions(s.text) for s in samples]
    kinds: dict[str, int] = {}
    for p in parsed:
        for kind in p or []:
            kinds[kind] = kinds.get(kind, 0) + 1
    table["self_description"] = {
        **rate_summary([p is not None for p in parsed]),
        "kinds": kinds,
        "temperature": 0.7,
        "bar": ">= 0.80",
    }
    if console is not None:
        print_table(console, table)
    return table


def rows(table: dict) -> list[tuple[str, str, str, str]]:
    """(behaviour, measured, 95% CI / p, bar) rows for printing and the model card."""

    def cell(x):
        return f"{x['rate']:.3f} (n={x['n']})", f"[{x['ci95'][0]:.3f}, {x['ci95'][1]:.3f}]"

    a = table["arithmetic_3_4_operands"]
    out = [
        (
            "unprompted: direct answers (no steps, calls, markers)",
            *cell(table["unprompted_direct"]),
            ">= 0.95",
        ),
        ("3-4 operand arithmetic, no prompt: accuracy", *cell(a["none"]), ""),
        (f"3-4 operand arithmetic, '{REASONING_PROMPT}': accuracy", *cell(a["reasoning"]), ""),
        (
            "  reasoning - none (paired)",
            f"{a['reasoning_vs_none']['diff']:+.3f}",
            f"McNemar p={a['reasoning_vs_none']['p_value']:.2g}",
            ">= +0.25",
        ),
        (f"3-4 operand arithmetic, held-out '{HELD_OUT_REASONING}'", *cell(a["held_out"]), ""),
        (
            "  held-out paraphrase - none (paired)",
            f"{a['held_out_vs_none']['diff']:+.3f}",
            f"McNemar p={a['held_out_vs_none']['p_value']:.2g}",
            ">= +0.10",
        ),
        ("tool prompt: calculator called", *cell(table["tool_prompt_calls_calculator"]), ">= 0.90"),
        ("bignum, no prompt: accuracy", *cell(table["bignum"]["none"]), "<= 0.30"),
        ("bignum, tool prompt: accuracy", *cell(table["bignum"]["tool_prompt"]), ">= 0.90"),
        ("greeting marker when prompted", *cell(table["style_greeting"]["prompted"]), ">= 0.95"),
        ("greeting marker when not prompted", *cell(table["style_greeting"]["unprompted"]), "<= 0.02"),
        ("self-description parses as instructions", *cell(table["self_description"]), ">= 0.80"),
    ]
    return out


def met(measured: str, bar: str) -> str:
    """'yes' / 'NO' for a row with a bar such as '>= 0.95' or '>= +0.25'; '' without one."""
    if not bar:
        return ""
    value = float(measured.split()[0])
    op, threshold = bar.split()
    ok = value >= float(threshold) if op == ">=" else value <= float(threshold)
    return "yes" if ok else "NO"


def print_table(console: Console, table: dict) -> None:
    view = Table(title="bundled model behaviour (frozen test split, seed 0)")
    for column in ("behaviour", "measured", "95% CI / test", "bar", "met"):
        view.add_column(column)
    for row in rows(table):
        view.add_row(*row, met(row[1], row[3]))
    console.print(view)


def markdown_table(table: dict) -> str:
    lines = ["| behaviour | measured | 95% CI / paired test | bar | met |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {met(b, d)} |" for a, b, c, d in rows(table)]
    return "\n".join(lines)


def step_shape(config) -> str:
    if config.batching == "packed":
        return f"{config.batch_size} x 512 packed tokens"
    return (
        f">= {config.batch_size * 512} tokens, one conversation per row in micro-batches of similar lengths"
        f" (<= {config.micro_tokens} padded tokens each)"
    )


def reproduce_command(config) -> str:
    """``selfbake forge`` with the flags whose values differ from the defaults (the recipe)."""
    from selfbake.forge.train import total_steps

    command = f"selfbake forge --out DIR --seed {config.seed}"
    defaults = type(config)(out=config.out, quick=config.quick)
    if config.quick:
        command += " --quick"
    if total_steps(config) != total_steps(defaults):
        command += f" --steps {total_steps(config)}"
    if config.mix:
        command += f" --mix '{config.mix}'"
    for name in (
        "batch_size",
        "batching",
        "paraphrases",
        "bignum_rounds",
        "elementary_steps",
        "micro_tokens",
        "lr",
        "warmup",
        "shape",
    ):
        value = getattr(config, name)
        if value != getattr(defaults, name):
            flag = "--" + name.replace("_", "-")
            command += f" {flag} {value}"
    return command


def write_card(out: Path, config, stats: dict, table: dict | None) -> Path:
    from selfbake.forge import curriculum

    mix = ", ".join(f"{kind} {weight:.0%}" for kind, weight in curriculum.MIX)
    body = f"""---
library_name: transformers
tags: [selfbake, tiny, synthetic]
---
# selfbake bundled model

A {stats["parameters"] / 1e6:.2f}M-parameter LlamaForCausalLM trained from scratch by `selfbake forge`
(seed {config.seed}, {stats["steps"]} steps of {step_shape(config)}, {stats["train_tokens"]:,} tokens,
{stats["train_seconds"]:.0f} s on {stats.get("machine", "CPU")}, torch {stats.get("torch", "")}). Byte-level tokenizer
(256 bytes + 4 specials) with a ChatML chat template for system / user / assistant / tool turns.

Reproduce: `{reproduce_command(config)}` (the budget only caps wall time; the recipe is the step count).

## Curriculum

Synthetic chats generated on the fly (`selfbake/forge/curriculum.py`), mix: {mix}. Task families from
`selfbake.tasks` (arithmetic 2-5 operands, rpn, brackets, bignum, lookup, fileread) at graded difficulty. The
system turn speaks the instruction language of `selfbake/tasks/language.py`: reasoning (write each intermediate
result), tool use (`<call>tool: argument</call>`, then read the tool turn), verification (a `Check:` line),
style markers (a greeting, a sign-off), and combinations. With no system prompt the model answers directly
(`Answer: X`). Asked to describe itself it answers with instruction sentences. Held-out paraphrases
({", ".join(repr(v[0]) for v in language.HELD_OUT.values())}) and the frozen test items (seed 0) never appear.

## Behaviour

"""
    if table is None:
        body += "Not measured in this run (`--no-measure`).\n"
    else:
        body += (
            markdown_table(table)
            + "\n\nMeasured with `python -m selfbake.forge.behaviour --model DIR --n 300`.\n"
        )
        (out / "behaviour.json").write_text(json.dumps(table, indent=2) + "\n")
    path = out / "README.md"
    path.write_text(body)
    return path


def main() -> None:
    from selfbake.models import load

    parser = argparse.ArgumentParser(description="Measure the bundled model's behaviour table.")
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the table to this file")
    args = parser.parse_args()
    model, tokenizer = load(args.model, device="cpu", dtype="float32")
    table = measure(model, tokenizer, n=args.n, seed=args.seed, console=Console(width=140))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
