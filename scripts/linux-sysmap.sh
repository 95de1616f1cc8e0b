#!/usr/bin/env bash
# linux-sysmap.sh [KERNEL [OUT]]: the System.map of the Linux guest's kernel (default
# build/linux/vmlinuz -> build/linux/System.map), for xbt-run --perf-map --symbols.
# Debian's linux-image package ships a placeholder System.map ("The real System.map is
# in the linux-image-<version>-dbg package"); the real one is in the -dbg package
# (760 MB to download, a few minutes to unpack), fetched from the Debian archive with
# apt-get download for the version the bzImage states (its kernel_version string).
# Only System.map is kept.  Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kernel=${1:-$root/build/linux/vmlinuz}
out=${2:-$(dirname "$kernel")/System.map}
[ -f "$kernel" ] || { echo "linux-sysmap: no $kernel (scripts/linux-guest.sh fetches it)" >&2; exit 1; }
if [ -s "$out" ] && ! grep -q 'real System.map is in' "$out"; then
    echo "linux-sysmap: $out already there"; exit 0
fi
# The setup header's kernel_version (a 16-bit pointer at 0x20e, from 0x200) names it.
off=$(od -An -tu2 -j $((0x20e)) -N2 "$kernel" | tr -d ' ')
ver=$(dd if="$kernel" bs=1 skip=$((off + 0x200)) count=64 2>/dev/null | tr '\0' '\n' |
      head -1 | awk '{print $1}')
[[ "$ver" =~ ^[0-9]+\.[0-9]+\.[0-9]+-[0-9]+-686(-pae)?$ ]] ||
    { echo "linux-sysmap: $kernel: not a Debian 686 kernel ('$ver')" >&2; exit 1; }
pkg=linux-image-$ver-dbg
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "linux-sysmap: downloading $pkg (about 760 MB)"
apt-get download -q "$pkg" >/dev/null 2>&1 || $SUDO apt-get download -q "$pkg" >/dev/null
dpkg-deb --fsys-tarfile "$pkg"_*.deb | tar -x "./usr/lib/debug/boot/System.map-$ver"
cp "usr/lib/debug/boot/System.map-$ver" "$out"
echo "linux-sysmap: $pkg -> $out ($(wc -l <"$out") symbols)"
