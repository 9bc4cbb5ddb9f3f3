# Shell helpers shared by the benchmark scripts (sourced, not run).

log() { printf '%s\n' "$*" >&2; }

# A loopback port nobody listens on (bash /dev/tcp connect fails).
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    log "no free port found"
    return 1
}
