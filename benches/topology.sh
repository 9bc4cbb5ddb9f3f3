#!/usr/bin/env bash
# Two racks on one machine: W1 steps/s before and after `strata rebalance --objective
# topology --apply`, with trainers in rack r1 and the link between the racks rate-limited.
#
# The script makes its own network namespace. Inside it, rack r1 is the loopback range
# 127.0.1.0/24 and rack r2 127.0.2.0/24; every connection a process opens without binding
# leaves from 127.0.1.1 (a source route on lo), so the trainers, the coordinator and the
# CLI sit in r1. tc on lo gives traffic between the two ranges an htb class of
# --cross-rate (default 200mbit) and everything else one of 40gbit. A coordinator and two
# shard servers per rack run there (labels zone=z1,rack=rN,host=hN); strata-bench runs W1
# labelled zone=z1,rack=r1, then the topology plan is applied, then W1 runs again on a new
# table (the bench drops and creates it; the shard layout stays). Everything runs on
# 127.0.0.0/8 inside the namespace, bounded in time, and is removed at the end. Without
# the rights to make a namespace it says so and exits 0 having measured nothing.
#
# usage: benches/topology.sh [--bin DIR] [--cross-rate RATE] [--max-imbalance X] [--runs N]
#                            [strata-bench flags...]
#   DIR holds release binaries strata-server, strata and strata-bench (default target/release)
#   e.g. benches/topology.sh --duration 20 --warmup 5
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

BIN="$ROOT/target/release" CROSS_RATE=200mbit MAX_IMBALANCE=1.5 RUNS=1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --bin) BIN=${2:?--bin needs a directory}; shift 2 ;;
    --cross-rate) CROSS_RATE=${2:?--cross-rate needs a rate}; shift 2 ;;
    --max-imbalance) MAX_IMBALANCE=${2:?--max-imbalance needs a number}; shift 2 ;;
    --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
    *) break ;;
    esac
done
FLAGS=("$@")
for b in strata-server strata strata-bench; do
    [[ -x "$BIN/$b" ]] || { log "$BIN/$b not found: cargo build --release --workspace --bins"; exit 2; }
done

NS="strata-topo-$$"
if ! ip netns add "$NS" 2>/dev/null; then
    log "cannot make a network namespace here (ip netns add needs CAP_SYS_ADMIN): measured nothing"
    exit 0
fi
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
in_ns() { ip netns exec "$NS" "$@"; }

in_ns ip link set lo up
in_ns ip route replace local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.1.1 table local
in_ns tc qdisc add dev lo root handle 1: htb default 10
in_ns tc class add dev lo parent 1: classid 1:10 htb rate 40gbit quantum 200000
in_ns tc class add dev lo parent 1: classid 1:20 htb rate "$CROSS_RATE" quantum 60000
in_ns tc filter add dev lo parent 1: protocol ip prio 1 u32 \
    match ip src 127.0.1.0/24 match ip dst 127.0.2.0/24 flowid 1:20
in_ns tc filter add dev lo parent 1: protocol ip prio 1 u32 \
    match ip src 127.0.2.0/24 match ip dst 127.0.1.0/24 flowid 1:20

COORD=127.0.1.1:7070
strata() { in_ns "$BIN/strata" --coordinator "$COORD" "$@"; }

# wait_for WHAT SECONDS CMD...: runs CMD every 0.2 s until it succeeds (bounded).
wait_for() {
    local what=$1 secs=$2
    shift 2
    for _ in $(seq 1 $((secs * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log "timed out waiting for $what"
    cat "$TMP"/*.log >&2 || true
    exit 1
}

nodes_ready() {
    strata status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
up = [n for n in s["nodes"] if n["state"] == "up" and n["shards"] > 0 and n["applied_epoch"] == s["epoch"]]
sys.exit(0 if len(up) == 4 else 1)'
}

# One cluster per run: a fresh coordinator and four fresh shard servers (started with
# `ip netns exec` itself, not the in_ns function, so $! is the server's pid).
start_cluster() {
    local run=$1
    rm -rf "$TMP/data"
    ip netns exec "$NS" "$BIN/strata-server" coordinator --listen "$COORD" --data-dir "$TMP/data/c" --shards 8 \
        >"$TMP/coordinator.log" 2>&1 &
    PIDS+=($!)
    wait_for "the coordinator" 30 strata status --json
    local i=0 rack addr
    for addr in 127.0.1.2 127.0.1.3 127.0.2.2 127.0.2.3; do
        rack=r${addr:6:1}
        ip netns exec "$NS" "$BIN/strata-server" shard --coordinator "$COORD" --listen "$addr:7071" \
            --data-dir "$TMP/data/s$i" --labels "zone=z1,rack=$rack,host=h$i" \
            --traffic-window 30s --memory-reserve 64MiB >"$TMP/shard-$i.log" 2>&1 &
        PIDS+=($!)
        i=$((i + 1))
    done
    wait_for "four shard servers (run $run)" 60 nodes_ready
}

stop_cluster() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

# bench LABEL: one W1 run from rack r1; prints steps/s.
bench() {
    in_ns env STRATA_LABELS=zone=z1,rack=r1 "$BIN/strata-bench" --coordinator "$COORD" \
        "${FLAGS[@]}" --json >"$TMP/$1.out" 2>"$TMP/$1.err" ||
        { cat "$TMP/$1.err" "$TMP"/*.log >&2; exit 1; }
    tail -n 1 "$TMP/$1.out" | sed -E 's/.*"steps_per_s":([-0-9.eE+]+).*/\1/'
}

echo "W1 from rack r1, two racks joined by $CROSS_RATE ($(nproc) cores, $(date -u +%Y-%m-%d)); flags: ${FLAGS[*]:-(defaults)}"
printf '%-4s %12s %12s %8s %s\n' run before after ratio "predicted cross-rack MB/s before -> after"
for run in $(seq 1 "$RUNS"); do
    start_cluster "$run"
    before=$(bench "before-$run")
    plan=$(strata rebalance --objective topology --max-imbalance "$MAX_IMBALANCE" --json)
    predicted=$(echo "$plan" | python3 -c '
import json, sys
p = json.loads(sys.stdin.read().strip().splitlines()[-1])["predicted"]["cross_rack_bytes_per_s"]
print("%.1f -> %.1f" % (p["before"] / 1e6, p["after"] / 1e6))')
    timeout 600 ip netns exec "$NS" "$BIN/strata" --coordinator "$COORD" rebalance \
        --objective topology --max-imbalance "$MAX_IMBALANCE" --apply --yes >"$TMP/apply-$run.log" 2>&1 ||
        { cat "$TMP/apply-$run.log" >&2; exit 1; }
    after=$(bench "after-$run")
    printf '%-4s %12.1f %12.1f %8.2f %s\n' "$run" "$before" "$after" \
        "$(awk -v a="$after" -v b="$before" 'BEGIN { print a / b }')" "$predicted"
    stop_cluster
done
