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
port() { echo $((20000 + (RANDOM % 20000))); }

session() { # peer -> transcript in $out/peer.gdb, guest output in $out/peer.log
    local peer=$1 p
    p=$(port)
    case $peer in
    xbt) timeout 120 "$xbt" ${XBT_GDB_ARGS:-} --gdb "$p" "$kernel" >"$out/$peer.log" 2>&1 & ;;
    qemu-tcg) timeout 120 qemu-system-i386 -accel tcg -m 128 -kernel "$kernel" -display none \
            -nographic -monitor none -serial stdio -no-reboot -S -gdb "tcp:127.0.0.1:$p" \
            -device isa-debug-exit,iobase=0xf4,iosize=0x04 -device pc-testdev \
            </dev/null >"$out/$peer.log" 2>&1 & ;;
    esac
    for i in $(seq 100); do
        if [ $peer = xbt ]; then
            grep -q 'waiting for gdb' "$out/$peer.log" && break
        else
            (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        fi
        sleep 0.1
    done
    timeout 120 gdb -batch -nx -ex 'set architecture i386' -ex 'set confirm off' \
        -ex "target remote 127.0.0.1:$p" -ex 'watch *(unsigned int *)&n_pass' -ex continue \
        -ex 'printf "watch %#x %u\n", $eip, *(unsigned int *)&n_pass' -ex delete -ex 'awatch *(unsigned int *)&n_fail' \
        -ex continue -ex 'printf "awatch %#x %u\n", $eip, *(unsigned int *)&n_pass' -ex delete -ex continue \
        "$kernel" >"$out/$peer.gdb" 2>&1
    wait
}
session xbt
qemu=1
command -v qemu-system-i386 >/dev/null || { qemu=0; echo "QEMU TCG: qemu-system-i386 not installed, xbt checked alone"; }
[ $qemu = 1 ] && session qemu-tcg
status=0
for peer in xbt $([ $qemu = 1 ] && echo qemu-tcg); do
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
if [ $qemu = 1 ] && [ "$rx" != "$rq" ]; then
    echo "FAIL: xbt and QEMU TCG differ: '$rx' against '$rq'"; status=1
fi
[ $status = 0 ] && echo "PASS: gdb watchpoints"
exit $status
