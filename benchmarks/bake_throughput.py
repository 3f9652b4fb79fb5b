"""selfbake's bake vs a straightforward implementation of the Prompt Baking recipe, on the same data.

Prompt Baking (Bhargava et al., arXiv 2409.13697). The reference does what the
paper's pseudo-code does: trajectories sampled with transformers' ``generate``
as it comes (no reuse of the system prompt's KV cache, the default
concatenating ``DynamicCache``), in batches of the same size; every step runs
the teacher and the student over the whole sequence, takes full fp32
vocabulary logits at every position, and slices the trajectory positions
afterwards. selfbake reuses the prefix cache, keeps the system prompt's keys once
per batch (``generation.shared_prefix``), appends to the KV cache in place
(``generation.kvcache``), takes the frozen teacher's log-probs from the
sampler's own logits (or, at a large vocabulary, keeps its hidden states from
one pass), runs each batch's sequences padding-free in one row (``baking.packed``),
and builds [chunk, vocab] logits only at trajectory positions under
checkpointing. Both train the same LoRA (same seed,
batches and optimiser) for the same number of steps on exact full-vocabulary
KL, then measure held-out KL the same way.

Each implementation runs in its own subprocess so peak RSS is its own. Prints
trajectory tokens/s end to end, peak RSS, held-out KL and the ratios; the
achieved FLOP/s of one selfbake training step against this machine's measured
fp32 matmul peak; and a large-vocabulary run (random tiny Llama, vocab 131072,
synthetic trajectories) for the memory difference.

    python benchmarks/bake_throughput.py                 # all scenarios, 3 pairs each (~5 min, 2 cores)
    python benchmarks/bake_throughput.py --scenario long --repeats 1
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import statistics
import subprocess
import sys
import time

import torch

from selfbake.baking import Baker, BakeSettings, Trajectory, load_questions, sample
from selfbake.baking import loss as L
from selfbake.baking.presets import PERSONAS
from selfbake.generation import SamplingParams
from selfbake.models import load

SCENARIOS = {
    # name: (model, prompt, n_train, n_val, epochs, synthetic trajectories)
    "long": ("bundled", PERSONAS["reasoning"], 64, 32, 3, False),
    "short": ("bundled", "Think step by step.", 64, 32, 3, False),
    "large-vocab": ("random:llama-tiny", PERSONAS["reasoning"], 32, 16, 1, True),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peak_gflops(n: int = 1536, reps: int = 8) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def make_model(spec: str):
    model, tok = load(spec, device="cpu", dtype="float32", seed=0)
    if spec.startswith("random:"):
        model.resize_token_embeddings(131072, mean_resizing=False)
    return model, tok


def synthetic(n: int, seed: int) -> list[Trajectory]:
    rng = random.Random(seed)
    words = ["alpha", "beta", "12", "+", "=", "step", "then", "answer", "7", "carry"]
    return [
        Trajectory(
            f"Question {i}: {rng.randint(0, 99)} + {rng.randint(0, 99)}?",
            [{"role": "assistant", "content": " ".join(rng.choice(words) for _ in range(12))}],
        )
        for i in range(n)
    ]


def settings_for(n_train: int, n_val: int, epochs: int) -> BakeSettings:
    return BakeSettings(
        n_train=n_train,
        n_val=n_val,
        max_epochs=epochs,
        select="last",
        patience=10**6,
        eval_every=10**6,
        max_new_tokens=96,
        train_batch_size=16,
        seed=0,
    )


def run_selfbake(scenario: str) -> dict:
    spec, prompt, n_train, n_val, epochs, synth = SCENARIOS[scenario]
    model, tok = make_model(spec)
    settings = settings_for(n_train, n_val, epochs)
    baker = Baker(model, tok, prompt, settings)
    start = time.perf_counter()
    if synth:
        train_t, val_t = synthetic(n_train, 1), synthetic(n_val, 2)
    else:
        qs = load_questions("task:arithmetic:2,3", n_train + n_val, seed=0)
        train_t = baker.sample(qs[:n_train], False)
        val_t = baker.sample(qs[n_train:], False)
    time_sampled = time.perf_counter()
    result = baker.fit(train_t, val_t, started=start)
    seconds = time.perf_counter() - start
    out = {
        "impl": "selfbake",
        "seconds": seconds,
        "trajectory_tokens": result.trajectory_tokens,
        "val_kl": result.kl_baked,
        "kl_unbaked": result.kl_unbaked,
        "steps": result.steps,
        "peak_rss_mb": peak_rss_mb(),
        "kl_mode": result.kl_mode,
        "sample_seconds": time_sampled - start,
        "train_seconds": seconds - (time_sampled - start),
        "trajectories": [t.to_record() for t in train_t[:8]],
    }
    # FLOP/s of one training step
    _, student = baker.encode(train_t[: settings.train_batch_size])
    teacher, _ = baker.encode(train_t[: settings.train_batch_size])
    targets = baker.targets(teacher, baker.form, False)
    from torch.utils.flop_counter import FlopCounterMode

    def step():
        total, n = baker.kl(student, targets, grad=True)
        (total / n).backward()

    baker.model.train()
    step()
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    step_seconds = (time.perf_counter() - t0) / 3
    out["step_flops"] = counter.get_total_flops()
    out["step_seconds"] = step_seconds
    return out


def run_reference(scenario: str) -> dict:
    spec, prompt, n_train, n_val, epochs, synth = SCENARIOS[scenario]
    model, tok = make_model(spec)
    settings = settings_for(n_train, n_val, epochs)
    baker = Baker(model, tok, prompt, settings)  # only for encoding and the same LoRA init
    peft_model = baker.model
    start = time.perf_counter()
    if synth:
        train_t, val_t = synthetic(n_train, 1), synthetic(n_val, 2)
    else:
        qs = load_questions("task:arithmetic:2,3", n_train + n_val, seed=0)
        params = SamplingParams(
            temperature=settings.temperature, max_new_tokens=settings.max_new_tokens, seed=0
        )
        with peft_model.disable_adapter():
            plain = dict(batch_size=settings.sample_batch_size, reuse_prefix=False, in_place_cache=False)
            train_t = sample(peft_model, tok, prompt, qs[:n_train], params, **plain)
            val_t = sample(peft_model, tok, prompt, qs[n_train:], params, **plain)
    time_sampled = time.perf_counter()
    teacher_tr, student_tr = baker.encode(train_t)
    teacher_va, student_va = baker.encode(val_t)

    def naive_kl(t_encs, s_encs, grad: bool):
        """Full-sequence forward passes, full fp32 vocab logits at every position, sliced afterwards."""
        tb = L.batch_layout(
            [e.prompt_ids for e in t_encs],
            [e.trajectory_ids for e in t_encs],
            [e.trained for e in t_encs],
            baker.pad,
        )
        sb = L.batch_layout(
            [e.prompt_ids for e in s_encs],
            [e.trajectory_ids for e in s_encs],
            [e.trained for e in s_encs],
            baker.pad,
        )
        with torch.no_grad(), peft_model.disable_adapter():
            t_logits = peft_model(input_ids=tb[0], attention_mask=tb[1]).logits.float()
            t_lp = torch.log_softmax(t_logits, dim=-1)[tb[2], tb[3]]
        with torch.set_grad_enabled(grad):
            s_logits = peft_model(input_ids=sb[0], attention_mask=sb[1]).logits.float()
            s_lp = torch.log_softmax(s_logits, dim=-1)[sb[2], sb[3]]
            kl = (t_lp.exp() * (t_lp - s_lp)).sum()
        return kl, int(sb[2].numel())

    def val():
        peft_model.eval()
        total, count = 0.0, 0
        for i in range(0, len(student_va), 16):
            kl, n = naive_kl(teacher_va[i : i + 16], student_va[i : i + 16], False)
            total, count = total + float(kl), count + n
        return total / count

    kl_start = val()
    optimiser = torch.optim.AdamW(
        [p for p in peft_model.parameters() if p.requires_grad], lr=settings.lr, weight_decay=0.0
    )
    order = list(range(len(student_tr)))
    rng = random.Random(settings.seed)
    steps = 0
    for _ in range(settings.max_epochs):
        rng.shuffle(order)
        for i in range(0, len(order), settings.train_batch_size):
            idx = order[i : i + settings.train_batch_size]
            peft_model.train()
            kl, n = naive_kl([teacher_tr[j] for j in idx], [student_tr[j] for j in idx], True)
            optimiser.zero_grad(set_to_none=True)
            (kl / n).backward()
            optimiser.step()
            steps += 1
    kl_end = val()
    seconds = time.perf_counter() - start
    tokens = sum(len(e.trajectory_ids) for e in student_tr + student_va)
    return {
        "impl": "reference",
        "seconds": seconds,
        "sample_seconds": time_sampled - start,
        "train_seconds": seconds - (time_sampled - start),
        "trajectory_tokens": tokens,
        "val_kl": kl_end,
        "kl_unbaked": kl_start,
        "steps": steps,
        "peak_rss_mb": peak_rss_mb(),
        "trajectories": [t.to_record() for t in train_t[:8]],
    }


def child(scenario: str, impl: str) -> dict:
    cmd = [sys.executable, __file__, "--scenario", scenario, "--impl", impl]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--impl", choices=["selfbake", "reference"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--repeats", type=int, default=3, help="pairs per scenario (this kind of machine is noisy; median)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.impl:
        result = (run_selfbake if args.impl == "selfbake" else run_reference)(args.scenario)
        print(json.dumps(result))
        return
    peak = matmul_peak_gflops()
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"measured fp32 matmul peak {peak:.1f} GFLOP/s"
    )
    for scenario in SCENARIOS if args.scenario == "all" else [args.scenario]:
        spec, prompt, n_train, n_val, epochs, synth = SCENARIOS[scenario]
        runs = [(child(scenario, "selfbake"), child(scenario, "reference")) for _ in range(args.repeats)]
        ours, ref = runs[0]
        same = sum(a == b for a, b in zip(ours["trajectories"], ref["trajectories"], strict=True))
        print(
            f"\n[{scenario}] model {spec}, prompt {len(prompt)} chars, {n_train}+{n_val} trajectories"
            f"{' (synthetic)' if synth else ''}, {ours['steps']} steps each; first 8 trajectories identical: "
            f"{same}/8; {args.repeats} run(s), each pair back to back"
        )
        print(
            f"{'':16}{'tokens/s':>10}{'seconds':>10}{'sampling':>10}{'training':>10}"
            f"{'peak RSS MB':>13}{'held-out KL':>13}{'KL unbaked':>12}"
        )
        speeds = []
        for k, (ours, ref) in enumerate(runs, 1):
            for r in (ours, ref):
                print(
                    f"{r['impl'] + f' #{k}':16}{r['trajectory_tokens'] / r['seconds']:>10.0f}{r['seconds']:>10.1f}"
                    f"{r['sample_seconds']:>10.1f}{r['train_seconds']:>10.1f}"
                    f"{r['peak_rss_mb']:>13.0f}{r['val_kl']:>13.5f}{r['kl_unbaked']:>12.5f}"
                )
            speeds.append(
                (ours["trajectory_tokens"] / ours["seconds"]) / (ref["trajectory_tokens"] / ref["seconds"])
            )
        ours, ref = runs[0]
        print(
            f"ratio selfbake/reference: tokens/s median {statistics.median(speeds):.2f}x "
            f"(runs: {', '.join(f'{x:.2f}' for x in speeds)}), "
            f"peak RSS {ours['peak_rss_mb'] / ref['peak_rss_mb']:.2f}x, "
            f"held-out KL {ours['val_kl'] / ref['val_kl']:.3f}x (selfbake KL mode: {ours['kl_mode']})"
        )
        achieved = ours["step_flops"] / ours["step_seconds"] / 1e9
        print(
            f"one selfbake training step: {ours['step_flops'] / 1e9:.2f} GFLOP in {ours['step_seconds'] * 1e3:.0f} ms"
            f" = {achieved:.2f} GFLOP/s, {100 * achieved / peak:.1f}% of the matmul peak"
        )


if __name__ == "__main__":
    main()
