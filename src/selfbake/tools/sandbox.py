"""``run_code``: run untrusted Python in a separate, limited, isolated process.

Threat model. The code comes from a model, so it may be anything: mistakes and
hostile snippets alike (fork and memory bombs, endless loops, floods of output,
reading secrets, deleting or planting files, network and UNIX-socket use,
killing the caller, daemons that outlive the run). What must hold is that none
of it reaches the caller, its files, its environment or other processes, with
or without root. ``ExecResult.isolation`` names the layers that held for each
run:

- ``uid`` (caller is root): the program runs under a fresh uid of its own
  (1 900 000 and up; no such user exists): root-only files stay unreadable,
  the caller cannot be signalled, the process limit counts the program alone.
- ``userns`` (caller is not root): a user namespace mapping only the caller's
  own uid; the program keeps no capability (dropped before the files are
  written, and exec clears them anyway), and nested user namespaces are
  forbidden (``user.max_user_namespaces`` = 0 inside).
- ``netns`` + ``ipcns``: no network interface up (loopback unreachable),
  abstract UNIX sockets and System V IPC of the host out of reach.
- ``mountns``: the whole host tree is read-only; /tmp, /var/tmp and /dev/shm are
  fresh private tmpfs (the work dir is /tmp/work), gone with the run; /run,
  /var/run and /var/lock (daemon sockets, world-writable lock dirs) are hidden
  under empty read-only tmpfs, and so are /home, /root and the caller's home
  (an interpreter or venv living under a covered dir is carried over, read-only).
- ``pidns``: the program's own pid namespace and /proc: no host process is
  visible or can be signalled; when the program exits or times out, everything
  it started dies with the namespace, ``setsid`` daemons included.
- ``seccomp`` (when libseccomp is installed; loaded through ``pyseccomp``, a
  ctypes binding, because the standard library has none): ``socket()`` of every
  family, ``unshare``/``setns``/namespace flags on ``clone`` (``clone3`` returns
  ENOSYS so libc falls back to ``clone``), ``ptrace``, ``process_vm_*``, mount
  calls, ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring``, kernel
  keyrings and signals to the caller's pid fail with EPERM. ``socketpair`` stays.
- ``nnp``: ``no_new_privs``: setuid binaries and file capabilities grant nothing.
- always: rlimits (CPU time, address space, file size, open files, processes
  where counted per sandbox uid, no core dumps); an environment built from
  scratch (nothing of the caller's, e.g. ``HF_TOKEN``, reaches the program);
  output capped, the rest drained; ``files=`` names checked (relative, no
  ``..``) and written by the program's process after the privilege drop.

Where the kernel refuses namespaces (``user.max_user_namespaces`` = 0, a
container without the right), ``run_code`` raises :class:`SandboxUnavailable`
unless the caller opts in with ``allow_unisolated=True`` (CLI: ``--unsafe-code``;
environment: ``SELFBAKE_UNSAFE_CODE=1``), the convention of lm-eval's
``--confirm_run_unsafe_code``. Then only ``uid`` (as root), ``seccomp``,
``nnp``, the rlimits, the scrubbed environment and a subreaper that kills
leftovers hold: the program can read and write whatever the caller's uid can.

Not defended: kernel bugs, side channels, CPU and memory pressure within the
limits, and reading world-readable host files (read-only, but visible). Full
table of hostile programs and what holds: docs/concepts/sandbox.md.
"""

from __future__ import annotations

import importlib.util
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

from selfbake.errors import UserError

LAUNCHER = Path(__file__).with_name("_sandbox_launcher.py")
UID_RANGE = (1_900_000, 1_999_999)
UNSAFE_ENV = "SELFBAKE_UNSAFE_CODE"
_state = {"unsafe_code": False, "refused": None, "layers": None}


class SandboxUnavailable(UserError):
    """Isolation cannot be set up here and the caller did not opt in to running code without it."""


def allow_unsafe_code(allowed: bool = True) -> None:
    """Process-wide opt-in (the CLI's ``--unsafe-code``): run code unisolated where namespaces are refused."""
    _state["unsafe_code"] = allowed


def _unsafe_code_allowed() -> bool:
    return _state["unsafe_code"] or os.environ.get(UNSAFE_ENV, "").lower() in ("1", "true", "yes")


def ensure_available() -> str:
    """The layers a program gets here; raises :class:`SandboxUnavailable` up front (once) if it would."""
    if _state.get("layers") is None:
        _state["layers"] = run_code("pass").isolation
    return _state["layers"]


def check_file_names(files: dict[str, str]) -> str | None:
    """Why ``files`` cannot be written into the work dir, or None: names must be relative, without '..'."""
    for name in files:
        parts = name.split("/")
        if not name or name.startswith("/") or "\0" in name:
            return f"file name {name!r} must be a relative path"
        if ".." in parts or "" in parts:
            return f"file name {name!r} may not contain '..' or empty components"
    return None


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


def _seccomp_module() -> str | None:
    """Path of the ``pyseccomp`` module for the launcher (which starts without site-packages)."""
    found = importlib.util.find_spec("pyseccomp")
    return found.origin if found and found.origin else None


def _hidden_homes() -> list[str]:
    """Homes, the caller's included: world-readable files of users' (and a non-root caller's own) stay out of sight."""
    home = os.path.realpath(os.environ.get("HOME") or os.path.expanduser("~"))
    return sorted({"/home", "/root", home} - {"/"})


def _kept_paths(python: str) -> list[str]:
    """The interpreter's trees: carried over into a hidden home if they live there."""
    paths = {str(Path(os.path.realpath(python)).parent.parent), str(Path(python).absolute().parent.parent)}
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        paths |= {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    return sorted(paths)


def _refusal(reason: str) -> SandboxUnavailable:
    return SandboxUnavailable(
        f"the code sandbox cannot isolate programs here: {reason}; allow unprivileged user namespaces "
        f"(sysctl user.max_user_namespaces) or run code without isolation at your own risk with "
        f"--unsafe-code (API: allow_unisolated=True; environment: {UNSAFE_ENV}=1)"
    )


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
    allow_unisolated: bool | None = None,
) -> ExecResult:
    """Run ``code`` as ``main.py`` in a fresh work dir with limits; never raises for bad code or bad names.

    Raises :class:`SandboxUnavailable` only where isolation cannot be set up and
    running without it was not allowed (``allow_unisolated``, default: the
    ``--unsafe-code`` opt-in or ``$SELFBAKE_UNSAFE_CODE``).
    """
    all_files = {**(files or {}), "main.py": code}
    problem = check_file_names(all_files)
    if problem:
        return ExecResult(
            False, "", f"error: {problem}", None, False, "bad file name", isolation="not started"
        )
    allowed = _unsafe_code_allowed() if allow_unisolated is None else allow_unisolated
    if _state["refused"] is not None and not allowed:
        raise _refusal(_state["refused"])
    limits = {
        "cpu_s": max(1, int(timeout_s) + 1),
        "memory_bytes": memory_mb * 1024 * 1024,
        "file_bytes": max_file_mb * 1024 * 1024,
        "open_files": max_open_files,
        "processes": max_processes,
    }
    spec = {"files": all_files, "limits": limits, "tmpfs_mb": max(64, 2 * max_file_mb)}
    run = (spec, stdin, timeout_s, max_output_bytes)
    if _state["refused"] is None:
        result, refused = _launch(*run, isolate=True)
        if refused is None:
            return result
        _state["refused"] = refused
        if not allowed:
            raise _refusal(refused)
    result, _ = _launch(*run, isolate=False)
    result.isolation = "unisolated: " + (result.isolation or "rlimits")
    return result


def _launch(spec: dict, stdin: str, timeout_s: float, max_output_bytes: int, isolate: bool):
    """One launcher run: (ExecResult, why isolation was refused or None)."""
    as_root = os.geteuid() == 0
    python = sandbox_python()
    uid = random.randint(*UID_RANGE) if as_root and _world_executable(python) else None
    control = Path(tempfile.mkdtemp(prefix="selfbake-sandbox-"))
    workdir = control / "work"
    if uid is not None:  # unisolated root: the program (as ``uid``) makes its files in here
        control.chmod(0o711)
        workdir.mkdir(mode=0o700)
        os.chown(workdir, uid, uid)
    report_read, report_write = os.pipe()
    spec = {
        **spec,
        "workdir": str(workdir),
        "uid": uid,
        "python": python,
        "isolate": isolate,
        "hide": _hidden_homes(),
        "keep": _kept_paths(python),
        "seccomp_module": _seccomp_module(),
        "protected_pids": [os.getpid()],
        "report_fd": report_write,
    }
    spec_path = control / "spec.json"
    fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(spec, fh)
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
    with os.fdopen(report_read, "rb") as fh:
        report = [json.loads(line) for line in fh.read().decode().splitlines() if line.strip()]
    shutil.rmtree(control, ignore_errors=True)
    messages = {key: value for message in report for key, value in message.items()}
    if "refused" in messages:
        return None, messages["refused"]
    stdout = b"".join(out).decode(errors="replace")
    stderr = b"".join(err).decode(errors="replace")
    if "setup_error" in messages:
        stderr = f"sandbox setup failed: {messages['setup_error']}\n" + stderr
    code_ = _exit_code(messages.get("status"), proc.returncode)
    result = ExecResult(
        ok=code_ == 0 and not timed_out and "setup_error" not in messages,
        stdout=stdout,
        stderr=stderr,
        exit_code=None if timed_out else code_,
        timed_out=timed_out,
        killed_reason=_killed_reason(timed_out, code_, stderr),
        stdout_truncated=out_cut[0],
        stderr_truncated=err_cut[0],
        seconds=round(seconds, 3),
        isolation="+".join(messages.get("layers", [])) or ("not started" if not report else ""),
    )
    return result, None


def _exit_code(wait_status: int | None, launcher_code: int | None) -> int | None:
    """The program's exit code (negative: killed by that signal), from init's report when there is one."""
    if wait_status is None:
        return launcher_code
    if os.WIFSIGNALED(wait_status):
        return -os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def _killed_reason(timed_out: bool, code: int | None, stderr: str) -> str | None:
    if timed_out:
        return "timeout"
    if code is not None and code < 0:
        sig = -code
        return {
            signal.SIGXCPU: "cpu time limit",
            signal.SIGKILL: "killed (cpu time limit or out of memory)",
            signal.SIGXFSZ: "file size limit",
        }.get(sig, f"signal {signal.Signals(sig).name}")
    if code == 0:
        return None
    if "BlockingIOError" in stderr and "fork" in stderr:
        return "process limit"
    if "MemoryError" in stderr:
        return "memory limit"
    if "File too large" in stderr or "SIGXFSZ" in stderr:
        return "file size limit"
    if stderr.startswith("sandbox setup failed"):
        return "sandbox setup failed"
    return None
