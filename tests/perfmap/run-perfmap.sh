#!/bin/bash
# run-perfmap.sh KERNEL.elf CHECKS... -- XBT_RUN_OPTIONS...   (a guest test kernel)
# run-perfmap.sh linux CHECKS... -- XBT_RUN_OPTIONS...        (the Linux guest)
# Runs the guest as its own test does (tests/guests/run-guest.sh, tests/linux/
# run-linux.sh: it must pass) on xbt-run with --perf-map=FILE --stats, then checks FILE
# with perfmap_check: every line parses, lies in the executable view xbt-run reports,
# and follows the one before within a generation; as many generations as flushes plus
# one; CHECKS (--symbol NAME, --prefix PREFIX) must each match a line.  For Linux, the
# System.map named by LINUX_SYSTEM_MAP (scripts/linux-sysmap.sh fetches it) is given
# with --symbols, the kernel left to randomize its base (KASLR), and start_kernel,
# schedule and do_exit must name blocks that begin at them; without it only addresses
# are checked (said on the output).  Exit 77 when the guest's own test skips.
set -u
here=$(cd "$(dirname "$0")" && pwd)
target=$1
shift
checks=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    checks+=("$1")
    shift
done
[ $# -gt 0 ] && shift # the --
dir=$(mktemp -d) # the map, and the jitdump beside it (--perf-jitdump)
map=$dir/map
log=$dir/log
trap 'rm -rf "$dir"' EXIT
opts=(--perf-map="$map" --stats "$@")
if [ "$target" = linux ]; then
    if [ -n "${LINUX_SYSTEM_MAP:-}" ] && [ -f "$LINUX_SYSTEM_MAP" ]; then
        # Debian's kernel randomizes its base (KASLR): xbt-run has the library find the
        # move (xbt_vm_relocated_symbols), so the names must be right without nokaslr.
        opts+=(--symbols "$LINUX_SYSTEM_MAP")
        checks+=(--symbol start_kernel --symbol schedule)
        kaslr=1
        unset LINUX_APPEND # (an inherited nokaslr would test nothing)
    else
        echo "NOTE: no System.map (${LINUX_SYSTEM_MAP:-LINUX_SYSTEM_MAP not set}): kernel code is named by address only"
        checks+=(--prefix xbt:cpl0:c)
    fi
    LINUX_LOG=$log "$here/../linux/run-linux.sh" xbt "${opts[@]}"
else
    "$here/../guests/run-guest.sh" xbt "$target" "${opts[@]}" | tee "$log"
fi
status=${PIPESTATUS[0]}
[ "$status" -eq 77 ] && exit 77
[ "$status" -eq 0 ] || { echo "FAIL: the guest's own test failed (status $status)"; exit 1; }
view=$(grep -a -o 'executable view 0x[0-9a-f]*-0x[0-9a-f]*' "$log" | tail -1)
flushes=$(grep -a -o '[0-9]* flushes' "$log" | tail -1 | grep -o '[0-9]*')
if [ -z "$view" ] || [ -z "$flushes" ]; then
    echo "FAIL: no executable view or flush count in xbt-run --stats"; exit 1
fi
lo=${view#executable view }
hi=${lo#*-}
lo=${lo%-*}
"${PERFMAP_CHECK:-$here/../../build/tests/perfmap/perfmap_check}" "$map" "$lo" "$hi" "$flushes" \
    "${checks[@]}" || exit 1
if [ -n "${kaslr:-}" ]; then
    # The move found, and blocks that begin exactly at functions the boot calls: a wrong
    # move would name them by other symbols, or at offsets.
    grep -a -q 'the kernel ran its symbols moved by' "$log" ||
        { echo "FAIL: xbt-run found no move for the kernel's symbols"; exit 1; }
    grep -a 'the kernel ran its symbols moved by' "$log"
    grep -a -q 'the kernel ran its symbols moved by 0 ' "$log" &&
        echo "NOTE: KASLR left the kernel where it was linked this time (about 1 boot in 13 with 256 MiB): the move was not tested"
    for f in start_kernel schedule do_exit; do
        grep -q " xbt:$f\$" "$map" || { echo "FAIL: no block named xbt:$f at the function's start"; exit 1; }
    done
    echo "ok   blocks at start_kernel, schedule and do_exit named so (KASLR)"
fi
case " $* " in *" --perf-jitdump "*) ;; *) exit 0;; esac
# --perf-jitdump: the dump against the map of the same run.
dump=$(ls "$dir"/jit-*.dump 2>/dev/null)
[ -n "$dump" ] || { echo "FAIL: no jit-PID.dump beside the map"; exit 1; }
"${JITDUMP_CHECK:-$here/../../build/tests/perfmap/jitdump_check}" "$dump" "$map" "$lo" "$hi" ||
    exit 1
[ -n "${PERF_ROUNDTRIP:-}" ] || exit 0
# PERF_ROUNDTRIP=1 (guest kernels only): perf's own round trip, the guest run again under
# perf record; perf inject --jit must turn the dump into images whose xbt: symbols have
# samples.  Exit 77 (a skip) where perf is missing or may not record here.
if ! command -v perf >/dev/null; then
    echo "SKIP: no perf on this machine"
    exit 77
fi
if ! perf record -q -k mono -e cpu-clock -o "$dir/probe.data" -- true >"$dir/probe" 2>&1; then
    echo "SKIP: perf cannot record here: $(head -c 300 "$dir/probe")"
    exit 77
fi
rm -f "$dump"
perf record -q -k mono -e cpu-clock -F 20000 -o "$dir/perf.data" -- \
    "$here/../guests/run-guest.sh" xbt "$target" --perf-map="$map" "$@" >"$dir/run2" 2>&1 ||
    { echo "FAIL: the guest's test failed under perf record"; tail -20 "$dir/run2"; exit 1; }
(cd "$dir" && perf inject --jit -i perf.data -o perf.jit.data) >"$dir/inject" 2>&1 ||
    { echo "FAIL: perf inject --jit"; cat "$dir/inject"; exit 1; }
n=$(ls "$dir"/jitted-*.so 2>/dev/null | wc -l)
hits=$(perf report -i "$dir/perf.jit.data" --stdio --sort dso,sym 2>/dev/null |
       grep -a -c -E 'jitted-[0-9]+-[0-9]+\.so +\[\.\] xbt:')
echo "perf inject --jit: $n images, $hits sampled symbols of translated code"
[ "$n" -gt 0 ] && [ "$hits" -gt 0 ] ||
    { echo "FAIL: perf does not charge samples to translated code through the dump"; exit 1; }
