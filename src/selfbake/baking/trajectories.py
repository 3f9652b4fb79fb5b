"""Trajectories for baking: x0 questions, samples from the prompted teacher, and their token layout.

Prompt Baking (Bhargava et al., arXiv 2409.13697) minimises
KL(P(.|u, x0) || P_theta(.|x0)) over trajectories y sampled from the prompted
model. This module makes the (x0, y) pairs and lays them out as tokens:

- x0 comes from a task generator (``task:arithmetic``, ``task:bignum:1,2`` for
  difficulty levels; train-split items only, never the frozen test) or a JSONL
  file with one question per line (key ``x0``, ``question``, ``prompt`` or
  ``text``).
- y is sampled in batches with the KV cache of the shared prefix (the system
  turn) reused (``TransformersBackend(reuse_prefix=True)``). With tools, y is a
  whole tool-use exchange: the model's turns are trained, tool results are
  context only.
- ``encode`` renders the same continuation under the teacher's prompt (u as the
  system turn) and the student's (no system turn at all), and marks which
  trajectory tokens the model produced. The trajectory tokens are identical
  for both; only the prompt differs, and the student's never contains u.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfbake import tasks
from selfbake.errors import UserError
from selfbake.generation import SamplingParams, TransformersBackend, run_tool_loop
from selfbake.models import render_chat, render_messages
from selfbake.tasks.base import Item
from selfbake.tools import get_tools


@dataclass
class Question:
    text: str
    item: Item | None = None  # set when x0 comes from a task, for accuracy


@dataclass
class Trajectory:
    x0: str
    continuation: list[dict[str, Any]]  # assistant (and tool) messages after the user turn
    finish_reason: str = "eos"
    history: list[dict[str, Any]] = field(default_factory=list)
    # the sampler's own raw logits at each generated token ([tokens, vocab]) and those tokens, when kept:
    # they are the teacher's next-token distributions, so the bake need not recompute them
    sampled_ids: list[int] | None = field(default=None, repr=False, compare=False)
    sampled_logits: Any = field(default=None, repr=False, compare=False)

    @property
    def answer(self) -> str:
        return self.continuation[-1]["content"] if self.continuation else ""

    def to_record(self) -> dict:
        return {
            "x0": self.x0,
            "continuation": self.continuation,
            "finish_reason": self.finish_reason,
            "history": self.history,
        }

    @classmethod
    def from_record(cls, record: dict) -> Trajectory:
        return cls(record["x0"], record["continuation"], record["finish_reason"], record.get("history", []))


@dataclass
class Encoded:
    prompt_ids: list[int]
    trajectory_ids: list[int]
    trained: list[bool]  # per trajectory token: produced by the model (KL applies) or context


def parse_x0(spec: str) -> tuple[str, Any]:
    """('task', (name, levels)) or ('file', path) from ``task:NAME[:L1,L2]`` or a path."""
    if spec.startswith("task:"):
        parts = spec.split(":")
        name = parts[1]
        if name not in tasks.names():
            raise UserError(f"unknown task '{name}' in --x0 {spec} (tasks: {', '.join(tasks.names())})")
        levels: tuple[int, ...] = ()
        if len(parts) > 2 and parts[2]:
            try:
                levels = tuple(int(x) for x in parts[2].split(","))
            except ValueError:
                raise UserError(
                    f"bad difficulty levels in --x0 {spec}: expected e.g. task:{name}:2,3"
                ) from None
        return "task", (name, levels)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--x0 {spec}: not a task spec (task:NAME) and no such file")
    return "file", path


def load_questions(spec: str, n: int, seed: int, default_levels: tuple[int, ...] = (2, 3)) -> list[Question]:
    """n x0 questions. Task items come from the train split, so the frozen test stays unseen."""
    kind, value = parse_x0(spec)
    if kind == "task":
        name, levels = value
        task = tasks.get(name)
        levels = levels or default_levels
        per = -(-n // len(levels))
        items: list[Item] = []
        for level in levels:
            items += tasks.splits(task, per, 0, 50, seed=seed, difficulty=level).train
        random.Random(seed).shuffle(items)
        return [Question(task.prompt(item), item) for item in items[:n]]
    questions = []
    for number, line in enumerate(value.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{value}:{number}: not JSON ({exc.msg})") from None
        text = next(
            (row[k] for k in ("x0", "question", "prompt", "text") if isinstance(row, dict) and k in row), None
        )
        if not isinstance(text, str) or not text.strip():
            raise UserError(
                f"{value}:{number}: expected an object with a non-empty 'x0' (or question/prompt/text)"
            )
        questions.append(Question(text))
    if not questions:
        raise UserError(f"{value}: no questions")
    random.Random(seed).shuffle(questions)
    return (questions * (-(-n // len(questions))))[:n]


def sample(
    model,
    tokenizer,
    system: str | None,
    questions: list[Question],
    params: SamplingParams,
    *,
    tools: list[str] | None = None,
    history: list[dict] | None = None,
    batch_size: int = 64,
    reuse_prefix: bool = True,
    in_place_cache: bool = True,
    max_tool_calls: int = 4,
    keep_logits: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> list[Trajectory]:
    """One trajectory per question from ``model`` under ``system`` (the teacher's view).

    ``keep_logits``: keep each trajectory's raw sampling logits (single-turn trajectories only).
    ``on_batch(n)``: told how many trajectories each generation batch (or tool round) finished.
    """
    backend = TransformersBackend(
        model,
        tokenizer,
        batch_size=batch_size,
        reuse_prefix=reuse_prefix,
        in_place_cache=in_place_cache,
        on_batch=None if tools else on_batch,
    )
    history = list(history or [])
    if tools:
        bound = get_tools(list(tools), {})
        convs = [
            ([{"role": "system", "content": system}] if system is not None else [])
            + history
            + [{"role": "user", "content": q.text}]
            for q in questions
        ]
        states = run_tool_loop(backend, convs, bound, params, max_calls=max_tool_calls, on_done=on_batch)
        return [
            Trajectory(q.text, s.messages, s.finish_reason, history)
            for q, s in zip(questions, states, strict=True)
        ]
    prompts = [render_chat(tokenizer, q.text, system, history=history) for q in questions]
    if keep_logits:
        params = params.model_copy(update={"return_logits": True})
    samples = backend.generate(prompts, params)
    return [
        Trajectory(
            q.text,
            [{"role": "assistant", "content": s.text}],
            s.finish_reason,
            history,
            sampled_ids=s.token_ids if keep_logits else None,
            sampled_logits=s.logits if keep_logits else None,
        )
        for q, s in zip(questions, samples, strict=True)
    ]


def _conversation(system: str | None, trajectory: Trajectory) -> list[dict]:
    head = [{"role": "system", "content": system}] if system is not None else []
    return head + trajectory.history + [{"role": "user", "content": trajectory.x0}]


def encode(tokenizer, system: str | None, trajectory: Trajectory) -> Encoded:
    """Prompt ids under ``system`` (None = no system turn) + the trajectory's ids and trained mask."""
    head = _conversation(system, trajectory)
    prompt = render_messages(tokenizer, head, add_generation_prompt=True)
    messages = head + trajectory.continuation
    full = render_messages(tokenizer, messages, add_generation_prompt=False)
    if not full.startswith(prompt):
        raise ValueError(
            "the chat template does not render conversations prefix-stably; cannot align trajectories"
        )
    spans = []
    for k, message in enumerate(trajectory.continuation):
        if message["role"] != "assistant":
            continue
        before = render_messages(tokenizer, head + trajectory.continuation[:k], add_generation_prompt=True)
        after = render_messages(tokenizer, messages[: len(head) + k + 1], add_generation_prompt=False)
        segment = after[len(before) :]
        content = message["content"].strip()
        at = segment.find(content) if content else 0
        start = len(before) + max(at, 0)
        end = start + len(content)
        ended = k == len(trajectory.continuation) - 1 and trajectory.finish_reason == "eos"
        eos = tokenizer.eos_token or ""
        rest = after[end:]
        if ended and eos and rest.lstrip(" ").startswith(eos):
            end += rest.index(eos) + len(eos)  # the model chose to end its turn: train that token too
        spans.append((start - len(prompt), end - len(prompt)))
    remainder = full[len(prompt) :]
    enc = tokenizer(remainder, add_special_tokens=False, return_offsets_mapping=True)
    trained = [any(a <= s < b for a, b in spans) for s, _ in enc["offset_mapping"]]
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    return Encoded(prompt_ids, list(enc["input_ids"]), trained)


def encode_pair(tokenizer, system: str, trajectory: Trajectory) -> tuple[Encoded, Encoded]:
    """(teacher, student) encodings of one trajectory; the student's prompt has no system turn."""
    teacher = encode(tokenizer, system, trajectory)
    student = encode(tokenizer, None, trajectory)
    if teacher.trajectory_ids != student.trajectory_ids:
        raise ValueError(
            "teacher and student trajectories tokenised differently; the template is not turn-local"
        )
    return teacher, student
