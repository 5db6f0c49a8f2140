#!/usr/bin/env bash
# Fault soak: a loopback cluster answers a load test while one worker is lost, and every answer
# must equal the one an undisturbed run of the same prompts gives.
#
#   cluster/fault-soak.sh OUT.json               4 workers (two replicas per half); kill -9 one
#                                                after about a third of the requests
#   cluster/fault-soak.sh OUT.json --replicas 1  2 workers; kill -9 one and restart it 1 s later
#                                                (within the coordinator's retry window)
#   cluster/fault-soak.sh OUT.json --freeze      4 workers; SIGSTOP one for 30 s, and time how
#                                                long /health takes to report it down
# Options: --requests N (200), --concurrency C (8), --gen-length L (64), --cache none|prefix|dual
# (dual: a lost worker's K/V caches must be rebuilt from the canvas).
# OUT.json: {"requests", "ok", "failed", "retried", "moved", "workers_lost", "identical",
# "mode", "replicas", "seconds_undisturbed", "seconds_disturbed"[, "down_after_s"]}.
# "retried": forward passes run again after the loss; "identical": every answer equals the
# undisturbed run's.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,16p "$0" >&2; exit 2; }
out="$1"
shift
mode=kill
replicas=2
requests=200
concurrency=8
gen_length=64
cache=dual
while [ $# -gt 0 ]; do
    case "$1" in
        --replicas) replicas="$2"; shift 2 ;;
        --freeze) mode=freeze; shift ;;
        --requests) requests="$2"; shift 2 ;;
        --concurrency) concurrency="$2"; shift 2 ;;
        --gen-length) gen_length="$2"; shift 2 ;;
        --cache) cache="$2"; shift 2 ;;
        *) echo "fault-soak: unknown option $1" >&2; exit 2 ;;
    esac
done
case "$replicas" in
    1) config=cluster/local-2.json ;;
    2) config=cluster/local-replicas.json ;;
    *) echo "fault-soak: --replicas must be 1 or 2" >&2; exit 2 ;;
esac
if [ "$mode" = freeze ] && [ "$replicas" = 1 ]; then
    echo "fault-soak: --freeze needs replicas (a frozen sole worker stalls its stage for 30 s)" >&2
    exit 2
fi

source scripts/setup.sh >/dev/null
swift build -c release --product l2pd >&2
bin="$(swift build -c release --show-bin-path)/l2pd"
work="$(mktemp -d)"
http_port=7790
urls=($(grep -o '"url": *"[^"]*"' "$config" | sed 's/.*"\(tcp[^"]*\)"/\1/'))

declare -A worker_pid
pids=()
stop() {
    for pid in "${pids[@]}" "${worker_pid[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

start_worker() {
    "$bin" worker --listen "${urls[$1]}" --threads 1 --quiet 2>>"$work/workers.log" &
    worker_pid[$1]=$!
}

http_get() (  # path -> body (bash's /dev/tcp: no curl needed)
    exec 3<>"/dev/tcp/127.0.0.1/$http_port" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$1" >&3
    sed '1,/^\r$/d' <&3
)

ok_count() { http_get /metrics | sed -n 's/^l2pd_requests_total{outcome="ok"} \([0-9.]*\).*/\1/p' | cut -d. -f1; }

for i in "${!urls[@]}"; do start_worker "$i"; done
"$bin" coordinator --cluster "$config" --http "http://127.0.0.1:$http_port" 2>"$work/coordinator.log" &
pids+=($!)
for _ in $(seq 1 200); do
    if http_get /health 2>/dev/null | grep -q '"status":"ok"'; then break; fi
    sleep 0.2
done
http_get /health | grep -q '"status":"ok"' || { echo "fault-soak: the cluster did not come up" >&2; cat "$work/coordinator.log" >&2; exit 1; }
echo "fault-soak: ${#urls[@]} workers from $config up; mode $mode" >&2

loadtest() {  # answers-file report-file
    "$bin" loadtest --target "http://127.0.0.1:$http_port" --requests "$requests" --concurrency "$concurrency" \
        --gen-length "$gen_length" --cache "$cache" --answers "$1" --json "$2" >&2
}
field() {  # file name -> the number, or null
    local value
    value="$(sed -n "s/^ *\"$2\" : \([0-9.]*\).*/\1/p" "$1" | head -1)"
    echo "${value:-null}"
}

echo "fault-soak: undisturbed run" >&2
loadtest "$work/undisturbed.json" "$work/undisturbed-report.json"
base_ok="$(ok_count)"

echo "fault-soak: disturbed run" >&2
loadtest "$work/disturbed.json" "$work/disturbed-report.json" &
load=$!
# The victim: the first worker of the second half (a replica when there are two).
victim=$((${#urls[@]} / 2))
[ "$replicas" = 2 ] && victim=2
until [ "$(ok_count)" -ge $((base_ok + requests / 3)) ] || ! kill -0 "$load" 2>/dev/null; do sleep 0.05; done
down_after=""
case "$mode" in
    kill)
        echo "fault-soak: kill -9 worker ${urls[$victim]}" >&2
        kill -9 "${worker_pid[$victim]}"
        if [ "$replicas" = 1 ]; then
            sleep 1
            echo "fault-soak: restarting ${urls[$victim]}" >&2
            start_worker "$victim"
        fi
        ;;
    freeze)
        echo "fault-soak: SIGSTOP worker ${urls[$victim]} for 30 s" >&2
        kill -STOP "${worker_pid[$victim]}"
        frozen_at=$(date +%s%N)
        for _ in $(seq 1 300); do
            if http_get /health | grep -q '"state":"down"'; then
                elapsed_ms=$((($(date +%s%N) - frozen_at) / 1000000))
                down_after=$(printf '%d.%03d' $((elapsed_ms / 1000)) $((elapsed_ms % 1000)))
                break
            fi
            sleep 0.05
        done
        echo "fault-soak: /health reports it down after ${down_after:-never} s" >&2
        ( sleep 30; kill -CONT "${worker_pid[$victim]}" 2>/dev/null || true ) &
        ;;
esac
wait "$load" || true

report="$work/disturbed-report.json"
identical=false
cmp -s "$work/undisturbed.json" "$work/disturbed.json" && identical=true
{
    printf '{"requests": %s, "ok": %s, "failed": %s, ' "$(field "$report" requests)" "$(field "$report" ok)" "$(field "$report" failed)"
    printf '"retried": %s, "moved": %s, "workers_lost": %s, ' \
        "$(field "$report" passes_retried)" "$(field "$report" requests_moved)" "$(field "$report" workers_lost)"
    printf '"identical": %s, "mode": "%s", "replicas": %s, ' "$identical" "$mode" "$replicas"
    printf '"seconds_undisturbed": %s, "seconds_disturbed": %s' \
        "$(field "$work/undisturbed-report.json" seconds)" "$(field "$report" seconds)"
    [ -n "$down_after" ] && printf ', "down_after_s": %s' "$down_after"
    printf '}\n'
} >"$out"
cat "$out"
