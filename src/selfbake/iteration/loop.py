"""``selfbake iterate``: expert iteration on verifiable problems, resumable, judged on a frozen test split.

The loop of STaR (Zelikman et al. 2022, arXiv 2203.14465), RFT (Yuan et al.
2023, arXiv 2308.01825) and ReST-EM (Singh et al. 2023, arXiv 2312.06585):
sample K solutions per train problem with the current model, keep the verified
ones (deduplicated, capped), fine-tune a LoRA on them, evaluate, repeat while
dev accuracy improves. Iteration 0 is the base model. The best iteration is
chosen on dev; its test accuracy is compared with the base's on the same
frozen test items (exact McNemar), and a harder difficulty band is reported as
a second test.

Every stage writes one file atomically (solutions/iter_N.jsonl,
adapters/iter_N/, evals/iter_N.json) and the stage to run next is read from
which files exist, so a killed run started again with the same command picks
up at the first missing file and ends with the numbers an uninterrupted run
gets (every stage is seeded by (seed, iteration) and reloads its inputs from
disk either way).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from selfbake import tasks
from selfbake.config import Config, comma_list
from selfbake.errors import UserError
from selfbake.iteration.solutions import Solution, distinct_n, hinted_prompt, leaks_hint, select, signature
from selfbake.models import load, render_chat
from selfbake.scoring import score
from selfbake.tasks.stats import rate_summary
from selfbake.tracking.progress import progress_bar


class IterateConfig(Config):
    model: str = Field("bundled", description="model: bundled, a directory, a hub id, random:llama-tiny")
    task: list[str] = Field(default_factory=lambda: ["brackets"], description="task families (repeatable)")
    iterations: int = Field(5, gt=0, description="iterations at most")
    samples_per_problem: int = Field(4, gt=0, description="K: solutions sampled per train problem")
    levels: list[int] = Field(
        default_factory=lambda: [2, 3], description="difficulty levels trained and tested"
    )
    hard_levels: list[int] = Field(
        default_factory=list, description="harder held-out band (default: the level above --levels)"
    )
    n_train: int = Field(400, gt=0, description="train problems")
    n_dev: int = Field(300, gt=0, description="dev problems (choose the best iteration, stop)")
    n_test: int = Field(300, gt=0, description="frozen test problems")
    n_hard: int = Field(200, ge=0, description="problems in the harder band (0 = skip)")
    temperature: float = Field(0.8, gt=0.0, description="sampling temperature for solutions and pass@K")
    max_new_tokens: int | None = Field(None, gt=0, description="answer length cap (default: the task's)")
    training: Literal["restart", "continue"] = Field(
        "continue",  # measured: ahead or level in every setting tried (docs/results/iterate-training.md)
        description="continue: train the previous adapter further; "
        "restart: each iteration trains a fresh LoRA on the base (ReST-EM)",
    )
    verify: Literal["answer", "code"] = Field(
        "answer",
        description="answer: the task's answer check; code: run the function against tests in the sandbox",
    )
    pass_at_k: bool = Field(
        True,
        description="also sample K answers per dev/test item for pass@K and distinct-2 (K times the cost)",
    )
    cap: int = Field(4, gt=0, description="kept solutions per problem at most (distinct signatures)")
    rationalise: bool = Field(False, description="re-ask unsolved problems with the answer as a hint (STaR)")
    lr: float = Field(2e-3, gt=0.0, description="LoRA learning rate")
    epochs: int = Field(3, gt=0, description="epochs over each iteration's kept solutions")
    rank: int = Field(8, gt=0, description="LoRA rank")
    train_batch_size: int = Field(16, gt=0, description="examples per optimiser step")
    patience: int = Field(
        2, gt=0, description="stop after this many iterations without a better dev accuracy"
    )
    batch_size: int = Field(64, gt=0, description="prompts per generation batch")
    seed: int = Field(0, description="random seed (splits, sampling, training)")
    dtype: str = Field("float32", description="float32 (CPU), bfloat16 or float16")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    out: str | None = Field(None, description="run directory (default runs/iterate-<time>)")
    overwrite: bool = Field(False, description="start over in --out, deleting an earlier run there")

    @field_validator("task", mode="before")
    @classmethod
    def _tasks(cls, value):
        return comma_list(value)

    @field_validator("levels", "hard_levels", mode="before")
    @classmethod
    def _levels(cls, value):
        return [int(x) for x in comma_list(value)]


class Problems:
    """Train / dev / test / hard items, across tasks, each tagged with its task; test frozen and hashed."""

    def __init__(self, config: IterateConfig):
        self.tasks = {name: tasks.get(name) for name in config.task}
        self.train: list[tuple[str, tasks.Item]] = []
        self.dev: list[tuple[str, tasks.Item]] = []
        self.test: list[tuple[str, tasks.Item]] = []
        self.hard: list[tuple[str, tasks.Item]] = []
        levels = config.levels
        above = max(levels) + 1
        self.hard_levels = config.hard_levels or (
            [above] if config.n_hard and all(above in t.difficulties for t in self.tasks.values()) else []
        )

        def per(n: int) -> int:
            return -(-n // len(levels))

        for name, task in self.tasks.items():
            for level in levels:
                s = tasks.splits(
                    task, per(config.n_train), per(config.n_dev), per(config.n_test), config.seed, level
                )
                self.train += [(name, i) for i in s.train]
                self.dev += [(name, i) for i in s.dev]
                self.test += [(name, i) for i in s.test]
            for level in self.hard_levels:
                hard = tasks.splits(
                    task, 0, 0, -(-config.n_hard // len(self.hard_levels)), config.seed, level
                )
                self.hard += [(name, i) for i in hard.test]
        test_keys = {i.key for _, i in self.test + self.hard}
        self.train = [(n, i) for n, i in self.train if i.key not in test_keys]  # never train on a test item
        self.dev = [(n, i) for n, i in self.dev if i.key not in test_keys]
        for split in ("train", "dev", "test"):
            if not getattr(self, split):
                raise UserError(
                    f"the {split} split is empty ({', '.join(config.task)} levels {levels}, hard levels "
                    f"{self.hard_levels}): every candidate is a test or hard item; use other --levels or --hard-levels"
                )

    def test_hash(self) -> str:
        return hashlib.sha256(",".join(sorted(i.key for _, i in self.test)).encode()).hexdigest()[:16]


_LOADED: dict[
    tuple, tuple
] = {}  # one inference model: an iteration's evaluation and the next sampling share it


def _load_model(config: IterateConfig, adapter: Path | None):
    stamp = max((f.stat().st_mtime_ns for f in adapter.iterdir()), default=0) if adapter is not None else None
    key = (config.model, config.dtype, config.device, config.seed, str(adapter), stamp)
    if key in _LOADED:
        return _LOADED[key]
    _LOADED.clear()
    model, tok = load(config.model, dtype=config.dtype, device=config.device, seed=config.seed)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    _LOADED[key] = (model, tok)
    return model, tok


def _score(model, tok, config, problems, *, k: int, seed: int, label: str = "scoring"):
    """Per task: records from selfbake.scoring (greedy when k == 1), in ``problems`` order (which
    ``Problems`` keeps grouped by task)."""
    records = []
    with progress_bar(len(problems) * k, label) as advance:
        for name, task in problems_tasks(problems).items():
            items = [i for n, i in problems if n == name]
            result = score(
                model,
                tok,
                task,
                items,
                chat=True,
                k=k,
                temperature=config.temperature,
                max_new_tokens=config.max_new_tokens,
                batch_size=config.batch_size,
                seed=seed,
                on_batch=advance,
            )
            records += [{**r, "task": name} for r in result.records]
    return records


def problems_tasks(problems) -> dict[str, Any]:
    return {name: tasks.get(name) for name in dict.fromkeys(n for n, _ in problems)}


def _verified(task, item, record: dict, *, rationalised: bool) -> list[Solution]:
    """The correct samples of one problem as solutions; the saved prompt is always the hint-free question."""
    return [
        Solution(
            item.key,
            task.prompt(item),
            text,
            item.metadata.get("difficulty"),
            signature(task, text),
            rationalised,
        )
        for text, ok in zip(record["samples"], record["verdicts"], strict=True)
        if ok and not (rationalised and leaks_hint(text, item))
    ]


def sample_stage(config: IterateConfig, problems: Problems, it: int, adapter: Path | None) -> dict[str, Any]:
    """Sample K per train problem, verify, (rationalise), dedup and cap; returns the stage's record."""
    model, tok = _load_model(config, adapter)
    k = config.samples_per_problem
    records = _score(
        model, tok, config, problems.train, k=k, seed=config.seed * 1000 + it, label=f"iter {it}: sampling"
    )
    attempts: list[Solution] = []
    solved: dict[str, bool] = {}
    for (name, item), r in zip(problems.train, records, strict=True):
        solved[item.key] = any(r["verdicts"])
        attempts += _verified(tasks.get(name), item, r, rationalised=False)
    if config.rationalise:
        unsolved = [(n, i) for n, i in problems.train if not solved[i.key]]
        hinted = [(n, tasks.Item(hinted_prompt(tasks.get(n), i), i.answer, i.metadata)) for n, i in unsolved]
        records = _score(
            model, tok, config, hinted, k=k, seed=config.seed * 1000 + it + 500, label=f"iter {it}: hinted"
        )
        for (name, item), r in zip(unsolved, records, strict=True):
            attempts += _verified(tasks.get(name), item, r, rationalised=True)
    kept = select(attempts, config.cap, config.seed * 1000 + it)
    by_level: dict[str, list[bool]] = {}
    for _, item in problems.train:
        by_level.setdefault(str(item.metadata.get("difficulty")), []).append(solved[item.key])
    return {
        "iteration": it,
        "sampled": len(problems.train) * k,
        "correct": len(attempts),
        "kept": len(kept),
        "solved_problems": sum(solved.values()),
        "solve_rate_by_difficulty": {lvl: round(sum(v) / len(v), 4) for lvl, v in sorted(by_level.items())},
        "solutions": [s.to_record() for s in kept],
    }


def evaluate(config: IterateConfig, problems: Problems, it: int, adapter: Path | None) -> dict[str, Any]:
    model, tok = _load_model(config, adapter)
    out: dict[str, Any] = {"iteration": it}
    for split, items in (("dev", problems.dev), ("test", problems.test), ("hard", problems.hard)):
        if not items:
            continue
        greedy = _score(model, tok, config, items, k=1, seed=config.seed, label=f"iter {it}: {split} greedy")
        flags = [bool(r["correct"]) for r in greedy]
        row = {"accuracy": rate_summary(flags), "flags": flags}
        if split in ("dev", "test") and config.pass_at_k and config.samples_per_problem > 1:
            k = config.samples_per_problem
            sampled = _score(
                model, tok, config, items, k=k, seed=config.seed + 7, label=f"iter {it}: {split} pass@{k}"
            )
            row[f"pass@{k}"] = round(sum(any(r["verdicts"]) for r in sampled) / len(sampled), 4)
            row["distinct_2"] = round(distinct_n([t for r in sampled for t in r["samples"]], 2), 4)
        out[split] = row
    return out


def _examples(tok, solutions: list[dict]) -> list[dict[str, str]]:
    return [{"prompt": render_chat(tok, s["prompt"]), "completion": s["output"]} for s in solutions]


def train_stage(
    config: IterateConfig, it: int, solutions: list[dict], previous: Path | None, target: Path
) -> None:
    from selfbake.iteration.train import sft_lora

    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _LOADED.clear()  # never two models in memory at once
    base, tok = load(config.model, dtype=config.dtype, device=config.device, seed=config.seed)
    init = previous if config.training == "continue" else None
    if not solutions:  # nothing verified: the iteration keeps the previous model
        if previous is not None:
            shutil.copytree(previous, tmp)
        else:
            from peft import LoraConfig, get_peft_model

            cfg = LoraConfig(r=config.rank, target_modules="all-linear", task_type="CAUSAL_LM")
            get_peft_model(base, cfg).save_pretrained(str(tmp))  # an empty adapter: the base itself
    else:
        sft_lora(
            base,
            tok,
            _examples(tok, solutions),
            tmp,
            init_adapter=init,
            rank=config.rank,
            alpha=2.0 * config.rank,
            lr=config.lr,
            epochs=config.epochs,
            batch_size=config.train_batch_size,
            seed=config.seed * 1000 + it,
        )
    for junk in tmp.glob("README.md"):
        junk.unlink()
    tmp.rename(target)
