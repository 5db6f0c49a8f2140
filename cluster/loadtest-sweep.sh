#!/usr/bin/env bash
# Starts a 2-worker loopback cluster (cluster/local-2.json, one BLAS thread per worker), runs
# `l2pd loadtest` at concurrency 1, 2, 4, 8 and 16 on the task suite, stops the cluster, prints
# a table and writes {"rows": [...]} to OUT.json with a throughput-latency picture beside it.
#   cluster/loadtest-sweep.sh docs/loadtest.json 32
# Extra arguments after REQUESTS go to `l2pd loadtest` (for example --policy baseline --cache dual).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: cluster/loadtest-sweep.sh OUT.json [REQUESTS] [loadtest options...]" >&2; exit 2; }
out="$1"
requests="${2:-32}"
shift $(($# >= 2 ? 2 : 1))
source scripts/setup.sh
swift build -c release --product l2pd >&2
bin="$(swift build -c release --show-bin-path)/l2pd"
cluster/run-local.sh 2 "$bin" loadtest --target tcp://127.0.0.1:7700 --requests "$requests" --sweep 1,2,4,8,16 \
    --json "$out" --plot "${out%.json}.svg" "$@"
