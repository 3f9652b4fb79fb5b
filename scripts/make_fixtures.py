"""Write the small benchmark fixtures shipped in src/selfbake/tasks/fixtures.

Every item is generated here from templates and a fixed seed, in the public
format of its benchmark, so loaders and scorers can be tested offline. They
are format fixtures, not benchmark content: no item is copied from a dataset.

    python scripts/make_fixtures.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "selfbake" / "tasks" / "fixtures"
NAMES = ["Mara", "Tobin", "Ilse", "Quent", "Rosa", "Devi", "Oskar", "Lena", "Amir", "Hedda"]
THINGS = ["apples", "stickers", "marbles", "pencils", "shells", "coins", "stamps", "buttons"]


def gsm8k(rng):
    rows = []
    for i in range(30):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        a, b, c = rng.randint(3, 40), rng.randint(2, 6), rng.randint(2, 12)
        if i % 3 == 0:
            total = a + b * c
            q = f"{name} has {a} {thing}. {name} buys {b} packs with {c} {thing} in each pack. How many {thing} does {name} have now?"
            ans = f"The packs hold {b} * {c} = <<{b}*{c}={b * c}>>{b * c} {thing}.\n{name} has {a} + {b * c} = <<{a}+{b * c}={total}>>{total} {thing}.\n#### {total}"
        elif i % 3 == 1:
            price = rng.randint(2, 9)
            total = b * c * price
            q = f"A shop sells {thing} for ${price} each. {name} buys {c} {thing} on each of {b} days. How many dollars does {name} spend?"
            ans = f"{name} buys {b} * {c} = <<{b}*{c}={b * c}>>{b * c} {thing}.\nThat costs {b * c} * {price} = <<{b * c}*{price}={total}>>{total} dollars.\n#### {total}"
        else:
            big = a * 100 + 1000
            total = big - b * c * 10
            q = f"{name} saved {big:,} cents. {name} spends {b * 10} cents on each of {c} {thing}. How many cents are left?"
            ans = f"The {thing} cost {b * 10} * {c} = <<{b * 10}*{c}={b * c * 10}>>{b * c * 10} cents.\n{big} - {b * c * 10} = <<{big}-{b * c * 10}={total}>>{total} cents are left.\n#### {total:,}"
        rows.append({"question": q, "answer": ans})
    return rows


def mmlu(rng):
    rows = []
    for i in range(32):
        a, b = rng.randint(2, 15), rng.randint(2, 15)
        if i % 2 == 0:
            right = a * b
            wrong = {right + 1, right - a, right + b, a + b} - {right}
            q, subject = f"What is {a} multiplied by {b}?", "elementary_mathematics"
        else:
            right = a + b * 2
            wrong = {right + 2, right - 1, a * b + 1, a + b} - {right}
            q, subject = f"If x = {a} and y = {b}, what is x + 2y?", "high_school_mathematics"
        choices = [str(w) for w in sorted(wrong)[:3]]
        gold = rng.randint(0, 3)
        choices.insert(gold, str(right))
        rows.append({"question": q, "subject": subject, "choices": choices, "answer": gold})
    return rows


def mmlu_dev(rng):
    """MMLU's dev split: five few-shot examples per subject, kept apart from the scored file."""
    rows = []
    for i in range(10):
        a, b = rng.randint(2, 30), rng.randint(2, 9)
        if i % 2 == 0:
            right, q, subject = a + b, f"What is {a} plus {b}?", "elementary_mathematics"
        else:
            right, q, subject = (
                3 * a - b,
                f"If x = {a} and y = {b}, what is 3x - y?",
                "high_school_mathematics",
            )
        choices = [str(w) for w in sorted({right + 1, right - 1, right + 10} - {right})[:3]]
        gold = rng.randint(0, 3)
        choices.insert(gold, str(right))
        rows.append({"question": q, "subject": subject, "choices": choices, "answer": gold})
    return rows


ARC_FACTS = [
    ("Which of these is a unit of length?", "meter", ["kilogram", "second", "ampere"]),
    ("Which of these is a liquid at room temperature?", "water", ["iron", "granite", "oxygen gas"]),
    (
        "What do plants need to make food by photosynthesis?",
        "sunlight",
        ["sand", "moonlight only", "plastic"],
    ),
    ("Which tool measures temperature?", "thermometer", ["ruler", "scale", "compass"]),
    (
        "Which object is attracted to a magnet?",
        "an iron nail",
        ["a wooden spoon", "a glass marble", "a rubber band"],
    ),
    (
        "What happens to water when it freezes?",
        "it becomes ice",
        ["it becomes steam", "it disappears", "it turns to sand"],
    ),
    ("Which of these is a source of light?", "the Sun", ["the Moon's rock", "a mirror", "a shadow"]),
    ("Which animal is a mammal?", "a whale", ["a shark", "a trout", "a frog"]),
    ("Which planet do people live on?", "Earth", ["Mars", "Venus", "Jupiter"]),
    (
        "Which form of energy does a battery store?",
        "chemical energy",
        ["sound energy", "nuclear fusion", "tidal energy"],
    ),
    ("Which of these is renewable?", "wind", ["coal", "oil", "natural gas"]),
    ("What part of the body pumps blood?", "the heart", ["the lungs", "the stomach", "the skin"]),
    (
        "Which surface causes the most friction for a rolling ball?",
        "carpet",
        ["ice", "polished glass", "smooth tile"],
    ),
    ("What is the main gas that plants take in?", "carbon dioxide", ["helium", "neon", "argon"]),
    (
        "Which change is physical, not chemical?",
        "melting butter",
        ["burning wood", "rusting iron", "baking bread"],
    ),
    ("Which layer of Earth do we live on?", "the crust", ["the inner core", "the outer core", "the mantle"]),
]


def arc(rng, hard: bool):
    rows = []
    for i, (q, right, wrong) in enumerate(ARC_FACTS * 2):
        choices = list(wrong)
        gold = rng.randint(0, len(choices))
        choices.insert(gold, right)
        labels = ["1", "2", "3", "4"] if (hard and i % 5 == 0) else ["A", "B", "C", "D"]
        question = q if i < len(ARC_FACTS) else f"A student asks: {q[0].lower()}{q[1:]}"
        rows.append(
            {
                "id": f"Fixture_{'C' if hard else 'E'}_{i}",
                "question": question,
                "choices": {"text": choices, "label": labels},
                "answerKey": labels[gold],
            }
        )
    return rows


HELLASWAG = [
    (
        "Making tea",
        "A woman fills a kettle with water and sets it on the stove.",
        "she",
        "waits for the water to boil and pours it over a tea bag.",
    ),
    (
        "Washing a car",
        "A man sprays soapy water over a red car.",
        "he",
        "scrubs the doors with a large sponge.",
    ),
    (
        "Playing guitar",
        "A boy sits on a stool holding a guitar.",
        "he",
        "strums a few chords and adjusts the tuning pegs.",
    ),
    (
        "Painting a fence",
        "A person dips a brush into a can of white paint.",
        "they",
        "spreads the paint along the wooden boards.",
    ),
    (
        "Walking the dog",
        "A girl clips a leash onto her dog's collar.",
        "she",
        "opens the door and they head down the street.",
    ),
    (
        "Baking bread",
        "A baker kneads a ball of dough on a floured table.",
        "the baker",
        "shapes the dough and places it in a loaf pan.",
    ),
    (
        "Planting a tree",
        "A man digs a deep hole in the garden.",
        "he",
        "lowers the young tree into the hole and fills it with soil.",
    ),
    (
        "Ice skating",
        "[title] A skater glides onto the frozen pond.",
        "she",
        "spins on one foot as people clap.",
    ),
]


def hellaswag(rng):
    rows = []
    for i in range(32):
        label, ctx_a, ctx_b, right = HELLASWAG[i % len(HELLASWAG)]
        others = [h[3] for h in HELLASWAG if h[3] != right]
        endings = rng.sample(others, 3)
        gold = rng.randint(0, 3)
        endings.insert(gold, right)
        rows.append(
            {
                "ind": i,
                "activity_label": label,
                "ctx_a": ctx_a,
                "ctx_b": ctx_b,
                "ctx": f"{ctx_a} {ctx_b.capitalize()}",
                "endings": endings,
                "source_id": f"fixture~{i}",
                "split": "val",
                "split_type": "indomain",
                "label": str(gold),
            }
        )
    return rows


HUMANEVAL = [
    (
        "add",
        "a: int, b: int",
        "int",
        "Return the sum of a and b.",
        "    return a + b\n",
        [("2, 3", "5"), ("-1, 1", "0")],
    ),
    (
        "double_all",
        "xs: list",
        "list",
        "Return a list with every element doubled.",
        "    return [2 * x for x in xs]\n",
        [("[1, 2]", "[2, 4]"), ("[]", "[]")],
    ),
    (
        "count_vowels",
        "s: str",
        "int",
        "Count the vowels (aeiou) in s, ignoring case.",
        "    return sum(ch in 'aeiou' for ch in s.lower())\n",
        [("'Apple'", "2"), ("'xyz'", "0")],
    ),
    (
        "reverse_words",
        "s: str",
        "str",
        "Reverse the order of the words in s.",
        "    return ' '.join(s.split()[::-1])\n",
        [("'a b c'", "'c b a'"), ("'one'", "'one'")],
    ),
    (
        "is_even",
        "n: int",
        "bool",
        "Return True if n is even.",
        "    return n % 2 == 0\n",
        [("4", "True"), ("7", "False")],
    ),
    (
        "fib",
        "n: int",
        "int",
        "Return the n-th Fibonacci number, fib(0) = 0, fib(1) = 1.",
        "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
        [("0", "0"), ("10", "55")],
    ),
    (
        "max_gap",
        "xs: list",
        "int",
        "Return the largest difference between consecutive elements, or 0.",
        "    return max((b - a for a, b in zip(xs, xs[1:])), default=0)\n",
        [("[1, 4, 5]", "3"), ("[2]", "0")],
    ),
    (
        "unique_sorted",
        "xs: list",
        "list",
        "Return the distinct elements of xs in increasing order.",
        "    return sorted(set(xs))\n",
        [("[3, 1, 3]", "[1, 3]"), ("[]", "[]")],
    ),
    (
        "digit_sum",
        "n: int",
        "int",
        "Return the sum of the decimal digits of a non-negative n.",
        "    return sum(int(d) for d in str(n))\n",
        [("123", "6"), ("0", "0")],
    ),
    (
        "capitalize_first",
        "s: str",
        "str",
        "Upper-case the first letter of s.",
        "    return s[:1].upper() + s[1:]\n",
        [("'hello'", "'Hello'"), ("''", "''")],
    ),
    (
        "product",
        "xs: list",
        "int",
        "Return the product of xs (1 for an empty list).",
        "    out = 1\n    for x in xs:\n        out *= x\n    return out\n",
        [("[2, 3, 4]", "24"), ("[]", "1")],
    ),
    (
        "count_positive",
        "xs: list",
        "int",
        "Count the elements greater than zero.",
        "    return sum(1 for x in xs if x > 0)\n",
        [("[-1, 2, 3]", "2"), ("[0]", "0")],
    ),
]


def humaneval(rng):
    rows = []
    for i, (name, args, ret, doc, solution, cases) in enumerate(HUMANEVAL * 2):
        variant = i // len(HUMANEVAL)
        fname = name if variant == 0 else f"{name}_v2"
        example = cases[0]
        prompt = f'def {fname}({args}) -> {ret}:\n    """{doc}\n    >>> {fname}({example[0]})\n    {example[1]}\n    """\n'
        test = "def check(candidate):\n" + "".join(f"    assert candidate({x}) == {y}\n" for x, y in cases)
        rows.append(
            {
                "task_id": f"Fixture/{i}",
                "prompt": prompt,
                "canonical_solution": solution,
                "test": test,
                "entry_point": fname,
            }
        )
    return rows


def math_rows(rng):
    rows = []
    for i in range(30):
        a, b, c, d = (rng.randint(1, 9) for _ in range(4))
        kind = i % 3
        if kind == 0:
            from fractions import Fraction

            v = Fraction(a, b + 1) + Fraction(c, d + 1)
            ans = str(v.numerator) if v.denominator == 1 else f"\\frac{{{v.numerator}}}{{{v.denominator}}}"
            problem = f"Compute $\\frac{{{a}}}{{{b + 1}}} + \\frac{{{c}}}{{{d + 1}}}$. Express your answer as a common fraction."
            solution = f"Using a common denominator, the sum is $\\boxed{{{ans}}}$."
            typ = "Prealgebra"
        elif kind == 1:
            x = rng.randint(-9, 9)
            rhs = a * x + b
            problem = f"Solve for $x$: ${a}x + {b} = {rhs}$."
            solution = f"Subtracting {b} gives ${a}x = {rhs - b}$, so $x = \\boxed{{{x}}}$."
            typ = "Algebra"
        else:
            n = a + 3
            problem = f"How many diagonals does a convex polygon with ${n}$ sides have?"
            solution = f"A polygon with $n$ sides has $\\frac{{n(n-3)}}{{2}}$ diagonals, so the answer is $\\boxed{{{n * (n - 3) // 2}}}$."
            typ = "Geometry"
        rows.append({"problem": problem, "level": f"Level {1 + i % 5}", "type": typ, "solution": solution})
    return rows


def strategyqa(rng):
    rows = []
    animals = [("an ant", 0.001), ("a cat", 4), ("a horse", 500), ("an elephant", 6000), ("a mouse", 0.02)]
    for i in range(30):
        (x, wx), (y, wy) = rng.sample(animals, 2)
        q = f"Could {x} outweigh {y}?"
        rows.append(
            {
                "qid": f"fixture{i:03d}",
                "term": x,
                "description": "an animal",
                "question": q,
                "answer": wx > wy,
                "facts": [f"{x} weighs about {wx} kg.", f"{y} weighs about {wy} kg."],
                "decomposition": [
                    f"How much does {x} weigh?",
                    f"How much does {y} weigh?",
                    "Is #1 greater than #2?",
                ],
            }
        )
    return rows


def main() -> None:
    rng = random.Random(2026)
    OUT.mkdir(parents=True, exist_ok=True)
    sets = {
        "gsm8k.jsonl": gsm8k(rng),
        "mmlu.jsonl": mmlu(rng),
        "arc_easy.jsonl": arc(rng, hard=False),
        "arc_challenge.jsonl": arc(rng, hard=True),
        "hellaswag.jsonl": hellaswag(rng),
        "humaneval.jsonl": humaneval(rng),
        "math.jsonl": math_rows(rng),
        "strategyqa.jsonl": strategyqa(rng),
    }
    sets["mmlu_dev.jsonl"] = mmlu_dev(random.Random(2027))  # its own seed: the other files stay as they were
    for name, rows in sets.items():
        (OUT / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"{name}: {len(rows)} items")


if __name__ == "__main__":
    main()
