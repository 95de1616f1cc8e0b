#!/bin/bash
# check_fast_callouts.sh LIBXBT.a: the fast callouts run with the guest's x87/SSE state
# live in the host registers, so their object must call nothing outside itself and use
# no x87, MMX, SSE or AVX register (src/runtime/callouts_fast.c, WARNING comment).
set -eu
lib=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && ar x "$lib" callouts_fast.c.o)
obj=$tmp/callouts_fast.c.o
undef=$(nm -u "$obj" | grep -v '_GLOBAL_OFFSET_TABLE_' || true)
if [ -n "$undef" ]; then
    echo "FAIL: callouts_fast calls outside itself:"; echo "$undef"; exit 1
fi
vec=$(objdump -d -M intel "$obj" | grep -E '[xyz]mm[0-9]|\bst\([0-9]|\bmm[0-7]\b|\bf(ld|st|x?save|xrstor|ninit)' || true)
if [ -n "$vec" ]; then
    echo "FAIL: callouts_fast uses x87/SSE/AVX registers:"; echo "$vec"; exit 1
fi
echo "callouts_fast: no external calls, no x87/SSE/AVX register use"
