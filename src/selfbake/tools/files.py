"""``read_file``: read a text file confined to a root directory.

Paths are resolved (symlinks included) before the check, so ``..``, absolute
paths and symlinks that lead out of the root are refused alike. A path with a
NUL byte, a file that cannot be read (permissions, a FIFO, a vanished file)
and any other failure come back as ``error: ...``: the function never raises.
"""

from __future__ import annotations

import os

MAX_BYTES = 20_000


def read_file(path: str, *, root: str, max_bytes: int = MAX_BYTES) -> str:
    """The file's text (cut at ``max_bytes``), a directory listing, or 'error: ...'."""
    try:
        return _read(str(path), root, max_bytes)
    except (OSError, ValueError) as exc:
        return f"error: cannot read '{str(path).strip()[:80]}': {type(exc).__name__}"


def _read(path: str, root: str, max_bytes: int) -> str:
    if "\x00" in path:
        return "error: the path contains a NUL byte"
    if not root:
        return "error: no file root is configured for read_file"
    root_real = os.path.realpath(root)
    requested = path.strip().strip("'\"")
    if not requested:
        return "error: empty path"
    target = os.path.realpath(os.path.join(root_real, requested))
    if os.path.commonpath([root_real, target]) != root_real:
        return f"error: '{requested}' is outside the readable directory"
    if not os.path.exists(target):
        return f"error: no such file '{requested}'"
    if not os.path.isfile(target) and not os.path.isdir(target):
        return f"error: '{requested}' is not a regular file"
    if os.path.isdir(target):
        entries = sorted(os.listdir(target))[:50]
        return "directory: " + ", ".join(entries)
    with open(target, "rb") as fh:
        data = fh.read(max_bytes + 1)
    text = data[:max_bytes].decode("utf-8", errors="replace")
    return text + (" …[truncated]" if len(data) > max_bytes else "")
