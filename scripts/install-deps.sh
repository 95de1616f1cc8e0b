#!/usr/bin/env bash
# Installs what xbt needs to build and test, from Debian's archive only.
# Idempotent: packages already present are not reinstalled, apt-get update runs only
# when something is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libzydis-dev libzycore-dev     # decoder and encoder
  check                          # unit tests
  gcc-multilib                   # 32-bit guest code and test kernels (-m32)
  clang llvm libclang-rt-14-dev  # libFuzzer, UBSan/LSan runtimes
  libcapstone-dev                # independent decoder used as a test oracle
  libunwind-dev                  # host backtraces in crash reports
  qemu-system-x86                # qemu-system-i386: the TCG (and KVM) peer
  gdb                            # xbt-run --gdb's test (tests/gdb)
  binutils                       # objdump/objcopy for guest images
  gnuplot-nox                    # benchmark plots
  valgrind
  xxd
  cpio gzip                      # the Linux guest's initramfs (scripts/linux-guest.sh)
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
