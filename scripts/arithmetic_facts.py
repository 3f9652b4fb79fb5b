"""Single-digit arithmetic facts: how well a model knows them, and how fast a fresh model learns them.

Why: the bundled model's reasoning answers fail on single operations ("6 * 5 = 20"), and
the facts are learned in a sudden transition. This script measures both, for the README:

    python scripts/arithmetic_facts.py probe bundled        # greedy answers to all 243 a op b, a, b in 1..9
    python scripts/arithmetic_facts.py probe OUT/forge_state.pt     # the same, mid-forge
    python scripts/arithmetic_facts.py steps bundled        # the step lines of its reasoning answers, checked
    python scripts/arithmetic_facts.py transition --steps 300   # fresh bundled-shape model, facts only
    python scripts/arithmetic_facts.py exposures             # single-digit facts per 12.4M tokens of the mix

``transition`` trains the forge's model shape and optimiser on chats of five single-digit
questions (32 chats per step) and prints the teacher-forced exact-answer rate every 50 steps.
"""

from __future__ import annotations

import argparse
import random
import re
import time

import torch

from selfbake.forge.train import build_model, encode, lr_at, masked_labels
from selfbake.models import load, render_chat
from selfbake.models.tiny import build_tokenizer
from selfbake.tasks.procedural import evaluate_op

FACTS = [(a, op, b) for op in "+-*" for a in range(1, 10) for b in range(1, 10)]


def chat(facts) -> list[dict]:
    messages = []
    for a, op, b in facts:
        messages += [
            {"role": "user", "content": f"What is {a} {op} {b}?"},
            {"role": "assistant", "content": f"Answer: {evaluate_op(a, op, b)}"},
        ]
    return messages


def padded(tokenizer, conversations):
    encoded = [encode(tokenizer, c) for c in conversations]
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
    labels = torch.full((len(encoded), width), -100)
    for row, (ids, mask) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(ids)] = masked_labels(ids, mask)
    return input_ids, labels


def load_any(model_name: str):
    """A model name or directory, or a forge run's ``forge_state.pt`` (the bundled shape, mid-run)."""
    if not model_name.endswith(".pt"):
        return load(model_name)
    tokenizer = build_tokenizer("llama")
    model = build_model("bundled", tokenizer, 0)
    state = torch.load(model_name, weights_only=False)
    model.load_state_dict(state["model"])
    print(f"forge state at step {state['step']}")
    return model.eval(), tokenizer


def probe(model_name: str) -> None:
    model, tokenizer = load_any(model_name)
    tokenizer.padding_side = "left"
    texts = [render_chat(tokenizer, f"What is {a} {op} {b}?") for a, op, b in FACTS]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    answers = tokenizer.batch_decode(out[:, batch.input_ids.shape[1] :], skip_special_tokens=True)
    for op in "+-*":
        rows = [(f, a) for f, a in zip(FACTS, answers, strict=True) if f[1] == op]
        wrong = [
            f"{a} {op} {b} -> {ans.strip()}"
            for (a, _, b), ans in rows
            if ans.strip() != f"Answer: {evaluate_op(a, op, b)}"
        ]
        print(f"{op}: {len(rows) - len(wrong)}/{len(rows)} right; wrong e.g. {wrong[:5]}")


def steps(model_name: str, n: int) -> None:
    """Each 'a op b = c' line the model writes under the reasoning prompt on the frozen 3-4 operand test items."""
    from selfbake import tasks
    from selfbake.scoring import score
    from selfbake.tasks import language

    model, tokenizer = load(model_name)
    task = tasks.get("arithmetic")
    items = tasks.test_items(task, n, 0, (2, 3))
    records = score(
        model, tokenizer, task, items, system=language.REASONING[0], batch_size=64, seed=0
    ).records
    counts: dict[tuple[str, str], list[int]] = {}
    for record in records:
        for a, op, b, c in re.findall(r"^(-?\d+) ([-+*]) (-?\d+) = (-?\d+)$", record["output"], re.M):
            size = "single digits" if max(abs(int(a)), abs(int(b))) < 10 else "a 2+ digit operand"
            right = counts.setdefault((op, size), [0, 0])
            right[0] += evaluate_op(int(a), op, int(b)) == int(c)
            right[1] += 1
    print(f"answers right: {sum(bool(r['correct']) for r in records)}/{len(records)}")
    for size in ("single digits", "a 2+ digit operand"):
        cells = [
            f"{op} {counts.get((op, size), [0, 0])[0]}/{counts.get((op, size), [0, 0])[1]}" for op in "+-*"
        ]
        total = [sum(counts.get((op, size), [0, 0])[i] for op in "+-*") for i in (0, 1)]
        print(f"step lines with {size}: {', '.join(cells)}; all {total[0]}/{total[1]}")


def exposures(conversations: int, tokens: float) -> None:
    """How often the shipped mix shows each single-digit operation, asked or as a step line."""
    from selfbake.forge.curriculum import example

    tokenizer = build_tokenizer("llama")
    rng = random.Random(0)
    seen = dict.fromkeys("+-*", 0)
    total = 0
    for _ in range(conversations):
        messages = example(rng)
        total += len(encode(tokenizer, messages)[0])
        text = "\n".join(m["content"] for m in messages)
        for op in re.findall(r"(?:^|What is )-?\d ([-+*]) -?\d(?:\?$| = )", text, re.M):
            seen[op] += 1
    scale = tokens / total
    print(f"{conversations} conversations, {total} tokens; per fact in {tokens / 1e6:.1f}M tokens:")
    print(", ".join(f"{op} {seen[op] * scale / 81:.0f}" for op in "+-*"))


def transition(steps: int, chats: int, lr: float, seed: int) -> None:
    torch.manual_seed(seed)
    tokenizer = build_tokenizer("llama")
    model = build_model("bundled", tokenizer, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    eval_ids, eval_labels = padded(tokenizer, [chat([f]) for f in FACTS])
    rng = random.Random(seed)
    started = time.perf_counter()
    for step in range(steps):
        input_ids, labels = padded(tokenizer, [chat(rng.choices(FACTS, k=5)) for _ in range(chats)])
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr, min(100, steps // 5))
        loss = model(input_ids=input_ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % 50 == 0:
            model.eval()
            with torch.no_grad():
                predicted = model(input_ids=eval_ids).logits[:, :-1].argmax(-1)
            model.train()
            target = eval_labels[:, 1:]
            exact = ((predicted == target) | (target == -100)).all(1).float().mean().item()
            seen = (step + 1) * chats * 5 / len(FACTS)
            print(
                f"step {step + 1}: loss {loss.item():.3f}, exact answers {exact:.3f} of {len(FACTS)}, "
                f"~{seen:.0f} exposures per fact, {time.perf_counter() - started:.0f} s",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe", help="greedy answers of a model to all single-digit facts")
    p.add_argument("model", nargs="?", default="bundled")
    s = sub.add_parser("steps", help="check the step lines of a model's reasoning answers")
    s.add_argument("model", nargs="?", default="bundled")
    s.add_argument("--n", type=int, default=300)
    e = sub.add_parser("exposures", help="single-digit facts per fact in a run of the shipped mix")
    e.add_argument("--conversations", type=int, default=3000)
    e.add_argument("--tokens", type=float, default=12.4e6)
    t = sub.add_parser("transition", help="train a fresh bundled-shape model on the facts alone")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--chats", type=int, default=32, help="chats of five questions per step")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "probe":
        probe(args.model)
    elif args.command == "steps":
        steps(args.model, args.n)
    elif args.command == "exposures":
        exposures(args.conversations, args.tokens)
    else:
        transition(args.steps, args.chats, args.lr, args.seed)


if __name__ == "__main__":
    main()
