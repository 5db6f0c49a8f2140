#!/usr/bin/env bash
# A LLaDA-8B-shaped model split over two workers on one machine.
#
#   cluster/big-model-demo.sh DIR
#
# 1. Makes a random checkpoint with GSAI-ML/LLaDA-8B-Instruct's shape in DIR (BF16, about
#    15 GiB, sharded, Hugging Face layout), once: a complete one already there is reused.
#    DIR belongs outside the repository.
# 2. Starts two workers (layers 0..<16 and 16..<32, native BF16 weights) and a coordinator on
#    loopback, and runs one generation through them (gen length 32, block 32, dual cache).
# 3. Stops them, then runs the same prompt in one process (`l2pd generate --model DIR`).
#
# Prints one JSON object: workers, max_worker_rss_gib (peak resident set of a worker, mapped
# weights included), load_seconds (slowest worker's load), full_pass_seconds and
# cached_step_seconds (mean per pass through both workers, as the coordinator timed them),
# bytes_per_forward (frame bytes to and from the workers per pass), tokens, identical (the
# one-process answer has the same tokens).
#
# Environment: L2PD_DEMO_PROMPT (the prompt), L2PD_DEMO_THREADS (threads per worker; default
# all cores: the two workers take turns, so each can use every core while the other waits),
# L2PD_DEMO_WEIGHTS=int8 (quantize DIR once into DIR-int8 with `l2pd quantize` and run every
# process from it with --weights int8; default native).
set -euo pipefail
dir="${1:-}"
if [ -z "$dir" ] || [ "$dir" = "-h" ] || [ "$dir" = "--help" ]; then
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    [ -n "$dir" ] && exit 0 || exit 2
fi
cd "$(dirname "$0")/.."
repo="$(pwd)"
case "$(realpath -m "$dir")/" in
"$repo"/*) echo "big-model-demo: $dir is inside the repository; give a directory outside it" >&2 && exit 2 ;;
esac

source scripts/setup.sh
for package in python3 python3-numpy; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "big-model-demo: installing $package" >&2
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$package" >/dev/null
    fi
done
swift build -c release --product l2pd >&2
bin="$(swift build -c release --show-bin-path)/l2pd"

# A checkpoint is complete when its index exists and names only shards that are there.
complete() {
    [ -f "$1/model.safetensors.index.json" ] && [ -f "$1/config.json" ] && [ -f "$1/tokenizer.json" ] &&
        python3 - "$1" <<'EOF'
import json, os, sys
d = sys.argv[1]
shards = set(json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"].values())
sys.exit(0 if all(os.path.exists(os.path.join(d, s)) for s in shards) else 1)
EOF
}
if complete "$dir"; then
    echo "big-model-demo: reusing the checkpoint in $dir" >&2
else
    python3 scripts/make_random_checkpoint.py "$dir"
fi

weights="${L2PD_DEMO_WEIGHTS:-native}"
case "$weights" in
native) ;;
int8)
    if ! complete "$dir-int8"; then
        rm -rf "$dir-int8"
        echo "big-model-demo: quantizing $dir into $dir-int8" >&2
        "$bin" quantize --model "$dir" --out "$dir-int8"
    fi
    dir="$dir-int8"
    ;;
*) echo "big-model-demo: L2PD_DEMO_WEIGHTS must be native or int8" >&2 && exit 2 ;;
esac
prompt="${L2PD_DEMO_PROMPT:-What is 922 + 268?}"
threads="${L2PD_DEMO_THREADS:-$(nproc)}"
work="$(mktemp -d)"
pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
}
trap 'stop; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

cat >"$work/cluster.json" <<EOF
{
  "model": "$(realpath "$dir")",
  "listen": "tcp://127.0.0.1:7820",
  "workers": [
    {"url": "tcp://127.0.0.1:7821", "layers": [0, 16]},
    {"url": "tcp://127.0.0.1:7822", "layers": [16, 32]}
  ]
}
EOF
decode=(--gen-length 32 --block-length 32 --cache dual)

echo "big-model-demo: starting two workers and a coordinator" >&2
"$bin" worker --listen tcp://127.0.0.1:7821 --model "$dir" --weights "$weights" --threads "$threads" 2>"$work/worker1.log" &
worker1=$!
"$bin" worker --listen tcp://127.0.0.1:7822 --model "$dir" --weights "$weights" --threads "$threads" 2>"$work/worker2.log" &
worker2=$!
pids+=("$worker1" "$worker2")
"$bin" coordinator --cluster "$work/cluster.json" --http http://127.0.0.1:7829 --connect-timeout 600 --timeout 600 \
    2>"$work/coordinator.log" &
pids+=($!)

# Ready when /health says ok (both workers have loaded their layers).
health() {
    python3 -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen("http://127.0.0.1:7829/health", timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)'
}
for _ in $(seq 1 600); do
    health && break
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || { cat "$work"/*.log >&2; echo "big-model-demo: a cluster member exited" >&2; exit 1; }
    done
    sleep 1
done
health || { cat "$work"/*.log >&2; echo "big-model-demo: the cluster did not come up" >&2; exit 1; }
grep -h "assigned layers" "$work"/worker*.log >&2 || true

echo "big-model-demo: generating through the cluster" >&2
"$bin" generate --coordinator tcp://127.0.0.1:7820 "${decode[@]}" --json "$prompt" >"$work/cluster-answer.json"
for n in 1 2; do
    pid=$([ $n = 1 ] && echo "$worker1" || echo "$worker2")
    grep VmHWM "/proc/$pid/status" | awk '{print $2}' >"$work/worker$n.hwm"
done
python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:7829/metrics").read().decode())' \
    >"$work/metrics.txt"
stop

echo "big-model-demo: generating in one process (workers stopped)" >&2
"$bin" generate --model "$dir" "${decode[@]}" --weights "$weights" --json "$prompt" >"$work/single-answer.json"

python3 - "$work" "$weights" <<'EOF'
import json, re, sys
work = sys.argv[1]
def metric(name, labels=""):
    for line in open(f"{work}/metrics.txt"):
        if line.startswith(f"l2pd_{name}{labels} "):
            return float(line.split()[-1])
    return 0.0
cluster = json.load(open(f"{work}/cluster-answer.json"))
single = json.load(open(f"{work}/single-answer.json"))
loads = []
for n in (1, 2):
    m = re.search(r"loaded in ([0-9.]+) s", open(f"{work}/worker{n}.log").read())
    loads.append(float(m.group(1)) if m else float("nan"))
rss = [int(open(f"{work}/worker{n}.hwm").read()) / 2**20 for n in (1, 2)]
full, cached = metric("wire_passes_total", '{kind="full"}'), metric("wire_passes_total", '{kind="cached"}')
passes = full + cached
sent, received = metric("wire_bytes_total", '{direction="sent"}'), metric("wire_bytes_total", '{direction="received"}')
print(json.dumps({
    "workers": 2,
    "weights": sys.argv[2],
    "max_worker_rss_gib": round(max(rss), 3),
    "load_seconds": round(max(loads), 2),
    "full_pass_seconds": round(metric("wire_pass_seconds_total", '{kind="full"}') / full, 3) if full else None,
    "cached_step_seconds": round(metric("wire_pass_seconds_total", '{kind="cached"}') / cached, 3) if cached else None,
    "bytes_per_forward": round((sent + received) / passes) if passes else None,
    "tokens": cluster["tokens"],
    "identical": cluster["tokens"] == single["tokens"],
}))
EOF
