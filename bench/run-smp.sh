#!/bin/bash
# run-smp.sh [REPS] [WORK] [FORKS]: SMP scaling of Debian's 32-bit Linux
# (scripts/linux-guest.sh) under xbt and QEMU TCG (MTTCG: a host thread per vCPU), side
# by side.  For N = 1 .. host cores vCPUs, /init runs N independent shell compute loops
# of WORK iterations each (default 100000), then N fork+exec loops of FORKS each
# (default 100), all at once (tests/linux/init, XBT_PAR); each peer and N is run REPS
# times (default 3), interleaved.  Reports medians of guest seconds per phase and the
# throughput of N vCPUs against one (N * work / time, relative to N = 1 of the same
# peer); writes bench/results/smp.csv.  The kernel runs with its default command line
# (ACPI, local APIC and IOAPIC on: the APs start by INIT/SIPI) and pci=off.
# XBT_SMP_MODE selects xbt's user mode (default: xbt-run's default; with several vCPUs
# user code runs translated, see README "SMP").
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
reps=${1:-3}
work=${2:-100000}
forks=${3:-100}
b=$root/build
cmake -S "$root" -B "$b" >/dev/null && cmake --build "$b" -j2 >/dev/null || exit 1
bash "$root/scripts/linux-guest.sh" >/dev/null 2>&1 || true
dir=$b/linux
[ -f "$dir/vmlinuz" ] || { echo "no Linux guest in $dir (scripts/linux-guest.sh)"; exit 1; }
maxn=$(nproc)
[ "$maxn" -gt 8 ] && maxn=8
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
. "$root/scripts/qemu-linux.sh"
mode_args=()
[ -n "${XBT_SMP_MODE:-}" ] && mode_args=(--user-mode "$XBT_SMP_MODE")

run_one() { # peer n -> "peer n compute forks" on stdout
    local peer=$1 n=$2 log=$out/log
    local cmdline="console=ttyS0 quiet pci=off XBT_FORKS=1 XBT_PAR=$n XBT_PAR_WORK=$work XBT_PAR_FORKS=$forks"
    case $peer in
    xbt)
        timeout 900 "$b/tools/xbt-run" --smp "$n" "${mode_args[@]}" --mem 256 \
            --initrd "$dir/initramfs.cpio.gz" -a "$cmdline" "$dir/vmlinuz" </dev/null >"$log" 2>&1 ;;
    qemu-tcg)
        QEMU_SMP=$n qemu_linux tcg 256 "$dir/vmlinuz" "$dir/initramfs.cpio.gz" "$cmdline" "$log" 9000 ;;
    esac
    tr -d '\r' <"$log" | awk -v p="$peer" -v n="$n" '
        /^XBT-PAR-COMPUTE/ { c = $8 - $6 }
        /^XBT-PAR-FORKS/ { f = $8 - $6 }
        END { if (c == "" || f == "") print p, n, "FAILED"; else printf "%s %d %.2f %.2f\n", p, n, c, f }'
}

peers="xbt"
command -v qemu-system-i386 >/dev/null && peers="$peers qemu-tcg" ||
    echo "run-smp: qemu-system-i386 not installed: xbt only"
for _ in $(seq "$reps"); do
    for n in $(seq "$maxn"); do
        for p in $peers; do run_one "$p" "$n" >>"$out/all"; done
    done
done
grep FAILED "$out/all" && echo "some runs failed (see above)"
mkdir -p "$root/bench/results"
csv=$root/bench/results/smp.csv
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //; s/,/ /g')
awk -v csv="$csv" -v date="$date" -v cpu="$cpu" -v reps="$reps" -v work="$work" -v forks="$forks" '
function med(k, c,   n, i, j, t, a) {
    n = split(vals[k, c], a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n ? a[int((n + 1) / 2)] : -1
}
$3 != "FAILED" { k = $1 SUBSEP $2; vals[k, 1] = vals[k, 1] " " $3; vals[k, 2] = vals[k, 2] " " $4; seen[$1] = 1; if ($2 > maxn) maxn = $2 }
END {
    printf "%-9s %5s %12s %12s %12s %12s\n", "peer", "vCPUs", "compute s", "scaling", "forks s", "scaling"
    for (p in seen) for (n = 1; n <= maxn; n++) {
        k = p SUBSEP n; if (!((k, 1) in vals)) continue
        c = med(k, 1); f = med(k, 2); c1 = med(p SUBSEP 1, 1); f1 = med(p SUBSEP 1, 2)
        sc = (c > 0 && c1 > 0) ? n * c1 / c : 0; sf = (f > 0 && f1 > 0) ? n * f1 / f : 0
        printf "%-9s %5d %12.2f %11.2fx %12.2f %11.2fx\n", p, n, c, sc, f, sf
        printf "%s,%s,%s,%d,%d,%d,%.2f,%.2f,%.2f,%.2f,%s\n", date, cpu, p, n, work, forks, c, sc, f, sf, reps >> csv
    }
    print "scaling: N vCPUs running N loops against one vCPU running one (throughput ratio; N is ideal)"
}' "$out/all"
