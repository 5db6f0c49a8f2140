#!/usr/bin/env bash
# Starts N workers and a coordinator on loopback (cluster/local-N.json), waits until the
# coordinator serves, then keeps them running until Ctrl-C or SIGTERM, and stops them all.
#   cluster/run-local.sh 2            # then, in another shell:
#   scripts/l2pd generate --coordinator tcp://127.0.0.1:7700 "What is 12 + 30?"
# With a command after N, runs it once the cluster is up and stops the cluster when it ends:
#   cluster/run-local.sh 2 scripts/l2pd generate --coordinator tcp://127.0.0.1:7700 "Copy the digits 123."
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2}"
shift || true
config="cluster/local-$n.json"
[ -f "$config" ] || { echo "run-local: no $config (use 1, 2 or 4)" >&2; exit 1; }
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

for i in $(seq 1 "$n"); do
    "$bin" worker --listen "tcp://127.0.0.1:$((7700 + i))" --threads 1 &
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
echo "run-local: $n worker(s) and a coordinator on tcp://127.0.0.1:7700" >&2
if [ $# -gt 0 ]; then
    "$@"
else
    wait
fi
