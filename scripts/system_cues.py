"""Which surface cue of a system sentence a model acts on: greeting, step lines and accuracy per wording.

Why: some forge runs miss the held-out reasoning paraphrase ("Go through it in small steps, ...")
because the model opens with the greeting marker and answers directly. A byte-level 1.6M-parameter
model can key an instruction on its first letters: the only core greeting wording that starts with
"G" is "Greet the user first.". This script shows the wording, and the first letter, that the
behaviour follows, on the frozen 3-4 operand test items (greedy):

    python scripts/system_cues.py bundled
    python scripts/system_cues.py DIR --n 100         # DIR: a selfbake forge output
    python scripts/system_cues.py bundled --system "Go." --system "Think step by step."
"""

from __future__ import annotations

import argparse

from selfbake import tasks
from selfbake.models import load
from selfbake.scoring import score
from selfbake.tasks import language
from selfbake.tasks.stats import wilson

HELD_OUT = language.HELD_OUT["reasoning"][0]
DEFAULT_SYSTEMS = [
    HELD_OUT,
    "Work through it in small steps, writing down each intermediate result.",  # first word changed
    "Go.",
    "Get it done.",
    "Greet the user first.",  # a core greeting wording
    language.REASONING[0],  # a core reasoning wording
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="bundled, a model directory, or an HF id on disk")
    parser.add_argument("--n", type=int, default=300, help="test items (3-4 operand arithmetic)")
    parser.add_argument("--system", action="append", help="system sentences (default: a fixed set)")
    args = parser.parse_args()
    model, tokenizer = load(args.model)
    task = tasks.get("arithmetic")
    items = tasks.test_items(task, args.n, 0, (2, 3))
    print(f"model {args.model}, {len(items)} frozen test items, greedy; rates with Wilson 95 % intervals")
    for system in args.system or DEFAULT_SYSTEMS:
        records = score(model, tokenizer, task, items, system=system, batch_size=64, seed=0).records
        counts = {
            "opens with the greeting": sum(language.has_marker("greeting", r["output"]) for r in records),
            "step lines": sum(language.has_steps(r["output"]) for r in records),
            "correct": sum(bool(r["correct"]) for r in records),
        }
        cells = []
        for name, k in counts.items():
            low, high = wilson(k, len(records))
            cells.append(f"{name} {k / len(records):.3f} [{low:.3f}, {high:.3f}]")
        print(f"{system!r}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
