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
# Each run line shows the 1-minute load average when it started, and the CPU the bench and
# the server used per step (their process CPU over the whole run, warm-up included, over
# steps/s x (warm-up + duration)). On a busy machine steps/s follow the CPU share each run
# gets (the Python bench has more threads: 4 trainers + 2 runtime workers); the CPU per step
# is the cost that bounds steps/s on a machine the run has to itself.
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

# timed CMD...: runs CMD (stdout to $TMP/out, stderr to $TMP/err) and writes the CPU seconds
# it used (user + system) to $TMP/cpu.
timed() {
    "$PYTHON" -c 'import resource, subprocess, sys
tmp = sys.argv[1]
with open(tmp + "/out", "w") as out, open(tmp + "/err", "w") as err:
    code = subprocess.call(sys.argv[2:], stdout=out, stderr=err)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(tmp + "/cpu", "w") as cpu:
    cpu.write("%.3f" % (r.ru_utime + r.ru_stime))
sys.exit(code)' "$TMP" "$@" || { cat "$TMP/err" >&2; return 1; }
}

# server_cpu: CPU seconds the running server has used.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$SERVER/stat"; }

# field NAME: that number field of the JSON summary in $TMP/out's last line.
field() { tail -n 1 "$TMP/out" | sed -E "s/.*\"$1\": ?([-0-9.eE+]+).*/\1/"; }

log "$RUNS rounds, flags: ${FLAGS[*]:-(W1 defaults)}; $(nproc) cores"
RATIOS=()
CPU_RATIOS=()
printf '%-6s %-7s %10s %9s %9s %13s %13s %s\n' round client steps/s p50_ms p99_ms \
    "bench ms/step" "server ms/st" "load (1 min)"
for run in $(seq 1 "$RUNS"); do
    declare -A SPS=() CPS=()
    for client in rust python; do
        start_server
        load=$(cut -d' ' -f1 /proc/loadavg)
        if [[ $client == rust ]]; then
            timed "$BIN/strata-bench" --coordinator "$ADDR" "${FLAGS[@]}" --json
        else
            timed "$PYTHON" -m strata.bench --coordinator "$ADDR" "${FLAGS[@]}" --json
        fi
        scpu=$(server_cpu)
        stop_server
        SPS[$client]=$(field steps_per_s)
        steps=$(awk -v r="${SPS[$client]}" -v d="$(field duration_s)" -v w="$(field warmup_s)" 'BEGIN { print r * (d + w) }')
        bms=$(awk -v c="$(cat "$TMP/cpu")" -v n="$steps" 'BEGIN { printf "%.3f", (n > 0 ? 1000 * c / n : 0) }')
        sms=$(awk -v c="$scpu" -v n="$steps" 'BEGIN { printf "%.3f", (n > 0 ? 1000 * c / n : 0) }')
        CPS[$client]=$(awk -v b="$bms" -v s="$sms" 'BEGIN { print b + s }')
        printf '%-6s %-7s %10.1f %9.2f %9.2f %13s %13s %s\n' "$run" "$client" "${SPS[$client]}" \
            "$(field p50_ms)" "$(field p99_ms)" "$bms" "$sms" "$load"
    done
    RATIOS+=("$(awk -v p="${SPS[python]}" -v r="${SPS[rust]}" 'BEGIN { printf "%.2f", p / r }')")
    CPU_RATIOS+=("$(awk -v p="${CPS[python]}" -v r="${CPS[rust]}" 'BEGIN { printf "%.2f", r / p }')")
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "python/rust steps/s per round: ${RATIOS[*]}; median $(printf '%s\n' "${RATIOS[@]}" | median)"
echo "rust/python CPU per step (bench + server) per round: ${CPU_RATIOS[*]}; median $(printf '%s\n' "${CPU_RATIOS[@]}" | median)"
