import os
import sys
from decimal import Decimal
from fractions import Fraction

import pytest

from selfbake.errors import UserError
from selfbake.tools import Tool, calculator, get_tools
from selfbake.tools.calculator import MAX_DIGITS


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("12*34", "408"),
        ("0.1 + 0.2", "0.3"),
        ("7/4", "1.75"),
        ("(3 - 5) * -2", "4"),
        ("2**64", "18446744073709551616"),
        ("10 // 3", "3"),
        ("10 % 3", "1"),
        ("3 × 4 − 1", "11"),
        ("123456789123456789 * 987654321987654321", str(123456789123456789 * 987654321987654321)),
    ],
)
def test_calculator_is_exact(expr, expected):
    assert calculator(expr) == expected


def test_calculator_repeating_decimal():
    assert calculator("1/3") == "1/3 ≈ 0.333333333333"


@pytest.mark.parametrize(
    "expr, message",
    [
        ("", "empty"),
        ("1/0", "division by zero"),
        ("__import__('os').system('true')", "unsupported syntax"),
        ("2 ** 100000", "exponent larger"),
        ("9 ** 9 ** 9", "exponent larger"),
        ("1 +", "cannot parse"),
        ("x" * 600, "longer than"),
        ("2 ** 0.5", "whole-number exponents"),
    ],
)
def test_calculator_refuses_safely(expr, message):
    result = calculator(expr)
    assert result.startswith("error:") and message in result


def test_tool_never_raises_and_truncates():
    def boom(_):
        raise RuntimeError("kaput")

    tool = Tool("boom", "fails", "x", boom)
    assert tool("anything") == "error: RuntimeError: kaput"
    long = Tool("long", "long output", "x", lambda s: "y" * 5000, max_result_chars=100)
    assert len(long("")) < 120 and long("").endswith("[truncated]")


def test_registry():
    [calc] = get_tools(["calculator"])
    assert calc("2+3") == "5"
    assert calc.schema()["function"]["parameters"]["required"] == ["expression"]
    with pytest.raises(UserError, match="unknown tool 'calculater'"):
        get_tools(["calculater"])


def test_read_file_is_confined(tmp_path):
    from selfbake.tools import read_file

    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("code: 123")
    (tmp_path / "secret.txt").write_text("s3cret")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert read_file("sub/a.txt", root=str(root)) == "code: 123"
    assert read_file("sub", root=str(root)) == "directory: a.txt"
    for bad in ("../secret.txt", str(tmp_path / "secret.txt"), "link.txt", "sub/../../secret.txt"):
        assert "outside the readable directory" in read_file(bad, root=str(root)), bad
    assert read_file("nope.txt", root=str(root)).startswith("error: no such file")
    (root / "big.txt").write_text("x" * 50_000)
    assert read_file("big.txt", root=str(root), max_bytes=100).endswith("[truncated]")


def test_sql_query_is_read_only(tmp_path):
    import sqlite3

    from selfbake.tools import sql_query

    db = tmp_path / "w.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (name text, value int)")
        conn.executemany("insert into t values (?, ?)", [("a", 1), ("b", 2)])
    assert sql_query("select value from t where name = 'b'", db=str(db)) == "value\n2"
    assert "readonly" in sql_query("delete from t", db=str(db)).replace(" ", "").lower()
    assert sql_query("drop table t", db=str(db)).startswith("error:")
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from t").fetchone()[0] == 2
    assert sql_query("select * from missing", db=str(db)).startswith("error: no such table")
    slow = "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c"
    assert sql_query(slow, db=str(db), timeout_s=0.2) == "error: query took too long"
    assert "more than 1 rows" in sql_query("select * from t", db=str(db), max_rows=1)


def test_search_ranks_by_bm25(tmp_path):
    from selfbake.tools import search

    (tmp_path / "a.txt").write_text("The capital of Velmora is Ostrin.\n\nVelmora exports copper.")
    (tmp_path / "b.md").write_text("Ostrin has a river port.")
    result = search("capital of Velmora", corpus=str(tmp_path))
    assert result.splitlines()[0] == "[a.txt] The capital of Velmora is Ostrin."
    assert search("zebra", corpus=str(tmp_path)) == "no results"
    assert search("x", corpus=str(tmp_path / "none")).startswith("error:")


def test_bound_tools_from_context(tmp_path):
    (tmp_path / "f.txt").write_text("hello")
    read, code = get_tools(["read_file", "run_code"], {"files_root": str(tmp_path)})
    assert read("f.txt") == "hello"
    assert code("print(6 * 7)") == "42\n"
    assert code("1/0").startswith("error: exit code 1: ZeroDivisionError")


HOSTILE_EXPRESSIONS = ["(7**2000)**10000", "10**4400", "0.1**-10000", "(10**400+1)/3", "1e999", "1e99999999",
                       "7**2000*7**2000*7**2000", "1\x00", "(" * 200 + "1" + ")" * 200, "-" * 499 + "1"]  # fmt: skip


@pytest.mark.parametrize("expr", HOSTILE_EXPRESSIONS)
def test_calculator_answers_hostile_input_fast_and_never_raises(expr):
    import time

    start = time.perf_counter()
    result = calculator(expr)  # a direct call, as procedural.py makes: no Tool wrapper to catch anything
    assert time.perf_counter() - start < 1.0, expr
    assert isinstance(result, str) and result
    assert len(result) <= 2 * MAX_DIGITS + 40


def test_calculator_bounds_and_exact_results():
    assert calculator("(7**2000)**10000") == f"error: result has more than {MAX_DIGITS} digits"
    assert calculator("10**4400").startswith("error: result has more than")
    assert calculator("0.1**-10000").startswith("error: result has more than")
    assert calculator("1e999") == "1" + "0" * 999  # the literal's own text, exactly
    third = calculator("(10**400+1)/3")
    assert third.startswith(f"{10**400 + 1}/3 ≈ 3.33333333333e+399")
    assert MAX_DIGITS < sys.get_int_max_str_digits()
    assert calculator(f"10**{MAX_DIGITS - 1}") == "1" + "0" * (MAX_DIGITS - 1)  # the largest allowed power


def test_calculator_decimals_are_exact_to_every_digit():
    result = calculator("1/2**100")
    assert Fraction(Decimal(result)) == Fraction(1, 2**100)  # 100 decimals, all of them right
    assert len(result) == 102
    assert calculator("-3/8") == "-0.375"
    assert calculator("0.1 * 3") == "0.3"
    assert calculator("1/3") == "1/3 ≈ 0.333333333333"  # a rounded value is always marked with ≈
    assert calculator("1/7**1000").startswith("1/" + str(7**1000) + " ≈ ")


def test_sql_query_denies_attach_vacuum_and_creates_no_file(tmp_path, monkeypatch):
    import sqlite3

    from selfbake.tools import sql_query

    db = tmp_path / "w.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (name text)")
    monkeypatch.chdir(tmp_path)
    attacks = [
        "attach 'plain.db' as x",
        f"attach '{tmp_path / 'abs.db'}' as x",
        f"attach 'file:{tmp_path / 'rwc.db'}?mode=rwc' as x",
        "attach 'file:rel.db?mode=rwc' as x",
        f"vacuum into '{tmp_path / 'copy.db'}'",
        "vacuum",
        "detach main",
        "pragma query_only = 0",
        "create temp table z (a)",
    ]
    for query in attacks:
        assert sql_query(query, db=str(db)).startswith("error:"), query
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.db"]  # no file was created
    assert "name" in sql_query("pragma table_info(t)", db=str(db))  # schema reads still work
    assert sql_query("select 1", db=str(tmp_path / "missing.db")).startswith("error:")
    assert not (tmp_path / "missing.db").exists()


def test_sql_query_huge_values_fail_inside_sqlite_without_allocating(tmp_path):
    import sqlite3
    import subprocess

    db = tmp_path / "w.db"
    sqlite3.connect(db).close()
    probe = (
        "import resource, sys\n"
        "from selfbake.tools.sql import sql_query\n"
        "sql_query('select 1', db=sys.argv[1])\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "out = [sql_query(q, db=sys.argv[1]) for q in (\"select printf('%.*c', 20000000, 'x')\", "
        "'select zeroblob(20000000)', \"select hex(zeroblob(10000000))\")]\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
        "print(out)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(db)], capture_output=True, text=True, check=True)
    grown_mb, outputs = done.stdout.splitlines()
    assert int(grown_mb) < 15, done.stdout  # before the limits: 76-114 MB
    assert "x" * 1000 not in outputs


def test_read_file_and_search_refuse_nul_bytes(tmp_path):
    from selfbake.tools import read_file, search

    (tmp_path / "a.txt").write_text("alpha")
    assert read_file("a.txt\x00.png", root=str(tmp_path)).startswith("error:")
    assert read_file("a.txt", root=str(tmp_path) + "\x00").startswith("error:")
    assert search("alpha", corpus=str(tmp_path) + "\x00").startswith("error:")
    assert search("alpha\x00", corpus=str(tmp_path)).startswith("[a.txt]")
    os.mkfifo(tmp_path / "pipe.txt")  # reading a FIFO would block forever
    assert read_file("pipe.txt", root=str(tmp_path)).startswith("error:")


def test_search_index_follows_a_file_edited_in_place(tmp_path):
    from selfbake.tools import search

    doc = tmp_path / "a.txt"
    doc.write_text("The capital of Velmora is Ostrin.")
    dir_mtime = os.stat(tmp_path).st_mtime_ns
    assert "Ostrin" in search("capital Velmora", corpus=str(tmp_path))
    doc.write_text("The capital of Velmora is Karth, since last year.")
    os.utime(tmp_path, ns=(dir_mtime, dir_mtime))  # the directory looks untouched
    assert os.stat(tmp_path).st_mtime_ns == dir_mtime
    assert "Karth" in search("capital Velmora", corpus=str(tmp_path))
