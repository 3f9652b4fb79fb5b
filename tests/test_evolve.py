"""selfbake evolve: racing, plateau rule, cache, locked test split, end to end, kill-and-resume, bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfbake.cli import main
from selfbake.evolve import racing
from selfbake.evolve.cache import EvalCache
from selfbake.evolve.evaluator import Evaluator, beats, paired
from selfbake.evolve.loop import PlateauTracker
from selfbake.evolve.proposers import Proposal, propose_list, validate
from selfbake.evolve.state import EXIT_AFTER_ENV
from selfbake.evolve.suites import LockedSplitError, Suite, SuiteSplits

ROOT = Path(__file__).resolve().parents[1]

TOOL_SUITE = """name: tool
tasks:
  - {task: bignum, levels: [1], tools: [calculator], dev: 6, confirm: 4, test: 4}
"""
BENCH_SUITE = """name: benchmark
tasks:
  - {task: arithmetic, levels: [1], dev: 4, confirm: 4, test: 4}
  - {task: rpn, levels: [1], weight: 2, dev: 4, confirm: 4, test: 4}
"""
PROMPTS = (
    "Use the calculator tool for arithmetic.\nThink step by step.\nCheck your answer at the end.\nSay hi.\n"
)


def scripted(table):
    return lambda c, start, stop: table[c][start:stop]


def test_racing_drops_a_clearly_worse_candidate_and_keeps_a_tie():
    good = [True] * 40
    table = [good, list(good), [False] * 40]  # 0 and 1 tie exactly; 2 is always wrong
    result = racing.race(3, 40, scripted(table), alpha=0.05, first=10, growth=1.5)
    assert result.entrants[2].dropped_round == 1  # 10 discordant items: p = 0.002 < 0.05
    assert "McNemar" in result.entrants[2].drop_reason
    assert result.entrants[0].alive and result.entrants[1].alive  # a tie is never dropped
    assert result.winner == 0
    # the dropped one was scored on 10 items only; the two tied ones on all 40
    assert len(result.entrants[2].outcomes) == 10 and len(result.entrants[1].outcomes) == 40
    assert result.metric_calls == 3 * 10 + 2 * 30 < racing.full_evaluation(3, 40, scripted(table))[1]


def test_racing_keeps_a_slightly_worse_candidate_it_cannot_tell_apart():
    a = [True, False] * 20
    b = list(a)
    b[0] = False  # one discordant item: p = 1
    result = racing.race(2, 40, scripted([a, b]), alpha=0.05)
    assert all(e.alive for e in result.entrants) and result.winner == 0


def test_racing_stops_at_the_budget_and_the_leader_wins():
    table = [[True] * 50, [i % 2 == 0 for i in range(50)]]
    result = racing.race(2, 50, scripted(table), first=10, growth=2.0, budget=25, complete_winner=False)
    assert result.stopped == "budget" and result.metric_calls == 20 and result.winner == 0


def test_racing_completes_a_lone_winner_on_all_dev_items():
    result = racing.race(1, 30, scripted([[True] * 30]))
    assert len(result.entrants[0].outcomes) == 30 and result.metric_calls == 30


def test_plateau_needs_both_kinds_twice_in_a_row():
    t = PlateauTracker(2)
    assert not t.update("tool", True)
    assert not t.update("benchmark", True)
    assert not t.update("tool", False)  # a kept layer resets the tool streak
    assert not t.update("benchmark", True)  # benchmark: 2 in a row, tool: 0
    assert not t.update("tool", True)
    assert not t.update("benchmark", True)
    assert t.update("tool", True)  # tool 2, benchmark 3


def test_keep_rule_needs_significance_and_min_delta():
    assert beats({"diff": 0.2, "p_value": 0.01}, 0.05, 0.5)
    assert not beats({"diff": 0.2, "p_value": 0.2}, 0.05, 0.5)  # not significant
    assert not beats({"diff": 0.004, "p_value": 0.01}, 0.05, 0.5)  # 0.4 points < 0.5


def test_proposals_invalid_ones_dropped_and_counted():
    seen = {"think step by step."}
    found = validate(
        [Proposal("", "self"), Proposal("x" * 50, "self"), Proposal("Think  step by step.", "self"),
         Proposal("Check.", "self"), Proposal("check.", "self")],
        seen, max_chars=20,
    )  # fmt: skip
    assert [p.dropped for p in found] == [
        "empty", "longer than 20 characters", "duplicate of an earlier candidate", None,
        "duplicate of an earlier candidate",
    ]  # fmt: skip
    assert [p.text for p in propose_list(["a", "b", "c"], k=2, cycle=2)] == ["c", "a"]


def _splits(seed=0):
    suite = Suite(name="tool", tasks=[{"task": "bignum", "levels": [1], "dev": 5, "confirm": 5, "test": 5}])
    return SuiteSplits(suite, seed)


def test_test_split_is_locked_until_the_final_report_and_fixed_across_seeds():
    splits = _splits()
    with pytest.raises(LockedSplitError):
        splits.test()
    dev_keys = {r.item.key for r in splits.dev()} | {r.item.key for r in splits.confirm()}
    assert not dev_keys & splits.test_keys_unchecked()  # no test item is a dev/confirm item
    other = _splits(seed=5)
    assert {r.item.key for r in other.dev()} != {r.item.key for r in splits.dev()}  # --seed moves dev
    splits.unlock_test()
    other.unlock_test()
    assert [r.item.key for r in splits.test()] == [r.item.key for r in other.test()]  # test does not move


class _State:
    fingerprint = "state-a"

    def model(self):
        return None


def test_cache_hit_on_rescore_and_across_a_restart(tmp_path, monkeypatch):
    calls = []

    def fake_score(model, tok, task, items, **kw):
        calls.append(len(items))

        class R:
            records = [{"correct": i % 2 == 0} for i in range(len(items))]

        return R

    monkeypatch.setattr("selfbake.evolve.evaluator.score", fake_score)
    splits = _splits()
    items = splits.dev()
    ev = Evaluator(EvalCache(tmp_path / "c.jsonl"), None, batch_size=4, seed=0)
    first = ev.outcomes(_State(), splits, "p", items, "s1")
    again = ev.outcomes(_State(), splits, "p", items, "s1")
    assert first == again and calls == [5] and ev.calls("s1") == 5
    ev2 = Evaluator(EvalCache(tmp_path / "c.jsonl"), None, batch_size=4, seed=0)  # a resumed run
    assert ev2.outcomes(_State(), splits, "p", items, "s1") == first and calls == [5]
    assert ev2.calls("s1") == 5  # a resumed stage reports the scorings its killed attempt made
    ev2.outcomes(_State(), splits, "other prompt", items, "s2")
    assert calls == [5, 5]  # another system prompt is another key
    cmp = paired(splits, items, [False] * 5, first)
    assert cmp["n"] == 5 and cmp["diff"] == pytest.approx(0.6)


def _args(tmp_path: Path, out: Path) -> list[str]:
    (tmp_path / "tool.yaml").write_text(TOOL_SUITE)
    (tmp_path / "bench.yaml").write_text(BENCH_SUITE)
    (tmp_path / "prompts.txt").write_text(PROMPTS)
    return [
        "evolve", "--model", "random:llama-tiny", "--tool-suite", str(tmp_path / "tool.yaml"),
        "--benchmark-suite", str(tmp_path / "bench.yaml"), "--proposer", f"list:{tmp_path / 'prompts.txt'}",
        "--k", "2", "--max-cycles", "2", "--alpha", "1", "--min-delta", "-100", "--race-first", "3",
        "--bake-n-train", "4", "--bake-n-val", "2", "--bake-max-epochs", "1", "--bake-max-new-tokens", "8",
        "--max-new-tokens", "6", "--forgetting-n", "4", "--batch-size", "16", "--out", str(out),
    ]  # fmt: skip


def _run(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "selfbake", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evolve")
    out = tmp / "whole"
    code = main(_args(tmp, out))
    assert code == 0
    return tmp, out


def test_end_to_end_writes_every_file(finished, capsys):
    _, out = finished
    for name in ("config.yaml", "metrics.jsonl", "lineage.jsonl", "layers.json", "README.md", "summary.json",
                 "eval_cache.jsonl", "model/config.json"):  # fmt: skip
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success"] is True
    for key in ("tool_suite_initial", "tool_suite_final", "tool_suite_improvement", "benchmark_avg_initial",
                "benchmark_avg_final", "benchmark_avg_improvement"):  # fmt: skip
        assert key in summary["performance"]
    assert summary["performance"]["tool_suite_final"]["n"] == 4
    assert "p_value" in summary["performance"]["benchmark_avg_improvement"]
    assert summary["convergence"]["a_cycles"] == 1 and summary["convergence"]["b_cycles"] == 1
    # alpha=1 and min-delta=-100 keep every baked winner: two stacked layers, in order
    layers = json.loads((out / "layers.json").read_text())
    assert [x["kind"] for x in layers] == ["tool", "benchmark"]
    assert summary["baked_layers"]["tool_prompts"] == ["Use the calculator tool for arithmetic."]
    assert summary["baked_layers"]["self_prompts"] == ["Check your answer at the end."]
    for layer in layers:
        assert (out / layer["adapter"] / "adapter_model.safetensors").exists()
    assert set(summary["forgetting"]) == {"brackets"}
    keys = set().union(*(json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()))
    for name in ("tool_iteration_1/variant_1_score", "tool_iteration_1/winner_id", "tool_iteration_1/winner_score",
                 "tool_iteration_1/winner_prompt", "tool_iteration_1/improvement", "tool_iteration_1/plateau",
                 "tool_iteration_1/baking_time_sec", "persona_iteration_1/self_prompt_1_arithmetic",
                 "persona_iteration_1/self_prompt_1_rpn", "persona_iteration_1/self_prompt_1_avg",
                 "phase6/total_iterations", "phase6/final_benchmark_avg"):  # fmt: skip
        assert name in keys, name
    lineage = [json.loads(line) for line in (out / "lineage.jsonl").read_text().splitlines()]
    assert len(lineage) == 4
    assert sum(r.get("kept", False) for r in lineage) == 2
    assert all(
        "dev" in r and r["dev"]["n"] > 0 for r in lineage if not r["dropped"] or "McNemar" in r["dropped"]
    )


def test_test_split_never_scored_before_the_final_report(finished):
    tmp, out = finished
    rows = [json.loads(line) for line in (out / "eval_cache.jsonl").read_text().splitlines()]
    from selfbake.evolve.suites import load_suite

    test_keys = set()
    for name in ("tool.yaml", "bench.yaml"):
        test_keys |= SuiteSplits(load_suite(str(tmp / name)), 0).test_keys_unchecked()
    assert {r["stage"] for r in rows if r["item"] in test_keys} == {"final"}
    assert any(r["stage"] != "final" for r in rows)


def _comparable(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    for key in ("timing", "wall_seconds_this_process", "seconds", "model_path"):
        summary.pop(key, None)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for m in metrics:
        m.pop("time")
        for k in list(m):
            if k.endswith("baking_time_sec"):
                m.pop(k)
    layers = json.loads((out / "layers.json").read_text())
    weights = (out / "model" / "model.safetensors").read_bytes()
    return {"summary": summary, "metrics": metrics, "layers": layers, "weights": weights,
            "lineage": (out / "lineage.jsonl").read_text()}  # fmt: skip


def test_killed_run_resumes_to_the_same_layers_and_numbers(finished, capsys):
    tmp, whole = finished
    out = tmp / "killed"
    args = _args(tmp, out)
    killed = _run(args, {EXIT_AFTER_ENV: "cycle_2_race"})  # dies mid-cycle 2, before its bake
    assert killed.returncode == 17 and not (out / "summary.json").exists()
    assert "cycle 1 (tool)" in killed.stdout
    assert main(args) == 0  # the same command again
    assert "resuming" in capsys.readouterr().out
    assert _comparable(out) == _comparable(whole)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "0"], "k: Input should be greater than 0"),
        (["--proposer", "list:/no/such/file"], "no such file"),
        (["--proposer", "oracle"], "expected self, mutate or list:FILE"),
        (["--tool-suite", "no_such_suite"], "is not a file nor a shipped suite"),
        (["--forgetting", "bignum"], "is in a suite"),
        (["--bake-n-train", "300"], "at most 256"),
    ],
)
def test_bad_settings_give_one_line_and_exit_2(extra, message, capsys, tmp_path):
    code = main(["evolve", "--out", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err


def test_selection_benchmark_runs_and_racing_saves_calls():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "evolve_selection", ROOT / "benchmarks" / "evolve_selection.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.run("bundled", 40, 4, 100, 0.5, 0.05, 10, 1.5, 0)
    assert r["same_winner_as_full"]["n"] == 40
    assert r["same_winner_as_full"]["rate"] >= 0.9
    assert r["metric_calls"]["racing_selection"] < r["metric_calls"]["full"] / 2
