/*
 * ibl_wide.c - more indirect-branch targets than the inline lookup table used to list:
 * 12,288 of them (one RET per byte of a buffer, reached by an indirect CALL), swept four
 * times, with a function rewritten between sweeps.  Each rewrite drops that function's
 * translation, and its next indirect call must run the new code (the table forgets the
 * entry into the dropped block).  The table keeps its other entries: xbt's run
 * (ctest, XBT_IBL_MISS_MAX) allows 20,000 inline-lookup misses in all.  Until
 * 2026-12-02 a table listed at most 8,192 entries and, past that, was reset at its next
 * pruning, so every sweep after a rewrite missed on every target again (about 49,000).
 *
 * Then pairs of targets 64 KiB apart (the same low 16 bits, one entry of the table),
 * called alternately 12,800 times: the evicted one of a pair is found in its victim
 * entry (before 2026-12-02, each call missed: 12,800 more).  A function whose entry was
 * evicted to its victim entry is rewritten, and its next call must run the new code.
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

/* Two RETs per pair, at conf + i and conf + 64 KiB + i; the page at conf + 8 KiB holds a
   function to rewrite, whose twin 64 KiB on is a RET too. */
#define PAIRS 64
static u8 conf[65536 + 16384] __attribute__((aligned(65536)));

static void call_at(const u8 *p)
{
    __asm__ volatile("call *%0" : : "r"(p) : "eax", "ecx", "edx", "memory");
}

static u32 call_fn(u8 *p)
{
    u32 (*volatile f)(void) = (u32 (*)(void))p;
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

    for (u32 i = 0; i < sizeof conf; i++)
        conf[i] = 0xc3;
    u32 calls = 0;
    for (u32 round = 0; round < 100; round++)
        for (u32 i = 0; i < PAIRS; i++) {
            call_at(conf + i);
            call_at(conf + 65536 + i);
            calls += 2;
        }
    CHECK_EQ(calls, 2 * 100 * PAIRS, "alternating calls to pairs of targets 64 KiB apart");
    u8 *fn = conf + 8192;
    fn[0] = 0xb8, *(volatile u32 *)(fn + 1) = 1, fn[5] = 0xc3;
    CHECK_EQ(call_fn(fn), 1, "function before its rewrite");
    call_at(fn + 65536); /* its twin takes its entry: it moves to its victim entry */
    CHECK_EQ(call_fn(fn), 1, "function reached through its victim entry");
    call_at(fn + 65536);
    *(volatile u32 *)(fn + 1) = 2;
    CHECK_EQ(call_fn(fn), 2, "rewritten function evicted to its victim entry runs its new code");
}
