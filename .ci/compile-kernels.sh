#!/usr/bin/env bash
# Compiles every CUDA kernel of the GPU tier to PTX with NVRTC from PyPI (no GPU needed).
# Fails if a kernel does not compile, or if NVRTC was not found (so CI really compiles them).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
"$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    nvidia-cuda-nvrtc-cu12
NVRTC_LIB=$("$PY" -c 'import os, nvidia.cuda_nvrtc as m; print(os.path.join(list(m.__path__)[0], "lib"))')
if ! ls "$NVRTC_LIB"/libnvrtc.so* >/dev/null 2>&1; then
    echo "FAIL: no libnvrtc in $NVRTC_LIB" >&2
    exit 1
fi
export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "NVRTC: $NVRTC_LIB"

status=0
out=$(cargo test -p strata-storage --features gpu gpu::ptx -- --nocapture --test-threads=1 2>&1) || status=$?
echo "$out" | grep -E "^(compiled|skipped|test |test result|error)" || true
if [ "$status" -ne 0 ]; then
    echo "$out" | tail -50 >&2
    echo "FAIL: kernel compilation test failed" >&2
    exit "$status"
fi
if ! grep -q NVRTC_COMPILED_ALL_KERNELS <<<"$out"; then
    echo "FAIL: the test did not compile the kernels (libnvrtc not found?)" >&2
    exit 1
fi
echo "OK: every CUDA kernel compiled to PTX"
