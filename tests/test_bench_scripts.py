"""The bake benchmark's two arms run end to end at a tiny size and agree where the comparison needs them to;
the lm-eval cross-check sees selfbake's benchmark prompts as lm-eval's and sees a drift.

The benchmark is how the bake's speed claim is measured; a change that breaks its
code path (it once failed in its FLOP count, under torch's FlopCounterMode) or makes the two
arms train on different data must fail here, not when someone runs it.
"""

from __future__ import annotations

import importlib.util
import sys
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


def test_lm_eval_crosscheck_finds_selfbake_prompts_identical_and_catches_a_drift(tmp_path, monkeypatch):
    """The cross-check compares against lm-eval's own task objects, so it must also see a difference."""
    pytest.importorskip("lm_eval")
    from selfbake.tasks.benchmarks import MMLU

    spec = importlib.util.spec_from_file_location(
        "lm_eval_crosscheck", ROOT / "benchmarks" / "lm_eval_crosscheck.py"
    )
    crosscheck = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "lm_eval_crosscheck", crosscheck)  # its dataclasses look their module up
    spec.loader.exec_module(crosscheck)
    checks = [c for c in crosscheck.CHECKS if c.label == "mmlu 5-shot"][:1] + [
        c for c in crosscheck.CHECKS if c.loader in ("strategyqa", "humaneval")
    ]

    def run(check):
        spec, files = crosscheck.prepare_data(check, tmp_path, {})
        ours = crosscheck.tasks.get(spec, num_fewshot=check.num_fewshot)
        return crosscheck.compare_requests(check, ours, crosscheck.lm_eval_task(check, files))

    for check in checks:
        result = run(check)
        assert result["items"] >= 16 and result["prompts"] == result["targets"] == result["items"], result
    monkeypatch.setattr(MMLU, "header", lambda self, item: "")  # the subject header selfbake once lacked
    drifted = run(checks[0])
    assert drifted["prompts"] == 0 and drifted["targets"] == drifted["items"]
