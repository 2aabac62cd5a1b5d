#!/usr/bin/env bash
# Corral and Apache ZooKeeper 3.8 side by side on this machine, with the same
# load (`corral bench`), the same zoo.cfg settings and the same disk; writes
# docs/PERFORMANCE.md (tables, ratios Corral ÷ ZooKeeper, commands, machine)
# and bench/results/ (raw JSON lines and the throughput chart).
#
#   bench/compare.sh                 # full run, 1-node (about 15 minutes)
#   bench/compare.sh --ensemble      # also 3-node ensembles
#   bench/compare.sh --smoke         # a few seconds per server, report under target/compare/
#
# Options:
#   --smoke           1 s runs, 1k znodes, 50-watcher fan-out, 1-node (unless
#                     --ensemble is given too); report to
#                     target/compare/PERFORMANCE.md unless --out is given (for CI)
#   --ensemble        also compare 3-node ensembles (create/get/set)
#   --znodes N        znodes for the memory and restart figures (default 1000000)
#   --duration S      measured seconds per run (default 10)
#   --warmup S        warm-up seconds per run (default 2)
#   --sessions "A B"  the session counts of the main matrix (default "4 32")
#   --ops "a b"       operations of the main matrix (default "create get set exists children delete")
#   --chart-sessions "A B …"  extra session counts for the chart (create/get/set;
#                     default "1 16 64"; "" for none)
#   --fanout N        watchers of the fan-out figure (default 1000)
#   --out FILE        the report (default docs/PERFORMANCE.md)
#   --results DIR     raw JSON lines and chart (default bench/results; with --smoke
#                     WORK/results): give another one for a partial run, so that the
#                     full matrix's results stay
#   --work DIR        data directories and logs (default target/compare)
#   --keep-data       keep the servers' data directories (deleted at the end otherwise;
#                     the 1M-znode ones take gigabytes)
#   --no-build        use the existing target/release/corral
#   --corral BIN      use this corral binary (no build; CI passes its debug build
#                     to the smoke run: figures from it mean nothing, the run
#                     checks that the script still works end to end)
#   --port-base P     loopback ports P+1 (Corral), P+2 (ZooKeeper), P+10…P+63 (3-node);
#                     default 23100 (below Linux's ephemeral range, 32768-60999, where an
#                     outgoing connection can take a member's port between runs)
#
# Needs: cargo, java and Debian's `zookeeper` package (installed here with
# apt-get when missing and running as root), python3 (writes the report).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

SMOKE=0
ENSEMBLE=0
ZNODES=1000000
DURATION=10
WARMUP=2
SESSIONS="4 32"
OPS="create get set exists children delete"
CHART_SESSIONS="1 16 64"
FANOUT=1000
INFLIGHT=8
SIZE=100
OUT=""
RESULTS_DIR=""
WORK="$REPO/target/compare"
BUILD=1
CORRAL_BIN=""
PORT_BASE=23100
KEEP_DATA=0
ARGS_GIVEN="$*"

while (($#)); do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --ensemble) ENSEMBLE=1 ;;
        --znodes) ZNODES=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --sessions) SESSIONS=$2; shift ;;
        --ops) OPS=$2; shift ;;
        --chart-sessions) CHART_SESSIONS=$2; shift ;;
        --fanout) FANOUT=$2; shift ;;
        --out) OUT=$2; shift ;;
        --results) RESULTS_DIR=$2; shift ;;
        --work) WORK=$2; shift ;;
        --no-build) BUILD=0 ;;
        --corral) CORRAL_BIN=$(realpath "$2"); BUILD=0; shift ;;
        --port-base) PORT_BASE=$2; shift ;;
        --keep-data) KEEP_DATA=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if ((SMOKE)); then
    ZNODES=1000
    DURATION=1
    WARMUP=0.2
    SESSIONS="2"
    OPS="create get set delete"
    CHART_SESSIONS=""
    FANOUT=50
    OUT=${OUT:-$WORK/PERFORMANCE.md}
    RESULTS_DIR=${RESULTS_DIR:-$WORK/results}
else
    OUT=${OUT:-$REPO/docs/PERFORMANCE.md}
    RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/results}
fi

log() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "compare.sh: $*" >&2; exit 1; }

# Unusual loopback ports, away from 2181 and the tests' 22181/22182 (--port-base moves
# them all; every one is checked free before use).
CORRAL_PORT=$((PORT_BASE + 1))
ZK_PORT=$((PORT_BASE + 2))
# 3-node: client, quorum and election ports per member (i = 1..3).
CORRAL_ENS_CLIENT=$((PORT_BASE + 10)) CORRAL_ENS_QUORUM=$((PORT_BASE + 20)) CORRAL_ENS_ELECTION=$((PORT_BASE + 30))
ZK_ENS_CLIENT=$((PORT_BASE + 40)) ZK_ENS_QUORUM=$((PORT_BASE + 50)) ZK_ENS_ELECTION=$((PORT_BASE + 60))

# ---- prerequisites ------------------------------------------------------------------------
if ! dpkg -s zookeeper >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]]; then
        log "apt-get install zookeeper default-jre-headless"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q --no-install-recommends zookeeper default-jre-headless
    else
        die "Apache ZooKeeper is not installed (apt-get install zookeeper)"
    fi
fi
ZK_JAR=${CORRAL_ZK_JAR:-/usr/share/java/zookeeper.jar}
[[ -f $ZK_JAR ]] || die "ZooKeeper jar missing at $ZK_JAR"
export CORRAL_ZK_JAR=$ZK_JAR
command -v python3 >/dev/null || die "python3 is needed to write the report"

if ((BUILD)); then
    log "cargo build --release --bin corral"
    cargo build --release --bin corral
fi
CORRAL_BIN=${CORRAL_BIN:-$REPO/target/release/corral}
[[ -x $CORRAL_BIN ]] || die "$CORRAL_BIN missing (drop --no-build)"

# 1000 sessions need 1000+ descriptors in the benchmark and in each server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

rm -rf "$WORK"
mkdir -p "$WORK" "$RESULTS_DIR"
# A private copy: a rebuild of target/ during the run must not swap the binary under it.
cp "$CORRAL_BIN" "$WORK/corral"
CORRAL="$WORK/corral"
RESULTS="$RESULTS_DIR/results.jsonl"
: >"$RESULTS"

# ---- processes ----------------------------------------------------------------------------
STARTED_PIDS=()
cleanup() {
    local p
    for p in "${STARTED_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# (write_cfg, port_in_use and launch_server are in bench/lib.sh.)
# port_free PORT: fails loudly when something (someone else's server) listens there.
port_free() {
    if port_in_use "$1"; then
        die "port $1 is in use by another process; pick other ports with --port-base"
    fi
}

# start_server KIND DIR: starts `corral server` or ZooKeeper on DIR/zoo.cfg (its client
# port must be free); sets SERVER_PID.
start_server() {
    local kind=$1 dir=$2 pid
    port_free "$(sed -n 's/^clientPort=//p' "$dir/zoo.cfg")"
    if [[ $kind == corral ]]; then
        launch_server "$CORRAL" "$dir"
    else
        launch_server zookeeper "$dir"
    fi
    pid=$LAUNCHED_PID
    STARTED_PIDS+=("$pid")
    SERVER_PID=$pid
}

stop_pid() {
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# probe HOSTS [PATH]: waits until a client can read PATH; prints the JSON report.
probe() {
    "$CORRAL" bench --op probe --hosts "$1" --path "${2:-/}" --timeout 180 --json
}

json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

rss_bytes() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }

# record KIND FIELDS_JSON REPORT_JSON: one line of results.jsonl.
record() {
    printf '{"kind":"%s",%s,"report":%s}\n' "$1" "$2" "$3" >>"$RESULTS"
}

# load SERVER NODES HOSTS PIDS OP SESSIONS: one `corral bench` run, recorded.
load() {
    local server=$1 nodes=$2 hosts=$3 pids=$4 op=$5 sessions=$6 out
    out=$("$CORRAL" bench --hosts "$hosts" --op "$op" --sessions "$sessions" --inflight "$INFLIGHT" \
        --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP" --server-pid "$pids" \
        --label "$server" --json) || die "corral bench --op $op against $server failed"
    record load "\"server\":\"$server\",\"nodes\":$nodes" "$out"
    python3 - "$out" <<'EOF' >&2
import json, sys
r = json.loads(sys.argv[1]); l = r.get("latency_us") or {}; s = r.get("server") or {}
print(f"   {r['label']:>6} {r['op']:>8} x{r['sessions']:<4} {r['throughput_ops_s']:>9.0f} ops/s  "
      f"p50 {l.get('p50', 0):>6} µs  p99 {l.get('p99', 0):>7} µs  "
      f"cpu {s.get('cpu_us_per_op') or 0:6.1f} µs/op  errors {r['errors']}")
EOF
}

# ---- the machine --------------------------------------------------------------------------
log "machine"
DISK_DEV=$(findmnt -no SOURCE --target "$WORK" 2>/dev/null || echo unknown)
DISK_FS=$(findmnt -no FSTYPE --target "$WORK" 2>/dev/null || echo unknown)
DSYNC=$(cd "$WORK" && dd if=/dev/zero of=dsync.test bs=4k count=500 oflag=dsync 2>&1 | tail -n 1; rm -f "$WORK/dsync.test")
python3 - "$WORK/meta.json" <<EOF
import json, subprocess, sys, datetime, os
def dsync_text(line):
    try:
        secs = float(line.split(" copied, ")[1].split(" s")[0])
        return f"{secs / 500 * 1000:.2f} ms per 4 KiB O_DSYNC write (dd, 500 writes)"
    except Exception:
        return line
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception: return ""
json.dump({
  "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
  "nproc": sh("nproc"),
  "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip(),
  "kernel": sh("uname -srm"),
  "memory": sh("free -g | awk '/^Mem:/ {print \$2 \" GiB\"}'"),
  "disk": "$DISK_DEV ($DISK_FS)",
  "dsync": dsync_text("""$DSYNC"""),
  "loadavg": sh("cut -d' ' -f1-3 /proc/loadavg"),
  "java": sh("java -version 2>&1 | head -n 1"),
  "zookeeper": sh("dpkg-query -W -f='\${Version}' zookeeper 2>/dev/null") or os.path.basename(os.path.realpath("$ZK_JAR")),
  "corral": sh("git -C $REPO describe --always --dirty 2>/dev/null"),
  "args": "$ARGS_GIVEN",
  "smoke": $SMOKE,
  "ensemble": $ENSEMBLE,
  "znodes": $ZNODES,
  "duration": $DURATION,
  "warmup": $WARMUP,
  "inflight": $INFLIGHT,
  "size": $SIZE,
  "sessions": "$SESSIONS",
  "chart_sessions": "$CHART_SESSIONS",
  "fanout": $FANOUT,
  "port_base": $PORT_BASE,
}, open(sys.argv[1], "w"), indent=1)
EOF
cat "$WORK/meta.json" >&2
cp "$WORK/meta.json" "$RESULTS_DIR/meta.json"

# ---- 1-node: throughput, latency, CPU per op, fan-out ------------------------------------
log "1-node: starting Corral on :$CORRAL_PORT and ZooKeeper on :$ZK_PORT (data under $WORK)"
write_cfg "$WORK/corral-1" "$CORRAL_PORT"
write_cfg "$WORK/zk-1" "$ZK_PORT"
start_server corral "$WORK/corral-1"
C_PID=$SERVER_PID
start_server zk "$WORK/zk-1"
Z_PID=$SERVER_PID
C_HOSTS="127.0.0.1:$CORRAL_PORT"
Z_HOSTS="127.0.0.1:$ZK_PORT"
probe "$C_HOSTS" >/dev/null || die "Corral did not start (see $WORK/corral-1/server.log)"
probe "$Z_HOSTS" >/dev/null || die "ZooKeeper did not start (see $WORK/zk-1/server.log)"

log "1-node matrix: ops [$OPS] × sessions [$SESSIONS] × $INFLIGHT in flight, ${SIZE}-byte data, ${DURATION}s each"
for s in $SESSIONS; do
    for op in $OPS; do
        load corral 1 "$C_HOSTS" "$C_PID" "$op" "$s"
        load zookeeper 1 "$Z_HOSTS" "$Z_PID" "$op" "$s"
    done
done
if [[ -n $CHART_SESSIONS ]]; then
    log "1-node chart points: sessions [$CHART_SESSIONS] for create/get/set"
    for s in $CHART_SESSIONS; do
        for op in create get set; do
            load corral 1 "$C_HOSTS" "$C_PID" "$op" "$s"
            load zookeeper 1 "$Z_HOSTS" "$Z_PID" "$op" "$s"
        done
    done
fi

log "1-node watch fan-out: $FANOUT sessions"
for pair in "corral $C_HOSTS $C_PID" "zookeeper $Z_HOSTS $Z_PID"; do
    set -- $pair
    rounds=5
    ((SMOKE)) && rounds=2
    out=$("$CORRAL" bench --hosts "$2" --op watch-fanout --sessions "$FANOUT" --rounds "$rounds" \
        --size "$SIZE" --server-pid "$3" --label "$1" --json) || die "watch-fanout against $1 failed"
    record fanout "\"server\":\"$1\",\"nodes\":1" "$out"
    echo "   $1: $(echo "$out" | json_field '["fanout"]["rounds_ms"]') ms" >&2
done
stop_pid "$C_PID"
stop_pid "$Z_PID"

# ---- 1-node: memory with N znodes, restart time ------------------------------------------
log "1-node memory and restart with $ZNODES znodes of $SIZE bytes (one server at a time)"
LAST_NODE="/corral-bench/fill/p$(((ZNODES - 1) / 1000))/n$((ZNODES - 1))"
for pair in "corral $CORRAL_PORT" "zookeeper $ZK_PORT"; do
    set -- $pair
    server=$1 port=$2 hosts="127.0.0.1:$2" dir="$WORK/$1-mem"
    write_cfg "$dir" "$port"
    start_server "${server/zookeeper/zk}" "$dir"
    pid=$SERVER_PID
    probe "$hosts" >/dev/null || die "$server did not start (see $dir/server.log)"
    sleep 1
    rss_empty=$(rss_bytes "$pid")
    fill=$("$CORRAL" bench --hosts "$hosts" --op fill --count "$ZNODES" --size "$SIZE" \
        --sessions 8 --inflight 32 --server-pid "$pid" --label "$server" --json) ||
        die "filling $server failed"
    sleep 2
    rss_full=$(rss_bytes "$pid")
    du_bytes=$(du -sb "$dir/data" | cut -f1)
    echo "   $server: RSS empty $((rss_empty / 1048576)) MiB, with $ZNODES znodes $((rss_full / 1048576)) MiB" >&2
    stop_pid "$pid"
    t0=$(date +%s%N)
    start_server "${server/zookeeper/zk}" "$dir"
    pid=$SERVER_PID
    probe "$hosts" "$LAST_NODE" >/dev/null || die "$server did not come back (see $dir/server.log)"
    t1=$(date +%s%N)
    restart_ms=$(((t1 - t0) / 1000000))
    sleep 1
    rss_restart=$(rss_bytes "$pid")
    echo "   $server: restart to serving $restart_ms ms, RSS after restart $((rss_restart / 1048576)) MiB" >&2
    record memory "\"server\":\"$server\",\"nodes\":1,\"znodes\":$ZNODES,\"rss_empty\":$rss_empty,\"rss_full\":$rss_full,\"rss_restart\":$rss_restart,\"restart_ms\":$restart_ms,\"disk_bytes\":$du_bytes" "$fill"
    stop_pid "$pid"
done

# ---- 3-node ensembles ---------------------------------------------------------------------
if ((ENSEMBLE)); then
    log "3-node: starting a Corral ensemble and a ZooKeeper ensemble"
    C_LINES=() Z_LINES=()
    for i in 1 2 3; do
        C_LINES+=("server.$i=127.0.0.1:$((CORRAL_ENS_QUORUM + i)):$((CORRAL_ENS_ELECTION + i))")
        Z_LINES+=("server.$i=127.0.0.1:$((ZK_ENS_QUORUM + i)):$((ZK_ENS_ELECTION + i))")
    done
    C_PIDS=() Z_PIDS=() C_ENS=() Z_ENS=()
    for i in 1 2 3; do
        write_cfg "$WORK/corral-ens$i" "$((CORRAL_ENS_CLIENT + i))" "${C_LINES[@]}"
        write_cfg "$WORK/zk-ens$i" "$((ZK_ENS_CLIENT + i))" "${Z_LINES[@]}"
        echo "$i" >"$WORK/corral-ens$i/data/myid"
        echo "$i" >"$WORK/zk-ens$i/data/myid"
        start_server corral "$WORK/corral-ens$i"
        C_PIDS+=("$SERVER_PID")
        start_server zk "$WORK/zk-ens$i"
        Z_PIDS+=("$SERVER_PID")
        C_ENS+=("127.0.0.1:$((CORRAL_ENS_CLIENT + i))")
        Z_ENS+=("127.0.0.1:$((ZK_ENS_CLIENT + i))")
    done
    C_HOSTS=$(IFS=,; echo "${C_ENS[*]}")
    Z_HOSTS=$(IFS=,; echo "${Z_ENS[*]}")
    C_PIDLIST=$(IFS=,; echo "${C_PIDS[*]}")
    Z_PIDLIST=$(IFS=,; echo "${Z_PIDS[*]}")
    for h in "${C_ENS[@]}"; do probe "$h" >/dev/null || die "Corral ensemble member $h did not start"; done
    for h in "${Z_ENS[@]}"; do probe "$h" >/dev/null || die "ZooKeeper ensemble member $h did not start"; done
    log "3-node matrix: create/get/set × sessions [$SESSIONS]"
    for s in $SESSIONS; do
        for op in create get set; do
            load corral 3 "$C_HOSTS" "$C_PIDLIST" "$op" "$s"
            load zookeeper 3 "$Z_HOSTS" "$Z_PIDLIST" "$op" "$s"
        done
    done
    for p in "${C_PIDS[@]}" "${Z_PIDS[@]}"; do stop_pid "$p"; done
fi

# The data directories hold gigabytes (ZooKeeper's logs and snapshots above all); keep the
# server logs and configs only.
((KEEP_DATA)) || rm -rf "$WORK"/*/data

# ---- the report ---------------------------------------------------------------------------
log "writing $OUT"
python3 "$REPO/bench/report.py" --results "$RESULTS" --meta "$WORK/meta.json" \
    --svg "$RESULTS_DIR/throughput.svg" --notes "$REPO/bench/PROFILE-NOTES.md" --out "$OUT"
echo "$OUT" >&2
# The ratio table, on standard output (the rest of the report is in $OUT).
echo
sed -n '/^## Targets/,/^The summary rows/p' "$OUT" | sed '$d'
((SMOKE)) && echo "(smoke run: 1 s runs and 1,000 znodes; the figures mean nothing, the run checks the script)"
true
