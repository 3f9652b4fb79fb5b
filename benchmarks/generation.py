"""Generation throughput: KV cache on/off, in place vs concatenating, shared-prefix attention, batch 64 vs 1.

Every configuration decodes greedily to exactly ``--new-tokens`` tokens (eos
disabled, so lengths are equal), on the same prompts, in one process; the
table gives new tokens per second and the ratio to batch 64 with the cache.
"in place" is selfbake's ``GrowingCache`` (the default); "concat" is
transformers' ``DynamicCache``, which copies the whole cache every step. A
second table puts one long system prompt before every question (a bake's
sampling): the prefix attended once per batch (``generation.shared_prefix``,
the default) vs replicated per row. It also checks that all configurations
give identical greedy outputs. A third table samples variable-length answers
(the bundled model, eos on, a bake's teacher sampling) with the batch shrinking
as rows finish (``generation.decode``, the default) vs transformers' ``generate``
running every row to the longest, and checks that both sample the same tokens.

    python benchmarks/generation.py            # CPU defaults, ~2-3 minutes on 2 cores
    python benchmarks/generation.py --device cuda --prompts 256
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from selfbake.generation import SamplingParams, TransformersBackend
from selfbake.models import load, render_chat


def measure(
    model,
    tokenizer,
    prompts,
    batch_size,
    use_cache,
    new_tokens,
    in_place=True,
    shared=True,
    drop_finished=True,
    params: SamplingParams | None = None,
):
    backend = TransformersBackend(
        model,
        tokenizer,
        batch_size=batch_size,
        use_cache=use_cache,
        in_place_cache=in_place,
        prefix_attention=shared,
        drop_finished=drop_finished,
    )
    if params is None:  # fixed-length greedy decoding so every configuration does the same work
        backend.eos_ids = set()
        params = SamplingParams(max_new_tokens=new_tokens, temperature=0)
    backend.generate(prompts[:1], params.model_copy(update={"max_new_tokens": 2}))  # warm-up
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    samples = backend.generate(prompts, params)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = sum(len(s.token_ids) for s in samples)
    return samples, tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random:llama-5m")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prompts", type=int, default=64, help="prompts for the batch-64 runs")
    parser.add_argument("--prompts-batch1", type=int, default=8, help="prompts for the batch-1 runs")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--system-words", type=int, default=300, help="length of the shared system prompt")
    args = parser.parse_args()

    model, tokenizer = load(args.model, device=args.device, dtype="float32")
    params = sum(p.numel() for p in model.parameters())
    questions = [
        f"Question {i}: what is {i * 37 % 101} plus {i * 53 % 97}? Explain briefly."
        for i in range(args.prompts)
    ]
    prompts = [render_chat(tokenizer, q) for q in questions]

    rows = []
    outputs = {}
    for label, batch, cache, n, in_place in [
        ("batch 64, KV cache", 64, True, args.prompts, True),
        ("batch 64, concat cache", 64, True, args.prompts, False),
        ("batch 64, no cache", 64, False, args.prompts, False),
        ("batch 1, KV cache", 1, True, args.prompts_batch1, True),
        ("batch 1, no cache", 1, False, args.prompts_batch1, False),
    ]:
        samples, tokens, seconds = measure(
            model, tokenizer, prompts[:n], batch, cache, args.new_tokens, in_place
        )
        outputs[label] = [s.token_ids for s in samples]
        rows.append((label, n, tokens, seconds, tokens / seconds))
        print(f"  done: {label}", flush=True)

    reference = rows[0][4]
    print()
    print(
        f"model {args.model}: {params / 1e6:.2f}M parameters, float32, greedy, {args.new_tokens} new tokens per prompt"
    )
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
    )
    print(f"{'configuration':<24}{'prompts':>8}{'new tok':>9}{'seconds':>9}{'tok/s':>10}{'ratio':>8}")
    for label, n, tokens, seconds, rate in rows:
        print(f"{label:<24}{n:>8}{tokens:>9}{seconds:>9.2f}{rate:>10.0f}{rate / reference:>8.3f}")
    rate = {label: r for label, _, _, _, r in rows}
    print(
        f"KV cache speed-up at batch 64: {rate['batch 64, KV cache'] / rate['batch 64, no cache']:.1f}x; "
        f"at batch 1: {rate['batch 1, KV cache'] / rate['batch 1, no cache']:.1f}x; "
        f"in place vs concat at batch 64: {rate['batch 64, KV cache'] / rate['batch 64, concat cache']:.2f}x"
    )
    print(
        f"batching speed-up (64 vs 1, with cache): {rate['batch 64, KV cache'] / rate['batch 1, KV cache']:.1f}x"
    )
    same = outputs["batch 64, KV cache"] == outputs["batch 64, no cache"] == outputs["batch 64, concat cache"]
    same1 = outputs["batch 1, KV cache"] == outputs["batch 1, no cache"]
    prefix = outputs["batch 64, KV cache"][: args.prompts_batch1] == outputs["batch 1, KV cache"]
    print(f"greedy outputs identical: cache vs no cache {same and same1}; batch 64 vs batch 1 {prefix}")

    words = (
        "Work carefully, show each intermediate result, check the answer, and keep it short. " * 50
    ).split()
    system = " ".join(words[: args.system_words])
    long_prompts = [render_chat(tokenizer, q, system) for q in questions]
    n_system = len(tokenizer(system, add_special_tokens=False).input_ids)
    rows, outputs = [], {}
    for label, in_place, shared in [
        ("shared prefix (default)", True, True),
        ("replicated, in place", True, False),
        ("replicated, concat", False, False),
    ]:
        samples, tokens, seconds = measure(
            model, tokenizer, long_prompts, 64, True, args.new_tokens, in_place, shared
        )
        outputs[label] = [s.token_ids for s in samples]
        rows.append((label, len(long_prompts), tokens, seconds, tokens / seconds))
    print(f"\nbatch 64, every prompt after the same {n_system}-token system prompt")
    print(f"{'configuration':<24}{'prompts':>8}{'new tok':>9}{'seconds':>9}{'tok/s':>10}{'ratio':>8}")
    for label, n, tokens, seconds, rate in rows:
        print(f"{label:<24}{n:>8}{tokens:>9}{seconds:>9.2f}{rate:>10.0f}{rate / rows[0][4]:>8.3f}")
    print(
        f"shared-prefix attention vs replicated in place: {rows[0][4] / rows[1][4]:.2f}x; vs concat: "
        f"{rows[0][4] / rows[2][4]:.2f}x; greedy outputs identical: {len(set(map(str, outputs.values()))) == 1}"
    )

    from selfbake.baking import load_questions
    from selfbake.baking.presets import PERSONAS

    bundled, bundled_tok = load("bundled", device=args.device, dtype="float32")
    asked = load_questions("task:arithmetic:2,3", 96, seed=0)
    teacher_prompts = [render_chat(bundled_tok, q.text, PERSONAS["reasoning"]) for q in asked]
    sampling = SamplingParams(max_new_tokens=96, temperature=1.0, seed=0)
    rows, outputs = [], {}
    for label, drop in [("batch shrinks (default)", True), ("generate, all rows", False)]:
        samples, tokens, seconds = measure(
            bundled, bundled_tok, teacher_prompts, 64, True, 96, drop_finished=drop, params=sampling
        )
        outputs[label] = [s.token_ids for s in samples]
        rows.append((label, len(teacher_prompts), tokens, seconds, tokens / seconds))
    lengths = sorted(len(t) for t in outputs[rows[0][0]])
    print(
        f"\nbundled model, {len(teacher_prompts)} arithmetic questions after the reasoning persona, sampled at "
        f"temperature 1 with eos, batch 64: answers of {lengths[0]}-{lengths[-1]} tokens (median "
        f"{lengths[len(lengths) // 2]})"
    )
    print(f"{'configuration':<24}{'prompts':>8}{'new tok':>9}{'seconds':>9}{'tok/s':>10}{'ratio':>8}")
    for label, n, tokens, seconds, rate in rows:
        print(f"{label:<24}{n:>8}{tokens:>9}{seconds:>9.2f}{rate:>10.0f}{rate / rows[0][4]:>8.3f}")
    print(
        f"dropping finished rows vs generate: {rows[0][4] / rows[1][4]:.2f}x; "
        f"sampled tokens identical: {outputs[rows[0][0]] == outputs[rows[1][0]]}"
    )


if __name__ == "__main__":
    main()
