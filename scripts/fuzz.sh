#!/usr/bin/env bash
# Coverage-guided fuzzing of strata's decoders: builds the libFuzzer targets of fuzz/ with
# the instrumentation cargo-fuzz uses (sanitizer coverage, AddressSanitizer, debug
# assertions), then runs each one for SECONDS over a copy of its seed corpus
# (fuzz/corpus/<target>/ and the kept crash inputs of fuzz/regressions/<target>/). Fails if
# a target crashes, trips an assertion, leaks, or hangs; the input that did it is printed
# (base64) and left under the printed directory.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 20)] [TARGET...]
#   scripts/fuzz.sh 600               # ten minutes each, to look for new crashes
#   scripts/fuzz.sh 60 wire_decode    # one target
# A crash found is fixed in the crate that owns the decoder and its input kept under
# fuzz/regressions/<target>/, which that crate's stable tests replay.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-20}
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

# Sanitizer flags need a nightly rustc; without the nightly toolchain, stable rustc is
# asked to accept them (RUSTC_BOOTSTRAP), which it does for these flags.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo=(cargo +nightly)
else
    echo "fuzz: no nightly toolchain; using stable rustc with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi

# An explicit --target keeps these flags off build scripts and proc macros (cargo-fuzz
# does the same).
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks -Zsanitizer=address"
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/fuzz}

start=$(date +%s)
# Not --locked: a dependency added to a project crate is resolved here too (the committed
# fuzz/Cargo.lock pins everything else).
"${cargo[@]}" build --release --manifest-path fuzz/Cargo.toml \
    --target "$triple" --bins
echo "fuzz: built in $(($(date +%s) - start)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
    bin="$CARGO_TARGET_DIR/$triple/release/$t"
    mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
    # Kept crash inputs are seeds too: each run starts by re-checking them.
    cp -r "fuzz/corpus/$t/." "$work/$t/corpus/"
    if [ -d "fuzz/regressions/$t" ]; then
        cp -r "fuzz/regressions/$t/." "$work/$t/corpus/"
    fi
    echo "== fuzz $t for ${secs}s ($(ls "$work/$t/corpus" | wc -l) seeds)"
    if ASAN_OPTIONS=detect_leaks=1 "$bin" "$work/$t/corpus" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" \
        >"$work/$t/log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^Done ' "$work/$t/log" || true
    else
        # The panic message or sanitizer report, without the long stack traces.
        grep -m1 -A3 'panicked at' "$work/$t/log" || true
        sed -n '/ERROR: AddressSanitizer/,/^SUMMARY/p' "$work/$t/log" | head -n 40
        grep -E '^(SUMMARY|MS:|artifact_prefix|==[0-9]+== ERROR)' "$work/$t/log" || true
        for a in "$work/$t/artifacts"/*; do
            [ -f "$a" ] || continue
            echo "fuzz: $t failed on $(basename "$a") (base64):"
            base64 -w 0 "$a"
            echo
        done
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    trap - EXIT
    echo "fuzz: FAILED: ${failed[*]} (inputs under $work/<target>/artifacts)"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each, no crash ($(($(date +%s) - start)) s in all)"
