"""Task families: every reference passes its own verifier, wrong answers fail, splits are disjoint."""

import random
import tempfile
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfbake import tasks
from selfbake.errors import UserError
from selfbake.tasks.extract import extract_code, extract_number, last_boxed
from selfbake.tools import get_tools

PROCEDURAL = ["arithmetic", "rpn", "brackets", "bignum", "lookup", "fileread"]


def wrong_answer(task_name: str, answer: str) -> str:
    if task_name == "brackets":
        tokens = answer.split()
        return " ".join(tokens + [tokens[-1]])  # one bracket too many
    return str(int(answer) + 1)


@pytest.mark.parametrize("name", PROCEDURAL)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), difficulty_index=st.integers(0, 4))
def test_reference_passes_and_wrong_fails(name, seed, difficulty_index):
    task = tasks.get(name)
    difficulty = task.difficulties[difficulty_index % len(task.difficulties)]
    item = task.sample(random.Random(seed), difficulty)
    assert task.verify(item, item.answer)
    assert task.verify(item, f"Let me work it out step by step.\n2 + 3 = 5\nAnswer: {item.answer}")
    assert not task.verify(item, wrong_answer(name, item.answer))
    assert not task.verify(item, "I don't know.")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), difficulty=st.sampled_from([1, 2]))
def test_coderepair_reference_passes_and_buggy_fails(seed, difficulty):
    task = tasks.get("coderepair")
    item = task.sample(random.Random(seed), difficulty)
    assert task.verify(item, f"Here is the fix:\n```python\n{item.answer}```\nDone.")
    assert not task.verify(item, f"```python\n{item.metadata['buggy']}```")
    assert not task.verify(item, "no code here")


def test_arithmetic_difficulty_sets_operand_count():
    task = tasks.get("arithmetic")
    for difficulty in task.difficulties:
        item = task.sample(random.Random(1), difficulty)
        operators = sum(item.metadata["expression"].count(op) for op in (" + ", " - ", " * "))
        assert operators == difficulty  # difficulty d has d + 1 operands


def test_tool_families_are_answerable_with_their_tools():
    with tempfile.TemporaryDirectory() as workdir:
        for name in ("lookup", "fileread"):
            task = tasks.get(name)
            tool = get_tools(list(task.tools), task.prepare(workdir))[0]
            item = task.sample(random.Random(3), 1)
            if name == "lookup":
                name_ = item.metadata["name"].replace("'", "''")
                result = tool(f"select {item.metadata['field']} from people where name = '{name_}'")
            else:
                result = tool(f"records/{item.metadata['id']}.txt")
            assert item.answer in result
        lookup = tasks.get("lookup")
        hard = lookup.sample(random.Random(5), 2)
        sql = get_tools(["sql_query"], lookup.prepare(workdir))[0]
        query = f"select count(*) from people where city = '{hard.metadata['city']}' and age > {hard.metadata['older_than']}"
        assert sql(query).splitlines()[1] == hard.answer


@pytest.mark.parametrize("name", PROCEDURAL + ["coderepair"])
def test_splits_are_disjoint_and_frozen(name):
    task = tasks.get(name)
    a = tasks.splits(task, 40, 20, 30, seed=7)
    assert not (a.keys("train") & a.keys("test"))
    assert not (a.keys("dev") & a.keys("test"))
    assert not (a.keys("train") & a.keys("dev"))
    assert len(a.test) == 30 and len(a.train) == 40 and len(a.dev) == 20
    b = tasks.splits(task, 5, 5, 30, seed=7)
    assert [i.key for i in b.test] == [i.key for i in a.test]  # test does not depend on the train size
    c = tasks.splits(task, 40, 20, 30, seed=8)
    assert [i.key for i in c.test] == [i.key for i in a.test]  # ... nor on the seed: frozen
    assert [i.key for i in c.train] != [i.key for i in a.train]  # the seed picks train and dev
    assert not (c.keys("train") & a.keys("test")) and not (c.keys("dev") & a.keys("test"))


@pytest.mark.parametrize("name, level", [("brackets", 2), ("rpn", 3), ("arithmetic", 2)])
def test_test_split_is_the_same_for_every_seed(name, level):
    task = tasks.get(name)
    runs = [tasks.splits(task, 100, 50, 150, seed=seed, difficulty=level) for seed in (0, 1, 12345)]
    assert len({tuple(i.key for i in s.test) for s in runs}) == 1
    frozen = runs[0].keys("test")
    for s in runs:
        assert not (s.keys("train") | s.keys("dev")) & frozen  # never trained on, by hash
    assert tasks.test_items(task, 60, 1, (level,)) == tasks.test_items(task, 60, 0, (level,))


def test_splits_exclude_test_items_even_when_the_generator_repeats():
    task = tasks.get("arithmetic")
    s = tasks.splits(task, 60, 0, 60, seed=0, difficulty=1)  # 2-operand items repeat often
    assert not (s.keys("train") & s.keys("test"))
    with pytest.raises(UserError, match="brackets at difficulty 1 has 56 distinct items"):
        tasks.splits(tasks.get("brackets"), 500, 0, 500, seed=0, difficulty=1)
    with pytest.raises(UserError, match="rpn at difficulty 1 has 243 distinct items"):
        tasks.splits(tasks.get("rpn"), 0, 0, 300, seed=0, difficulty=1)


HUGE = "1" + "0" * 400 + ".5"
JUNK = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="0123456789.,-+eE$/ \n:=#{}[]()<>", max_size=600),
    st.builds(lambda d, tail: f"Answer: {d}{tail}", st.text(alphabet="0123456789", min_size=300, max_size=5000),
              st.sampled_from(["", ".5", "e999999999", "/0", ",000"])),
    st.sampled_from([f"Answer: {HUGE}", HUGE, "#### 1e999999999", "\\boxed{" + HUGE + "}", "Answer: " + "9" * 5000]),
)  # fmt: skip


@pytest.mark.parametrize("name", PROCEDURAL)
@settings(max_examples=40, deadline=None)
@given(text=JUNK)
def test_verifiers_never_raise_on_junk(name, text):
    task = tasks.get(name)
    item = task.sample(random.Random(0), task.difficulties[0])
    extracted = task.extract(text)
    assert extracted is None or isinstance(extracted, str)
    assert task.verify(item, text) in (True, False)
    assert getattr(task, "judge_errors", []) == []  # made safe by the code itself, not by the safety net


@pytest.mark.parametrize("name", ["gsm8k", "math"])
@settings(max_examples=30, deadline=None)
@given(text=JUNK)
def test_benchmark_verifiers_never_raise_on_junk(name, text):
    from selfbake.tasks.benchmarks import benchmark_classes

    task = benchmark_classes()[name](path=None)
    item = tasks.Item("q", "\\frac{1}{2}" if name == "math" else "42")
    assert task.verify(item, text) in (True, False)
    assert task.verify(item, f"Answer: {item.answer}" if name == "gsm8k" else f"${item.answer}$")


def test_overflowing_answer_is_a_wrong_verdict_not_a_crash():
    task = tasks.get("arithmetic")
    item = tasks.Item("What is 2 + 3?", "5")
    assert task.verify(item, f"Answer: {HUGE}") is False
    assert extract_number(f"Answer: {HUGE}") == str(Fraction(HUGE))
    assert extract_number("Answer: 1e999999999") == "1"  # the exponent is not read: no 10**999999999


def test_a_verifier_that_raises_counts_as_wrong_with_the_reason_kept():
    class Fragile(tasks.Task):
        name = "fragile"

        def extract(self, text):
            return str(int(text) // 0)

    task = Fragile()
    item = tasks.Item("q", "1")
    assert task.verify(item, "7") is False and task.extract("7") is None
    assert task.judge_errors and "ZeroDivisionError" in task.judge_errors[0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12 + 7 = 19\n19 * 2 = 38\nAnswer: 38", "38"),
        ("The answer is 1,234.", "1234"),
        ("so the final answer is -17 apples", "-17"),
        ("First 3 + 4 = 7, then 7 * 6 = 42", "42"),
        ("#### 72", "72"),
        ("Therefore $\\boxed{56}$ is right, not 57", "56"),
        ("answer: 12.0", "12"),
        ("Answer: $5", "5"),
        ("no digits", None),
        ("Answer: 3\nWait, re-checking: 3 + 0 = 3\nAnswer: 4", "4"),
    ],
)
def test_extract_number_on_messy_outputs(text, expected):
    assert extract_number(text) == expected


def test_extract_brackets_and_code():
    brackets = tasks.get("brackets")
    assert brackets.extract("Open: ( [ so we close.\nAnswer: ] )") == "] )"
    assert brackets.extract("thinking...\n])") == "] )"
    assert brackets.extract("none") is None
    assert extract_code("text\n```python\ndef f():\n    return 1\n```\nmore") == "def f():\n    return 1"
    assert extract_code("Sure: def g(x): return x") == "def g(x): return x"
    assert last_boxed("a \\boxed{\\frac{1}{2}} b") == "\\frac{1}{2}"


def test_registry():
    assert set(PROCEDURAL) <= set(tasks.names())
    assert {
        "gsm8k",
        "mmlu",
        "arc_easy",
        "arc_challenge",
        "hellaswag",
        "humaneval",
        "math",
        "strategyqa",
    } <= set(tasks.names())
    with pytest.raises(UserError, match="did you mean 'arithmetic'"):
        tasks.get("arithmetc")
    with pytest.raises(UserError, match="takes no data path"):
        tasks.get("arithmetic:/x.jsonl")


def test_eval_scores_the_same_frozen_test_items_whatever_the_seed():
    from selfbake.evaluate import EvalConfig, items_for

    task = tasks.get("rpn")
    keys = [
        [i.key for i in items_for(task, EvalConfig(task=["rpn"], seed=seed), 50, 2)] for seed in (0, 1, 7)
    ]
    assert keys[0] == keys[1] == keys[2]
    train = [items_for(task, EvalConfig(task=["rpn"], seed=s, split="train"), 50, 2) for s in (0, 1)]
    assert [i.key for i in train[0]] != [i.key for i in train[1]]
    assert not {i.key for i in train[0] + train[1]} & set(keys[0])
