#!/usr/bin/env bash
# The test command: installs missing system packages, builds the binaries the integration
# tests start as real processes, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --workspace --bins
cargo test --workspace "$@"
