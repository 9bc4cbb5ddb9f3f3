#!/usr/bin/env bash
# The test command: installs missing system packages, builds the binaries the integration
# tests start as real processes, runs every test of the workspace, then builds the Python
# package and runs its tests against a real dev server (scripts/test-python.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --workspace --bins
cargo test --workspace "$@"
bash scripts/test-python.sh
