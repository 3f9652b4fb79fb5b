"""Task families that need a tool: bignum, lookup, fileread, coderepair.

``lookup`` and ``fileread`` ask about a made-up world that exists only in a
sqlite table or in files, so the answer cannot come from the weights; the
world is generated from a fixed seed and written by ``prepare(workdir)``,
which returns the settings that bind the tools to it. ``coderepair`` items are
verified by running the model's function against the tests in the sandbox.
"""

from __future__ import annotations

import random
import sqlite3
from functools import lru_cache
from pathlib import Path

from selfbake.tasks.base import Item, Task
from selfbake.tasks.extract import extract_code
from selfbake.tasks.procedural import NumericTask
from selfbake.tools.calculator import calculator

WORLD_SEED = 20261123
SYLLABLES = "ka lo mi ra ve to shi an el dor fen gul ha ix jo kel mar nu ost pi qua rin sol tor ul vik wen yo zan".split()
CITIES = ["Ostrin", "Velmora", "Karth", "Lunde", "Pellam", "Quorra", "Sidris", "Tavel"]


class Bignum(NumericTask):
    name = "bignum"
    description = "addition and multiplication of numbers too long to do in the head (calculator)"
    tools = ("calculator",)
    difficulties = (1, 2, 3, 4)

    def sample(self, rng: random.Random, difficulty: int) -> Item:
        digits = 6 + 4 * difficulty
        a = rng.randint(10 ** (digits - 1), 10**digits - 1)
        b = rng.randint(10 ** (digits - 2), 10 ** (digits - 1) - 1)
        op = rng.choice(["+", "*"])
        text = f"{a} {op} {b}"
        return Item(f"What is {text}?", calculator(text), {"difficulty": difficulty, "expression": text})


@lru_cache(maxsize=1)
def world() -> list[dict]:
    """300 made-up people with unique names; the same on every machine."""
    rng = random.Random(WORLD_SEED)
    people, names = [], set()
    while len(people) < 300:
        name = " ".join(
            "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize() for _ in range(2)
        )
        if name in names:
            continue
        names.add(name)
        people.append(
            {
                "id": f"r{len(people):03d}{rng.choice('abcdefghjk')}",
                "name": name,
                "city": rng.choice(CITIES),
                "age": rng.randint(19, 88),
                "badge": rng.randint(10000, 99999),
                "code": rng.randint(100000, 999999),
            }
        )
    return people


class Lookup(NumericTask):
    name = "lookup"
    description = "a fact that exists only in a sqlite table (sql_query)"
    tools = ("sql_query",)
    difficulties = (1, 2)

    def sample(self, rng: random.Random, difficulty: int) -> Item:
        people = world()
        if difficulty == 1:
            person = rng.choice(people)
            field = rng.choice(["age", "badge"])
            question = (
                f"What is the {field} of {person['name']}? The answer is in the sqlite table people "
                "(columns: name, city, age, badge)."
            )
            return Item(
                question, str(person[field]), {"difficulty": 1, "name": person["name"], "field": field}
            )
        city = rng.choice(CITIES)
        older = rng.randint(30, 70)
        count = sum(1 for p in people if p["city"] == city and p["age"] > older)
        question = (
            f"How many people in the sqlite table people (columns: name, city, age, badge) live in {city} "
            f"and are older than {older}?"
        )
        return Item(question, str(count), {"difficulty": 2, "city": city, "older_than": older})

    def prepare(self, workdir) -> dict:
        db = Path(workdir) / "people.db"
        if not db.exists():
            with sqlite3.connect(db) as conn:
                conn.execute("create table people (name text, city text, age integer, badge integer)")
                conn.executemany(
                    "insert into people values (?, ?, ?, ?)",
                    [(p["name"], p["city"], p["age"], p["badge"]) for p in world()],
                )
            conn.close()
        return {"db": str(db)}


class FileRead(NumericTask):
    name = "fileread"
    description = "a value that exists only in a file (read_file)"
    tools = ("read_file",)
    difficulties = (1, 2)

    def sample(self, rng: random.Random, difficulty: int) -> Item:
        person = rng.choice(world())
        if difficulty == 1:
            question = f"What is the access code in the file records/{person['id']}.txt?"
        else:
            question = (
                f"What is the access code of {person['name']}? The file records/index.txt maps names to "
                "record files."
            )
        return Item(question, str(person["code"]), {"difficulty": difficulty, "id": person["id"]})

    def prepare(self, workdir) -> dict:
        root = Path(workdir) / "files"
        records = root / "records"
        if not (records / "index.txt").exists():
            records.mkdir(parents=True, exist_ok=True)
            for p in world():
                (records / f"{p['id']}.txt").write_text(
                    f"name: {p['name']}\ncity: {p['city']}\ncode: {p['code']}\n"
                )
            (records / "index.txt").write_text("".join(f"{p['name']}: {p['id']}.txt\n" for p in world()))
        return {"files_root": str(root)}


# (correct function, bugs as (wrong line, right line), tests); {n} and {k} vary per item.
PROGRAMS = [
    (
        "def total(xs):\n    acc = 0\n    for x in xs:\n        acc += x\n    return acc + {k}\n",
        [("    acc = 0\n", "    acc = 1\n"), ("        acc += x\n", "        acc -= x\n")],
        "assert total([1, 2, 3]) == 6 + {k}\nassert total([]) == {k}\nassert total([-{n}]) == -{n} + {k}\n",
    ),
    (
        "def largest(xs):\n    best = xs[0]\n    for x in xs[1:]:\n        if x > best:\n            best = x\n    return best\n",
        [("    best = xs[0]\n", "    best = 0\n"), ("        if x > best:\n", "        if x < best:\n")],
        "assert largest([3, {n}, 2]) == max(3, {n}, 2)\nassert largest([-5, -{k}]) == max(-5, -{k})\n",
    ),
    (
        "def count_char(s, c):\n    n = 0\n    for ch in s:\n        if ch == c:\n            n += 1\n    return n\n",
        [
            ("        if ch == c:\n", "        if ch != c:\n"),
            ("            n += 1\n", "            n += 2\n"),
        ],
        "assert count_char('a' * {n} + 'b', 'a') == {n}\nassert count_char('xyz', 'q') == 0\n",
    ),
    (
        "def factorial(n):\n    out = 1\n    for i in range(2, n + 1):\n        out *= i\n    return out\n",
        [
            ("    for i in range(2, n + 1):\n", "    for i in range(2, n):\n"),
            ("    out = 1\n", "    out = 0\n"),
        ],
        "import math\nassert factorial({k}) == math.factorial({k})\nassert factorial(0) == 1\nassert factorial(5) == 120\n",
    ),
    (
        "def is_palindrome(s):\n    s = s.lower()\n    return s == s[::-1]\n",
        [
            ("    return s == s[::-1]\n", "    return s == s[1:]\n"),
            ("    s = s.lower()\n", "    s = s.upper()[1:]\n"),
        ],
        "assert is_palindrome('Abba')\nassert not is_palindrome('ab' * {k})\nassert is_palindrome('x' * {n})\n",
    ),
    (
        "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x > hi:\n        return hi\n    return x\n",
        [("        return lo\n", "        return hi\n"), ("    if x > hi:\n", "    if x >= lo:\n")],
        "assert clamp(-{n}, 0, {k}) == 0\nassert clamp({n} + {k}, 0, {k}) == {k}\nassert clamp(1, 0, {k}) == 1\n",
    ),
    (
        "def average(xs):\n    if not xs:\n        return 0\n    return sum(xs) / len(xs)\n",
        [
            ("    return sum(xs) / len(xs)\n", "    return sum(xs) // len(xs)\n"),
            ("        return 0\n", "        return None\n"),
        ],
        "assert average([1, 2]) == 1.5\nassert average([]) == 0\nassert average([{n}] * {k}) == {n}\n",
    ),
]


class CodeRepair(Task):
    name = "coderepair"
    description = "fix a small buggy Python function so its tests pass (run in the sandbox)"
    scoring = "code"
    tools = ("run_code",)
    difficulties = (1, 2)
    max_new_tokens = 256

    def sample(self, rng: random.Random, difficulty: int) -> Item:
        correct, bugs, tests = rng.choice(PROGRAMS)
        n, k = rng.randint(2, 9), rng.randint(2, 9)
        correct, tests = correct.format(n=n, k=k), tests.format(n=n, k=k)
        buggy = correct
        for right, wrong in rng.sample(bugs, k=min(difficulty, len(bugs))):
            buggy = buggy.replace(right.format(n=n, k=k), wrong.format(n=n, k=k), 1)
        question = (
            "Fix the bug in this Python function so that the tests pass. Reply with the corrected function "
            f"in a ```python block.\n```python\n{buggy}```\nTests:\n```python\n{tests}```"
        )
        return Item(question, correct, {"difficulty": difficulty, "buggy": buggy, "tests": tests})

    def extract(self, text: str) -> str | None:
        return extract_code(text)

    def verify(self, item: Item, text: str) -> bool:
        from selfbake.tools.sandbox import run_code

        code = self.extract(text)
        if not code:
            return False
        return run_code(code + "\n\n" + item.metadata["tests"], timeout_s=5).ok

    def baseline(self, items: list[Item]) -> float:
        return 0.0  # the buggy function fails its tests by construction (tested)
