"""The targets the hostile programs aim at, planted in (and owned by) the calling process.

Why a module of its own: the catalogue of attacks (``sandbox_hostile``) checks
them and the audit driver (``sandbox_audit``) plants them; both import this,
neither imports the other. Stdlib only, like the audit.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path


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
