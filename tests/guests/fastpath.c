/*
 * fastpath.c - the instructions xbt's fast callouts take (src/runtime/callouts_fast.c)
 * with thousands of pseudo-random operands, each group of results printed as a hash:
 * 16-bit POPF, 32-bit POPF with a limit-checked SS, STI that ends a block, MOV to and
 * from CR2 and CR3 and from CR0 and CR4, MOV and POP to FS, GS, DS and ES with random
 * descriptors (the loaded FS and GS then read at offsets around their limits), and IRET
 * at CPL 0, INT at CPL 0 and an INT frame written over translated code with paging off;
 * the segment loads and IRETs again with paging on.  tests/guests/fast-full.sh
 * runs it with and without XBT_NO_FAST_CALLOUTS=1 and requires the same lines.  The
 * checks below hold on any x86 (QEMU runs them too); QEMU TCG prints the same hashes but
 * for the segment groups (it does not check data segment limits).
 */
#include "lib/guest.h"

#define SEL_LIMSS 0x68  /* GDT 13: data, base 0, limit 128 MiB: SS limit-checked */
#define SEL_CODE2 0xf0  /* GDT 30: a second flat code segment */
#define FIRST 14        /* GDT 14-29: random descriptors */
#define COUNT 16
#define GROUP 64        /* cases per printed hash */

static u32 seed = 0x2545f491u;
static u32 rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return seed;
}

static u32 hash, cases;
static const char *group_name;
static void mix(u32 w)
{
    hash = (hash ^ w) * 16777619u;
}
static void group_start(const char *name)
{
    group_name = name;
    hash = 2166136261u;
    cases = 0;
}
/* One case done: every GROUP cases (and at the end of a group) the hash is printed. */
static void case_done(int last)
{
    cases++;
    if (cases % GROUP == 0 || last) {
        printf("HASH %s %u %x\n", group_name, (cases - 1) / GROUP, hash);
        hash = 2166136261u;
    }
}

/* Every dword of the pattern holds its own address: a read through a segment shows
   where the segment's base and the offset took it. */
static u32 pat[0x50000 / 4] __attribute__((aligned(4096)));

/* ---- POPF, STI ---------------------------------------------------------------------- */

#define FLAGS_CPL0 0x7fd5u /* CF PF AF ZF SF IF DF OF IOPL NT: what POPF writes at CPL 0 */
#define AC_ID 0x240000u

static void test_popf(void)
{
    int ok16 = 1, ok32 = 1;
    group_start("popf16");
    for (int i = 0; i < 256; i++) {
        u16 val = (u16)(rnd() & ~0x100u); /* not TF */
        u32 out;
        __asm__ volatile("pushfl\n\tpushw %w1\n\tpopfw\n\tpushfl\n\tpopl %0\n\tpopfl"
                         : "=r"(out) : "r"(val) : "memory", "cc");
        mix(val), mix(out);
        ok16 &= (out & FLAGS_CPL0) == (val & FLAGS_CPL0);
        case_done(i == 255);
    }
    CHECK(ok16, "popfw writes the low flags at CPL 0 (256 values)");
    /* An SS with a limit: POPF cannot be inlined, it is a callout. */
    gdt_set(13, 0, 0x7fff, 0x92, 0xc);
    group_start("popf32");
    for (int i = 0; i < 256; i++) {
        u32 val = rnd() & ~0x180100u; /* not TF, VIF, VIP */
        u32 out;
        __asm__ volatile("movl %%ss, %%edx\n\tmovl %2, %%ss\n\tpushfl\n\tpushl %1\n\tpopfl\n\t"
                         "pushfl\n\tpopl %0\n\tpopfl\n\tmovl %%edx, %%ss"
                         : "=r"(out) : "r"(val), "r"((u32)SEL_LIMSS) : "edx", "memory", "cc");
        mix(val), mix(out);
        ok32 &= (out & (FLAGS_CPL0 | AC_ID)) == (val & (FLAGS_CPL0 | AC_ID));
        case_done(i == 255);
    }
    CHECK(ok32, "popfl writes the flags at CPL 0, AC and ID too (256 values)");
    /* STI followed by a branch: the shadow does not fit in the block, STI is a callout. */
    group_start("sti");
    int sti_ok = 1;
    for (int i = 0; i < 8; i++) {
        u32 out;
        if (i & 1)
            __asm__ volatile("cli" ::: "memory");
        __asm__ volatile("sti\n\tjmp 1f\n1:\tpushfl\n\tpopl %0\n\tcli" : "=r"(out) : : "memory");
        mix(out);
        sti_ok &= (out & 0x200) != 0;
        case_done(i == 7);
    }
    CHECK(sti_ok, "sti sets IF");
}

/* ---- control registers ----------------------------------------------------------------- */

static void test_crs(void)
{
    int ok2 = 1, ok3 = 1;
    u32 cr3_0, v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3_0));
    group_start("cr");
    for (int i = 0; i < 128; i++) {
        u32 w2 = rnd(), w3 = rnd() & 0xfffff018u; /* a page directory, PWT, PCD */
        __asm__ volatile("mov %0, %%cr2" : : "r"(w2));
        __asm__ volatile("mov %%cr2, %0" : "=r"(v));
        mix(v);
        ok2 &= v == w2;
        __asm__ volatile("mov %0, %%cr3" : : "r"(w3) : "memory");
        __asm__ volatile("mov %%cr3, %0" : "=r"(v));
        mix(v);
        ok3 &= v == w3;
        __asm__ volatile("mov %%cr0, %0" : "=r"(v));
        mix(v);
        __asm__ volatile("mov %%cr4, %0" : "=r"(v));
        mix(v);
        case_done(i == 127);
    }
    __asm__ volatile("mov %0, %%cr3" : : "r"(cr3_0) : "memory");
    CHECK(ok2, "cr2 round trip (128 values)");
    CHECK(ok3, "cr3 round trip with paging off (128 values)");
}

/* ---- segment loads ----------------------------------------------------------------------- */

/* A random code or data descriptor (now and then a system one or one not present) based
   inside the pattern, so that reads at offsets up to 64 KiB past the base, or below it
   through a limit near 4 GiB, stay in it. */
static void random_desc(int idx)
{
    u32 r = rnd();
    u32 type = r & 0xf, s = (r >> 4) % 8 != 0, dpl = (r >> 7) & 3, p = (r >> 9) % 8 != 0;
    u32 g = (r >> 12) & 1, db = (r >> 13) & 1, avl = (r >> 14) & 1;
    u32 base = (u32)pat + 0x10000 + (rnd() & 0x1fffc);
    u32 limit;
    if (!g)
        limit = rnd() & 0xffff;
    else if (((r >> 15) & 3) == 0)
        limit = 0xfffff;
    else if (((r >> 15) & 3) == 1)
        limit = rnd() & 0xf;
    else
        limit = 0xffff0 | (rnd() & 0xf);
    gdt_set(idx, base, limit, (u8)(p << 7 | dpl << 5 | s << 4 | type),
            (u8)(g << 3 | db << 2 | avl));
}

/* One load with the fault record armed (as guest.h's TRY_FAULT), then `store`; ESP is
   put back in between, since a POP that faulted left its word on the stack. */
#define TRY_LOAD(load, store)                                                            \
    __asm__ volatile("movl %%esp, %%ecx\n\tmovl $1f, fault+16\n\tmovl $2f, fault+20\n"    \
                     "1:\t" load "\n2:\n\tmovl %%ecx, %%esp\n\t" store                   \
                     : "=r"(got) : "r"(sel) : "ecx", "edx", "memory", "cc")
#define MOV_TO(r) "movl %1, %%" r
#define POP_TO(r) "pushl %1\n\tpopl %%" r
#define READ(r) "movl %%" r ", %0"
#define KEEP(r) "movl %%" r ", %%edx\n\t"     /* DS and ES: kept in EDX, */
#define BACK(r) READ(r) "\n\tmovl %%edx, %%" r /* and put back */

/* Loads sel into FS, GS, DS or ES (which 0-3) by MOV or POP; DS and ES are put back at
   once (C code runs on them), FS and GS keep what they got.  Returns the selector the
   register holds afterwards; fault.vector is the fault's or ~0. */
static u32 seg_load(int which, int pop, u32 sel)
{
    u32 got;
    fault.vector = fault.err = ~0u;
    switch (which * 2 + pop) {
    case 0: TRY_LOAD(MOV_TO("fs"), READ("fs")); break;
    case 1: TRY_LOAD(POP_TO("fs"), READ("fs")); break;
    case 2: TRY_LOAD(MOV_TO("gs"), READ("gs")); break;
    case 3: TRY_LOAD(POP_TO("gs"), READ("gs")); break;
    case 4: TRY_LOAD(KEEP("ds") MOV_TO("ds"), BACK("ds")); break;
    case 5: TRY_LOAD(KEEP("ds") POP_TO("ds"), BACK("ds")); break;
    case 6: TRY_LOAD(KEEP("es") MOV_TO("es"), BACK("es")); break;
    default: TRY_LOAD(KEEP("es") POP_TO("es"), BACK("es")); break;
    }
    fault.resume = 0;
    return got & 0xffff;
}

/* A dword at FS:off or GS:off; *vec the fault's vector or ~0. */
static u32 seg_read(int gs, u32 off, u32 *vec)
{
    u32 val = 0xdeadbeefu;
    fault.vector = ~0u;
    if (gs)
        __asm__ volatile("movl $1f, fault+16\n\tmovl $2f, fault+20\n1:\tmovl %%gs:(%1), %0\n2:"
                         : "+r"(val) : "r"(off) : "memory", "cc");
    else
        __asm__ volatile("movl $1f, fault+16\n\tmovl $2f, fault+20\n1:\tmovl %%fs:(%1), %0\n2:"
                         : "+r"(val) : "r"(off) : "memory", "cc");
    fault.resume = 0;
    *vec = fault.vector;
    return val;
}

static void test_seg_loads(const char *name, int n)
{
    int loaded = 0, faulted = 0, base_ok = 1;
    group_start(name);
    for (int i = 0; i < n; i++) {
        u32 r = rnd();
        int idx = FIRST + (int)(r % COUNT), which = (r >> 8) & 3, pop = (r >> 10) & 1;
        u32 sel = (u32)idx << 3 | ((r >> 11) & 3);
        if (((r >> 13) & 15) == 0)
            sel |= 4; /* the LDT: none is loaded, #GP */
        if (((r >> 17) & 31) == 0)
            sel &= 3; /* a null selector */
        random_desc(idx);
        u64 d = gdt[idx];
        u32 got = seg_load(which, pop, sel);
        mix(sel), mix((u32)(d >> 32)), mix(fault.vector), mix(fault.err), mix(got);
        mix((u32)(gdt[idx] >> 40) & 0xff); /* the accessed bit */
        if (fault.vector == ~0u)
            loaded++;
        else
            faulted++;
        /* Reads through FS and GS (not through a null selector: that is #GP(0) on
           hardware, which neither xbt nor QEMU TCG raises). */
        if (fault.vector == ~0u && which < 2 && (sel & ~3u)) {
            u32 access = (u32)(d >> 40) & 0xff, g = (u32)(d >> 55) & 1;
            u32 limit = (u32)(d & 0xffff) | (u32)((d >> 48) & 0xf) << 16;
            u32 base = (u32)((d >> 16) & 0xffffff) | (u32)(d >> 56) << 24;
            if (g)
                limit = limit << 12 | 0xfff;
            const u32 offs[] = { 0, 4, limit - 3, limit + 1, 0xfffc, 0x10000, 0xfffffffcu };
            for (unsigned k = 0; k < sizeof offs / sizeof offs[0]; k++) {
                u32 vec, val = seg_read(which, offs[k], &vec);
                mix(vec), mix(val);
                /* An expand-up readable segment with a nonzero selector: offset 0 is
                   its base. */
                if (k == 0 && (access & 0x10) && !(access & 0x4) &&
                    (!(access & 0x8) || (access & 0x2)))
                    base_ok &= vec == ~0u && val == base;
            }
        }
        case_done(i == n - 1);
    }
    __asm__ volatile("movl %0, %%fs\n\tmovl %0, %%gs" : : "r"((u32)SEL_DATA));
    printf("%s: %d loaded, %d faulted\n", name, loaded, faulted);
    CHECK(loaded > 0 && faulted > 0, "segment loads: some load, some fault");
    CHECK(base_ok, "segment loads: offset 0 of a readable expand-up segment is its base");
}

/* ---- IRET --------------------------------------------------------------------------- */

static void test_iret(const char *name, int n)
{
    int ok = 1;
    gdt_set(30, 0, 0xfffff, 0x9a, 0xc);
    group_start(name);
    for (int i = 0; i < n; i++) {
        u32 fl = (rnd() & ~0x3a0100u) | 2; /* not TF, VM, VIF, VIP, RF */
        u32 out, other = (i % 16) == 15;
        if (!other)
            __asm__ volatile("pushfl\n\tpushl %1\n\tpushl %2\n\tpushl $1f\n\tiret\n"
                             "1:\tpushfl\n\tpopl %0\n\tpopfl"
                             : "=r"(out) : "r"(fl), "i"(SEL_CODE) : "memory", "cc");
        else /* to another code segment: the full handler's */
            __asm__ volatile("pushfl\n\tpushl %1\n\tpushl %2\n\tpushl $1f\n\tiret\n"
                             "1:\tpushfl\n\tpopl %0\n\tljmp %3, $2f\n2:\tpopfl"
                             : "=r"(out) : "r"(fl), "i"(SEL_CODE2), "i"(SEL_CODE) : "memory", "cc");
        mix(fl), mix(out);
        ok &= (out & (FLAGS_CPL0 | AC_ID)) == (fl & (FLAGS_CPL0 | AC_ID));
        case_done(i == n - 1);
    }
    CHECK(ok, "iret at CPL 0 writes the flags of its frame");
}

/* ---- paging on -------------------------------------------------------------------------- */

static u32 pd[1024] __attribute__((aligned(4096)));

static void paging_on(void)
{
    for (u32 i = 0; i < 32; i++)
        pd[i] = i << 22 | 0x83; /* 4 MiB pages: present, writable, PS */
    paging_on_pse(pd);
}

static void paging_off(void)
{
    u32 cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0 & ~0x80000000u) : "memory");
}

/* ---- INT n from CPL 3 and IRET back ------------------------------------------------- */

/* With paging on and user pages: user code makes INT 0x30 through a gate that varies from
   call to call (trap or interrupt gate, its DPL and present bit, its code segment: the
   kernel's, a second one, or GDT slot XCS with random attributes over a flat base, the
   ring-0 stack of the TSS at varying depths on two stack segments); each handler,
   reached from CPL 3 (a delivered INT, or the #GP/#NP/#TS that refused it), mixes in what
   the CPU pushed and where, then varies the return: the EFLAGS it IRETs to, FS and GS
   left with a selector of DPL 0 (nulled by the IRET) or 3 (kept), and now and then a
   frame IRET refuses (#GP at CPL 0, repaired by that handler and retried). */
#define XCS 28          /* GDT 28 (a slot the segment tests are done with): the gate's random code segment */
#define XSS 29          /* GDT 29: a second ring-0 stack segment (accessed or not) */
#define SEL_XCS (XCS << 3)
#define SEL_XSS (XSS << 3)
#define ISR_GATE 0x30
static u8 ikstack[16384] __attribute__((aligned(4096)));
#define XCONF 27        /* GDT 27: flat conforming readable code, DPL 0 (a data segment register
                           holding it is not nulled by IRET) */
static u8 iustack[8192] __attribute__((aligned(16)));
static volatile u32 iret_bad, iret_faults, int_faults, int_done;

static void vary_gate(void)
{
    u32 r = rnd(), cur;
    u16 sel = SEL_CODE;
    __asm__ volatile("movl %%cs, %0" : "=r"(cur));
    /* XCS stays as it is while this handler runs on it (its IRET loads it again). */
    switch ((cur & ~3u) == SEL_XCS ? 7 : r & 7) {
    case 0: sel = SEL_CODE2; break;
    case 1: case 2: { /* code or data, DPL 0-2, present or not, accessed or not */
        u32 type = (r >> 3) & 0xf, dpl = (r >> 7) % 3, p = (r >> 9) % 4 != 0;
        if (type & 8)
            type &= ~4u; /* never conforming: the handler must not run at CPL 3 */
        u32 limit = ((r >> 10) & 7) == 0 ? 0x000ff : 0xfffff; /* 1 MiB: #GP(0) */
        gdt_set(XCS, 0, limit, (u8)(p << 7 | dpl << 5 | 1 << 4 | type), 0xc);
        sel = (u16)(SEL_XCS | ((r >> 13) & 3));
        break;
    }
    case 3: if (((r >> 3) & 3) == 0) sel = (r >> 5) & 1 ? 0 : (SEL_XCS | 4); break; /* null, LDT */
    default: break;
    }
    u8 type = (r >> 15) & 1 ? 0xe : 0xf, dpl = ((r >> 16) & 7) == 0 ? (u8)((r >> 19) & 3) : 3;
    idt_set(ISR_GATE, isr_table[ISR_GATE], sel, type, dpl);
    if (((r >> 21) & 15) == 0)
        idt[ISR_GATE] &= ~(1ull << 47); /* not present: #NP */
    /* The ring-0 stack: depth, and now and then the second segment, not yet accessed. */
    u32 ss0 = SEL_DATA;
    if (((r >> 25) & 3) == 0) {
        gdt_set(XSS, 0, 0xfffff, (r >> 27) & 1 ? 0x93 : 0x92, 0xc);
        ss0 = SEL_XSS;
    }
    u32 esp0 = (u32)(ikstack + sizeof ikstack) - ((r >> 28) & 7) * 4;
    if (((r >> 23) & 3) == 0) {
        /* The frame across a page boundary, its upper page just invalidated (on xbt out
           of the windows: the fast path must look at both pages). */
        esp0 = (u32)(ikstack + 8192) + 4 * ((r >> 28) & 3) + 4;
        __asm__ volatile("invlpg (%0)" : : "r"(ikstack + 8192) : "memory");
    }
    tss_set_stack(0, esp0, ss0);
}

static void mix_entry(struct frame *f)
{
    u32 ss, fl, esp = (u32)f;
    __asm__ volatile("movl %%ss, %0\n\tpushfl\n\tpopl %1" : "=r"(ss), "=r"(fl));
    mix(fl); /* what the gate left in EFLAGS (IF, TF, NT) */
    mix(f->vector), mix(f->err), mix(f->eip), mix(f->cs), mix(f->eflags);
    mix(f->esp3), mix(f->ss3), mix(ss), mix(esp - (u32)ikstack);
    mix((u32)(gdt[XCS] >> 40) & 0xff), mix((u32)(gdt[XSS] >> 40) & 0xff); /* accessed bits */
}

/* The way back to CPL 3, varied: flags, FS and GS, a frame to refuse now and then. */
static void vary_return(struct frame *f)
{
    u32 r = rnd();
    f->eflags = (f->eflags & ~0x247ed5u) | (r & 0x247ed5u); /* arithmetic, IF, DF, IOPL, NT,
                                                                AC, ID */
    /* DS and ES as isr_common reloads them before the IRET: DPL 0 data (nulled), user
       data, or conforming code (kept). */
    static const u32 dsel[4] = { SEL_UDATA, SEL_DATA, XCONF << 3, SEL_UDATA };
    f->ds = dsel[(r >> 18) & 3], f->es = dsel[(r >> 16) & 3];
    /* SYSENTER's code segment: the kernel's, or null now and then (#GP). */
    u32 scs = ((r >> 20) & 7) == 0 ? 0 : SEL_CODE;
    __asm__ volatile("wrmsr" : : "c"(0x174), "a"(scs), "d"(0));
    u32 fsel = (r >> 24) & 1 ? SEL_DATA : SEL_UDATA, gsel = (r >> 25) & 1 ? SEL_CODE : SEL_UDATA;
    __asm__ volatile("movl %0, %%fs\n\tmovl %1, %%gs" : : "r"(fsel), "r"(gsel));
    iret_bad = 0;
    switch ((r >> 26) & 15) {
    case 0: iret_bad = 1, f->cs = SEL_CODE | 3; break;   /* DPL 0 code at RPL 3: #GP */
    case 1: iret_bad = 2, f->ss3 = SEL_DATA | 3; break;  /* DPL 0 stack at RPL 3: #GP */
    case 2: iret_bad = 3, f->ss3 = SEL_UCODE; break;     /* code as the stack: #GP */
    default: break;
    }
    vary_gate();
}

static void int_handler(struct frame *f)
{
    mix_entry(f);
    int_done++;
    if (f->eax == 0) { /* the user loop is over: EBX = what it saw after each return */
        mix(f->ebx);
        user_return(f);
        return;
    }
    vary_return(f);
}

/* #GP, #NP, #TS: from CPL 3 (the INT refused: on after it) or from CPL 0 (the IRET
   refused: its frame repaired, the IRET made again). */
static void refused(struct frame *f)
{
    if (f->cs & 3) {
        mix_entry(f);
        int_faults++;
        f->eip += 2; /* int $0x30 */
        vary_return(f);
        return;
    }
    u32 *old = &f->esp3; /* the frame the IRET would have popped: EIP CS EFLAGS ESP SS */
    mix(f->vector), mix(f->err), mix(iret_bad), mix(old[1]), mix(old[4]);
    iret_faults++;
    old[1] = SEL_UCODE, old[4] = SEL_UDATA;
}

/* SYSENTER's kernel side: what it was entered with, then SYSEXIT (ECX and EDX as the
   user code set them). */
static volatile u32 se_cs, se_ss, se_esp, se_fl, se_calls;
void se_entry(void);
__asm__(".text\n.globl se_entry\nse_entry:\n"
        "\tmovl %esp, se_esp\n\tpushfl\n\tpopl se_fl\n\tmovw %cs, se_cs\n\tmovw %ss, se_ss\n"
        "\tincl se_calls\n\tsysexit\n");
static u8 sestack[4096] __attribute__((aligned(16)));

static void int_user_loop(void)
{
    u32 acc = 0;
    for (u32 i = 0; i < 1500; i++) {
        u32 fs, gs, fl, esp;
        if (i % 4 == 3) { /* SYSENTER, SYSEXIT (or the #GP of a null IA32_SYSENTER_CS) */
            /* The #GP comes back through vary_return's IRET, which may null DS and ES
               (DPL 0 data): reloaded before anything goes through them (on hardware an
               access through a null DS is #GP(0); xbt raises it since 2026-12-04). */
            __asm__ volatile("movl %%esp, %%ecx\n\tmovl $1f, %%edx\n\tsysenter\n1:\n\t"
                             "pushfl\n\tpopl %0\n\t"
                             "pushl $0x23\n\tpopl %%ds\n\tpushl $0x23\n\tpopl %%es"
                             : "=r"(fl) : : "ecx", "edx", "memory", "cc");
            acc = (acc ^ fl ^ se_cs ^ (se_ss << 16) ^ se_esp ^ se_fl ^ se_calls) * 16777619u;
            continue;
        }
        u32 ds, es;
        __asm__ volatile("int $0x30\n\tmovl %%fs, %0\n\tmovl %%gs, %1\n\tpushfl\n\tpopl %2\n\t"
                         "movl %%esp, %3\n\tmovl %%ds, %4\n\tmovl %%es, %5\n\t"
                         "pushl $0x23\n\tpopl %%ds\n\tpushl $0x23\n\tpopl %%es"
                         : "=r"(fs), "=r"(gs), "=r"(fl), "=r"(esp), "=r"(ds), "=r"(es)
                         : "a"(1) : "memory", "cc");
        acc = (acc ^ fs ^ (gs << 8) ^ fl ^ esp ^ (ds << 16) ^ (es << 24)) * 16777619u;
        __asm__ volatile("movl %0, %%fs\n\tmovl %0, %%gs" : : "r"((u32)SEL_UDATA));
    }
    __asm__ volatile("int $0x30" : : "a"(0), "b"(acc) : "memory");
}

/* INT at CPL 0 with paging on (same privilege: a 3-word frame on the current stack),
   through vector 0x31 and through vector 5 (counted as an exception). */
static void k_int_handler(struct frame *f)
{
    u32 esp = (u32)f;
    mix(f->vector), mix(f->err), mix(f->eip), mix(f->cs), mix(f->eflags), mix(esp & 0xfff);
}

static void test_int_kernel(void)
{
    set_handler(0x31, k_int_handler), set_handler(5, k_int_handler);
    idt_set(0x31, isr_table[0x31], SEL_CODE, 0xe, 0);
    idt_set(5, isr_table[5], SEL_CODE, 0xf, 0);
    group_start("int-kernel");
    for (u32 i = 0; i < 64; i++) {
        u32 fl = (rnd() & 0x8d5u) | 2; /* arithmetic flags in the frame */
        if (i & 1)
            __asm__ volatile("pushl %0\n\tpopfl\n\tint $0x31" : : "r"(fl) : "memory", "cc");
        else
            __asm__ volatile("pushl %0\n\tpopfl\n\tint $5" : : "r"(fl) : "memory", "cc");
    }
    case_done(1);
    set_handler(5, 0);
}

static void test_int_user(void)
{
    for (u32 i = 0; i < 32; i++)
        pd[i] |= 4; /* user pages */
    __asm__ volatile("mov %%cr3, %%eax\n\tmov %%eax, %%cr3" : : : "eax", "memory");
    test_int_kernel();
    gdt_set(XCONF, 0, 0xfffff, 0x9e, 0xc);
    tss_init((u32)(ikstack + sizeof ikstack));
    set_handler(ISR_GATE, int_handler);
    set_handler(13, refused), set_handler(11, refused), set_handler(10, refused);
    gdt_set(XSS, 0, 0xfffff, 0x93, 0xc);
    idt_set(ISR_GATE, isr_table[ISR_GATE], SEL_CODE, 0xe, 3);
    __asm__ volatile("wrmsr" : : "c"(0x174), "a"((u32)SEL_CODE), "d"(0));
    __asm__ volatile("wrmsr" : : "c"(0x175), "a"((u32)(sestack + sizeof sestack)), "d"(0));
    __asm__ volatile("wrmsr" : : "c"(0x176), "a"((u32)se_entry), "d"(0));
    group_start("int-user");
    user_run(int_user_loop, (u32)(iustack + sizeof iustack));
    case_done(1);
    set_handler(13, 0), set_handler(11, 0), set_handler(10, 0);
    printf("int-user: %u delivered, %u refused, %u IRETs refused, %u SYSENTERs\n", int_done,
           int_faults, iret_faults, se_calls);
    CHECK(se_calls > 250 && se_calls < 375, "SYSENTER: most entered, some refused");
    CHECK(int_done > 700 && int_faults > 20 && iret_faults > 20,
          "INT from CPL 3: most delivered, some refused, some IRETs refused");
    for (u32 i = 0; i < 32; i++)
        pd[i] &= ~4u;
    __asm__ volatile("mov %%cr3, %%eax\n\tmov %%eax, %%cr3" : : : "eax", "memory");
}

/* An INT's frame written over translated code, paging off (the fast INT writes the frame
   through the VMM's view of RAM only onto pages without translated code, else the full
   handler's write drops the stale translation).  f: mov ecx, imm32, then bytes that run
   as harmless instructions whether they hold the template's or the frame's values (or
   [eax],al / add [eax],al with EAX at a scratch word, inc esi, add al,al), then ret.
   The INT at CPL 0 with ESP = f + 13 writes EIP over the imm32, CS and EFLAGS after it;
   the gate points at a bare IRET, so nothing else is pushed.  f then returns in ECX
   the INT's return address, not the imm32 it was translated with. */
static u8 fbuf[64] __attribute__((aligned(16)));
static const u8 ftemplate[15] = { 0xb9, 0x11, 0x11, 0x11, 0x11, 0x08, 0x00, 0x00, 0x00,
                                  0x46, 0x02, 0x00, 0x00, 0xc0, 0xc3 };
static u32 fscratch;
__asm__(".text\nbare_iret:\n\tiret\n");
extern u8 bare_iret[];

static u32 call_f(void)
{
    u32 ecx, eax = (u32)&fscratch;
    __asm__ volatile("call *%2" : "=c"(ecx), "+a"(eax) : "r"(fbuf) : "esi", "memory", "cc");
    return ecx;
}

static void test_int_frame_on_code(void)
{
    memcpy(fbuf, ftemplate, sizeof ftemplate);
    u32 before = 0;
    for (int i = 0; i < 3; i++)
        before = call_f(); /* translated */
    idt_set(0x32, (u32)bare_iret, SEL_CODE, 0xe, 0);
    u32 ret_at;
    __asm__ volatile("movl %%esp, %%edi\n\tmovl %1, %%esp\n\txorl %%edx, %%edx\n\t"
                     "int $0x32\n1:\tmovl %%edi, %%esp\n\tmovl $1b, %0"
                     : "=r"(ret_at) : "r"((u32)fbuf + 13) : "edi", "edx", "memory", "cc");
    u32 after = call_f();
    CHECK_EQ(before, 0x11111111u, "INT frame over code: the function before");
    CHECK_EQ(after, ret_at, "INT frame over code (paging off): the function runs the new bytes");
}

void main(void)
{
    for (u32 i = 0; i < sizeof pat / 4; i++)
        pat[i] = (u32)&pat[i];
    __asm__ volatile("lldt %w0" : : "r"(0)); /* a selector with TI set: #GP everywhere */
    test_popf();
    test_crs();
    test_seg_loads("seg", 1024);
    test_iret("iret", 256);
    test_int_kernel(); /* paging off */
    test_int_frame_on_code();
    paging_on();
    test_seg_loads("seg-paged", 512);
    test_iret("iret-paged", 128);
    test_int_user();
    paging_off();
}
