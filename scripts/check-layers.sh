#!/usr/bin/env bash
# Checks the dependency rules of the server's layer crates (README: Architecture) with
# `cargo tree`: a forbidden edge fails with the path that brings it in.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
# crate  forbidden dependencies (normal edges, features of every kind)
check() {
    local crate=$1
    shift
    local tree failed=0
    tree=$(cargo tree -p "$crate" -e normal --all-features --prefix none --format '{p}' 2>/dev/null)
    for dep in "$@"; do
        if grep -qE "^$dep v" <<<"$tree"; then
            echo "FAIL: $crate depends on $dep:" >&2
            cargo tree -p "$crate" -e normal --all-features -i "$dep" >&2 || true
            status=1
            failed=1
        fi
    done
    if [ "$failed" -eq 0 ]; then
        echo "ok: $crate depends on none of $*"
    fi
}

check strata-storage tonic prost strata-proto strata-engine strata-cluster
check strata-engine tonic prost strata-proto strata-cluster
check strata-cluster tonic strata-engine strata-proto
exit "$status"
