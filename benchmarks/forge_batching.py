"""Forge training throughput: one conversation per row in length-sorted micro-batches vs packed 512-token rows.

Both arms train the bundled shape from the same initial weights with AdamW on
the same curriculum stream (each step's conversations come from the seed and
the step), and the table gives trained (non-padding) tokens per second and the
ratio. Packed rows cost more on a CPU because attention over 512 positions,
and its backward in particular, is a large share of a step; a conversation is
~160 tokens. The arms alternate step blocks so that machine noise falls on
both. Also printed: each arm's mean training loss over the measured steps
(equal data, so a sanity check, not a quality comparison).

    python benchmarks/forge_batching.py            # ~1 minute on 2 cores
    python benchmarks/forge_batching.py --steps 20 --micro-tokens 2048
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from selfbake.forge.train import ForgeConfig, backward_step, build_model, step_batches
from selfbake.models.tiny import build_tokenizer


def train_steps(model, optimizer, tokenizer, config, steps):
    """Train ``steps`` steps from ``steps.start``; returns (tokens, seconds, mean loss)."""
    tokens, seconds, losses = 0, 0.0, []
    for step in steps:
        batches, step_tokens = step_batches(tokenizer, config, step)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = backward_step(model, batches)
        optimizer.step()
        seconds += time.perf_counter() - start
        tokens += step_tokens
        losses.append(loss)
    return tokens, seconds, statistics.mean(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=24, help="measured steps per arm (after 2 warm-up steps)"
    )
    parser.add_argument("--block", type=int, default=4, help="steps per arm before switching")
    parser.add_argument("--micro-tokens", type=int, default=1536)
    parser.add_argument("--batch-size", type=int, default=16, help="tokens per step in units of 512")
    args = parser.parse_args()
    tokenizer = build_tokenizer("llama")
    arms = {}
    for batching in ("by-length", "packed"):
        config = ForgeConfig(
            out="unused", batching=batching, batch_size=args.batch_size, micro_tokens=args.micro_tokens
        )
        model = build_model("bundled", tokenizer, 0)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        train_steps(model, optimizer, tokenizer, config, range(2))  # warm-up
        arms[batching] = {
            "config": config,
            "model": model,
            "optimizer": optimizer,
            "tokens": 0,
            "seconds": 0.0,
        }
        arms[batching]["losses"] = []
    for first in range(2, 2 + args.steps, args.block):
        for arm in arms.values():
            block = range(first, min(first + args.block, 2 + args.steps))
            tokens, seconds, loss = train_steps(
                arm["model"], arm["optimizer"], tokenizer, arm["config"], block
            )
            arm["tokens"] += tokens
            arm["seconds"] += seconds
            arm["losses"].append(loss)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    print(
        f"bundled shape, {args.steps} steps per arm of >= {args.batch_size * 512} tokens, blocks of {args.block}"
    )
    print(f"{'batching':<12} {'tokens':>9} {'seconds':>8} {'tokens/s':>9} {'mean loss':>9}")
    for name, arm in arms.items():
        rate = arm["tokens"] / arm["seconds"]
        arm["rate"] = rate
        print(
            f"{name:<12} {arm['tokens']:>9} {arm['seconds']:>8.1f} {rate:>9.0f} {statistics.mean(arm['losses']):>9.3f}"
        )
    print(f"ratio by-length / packed: {arms['by-length']['rate'] / arms['packed']['rate']:.2f}x")


if __name__ == "__main__":
    main()
