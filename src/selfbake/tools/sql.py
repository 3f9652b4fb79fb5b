"""``sql_query``: run one query on a sqlite database through a read-only connection.

The database is opened with ``mode=ro`` and ``PRAGMA query_only``, a progress
handler aborts queries that run too long, and at most ``max_rows`` rows come back.
"""

from __future__ import annotations

import sqlite3
import time

MAX_ROWS = 50


def sql_query(query: str, *, db: str, max_rows: int = MAX_ROWS, timeout_s: float = 2.0) -> str:
    if not db:
        return "error: no database is configured for sql_query"
    query = query.strip().rstrip(";")
    if not query:
        return "error: empty query"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return f"error: cannot open database: {exc}"
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        conn.execute("PRAGMA query_only = ON")
        cursor = conn.execute(query)
        rows = cursor.fetchmany(max_rows + 1)
        header = [d[0] for d in cursor.description or []]
    except sqlite3.Error as exc:
        message = "query took too long" if "interrupted" in str(exc) else str(exc)
        return f"error: {message}"
    finally:
        conn.close()
    if not header:
        return "(no result)"
    lines = [" | ".join(header)] + [" | ".join(str(v) for v in row) for row in rows[:max_rows]]
    if len(rows) > max_rows:
        lines.append(f"…[more than {max_rows} rows]")
    return "\n".join(lines) if rows else " | ".join(header) + "\n(no rows)"
