#!/usr/bin/env bash
# Starts, stops and inspects a local strata cluster of separate processes: one coordinator
# and N shard servers on 127.0.0.1, each with its own data dir and log under $STRATA_CLUSTER_DIR
# (default ./strata-local-cluster).
#
#   deploy/local-cluster.sh start 3     # coordinator on :7070, shards on :7101.. (metrics :9100..),
#                                       # status page on http://127.0.0.1:8080/
#   deploy/local-cluster.sh add         # one more shard server (then: strata rebalance --apply)
#   deploy/local-cluster.sh status      # process state and `strata status`
#   deploy/local-cluster.sh stop
#
# Binaries: $STRATA_BIN (default target/debug, then target/release, then PATH).
set -euo pipefail

cmd="${1:-}"
count="${2:-3}"
dir="${STRATA_CLUSTER_DIR:-$PWD/strata-local-cluster}"
coord_port="${STRATA_COORDINATOR_PORT:-7070}"
shard_base="${STRATA_SHARD_BASE_PORT:-7100}"
metrics_base="${STRATA_METRICS_BASE_PORT:-9100}"
page_port="${STRATA_STATUS_PAGE_PORT:-8080}"
coordinator="127.0.0.1:${coord_port}"

find_bin() {
    local name="$1"
    for d in "${STRATA_BIN:-}" target/debug target/release; do
        if [ -n "$d" ] && [ -x "$d/$name" ]; then echo "$d/$name"; return; fi
    done
    command -v "$name" || { echo "cannot find $name: build it (cargo build --workspace --bins) or set STRATA_BIN" >&2; exit 1; }
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_one() { # name, log, pidfile, command...
    local name="$1" log="$2" pidfile="$3"; shift 3
    if alive "$pidfile"; then echo "$name already running (pid $(cat "$pidfile"))"; return; fi
    nohup "$@" >"$log" 2>&1 &
    echo $! >"$pidfile"
    echo "$name started (pid $!), log $log"
}

start_shard() { # server binary, index
    local server="$1" i="$2"
    mkdir -p "$dir/shard-$i"
    start_one "shard-$i" "$dir/logs/shard-$i.log" "$dir/pids/shard-$i.pid" \
        "$server" shard --coordinator "$coordinator" \
        --listen "127.0.0.1:$((shard_base + i))" --data-dir "$dir/shard-$i" \
        --labels "zone=local,rack=r$(( (i - 1) % 2 )),host=h$i" \
        --metrics-listen "127.0.0.1:$((metrics_base + i))"
}

wait_ready() { # bounded: up to 20 s for the coordinator to see every node
    local strata; strata="$(find_bin strata)"
    for _ in $(seq 1 100); do
        if "$strata" --coordinator "$coordinator" status --json 2>/dev/null \
            | grep -o '"state":"up"' | wc -l | grep -qx "$count"; then
            echo "cluster ready: $count shard servers up"; return 0
        fi
        sleep 0.2
    done
    echo "cluster not ready after 20 s; see the logs in $dir" >&2
    return 1
}

case "$cmd" in
start)
    server="$(find_bin strata-server)"
    mkdir -p "$dir/coordinator" "$dir/logs" "$dir/pids"
    start_one coordinator "$dir/logs/coordinator.log" "$dir/pids/coordinator.pid" \
        "$server" coordinator --listen "$coordinator" --data-dir "$dir/coordinator" \
        --metrics-listen "127.0.0.1:${metrics_base}" --http-listen "127.0.0.1:${page_port}"
    for i in $(seq 1 "$count"); do
        start_shard "$server" "$i"
    done
    wait_ready
    echo "status page: http://127.0.0.1:${page_port}/"
    ;;
add)
    server="$(find_bin strata-server)"
    i=$(( $(ls "$dir"/pids/shard-*.pid 2>/dev/null | wc -l) + 1 ))
    start_shard "$server" "$i"
    count=$i
    wait_ready
    echo "shard-$i joined; move shards to it with: strata --coordinator $coordinator rebalance --apply"
    ;;
stop)
    # SIGTERM: each server drains its requests and writes a checkpoint of what changed
    # before it exits; wait for that (bounded), so a start right after finds the data dirs
    # free.
    for pidfile in "$dir"/pids/*.pid; do
        [ -e "$pidfile" ] || continue
        if alive "$pidfile"; then
            kill "$(cat "$pidfile")"
        fi
    done
    for pidfile in "$dir"/pids/*.pid; do
        [ -e "$pidfile" ] || continue
        for _ in $(seq 1 1200); do
            alive "$pidfile" || break
            sleep 0.1
        done
        if alive "$pidfile"; then
            echo "$(basename "$pidfile" .pid) still running after 120 s (pid $(cat "$pidfile"))" >&2
        else
            echo "stopped $(basename "$pidfile" .pid)"
            rm -f "$pidfile"
        fi
    done
    ;;
status)
    for pidfile in "$dir"/pids/*.pid; do
        [ -e "$pidfile" ] || continue
        name="$(basename "$pidfile" .pid)"
        if alive "$pidfile"; then echo "$name: running (pid $(cat "$pidfile"))"; else echo "$name: not running"; fi
    done
    "$(find_bin strata)" --coordinator "$coordinator" status || true
    ;;
*)
    echo "usage: $0 start [N] | add | stop | status" >&2
    exit 2
    ;;
esac
