#!/bin/bash
# run-gdb-smp.sh XBT_RUN KERNEL FUNC: gdb against xbt-run --gdb --smp 2 and against QEMU
# TCG -smp 2 (its stub shows vCPUs as threads, all-stop), on a guest whose FUNC only an
# application processor runs: the breakpoint must stop in thread 2 at FUNC, gdb must list
# two threads, thread 1's registers must be vCPU 0's (elsewhere), a step in thread 2 must
# stay in thread 2 and move on (scheduler-locking step: vCPU 0 stays stopped), and the
# guest must pass its own checks after continue.  FUNC must not be reached while an
# interrupt or SIPI may be pending for the AP: QEMU TCG's step then handles it and stops
# before the instruction (see ap_work in tests/guests/smp_start.c).
# Both peers must agree on the thread and addresses.  QEMU missing: said, and xbt's
# transcript alone is checked.  gdb missing: SKIP (exit 77).
set -u
xbt=$1 kernel=$2 func=$3
command -v gdb >/dev/null || { echo "SKIP: gdb not installed (scripts/install-deps.sh)"; exit 77; }
addr=$(nm "$kernel" | awk -v f="$func" '$3 == f { print "0x" $1; exit }')
[ -n "$addr" ] || { echo "FAIL: no symbol $func in $kernel"; exit 1; }
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$out"' EXIT
. "$(dirname "$0")/peers.sh"
export XBT_GDB_ARGS="--smp 2 -a cpus=2" QEMU_GDB_ARGS="-smp 2 -append cpus=2"
sessions -ex "break *$addr" -ex continue \
    -ex 'printf "stop %d %#x\n", $_thread, $eip' -ex 'info threads' \
    -ex 'printf "threads %d\n", $_inferior_thread_count' \
    -ex 'thread 1' -ex 'printf "other %d %#x\n", $_thread, $eip' \
    -ex 'thread 2' -ex 'set scheduler-locking step' -ex stepi -ex 'printf "step %d %#x\n", $_thread, $eip' \
    -ex 'delete' -ex continue
status=0
for peer in $peers; do
    read -r st_t st_a <<<"$(awk '/^stop /{print $2, $3}' "$out/$peer.gdb")"
    read -r ot_t ot_a <<<"$(awk '/^other /{print $2, $3}' "$out/$peer.gdb")"
    read -r sp_t sp_a <<<"$(awk '/^step /{print $2, $3}' "$out/$peer.gdb")"
    n=$(awk '/^threads /{print $2}' "$out/$peer.gdb")
    echo "$peer: stop thread ${st_t:-?} at ${st_a:-?}, $n threads, thread 1 at ${ot_a:-?}," \
         "step thread ${sp_t:-?} to ${sp_a:-?}; guest: $(grep -a '^DONE' "$out/$peer.log")"
    if [ "${st_t:-}" != 2 ] || [ "${st_a:-}" != "$(printf '%#x' "$addr")" ] || [ "${n:-}" != 2 ] ||
       [ "${ot_t:-}" != 1 ] || [ -z "${ot_a:-}" ] || [ "$ot_a" = "$st_a" ] ||
       [ "${sp_t:-}" != 2 ] || [ -z "${sp_a:-}" ] || [ $((sp_a)) -le $((addr)) ] ||
       [ $((sp_a)) -gt $((addr + 15)) ] || ! grep -aq '^DONE pass=[0-9]* fail=0' "$out/$peer.log"; then
        echo "FAIL: $peer"; sed 's/^/  gdb: /' "$out/$peer.gdb"; tail -5 "$out/$peer.log" | sed 's/^/  guest: /'
        status=1
    fi
    [ $peer = xbt ] && rx="$st_t $st_a $sp_t $sp_a" || rq="$st_t $st_a $sp_t $sp_a"
done
if [ "$peers" != xbt ] && [ "$rx" != "$rq" ]; then
    echo "FAIL: xbt and QEMU TCG differ: '$rx' against '$rq'"; status=1
fi
[ $status = 0 ] && echo "PASS: gdb on $func, two vCPUs"
exit $status
