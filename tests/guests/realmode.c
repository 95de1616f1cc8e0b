/*
 * realmode.c - real mode and 16-bit code, checked against the SDM: the way down from
 * 32-bit protected mode through a 16-bit code segment to real mode with segments whose
 * bases are not 0, and there 16-bit arithmetic and flags, the 0x66 and 0x67 prefixes,
 * the stack with SP wrapping and ESP's upper half kept, near and far calls, returns and
 * jumps (also to CS=0x0800 running the same bytes), INT n, IRET and IRETL, INT3, INTO
 * and exceptions through the IVT (#DE, #UD, #GP: the pushed IP, no error code), LOOP/JCXZ
 * with CX and ECX, Jcc rel8/rel16, string instructions (REP, both directions, segment
 * overrides, SI and DI wrapping at 64 KiB), SS as the default for BP-based addresses,
 * LDS/LES/LFS/LGS/LSS and MOV to segment registers (base = 16 * value), XLAT,
 * ENTER/LEAVE, PUSHA/POPA, PUSHF/POPF (IF, DF, ID), LAHF/SAHF, CBW..CDQ, MOVZX/MOVSX,
 * BSWAP, AAD/AAM, XCHG/CMPXCHG/XADD, BT* with register offsets, SHLD/SHRD, 16-bit
 * MUL/DIV, CLI/STI, IN/OUT, CPUID, RDTSC, a PIT interrupt waking HLT through the IVT,
 * self-modifying code, big real mode (a 4 GiB GS limit kept after PE is cleared and
 * across real-mode loads), and 16-bit protected mode (CS.D=0, SS.B=0: push, pop, near
 * and far call and return, loop).  The checks are written in
 * realmode16.S; each leaves (name, want, got) in a table printed here.
 *
 * The #GP checked in real mode is INT n beyond the IDTR limit (also an IVT at base
 * 0x20004).  Not checked: segment limit violations (a word at offset 0xffff, a dword at
 * 0xfffe, a 0x67 offset of 0x10000: #GP by the SDM): QEMU TCG does not check segment
 * limits and reads across them, so the reference peer cannot confirm it.  Nor single
 * steps: a #DB after INT n with TF set is counted, not required (QEMU raises none).
 * Virtual-8086 mode is v86.c's.
 */
#include "lib/guest.h"

/* realmode16.S */
extern const u8 rm_base[], rm_data[], rm_end[], results[];
extern const u16 rm_vectors[], recp[], rm_finished[], exc_vec[], exc_ip[], exc_cs[];
extern const u32 cpuid0_ebx[];
extern const u8 ivt_desc[];
void rm_run(void);

#define RM_LINEAR 0x10000u  /* where the blob runs (CS = 0x1000) */
#define IVT_BASE 0x20000u
#define UNREAL_ADDR 0x800000u

/* The blob's copy in low memory of a symbol of realmode16.S. */
#define LOW(sym) ((void *)(RM_LINEAR + (u32)(sym) - (u32)rm_base))

struct result {
    u32 name, want, got;
};

void main(void)
{
    u32 size = (u32)rm_end - (u32)rm_base;
    printf("realmode: %u bytes of 16-bit code and data at 0x%x\n", size, RM_LINEAR);
    memcpy((void *)RM_LINEAR, rm_base, size);
    /* GDT 13-17 (guest.h leaves them free): a 16-bit code segment over the blob, 64 KiB
       data, a flat 4 GiB data segment for big real mode, a 16-bit stack, the data part. */
    gdt_set(13, RM_LINEAR, 0xffff, 0x9a, 0x0);
    gdt_set(14, 0, 0xffff, 0x92, 0x0);
    gdt_set(15, 0, 0xfffff, 0x92, 0xc);
    gdt_set(16, 0x30000, 0xffff, 0x92, 0x0);
    gdt_set(17, (u32)LOW(rm_data), 0xffff, 0x92, 0x0);
    /* The IVT at 0x20000: vectors 0-31 through stubs that record the frame, the others
       through one that says "unexpected", 0x40 the INT n handler, 0x20 the PIT's. */
    u32 *ivt = (u32 *)IVT_BASE;
    for (int v = 0; v < 256; v++)
        ivt[v] = (0x1000u << 16) | rm_vectors[v < 32 ? v : 32];
    ivt[0x40] = (0x1000u << 16) | rm_vectors[33];
    ivt[0x20] = (0x1000u << 16) | rm_vectors[34]; /* IRQ0 (pic_init's base 0x20) */
    u32 r[4];
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(0), "c"(0));
    *(u32 *)LOW(cpuid0_ebx) = r[1];
    *(volatile u32 *)UNREAL_ADDR = 0;

    rm_run();

    printf("realmode: back in 32-bit protected mode\n");
    const struct result *res = LOW(results);
    u32 n = (*(const u16 *)LOW(recp) - ((u32)results - (u32)rm_data)) / sizeof *res;
    for (u32 i = 0; i < n; i++)
        check_eq(res[i].got, res[i].want, (const char *)res[i].name);
    if (!*(const u16 *)LOW(rm_finished))
        printf("realmode: stopped by vector %u at %x:%x\n", *(const u16 *)LOW(exc_vec),
               *(const u16 *)LOW(exc_cs), *(const u16 *)LOW(exc_ip));
    CHECK(*(const u16 *)LOW(rm_finished), "the 16-bit part ran to its end");
    CHECK(n >= 300, "at least 300 checks recorded");
    CHECK_EQ(*(volatile u32 *)UNREAL_ADDR, 0xcafef00d, "unreal write seen at 8 MiB from protected mode");
}
