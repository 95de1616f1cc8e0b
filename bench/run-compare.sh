#!/bin/bash
# run-compare.sh OLD [REPS] [FORKS]: this build's xbt-run against another one (OLD, an
# xbt-run binary, e.g. built from an earlier commit) side by side, for a change that must
# not cost speed.  Interleaved REPS times (default 5), alternating which goes first: the
# nanobenchmark guest in each user mode, and Debian's Linux (scripts/linux-guest.sh)
# booting and running FORKS fork+exec (default 300) in each user mode.  Prints medians
# and new/old ratios; writes nothing under bench/results.
#   git worktree add /tmp/old <rev> && cmake -S /tmp/old -B /tmp/old/build &&
#   cmake --build /tmp/old/build -j2 && bash bench/run-compare.sh /tmp/old/build/tools/xbt-run
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
old=${1:?usage: run-compare.sh OLD-XBT-RUN [REPS] [FORKS]}
reps=${2:-5}
forks=${3:-300}
[ -x "$old" ] || { echo "run-compare: $old is not an executable" >&2; exit 2; }
b=$root/build
cmake -S "$root" -B "$b" >/dev/null && cmake --build "$b" -j2 >/dev/null || exit 1
new=$b/tools/xbt-run
guest=$b/bench/nano.elf
dir=$b/linux
out=$(mktemp -d)
[ -n "${XBT_COMPARE_KEEP:-}" ] && echo "raw results in $out" >&2 || trap 'rm -rf "$out"' EXIT
have_linux=1
[ -f "$dir/vmlinuz" ] || { have_linux=0; echo "SKIP Linux: no guest in $dir (scripts/linux-guest.sh)"; }
cmdline="console=ttyS0 acpi=off pci=off nolapic noapic quiet XBT_FORKS=$forks"

one() { # which binary mode
    local which=$1 bin=$2 mode=$3
    "$bin" --user-mode "$mode" "$guest" 2>/dev/null | grep -a '^RESULT' |
        awk -v k="$which-$mode" '{ print k, $2, $3 }' >>"$out/nano"
    [ $have_linux = 1 ] || return 0
    timeout 600 "$bin" --mem 256 --user-mode "$mode" --initrd "$dir/initramfs.cpio.gz" \
        -a "$cmdline" "$dir/vmlinuz" </dev/null 2>&1 | tr -d '\r' |
        awk -v k="$which-$mode" '/^XBT-UPTIME-INIT/ { print k, "linux-boot", $2 }
                                 /^XBT-FORKS/ { print k, "linux-forks", $6 - $4 }' >>"$out/nano"
}

for r in $(seq "$reps"); do
    for mode in adaptive strict direct; do
        if [ $((r % 2)) = 1 ]; then
            one new "$new" $mode; one old "$old" $mode
        else
            one old "$old" $mode; one new "$new" $mode
        fi
    done
done
awk -v reps="$reps" '
function median(k,   n, i, j, t, a) {
    n = cnt[k]; for (i = 1; i <= n; i++) a[i] = val[k, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] < a[j-1]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n ? a[int((n + 1) / 2)] : ""
}
{ k = $1 SUBSEP $2; cnt[k]++; val[k, cnt[k]] = $3
  if (!($2 in seen)) { seen[$2] = 1; order[++nb] = $2 } }
END {
    printf "%-12s %-9s %12s %12s %8s\n", "benchmark", "mode", "old", "new", "new/old"
    split("adaptive strict direct", ml, " ")
    for (i = 1; i <= nb; i++)
        for (m = 1; m <= 3; m++) {
            o = median("old-" ml[m] SUBSEP order[i]); n = median("new-" ml[m] SUBSEP order[i])
            if (o == "" || n == "") continue
            r = (o > 0) ? sprintf("%.2f", n / o) : "-"
            printf "%-12s %-9s %12s %12s %8s\n", order[i], ml[m], o, n, r
        }
    printf "medians of %d interleaved runs; nanobenchmarks in cycles, linux-boot and linux-forks in guest seconds\n", reps
}' "$out/nano"
