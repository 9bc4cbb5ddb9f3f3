#!/usr/bin/env bash
# W1 through the Rust client (`strata-bench`) and through the Python package
# (`python -m strata.bench`), alternated, each run against a fresh `strata-server dev`:
# what the binding costs, as the ratio Python / Rust of steps/s in each round.
#
# usage: benches/python.sh [--runs N] [--python PATH] [W1 flags shared by both...]
#   e.g. benches/python.sh --runs 3 --duration 20 --warmup 5
# --python is the interpreter with the `strata` package installed (default: python3); build
# it with the release profile for figures: MATURIN_PEP517_ARGS="--profile release" pip install ./python
# Binaries: ${CARGO_TARGET_DIR:-target}/release/{strata-server,strata-bench} (built if missing).
# Each run line shows the 1-minute load average when it started: other work on the machine
# moves both numbers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
BIN=$TARGET_DIR/release

RUNS=3
PYTHON=python3
while [[ $# -gt 0 ]]; do
    case "$1" in
    --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
    --python) PYTHON=${2:?--python needs a path}; shift 2 ;;
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
"$PYTHON" -c 'import strata.bench' || { log "$PYTHON has no strata package (pip install ./python)"; exit 1; }

TMP=$(mktemp -d)
SERVER=
cleanup() {
    if [[ -n "$SERVER" ]]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# start_server: a fresh dev server on a free port with an empty data dir; sets SERVER, ADDR.
start_server() {
    local port
    port=$(free_port)
    rm -rf "$TMP/data"
    "$BIN/strata-server" dev --listen "127.0.0.1:$port" --data-dir "$TMP/data" >"$TMP/server.log" 2>&1 &
    SERVER=$!
    ADDR=127.0.0.1:$port
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "strata-server did not open $ADDR"
    return 1
}

stop_server() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=
}

# field NAME: that number field of the JSON summary in $TMP/out's last line.
field() { tail -n 1 "$TMP/out" | sed -E "s/.*\"$1\": ?([-0-9.eE+]+).*/\1/"; }

log "$RUNS rounds, flags: ${FLAGS[*]:-(W1 defaults)}; $(nproc) cores"
RATIOS=()
printf '%-6s %-7s %10s %9s %9s %s\n' round client steps/s p50_ms p99_ms "load (1 min)"
for run in $(seq 1 "$RUNS"); do
    declare -A SPS=()
    for client in rust python; do
        start_server
        load=$(cut -d' ' -f1 /proc/loadavg)
        if [[ $client == rust ]]; then
            "$BIN/strata-bench" --coordinator "$ADDR" "${FLAGS[@]}" --json >"$TMP/out" 2>"$TMP/err" ||
                { cat "$TMP/err" >&2; exit 1; }
        else
            "$PYTHON" -m strata.bench --coordinator "$ADDR" "${FLAGS[@]}" --json >"$TMP/out" 2>"$TMP/err" ||
                { cat "$TMP/err" >&2; exit 1; }
        fi
        stop_server
        SPS[$client]=$(field steps_per_s)
        printf '%-6s %-7s %10.1f %9.2f %9.2f %s\n' "$run" "$client" "${SPS[$client]}" "$(field p50_ms)" "$(field p99_ms)" "$load"
    done
    RATIOS+=("$(awk -v p="${SPS[python]}" -v r="${SPS[rust]}" 'BEGIN { printf "%.2f", p / r }')")
done
echo
echo "python/rust steps/s per round: ${RATIOS[*]}; median $(printf '%s\n' "${RATIOS[@]}" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
