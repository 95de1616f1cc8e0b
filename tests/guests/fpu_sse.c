/*
 * (Built with -mno-sse like every guest: the compiler never touches XMM registers,
 * so the asm statements below need not declare them.)
 *
 * fpu_sse.c - x87 and SSE/SSE2 in a guest kernel: arithmetic, control and status
 * words, FXSAVE/FXRSTOR, and #NM while CR0.TS is set (the handler clears TS with CLTS
 * and the instruction runs again); SSE loops whose translated blocks chain to each
 * other, with and without a port access between.
 */
#include "lib/guest.h"

static volatile u32 nm_count;

static void nm_handler(struct frame *f)
{
    (void)f;
    nm_count++;
    __asm__ volatile("clts");
}

static u8 fxarea[512] __attribute__((aligned(16)));
static u8 fxarea2[512] __attribute__((aligned(16)));

void main(void)
{
    u32 cr0, cr4;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    cr0 = (cr0 & ~0x4u) | 0x22; /* EM off, MP and NE on */
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0));
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 0x600)); /* OSFXSR OSXMMEXCPT */
    __asm__ volatile("fninit");
    u16 cw = 0, sw = 0xffff;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    CHECK_EQ(cw, 0x37f, "fninit control word");
    __asm__ volatile("fnstsw %0" : "=m"(sw));
    CHECK_EQ(sw & 0x3800, 0, "fninit stack top 0");
    double x = 2.0, r;
    __asm__ volatile("fldl %1; fsqrt; fstpl %0" : "=m"(r) : "m"(x));
    u64 bits;
    memcpy(&bits, &r, 8);
    CHECK_EQ((u32)(bits >> 32), 0x3ff6a09e, "fsqrt(2) high word");
    CHECK_EQ((u32)bits, 0x667f3bcd, "fsqrt(2) low word");
    s32 iv = 0;
    double a = 10.5, b = 4.0;
    __asm__ volatile("fldl %1; fldl %2; fmulp; fistpl %0" : "=m"(iv) : "m"(a), "m"(b));
    CHECK_EQ(iv, 42, "fmul and fistp");
    __asm__ volatile("fldl %1; fdivl %2; fistpl %0" : "=m"(iv) : "m"(a), "m"(b));
    CHECK_EQ(iv, 3, "fdiv rounding to nearest (2.625 -> 3)");
    u16 newcw = 0x0f7f; /* round toward zero */
    __asm__ volatile("fldcw %2; fldl %1; fistpl %0; fldcw %3" : "=m"(iv) : "m"(a), "m"(newcw), "m"(cw));
    CHECK_EQ(iv, 10, "fldcw truncation");
    __asm__ volatile("fld1; fldz; fcompp; fnstsw %%ax; movw %%ax, %0" : "=m"(sw) : : "eax");
    CHECK_EQ(sw & 0x4500, 0x0100, "fcompp 0 < 1 sets C0");
    /* SSE */
    float fa[4] = { 1.5f, 2.5f, -3.0f, 4.0f }, fb[4] = { 0.5f, 0.5f, 1.0f, -4.0f }, fc[4];
    __asm__ volatile("movups %1, %%xmm0; movups %2, %%xmm1; addps %%xmm1, %%xmm0; movups %%xmm0, %0"
                     : "=m"(fc) : "m"(fa), "m"(fb));
    u32 fcb[4];
    memcpy(fcb, fc, 16);
    CHECK(fcb[0] == 0x40000000 && fcb[1] == 0x40400000 && fcb[2] == 0xc0000000 && fcb[3] == 0,
          "addps");
    double d1 = 3.0, d2;
    s32 n = 7;
    __asm__ volatile("cvtsi2sd %2, %%xmm2; mulsd %1, %%xmm2; sqrtsd %%xmm2, %%xmm2; movsd %%xmm2, %0"
                     : "=m"(d2) : "m"(d1), "r"(n));
    s32 back;
    __asm__ volatile("cvttsd2si %1, %0" : "=r"(back) : "m"(d2));
    CHECK_EQ(back, 4, "cvtsi2sd mulsd sqrtsd cvttsd2si (sqrt 21)");
    u32 mx = 0;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    CHECK_EQ(mx & 0xffc0, 0x1f80, "mxcsr default masks");
    /* FXSAVE / FXRSTOR round trip of an XMM register. */
    u32 pattern[4] = { 0xdeadbeef, 0x01234567, 0x89abcdef, 0xcafef00d }, got[4];
    __asm__ volatile("movups %0, %%xmm3; fxsave %1" : : "m"(pattern), "m"(fxarea) : "memory");
    CHECK(!memcmp(fxarea + 160 + 48, pattern, 16), "fxsave stores xmm3");
    __asm__ volatile("xorps %%xmm3, %%xmm3" : :);
    memcpy(fxarea2, fxarea, 512);
    __asm__ volatile("fxrstor %1; movups %%xmm3, %0" : "=m"(got) : "m"(fxarea2) : "memory");
    CHECK(!memcmp(got, pattern, 16), "fxrstor restores xmm3");
    /* #NM with CR0.TS: x87 and SSE both fault once, the handler clears TS. */
    set_handler(7, nm_handler);
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x8));
    __asm__ volatile("fldl %1; fstpl %0" : "=m"(r) : "m"(x));
    CHECK_EQ(nm_count, 1, "#NM on fld with ts set");
    memcpy(&bits, &r, 8);
    CHECK_EQ((u32)(bits >> 32), 0x40000000, "fld re-executed after clts");
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x8));
    __asm__ volatile("movups %1, %%xmm4; movups %%xmm4, %0" : "=m"(got) : "m"(pattern));
    CHECK_EQ(nm_count, 2, "#NM on movups with ts set");
    CHECK(!memcmp(got, pattern, 16), "movups re-executed after clts");
    /* x87 state survives exits to the VMM (port I/O between two x87 operations). */
    double v1 = 1.25, v2;
    __asm__ volatile("fldl %1; fld1; fld1; faddp\n\toutb %%al, $0x80\n\tmovw $0x3fd, %%dx\n\t"
                     "inb %%dx, %%al\n\tfstp %%st(0); fstpl %0" : "=m"(v2) : "m"(v1) : "eax", "edx");
    CHECK(v2 == 1.25, "x87 register survives port I/O exits");
    __asm__ volatile("movups %0, %%xmm5" : : "m"(pattern));
    outb(0x80, 0);
    __asm__ volatile("movups %%xmm5, %0" : "=m"(got) :);
    CHECK(!memcmp(got, pattern, 16), "xmm register survives port I/O exits");
    /* Loops whose blocks start with SSE and chain to each other (xbt: past the call
       that loads the guest's x87/SSE state, where the exit is only taken with it
       loaded).  In the second, a port access answered by the VMM (whose handler saves
       the state) lies between the load and the exit: that chain must load it again. */
    u32 one[4] = { 1, 2, 3, 4 }, sum[4];
    __asm__ volatile("movups %1, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\tmov $1000, %%ecx\n"
                     "1:\tpaddd %%xmm6, %%xmm7\n\tdec %%ecx\n\tjnz 1b\n\t"
                     "movups %%xmm7, %0" : "=m"(sum) : "m"(one) : "ecx");
    CHECK(sum[0] == 1000 && sum[1] == 2000 && sum[2] == 3000 && sum[3] == 4000,
          "a chained SSE loop: 1000 additions");
    __asm__ volatile("movups %1, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\tmov $200, %%ecx\n"
                     "1:\tpaddd %%xmm6, %%xmm7\n\toutb %%al, $0x80\n\ttest %%ecx, %%ecx\n\t"
                     "jz 2f\n\tpaddd %%xmm6, %%xmm7\n\tdec %%ecx\n\tjmp 1b\n"
                     "2:\tmovups %%xmm7, %0" : "=m"(sum) : "m"(one) : "eax", "ecx");
    CHECK(sum[0] == 401 && sum[1] == 802 && sum[2] == 1203 && sum[3] == 1604,
          "a chained SSE loop with a port access in it: 401 additions");
}
