#!/usr/bin/env bash
# Reproduce the results pages of the documentation (docs/results/, docs/concepts/strength.md, the bundled
# model's card) on the bundled model, one numbered step per results table. Each table in the docs names the step
# that produces it ("`scripts/reproduce_results.sh` step 3"). Re-run after the bundled model changes.
#
# Usage: bash scripts/reproduce_results.sh [--out DIR] [--list] [STEP ...]
#   no STEP      run steps 1-12 in order (well over an hour on 2 CPU cores; steps 2-10 alone took about one)
#   STEP ...     run only these steps, e.g. `bash scripts/reproduce_results.sh 2 8`
#   --list       print the steps and exit
#   --out DIR    where runs and logs go (default runs/reproduce)
# Each bake or iterate run writes DIR/NAME/ and DIR/NAME.log; each script or benchmark writes DIR/NAME.log.
# A finished run (its summary.json or its log exists) is skipped, and a killed bake or iterate run resumes
# (same --out, same settings), so a killed script picks up where it stopped.
#
# Step -> table it produces:
#   1  bundled model's behaviour table (its model card; docs/concepts/bundled-model.md)
#   2  baking results, main bake rows: main bake, other seeds, the earlier --patience 3 (docs/results/baking.md)
#   3  baking results, half-bake rows: strength 0.5/0.8/0.95 and the other presets at 0.5 (docs/results/baking.md)
#   4  baking results, pursuit and drift rows (docs/results/baking.md)
#   5  baking results, forgetting and retain rows (docs/results/baking.md)
#   6  baking results, sequence, order and conflict rows (docs/results/baking.md)
#   7  the KL-profile table and the LM-head-only half-bake (docs/concepts/strength.md)
#   8  expert iteration tables: continue per iteration, restart vs continue (docs/results/expert-iteration.md)
#   9  bake throughput table (docs/results/bake-throughput.md)
#   10 generation throughput tables (docs/results/generation-throughput.md)
#   11 forge batching benchmark: by-length vs packed tokens/s (docs/results/forge-recipes.md, recipe 6)
#   12 analyses of the shipped model: copy slips, system cues, arithmetic facts (docs/results/forge-recipes.md)
#   13 (only when named) forge recipe 17, the shipped model, from scratch: ~28 min (docs/results/forge-recipes.md)
set -euo pipefail

out=runs/reproduce
steps=()
while (($#)); do
    case $1 in
        --out) out=$2; shift 2 ;;
        --list) sed -n '/^# Step -> table/,/^set -euo/p' "$0" | sed '1d;$d;s/^# *//'; exit 0 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        [0-9]*) steps+=("$1"); shift ;;
        *) echo "reproduce_results.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
((${#steps[@]})) || steps=(1 2 3 4 5 6 7 8 9 10 11 12)
mkdir -p "$out"

bake() {  # NAME FLAGS...: one `selfbake bake` on the bundled model, skipped when finished
    local name=$1
    shift
    [[ -f $out/$name/summary.json ]] && return
    selfbake bake --model bundled --out "$out/$name" "$@" 2>&1 | tee "$out/$name.log"
}

logged() {  # NAME COMMAND...: a script or benchmark whose printed table is the result, skipped when logged
    local name=$1
    shift
    [[ -f $out/$name.log ]] && return
    "$@" 2>&1 | tee "$out/$name.log.part"
    mv "$out/$name.log.part" "$out/$name.log"
}

step1() {  # the behaviour table: 300 frozen test items per cell, Wilson intervals, paired McNemar tests
    logged behaviour python -m selfbake.forge.behaviour --model bundled --n 300 --json "$out/behaviour.json"
}

step2() {  # the main bake (README main job), the same at two other seeds, and with the earlier default patience
    bake main --prompt-file bundled:reasoning
    bake main-seed1 --prompt-file bundled:reasoning --seed 1
    bake main-seed2 --prompt-file bundled:reasoning --seed 2
    bake main-patience3 --prompt-file bundled:reasoning --patience 3
}

step3() {  # half-bakes: step rate at a target strength, one sampled answer per item (T=1)
    bake full-t1 --prompt-file bundled:reasoning --measure-temperature 1
    for s in 0.5 0.8 0.95; do
        bake "half-$s" --prompt-file bundled:reasoning --strength "$s" --measure-temperature 1
    done
    for preset in verify style-greeting style-signoff; do
        bake "half-0.5-$preset" --prompt-file "bundled:$preset" --strength 0.5 --measure-temperature 1
    done
}

step4() {  # pursuit (2 rounds) and drift over 0/1/2/4 unrelated turns
    bake pursue --prompt-file bundled:reasoning --pursue 1
    bake drift --prompt-file bundled:reasoning --drift
}

step5() {  # forgetting of other families, with no anchor, one anchor and all three anchored
    bake forgetting --prompt-file bundled:reasoning --forgetting bignum,rpn,brackets
    bake retain-bignum --prompt-file bundled:reasoning --retain bignum --forgetting bignum,rpn,brackets
    bake retain-all --prompt-file bundled:reasoning --retain bignum,rpn,brackets --forgetting bignum,rpn,brackets --measure-n 0
    bake retain-all-measured --prompt-file bundled:reasoning --retain bignum,rpn,brackets --forgetting bignum,rpn,brackets
}

step6() {  # sequences: anchored and not, both orders, and a conflict on the same x0
    bake seq-tools-greeting --sequence bundled:tools bundled:style-greeting
    bake seq-tools-greeting-unanchored --sequence bundled:tools bundled:style-greeting --no-keep-earlier
    bake seq-tools-reasoning --sequence bundled:tools bundled:reasoning
    bake seq-reasoning-tools --sequence bundled:reasoning bundled:tools
    bake conflict-tools-reasoning --x0 task:arithmetic:2,3 --no-keep-earlier --sequence bundled:tools bundled:reasoning
    bake conflict-reasoning-tools --x0 task:arithmetic:2,3 --no-keep-earlier --sequence bundled:reasoning bundled:tools
}

step7() {  # strength vs first-token KL vs step rate along a scaled adapter; the LM-head-only half-bake
    logged kl_profile python scripts/kl_profile.py
    bake half-0.5-lm-head --prompt-file bundled:reasoning --target-modules lm_head --strength 0.5 --measure-temperature 1
}

step8() {  # expert iteration on brackets: restart from base (default) and continue training
    local args name
    for args in "" "--training continue"; do
        name=iterate${args:+-continue}
        [[ -f $out/$name/summary.json ]] && continue
        # shellcheck disable=SC2086  # $args is zero or two words
        selfbake iterate --model bundled --task brackets --levels 2,3 --iterations 5 $args --out "$out/$name" \
            2>&1 | tee "$out/$name.log"
    done
}

step9() {  # selfbake's bake vs a straightforward reference: all scenarios, then the long prompt twice more
    logged bake_throughput python benchmarks/bake_throughput.py
    logged bake_throughput_long1 python benchmarks/bake_throughput.py --scenario long --repeats 5
    logged bake_throughput_long2 python benchmarks/bake_throughput.py --scenario long --repeats 5
}

step10() {  # KV cache, batching, shared-prefix attention, shrinking batch
    logged generation python benchmarks/generation.py
}

step11() {  # forge training tokens/s: length-sorted micro-batches vs packed rows
    logged forge_batching python benchmarks/forge_batching.py
}

step12() {  # where the shipped model's misses come from
    logged copy_slips python scripts/copy_slips.py bundled
    logged system_cues python scripts/system_cues.py bundled
    logged facts_probe python scripts/arithmetic_facts.py probe bundled
    logged facts_steps python scripts/arithmetic_facts.py steps bundled
    logged facts_exposures python scripts/arithmetic_facts.py exposures
    logged facts_transition python scripts/arithmetic_facts.py transition --steps 300
}

step13() {  # the shipped recipe from scratch (its card, with the behaviour table, lands in DIR/forge-recipe17/)
    [[ -f $out/forge-recipe17/forge-run/summary.json ]] && return
    selfbake forge --out "$out/forge-recipe17" --seed 1 --steps 1650 --batching by-length --paraphrases extended \
        2>&1 | tee "$out/forge-recipe17.log"
}

for n in "${steps[@]}"; do
    if ! declare -F "step$n" >/dev/null; then
        echo "reproduce_results.sh: no step $n (see --list)" >&2
        exit 2
    fi
    echo "== step $n" >&2
    "step$n"
done
