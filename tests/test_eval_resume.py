"""A killed ``selfbake eval`` keeps the tasks it finished and scores only the rest when run again."""

import json

from selfbake import evaluate
from selfbake.cli import main

ARGS = [
    "eval",
    "--model",
    "random:llama-tiny",
    "--task",
    "arithmetic",
    "--task",
    "mmlu:fixture",
    "--task",
    "brackets",
]


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_killed_eval_resumes_with_only_the_unfinished_tasks(capsys, tmp_path, monkeypatch):
    reference, out = tmp_path / "reference", tmp_path / "killed"
    assert run_cli(capsys, *ARGS, "--n", "12", "--out", str(reference))[0] == 0

    real_score, scored = evaluate.score, []

    def score(model, tokenizer, task, items, **kwargs):
        scored.append(task.name)
        if task.name == "brackets" and fail["now"]:
            raise KeyboardInterrupt  # killed while scoring the third task
        return real_score(model, tokenizer, task, items, **kwargs)

    fail = {"now": True}
    monkeypatch.setattr(evaluate, "score", score)
    code, _, err = run_cli(capsys, *ARGS, "--n", "12", "--out", str(out))
    assert code == 130 and "eval" in err and "resume" in err
    assert not (out / "summary.json").exists()
    assert sorted(p.name for p in (out / "state").iterdir()) == ["task_0.json", "task_1.json"]

    code, _, err = run_cli(capsys, *ARGS, "--n", "13", "--out", str(out))
    assert code == 2 and "other settings (n)" in err

    fail["now"], scored[:] = False, []
    code, stdout, err = run_cli(capsys, *ARGS, "--n", "12", "--out", str(out))
    assert code == 0, err
    assert scored == ["brackets"]  # the finished tasks were not scored again
    assert "resuming" in stdout and "2 of 3 tasks" in stdout
    assert not (out / "state").exists()

    def summary(path):
        return {k: v for k, v in json.loads((path / "summary.json").read_text()).items() if k != "seconds"}

    assert summary(out) == summary(reference)
    assert (out / "samples.jsonl").read_text() == (reference / "samples.jsonl").read_text()
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2]  # each task logged once


def test_eval_overwrite_starts_clean(capsys, tmp_path):
    out = tmp_path / "run"
    for _ in range(2):
        assert run_cli(capsys, *ARGS[:5], "--n", "5", "--out", str(out), "--overwrite")[0] == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0]  # not the first run's line followed by the second's


def test_a_task_logged_but_not_saved_is_scored_and_logged_once_on_resume(capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save = evaluate.save_task

    def killed_after_logging_the_second(path, step, result):
        if step == 1:
            raise KeyboardInterrupt  # its metrics line is written, its state is not
        real_save(path, step, result)

    monkeypatch.setattr(evaluate, "save_task", killed_after_logging_the_second)
    assert run_cli(capsys, *ARGS, "--n", "6", "--out", str(out))[0] == 130
    logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged == [0, 1]
    monkeypatch.setattr(evaluate, "save_task", real_save)
    assert run_cli(capsys, *ARGS, "--n", "6", "--out", str(out))[0] == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2]
