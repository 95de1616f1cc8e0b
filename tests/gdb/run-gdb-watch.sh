#!/bin/bash
# run-gdb-watch.sh XBT_RUN KERNEL: gdb's watchpoints (Z2 and Z4) against xbt-run --gdb
# and against QEMU TCG's gdb stub on the same guest kernel (a guest of tests/guests,
# whose library counts its checks in n_pass and n_fail): `watch n_pass` stops after the
# instruction that first changes it (gdb reports the old and new value), `awatch
# n_fail` after the first instruction that reads it (the final report), then the guest
# runs to its end.  Both transcripts must show the stops with the values gdb expects and
# the guest passing its own checks, and the stops' EIPs must agree.  QEMU missing: said,
# and xbt's transcript alone is checked.  gdb missing: SKIP (exit 77).
set -u
xbt=$1 kernel=$2
command -v gdb >/dev/null || { echo "SKIP: gdb not installed (scripts/install-deps.sh)"; exit 77; }
for s in n_pass n_fail; do
    nm "$kernel" | awk -v f="$s" '$3 == f { found = 1 } END { exit !found }' ||
        { echo "FAIL: no symbol $s in $kernel"; exit 1; }
done
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$out"' EXIT
. "$(dirname "$0")/peers.sh"
sessions -ex 'watch *(unsigned int *)&n_pass' -ex continue \
    -ex 'printf "watch %#x %u\n", $eip, *(unsigned int *)&n_pass' -ex delete -ex 'awatch *(unsigned int *)&n_fail' \
    -ex continue -ex 'printf "awatch %#x %u\n", $eip, *(unsigned int *)&n_pass' -ex delete -ex continue
status=0
for peer in $peers; do
    w=$(awk '/^watch /{print $2, $3}' "$out/$peer.gdb")
    a=$(awk '/^awatch /{print $2}' "$out/$peer.gdb")
    echo "$peer: watch stop (eip n_pass) $w, awatch stop $a; guest: $(grep -a '^DONE' "$out/$peer.log")"
    if [ "${w#* }" != 1 ] || [ -z "$a" ] || ! grep -q 'Hardware watchpoint.*n_pass' "$out/$peer.gdb" ||
       ! grep -q 'New value = 1' "$out/$peer.gdb" ||
       ! grep -q 'Hardware access (read/write) watchpoint.*n_fail' "$out/$peer.gdb" ||
       ! grep -aq '^DONE pass=[0-9]* fail=0' "$out/$peer.log"; then
        echo "FAIL: $peer"; sed 's/^/  gdb: /' "$out/$peer.gdb"; tail -5 "$out/$peer.log" | sed 's/^/  guest: /'
        status=1
    fi
    [ $peer = xbt ] && rx="$w $a" || rq="$w $a"
done
if [ "$peers" != xbt ] && [ "$rx" != "$rq" ]; then
    echo "FAIL: xbt and QEMU TCG differ: '$rx' against '$rq'"; status=1
fi
[ $status = 0 ] && echo "PASS: gdb watchpoints"
exit $status
