/*
 * mmio.c - memory-mapped I/O: QEMU's pc-testdev scratch block at 0xff000000 (64 KiB
 * that reads back what was written; xbt-run provides the same block), accessed with
 * 8/16/32-bit MOV, MOVZX and MOVSX, string instructions (STOS, MOVS, LODS, SCAS, CMPS),
 * read-modify-write instructions, with paging off and through a paged mapping, and
 * accesses that cross from RAM into MMIO and back (a #PF on the RAM side comes before
 * the device sees anything), and INS/OUTS with the memory side on MMIO.
 */
#include "lib/guest.h"

#define IOMEM 0xff000000u

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[1024] __attribute__((aligned(4096)));
static u32 pt_io[1024] __attribute__((aligned(4096)));
static u8 ram_pg[4096] __attribute__((aligned(4096)));
static u8 ram_pg2[4096] __attribute__((aligned(4096)));

/* The same load, store and add instructions again and again, on MMIO and on RAM (xbt
   makes instructions that keep reaching MMIO callouts; their RAM accesses must still be
   plain accesses, and their faults the guest's). */
static u32 __attribute__((noinline)) load_at(const volatile u32 *p)
{
    u32 v;
    __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(p) : "memory");
    return v;
}
static void __attribute__((noinline)) store_at(volatile u32 *p, u32 v)
{
    __asm__ volatile("movl %1, (%0)" : : "r"(p), "r"(v) : "memory");
}
static void __attribute__((noinline)) add_at(volatile u32 *p, u32 v)
{
    __asm__ volatile("addl %1, (%0)" : : "r"(p), "r"(v) : "memory");
}

static void mmio_sites(void)
{
    static u32 ram_words[4];
    u32 ok = 1, first_bad = ~0u;
    for (u32 i = 0; i < 64; i++) {
        volatile u32 *io = (volatile u32 *)(IOMEM + 0x800 + (i & 7) * 4);
        store_at(io, i * 3 + 1);
        add_at(io, 5);
        u32 a = load_at(io);
        store_at(&ram_words[i & 3], i);
        add_at(&ram_words[i & 3], 2);
        u32 b = load_at(&ram_words[i & 3]);
        if ((a != i * 3 + 6 || b != i + 2) && first_bad == ~0u)
            first_bad = i;
        ok &= a == i * 3 + 6 && b == i + 2 && ram_words[i & 3] == i + 2;
    }
    CHECK(ok, "the same load, store and add 64 times on mmio and on ram");
    if (!ok)
        printf("  first wrong at round %u\n", first_bad);
    u32 all = 1;
    for (u32 k = 0; k < 8; k++)
        all &= *(volatile u32 *)(IOMEM + 0x800 + k * 4) == (56 + k) * 3 + 6;
    CHECK(all, "the device holds the last round's values");
    /* Then RAM only, long enough for xbt to give the sites up, and MMIO once more. */
    ok = 1;
    for (u32 i = 0; i < 500; i++) {
        store_at(&ram_words[i & 3], i);
        add_at(&ram_words[i & 3], 7);
        ok &= load_at(&ram_words[i & 3]) == i + 7;
    }
    store_at((volatile u32 *)(IOMEM + 0x820), 0x600d);
    add_at((volatile u32 *)(IOMEM + 0x820), 1);
    ok &= load_at((volatile u32 *)(IOMEM + 0x820)) == 0x600e;
    CHECK(ok, "the same instructions on ram 500 times, then on mmio again");
}

/* Every plain form an MMIO site answers from its record (translate.c mmio_form, mmio.c
   mmio_plain), each instruction run 40 times so that it becomes a site: byte, word and
   dword MOV loads and stores, AH..BH as source and destination, immediate stores,
   MOVZX and MOVSX into 16 and 32 bits (the register's other bytes as the CPU leaves
   them), and an address through a segment whose base is not 0. */
#define ONE_FORM(name, insn, ...)                                                         \
    static u32 __attribute__((noinline)) name(volatile void *p, u32 r)                   \
    {                                                                                      \
        __asm__ volatile(insn : "+b"(r) : "S"(p) __VA_ARGS__);                             \
        return r;                                                                          \
    }
ONE_FORM(st8_bh, "movb %%bh, (%1)", : "memory")
ONE_FORM(ld8_bh, "movb (%1), %%bh", : "memory")
ONE_FORM(st8_bl, "movb %%bl, 1(%1)", : "memory")
ONE_FORM(ld8_bl, "movb 1(%1), %%bl", : "memory")
ONE_FORM(st16, "movw %%bx, 2(%1)", : "memory")
ONE_FORM(ld16, "movw 2(%1), %%bx", : "memory")
ONE_FORM(st8_imm, "movb $0x9c, 4(%1)", : "memory")
ONE_FORM(st16_imm, "movw $0x8123, 6(%1)", : "memory")
ONE_FORM(st32_imm, "movl $0xfedc4321, 8(%1)", : "memory")
ONE_FORM(zx8_32, "movzbl 4(%1), %%ebx", : "memory")
ONE_FORM(sx8_32, "movsbl 4(%1), %%ebx", : "memory")
ONE_FORM(zx8_16, "movzbw 4(%1), %%bx", : "memory")
ONE_FORM(sx8_16, "movsbw 4(%1), %%bx", : "memory")
ONE_FORM(zx16_32, "movzwl 6(%1), %%ebx", : "memory")
ONE_FORM(sx16_32, "movswl 6(%1), %%ebx", : "memory")
ONE_FORM(ld32, "movl 8(%1), %%ebx", : "memory")
ONE_FORM(ld32_fs, "movl %%fs:8(%1), %%ebx", : "memory")

static void mmio_site_forms(void)
{
    volatile u8 *p = (volatile u8 *)(IOMEM + 0x900);
    /* A data segment based 0x100 below the block: FS:[p + 0x100 - base] is p. */
    u16 fs_old;
    __asm__ volatile("mov %%fs, %0" : "=r"(fs_old));
    gdt_set(14, 0x100, 0xfffff, 0x92, 0xc); /* selector 0x70: base 0x100, 4 GiB, data */
    __asm__ volatile("mov %0, %%fs" : : "r"((u16)0x70));
    u32 ok = 1, bad = 0;
    for (u32 i = 0; i < 40; i++) {
        u32 k = i * 0x01010101u + 0x12345601u, want;
#define FORM(n, got, exp) do { want = (exp); if ((got) != want) { ok = 0; if (!bad) bad = (n); } } while (0)
        st8_bh(p, k);
        FORM(1, p[0], (k >> 8) & 0xff);
        FORM(2, ld8_bh(p, 0xaaaaaaaau), 0xaaaa00aau | ((k >> 8) & 0xff) << 8);
        st8_bl(p, k);
        FORM(3, p[1], k & 0xff);
        FORM(4, ld8_bl(p, 0xaaaaaaaau), 0xaaaaaa00u | (k & 0xff));
        st16(p, k);
        FORM(5, *(volatile u16 *)(p + 2), k & 0xffff);
        FORM(6, ld16(p, 0x5555aaaau), 0x55550000u | (k & 0xffff));
        st8_imm(p, 0);
        st16_imm(p, 0);
        st32_imm(p, 0);
        FORM(7, p[4], 0x9c);
        FORM(8, *(volatile u16 *)(p + 6), 0x8123);
        FORM(9, *(volatile u32 *)(p + 8), 0xfedc4321u);
        FORM(10, zx8_32(p, k), 0x9c);
        FORM(11, sx8_32(p, k), 0xffffff9cu);
        FORM(12, zx8_16(p, 0x77770000u), 0x7777009cu);
        FORM(13, sx8_16(p, 0x77770000u), 0x7777ff9cu);
        FORM(14, zx16_32(p, k), 0x8123);
        FORM(15, sx16_32(p, k), 0xffff8123u);
        *(volatile u32 *)(p + 8) = k;
        FORM(16, ld32(p, 0), k);
        FORM(17, ld32_fs(p - 0x100, 0), k);
#undef FORM
    }
    __asm__ volatile("mov %0, %%fs" : : "r"(fs_old));
    CHECK(ok, "every plain mmio form 40 times: MOV 8/16/32 (AH..BH too), immediates, MOVZX, MOVSX, a based segment");
    if (!ok)
        printf("  first wrong: form %u\n", bad);
}

/* BTS with 16-bit addressing through a segment based at the device block: the register
   offset's displacement wraps with the offset at 64 KiB (translate.c, emit_bt_linear, and
   the MMIO path, mmio.c, must reach the same address). */
static u32 bts16_fs(u32 bx, u32 ax)
{
    u32 old_fs;
    __asm__ volatile("mov %%fs, %0\n\tmov %1, %%fs\n\taddr16 btsw %%ax, %%fs:(%%bx)\n\t"
                     "mov %0, %%fs"
                     : "=&r"(old_fs) : "r"(13u << 3), "a"(ax), "b"(bx) : "memory", "cc");
    return old_fs;
}

static void bt_wrap(void)
{
    gdt_set(13, IOMEM, 0xfffff, 0x92, 0xc); /* data, base IOMEM, 4 GiB */
    gdt_reload();
    volatile u16 *w = (volatile u16 *)(IOMEM + 0xf00);
    volatile u16 *low = (volatile u16 *)IOMEM;
    w[0] = w[1] = w[2] = 0;
    u16 keep = low[1];
    low[1] = 0;
    bts16_fs(0xf00, 0x21);
    CHECK_EQ(w[2], 2, "addr16 btsw 0x21 on mmio: the word 4 bytes on, bit 1");
    bts16_fs(0xfffe, 0x21);
    CHECK_EQ(low[1], 2, "addr16 btsw 0x21 at fs:0xfffe on mmio: fs:0x0002 (the offset wraps)");
    low[1] = keep;
}

void main(void)
{
    volatile u32 *d = (volatile u32 *)IOMEM;
    volatile u16 *w = (volatile u16 *)(IOMEM + 0x100);
    volatile u8 *b = (volatile u8 *)(IOMEM + 0x200);
    d[0] = 0x12345678;
    d[1] = 0xcafef00d;
    CHECK_EQ(d[0], 0x12345678, "mmio dword write/read");
    CHECK_EQ(d[1], 0xcafef00d, "mmio second dword");
    *w = 0xbeef;
    CHECK_EQ(*w, 0xbeef, "mmio word");
    *b = 0x80;
    CHECK_EQ(*b, 0x80, "mmio byte");
    s32 sx;
    __asm__ volatile("movsbl (%1), %0" : "=r"(sx) : "r"(b));
    CHECK_EQ(sx, 0xffffff80, "movsx from mmio");
    u32 zx;
    __asm__ volatile("movzwl (%1), %0" : "=r"(zx) : "r"(w));
    CHECK_EQ(zx, 0xbeef, "movzx from mmio");
    u32 ab = 0;
    __asm__ volatile("movl %%eax, %%eax; movb $0x5a, (%1); movb (%1), %%ah" : "+a"(ab) : "r"(b + 1));
    CHECK_EQ((ab >> 8) & 0xff, 0x5a, "mmio into ah");

    /* String instructions: one element per access, registers show the progress. */
    u32 c = 8;
    volatile u32 *sd = (volatile u32 *)(IOMEM + 0x400);
    u32 *pdst = (u32 *)(IOMEM + 0x400);
    __asm__ volatile("cld; rep stosl" : "+D"(pdst), "+c"(c) : "a"(0xa5a5a5a5u) : "memory");
    CHECK(sd[0] == 0xa5a5a5a5u && sd[7] == 0xa5a5a5a5u, "rep stosl to mmio");
    CHECK_EQ((u32)pdst, IOMEM + 0x420, "rep stosl: edi advanced");
    static u8 ram_src[16] = "xbt mmio movs!!";
    u8 *ps = ram_src, *pd8 = (u8 *)(IOMEM + 0x500);
    c = 16;
    __asm__ volatile("cld; rep movsb" : "+S"(ps), "+D"(pd8), "+c"(c) : : "memory");
    u32 same = 1;
    for (int i = 0; i < 16; i++) {
        u8 m = *(volatile u8 *)(IOMEM + 0x500 + i); /* plain loads: MMIO takes MOV only */
        same &= m == ram_src[i];
    }
    CHECK(same, "rep movsb ram to mmio");
    static u32 ram_dst[8];
    u32 *ps32 = (u32 *)(IOMEM + 0x400), *pd32 = ram_dst + 7;
    ps32 += 7;
    c = 8;
    __asm__ volatile("std; rep movsl; cld" : "+S"(ps32), "+D"(pd32), "+c"(c) : : "memory");
    CHECK(ram_dst[0] == 0xa5a5a5a5u && ram_dst[7] == 0xa5a5a5a5u, "rep movsl mmio to ram, backwards");
    CHECK_EQ((u32)ps32, IOMEM + 0x400 - 4, "movsl backwards: esi");
    u32 acc = 0xffffff00u;
    u8 *pl = (u8 *)(IOMEM + 0x500);
    __asm__ volatile("cld; lodsb" : "+a"(acc), "+S"(pl) : : "memory");
    CHECK_EQ(acc, 0xffffff78u, "lodsb from mmio keeps the upper eax");

    /* MOVS with MMIO on both sides: a read and a write per element. */
    for (u32 i = 0; i < 4; i++)
        *(volatile u32 *)(IOMEM + 0x900 + 4 * i) = 0x10203040u * (i + 1);
    u32 *mm_s = (u32 *)(IOMEM + 0x900), *mm_d = (u32 *)(IOMEM + 0xa00);
    c = 4;
    __asm__ volatile("cld; rep movsl" : "+S"(mm_s), "+D"(mm_d), "+c"(c) : : "memory");
    u32 copied = 1;
    for (u32 i = 0; i < 4; i++)
        copied &= *(volatile u32 *)(IOMEM + 0xa00 + 4 * i) == 0x10203040u * (i + 1);
    CHECK(copied && mm_s == (u32 *)(IOMEM + 0x910) && mm_d == (u32 *)(IOMEM + 0xa10) && c == 0,
          "rep movsl mmio to mmio");

    /* SCAS and CMPS with MMIO on one side: one element per access, REPE/REPNE. */
    static const u8 letters[8] = "abcdefgh";
    for (int i = 0; i < 8; i++)
        *(volatile u8 *)(IOMEM + 0x700 + i) = letters[i];
    u8 *ed = (u8 *)(IOMEM + 0x700);
    c = 8;
    u32 zf;
    __asm__ volatile("cld; repne scasb; setz %b2"
                     : "+D"(ed), "+c"(c), "=q"(zf) : "a"('e') : "memory", "cc");
    CHECK(ed == (u8 *)(IOMEM + 0x705) && c == 3 && (zf & 1), "repne scasb on mmio finds 'e'");
    static u8 other[8] = "abcdXfgh";
    u8 *es = other;
    ed = (u8 *)(IOMEM + 0x700);
    c = 8;
    u32 cf;
    __asm__ volatile("cld; repe cmpsb; setz %b3; setc %b4"
                     : "+S"(es), "+D"(ed), "+c"(c), "=q"(zf), "=q"(cf) : : "memory", "cc");
    CHECK(es == other + 5 && ed == (u8 *)(IOMEM + 0x705) && c == 3,
          "repe cmpsb ram against mmio stops after the mismatch");
    CHECK(!(zf & 1) && (cf & 1), "cmpsb: 'X' < 'e' (ZF clear, CF set)");
    u32 *ms = (u32 *)(IOMEM + 0x700);
    static u32 lower = 0x61626364u;
    u32 *md = &lower;
    __asm__ volatile("cld; cmpsl; setz %b2; setc %b3"
                     : "+S"(ms), "+D"(md), "=q"(zf), "=q"(cf) : : "memory", "cc");
    /* [ESI] = 0x64636261 (mmio, little-endian "abcd") - 0x61626364: above, not equal */
    CHECK(!(zf & 1) && !(cf & 1) && ms == (u32 *)(IOMEM + 0x704), "cmpsl mmio against ram");
    /* CMPS with MMIO on both sides: [ESI], then [EDI], per element. */
    static const u8 other2[8] = "abcdefgX";
    for (int i = 0; i < 8; i++)
        *(volatile u8 *)(IOMEM + 0x780 + i) = other2[i];
    es = (u8 *)(IOMEM + 0x700);
    ed = (u8 *)(IOMEM + 0x780);
    c = 8;
    __asm__ volatile("cld; repe cmpsb; setz %b3; setc %b4"
                     : "+S"(es), "+D"(ed), "+c"(c), "=q"(zf), "=q"(cf) : : "memory", "cc");
    CHECK(es == (u8 *)(IOMEM + 0x708) && ed == (u8 *)(IOMEM + 0x788) && c == 0,
          "repe cmpsb mmio against mmio runs to the mismatch at the end");
    CHECK(!(zf & 1) && !(cf & 1), "cmpsb mmio against mmio: 'h' > 'X' (ZF and CF clear)");
    ms = (u32 *)(IOMEM + 0x700);
    u32 *ms2 = (u32 *)(IOMEM + 0x780);
    __asm__ volatile("cld; cmpsl; setz %b2"
                     : "+S"(ms), "+D"(ms2), "=q"(zf) : : "memory", "cc");
    CHECK((zf & 1) && ms2 == (u32 *)(IOMEM + 0x784), "cmpsl mmio against mmio: equal");

    /* Read-modify-write, compares and pure stores on MMIO (the generic path). */
    volatile u32 *g = (volatile u32 *)(IOMEM + 0x600);
    g[0] = 40;
    __asm__ volatile("addl $2, %0" : "+m"(g[0]) : : "cc");
    CHECK_EQ(g[0], 42, "add to mmio (read, add, write)");
    __asm__ volatile("orb $0x80, %0" : "+m"(*(volatile u8 *)&g[0]) : : "cc");
    CHECK_EQ(g[0], 0xaa, "orb to mmio");
    u8 eq = 0, below = 0;
    __asm__ volatile("cmpl $0xaa, %2\n\tsete %0\n\tcmpl $0xab, %2\n\tsetb %1"
                     : "=r"(eq), "=r"(below) : "m"(g[0]) : "cc");
    CHECK(eq == 1 && below == 1, "cmp with mmio sets the flags");
    u32 x = 0x11223344;
    __asm__ volatile("xchgl %0, %1" : "+r"(x), "+m"(g[1]) : : "memory");
    CHECK(x == g[1] || g[1] == 0x11223344, "xchg with mmio");
    CHECK_EQ(g[1], 0x11223344, "xchg: the register went to mmio");
    __asm__ volatile("incl %0" : "+m"(g[1]) : : "cc");
    CHECK_EQ(g[1], 0x11223345, "inc of mmio");
    __asm__ volatile("btsl $31, %0" : "+m"(g[1]) : : "cc");
    CHECK_EQ(g[1], 0x91223345, "bts on mmio");
    __asm__ volatile("movl $0, %%eax\n\ttestl %%eax, %%eax\n\tsetz %0"
                     : "=m"(*(volatile u8 *)&g[2]) : : "eax", "cc");
    CHECK_EQ(*(volatile u8 *)&g[2], 1, "setz into mmio (a pure store)");

    /* Operands of instructions xbt runs as callouts, on MMIO: SMSW and SGDT store there
       (SGDT as two stores), MOV to ES and LLDT read from there, SLDT stores. */
    u32 cr0v;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0v));
    __asm__ volatile("smsw %0" : "=m"(*(volatile u16 *)(IOMEM + 0x800)));
    CHECK_EQ(*(volatile u16 *)(IOMEM + 0x800), cr0v & 0xffff, "smsw into mmio");
    struct { u16 limit; u32 base; } __attribute__((packed)) gd;
    __asm__ volatile("sgdt %0" : "=m"(gd));
    __asm__ volatile("sgdt %0" : "=m"(*(volatile u8 *)(IOMEM + 0x810)) : : "memory");
    CHECK(*(volatile u16 *)(IOMEM + 0x810) == gd.limit &&
          *(volatile u32 *)(IOMEM + 0x812) == gd.base, "sgdt into mmio");
    *(volatile u16 *)(IOMEM + 0x820) = SEL_DATA;
    u32 es_seen;
    __asm__ volatile("xorl %%eax, %%eax\n\tmov %%ax, %%es\n\tmov %1, %%es\n\tmov %%es, %%eax"
                     : "=a"(es_seen) : "m"(*(volatile u16 *)(IOMEM + 0x820)) : "memory");
    CHECK_EQ(es_seen & 0xffff, SEL_DATA, "mov es from mmio");
    *(volatile u16 *)(IOMEM + 0x830) = SEL_LDT;
    __asm__ volatile("lldt %0" : : "m"(*(volatile u16 *)(IOMEM + 0x830)) : "memory");
    __asm__ volatile("sldt %0" : "=m"(*(volatile u16 *)(IOMEM + 0x832)) : : "memory");
    CHECK_EQ(*(volatile u16 *)(IOMEM + 0x832), SEL_LDT, "lldt from mmio, sldt into mmio");
    __asm__ volatile("lldt %w0" : : "r"(0));
    /* BT* with a register bit offset: the dword it names, past the operand or before. */
    volatile u32 *bm = (volatile u32 *)(IOMEM + 0x840);
    bm[0] = bm[1] = bm[2] = 0;
    __asm__ volatile("btsl %1, %0" : "+m"(bm[0]) : "r"(40) : "cc", "memory");
    CHECK(bm[0] == 0 && bm[1] == 0x100, "bts on mmio with a register offset of 40");
    u32 cfb;
    __asm__ volatile("btl %2, %1\n\tsetc %b0" : "=q"(cfb) : "m"(bm[0]), "r"(40) : "cc");
    CHECK(cfb & 1, "bt on mmio reads that bit back");
    __asm__ volatile("btrl %1, %0" : "+m"(bm[2]) : "r"(-24) : "cc", "memory");
    CHECK(bm[1] == 0 && bm[2] == 0, "btr on mmio with a negative register offset");
    /* 16-byte SSE operands (two 8-byte exits each way). */
    u32 cr4v;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4v));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4v | 0x600));
    __asm__ volatile("mov %0, %%cr0" : : "r"((cr0v & ~4u) | 2u));
    static const u32 x16[4] = { 0x11111111, 0x22222222, 0x33333333, 0x44444444 };
    u32 y16[4];
    __asm__ volatile("movdqu %1, %%xmm0\n\tmovdqu %%xmm0, %0"
                     : "=m"(*(volatile u8 *)(IOMEM + 0x860)) : "m"(x16) : "memory");
    __asm__ volatile("movdqu %1, %%xmm1\n\tmovdqu %%xmm1, %0"
                     : "=m"(y16) : "m"(*(volatile u8 *)(IOMEM + 0x860)) : "memory");
    CHECK(*(volatile u32 *)(IOMEM + 0x868) == 0x33333333 &&
          *(volatile u32 *)(IOMEM + 0x86c) == 0x44444444, "movdqu of 16 bytes into mmio");
    CHECK(!memcmp(y16, x16, 16), "movdqu of 16 bytes from mmio");
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4v));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0v));

    /* INS and OUTS with MMIO memory (pc-testdev's port 0xe0 reads back what was last
       written to it): REP INSB of 1,024 bytes into the block across a page boundary,
       the IN's data stored to the device each time; REP OUTSB from the block. */
    volatile u8 *ins_dst = (volatile u8 *)(IOMEM + 0x4fc0); /* 64 bytes before a page */
    for (int i = 0; i < 1024; i++)
        ins_dst[i] = 0;
    outw(0xe0, 0x9999);
    {
        u32 di = (u32)ins_dst, cx = 1024;
        __asm__ volatile("cld; rep insb" : "+D"(di), "+c"(cx) : "d"(0xe0) : "memory");
        CHECK(di == (u32)ins_dst + 1024 && cx == 0, "rep insb into mmio: registers");
    }
    CHECK(ins_dst[0] == 0x99 && ins_dst[63] == 0x99 && ins_dst[64] == 0x99 &&
          ins_dst[1023] == 0x99, "rep insb into mmio: every byte, both pages");
    volatile u8 *outs_src = (volatile u8 *)(IOMEM + 0x5800);
    outs_src[0] = 0x11, outs_src[1] = 0x22, outs_src[2] = 0x33;
    {
        u32 si = (u32)outs_src, cx = 3;
        __asm__ volatile("cld; rep outsb" : "+S"(si), "+c"(cx) : "d"(0xe0) : "memory");
        CHECK(si == (u32)outs_src + 3 && cx == 0, "rep outsb from mmio: registers");
    }
    CHECK_EQ(inb(0xe0), 0x33, "rep outsb from mmio: the last byte reached the port");

    /* Through paging: VA 0x80000000 -> the MMIO block. */
    for (u32 i = 0; i < 1024; i++)
        pt[i] = (i << 12) | 3;
    pd[0] = (u32)pt | 3;
    for (u32 i = 0; i < 16; i++)
        pt_io[i] = (IOMEM + (i << 12)) | 3;
    /* Pages where RAM and MMIO meet: 0x80010000 RAM, 0x80011000 MMIO; 0x80012000 MMIO,
       0x80013000 RAM; 0x80014000 MMIO, 0x80015000 not present. */
    pt_io[16] = (u32)ram_pg | 3;
    pt_io[17] = (IOMEM + 0x2000) | 3;
    pt_io[18] = (IOMEM + 0x3000) | 3;
    pt_io[19] = (u32)ram_pg2 | 3;
    pt_io[20] = (IOMEM + 0x4000) | 3;
    pt_io[21] = 0;
    /* Two MMIO pages in the reverse order: 0x80016000 -> +0x6000, 0x80017000 -> +0x5000. */
    pt_io[22] = (IOMEM + 0x6000) | 3;
    pt_io[23] = (IOMEM + 0x5000) | 3;
    pd[0x200] = (u32)pt_io | 3;
    /* identity for the kernel: 0..4 MiB is enough for this image */
    __asm__ volatile("mov %0, %%cr3" : : "r"(pd) : "memory");
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 | 0x80000000u) : "memory");
    volatile u32 *vd = (volatile u32 *)0x80000000u;
    CHECK_EQ(vd[0], 0x12345678, "mmio read through a paged mapping");
    vd[2] = 0x0badcafe;
    __asm__ volatile("subl $1, %0" : "+m"(vd[3]) : : "cc");

    /* Accesses that cross between RAM and MMIO. */
    volatile u32 *x1 = (volatile u32 *)0x80010ffeu, *x2 = (volatile u32 *)0x80012ffeu;
    *x1 = 0x11223344u;
    u32 back1 = *x1;
    *x2 = 0xa1b2c3d4u;
    __asm__ volatile("addl $1, %0" : "+m"(*x2) : : "cc");
    u32 back2 = *x2;
    *(volatile u32 *)0x80014ffcu = 0x5a5a5a5au;
    u32 cr2 = 0;
    fault.count = 0;
    TRY_FAULT("movl %0, 0x80014ffe", "r"(0xdeadbeefu));
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    u32 untouched = *(volatile u32 *)0x80014ffcu;
    *(volatile u16 *)0x80016fffu = 0x7799;
    u32 split_back = *(volatile u16 *)0x80016fffu;
    /* the device block through its identity part of the mapping (0x80000000 + offset) */
    u32 split_lo = *(volatile u8 *)0x80006fffu, split_hi = *(volatile u8 *)0x80005000u;
    *(volatile u8 *)0x80016fffu = 0xbb;
    *(volatile u8 *)0x80017000u = 0xcc;
    *(volatile u16 *)0x80017001u = 0x5544;
    u32 split_dw = *(volatile u32 *)0x80016fffu;
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    CHECK_EQ(back1, 0x11223344u, "a dword from RAM into mmio reads back");
    CHECK(ram_pg[0xffe] == 0x44 && ram_pg[0xfff] == 0x33, "its low half went to RAM");
    CHECK(*(volatile u8 *)(IOMEM + 0x2000) == 0x22 && *(volatile u8 *)(IOMEM + 0x2001) == 0x11,
          "its high half went to mmio");
    CHECK_EQ(back2, 0xa1b2c3d5u, "add to a dword from mmio into RAM");
    CHECK(*(volatile u8 *)(IOMEM + 0x3ffe) == 0xd5 && *(volatile u8 *)(IOMEM + 0x3fff) == 0xc3 &&
          ram_pg2[0] == 0xb2 && ram_pg2[1] == 0xa1, "each half where it belongs");
    CHECK(fault.count == 1 && fault.vector == 14 && fault.err == 2 && cr2 == 0x80015000u,
          "a store from mmio into a page not present: #PF on the second page");
    CHECK_EQ(untouched, 0x5a5a5a5au, "and the device saw nothing of it");
    CHECK_EQ(split_back, 0x7799, "a word across two mmio pages reads back");
    CHECK(split_lo == 0x99 && split_hi == 0x77,
          "each byte went to its own page's device address");
    CHECK_EQ(split_dw, 0x5544ccbbu, "a dword across two mmio pages (one byte, then three)");
    CHECK_EQ(d[2], 0x0badcafe, "mmio write through a paged mapping");
    mmio_sites();
    mmio_site_forms();
    CHECK_EQ(d[3], 0xffffffffu, "sub on mmio through a paged mapping");
    bt_wrap();
}
