/*
 * debugregs.c - the debug registers beyond what trapflag.c covers (SDM vol. 3 18.2-18.3):
 *   - DR4/DR5: DR6/DR7 under other names with CR4.DE clear, #UD with it set (reads and
 *     writes), #UD before DR7.GD's #DB;
 *   - DR7.GD (general detect): a MOV to or from any debug register is a #DB fault at the
 *     MOV, which does not happen, with DR6.BD and RF in its frame; delivering it clears
 *     GD (QEMU TCG does not implement GD: checked on xbt and hardware only);
 *   - I/O breakpoints (R/Wn 10 with CR4.DE): IN, OUT and OUTS to a port the breakpoint's
 *     LEN covers trap after the instruction (the next EIP, DR6.Bn), a port beside it
 *     does not; a REP OUTSB traps after its first iteration (xbt and the SDM; QEMU TCG
 *     traps before the first, at the next instruction, skipping the whole REP: not
 *     checked there, printed);
 *   - data breakpoints hit by an instruction the VMM carries out (SGDT's store, LGDT's
 *     load): the trap right after it, not at a later instruction;
 *   - data breakpoints and REP string instructions: the trap after the iteration that
 *     hit, EIP on the instruction and ECX what is left (REP MOVSB forwards, REP STOSB
 *     backwards, REPE CMPSB on its source), paging off and on;
 *   - TF over REP OUTSB: a trap after each iteration;
 *   - RF loaded by an IRET that itself ran with RF set: the instruction it returns to
 *     takes no breakpoint (QEMU TCG clears RF after such an IRET: not checked there);
 *   - OUTSB from MMIO with an I/O breakpoint (one trap), TF over REP OUTSB from MMIO;
 *   - a code breakpoint on REP OUTSB and REP MOVSB whose handler sets RF: one #DB, none
 *     between iterations, whose trap frames carry RF (QEMU TCG takes the breakpoint
 *     before every iteration: not checked there);
 *   - a single-stepped store that hits a data breakpoint: one #DB with BS and B0 (QEMU
 *     TCG's traps land inside the handler: not checked there);
 *   - RF in exception frames: set for a fault (#DE), clear for a trap (INT3) (QEMU TCG
 *     pushes it clear for both: the fault's not checked there).
 * Runs on QEMU TCG too (run-guest.sh), where the checks hold but the ones named.
 */
#include "lib/guest.h"

#define MAXT 16
static void set_dr7(u32 v) { __asm__ volatile("mov %0, %%dr7" : : "r"(v) : "memory"); }
static volatile u32 teip[MAXT], tdr6[MAXT], tecx[MAXT], tefl[MAXT], ntraps;
static volatile int set_rf;

/* #DB: recorded (EIP, DR6, ECX), DR6 cleared; RF set in the frame when asked (an
   instruction breakpoint's fault would come again otherwise). */
static void db_handler(struct frame *f)
{
    u32 dr6;
    __asm__ volatile("mov %%dr6, %0" : "=r"(dr6));
    if (ntraps < MAXT) {
        teip[ntraps] = f->eip;
        tdr6[ntraps] = dr6;
        tecx[ntraps] = f->ecx;
        tefl[ntraps] = f->eflags;
    }
    ntraps++;
    if (ntraps == 200) { /* a livelock: end it, the checks then fail */
        set_dr7(0);
        f->eflags &= ~0x100u;
    }
    __asm__ volatile("mov %0, %%dr6" : : "r"(0u));
    if (set_rf)
        f->eflags |= 0x10000u;
}

static void reset(void)
{
    ntraps = 0;
    for (int i = 0; i < MAXT; i++)
        teip[i] = tdr6[i] = tecx[i] = tefl[i] = 0;
}
static u32 get_dr7(void) { u32 v; __asm__ volatile("mov %%dr7, %0" : "=r"(v)); return v; }
static u32 get_dr6(void) { u32 v; __asm__ volatile("mov %%dr6, %0" : "=r"(v)); return v; }

static void show(const char *what)
{
    printf("%s: %u traps:", what, ntraps);
    for (u32 i = 0; i < ntraps && i < MAXT; i++)
        printf(" %x/dr6 %x/ecx %x", teip[i], tdr6[i] & 0xe00f, tecx[i]);
    printf("\n");
}

/* ---- DR4/DR5 and DR7.GD ------------------------------------------------------------- */

static void dr45_and_gd(void)
{
    u32 cr4 = read_cr4(), v;
    write_cr4(cr4 & ~8u);
    /* CR4.DE clear: DR5 is DR7, DR4 is DR6. */
    __asm__ volatile("mov %0, %%dr5" : : "r"(0x000f0000u) : "memory");
    CHECK_EQ(get_dr7(), 0x000f0400u, "DR5 with CR4.DE clear writes DR7");
    __asm__ volatile("mov %%dr5, %0" : "=r"(v));
    CHECK_EQ(v, 0x000f0400u, "DR5 with CR4.DE clear reads DR7");
    __asm__ volatile("mov %0, %%dr4" : : "r"(0u) : "memory");
    __asm__ volatile("mov %%dr4, %0" : "=r"(v));
    CHECK_EQ(v, 0xffff0ff0u, "DR4 with CR4.DE clear is DR6");
    set_dr7(0);
    /* CR4.DE set: #UD, reads and writes. */
    write_cr4(cr4 | 8u);
    TRY_FAULT("mov %%dr4, %%eax", NOFAULT);
    CHECK_EQ(fault.vector, 6, "MOV from DR4 with CR4.DE: #UD");
    TRY_FAULT("mov %%eax, %%dr5", NOFAULT);
    CHECK_EQ(fault.vector, 6, "MOV to DR5 with CR4.DE: #UD");

    /* DR7.GD: the #UD first; then a #DB fault for any debug register, at the MOV. */
    __asm__ volatile("mov %0, %%dr0" : : "r"(0x1111u) : "memory");
    set_dr7(0x2000u);
    TRY_FAULT("mov %%dr5, %%eax", NOFAULT);
    CHECK_EQ(fault.vector, 6, "DR7.GD: MOV from DR5 with CR4.DE is #UD, not #DB");
    if (on_qemu_tcg()) {
        printf("DR7.GD: not checked on QEMU TCG (it does not implement general detect)\n");
        set_dr7(0);
    } else {
        TRY_FAULT("mov %0, %%dr0", "r"(0x2222u));
        /* (The frame is below ESP now; read before anything else runs.) */
        u32 gd_flags = ((volatile struct frame *)fault.frame)->eflags;
        u32 eip = fault.eip, want = fault.expect_eip;
        CHECK_EQ(fault.vector, 1, "DR7.GD: MOV to DR0 raises #DB");
        CHECK_EQ(eip, want, "DR7.GD: a fault, at the MOV");
        CHECK(get_dr6() & 0x2000u, "DR7.GD: DR6.BD set");
        CHECK(gd_flags & 0x10000u, "DR7.GD: the fault's frame has RF");
        CHECK_EQ(get_dr7() & 0x2000u, 0, "DR7.GD: cleared by the #DB");
        __asm__ volatile("mov %%dr0, %0" : "=r"(v));
        CHECK_EQ(v, 0x1111u, "DR7.GD: the MOV did not happen");
        __asm__ volatile("mov %0, %%dr6" : : "r"(0u));
        set_dr7(0x2000u);
        TRY_FAULT("mov %%dr6, %%eax", NOFAULT);
        CHECK_EQ(fault.vector, 1, "DR7.GD: MOV from DR6 raises #DB too");
        set_dr7(0);
    }
    write_cr4(cr4);
}

/* ---- I/O breakpoints ------------------------------------------------------------------ */

extern u8 io_out80_end[], io_inw_end[], io_in3ff_end[], io_outs_end[], io_rep[],
    io_rep_end[];
static u8 io_src[4] = { 1, 2, 3, 4 };

/* DR7: L0, R/W0 10 (I/O), LEN0 00 (1 port); L1, R/W1 10, LEN1 11 (4 ports). */
#define DR7_IO0_1 (0x1u | 0x2u << 16)
#define DR7_IO1_4 (0x4u | 0x2u << 20 | 0x3u << 22)

static void io_breakpoints(void)
{
    u32 cr4 = read_cr4();
    write_cr4(cr4 | 8u);
    __asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr1" : : "r"(0x80u), "r"(0x3fcu) : "memory");
    set_dr7(DR7_IO0_1 | DR7_IO1_4);
    reset();
    __asm__ volatile("movb $0, %%al\n\tmovw $0x3fb, %%dx\n\tinb %%dx, %%al\n\t" /* beside */
                     "movw $0x3fa, %%dx\n\tinw %%dx, %%ax\n\t"
                     "outb %%al, $0x80\n.globl io_out80_end\nio_out80_end:\n\t"
                     "movw $0x3fb, %%dx\n\tinw %%dx, %%ax\n.globl io_inw_end\nio_inw_end:\n\t"
                     "movw $0x3ff, %%dx\n\tinb %%dx, %%al\n.globl io_in3ff_end\nio_in3ff_end:\n\t"
                     "movw $0x80, %%dx\n\tmovl %0, %%esi\n\toutsb\n"
                     ".globl io_outs_end\nio_outs_end:\n\tnop\n"
                     : : "i"(io_src) : "eax", "edx", "esi", "memory", "cc");
    u32 n = ntraps;
    int ok = n == 4 && teip[0] == (u32)io_out80_end && teip[1] == (u32)io_inw_end &&
             teip[2] == (u32)io_in3ff_end && teip[3] == (u32)io_outs_end;
    if (!ok)
        show("I/O breakpoints");
    CHECK(ok, "I/O breakpoints: a trap after OUT, IN word (its second port covered), IN "
              "and OUTS to a covered port, none beside");
    CHECK((tdr6[0] & 0xf) == 1 && (tdr6[1] & 0xf) == 2 && (tdr6[2] & 0xf) == 2 &&
              (tdr6[3] & 0xf) == 1,
          "I/O breakpoints: DR6.Bn names the breakpoint (LEN 4 covers 0x3fc-0x3ff)");

    /* REP OUTSB: the trap after the first iteration (SDM 18.3.1.2), EIP on it. */
    reset();
    __asm__ volatile("cld\n\tmovw $0x80, %%dx\n\tmovl %0, %%esi\n\tmovl $3, %%ecx\n"
                     ".globl io_rep\nio_rep:\trep outsb\n.globl io_rep_end\nio_rep_end:\n\tnop\n"
                     : : "i"(io_src) : "ecx", "edx", "esi", "memory", "cc");
    set_dr7(0);
    show("I/O breakpoint, REP OUTSB");
    if (on_qemu_tcg()) {
        printf("I/O breakpoint on REP OUTSB: not checked on QEMU TCG\n");
    } else {
        CHECK(ntraps == 3 && teip[0] == (u32)io_rep && tecx[0] == 2 &&
                  teip[1] == (u32)io_rep && tecx[1] == 1 && teip[2] == (u32)io_rep_end,
              "I/O breakpoint on REP OUTSB: a trap after each iteration, the first after "
              "the first");
        CHECK((tefl[0] & 0x10000u) && (tefl[1] & 0x10000u) && !(tefl[2] & 0x10000u),
              "I/O breakpoint on REP OUTSB: RF in the frames between iterations only");
    }

    /* OUTSB whose source is MMIO (the HPET's first register): one trap, after it; TF
       over REP OUTSB from there: one per iteration (the MMIO read first runs the
       instruction again from its start, which must not count as an iteration). */
    extern u8 io_mmio_end[], io_mmio_rep[], io_mmio_rep_end[];
    reset();
    set_dr7(DR7_IO0_1);
    __asm__ volatile("cld\n\tmovw $0x80, %%dx\n\tmovl $0xfed00000, %%esi\n\toutsb\n"
                     ".globl io_mmio_end\nio_mmio_end:\tnop\n"
                     : : : "edx", "esi", "memory", "cc");
    set_dr7(0);
    if (ntraps != 1 || teip[0] != (u32)io_mmio_end)
        show("I/O breakpoint, OUTSB from MMIO");
    CHECK(ntraps == 1 && teip[0] == (u32)io_mmio_end,
          "I/O breakpoint on OUTSB from MMIO: one trap, after it");
    reset();
    __asm__ volatile("cld\n\tmovw $0x80, %%dx\n\tmovl $0xfed00000, %%esi\n\tmovl $2, %%ecx\n\t"
                     "pushfl\n\torl $0x100, (%%esp)\n\tpopfl\n"
                     ".globl io_mmio_rep\nio_mmio_rep:\trep outsb\n"
                     ".globl io_mmio_rep_end\nio_mmio_rep_end:\tpushfl\n\tandl $~0x100, (%%esp)\n\tpopfl\n"
                     : : : "ecx", "edx", "esi", "memory", "cc");
    if (!(teip[0] == (u32)io_mmio_rep && tecx[0] == 1 && teip[1] == (u32)io_mmio_rep_end))
        show("TF over REP OUTSB from MMIO");
    CHECK(teip[0] == (u32)io_mmio_rep && tecx[0] == 1 && teip[1] == (u32)io_mmio_rep_end,
          "TF over REP OUTSB from MMIO: a trap after each iteration");
    reset();
    outb(0x80, 0); /* disabled: nothing */
    CHECK_EQ(ntraps, 0, "I/O breakpoints disabled in DR7: no trap");
    write_cr4(cr4);
}

/* ---- data breakpoints: instructions the VMM carries out --------------------------------- */

static u8 dtr[8] __attribute__((aligned(8)));
extern u8 sgdt_end[], lgdt_end[];

static void callout_accesses(void)
{
    reset();
    /* DR0: write, 4 bytes at dtr+0 (SGDT's limit and base); DR1: read/write, 1 byte at
       dtr+2 (the base's low byte, which LGDT reads). */
    __asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr1" : : "r"((u32)dtr), "r"((u32)dtr + 2)
                     : "memory");
    set_dr7(0x1u | 0x1u << 16 | 0x3u << 18); /* L0: write, 4 bytes */
    __asm__ volatile("sgdt dtr\n.globl sgdt_end\nsgdt_end:\n\tmovl $1, %%eax\n\t"
                     "addl $2, %%eax\n\tmovl %%eax, %%eax\n" : : : "eax", "memory");
    set_dr7(0x4u | 0x3u << 20); /* L1: read/write, 1 byte */
    __asm__ volatile("lgdt dtr\n.globl lgdt_end\nlgdt_end:\n\tmovl $1, %%eax\n\t"
                     "addl $2, %%eax\n\tmovl %%eax, %%eax\n" : : : "eax", "memory");
    set_dr7(0);
    int ok = ntraps == 2 && teip[0] == (u32)sgdt_end && teip[1] == (u32)lgdt_end &&
             (tdr6[0] & 0xf) == 1 && (tdr6[1] & 0xf) == 2;
    if (!ok)
        show("SGDT/LGDT data breakpoints");
    CHECK(ok, "data breakpoints on SGDT's store and LGDT's load: a trap right after each");
}

/* ---- data breakpoints and REP string instructions ------------------------------------- */

static u8 rbuf[4096] __attribute__((aligned(4096)));
extern u8 rep_movs[], rep_movs_end[], rep_stos[], rep_stos_end[], rep_cmps[], rep_cmps_end[];

static void rep_breakpoints(const char *when)
{
    u8 *src = rbuf, *dst = rbuf + 64;
    for (int i = 0; i < 16; i++) {
        src[i] = (u8)(0x40 + i);
        dst[i] = 0;
    }
    reset();
    /* REP MOVSB of 8 bytes, a write breakpoint on dst[3]: the trap after the 4th
       iteration, ECX 4, EIP on the REP; the rest after the handler. */
    __asm__ volatile("mov %0, %%dr0" : : "r"((u32)dst + 3) : "memory");
    set_dr7(0x1u | 0x1u << 16); /* L0: write, 1 byte */
    __asm__ volatile("cld\n\tmovl $8, %%ecx\n\t"
                     ".globl rep_movs\nrep_movs:\trep movsb\n.globl rep_movs_end\nrep_movs_end:\n"
                     : "+S"(src), "+D"(dst) : : "ecx", "memory", "cc");
    /* REP STOSB backwards over dst[15..8], the breakpoint on dst[10]: the 6th iteration. */
    dst = rbuf + 64 + 15;
    __asm__ volatile("mov %0, %%dr0" : : "r"((u32)rbuf + 64 + 10) : "memory");
    __asm__ volatile("std\n\tmovl $8, %%ecx\n\tmovb $0x77, %%al\n\t"
                     ".globl rep_stos\nrep_stos:\trep stosb\n.globl rep_stos_end\nrep_stos_end:\n\t"
                     "cld\n" : "+D"(dst) : : "eax", "ecx", "memory", "cc");
    /* REPE CMPSB of two equal 8-byte strings, a read/write breakpoint on src[5]: the
       trap after the 6th iteration. */
    src = rbuf;
    dst = rbuf + 128;
    for (int i = 0; i < 8; i++)
        dst[i] = src[i];
    __asm__ volatile("mov %0, %%dr0" : : "r"((u32)rbuf + 5) : "memory");
    set_dr7(0x1u | 0x3u << 16); /* L0: read/write, 1 byte */
    __asm__ volatile("cld\n\tmovl $8, %%ecx\n\t"
                     ".globl rep_cmps\nrep_cmps:\trepe cmpsb\n.globl rep_cmps_end\nrep_cmps_end:\n"
                     : "+S"(src), "+D"(dst) : : "ecx", "memory", "cc");
    set_dr7(0);
    int ok = ntraps == 3 && teip[0] == (u32)rep_movs && tecx[0] == 4 &&
             teip[1] == (u32)rep_stos && tecx[1] == 2 && teip[2] == (u32)rep_cmps &&
             tecx[2] == 2;
    if (!ok)
        show(when);
    printf("REP data breakpoints, %s: %u traps\n", when, ntraps);
    CHECK(ok, "data breakpoints on REP MOVSB/STOSB/CMPSB: a trap after the iteration that "
              "hit, EIP on the instruction, ECX what is left");
    CHECK(rbuf[64] == 0x40 && rbuf[67] == 0x43 && rbuf[71] == 0x47 && rbuf[72] == 0x77 &&
              rbuf[74] == 0x77 && rbuf[79] == 0x77,
          "REP with data breakpoints: every element written once the handler returned");
}

/* ---- TF over REP OUTSB ----------------------------------------------------------------- */

extern u8 tf_outs[], tf_outs_end[], tf_outs_end2[];

static void tf_rep_outs(void)
{
    reset();
    __asm__ volatile("cld\n\tmovw $0x80, %%dx\n\tmovl %0, %%esi\n\tmovl $3, %%ecx\n\t"
                     "pushfl\n\torl $0x100, (%%esp)\n\tpopfl\n"
                     ".globl tf_outs\ntf_outs:\trep outsb\n"
                     ".globl tf_outs_end\ntf_outs_end:\tpushfl\n\tandl $~0x100, (%%esp)\n"
                     ".globl tf_outs_end2\ntf_outs_end2:\tpopfl\n"
                     : : "i"(io_src) : "ecx", "edx", "esi", "memory", "cc");
    /* Traps: after iteration 1 and 2 (EIP on the REP), after the third (the PUSHF),
       after the PUSHF, the AND and the POPF that clears TF. */
    int ok = ntraps == 6 && teip[0] == (u32)tf_outs && tecx[0] == 2 &&
             teip[1] == (u32)tf_outs && tecx[1] == 1 && teip[2] == (u32)tf_outs_end;
    if (!ok)
        show("TF over REP OUTSB");
    CHECK(ok, "TF over REP OUTSB: a trap after each iteration");
}

/* ---- RF loaded by an IRET that ran with RF ------------------------------------------- */

extern u8 rf_iret[], rf_target[];
__asm__(".text\n.globl rf_iret_fn\nrf_iret_fn:\n\t"
        "pushfl\n\torl $0x10000, (%esp)\n\tpushl %cs\n\tpushl $rf_target\n"
        ".globl rf_iret\nrf_iret:\tiret\n"
        ".globl rf_target\nrf_target:\tnop\n\tret\n");
void rf_iret_fn(void);

static void rf_from_iret(void)
{
    reset();
    set_rf = 1;
    __asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr1" : : "r"((u32)rf_iret), "r"((u32)rf_target)
                     : "memory");
    set_dr7(0x5u); /* L0 and L1: instruction breakpoints */
    rf_iret_fn();
    set_dr7(0);
    set_rf = 0;
    int ok = ntraps == 1 && teip[0] == (u32)rf_iret;
    if (!ok)
        show("RF from IRET");
    if (on_qemu_tcg())
        printf("RF from an IRET run with RF: not checked on QEMU TCG (it clears RF after "
               "such an IRET and takes the target's breakpoint)\n");
    else
        CHECK(ok, "an IRET run with RF returns with its frame's RF: no breakpoint at its "
                  "target");
}

/* ---- a code breakpoint on a REP instruction ------------------------------------------ */

extern u8 cb_outs[], cb_movs[];
static u8 cb_page[4096] __attribute__((aligned(4096)));

/* The handler sets RF: the instruction then runs, every iteration, without another
   #DB (RF stays set between iterations); REP OUTSB one element per exit, REP MOVSB
   one iteration per step (a data breakpoint ahead on its page). */
static void code_breakpoint_on_rep(void)
{
    reset();
    set_rf = 1;
    __asm__ volatile("mov %0, %%dr0" : : "r"((u32)cb_outs) : "memory");
    set_dr7(0x1u);
    __asm__ volatile("cld\n\tmovw $0x80, %%dx\n\tmovl %0, %%esi\n\tmovl $3, %%ecx\n"
                     ".globl cb_outs\ncb_outs:\trep outsb\n\tnop\n"
                     : : "i"(io_src) : "ecx", "edx", "esi", "memory", "cc");
    u32 n_outs = ntraps;
    reset();
    u8 *src = cb_page, *dst = cb_page + 64;
    __asm__ volatile("mov %0, %%dr0\n\tmov %1, %%dr1" : : "r"((u32)cb_movs), "r"((u32)cb_page + 68)
                     : "memory");
    set_dr7(0x1u | 0x4u | 0x1u << 20); /* DR0 code, DR1 write (1 byte at dst + 4) */
    __asm__ volatile("cld\n\tmovl $8, %%ecx\n"
                     ".globl cb_movs\ncb_movs:\trep movsb\n\tnop\n"
                     : "+S"(src), "+D"(dst) : : "ecx", "memory", "cc");
    set_dr7(0);
    set_rf = 0;
    /* REP MOVSB: the code breakpoint once, then the data breakpoint after the 5th
       iteration (ECX 3). */
    int ok = n_outs == 1 && ntraps == 2 && teip[0] == (u32)cb_movs && (tdr6[0] & 0xf) == 1 &&
             teip[1] == (u32)cb_movs && tecx[1] == 3 && (tdr6[1] & 0xf) == 2;
    if (!ok) {
        printf("code breakpoint on REP OUTSB: %u traps\n", n_outs);
        show("code breakpoint on REP MOVSB");
    }
    if (on_qemu_tcg())
        printf("code breakpoint on a REP instruction: not checked on QEMU TCG (it takes it "
               "again before every iteration)\n");
    else
        CHECK(ok, "a code breakpoint on a REP instruction: one #DB, none between "
                  "iterations");
}

/* ---- a single step and a data breakpoint at once ------------------------------------- */

static volatile u32 step_var;
extern u8 sd_store[], sd_next[];

static void step_and_data(void)
{
    reset();
    __asm__ volatile("mov %0, %%dr0" : : "r"((u32)&step_var) : "memory");
    set_dr7(0x1u | 0x1u << 16 | 0x3u << 18);
    __asm__ volatile("pushfl\n\torl $0x100, (%%esp)\n\tpopfl\n\tnop\n"
                     ".globl sd_store\nsd_store:\tmovl $1, %0\n"
                     ".globl sd_next\nsd_next:\tnop\n"
                     "pushfl\n\tandl $~0x100, (%%esp)\n\tpopfl\n" : "=m"(step_var) : : "memory", "cc");
    set_dr7(0);
    int ok = ntraps == 6 && teip[1] == (u32)sd_next && (tdr6[1] & 0xe00f) == 0x4001 &&
             (tdr6[0] & 0xe00f) == 0x4000 && (tdr6[2] & 0xe00f) == 0x4000;
    if (!ok)
        show("single step and data breakpoint");
    if (on_qemu_tcg())
        printf("a stepped store that hits a data breakpoint: not checked on QEMU TCG (its "
               "traps land inside the handler)\n");
    else
        CHECK(ok, "a stepped store that hits a data breakpoint: one #DB, DR6.BS and B0");
}

/* ---- RF in the frames of faults ----------------------------------------------------- */

static volatile u32 de_flags, bp_flags;
static void de_record(struct frame *f)
{
    de_flags = f->eflags;
    f->eip += 2; /* divl %ecx */
}
static void bp_record(struct frame *f) { bp_flags = f->eflags; }

/* SDM vol. 3 18.3.1.1: a fault-class exception pushes RF set (the handler's IRET then
   runs the instruction again without its code breakpoint); INT3, a trap, pushes it
   clear.  QEMU TCG pushes RF clear for both: checked on xbt and hardware only. */
static void rf_in_fault_frames(void)
{
    set_handler(0, de_record);
    set_handler(3, bp_record);
    __asm__ volatile("xorl %%ecx, %%ecx\n\tmovl $1, %%eax\n\txorl %%edx, %%edx\n\t"
                     "divl %%ecx\n\tint3\n" : : : "eax", "ecx", "edx", "memory", "cc");
    set_handler(0, 0);
    set_handler(3, 0);
    printf("RF in frames: #DE %x, #BP %x\n", de_flags & 0x10000u, bp_flags & 0x10000u);
    CHECK_EQ(bp_flags & 0x10000u, 0, "INT3 (a trap) pushes RF clear");
    if (on_qemu_tcg())
        printf("RF in a fault's frame: not checked on QEMU TCG (it pushes RF clear)\n");
    else
        CHECK(de_flags & 0x10000u, "#DE (a fault) pushes RF set");
}

static u32 pd[1024] __attribute__((aligned(4096)));

void main(void)
{
    dr45_and_gd();
    set_handler(1, db_handler);
    io_breakpoints();
    callout_accesses();
    rep_breakpoints("paging off");
    tf_rep_outs();
    rf_from_iret();
    code_breakpoint_on_rep();
    step_and_data();
    rf_in_fault_frames();
    for (u32 i = 0; i < 32; i++)
        pd[i] = i << 22 | 0x87;
    u32 cr0 = paging_on_pse(pd);
    rep_breakpoints("paging on");
    callout_accesses();
    __asm__ volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
    guest_exit();
}
