"""Benchmark loaders scored the way EleutherAI lm-evaluation-harness scores them.

``gsm8k`` alone loads the real data set from the Hub (hub id, config and split as
lm-eval's task YAMLs name them; the local cache first), ``gsm8k:PATH`` a local copy
in a public format and ``gsm8k:fixture`` the tiny synthetic test fixture; see
``benchmark_data`` for the sources and the provenance every result records.
Prompt formats, target delimiters, stop strings and answer extraction follow
the harness's task YAMLs (lm_eval 0.4.13):

- gsm8k: "Question: ...\\nAnswer:", until Question:/</s>/<|im_end|>; strict
  ("#### N") and flexible (last number) extraction; exact match after removing
  commas, "$", everything up to "#### " and a trailing ".".
- mmlu: "The following are multiple choice questions (with answers) about
  {subject}.\\n\\n", then question, lettered choices, "Answer:"; log-likelihood
  of " A".." D"; acc. Few-shot examples: the first n of the subject's dev split.
- arc_easy / arc_challenge: "Question: ...\\nAnswer:"; log-likelihood of
  " " + choice text; acc and acc_norm (divided by the choice's length in characters).
- hellaswag: the harness's preprocessing of activity label and contexts;
  acc and acc_norm.
- humaneval: the prompt; until \\nclass, \\ndef, \\n#, \\nif, \\nprint; prompt +
  completion + test + check(entry_point) run in the sandbox; unbiased pass@k.
- math: "Problem: ...\\nAnswer:", until "Problem:"; the answer between the first
  and last "$" (or the whole output) compared to the solution's last \\boxed{}
  after normalisation (``mathnorm``).
- strategyqa: BIG-bench's multiple-choice StrategyQA as lm-eval reads it
  (``inputs`` as the prompt, " " + each target by log-likelihood); the original
  StrategyQA JSON as "Q: ...\\nA:" with " yes" / " no".

Few-shot examples (``num_fewshot``) come from the benchmark's few-shot split
(the Hub's, or a split-named sibling of a local file) when there is one, else
from the scored set without the item itself, chosen by a seeded RNG; separated
by a blank line as in the harness.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from selfbake.errors import UserError
from selfbake.tasks.base import Item, Task
from selfbake.tasks.benchmark_data import (
    FIXTURE_SPEC,
    DataSource,
    HubSpec,
    load_beside,
    load_fixture,
    load_hub,
    load_path,
    read_records,
)
from selfbake.tasks.mathnorm import is_equiv, remove_boxed

__all__ = ["Benchmark", "DataSource", "benchmark_classes", "read_records"]


class Benchmark(Task):
    chat = False  # scored on raw text, as lm-eval does without --apply_chat_template
    fixture = ""
    fixture_fewshot = ""  # a fixture of the few-shot split, where the benchmark has one
    hub: HubSpec
    target_delimiter = " "
    fewshot_delimiter = "\n\n"
    fewshot_required = False  # True: few-shot examples only from a separate split, never the scored one

    def __init__(self, path: str | Path | None = None, num_fewshot: int = 0, seed: int = 1234):
        self.path = path
        self.num_fewshot = num_fewshot
        self.seed = seed
        self._items: list[Item] | None = None
        self._fewshot: list[Item] | None = None
        self.data_source: DataSource | None = None

    @property
    def is_fixture(self) -> bool:
        return self.path == FIXTURE_SPEC

    def _records(self, fewshot: bool) -> tuple[list[dict[str, Any]], DataSource] | None:
        """Records of the scored split, or of the few-shot split (None when the source has no separate one)."""
        split = self.hub.fewshot_split if fewshot else self.hub.split
        if fewshot and split is None:
            return None
        if self.path is None:
            return load_hub(self.name, self.hub, split)
        if self.is_fixture:
            name = self.fixture_fewshot if fewshot else self.fixture
            return load_fixture(name) if name else None
        if not fewshot:
            return load_path(self.path, split)
        return load_beside(self.path, self.hub.split, split)

    def _to_items(self, records: list[dict[str, Any]], source: DataSource) -> list[Item]:
        try:
            return [self.to_item(r) for r in records]
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            where = source.details.get("path") or source.details.get("id") or self.fixture
            raise UserError(f"{where}: a record is not in {self.name}'s format ({exc!r})") from None

    def items(self) -> list[Item]:
        if self._items is None:
            records, self.data_source = self._records(fewshot=False)
            self._items = self._to_items(records, self.data_source)
        return self._items

    def fewshot_items(self) -> list[Item] | None:
        """Items of the separate few-shot split, or None when there is none."""
        if self._fewshot is None and self.num_fewshot:
            loaded = self._records(fewshot=True)
            if loaded is None and self.fewshot_required:
                raise UserError(
                    f"{self.name}: few-shot examples come from the '{self.hub.fewshot_split}' split, and no "
                    f"such file lies next to {self.path} (e.g. data/dev/x_dev.csv beside data/test/x_test.csv)"
                )
            if loaded is not None:
                self._fewshot = self._to_items(*loaded)
                self.items()
                assert self.data_source is not None
                self.data_source.details["fewshot"] = loaded[1].as_dict()
        return self._fewshot

    def generate_items(self, n: int, seed: int, difficulty: int | None = None) -> list[Item]:
        items = self.items()[:n]
        self.fewshot_items()
        return items

    def to_item(self, record: dict[str, Any]) -> Item:
        raise NotImplementedError

    def target_text(self, item: Item) -> str:
        """The gold continuation, as a few-shot example shows it."""
        if item.choices is not None:
            return item.choices[item.gold].lstrip()
        return item.answer

    def header(self, item: Item) -> str:
        """Text before the few-shot examples (lm-eval's ``description``)."""
        return ""

    def shots(self, item: Item) -> list[Item]:
        separate = self.fewshot_items()
        pool = separate if separate is not None else [o for o in self.items() if o.key != item.key]
        rng = random.Random(f"{self.seed}:{item.key}")
        return rng.sample(pool, min(self.num_fewshot, len(pool)))

    def prompt(self, item: Item) -> str:
        if not self.num_fewshot:
            return self.header(item) + item.question
        examples = [s.question + self.target_delimiter + self.target_text(s) for s in self.shots(item)]
        return self.header(item) + self.fewshot_delimiter.join(examples + [item.question])


class MultipleChoice(Benchmark):
    scoring = "loglikelihood"
    metrics = ("acc", "acc_norm")

    def extract(self, text: str) -> str | None:
        return text.strip() or None


class GSM8K(Benchmark):
    name = "gsm8k"
    description = "grade-school math word problems (lm-eval gsm8k: strict and flexible extraction)"
    fixture = "gsm8k.jsonl"
    hub = HubSpec("openai/gsm8k", ("main",), "test", "train")
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


MMLU_LETTERS = "ABCD"


def mmlu_subject(record: dict[str, Any]) -> str:
    """The subject of a record: its field, or the original CSV's file name (abstract_algebra_test.csv)."""
    if record.get("subject"):
        return record["subject"]
    if "file" in record:
        return re.sub(r"_(test|dev|val)$", "", record["file"].split(".")[0])
    return ""


class MMLU(MultipleChoice):
    name = "mmlu"
    description = "multiple-choice knowledge questions (lm-eval mmlu default template, acc)"
    header_text = "The following are multiple choice questions (with answers) about {}.\n\n"
    fixture = "mmlu.jsonl"
    fixture_fewshot = "mmlu_dev.jsonl"
    hub = HubSpec("cais/mmlu", ("all",), "test", "dev")
    fewshot_required = True
    metrics = ("acc",)

    def to_item(self, r):
        if "columns" in r:  # the original release's CSV: question, A, B, C, D, answer letter
            question, *choices, answer = r["columns"]
        else:
            question, choices, answer = r["question"], list(r["choices"]), r["answer"]
        body = "\n".join(f"{MMLU_LETTERS[i]}. {c}" for i, c in enumerate(choices))
        gold = (
            int(answer)
            if not isinstance(answer, str) or answer.isdigit()
            else MMLU_LETTERS.index(answer.strip())
        )
        return Item(
            f"{question.strip()}\n{body}\nAnswer:",
            MMLU_LETTERS[gold],
            {"subject": mmlu_subject(r)},
            tuple(f" {x}" for x in MMLU_LETTERS[: len(choices)]),
            gold,
        )

    def header(self, item: Item) -> str:
        subject = item.metadata.get("subject", "")
        return self.header_text.format(subject.replace("_", " ")) if subject else ""

    def shots(self, item: Item) -> list[Item]:
        """lm-eval's ``first_n`` sampler on the subject's dev split (MMLU is one task per subject there)."""
        pool = self.fewshot_items() or []
        subject = item.metadata.get("subject", "")
        return [s for s in pool if s.metadata.get("subject", "") == subject][: self.num_fewshot]


class ARC(MultipleChoice):
    description = "grade-school science multiple choice (lm-eval arc: acc, acc_norm)"

    def __init__(self, name: str, fixture: str, config: str, **kwargs):
        super().__init__(**kwargs)
        self.name, self.fixture = name, fixture
        self.hub = HubSpec("allenai/ai2_arc", (config,), "test", "train")

    def to_item(self, r):
        question = r["question"]
        if isinstance(question, dict):  # AllenAI's original release: question.stem, question.choices[]
            texts = [c["text"] for c in question["choices"]]
            labels = [c["label"] for c in question["choices"]]
            question = question["stem"]
        else:  # the Hub's: question, choices.text, choices.label
            texts, labels = r["choices"]["text"], r["choices"]["label"]
        gold = labels.index(r["answerKey"])
        return Item(
            f"Question: {question}\nAnswer:",
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
    hub = HubSpec("Rowan/hellaswag", (None,), "validation", "train")

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
    hub = HubSpec("openai/openai_humaneval", (None,), "test")
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


MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


class MATH(Benchmark):
    name = "math"
    description = "competition math with \\boxed answers (lm-eval hendrycks_math)"
    fixture = "math.jsonl"
    hub = HubSpec("EleutherAI/hendrycks_math", MATH_SUBJECTS, "test", "train")
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
    description = "yes/no questions needing implicit reasoning (lm-eval bigbench_strategyqa_multiple_choice)"
    fixture = "strategyqa.jsonl"
    hub = HubSpec("hails/bigbench", ("strategyqa_zero_shot",), "default")
    metrics = ("acc",)

    def to_item(self, r):
        if "inputs" in r:  # BIG-bench as lm-eval reads it: inputs, multiple_choice_targets/_scores
            targets = list(r["multiple_choice_targets"])
            gold = list(r["multiple_choice_scores"]).index(1)
            return Item(
                r["inputs"], targets[gold], {"idx": r.get("idx")}, tuple(f" {t}" for t in targets), gold
            )
        answer = r["answer"] if isinstance(r["answer"], bool) else str(r["answer"]).lower() in ("true", "yes")
        gold = 0 if answer else 1
        return Item(
            f"Q: {r['question']}\nA:", "yes" if answer else "no", {"qid": r.get("qid")}, (" yes", " no"), gold
        )


def benchmark_classes() -> dict[str, Any]:
    return {
        "gsm8k": GSM8K,
        "mmlu": MMLU,
        "arc_easy": lambda **kw: ARC("arc_easy", "arc_easy.jsonl", "ARC-Easy", **kw),
        "arc_challenge": lambda **kw: ARC("arc_challenge", "arc_challenge.jsonl", "ARC-Challenge", **kw),
        "hellaswag": HellaSwag,
        "humaneval": HumanEval,
        "math": MATH,
        "strategyqa": StrategyQA,
    }
