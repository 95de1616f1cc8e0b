#!/usr/bin/env bash
# perf-functions.sh [PERF_DATA] [N]: the N (default 30) functions with the most samples in
# a perf recording of xbt-run --perf-map, guest and VMM side by side.  perf report
# --sort sym lists each translated block of a guest function on its own line
# (xbt:schedule, xbt:schedule+0x1a, xbt:trace:schedule+0x40, ...: perf tells symbols
# apart by address); this adds them up per guest function (offset and trace: dropped).
# Needs the map the run wrote (/tmp/perf-PID.map) still in place.
set -euo pipefail
data=${1:-perf.data}
n=${2:-30}
# Sample counts, not perf's rounded percentages: a guest function's blocks are often
# many lines of 0.00% each (one sample is 0.002% of a Linux boot).
perf report -i "$data" --no-children --sort sym --stdio -g none -n 2>/dev/null |
    awk '$1 ~ /%$/ && NF >= 4 {
             name = $4; for (i = 5; i <= NF; i++) name = name " " $i
             if (name ~ /^xbt:/) { sub(/\+0x[0-9a-f]+$/, "", name); sub(/^xbt:trace:/, "xbt:", name) }
             s[name] += $2; k[name] = $3; total += $2
         }
         END { for (name in s) printf "%7.2f%%  %s %s\n", 100 * s[name] / total, k[name], name }' |
    sort -rn | head -n "$n"
