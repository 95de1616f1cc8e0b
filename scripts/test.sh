#!/usr/bin/env bash
# Installs what is missing, builds xbt, runs every test (ctest prints the summary).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
# The Linux guest comes from the Debian archive; without it its tests say SKIP.
bash scripts/linux-guest.sh build/linux || echo "test: could not fetch the Linux guest; linux.* tests will be skipped"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
