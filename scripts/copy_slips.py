"""Where a model's copy of a long calculator result goes wrong: the bundled model's bignum-with-tool misses.

Why: the bundled model calls the calculator right on bignum questions and then miscopies the
18-19-digit result into its answer. This script takes the misses under the tool prompt on the frozen
bignum test items (sampled as in the behaviour table) and reports: how many had the right tool
result; where the first wrong digit is; whether the answer keeps the result's length; whether the
rest is the result read from one position off (a pointer slip); and whether the two digits before
the slip also occur earlier in the number (an ambiguous copy context), against how often that
holds at any position.

    python scripts/copy_slips.py bundled
    python scripts/copy_slips.py DIR --n 300        # DIR: a selfbake forge output
"""

from __future__ import annotations

import argparse
import collections

from selfbake import tasks
from selfbake.forge.behaviour import TOOL_PROMPT
from selfbake.models import load
from selfbake.scoring import score


def first_slip(ref: str, out: str) -> int:
    return next((k for k in range(min(len(ref), len(out))) if ref[k] != out[k]), min(len(ref), len(out)))


def off_by_one_read(ref: str, out: str, i: int) -> bool:
    """At least 80 % of the answer after the slip equals the result read one position later or earlier."""
    tail = out[i + 1 :]
    if len(tail) < 3:
        return False
    for shift in (-1, 1):
        source = ref[i + 1 + shift :]
        same = sum(a == b for a, b in zip(tail, source, strict=False))
        if same >= 0.8 * len(tail):
            return True
    return False


def ambiguous_context(ref: str, i: int) -> bool:
    return i >= 3 and ref.find(ref[i - 2 : i]) < i - 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="bundled, a model directory, or an HF id on disk")
    parser.add_argument("--n", type=int, default=300, help="bignum test items (levels 1-2)")
    args = parser.parse_args()
    model, tokenizer = load(args.model)
    task = tasks.get("bignum")
    items = tasks.test_items(task, args.n, 0, (1, 2))
    records = score(
        model, tokenizer, task, items, system=TOOL_PROMPT, tools=["calculator"], batch_size=64, seed=0
    ).records
    wrong = [r for r in records if not r["correct"]]
    copied = [
        r
        for r in wrong
        if r["tool_calls"] and str(r["tool_calls"][0].get("result", "")).strip() == r["reference"]
    ]
    slips, same_length, shifted, ambiguous = collections.Counter(), 0, 0, 0
    for r in copied:
        ref, out = r["reference"].lstrip("-"), (r["extracted"] or "").lstrip("-")
        i = first_slip(ref, out)
        slips[i] += 1
        same_length += len(out) == len(ref)
        shifted += off_by_one_read(ref, out, i)
        ambiguous += ambiguous_context(ref, i)
    positions = [(r["reference"].lstrip("-"), i) for r in records for i in range(3, len(r["reference"]))]
    base = sum(ambiguous_context(ref, i) for ref, i in positions) / max(1, len(positions))
    n = max(1, len(copied))
    print(
        f"model {args.model}: {len(wrong)}/{len(records)} answers wrong; {len(copied)} of them after the right tool result"
    )
    print(f"first wrong digit at index: {sorted(slips.items())}")
    print(f"answer as long as the result: {same_length}/{len(copied)} ({same_length / n:.2f})")
    print(f"rest read one position off (>= 80 % of digits): {shifted}/{len(copied)} ({shifted / n:.2f})")
    print(
        f"two digits before the slip seen earlier in the number: {ambiguous}/{len(copied)} "
        f"({ambiguous / n:.2f}; at any index >= 3: {base:.2f})"
    )


if __name__ == "__main__":
    main()
