"""Small real run directories for tests that read what a command writes (loading a bake, reports, browser)."""

from __future__ import annotations

from pathlib import Path

from selfbake.cli import main

TINY_BAKE = [
    "--model",
    "random:llama-tiny",
    "--prompt",
    "Always answer in French.",
    "--n-train",
    "8",
    "--n-val",
    "4",
    "--max-new-tokens",
    "16",
    "--train-batch-size",
    "8",
    "--max-epochs",
    "2",
]


def tiny_bake(out: Path, *extra: str) -> Path:
    """A real ``selfbake bake`` on random:llama-tiny (about 15 s on 2 cores); ``extra`` adds flags."""
    code = main(["bake", *TINY_BAKE, "--measure-n", "0", "--out", str(out), *extra])
    assert code == 0, f"tiny bake failed with exit {code}"
    return out


def tiny_eval(out: Path, model: str = "random:llama-tiny", *extra: str) -> Path:
    """A real ``selfbake eval`` of 8 arithmetic items, greedy, 8 new tokens."""
    args = ["eval", "--model", model, "--task", "arithmetic", "--n", "8", "--max-new-tokens", "8"]
    code = main([*args, "--out", str(out), *extra])
    assert code == 0, f"tiny eval failed with exit {code}"
    return out
