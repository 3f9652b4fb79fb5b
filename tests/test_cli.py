"""The command line as a user meets it: help, a real run, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from selfbake.cli import main


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "generate" in out and "report" in out and "eval" in out and "sample answers from a model" in out
    from selfbake.cli import COMMANDS

    for command in COMMANDS:  # every command's --help renders (argparse chokes on a stray %)
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert "--config" in capsys.readouterr().out


def test_generate_writes_a_run_directory_and_report(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, err = run_cli(
        capsys,
        "generate",
        "--model",
        "random:llama-tiny",
        "--prompt",
        "hi",
        "--out",
        str(out_dir),
        "max_new_tokens=12",
        "--n",
        "2",
    )
    assert code == 0, err
    assert f"run directory: {out_dir}" in out
    for name in ("config.yaml", "metrics.jsonl", "samples.jsonl", "summary.json"):
        assert (out_dir / name).exists(), name
    samples = [json.loads(x) for x in (out_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and all(s["prompt"] == "hi" and 0 < s["new_tokens"] <= 12 for s in samples)
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["samples"] == 2 and summary["new_tokens"] == sum(s["new_tokens"] for s in samples)
    assert "max_new_tokens: 12" in (out_dir / "config.yaml").read_text()
    code, out, _ = run_cli(capsys, "report", str(out_dir))
    assert code == 0 and (out_dir / "report.html").exists()


def test_generate_from_yaml_and_prompts_file_with_tools(capsys, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "2+2?"}\n{"prompt": "3*3?", "system": "Use tools."}\n')
    cfg = tmp_path / "g.yaml"
    cfg.write_text(
        f"model: random:qwen2-tiny\nprompts: {prompts}\nmax_new_tokens: 6\ntools: [calculator]\ntemperature: 0\n"
    )
    code, out, err = run_cli(capsys, "generate", "--config", str(cfg), "--out", str(tmp_path / "r"))
    assert code == 0, err
    samples = [json.loads(x) for x in (tmp_path / "r" / "samples.jsonl").read_text().splitlines()]
    assert [s["system"] for s in samples] == [None, "Use tools."]
    assert all("tool_calls" in s for s in samples)


def test_text_prompts_file(capsys, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("first\n\nsecond\n")
    code, _, err = run_cli(
        capsys,
        "generate",
        "--model",
        "random:llama-tiny",
        "--prompts",
        str(prompts),
        "--out",
        str(tmp_path / "r"),
        "--max-new-tokens",
        "3",
    )
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["prompts"] == 2


BAD_INPUTS = {
    "missing model path": (
        ["--model", "./no/such/dir", "--prompt", "hi"],
        "model directory not found: ./no/such/dir",
    ),
    "unknown key": (
        ["--model", "random:llama-tiny", "--prompt", "hi", "temprature=1"],
        "did you mean 'temperature'",
    ),
    "unknown flag": (
        ["--model", "random:llama-tiny", "--prompt", "hi", "--temprature", "1"],
        "did you mean '--temperature'",
    ),
    "empty prompt": (["--model", "random:llama-tiny", "--prompt", ""], "empty prompt"),
    "zero budget": (
        ["--model", "random:llama-tiny", "--prompt", "hi", "--max-new-tokens", "0"],
        "max_new_tokens",
    ),
    "negative budget": (
        ["--model", "random:llama-tiny", "--prompt", "hi", "max_new_tokens=-5"],
        "max_new_tokens",
    ),
    "unreadable prompts": (
        ["--model", "random:llama-tiny", "--prompts", "/no/such/prompts.txt"],
        "cannot read prompts file",
    ),
    "bad number": (
        ["--model", "random:llama-tiny", "--prompt", "hi", "--max-new-tokens", "lots"],
        "invalid int value",
    ),
    "unknown tool": (
        ["--model", "random:llama-tiny", "--prompt", "hi", "--tools", "hammer"],
        "unknown tool 'hammer'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_code_2(capsys, tmp_path, case):
    args, message = BAD_INPUTS[case]
    code, out, err = run_cli(capsys, "generate", *args, "--out", str(tmp_path / "r"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("selfbake: error:"), err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "r" / "summary.json").exists()


def test_malformed_yaml_exit_code_2(capsys, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model: random:llama-tiny\nprompt: [oops\n")
    code, _, err = run_cli(capsys, "generate", "--config", str(cfg))
    assert code == 2 and "malformed YAML" in err and err.count("\n") == 1


def test_empty_prompts_file(capsys, tmp_path):
    empty = tmp_path / "e.txt"
    empty.write_text("\n\n")
    code, _, err = run_cli(capsys, "generate", "--model", "random:llama-tiny", "--prompts", str(empty))
    assert code == 2 and "holds no prompts" in err


def test_debug_shows_the_traceback(capsys):
    code, _, err = run_cli(capsys, "generate", "--model", "./no/such/dir", "--prompt", "hi", "--debug")
    assert code == 2 and "Traceback" in err and "model directory not found" in err


def test_console_script_exit_code(tmp_path):
    """The installed entry point, in a real process: stderr is exactly one line."""
    proc = subprocess.run(
        [sys.executable, "-m", "selfbake", "generate", "--model", str(tmp_path / "nope"), "--prompt", "hi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "model directory not found" in proc.stderr


def test_eval_writes_the_documented_summary(capsys, tmp_path):
    out_dir = tmp_path / "eval"
    code, out, err = run_cli(
        capsys,
        "eval",
        "--model",
        "random:llama-tiny",
        "--task",
        "arithmetic",
        "--n",
        "50",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    summary = json.loads((out_dir / "summary.json").read_text())
    cell = summary["tasks"]["arithmetic"]
    assert cell["n"] == 50 and 0 <= cell["accuracy"] <= 1 and 0 <= cell["baseline"] <= 1
    lo, hi = cell["ci95"]
    assert lo <= cell["accuracy"] <= hi
    assert summary["aggregate"]["accuracy"] == cell["accuracy"]
    samples = [json.loads(x) for x in (out_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 50 and {"prompt", "output", "extracted", "correct"} <= set(samples[0])
    assert "arithmetic" in out and "95% CI" in out


def test_eval_suite_with_weights_and_compare(capsys, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        'tasks:\n  - {name: "mmlu:fixture", weight: 3}\n  - {name: brackets, weight: 1, n: 10}\n'
    )
    a, b = tmp_path / "a", tmp_path / "b"
    assert (
        run_cli(
            capsys,
            "eval",
            "--model",
            "random:llama-tiny",
            "--suite",
            str(suite),
            "--n",
            "12",
            "--out",
            str(a),
        )[0]
        == 0
    )
    summary = json.loads((a / "summary.json").read_text())
    t = summary["tasks"]
    assert t["mmlu:fixture"]["n"] == 12 and t["brackets"]["n"] == 10
    expected = (3 * t["mmlu:fixture"]["accuracy"] + t["brackets"]["accuracy"]) / 4
    assert abs(summary["aggregate"]["accuracy"] - expected) < 1e-9
    code, _, err = run_cli(
        capsys,
        "eval",
        "--model",
        "random:llama-tiny",
        "--task",
        "mmlu:fixture",
        "--n",
        "12",
        "--system",
        "Be careful.",
        "--out",
        str(b),
    )
    assert code == 0, err
    code, out, _ = run_cli(capsys, "eval", "--compare", str(a), str(b))
    assert code == 0 and "McNemar" in out and "mmlu" in out and " 12 " in out


def test_eval_bad_inputs(capsys, tmp_path):
    code, _, err = run_cli(capsys, "eval", "--model", "random:llama-tiny", "--task", "arithmetc")
    assert code == 2 and "did you mean 'arithmetic'" in err
    code, _, err = run_cli(capsys, "eval", "--model", "random:llama-tiny")
    assert code == 2 and "no task" in err
    code, _, err = run_cli(capsys, "eval", "--compare", str(tmp_path), str(tmp_path))
    assert code == 2 and "not a finished eval run" in err


def test_version_and_env_print_what_a_bug_report_needs(capsys):
    import importlib.metadata

    import torch

    from selfbake import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"selfbake {__version__}"
    code, out, _ = run_cli(capsys, "env")
    assert code == 0 and out.startswith("Copy and paste")
    lines = dict(line[2:].split(": ", 1) for line in out.splitlines() if line.startswith("- "))
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "datasets"):
        assert lines[name] == importlib.metadata.version(name)
    assert lines["selfbake"].startswith(__version__)
    assert lines["torch threads"] == str(torch.get_num_threads())
    assert lines["cuda available"] == ("yes" if torch.cuda.is_available() else "no")
    for key in ("python", "platform", "device (auto)", "cuda version (torch build)", "gpus"):
        assert lines[key]
    code, out, _ = run_cli(capsys, "env", "--format", "json")
    assert code == 0 and json.loads(out)["peft"] == lines["peft"]


def test_a_generate_run_emits_no_future_warning(capsys, tmp_path):
    """transformers' cache API as it is now (``cache=``), so users see no deprecation warnings."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        code, _, err = run_cli(
            capsys,
            "generate",
            *("--model", "random:llama-tiny", "--prompt", "hi", "--prompt", "hello there", "--n", "2"),
            *(
                "--system",
                "You are terse and careful. " * 4,
                "--max-new-tokens",
                "6",
                "--out",
                str(tmp_path / "g"),
            ),
        )
    assert code == 0, err
    assert "FutureWarning" not in err and "deprecated" not in err
