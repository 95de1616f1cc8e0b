#!/bin/bash
# contain.sh PEER MODE [ESCAPE]: runs the contain guest and checks that nothing its
# user code asked of the *host* happened: the probe file of its i386 creat() calls does
# not exist and the marker of its write(1, ...) is not in the output.
#   PEER = xbt | qemu-tcg;  MODE = direct | strict | adaptive | adaptive-now (xbt's --user-mode)
#   ESCAPE = farjmp | syscall: the guest also tries a far jump to selector 0x33 or a
#   SYSCALL.  Every peer and mode must give the guest its own #GP(0x30) / #UD (direct
#   mode too: its runner process contains the 64-bit code, xbt raises the #GP).
set -u
peer=$1 mode=$2 escape=${3:-}
# adaptive-now: adaptive mode with every address space run directly at once.
xmode=$mode
[ "$mode" = adaptive-now ] && { xmode=adaptive; export XBT_ADAPT_TICKS=0; }
here=$(cd "$(dirname "$0")" && pwd)
probe=${TMPDIR:-/tmp}/xbt-probe-$peer-$mode-${escape:-none}-$$
rm -f "$probe"
out=$(mktemp)
trap 'rm -f "$out" "$probe"' EXIT
args="probe=$probe${escape:+ escape=$escape}"
case "$peer" in
xbt)
    timeout 60 "${XBT_RUN:?}" --user-mode "$xmode" --append "$args" "${GUEST:?}" </dev/null \
        >"$out" 2>&1
    status=$? ;;
qemu-tcg)
    command -v qemu-system-i386 >/dev/null || { echo "SKIP: qemu-system-i386 not installed"; exit 77; }
    timeout 60 qemu-system-i386 -accel tcg -m 128 -kernel "$GUEST" -append "$args" \
        -display none -nographic -monitor none -serial stdio -no-reboot \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null >"$out" 2>&1
    status=$? ;;
*) echo "unknown peer $peer"; exit 2 ;;
esac
cat "$out"
# The native variants (the runner contains the 64-bit code) need 32-bit code to run.
if [ "$peer" = xbt ] && { [ "$mode" = direct ] || [ "$mode" = adaptive-now ]; }; then
    . "$(dirname "$0")/no32.sh"
    skip_if_no32 "$out"
fi
fail=0
if [ -e "$probe" ]; then echo "FAIL: the host created $probe: a guest system call reached the host"; fail=1; fi
if grep -aq "HOST-WRITE-LEAK" "$out"; then echo "FAIL: the guest's write(1) reached the host"; fail=1; fi
if [ "$status" -ne 1 ] || ! grep -aqE "^DONE pass=[1-9][0-9]* fail=0" "$out" || grep -aq "^FAIL" "$out"; then
    echo "FAIL: guest did not pass (status $status)"; fail=1
fi
[ $fail -eq 0 ] && echo "containment: ok ($peer $mode ${escape:-})"
exit $fail
