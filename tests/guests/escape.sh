#!/bin/bash
# escape.sh PEER MODE: runs the escape guest (attacks from 64-bit code, escape.c) and
# checks that the host saw nothing: the probe file its creat() attempts name must not
# exist, the guest must pass, and under xbt's direct mode and adaptive mode with direct
# execution at once (adaptive-now) the attacks must really have run natively (the guest found the runner's code to attack) and each
# have ended the runner it ran in.
#   PEER = xbt | qemu-tcg;  MODE = direct | strict | adaptive | adaptive-now (xbt's --user-mode)
set -u
peer=$1 mode=$2
# adaptive-now: adaptive mode with every address space run directly at once.
xmode=$mode
[ "$mode" = adaptive-now ] && { xmode=adaptive; export XBT_ADAPT_TICKS=0; }
probe=${TMPDIR:-/tmp}/xbt-escape-probe-$peer-$mode-$$
rm -f "$probe"
out=$(mktemp)
trap 'rm -f "$out" "$probe"' EXIT
case "$peer" in
xbt)
    timeout 120 "${XBT_RUN:?}" --stats --timeout 100 --user-mode "$xmode" --append "probe=$probe" \
        "${GUEST:?}" </dev/null >"$out" 2>&1
    status=$? ;;
qemu-tcg)
    command -v qemu-system-i386 >/dev/null || { echo "SKIP: qemu-system-i386 not installed"; exit 77; }
    timeout 120 qemu-system-i386 -accel tcg -m 128 -kernel "$GUEST" -append "probe=$probe" \
        -display none -nographic -monitor none -serial stdio -no-reboot \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null >"$out" 2>&1
    status=$? ;;
*) echo "unknown peer $peer"; exit 2 ;;
esac
cat "$out"
if [ "$peer" = xbt ] && { [ "$mode" = direct ] || [ "$mode" = adaptive-now ]; }; then
    . "$(dirname "$0")/no32.sh"
    skip_if_no32 "$out"
fi
fail=0
if [ -e "$probe" ]; then echo "FAIL: the host created $probe"; fail=1; fi
if [ "$status" -ne 1 ] || ! grep -aqE "^DONE pass=[1-9][0-9]* fail=0" "$out" || grep -aq "^FAIL" "$out"; then
    echo "FAIL: guest did not pass (status $status)"; fail=1
fi
if [ "$peer" = xbt ] && { [ "$mode" = direct ] || [ "$mode" = adaptive-now ]; }; then
    grep -aq "gadget found" "$out" || { echo "FAIL: the attacks did not run natively"; fail=1; }
    killed=$(grep -ao '[0-9]* killed' "$out" | grep -o '[0-9]*')
    [ "${killed:-0}" -ge 6 ] || { echo "FAIL: expected 6 or more runners ended, saw ${killed:-0}"; fail=1; }
fi
[ $fail -eq 0 ] && echo "escape: contained ($peer $mode)"
exit $fail
