"""Runs inside the sandbox's child process, before the untrusted program: isolate, limit, exec.

Started by ``selfbake.tools.sandbox.run_code`` as ``python -I -S _sandbox_launcher.py SPEC``;
stdlib only. Steps: new mount + network namespaces (private tmpfs over /tmp,
/var/tmp and /dev/shm; no network interfaces up) where the kernel allows;
write the program and its files into the work dir; resource limits; drop to
an unprivileged uid of its own when started as root; scrub the environment;
exec the interpreter on a prelude that also refuses sockets in-process.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 1 << 14
MS_PRIVATE = 1 << 18

PRELUDE = r"""
import socket as _socket, runpy as _runpy, sys as _sys
class _NoSocket(_socket.socket):
    def __init__(self, *args, **kwargs):
        raise PermissionError("network access is disabled in the selfbake sandbox")
_socket.socket = _NoSocket
_socket.create_connection = lambda *a, **k: _NoSocket()
_sys.argv = ["main.py"]
del _socket
_runpy.run_path("main.py", run_name="__main__")
"""


def _isolate(libc) -> list[str]:
    layers = []
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        return layers
    layers.append("netns")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return layers
    for target in (b"/tmp", b"/var/tmp", b"/dev/shm"):
        if os.path.isdir(target) and libc.mount(b"tmpfs", target, b"tmpfs", 0, b"size=64m,mode=1777") == 0:
            if "mountns" not in layers:
                layers.append("mountns")
    return layers


def main() -> None:
    spec_path = sys.argv[1]
    with open(spec_path) as fh:
        spec = json.load(fh)
    os.unlink(spec_path)
    libc = ctypes.CDLL(None, use_errno=True)
    layers = _isolate(libc) if spec["namespaces"] else []
    workdir = "/tmp/work" if "mountns" in layers else spec["workdir"]
    os.makedirs(workdir, exist_ok=True)
    for name, content in spec["files"].items():
        path = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(content)
    uid = spec["uid"]
    if uid is not None:
        for root, dirs, files in os.walk(workdir):
            for entry in [root] + [os.path.join(root, x) for x in dirs + files]:
                os.chown(entry, uid, uid)
        layers.append("uid")
    os.chdir(workdir)
    limits = spec["limits"]
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"], limits["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if uid is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    env["SELFBAKE_SANDBOX"] = "+".join(layers) or "rlimits"
    report_fd = spec["report_fd"]
    os.write(report_fd, env["SELFBAKE_SANDBOX"].encode())
    os.close(report_fd)
    python = spec["python"]
    os.execve(python, [python, "-I", "-B", "-c", PRELUDE], env)


main()
