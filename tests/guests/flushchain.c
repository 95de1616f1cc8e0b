/*
 * flushchain.c - blocks that fill the translation cache one by one (run with a tiny
 * cache: each block's translation flushes it and lands at the cache's start), all of
 * one shape: 64 PUSHFDs, whose translation is larger than half of a 4 KiB cache.  The
 * block that just ran left by its unchained exit at some offset of the cache; the next
 * one, translated after a flush, lies at the same place and has its own exit at that
 * offset.  The dispatcher must not chain the old exit's address in the new generation:
 * it would chain the new block to itself (found by review, 2026-12-04: the exit of a
 * block of the generation before a flush was looked up in the new one).  Without the
 * fix the second block of a run of PUSHFDs jumped back to itself and pushed on
 * until the stack ran out.
 */
#include "lib/guest.h"

void main(void)
{
    for (u32 r = 0; r < 20; r++) {
        u32 before, after, flags;
        __asm__ volatile("movl %%esp, %0\n\t"
                         ".rept 4\n\t.rept 64\n\tpushfl\n\t.endr\n\t.endr\n\t"
                         "movl (%%esp), %2\n\t"
                         "addl $1024, %%esp\n\t"
                         "movl %%esp, %1"
                         : "=&r"(before), "=&r"(after), "=&r"(flags) : : "memory");
        if (after != before && phase_miss())
            printf("  round %u: esp %x after 256 pushes and a 1024-byte pop, %x before\n",
                   r, after, before);
        if (!(flags & 2) && phase_miss())
            printf("  round %u: pushed flags %x without the reserved bit 1\n", r, flags);
    }
    phase_end("256 PUSHFDs in blocks of one shape, each translated after a flush");
    guest_exit();
}
