/*
 * pfsite.c - one instruction that takes page faults again and again (issue 17's fault
 * sites: xbt translates such an instruction again with a check of its page before the
 * access, and walks a miss in a callout instead of taking a host fault).  Each of the
 * few site instructions below (a load, a store, a read-modify-write, an FS-relative
 * load, a load between two flag reads) runs dozens of times per phase, with causes that
 * vary from one run to the next: not present, written while read-only with CR0.WP set
 * and clear, a user access to a supervisor page and to a read-only user page, present
 * again after the handler fixed the entry, a mapping changed with INVLPG, the same
 * linear page in two address spaces switched by CR3, a page-crossing access whose
 * second page is missing; REP STOSD and REP MOVSB with their first element's page
 * missing, a count of 0, a run into a missing page; and at CPL 3 a PUSH, a POP and a CALL on a stack page taken
 * away before each.  Every fault's vector, error code, CR2 and EIP are checked,
 * and so are the results (the register a faulting load leaves alone, the memory a
 * faulting store leaves alone, accessed and dirty bits, the flags).
 */
#include "lib/guest.h"

#define P 1u
#define W 2u
#define U 4u
#define A 0x20u
#define D 0x40u
#define VA 0x40000000u    /* pt_hi's 4 MiB; its frames from FRAME on */
#define FRAME 0x00800000u
#define ROUNDS 40         /* per phase: well past the faults that make a site */

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pd2[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));  /* identity 0..16 MiB, user too */
static u32 pt_hi[1024] __attribute__((aligned(4096)));  /* VA in pd */
static u32 pt_hi2[1024] __attribute__((aligned(4096))); /* VA in pd2 */
static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));

/* The sites: each instruction is reached only through its function, again and again. */
u32 site_load(u32 addr, u32 preset);      /* movl (%ecx), %eax */
void site_store(u32 addr, u32 value);     /* movl %edx, (%ecx) */
void site_rmw(u32 addr, u32 value);       /* addl %edx, (%ecx) */
u32 site_fsload(u32 off, u32 preset);     /* movl %fs:(%ecx), %eax */
u32 site_flags(u32 addr, u32 *flags_out); /* pushf; load; pushf: the flags around it */
extern u8 site_load_at[], site_store_at[], site_rmw_at[], site_fsload_at[], site_flags_at[];
__asm__(".text\n"
        ".globl site_load\nsite_load:\n\tmovl 4(%esp), %ecx\n\tmovl 8(%esp), %eax\n"
        ".globl site_load_at\nsite_load_at:\n\tmovl (%ecx), %eax\n\tret\n"
        ".globl site_store\nsite_store:\n\tmovl 4(%esp), %ecx\n\tmovl 8(%esp), %edx\n"
        ".globl site_store_at\nsite_store_at:\n\tmovl %edx, (%ecx)\n\tret\n"
        ".globl site_rmw\nsite_rmw:\n\tmovl 4(%esp), %ecx\n\tmovl 8(%esp), %edx\n"
        ".globl site_rmw_at\nsite_rmw_at:\n\taddl %edx, (%ecx)\n\tret\n"
        ".globl site_fsload\nsite_fsload:\n\tmovl 4(%esp), %ecx\n\tmovl 8(%esp), %eax\n"
        ".globl site_fsload_at\nsite_fsload_at:\n\tmovl %fs:(%ecx), %eax\n\tret\n"
        ".globl site_flags\nsite_flags:\n\tpushl %esi\n\tpushl %edi\n"
        "\tmovl 12(%esp), %ecx\n\tmovl $0x55, %eax\n"
        "\tcmpl $0x80000000, %ecx\n" /* CF, SF, OF ... as the address makes them */
        "\tpushfl\n\tpopl %esi\n"
        ".globl site_flags_at\nsite_flags_at:\n\tmovl (%ecx), %eax\n"
        "\tpushfl\n\tpopl %edi\n\tmovl 16(%esp), %ecx\n\tmovl %esi, (%ecx)\n"
        "\tmovl %edi, 4(%ecx)\n\tpopl %edi\n\tpopl %esi\n\tret\n");

/* A site at the end of a block full of callout sites: 62 loads through FS with a limit
   below 4 GiB (each one a limit check, a callout site of its own in xbt's translation),
   then the faulting load, which as a site adds up to three more (ECX: its address, EDX:
   a present one).  A translator that gave it its site there ran out of callout sites
   and failed the translation, ending the run. */
extern u8 site_crowded_at[];
__asm__(".text\n.globl site_crowded\nsite_crowded:\n"
        ".rept 62\n\tmovl %fs:(%edx), %eax\n.endr\n"
        ".globl site_crowded_at\nsite_crowded_at:\n\tmovl %fs:(%ecx), %eax\n\tret\n");

/* String sites (the handler in `fix` mode maps what they fault on, and they go on):
   REP STOSD of n dwords at dst, REP MOVSB of n bytes; EDI and ECX after them. */
void site_stos(u32 dst, u32 n, u32 out[2]);
void site_movs(u32 dst, u32 src, u32 n);
extern u8 site_stos_at[], site_movs_at[];
__asm__(".text\n.globl site_stos\nsite_stos:\n"
        "\tpushl %edi\n\tmovl 8(%esp), %edi\n\tmovl 12(%esp), %ecx\n"
        "\tmovl $0x5a5a5a5a, %eax\n\tcld\n"
        ".globl site_stos_at\nsite_stos_at:\n\trep stosl\n"
        "\tmovl 16(%esp), %eax\n\tmovl %edi, (%eax)\n\tmovl %ecx, 4(%eax)\n"
        "\tpopl %edi\n\tret\n"
        ".globl site_movs\nsite_movs:\n"
        "\tpushl %edi\n\tpushl %esi\n\tmovl 12(%esp), %edi\n\tmovl 16(%esp), %esi\n"
        "\tmovl 20(%esp), %ecx\n\tcld\n"
        ".globl site_movs_at\nsite_movs_at:\n\trep movsb\n"
        "\tpopl %esi\n\tpopl %edi\n\tret\n");

/* The stack's sites, at CPL 3 (a #PF there switches to the TSS's stack): ESP moved to
   `top`, the end of a page of VA; each access is made with the page not present (the
   INT 0x80 with EAX 1 takes away the page below the ESP it interrupted), the handler in
   `fix` mode maps it, and the access runs again: PUSH (a store), POP (a load), CALL
   through memory (its target's load, then the store of its return address).  Returns POP's value and CALL's return address. */
void site_stack(u32 top, u32 out[2]);
extern u8 site_push_at[], site_pop_at[], site_call_at[], site_call_ret[];
__asm__(".text\n.globl site_stack\nsite_stack:\n"
        "\tpushl %ebx\n\tpushl %esi\n\tmovl 16(%esp), %esi\n\tmovl %esp, %ebx\n"
        "\tmovl 12(%esp), %esp\n"
        "\tmovl $1, %eax\n\tint $0x80\n"
        ".globl site_push_at\nsite_push_at:\n\tpushl $0x1234\n"
        "\tmovl $1, %eax\n\tint $0x80\n"
        ".globl site_pop_at\nsite_pop_at:\n\tpopl %eax\n\tmovl %eax, (%esi)\n"
        "\tmovl $1, %eax\n\tint $0x80\n"
        ".globl site_call_at\nsite_call_at:\n\tcall *site_call_target\n"
        ".globl site_call_ret\nsite_call_ret:\n"
        "1:\tpopl %eax\n\tmovl %eax, 4(%esi)\n"
        "\tmovl %ebx, %esp\n\tpopl %esi\n\tpopl %ebx\n\tret\n"
        ".data\nsite_call_target:\n\t.long site_call_ret\n.text\n");

/* The #PF handler: records the fault, then skips the site instruction (its length) or,
   in `fix` mode, makes the page present and writable in pt_hi and retries. */
static volatile u32 pf_count, pf_cr2, pf_err, pf_eip, pf_eax, pf_cs;
static volatile u32 pf_log[3][3]; /* the last three faults: EIP, error code, CR2 */
static volatile int pf_fix;

static u32 site_len(u32 eip)
{
    if (eip == (u32)site_load_at || eip == (u32)site_store_at || eip == (u32)site_rmw_at ||
        eip == (u32)site_flags_at)
        return 2;
    if (eip == (u32)site_fsload_at)
        return 3;
    return 0;
}

static void pf_handler(struct frame *f)
{
    pf_count++;
    pf_cr2 = read_cr2();
    pf_err = f->err;
    pf_eip = f->eip;
    pf_eax = f->eax;
    pf_cs = f->cs;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            pf_log[i][j] = pf_log[i + 1][j];
    pf_log[2][0] = f->eip, pf_log[2][1] = f->err, pf_log[2][2] = pf_cr2;
    if (pf_fix && pf_cr2 - VA < (4u << 20)) {
        u32 n = (pf_cr2 - VA) >> 12;
        pt_hi[n] = (FRAME + (n << 12)) | P | W | U;
        return; /* the instruction again */
    }
    u32 len = site_len(f->eip);
    if (!len) {
        printf("FAIL unexpected #PF at %x cr2 %x err %x\n", f->eip, pf_cr2, f->err);
        guest_exit();
    }
    f->eip += len;
}

static void syscall_handler(struct frame *f)
{
    if (f->eax == 1) { /* the page below the user's ESP goes */
        u32 n = (f->esp3 - 4 - VA) >> 12;
        pt_hi[n] = 0;
        invlpg(VA + (n << 12));
        return;
    }
    f->eip = (u32)user_resume;
    f->cs = SEL_CODE;
}

/* A round that went wrong: the phase's first tells its story (phase_miss). */
static void expect(int ok, u32 round, const char *what)
{
    if (!ok && phase_miss())
        printf("  round %u: %s (count %u cr2 %x err %x eip %x eax %x)\n", round, what,
               pf_count, pf_cr2, pf_err, pf_eip, pf_eax);
}

/* A load expected to fault at addr with error code err (EAX left alone). */
static void load_faults(u32 round, u32 addr, u32 err)
{
    u32 before = pf_count;
    u32 v = site_load(addr, 0xdead0000u + round);
    expect(pf_count == before + 1 && pf_cr2 == addr && pf_err == err &&
           pf_eip == (u32)site_load_at && v == 0xdead0000u + round, round, "load fault");
}

/* The VA's page n: not present, or frame n with the given rights (INVLPG'd). */
static void set_pte(u32 n, u32 flags)
{
    pt_hi[n] = flags ? (FRAME + (n << 12)) | flags : 0;
    invlpg(VA + (n << 12));
}

static void kernel_phases(void)
{
    /* Not present, read and write, at offsets that vary. */
    for (u32 r = 0; r < ROUNDS; r++)
        load_faults(r, VA + 0x3000 + (r * 68) % 4096, 0);
    phase_end("site load: not present, #PF error 0 and CR2 every time");
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 before = pf_count, addr = VA + 0x5000 + (r * 132) % 4093;
        site_store(addr, r);
        expect(pf_count == before + 1 && pf_cr2 == addr && pf_err == W &&
               pf_eip == (u32)site_store_at, r, "store fault");
    }
    phase_end("site store: not present, #PF error 2 and CR2 every time");

    /* Present again after the handler fixes it, then taken away (INVLPG) for the next
       round; the frame's contents say the right page was read. */
    pf_fix = 1;
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 n = 16 + r % 5;
        *(volatile u32 *)(FRAME + (n << 12) + 8) = 0x1000u * r + n;
        u32 before = pf_count;
        u32 v = site_load(VA + (n << 12) + 8, 0);
        expect(pf_count == before + 1 && pf_err == 0 && v == 0x1000u * r + n, r,
               "demand-paged load");
        before = pf_count;
        site_store(VA + (n << 12) + 12, r ^ 0x5a5a);
        expect(pf_count == before && *(volatile u32 *)(FRAME + (n << 12) + 12) == (r ^ 0x5a5a),
               r, "store to the page just mapped");
        set_pte(n, 0);
    }
    pf_fix = 0;
    phase_end("site load: present again after the handler, gone after INVLPG");

    /* The mapping changed with INVLPG between rounds: another frame each time. */
    for (u32 k = 0; k < 3; k++)
        *(volatile u32 *)(FRAME + ((24 + k) << 12) + 0x40) = 0xabc0 + k;
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 k = r % 3;
        pt_hi[30] = (FRAME + ((24 + k) << 12)) | P | W | U;
        invlpg(VA + (30 << 12));
        u32 before = pf_count;
        u32 v = site_load(VA + (30 << 12) + 0x40, 0);
        expect(pf_count == before && v == 0xabc0 + k, r, "load after INVLPG");
        if (r % 4 == 3) { /* and now and then not present at all */
            pt_hi[30] = 0;
            invlpg(VA + (30 << 12));
            load_faults(r, VA + (30 << 12) + 0x40, 0);
        }
    }
    phase_end("site load: a mapping changed by INVLPG between rounds");

    /* Accessed and dirty bits, as the walk of a site's miss sets them. */
    for (u32 r = 0; r < ROUNDS; r++) {
        set_pte(31, P | W | U);
        (void)site_load(VA + (31 << 12), 0);
        expect((pt_hi[31] & (A | D)) == A, r, "a load sets A alone");
        site_store(VA + (31 << 12) + 4, r);
        expect((pt_hi[31] & (A | D)) == (A | D), r, "a store sets D");
    }
    phase_end("site load and store: accessed and dirty bits");

    /* Written while read-only: CR0.WP set (#PF, error 3), clear (the store goes
       through at CPL 0 and sets D), alternating. */
    u32 cr0 = read_cr0();
    for (u32 r = 0; r < ROUNDS; r++) {
        set_pte(32, P | U);
        u32 addr = VA + (32 << 12) + 16;
        *(volatile u32 *)(FRAME + (32 << 12) + 16) = 7;
        u32 before = pf_count;
        if (r & 1) {
            write_cr0(cr0 & ~0x10000u);
            site_store(addr, r);
            write_cr0(cr0);
            expect(pf_count == before && *(volatile u32 *)(FRAME + (32 << 12) + 16) == r &&
                   (pt_hi[32] & D), r, "WP clear: the store goes through");
        } else {
            site_store(addr, r);
            expect(pf_count == before + 1 && pf_cr2 == addr && pf_err == (P | W) &&
                   *(volatile u32 *)(FRAME + (32 << 12) + 16) == 7, r,
                   "WP set: #PF error 3, memory unchanged");
        }
    }
    phase_end("site store: read-only page with CR0.WP set and clear");

    /* A read-modify-write: error 3 on a read-only page, and its sum where writable. */
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 addr = VA + (33 << 12) + 20;
        *(volatile u32 *)(FRAME + (33 << 12) + 20) = 100;
        set_pte(33, (r % 3 == 0) ? (P | W | U) : (r % 3 == 1) ? (P | U) : 0);
        u32 before = pf_count;
        site_rmw(addr, 5);
        u32 m = *(volatile u32 *)(FRAME + (33 << 12) + 20);
        if (r % 3 == 0)
            expect(pf_count == before && m == 105, r, "rmw on a writable page");
        else if (r % 3 == 1)
            expect(pf_count == before + 1 && pf_err == (P | W) && pf_cr2 == addr && m == 100,
                   r, "rmw on a read-only page: error 3");
        else /* QEMU's TCG reads first and reports a read; the CPU reports the write */
            expect(pf_count == before + 1 && (pf_err == W || (on_qemu_tcg() && pf_err == 0)) &&
                   pf_cr2 == addr && m == 100, r, "rmw on a page not present");
    }
    phase_end("site read-modify-write: writable, read-only, not present");

    /* An FS base: CR2 is the linear address (base + offset). */
    gdt_set(13, 0x10000000u, 0xfffff, 0x92, 0xc);
    __asm__ volatile("movl %0, %%fs" : : "r"(13 << 3));
    set_pte(34, P | W | U);
    *(volatile u32 *)(FRAME + (34 << 12) + 0x100) = 0x600d;
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 before = pf_count, off = VA - 0x10000000u + ((r & 1) ? (34 << 12) + 0x100 : (35 << 12) + r);
        u32 v = site_fsload(off, 0xfeed);
        if (r & 1)
            expect(pf_count == before && v == 0x600d, r, "fs load present");
        else
            expect(pf_count == before + 1 && pf_cr2 == off + 0x10000000u && pf_err == 0 &&
                   pf_eip == (u32)site_fsload_at && v == 0xfeed, r, "fs load: CR2 linear");
    }
    __asm__ volatile("movl %0, %%fs" : : "r"(SEL_DATA));
    phase_end("site load through FS with a base: CR2 the linear address");

    /* The crowded block (site_crowded): each round its page is taken away, the handler
       maps it back, the load reads the frame's word. */
    gdt_set(14, 0, 0x7ffff, 0x92, 0xc); /* limit 2 GiB - 1 */
    __asm__ volatile("movl %0, %%fs" : : "r"(14 << 3));
    pf_fix = 1;
    static volatile u32 present_word = 0x1234;
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 before = pf_count, n = 60 + (r & 1), v;
        *(volatile u32 *)(FRAME + (n << 12) + 4 * r) = 0xab00 + r;
        set_pte(n, 0);
        __asm__ volatile("call site_crowded" : "=a"(v)
                         : "c"(VA + (n << 12) + 4 * r), "d"((u32)&present_word) : "memory");
        expect(pf_count == before + 1 && pf_cr2 == VA + (n << 12) + 4 * r &&
               pf_eip == (u32)site_crowded_at && v == 0xab00 + r, r, "crowded block load");
    }
    pf_fix = 0;
    __asm__ volatile("movl %0, %%fs" : : "r"(SEL_DATA));
    phase_end("site at the end of a block full of limit checks (callout sites)");

    /* A dword across into a page not present: the fault names the second page. */
    set_pte(36, P | W | U);
    set_pte(37, 0);
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 before = pf_count;
        u32 v = site_load(VA + (37 << 12) - 2, 0xc0de);
        expect(pf_count == before + 1 && pf_cr2 == VA + (37 << 12) && pf_err == 0 &&
               v == 0xc0de, r, "crossing load");
    }
    phase_end("site load across pages: #PF on the second page, CR2 its start");

    /* REP STOSD and REP MOVSB: the first element's page not present (#PF at it, then
       done), a count of 0 on a page not present (no access, no fault), a run that
       crosses into a page not present (#PF at that page's start, ECX and EDI showing
       the progress), a source not present. */
    pf_fix = 1;
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 out[2], before = pf_count, k = r % 4;
        u32 dst = k == 2 ? VA + (43 << 12) - 8 : VA + (42 << 12) + 4 * (r % 8);
        set_pte(42, k == 2 ? P | W | U : 0);
        set_pte(43, 0);
        pf_log[2][0] = 0;
        if (k == 3) {
            for (u32 i = 0; i < 16; i++)
                *(volatile u8 *)(FRAME + (44 << 12) + i) = (u8)(r + i);
            set_pte(44, 0);
            set_pte(42, P | W | U);
            site_movs(VA + (42 << 12) + 32, VA + (44 << 12), 16);
            u32 same = 1;
            for (u32 i = 0; i < 16; i++)
                same &= *(volatile u8 *)(FRAME + (42 << 12) + 32 + i) == (u8)(r + i);
            expect(pf_count == before + 1 && pf_log[2][0] == (u32)site_movs_at &&
                   pf_log[2][1] == 0 && pf_log[2][2] == VA + (44 << 12) && same, r,
                   "movsb from a source not present");
            continue;
        }
        u32 n = k == 1 ? 0 : 4;
        site_stos(dst, n, out);
        u32 want = k == 1 ? 0 : 1, cr2 = k == 2 ? VA + (43 << 12) : dst;
        expect(pf_count == before + want && out[0] == dst + 4 * n && out[1] == 0 &&
               (!want || (pf_log[2][0] == (u32)site_stos_at && pf_log[2][1] == W &&
                          pf_log[2][2] == cr2)), r, "rep stosd");
        if (k == 2)
            expect(*(volatile u32 *)(FRAME + (42 << 12) + 4092) == 0x5a5a5a5a &&
                   *(volatile u32 *)(FRAME + (43 << 12) + 4) == 0x5a5a5a5a, r,
                   "rep stosd across pages: every element stored");
    }
    pf_fix = 0;
    phase_end("site strings: REP STOSD and REP MOVSB, counts 0, crossing, source absent");

    /* The flags around the access, whether the check finds the page or walks it. */
    set_pte(38, P | W | U);
    *(volatile u32 *)(FRAME + (38 << 12)) = 0x77;
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 fl[2], addr = (r & 1) ? VA + (38 << 12) : VA + (39 << 12);
        if (r % 4 == 0) {
            set_pte(38, 0); /* a miss that the walk fills */
            set_pte(38, P | W | U);
        }
        u32 before = pf_count;
        u32 v = site_flags(addr, fl);
        expect(fl[0] == fl[1], r, "flags kept");
        expect((r & 1) ? (pf_count == before && v == 0x77)
                       : (pf_count == before + 1 && pf_cr2 == addr && v == 0x55),
               r, "flags site result");
    }
    phase_end("site load: the flags stay as they were");
}

/* Two address spaces with the same linear page: present in one, not in the other. */
static void cr3_phase(void)
{
    for (u32 i = 0; i < 1024; i++)
        pd2[i] = pd[i];
    pd2[VA >> 22] = (u32)pt_hi2 | P | W | U;
    pt_hi[40] = (FRAME + (40 << 12)) | P | W | U;
    pt_hi2[40] = (FRAME + (41 << 12)) | P | W | U;
    *(volatile u32 *)(FRAME + (40 << 12) + 0x80) = 0x1111;
    *(volatile u32 *)(FRAME + (41 << 12) + 0x80) = 0x2222;
    for (u32 r = 0; r < ROUNDS; r++) {
        int two = r & 1;
        pt_hi2[40] = (r % 6 == 5) ? 0 : (FRAME + (41 << 12)) | P | W | U;
        write_cr3(two ? (u32)pd2 : (u32)pd);
        u32 addr = VA + (40 << 12) + 0x80;
        if (two && r % 6 == 5) {
            load_faults(r, addr, 0);
        } else {
            u32 before = pf_count;
            u32 v = site_load(addr, 0);
            expect(pf_count == before && v == (two ? 0x2222u : 0x1111u), r, "cr3 load");
        }
    }
    write_cr3((u32)pd);
    phase_end("site load: the same page in two address spaces switched by CR3");
}

/* CPL 3: a supervisor page (error 5), not present (4), a read-only user page written
   (7), a user page read. */
static volatile u32 user_bad, user_rounds, stack_rounds;
static void user_expect(int ok)
{
    if (!ok)
        user_bad++;
}

static void user_main(void)
{
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 before = pf_count;
        u32 v = site_load(VA + (50 << 12) + 4 * r, 0xbeef);
        user_expect(pf_count == before + 1 && pf_err == (P | U) && pf_cs == SEL_UCODE &&
                    pf_cr2 == VA + (50 << 12) + 4 * r && v == 0xbeef);
        before = pf_count;
        v = site_load(VA + (51 << 12) + 4 * r, 0xbeef);
        user_expect(pf_count == before + 1 && pf_err == U && v == 0xbeef);
        before = pf_count;
        site_store(VA + (52 << 12) + 4 * r, r);
        user_expect(pf_count == before + 1 && pf_err == (P | W | U) &&
                    pf_eip == (u32)site_store_at);
        before = pf_count;
        v = site_load(VA + (52 << 12), 0);
        user_expect(pf_count == before && v == 0x5eed);
        user_rounds++;
    }
    pf_fix = 1;
    for (u32 r = 0; r < ROUNDS; r++) {
        u32 top = VA + ((56 + r % 3) << 12), out[2] = { 0, 0 }, before = pf_count;
        site_stack(top, out);
        user_expect(pf_count == before + 3 && out[0] == 0x1234 && out[1] == (u32)site_call_ret);
        user_expect(pf_log[0][0] == (u32)site_push_at && pf_log[0][1] == (W | U) &&
                    pf_log[0][2] == top - 4);
        user_expect(pf_log[1][0] == (u32)site_pop_at && pf_log[1][1] == U &&
                    pf_log[1][2] == top - 4);
        user_expect(pf_log[2][0] == (u32)site_call_at && pf_log[2][1] == (W | U) &&
                    pf_log[2][2] == top - 4);
        stack_rounds++;
    }
    pf_fix = 0;
    __asm__ volatile("int $0x80" : : "a"(0) : "memory");
}

void main(void)
{
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | P | W | U;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | P | W | U;
    pd[VA >> 22] = (u32)pt_hi | P | W | U;
    set_handler(14, pf_handler);
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u | 0x10000u); /* PG and WP */

    kernel_phases();
    cr3_phase();

    pt_hi[50] = (FRAME + (50 << 12)) | P | W;     /* supervisor */
    pt_hi[51] = 0;                                /* not present */
    pt_hi[52] = (FRAME + (52 << 12)) | P | U;     /* user, read-only */
    *(volatile u32 *)(FRAME + (52 << 12)) = 0x5eed;
    write_cr3((u32)pd);
    user_run(user_main, (u32)(ustack + sizeof ustack));
    CHECK(user_rounds == ROUNDS && user_bad == 0,
          "CPL 3 site: supervisor page, not present, read-only write, user read");
    CHECK(stack_rounds == ROUNDS, "CPL 3 stack sites: push, pop, call on a page not present");
    if (user_bad)
        printf("  %u bad, last: cr2 %x err %x eip %x cs %x\n", user_bad, pf_cr2, pf_err,
               pf_eip, pf_cs);
    guest_exit();
}
