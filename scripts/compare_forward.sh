#!/usr/bin/env bash
# Interleaved forward-pass timing: `l2pd bench forward` (native BF16 weights and F32, one run)
# against PyTorch's F32 and BF16 forward of the same shape (scripts/torch_forward.py), ROUNDS
# times at each canvas length, alternating sides so both see the same machine.
#   scripts/compare_forward.sh [ROUNDS] [LENGTH...]     (default: 3 rounds at 288 and 512)
# PYTHON names the interpreter that has PyTorch (default: python3); TORCH_BF16=0 skips
# PyTorch's BF16 pass (slow on CPUs without AVX-512 BF16). Prints one line per round with the
# ratios l2pd/PyTorch (below 1: l2pd is faster). WEIGHTS=int8 times l2pd's int8 weights
# (`--weights int8`; attention products in BF16 where the CPU has AVX-512 BF16) instead of
# native BF16 and F32, and prints PyTorch's faster forward over it (above 1: l2pd is faster).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-3}"
shift || true
lengths=(288 512)
[ $# -gt 0 ] && lengths=("$@")
python="${PYTHON:-python3}"
weights="${WEIGHTS:-native}"
case "$weights" in native | int8) ;; *) echo "compare_forward: WEIGHTS is native or int8, not '$weights'" >&2 && exit 2 ;; esac
"$root/scripts/l2pd" --help >/dev/null  # builds once
l2pd="$root/.build/release/l2pd"
field() { sed -n "s/.*\"$1\": *\([0-9.e-]*\).*/\1/p"; }
for length in "${lengths[@]}"; do
    for round in $(seq "$rounds"); do
        ours=$("$l2pd" bench forward --json --weights "$weights" --length "$length" --repetitions 5 2>/dev/null)
        t32=$("$python" "$root/scripts/torch_forward.py" --length "$length" --repetitions 5 --dtype f32)
        t16='{"forwardSeconds":0}'
        [ "${TORCH_BF16:-1}" = 0 ] || t16=$("$python" "$root/scripts/torch_forward.py" --length "$length" --repetitions 5 --dtype bf16)
        native=$(echo "$ours" | field forwardSeconds)
        f32=$(echo "$ours" | field f32ForwardSeconds)
        torch32=$(echo "$t32" | field forwardSeconds)
        torch16=$(echo "$t16" | field forwardSeconds)
        kernels=$(echo "$ours" | sed -n 's/.*"blasKernels":"\([^"]*\)".*/\1/p')
        if [ "$weights" = int8 ]; then
            attention=$(echo "$ours" | sed -n 's/.*"attentionProducts":"\([^"]*\)".*/\1/p')
            awk -v L="$length" -v r="$round" -v n="$native" -v a="$torch32" -v b="$torch16" -v k="$attention" 'BEGIN {
                best = (b > 0 && b < a) ? b : a
                printf "length %d round %d: l2pd int8 %.3f s (attention products %s); torch f32 %.3f s, bf16 %.3f s; torch-best/int8 %.2f\n",
                    L, r, n, k, a, b, best / n }'
            continue
        fi
        awk -v L="$length" -v r="$round" -v n="$native" -v f="$f32" -v a="$torch32" -v b="$torch16" -v k="$kernels" 'BEGIN {
            best = (b > 0 && b < a) ? b : a
            printf "length %d round %d: l2pd native %.3f s, f32 %.3f s (%s kernels); torch f32 %.3f s, bf16 %.3f s; native/torch-f32 %.2f, f32/torch-f32 %.2f, native/torch-best %.2f\n",
                L, r, n, f, k, a, b, n / a, f / a, n / best }'
    done
done
