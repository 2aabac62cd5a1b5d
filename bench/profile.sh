#!/usr/bin/env bash
# Profiles a standalone Corral under one `corral bench` load with perf:
#
#   bench/profile.sh OP [SESSIONS] [SECONDS]      # e.g. bench/profile.sh create 32 10
#   CORRAL_PROFILE_ZNODES=1000000 bench/profile.sh set 16   # with 1M znodes in the tree first
#
# Starts `corral server` on a fresh data dir (loopback port 23190, same zoo.cfg as
# compare.sh), warms up, then records the server with `perf record --call-graph dwarf`
# while the load runs, and prints the top frames (self time, then with children) to
# stdout. The perf.data and the report stay under target/profile/OP-SESSIONS/.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

OP=${1:?usage: bench/profile.sh OP [SESSIONS] [SECONDS]}
SESSIONS=${2:-32}
SECONDS_=${3:-10}
PORT=${CORRAL_PROFILE_PORT:-23190}
DIR="$REPO/target/profile/$OP-$SESSIONS-${CORRAL_PROFILE_ZNODES:-0}"
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 1; }
[[ -x target/release/corral ]] || cargo build --release --bin corral

rm -rf "$DIR"
mkdir -p "$DIR/data"
cp target/release/corral "$DIR/corral"
write_cfg "$DIR" "$PORT"
if port_in_use "$PORT"; then
    echo "port $PORT is in use; set CORRAL_PROFILE_PORT" >&2
    exit 1
fi
launch_server "$DIR/corral" "$DIR"
PID=$LAUNCHED_PID
trap 'kill -9 $PID 2>/dev/null || true; rm -rf "$DIR/data"' EXIT
"$DIR/corral" bench --op probe --hosts "127.0.0.1:$PORT" --timeout 60 >/dev/null

ZNODES=${CORRAL_PROFILE_ZNODES:-0}
if ((ZNODES > 0)); then
    "$DIR/corral" bench --hosts "127.0.0.1:$PORT" --op fill --count "$ZNODES" --sessions 8 \
        --inflight 32 --quiet >"$DIR/fill.txt"
fi

# The load runs 2 s of warm-up, then perf records for SECONDS while it is measured.
"$DIR/corral" bench --hosts "127.0.0.1:$PORT" --op "$OP" --sessions "$SESSIONS" --inflight 8 \
    --size 100 --warmup 2 --duration "$((SECONDS_ + 1))" --server-pid "$PID" >"$DIR/bench.txt" &
BENCH=$!
sleep 2.5
perf record -F 499 --call-graph dwarf,32768 -p "$PID" -o "$DIR/perf.data" -- sleep "$SECONDS_" \
    2>"$DIR/perf-record.log"
wait "$BENCH"
cat "$DIR/bench.txt"
perf report -i "$DIR/perf.data" --no-children --stdio --percent-limit 1.5 -g none \
    --sort dso,symbol 2>/dev/null | grep -v '^$' | head -60 | tee "$DIR/report-self.txt"
echo
echo "--- with children (inclusive), top entries ---"
perf report -i "$DIR/perf.data" --children --stdio --percent-limit 4 -g none \
    --sort symbol 2>/dev/null | grep -v '^$' | head -60 | tee "$DIR/report-children.txt"
