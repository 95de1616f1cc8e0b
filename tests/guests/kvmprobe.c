/*
 * kvmprobe.c - the probe run-guest.sh uses before trusting KVM as a peer: turns on
 * paging (identity-mapped 4 MiB PSE pages) and off again.  Hardware virtualization
 * passes; this machine's kvm-pvm (a software hypervisor) triple-faults on CR0.PG.
 */
#include "lib/guest.h"

static u32 pd[1024] __attribute__((aligned(4096)));

void main(void)
{
    for (u32 i = 0; i < 64; i++)
        pd[i] = (i << 22) | 0x83; /* present, writable, 4 MiB */
    u32 cr0, cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x10));
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd));
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u));
    volatile u32 x = 0x1234;
    CHECK_EQ(x, 0x1234, "memory through 4 MiB identity pages");
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0));
    CHECK(!(cr0 & 0x80000000u), "paging off again");
}
