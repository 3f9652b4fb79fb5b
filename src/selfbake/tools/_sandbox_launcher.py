"""Runs between ``run_code`` and the untrusted program: isolate, limit, exec.

Started by ``selfbake.tools.sandbox.run_code`` as ``python -I -S _sandbox_launcher.py SPEC``;
stdlib only (plus the optional ``pyseccomp`` module, loaded from the path the spec names,
because ``-S`` leaves site-packages off ``sys.path``). Three processes:

- **launcher** (this one): new namespaces -- as root mount + net + pid + ipc + uts
  directly; otherwise (or where root may not) a user namespace as well, with only
  the caller's own uid mapped -- then the mounts: the whole host tree read-only,
  fresh tmpfs over /tmp, /dev/shm and /var/tmp (the only writable places), empty
  read-only tmpfs over /run, /var/run, /var/lock, /home, /root and the
  caller's home (subtrees the interpreter needs are carried over). It reports
  the layers that hold, or that isolation failed and why: then ``run_code``
  reruns it unisolated only if the caller opted in.
- **init** (its child): pid 1 of the new pid namespace; mounts a /proc of that
  namespace, forbids further user namespaces there (``user.max_user_namespaces``
  is per user namespace) and waits. When the program exits, init reports its
  status and exits, and the kernel kills whatever the program left behind
  (daemons, ``setsid`` children), so output is never held hostage.
- **program** (init's child): drops to the sandbox uid (as root) or drops every
  capability (otherwise), sets rlimits and ``no_new_privs``, writes the work
  files (names checked again here; created ``O_EXCL|O_NOFOLLOW`` under the work
  dir), loads the seccomp filter, closes every inherited fd but 0-2, and execs
  the interpreter.

The mount, unshare and capability calls go through ``ctypes`` because the
standard library has no wrappers for them (``os.unshare`` appears only in 3.12).
"""

import ctypes
import errno
import importlib.util
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (
    CLONE_NEWNS,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 32, 4096, 1 << 14, 1 << 18, 1 << 21
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442  # same on x86_64 and aarch64
OPEN_TREE_CLONE, MOVE_MOUNT_F_EMPTY_PATH, MOUNT_ATTR_RDONLY = 1, 4, 1
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 4, 38, 36
CAP_VERSION_3 = 0x20080522
# Masked with an empty read-only tmpfs: where daemons keep sockets and lock files.
HIDDEN = ("/run", "/var/run", "/var/lock")
# Private writable tmpfs: the only places a program may write.
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")

PRELUDE = r"""
import socket as _socket, runpy as _runpy, sys as _sys
class _NoSocket(_socket.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None:  # socketpair() and fromfd() wrap fds that exist: local, allowed
            raise PermissionError("network access is disabled in the selfbake sandbox")
        super().__init__(family, type, proto, fileno)
_socket.socket = _NoSocket
_socket.create_connection = lambda *a, **k: _NoSocket()
_sys.argv = ["main.py"]
del _socket
_runpy.run_path("main.py", run_name="__main__")
"""

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _report(fd: int, **message) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _bytes(text: str | None) -> bytes | None:
    return text.encode() if isinstance(text, str) else text


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        libc.mount(_bytes(source), target.encode(), _bytes(fstype), flags, _bytes(data)), f"mount {target}"
    )


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _unshare(sandbox_uid: int | None) -> str:
    """New namespaces; returns "direct" (as root) or "userns" (own uid mapped), or raises OSError."""
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if sandbox_uid is not None:
        if libc.unshare(flags) == 0:
            return "direct"
        os.setgroups([])  # root without the right to unshare: map the sandbox uid, never root
        os.setgid(sandbox_uid)
        os.setuid(sandbox_uid)
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(flags | CLONE_NEWUSER), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    return "userns"


def _read_only_tree() -> None:
    """Every mount of the (private copy of the) host tree read-only."""
    attr = _MountAttr(attr_set=MOUNT_ATTR_RDONLY)
    if (
        libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr))
        == 0
    ):
        return
    with open("/proc/self/mountinfo") as fh:  # kernels before 5.12: one remount per mount point
        points = [line.split()[4].encode().decode("unicode_escape") for line in fh]
    for point in points:
        try:
            kept = os.statvfs(point).f_flag
        except OSError:
            continue
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | (kept & (MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048))
        flags |= MS_RELATIME if kept & 4096 else 0
        _mount(None, point, None, flags)


def _cover(path: str, keep: list[str], options: str, read_only: bool) -> None:
    """A fresh tmpfs over ``path``, carrying over the ``keep`` subtrees inside it (read-only, as is all else)."""
    if os.path.islink(path) or not os.path.isdir(path):
        return
    inside = [k for k in keep if k == path or k.startswith(path.rstrip("/") + "/")]
    clones = []
    for sub in inside:
        fd = libc.syscall(
            SYS_OPEN_TREE, AT_FDCWD, sub.encode(), OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC
        )
        if fd < 0:
            raise OSError(ctypes.get_errno(), f"open_tree {sub}: cannot keep it visible under {path}")
        clones.append((sub, fd))
    _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for sub, fd in clones:
        os.makedirs(sub, exist_ok=True)
        moved = libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, sub.encode(), MOVE_MOUNT_F_EMPTY_PATH)
        _check(0 if moved == 0 else -1, f"move_mount {sub}")
        os.close(fd)
    if read_only:
        _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _mounts(spec: dict) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _read_only_tree()
    for path in PRIVATE:
        _cover(path, spec["keep"], f"size={spec['tmpfs_mb']}m,mode=1777", read_only=False)
    for path in [*HIDDEN, *spec["hide"]]:
        _cover(path, spec["keep"], "size=1m,mode=755", read_only=True)


def _isolate(spec: dict) -> tuple[list[str], str | None]:
    """(layers that hold, why isolation failed or None)."""
    try:
        kind = _unshare(spec["uid"])
    except OSError as exc:
        return [], f"the kernel refused new namespaces ({exc.strerror}; see user.max_user_namespaces)"
    layers = {"direct": ["uid"], "userns": ["userns"]}[kind] + ["netns", "ipcns"]
    if kind == "userns" and spec["uid"] is not None:
        layers.insert(0, "uid")
    try:
        _mounts(spec)
    except OSError as exc:
        return layers, f"mount namespace setup failed ({exc})"
    return layers + ["mountns"], None


def _mount_proc(userns: bool) -> None:
    """Init's part: a /proc of the new pid namespace; no user namespaces below this one."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if userns:
        _write("/proc/sys/user/max_user_namespaces", "0")


def _drop_capabilities() -> None:
    header = (ctypes.c_uint32 * 2)(CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(libc.capset(header, data), "capset")


def _load_seccomp(path: str | None):
    if not path:
        return None
    try:
        spec = importlib.util.spec_from_file_location("pyseccomp", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except (OSError, ImportError, AttributeError, RuntimeError):
        return None  # libseccomp.so.2 missing: the layer is reported absent


def _seccomp_filter(seccomp, protected_pids: list[int]):
    """Deny the calls that reach outside: sockets, namespaces, tracing, kernel keyrings, bpf."""
    deny = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in (
        "socket",
        "unshare",
        "setns",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "keyctl",
        "add_key",
        "request_key",
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "fsopen",
        "fsmount",
        "open_tree",
        "move_mount",
        "mount_setattr",
        "kexec_load",
        "init_module",
        "finit_module",
        "swapon",
        "reboot",
        "io_uring_setup",
    ):
        rules.add_rule(deny, name)
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(
        seccomp.ERRNO(errno.ENOSYS), "clone3"
    )  # flags hide behind a pointer; libc falls back to clone
    for pid in protected_pids:  # matters only without a pid namespace
        for name in ("kill", "tkill"):
            rules.add_rule(deny, name, seccomp.Arg(0, seccomp.EQ, pid))
        rules.add_rule(deny, "tgkill", seccomp.Arg(0, seccomp.EQ, pid))
    return rules


def _safe_write_files(workdir: str, files: dict) -> None:
    """Create each file under ``workdir`` only: relative names, no '..', no following links."""
    for name, content in files.items():
        parts = name.split("/")
        if os.path.isabs(name) or ".." in parts or "" in parts or "\0" in name:
            raise ValueError(f"unsafe file name {name!r}")
        dir_fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts[:-1]:
                try:
                    os.mkdir(part, dir_fd=dir_fd)
                except FileExistsError:
                    pass
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                os.close(dir_fd)
                dir_fd = next_fd
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(parts[-1], flags, 0o644, dir_fd=dir_fd)
            with os.fdopen(fd, "w") as fh:
                fh.write(content)
        finally:
            os.close(dir_fd)


def _program(spec: dict, layers: list[str], seccomp) -> None:
    """The last process before exec: drop, limit, write files, filter, exec. Never returns."""
    limits = spec["limits"]
    uid = spec["uid"]
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    elif "userns" in layers:
        _drop_capabilities()
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"], limits["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if uid is not None or "userns" in layers:  # counted per uid (per user namespace): the program's alone
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    workdir = "/tmp/work" if "mountns" in layers else spec["workdir"]
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    _safe_write_files(workdir, spec["files"])
    os.chdir(workdir)
    if seccomp is not None:
        seccomp.load()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
    env.update(PYTHONHASHSEED="0", SELFBAKE_SANDBOX="+".join(layers))
    os.closerange(3, 1 << 16)
    python = spec["python"]
    os.execve(python, [python, "-I", "-B", "-c", PRELUDE], env)


def _kill_descendants() -> None:
    """Without a pid namespace: kill what the program left behind (we are their subreaper)."""
    for _ in range(50):
        children = set()
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as fh:
                children.update(int(pid) for pid in fh.read().split())
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


def _init(spec: dict, layers: list[str], report_fd: int, seccomp) -> None:
    """Pid 1 of the sandbox (or, unisolated, a subreaper): run the program, report its status."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pid_namespace = "mountns" in layers
    if pid_namespace:
        try:
            _mount_proc("userns" in layers)
        except OSError as exc:
            _report(report_fd, refused=f"pid namespace setup failed ({exc})")
            os._exit(0)
        layers = layers + ["pidns"]
    else:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    protected = (
        [] if pid_namespace else spec["protected_pids"] + [os.getppid(), os.getpid()]
    )  # caller, launcher, init
    seccomp_filter = _seccomp_filter(seccomp, protected) if seccomp else None
    layers = layers + (["seccomp"] if seccomp_filter is not None else []) + ["nnp"]
    _report(report_fd, layers=layers)
    program = os.fork()
    if program == 0:
        try:
            _program(spec, layers, seccomp_filter)
        except BaseException as exc:  # noqa: BLE001 - anything here is a setup failure to report
            _report(report_fd, setup_error=f"{type(exc).__name__}: {exc}")
        os._exit(127)
    status = None
    while status is None:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == program:
            status = wait_status
    if not pid_namespace:
        _kill_descendants()
    _report(report_fd, status=status)
    os._exit(0)


def main() -> None:
    spec_path = sys.argv[1]
    with open(spec_path) as fh:
        spec = json.load(fh)
    os.unlink(spec_path)
    report_fd = spec["report_fd"]
    seccomp = _load_seccomp(spec["seccomp_module"])
    if spec["isolate"]:
        layers, failure = _isolate(spec)
        if failure:  # run_code reruns unisolated only if the caller opted in
            _report(report_fd, refused=failure, layers=layers)
            return
    else:
        layers = ["uid"] if spec["uid"] is not None else []
    _report(report_fd, layers=layers)
    init = os.fork()
    if init == 0:
        _init(spec, layers, report_fd, seccomp)
    os.close(report_fd)
    os.waitpid(init, 0)


main()
