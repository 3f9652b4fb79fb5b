"""``selfbake forge``: train the bundled model from scratch on the curriculum, on CPU.

A plain PyTorch loop (AdamW, warm-up then cosine decay, fp32), loss on
assistant tokens only. Every batch is generated from ``Random(f"{seed}:{step}")``
so a run is reproducible from its seed and a killed run resumes exactly from
its last checkpoint. ``budget_minutes`` only caps wall time: the shipped
model's recipe is a fixed number of steps.

Batching ``packed`` (the default) fills rows of 512 tokens with whole
conversations. ``by-length`` gives each conversation its own row from position
0, as at inference, in micro-batches of similar lengths whose summed token
losses make one step: on 2 CPU cores it trains ~1.4x more tokens per second,
because CPU attention's backward dominates a 512-token row
(``benchmarks/forge_batching.py``). The shipped model was made with
``--seed 1 --steps 1650 --batching by-length --paraphrases extended`` (its model
card and the README give the measured recipes); the defaults stay those of the
first shipped model, whose stream a test pins.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
import time
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, field_validator, model_validator
from transformers import LlamaForCausalLM

from selfbake.config import Config
from selfbake.forge.curriculum import example, parse_mix
from selfbake.models.tiny import build_tokenizer, init_model

SHAPES = {  # hidden, layers, heads, kv heads, intermediate
    "bundled": (160, 5, 5, 5, 448),
    "quick": (96, 3, 4, 2, 256),
}


class ForgeConfig(Config):
    """Settings of ``selfbake forge``."""

    out: str = Field(description="output directory: a Hugging Face model directory")
    seed: int = Field(0, description="seed of the curriculum and the initial weights")
    quick: bool = Field(False, description="a small model in about a minute, for tests")
    steps: int | None = Field(
        None, gt=0, description="optimizer steps (default 1350, quick 150; the shipped model: 1650)"
    )
    budget_minutes: float = Field(
        30.0, gt=0, description="stop training after this many minutes, whatever the step"
    )
    batch_size: int = Field(16, gt=0, description="tokens per step, in units of 512")
    batching: Literal["packed", "by-length"] = Field(
        "packed",
        description="packed: rows of 512 tokens filled with whole conversations; "
        "by-length: one conversation per row, micro-batches of similar lengths (~1.4x tokens/s on CPU; "
        "the shipped model's recipe)",
    )
    mix: str = Field(
        "",
        description="curriculum weight overrides, e.g. 'tools=0.22,tools.bignum=0.45' (empty: the shipped mix)",
    )
    paraphrases: Literal["core", "extended"] = Field(
        "core",
        description="system-prompt wordings: core or extended (the shipped model's recipe: half the time one of "
        "~130 more paraphrases, for generalisation to unseen ones)",
    )
    bignum_rounds: int = Field(
        1,
        ge=1,
        le=4,
        description="a bignum tool chat asks 1..N questions in turn (N > 1: more practice copying long tool "
        "results per system prompt; 1 is the shipped recipe)",
    )
    elementary_steps: int = Field(
        0,
        ge=0,
        description="the first N steps train on single-digit operations and bignum tool chats only "
        "(elementary skills first; 0 is the shipped recipe; 300 was worse on every hard bar: docs/results/forge-recipes.md, recipe 15)",
    )
    micro_tokens: int = Field(1536, gt=0, description="padded tokens per micro-batch (by-length batching)")
    lr: float = Field(2e-3, gt=0, description="peak learning rate")
    warmup: int = Field(100, ge=0, description="warm-up steps")
    shape: Literal["bundled", "quick"] | None = Field(None, description="model shape (default from --quick)")
    checkpoint_every: int = Field(200, gt=0, description="save resumable state every N steps")
    measure: bool = Field(True, description="measure the behaviour table after training")
    measure_n: int = Field(300, gt=0, description="items per behaviour-table cell")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: all cores)")

    @field_validator("mix")
    @classmethod
    def _known_mix(cls, value: str) -> str:
        parse_mix(value)
        return value

    @model_validator(mode="after")
    def _elementary_within_run(self):
        if self.elementary_steps >= total_steps(self):
            raise ValueError(
                f"elementary_steps ({self.elementary_steps}) must be fewer than the run's "
                f"{total_steps(self)} steps"
            )
        return self


def total_steps(config: ForgeConfig) -> int:
    return config.steps or (150 if config.quick else 1350)


def chatml_segments(messages: list[dict]) -> list[tuple[str, int]]:
    """The bundled template's text as (segment, is_assistant) pairs; equal to render_messages (tested)."""
    segments = [("<s>", 0)]
    for message in messages:
        is_assistant = message["role"] == "assistant"
        segments.append((f"<|im_start|>{message['role']}\n", 0))
        segments.append((f"{message['content']}<|im_end|>", int(is_assistant)))
        segments.append(("\n", 0))
    return segments


@functools.lru_cache(maxsize=4)
def byte_level_table(tokenizer) -> tuple[dict[str, list[int]], dict[str, int], re.Pattern]:
    """The bundled tokenizer as lookups: character -> ids (filled on use), special token -> id, a splitter.

    The tokenizer is byte-level with no merges, so a text's ids are its characters' ids in order.
    """
    if json.loads(tokenizer.backend_tokenizer.to_str())["model"].get("merges"):
        raise ValueError("forge's encoding needs the bundled byte-level tokenizer (no merges)")
    specials = dict(tokenizer.get_added_vocab())
    splitter = re.compile("(" + "|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True)) + ")")
    return {}, specials, splitter


def encode_text(tokenizer, text: str) -> list[int]:
    """``tokenizer(text, add_special_tokens=False).input_ids`` for the bundled tokenizer, faster (tested)."""
    char_ids, specials, splitter = byte_level_table(tokenizer)
    ids: list[int] = []
    for piece in splitter.split(text):
        if piece in specials:
            ids.append(specials[piece])
            continue
        for char in piece:
            if char not in char_ids:
                char_ids[char] = tokenizer(char, add_special_tokens=False).input_ids
            ids.extend(char_ids[char])
    return ids


def encode(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Token ids and a loss mask that is 1 on assistant replies and their end-of-turn token."""
    ids: list[int] = []
    mask: list[int] = []
    for text, flag in chatml_segments(messages):
        new = encode_text(tokenizer, text)
        ids.extend(new)
        mask.extend([flag] * len(new))
    return ids, mask


def masked_labels(ids: list[int], mask: list[int]) -> torch.Tensor:
    """The ids where the loss mask is 1, -100 (ignored) elsewhere."""
    return torch.tensor([t if m else -100 for t, m in zip(ids, mask, strict=True)])


def make_batch(tokenizer, seed: int, step: int, batch_size: int, row_len: int = 512, mix=None, **curriculum):
    """``batch_size`` rows of ``row_len`` tokens, packed with whole conversations (no padding waste)."""
    rng = random.Random(f"{seed}:{step}")
    input_ids = torch.full((batch_size, row_len), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((batch_size, row_len), -100, dtype=torch.long)
    attention = torch.zeros((batch_size, row_len), dtype=torch.long)
    pending = None
    for r in range(batch_size):
        cursor = 0
        while True:
            ids, mask = pending or encode(tokenizer, example(rng, mix, **curriculum))
            pending = None
            if cursor + len(ids) > row_len:
                pending = (ids, mask) if len(ids) <= row_len else None  # starts the next row
                break
            input_ids[r, cursor : cursor + len(ids)] = torch.tensor(ids)
            labels[r, cursor : cursor + len(ids)] = masked_labels(ids, mask)
            cursor += len(ids)
        attention[r, :cursor] = 1
    return input_ids, attention, labels


def make_length_batches(
    tokenizer, seed: int, step: int, tokens: int, micro_tokens: int, mix=None, **curriculum
):
    """Conversations for ``tokens`` tokens, one per row, as micro-batches of similar lengths.

    Returns (input_ids, labels) pairs right-padded per micro-batch, longest first, and the token
    count. Padding
    sits after each conversation, so causal attention never lets a real token see it.
    """
    rng = random.Random(f"{seed}:{step}")
    conversations, total = [], 0
    while total < tokens:
        ids, mask = encode(tokenizer, example(rng, mix, **curriculum))
        conversations.append((ids, mask))
        total += len(ids)
    conversations.sort(key=lambda c: -len(c[0]))
    groups: list[list] = []
    for conversation in conversations:
        if groups and (len(groups[-1]) + 1) * len(groups[-1][0][0]) <= micro_tokens:
            groups[-1].append(conversation)
        else:
            groups.append([conversation])
    batches = []
    for group in groups:
        width = len(group[0][0])
        input_ids = torch.full((len(group), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(group), width), -100, dtype=torch.long)
        for r, (ids, mask) in enumerate(group):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            labels[r, : len(ids)] = masked_labels(ids, mask)
        batches.append((input_ids, labels))
    return batches, total


def step_batches(tokenizer, config: ForgeConfig, step: int):
    """One optimizer step's micro-batches as (input_ids, attention_mask or None, labels), and its token count."""
    mix = parse_mix(config.mix)
    curriculum = {
        "extended": config.paraphrases == "extended",
        "bignum_rounds": config.bignum_rounds,
        "elementary": step < config.elementary_steps,
    }
    if config.batching == "packed":
        input_ids, attention, labels = make_batch(
            tokenizer, config.seed, step, config.batch_size, mix=mix, **curriculum
        )
        return [(input_ids, attention, labels)], int(attention.sum())
    batches, tokens = make_length_batches(
        tokenizer, config.seed, step, config.batch_size * 512, config.micro_tokens, mix, **curriculum
    )
    return [(ids, None, labels) for ids, labels in batches], tokens


def backward_step(model, batches) -> float:
    """Accumulate the gradient of the step's mean token loss over its micro-batches; returns that loss."""
    targets = sum(int((labels[:, 1:] != -100).sum()) for _, _, labels in batches)
    loss = 0.0
    for input_ids, attention, labels in batches:
        part = model(
            input_ids=input_ids, attention_mask=attention, labels=labels, num_items_in_batch=targets
        ).loss
        part.backward()
        loss += part.item()
    return loss


def build_model(shape: str, tokenizer, seed: int) -> LlamaForCausalLM:
    return init_model(tokenizer, SHAPES[shape], seed=seed, max_positions=1024, tie_embeddings=True)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(config: ForgeConfig, log=None, advance=None):
    """Train (or resume) and return (model, tokenizer, stats)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    shape = config.shape or ("quick" if config.quick else "bundled")
    total = total_steps(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer("llama")
    model = build_model(shape, tokenizer, config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=0.1)
    state_path = out / "forge_state.pt"
    step, tokens, seconds = 0, 0, 0.0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, tokens, seconds = state["step"], state["tokens"], state["seconds"]
        if advance:
            advance(step)
    model.train()
    started = time.perf_counter() - seconds
    stopped_by_budget = False
    while step < total:
        if time.perf_counter() - started > config.budget_minutes * 60:
            stopped_by_budget = True
            break
        batches, step_tokens = step_batches(tokenizer, config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total, config.lr, config.warmup)
        optimizer.zero_grad(set_to_none=True)
        loss = backward_step(model, batches)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        tokens += step_tokens
        if log and (step % 20 == 0 or step == total):
            elapsed = time.perf_counter() - started
            log(
                step,
                loss=round(loss, 4),
                lr=optimizer.param_groups[0]["lr"],
                tokens=tokens,
                tokens_per_s=round(tokens / elapsed, 1),
            )
        if advance:
            advance(1)
        if step % config.checkpoint_every == 0 and step < total:
            seconds = time.perf_counter() - started
            tmp = state_path.with_suffix(".tmp")
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "tokens": tokens,
                    "seconds": seconds,
                },
                tmp,
            )
            tmp.replace(state_path)
    model.eval()
    stats = {
        "steps": step,
        "planned_steps": total,
        "stopped_by_budget": stopped_by_budget,
        "train_tokens": tokens,
        "train_seconds": round(time.perf_counter() - started, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "shape": shape,
    }
    return model, tokenizer, stats
