#!/bin/bash
# golden.sh test|rebase XBT_DIS CASE.hex
# A golden rewrite case: CASE.hex holds comment lines (# ...), one of them
# "# xbt-dis options: ...", and the guest bytes in hex.  test: the listing of
# xbt-dis must equal CASE.expected (a unified diff is printed if not).  rebase:
# regenerate CASE.expected on purpose (scripts/golden-rebase.sh runs this for all).
set -eu
mode=$1 dis=$2 case=$3
expected=${case%.hex}.expected
opts=$(sed -n 's/^# xbt-dis options: *//p' "$case")
hex=$(grep -v '^#' "$case" | tr '\n' ' ')
actual=$(mktemp)
trap 'rm -f "$actual"' EXIT
# shellcheck disable=SC2086
"$dis" $opts -x "$hex" >"$actual"
if [ "$mode" = rebase ]; then
    cp "$actual" "$expected"
    echo "rebased $(basename "$expected")"
    exit 0
fi
if ! [ -f "$expected" ]; then
    echo "no expected listing $(basename "$expected"): run scripts/golden-rebase.sh"; exit 1
fi
if diff -u --label expected --label actual "$expected" "$actual"; then
    echo "golden $(basename "$case" .hex): listing unchanged"
else
    echo "golden $(basename "$case" .hex): the listing changed (if on purpose: scripts/golden-rebase.sh)"
    exit 1
fi
