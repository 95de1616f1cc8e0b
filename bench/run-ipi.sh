#!/bin/bash
# run-ipi.sh [REPS]: the cost of an interprocessor interrupt and of a TLB shootdown with
# two vCPUs, xbt against QEMU TCG side by side (issue 16).  In TSC cycles of the guest:
#
#   ipi, ipi_halt   kvm-unit-tests' vmexit test: CPU 0 has CPU 1, halted, run an empty
#                   function by IPI and waits for it (ipi: the round trip; ipi_halt: the
#                   loop with 2000 cycles of spinning after each); needs the build that
#                   scripts/peer-suites.sh makes (KVM_UNIT_TESTS_DIR, PEER_BUILD_DIR),
#                   else skipped
#   shoot_invlpg,   tests/guests/smp_tlb.c: CPU 0 remaps a page CPU 1 uses, sends an IPI
#   shoot_cr3       whose handler flushes it (INVLPG, or a CR3 reload) and waits for the
#                   acknowledgement; CPU 1 is running, not halted (median of 500)
#
# Each peer and measure runs REPS times (default 5), interleaved; prints the medians and
# appends them to bench/results/ipi.csv.  The host is shared: a wake-up of a halted vCPU
# is a host context switch, whose latency grows with the host's load (printed too).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
reps=${1:-5}
b=$root/build
xbt_run=${XBT_RUN:-$b/tools/xbt-run}
kut=${PEER_BUILD_DIR:-$b/peers}/kvm-unit-tests
cmake --build "$b" -j2 --target xbt-run guest_smp_tlb >/dev/null || exit 1
command -v qemu-system-i386 >/dev/null || { echo "SKIP: qemu-system-i386 not installed"; exit 77; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

vmexit() { # peer test -> cycles
    local env=$kut/peer-suites.env flat=$kut/x86/vmexit.flat qp=()
    [ "$2" = ipi ] && qp=(-machine pit=off) # as x86/unittests.cfg runs it
    case $1 in
    xbt) timeout 120 "$xbt_run" --timeout 115 --smp 2 --module "$env" --append "$2" "$flat" ;;
    qemu-tcg)
        timeout 120 qemu-system-i386 --no-reboot -nodefaults -device pc-testdev \
            -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -serial stdio \
            -device pci-testdev -machine accel=tcg -smp 2 "${qp[@]}" -kernel "$flat" \
            -initrd "$env" -append "$2" ;;
    esac </dev/null 2>&1 | tr -d '\r' | awk -v t="$2" '$1 == t && $2 ~ /^[0-9]+$/ { print $2 }'
}

shoot() { # peer -> "invlpg cr3" cycles
    XBT_RUN=$xbt_run GUEST_SMP=2 GUEST_APPEND=cpus=2 bash "$root/tests/guests/run-guest.sh" "$1" \
        "$b/tests/guests/smp_tlb.elf" 2>&1 |
        awk '/shootdown cycles/ { v[n++] = $NF } END { if (n == 2) print v[0], v[1] }'
}

have_kut=0
[ -f "$kut/x86/vmexit.flat" ] && [ -f "$kut/peer-suites.env" ] && have_kut=1
[ "$have_kut" = 1 ] || echo "run-ipi: no kvm-unit-tests build in $kut (scripts/peer-suites.sh): ipi skipped"
for _ in $(seq "$reps"); do
    for p in xbt qemu-tcg; do
        if [ "$have_kut" = 1 ]; then
            for t in ipi ipi_halt; do echo "$p $t $(vmexit "$p" "$t")"; done
        fi
        read -r inv cr3 <<<"$(shoot "$p")"
        echo "$p shoot_invlpg ${inv:-}"
        echo "$p shoot_cr3 ${cr3:-}"
    done
done >"$out/all"
mkdir -p "$root/bench/results"
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load=$(cut -d' ' -f1 /proc/loadavg)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null)
awk -v csv="$root/bench/results/ipi.csv" -v date="$date" -v load="$load" -v rev="$rev" '
function med(k,   n, i, j, t, a) {
    n = split(vals[k], a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n ? a[int((n + 1) / 2)] : -1
}
NF == 3 { vals[$1 " " $2] = vals[$1 " " $2] " " $3; seen[$2] = 1; got[$1 " " $2]++ }
NF == 2 { failed[$1 " " $2]++ }
END {
    printf "%-14s %14s %14s %8s\n", "cycles", "xbt", "qemu-tcg", "xbt/qemu"
    split("ipi ipi_halt shoot_invlpg shoot_cr3", order, " ")
    for (i = 1; i <= 4; i++) {
        m = order[i]; if (!(m in seen)) continue
        x = med("xbt " m); q = med("qemu-tcg " m)
        printf "%-14s %14d %14d %7.2fx\n", m, x, q, (x > 0 && q > 0) ? x / q : 0
        printf "%s,%s,%s,%d,%d,%d,%s\n", date, rev, m, x, q, got["xbt " m], load >> csv
    }
    for (k in failed) printf "run-ipi: %s: %d runs without a figure\n", k, failed[k]
    printf "medians of %s runs; host load average %s at the end\n", '"$reps"', load
}' "$out/all"
