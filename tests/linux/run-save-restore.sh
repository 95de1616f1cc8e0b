#!/bin/bash
# run-save-restore.sh SAVE_MODE [RESTORE_MODE]: a Linux guest saved mid-workload and
# restored in a fresh xbt-run finishes with the output of an uninterrupted run.
# Debian's kernel boots an initramfs packed here with tests/linux/init-save (a chain of
# md5 sums, each through a pipe and a forked md5sum, with a progress line every 100
# links).  Three runs of xbt-run in user mode SAVE_MODE: an uninterrupted one; one sent
# SIGUSR1 (with --save) once the 200th link is on the console, which must save and end
# before the result; then --restore of that file (in RESTORE_MODE, default the same),
# which must finish.  The save's console output followed by the restore's must hold the
# same XBT-SAVE lines as the uninterrupted run, whose result must be the chain computed
# here on the host, and the restored kernel must report no bug, warning or lockup.
# LINUX_PLATFORM=bare: the kernel on a bare PC (8259s and PIT only), as run-linux.sh.
# LINUX_SMP=N: N vCPUs (--smp N for the first two runs; the restore takes the count from
# the file), and the restored kernel must still list N in /proc/cpuinfo.
# Exit 77 with "SKIP: ..." without the guest.
set -u
save_mode=$1
restore_mode=${2:-$1}
here=$(cd "$(dirname "$0")" && pwd)
dir=${LINUX_DIR:-$here/../../build/linux}
xbt_run=${XBT_RUN:-$here/../../build/tools/xbt-run}
n=600
for f in vmlinuz initramfs.cpio.gz busybox; do
    [ -f "$dir/$f" ] || { echo "SKIP: no $f in $dir (scripts/linux-guest.sh fetches it)"; exit 77; }
done
[ -x "$xbt_run" ] || { echo "SKIP: xbt-run not built"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/root/bin "$work"/root/proc "$work"/root/sys "$work"/root/dev "$work"/root/tmp
cp "$dir/busybox" "$work/root/bin/busybox"
cp "$here/init-save" "$work/root/init"
chmod 755 "$work/root/init" "$work/root/bin/busybox"
(cd "$work/root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$work/initrd.gz"
case "${LINUX_PLATFORM:-pc}" in
pc) cmdline="console=ttyS0 quiet XBT_SAVE_N=$n" ;;
bare) cmdline="console=ttyS0 acpi=off pci=off nolapic noapic quiet XBT_SAVE_N=$n" ;;
*) echo "LINUX_PLATFORM is pc or bare" >&2; exit 2 ;;
esac
smp=()
[ -n "${LINUX_SMP:-}" ] && smp=(--smp "$LINUX_SMP")
boot() { # $1 = mode, the rest: more options; the console on stdout.  xbt-run replaces
          # the shell that runs this (a background boot's $! is xbt-run's pid)
    local mode=$1
    shift
    exec "$xbt_run" --user-mode "$mode" --timeout 250 --mem 256 "${smp[@]}" "$@" --initrd "$work/initrd.gz" \
        -a "$cmdline" "$dir/vmlinuz" </dev/null
}
lines() { tr -d '\r' <"$1" | grep -a '^XBT-SAVE-'; }
fail() { echo "FAIL: $*"; for f in "$work"/*.err; do echo "--- $f"; tail -5 "$f"; done; exit 1; }

# The chain as the guest computes it, here.
s=seed
for ((i = 0; i < n; i++)); do s=$(echo "$s $i" | md5sum); s=${s%% *}; done
want="XBT-SAVE-RESULT $n $s"

(boot "$save_mode") >"$work/plain.out" 2>"$work/plain.err" || fail "the uninterrupted run ended with $?"
lines "$work/plain.out" >"$work/plain.lines"
grep -qx "XBT-SAVE-CPUS ${LINUX_SMP:-1}" "$work/plain.lines" ||
    fail "the uninterrupted run did not list ${LINUX_SMP:-1} CPUs"
if ! grep -qx "$want" "$work/plain.lines"; then
    tr -d '\r' <"$work/plain.out" | tail -8
    fail "the uninterrupted run did not print '$want'"
fi

boot "$save_mode" --save "$work/state" >"$work/saved.out" 2>"$work/saved.err" &
pid=$!
for ((k = 0; k < 2400; k++)); do
    grep -aq 'XBT-SAVE-PROGRESS 200 ' "$work/saved.out" && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
done
kill -USR1 $pid
wait $pid
status=$?
[ $status = 0 ] || fail "the run to save ended with $status"
grep -q "xbt-run: state saved to" "$work/saved.err" || fail "no 'state saved' message"
grep -aq "XBT-SAVE-RESULT" "$work/saved.out" && fail "the save came after the workload's end"
echo "saved: $(stat -c %s "$work/state") bytes after $(lines "$work/saved.out" | tail -1)"

"$xbt_run" --user-mode "$restore_mode" --timeout 250 --restore "$work/state" </dev/null \
    >"$work/restored.out" 2>"$work/restored.err" || fail "the restored run ended with $?"
grep -aq "XBT-SAVE-START" "$work/restored.out" && fail "the restored run started the workload again"
grep -q "ACPI power off" "$work/restored.err" || [ "${LINUX_PLATFORM:-pc}" = bare ] ||
    fail "the restored run did not power off"
if grep -aE 'BUG:|WARNING:|Oops|soft lockup|hung task|unstable' "$work/restored.out"; then
    fail "the restored kernel complained"
fi
cat "$work/saved.out" "$work/restored.out" >"$work/both.out"
lines "$work/both.out" >"$work/both.lines"
if ! cmp -s "$work/plain.lines" "$work/both.lines"; then
    diff "$work/plain.lines" "$work/both.lines" | head -20
    fail "saved + restored output differs from the uninterrupted run's"
fi
tail -2 "$work/both.lines"
echo "PASS: saved in $save_mode mode mid-workload, restored in $restore_mode mode: the same output"
