"""Benchmark loaders and lm-eval-style scoring, checked formula by formula."""

import json
import math

import pytest
import torch

from selfbake import tasks
from selfbake.errors import UserError
from selfbake.generation.loglik import encode_pair, loglikelihood
from selfbake.scoring import score
from selfbake.tasks.mathnorm import is_equiv, normalize_math
from selfbake.tasks.stats import mcnemar_exact, paired_bootstrap, pass_at_k, wilson

BENCHMARKS = ["gsm8k", "mmlu", "arc_easy", "arc_challenge", "hellaswag", "humaneval", "math", "strategyqa"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_fixture_loads_and_reference_scores_correct(name):
    task = tasks.get(name)
    items = task.items()
    assert len(items) >= 24
    for item in items[:6]:
        if task.scoring == "loglikelihood":
            assert item.choices[item.gold].strip() in (item.answer, f"{item.answer}")
            assert 0 <= item.gold < len(item.choices)
        elif name == "humaneval":
            assert task.verify(item, item.answer)
            assert not task.verify(item, "    return None\n")
        else:
            assert task.verify(item, item.answer if name != "math" else f"${item.answer}$")
            assert not task.verify(item, "0.123456")


def test_prompt_formats_match_lm_eval():
    gsm = tasks.get("gsm8k").items()[0]
    assert gsm.question.startswith("Question: ") and gsm.question.endswith("\nAnswer:")
    mmlu = tasks.get("mmlu").items()[0]
    assert mmlu.question.endswith("\nD. " + mmlu.question.split("\nD. ")[1]) and mmlu.question.endswith(
        "Answer:"
    )
    assert mmlu.choices == (" A", " B", " C", " D")
    arc = tasks.get("arc_easy").items()[0]
    assert arc.question.startswith("Question: ") and all(c.startswith(" ") for c in arc.choices)
    hs = tasks.get("hellaswag").items()
    assert "[title]" not in "".join(i.question for i in hs)
    assert hs[0].question.startswith("Making tea: A woman fills")
    assert tasks.get("math").items()[0].question.startswith("Problem: ")
    assert tasks.get("strategyqa").items()[0].choices == (" yes", " no")


def test_gsm8k_strict_and_flexible():
    task = tasks.get("gsm8k")
    item = tasks.Item("Question: q\nAnswer:", "He has 3 + 4 = 7.\n#### 1,007")
    assert task.verify_mode(item, "so 1007 in total.\n#### 1,007", "strict")
    assert task.verify_mode(item, "The total is $1,007.", "flexible")
    assert not task.verify_mode(item, "The total is $1,007.", "strict")  # no "#### "
    assert not task.verify_mode(
        item, "#### 1007\nQuestion: next one 12", "flexible"
    )  # flexible takes the last number


def test_math_equivalence():
    assert is_equiv("\\dfrac{1}{2}", "\\frac12")
    assert is_equiv("0.5", "\\frac{1}{2}")
    assert is_equiv("x = 3", "3")
    assert is_equiv("10^{\\circ}", "10")
    assert is_equiv("\\left( 1, 2 \\right)", "(1,2)")
    assert is_equiv("3/4", "\\frac{3}{4}")
    assert not is_equiv("\\frac{1}{3}", "\\frac{1}{2}")
    assert normalize_math("\\$5") == "5"
    task = tasks.get("math")
    item = task.items()[0]
    assert task.verify(item, f"We get $\\boxed{{{item.answer}}}$ here") or task.verify(
        item, f"${item.answer}$"
    )


def test_fewshot_prompt_excludes_the_item():
    task = tasks.get("gsm8k", num_fewshot=3)
    item = task.items()[0]
    prompt = task.prompt(item)
    assert prompt.count("Question: ") == 4 and prompt.endswith(item.question)
    assert prompt.count("\n\n") == 3 and "####" in prompt
    assert prompt == task.prompt(item)  # deterministic


def test_local_files_and_formats(tmp_path):
    from importlib import resources

    fixture = resources.files("selfbake.tasks.fixtures").joinpath("arc_easy.jsonl").read_text()
    rows = [json.loads(x) for x in fixture.splitlines()[:5]]
    (tmp_path / "arc.json").write_text(json.dumps(rows))
    assert len(tasks.get(f"arc_easy:{tmp_path / 'arc.json'}").items()) == 5
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pyarrow.Table.from_pylist(rows), tmp_path / "arc.parquet")
    items = tasks.get(f"arc_easy:{tmp_path / 'arc.parquet'}").items()
    assert [i.key for i in items] == [i.key for i in tasks.get(f"arc_easy:{tmp_path / 'arc.json'}").items()]
    with pytest.raises(UserError, match="not found"):
        tasks.get("gsm8k:/no/such.jsonl").items()
    (tmp_path / "bad.jsonl").write_text('{"q": 1}\n')
    with pytest.raises(UserError, match="not in gsm8k's format"):
        tasks.get(f"gsm8k:{tmp_path / 'bad.jsonl'}").items()


def test_encode_pair_moves_trailing_space(llama):
    _, tok = llama
    ctx, cont = encode_pair(tok, "Answer: ", "yes")
    assert tok.decode(ctx) == "Answer:" and tok.decode(cont) == " yes"
    ctx, cont = encode_pair(tok, "", "yes")
    assert ctx == [tok.bos_token_id]


def test_loglikelihood_matches_a_manual_forward_pass(llama):
    model, tok = llama
    requests = [("Question: 2+2?\nAnswer:", " 4"), ("Q", " a much longer continuation"), ("x", " y")]
    batched = loglikelihood(model, tok, requests, batch_size=2)
    for (ctx, cont), (ll, greedy) in zip(requests, batched, strict=True):
        c, x = encode_pair(tok, ctx, cont)
        ids = torch.tensor([c + x])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
        manual = sum(logp[len(c) - 1 + j, t].item() for j, t in enumerate(x))
        assert math.isclose(ll, manual, abs_tol=1e-4)
        assert greedy == all(logp[len(c) - 1 + j].argmax().item() == t for j, t in enumerate(x))


def test_acc_and_acc_norm(llama):
    model, tok = llama
    task = tasks.get("hellaswag")
    result = score(model, tok, task, task.items()[:8])
    for record in result.records:
        lls = record["loglikelihoods"]
        item = task.items()[record["index"]]
        best = max(range(4), key=lambda j: lls[j])
        best_norm = max(range(4), key=lambda j: lls[j] / len(item.choices[j].removeprefix(" ")))
        assert record["correct"] == (best == item.gold)
        assert record["correct_norm"] == (best_norm == item.gold)
    assert result.accuracy == sum(r["correct"] for r in result.records) / 8
    assert result.metrics["acc_norm"] == sum(r["correct_norm"] for r in result.records) / 8
    assert result.baseline == 0.25


def test_wilson_interval():
    lo, hi = wilson(38, 50)
    # worked by hand: centre 0.798416 / 1.076832, half-width 1.96 * sqrt(0.00403216) / 1.076832
    assert math.isclose(lo, 0.62587, abs_tol=1e-4) and math.isclose(hi, 0.85703, abs_tol=1e-4)
    assert wilson(0, 10)[0] == 0.0 and math.isclose(wilson(10, 10)[1], 1.0)
    assert wilson(0, 0) == (0.0, 1.0)


def test_mcnemar_exact():
    assert mcnemar_exact(0, 0) == 1.0
    assert math.isclose(mcnemar_exact(1, 9), 2 * 11 / 1024)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 10) < 0.002


def test_paired_bootstrap():
    a = [True] * 50 + [False] * 50
    b = [True] * 70 + [False] * 30
    diff, lo, hi = paired_bootstrap(a, b, n_boot=2000)
    assert math.isclose(diff, 0.2) and lo > 0.1 and hi < 0.3
    assert paired_bootstrap(a, a, n_boot=500) == (0.0, 0.0, 0.0)


def test_pass_at_k():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 5) == 1.0
    assert math.isclose(pass_at_k(10, 3, 1), 0.3)
    assert math.isclose(pass_at_k(5, 2, 2), 1 - math.comb(3, 2) / math.comb(5, 2))
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 5)


def test_scoring_with_task_tools_and_pass_at_k(llama):
    model, tok = llama
    lookup = tasks.get("lookup")
    result = score(
        model, tok, lookup, lookup.generate_items(4, 0), tools=list(lookup.tools), max_new_tokens=8
    )
    assert result.n == 4 and "tool_call_rate" in result.metrics
    assert all("tool_calls" in r for r in result.records)
    code = tasks.get("coderepair")
    sampled = score(model, tok, code, code.generate_items(3, 0), k=3, max_new_tokens=8)
    assert set(sampled.metrics) == {"pass@1", "pass@3"}
    assert all(len(r["samples"]) == 3 and len(r["verdicts"]) == 3 for r in sampled.records)


def test_rate_and_paired_summaries():
    from selfbake.tasks.stats import paired_summary, rate_summary

    r = rate_summary([True, False, True, True])
    assert r["rate"] == 0.75 and r["n"] == 4 and r["ci95"][0] < 0.75 < r["ci95"][1]
    before = [True] * 10 + [False] * 30
    after = [False] * 2 + [True] * 38  # 2 lost, 30 gained on the same items
    p = paired_summary(before, after)
    assert p["diff"] == 0.7 and p["n"] == 40
    assert p["p_value"] == pytest.approx(mcnemar_exact(2, 30)) and p["p_value"] < 1e-6
