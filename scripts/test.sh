#!/usr/bin/env bash
# Runs the whole test suite: installs missing system packages, builds (optimized, with
# testability so the tests can reach internal API, in its own build folder so it never
# invalidates the release build of scripts/l2pd), runs `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# BLAS runs single-threaded under our own parallel split; keep OpenBLAS from starting a pool.
export OPENBLAS_NUM_THREADS=1
swift build -c release --scratch-path .build/testing --build-tests -Xswiftc -enable-testing
swift test -c release --scratch-path .build/testing --skip-build
