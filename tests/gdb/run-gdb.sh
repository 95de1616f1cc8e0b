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
    for i in $(seq 100); do # until the stub listens (xbt-run takes one connection only:
        # its own line says so; QEMU's takes a probe and then gdb's)
        if [ $peer = xbt ]; then
            grep -q 'waiting for gdb' "$out/$peer.log" && break
        else
            (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        fi
        sleep 0.1
    done
    timeout 120 gdb -batch -nx -ex 'set architecture i386' -ex 'set confirm off' \
        -ex "target remote 127.0.0.1:$p" -ex "break *$addr" -ex continue \
        -ex 'printf "stop %#x\n", $eip' -ex stepi -ex 'printf "step %#x\n", $eip' \
        -ex 'printf "stack %#x\n", *(unsigned int *)$esp' \
        -ex 'set {unsigned int}($esp - 64) = 0xcafef00d' \
        -ex 'printf "poke %#x\n", *(unsigned int *)($esp - 64)' \
        -ex 'set $edi = 0x1234abcd' -ex 'printf "edi %#x\n", $edi' -ex 'delete' -ex continue \
        "$kernel" >"$out/$peer.gdb" 2>&1
    wait
}
session xbt
qemu=1
command -v qemu-system-i386 >/dev/null || { qemu=0; echo "QEMU TCG: qemu-system-i386 not installed, xbt checked alone"; }
[ $qemu = 1 ] && session qemu-tcg
status=0
for peer in xbt $([ $qemu = 1 ] && echo qemu-tcg); do
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
if [ $qemu = 1 ] && [ "$rx" != "$rq" ]; then
    echo "FAIL: xbt and QEMU TCG differ: '$rx' against '$rq'"; status=1
fi
[ $status = 0 ] && echo "PASS: gdb on $func"
exit $status
