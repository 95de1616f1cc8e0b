# bench/host.sh: what this host can run, for the benchmark scripts (sourced after $b,
# the build directory, is set).  A column the host cannot give is skipped with a note,
# never filled with something else: xbt-run falls back from the direct and adaptive
# user modes to strict where the host kernel cannot run a runner process (no 32-bit
# code segments, no seccomp, ...), so a "direct" column there would be strict mode.
#
# (The xbt-run asked is $xbt where the script sets it, else the build's.)
# host_notes: the notes to print under a table (one per line, possibly empty).
# host_ia32: 1 if the host kernel runs 32-bit x86 programs (the native columns).
# xbt_mode_ok MODE: true if xbt-run runs guest user code in MODE here.
# xbt_modes: those of direct, strict, adaptive (in that order) it runs.
host_notes=""
host_ia32=0
if "$b/bench/native_nano" --probe >/dev/null 2>&1; then
    host_ia32=1
else
    host_notes="${host_notes}native: this host does not run 32-bit x86 programs (ia32_emulation=0, or a hypervisor that gives user space no compatibility mode): skipped"$'\n'
fi
xbt_caps=$("${xbt:-$b/tools/xbt-run}" --capabilities 2>/dev/null) # run-macro's XBT_RUN
xbt_mode_ok() {
    case $1 in
    strict) return 0 ;;
    direct|adaptive) printf '%s\n' "$xbt_caps" | grep -q "^user-$1 yes" ;;
    *) return 1 ;;
    esac
}
for mode in direct adaptive; do
    if ! xbt_mode_ok $mode; then
        why=$(printf '%s\n' "$xbt_caps" | sed -n "s/^user-$mode no: //p")
        host_notes="${host_notes}xbt $mode mode: not on this host (${why:-xbt-run --capabilities failed}): skipped; the default mode falls back to strict here"$'\n'
    fi
done
xbt_modes=""
for mode in direct strict adaptive; do xbt_mode_ok $mode && xbt_modes="$xbt_modes $mode"; done
unset mode why
