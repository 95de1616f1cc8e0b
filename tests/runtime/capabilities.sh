#!/bin/bash
# capabilities.sh XBT_RUN GUEST: `xbt-run --capabilities` names every XBT_CAP_* bit once,
# as "name yes" or "name no: why"; strict mode is always there; and what it says of the
# direct and adaptive user modes is what a run asking for them gets (xbt-run notes a
# fall-back to strict mode, and only then).
set -u
xbt=$1 guest=$2
out=$("$xbt" --capabilities) || { echo "FAIL: --capabilities exited $?"; exit 1; }
printf '%s\n' "$out"
fail=0
for cap in user-strict user-direct user-adaptive pae traces trace-profile string-io debug \
           policy watch; do
    n=$(printf '%s\n' "$out" | grep -c -E "^$cap (yes|no: .+)$")
    [ "$n" = 1 ] || { echo "FAIL: $cap listed $n times (or a 'no' without a reason)"; fail=1; }
done
[ "$(printf '%s\n' "$out" | wc -l)" = 10 ] ||
    { echo "FAIL: not 10 lines (an XBT_CAP_* bit xbt-run does not name: unnamed-bit-N)"; fail=1; }
printf '%s\n' "$out" | grep -qx 'user-strict yes' || { echo "FAIL: strict mode missing"; fail=1; }
for mode in direct adaptive; do
    note=$("$xbt" --user-mode $mode "$guest" 2>&1 >/dev/null |
           sed -n 's/^xbt-run: note: guest user code runs translated (strict mode): //p')
    if printf '%s\n' "$out" | grep -qx "user-$mode yes"; then
        [ -z "$note" ] || { echo "FAIL: $mode listed but the run fell back to strict"; fail=1; }
    else
        why=$(printf '%s\n' "$out" | sed -n "s/^user-$mode no: //p")
        # the whole reason, as the library gives it (a short buffer once cut it)
        [ "$note" = "$why" ] ||
            { echo "FAIL: $mode missing ($why) but the run noted '$note'"; fail=1; }
    fi
done
[ $fail = 0 ] && echo "PASS: capabilities agree with what runs"
exit $fail
