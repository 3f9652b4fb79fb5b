"""A killed bake, run again, keeps its finished work and ends where an uninterrupted bake ends."""

from __future__ import annotations

import json

import pytest
import torch
from test_baking import PROMPT, bake_cli_args, small_settings  # noqa: E402

from selfbake.baking import Baker, bake, load_questions
from selfbake.baking.resume import BakeState
from selfbake.cli import main
from selfbake.models import load


class Killed(Exception):
    pass


def _model():
    return load("bundled", device="cpu", dtype="float32", seed=0)


def _settings():
    return small_settings(n_train=16, n_val=8, lr=3e-3, max_new_tokens=40, max_epochs=3, eval_every=2)


def _kill_at(step: int):
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        if done[0] >= step:
            raise Killed

    return advance


def _logger(path):
    def log(step=None, **metrics):
        with open(path, "a") as fh:
            fh.write(json.dumps({"step": step, **metrics}) + "\n")

    return log


def test_a_killed_bake_resumes_from_its_last_validation_and_matches_an_uninterrupted_one(
    tmp_path, monkeypatch
):
    questions = load_questions("task:arithmetic:2,3", 24, seed=0)
    whole = bake(*_model(), PROMPT, questions, _settings())

    metrics = tmp_path / "metrics.jsonl"
    state = BakeState(tmp_path / "state", metrics)
    with pytest.raises(Killed):
        bake(
            *_model(), PROMPT, questions, _settings(), state=state, log=_logger(metrics), advance=_kill_at(5)
        )
    saved = state.training()
    assert saved["step"] == 4 and state.result() is None  # the last validation before the kill
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert logged == [0, 1, 2, 3, 4, 5]  # step 5 was logged after the saved state

    sampled = []
    monkeypatch.setattr(Baker, "sample", lambda self, *a, **k: sampled.append(1))
    resumed = bake(*_model(), PROMPT, questions, _settings(), state=state, log=_logger(metrics))
    assert not sampled  # the trajectories came from the state
    assert resumed.steps == whole.steps
    assert resumed.strength == pytest.approx(whole.strength, abs=1e-4)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in whole.history]
    for name, weights in whole.adapter_state.items():
        assert torch.allclose(resumed.adapter_state[name], weights, atol=1e-4), name
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert logged == list(range(whole.steps + 1))  # no step twice: the killed run's step 5 was dropped
    assert state.training() is None and state.result() is not None

    # finished: a third run restores the result without training
    monkeypatch.setattr(Baker, "fit", lambda self, *a, **k: pytest.fail("a finished bake was trained again"))
    again = bake(*_model(), PROMPT, questions, _settings(), state=state)
    assert again.strength == resumed.strength and again.steps == resumed.steps
    probe = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.equal(again.model(probe).logits, resumed.model(probe).logits)


def _cli(capsys, out, *extra):
    code = main(bake_cli_args(out, "--eval-every", "1", *extra))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_sequence_killed_in_its_second_layer_resumes_without_redoing_the_first(
    capsys, tmp_path, monkeypatch
):
    out = tmp_path / "seq"
    args = ("--sequence", "bundled:reasoning", "bundled:style-greeting")
    real_run = Baker.run
    runs = []

    def killed_in_layer_2(self, *a, **k):
        runs.append(self.prompt)
        if len(runs) == 2:
            k["advance"] = _kill_at(1)
        return real_run(self, *a, **k)

    monkeypatch.setattr(Baker, "run", killed_in_layer_2)
    code, text, err = _cli(capsys, out, *args)
    assert code == 1 and "Killed" in err
    assert f"run again with --out {out}" in text.replace("\n", "")  # where to resume, said up front
    assert (out / "state" / "layer_1" / "result.pt").exists() and not (out / "summary.json").exists()

    code, _, err = _cli(capsys, out, *args, "--lr", "0.01")
    assert code == 2 and "other settings (lr)" in err and len(err.strip().splitlines()) == 1

    runs.clear()
    monkeypatch.setattr(
        Baker, "run", lambda self, *a, **k: runs.append(self.prompt) or real_run(self, *a, **k)
    )
    code, text, err = _cli(capsys, out, *args)
    assert code == 0, err
    assert "resuming" in text and len(runs) == 1  # only layer 2 ran again
    summary = json.loads((out / "summary.json").read_text())
    assert [layer["name"] for layer in summary["layers"]] == ["bundled:reasoning", "bundled:style-greeting"]
    assert all(layer["strength"] > 0 for layer in summary["layers"])
    assert not (out / "state").exists()  # finished: the state is gone
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert (
        steps == sorted(steps) and len(steps) == len(set(steps)) + 1
    )  # layer 2's first line repeats its offset
