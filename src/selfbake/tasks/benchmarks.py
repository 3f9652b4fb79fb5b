"""Benchmark loaders scored the way EleutherAI lm-evaluation-harness scores them.

Each reads the benchmark's public JSONL/JSON/Parquet format from a local path
(default: a small fixture shipped with selfbake, written for it, not copied).
Prompt formats, target delimiters, stop strings and answer extraction follow
the harness's task YAMLs:

- gsm8k: "Question: ...\\nAnswer:", until Question:/</s>/<|im_end|>; strict
  ("#### N") and flexible (last number) extraction; exact match after removing
  commas, "$", everything up to "#### " and a trailing ".".
- mmlu: question, lettered choices, "Answer:"; log-likelihood of " A".." D"; acc.
- arc_easy / arc_challenge: "Question: ...\\nAnswer:"; log-likelihood of
  " " + choice text; acc and acc_norm (divided by the choice's length in characters).
- hellaswag: the harness's preprocessing of activity label and contexts;
  acc and acc_norm.
- humaneval: the prompt; until \\nclass, \\ndef, \\n#, \\nif, \\nprint; prompt +
  completion + test + check(entry_point) run in the sandbox; unbiased pass@k.
- math: "Problem: ...\\nAnswer:", until "Problem:"; the answer between the first
  and last "$" (or the whole output) compared to the solution's last \\boxed{}
  after normalisation (``mathnorm``).
- strategyqa: "Q: ...\\nA:" with choices " yes" / " no" by log-likelihood, as
  BIG-bench's multiple-choice StrategyQA.

Few-shot examples (``num_fewshot``) come from the same file, never the item
itself, chosen by a seeded RNG; separated by a blank line as in the harness.
"""

from __future__ import annotations

import json
import random
import re
from importlib import resources
from pathlib import Path
from typing import Any

from selfbake.errors import UserError
from selfbake.tasks.base import Item, Task
from selfbake.tasks.mathnorm import is_equiv, remove_boxed

FIXTURES = "selfbake.tasks.fixtures"


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl, .json or .parquet file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"benchmark file not found: {path}")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError("reading .parquet needs pyarrow: pip install pyarrow") from None
        return pq.read_table(path).to_pylist()
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
            return data if isinstance(data, list) else data.get("examples", data.get("data", []))
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


class Benchmark(Task):
    chat = False  # scored on raw text, as lm-eval does without --apply_chat_template
    fixture = ""
    target_delimiter = " "
    fewshot_delimiter = "\n\n"

    def __init__(self, path: str | Path | None = None, num_fewshot: int = 0, seed: int = 1234):
        self.path = path
        self.num_fewshot = num_fewshot
        self.seed = seed
        self._items: list[Item] | None = None

    def items(self) -> list[Item]:
        if self._items is None:
            if self.path is None:
                source = resources.files(FIXTURES).joinpath(self.fixture)
                with resources.as_file(source) as file:
                    records = read_records(file)
            else:
                records = read_records(self.path)
            try:
                self._items = [self.to_item(r) for r in records]
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise UserError(
                    f"{self.path or self.fixture}: a record is not in {self.name}'s format ({exc!r})"
                ) from None
        return self._items

    def generate_items(self, n: int, seed: int, difficulty: int | None = None) -> list[Item]:
        return self.items()[:n]

    def to_item(self, record: dict[str, Any]) -> Item:
        raise NotImplementedError

    def target_text(self, item: Item) -> str:
        """The gold continuation, as a few-shot example shows it."""
        if item.choices is not None:
            return item.choices[item.gold].lstrip()
        return item.answer

    def prompt(self, item: Item) -> str:
        if not self.num_fewshot:
            return item.question
        pool = [other for other in self.items() if other.key != item.key]
        shots = random.Random(f"{self.seed}:{item.key}").sample(pool, min(self.num_fewshot, len(pool)))
        examples = [s.question + self.target_delimiter + self.target_text(s) for s in shots]
        return self.fewshot_delimiter.join(examples + [item.question])


class MultipleChoice(Benchmark):
    scoring = "loglikelihood"
    metrics = ("acc", "acc_norm")

    def extract(self, text: str) -> str | None:
        return text.strip() or None


class GSM8K(Benchmark):
    name = "gsm8k"
    description = "grade-school math word problems (lm-eval gsm8k: strict and flexible extraction)"
    fixture = "gsm8k.jsonl"
    stop = ("Question:", "</s>", "<|im_end|>")
    max_new_tokens = 256
    IGNORE = [r",", r"\$", r"(?s).*#### ", r"\.$"]

    def to_item(self, r):
        return Item(f"Question: {r['question']}\nAnswer:", r["answer"], {"target": r["answer"]})

    def clean(self, text: str) -> str:
        for pattern in self.IGNORE:
            text = re.sub(pattern, "", text)
        return text.strip().lower()

    def extract_strict(self, text: str) -> str | None:
        match = re.search(r"#### (\-?[0-9\.\,]+)", text)
        return match.group(1) if match else None

    def extract_flexible(self, text: str) -> str | None:
        matches = re.findall(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", text)
        if not matches:
            return None
        last = matches[-1]
        return last[0] or last[1]

    def extract(self, text: str) -> str | None:
        return self.extract_flexible(text)

    def verify_mode(self, item: Item, text: str, mode: str) -> bool:
        answer = self.extract_strict(text) if mode == "strict" else self.extract_flexible(text)
        return answer is not None and self.clean(answer) == self.clean(item.answer)

    def verify(self, item: Item, text: str) -> bool:
        return self.verify_mode(item, text, "flexible")

    def normalize(self, answer: str) -> str:
        return self.clean(answer)


class MMLU(MultipleChoice):
    name = "mmlu"
    description = "multiple-choice knowledge questions (lm-eval mmlu default template, acc)"
    fixture = "mmlu.jsonl"
    metrics = ("acc",)

    def to_item(self, r):
        letters = "ABCD"
        body = "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(r["choices"]))
        question = f"{r['question'].strip()}\n{body}\nAnswer:"
        gold = (
            int(r["answer"])
            if not isinstance(r["answer"], str) or r["answer"].isdigit()
            else letters.index(r["answer"])
        )
        return Item(
            question,
            letters[gold],
            {"subject": r.get("subject", "")},
            tuple(f" {x}" for x in letters[: len(r["choices"])]),
            gold,
        )


class ARC(MultipleChoice):
    description = "grade-school science multiple choice (lm-eval arc: acc, acc_norm)"

    def __init__(self, name: str, fixture: str, **kwargs):
        super().__init__(**kwargs)
        self.name, self.fixture = name, fixture

    def to_item(self, r):
        texts, labels = r["choices"]["text"], r["choices"]["label"]
        gold = labels.index(r["answerKey"])
        return Item(
            f"Question: {r['question']}\nAnswer:",
            texts[gold],
            {"id": r.get("id")},
            tuple(f" {t}" for t in texts),
            gold,
        )


def hellaswag_preprocess(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


class HellaSwag(MultipleChoice):
    name = "hellaswag"
    description = "commonsense sentence completion (lm-eval hellaswag: acc, acc_norm)"
    fixture = "hellaswag.jsonl"

    def to_item(self, r):
        ctx = r["ctx_a"] + " " + r["ctx_b"].capitalize()
        query = hellaswag_preprocess(r["activity_label"] + ": " + ctx)
        endings = [hellaswag_preprocess(e) for e in r["endings"]]
        gold = int(r["label"])
        return Item(query, endings[gold], {"ind": r.get("ind")}, tuple(f" {e}" for e in endings), gold)


class HumanEval(Benchmark):
    name = "humaneval"
    description = "Python function completion, run against tests (lm-eval humaneval: pass@k)"
    fixture = "humaneval.jsonl"
    scoring = "code"
    target_delimiter = ""
    stop = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
    max_new_tokens = 512

    def to_item(self, r):
        return Item(
            r["prompt"],
            r["canonical_solution"],
            {"task_id": r["task_id"], "test": r["test"], "entry_point": r["entry_point"]},
        )

    def extract(self, text: str) -> str | None:
        return text

    def program(self, item: Item, completion: str) -> str:
        return (
            item.question
            + completion
            + "\n"
            + item.metadata["test"]
            + "\n"
            + f"check({item.metadata['entry_point']})\n"
        )

    def verify(self, item: Item, text: str) -> bool:
        from selfbake.tools.sandbox import run_code

        return run_code(self.program(item, text), timeout_s=10).ok

    def baseline(self, items: list[Item]) -> float:
        return 0.0


class MATH(Benchmark):
    name = "math"
    description = "competition math with \\boxed answers (lm-eval hendrycks_math)"
    fixture = "math.jsonl"
    stop = ("Problem:",)
    max_new_tokens = 256

    def to_item(self, r):
        answer = remove_boxed(r["solution"])
        if answer is None:
            raise ValueError("solution has no \\boxed{} answer")
        return Item(
            f"Problem: {r['problem']}\nAnswer:", answer, {"level": r.get("level"), "type": r.get("type")}
        )

    def extract(self, text: str) -> str | None:
        dollars = [i for i, ch in enumerate(text) if ch == "$"]
        return text[dollars[0] + 1 : dollars[-1]] if len(dollars) > 1 else text

    def verify(self, item: Item, text: str) -> bool:
        return is_equiv(self.extract(text), item.answer)

    def normalize(self, answer: str) -> str:
        from selfbake.tasks.mathnorm import normalize_math

        return normalize_math(answer)


class StrategyQA(MultipleChoice):
    name = "strategyqa"
    description = "yes/no questions needing implicit reasoning (BIG-bench multiple-choice style)"
    fixture = "strategyqa.jsonl"
    metrics = ("acc",)

    def to_item(self, r):
        answer = r["answer"] if isinstance(r["answer"], bool) else str(r["answer"]).lower() in ("true", "yes")
        gold = 0 if answer else 1
        return Item(
            f"Q: {r['question']}\nA:", "yes" if answer else "no", {"qid": r.get("qid")}, (" yes", " no"), gold
        )


def benchmark_classes() -> dict[str, Any]:
    return {
        "gsm8k": GSM8K,
        "mmlu": MMLU,
        "arc_easy": lambda **kw: ARC("arc_easy", "arc_easy.jsonl", **kw),
        "arc_challenge": lambda **kw: ARC("arc_challenge", "arc_challenge.jsonl", **kw),
        "hellaswag": HellaSwag,
        "humaneval": HumanEval,
        "math": MATH,
        "strategyqa": StrategyQA,
    }
