#!/usr/bin/env bash
# Starts, stops and inspects a local strata cluster of separate processes: one coordinator
# and N shard servers on 127.0.0.1, each with its own data dir and log under the cluster
# dir. The shard process named shard-N (pid file, data dir, log) registers as node id
# shard-N, so `strata node drain shard-2` and `local-cluster.sh stop 2` mean the same server.
#
#   deploy/local-cluster.sh start 3     # coordinator on :7070, shards shard-1.. on :7101..
#   deploy/local-cluster.sh add         # one more shard server (then: strata rebalance --apply)
#   deploy/local-cluster.sh status      # each process, its node id and address, `strata status`
#   deploy/local-cluster.sh stop 2      # drain first: strata node drain shard-2 --yes
#   deploy/local-cluster.sh stop        # every process
#
# Environment (see `deploy/local-cluster.sh --help`):
#   STRATA_CLUSTER_DIR        cluster dir (default ./strata-local-cluster)
#   STRATA_COORDINATOR_PORT   coordinator gRPC port (default 7070; 0: a free port)
#   STRATA_SHARD_BASE_PORT    shard-N listens on base+N (default 7100; 0: free ports)
#   STRATA_METRICS_BASE_PORT  coordinator metrics on base, shard-N on base+N (default 9100;
#                             0: free ports)
#   STRATA_STATUS_PAGE_PORT   the coordinator's status page (default 8080; 0: a free port)
#   STRATA_BIN                dir of strata-server and strata (default target/debug, then
#                             target/release, then PATH)
set -euo pipefail

usage() {
    cat <<EOF
usage: $0 start [N] | add | status | stop [N|shard-N] | help

  start [N]          a coordinator and N shard servers (default 3); waits until all are up
  add                one more shard server, numbered after the highest shard-N so far
  status             each process with its node id and address, then \`strata status\`
  stop               every process (SIGTERM: each writes its exit checkpoint; waits up to 120 s)
  stop N | shard-N   shard server N only; move its shards away first with
                     \`strata node drain shard-N --yes\`

Shard server shard-N registers as node id shard-N, with data dir \$STRATA_CLUSTER_DIR/shard-N,
log \$STRATA_CLUSTER_DIR/logs/shard-N.log and labels zone=local,rack=r(N-1 mod 2),host=hN.
The coordinator's address is kept in \$STRATA_CLUSTER_DIR/coordinator.address.

Environment:
  STRATA_CLUSTER_DIR        cluster dir (default: ./strata-local-cluster)
  STRATA_COORDINATOR_PORT   coordinator gRPC port on 127.0.0.1 (default 7070; 0: a free port)
  STRATA_SHARD_BASE_PORT    shard-N listens on base+N (default 7100; 0: each a free port)
  STRATA_METRICS_BASE_PORT  /metrics: coordinator on base, shard-N on base+N (default 9100;
                            0: each a free port; the logs name the bound addresses)
  STRATA_STATUS_PAGE_PORT   the coordinator's status page, http://127.0.0.1:PORT/
                            (default 8080; 0: a free port, named in the coordinator's log)
  STRATA_BIN                dir holding strata-server and strata (default: target/debug,
                            then target/release, then PATH)
EOF
}

cmd="${1:-}"
dir="${STRATA_CLUSTER_DIR:-$PWD/strata-local-cluster}"
coord_port="${STRATA_COORDINATOR_PORT:-7070}"
shard_base="${STRATA_SHARD_BASE_PORT:-7100}"
metrics_base="${STRATA_METRICS_BASE_PORT:-9100}"
page_port="${STRATA_STATUS_PAGE_PORT:-8080}"

for v in "$coord_port" "$shard_base" "$metrics_base" "$page_port"; do
    case "$v" in
    '' | *[!0-9]*) echo "port $v is not a number (STRATA_*_PORT)" >&2; exit 2 ;;
    esac
done

find_bin() {
    local name="$1"
    for d in "${STRATA_BIN:-}" target/debug target/release; do
        if [ -n "$d" ] && [ -x "$d/$name" ]; then echo "$d/$name"; return; fi
    done
    command -v "$name" || { echo "cannot find $name: build it (cargo build --workspace --bins) or set STRATA_BIN" >&2; exit 1; }
}

# Whether the process of a pid file runs (one that exited but is not reaped yet does not).
alive() {
    local pid stat
    [ -f "$1" ] || return 1
    pid="$(cat "$1")"
    kill -0 "$pid" 2>/dev/null || return 1
    if [ -r "/proc/$pid/stat" ]; then
        stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
        stat="${stat##*) }"
        [ "${stat%% *}" != Z ] || return 1
    fi
}

# Port N of a base: base+N, or 0 (a free port) when the base is 0.
port_of() { if [ "$1" -eq 0 ]; then echo 0; else echo $(($1 + $2)); fi; }

# The address a server's log says it listens on, or nothing.
logged_address() { # log, role
    local line
    line="$(grep -m1 "^strata-server $2 listening on " "$1" 2>/dev/null || true)"
    echo "${line##* }"
}

# The address a server's log says it listens on, waiting up to 20 s for it.
listening_address() { # log, role
    local address
    for _ in $(seq 1 200); do
        address="$(logged_address "$1" "$2")"
        if [ -n "$address" ]; then echo "$address"; return 0; fi
        sleep 0.1
    done
    echo "strata-server $2 did not report its address within 20 s; see $1" >&2
    return 1
}

coordinator_address() {
    if [ -f "$dir/coordinator.address" ]; then
        cat "$dir/coordinator.address"
    else
        echo "127.0.0.1:${coord_port}"
    fi
}

start_one() { # name, log, pidfile, command...
    local name="$1" log="$2" pidfile="$3"; shift 3
    if alive "$pidfile"; then echo "$name already running (pid $(cat "$pidfile"))"; return; fi
    : >"$log"
    nohup "$@" >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    echo "$name started (pid $!), log $log"
}

start_shard() { # server binary, index
    local server="$1" i="$2" name="shard-$2"
    mkdir -p "$dir/$name"
    # --node-id applies to a new data dir only: one kept from before says otherwise.
    if [ -f "$dir/$name/node-id" ] && [ "$(cat "$dir/$name/node-id")" != "$name" ]; then
        echo "warning: $dir/$name holds node id $(cat "$dir/$name/node-id"), not $name: it keeps that id (start in a new STRATA_CLUSTER_DIR for matching names)" >&2
    fi
    start_one "$name" "$dir/logs/$name.log" "$dir/pids/$name.pid" \
        "$server" shard --coordinator "$(coordinator_address)" \
        --listen "127.0.0.1:$(port_of "$shard_base" "$i")" --data-dir "$dir/$name" \
        --node-id "$name" \
        --labels "zone=local,rack=r$(( (i - 1) % 2 )),host=h$i" \
        --metrics-listen "127.0.0.1:$(port_of "$metrics_base" "$i")"
}

# The number after the highest shard-N data dir: a new shard server never reuses a data dir.
next_shard() {
    local d n max=0
    for d in "$dir"/shard-*; do
        n="${d##*/shard-}"
        case "$n" in '' | *[!0-9]*) continue ;; esac
        if [ "$n" -gt "$max" ]; then max="$n"; fi
    done
    echo $((max + 1))
}

# The addresses of the nodes the coordinator sees up, one a line (from `status -o json`,
# whose node objects list "address" first and "state" later).
up_addresses() { # strata binary
    "$1" --coordinator "$(coordinator_address)" status -o json 2>/dev/null | tr ',' '\n' \
        | awk 'match($0, /"address":"[^"]*"/) { a = substr($0, RSTART + 11, RLENGTH - 12) }
               /"state":"up"/ { if (a != "") print a; a = "" }'
}

wait_ready() { # shard names; bounded: up to 20 s for each to run and be up at its address
    local strata up name address waiting
    strata="$(find_bin strata)"
    for _ in $(seq 1 100); do
        up="$(up_addresses "$strata")"
        waiting=0
        for name in "$@"; do
            if ! alive "$dir/pids/$name.pid"; then
                echo "$name exited; its log $dir/logs/$name.log ends with:" >&2
                tail -n 5 "$dir/logs/$name.log" >&2
                return 1
            fi
            address="$(logged_address "$dir/logs/$name.log" shard)"
            if [ -z "$address" ] || ! grep -qxF "$address" <<<"$up"; then waiting=1; fi
        done
        if [ "$waiting" -eq 0 ]; then
            echo "cluster ready: $* up (coordinator $(coordinator_address))"
            return 0
        fi
        sleep 0.2
    done
    echo "cluster not ready after 20 s; see the logs in $dir" >&2
    return 1
}

stop_pidfiles() { # pidfile...
    # SIGTERM: each server drains its requests and writes a checkpoint of what changed
    # before it exits; wait for that (bounded), so a start right after finds the data dirs
    # free.
    local pidfile failed=0
    for pidfile in "$@"; do
        if alive "$pidfile"; then kill "$(cat "$pidfile")"; fi
    done
    for pidfile in "$@"; do
        for _ in $(seq 1 1200); do
            alive "$pidfile" || break
            sleep 0.1
        done
        if alive "$pidfile"; then
            echo "$(basename "$pidfile" .pid) still running after 120 s (pid $(cat "$pidfile"))" >&2
            failed=1
        else
            echo "stopped $(basename "$pidfile" .pid)"
            rm -f "$pidfile"
        fi
    done
    return "$failed"
}

case "$cmd" in
start)
    count="${2:-3}"
    case "$count" in '' | *[!0-9]* | 0) echo "start takes a number of shard servers >= 1, not $count" >&2; exit 2 ;; esac
    server="$(find_bin strata-server)"
    mkdir -p "$dir/coordinator" "$dir/logs" "$dir/pids"
    if ! alive "$dir/pids/coordinator.pid"; then
        start_one coordinator "$dir/logs/coordinator.log" "$dir/pids/coordinator.pid" \
            "$server" coordinator --listen "127.0.0.1:${coord_port}" --data-dir "$dir/coordinator" \
            --metrics-listen "127.0.0.1:${metrics_base}" --http-listen "127.0.0.1:${page_port}"
        address="$(listening_address "$dir/logs/coordinator.log" coordinator)"
        echo "$address" >"$dir/coordinator.address"
        page="$(grep -m1 "^status page listening on " "$dir/logs/coordinator.log" 2>/dev/null || true)"
        [ -z "$page" ] || echo "status page: http://${page##* }/"
    fi
    names=()
    for i in $(seq 1 "$count"); do
        start_shard "$server" "$i"
        names+=("shard-$i")
    done
    wait_ready "${names[@]}"
    ;;
add)
    server="$(find_bin strata-server)"
    mkdir -p "$dir/logs" "$dir/pids"
    i="$(next_shard)"
    start_shard "$server" "$i"
    wait_ready "shard-$i"
    echo "shard-$i joined; move shards to it with: strata --coordinator $(coordinator_address) rebalance --apply"
    ;;
stop)
    target="${2:-}"
    if [ -z "$target" ]; then
        set -- "$dir"/pids/*.pid
        [ -e "$1" ] || { echo "nothing to stop in $dir"; exit 0; }
        stop_pidfiles "$@"
        rm -f "$dir/coordinator.address"
    else
        case "$target" in
        shard-*) name="$target" ;;
        *) name="shard-$target" ;;
        esac
        case "${name#shard-}" in '' | *[!0-9]*) echo "stop takes N or shard-N, not $target" >&2; exit 2 ;; esac
        pidfile="$dir/pids/$name.pid"
        [ -e "$pidfile" ] || { echo "no shard server $name in $dir" >&2; exit 1; }
        stop_pidfiles "$pidfile"
    fi
    ;;
status)
    for pidfile in "$dir"/pids/*.pid; do
        [ -e "$pidfile" ] || continue
        name="$(basename "$pidfile" .pid)"
        role=shard; [ "$name" = coordinator ] && role=coordinator
        address="$(logged_address "$dir/logs/$name.log" "$role")"
        if alive "$pidfile"; then state="running (pid $(cat "$pidfile"))"; else state="not running"; fi
        if [ "$role" = shard ]; then
            echo "$name: $state, node id $name, address ${address:-?}"
        else
            echo "$name: $state, address ${address:-?}"
        fi
    done
    "$(find_bin strata)" --coordinator "$(coordinator_address)" status || true
    ;;
help | -h | --help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
