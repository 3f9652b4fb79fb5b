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
    run.log(0, loss=1.0)
    run.finish({})
    with pytest.raises(UserError, match="already holds a finished run"):
        RunDir(tmp_path / "run")
    again = RunDir(tmp_path / "run", overwrite=True)
    assert not (again.path / "summary.json").exists()
    again.log(0, loss=2.0)  # the overwritten run's metrics are not mixed into the new run's
    lines = (again.path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in lines] == [2.0]


def test_an_unfinished_run_keeps_its_metrics_when_resumed(tmp_path):
    RunDir(tmp_path / "run").log(0, loss=1.0)
    RunDir(tmp_path / "run").log(1, loss=0.5)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [0, 1]


def test_a_report_of_an_unknown_run_groups_splits_tables_nested_dicts_and_plots_only_curves(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config({"lr": 0.1})
    for step in range(4):
        run.log(step, loss=4 - step, flag=True, note="x")
        for split in ("dev", "test"):
            run.log(step, accuracy=0.1 * step, split=split)
    run.log(9, final_score=0.5)  # one point: a table row, not a plot
    run.log(9, final_score=0.7)  # two points at one step are not a curve either
    run.finish({"best": {"accuracy": 0.3, "n": 4}, "layers": [{"name": "a", "strength": 0.5}]})
    page = write_report(run.path).read_text()
    assert page.count("<img") == 2  # loss, and accuracy with a line per split; bool, str, step, time are not
    assert 'alt="accuracy: dev/accuracy, test/accuracy"' in page and 'alt="loss"' in page
    assert "<td>final_score</td><td>9</td><td>0.7</td>" in page and 'alt="final_score"' not in page
    assert "summary › best" in page and "summary › layers" in page  # nested data as tables
    assert '{"' not in page and "{&#34;" not in page  # no JSON blob anywhere
    assert "lr: 0.1" in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained


@pytest.fixture(scope="module")
def bake_and_eval_runs(tmp_path_factory):
    from tinyruns import tiny_bake, tiny_eval

    root = tmp_path_factory.mktemp("runs")
    bake = tiny_bake(root / "bake", "--measure-n", "2")
    return bake, tiny_eval(root / "eval", "random:llama-tiny", "--task", "rpn")


def _images(page: str) -> list[str]:
    import re

    return re.findall(r'<img class="plot" alt="([^"]*)"', page)


def test_a_bake_report_shows_the_before_after_table_layers_and_training_curves(bake_and_eval_runs):
    run = bake_and_eval_runs[0]
    summary = json.loads((run / "summary.json").read_text())
    page = write_report(run).read_text()
    assert "selfbake bake" in page and "Before / after" in page
    for condition in ("base unprompted", "base prompted", "baked unprompted", "baked reprompted"):
        rate = summary["behaviour"][condition.replace(" ", "_")]["accuracy"]
        assert f"<td>{condition}</td><td>{rate['rate']:.3f} [{rate['ci95'][0]:.3f}" in page
    assert "McNemar p=" in page
    layer = summary["layers"][0]
    assert (
        f"<td>{layer['name']}</td><td>Always answer in French.</td><td>{layer['strength']:.4g}</td>" in page
    )
    assert "strength = 1 − KL" in page
    images = _images(page)
    assert {"loss", "held-out KL", "strength"} <= set(images) and "before / after" in images
    assert '{"' not in page and "{&#34;" not in page  # layers no longer a JSON blob


def test_an_eval_report_shows_bars_with_intervals_not_single_points_on_a_step_axis(bake_and_eval_runs):
    run = bake_and_eval_runs[1]
    summary = json.loads((run / "summary.json").read_text())
    page = write_report(run).read_text()
    assert _images(page) == ["accuracy per task — random:llama-tiny"]  # no "accuracy" or "n" curve
    for task, result in summary["tasks"].items():
        low, high = result["ci95"]
        assert f"<td>{task}</td><td>{result['n']}</td><td>{result['accuracy']:.3f}</td>" in page
        assert f"[{low:.3f}, {high:.3f}]" in page
    assert "Wilson" in page


def test_an_unfinished_run_is_reported_as_the_command_its_metrics_come_from(tmp_path):
    from selfbake.tracking.report_sections import infer_command

    run = RunDir(tmp_path / "run")
    for step in range(3):
        run.log(step, loss=1.0 / (step + 1), val_kl=0.1, strength=0.2 * step)
    page = write_report(run.path).read_text()
    assert "selfbake bake" in page and "unfinished run" in page and "strength" in _images(page)
    assert infer_command(None, [{"step": 0, "split": "dev", "accuracy": 0.5}]) == "iterate"
    assert infer_command(None, [{"step": 0, "task": "rpn", "accuracy": 0.5, "n": 4}]) == "eval"
    assert infer_command({"command": "forge"}, []) == "forge"


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
