#!/usr/bin/env bash
# Live migration under load: how fast rows move between shard servers on loopback, and how
# much trainer throughput (W1) is left while they move.
#
# usage: benches/migration.sh [--fill SECONDS] [--max-bytes-per-s N] [--parallel K] [--idle]
#                             [--nice N] [--reserve SIZE] [--huge-pages BOOL]
# Starts a coordinator and two shard servers (release builds, free loopback ports, temp
# data dirs), runs strata-bench W1 (4 trainers) against them, adds a third shard server
# after the table exists, and after --fill seconds (default 20) applies a rebalance that
# moves about a third of the rows to it. From the bench's timeline (steps every 100 ms) it
# reports rows/s in the 4 s before the migration and during it, and the migration rate
# (row bytes moved / wall time from apply to the plan's end). With --idle the bench stops
# after the fill and the rows move with no load. With --reserve SIZE the joining node
# starts with `--memory-reserve SIZE` (its row memory faulted in before the plan; its log
# line says how fast this machine hands out fresh memory). --huge-pages false runs every
# process with 4 KiB pages only (default: strata's huge page advice). Stops what it started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
BIN=$TARGET_DIR/release

FILL=20
RATE=0
PARALLEL=2
IDLE=0
NICE=()
RESERVE=()
HUGE=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --idle) IDLE=1; shift ;;
    --fill) FILL=${2:?}; shift 2 ;;
    --max-bytes-per-s) RATE=${2:?}; shift 2 ;;
    --parallel) PARALLEL=${2:?}; shift 2 ;;
    --nice) NICE=(--migration-nice "${2:?}"); shift 2 ;;
    --reserve) RESERVE=(--memory-reserve "${2:?}"); shift 2 ;;
    --huge-pages) HUGE=(--huge-pages "${2:?}"); shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
(cd "$ROOT" && cargo build --release -q -p strata-server --bin strata-server \
    -p strata-client --bin strata -p strata-bench --bin strata-bench)

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

COORD=127.0.0.1:$(free_port)
"$BIN/strata-server" coordinator --listen "$COORD" --data-dir "$TMP/coordinator" --shards 8 \
    >"$TMP/coordinator.log" 2>&1 &
PIDS+=($!)
start_shard() {
    local i=$1
    shift
    "$BIN/strata-server" shard --coordinator "$COORD" --listen "127.0.0.1:$(free_port)" \
        --data-dir "$TMP/shard-$i" "${NICE[@]}" "${HUGE[@]}" "$@" >"$TMP/shard-$i.log" 2>&1 &
    PIDS+=($!)
}
up_nodes() { "$BIN/strata" --coordinator "$COORD" status --json 2>/dev/null | grep -o '"state":"up"' | wc -l; }
wait_up() {
    for _ in $(seq 1 150); do [[ $(up_nodes) -ge $1 ]] && return; sleep 0.2; done
    log "nodes not up; logs in $TMP"; exit 1
}
start_shard 1
start_shard 2
wait_up 2

DURATION=$((FILL + 25))
[[ $IDLE == 1 ]] && DURATION=$FILL
log "W1 for ${DURATION}s on 2 nodes; a third joins after 3 s; rebalance at ${FILL}s ..."
"$BIN/strata-bench" --coordinator "$COORD" --warmup 0 --duration "$DURATION" \
    --timeline "$TMP/timeline" "${HUGE[@]}" --json >"$TMP/bench.json" 2>"$TMP/bench.log" &
BENCH=$!
PIDS+=($BENCH)
sleep 3
start_shard 3 "${RESERVE[@]}"
wait_up 3
sleep $((FILL - 3))
if [[ $IDLE == 1 ]]; then
    wait "$BENCH" || { log "strata-bench failed:"; cat "$TMP/bench.log" >&2; exit 1; }
    sleep 2   # a heartbeat with the final sizes
fi

now_ms() { date +%s%3N; }
if [[ -n "${STRATA_PERF_OUT:-}" ]]; then   # profile the whole machine during the migration
    perf record -a -g -o "$STRATA_PERF_OUT" >/dev/null 2>&1 &
    PERF_PID=$!
    sleep 0.3
fi
T0=$(now_ms)
"$BIN/strata" --coordinator "$COORD" rebalance --apply --yes --no-wait \
    --max-bytes-per-s "$RATE" --parallel "$PARALLEL" >"$TMP/plan.txt"
while :; do
    STATUS=$("$BIN/strata" --coordinator "$COORD" migration status --json)
    grep -q '"state":"running"' <<<"$STATUS" || break
    (( $(now_ms) - T0 > 300000 )) && { log "migration still running after 300 s"; exit 1; }
    sleep 1   # the timing comes from the coordinator; polling less keeps the CPU for W1
done
T1=$(now_ms)
if [[ -n "${STRATA_PERF_OUT:-}" ]]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
if [[ $IDLE == 0 ]]; then
    wait "$BENCH" || { log "strata-bench failed:"; cat "$TMP/bench.log" >&2; exit 1; }
fi
grep -h "handed off\|rolled back\|reserve faulted in" "$TMP"/shard-*.log | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-300 >&2 || true

python3 - "$TMP/timeline" "$STATUS" "$TMP/plan.txt" <<'PY'
import json, sys
path, status, plan_txt = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
plan = status["plan"]
# The coordinator's own clock: from the plan's start to its end.
t0, t1 = plan["started_unix_ms"], plan["finished_unix_ms"]
samples = [tuple(map(int, l.split())) for l in open(path) if l.strip()]
def rows_at(t):
    prev = samples[0]
    for s in samples:
        if s[0] >= t:
            if s[0] == prev[0]:
                return s[2]
            f = (t - prev[0]) / (s[0] - prev[0])
            return prev[2] + f * (s[2] - prev[2])
        prev = s
    return samples[-1][2]
before = (rows_at(t0) - rows_at(t0 - 4000)) / 4.0
during = (rows_at(t1) - rows_at(t0)) / max((t1 - t0) / 1000.0, 1e-3)
secs = (t1 - t0) / 1000.0
gbps = plan["bytes_done"] / secs / 1e9
print(open(plan_txt).read().strip())
print()
print(f"plan {plan['id']}: {plan['state']}, {plan['moves_done']}/{plan['moves_total']} moves, "
      f"{plan['bytes_done']/1e9:.3f} GB in {secs:.2f} s (plan start to end, coordinator clock)")
print(f"migration rate          {gbps:8.3f} GB/s")
after = (rows_at(t1 + 4000) - rows_at(t1)) / 4.0 if samples[-1][0] >= t1 + 4000 else 0.0
def slowest(t_from, t_to):
    # Slowest step of each 100 ms sample in the window (4th column), in ms.
    return sorted(s[3] / 1000.0 for s in samples if t_from < s[0] <= t_to and len(s) > 3)
def describe(w):
    if not w:
        return "n/a"
    return f"median {w[len(w) // 2]:.1f} ms, worst {w[-1]:.1f} ms"
if before > 0:
    print(f"trainer rows/s before   {before:12.0f}   (4 s before the plan)")
    print(f"trainer rows/s during   {during:12.0f}   ({during/before:.2f} of before)")
    print(f"slowest step per 100 ms before: {describe(slowest(t0 - 4000, t0))}")
    print(f"slowest step per 100 ms during: {describe(slowest(t0, t1))}")
if after > 0:
    print(f"trainer rows/s after    {after:12.0f}   ({after/before:.2f} of before; 4 s after the plan, 3 nodes)")
PY
