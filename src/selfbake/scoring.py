"""Score a model on a task's items: the one runner that eval, bake and iterate share.

Three scorings, chosen by the task: ``generate`` (greedy answer, task verifier;
optionally with the task's tools through the tool-call loop), ``loglikelihood``
(multiple choice: acc and length-normalised acc_norm, as lm-eval) and ``code``
(k samples per item run against tests in the sandbox; unbiased pass@k).
Procedural tasks are rendered with the chat template (``system=None`` = no
system turn); benchmarks are scored on raw text unless ``chat=True``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from selfbake.generation import SamplingParams, TransformersBackend, run_tool_loop
from selfbake.generation.loglik import loglikelihood
from selfbake.models import render_chat
from selfbake.tasks.base import Item, Task
from selfbake.tasks.stats import pass_at_k, wilson
from selfbake.tools import get_tools


@dataclass
class TaskResult:
    task: str
    n: int
    accuracy: float
    ci95: tuple[float, float]
    baseline: float
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)
    metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "n": self.n,
            "ci95": [round(self.ci95[0], 4), round(self.ci95[1], 4)],
            "baseline": round(self.baseline, 4),
            **{k: round(v, 4) for k, v in self.metrics.items()},
        }


def _prompt_text(task: Task, item: Item, tokenizer, system: str | None, chat: bool) -> str:
    user = task.prompt(item)
    return render_chat(tokenizer, user, system) if chat else user


def score(
    model,
    tokenizer,
    task: Task,
    items: list[Item],
    *,
    system: str | None = None,
    tools: list[str] | None = None,
    chat: bool | None = None,
    k: int = 1,
    temperature: float = 0.8,
    sample_single: bool = False,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    tool_format: str = "auto",
    max_tool_calls: int = 4,
    on_batch: Callable[[int], None] | None = None,
) -> TaskResult:
    chat = task.chat if chat is None else chat
    if system is not None and not chat:
        chat = True  # a system prompt only exists inside a chat template
    if task.scoring == "loglikelihood":
        return _score_choices(model, tokenizer, task, items, system, chat, batch_size, on_batch)
    # progress in answers: per generation batch, or with tools per answer finished (a batch has rounds)
    backend = TransformersBackend(
        model, tokenizer, batch_size=batch_size, on_batch=None if tools else on_batch
    )
    greedy = k == 1
    params = SamplingParams(
        max_new_tokens=max_new_tokens or task.max_new_tokens,
        temperature=0.0 if greedy and not sample_single else temperature,
        stop=list(task.stop),
        n=k,
        seed=seed,
    )
    outputs: list[list[str]]
    calls: list[list[dict]] = [[] for _ in items]
    if tools:
        workdir = tempfile.mkdtemp(prefix=f"selfbake-{task.name}-")
        bound = get_tools(tools, task.prepare(workdir))
        conversations = [
            ([{"role": "system", "content": system}] if system is not None else [])
            + [{"role": "user", "content": task.prompt(item)}]
            for item in items
        ]
        results = run_tool_loop(
            backend,
            conversations,
            bound,
            params,
            call_format=tool_format,
            max_calls=max_tool_calls,
            on_done=on_batch,
        )
        outputs = [[r.text for r in results[i * k : (i + 1) * k]] for i in range(len(items))]
        calls = [[c for r in results[i * k : (i + 1) * k] for c in r.calls] for i in range(len(items))]
    else:
        prompts = [_prompt_text(task, item, tokenizer, system, chat) for item in items]
        samples = backend.generate(prompts, params)
        outputs = [[s.text for s in samples[i * k : (i + 1) * k]] for i in range(len(items))]
    records, correct = [], []
    pass_rates: dict[int, list[float]] = {j: [] for j in (1, k) if j <= k}
    for index, (item, texts) in enumerate(zip(items, outputs, strict=True)):
        verdicts = [task.verify(item, text) for text in texts]
        hit = verdicts[0] if greedy else pass_at_k(k, sum(verdicts), 1)
        correct.append(hit)
        for j in pass_rates:
            pass_rates[j].append(pass_at_k(k, sum(verdicts), j))
        record = {
            "task": task.name,
            "index": index,
            "key": item.key,
            "prompt": task.prompt(item),
            "system": system,
            "output": texts[0],
            "extracted": task.extract(texts[0]),
            "reference": item.answer,
            "correct": bool(verdicts[0]) if greedy else sum(verdicts) / k,
            "difficulty": item.metadata.get("difficulty"),
        }
        if tools:
            record["tool_calls"] = calls[index]
        if k > 1:
            record.update(samples=texts, verdicts=verdicts)
        if hasattr(task, "verify_mode"):
            record["strict_correct"] = task.verify_mode(item, texts[0], "strict")
        records.append(record)
    n = len(items)
    accuracy = sum(correct) / n if n else 0.0
    metrics: dict[str, float] = {}
    if task.scoring == "code" or k > 1:
        metrics.update({f"pass@{j}": sum(v) / n for j, v in pass_rates.items() if n})
    if records and "strict_correct" in records[0]:
        metrics["strict_match"] = sum(r["strict_correct"] for r in records) / n
        metrics["flexible_extract"] = accuracy
    if tools:
        metrics["tool_call_rate"] = sum(bool(r["tool_calls"]) for r in records) / n if n else 0.0
    return TaskResult(
        task.name, n, accuracy, wilson(round(accuracy * n), n), task.baseline(items), records, metrics
    )


def _score_choices(model, tokenizer, task, items, system, chat, batch_size, on_batch) -> TaskResult:
    requests, owners = [], []
    for index, item in enumerate(items):
        context = _prompt_text(task, item, tokenizer, system, chat)
        for choice in item.choices:
            requests.append((context, choice))
            owners.append(index)
    scores = loglikelihood(model, tokenizer, requests, batch_size=batch_size)
    if on_batch:
        on_batch(len(items))
    records, acc, acc_norm = [], 0, 0
    cursor = 0
    for index, item in enumerate(items):
        lls = [scores[cursor + j][0] for j in range(len(item.choices))]
        cursor += len(item.choices)
        pick = max(range(len(lls)), key=lambda j: lls[j])
        # acc_norm divides by the choice's length in characters, without the target delimiter (lm-eval)
        lengths = [
            len(c) - len(task.target_delimiter) if c.startswith(task.target_delimiter) else len(c)
            for c in item.choices
        ]
        pick_norm = max(range(len(lls)), key=lambda j: lls[j] / max(lengths[j], 1))
        acc += pick == item.gold
        acc_norm += pick_norm == item.gold
        records.append(
            {
                "task": task.name,
                "index": index,
                "key": item.key,
                "prompt": task.prompt(item),
                "system": system,
                "output": item.choices[pick],
                "extracted": item.choices[pick],
                "reference": item.choices[item.gold],
                "correct": pick == item.gold,
                "correct_norm": pick_norm == item.gold,
                "loglikelihoods": [round(x, 6) for x in lls],
            }
        )
    n = len(items)
    metrics = {"acc_norm": acc_norm / n} if "acc_norm" in getattr(task, "metrics", ()) and n else {}
    accuracy = acc / n if n else 0.0
    return TaskResult(task.name, n, accuracy, wilson(acc, n), task.baseline(items), records, metrics)
