"""Expert iteration: selection, hints, frozen splits, the files a run writes, and kill-and-resume equality."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from selfbake import tasks
from selfbake.cli import main
from selfbake.iteration import IterateConfig, Problems, Solution, leaks_hint, select, signature
from selfbake.iteration import loop as L

TINY = [
    "--iterations", "2", "--samples-per-problem", "2", "--n-train", "24", "--n-dev", "12", "--n-test", "12",
    "--max-new-tokens", "24", "--epochs", "1", "--batch-size", "64",
]  # fmt: skip


def test_signature_collapses_same_reasoning_and_cap_keeps_distinct_ones():
    task = tasks.get("arithmetic")
    a = signature(task, "2 + 3 = 5\n5 * 4 = 20\nAnswer: 20")
    assert a == signature(task, "2+3 =5\n5*4 = 20\nAnswer:  20")  # same steps, other spacing
    assert a != signature(task, "3 + 2 = 5\n4 * 5 = 21\nAnswer: 20")
    sols = [Solution("p1", "q", f"out{i}", 1, f"sig{i % 3}") for i in range(9)]  # 3 distinct signatures
    sols += [Solution("p2", "q2", "x", 1, "only")] * 4
    kept = select(sols, cap=2, seed=0)
    assert sum(s.key == "p1" for s in kept) == 2 and sum(s.key == "p2" for s in kept) == 1
    assert len({s.signature for s in kept if s.key == "p1"}) == 2
    assert select(sols, cap=2, seed=0) == kept  # seeded


def test_rationalised_solutions_never_carry_the_hint(monkeypatch):
    config = IterateConfig(task=["arithmetic"], levels=[1], n_train=4, n_dev=2, n_test=2, n_hard=0,
                           samples_per_problem=2, rationalise=True)  # fmt: skip
    problems = Problems(config)
    calls = []

    def fake_score(model, tok, task, items, **kw):
        hinted = "Hint" in items[0].question
        calls.append(hinted)
        records = []
        for item in items:
            if hinted:  # one clean correct answer, one that echoes the hint
                samples = [
                    f"Answer: {item.answer}",
                    f"(Hint: the answer is {item.answer}.) Answer: {item.answer}",
                ]
            else:
                samples = ["Answer: nope", "Answer: nope"]
            records.append({"samples": samples, "verdicts": [task.verify(item, s) for s in samples]})
        return type("R", (), {"records": records})()

    monkeypatch.setattr(L, "score", fake_score)
    monkeypatch.setattr(L, "_load_model", lambda config, adapter: (None, None))
    record = L.sample_stage(config, problems, 1, None)
    assert calls == [False, True] and record["solved_problems"] == 0
    assert record["kept"] == len(problems.train)  # the hint-echoing sample was dropped
    for s in record["solutions"]:
        assert s["rationalised"] and "hint" not in s["prompt"].lower() and "hint" not in s["output"].lower()
    item = problems.train[0][1]
    assert leaks_hint(f"(Hint: the answer is {item.answer}.) {item.answer}", item)


def test_test_split_is_frozen_hashed_and_never_trained_on():
    small = Problems(IterateConfig(task=["brackets"], levels=[2, 3], n_train=50, n_dev=10, n_test=40))
    large = Problems(IterateConfig(task=["brackets"], levels=[2, 3], n_train=400, n_dev=50, n_test=40))
    assert small.test_hash() == large.test_hash()  # the test split does not depend on the train size
    test_keys = {i.key for _, i in large.test + large.hard}
    assert not test_keys & {i.key for _, i in large.train + large.dev}
    assert {i.metadata["difficulty"] for _, i in large.hard} == {4}  # the band above the trained levels


def test_test_split_is_the_same_for_every_seed_and_never_trained_on():
    runs = [
        Problems(IterateConfig(task=["rpn"], levels=[2, 3], n_train=100, n_dev=60, n_test=80, seed=seed))
        for seed in (0, 1)
    ]
    assert [i.key for _, i in runs[0].test] == [i.key for _, i in runs[1].test]  # frozen: not from --seed
    assert runs[0].test_hash() == runs[1].test_hash()
    assert [i.key for _, i in runs[0].train] != [i.key for _, i in runs[1].train]  # --seed picks train items
    frozen = {i.key for _, i in runs[0].test + runs[0].hard}
    for problems in runs:
        assert not frozen & {i.key for _, i in problems.train + problems.dev}


def test_signature_keeps_different_solutions_without_steps_apart():
    brackets = tasks.get("brackets")
    one, other = "Answer: ] )", "The open ones are ( [ so:\n] )"  # both correct, reached differently
    assert brackets.extract(one) == brackets.extract(other)
    assert signature(brackets, one) != signature(brackets, other)
    assert signature(brackets, "answer:  ] )") == signature(brackets, "Answer: ] )")  # case, spacing
    sols = [Solution("p", "q", text, 2, signature(brackets, text)) for text in (one, other, one)]
    assert len(select(sols, cap=4, seed=0)) == 2


@pytest.mark.parametrize(
    "args, needle",
    [
        (["iterate", "--task", "brackets", "--levels", "1"], "brackets at difficulty 1 has 56 distinct items"),
        (["eval", "--task", "rpn", "--difficulty", "1", "--n", "300"], "rpn at difficulty 1 has 243 distinct"),
        (["iterate", "--task", "brackets", "--levels", "2", "--hard-levels", "2", "--n-hard", "2000",
          "--n-train", "5", "--n-dev", "5", "--n-test", "5"], "split is empty"),
    ],
)  # fmt: skip
def test_too_few_distinct_items_is_a_one_line_user_error(tmp_path, args, needle):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfbake",
            *args,
            "--model",
            "random:llama-tiny",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "internal error" not in lines[0], done.stderr


def test_iterate_runs_end_to_end_on_a_random_model_and_writes_every_file(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["iterate", "--model", "random:llama-tiny", "--task", "arithmetic", "--levels", "1",
                 "--n-hard", "6", "--out", str(out), *TINY])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    for key in ("baseline_test_accuracy", "best_test_accuracy", "baseline_ci95", "best_ci95", "p_value",
                "best_iteration", "n_test", "hard"):  # fmt: skip
        assert key in summary
    assert summary["n_test"] == 12
    for name in ("config.yaml", "metrics.jsonl", "solutions/iter_1.jsonl", "histograms/iter_1.png",
                 "evals/iter_0.json", "adapters/iter_1/adapter_config.json"):  # fmt: skip
        assert (out / name).exists(), name
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {x["split"] for x in lines} == {"dev", "test", "hard"}
    assert all({"accuracy", "n", "ci95"} <= set(x) for x in lines)
    assert main(["report", str(out)]) == 0
    assert "test/accuracy" in (out / "report.html").read_text()


def test_bad_settings_are_one_line_errors(tmp_path, capsys):
    for args, needle in (
        (["--task", "gsm8k"], "no problem generator"),
        (["--task", "arithmetic", "--verify", "code"], "needs a code task"),
        (["--task", "arithmetic", "--levels", "9"], "no difficulty 9"),
    ):
        assert main(["iterate", "--out", str(tmp_path / "x"), *args]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err


def test_a_killed_run_resumes_to_the_same_numbers(tmp_path, capsys):
    args = ["iterate", "--model", "bundled", "--task", "brackets", "--levels", "2", "--n-hard", "0", *TINY]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert (tmp_path / "whole" / "solutions" / "iter_1.jsonl").read_text().strip()  # something was trained on
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "selfbake", *args, "--out", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while (
        not (killed / "solutions" / "iter_1.json").exists() and time.time() < deadline and proc.poll() is None
    ):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-iteration: solutions sampled, training not done
    proc.wait()
    assert not (killed / "summary.json").exists()
    assert main([*args, "--out", str(killed)]) == 0
    resumed = json.loads((killed / "summary.json").read_text())
    for key in ("baseline_test_accuracy", "best_test_accuracy", "best_iteration", "p_value", "per_iteration"):
        assert resumed[key] == whole[key], key
    assert (killed / "solutions" / "iter_1.jsonl").read_text() == (
        tmp_path / "whole" / "solutions" / "iter_1.jsonl"
    ).read_text()


def test_code_mode_runs_the_models_functions_in_the_sandbox(tmp_path, capsys):
    out = tmp_path / "code"
    args = ["iterate", "--model", "random:llama-tiny", "--task", "coderepair", "--verify", "code", "--levels", "1",
            "--iterations", "1", "--samples-per-problem", "2", "--n-train", "4", "--n-dev", "2", "--n-test", "3",
            "--n-hard", "0", "--max-new-tokens", "16", "--out", str(out)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_test"] == 3 and "hard" not in summary
    evals = json.loads((out / "evals" / "iter_1.json").read_text())
    assert len(evals["test"]["flags"]) == 3  # every test function was judged (by its tests, in the sandbox)


@pytest.mark.slow
def test_bundled_brackets_rise_by_ten_points_with_continued_training(tmp_path, capsys):
    """The issue's bar, as documented in the README (~3.5 min on 2 cores)."""
    out = tmp_path / "bar"
    args = ["iterate", "--model", "bundled", "--task", "brackets", "--levels", "2,3", "--iterations", "5",
            "--training", "continue", "--out", str(out)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert 0.20 <= summary["baseline_test_accuracy"] <= 0.70
    assert summary["best_test_accuracy"] - summary["baseline_test_accuracy"] >= 0.10
    assert summary["p_value"] < 0.05 and summary["iterations_run"] <= 5 and "hard" in summary


def test_an_adapter_is_loaded_once_for_evaluation_and_the_next_sampling(tmp_path):
    from peft import LoraConfig, get_peft_model

    from selfbake.iteration import loop
    from selfbake.models import load

    config = IterateConfig(model="random:llama-tiny", task=["arithmetic"], levels=[1])
    base, _ = load("random:llama-tiny", seed=0)
    get_peft_model(base, LoraConfig(r=2, target_modules="all-linear")).save_pretrained(tmp_path / "iter_1")
    first, _ = loop._load_model(config, tmp_path / "iter_1")
    again, _ = loop._load_model(config, tmp_path / "iter_1")
    assert again is first  # evaluation of iteration 1 and sampling of iteration 2 share it
    other, _ = loop._load_model(config, None)
    assert other is not first and len(loop._LOADED) == 1  # one model held at a time
    loop._LOADED.clear()
