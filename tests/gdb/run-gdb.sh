#!/bin/bash
# run-gdb.sh XBT_RUN KERNEL FUNC: gdb (Debian's, the remote serial protocol) against
# xbt-run --gdb and against QEMU TCG's gdb stub, on the same guest kernel: a breakpoint
# at FUNC, a single step, a read of the stack through the guest's page tables, continue
# to the guest's end.  Both transcripts must show the stop at FUNC's address, a step to
# a later address, the same stack word, a memory and a register write read back, and
# the guest passing its own checks; and they must agree.  QEMU missing: said, and xbt's transcript alone is checked.  gdb missing:
# SKIP (exit 77).
set -u
xbt=$1 kernel=$2 func=$3
command -v gdb >/dev/null || { echo "SKIP: gdb not installed (scripts/install-deps.sh)"; exit 77; }
addr=$(nm "$kernel" | awk -v f="$func" '$3 == f { print "0x" $1; exit }')
[ -n "$addr" ] || { echo "FAIL: no symbol $func in $kernel"; exit 1; }
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$out"' EXIT
. "$(dirname "$0")/peers.sh"
sessions -ex "break *$addr" -ex continue \
    -ex 'printf "stop %#x\n", $eip' -ex stepi -ex 'printf "step %#x\n", $eip' \
    -ex 'printf "stack %#x\n", *(unsigned int *)$esp' \
    -ex 'set {unsigned int}($esp - 64) = 0xcafef00d' \
    -ex 'printf "poke %#x\n", *(unsigned int *)($esp - 64)' \
    -ex 'set $edi = 0x1234abcd' -ex 'printf "edi %#x\n", $edi' -ex 'delete' -ex continue
status=0
for peer in $peers; do
    stop=$(awk '/^stop /{print $2}' "$out/$peer.gdb")
    step=$(awk '/^step /{print $2}' "$out/$peer.gdb")
    stack=$(awk '/^stack /{print $2}' "$out/$peer.gdb")
    poke=$(awk '/^poke /{print $2}' "$out/$peer.gdb")
    edi=$(awk '/^edi /{print $2}' "$out/$peer.gdb")
    echo "$peer: stop $stop step $step stack $stack; guest: $(grep -a '^DONE' "$out/$peer.log")"
    if [ "$stop" != "$(printf '%#x' "$addr")" ] || [ -z "$step" ] || [ -z "$stack" ] ||
       [ $((step)) -le $((addr)) ] || [ $((step)) -gt $((addr + 15)) ] ||
       [ "$poke" != 0xcafef00d ] || [ "$edi" != 0x1234abcd ] ||
       ! grep -aq '^DONE pass=[0-9]* fail=0' "$out/$peer.log"; then
        echo "FAIL: $peer"; sed 's/^/  gdb: /' "$out/$peer.gdb"; tail -5 "$out/$peer.log" | sed 's/^/  guest: /'
        status=1
    fi
    [ $peer = xbt ] && rx="$stop $step $stack" || rq="$stop $step $stack"
done
if [ "$peers" != xbt ] && [ "$rx" != "$rq" ]; then
    echo "FAIL: xbt and QEMU TCG differ: '$rx' against '$rq'"; status=1
fi
[ $status = 0 ] && echo "PASS: gdb on $func"
exit $status
