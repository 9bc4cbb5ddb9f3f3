#!/usr/bin/env bash
# Compare strata (networked), strata in process and Redis (TFRA-style) on workload W1.
#
# usage: benches/compare.sh [--runs N] [--memory-reserve SIZE] [strata-bench flags...]
#   e.g. benches/compare.sh --runs 3 --duration 20 --warmup 5
# --memory-reserve SIZE gives strata's row memory reserve to both strata targets (the server's
# `--memory-reserve`, the in-process bench's `--memory-reserve`), faulted in before any run.
# Starts a strata-server dev and a redis-server (persistence off) on free loopback ports,
# runs the three targets interleaved N times (default 3) with the same flags, stops what it
# started, and prints the medians with the ratios strata/redis and strata/inproc.
# Binaries: ${CARGO_TARGET_DIR:-target}/release/{strata-server,strata-bench} (built if missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
BIN=$TARGET_DIR/release

RUNS=3
RESERVE=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
    --memory-reserve) RESERVE=(--memory-reserve "${2:?--memory-reserve needs a size}"); shift 2 ;;
    *) break ;;
    esac
done
FLAGS=("$@")

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

if [[ ! -x "$BIN/strata-server" || ! -x "$BIN/strata-bench" ]]; then
    log "building release binaries into $BIN ..."
    (cd "$ROOT" && cargo build --release -p strata-server --bin strata-server -p strata-bench --bin strata-bench)
fi

if ! command -v redis-server >/dev/null; then
    log "installing redis-server ..."
    SUDO=; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get install -y redis-server >/dev/null 2>&1 ||
        { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y redis-server >/dev/null; }
fi

wait_port() {
    local port=$1 what=$2
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$what did not open 127.0.0.1:$port"
    return 1
}

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

SPORT=$(free_port)
# Info logs: the reserve's readiness is read from them.
RUST_LOG=info "$BIN/strata-server" dev --listen "127.0.0.1:$SPORT" --data-dir "$TMP/strata" "${RESERVE[@]}" \
    >"$TMP/strata.log" 2>&1 &
PIDS+=($!)
RPORT=$(free_port)
while [[ "$RPORT" == "$SPORT" ]]; do RPORT=$(free_port); done
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$SPORT" strata-server
wait_port "$RPORT" redis-server
if [[ ${#RESERVE[@]} -gt 0 ]]; then
    for _ in $(seq 1 600); do grep -q "reserve faulted in" "$TMP/strata.log" && break; sleep 0.1; done
    log "strata-server: $(grep -o 'row memory reserve faulted in.*' "$TMP/strata.log" | sed 's/\x1b\[[0-9;]*m//g' || echo 'reserve not ready after 60 s')"
fi
log "strata-server dev on 127.0.0.1:$SPORT, redis-server on 127.0.0.1:$RPORT; $RUNS runs each, flags: ${FLAGS[*]:-(W1 defaults)}"

TARGETS=(strata inproc "redis://127.0.0.1:$RPORT")
NAMES=(strata inproc redis)
for run in $(seq 1 "$RUNS"); do
    for i in "${!TARGETS[@]}"; do
        log "run $run/$RUNS: ${NAMES[$i]}"
        EXTRA=()
        [[ ${NAMES[$i]} == inproc ]] && EXTRA=("${RESERVE[@]}")
        "$BIN/strata-bench" --coordinator "127.0.0.1:$SPORT" --target "${TARGETS[$i]}" "${FLAGS[@]}" "${EXTRA[@]}" --json \
            >"$TMP/out" 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
        tail -n 1 "$TMP/out" >>"$TMP/${NAMES[$i]}.jsonl"
    done
done

# field FILE NAME: the numbers of one JSON field, one per line.
field() { sed -E "s/.*\"$2\":([-0-9.eE+]+).*/\1/" "$1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A M
for n in "${NAMES[@]}"; do
    for f in steps_per_s pull_rows_per_s p50_ms p99_ms bytes_per_s; do
        M[$n.$f]=$(field "$TMP/$n.jsonl" "$f" | median)
    done
done

echo
echo "W1 medians of $RUNS interleaved runs ($(nproc) cores, $(date -u +%Y-%m-%d)); flags: ${FLAGS[*]:-(defaults)}${RESERVE[*]:+; strata ${RESERVE[*]}}"
printf '%-8s %12s %14s %10s %10s %12s\n' target steps/s rows/s p50_ms p99_ms MB/s
for n in "${NAMES[@]}"; do
    printf '%-8s %12.1f %14.0f %10.3f %10.3f %12.1f\n' "$n" "${M[$n.steps_per_s]}" "${M[$n.pull_rows_per_s]}" \
        "${M[$n.p50_ms]}" "${M[$n.p99_ms]}" "$(awk -v b="${M[$n.bytes_per_s]}" 'BEGIN { print b / 1e6 }')"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
echo
printf '%-16s %10s %10s %10s\n' ratio steps/s rows/s p99
printf '%-16s %10s %10s %10s\n' strata/redis "$(ratio "${M[strata.steps_per_s]}" "${M[redis.steps_per_s]}")" \
    "$(ratio "${M[strata.pull_rows_per_s]}" "${M[redis.pull_rows_per_s]}")" "$(ratio "${M[strata.p99_ms]}" "${M[redis.p99_ms]}")"
printf '%-16s %10s %10s %10s\n' strata/inproc "$(ratio "${M[strata.steps_per_s]}" "${M[inproc.steps_per_s]}")" \
    "$(ratio "${M[strata.pull_rows_per_s]}" "${M[inproc.pull_rows_per_s]}")" "$(ratio "${M[strata.p99_ms]}" "${M[inproc.p99_ms]}")"

# Machine CPU per step over each measured window (server and bench together), medians.
declare -A C
for n in strata inproc; do
    for f in cpu_user_ms_per_step cpu_kernel_ms_per_step; do
        C[$n.$f]=$(grep -o "\"$f\":[-0-9.eE+]*" "$TMP/$n.jsonl" | cut -d: -f2 | median)
    done
done
echo
printf '%-8s %14s %16s %14s\n' target "user ms/step" "kernel ms/step" "total ms/step"
for n in strata inproc; do
    awk -v n="$n" -v u="${C[$n.cpu_user_ms_per_step]}" -v k="${C[$n.cpu_kernel_ms_per_step]}" \
        'BEGIN { if (u + k > 0) printf "%-8s %14.3f %16.3f %14.3f\n", n, u, k, u + k; else printf "%-8s %14s\n", n, "n/a" }'
done

# cpu_busy_s: the machine's busy CPU seconds so far (user, nice, system, irq, softirq).
cpu_busy_s() {
    awk -v hz="$(getconf CLK_TCK)" '/^cpu / { print ($2 + $3 + $4 + $7 + $8) / hz; exit }' /proc/stat
}

# Loopback TCP bandwidth in the same run (one stream, 5 s), and strata's row payload as a
# fraction of it: how close to the wire the server runs. The machine's CPU during iperf3
# gives loopback TCP's cost per byte; with the in-process step cost it bounds
# networked ÷ in-process even for a server with no user-space network cost at all.
if command -v iperf3 >/dev/null; then
    IPORT=$(free_port)
    iperf3 -s -1 -B 127.0.0.1 -p "$IPORT" >/dev/null 2>&1 &
    IPERF_PID=$!
    sleep 0.5
    CPU0=$(cpu_busy_s)
    IPERF_JSON=$(iperf3 -c 127.0.0.1 -p "$IPORT" -t 5 -J 2>/dev/null || true)
    CPU1=$(cpu_busy_s)
    wait "$IPERF_PID" 2>/dev/null || true
    read -r BPS IBYTES < <(python3 -c 'import json,sys
try:
    e = json.loads(sys.stdin.read())["end"]["sum_received"]; print(e["bits_per_second"], e["bytes"])
except Exception:
    print(0, 0)' <<<"$IPERF_JSON")
    echo
    awk -v bps="$BPS" -v s="${M[strata.bytes_per_s]}" 'BEGIN {
        if (bps > 0) printf "loopback TCP (iperf3, 1 stream): %.2f GB/s; strata row payload %.2f GB/s = %.0f%% of it\n", bps / 8e9, s / 1e9, 100 * s / (bps / 8);
        else print "iperf3 measurement failed" }'
    awk -v b="$IBYTES" -v c0="$CPU0" -v c1="$CPU1" -v payload="${M[strata.bytes_per_s]}" -v sps="${M[strata.steps_per_s]}" \
        -v iu="${C[inproc.cpu_user_ms_per_step]}" -v ik="${C[inproc.cpu_kernel_ms_per_step]}" 'BEGIN {
        if (b <= 0 || sps <= 0 || iu + ik <= 0) exit
        cps = (c1 - c0) / (b / 1e9)
        tcp = payload / sps / 1e9 * cps * 1000
        inp = iu + ik
        printf "loopback TCP costs %.3f core-s per GB (machine CPU during iperf3); a W1 step moves %.2f MB of rows = %.3f ms of TCP CPU\n", cps, payload / sps / 1e6, tcp
        printf "bound on networked/inproc with no user-space network cost: %.3f / (%.3f + %.3f) = %.2f\n", inp, inp, tcp, inp / (inp + tcp) }'
else
    echo "iperf3 not installed: no loopback bandwidth figure (scripts/install-deps.sh installs it)"
fi
