/*
 * thunk.c - PC thunks: `mov r32, [esp]; ret`, which position-independent i386 code
 * calls at the start of nearly every function (gcc's __x86.get_pc_thunk.bx).  xbt
 * chains a direct CALL past a thunk once the thunk's block is translated
 * (translator.h, XBT_ALT_*; docs/ARCHITECTURE.md, "PC thunks"): the thunk's
 * instructions do not run, a path in the caller's block does what they would.  Here,
 * on every peer:
 *  - a thunk of each register a thunk can name, each called from its own site again
 *    and again: the register holds the return address, the other registers are kept,
 *    and the stack slot below ESP holds the return address as the CALL stored it;
 *  - a thunk in a code buffer rewritten in place: into code that is no thunk, into a
 *    thunk of another register, back again;
 *  - with paging: the thunk's page mapped onto another frame (another register's
 *    thunk), then not present (the #PF is the fetch at the thunk, CR2 and EIP the
 *    thunk's address, with the return address already pushed; the handler maps the
 *    page again and the thunk runs), and the call site and the thunk reached through
 *    a second mapping of both pages 16 KiB higher (xbt copies such blocks from the
 *    first mapping and moves the return address they hold: each must see its own).
 * Under xbt, run-guest.sh wants chains past a thunk in the statistics
 * (XBT_THUNK_CHAINS_MIN), so that the path this tests is the one that ran.
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define VA 0x40000000u /* pt_hi's 4 MiB: the thunk's page at VA, the site's at VA + 4 KiB */
#define ALIAS 0x4000u  /* the second mapping of both */
#define ROUNDS 40

/* One thunk per register, then per register a site: every register gets a known
   value, the thunk is called, and the site stores all seven registers and the slot
   below ESP (sites push and pop the callee-saved ones). */
#define THUNK(r) "th_" #r ":\n\tmovl (%esp), %e" #r "\n\tret\n"
#define SITE(r)                                                                       \
    ".globl site_" #r "\nsite_" #r ":\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"   \
    "\tpushl %ebp\n\tmovl $0x11111111, %eax\n\tmovl $0x22222222, %ecx\n"              \
    "\tmovl $0x33333333, %edx\n\tmovl $0x44444444, %ebx\n\tmovl $0x55555555, %ebp\n"  \
    "\tmovl $0x66666666, %esi\n\tmovl $0x77777777, %edi\n\tcall th_" #r "\n"          \
    ".globl ret_" #r "\nret_" #r ":\n\tmovl %eax, regs_seen\n\tmovl %ecx, regs_seen+4\n" \
    "\tmovl %edx, regs_seen+8\n\tmovl %ebx, regs_seen+12\n\tmovl %ebp, regs_seen+20\n" \
    "\tmovl %esi, regs_seen+24\n\tmovl %edi, regs_seen+28\n"                          \
    "\tmovl -4(%esp), %eax\n\tmovl %eax, slot_seen\n"                                  \
    "\tpopl %ebp\n\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\tret\n"
__asm__(".text\n.balign 64\n" THUNK(ax) THUNK(cx) THUNK(dx) THUNK(bx) THUNK(bp) THUNK(si)
        THUNK(di) SITE(ax) SITE(cx) SITE(dx) SITE(bx) SITE(bp) SITE(si) SITE(di));
extern u8 ret_ax[], ret_cx[], ret_dx[], ret_bx[], ret_bp[], ret_si[], ret_di[];
void site_ax(void), site_cx(void), site_dx(void), site_bx(void), site_bp(void),
    site_si(void), site_di(void);
volatile u32 regs_seen[8], slot_seen; /* by register number: EAX 0 .. EDI 7 (ESP unused) */

static void expect(int ok, u32 round, const char *what, u32 got, u32 want)
{
    if (!ok && phase_miss())
        printf("  round %u: %s: %x, not %x\n", round, what, got, want);
}

/* Each register's site: its register and the slot hold the return address, the
   others their values from before the call. */
static void registers(void)
{
    static const struct {
        void (*site)(void);
        const u8 *ret;
        int reg;
    } s[7] = { { site_ax, ret_ax, 0 }, { site_cx, ret_cx, 1 }, { site_dx, ret_dx, 2 },
               { site_bx, ret_bx, 3 }, { site_bp, ret_bp, 5 }, { site_si, ret_si, 6 },
               { site_di, ret_di, 7 } };
    static const u32 before[8] = { 0x11111111, 0x22222222, 0x33333333, 0x44444444, 0,
                                   0x55555555, 0x66666666, 0x77777777 };
    for (u32 r = 0; r < ROUNDS; r++)
        for (u32 k = 0; k < 7; k++) {
            u32 want = (u32)s[k].ret;
            s[k].site();
            expect(slot_seen == want, r, "the slot below ESP", slot_seen, want);
            for (int i = 0; i < 8; i++) {
                if (i == 4)
                    continue;
                u32 w = i == s[k].reg ? want : before[i];
                expect(regs_seen[i] == w, r,
                       i == s[k].reg ? "the thunk's register" : "another register",
                       regs_seen[i], w);
            }
        }
    phase_end("a thunk of each register: its register and the slot hold the return "
              "address, the others are kept");
}

/* A site written into memory at s, to run at linear address at: it sets EBX and ECX
   to known values, calls the code at t, and returns EBX in EAX and ECX in EDX. */
static void put_site(u8 *s, u32 at, u32 t)
{
    static const u8 head[] = { 0x53,                               /* push %ebx */
                               0xbb, 0xaa, 0xaa, 0x00, 0x00,       /* mov $0xaaaa, %ebx */
                               0xb9, 0xbb, 0xbb, 0x00, 0x00 };     /* mov $0xbbbb, %ecx */
    memcpy(s, head, sizeof head);
    s[11] = 0xe8; /* call t */
    u32 rel = t - (at + 16);
    memcpy(s + 12, &rel, 4);
    static const u8 tail[] = { 0x89, 0xd8,   /* mov %ebx, %eax */
                               0x89, 0xca,   /* mov %ecx, %edx */
                               0x5b, 0xc3 }; /* pop %ebx; ret */
    memcpy(s + 16, tail, sizeof tail);
}
#define SITE_RET 16 /* the return address's offset in the site */

static const u8 th_ebx[] = { 0x8b, 0x1c, 0x24, 0xc3 };                  /* thunk: EBX */
static const u8 th_ecx[] = { 0x8b, 0x0c, 0x24, 0xc3 };                  /* thunk: ECX */
static const u8 no_thunk[] = { 0xbb, 0x78, 0x56, 0x34, 0x12, 0xc3 };     /* mov $.., %ebx */

/* Calls the site at s ROUNDS times: EBX and ECX after the call must be ebx and ecx
   (RET standing for the site's return address). */
#define RET 1u
static void run_site(u32 s, u32 ebx, u32 ecx, const char *name)
{
    u32 wb = ebx == RET ? s + SITE_RET : ebx, wc = ecx == RET ? s + SITE_RET : ecx;
    for (u32 r = 0; r < ROUNDS; r++) {
        u64 v = ((u64(*)(void))s)();
        expect((u32)v == wb, r, "EBX", (u32)v, wb);
        expect((u32)(v >> 32) == wc, r, "ECX", (u32)(v >> 32), wc);
    }
    phase_end(name);
}

static u8 cbuf[8192] __attribute__((aligned(4096))); /* [0]: the thunk, [4096]: the site */

static void rewritten(void)
{
    u8 *t = cbuf, *s = cbuf + 4096 + 0x123;
    memset(cbuf, 0xcc, sizeof cbuf);
    memcpy(t, th_ebx, sizeof th_ebx);
    put_site(s, (u32)s, (u32)t);
    run_site((u32)s, RET, 0xbbbb, "a thunk in memory: EBX holds the return address");
    memcpy(t, no_thunk, sizeof no_thunk);
    run_site((u32)s, 0x12345678, 0xbbbb, "the thunk rewritten into a MOV: its value");
    memcpy(t, th_ecx, sizeof th_ecx);
    run_site((u32)s, 0xaaaa, RET, "rewritten into an ECX thunk: ECX, EBX kept");
    memcpy(t, th_ebx, sizeof th_ebx);
    run_site((u32)s, RET, 0xbbbb, "an EBX thunk again");
}

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096))); /* identity 0..16 MiB */
static u32 pt_hi[1024] __attribute__((aligned(4096)));
static u8 frames[3][4096] __attribute__((aligned(4096))); /* thunk EBX, thunk ECX, site */

/* The thunk's page not present: the fault is the fetch at the thunk, after the CALL
   stored its return address; the handler maps the page again and the thunk runs. */
static volatile u32 pf_slot;
static void pf_handler(struct frame *f)
{
    pf_note(f, VA, 4096);
    pf_slot = *(u32 *)(&f->eflags + 1); /* the interrupted stack's top (CPL 0: no ESP) */
    pt_hi[0] = (u32)frames[0] | P;
}

static void paged(void)
{
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | P | W;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | P | W;
    pd[VA >> 22] = (u32)pt_hi | P | W;
    memset(frames, 0xcc, sizeof frames);
    memcpy(frames[0], th_ebx, sizeof th_ebx);
    memcpy(frames[1], th_ecx, sizeof th_ecx);
    put_site(frames[2] + 0x40, VA + 4096 + 0x40, VA); /* run through the mapping */
    pt_hi[0] = (u32)frames[0] | P;
    pt_hi[1] = (u32)frames[2] | P;
    set_handler(14, pf_handler);
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u | 0x10000u); /* PG and WP */
    u32 site = VA + 4096 + 0x40;
    run_site(site, RET, 0xbbbb, "paged: a thunk on its own page");

    pt_hi[0] = (u32)frames[1] | P;
    invlpg(VA);
    run_site(site, 0xaaaa, RET, "the thunk's page mapped onto another frame: its thunk");

    pt_hi[0] = (u32)frames[0] | P;
    invlpg(VA);
    run_site(site, RET, 0xbbbb, "mapped back: the first thunk");

    for (u32 r = 0; r < ROUNDS / 4; r++) {
        u32 before = pf_seen.count;
        pt_hi[0] = 0;
        invlpg(VA);
        u64 v = ((u64(*)(void))site)();
        expect(pf_seen.count == before + 1, r, "#PFs", pf_seen.count - before, 1);
        expect(pf_seen.cr2 == VA && pf_seen.eip == VA, r, "CR2 and EIP", pf_seen.eip, VA);
        expect(pf_seen.err == 0, r, "error code (read, not present, supervisor)",
               pf_seen.err, 0);
        expect(pf_slot == site + SITE_RET, r, "the return address pushed", pf_slot,
               site + SITE_RET);
        expect((u32)v == site + SITE_RET, r, "EBX after the handler", (u32)v,
               site + SITE_RET);
    }
    phase_end("the thunk's page not present: #PF at the thunk, the return address "
              "pushed; mapped again, the thunk runs");

    /* Both pages again 16 KiB higher: the same bytes, another return address. */
    pt_hi[ALIAS >> 12] = (u32)frames[0] | P;
    pt_hi[(ALIAS >> 12) + 1] = (u32)frames[2] | P;
    for (u32 k = 0; k < 4; k++) {
        run_site(site + ALIAS, RET, 0xbbbb, "the second mapping: its own return address");
        run_site(site, RET, 0xbbbb, "the first mapping still: its own");
    }
}

void main(void)
{
    registers();
    rewritten();
    paged();
    guest_exit();
}
