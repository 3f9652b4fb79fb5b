"""The bake benchmark's two arms run end to end at a tiny size and agree where the comparison needs them to.

The benchmark is how the bake's speed claim is measured; a change that breaks its
code path (it once failed in its FLOP count, under torch's FlopCounterMode) or makes the two
arms train on different data must fail here, not when someone runs it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bake_throughput_arms_agree(monkeypatch):
    bench = _benchmark("bake_throughput")
    monkeypatch.setitem(bench.SCENARIOS, "tiny", ("bundled", bench.PERSONAS["reasoning"], 16, 8, 1, False))
    ours = bench.run_selfbake("tiny")
    ref = bench.run_reference("tiny")
    assert ours["trajectories"] == ref["trajectories"]  # same sampled data in both arms
    assert ours["steps"] == ref["steps"] == 1
    assert ours["trajectory_tokens"] == ref["trajectory_tokens"]
    assert ours["kl_unbaked"] == pytest.approx(ref["kl_unbaked"], rel=1e-4)
    assert ours["val_kl"] == pytest.approx(ref["val_kl"], rel=1e-4)  # same step, same held-out KL
    assert ours["val_kl"] < ours["kl_unbaked"]
    assert ours["step_flops"] > 0 and ours["step_seconds"] > 0
