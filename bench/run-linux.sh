#!/bin/bash
# run-linux.sh [REPS] [FORKS]: Debian's 32-bit Linux (scripts/linux-guest.sh) booted with
# its busybox initramfs under xbt in each user-code mode (direct, strict, adaptive: those
# this host runs, bench/host.sh) and under QEMU TCG, interleaved REPS times (default 3).
# /init runs FORKS (default 1000) fork+exec of /bin/true.  Reports medians of: guest
# uptime when /init starts ("boot"), guest seconds for the fork loop, and host wall
# seconds for the whole run; writes
# bench/results/linux.csv.  The top exits and callouts of one xbt run follow (--stats).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
reps=${1:-3}
forks=${2:-1000}
b=$root/build
cmake -S "$root" -B "$b" >/dev/null && cmake --build "$b" -j2 >/dev/null || exit 1
bash "$root/scripts/linux-guest.sh" >/dev/null 2>&1 || true
dir=$b/linux
[ -f "$dir/vmlinuz" ] || { echo "no Linux guest in $dir (scripts/linux-guest.sh)"; exit 1; }
cmdline="console=ttyS0 acpi=off pci=off nolapic noapic quiet XBT_FORKS=$forks"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
. "$root/scripts/qemu-linux.sh"

run_one() { # peer -> "peer boot forks wall" on stdout
    local peer=$1 log=$out/log t0 t1
    t0=$(date +%s.%N)
    case $peer in
    xbt-*)
        timeout 600 "$b/tools/xbt-run" --mem 256 --user-mode "${peer#xbt-}" \
            --initrd "$dir/initramfs.cpio.gz" -a "$cmdline" "$dir/vmlinuz" </dev/null >"$log" 2>&1 ;;
    qemu-tcg)
        qemu_linux tcg 256 "$dir/vmlinuz" "$dir/initramfs.cpio.gz" "$cmdline" "$log" ;;
    esac
    t1=$(date +%s.%N)
    tr -d '\r' <"$log" | awk -v p="$peer" -v w="$(awk "BEGIN{print $t1-$t0}")" '
        /^XBT-UPTIME-INIT/ { boot = $2 }
        /^XBT-FORKS/ { n = $2; f = $6 - $4 }
        END { if (boot == "" || f == "") print p, "FAILED"; else printf "%s %s %.2f %.2f %d\n", p, boot, f, w, n }'
}

. "$root/bench/host.sh"
peers=""
for mode in $xbt_modes; do peers="$peers xbt-$mode"; done
command -v qemu-system-i386 >/dev/null && peers="$peers qemu-tcg" ||
    host_notes="${host_notes}QEMU: qemu-system-i386 not installed: skipped"$'\n'
for r in $(seq "$reps"); do
    for p in $peers; do run_one "$p" >>"$out/all"; done
done
grep FAILED "$out/all" && echo "some runs failed (see above)"
mkdir -p "$root/bench/results"
csv=$root/bench/results/linux.csv
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //; s/,/ /g')
awk -v csv="$csv" -v date="$date" -v cpu="$cpu" -v reps="$reps" -v forks="$forks" '
function med(k, c,   n, i, j, t, a) {
    n = cnt[k]; for (i = 1; i <= n; i++) a[i] = v[k, c, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] < a[j-1]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n ? a[int((n + 1) / 2)] : ""
}
$2 != "FAILED" { k = $1; cnt[k]++; for (c = 2; c <= 4; c++) v[k, c, cnt[k]] = $c; if (!(k in seen)) { seen[k] = 1; order[++np] = k } }
END {
    print "date,cpu,peer,boot_s,forks,forks_s,wall_s,reps" > csv
    printf "%-13s %10s %14s %10s\n", "peer", "boot (s)", forks " forks (s)", "wall (s)"
    for (i = 1; i <= np; i++) {
        k = order[i]
        printf "%-13s %10s %14s %10s\n", k, med(k, 2), med(k, 3), med(k, 4)
        printf "%s,%s,%s,%s,%s,%s,%s,%s\n", date, cpu, k, med(k, 2), forks, med(k, 3), med(k, 4), reps >> csv
    }
    if ("qemu-tcg" in seen)
        for (i = 1; i <= np; i++) if (order[i] != "qemu-tcg")
            printf "  %s / qemu-tcg: boot %.2fx, forks %.2fx\n", order[i],
                med(order[i], 2) / med("qemu-tcg", 2), med(order[i], 3) / med("qemu-tcg", 3)
}' "$out/all"
echo "medians of $reps interleaved runs; boot = guest uptime at /init, forks = guest seconds"
echo "for $forks fork+exec of /bin/true; results in bench/results/linux.csv"
printf '%s' "$host_notes" | grep -v '^native:'
echo "--- xbt --stats of one default-mode run ---"
timeout 600 "$b/tools/xbt-run" --stats --mem 256 --initrd "$dir/initramfs.cpio.gz" -a "$cmdline" \
    "$dir/vmlinuz" </dev/null 2>&1 | sed -n '/--- xbt-run statistics/,$p'
