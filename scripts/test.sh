#!/usr/bin/env bash
# Runs the whole test suite: installs missing system packages, builds, runs `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build --build-tests
swift test --skip-build
