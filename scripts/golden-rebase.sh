#!/bin/bash
# golden-rebase.sh [BUILD_DIR]: regenerates every expected listing of tests/golden from
# the current translator.  Only on purpose: review `git diff tests/golden` afterwards.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
cmake --build "$build" --target xbt-dis >/dev/null
for c in "$root"/tests/golden/cases/*.hex; do
    "$root/tests/golden/golden.sh" rebase "$build/tools/xbt-dis" "$c"
done
echo "Review the changes with: git -C $root diff --stat tests/golden"
