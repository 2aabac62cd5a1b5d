#!/usr/bin/env bash
# Writes against a server whose tree already holds N znodes: where a snapshot
# taken every snapCount (100,000) writes costs the most. For each server given
# (a Corral binary, or `zookeeper` for Debian's Apache ZooKeeper 3.8), one at a
# time on a fresh data dir: fill N znodes, then one `corral bench` run per
# OP:SESSIONS, and the lines the Corral server logged about snapshots.
#
#   bench/bigtree.sh [--znodes N] [--runs "set:4 set:32 create:32"] [--duration S] \
#       [--port P] [--work DIR] SERVER...
#   e.g. bench/bigtree.sh target/release/corral zookeeper
#
# The load generator is the first Corral binary given (or target/release/corral).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
ZNODES=1000000 RUNS="set:4 set:32 create:32" DURATION=10 PORT=23201 WORK="$REPO/target/bigtree"
while (($#)); do
    case "$1" in
        --znodes) ZNODES=$2; shift ;;
        --runs) RUNS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --port) PORT=$2; shift ;;
        --work) WORK=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
    esac
    shift
done
(($#)) || { echo "bigtree.sh: name at least one server (see --help)" >&2; exit 2; }
BENCH=""
for s in "$@"; do [[ $s != zookeeper && -z $BENCH ]] && BENCH=$(realpath "$s"); done
BENCH=${BENCH:-$REPO/target/release/corral}
ulimit -n 65536 2>/dev/null || true

PID=""
trap '[[ -n $PID ]] && kill -9 $PID 2>/dev/null || true' EXIT
n=0
for server in "$@"; do
    n=$((n + 1))
    dir="$WORK/$n-$(basename "$server")"
    rm -rf "$dir"
    write_cfg "$dir" "$PORT"
    if port_in_use "$PORT"; then
        echo "port $PORT is in use; pick another with --port" >&2
        exit 1
    fi
    launch_server "$server" "$dir"
    PID=$LAUNCHED_PID
    hosts="127.0.0.1:$PORT"
    "$BENCH" bench --op probe --hosts "$hosts" --timeout 120 >/dev/null
    "$BENCH" bench --hosts "$hosts" --op fill --count "$ZNODES" --size 100 --sessions 8 \
        --inflight 32 --quiet >"$dir/fill.txt"
    echo "== $server: $ZNODES znodes, RSS $(awk '/^VmRSS:/ {print int($2 / 1024)}' /proc/$PID/status) MiB"
    for run in $RUNS; do
        op=${run%%:*} sessions=${run##*:}
        "$BENCH" bench --hosts "$hosts" --op "$op" --sessions "$sessions" --inflight 8 --size 100 \
            --duration "$DURATION" --warmup 2 --server-pid "$PID" --label "$(basename "$server")" \
            --json >"$dir/$op-$sessions.json"
        python3 - "$dir/$op-$sessions.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); l = r.get("latency_us") or {}; s = r.get("server") or {}
print(f"   {r['op']:>6} x{r['sessions']:<3} {r['throughput_ops_s']:>8.0f} ops/s  p50 {l.get('p50', 0):>6} "
      f"p99 {l.get('p99', 0):>7} p99.9 {l.get('p999', 0):>8} max {l.get('max', 0):>8} µs  "
      f"cpu {s.get('cpu_us_per_op') or 0:5.1f} µs/op  errors {r['errors']}")
PY
    done
    if [[ $server != zookeeper ]]; then
        # The log's group commits over the whole life of the server (fill included).
        exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf mntr >&3 &&
            grep -E "corral_log_fsync" <&3 | tr '\t' ' ' | sed 's/^/   mntr: /' || true
        exec 3<&- 3>&- || true
    fi
    grep -E "captured the tree|wrote snapshot" "$dir/server.log" | sed 's/^/   log: /' | tail -n 6 || true
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
    rm -rf "$dir/data"
done
