#!/bin/bash
# run-nano.sh [REPS]: the nanobenchmark guest (bench/guests/nano.c) on xbt, QEMU TCG and
# KVM (where /dev/kvm is hardware virtualization), and the native 32-bit counterparts,
# interleaved REPS times (default 5).  Prints a table of medians in cycles and ratios,
# writes bench/results/nano.csv (with date, CPU and TSC frequency) and, with gnuplot,
# bench/results/nano.png.  The guest measures with RDTSC itself; under QEMU TCG RDTSC
# reads the host TSC, so the columns compare.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
reps=${1:-5}
cmake -S "$root" -B "$root/build" >/dev/null && cmake --build "$root/build" -j2 >/dev/null || exit 1
b=$root/build
guest=$b/bench/nano.elf
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
qemu=(-m 128 -kernel "$guest" -display none -nographic -monitor none -serial stdio -no-reboot
      -device isa-debug-exit,iobase=0xf4,iosize=0x04 -device pc-testdev)

kvm_note=""
if ! command -v qemu-system-i386 >/dev/null; then
    qemu_ok=0; kvm_note="QEMU: qemu-system-i386 not installed"
else
    qemu_ok=1
    probe=$("$root/tests/guests/run-guest.sh" qemu-kvm "$b/tests/guests/hello.elf" 2>&1 | grep '^SKIP' || true)
    [ -n "$probe" ] && kvm_note="KVM: ${probe#SKIP: KVM: }"
fi

. "$root/bench/host.sh"
for r in $(seq "$reps"); do
    for mode in $xbt_modes; do
        "$b/tools/xbt-run" --user-mode $mode "$guest" 2>/dev/null | grep -a '^RESULT' |
            sed "s/^/xbt-$mode /" >>"$out/all"
    done
    "$b/tools/xbt-run" --traces "$guest" 2>/dev/null | grep -a '^RESULT' |
        sed "s/^/xbt-traces /" >>"$out/all"
    if [ $qemu_ok = 1 ]; then
        timeout 120 qemu-system-i386 -accel tcg "${qemu[@]}" </dev/null 2>/dev/null |
            grep -a '^RESULT' | sed 's/^/qemu-tcg /' >>"$out/all"
        if [ -z "$kvm_note" ]; then
            timeout 120 qemu-system-i386 -accel kvm "${qemu[@]}" </dev/null 2>/dev/null |
                grep -a '^RESULT' | sed 's/^/kvm /' >>"$out/all"
        fi
    fi
    [ $host_ia32 = 1 ] && "$b/bench/native_nano" | grep '^RESULT' | sed 's/^/native /' >>"$out/all"
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //; s/,/ /g')
mhz=$(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$root/bench/results"
csv=$root/bench/results/nano.csv
adaptive_ok=0; xbt_mode_ok adaptive && adaptive_ok=1
awk -v adaptive_ok="$adaptive_ok" -v reps="$reps" -v date="$date" -v cpu="$cpu" -v mhz="$mhz" -v csv="$csv" '
function median(k,   n, i, j, t, a) {
    n = cnt[k]; for (i = 1; i <= n; i++) a[i] = val[k, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] < a[j-1]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n ? a[int((n + 1) / 2)] : ""
}
{ k = $1 SUBSEP $3; cnt[k]++; val[k, cnt[k]] = $4; benches[$3] = 1; peers[$1] = 1 }
function ratio(a, b) { return (a != "" && b != "" && b > 0) ? sprintf("%.2f", a / b) : "-" }
function show(v) { return v == "" ? "-" : v }
END {
    order = "compute branchy calls compute3 callret in out cpuid mmio int divfault pushfpopf clisti stiret rdtsc cr3 pagefault ptewrite demandpage cr3switch procswitch syscall syscallpg forkwait sigsegv"
    n = split(order, names, " ")
    printf "%-10s %9s %9s %9s %9s %9s %9s %9s %8s %8s\n", "benchmark", "native", "xbt", "direct", "strict", "+traces", "qemu-tcg", "kvm", "xbt/nat", "xbt/qemu"
    print "date,cpu,cpu_mhz,benchmark,native,xbt_direct,xbt_strict,xbt_adaptive,qemu_tcg,kvm,reps,xbt_traces" > csv
    for (i = 1; i <= n; i++) {
        b = names[i]; if (!(b in benches)) continue
        nv = median("native" SUBSEP (b == "compute3" ? "compute" : b))
        # xbt: the default mode, whose ratios are shown: adaptive, or strict where the
        # host has no adaptive mode (xbt-run falls back to it: bench/host.sh)
        xd = median("xbt-direct" SUBSEP b); xs = median("xbt-strict" SUBSEP b)
        xa = median("xbt-adaptive" SUBSEP b); xt = median("xbt-traces" SUBSEP b)
        x = adaptive_ok ? xa : xs
        q = median("qemu-tcg" SUBSEP b); kv = median("kvm" SUBSEP b)
        m[b] = x; md[b] = xd; ms[b] = xs; ma[b] = xa; mn[b] = nv
        mt[b] = xt
        printf "%-10s %9s %9s %9s %9s %9s %9s %9s %8s %8s\n", b, show(nv), show(x), show(xd), show(xs), show(xt), show(q), show(kv), ratio(x, nv), ratio(x, q)
        printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", date, cpu, mhz, b, nv, xd, xs, xa, q, kv, reps, xt >> csv
    }
    print ""
    print "targets (issue 6):"
    printf "  compute at CPL 0 (translated) / at CPL 3 (direct mode): %s (goal <= 1.10)\n", ratio(m["compute"], md["compute3"])
    printf "  syscall, adaptive / native host system call: %s (goal <= 1.00)\n", ratio(ma["syscall"], mn["syscall"])
    printf "  syscall, direct mode / host SIGSEGV round trip: %s (goal <= 1.30)\n", ratio(md["syscall"], mn["sigsegv"])
    print "traces (issue 7), translated CPL 0 code / native, chained blocks and with traces:"
    printf "  compute: %s and %s; branchy: %s and %s; calls: %s and %s (goal <= 1.10, traces faster)\n", ratio(m["compute"], mn["compute"]), ratio(mt["compute"], mn["compute"]), ratio(m["branchy"], mn["branchy"]), ratio(mt["branchy"], mn["branchy"]), ratio(m["calls"], mn["calls"]), ratio(mt["calls"], mn["calls"])
}' "$out/all"
echo "cycles per operation (compute: per 1000 iterations), medians of $reps interleaved runs;"
echo "cpu: $cpu, ${mhz} MHz; results in bench/results/nano.csv"
echo "xbt = the default, adaptive mode (user code translated until a process runs long between kernel entries, then native; strict where the host has no adaptive mode, see the notes), direct = user code runs natively, strict = user code translated, +traces = the default with --traces;"
echo "branchy = a hash-table workload at CPL 0, cycles per 1000 keys; calls = a call-heavy list workload (calls, returns, an indirect call per key) at CPL 0, cycles per 1000 keys;"
echo "compute3 = the compute loop at CPL 3 (native column: the host function); in = IN from a port (COM1 scratch); out = OUT to it; cpuid = CPUID leaf 0 (native column: the host's, which this kind of host may trap); mmio = a dword read of pc-testdev's MMIO scratch memory (xbt-run serves it without its device lock); int = INT n + IRET at CPL 0; syscall = guest user INT 0x80 + IRET (native column: host getppid via int 0x80); syscallpg = the same with guest paging on; demandpage = clear P in a PTE, INVLPG, touch: the guest #PF handler sets P and IRETs to the touch; cr3switch = a CR3 load alternating between two page directories that share their tables, then a read; procswitch = the same between directories that map the page read differently; forkwait = per process created, run (stack demand-paged, one system call) and destroyed (native column: host fork + waitpid); sigsegv = host SIGSEGV round trip"
[ -n "$kvm_note" ] && echo "$kvm_note"
printf '%s' "$host_notes"
if command -v gnuplot >/dev/null; then
    # One bar per peer that measured something: a column with no positive value (native
    # where this host cannot run 32-bit code, KVM without /dev/kvm) would make gnuplot
    # fail on a log scale, and a failed plot must not leave an empty PNG behind.
    awk -F, 'function f(x) { return x == "" || x + 0 <= 0 ? "NaN" : x }
             NR > 1 { printf "%s %s %s %s %s %s %s\n", $4, f($5), f($8), f($6), f($7), f($9), f($10) }' "$csv" >"$out/plot.dat"
    plot=$(awk 'BEGIN { split("native|xbt (adaptive)|xbt direct|xbt strict|QEMU TCG|KVM", t, "|") }
                { for (c = 2; c <= 7; c++) if ($c != "NaN") has[c] = 1 }
                END { for (c = 2; c <= 7; c++) if (has[c]) {
                          printf "%s\"%s\" using %d%s title \"%s\"", (n ? ", " : ""), FILENAME, c, (n ? "" : ":xtic(1)"), t[c - 1]; n++ }
                      print "" }' "$out/plot.dat")
    rm -f "$out/nano.png"
    if [ -n "$plot" ] && gnuplot >"$out/gnuplot.log" 2>&1 <<GP && [ -s "$out/nano.png" ]; then
set terminal png size 1000,500
set output "$out/nano.png"
set title "xbt nanobenchmarks, cycles per operation (log scale), $date"
set style data histogram
set style histogram clustered
set style fill solid border -1
set logscale y
set xtics rotate by -30
set key outside right top
plot $plot
GP
        mv "$out/nano.png" "$root/bench/results/nano.png" && echo "plot: bench/results/nano.png"
    else
        echo "plot: gnuplot failed, bench/results/nano.png left as it was:"; sed 's/^/  /' "$out/gnuplot.log"
    fi
else
    echo "plot: no gnuplot, bench/results/nano.png not drawn"
fi
echo "--- xbt statistics of one run ---"
"$b/tools/xbt-run" --stats "$guest" 2>&1 >/dev/null | grep -v '^$'
