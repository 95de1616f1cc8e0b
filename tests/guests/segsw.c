/* segsw.c (review): the same code loads DS with a flat selector, then with a based one. */
#include "lib/guest.h"
static volatile u32 data[4] = { 0x11111111, 0x22222222, 0x33333333, 0x44444444 };
static volatile u32 g_ds;
__attribute__((noinline)) static u32 load_via(u32 esi)
{
    u32 v;
    __asm__ volatile("pushl %%ds\n\tmovl g_ds, %%edx\n\tmovl %%edx, %%ds\n\tlodsl\n\tpopl %%ds"
                     : "=a"(v), "+S"(esi) : : "edx", "memory");
    return v;
}
__attribute__((noinline)) static u32 movs_via(u32 esi)
{
    u32 v = 0, *d = &v;
    __asm__ volatile("pushl %%ds\n\tmovl g_ds, %%edx\n\tmovl %%edx, %%ds\n\tmovsl\n\tpopl %%ds"
                     : "+S"(esi), "+D"(d) : : "edx", "memory");
    return v;
}
void main(void)
{
    gdt_set(13, 0x10000000u, 0xfffff, 0x92, 0xc);
    gdt_set(14, 0x10000000u, 0xfffff, 0x93, 0xc); /* accessed */
    gdt_reload();
    u32 sels[6] = { 0x10, 0x68, 0x10, 0x70, 0x68, 0x70 };
    for (int i = 0; i < 6; i++) {
        g_ds = sels[i];
        u32 off = (u32)&data[1] - (sels[i] == 0x10 ? 0 : 0x10000000u);
        u32 a = load_via(off), b = movs_via(off);
        printf("sel %x: lods %x movs %x\n", sels[i], a, b);
        CHECK(a == 0x22222222 && b == 0x22222222, "based DS");
    }
    guest_exit();
}
