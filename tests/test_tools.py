import pytest

from selfbake.errors import UserError
from selfbake.tools import Tool, calculator, get_tools


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
