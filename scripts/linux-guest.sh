#!/usr/bin/env bash
# linux-guest.sh [OUT_DIR]: fetches Debian's 32-bit Linux (linux-image-6.1.0-*-686) and
# busybox-static:i386 from the Debian archive (the only place anything is downloaded
# from) and packs an initramfs whose /init mounts /proc, prints a marker, runs a small
# workload and powers off.  Output: OUT_DIR/vmlinuz and OUT_DIR/initramfs.cpio.gz
# (default build/linux), and OUT_DIR/vmlinuz-pae (linux-image-6.1.0-*-686-pae, PAE
# paging) when the archive has it, and OUT_DIR/initramfs-glibc.cpio.gz: Debian's i386
# ld.so and libc and a dynamically linked /bin/true (libc6:i386, coreutils:i386) with
# tests/linux/init-glibc.  Idempotent; needs root for dpkg --add-architecture.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/linux}
mkdir -p "$out"
out=$(cd "$out" && pwd) # absolute: the work below happens in a temporary directory
pack() { # $1 = the static busybox: the initramfs with tests/linux/init
    local rootfs
    rootfs=$(mktemp -d)
    mkdir -p "$rootfs"/bin "$rootfs"/proc "$rootfs"/sys "$rootfs"/dev "$rootfs"/tmp
    cp "$1" "$rootfs/bin/busybox"
    cp "$root/tests/linux/init" "$rootfs/init"
    chmod 755 "$rootfs/init" "$rootfs/bin/busybox"
    (cd "$rootfs" && find . | cpio -o -H newc --quiet) | gzip -9 > "$out/initramfs.cpio.gz"
    rm -rf "$rootfs"
}
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
fetch_glibc() { # the glibc initramfs (optional: its test skips without it)
    [ -f "$out/initramfs-glibc.cpio.gz" ] && [ "$out/initramfs-glibc.cpio.gz" -nt "$root/tests/linux/init-glibc" ] &&
        return 0
    [ -f "$out/busybox" ] || return 0
    local w r
    w=$(mktemp -d)
    if (cd "$w" && { apt-get download -q libc6:i386 coreutils:i386 >/dev/null 2>&1 ||
                     $SUDO apt-get download -q libc6:i386 coreutils:i386 >/dev/null; } &&
        dpkg -x libc6_*_i386.deb x && dpkg -x coreutils_*_i386.deb x); then
        r=$w/root
        mkdir -p "$r"/bin "$r"/lib/i386-linux-gnu "$r"/proc "$r"/tmp
        cp "$out/busybox" "$r/bin/busybox"
        cp "$w"/x/bin/true "$r/bin/true"
        cp "$w"/x/lib/i386-linux-gnu/ld-linux.so.2 "$w"/x/lib/i386-linux-gnu/libc.so.6 "$r/lib/i386-linux-gnu/"
        ln -s i386-linux-gnu/ld-linux.so.2 "$r/lib/ld-linux.so.2"
        cp "$root/tests/linux/init-glibc" "$r/init"
        chmod 755 "$r/init" "$r/bin/busybox"
        (cd "$r" && find . | cpio -o -H newc --quiet) | gzip -9 > "$out/initramfs-glibc.cpio.gz"
        echo "linux-guest: libc6:i386 and coreutils:i386 -> $out/initramfs-glibc.cpio.gz"
    else
        echo "linux-guest: no glibc initramfs (its test will skip)" >&2
    fi
    rm -rf "$w"
}
fetch_pae() { # the 686-pae flavour of the same kernel, for the PAE boot test (optional)
    [ -f "$out/vmlinuz-pae" ] && return 0
    local w pkg
    w=$(mktemp -d)
    pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-686-pae$' |
          awk '{print $1}' | sort -V | tail -1)
    if [ -n "$pkg" ] && (cd "$w" && { apt-get download -q "$pkg" >/dev/null 2>&1 ||
                                      $SUDO apt-get download -q "$pkg" >/dev/null; } &&
                         dpkg -x "$pkg"_*.deb img && cp img/boot/vmlinuz-* "$out/vmlinuz-pae"); then
        echo "linux-guest: $pkg -> $out/vmlinuz-pae"
    else
        echo "linux-guest: no 686-pae kernel fetched (the PAE boot test will skip)" >&2
    fi
    rm -rf "$w"
}
if [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.cpio.gz" ] &&
   [ "$out/initramfs.cpio.gz" -nt "$root/tests/linux/init" ]; then
    fetch_pae
    fetch_glibc
    echo "linux-guest: $out already has vmlinuz and initramfs.cpio.gz"; exit 0
fi
if [ -f "$out/vmlinuz" ] && [ -f "$out/busybox" ]; then
    pack "$out/busybox"
    fetch_pae
    fetch_glibc
    echo "linux-guest: repacked $out/initramfs.cpio.gz with the current tests/linux/init"; exit 0
fi
if ! dpkg --print-foreign-architectures | grep -qx i386; then
    $SUDO dpkg --add-architecture i386
fi
$SUDO apt-get update -qq || true  # a mirror in sync may fail one index; the rest works
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-686$' | awk '{print $1}' |
      sort -V | tail -1)
[ -n "$pkg" ] || { echo "linux-guest: no linux-image-6.1.0-*-686 in the archive" >&2; exit 1; }
apt-get download -q "$pkg" busybox-static:i386 >/dev/null 2>&1 ||
    $SUDO apt-get download -q "$pkg" busybox-static:i386 >/dev/null
dpkg -x "$pkg"_*.deb img
dpkg -x busybox-static_*_i386.deb bb
cp img/boot/vmlinuz-* "$out/vmlinuz"
cp bb/bin/busybox "$out/busybox"
pack "$out/busybox"
echo "linux-guest: $pkg and busybox-static:i386 -> $out/vmlinuz, $out/initramfs.cpio.gz"
fetch_pae
fetch_glibc
