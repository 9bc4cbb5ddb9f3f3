#!/usr/bin/env bash
# A/B of two builds of strata on workload W1: each run starts a fresh `strata-server dev` of
# one build and drives it with that build's `strata-bench`; runs alternate A, B, B, A, ... so
# drift of the machine falls on both sides. Prints every run, the medians, and B ÷ A.
#
# usage: benches/ab.sh --a DIR_A --b DIR_B [--a-server "FLAGS"] [--b-server "FLAGS"]
#                      [--runs N] [strata-bench flags...]
#   DIR_x holds the release binaries strata-server and strata-bench of build x, e.g.
#   benches/ab.sh --a /tmp/base/target/release --b target/release --runs 4 --duration 20 --warmup 5
#   --x-server adds flags to side x's `strata-server dev` (one build, two settings), and
#   --x-bench to its `strata-bench` (e.g. the TLS files of an mTLS side):
#   benches/ab.sh --a target/release --b target/release --b-server "--wal" --duration 20
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

A= B= RUNS=4 A_SERVER= B_SERVER= A_BENCH= B_BENCH=
while [[ $# -gt 0 ]]; do
    case "$1" in
    --a) A=${2:?--a needs a directory}; shift 2 ;;
    --b) B=${2:?--b needs a directory}; shift 2 ;;
    --a-server) A_SERVER=${2?--a-server needs flags}; shift 2 ;;
    --b-server) B_SERVER=${2?--b-server needs flags}; shift 2 ;;
    --a-bench) A_BENCH=${2?--a-bench needs flags}; shift 2 ;;
    --b-bench) B_BENCH=${2?--b-bench needs flags}; shift 2 ;;
    --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
    *) break ;;
    esac
done
FLAGS=("$@")
for dir in "$A" "$B"; do
    [[ -n "$dir" && -x "$dir/strata-server" && -x "$dir/strata-bench" ]] ||
        { log "--a and --b must name directories with strata-server and strata-bench"; exit 2; }
done

TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# run_once LABEL DIR SERVER_FLAGS [BENCH_FLAGS]: one W1 run against a fresh dev server of the
# build in DIR.
run_once() {
    local label=$1 dir=$2 port
    local -a extra bench_extra
    read -r -a extra <<<"$3"
    read -r -a bench_extra <<<"${4:-}"
    port=$(free_port)
    rm -rf "$TMP/data"
    "$dir/strata-server" dev --listen "127.0.0.1:$port" --data-dir "$TMP/data" "${extra[@]}" \
        >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    "$dir/strata-bench" --coordinator "127.0.0.1:$port" "${bench_extra[@]}" "${FLAGS[@]}" --json >"$TMP/out" 2>"$TMP/err" ||
        { cat "$TMP/err" "$TMP/server.log" >&2; exit 1; }
    kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    tail -n 1 "$TMP/out" >>"$TMP/$label.jsonl"
    log "$label: $(tail -n 1 "$TMP/out" | grep -oE '"(steps_per_s|p99_ms)":[0-9.eE+-]+' | tr '\n' ' ')"
}

for run in $(seq 1 "$RUNS"); do
    log "run $run/$RUNS"
    if ((run % 2)); then
        run_once a "$A" "$A_SERVER" "$A_BENCH"; run_once b "$B" "$B_SERVER" "$B_BENCH"
    else
        run_once b "$B" "$B_SERVER" "$B_BENCH"; run_once a "$A" "$A_SERVER" "$A_BENCH"
    fi
done

field() { sed -E "s/.*\"$2\":([-0-9.eE+]+).*/\1/" "$1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo
echo "W1 A/B, $RUNS fresh-server runs each, alternated ($(nproc) cores, $(date -u +%Y-%m-%d)); flags: ${FLAGS[*]:-(defaults)}"
echo "A: $A ${A_SERVER} ${A_BENCH}"
echo "B: $B ${B_SERVER} ${B_BENCH}"
printf '%-6s %-40s %10s %10s\n' build "steps/s per run" median p99_ms
for x in a b; do
    printf '%-6s %-40s %10.1f %10.2f\n' "$x" "$(field "$TMP/$x.jsonl" steps_per_s | awk '{ printf "%.0f ", $1 }')" \
        "$(field "$TMP/$x.jsonl" steps_per_s | median)" "$(field "$TMP/$x.jsonl" p99_ms | median)"
done
awk -v a="$(field "$TMP/a.jsonl" steps_per_s | median)" -v b="$(field "$TMP/b.jsonl" steps_per_s | median)" \
    -v pa="$(field "$TMP/a.jsonl" p99_ms | median)" -v pb="$(field "$TMP/b.jsonl" p99_ms | median)" \
    'BEGIN { printf "B/A: steps/s %.3f, p99 %.3f\n", b / a, pb / pa }'
