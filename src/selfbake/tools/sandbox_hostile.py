"""The hostile programs that ``run_code`` must contain, each with what must hold afterwards.

Run by ``selfbake.tools.sandbox_audit`` (which plants the targets: a secret in the
caller's environment, listeners, a decoy process, private files) and asserted in
tests/test_sandbox_hostile.py as root and as an unprivileged user. Each program's
source is formatted with the audit context's fields (``{tcp_port}``, ``{decoy_pid}``,
...); each check returns the expectations that failed, so an empty list means
contained. Stdlib only, like the sandbox, so a copy runs as another user.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from selfbake.tools.sandbox import ExecResult

if TYPE_CHECKING:
    from selfbake.tools.sandbox_targets import Context


@dataclass
class Case:
    name: str
    threat: str
    holds: str
    code: str  # formatted with the context's fields
    check: Callable[[ExecResult, Context], list[str]]  # failed expectations; empty: contained
    options: dict = field(default_factory=dict)


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


def gone(text: str, wait_s: float = 2.0) -> bool:
    """No host process with ``text`` in its command line (waiting a little for the kernel's cleanup)."""
    deadline = time.monotonic() + wait_s
    while host_processes_with(text):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _no_leftovers(ctx: Context, case: str) -> bool:
    return gone(ctx.marker(case))


SLEEPER = "[sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}]"
TRY = "def attempt(label, fn):\n    try:\n        print(label, fn())\n    except Exception as e:\n        print(label, 'refused', type(e).__name__)\n"
LIBC = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"


def hostile_programs() -> list[Case]:
    """The catalogue, in table order."""
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
        _leaves_no_trace(
            "write outside the work dir",
            "write into the caller's dir, /etc, /usr, /tmp",
            ("{dir}/escaped", "/etc/escaped-{tag}", "/usr/escaped-{tag}", "/tmp/escaped-{tag}"),
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
        _leaves_no_trace(
            "/var/tmp and /dev/shm",
            "leave files in the other world-writable places",
            ("/var/tmp/p-{tag}", "/dev/shm/p-{tag}", "/var/lock/p-{tag}"),
        ),
        Case(
            "setsid daemon keeps stdout",
            "leave setsid children holding stdout, then exit",
            "returns before the timeout, with its output; children killed",
            "import os, subprocess, sys\nsubprocess.Popen(" + SLEEPER + ", start_new_session=True)\n"
            "if os.fork() == 0:\n    os.setsid()\n    os.execv(sys.executable, "
            + SLEEPER
            + ")\nprint('done', flush=True)",
            lambda r, c: expect(
                output="done" in r.stdout,
                not_timed_out=not r.timed_out,
                killed=_no_leftovers(c, "setsid daemon keeps stdout"),
            ),
            {"timeout_s": 6},
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


def _leaves_no_trace(title: str, threat: str, paths: tuple[str, ...]) -> Case:
    """Write each of ``paths`` (templates over the context's ``dir`` and ``tag``): none may appear on the host."""
    return Case(
        title,
        threat,
        "nothing appears on the host",
        TRY + f"for p in {paths!r}:\n    attempt(p, lambda: open(p, 'w').write('x'))",
        lambda r, c: expect(nothing=not any(os.path.exists(p.format(dir=c.dir, tag=c.tag)) for p in paths)),
    )


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
