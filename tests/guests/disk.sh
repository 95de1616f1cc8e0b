#!/bin/bash
# disk.sh PEER KERNEL.elf [xbt-run options]: runs the ata guest against a fresh 64-sector
# raw disk (sector n holds byte (7 n + i) & 0xff at offset i), then checks the file:
# what the guest wrote is there (sectors 20-21: i ^ 0xa0 ^ n, sectors 40-47:
# i ^ 0x5c ^ n) and the rest is untouched.  Exit 77 when the peer is missing.
set -u
peer=$1
kernel=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
disk=$(mktemp "${TMPDIR:-/tmp}/xbt-disk.XXXXXX")
trap 'rm -f "$disk"' EXIT
python3 - "$disk" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    for n in range(64):
        f.write(bytes((7 * n + i) & 0xff for i in range(512)))
PY
GUEST_DISK=$disk "$here/run-guest.sh" "$peer" "$kernel" "$@"
status=$?
[ "$status" -eq 0 ] || exit "$status"
python3 - "$disk" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
bad = []
if len(data) != 64 * 512:
    bad.append("size %d" % len(data))
for n in range(64):
    if n in (20, 21):
        want = bytes(i & 0xff ^ 0xa0 ^ n for i in range(512))
    elif 40 <= n < 48:
        want = bytes(i & 0xff ^ 0x5c ^ n for i in range(512))
    else:
        want = bytes((7 * n + i) & 0xff for i in range(512))
    if data[512 * n:512 * n + 512] != want:
        bad.append("sector %d" % n)
if bad:
    print("FAIL: the disk file differs from what the guest wrote: " + ", ".join(bad))
    sys.exit(1)
print("PASS: the disk file holds what the guest wrote (sectors 20-21, 40-47), nothing else changed")
PY
