#!/bin/bash
# run-linux.sh PEER [xbt-run options]: boots Debian's 32-bit Linux with the test
# initramfs (scripts/linux-guest.sh) on PEER = xbt | qemu-tcg and checks what /init
# printed.  Exit 77 with "SKIP: ..." when the kernel or the peer is missing.
# The kernel's own command line (ACPI, local APIC, IOAPIC, HPET all in use), with the
# console on COM1; LINUX_PLATFORM=bare boots the kernel as on a bare PC instead (no
# ACPI, no PCI probe, the 8259s and the PIT only).  LINUX_APPEND adds to the command
# line; LINUX_LOG=FILE keeps the whole output there (this prints its end).  LINUX_SMP=N:
# N vCPUs (xbt-run --smp, QEMU -smp), /proc/cpuinfo must list N and /init runs N
# compute loops and N fork loops at once (XBT_PAR).
set -u
peer=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
dir=${LINUX_DIR:-$here/../../build/linux}
case "${LINUX_PLATFORM:-pc}" in
pc) cmdline="console=ttyS0 quiet" ;;
bare) cmdline="console=ttyS0 acpi=off pci=off nolapic noapic quiet" ;;
*) echo "LINUX_PLATFORM is pc or bare" >&2; exit 2 ;;
esac
cmdline="$cmdline${LINUX_APPEND:+ $LINUX_APPEND}" # e.g. nokaslr
smp=${LINUX_SMP:-1}
[ "$smp" -gt 1 ] && cmdline="$cmdline XBT_PAR=$smp XBT_PAR_WORK=20000 XBT_PAR_FORKS=50"
kernel=$dir/${LINUX_KERNEL:-vmlinuz} # LINUX_KERNEL=vmlinuz-pae: the 686-pae flavour
if [ ! -f "$kernel" ] || [ ! -f "$dir/initramfs.cpio.gz" ]; then
    echo "SKIP: no $(basename "$kernel") in $dir (scripts/linux-guest.sh fetches it from Debian)"
    exit 77
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
t0=$(date +%s.%N)
case "$peer" in
xbt)
    xbt_run=${XBT_RUN:-$here/../../build/tools/xbt-run}
    [ -x "$xbt_run" ] || { echo "SKIP: xbt-run not built"; exit 77; }
    timeout 300 "$xbt_run" --mem 256 --timeout 280 --smp "$smp" "$@" --initrd "$dir/initramfs.cpio.gz" \
        -a "$cmdline" "$kernel" </dev/null >"$out" 2>&1
    ;;
qemu-tcg)
    command -v qemu-system-i386 >/dev/null || { echo "SKIP: qemu-system-i386 not installed"; exit 77; }
    # With acpi=off, poweroff halts the CPU and QEMU idles: stop it once Linux says so
    # (with ACPI, the power-off ends QEMU).
    . "$here/../../scripts/qemu-linux.sh"
    QEMU_SMP=$smp qemu_linux tcg 256 "$kernel" "$dir/initramfs.cpio.gz" "$cmdline" "$out" 3000
    ;;
*) echo "usage: run-linux.sh xbt|qemu-tcg [xbt-run options]" >&2; exit 2 ;;
esac
status=$?
t1=$(date +%s.%N)
[ -n "${LINUX_LOG:-}" ] && cp "$out" "$LINUX_LOG"
tr -d '\r' <"$out" | grep -a -v '^xbt-run: unhandled port' | tail -25
echo "== $peer: exit status $status, $(awk "BEGIN{printf \"%.2f\", $t1-$t0}") s"
for want in XBT-INIT-MARKER "forked 200" HELLO-THROUGH-A-PIPE written-in-tmpfs XBT-INIT-DONE; do
    if ! grep -aq "$want" "$out"; then
        echo "FAIL: '$want' missing from the guest's output"; exit 1
    fi
done
if [ "$smp" -gt 1 ]; then
    cpus=$(tr -d '\r' <"$out" | grep -a -A1 '^Linux .* i686$' | tail -1)
    [ "$cpus" = "$smp" ] || { echo "FAIL: /proc/cpuinfo lists '$cpus' CPUs, not $smp"; exit 1; }
    for want in XBT-PAR-COMPUTE XBT-PAR-FORKS; do
        grep -aq "^$want $smp x" "$out" || { echo "FAIL: no '$want $smp x' line"; exit 1; }
    done
fi
# On the PC platform Linux powers off through ACPI (PM1a_CNT, the DSDT's _S5).
if [ "$peer" = xbt ] && [ "${LINUX_PLATFORM:-pc}" = pc ] && ! grep -aq "xbt-run: ACPI power off" "$out"; then
    echo "FAIL: no ACPI power off"; exit 1
fi
echo "PASS: Linux booted to /init and ran its script"
