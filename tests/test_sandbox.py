"""``run_code``'s contract: results, ``files=`` names, reported layers, and the refusal to run
code unisolated unless the caller opts in. The hostile programs are in test_sandbox_hostile.py."""

import os

import pytest

from selfbake.errors import UserError
from selfbake.tools import sandbox
from selfbake.tools.sandbox import SandboxUnavailable, run_code

ROOT = os.geteuid() == 0


def test_plain_program_stdin_files_and_exit_codes():
    result = run_code(
        "import sys\nprint(sys.stdin.read().upper(), open('data.txt').read(), open('sub/dir/x.txt').read())",
        stdin="hi",
        files={"data.txt": "x", "sub/dir/x.txt": "y"},
    )
    assert result.ok and result.stdout == "HI x y\n" and result.exit_code == 0 and not result.timed_out
    failed = run_code("import sys\nsys.exit(3)")
    assert not failed.ok and failed.exit_code == 3 and failed.killed_reason is None
    crash = run_code("raise ValueError('boom')")
    assert not crash.ok and "ValueError: boom" in crash.stderr
    assert crash.summary() == "error: exit code 1: ValueError: boom"


def test_layers_are_reported_and_the_work_dir_is_private():
    result = run_code("import os\nprint(os.getuid(), os.getcwd(), os.environ['SELFBAKE_SANDBOX'])")
    uid, cwd, layers = result.stdout.split()
    assert layers == result.isolation and cwd == "/tmp/work"
    assert {"netns", "ipcns", "mountns", "pidns", "nnp"} <= set(layers.split("+"))
    if ROOT:
        assert "uid" in layers and int(uid) >= 1_900_000
    else:
        assert "userns" in layers and int(uid) == os.getuid()


def test_files_are_written_by_the_program_user_after_the_drop():
    result = run_code(
        "import os\nprint(os.stat('data.txt').st_uid == os.getuid(), oct(os.stat('.').st_mode))",
        files={"data.txt": "x"},
    )
    assert result.stdout.split() == ["True", "0o40700"]


@pytest.mark.parametrize(
    "name",
    ["../escape.txt", "a/../../escape.txt", "/run/lock/escape.txt", "/tmp/escape.txt", "a//b", "", "x\0y"],
)
def test_unsafe_file_names_give_an_error_result(name, tmp_path):
    result = run_code("print('ran')", files={name: "planted"})
    assert not result.ok and result.killed_reason == "bad file name" and result.stdout == ""
    assert result.stderr.startswith("error: file name") and result.summary().startswith(
        "error: bad file name"
    )
    assert not os.path.exists("/run/lock/escape.txt") and not os.path.exists("/tmp/escape.txt")


@pytest.fixture
def refused(monkeypatch):
    """The kernel refuses namespaces: the first (isolated) launch reports a refusal, as the launcher does."""
    real = sandbox._launch

    def launch(*args, isolate):
        if isolate:
            return None, "the kernel refused new namespaces (Operation not permitted)"
        return real(*args, isolate=isolate)

    monkeypatch.setattr(sandbox, "_launch", launch)
    monkeypatch.setattr(sandbox, "_state", {"unsafe_code": False, "refused": None, "layers": None})
    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)


def test_without_isolation_code_is_refused_unless_the_caller_opts_in(refused, monkeypatch):
    with pytest.raises(SandboxUnavailable) as error:
        run_code("print(1)")
    assert (
        isinstance(error.value, UserError)
        and "--unsafe-code" in str(error.value)
        and "\n" not in str(error.value)
    )
    with pytest.raises(SandboxUnavailable):  # remembered: no second attempt, still refused
        run_code("print(1)")
    monkeypatch.setenv("SECRET_OF_THE_CALLER", "hunter2")
    result = run_code(
        "import os, signal\nprint(dict(os.environ))\n"
        "try:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError as e:\n    print('kill', e.errno)\n",
        allow_unisolated=True,
    )
    assert result.ok and result.isolation.startswith("unisolated: ")
    assert (
        "hunter2" not in result.stdout and "kill 1" in result.stdout
    )  # another uid (root) or seccomp guards it
    monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
    assert run_code("print(2)").stdout == "2\n"
    monkeypatch.delenv(sandbox.UNSAFE_ENV)
    sandbox.allow_unsafe_code(True)
    assert run_code("print(3)").stdout == "3\n"


def test_the_run_code_tool_refuses_up_front_and_the_cli_flag_opts_in(refused):
    from selfbake.cli import build_parser
    from selfbake.tools import get_tools

    with pytest.raises(SandboxUnavailable):
        get_tools(["run_code"])
    args, _ = build_parser().parse_known_args(["eval", "--unsafe-code"])
    assert args._unsafe_code is True
    sandbox.allow_unsafe_code()
    (tool,) = get_tools(["run_code"])
    assert tool("print(6 * 7)") == "42\n"


def test_an_interpreter_under_a_covered_dir_stays_usable(monkeypatch):
    """/tmp gets a fresh tmpfs and homes are hidden: an interpreter living there is carried over."""
    import shutil
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="selfbake-py-", dir="/tmp"))
    try:
        base.chmod(0o755)
        (base / "bin").mkdir(mode=0o755)
        (base / "bin" / "python3").symlink_to("/usr/bin/python3")
        monkeypatch.setenv("SELFBAKE_SANDBOX_PYTHON", str(base / "bin" / "python3"))
        result = run_code("import sys, os\nprint(sys.executable, os.listdir('/tmp'))")
        assert result.ok, result.stderr
        assert result.stdout.split()[0] == str(base / "bin" / "python3") and "mountns" in result.isolation
    finally:
        shutil.rmtree(base)
