#!/usr/bin/env bash
# Installs the system packages strata's tests and benchmarks use (Debian/Ubuntu), if missing:
# redis-server (the Redis comparison target), iperf3 (loopback bandwidth in benchmarks),
# etcd-server (the etcd metadata-store tests), protobuf-compiler (etcd-client's build) and
# shellcheck (CI lints deploy/local-cluster.sh with it); chromium (the status page test
# drives it headless); prometheus (its promtool checks the servers' /metrics text and the
# alert rules).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -eq 0 ]; then
    echo "system packages present"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing ${need[*]} and no apt-get: install them with your package manager" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
echo "installed ${need[*]}"
