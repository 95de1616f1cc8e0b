#!/bin/bash
# fast-full.sh KERNEL.elf [xbt-run options...]
# The fast callouts (src/runtime/callouts_fast.c) against the full handlers: runs a guest
# test kernel on xbt twice through run-guest.sh, as it comes and with
# XBT_NO_FAST_CALLOUTS=1 (every callout takes the full handler).  Pass: both runs pass,
# the first had callouts done by the fast handlers and the second none, and the two
# printed the same lines (the guest's output, the callouts and exceptions counted).  For
# guests whose output does not depend on timing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

status=0
# Fault sites stay (no CPU-time samples, which would take some back at times that vary
# from run to run, and their callout counts with them).
export XBT_NO_PF_BACKS=1
for run in fast full; do
    if [ $run = full ]; then
        XBT_NO_FAST_CALLOUTS=1 "$here/run-guest.sh" xbt "$@" >"$out/$run" 2>&1
    else
        "$here/run-guest.sh" xbt "$@" >"$out/$run" 2>&1
    fi
    r=$?
    [ $r -eq 77 ] && { cat "$out/$run"; exit 77; }
    [ $r -eq 0 ] || { echo "FAIL the $run run failed:"; cat "$out/$run"; status=1; }
    n=$(grep -a -o '^callouts by the fast handlers: [0-9]*' "$out/$run" | grep -o '[0-9]*$')
    echo "== $run run: ${n:-no} callouts by the fast handlers"
    # What must agree: the guest's lines (before the statistics), and the counts of
    # callouts and exceptions by kind.
    { sed -n '/^--- xbt-run statistics/q;p' "$out/$run"
      grep -a '^callouts:\|^exceptions:' "$out/$run"; } >"$out/$run.cmp"
    case "$run:${n:-0}" in
    fast:0) echo "FAIL no callout took the fast path: nothing was compared"; status=1 ;;
    full:0) ;;
    full:*) echo "FAIL XBT_NO_FAST_CALLOUTS=1 did not turn the fast callouts off"; status=1 ;;
    esac
done
if ! diff "$out/fast.cmp" "$out/full.cmp" >"$out/diff"; then
    echo "FAIL the fast and the full callouts disagree (< fast, > full):"
    cat "$out/diff"
    status=1
fi
[ $status -eq 0 ] &&
    echo "== the same $(wc -l <"$out/fast.cmp") lines with and without the fast callouts"
exit $status
