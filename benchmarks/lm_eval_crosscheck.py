"""Cross-check selfbake's scoring against EleutherAI lm-evaluation-harness, item by item.

One multiple-choice fixture (arc_easy: acc, acc_norm) and one generate-until
fixture (gsm8k: strict-match and flexible-extract exact match) are scored by
``lm_eval`` (the hf backend, local-data task YAMLs written here) and by
``selfbake.scoring`` on the same tiny model. It prints, per metric, how many
items agree, and for generation how many greedy outputs are identical.

Needs lm_eval next to selfbake (not part of the test install):

    pip install -e . "lm_eval>=0.4" "torch==2.13.0"
    python benchmarks/lm_eval_crosscheck.py
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from importlib import resources
from pathlib import Path

import torch

from selfbake import tasks
from selfbake.models import load, save
from selfbake.scoring import score

MC_YAML = """task: sb_arc_easy
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
doc_to_choice: "{{{{choices.text}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""

GEN_YAML = """task: sb_gsm8k
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["Question:", "</s>", "<|im_end|>"]
  do_sample: false
  max_gen_toks: {max_new}
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"
      - function: take_first
"""


def fixture(name: str) -> str:
    return str(resources.files("selfbake.tasks.fixtures").joinpath(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random:llama-tiny")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    import lm_eval
    from lm_eval.tasks import TaskManager

    work = Path(tempfile.mkdtemp(prefix="selfbake-crosscheck-"))
    model, tokenizer = load(args.model, device="cpu", dtype="float32")
    save(model, tokenizer, work / "model")
    (work / "tasks").mkdir()
    (work / "tasks" / "sb_arc_easy.yaml").write_text(MC_YAML.format(path=fixture("arc_easy.jsonl")))
    (work / "tasks" / "sb_gsm8k.yaml").write_text(
        GEN_YAML.format(path=fixture("gsm8k.jsonl"), max_new=args.max_new_tokens)
    )

    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={work / 'model'},dtype=float32",
        tasks=["sb_arc_easy", "sb_gsm8k"],
        task_manager=TaskManager(include_path=str(work / "tasks")),
        log_samples=True,
        batch_size=1,
        device="cpu",
    )
    harness = {
        name: sorted(out["samples"][name], key=lambda s: (s["doc_id"], s.get("filter", "")))
        for name in ("sb_arc_easy", "sb_gsm8k")
    }

    arc = tasks.get("arc_easy")
    ours_arc = score(model, tokenizer, arc, arc.items(), batch_size=1)
    gsm = tasks.get("gsm8k")
    ours_gsm = score(model, tokenizer, gsm, gsm.items(), max_new_tokens=args.max_new_tokens, batch_size=1)

    print(
        f"model {args.model}; lm_eval {lm_eval.__version__ if hasattr(lm_eval, '__version__') else '?'}; "
        f"torch {torch.__version__}; {platform.machine()}"
    )
    agree = {"acc": 0, "acc_norm": 0, "loglik max |diff|": 0.0}
    for theirs, mine in zip(harness["sb_arc_easy"], ours_arc.records, strict=True):
        lls = (
            [r[0] for r in theirs["filtered_resps"]]
            if isinstance(theirs["filtered_resps"][0], (list, tuple))
            else theirs["filtered_resps"]
        )
        agree["acc"] += int(theirs["acc"] == float(mine["correct"]))
        agree["acc_norm"] += int(theirs["acc_norm"] == float(mine["correct_norm"]))
        agree["loglik max |diff|"] = max(
            agree["loglik max |diff|"],
            max(abs(a - b) for a, b in zip(lls, mine["loglikelihoods"], strict=True)),
        )
    n_arc = len(ours_arc.records)
    print(
        f"arc_easy (multiple choice, n={n_arc}): acc agrees on {agree['acc']}/{n_arc} items, "
        f"acc_norm on {agree['acc_norm']}/{n_arc}; max |loglik diff| {agree['loglik max |diff|']:.2e}"
    )
    print(
        f"  accuracy lm_eval {out['results']['sb_arc_easy']['acc,none']:.4f} vs selfbake {ours_arc.accuracy:.4f}; "
        f"acc_norm {out['results']['sb_arc_easy']['acc_norm,none']:.4f} vs {ours_arc.metrics['acc_norm']:.4f}"
    )

    by_filter: dict[str, list] = {}
    for sample in harness["sb_gsm8k"]:
        by_filter.setdefault(sample["filter"], []).append(sample)
    same_text = strict = flexible = 0
    for theirs_strict, theirs_flex, mine in zip(
        by_filter["strict-match"], by_filter["flexible-extract"], ours_gsm.records, strict=True
    ):
        same_text += int(theirs_strict["resps"][0][0] == mine["output"])
        strict += int(theirs_strict["exact_match"] == float(mine["strict_correct"]))
        flexible += int(theirs_flex["exact_match"] == float(mine["correct"]))
    n_gsm = len(ours_gsm.records)
    res = out["results"]["sb_gsm8k"]
    print(
        f"gsm8k (generate until, n={n_gsm}, {args.max_new_tokens} new tokens): identical greedy outputs {same_text}/{n_gsm}; "
        f"strict-match agrees on {strict}/{n_gsm} items, flexible-extract on {flexible}/{n_gsm}"
    )
    print(
        f"  strict-match lm_eval {res['exact_match,strict-match']:.4f} vs selfbake {ours_gsm.metrics['strict_match']:.4f}; "
        f"flexible-extract {res['exact_match,flexible-extract']:.4f} vs {ours_gsm.metrics['flexible_extract']:.4f}"
    )
    # The random model's answers are all wrong, so also run both scorers on scripted outputs that hit every branch.
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    strict_filter = RegexFilter(r"#### (\-?[0-9\.\,]+)", 0)
    flexible_filter = RegexFilter(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", -1)
    ignore = [",", "\\$", "(?s).*#### ", "\\.$"]
    scripted = disagree = 0
    for item in gsm.items():
        final = item.answer.split("#### ")[-1]
        for text in (
            f"#### {final}",
            f"so it is ${final}.",
            f"#### {final}0",
            f"{final} then 3 more",
            "none",
            f"#### -{final}",
        ):
            for mode, filt in (("strict", strict_filter), ("flexible", flexible_filter)):
                extracted = list(filt.apply([[text]], [{}]))[0][0]
                theirs = exact_match_hf_evaluate(
                    [extracted], [item.answer], regexes_to_ignore=ignore, ignore_case=True
                )["exact_match"]
                ours = gsm.verify_mode(item, text, mode)
                scripted += 1
                if float(ours) != theirs:
                    disagree += 1
                    print(f"  DISAGREE ({mode}): {text!r} -> lm_eval {theirs}, selfbake {ours}")
    print(
        f"  scripted outputs: selfbake agrees with lm_eval's RegexFilter + exact_match on {scripted - disagree}/{scripted} (output, filter) pairs"
    )
    (work / "crosscheck.json").write_text(
        json.dumps({"arc": agree, "gsm_same_text": same_text, "n_arc": n_arc, "n_gsm": n_gsm})
    )


if __name__ == "__main__":
    main()
