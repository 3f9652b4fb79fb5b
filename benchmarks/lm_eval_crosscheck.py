"""Cross-check every selfbake benchmark loader against EleutherAI lm-evaluation-harness, item by item.

For each loader, lm-eval's own task (its installed YAML and utils: prompt template,
target, choices, stop strings, process_docs, few-shot sampler) is built on the same
records, read from local files instead of the Hub, and its requests are compared with
selfbake's for every item: the context string, the continuations (multiple choice) or
stop strings (generation), and the gold target. Where a tiny model can score, both
harnesses score the same items with it (``random:llama-tiny``, saved as a Hugging Face
checkpoint for lm-eval's ``hf`` backend) and the per-item verdicts are compared; the
random model's answers are mostly wrong, so gsm8k and math also run both scorers on
scripted outputs that hit every branch of their answer extraction.

By default the records are selfbake's format fixtures (synthetic items in each
benchmark's public format); ``--data NAME=PATH`` checks a local copy of the real data
instead. StrategyQA is checked in BIG-bench's format (what lm-eval reads), converted
from the fixture. HumanEval's scores are not compared: lm-eval's metric loads
``code_eval`` from the Hugging Face Hub, which this offline check cannot reach.

    pip install -e ".[crosscheck,test]"
    python benchmarks/lm_eval_crosscheck.py --out lm_eval_crosscheck.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from selfbake import tasks
from selfbake.models import load, save
from selfbake.scoring import score
from selfbake.tasks.benchmark_data import load_fixture


@dataclass
class Check:
    """One row of the table: a selfbake loader and the lm-eval task it must agree with."""

    loader: str  # selfbake task name
    lm_task: str  # lm-eval task whose YAML is used
    split: str  # lm-eval's test split name
    fewshot_split: str | None = None
    num_fewshot: int = 0
    subject: str | None = None  # MMLU: one lm-eval task per subject
    scores: bool = True
    label: str = ""
    result: dict = field(default_factory=dict)

    @property
    def row(self) -> str:
        return self.label or self.loader


CHECKS = [
    Check("gsm8k", "gsm8k", "test", "train"),
    Check("mmlu", "mmlu_elementary_mathematics", "test", "dev", subject="elementary_mathematics"),
    Check("mmlu", "mmlu_high_school_mathematics", "test", "dev", subject="high_school_mathematics"),
    Check(
        "mmlu", "mmlu_elementary_mathematics", "test", "dev", 5, "elementary_mathematics", label="mmlu 5-shot"
    ),
    Check(
        "mmlu",
        "mmlu_high_school_mathematics",
        "test",
        "dev",
        5,
        "high_school_mathematics",
        label="mmlu 5-shot",
    ),
    Check("arc_easy", "arc_easy", "test", "train"),
    Check("arc_challenge", "arc_challenge", "test", "train"),
    Check("hellaswag", "hellaswag", "validation", "train"),
    Check("humaneval", "humaneval", "test", scores=False),
    Check("math", "hendrycks_math_algebra", "test", "train"),
    Check("strategyqa", "bigbench_strategyqa_multiple_choice", "default"),
]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return str(path)


def bigbench_strategyqa(rows: list[dict]) -> list[dict]:
    """The original StrategyQA rows in hails/bigbench's strategyqa layout (inputs, multiple_choice_*)."""
    return [
        {
            "idx": i,
            "inputs": f"Q: {r['question']}\nA:",
            "targets": ["Yes" if r["answer"] else "No"],
            "multiple_choice_targets": ["Yes", "No"],
            "multiple_choice_scores": [1, 0] if r["answer"] else [0, 1],
        }
        for i, r in enumerate(rows)
    ]


def prepare_data(check: Check, work: Path, local: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Files for one check: the spec selfbake loads and the data_files lm-eval loads, the same records."""
    folder = work / "data" / f"{check.lm_task}-{check.num_fewshot}"
    folder.mkdir(parents=True, exist_ok=True)
    if check.loader in local:
        path = local[check.loader]
        return f"{check.loader}:{path}", {check.split: path}
    records, _ = load_fixture(tasks.get(f"{check.loader}:fixture").fixture)
    if check.loader == "strategyqa":
        records = bigbench_strategyqa(records)
    files = {}
    if check.subject:
        records = [r for r in records if r["subject"] == check.subject]
        dev, _ = load_fixture("mmlu_dev.jsonl")
        files["dev"] = write_jsonl(folder / "dev.jsonl", [r for r in dev if r["subject"] == check.subject])
    files[check.split] = write_jsonl(folder / f"{check.split}.jsonl", records)
    if check.fewshot_split and check.fewshot_split not in files:
        files[check.fewshot_split] = files[check.split]
    spec_path = folder / "selfbake"
    spec_path.mkdir(exist_ok=True)
    for split, file in files.items():  # split-named files: selfbake finds test and dev as lm-eval does
        (spec_path / f"{split}.jsonl").write_text(Path(file).read_text())
    return f"{check.loader}:{spec_path}", files


def lm_eval_task(check: Check, data_files: dict[str, str], max_new_tokens: int | None = None):
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = TaskManager()._entry(check.lm_task)
    plain = (
        not check.scores
    )  # humaneval's utils load code_eval from the Hub at import: keep its metric unresolved
    config = load_yaml(entry.yaml_path, resolve_func=not plain)
    config.update(
        dataset_path="json",
        dataset_name=None,
        dataset_kwargs={"data_files": data_files},
        num_fewshot=check.num_fewshot,
    )
    if plain:
        config.update(metric_list=[{"metric": "exact_match"}], filter_list=None)
    if max_new_tokens and config.get("output_type") == "generate_until":  # the same budget as selfbake's side
        config["generation_kwargs"] = {**config.get("generation_kwargs", {}), "max_gen_toks": max_new_tokens}
    for key in ("tag", "group", "task_list", "include"):
        config.pop(key, None)
    task = ConfigurableTask(config=config)
    task.build_all_requests(limit=None, rank=0, world_size=1)
    return task


def compare_requests(check: Check, ours, theirs) -> dict:
    """Per item: is lm-eval's context our prompt, and are the continuations / stops / gold target ours."""
    items = ours.items()
    by_doc: dict[int, list] = {}
    for instance in theirs.instances:
        by_doc.setdefault(instance.doc_id, []).append(instance)
    prompts = targets = 0
    mismatches = []
    for doc_id, instances in sorted(by_doc.items()):
        item, doc = items[doc_id], instances[0].doc
        prompt_same = all(inst.arguments[0] == ours.prompt(item) for inst in instances)
        if ours.scoring == "loglikelihood":
            continuations = tuple(inst.arguments[1] for inst in sorted(instances, key=lambda i: i.idx))
            gold = theirs.doc_to_target(doc)
            target_same = continuations == item.choices and int(gold) == item.gold
        else:
            until = instances[0].arguments[1]["until"]
            target = theirs.doc_to_target(doc)
            mine = item.answer
            if check.loader == "humaneval":
                mine = f"{item.metadata['test']}\ncheck({item.metadata['entry_point']})"
            target_same = list(until) == list(ours.stop) and target == mine
        prompts += prompt_same
        targets += target_same
        if not (prompt_same and target_same) and len(mismatches) < 3:
            mismatches.append(
                {"doc": doc_id, "lm_eval": instances[0].arguments[0], "selfbake": ours.prompt(item)}
            )
    return {"items": len(by_doc), "prompts": prompts, "targets": targets, "mismatches": mismatches}


def compare_scores(check: Check, ours, result, samples: list[dict]) -> tuple[int, int, dict]:
    """Items on which lm-eval's per-item metric equals selfbake's, on the same model."""
    agree, n, extra = 0, 0, {}
    if check.loader == "gsm8k":
        by_filter: dict[str, list] = {}
        for sample in samples:
            by_filter.setdefault(sample["filter"], []).append(sample)
        pairs = zip(by_filter["strict-match"], by_filter["flexible-extract"], result.records, strict=True)
        same_text = 0
        for strict, flexible, mine in pairs:
            n += 1
            same_text += strict["resps"][0][0] == mine["output"]
            agree += strict["exact_match"] == float(mine["strict_correct"]) and flexible[
                "exact_match"
            ] == float(mine["correct"])
        return agree, n, {"identical greedy outputs": same_text}
    for theirs, mine in zip(samples, result.records, strict=True):
        n += 1
        if ours.scoring == "loglikelihood":
            same = theirs["acc"] == float(mine["correct"])
            if "acc_norm" in theirs:
                same = same and theirs["acc_norm"] == float(mine["correct_norm"])
        else:
            same = theirs["exact_match"] == float(mine["correct"])
            extra["identical greedy outputs"] = extra.get("identical greedy outputs", 0) + (
                theirs["resps"][0][0] == mine["output"]
            )
        agree += same
    return agree, n, extra


def scripted_outputs(gsm, math_task) -> tuple[int, int]:
    """Both scorers on outputs that hit every branch of gsm8k's and math's answer extraction."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter
    from lm_eval.tasks.hendrycks_math import utils as math_utils

    strict_filter = RegexFilter(r"#### (\-?[0-9\.\,]+)", 0)
    flexible_filter = RegexFilter(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", -1)
    ignore = [",", "\\$", "(?s).*#### ", "\\.$"]
    total = agree = 0
    for item in gsm.items():
        final = item.answer.split("#### ")[-1]
        outputs = (f"#### {final}", f"so it is ${final}.", f"#### {final}0", f"{final} then 3 more", "none")
        for text in outputs + (f"#### -{final}",):
            for mode, filt in (("strict", strict_filter), ("flexible", flexible_filter)):
                extracted = list(filt.apply([[text]], [{}]))[0][0]
                theirs = exact_match_hf_evaluate(
                    [extracted], [item.answer], regexes_to_ignore=ignore, ignore_case=True
                )
                total += 1
                agree += float(gsm.verify_mode(item, text, mode)) == theirs["exact_match"]
    for item, record in zip(math_task.items(), load_fixture("math.jsonl")[0], strict=True):
        doc = {"problem": record["problem"], "solution": record["solution"]}
        for text in (
            f"${item.answer}$",
            f"The answer is $\\boxed{{{item.answer}}}$.",
            item.answer,
            f"$x = {item.answer}$",
            "$1$ and $7$",
            "none",
        ):
            total += 1
            agree += (
                float(math_task.verify(item, text)) == math_utils.process_results(doc, [text])["exact_match"]
            )
    return agree, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random:llama-tiny")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument(
        "--no-scores", action="store_true", help="compare prompts and targets only (no model)"
    )
    parser.add_argument(
        "--data", action="append", default=[], metavar="NAME=PATH", help="a local copy to check"
    )
    parser.add_argument("--out", help="write the table as JSON here")
    args = parser.parse_args()
    import lm_eval

    local = dict(spec.split("=", 1) for spec in args.data)
    work = Path(tempfile.mkdtemp(prefix="selfbake-crosscheck-"))
    checks = [c for c in CHECKS if not local or c.loader in local]
    built = []
    for check in checks:
        spec, data_files = prepare_data(check, work, local)
        ours = tasks.get(spec, num_fewshot=check.num_fewshot)
        theirs = lm_eval_task(check, data_files, None if args.no_scores else args.max_new_tokens)
        check.result = compare_requests(check, ours, theirs)
        built.append((check, ours, theirs))

    if not args.no_scores:
        model, tokenizer = load(args.model, device="cpu", dtype="float32")
        save(model, tokenizer, work / "model")
        scored = [(c, o, t) for c, o, t in built if c.scores]
        out = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={work / 'model'},dtype=float32",
            tasks=[t for _, _, t in scored],
            log_samples=True,
            batch_size=1,
            device="cpu",
        )
        for check, ours, theirs in scored:
            name = theirs.config.task
            samples = sorted(out["samples"][name], key=lambda s: (s["doc_id"], s.get("filter", "")))
            result = score(
                model, tokenizer, ours, ours.items(), max_new_tokens=args.max_new_tokens, batch_size=1
            )
            agree, n, extra = compare_scores(check, ours, result, samples)
            check.result.update(scores=agree, scored=n, **extra)
        gsm = next(o for c, o, _ in built if c.loader == "gsm8k")
        math_task = next(o for c, o, _ in built if c.loader == "math")
        agree, total = scripted_outputs(gsm, math_task)
        print(f"scripted outputs (gsm8k strict/flexible, math): {agree}/{total} verdicts agree")

    version = getattr(lm_eval, "__version__", "?")
    data = ", ".join(f"{k}={v}" for k, v in local.items()) or "selfbake's format fixtures (synthetic items)"
    print(
        f"model {args.model}; lm_eval {version}; torch {torch.__version__}; {platform.machine()}; data: {data}\n"
    )
    print("| loader | lm-eval task | items | prompts identical | targets identical | scores agree |")
    print("|---|---|---:|---:|---:|---:|")
    for check in checks:
        r = check.result
        scores = f"{r['scores']}/{r['scored']}" if "scores" in r else "n/a"
        print(
            f"| {check.row} | {check.lm_task} | {r['items']} | {r['prompts']}/{r['items']} "
            f"| {r['targets']}/{r['items']} | {scores} |"
        )
        if "identical greedy outputs" in r:
            print(f"  {check.row}: identical greedy outputs {r['identical greedy outputs']}/{r['scored']}")
        for mismatch in r["mismatches"]:
            print(
                f"  MISMATCH doc {mismatch['doc']}: lm_eval {mismatch['lm_eval']!r} vs selfbake {mismatch['selfbake']!r}"
            )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                [{"loader": c.row, "lm_task": c.lm_task, **c.result} for c in checks],
                indent=1,
                default=lambda value: value.item(),  # numpy scalars from lm-eval's metrics
            )
        )


if __name__ == "__main__":
    main()
