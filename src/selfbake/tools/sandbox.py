"""``run_code``: run untrusted Python in a separate, limited, isolated process.

Threat model. The code comes from a small model trying to solve a task, not
from a determined attacker; the goal is that mistakes and the usual hostile
snippets (fork bombs, memory bombs, endless loops, huge outputs, file
deletion, secret reading, network use, killing the parent) cannot harm the
caller or the machine. Layers, strongest first, each used where the machine
allows it (``ExecResult.isolation`` says which were active):

- ``uid``: when selfbake runs as root, the program runs under a fresh
  unprivileged uid of its own (no such user exists), so it cannot read or write
  anything that is not world-accessible, cannot signal the caller, and the
  process-count limit applies to it alone; on exit every process of that uid is
  killed, including ones that left the process group. The interpreter must be
  world-executable, so a root-only install (e.g. pyenv under /root) falls back
  to /usr/bin/python3.
- ``netns``: a new network namespace with no interface up: no network at all.
- ``mountns``: a private mount namespace with fresh tmpfs over /tmp, /var/tmp
  and /dev/shm; the work dir lives there and vanishes with the process.
- always: a new session (process group) killed on timeout; rlimits on CPU
  time, address space, file size, open files and core dumps; a scrubbed
  environment; stdout/stderr capped (the rest drained and dropped); an
  in-process guard that makes ``socket.socket`` raise.

Not defended: kernel exploits, side channels, or world-writable paths outside
the namespaces when not root (then only the rlimits and the process-group kill
apply). Do not run this as a security boundary against adversaries.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("_sandbox_launcher.py")
UID_RANGE = (1_900_000, 1_999_999)


@dataclass
class ExecResult:
    ok: bool
    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    killed_reason: str | None  # "timeout", "cpu time limit", "memory limit", "file size limit", "signal N"
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    seconds: float = 0.0
    isolation: str = ""

    def summary(self) -> str:
        """What a model sees as a tool result."""
        if self.ok:
            return self.stdout if self.stdout.strip() else "(no output)"
        why = self.killed_reason or f"exit code {self.exit_code}"
        tail = (self.stderr.strip().splitlines() or [""])[-1]
        return f"error: {why}" + (f": {tail}" if tail else "")


def _world_executable(path: str) -> bool:
    p = Path(path).resolve()
    if not p.exists() or not (p.stat().st_mode & 0o001):
        return False
    return all(parent.stat().st_mode & 0o001 for parent in p.parents)


def sandbox_python() -> str:
    """An interpreter an unprivileged uid can run: $SELFBAKE_SANDBOX_PYTHON, ours, or the system's."""
    for candidate in (os.environ.get("SELFBAKE_SANDBOX_PYTHON"), sys.executable, "/usr/bin/python3"):
        if candidate and (os.geteuid() != 0 or _world_executable(candidate)):
            return candidate
    return sys.executable


def _reader(stream, cap: int, sink: list, flag: list) -> None:
    size = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        if size < cap:
            sink.append(chunk[: cap - size])
        if size + len(chunk) > cap:
            flag[0] = True
        size += len(chunk)
    stream.close()


def _kill_uid(uid: int) -> None:
    """SIGKILL every process owned by ``uid`` (repeat: a fork bomb keeps spawning)."""
    for _ in range(20):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    os.kill(int(entry), signal.SIGKILL)
                    found = True
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        if not found:
            return
        time.sleep(0.02)


def run_code(
    code: str,
    *,
    stdin: str = "",
    timeout_s: float = 5,
    memory_mb: int = 512,
    files: dict[str, str] | None = None,
    max_output_bytes: int = 64_000,
    max_file_mb: int = 16,
    max_processes: int = 32,
    max_open_files: int = 64,
) -> ExecResult:
    """Run ``code`` as ``main.py`` in a fresh temporary directory with limits; never raises for bad code."""
    as_root = os.geteuid() == 0
    python = sandbox_python()
    uid = random.randint(*UID_RANGE) if as_root and _world_executable(python) else None
    control = Path(tempfile.mkdtemp(prefix="selfbake-sandbox-"))
    workdir = control / "work"
    spec = {
        "files": {**(files or {}), "main.py": code},
        "workdir": str(workdir),
        "uid": uid,
        "python": python,
        "namespaces": as_root,
        "limits": {
            "cpu_s": max(1, int(timeout_s) + 1),
            "memory_bytes": memory_mb * 1024 * 1024,
            "file_bytes": max_file_mb * 1024 * 1024,
            "open_files": max_open_files,
            "processes": max_processes,
        },
    }
    report_read, report_write = os.pipe()
    spec["report_fd"] = report_write
    spec_path = control / "spec.json"
    spec_path.write_text(json.dumps(spec))
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", str(LAUNCHER), str(spec_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd=control,
        pass_fds=(report_write,),
    )
    os.close(report_write)
    out, err, out_cut, err_cut = [], [], [False], [False]
    readers = [
        threading.Thread(target=_reader, args=(proc.stdout, max_output_bytes, out, out_cut), daemon=True),
        threading.Thread(target=_reader, args=(proc.stderr, max_output_bytes, err, err_cut), daemon=True),
    ]
    for thread in readers:
        thread.start()
    try:
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if uid is not None:
            _kill_uid(uid)
        proc.wait()
    for thread in readers:
        thread.join(timeout=5)
    seconds = time.monotonic() - start
    stdout = b"".join(out).decode(errors="replace")
    stderr = b"".join(err).decode(errors="replace")
    shutil.rmtree(control, ignore_errors=True)
    code_ = proc.returncode
    reason = None
    if timed_out:
        reason = "timeout"
    elif code_ is not None and code_ < 0:
        sig = -code_
        reason = {
            signal.SIGXCPU: "cpu time limit",
            signal.SIGKILL: "killed (cpu time limit or out of memory)",
            signal.SIGXFSZ: "file size limit",
        }.get(sig, f"signal {signal.Signals(sig).name}")
    elif code_ == 0:
        reason = None
    elif "BlockingIOError" in stderr and "fork" in stderr:
        reason = "process limit"
    elif "MemoryError" in stderr:
        reason = "memory limit"
    elif "File too large" in stderr or "SIGXFSZ" in stderr:
        reason = "file size limit"
    with os.fdopen(report_read, "rb") as fh:
        isolation = fh.read().decode() or "not started"
    return ExecResult(
        ok=code_ == 0 and not timed_out,
        stdout=stdout,
        stderr=stderr,
        exit_code=None if timed_out else code_,
        timed_out=timed_out,
        killed_reason=reason,
        stdout_truncated=out_cut[0],
        stderr_truncated=err_cut[0],
        seconds=round(seconds, 3),
        isolation=isolation,
    )
