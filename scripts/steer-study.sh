#!/usr/bin/env bash
# The measurement behind a Table-1 row of docs/results.md: analyse a trained run, sweep alpha x topN
# on one set of starting inputs, then measure the chosen setting on fresh starting inputs (another
# seed) against both random baselines, greedy and with beam search.
#   scripts/steer-study.sh RUN SITE TOPN ALPHA [PAIRS (2000)] [THREADS (1)]
# Step 3 (steer-eval) uses TOPN / ALPHA: pick them from the sweep printed by step 2 (rerun with
# MEMGEN_SKIP_ANALYSIS=1 MEMGEN_SKIP_SWEEP=1 to measure another setting on the same analysis).
set -euo pipefail
run=$1 site=$2 topn=$3 alpha=$4 pairs=${5:-2000} threads=${6:-1}
memgen() { node "$(dirname "$0")/../dist/cli.js" "$@"; }
memgen eval --run "$run" --threads "$threads"
if [ -z "${MEMGEN_SKIP_ANALYSIS:-}" ]; then
  memgen analyze --run "$run" --site "$site" --pairs "$pairs" --threads "$threads"
fi
if [ -z "${MEMGEN_SKIP_SWEEP:-}" ]; then
  memgen sweep --run "$run" --alphas 2,5,10,20,40 --topns 0.02,0.05,0.1,0.2 --n 100 --no-baselines --threads "$threads"
fi
memgen steer-eval --run "$run" --topn "$topn" --alpha "$alpha" --n 200 --seed 7 --threads "$threads"
memgen steer-eval --run "$run" --topn "$topn" --alpha "$alpha" --n 200 --seed 7 --beams 5 --threads "$threads" --out "$run/analysis/steering-beams5.json"
