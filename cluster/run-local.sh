#!/usr/bin/env bash
# Starts the workers of cluster/local-N.json and a coordinator on loopback, waits until the
# coordinator serves, then keeps them running until Ctrl-C or SIGTERM, or until any of them
# exits: then it stops them all (no orphaned workers, no coordinator left without workers).
#   cluster/run-local.sh 2            # or 1, 4, replicas (4 workers, two per half); then:
#   scripts/l2pd generate --coordinator tcp://127.0.0.1:7700 "What is 12 + 30?"
# With a command after N, runs it once the cluster is up and stops the cluster when it ends:
#   cluster/run-local.sh 2 scripts/l2pd generate --coordinator tcp://127.0.0.1:7700 "Copy the digits 123."
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2}"
shift || true
config="cluster/local-$n.json"
[ -f "$config" ] || { echo "run-local: no $config (use 1, 2, 4 or replicas)" >&2; exit 1; }
source scripts/setup.sh
swift build -c release --product l2pd >&2
bin="$(swift build -c release --show-bin-path)/l2pd"

pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "run-local: stopped" >&2
}
trap stop EXIT
trap 'exit 130' INT TERM

for url in $(grep -o '"url": *"[^"]*"' "$config" | sed 's/.*"\(tcp[^"]*\)"/\1/'); do
    "$bin" worker --listen "$url" --threads 1 &
    pids+=($!)
done
# L2PD_COORDINATOR_ARGS: extra coordinator options (e.g. "--batches-in-flight 4").
"$bin" coordinator --cluster "$config" ${L2PD_COORDINATOR_ARGS:-} &
pids+=($!)

# Ready when the coordinator answers a request.
for _ in $(seq 1 100); do
    if "$bin" generate --coordinator tcp://127.0.0.1:7700 --gen-length 32 "What is 1 + 1?" >/dev/null 2>&1; then break; fi
    sleep 0.3
done
echo "run-local: $((${#pids[@]} - 1)) worker(s) and a coordinator on tcp://127.0.0.1:7700" >&2
if [ $# -gt 0 ]; then
    "$@"
else
    # The first member to exit ends the cluster.
    wait -n "${pids[@]}" || true
    echo "run-local: a member exited; stopping the others" >&2
fi
