#!/bin/bash
# run-translate.sh: builds and runs the translation-speed benchmark over the .text of
# Debian's 32-bit libc and appends the result to bench/results/translate.csv.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build" >/dev/null
cmake --build "$root/build" --target bench_translate -j2 >/dev/null
csv=$root/bench/results/translate.csv
[ -f "$csv" ] || echo "date,cpu,file,text_bytes,guest_insns,blocks,median_s,insns_per_s,host_bytes_per_guest_byte,callouts" >"$csv"
"$root/build/bench/bench_translate" "${1:-/usr/lib32/libc.so.6}" "$csv"
