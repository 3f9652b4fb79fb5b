"""Racing vs full evaluation for picking the best of K prompts: winner agreement and metric calls.

``selfbake evolve`` picks each cycle's winner by racing (``selfbake.evolve.racing``):
candidates are scored on growing batches of the same dev items and dropped once
an exact McNemar test says they trail the leader. The published recipe scores
every candidate on every item and takes the raw maximum ("full evaluation").
This benchmark runs both on the *same* per-item outcomes over many seeded cycles
of synthetic candidates with known true accuracies (Bernoulli items; a share
``rho`` of each item's outcome is shared between candidates, as real prompts on
one model agree on easy and hard items), and prints:

- agreement: racing's winner equals full evaluation's winner, with n and a 95 % Wilson interval;
- how often each picks the truly best candidate (or one within 1 point of it);
- metric calls, racing / full, for the selection alone and with the winner then
  scored on the rest of dev (what the loop does, so its gate sees all dev items).

Scenarios: ``spread`` (true accuracies uniform in [0.1, 0.9]), ``bundled`` (like a
tool cycle on the bundled model: one or two prompts that make it use the
calculator, ~0.55-0.70, the rest near 0.0-0.05), ``close`` (all within 5 points).

    python benchmarks/evolve_selection.py                       # all scenarios, 2000 cycles each (~1 min)
    python benchmarks/evolve_selection.py --scenario close --cycles 500 --n-dev 400
"""

from __future__ import annotations

import argparse
import json
import random

from selfbake.evolve.racing import full_evaluation, race
from selfbake.tasks.stats import wilson


def true_accuracies(scenario: str, k: int, rng: random.Random) -> list[float]:
    if scenario == "spread":
        return [rng.uniform(0.1, 0.9) for _ in range(k)]
    if scenario == "bundled":
        good = rng.randint(1, 2)
        return [rng.uniform(0.55, 0.70) if i < good else rng.uniform(0.0, 0.05) for i in range(k)]
    if scenario == "close":
        centre = rng.uniform(0.3, 0.7)
        return [centre + rng.uniform(-0.025, 0.025) for _ in range(k)]
    raise ValueError(f"unknown scenario {scenario}")


def outcomes(acc: list[float], n_items: int, rho: float, rng: random.Random) -> list[list[bool]]:
    """Per-candidate 0/1 outcomes on the same items; marginal rate acc[c], item-level correlation rho."""
    shared = [rng.random() for _ in range(n_items)]
    table = []
    for p in acc:
        row = []
        for i in range(n_items):
            u = shared[i] if rng.random() < rho else rng.random()
            row.append(u < p)
        table.append(row)
    return table


def run(
    scenario: str,
    cycles: int,
    k: int,
    n_dev: int,
    rho: float,
    alpha: float,
    first: int,
    growth: float,
    seed: int,
    correction: str = "none",
):
    agree = best_race = best_full = near_race = near_full = 0
    calls_select = calls_complete = calls_full = 0
    for cycle in range(cycles):
        rng = random.Random(f"{seed}:{scenario}:{cycle}")
        acc = true_accuracies(scenario, k, rng)
        order = list(range(k))
        rng.shuffle(order)  # the best is not always candidate 0 (ties go to the earlier index)
        acc = [acc[i] for i in order]
        table = outcomes(acc, n_dev, rho, rng)

        def score(c, start, stop, table=table):
            return table[c][start:stop]

        full_winner, full_calls = full_evaluation(k, n_dev, score)
        raced = race(
            k,
            n_dev,
            score,
            alpha=alpha,
            first=first,
            growth=growth,
            complete_winner=False,
            correction=correction,
        )
        completed = race(
            k,
            n_dev,
            score,
            alpha=alpha,
            first=first,
            growth=growth,
            complete_winner=True,
            correction=correction,
        )
        assert completed.winner == raced.winner
        best = max(range(k), key=lambda c: acc[c])
        agree += raced.winner == full_winner
        best_race += raced.winner == best
        best_full += full_winner == best
        near_race += acc[best] - acc[raced.winner] <= 0.01
        near_full += acc[best] - acc[full_winner] <= 0.01
        calls_select += raced.metric_calls
        calls_complete += completed.metric_calls
        calls_full += full_calls

    def rate(x):
        lo, hi = wilson(x, cycles)
        return {"rate": round(x / cycles, 4), "n": cycles, "ci95": [round(lo, 4), round(hi, 4)]}

    return {
        "scenario": scenario,
        "k": k,
        "n_dev": n_dev,
        "rho": rho,
        "race": {"alpha": alpha, "first": first, "growth": growth, "correction": correction},
        "same_winner_as_full": rate(agree),
        "racing_picks_true_best": rate(best_race),
        "full_picks_true_best": rate(best_full),
        "racing_within_1pt_of_best": rate(near_race),
        "full_within_1pt_of_best": rate(near_full),
        "metric_calls": {
            "full": calls_full,
            "racing_selection": calls_select,
            "racing_with_winner_completed": calls_complete,
            "ratio_selection": round(calls_select / calls_full, 4),
            "ratio_with_winner_completed": round(calls_complete / calls_full, 4),
        },
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["spread", "bundled", "close", "all"], default="all")
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--n-dev", type=int, default=200)
    parser.add_argument("--rho", type=float, default=0.5)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--first", type=int, default=10)
    parser.add_argument("--growth", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--correction", choices=["bonferroni", "none"], default="none")
    parser.add_argument("--json", action="store_true", help="print one JSON object per scenario")
    args = parser.parse_args(argv)
    scenarios = ["spread", "bundled", "close"] if args.scenario == "all" else [args.scenario]
    for scenario in scenarios:
        r = run(
            scenario,
            args.cycles,
            args.k,
            args.n_dev,
            args.rho,
            args.alpha,
            args.first,
            args.growth,
            args.seed,
            args.correction,
        )
        if args.json:
            print(json.dumps(r))
            continue
        m = r["metric_calls"]

        def cell(x):
            return f"{x['rate']:.3f} [{x['ci95'][0]:.3f}, {x['ci95'][1]:.3f}] n={x['n']}"

        print(f"{scenario}: K={r['k']} candidates, {r['n_dev']} dev items, rho={r['rho']}, {r['race']}")
        print(f"  racing winner == full-evaluation winner: {cell(r['same_winner_as_full'])}")
        print(
            f"  picks the truly best:  racing {cell(r['racing_picks_true_best'])}; full {cell(r['full_picks_true_best'])}"
        )
        print(
            f"  within 1 point of best: racing {cell(r['racing_within_1pt_of_best'])}; "
            f"full {cell(r['full_within_1pt_of_best'])}"
        )
        print(
            f"  metric calls: full {m['full']}; racing {m['racing_selection']} ({m['ratio_selection']:.3f} of full), "
            f"with the winner completed on dev {m['racing_with_winner_completed']} "
            f"({m['ratio_with_winner_completed']:.3f})"
        )


if __name__ == "__main__":
    main()
