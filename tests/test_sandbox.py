"""Hostile programs against ``run_code``: each is contained, this process is unharmed,
and the result's fields say what happened."""

import os
import socket
import threading
import time

import pytest

from selfbake.tools import run_code

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="uid and namespace isolation need root")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] not in "ZX"
    except FileNotFoundError:
        return False


def test_plain_program_stdin_files_and_exit_codes():
    result = run_code(
        "import sys\nprint(sys.stdin.read().upper(), open('data.txt').read())",
        stdin="hi",
        files={"data.txt": "x"},
    )
    assert result.ok and result.stdout == "HI x\n" and result.exit_code == 0 and not result.timed_out
    failed = run_code("import sys\nsys.exit(3)")
    assert not failed.ok and failed.exit_code == 3 and failed.killed_reason is None
    crash = run_code("raise ValueError('boom')")
    assert (
        not crash.ok
        and "ValueError: boom" in crash.stderr
        and crash.summary() == "error: exit code 1: ValueError: boom"
    )


@needs_root
def test_isolation_layers_are_reported():
    result = run_code("import os\nprint(os.getuid(), os.getcwd())")
    assert result.isolation == "netns+mountns+uid"
    uid, cwd = result.stdout.split()
    assert int(uid) >= 1_900_000 and cwd == "/tmp/work"


def test_fork_bomb():
    result = run_code("import os\nwhile True:\n    os.fork()", timeout_s=3)
    assert not result.ok
    assert result.killed_reason in ("process limit", "timeout")
    time.sleep(0.2)
    assert os.fork  # this process still works: fork something real
    assert run_code("print('after')").stdout == "after\n"


def test_memory_bomb():
    result = run_code("x = bytearray(8 * 1024**3)", memory_mb=256)
    assert not result.ok and result.killed_reason == "memory limit"
    grow = run_code("x = []\nwhile True:\n    x.append(' ' * 10**7)", memory_mb=256, timeout_s=10)
    assert not grow.ok and grow.killed_reason in ("memory limit", "killed (cpu time limit or out of memory)")


def test_infinite_loop_times_out():
    start = time.monotonic()
    result = run_code("while True:\n    pass", timeout_s=1.5)
    assert result.timed_out and result.killed_reason == "timeout" and result.exit_code is None
    assert time.monotonic() - start < 5


def test_busy_loop_in_a_thread():
    code = "import threading\ndef spin():\n    while True:\n        pass\nt = threading.Thread(target=spin)\nt.start()\nt.join()"
    result = run_code(code, timeout_s=1.5)
    assert not result.ok and (result.timed_out or result.killed_reason == "cpu time limit")


def test_socket_connect_to_localhost_is_refused():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    code = (
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
    )
    result = run_code(code)
    bypass = run_code(
        f"import _socket\ns = _socket.socket()\ns.settimeout(1)\ns.connect(('127.0.0.1', {port}))\nprint('connected')"
    )
    thread.join()
    server.close()
    assert not result.ok and "network access is disabled" in result.stderr
    assert "connected" not in result.stdout + bypass.stdout
    if ROOT:  # the in-process guard can be bypassed; the network namespace cannot
        assert not bypass.ok and "unreachable" in bypass.stderr.lower()
        assert accepted == []


@needs_root
def test_writing_outside_the_work_dir(tmp_path):
    outside = tmp_path / "escaped.txt"
    code = (
        "import os\n"
        f"for p in [{str(outside)!r}, '/etc/selfbake-escape', '/tmp/selfbake-escape', os.path.expanduser('~') + '/../x']:\n"
        "    try:\n        open(p, 'w').write('x'); print('wrote', p)\n"
        "    except OSError as e:\n        print('refused', p, e.errno)\n"
    )
    result = run_code(code)
    assert result.ok
    assert not outside.exists() and not os.path.exists("/etc/selfbake-escape")
    assert not os.path.exists("/tmp/selfbake-escape")  # a private /tmp that vanished with the run
    assert f"refused {outside}" in result.stdout


@needs_root
def test_reading_ssh_keys_and_secrets(tmp_path):
    secret = tmp_path / "id_ed25519"
    secret.write_text("PRIVATE-KEY-MATERIAL")
    secret.chmod(0o600)
    code = (
        "import os\n"
        f"for p in [{str(secret)!r}, os.path.expanduser('~root/.ssh/id_rsa'), '/root/.ssh']:\n"
        "    try:\n        print(open(p).read() if os.path.isfile(p) else os.listdir(p))\n"
        "    except OSError as e:\n        print('refused', e.errno)\n"
    )
    result = run_code(code)
    assert "PRIVATE-KEY-MATERIAL" not in result.stdout
    assert result.stdout.count("refused") >= 2


def test_parent_environment_secrets_do_not_leak(monkeypatch):
    monkeypatch.setenv("SELFBAKE_TEST_SECRET", "hunter2-secret")
    code = (
        "import os\nprint(dict(os.environ))\n"
        "try:\n    print(open(f'/proc/{os.getppid()}/environ').read())\n"
        "except OSError as e:\n    print('refused', e.errno)\n"
    )
    result = run_code(code)
    assert "hunter2-secret" not in result.stdout + result.stderr
    assert "SELFBAKE_TEST_SECRET" not in result.stdout


def test_huge_stdout_is_capped():
    start = time.monotonic()
    result = run_code(
        "import sys\nchunk = 'x' * 1_000_000\nfor _ in range(100):\n    sys.stdout.write(chunk)", timeout_s=20
    )
    assert result.ok and result.stdout_truncated
    assert len(result.stdout) == 64_000
    assert time.monotonic() - start < 20


def test_subprocess_that_outlives_the_parent_is_killed():
    code = (
        "import subprocess, os\n"
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n    import time\n    print(os.getpid(), flush=True)\n    time.sleep(60)\n"
    )
    result = run_code(code, timeout_s=3)
    pids = [int(x) for x in result.stdout.split()]
    assert len(pids) == 2
    time.sleep(0.3)
    if ROOT:  # without a uid of its own, a process that left the group cannot be found
        assert not any(alive(pid) for pid in pids)


@needs_root
def test_killing_the_parent_is_refused():
    code = (
        "import os, signal\n"
        f"for pid in (os.getppid(), {os.getpid()}):\n"
        "    try:\n        os.kill(pid, signal.SIGKILL); print('killed', pid)\n"
        "    except OSError as e:\n        print('refused', e.errno)\n"
    )
    result = run_code(code)
    assert result.stdout.count("refused") == 2
    assert alive(os.getpid())


def test_deleting_files_in_the_callers_directory(tmp_path):
    keep = tmp_path / "precious.txt"
    keep.write_text("keep me")
    code = f"import os, shutil\nshutil.rmtree({str(tmp_path)!r}, ignore_errors=True)\ntry:\n    os.remove({str(keep)!r})\nexcept OSError as e:\n    print('refused', e.errno)\n"
    run_code(code)
    assert keep.read_text() == "keep me"
    cwd_file = "selfbake-sandbox-cwd-probe.txt"
    with open(cwd_file, "w") as fh:
        fh.write("x")
    try:
        run_code(f"import os\nos.remove({os.path.abspath(cwd_file)!r})")
        if ROOT:
            assert os.path.exists(cwd_file)
    finally:
        if os.path.exists(cwd_file):
            os.remove(cwd_file)


def test_deep_recursion():
    result = run_code(
        "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)", timeout_s=5
    )
    assert not result.ok and result.exit_code != 0  # a RecursionError/SystemError, or a signal
    assert run_code("print(1)").ok


def test_huge_file_write():
    code = (
        "with open('big.bin', 'wb') as fh:\n    for _ in range(1024):\n        fh.write(b'x' * 1024 * 1024)"
    )
    result = run_code(code, max_file_mb=8, timeout_s=10)
    assert not result.ok and result.killed_reason == "file size limit"


def test_many_open_files():
    result = run_code("fs = [open('f%d' % i, 'w') for i in range(10000)]", max_open_files=32)
    assert not result.ok and "Too many open files" in result.stderr


def test_timeout_kills_the_whole_process_group():
    code = "import subprocess, time\np = subprocess.Popen(['sleep', '60'])\nprint(p.pid, flush=True)\ntime.sleep(60)"
    result = run_code(code, timeout_s=1.5)
    assert result.timed_out
    time.sleep(0.3)
    assert not alive(int(result.stdout.split()[0]))
