#!/bin/sh
# workload.sh: the macro benchmark's phases (bench/run-macro.sh), run by dash from Debian's
# i386 user land: in the guest by /init, natively by chroot.  Each phase prints
# "XBT-MACRO-PHASE name t0 t1" (coreutils date, seconds of the clock the programs see)
# and each output a checksum line "XBT-MACRO-SUM name md5" that must be the same on every
# peer (gcc's object file included: a translation that changes what cc1 computes shows
# here even when nothing crashes).
export PATH=/usr/bin:/bin LC_ALL=C
W=/tmp/macro
rm -rf $W
mkdir -p $W
now() { date +%s.%N; }
phase() { # name command...: skipped unless XBT_MACRO_PHASES (a kernel command line
    # variable in the guest: phases separated by commas) is unset or names it
    case ",${XBT_MACRO_PHASES:-all}," in *,all,* | *,$1,*) ;; *) return 0;; esac
    n=$1
    shift
    t0=$(now)
    "$@"
    t1=$(now)
    echo "XBT-MACRO-PHASE $n $t0 $t1"
}
sum() { echo "XBT-MACRO-SUM $1 $(md5sum < "$2" | cut -d' ' -f1)"; }
# inputs (not timed): 3 MiB and 8 MiB of cc1's code, 200,000 lines of hex words
cc1=/usr/lib/gcc/i686-linux-gnu/12/cc1
head -c 8388608 $cc1 > $W/in8
head -c 3145728 $cc1 > $W/in3
od -An -tx4 -w12 -v $cc1 | head -200000 > $W/lines

cc() { gcc -O2 -c -o $W/big.o /macro/big.c; }
link() { i=0; while [ $i -lt 20 ]; do gcc -o $W/big $W/big.o || return; i=$((i+1)); done; }
forkexec() { i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done; }
write() { i=0; while [ $i -lt 5 ]; do dd if=/dev/zero of=$W/zero bs=65536 count=320 2>/dev/null; rm -f $W/zero; i=$((i+1)); done; }
gz() { gzip -9 -n -c $W/in8 > $W/in8.gz; }
xzp() { xz -6 -c $W/in3 > $W/in3.xz; }
srt() { sort -o $W/sorted $W/lines; }
shl() { i=0 s=0; while [ $i -lt 100000 ]; do case $((i % 3)) in 0) s=$((s + i));; 1) s=$((s ^ i));; *) s=$((s - 1));; esac; i=$((i+1)); done; echo $s > $W/shl; }

phase cc cc
phase link link
phase forkexec forkexec
phase write write
phase gzip gz
phase xz xzp
phase sort srt
phase sh shl
[ -f $W/big ] && $W/big 2000 > $W/big.out
for f in big.o big.out in8.gz in3.xz sorted shl; do [ -f $W/$f ] && sum $f $W/$f; done
echo XBT-MACRO-DONE
