/* hello.c - the demo guest: a banner, a few checks, a clean exit. */
#include "lib/guest.h"

static u32 fib(u32 n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

void main(void)
{
    printf("Hello from a 32-bit guest kernel at CPL 0.\n");
    u32 a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    char vendor[13];
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    printf("CPU vendor as the guest sees it: %s\n", vendor);
    u64 t0 = rdtsc();
    u32 f = fib(24);
    u64 t1 = rdtsc();
    printf("fib(24) = %u in %u cycles\n", f, (u32)(t1 - t0));
    CHECK_EQ(f, 46368, "fib(24)");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    CHECK(cr0 & 1, "protected mode");
    const u32 *mbi = (const u32 *)multiboot_info;
    CHECK(mbi[0] & 1, "multiboot memory information present");
    printf("memory: %u KiB low, %u KiB high\n", mbi[1], mbi[2]);
    if (mbi[0] & 4)
        printf("command line: %s\n", (const char *)mbi[4]);
    if (mbi[0] & 8) {
        const u32 *mods = (const u32 *)mbi[6];
        for (u32 i = 0; i < mbi[5]; i++)
            printf("module %u: %x-%x '%s' first byte %c\n", i, mods[4 * i], mods[4 * i + 1],
                   (const char *)mods[4 * i + 2], *(const char *)mods[4 * i]);
    }
}
