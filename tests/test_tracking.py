import json

import pytest

from selfbake.errors import UserError
from selfbake.tracking import RunDir, write_report
from selfbake.tracking.reporters import make_reporters


def test_run_dir_files_and_atomic_summary(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config({"a": 1, "nested": {"b": [1, 2]}})
    for step in range(3):
        run.log(step, loss=1.0 / (step + 1), kl=0.5 - 0.1 * step, note="text is kept but not plotted")
    run.write_samples([{"text": "hé"}, {"text": "b"}])
    assert not (run.path / "summary.json").exists()  # unfinished until finish()
    run.finish({"strength": 0.5, "inf": float("inf")})
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["strength"] == 0.5 and summary["inf"] == "inf" and "seconds" in summary
    assert [json.loads(x)["step"] for x in (run.path / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert (run.path / "samples.jsonl").read_text().count("\n") == 2
    assert "nested" in (run.path / "config.yaml").read_text()
    assert not list(run.path.glob(".*.tmp"))


def test_finished_run_is_not_overwritten_silently(tmp_path):
    run = RunDir(tmp_path / "run")
    run.finish({})
    with pytest.raises(UserError, match="already holds a finished run"):
        RunDir(tmp_path / "run")
    again = RunDir(tmp_path / "run", overwrite=True)
    assert not (again.path / "summary.json").exists()


def test_report_plots_every_numeric_series(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config({"lr": 0.1})
    for step in range(4):
        run.log(step, loss=4 - step, flag=True, note="x")
        for split in ("dev", "test"):
            run.log(step, accuracy=0.1 * step, split=split)
    run.finish({"best": {"accuracy": 0.3, "n": 4}})
    page = write_report(run.path).read_text()
    assert page.count("<img") == 3  # loss and one accuracy per split; bool, str, step and time are not series
    assert "alt='dev/accuracy'" in page and "alt='test/accuracy'" in page and "alt='loss'" in page
    assert "best.accuracy" in page and "lr: 0.1" in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained


def test_report_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        write_report(tmp_path / "missing")
    with pytest.raises(UserError, match="not a selfbake run directory"):
        write_report(tmp_path)


def test_report_to_missing_package_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # makes "import wandb" fail even where installed
    with pytest.raises(UserError, match=r"pip install 'selfbake\[wandb\]'"):
        make_reporters("wandb", tmp_path, {})
    assert make_reporters("none", tmp_path, {}) == []


def test_default_run_paths_do_not_collide(tmp_path):
    from selfbake.tracking.rundir import default_run_path

    first = default_run_path("eval", tmp_path)
    first.mkdir()
    second = default_run_path("eval", tmp_path)
    assert second != first and second.name.startswith(first.name)
