# Sourced by run-guest.sh, escape.sh and contain.sh.  skip_if_no32 OUT: the variants
# that exist to run guest user code natively (xbt's direct mode, adaptive mode asked for
# explicitly) cannot on a host that runs no 32-bit code (ia32_emulation=off): xbt-run
# then runs user code translated and says so in its note (src/runtime/compat32.c).
# Such a run proves nothing about direct execution; skip it visibly (exit 77).
skip_if_no32() {
    local note
    note=$(grep -a -m1 'xbt-run: note: guest user code runs translated (strict mode): .*32-bit' "$1") || return 0
    echo "${note#xbt-run: note: }"
    echo "SKIP: host cannot run 32-bit code; this direct-execution variant needs it"
    exit 77
}
