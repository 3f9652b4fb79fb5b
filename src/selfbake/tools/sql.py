"""``sql_query``: run one query on a sqlite database, read only, bounded in time and memory.

A query comes from a model, so every layer assumes it is hostile:

- the database is opened read only (``mode=ro`` URI, never created) with ``PRAGMA query_only``;
- an authorizer (``Connection.set_authorizer``) allows only reading: SELECT, reads, functions,
  recursive CTEs and a few schema-reading pragmas. ATTACH (plain paths and ``file:...?mode=rwc``
  URIs alike), DETACH, VACUUM (``VACUUM INTO`` attaches its target), writes, pragmas that set
  anything and transactions are denied, so no query creates or changes a file;
- SQLite's own limits (``Connection.setlimit``): no attached databases, values of at most
  ``MAX_VALUE_BYTES`` (a 20 MB ``printf``/``zeroblob`` fails inside SQLite before it is
  allocated), a bounded statement length and column count;
- a progress handler aborts a query after ``timeout_s``;
- rows are read one at a time and reading stops at ``max_rows`` rows or ``MAX_OUTPUT_CHARS``.

Errors come back as ``error: ...`` strings; the function never raises.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

MAX_ROWS = 50
MAX_OUTPUT_CHARS = 20_000
MAX_VALUE_BYTES = 100_000
MAX_SQL_CHARS = 10_000
MAX_COLUMNS = 100

_ALLOWED_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
_READ_PRAGMAS = {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "foreign_key_list"}
_LIMITS = {
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,
    sqlite3.SQLITE_LIMIT_LENGTH: MAX_VALUE_BYTES,
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: MAX_SQL_CHARS,
    sqlite3.SQLITE_LIMIT_COLUMN: MAX_COLUMNS,
}


def _authorize(action: int, arg1, arg2, db_name, trigger) -> int:
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg1 in _READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _open(db: str, timeout_s: float) -> sqlite3.Connection:
    path = Path(db).resolve()
    if not path.is_file():
        raise sqlite3.OperationalError(f"no database file at {db}")
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    conn.execute("PRAGMA query_only = ON")
    for limit, value in _LIMITS.items():
        conn.setlimit(limit, value)
    conn.set_authorizer(_authorize)
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    return conn


def _cell(value) -> str:
    return f"<{len(value)} bytes>" if isinstance(value, bytes) else str(value)


def sql_query(query: str, *, db: str, max_rows: int = MAX_ROWS, timeout_s: float = 2.0) -> str:
    """Run one read-only query; the rows as 'a | b' lines under a header, or 'error: ...'."""
    if not db:
        return "error: no database is configured for sql_query"
    query = str(query).strip().rstrip(";")
    if not query:
        return "error: empty query"
    if "\x00" in query:
        return "error: the query contains a NUL byte"
    try:
        conn = _open(db, timeout_s)
    except (sqlite3.Error, OSError, ValueError) as exc:
        return f"error: cannot open database: {exc}"
    lines: list[str] = []
    try:
        cursor = conn.execute(query)
        header = [d[0] for d in cursor.description or []]
        size, more = 0, False
        for row in cursor:
            if len(lines) == max_rows or size > MAX_OUTPUT_CHARS:
                more = True
                break
            line = " | ".join(_cell(v) for v in row)[:MAX_OUTPUT_CHARS]
            lines.append(line)
            size += len(line)
    except sqlite3.Error as exc:
        text = str(exc)
        message = "query took too long" if "interrupted" in text else text
        if "authoriz" in text or "too many attached" in text:
            message = (
                f"{text}: the database is read only (no writes, ATTACH, DETACH, VACUUM or PRAGMA settings)"
            )
        return f"error: {message}"
    except Exception as exc:  # a model's query must never take the caller down
        return f"error: {type(exc).__name__}: {str(exc)[:80]}"
    finally:
        conn.close()
    if not header:
        return "(no result)"
    if more:
        lines.append(f"…[more than {len(lines)} rows]")
    return "\n".join([" | ".join(header)] + lines) if lines else " | ".join(header) + "\n(no rows)"
