#!/usr/bin/env bash
# Two hosts on one machine: network namespaces l2pd-a (10.77.0.1) and l2pd-b (10.77.0.2)
# joined by a veth pair. One worker in each, the coordinator in l2pd-a; prints the answer of
# one generation that crossed the link, then removes everything. Needs root and iproute2.
# Passes are chained (worker to worker, then to the coordinator). Links run over TLS
# (tls+tcp://, mutual: each side presents a
# certificate of a throwaway CA from cluster/make-test-certs.sh; needs openssl); PLAINTEXT=1
# runs them over plain tcp://.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "netns-demo: run as root (it creates network namespaces)" >&2; exit 1; }
command -v ip >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null; }
source scripts/setup.sh
swift build -c release --product l2pd >&2
bin="$(swift build -c release --show-bin-path)/l2pd"
prompt="${1:-Copy the digits 20261124.}"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del l2pd-a 2>/dev/null || true
    ip netns del l2pd-b 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add l2pd-a
ip netns add l2pd-b
ip link add l2pd-veth-a type veth peer name l2pd-veth-b
ip link set l2pd-veth-a netns l2pd-a
ip link set l2pd-veth-b netns l2pd-b
ip -n l2pd-a addr add 10.77.0.1/24 dev l2pd-veth-a
ip -n l2pd-b addr add 10.77.0.2/24 dev l2pd-veth-b
for ns in l2pd-a l2pd-b; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "l2pd-veth-${ns#l2pd-}" up
done

scheme=tls+tcp
tls_json=""
worker_tls=()
if [ "${PLAINTEXT:-0}" = 1 ]; then
    scheme=tcp
else
    certs=/tmp/l2pd-netns-certs
    rm -rf "$certs"
    HOSTS=10.77.0.1,10.77.0.2 cluster/make-test-certs.sh "$certs" coordinator worker
    tls_json="\"tls\": {\"ca\": \"$certs/ca.pem\", \"certificate\": \"$certs/coordinator.pem\", \"key\": \"$certs/coordinator.key\"},"
    worker_tls=(--tls-cert "$certs/worker.pem" --tls-key "$certs/worker.key" --tls-ca "$certs/ca.pem")
fi
cat > /tmp/l2pd-netns-cluster.json <<JSON
{"model": "default", "listen": "tcp://10.77.0.1:7700", $tls_json
 "workers": [{"url": "$scheme://10.77.0.1:7701", "layers": [0, 2]},
             {"url": "$scheme://10.77.0.2:7701", "layers": [2, 4]}]}
JSON
ip netns exec l2pd-a "$bin" worker --listen "$scheme://10.77.0.1:7701" "${worker_tls[@]}" &
pids+=($!)
ip netns exec l2pd-b "$bin" worker --listen "$scheme://10.77.0.2:7701" "${worker_tls[@]}" &
pids+=($!)
ip netns exec l2pd-a "$bin" coordinator --cluster /tmp/l2pd-netns-cluster.json 2> >(tee /tmp/l2pd-netns-coordinator.log >&2) &
pids+=($!)
for _ in $(seq 1 100); do
    ip netns exec l2pd-a "$bin" generate --coordinator tcp://10.77.0.1:7700 --gen-length 32 "What is 1 + 1?" >/dev/null 2>&1 && break
    sleep 0.3
done
echo "netns-demo: layers 0..<2 in l2pd-a (10.77.0.1), layers 2..<4 in l2pd-b (10.77.0.2), links over $scheme://" >&2
echo "prompt: $prompt"
echo -n "answer: "
ip netns exec l2pd-a "$bin" generate --coordinator tcp://10.77.0.1:7700 --policy threshold --cache dual "$prompt"
# Chained passes: the hidden states went from l2pd-a's worker straight to l2pd-b's (its stage
# address, port 7801), never back through the coordinator; a fallback to relaying is logged.
if grep -q "relayed" /tmp/l2pd-netns-coordinator.log; then
    echo "netns-demo: passes fell back to relaying through the coordinator:" >&2
    grep "relayed" /tmp/l2pd-netns-coordinator.log >&2
    exit 1
fi
echo "netns-demo: passes were chained (worker 10.77.0.1 sent its hidden states to 10.77.0.2:7801)" >&2
