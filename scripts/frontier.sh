#!/usr/bin/env bash
# Learn2PD's frontier: every training-free rule over its parameter grid and the learned filter
# over its tau grid, each with and without end-of-text prediction, without a cache and with the
# dual cache, on the same evaluation prompts; one JSON and one Pareto picture (accuracy against
# tokens per forward pass, one curve per rule and cache mode) in docs/.
#   scripts/frontier.sh [GEN_LENGTH] [PROMPTS] [EXTRA eval FLAGS...]
#       (default: gen length 256 on 200 prompts: docs/frontier-256.json and .svg)
# Grids (override with THRESHOLDS, FACTORS, DELTAS, TAUS): threshold 0.5-0.99, factor 0.5-4,
# delta -0.25-0.75, tau 0.3-0.99. TPF counts answer tokens before the first end-of-text, for
# every rule. Takes a while: about (runs x prompts) decodes; `--threads` is passed through.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
gen="${1:-256}"
prompts="${2:-200}"
shift 2 || shift $#
thresholds="${THRESHOLDS:-0.5,0.6,0.7,0.8,0.9,0.95,0.99}"
factors="${FACTORS:-0.5,1,1.5,2,3,4}"
deltas="${DELTAS:--0.25,0,0.25,0.5,0.75}"
taus="${TAUS:-0.3,0.5,0.7,0.9,0.96,0.99}"
out="${OUT:-$root/docs/frontier-$gen}"
"$root/scripts/l2pd" --help >/dev/null  # builds once
"$root/.build/release/l2pd" eval \
    --policies threshold,factor,frechet,learn2pd,threshold+eotp,factor+eotp,frechet+eotp,learn2pd+eotp \
    --threshold "$thresholds" --factor "$factors" --delta "$deltas" --tau "$taus" \
    --cache none,dual --gen-length "$gen" --limit "$prompts" \
    --json "$out.json" --plot "$out.svg" "$@"
echo "frontier: wrote $out.json and $out.svg" >&2
