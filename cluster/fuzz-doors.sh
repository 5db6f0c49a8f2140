#!/usr/bin/env bash
# Fuzzes the coordinator's doors on a 2-worker loopback cluster: every request field at its
# boundary values (and random pairs) over HTTP (both routes) and nng, malformed methods, paths
# and bodies, 16 clients sending 1 MiB prompts beside a small request, 20,000 idle connections
# beside /health, then 1,000 requests at concurrency 16 with the coordinator's memory growth.
# Prints one JSON object (and writes it to OUT.json when given):
#   {"cases", "crashes", "hangs", "non_json_errors", "server_errors", "large_prompts", "idle_connections", "load"}
#   cluster/fuzz-doors.sh [OUT.json]
# Knobs: FUZZ_PAIRS (random field pairs, 300), FUZZ_IDLE (idle connections, 20000),
# FUZZ_REQUESTS (load requests, 1000), FUZZ_SEED.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cluster/run-local.sh 2 python3 cluster/fuzz_doors.py "${1:-}"
