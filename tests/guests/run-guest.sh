#!/bin/bash
# run-guest.sh PEER KERNEL.elf [xbt-run options...]
# Runs one guest test kernel on a peer and decides pass or fail from what the guest
# printed on COM1:  PEER = qemu-tcg | qemu-kvm | xbt.
# Pass: exit status 1 (isa-debug-exit value 0), a "DONE pass=N fail=0" line with N > 0,
# and no line starting with FAIL.  A missing peer prints "SKIP: ..." and exits 77.
# Environment: GUEST_DISK=FILE attaches a raw disk (QEMU -drive index
# ${GUEST_DISK_INDEX:-0}, xbt-run --disk); GUEST_APPEND=STRING is the kernel command line;
# GUEST_END=reset|poweroff: the guest ends by resetting or powering off the machine
# after its DONE line (QEMU -no-reboot then exits 0, xbt-run 4 or 0) instead of
# through isa-debug-exit.  GUEST_SMP=N: N CPUs (QEMU -smp N, xbt-run --smp N); an
# xbt-run whose --help does not offer --smp skips.  GUEST_QEMU_CPU=MODEL: QEMU's -cpu (e.g.
# qemu32,+umip: features xbt's CPU model has that QEMU's default CPU lacks).  GUEST_CPU=max:
# every feature each peer implements (QEMU -cpu max, xbt-run --cpu max).
# GUEST_TCG=OPTIONS: QEMU's -accel tcg,OPTIONS (thread=single: one host thread for every vCPU).
set -u
peer=$1
kernel=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/no32.sh"
timeout_s=${GUEST_TIMEOUT:-60}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

qemu_args=(-m 128 -kernel "$kernel" -display none -nographic -monitor none -serial stdio
           -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 -device pc-testdev)
xbt_args=()
if [ -n "${GUEST_DISK:-}" ]; then
    qemu_args+=(-drive "file=$GUEST_DISK,format=raw,index=${GUEST_DISK_INDEX:-0},media=disk,if=ide")
    xbt_args+=(--disk "index=${GUEST_DISK_INDEX:-0},file=$GUEST_DISK")
fi
if [ -n "${GUEST_APPEND:-}" ]; then
    qemu_args+=(-append "$GUEST_APPEND")
    xbt_args+=(--append "$GUEST_APPEND")
fi
if [ -n "${GUEST_QEMU_CPU:-}" ]; then
    qemu_args+=(-cpu "$GUEST_QEMU_CPU")
fi
if [ -n "${GUEST_SMP:-}" ]; then
    qemu_args+=(-smp "$GUEST_SMP")
    xbt_args+=(--smp "$GUEST_SMP")
fi
if [ -n "${GUEST_CPU:-}" ]; then
    qemu_args+=(-cpu "$GUEST_CPU")
    xbt_args+=(--cpu "$GUEST_CPU")
fi
case "$peer" in
qemu-tcg)
    command -v qemu-system-i386 >/dev/null || { echo "SKIP: qemu-system-i386 not installed"; exit 77; }
    timeout "$timeout_s" qemu-system-i386 -accel "tcg${GUEST_TCG:+,$GUEST_TCG}" "${qemu_args[@]}" \
        </dev/null >"$out" 2>&1
    status=$?
    ;;
qemu-kvm)
    command -v qemu-system-i386 >/dev/null || { echo "SKIP: qemu-system-i386 not installed"; exit 77; }
    if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
        echo "SKIP: KVM: /dev/kvm not usable"; exit 77
    fi
    # Probe once per boot: a guest that turns paging on.  Hardware virtualization runs
    # it; this machine's kvm-pvm (a software hypervisor for nested setups) triple-faults.
    probe=${KVM_PROBE:-$here/../../build/tests/guests/kvmprobe.elf}
    cache=${TMPDIR:-/tmp}/xbt-kvm-probe.$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)
    if [ ! -f "$cache" ] && [ -f "$probe" ]; then
        if timeout 20 qemu-system-i386 -accel kvm -m 128 -kernel "$probe" -display none \
               -nographic -monitor none -serial stdio -no-reboot \
               -device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null 2>&1 |
               grep -aq 'DONE pass=2 fail=0'; then
            echo ok >"$cache"
        else
            echo "paging probe guest fails" >"$cache"
        fi
    fi
    if [ -f "$cache" ] && [ "$(cat "$cache")" != ok ]; then
        echo "SKIP: KVM: not hardware virtualization here ($(cat "$cache"); /dev/kvm is emulation)"
        exit 77
    fi
    timeout "$timeout_s" qemu-system-i386 -accel kvm "${qemu_args[@]}" </dev/null >"$out" 2>&1
    status=$?
    if [ $status -ne 1 ] && grep -q "failed to initialize kvm\|Could not access KVM" "$out"; then
        echo "SKIP: KVM: $(grep -m1 -i kvm "$out")"; exit 77
    fi
    # This machine's /dev/kvm is kvm-pvm, a software hypervisor for nested setups: it
    # runs flat protected-mode code but fails to emulate e.g. IRET after a fault
    # ("KVM internal error. Suberror: 1").  That is the peer's limit, not the guest's.
    if [ $status -ne 1 ] && grep -q "KVM internal error" "$out"; then
        grep -a '^PASS\|^FAIL' "$out" | tail -3
        echo "SKIP: KVM: not hardware virtualization here ($(grep -a -m1 'KVM internal error' "$out"))"
        exit 77
    fi
    ;;
xbt)
    xbt_run=${XBT_RUN:-$here/../../build/tools/xbt-run}
    [ -x "$xbt_run" ] || { echo "SKIP: xbt-run not built ($xbt_run)"; exit 77; }
    if [ -n "${GUEST_SMP:-}" ] && ! "$xbt_run" --help 2>&1 | grep -q -e '--smp'; then
        echo "SKIP: xbt-run has no --smp yet"; exit 77
    fi
    timeout "$timeout_s" "$xbt_run" --timeout "$((timeout_s - 5))" --stats "${xbt_args[@]}" "$@" \
        "$kernel" </dev/null >"$out" 2>&1
    status=$?
    # --user-mode direct or adaptive: variants for direct execution (no32.sh).
    case " $* " in
    *" --user-mode direct "* | *" --user-mode adaptive "*) skip_if_no32 "$out" ;;
    esac
    # XBT_EXPECT_ADAPT=1 (adapt.c in adaptive mode): two address spaces promoted to
    # direct execution, direct runs after it, and XBT_EXPECT_ADAPT_BACK (default 0) of
    # them sent back (1 with XBT_ADAPT_DEMOTE=1: phased's chatty end).
    if [ -n "${XBT_EXPECT_ADAPT:-}" ]; then
        want_back=${XBT_EXPECT_ADAPT_BACK:-0}
        line=$(grep -a '^adaptive: [0-9]* address spaces promoted' "$out")
        promoted=$(echo "$line" | grep -o '^adaptive: [0-9]*' | grep -o '[0-9]*')
        back=$(echo "$line" | grep -o '[0-9]* sent back' | grep -o '[0-9]*')
        entries=$(grep -a -o '^direct: [0-9]* entries' "$out" | grep -o '[0-9]*')
        echo "== xbt: ${promoted:-no} address spaces promoted, ${back:-no} sent back, ${entries:-no} direct entries"
        [ "${promoted:-0}" -eq 2 ] && [ "${back:-0}" -eq "$want_back" ] && [ "${entries:-0}" -ge 2 ] ||
            { echo "FAIL expected two address spaces promoted, direct runs, $want_back sent back"; status=99; }
    fi
    # XBT_EXPECT_CALLOUT=NAME: the statistics must count callouts of that kind.
    if [ -n "${XBT_EXPECT_CALLOUT:-}" ]; then
        n=$(grep -a '^callouts:' "$out" | grep -o " ${XBT_EXPECT_CALLOUT}=[0-9]*" | grep -o '[0-9]*$')
        echo "== xbt: ${n:-no} ${XBT_EXPECT_CALLOUT} callouts"
        [ "${n:-0}" -gt 0 ] || { echo "FAIL expected ${XBT_EXPECT_CALLOUT} callouts"; status=99; }
    fi
    # XBT_EXPECT_SOFT=1: fault sites must have reached churning pages without the window.
    if [ -n "${XBT_EXPECT_SOFT:-}" ]; then
        n=$(grep -a 'of their accesses soft' "$out" | grep -o ', [0-9]* of their' | grep -o '[0-9]*')
        echo "== xbt: ${n:-no} soft accesses"
        [ "${n:-0}" -gt 0 ] || { echo "FAIL expected soft accesses"; status=99; }
        # XBT_SOFT_MAX=N: and at most N of them (a bound that must hold).
        if [ -n "${XBT_SOFT_MAX:-}" ] && [ "${n:-0}" -gt "$XBT_SOFT_MAX" ]; then
            echo "FAIL more than $XBT_SOFT_MAX soft accesses"; status=99
        fi
    fi
    # at_most MAX WHAT N: a bound that must hold (N summed over the vCPUs; empty: the
    # statistics line was not there, which fails too).
    at_most() {
        echo "== xbt: ${3:-no} $2"
        [ -n "$3" ] && [ "$3" -le "$1" ] || { echo "FAIL expected at most $1 $2"; status=99; }
    }
    # at_least MIN WHAT N: the same the other way (empty N reads as 0).
    at_least() {
        echo "== xbt: ${3:-no} $2"
        [ "${3:-0}" -ge "$1" ] || { echo "FAIL expected at least $1 $2"; status=99; }
    }
    # count_before TEXT: the number the statistics print right before TEXT.
    count_before() {
        grep -a -o "[0-9]* $1" "$out" | grep -o '^[0-9]*'
    }
    # XBT_CROSSINGS_MAX=N: at most N jumps from directly run user code into pages run
    # translated; XBT_DIRECT_ENTRIES_MIN=N: at least N entries into directly run user code
    # (hotpage.c).
    if [ -n "${XBT_CROSSINGS_MAX:-}" ]; then
        n=$(count_before 'jumps into pages run translated')
        at_most "$XBT_CROSSINGS_MAX" "jumps into pages run translated" "$n"
    fi
    if [ -n "${XBT_DIRECT_ENTRIES_MIN:-}" ]; then
        n=$(grep -a -o '^direct: [0-9]* entries' "$out" | grep -o '[0-9]*')
        at_least "$XBT_DIRECT_ENTRIES_MIN" "direct entries" "$n"
    fi
    # XBT_IBL_MISS_MAX=N: at most N misses of the inline indirect-branch lookup, summed
    # over the vCPUs (a bound that must hold; ibl_wide.c).
    if [ -n "${XBT_IBL_MISS_MAX:-}" ]; then
        n=$(grep -a '^cache:' "$out" | grep -o '[0-9]* ibl misses' | awk '{ s += $1; k++ } END { if (k) print s }')
        at_most "$XBT_IBL_MISS_MAX" "inline lookup misses" "$n"
    fi
    # XBT_PF_SITES_MAX=N, XBT_HOST_FAULTS_MAX=N: at most N fault sites made, at most N
    # host faults taken, summed over the vCPUs (bounds that must hold; pfsite_alias.c).
    if [ -n "${XBT_PF_SITES_MAX:-}" ]; then
        n=$(grep -a '^paging: [0-9]* fault sites' "$out" | awk '{ s += $2; k++ } END { if (k) print s }')
        at_most "$XBT_PF_SITES_MAX" "fault sites" "$n"
    fi
    # XBT_PF_BACKS_MIN=N, XBT_PF_BACKS_MAX=N: at least / at most N fault sites taken
    # back (pfback.c).
    if [ -n "${XBT_PF_BACKS_MIN:-}${XBT_PF_BACKS_MAX:-}" ]; then
        n=$(grep -a '^paging: [0-9]* fault sites' "$out" | grep -o '[0-9]* taken back' | awk '{ s += $1; k++ } END { if (k) print s }')
        [ -z "${XBT_PF_BACKS_MIN:-}" ] || at_least "$XBT_PF_BACKS_MIN" "fault sites taken back" "$n"
        [ -z "${XBT_PF_BACKS_MAX:-}" ] || at_most "$XBT_PF_BACKS_MAX" "fault sites taken back" "$n"
    fi
    if [ -n "${XBT_HOST_FAULTS_MAX:-}" ]; then
        n=$(grep -a '^events:' "$out" | grep -o '[0-9]* host faults' | awk '{ s += $1; k++ } END { if (k) print s }')
        at_most "$XBT_HOST_FAULTS_MAX" "host faults" "$n"
    fi
    # XBT_HIDDEN_FAULTS_MAX=N: at most N window fills (hidden faults, whether a host fault
    # or a fault site's callout made them), summed over the vCPUs (kmapslot.c).
    if [ -n "${XBT_HIDDEN_FAULTS_MAX:-}" ]; then
        n=$(grep -a '^paging: [0-9]* hidden faults' "$out" | awk '{ s += $2; k++ } END { if (k) print s }')
        at_most "$XBT_HIDDEN_FAULTS_MAX" "hidden faults" "$n"
    fi
    # XBT_REFILLS_MIN=N: at least N pages put into a window after the guest's #PF
    # handler, before the faulting instruction ran again (refill.c).
    if [ -n "${XBT_REFILLS_MIN:-}" ]; then
        n=$(count_before 'pages put in a window after the guest')
        at_least "$XBT_REFILLS_MIN" "pages put in a window after the guest's handler" "$n"
    fi
    # XBT_PREDICTED_MIN=N: at least N pages mapped into the D-window by prediction
    # (predict.c in direct mode).
    if [ -n "${XBT_PREDICTED_MIN:-}" ]; then
        n=$(count_before 'pages mapped before a fault asked')
        at_least "$XBT_PREDICTED_MIN" "pages mapped by prediction" "$n"
    fi
    # XBT_THUNK_CHAINS_MIN=N: at least N direct CALLs chained past a PC thunk (thunk.c).
    if [ -n "${XBT_THUNK_CHAINS_MIN:-}" ]; then
        n=$(grep -a -o '([0-9]* past a PC thunk' "$out" | grep -o '[0-9]*')
        at_least "$XBT_THUNK_CHAINS_MIN" "calls chained past a PC thunk" "$n"
    fi
    # XBT_FPU_CHAINS_MIN=N: at least N chains past the x87/SSE load (fpu_sse.c).
    if [ -n "${XBT_FPU_CHAINS_MIN:-}" ]; then
        n=$(count_before 'past an x87/SSE load')
        at_least "$XBT_FPU_CHAINS_MIN" "chains past the x87/SSE load" "$n"
    fi
    # XBT_JMP_LEARNS_MIN=N: at least N targets learned by indirect JMPs' inline caches
    # (jmpcache.c).
    if [ -n "${XBT_JMP_LEARNS_MIN:-}" ]; then
        n=$(count_before 'targets learned by indirect JMPs')
        at_least "$XBT_JMP_LEARNS_MIN" "targets learned by indirect JMPs' caches" "$n"
    fi
    # XBT_BLOCKS_MAX=N: at most N blocks translated (copies included), summed over the
    # vCPUs (eip_alias.c: translations kept as aliases are not made again).
    if [ -n "${XBT_BLOCKS_MAX:-}" ]; then
        n=$(grep -a '^translation: [0-9]* blocks' "$out" | awk '{ s += $2; k++ } END { if (k) print s }')
        at_most "$XBT_BLOCKS_MAX" "blocks translated" "$n"
    fi
    # XBT_EXPECT_FLUSHES=1: the run must have flushed the translation cache (tiny-cache tests).
    if [ -n "${XBT_EXPECT_FLUSHES:-}" ]; then
        flushes=$(grep -a -o '[0-9]* flushes' "$out" | grep -o '[0-9]*')
        echo "== xbt: ${flushes:-no} cache flushes"
        [ "${flushes:-0}" -gt 0 ] || { echo "FAIL expected the translation cache to flush"; status=99; }
    fi
    ;;
*)
    echo "usage: run-guest.sh qemu-tcg|qemu-kvm|xbt KERNEL.elf [xbt-run options]" >&2
    exit 2
    ;;
esac

# The guest's own output, without QEMU's firmware noise.
sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' "$out" | tr -d '\r' |
    grep -a -v -e '^SeaBIOS' -e '^iPXE' -e '^Press Ctrl-B' -e '^Booting from ROM' -e '^$'
done_line=$(grep -a -o 'DONE pass=[0-9]* fail=[0-9]*' "$out" | tail -1)
fails=$(grep -a -c '^FAIL' "$out")
echo "== $peer: exit status $status, ${done_line:-no DONE line}, $fails FAIL lines"
want=1
case "${GUEST_END:-}:$peer" in
reset:xbt) want=4 ;;
reset:qemu-*|poweroff:*) want=0 ;;
esac
if [ "$status" -eq "$want" ] && [ "$fails" -eq 0 ] &&
   [[ "$done_line" =~ ^DONE\ pass=([0-9]+)\ fail=0$ ]] && [ "${BASH_REMATCH[1]}" -gt 0 ]; then
    exit 0
fi
[ "$status" -eq 124 ] && echo "== $peer: timed out after ${timeout_s}s"
exit 1
