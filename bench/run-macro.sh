#!/bin/bash
# run-macro.sh [REPS] [PEERS...]: the macro workload of the performance issue: Debian's
# i386 user land (gcc-12, binutils, coreutils, gzip, xz-utils, dash from the Debian
# archive) running bench/macro/workload.sh: cc (gcc -O2 of a generated 2,000-line file),
# link (20 links of it with libc), forkexec (500 fork+exec of the dynamically linked
# /bin/true), write (5 x a 20 MiB file), gzip -9 (8 MiB), xz -6 (3 MiB), sort (200,000
# lines), sh (a 100,000-iteration dash loop).  The same binaries run natively (chroot),
# in Debian's 32-bit Linux under xbt in each user-code mode, under QEMU TCG, and under
# KVM where /dev/kvm does hardware virtualization; REPS interleaved rounds (default 3),
# medians of the seconds each phase took by the clock the programs see.  Every peer's
# outputs (gcc's object file, the compressed files, the sorted file...) must match the
# native run's checksums, or the run counts as failed.  PEERS defaults to
# "native xbt-direct xbt-strict xbt-adaptive qemu-tcg kvm".  Writes bench/results/macro.csv
# (a run of some phases only: build/macro/macro-partial.csv).
# The root file system is built once into build/macro (needs root: dpkg
# --add-architecture i386 as scripts/linux-guest.sh does, and chroot for the native run).
# XBT_MACRO_PHASES=cc,link,... runs only those phases (for profiling one of them).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
reps=${1:-3}
shift || true
peers=${*:-native xbt-direct xbt-strict xbt-adaptive qemu-tcg kvm}
b=$root/build
xbt=${XBT_RUN:-$b/tools/xbt-run} # XBT_RUN: another build's xbt-run
cmake -S "$root" -B "$b" >/dev/null && cmake --build "$b" -j2 >/dev/null || exit 1
bash "$root/scripts/linux-guest.sh" >/dev/null 2>&1 || true
lx=$b/linux
[ -f "$lx/vmlinuz" ] && [ -f "$lx/busybox" ] || { echo "no Linux guest in $lx (scripts/linux-guest.sh)"; exit 1; }
m=$b/macro
cpio=$m/initramfs.cpio
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo

build_root() { # Debian's packages, unpacked (no maintainer scripts: nothing here needs them)
    local pk list w
    pk="gcc libc6-dev binutils coreutils gzip xz-utils dash sed grep"
    rm -rf "$m/root" "$m/debs"; mkdir -p "$m/debs" "$m/root"
    dpkg --print-foreign-architectures | grep -qx i386 || $SUDO dpkg --add-architecture i386
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    # the closure of Depends and Pre-Depends, i386 where the package has an i386 build
    list=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
               --no-replaces --no-enhances $(printf '%s:i386 ' $pk) 2>/dev/null |
           grep -v '^[ <]' | sed 's/:i386$//' | sort -u |
           while read -r p; do
               if apt-cache policy "$p:i386" 2>/dev/null | grep -q 'Candidate: [^(]'; then echo "$p:i386"
               else echo "$p"; fi
           done)
    (cd "$m/debs" && $SUDO apt-get download -q $list >/dev/null) || return 1
    for d in "$m"/debs/*.deb; do dpkg-deb -x "$d" "$m/root" || return 1; done
    w=$m/root
    rm -rf "$w"/usr/share/doc "$w"/usr/share/man "$w"/usr/share/locale "$w"/usr/share/info \
           "$w"/usr/lib/gcc/i686-linux-gnu/12/lto1 "$w"/usr/bin/*lto-dump* \
           "$w"/usr/lib/i386-linux-gnu/gprofng "$w"/usr/lib/i386-linux-gnu/lib{asan,ubsan,tsan,lsan}*
    mkdir -p "$w"/proc "$w"/tmp "$w"/dev "$w"/macro
    chmod 1777 "$w"/tmp
    rm -f "$w"/dev/null "$w"/dev/zero
    mknod -m 666 "$w"/dev/null c 1 3 && mknod -m 666 "$w"/dev/zero c 1 5 || return 1
    ln -sf gawk "$w"/usr/bin/awk
}
pack() {
    local w=$m/root
    cp "$lx/busybox" "$w/bin/busybox"
    cp "$root/bench/macro/init" "$w/init"
    cp "$root/bench/macro/workload.sh" "$w/macro/workload.sh"
    awk -v modules=16 -f "$root/bench/macro/gen-source.awk" > "$w/macro/big.c"
    chmod 755 "$w/init" "$w/bin/busybox" "$w/macro/workload.sh"
    # uncompressed: the guest's kernel copies it instead of inflating 160 MB at boot
    (cd "$w" && find . | cpio -o -H newc --quiet) > "$cpio.tmp" && mv "$cpio.tmp" "$cpio"
}
if [ ! -x "$m/root/usr/bin/gcc-12" ]; then
    echo "run-macro: building the i386 root file system in $m (Debian archive)"
    build_root || { echo "run-macro: could not build the root file system"; exit 1; }
fi
if [ ! -f "$cpio" ] || [ -n "$(find "$root/bench/macro" "$0" -newer "$cpio" -type f)" ]; then
    pack || exit 1
fi
echo "run-macro: $(du -sh "$cpio" | cut -f1) initramfs, $(grep -c . "$m/root/macro/big.c") lines to compile"

cmdline="console=ttyS0 acpi=off pci=off nolapic noapic quiet"
phases=${XBT_MACRO_PHASES:-all}
cmdline="$cmdline XBT_MACRO_PHASES=$phases"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
notes=""
kvm_ok=0
if [[ " $peers " == *" kvm "* ]]; then
    probe=$("$root/tests/guests/run-guest.sh" qemu-kvm "$b/tests/guests/hello.elf" 2>&1 | grep '^SKIP' || true)
    if [ -n "$probe" ]; then notes="$notes${probe#SKIP: }"$'\n'; else kvm_ok=1; fi
fi
command -v qemu-system-i386 >/dev/null || notes="${notes}QEMU: qemu-system-i386 not installed"$'\n'
[ "$(id -u)" -eq 0 ] || notes="${notes}native: chroot needs root"$'\n'
. "$root/bench/host.sh"
notes="$notes$host_notes"
kept=""
for p in $peers; do # a peer this host cannot run is left out (the notes say why)
    case $p in
    native) [ $host_ia32 = 1 ] || continue ;;
    xbt-direct|xbt-adaptive) xbt_mode_ok "${p#xbt-}" || continue ;;
    esac
    kept="$kept $p"
done
peers=$kept
[ -n "$peers" ] || { printf '%s' "$notes"; echo "run-macro: none of the peers asked for runs on this host"; exit 1; }

. "$root/scripts/qemu-linux.sh"
qemu_run() { # accel log
    qemu_linux "$1" 1024 "$lx/vmlinuz" "$cpio" "$cmdline" "$2" 24000
}
run_one() { # peer: appends "peer phase seconds" and "peer SUM name md5" lines to $out/all
    local p=$1 log=$out/log.$1 t0 t1
    t0=$(date +%s.%N)
    case $p in
    native) [ "$(id -u)" -eq 0 ] || return 0
            XBT_MACRO_PHASES=$phases chroot "$m/root" /bin/sh /macro/workload.sh >"$log" 2>&1 ;;
    xbt-*) timeout 1800 "$xbt" --mem 1024 --user-mode "${p#xbt-}" --initrd "$cpio" \
               -a "$cmdline" "$lx/vmlinuz" </dev/null >"$log" 2>&1 ;;
    qemu-tcg) command -v qemu-system-i386 >/dev/null || return 0; qemu_run tcg "$log" ;;
    kvm) [ $kvm_ok = 1 ] || return 0; qemu_run kvm "$log" ;;
    *) echo "run-macro: unknown peer $p"; return 0 ;;
    esac
    t1=$(date +%s.%N)
    tr -d '\r' <"$log" | awk -v p="$p" -v w="$(awk "BEGIN{print $t1-$t0}")" '
        /^XBT-MACRO-PHASE / { lines = lines sprintf("%s %s %.3f\n", p, $2, $4 - $3)
                              if ($4 - $3 <= 0) stood = stood " " $2 }
        /^XBT-MACRO-SUM / { lines = lines p " SUM " $2 " " $3 "\n" }
        /^XBT-MACRO-DONE/ { done = 1 }
        END { # a run that did not finish, or whose guest clock stood still in a phase
              # (seen once under xbt, 2026-12-03), counts as failed, none of its numbers
              if (stood != "") print "run-macro: the guest clock stood still in" stood > "/dev/stderr"
              if (!done || stood != "") print p, "FAILED"
              else printf "%s%s wall %.2f\n", lines, p, w }' >>"$out/all"
    tail -1 "$out/all" | grep -q "^$p FAILED" && { echo "run-macro: $p failed; its log ends:"; tail -5 "$log"; }
}
for r in $(seq "$reps"); do
    for p in $peers; do run_one "$p"; done
done
mkdir -p "$root/bench/results"
cp "$out/all" "$m/macro-runs.txt" # every run's phases, in the order they ran (the spread)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //; s/,/ /g')
# Only a run of every phase replaces the committed results; a run of some phases (profiling)
# writes build/macro/macro-partial.csv instead.
results=$root/bench/results/macro.csv
[ "$phases" = all ] || results=$m/macro-partial.csv
awk -v csv="$results" -v date="$date" -v cpu="$cpu" -v reps="$reps" -v peers="$peers" '
function med(k,   n, i, j, t, a) {
    n = cnt[k]; for (i = 1; i <= n; i++) a[i] = v[k, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] < a[j-1]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n ? a[int((n + 1) / 2)] : ""
}
$2 == "FAILED" { failed[$1]++; next }
$2 == "SUM" { if (!(($1, $3) in sum)) sum[$1, $3] = $4; else if (sum[$1, $3] != $4) unstable[$1] = $3
              if (!($3 in ref)) { ref[$3] = $4; refp[$3] = $1 } else if (ref[$3] != $4) bad[$1] = bad[$1] " " $3
              next }
{ k = $1 SUBSEP $2; v[k, ++cnt[k]] = $3; if (!($2 in isph)) { isph[$2] = 1; ph[++nph] = $2 }
  if ($2 != "wall") { rs[$1, cnt[k]] += $3; if (cnt[k] > nrun[$1]) nrun[$1] = cnt[k] }
  if (!($1 in isp)) { isp[$1] = 1; pp[++np] = $1 } }
END {
    printf "%-9s", "phase"; for (i = 1; i <= np; i++) printf " %12s", pp[i]
    has_nat = ("native" in isp)
    if (has_nat) for (i = 1; i <= np; i++) if (pp[i] != "native") printf " %9s", (substr(pp[i], 1, 4) == "xbt-" ? substr(pp[i], 5) : pp[i]) "/n"
    printf "\n"
    print "date,cpu,peer,phase,seconds,reps" > csv
    for (f = 1; f <= nph; f++) {
        x = ph[f]; if (x == "wall") continue
        printf "%-9s", x
        for (i = 1; i <= np; i++) { s = med(pp[i] SUBSEP x); printf " %12s", s; tot[pp[i]] += s
            printf "%s,%s,%s,%s,%s,%s\n", date, cpu, pp[i], x, s, reps >> csv }
        if (has_nat) for (i = 1; i <= np; i++) if (pp[i] != "native") {
            n0 = med("native" SUBSEP x); s = med(pp[i] SUBSEP x)
            printf " %8.2fx", (n0 > 0 ? s / n0 : 0) }
        printf "\n"
    }
    printf "%-9s", "sum"; for (i = 1; i <= np; i++) printf " %12.3f", tot[pp[i]]
    if (has_nat) for (i = 1; i <= np; i++) if (pp[i] != "native") printf " %8.2fx", (tot["native"] > 0 ? tot[pp[i]] / tot["native"] : 0)
    printf "\n%-9s", "host wall"; for (i = 1; i <= np; i++) printf " %12s", med(pp[i] SUBSEP "wall"); printf "\n"
    if (("xbt-strict" in isp) && ("xbt-direct" in isp)) {
        printf "strict/direct:"; for (f = 1; f <= nph; f++) if (ph[f] != "wall")
            printf " %s %.2fx", ph[f], med("xbt-strict" SUBSEP ph[f]) / med("xbt-direct" SUBSEP ph[f]); printf "\n" }
    if (("xbt-adaptive" in isp) && ("xbt-direct" in isp)) {
        printf "adaptive/direct:"; for (f = 1; f <= nph; f++) if (ph[f] != "wall")
            printf " %s %.2fx", ph[f], med("xbt-adaptive" SUBSEP ph[f]) / med("xbt-direct" SUBSEP ph[f]); printf "\n" }
    # Run-to-run spread: (slowest - fastest) / median, of the sum of phases and of the
    # phase that varied most.
    printf "spread:"
    for (i = 1; i <= np; i++) {
        p = pp[i]; lo = hi = ""; n = 0
        for (r = 1; r <= nrun[p]; r++) { x = rs[p, r]; v["SPREAD" SUBSEP p, ++n] = x
            if (lo == "" || x < lo) lo = x; if (hi == "" || x > hi) hi = x }
        cnt["SPREAD" SUBSEP p] = n; m0 = med("SPREAD" SUBSEP p)
        worst = 0; wph = ""
        for (f = 1; f <= nph; f++) { x = ph[f]; k = p SUBSEP x; if (x == "wall" || !cnt[k]) continue
            l2 = h2 = v[k, 1]; for (r = 2; r <= cnt[k]; r++) { if (v[k, r] < l2) l2 = v[k, r]; if (v[k, r] > h2) h2 = v[k, r] }
            mm = med(k); if (mm > 0 && (h2 - l2) / mm > worst) { worst = (h2 - l2) / mm; wph = x } }
        printf " %s sum %.0f%% (worst phase %s %.0f%%)", p, (m0 > 0 ? 100 * (hi - lo) / m0 : 0), wph, 100 * worst
    }
    printf "\n"
    if (("xbt-adaptive" in isp) && ("qemu-tcg" in isp)) {
        printf "adaptive/qemu-tcg:"; for (f = 1; f <= nph; f++) if (ph[f] != "wall")
            printf " %s %.2fx", ph[f], med("xbt-adaptive" SUBSEP ph[f]) / med("qemu-tcg" SUBSEP ph[f]); printf "\n" }
    for (p in failed) printf "FAILED: %s in %d of %s runs\n", p, failed[p], reps
    for (p in bad) printf "WRONG OUTPUT: %s differs from %s in%s\n", p, refp["big.o"], bad[p]
    for (p in unstable) printf "UNSTABLE OUTPUT: %s gave different %s in different runs\n", p, unstable[p]
}' "$out/all"
printf "%s" "$notes"
echo "medians of $reps interleaved runs, seconds by the clock the workload sees (guest time in a VM);"
echo "x/n = ratio to native; results in ${results#"$root"/}, each run's in build/macro/macro-runs.txt"
