/*
 * ibl_wide.c - more indirect-branch targets than the inline lookup table used to list:
 * 12,288 of them (one RET per byte of a buffer, reached by an indirect CALL), swept four
 * times, with a function rewritten between sweeps.  Each rewrite drops that function's
 * translation, and its next indirect call must run the new code (the table forgets the
 * entry into the dropped block).  The table keeps its other entries: xbt's run
 * (ctest, XBT_IBL_MISS_MAX) allows 20,000 inline-lookup misses in all.  Until
 * 2026-12-02 a table listed at most 8,192 entries and, past that, was reset at its next
 * pruning, so every sweep after a rewrite missed on every target again (about 49,000).
 */
#include "lib/guest.h"

#define TARGETS 12288
static u8 rets[TARGETS] __attribute__((aligned(4096)));
static u8 patch[4096] __attribute__((aligned(4096)));

/* Calls every RET of the buffer through one indirect CALL; returns how many returned. */
static u32 sweep(void)
{
    u32 n = 0;
    for (u32 i = 0; i < TARGETS; i++) {
        __asm__ volatile("call *%0" : : "r"(rets + i) : "eax", "ecx", "edx", "memory");
        n++;
    }
    return n;
}

/* patch: mov eax, imm32; ret, rewritten to return v. */
static void set_patch(u32 v)
{
    patch[0] = 0xb8;
    *(volatile u32 *)(patch + 1) = v;
    patch[5] = 0xc3;
}

static u32 call_patch(void)
{
    u32 (*volatile f)(void) = (u32 (*)(void))patch;
    return f();
}

void main(void)
{
    for (u32 i = 0; i < TARGETS; i++)
        rets[i] = 0xc3;
    set_patch(7);
    CHECK_EQ(call_patch(), 7, "rewritten function before the sweeps");
    for (u32 round = 0; round < 4; round++) {
        CHECK_EQ(sweep(), TARGETS, "every indirect call returned");
        set_patch(100 + round);
        CHECK_EQ(call_patch(), 100 + round, "the rewritten function's new code runs");
    }
}
