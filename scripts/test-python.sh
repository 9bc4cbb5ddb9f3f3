#!/usr/bin/env bash
# The Python part of the test command: builds and installs the `strata` package (python/)
# into a virtual environment with numpy, pytest and torch (CPU), then runs python/tests,
# which start `strata-server dev` from the cargo target directory.
# STRATA_VENV chooses the environment (default .venv, git-ignored); it is kept between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${STRATA_VENV:-.venv}"
target="$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
venv="$(cd "$venv" && pwd)"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-cache-dir -q)
"${pip[@]}" install numpy pytest torch "maturin>=1.16,<2"
# The extension is built in the workspace's target directory with the dev profile, so it
# reuses the dependencies the cargo build above compiled.
PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$target" MATURIN_PEP517_ARGS="--profile dev" \
    "${pip[@]}" install --no-build-isolation --force-reinstall --no-deps ./python
CARGO_TARGET_DIR="$target" "$venv/bin/python" -m pytest python/tests -q "$@"
