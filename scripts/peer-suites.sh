#!/bin/bash
# peer-suites.sh [kvm-unit-tests|xv6|all]: guests nobody here wrote, on xbt-run and on
# QEMU TCG side by side.
#
#   KVM_UNIT_TESTS_DIR  a checkout of github.com/kvm-unit-tests/kvm-unit-tests
#   XV6_DIR             a checkout of github.com/mit-pdos/xv6-public
#   PEER_BUILD_DIR      where they are built (default build/peers); their checkouts are
#                       never modified (kvm-unit-tests builds out of tree, xv6 is copied
#                       here and built without -Werror)
#   XBT_RUN             xbt-run (default build/tools/xbt-run)
#   KUT_TIMEOUT         seconds per kvm-unit-tests test and peer (default 90, or the
#                       test's own timeout from unittests.cfg)
#   XV6_TIMEOUT         seconds for usertests per peer (default 1800)
#   KUT_ONLY            an extended regex: only the kvm-unit-tests whose names match
#   PEER_SMP            vCPUs (default 1): xv6 and the single-CPU kvm-unit-tests run on
#                       that many (xbt-run --smp, QEMU -smp)
#
# kvm-unit-tests: every i386 test of x86/unittests.cfg (not those that need KVM: accel
# = kvm, -cpu host), with the CPU count it names (smp = N, 1 to 8), and dummy,
# hpet_read_test and init, run as its x86/run runs them on QEMU (pc-testdev,
# isa-debug-exit at 0xf4, pci-testdev, --no-reboot, the environment file as the initrd,
# the test's qemu_params); on xbt-run the same image with the environment file as a
# multiboot module and the test's arguments as the command line.  xv6: the kernel
# (multiboot) with fs.img as disk 1 and 512 MiB, "usertests" typed at the shell.
#
# Prints one table per suite.  Exit status: 0 when every difference between the peers
# is one of the known ones listed below (with its reason), 1 otherwise; 77 ("SKIP: ...")
# when neither checkout is given or QEMU is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${PEER_BUILD_DIR:-$root/build/peers}
xbt_run=${XBT_RUN:-$root/build/tools/xbt-run}
what=${1:-all}
qemu=qemu-system-i386
unexplained=0

# Known differences with the current runtime: test -> reason.  A difference not listed
# here makes the run fail; a listed one that no longer differs is reported as fixed.
vendor_reason="CPUID vendor 'xbtVirtualCP': the library takes the AMD path, MSR 0xc0010000 raises #GP (src/runtime/cpumodel.c)"
declare -A known=(
    [tsc]="xbt passes 6 (RDTSCP 3, RDPID 3: CPUID.7.0:ECX.RDPID is in the model); QEMU 7.2 TCG has no RDPID, even with -cpu max: 3 (src/runtime/cpumodel.c)"
    [msr]="xbt passes all 1065 (6 machine-check banks; every x2APIC MSR #GP, as without x2APIC); QEMU 7.2 TCG (-cpu max: 10 banks, 1073 checks) fails 988: no #GP where the SDM has one, for the x2APIC MSRs with x2APIC off (771), the machine-check MSRs beyond its banks and bad MCi_CTL/STATUS values (196), SPEC_CTRL/PRED_CMD/FLUSH_CMD, the 64-bit MSRs, and it drops EFER.SCE (src/runtime/cpumodel.c)"
    [emulator]="xbt passes all 86 (string_io_mmio, REP INSB into MMIO, since 2026-11-30); QEMU TCG fails 2 of them"
    [s3]="xbt resumes at the waking vector (RTC alarm wake, real mode) and passes; QEMU TCG's S3 wake is a system reset, which -no-reboot turns into an exit"
    [taskswitch2]="xbt passes all 13 (the VM86 task included); QEMU 7.2 TCG passes 12, then writes garbage to the serial port after the VM86 part and exits with status 5"
)

command -v "$qemu" >/dev/null || { echo "SKIP: $qemu not installed"; exit 77; }
[ -x "$xbt_run" ] || { echo "SKIP: xbt-run not built ($xbt_run)"; exit 77; }
if [ -z "${KVM_UNIT_TESTS_DIR:-}" ] && [ -z "${XV6_DIR:-}" ]; then
    echo "SKIP: set KVM_UNIT_TESTS_DIR and/or XV6_DIR to local checkouts"
    exit 77
fi
mkdir -p "$build"

# ---- outcome of one run -------------------------------------------------------------
# outcome PEER STATUS FILE: a short word for what happened.
outcome() {
    local peer=$1 st=$2 f=$3 s
    s=$(grep -a -o 'SUMMARY: .*' "$f" | tail -1 | tr -d '\r')
    case "$st" in
    124) echo "timeout" ;;
    1) echo "pass${s:+ (${s#SUMMARY: })}" ;;
    3) echo "fail${s:+ (${s#SUMMARY: })}" ;;
    77) echo "skip${s:+ (${s#SUMMARY: })}" ;;
    127) echo "exception $(grep -a -o 'Unhandled exception [0-9]* #[A-Z]*' "$f" | head -1 | sed 's/Unhandled exception //')" ;;
    *)
        if [ "$peer" = xbt ]; then
            case "$st" in
            0) echo "halt or power-off" ;;
            2) echo "triple fault" ;;
            4) echo "reset" ;;
            6) echo "S3 suspend" ;;
            70) echo "xbt internal error: $(grep -a -o 'internal error at [^:]*: .*' "$f" | head -1 | cut -c1-90)" ;;
            *) echo "status $st" ;;
            esac
        else
            case "$st" in
            0) echo "reset" ;; # --no-reboot: a reset or power-off ends QEMU with 0
            *) echo "status $st" ;;
            esac
        fi ;;
    esac
}

# ---- kvm-unit-tests -------------------------------------------------------------------
# The i386 tests: "name|file|args|qemu_params|timeout|cpus" per line.
kut_list() {
    awk -v FS=' = ' -v psmp="${PEER_SMP:-1}" '
        function flush() {
            if (smp == "") smp = 1
            if (name != "" && file != "" && smp ~ /^[1-8]$/ && (arch == "" || arch == "i386") &&
                accel != "kvm" && qp !~ /-cpu host/) {
                if (smp == 1 && psmp > 1) smp = psmp
                printf "%s|%s|%s|%s|%s|%s\n", name, file, args, qp, to, smp
            }
            name = ""; file = ""; args = ""; qp = ""; smp = ""; arch = ""; to = ""; accel = ""
        }
        /^\[/ { flush(); name = substr($0, 2, length($0) - 2); next }
        $1 == "file" { file = $2 }
        $1 == "smp" { smp = $2 }
        $1 == "arch" { arch = $2 }
        $1 == "timeout" { to = $2 }
        $1 == "accel" { accel = $2 }
        $1 == "test_args" { a = $2; gsub(/^["\x27]|["\x27]$/, "", a); args = a }
        $1 == "qemu_params" { qp = $2 }
        $1 == "extra_params" {
            e = $2
            if (match(e, /-append ["\x27][^"\x27]*["\x27]/)) {
                a = substr(e, RSTART + 8, RLENGTH - 9); args = a
                e = substr(e, 1, RSTART - 1) substr(e, RSTART + RLENGTH)
            }
            qp = e
        }
        END { flush() }' "$KVM_UNIT_TESTS_DIR/x86/unittests.cfg"
    # Built for i386 but not in unittests.cfg.
    local n=${PEER_SMP:-1}
    printf '%s\n' "dummy|dummy.flat||||$n" "hpet_read_test|hpet_read_test.flat||||$n" "init|init.flat||||$n"
}

run_kut() {
    local b=$build/kvm-unit-tests log=$build/kvm-unit-tests.log
    mkdir -p "$b"
    echo "== kvm-unit-tests: building in $b"
    if ! (cd "$b" && { [ -f config.mak ] || "$KVM_UNIT_TESTS_DIR/configure" --arch=i386; } &&
          make -j2) >"$log" 2>&1; then
        echo "FAIL: kvm-unit-tests does not build (see $log)"; unexplained=1; return
    fi
    local env=$b/peer-suites.env out
    echo "PEER_SUITES=1" >"$env"
    out=$(mktemp)
    printf '%-26s %-42s %-42s %s\n' TEST xbt qemu-tcg ""
    while IFS='|' read -r name file args qp to smp; do
        local flat=$b/x86/$file
        [ -f "$flat" ] || continue # another architecture's (svm)
        [[ -z "${KUT_ONLY:-}" || "$name" =~ ^(${KUT_ONLY})$ ]] || continue
        local t=${KUT_TIMEOUT:-${to:-90}} rx rq
        [ "$t" -ge 10 ] 2>/dev/null || t=90
        # QEMU's -cpu max is xbt-run's --cpu max (everything each implements).
        local cpu=()
        [[ " $qp " == *" -cpu max "* ]] && cpu=(--cpu max)
        timeout "$t" "$xbt_run" --timeout "$((t - 5))" --smp "$smp" "${cpu[@]}" --module "$env" \
            ${args:+--append "$args"} "$flat" </dev/null >"$out.xbt" 2>&1
        rx=$(outcome xbt $? "$out.xbt")
        # shellcheck disable=SC2086 # qemu_params are words
        timeout "$t" "$qemu" --no-reboot -nodefaults -device pc-testdev \
            -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -serial stdio \
            -device pci-testdev -machine accel=tcg -smp "$smp" $qp -kernel "$flat" -initrd "$env" \
            ${args:+-append "$args"} </dev/null >"$out" 2>&1
        rq=$(outcome qemu $? "$out")
        local note="" why=""
        # The library's first MSR read of an AMD CPU, in the exception dump.
        if [[ "$rx" == "exception 13 #GP"* ]] && grep -aq "rcx=00000000c0010000" "$out.xbt"; then
            why=$vendor_reason
        fi
        if [ -n "${known[$name]:-}" ]; then
            why="${why:+$why; then }${known[$name]}"
        fi
        if [ "$rx" != "$rq" ]; then
            if [ -n "$why" ]; then note="known: $why"; else note="DIFFERS"; unexplained=1; fi
        elif [ -n "${known[$name]:-}" ]; then
            note="(listed as known, now the same)"
        fi
        printf '%-26s %-42s %-42s %s\n' "$name" "${rx:0:42}" "${rq:0:42}" "$note"
    done < <(kut_list)
    rm -f "$out" "$out.xbt"
}

# ---- xv6 ------------------------------------------------------------------------------
# xv6_run PEER IMAGE OUT: boots xv6, types usertests at the first prompt, waits for the
# verdict; prints "<result> <seconds of usertests>".
xv6_run() {
    local peer=$1 img=$2 out=$3 fifo pid t0 t1 limit=${XV6_TIMEOUT:-1800}
    fifo=$(mktemp -u)
    mkfifo "$fifo"
    case "$peer" in
    xbt) "$xbt_run" --smp "${PEER_SMP:-1}" --mem 512 --disk "index=1,file=$img" "$build/xv6/kernel" \
             <"$fifo" >"$out" 2>&1 & ;;
    qemu) "$qemu" -accel tcg -smp "${PEER_SMP:-1}" -m 512 -kernel "$build/xv6/kernel" \
              -drive "file=$img,index=1,media=disk,format=raw" -display none -nographic \
              -monitor none -serial stdio -no-reboot <"$fifo" >"$out" 2>&1 & ;;
    esac
    pid=$!
    exec 9>"$fifo"
    local i=0 result=timeout
    while [ $i -lt 600 ] && ! grep -aq '^\$ ' "$out"; do sleep 0.1; i=$((i + 1)); done
    t0=$(date +%s.%N)
    printf 'usertests\n' >&9
    while kill -0 "$pid" 2>/dev/null; do
        if grep -aq "ALL TESTS PASSED" "$out"; then result=pass; break; fi
        if grep -aq "FAILED\|panic" "$out"; then result=fail; break; fi
        [ "$(awk "BEGIN{print ($(date +%s.%N) - $t0 > $limit)}")" = 1 ] && break
        sleep 0.5
    done
    kill -0 "$pid" 2>/dev/null || [ "$result" != timeout ] || result="ended"
    t1=$(date +%s.%N)
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    exec 9>&-
    rm -f "$fifo"
    echo "$result $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")"
}

run_xv6() {
    local b=$build/xv6 log=$build/xv6.log
    echo "== xv6: building in $b"
    rm -rf "$b"
    mkdir -p "$b"
    (cd "$XV6_DIR" && tar --exclude=.git -cf - .) | (cd "$b" && tar -xf -)
    sed -i 's/-Werror//' "$b/Makefile" # today's gcc warns where xv6's did not
    if ! make -C "$b" kernel fs.img >"$log" 2>&1; then
        echo "FAIL: xv6 does not build (see $log)"; unexplained=1; return
    fi
    local rx rq out
    out=$(mktemp)
    cp "$b/fs.img" "$b/fs-xbt.img"
    rx=$(xv6_run xbt "$b/fs-xbt.img" "$out")
    grep -a "test\|ok\|passed\|FAIL\|panic" "$out" | tail -3 | sed 's/^/  xbt: /'
    cp "$b/fs.img" "$b/fs-qemu.img"
    rq=$(xv6_run qemu "$b/fs-qemu.img" "$out")
    grep -a "test\|ok\|passed\|FAIL\|panic" "$out" | tail -3 | sed 's/^/  qemu: /'
    rm -f "$out"
    printf '%-26s %-20s %-20s\n' "xv6 usertests" "xbt" "qemu-tcg"
    printf '%-26s %-20s %-20s\n' "result, seconds" "$rx" "$rq"
    [ "${rx%% *}" = pass ] || unexplained=1
}

case "$what" in
kvm-unit-tests|xv6|all) ;;
*) echo "usage: peer-suites.sh [kvm-unit-tests|xv6|all]" >&2; exit 2 ;;
esac
if [ "$what" != xv6 ]; then
    if [ -n "${KVM_UNIT_TESTS_DIR:-}" ]; then run_kut
    elif [ "$what" = kvm-unit-tests ]; then echo "SKIP: KVM_UNIT_TESTS_DIR is not set"; exit 77; fi
fi
if [ "$what" != kvm-unit-tests ]; then
    if [ -n "${XV6_DIR:-}" ]; then run_xv6
    elif [ "$what" = xv6 ]; then echo "SKIP: XV6_DIR is not set"; exit 77; fi
fi
exit $unexplained
