/*
 * nullseg.c - accesses through a data segment register that holds a null selector
 * (SDM vol. 3, 3.4.2 and 5.4.1: a null selector may be loaded into DS, ES, FS or GS in
 * protected mode; an access through it is #GP(0)).  ES and DS at CPL 0: loads, stores,
 * string instructions (REP with a count of 0 accesses nothing and must not fault),
 * XLAT, an explicit ES: override; what must not fault: LEA, NOP, PREFETCH and INVLPG
 * through the null register, accesses through SS and through an override to a usable
 * register, REP with a count of 0 (REP INS too: its I/O permission is still checked
 * then: at CPL 3 with the port denied it is #GP(0)); at CPL 3 a null ES loaded by
 * user code.  QEMU 7.2's TCG checks no null
 * selector on an access: there the guest expects no fault and says so.  FS and GS are
 * not checked by xbt (docs/ARCHITECTURE.md), so they are not asserted here.
 */
#include "lib/guest.h"

static u32 buf[4] __attribute__((aligned(16)));
static u8 table[256];
static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[4096] __attribute__((aligned(16)));

/* TRY_FAULT with segment register `seg` null for the instruction(s): loaded with 0
   before them and with the flat data selector after them (a fault resumes there).
   outs: the asm's output operands (registers the instructions write), in parentheses. */
#define TRY_NULL(seg, insn, outs, ...)                                                  \
    do {                                                                                \
        fault.vector = 0xffffffffu;                                                     \
        fault.err = 0xffffffffu;                                                        \
        __asm__ volatile("movl $1f, fault+16\n\tmovl $2f, fault+20\n\t"                 \
                         "movw %w[nul], %%" seg "\n"                                    \
                         "1:\t" insn "\n2:\tmovw %w[flat], %%" seg "\n"                 \
                         : UNPAREN outs                                                 \
                         : [nul] "r"(0), [flat] "r"(SEL_DATA), ##__VA_ARGS__            \
                         : "memory", "cc");                                             \
    } while (0)
#define UNPAREN(...) __VA_ARGS__

static int tcg;

/* A #GP(0) at the instruction on xbt (and hardware); nothing on QEMU TCG. */
static void want_gp(const char *what)
{
    if (tcg) {
        check(fault.vector == 0xffffffffu, what);
        return;
    }
    check(fault.vector == 13 && fault.err == 0 && fault.eip == fault.expect_eip, what);
}

static void want_none(const char *what)
{
    check(fault.vector == 0xffffffffu, what);
}

/* CPL 3: user code nulls ES and stores through it (the #GP handler steps over the
   STOSB and the code goes on), then returns through INT 0x80. */
extern u8 user_null_es[], user_stos[], user_after[], user_rep_ins[], user_after_ins[];
__asm__(".text\n.globl user_null_es\nuser_null_es:\n"
        "\txorl %eax, %eax\n\tmovw %ax, %es\n"
        "\tmovl $ubuf_target, %edi\n\tmovb $0x77, %al\n"
        ".globl user_stos\nuser_stos:\n\tstosb\n"
        ".globl user_after\nuser_after:\n"
        "\txorl %ecx, %ecx\n\tmovw $0x80, %dx\n"
        ".globl user_rep_ins\nuser_rep_ins:\n\trep insb\n"
        ".globl user_after_ins\nuser_after_ins:\n"
        "\tmovw $0x23, %ax\n\tmovw %ax, %es\n"
        "\txorl %eax, %eax\n\tint $0x80\n"
        "1:\tjmp 1b\n"
        ".data\n.globl ubuf_target\nubuf_target:\n\t.long 0\n.text\n");
extern volatile u32 ubuf_target;
static volatile u32 user_gp, user_gp_err, user_gp_eip, user_edi, ins_gp, ins_gp_err;

static void user_gp_handler(struct frame *f)
{
    if (f->eip == (u32)user_rep_ins) {
        ins_gp++;
        ins_gp_err = f->err;
        f->eip = (u32)user_after_ins;
        return;
    }
    user_gp++;
    user_gp_err = f->err;
    user_gp_eip = f->eip;
    user_edi = f->edi;
    if (f->eip == (u32)user_stos)
        f->eip = (u32)user_after;
}

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0)
        user_return(f);
}

void main(void)
{
    tcg = on_qemu_tcg();
    if (tcg)
        printf("note: QEMU TCG checks no null selector on an access: no fault expected\n");

    /* DS. */
    u32 a, b, si, di, c;
    buf[0] = 0x1234;
    TRY_NULL("ds", "movl (%[p]), %[v]", ([v] "=&r"(b)), [p] "r"(buf));
    want_gp("load through a null DS: #GP(0)");
    TRY_NULL("ds", "movl %[v], (%[p])", (), [p] "r"(buf), [v] "r"(0x5555));
    want_gp("store through a null DS: #GP(0)");
    if (!tcg)
        CHECK_EQ(buf[0], 0x1234, "... and nothing stored");
    TRY_NULL("ds", "addl %[v], 4(%[p])", (), [p] "r"(buf), [v] "r"(1));
    want_gp("read-modify-write through a null DS: #GP(0)");
    a = 0, b = (u32)table;
    TRY_NULL("ds", "xlat", ("+a"(a)), "b"(b));
    want_gp("XLAT through a null DS: #GP(0)");
    si = (u32)buf, di = (u32)(buf + 2);
    TRY_NULL("ds", "movsl", ("+S"(si), "+D"(di)));
    want_gp("MOVS's source through a null DS: #GP(0)");
    TRY_NULL("ds", "pushl (%[p])\n\tpopl %[v]", ([v] "=&r"(b)), [p] "r"(buf));
    want_gp("PUSH of memory through a null DS: #GP(0)");
    TRY_NULL("ds", "leal 8(%[p]), %[v]", ([v] "=&r"(b)), [p] "r"(buf));
    want_none("LEA with a null DS: no fault");
    CHECK_EQ(b, (u32)buf + 8, "... the address");
    TRY_NULL("ds", "nopl (%[p])\n\tprefetcht0 (%[p])\n\tinvlpg (%[p])", (), [p] "r"(buf));
    want_none("NOP, PREFETCH and INVLPG through a null DS: no fault");
    TRY_NULL("ds", "movl (%%esp), %[v]\n\tmovl %%ss:(%[p]), %[v]", ([v] "=&r"(b)),
             [p] "r"(buf));
    want_none("accesses through SS with a null DS: no fault");
    TRY_NULL("ds", "movl %%es:(%[p]), %[v]\n\tmovl %%cs:(%[p]), %[v]", ([v] "=&r"(b)),
             [p] "r"(buf));
    want_none("overrides to ES and CS with a null DS: no fault");
    si = (u32)buf, c = 0;
    TRY_NULL("ds", "rep lodsb", ("+S"(si), "+c"(c), "=&a"(a)));
    want_none("REP LODSB with ECX 0 and a null DS: no fault");
    si = (u32)buf;
    TRY_NULL("ds", "lodsb", ("+S"(si), "=&a"(a)));
    want_gp("LODS through a null DS: #GP(0)");
    si = (u32)buf;
    TRY_NULL("ds", "outsb", ("+S"(si)), "d"(0x80));
    want_gp("OUTS through a null DS: #GP(0)");
    si = (u32)buf, di = (u32)(buf + 3);
    TRY_NULL("ds", "movsb %%fs:(%%esi), %%es:(%%edi)", ("+S"(si), "+D"(di)));
    want_none("MOVS from FS: with a null DS: no fault");

    /* ES. */
    buf[1] = 0xAAAA;
    di = (u32)(buf + 1);
    TRY_NULL("es", "stosl", ("+D"(di)), "a"(0x7777));
    want_gp("STOS through a null ES: #GP(0)");
    if (!tcg)
        CHECK_EQ(buf[1], 0xAAAA, "... and nothing stored");
    di = (u32)buf, c = 0;
    TRY_NULL("es", "rep stosl", ("+D"(di), "+c"(c)), "a"(0x7777));
    want_none("REP STOS with ECX 0 and a null ES: no fault");
    buf[2] = 0xBBBB;
    di = (u32)(buf + 2), c = 2;
    TRY_NULL("es", "rep stosl", ("+D"(di), "+c"(c)), "a"(0x9999));
    want_gp("REP STOS with ECX 2 through a null ES: #GP(0)");
    if (!tcg) {
        CHECK_EQ(c, 2, "... ECX as before the instruction");
        CHECK_EQ(di, (u32)(buf + 2), "... EDI as before the instruction");
        CHECK_EQ(buf[2], 0xBBBB, "... nothing stored");
    }
    TRY_NULL("es", "movl %%es:(%[p]), %[v]", ([v] "=&r"(b)), [p] "r"(buf));
    want_gp("an explicit ES: override with a null ES: #GP(0)");
    si = (u32)buf, di = (u32)(buf + 3);
    TRY_NULL("es", "movsl", ("+S"(si), "+D"(di)));
    want_gp("MOVS's destination through a null ES: #GP(0)");
    si = (u32)buf, di = (u32)(buf + 3);
    TRY_NULL("es", "cmpsb", ("+S"(si), "+D"(di)));
    want_gp("CMPS through a null ES: #GP(0)");
    si = (u32)buf;
    TRY_NULL("es", "movl (%[p]), %[v]\n\tlodsb", ([v] "=&r"(b), "+S"(si), "=&a"(a)),
             [p] "r"(buf));
    want_none("DS accesses with a null ES: no fault");
    di = (u32)buf;
    TRY_NULL("es", "scasb", ("+D"(di)), "a"(0));
    want_gp("SCAS through a null ES: #GP(0)");
    di = (u32)(buf + 3);
    TRY_NULL("es", "insb", ("+D"(di)), "d"(0x80));
    want_gp("INS through a null ES: #GP(0)");
    di = (u32)(buf + 3), c = 0;
    TRY_NULL("es", "rep insb", ("+D"(di), "+c"(c)), "d"(0x80));
    want_none("REP INS with ECX 0 and a null ES: no fault");
    /* 16-bit addressing: the count is CX (its upper half set here). */
    di = 0, c = 0x10002;
    TRY_NULL("es", ".byte 0x67, 0xf3, 0xaa", ("+D"(di), "+c"(c)), "a"(0));
    want_gp("REP STOSB with CX 2 (16-bit addressing) through a null ES: #GP(0)");
    if (!tcg)
        CHECK_EQ(c, 0x10002, "... ECX as before the instruction");

    di = 0, c = 0x10000;
    TRY_NULL("es", ".byte 0x67, 0xf3, 0xaa", ("+D"(di), "+c"(c)), "a"(0));
    want_none("REP STOSB with CX 0 (ECX 0x10000, 16-bit addressing) and a null ES: no fault");

    /* CPL 3: user code loads a null ES and stores through it. */
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    set_handler(13, user_gp_handler);
    ubuf_target = 0x11111111;
    user_enter((u32)user_null_es, (u32)(ustack + sizeof ustack), 0);
    set_handler(13, 0);
    if (tcg) {
        CHECK_EQ(user_gp, 0, "CPL 3 STOSB through a null ES: no fault on QEMU TCG");
    } else {
        CHECK_EQ(user_gp, 1, "CPL 3 STOSB through a null ES: one #GP");
        CHECK_EQ(user_gp_err, 0, "... error code 0");
        CHECK_EQ(user_gp_eip, (u32)user_stos, "... at the STOSB");
        CHECK_EQ(user_edi, (u32)&ubuf_target, "... EDI as before it");
        CHECK_EQ(ubuf_target, 0x11111111, "... nothing stored");
    }
    /* REP INSB with ECX 0, ES null, IOPL 0 and the port not in the TSS's bitmap: the
       I/O permission's #GP(0), as with a usable ES (the count does not skip it). */
    CHECK_EQ(ins_gp, 1, "CPL 3 REP INSB with ECX 0, a null ES and a denied port: #GP");
    CHECK_EQ(ins_gp_err, 0, "... error code 0");
}
