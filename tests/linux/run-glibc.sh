#!/bin/bash
# run-glibc.sh PEER [N]: Debian's i386 glibc under Debian's kernel (the glibc initramfs
# of scripts/linux-guest.sh).  PEER = qemu-tcg, or xbt: then the same guest runs in
# each user mode (direct; adaptive with direct execution at once, and as it comes;
# strict) and all must report the same CPU features
# (those of the virtual CPU: directly run code must not see the host's) and N runs of a
# dynamically linked /bin/true with no failure (a SIGILL at ld.so's XGETBV was one).
# Exit 77 with "SKIP: ..." when the guest or the peer is missing.
set -u
peer=$1
n=${2:-100}
here=$(cd "$(dirname "$0")" && pwd)
dir=${LINUX_DIR:-$here/../../build/linux}
if [ ! -f "$dir/vmlinuz" ] || [ ! -f "$dir/initramfs-glibc.cpio.gz" ]; then
    echo "SKIP: no vmlinuz or initramfs-glibc.cpio.gz in $dir (scripts/linux-guest.sh makes them)"
    exit 77
fi
cmdline="console=ttyS0 quiet XBT_EXECS=$n"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
check() { # $1 = label: the features line and no failed run
    tr -d '\r' <"$out" | grep -a "XBT-GLIBC\|Kernel panic\|egmentation\|Illegal" | head -8
    grep -aq "XBT-GLIBC-EXECS $n failed 0 " "$out" ||
        { echo "FAIL ($1): not all $n runs of /bin/true succeeded"; tail -20 "$out"; exit 1; }
    features=$(grep -a -m1 XBT-GLIBC-CPU-FEATURES "$out" | tr -d '\r' | awk '{print $2}')
    [ -n "$features" ] || { echo "FAIL ($1): ld.so printed no CPU features"; exit 1; }
}
case "$peer" in
xbt)
    xbt_run=${XBT_RUN:-$here/../../build/tools/xbt-run}
    [ -x "$xbt_run" ] || { echo "SKIP: xbt-run not built"; exit 77; }
    first=""
    # adaptive-now: adaptive mode with every address space run directly at once (its
    # pages with CPUID or XGETBV translated); plain adaptive runs these short processes
    # translated.
    for mode in direct adaptive-now adaptive strict; do
        xmode=$mode adapt_ticks=${XBT_ADAPT_TICKS:-}
        [ $mode = adaptive-now ] && { xmode=adaptive; adapt_ticks=0; }
        t0=$(date +%s.%N)
        # Strict mode copies the translations of ld.so and libc that another process
        # made at other addresses: here each copy is also translated afresh and compared
        # (XBT_CHECK_SHARED), and copies must have been made.
        check_shared=0
        [ $mode = strict ] && check_shared=1
        XBT_CHECK_SHARED=$check_shared XBT_ADAPT_TICKS=$adapt_ticks timeout 600 "$xbt_run" \
            --mem 256 --timeout 580 --user-mode $xmode --stats --initrd "$dir/initramfs-glibc.cpio.gz" -a "$cmdline" \
            "$dir/vmlinuz" </dev/null >"$out" 2>&1
        echo "== xbt --user-mode $mode: exit status $?, $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N)-$t0}") s"
        grep -a "^translation:" "$out"
        check "$mode"
        if [ $mode = strict ]; then
            shared=$(grep -a -m1 '^translation:' "$out" | sed -n 's/.*blocks (\([0-9]*\) of them copies.*/\1/p')
            [ "${shared:-0}" -ge 1000 ] ||
                { echo "FAIL (strict): only ${shared:-no} blocks copied from other addresses"; exit 1; }
        fi
        if [ -z "$first" ]; then
            first=$features
        elif [ "$features" != "$first" ]; then
            echo "FAIL: ld.so saw CPU features $features in $mode mode, $first in direct mode"
            exit 1
        fi
    done
    ;;
qemu-tcg)
    command -v qemu-system-i386 >/dev/null || { echo "SKIP: qemu-system-i386 not installed"; exit 77; }
    timeout 600 qemu-system-i386 -accel tcg -m 256 -kernel "$dir/vmlinuz" \
        -initrd "$dir/initramfs-glibc.cpio.gz" -append "$cmdline" -display none -nographic \
        -monitor none -serial stdio -no-reboot </dev/null >"$out" 2>&1
    echo "== qemu-tcg: exit status $?"
    check qemu-tcg
    ;;
*) echo "usage: run-glibc.sh xbt|qemu-tcg [N]" >&2; exit 2 ;;
esac
echo "PASS: glibc's ld.so and $n dynamically linked runs"
