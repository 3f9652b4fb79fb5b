#!/usr/bin/env bash
# Every README figure measured on the bundled model, one command each, in the README's order.
# Re-run after the bundled model changes; each run writes runs/readme-figures/NAME/ and NAME.log.
# About an hour on 2 CPU cores. A finished run (its summary.json exists) is skipped, so a killed
# script picks up where it stopped. Usage: bash scripts/readme_figures.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/readme-figures}
mkdir -p "$out"

bake() {  # NAME FLAGS...
    local name=$1
    shift
    if [[ -f $out/$name/summary.json ]]; then return; fi
    selfbake bake --model bundled --out "$out/$name" --overwrite "$@" 2>&1 | tee "$out/$name.log"
}

bake main --prompt-file bundled:reasoning
bake full-t1 --prompt-file bundled:reasoning --measure-temperature 1
for s in 0.5 0.8 0.95; do
    bake "half-$s" --prompt-file bundled:reasoning --strength "$s" --measure-temperature 1
done
for preset in verify style-greeting style-signoff; do
    bake "half-0.5-$preset" --prompt-file "bundled:$preset" --strength 0.5 --measure-temperature 1
done
bake pursue --prompt-file bundled:reasoning --pursue 1
bake drift --prompt-file bundled:reasoning --drift
bake forgetting --prompt-file bundled:reasoning --forgetting bignum,rpn,brackets
bake retain-bignum --prompt-file bundled:reasoning --retain bignum --forgetting bignum,rpn,brackets
bake retain-all --prompt-file bundled:reasoning --retain bignum,rpn,brackets --forgetting bignum,rpn,brackets --measure-n 0
bake retain-all-measured --prompt-file bundled:reasoning --retain bignum,rpn,brackets --forgetting bignum,rpn,brackets
bake seq-tools-greeting --sequence bundled:tools bundled:style-greeting
bake seq-tools-greeting-unanchored --sequence bundled:tools bundled:style-greeting --no-keep-earlier
bake seq-tools-reasoning --sequence bundled:tools bundled:reasoning
bake seq-reasoning-tools --sequence bundled:reasoning bundled:tools
bake conflict-tools-reasoning --x0 task:arithmetic:2,3 --no-keep-earlier --sequence bundled:tools bundled:reasoning
bake conflict-reasoning-tools --x0 task:arithmetic:2,3 --no-keep-earlier --sequence bundled:reasoning bundled:tools

[[ -f $out/kl_profile.log ]] || python scripts/kl_profile.py 2>&1 | tee "$out/kl_profile.log"
for args in "" "--training continue"; do
    name=iterate${args:+-continue}
    [[ -f $out/$name/summary.json ]] || selfbake iterate --model bundled --task brackets --levels 2,3 \
        --iterations 5 $args --out "$out/$name" 2>&1 | tee "$out/$name.log"
done
[[ -f $out/bake_throughput.log ]] || python benchmarks/bake_throughput.py 2>&1 | tee "$out/bake_throughput.log"
[[ -f $out/generation.log ]] || python benchmarks/generation.py 2>&1 | tee "$out/generation.log"
