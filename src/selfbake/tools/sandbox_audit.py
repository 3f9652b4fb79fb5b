"""Hostile programs against ``run_code``, each with the containment it must meet.

Why in the package: the sandbox's layers depend on the kernel and on who runs
it, so the claim "contained" is only as good as a run on the machine at hand.
``python -m selfbake.tools.sandbox_audit`` runs every program here against the
caller's own secrets, files, listeners and processes and prints the table (as
root it also re-runs itself as an unprivileged user, ``nobody``, so the layers
that hold without root are checked too; ``--json`` writes the rows). The tests
(tests/test_sandbox_hostile.py) assert every row in both modes.

Each case plants what it attacks in the calling process -- a secret in the
caller's own environment, a TCP, UDP, filesystem and abstract UNIX listener, a
decoy process with an API key in its command line, private files -- and checks
afterwards, from outside, that the attack did not land. Stdlib only (plus the
sandbox), so a copy runs under a bare interpreter as another user.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from selfbake.tools.sandbox import ExecResult, run_code

PRELUDE_SIGNATURE = "network access is disabled in the selfbake sandbox"  # in every sandboxed command line


@dataclass
class Case:
    name: str
    threat: str
    holds: str
    code: str  # formatted with the context's fields
    check: Callable[[ExecResult, Context], list[str]]  # failed expectations; empty: contained
    options: dict = field(default_factory=dict)


class Context:
    """What the attacks aim at, planted in (and owned by) the calling process."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(4)
        # The caller's real environment: audit_as puts it there at exec (so /proc/PID/environ has it too).
        self.secret = os.environ.setdefault("HF_TOKEN", "hf_" + secrets.token_hex(12))
        # World-writable, outside every masked place: only the read-only host tree protects it.
        self.dir = Path(tempfile.mkdtemp(prefix="selfbake-audit-", dir=os.environ.get("SELFBAKE_AUDIT_DIR")))
        self.dir.chmod(0o777)
        self.precious = self.dir / "precious.txt"
        self.precious.write_text("keep me")
        self.precious.chmod(0o666)
        # A private key where the caller keeps them: its home (not root: the program has the caller's uid).
        keys = self.dir if os.geteuid() == 0 else Path(os.environ["HOME"]) / ".ssh"
        keys.mkdir(exist_ok=True)
        self.key = keys / f"id_audit_{self.tag}"
        self.key.write_text("PRIVATE-KEY-" + self.secret)
        self.key.chmod(0o600)
        self.driver_pid = os.getpid()
        self.hostname = socket.gethostname()
        self.accepted = {"tcp": 0, "udp": 0, "unix": 0, "abstract": 0}
        self.tcp = self._listen(socket.socket(), ("127.0.0.1", 0), "tcp")
        self.tcp_port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp_port = self.udp.getsockname()[1]
        threading.Thread(target=self._receive, daemon=True).start()
        self.unix_path = f"/run/lock/selfbake-audit-{self.tag}.sock"
        if not os.access("/run/lock", os.W_OK):
            self.unix_path = str(self.dir / "listener.sock")
        self.unix = self._listen(socket.socket(socket.AF_UNIX), self.unix_path, "unix")
        os.chmod(self.unix_path, 0o777)
        self.abstract_name = f"selfbake-audit-{self.tag}"
        self.abstract = self._listen(socket.socket(socket.AF_UNIX), "\0" + self.abstract_name, "abstract")
        self.decoy = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)", f"--api-key={self.secret}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _listen(self, sock: socket.socket, address, kind: str) -> socket.socket:
        sock.bind(address)
        sock.listen(8)

        def accept() -> None:
            while True:
                try:
                    sock.accept()
                except OSError:
                    return
                self.accepted[kind] += 1

        threading.Thread(target=accept, daemon=True).start()
        return sock

    def _receive(self) -> None:
        while True:
            try:
                self.udp.recv(100)
            except OSError:
                return
            self.accepted["udp"] += 1

    def marker(self, case: str) -> str:
        return f"selfbake-audit-{self.tag}-{case}"

    def close(self) -> None:
        self.decoy.kill()
        self.decoy.wait()
        for sock in (self.tcp, self.udp, self.unix, self.abstract):
            sock.close()
        self.key.unlink(missing_ok=True)
        if self.unix_path.startswith("/run/lock/") and os.path.exists(self.unix_path):
            os.remove(self.unix_path)
        shutil.rmtree(self.dir, ignore_errors=True)


def host_processes_with(text: str) -> list[int]:
    """Host pids whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _alive(process: subprocess.Popen) -> bool:
    return process.poll() is None


def expect(**conditions: bool) -> list[str]:
    return [name for name, held in conditions.items() if not held]


def _gone(text: str, wait_s: float = 2.0) -> bool:
    """No host process with ``text`` in its command line (waiting a little for the kernel's cleanup)."""
    deadline = time.monotonic() + wait_s
    while host_processes_with(text):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _no_leftovers(ctx: Context, case: str) -> bool:
    return _gone(ctx.marker(case))


SLEEPER = "[sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}]"
TRY = "def attempt(label, fn):\n    try:\n        print(label, fn())\n    except Exception as e:\n        print(label, 'refused', type(e).__name__)\n"
LIBC = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"


def _cases() -> list[Case]:
    out = lambda r: r.stdout + r.stderr  # noqa: E731
    return [
        Case(
            "fork bomb",
            "os.fork() forever",
            "process limit or timeout; nothing left running",
            "import os\nwhile True:\n    os.fork()",
            lambda r, c: expect(
                stopped=r.killed_reason in ("process limit", "timeout"), prompt=r.seconds < 8
            ),
            {"timeout_s": 3},
        ),
        Case(
            "memory bomb",
            "allocate 8 GiB at once",
            "MemoryError at the address-space limit",
            "x = bytearray(8 * 1024**3)",
            lambda r, c: expect(memory=r.killed_reason == "memory limit"),
            {"memory_mb": 256},
        ),
        Case(
            "memory growth",
            "grow a list by 10 MB steps",
            "stopped by the memory limit",
            "x = []\nwhile True:\n    x.append(' ' * 10**7)",
            lambda r, c: expect(
                memory=r.killed_reason in ("memory limit", "killed (cpu time limit or out of memory)")
            ),
            {"memory_mb": 256, "timeout_s": 10},
        ),
        Case(
            "endless loop",
            "while True: pass",
            "killed at the timeout",
            "while True:\n    pass",
            lambda r, c: expect(timeout=r.timed_out, prompt=r.seconds < 4),
            {"timeout_s": 1.5},
        ),
        Case(
            "busy thread",
            "spin in a thread and join it",
            "killed at the timeout or CPU limit",
            "import threading\ndef spin():\n    while True:\n        pass\nt = threading.Thread(target=spin)\nt.start()\nt.join()",
            lambda r, c: expect(
                stopped=r.timed_out or r.killed_reason == "cpu time limit", prompt=r.seconds < 4
            ),
            {"timeout_s": 1.5},
        ),
        Case(
            "environment secret",
            "print os.environ (the caller has HF_TOKEN set)",
            "no variable of the caller's reaches the program",
            "import os\nprint(dict(os.environ))",
            lambda r, c: expect(
                ran=r.ok, no_secret=c.secret not in out(r), no_name="HF_TOKEN" not in r.stdout
            ),
        ),
        Case(
            "caller's /proc environ",
            "read /proc/<caller>/environ and /proc/1/environ",
            "secret not readable",
            TRY
            + "import os\nfor p in ({driver_pid}, 1, os.getppid()):\n    attempt(p, lambda: open(f'/proc/{{p}}/environ').read())",
            lambda r, c: expect(ran=r.ok, no_secret=c.secret not in out(r)),
        ),
        Case(
            "host command lines",
            "scan /proc/*/cmdline for an --api-key",
            "host processes invisible (own pid namespace)",
            "import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\nprint(len(pids))\n"
            "for p in pids:\n    try:\n        print(open(f'/proc/{{p}}/cmdline').read())\n    except OSError:\n        pass",
            lambda r, c: expect(
                ran=r.ok, no_key=c.secret not in out(r), few=int(r.stdout.split()[0]) <= 4 if r.ok else False
            ),
        ),
        Case(
            "kill the caller",
            "SIGKILL os.getppid(), pid 1 and the caller's pid",
            "caller alive; the program runs on",
            TRY
            + "import os\nfor p in (os.getppid(), 1, {driver_pid}):\n    attempt(p, lambda: os.kill(p, 9))\nprint('still here')",
            lambda r, c: expect(program_went_on="still here" in r.stdout),
        ),  # the caller alive: it checks
        Case(
            "kill a host process",
            "SIGKILL a decoy process of the caller's",
            "decoy alive",
            TRY + "import os\nattempt('kill', lambda: os.kill({decoy_pid}, 9))",
            lambda r, c: expect(decoy_alive=_alive(c.decoy)),
        ),
        Case(
            "kill everything",
            "os.kill(-1, SIGKILL)",
            "caller and decoy alive",
            TRY + "import os\nattempt('kill', lambda: os.kill(-1, 9))",
            lambda r, c: expect(decoy_alive=_alive(c.decoy)),
        ),
        Case(
            "TCP to loopback",
            "socket.create_connection to a caller's 127.0.0.1 listener",
            "refused; nothing accepted",
            "import socket\nsocket.create_connection(('127.0.0.1', {tcp_port}), timeout=2)\nprint('connected')",
            lambda r, c: expect(
                refused=not r.ok and "connected" not in r.stdout, none_accepted=c.accepted["tcp"] == 0
            ),
        ),
        Case(
            "TCP via _socket",
            "the C module directly, past the in-process guard",
            "refused; nothing accepted",
            "import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {tcp_port}))\nprint('connected')",
            lambda r, c: expect(
                refused=not r.ok and "connected" not in r.stdout, none_accepted=c.accepted["tcp"] == 0
            ),
        ),
        Case(
            "UDP to loopback",
            "sendto a caller's UDP socket through _socket",
            "nothing received",
            TRY
            + "import _socket\nattempt('send', lambda: _socket.socket(2, 2).sendto(b'x', ('127.0.0.1', {udp_port})))",
            lambda r, c: expect(nothing_received=c.accepted["udp"] == 0),
        ),
        Case(
            "UNIX socket on the host",
            "connect to a listener socket in /run/lock",
            "refused; nothing accepted",
            TRY
            + "import _socket\ndef go():\n    s = _socket.socket(1, 1)\n    s.connect({unix_path!r})\n    return 'connected'\nattempt('unix', go)",
            lambda r, c: expect(refused="connected" not in r.stdout, none_accepted=c.accepted["unix"] == 0),
        ),
        Case(
            "abstract UNIX socket",
            "connect to a caller's abstract-namespace socket",
            "refused; nothing accepted",
            TRY
            + "import _socket\ndef go():\n    s = _socket.socket(1, 1)\n    s.connect('\\0' + {abstract_name!r})\n    return 'connected'\nattempt('abstract', go)",
            lambda r, c: expect(
                refused="connected" not in r.stdout, none_accepted=c.accepted["abstract"] == 0
            ),
        ),
        Case(
            "raw socket() via ctypes",
            "libc socket(AF_UNIX)+connect, no Python socket code",
            "refused; nothing accepted",
            LIBC + "import struct\nfd = libc.socket(1, 1, 0)\npath = {unix_path!r}.encode()\n"
            "addr = struct.pack('H', 1) + path + bytes(108 - len(path))\nprint('fd', fd, 'connect', libc.connect(fd, addr, len(addr)) if fd >= 0 else None)",
            lambda r, c: expect(refused="connect 0" not in r.stdout, none_accepted=c.accepted["unix"] == 0),
        ),
        Case(
            "write outside the work dir",
            "write into the caller's dir, /etc, /usr, /tmp",
            "nothing appears on the host",
            TRY
            + "for p in ({dir!r} + '/escaped', '/etc/escaped-{tag}', '/usr/escaped-{tag}', '/tmp/escaped-{tag}'):\n    attempt(p, lambda: open(p, 'w').write('x'))",
            lambda r, c: expect(
                nothing=not any(
                    os.path.exists(p)
                    for p in (
                        c.dir / "escaped",
                        f"/etc/escaped-{c.tag}",
                        f"/usr/escaped-{c.tag}",
                        f"/tmp/escaped-{c.tag}",
                    )
                )
            ),
        ),
        Case(
            "delete the caller's files",
            "shutil.rmtree the caller's dir, os.remove a file",
            "files intact",
            TRY
            + "import os, shutil\nshutil.rmtree({dir!r}, ignore_errors=True)\nattempt('rm', lambda: os.remove({precious!r}))",
            lambda r, c: expect(intact=c.precious.exists() and c.precious.read_text() == "keep me"),
        ),
        Case(
            "chmod the caller's files",
            "os.chmod a caller's file to 0777",
            "mode unchanged",
            TRY + "import os\nattempt('chmod', lambda: os.chmod({precious!r}, 0o777))",
            lambda r, c: expect(unchanged=stat.S_IMODE(c.precious.stat().st_mode) != 0o777),
        ),
        Case(
            "read a private key",
            "read a 0600 key file of the caller's and /root/.ssh",
            "key material not read",
            TRY
            + "import os\nattempt('key', lambda: open({key!r}).read())\nattempt('root', lambda: os.listdir('/root/.ssh'))",
            lambda r, c: expect(no_key=c.secret not in out(r)),
        ),
        Case(
            "setuid shell in /run/lock",
            "copy /bin/sh to /run/lock, chmod 4755, add 24 MB",
            "nothing persists on the host",
            TRY + "import os, shutil\nattempt('sh', lambda: shutil.copy('/bin/sh', '/run/lock/sh-{tag}'))\n"
            "attempt('suid', lambda: os.chmod('/run/lock/sh-{tag}', 0o4755))\n"
            "attempt('big', lambda: open('/run/lock/big-{tag}', 'wb').write(b'x' * 24 * 1024 * 1024))",
            lambda r, c: expect(
                no_shell=not os.path.exists(f"/run/lock/sh-{c.tag}"),
                no_data=not os.path.exists(f"/run/lock/big-{c.tag}"),
            ),
        ),
        Case(
            "/var/tmp and /dev/shm",
            "leave files in the other world-writable places",
            "nothing persists on the host",
            TRY
            + "for p in ('/var/tmp/p-{tag}', '/dev/shm/p-{tag}', '/var/lock/p-{tag}'):\n    attempt(p, lambda: open(p, 'w').write('x'))",
            lambda r, c: expect(
                nothing=not any(
                    os.path.exists(p)
                    for p in (f"/var/tmp/p-{c.tag}", f"/dev/shm/p-{c.tag}", f"/var/lock/p-{c.tag}")
                )
            ),
        ),
        Case(
            "setsid daemon keeps stdout",
            "leave setsid children holding stdout, then exit",
            "returns at once with its output; children killed",
            "import os, subprocess, sys\nsubprocess.Popen(" + SLEEPER + ", start_new_session=True)\n"
            "if os.fork() == 0:\n    os.setsid()\n    os.execv(sys.executable, "
            + SLEEPER
            + ")\nprint('done', flush=True)",
            lambda r, c: expect(
                output="done" in r.stdout,
                not_timed_out=not r.timed_out,
                prompt=r.seconds < 3.5,
                killed=_no_leftovers(c, "setsid daemon keeps stdout"),
            ),
            {"timeout_s": 2},
        ),
        Case(
            "children at the timeout",
            "start a child, then sleep past the timeout",
            "timeout; the child killed too",
            "import subprocess, sys, time\nsubprocess.Popen(" + SLEEPER + ")\ntime.sleep(60)",
            lambda r, c: expect(
                timeout=r.timed_out, prompt=r.seconds < 4, killed=_no_leftovers(c, "children at the timeout")
            ),
            {"timeout_s": 1.5},
        ),
        Case(
            "daemon at the timeout",
            "a setsid child, then sleep past the timeout",
            "timeout; the daemon killed too",
            "import subprocess, sys, time\nsubprocess.Popen("
            + SLEEPER
            + ", start_new_session=True)\ntime.sleep(60)",
            lambda r, c: expect(
                timeout=r.timed_out, prompt=r.seconds < 4, killed=_no_leftovers(c, "daemon at the timeout")
            ),
            {"timeout_s": 1.5},
        ),
        Case(
            "flood stdout",
            "write 100 MB to stdout",
            "cut at the output cap, in time",
            "import sys\nchunk = 'x' * 1_000_000\nfor _ in range(100):\n    sys.stdout.write(chunk)",
            lambda r, c: expect(capped=r.stdout_truncated and len(r.stdout) == 64_000, prompt=r.seconds < 20),
            {"timeout_s": 20},
        ),
        Case(
            "deep recursion",
            "recursion limit 10**7, recurse forever",
            "fails alone",
            "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)",
            lambda r, c: expect(failed=not r.ok, prompt=r.seconds < 5),
            {"timeout_s": 3},
        ),
        Case(
            "huge file",
            "write 1 GiB to a file",
            "file size limit",
            "with open('big.bin', 'wb') as fh:\n    for _ in range(1024):\n        fh.write(b'x' * 1024 * 1024)",
            lambda r, c: expect(limited=r.killed_reason == "file size limit"),
            {"max_file_mb": 8, "timeout_s": 10},
        ),
        Case(
            "fill /tmp",
            "many files just under the size limit into /tmp",
            "stopped by the private tmpfs's size",
            TRY
            + "def fill():\n    for i in range(40):\n        open(f'/tmp/f{{i}}', 'wb').write(b'x' * 8 * 1024 * 1024)\n    return 'filled'\nattempt('fill', fill)",
            lambda r, c: expect(stopped="filled" not in r.stdout),
            {"max_file_mb": 9, "timeout_s": 10},
        ),
        Case(
            "many open files",
            "open 10 000 files",
            "open-files limit",
            "fs = [open('f%d' % i, 'w') for i in range(10000)]",
            lambda r, c: expect(limited=not r.ok and "Too many open files" in r.stderr),
            {"max_open_files": 32},
        ),
        Case(
            "nested namespaces",
            "unshare(CLONE_NEWUSER) and unshare(1) -Urn",
            "both refused",
            LIBC + "import subprocess\nprint('unshare', libc.unshare(0x10000000))\n"
            "print('cli', subprocess.run(['unshare', '-Urn', 'true'], capture_output=True).returncode)",
            lambda r, c: expect(
                syscall_refused="unshare -1" in r.stdout, cli_refused="cli 0" not in r.stdout
            ),
        ),
        Case(
            "privileges",
            "read NoNewPrivs and CapEff of itself",
            "no_new_privs set, no capability",
            "print(*[x for x in open('/proc/self/status') if x.startswith(('NoNewPrivs', 'CapEff'))], sep='')",
            lambda r, c: expect(
                nnp="NoNewPrivs:\t1" in r.stdout, no_caps="CapEff:\t0000000000000000" in r.stdout
            ),
        ),
        Case(
            "remount / read-write",
            "mount(MS_REMOUNT) / and write under /usr",
            "refused; nothing written",
            LIBC
            + TRY
            + "print('mount', libc.mount(None, b'/', None, 32 | 4096, None))\nattempt('w', lambda: open('/usr/rw-{tag}', 'w').write('x'))",
            lambda r, c: expect(
                refused="mount -1" in r.stdout, nothing=not os.path.exists(f"/usr/rw-{c.tag}")
            ),
        ),
        Case(
            "ptrace a host process",
            "PTRACE_ATTACH the decoy and the parent",
            "both refused; decoy alive",
            LIBC
            + "import os\nprint('ptrace', libc.ptrace(16, {decoy_pid}, 0, 0), libc.ptrace(16, os.getppid(), 0, 0))",
            lambda r, c: expect(refused="ptrace -1 -1" in r.stdout, decoy_alive=_alive(c.decoy)),
        ),
        Case(
            "hostname and sysctl",
            "sethostname() and write /proc/sys/kernel/hostname",
            "host hostname unchanged",
            LIBC
            + TRY
            + "print('set', libc.sethostname(b'pwned', 5))\nattempt('sysctl', lambda: open('/proc/sys/kernel/hostname', 'w').write('pwned'))",
            lambda r, c: expect(unchanged=socket.gethostname() == c.hostname),
        ),
        Case(
            "spoof the result",
            "write a fake report to inherited fds 3-20",
            "no fd inherited; result not forged",
            "import json, os\nfor fd in range(3, 21):\n    try:\n        os.write(fd, json.dumps({{'status': 0, 'layers': ['forged']}}).encode() + b'\\n')\n"
            "        print('wrote', fd)\n    except OSError:\n        pass\nraise SystemExit(3)",
            lambda r, c: expect(
                no_fd="wrote" not in r.stdout, not_forged="forged" not in r.isolation and r.exit_code == 3
            ),
        ),
        _bad_file_name("files= traversal", "../../../../../../run/lock/trav-{tag}"),
        _bad_file_name("files= absolute name", "/run/lock/abs-{tag}"),
    ]


def _bad_file_name(title: str, name: str) -> Case:
    """A ``files=`` name that would land on the host, outside the work dir."""
    return Case(
        title,
        f"files={{{name.replace('{tag}', 'x')!r}: ...}}",
        "an error result; nothing written",
        "print('ran')",
        lambda r, c: expect(
            rejected=r.killed_reason == "bad file name" and "ran" not in r.stdout,
            nothing=not os.path.exists("/run/lock/" + name.format(tag=c.tag).rsplit("/", 1)[1]),
        ),
        {"files": {name: "planted"}},
    )


def _options(case: Case, ctx: Context) -> dict:
    options = dict(case.options)
    if "files" in options:
        options["files"] = {name.format(tag=ctx.tag): text for name, text in options["files"].items()}
    return options


def _evidence(result: ExecResult) -> str:
    """A short excerpt of what happened, for the table."""
    if result.stdout_truncated:
        return f"stdout cut at {len(result.stdout)} characters"
    if result.killed_reason:
        return result.killed_reason
    lines = result.stdout.strip().splitlines()
    if not result.ok and result.stderr.strip():
        lines = [result.stderr.strip().splitlines()[-1]]
    text = "; ".join(lines[:2]).replace("\0", " ").replace("\t", " ")
    return text[:70] or "(no output)"


def run_case(case: Case, ctx: Context) -> dict:
    fields = dict(
        vars(ctx), dir=str(ctx.dir), precious=str(ctx.precious), key=str(ctx.key), decoy_pid=ctx.decoy.pid
    )
    fields["marker"] = ctx.marker(case.name)
    code = case.code.format(**fields)
    result = run_code(code, **_options(case, ctx))
    failed = case.check(result, ctx)
    evidence = _evidence(result)
    return {
        "case": case.name,
        "threat": case.threat,
        "holds": case.holds,
        "contained": not failed,
        "failed": failed,
        "evidence": evidence,
        "isolation": result.isolation,
        "seconds": result.seconds,
    }


def audit(workers: int = 4, only: list[str] | None = None) -> list[dict]:
    """Every case (or those named in ``only``) against this process's own planted targets, in case order."""
    ctx = Context()
    cases = [case for case in _cases() if only is None or case.name in only]
    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            rows = list(pool.map(lambda case: run_case(case, ctx), cases))
        _gone(PRELUDE_SIGNATURE)
        leftovers = host_processes_with(PRELUDE_SIGNATURE)
        rows.append(
            {
                "case": "no sandboxed process left",
                "threat": "after all of the above",
                "holds": "none running",
                "contained": not leftovers,
                "failed": ["leftovers"] if leftovers else [],
                "evidence": f"{len(leftovers)} left",
                "isolation": "",
                "seconds": 0.0,
            }
        )
        return rows
    finally:
        ctx.close()


def _copy_for(user_dir: Path) -> Path:
    """A minimal copy of the sandbox (and pyseccomp) another user can import."""
    import importlib.util

    here = Path(__file__).resolve().parent
    package = user_dir / "selfbake"
    (package / "tools").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tools" / "__init__.py").write_text("")
    shutil.copy(here.parent / "errors.py", package / "errors.py")
    for name in ("sandbox.py", "_sandbox_launcher.py", "sandbox_audit.py"):
        shutil.copy(here / name, package / "tools" / name)
    found = importlib.util.find_spec("pyseccomp")
    if found and found.origin:
        shutil.copy(found.origin, user_dir / "pyseccomp.py")
    return user_dir


def audit_as(uid: int = 65534, gid: int = 65534, timeout_s: float = 300) -> list[dict]:
    """Run the audit in a child process as ``uid`` (from root: an unprivileged user), on a fresh copy."""
    from selfbake.tools.sandbox import _world_executable

    base = next(
        (b for b in ("/srv", "/opt", "/var/cache") if os.path.isdir(b) and not os.path.islink(b)), None
    )
    work = Path(tempfile.mkdtemp(prefix="selfbake-audit-user-", dir=base))  # outside the masked places
    try:
        _copy_for(work)
        (work / "home").mkdir()
        work.chmod(
            0o755
        )  # the world-writable target dir inside must be reachable: only read-only mounts guard it
        for path in [work, *work.rglob("*")]:
            os.chown(path, uid, gid)
        python = (
            sys.executable if uid == os.geteuid() or _world_executable(sys.executable) else "/usr/bin/python3"
        )
        script = (
            f"import sys, json; sys.path.insert(0, {str(work)!r}); "
            "from selfbake.tools import sandbox_audit as a; print(json.dumps(a.audit()))"
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work / "home"),
            "LANG": "C.UTF-8",
            "SELFBAKE_AUDIT_DIR": str(work),
            "HF_TOKEN": "hf_" + secrets.token_hex(12),  # the secret, in the caller's real environment
        }
        drop = {} if uid == os.geteuid() else {"user": uid, "group": gid, "extra_groups": []}
        done = subprocess.run(
            [python, "-I", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=work,
            env=env,
            **drop,
        )
        if done.returncode != 0:
            raise RuntimeError(f"audit as uid {uid} failed: {done.stderr.strip()[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def table(modes: dict[str, list[dict]]) -> str:
    """Markdown: one row per hostile program, one column per mode."""
    names = list(modes)
    lines = [
        "| # | hostile program | what must hold | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for i, row in enumerate(modes[names[0]], 1):
        cells = []
        for name in names:
            other = next(r for r in modes[name] if r["case"] == row["case"])
            verdict = "contained" if other["contained"] else "NOT CONTAINED: " + ", ".join(other["failed"])
            cells.append(f"{verdict} ({other['evidence'].replace('|', '/')})")
        lines.append(
            f"| {i} | **{row['case']}**: {row['threat']} | {row['holds']} | " + " | ".join(cells) + " |"
        )
    layers = {
        name: next((r["isolation"] for r in rows if r["isolation"]), "") for name, rows in modes.items()
    }
    lines.append("")
    lines.append("Layers: " + "; ".join(f"{name}: `{value}`" for name, value in layers.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m selfbake.tools.sandbox_audit", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--no-user", action="store_true", help="as root, skip the unprivileged re-run")
    args = parser.parse_args(argv)
    me = "root" if os.geteuid() == 0 else "not root"
    if os.geteuid() == 0 and "SELFBAKE_AUDIT_DIR" not in os.environ:
        os.environ["SELFBAKE_AUDIT_DIR"] = next(
            b for b in ("/srv", "/opt", "/var/cache", "/tmp") if os.path.isdir(b)
        )
    modes = {me: audit()}
    if os.geteuid() == 0 and not args.no_user:
        modes["not root (nobody)"] = audit_as()
    if args.json:
        Path(args.json).write_text(json.dumps(modes, indent=1))
    print(table(modes))
    return 0 if all(r["contained"] for rows in modes.values() for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
