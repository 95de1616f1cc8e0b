#!/usr/bin/env bash
# The main demo: installs what is missing, builds, boots the bundled guest kernel
# (tests/guests/hello.c) under xbt's hosted VMM and on QEMU TCG (and KVM where /dev/kvm is
# hardware virtualization), runs the nanobenchmark guest on each and prints the
# comparison against native execution, KVM and QEMU (bench/run-nano.sh), then boots
# Debian's 32-bit Linux with a busybox initramfs under xbt (each user-code mode) and
# under QEMU TCG.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build build -j"$(nproc)" >/dev/null || { cmake --build build; exit 1; }

echo "== xbt-dis: how a few guest instructions are rewritten"
build/tools/xbt-dis -x "8b 44 24 04 50 9c fa 0f 20 c0 f3 a5 c3" | head -24

guest=build/tests/guests/hello.elf
now() { date +%s.%N; }
echo
echo "== booting $guest under xbt (build/tools/xbt-run --stats)"
t0=$(now); build/tools/xbt-run --stats "$guest"; rx=$?; t1=$(now)
echo "xbt-run exit status $rx (1 = the guest reported success), $(awk "BEGIN{printf \"%.3f\", $t1-$t0}") s"
echo
echo "== the same image on the peers"
for peer in qemu-tcg qemu-kvm; do
  t0=$(now); tests/guests/run-guest.sh $peer "$guest" | tail -1; t1=$(now)
  echo "   ($(awk "BEGIN{printf \"%.3f\", $t1-$t0}") s)"
done
echo
echo "== nanobenchmarks: xbt beside native, QEMU TCG and KVM (cycles, medians)"
bash bench/run-nano.sh 3

echo
echo "== Debian's 32-bit Linux 6.1 with a busybox initramfs (from the Debian archive):"
echo "   boot and 200 fork+exec under xbt (each user-code mode this host runs) and QEMU TCG"
if bash scripts/linux-guest.sh build/linux >/dev/null 2>&1; then
  tests/linux/run-linux.sh xbt | grep -a -e XBT-INIT-MARKER -e forked -e '^== ' -e PASS -e FAIL
  bash bench/run-linux.sh 1 200 | sed -n '1,/^medians/p; /^xbt [a-z]* mode: not on this host/p'
  echo "   (build/tools/xbt-run with no arguments boots it to a shell at a terminal)"
else
  echo "   could not fetch the Linux guest from the Debian archive: skipped"
fi
