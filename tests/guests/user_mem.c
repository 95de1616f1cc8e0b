/*
 * user_mem.c - guest memory from CPL 3 with paging, every way an instruction reaches it:
 * base/index/scale/displacement operands (a displacement that wraps the address at
 * 4 GiB, absolute addresses above 2 GiB), high-byte registers beside memory, the stack
 * (PUSH/POP of memory, PUSHA/POPA, ENTER/LEAVE, indirect CALL through memory), string
 * instructions both ways (up to the last byte of linear space, down across a page, a
 * #PF in the middle of REP MOVS with ECX, ESI and EDI as the CPU leaves them), segment
 * bases (FS, and a string instruction's source through it), XLAT, locked
 * read-modify-writes, FXSAVE/FXRSTOR, linear page 0 and the page at 0xFFFFF000, and the
 * #PF of a user access to a page that is not present or supervisor-only.
 *
 * xbt translates user code for a user window reached, where the host moves GS only by
 * a system call, through the K-window's GS base (XBT_WINDOW_UK: each access computes its
 * 32-bit linear address first); tests/guests/CMakeLists.txt runs this guest with each
 * layout.  The same results on QEMU TCG.
 */
#include "lib/guest.h"

#define HIGH_LIN 0x80000000u /* user page: absolute operands above 2 GiB */
#define NP_LIN 0x00c00000u   /* user page, not present until a #PF handler maps it */
#define SUP_LIN 0x00c01000u  /* supervisor-only page */
#define TOP_LIN 0xfffff000u  /* the last page of linear space, user */
#define SEL_UHIGH 0x6b       /* GDT 13: DPL 3 data, base HIGH_LIN */

static u8 kstack[8192] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));
static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt[4][1024] __attribute__((aligned(4096)));
static u32 pt_high[1024] __attribute__((aligned(4096)));
static u32 pt_top[1024] __attribute__((aligned(4096)));
static u8 high_page[4096] __attribute__((aligned(4096)));
static u8 top_page[4096] __attribute__((aligned(4096)));
static u8 zero_page[4096] __attribute__((aligned(4096)));
static u8 np_page[4096] __attribute__((aligned(4096)));
static u8 sup_page[4096] __attribute__((aligned(4096)));
static u8 bt_page[4096] __attribute__((aligned(4096)));

/* What the user routines leave (user-accessible, as the whole image is). */
volatile u32 res[64];
u8 fxbuf[512] __attribute__((aligned(16)));

static volatile u32 pf_count, pf_err, pf_cr2, pf_cs, pf_ecx, pf_esi, pf_edi, pf_fix;
static volatile u32 gp_count;

static void set_pte(u32 lin, u32 phys, u32 flags)
{
    u32 *pte = lin >= TOP_LIN - 0x3ff000u ? &pt_top[(lin >> 12) & 1023]
               : lin >= HIGH_LIN        ? &pt_high[(lin >> 12) & 1023]
                                        : &pt[lin >> 22][(lin >> 12) & 1023];
    *pte = phys | flags;
    invlpg(lin);
}

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0) /* exit: back to the kernel */
        user_return(f);
}

/* A #PF from user code: recorded; with pf_fix the page is made present and the
   instruction runs again, else back to the kernel. */
static void pf_handler(struct frame *f)
{
    pf_count++;
    pf_err = f->err;
    pf_cr2 = read_cr2();
    pf_cs = f->cs;
    pf_ecx = f->ecx;
    pf_esi = f->esi;
    pf_edi = f->edi;
    if (pf_fix && pf_cr2 >> 12 == NP_LIN >> 12) {
        set_pte(NP_LIN, (u32)np_page, 7);
        return;
    }
    user_return(f);
}

static void gp_handler(struct frame *f)
{
    gp_count++;
    user_return(f);
}

#define EXIT "\tmovl $0, %eax\n\tint $0x80\n"

/* Operands: absolute above 2 GiB, base + index * scale + disp, a displacement that
   wraps at 4 GiB into page 0, the top dword of linear space. */
void u_operands(void);
__asm__(".text\n.globl u_operands\nu_operands:\n"
        "\tmovl $0x11223344, 0x80000010\n"
        "\tmovl 0x80000010, %eax\n\tmovl %eax, res+0\n"
        "\tmovl $0x80000000, %ebx\n\tmovl $4, %esi\n"
        "\tmovw $0x5566, 0x20(%ebx,%esi,2)\n"
        "\tmovzwl 0x28(%ebx), %ecx\n\tmovl %ecx, res+4\n"
        "\tmovl $0x14, %ebx\n"
        "\tmovl $0xabcdef01, 0xfffffff4(%ebx)\n" /* 0x14 - 0xc = linear 8 */
        "\tmovl 0x8, %eax\n\tmovl %eax, res+8\n"
        "\tmovl $0x0badf00d, 0xfffffffc\n"
        "\tmovl $0xfffffff0, %edi\n\tmovl 0xc(%edi), %eax\n\tmovl %eax, res+12\n"
        "\taddl $0x10, 0x80000010\n\tmovl 0x80000010, %eax\n\tmovl %eax, res+16\n"
        EXIT);

/* [reg + disp] whose sum wraps at 4 GiB, both ways, loads, stores, a read-modify-write
   and the stack (xbt reaches [reg + small disp] without wrapping the sum first and
   makes a wrap right when it faults: translator.h, uk_wrap_site); each in a loop, so
   that the instruction runs again once its translation changed.  The top page's last
   dword holds 0x0badf00d (u_operands). */
void u_disp_wrap(void);
__asm__(".text\n.globl u_disp_wrap\nu_disp_wrap:\n"
        "\tmovl $3, %ecx\n"
        "1:\tmovl $0xfffffff8, %ebx\n"
        "\tmovl $0x600d0000, 0x18(%ebx)\n"             /* linear 0x10 */
        "\taddl %ecx, 0x18(%ebx)\n"
        "\tmovl 0x18(%ebx), %eax\n\tmovl %eax, res+136\n"
        "\tmovl $4, %esi\n\tmovl -8(%esi), %eax\n"     /* linear 0xfffffffc */
        "\tmovl %eax, res+140\n"
        "\tmovl %esp, %edx\n\tmovl $4, %esp\n"
        "\tmovl -8(%esp), %eax\n\tmovl %eax, res+144\n" /* ESP-relative, wrapped */
        "\tmovl %edx, %esp\n"
        "\tloop 1b\n"
        EXIT);
/* The same through a displacement that straddles 4 GiB after the wrap: a dword at
   0xfffffffe (page 0 supervisor-only then: #PF on QEMU TCG, #GP on xbt, never data). */
void u_disp_straddle(void);
__asm__(".text\n.globl u_disp_straddle\nu_disp_straddle:\n"
        "\tmovl $0x33333333, %eax\n\tmovl $0xffffff00, %ebx\n"
        "\tmovl 0xfe(%ebx), %eax\n\tmovl %eax, res+148\n" EXIT);

/* The fast form's extremes: the largest displacement from the top of linear space
   (the sum runs furthest into the guard page above the U-window: linear 0xff of page 0,
   supervisor-only then) and the lowest from 0 (linear 0xffff8000, not present). */
void u_disp_far(void);
__asm__(".text\n.globl u_disp_far\nu_disp_far:\n"
        "\tmovl $0x44444444, %eax\n\tmovl $0xfffff900, %ebx\n"
        "\tmovl 0x7ff(%ebx), %eax\n\tmovl %eax, res+152\n" EXIT);
void u_disp_low(void);
__asm__(".text\n.globl u_disp_low\nu_disp_low:\n"
        "\txorl %ebx, %ebx\n\tmovl -0x8000(%ebx), %eax\n" EXIT);

/* AH..DH beside a memory operand (they cannot be encoded with a REX prefix). */
void u_high8(void);
__asm__(".text\n.globl u_high8\nu_high8:\n"
        "\tmovl $0x80000040, %ebx\n\tmovl $2, %esi\n"
        "\tmovl $0x1234, %eax\n\tmovb %ah, (%ebx,%esi,1)\n" /* [0x80000042] = 0x12 */
        "\tmovb $0x77, 1(%ebx)\n\tmovb 1(%ebx), %bh\n" /* BH = 0x77: EBX = 0x80007740 */
        "\tmovl %ebx, res+20\n"
        "\tmovl $0x80000040, %ebx\n"
        "\tmovl $0x3300, %edx\n\taddb %dh, 2(%ebx)\n" /* 0x12 + 0x33 */
        "\tmovzbl 2(%ebx), %eax\n\tmovl %eax, res+24\n"
        "\tmovl $0x5500, %ecx\n\txchgb %ch, 3(%ebx)\n"
        "\tmovzbl 3(%ebx), %eax\n\tmovl %eax, res+28\n"
        EXIT);

/* The stack: PUSH/POP of memory, PUSHA/POPA, ENTER/LEAVE, CALL through memory. */
void u_stack(void);
void u_callee(void);
__asm__(".text\n.globl u_stack\nu_stack:\n"
        "\tmovl $0xcafe0001, 0x80000080\n"
        "\tpushl 0x80000080\n\tpopl 0x80000084\n"
        "\tmovl 0x80000084, %eax\n\tmovl %eax, res+32\n"
        "\tmovl $1, %eax\n\tmovl $2, %ecx\n\tmovl $3, %edx\n\tmovl $4, %ebx\n"
        "\tmovl $6, %esi\n\tmovl $7, %edi\n\tmovl %esp, %ebp\n"
        "\tpushal\n\tmovl 4(%esp), %eax\n\tmovl %eax, res+36\n" /* EDI was 7... ESI 6 */
        "\txorl %eax, %eax\n\txorl %ecx, %ecx\n\tpopal\n"
        "\tleal (%eax,%ecx,8), %eax\n\tmovl %eax, res+40\n" /* 1 + 2 * 8 */
        "\tenter $16, $0\n\tmovl $0x5151, -4(%ebp)\n\tmovl -4(%ebp), %eax\n\tleave\n"
        "\tmovl %eax, res+44\n"
        "\tmovl $u_callee, 0x80000088\n\tcall *0x80000088\n\tmovl %eax, res+48\n"
        EXIT
        ".globl u_callee\nu_callee:\n\tmovl $0xca11, %eax\n\tret\n");

/* Strings: REP MOVSD from above 2 GiB into page 0, REPE CMPSB over it, REP STOSB up to
   the last byte of linear space (EDI wraps to 0), REP MOVSD down (DF=1), REPNE SCASB. */
void u_strings(void);
__asm__(".text\n.globl u_strings\nu_strings:\n"
        "\tcld\n"
        "\tmovl $0x80000100, %esi\n\tmovl $0x100, %edi\n\tmovl $64, %ecx\n\trep movsl\n"
        "\tmovl %esi, res+52\n\tmovl %edi, res+56\n"
        "\tmovl $0x80000100, %esi\n\tmovl $0x100, %edi\n\tmovl $256, %ecx\n\trepe cmpsb\n"
        "\tmovl %ecx, res+60\n"
        "\tmovl $0xffffff00, %edi\n\tmovl $256, %ecx\n\tmovb $0x5a, %al\n\trep stosb\n"
        "\tmovl %edi, res+64\n"
        "\tstd\n\tmovl $0x800001fc, %esi\n\tmovl $0x3fc, %edi\n\tmovl $64, %ecx\n\trep movsl\n"
        "\tcld\n\tmovl %esi, res+68\n\tmovl %edi, res+72\n"
        "\tmovl $0x80000100, %edi\n\tmovl $256, %ecx\n\tmovb $0xe7, %al\n\trepne scasb\n"
        "\tmovl %edi, res+76\n"
        EXIT);

/* REP MOVSB whose destination runs into a page that is not present: #PF at its first
   byte; the handler maps it and the instruction goes on. */
void u_string_pf(void);
__asm__(".text\n.globl u_string_pf\nu_string_pf:\n"
        "\tcld\n\tmovl $0x80000200, %esi\n\tmovl $0xc00000 - 10, %edi\n\tmovl $20, %ecx\n"
        "\trep movsb\n\tmovl %ecx, res+80\n\tmovl %edi, res+84\n"
        EXIT);

/* FS with a base (a DPL 3 data segment at HIGH_LIN): an operand through it and a
   string instruction's source. */
void u_segbase(void);
__asm__(".text\n.globl u_segbase\nu_segbase:\n"
        "\tmovl $0x6b, %eax\n\tmovl %eax, %fs\n"
        "\tmovl %fs:0x10, %eax\n\tmovl %eax, res+88\n"
        "\tcld\n\tmovl $0x100, %esi\n\tmovl $0x800, %edi\n\tmovl $8, %ecx\n"
        "\trep movsb %fs:(%esi), %es:(%edi)\n"
        "\tmovl 0x800, %eax\n\tmovl %eax, res+92\n"
        "\tmovl $0, %eax\n\tmovl %eax, %fs\n"
        EXIT);

/* XLAT through page 0, locked read-modify-writes, CMPXCHG8B, FXSAVE/FXRSTOR. */
void u_misc(void);
__asm__(".text\n.globl u_misc\nu_misc:\n"
        "\tmovl $0x900, %ebx\n\tmovb $0x3c, 0x905\n\tmovl $5, %eax\n\txlat\n"
        "\tmovl %eax, res+96\n"
        "\tmovl $10, 0x80000300\n\tlock incl 0x80000300\n\tmovl $5, %eax\n"
        "\tlock xaddl %eax, 0x80000300\n\tmovl %eax, res+100\n"
        "\tmovl 0x80000300, %eax\n\tmovl %eax, res+104\n"
        "\tmovl $0x80000310, %edi\n\tmovl $1, (%edi)\n\tmovl $2, 4(%edi)\n"
        "\tmovl $1, %eax\n\tmovl $2, %edx\n\tmovl $0x33, %ebx\n\tmovl $0x44, %ecx\n"
        "\tlock cmpxchg8b (%edi)\n\tmovl 4(%edi), %eax\n\tmovl %eax, res+108\n"
        "\tlock btsl $3, 0x80000300\n\tmovl 0x80000300, %eax\n\tmovl %eax, res+112\n"
        "\tfninit\n\tfxsave fxbuf\n\tmovzwl fxbuf, %eax\n\tmovl %eax, res+116\n"
        "\tfxrstor fxbuf\n"
        EXIT);

/* #PF from user accesses: a read of a page not present through a wrapping displacement,
   a write to a supervisor-only page. */
void u_pf_read(void);
__asm__(".text\n.globl u_pf_read\nu_pf_read:\n"
        "\tmovl $0xc00010, %ebx\n\tmovl 0xfffffff4(%ebx), %eax\n" EXIT);
void u_pf_sup(void);
__asm__(".text\n.globl u_pf_sup\nu_pf_sup:\n"
        "\tmovl $0x1234, 0xc01008\n" EXIT);

/* Past the top of linear space into page 0, made supervisor-only: a dword load and a
   store that wrap, a REP STOSB that runs on from 0xFFFFFFF0 into it.  The CPU checks
   page 0 with user rights (#PF; QEMU TCG); xbt raises #GP for a single access that
   straddles 0xFFFFFFFF/0 (the SDM leaves such an access to the implementation).  Never
   may the user see or change page 0: under a fixed GS the K-window starts a guard page
   above the user window's top. */
void u_wrap_load(void);
__asm__(".text\n.globl u_wrap_load\nu_wrap_load:\n"
        "\tmovl $0x11111111, %eax\n\tmovl 0xfffffffe, %eax\n\tmovl %eax, res+120\n" EXIT);
void u_wrap_store(void);
__asm__(".text\n.globl u_wrap_store\nu_wrap_store:\n"
        "\tmovl $0x77777777, %eax\n\tmovl %eax, 0xfffffffe\n" EXIT);
/* BT/BTS/BTR/BTC with a register bit offset: the offset moves the address, which wraps
   at 4 GiB with it (from the top page past 0xFFFFFFFF to page 1, from 0x10 down to the
   top page); 16-bit and locked forms. */
void u_bt(void);
__asm__(".text\n.globl u_bt\nu_bt:\n"
        "\tmovl $0xfffff100, %ebx\n\tmovl $0x10005, %eax\n\tbtsl %eax, (%ebx)\n"
        "\tmovl $0x2100, %ebx\n\tmovw $0x8000, %cx\n\tbtsw %cx, (%ebx)\n"
        "\tmovl $0x10, %ebx\n\tmovl $0xffffff00, %eax\n\tbtsl %eax, (%ebx)\n"
        "\tmovl $0xfffff100, %ebx\n\tmovl $0x10007, %eax\n\tlock btsl %eax, (%ebx)\n"
        "\tlock btrl %eax, (%ebx)\n\tmovl $0x10005, %eax\n\tbtl %eax, (%ebx)\n"
        "\tsetc %al\n\tmovzbl %al, %eax\n\tmovl %eax, res+124\n" EXIT);
/* MASKMOVDQU and MASKMOVQ store through DS:EDI, a hidden operand: the bytes whose mask
   byte has its top bit; FS as the segment; into a page that is not present first. */
void u_maskmov(void);
__asm__(".text\n.globl u_maskmov\nu_maskmov:\n"
        "\tmovl $0x11223344, %eax\n\tmovd %eax, %xmm0\n"
        "\tmovl $0x00800080, %eax\n\tmovd %eax, %xmm1\n"
        "\tmovl $0x80000400, %edi\n\tmaskmovdqu %xmm1, %xmm0\n"
        "\tmovl $0x55667788, %eax\n\tmovd %eax, %mm0\n"
        "\tmovl $0x80000000, %eax\n\tmovd %eax, %mm1\n"
        "\tmovl $0x80000410, %edi\n\tmaskmovq %mm1, %mm0\n\temms\n"
        "\tmovl $0x6b, %eax\n\tmovl %eax, %fs\n\tmovl $0x420, %edi\n"
        "\t.byte 0x64\n\tmaskmovdqu %xmm1, %xmm0\n"
        "\tmovl $0, %eax\n\tmovl %eax, %fs\n"
        "\tmovl $0xc00100, %edi\n\tmaskmovdqu %xmm1, %xmm0\n\tmovl %edi, res+128\n"
        EXIT);
void u_wrap_stos(void);
__asm__(".text\n.globl u_wrap_stos\nu_wrap_stos:\n"
        "\tcld\n\tmovl $0xfffffff0, %edi\n\tmovl $32, %ecx\n\tmovb $0x66, %al\n\trep stosb\n"
        EXIT);

static void run(void (*fn)(void))
{
    user_run(fn, (u32)(ustack + sizeof ustack));
}

void main(void)
{
    sse_os_support();
    tss_init((u32)(kstack + sizeof kstack));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);
    set_handler(14, pf_handler);
    set_handler(13, gp_handler);
    gdt_set(13, HIGH_LIN, 0xfffff, 0xf2, 0xc);
    gdt_reload();

    /* The first 16 MiB identity-mapped for user and kernel; then the test pages. */
    for (u32 i = 0; i < 4 * 1024; i++)
        pt[i / 1024][i % 1024] = (i << 12) | 7;
    for (u32 i = 0; i < 4; i++)
        pd[i] = (u32)pt[i] | 7;
    pd[HIGH_LIN >> 22] = (u32)pt_high | 7;
    pd[TOP_LIN >> 22] = (u32)pt_top | 7;
    pt[0][0] = (u32)zero_page | 7;
    pt_high[0] = (u32)high_page | 7;
    pt_top[1023] = (u32)top_page | 7;
    pt[NP_LIN >> 22][(NP_LIN >> 12) & 1023] = (u32)np_page | 6; /* not present */
    pt[SUP_LIN >> 22][(SUP_LIN >> 12) & 1023] = (u32)sup_page | 3; /* supervisor */
    for (u32 i = 0; i < 4096; i++)
        high_page[i] = (u8)(i * 7 + 1);
    write_cr3((u32)pd);
    write_cr0(read_cr0() | 0x80000000u);

    run(u_operands);
    CHECK_EQ(res[0], 0x11223344, "absolute operand above 2 GiB");
    CHECK_EQ(res[1], 0x5566, "base + index * 2 + disp");
    CHECK_EQ(res[2], 0xabcdef01, "a displacement that wraps at 4 GiB reaches page 0");
    CHECK_EQ(*(volatile u32 *)(zero_page + 8), 0xabcdef01, "page 0 holds it");
    CHECK_EQ(res[3], 0x0badf00d, "the last dword of linear space");
    CHECK_EQ(*(volatile u32 *)(top_page + 0xffc), 0x0badf00d, "the top page holds it");
    CHECK_EQ(res[4], 0x11223354, "ADD to memory above 2 GiB");

    run(u_disp_wrap);
    CHECK_EQ(res[34], 0x600d0001, "[reg + disp] wrapping past 4 GiB: store, ADD, load");
    CHECK_EQ(*(volatile u32 *)(zero_page + 0x10), 0x600d0001, "page 0 holds it");
    CHECK_EQ(res[35], 0x0badf00d, "[reg - disp] wrapping below 0: the top dword");
    CHECK_EQ(res[36], 0x0badf00d, "[esp - disp] wrapping below 0");
    /* The same bytes at another address (xbt: copies of its blocks, which must agree
       with fresh translations there; ctest's xbt-check-shared entry compares them). */
    u32 code = (u32)u_disp_wrap & ~0xfffu;
    set_pte(HIGH_LIN + 0x1000, code, 5);
    set_pte(HIGH_LIN + 0x2000, code + 0x1000, 5);
    res[34] = res[35] = res[36] = 0;
    *(volatile u32 *)(zero_page + 0x10) = 0;
    run((void (*)(void))(HIGH_LIN + 0x1000 + ((u32)u_disp_wrap & 0xfff)));
    CHECK_EQ(res[34], 0x600d0001, "the same run at another address: store, ADD, load");
    CHECK_EQ(res[35] & res[36], 0x0badf00d, "and below 0");

    run(u_high8);
    CHECK_EQ(res[5], 0x80007740, "MOV BH, [base + disp]");
    CHECK_EQ(res[6], 0x45, "MOV [base + index], AH, then ADD [base + disp], DH");
    CHECK_EQ(res[7], 0x55, "XCHG [base + disp], CH");

    run(u_stack);
    CHECK_EQ(res[8], 0xcafe0001, "PUSH m, POP m");
    CHECK_EQ(res[9], 6, "PUSHA: ESI below EDI");
    CHECK_EQ(res[10], 17, "POPA");
    CHECK_EQ(res[11], 0x5151, "ENTER, a local, LEAVE");
    CHECK_EQ(res[12], 0xca11, "CALL through memory above 2 GiB");

    run(u_strings);
    CHECK(!memcmp(zero_page + 0x100, high_page + 0x100, 256), "REP MOVSD into page 0");
    CHECK_EQ(res[13], 0x80000200, "ESI after REP MOVSD");
    CHECK_EQ(res[14], 0x200, "EDI after REP MOVSD");
    CHECK_EQ(res[15], 0, "REPE CMPSB: all equal");
    int top_ok = 1;
    for (u32 i = 0xf00; i < 0x1000; i++)
        top_ok &= top_page[i] == 0x5a;
    CHECK(top_ok, "REP STOSB up to the last byte of linear space");
    CHECK_EQ(res[16], 0, "EDI wraps to 0 after it");
    CHECK(!memcmp(zero_page + 0x300, high_page + 0x100, 256), "REP MOVSD with DF=1");
    CHECK_EQ(res[17], 0x800000fc, "ESI after the descending copy");
    CHECK_EQ(res[18], 0x2fc, "EDI after the descending copy");
    u32 at = 0;
    for (u32 i = 0x100; i < 0x200 && !at; i++)
        if (high_page[i] == 0xe7)
            at = HIGH_LIN + i + 1;
    CHECK_EQ(res[19], at ? at : HIGH_LIN + 0x200, "REPNE SCASB stops after the match");

    pf_fix = 1;
    pf_count = 0;
    run(u_string_pf);
    pf_fix = 0;
    CHECK_EQ(pf_count, 1, "REP MOVSB into a page not present: one #PF");
    CHECK_EQ(pf_cr2, NP_LIN, "#PF at the page's first byte");
    CHECK_EQ(pf_err, 6, "#PF error code: write, user, not present");
    CHECK_EQ(pf_ecx, 10, "ECX at the #PF: the bytes not yet copied");
    CHECK_EQ(pf_edi, NP_LIN, "EDI at the #PF");
    CHECK_EQ(pf_esi, HIGH_LIN + 0x20a, "ESI at the #PF");
    CHECK_EQ(res[20], 0, "the copy finished after the handler");
    CHECK_EQ(res[21], NP_LIN + 10, "EDI at its end");
    CHECK(!memcmp(np_page, high_page + 0x20a, 10), "the bytes past the page boundary");

    run(u_segbase);
    CHECK_EQ(res[22], 0x11223354, "FS with a base at CPL 3");
    CHECK_EQ(res[23], *(u32 *)(high_page + 0x100), "REP MOVSB from FS:ESI");

    run(u_misc);
    CHECK_EQ(res[24] & 0xff, 0x3c, "XLAT through page 0");
    CHECK_EQ(res[25], 11, "LOCK XADD returns the old value");
    CHECK_EQ(res[26], 16, "LOCK INC, LOCK XADD");
    CHECK_EQ(res[27], 0x44, "LOCK CMPXCHG8B stored ECX:EBX");
    CHECK_EQ(res[28], 24, "LOCK BTS");
    CHECK_EQ(res[29], 0x37f, "FXSAVE at CPL 3: FCW after FNINIT");

    pf_count = 0;
    set_pte(NP_LIN, (u32)np_page, 6);
    run(u_pf_read);
    CHECK_EQ(pf_count, 1, "user read of a page not present: #PF");
    CHECK_EQ(pf_cr2, NP_LIN + 4, "#PF cr2 (a wrapping displacement)");
    CHECK_EQ(pf_err, 4, "#PF error code: read, user, not present");
    CHECK_EQ(pf_cs, SEL_UCODE, "#PF from CPL 3");
    pf_count = 0;
    run(u_pf_sup);
    CHECK_EQ(pf_count, 1, "user write to a supervisor page: #PF");
    CHECK_EQ(pf_cr2, SUP_LIN + 8, "#PF cr2");
    CHECK_EQ(pf_err, 7, "#PF error code: write, user, present");
    CHECK_EQ(*(volatile u32 *)(sup_page + 8), 0, "the supervisor page is untouched");
    CHECK_EQ(gp_count, 0, "no #GP");

    /* Page 0 supervisor-only, with a secret the user must not reach by wrapping. */
    memset(zero_page, 0xc5, 16);
    set_pte(0, (u32)zero_page, 3);
    pf_count = gp_count = 0;
    res[30] = 0x22222222;
    run(u_wrap_load);
    CHECK_EQ(pf_count + gp_count, 1, "a dword load wrapping into a supervisor page 0 faults");
    CHECK_EQ(res[30], 0x22222222, "and the user got nothing");
    pf_count = gp_count = 0;
    res[37] = 0x22222222;
    run(u_disp_straddle);
    CHECK_EQ(pf_count + gp_count, 1, "[reg + disp] wrapping to a dword across 4 GiB faults");
    CHECK_EQ(res[37], 0x22222222, "and the user got nothing");
    pf_count = gp_count = 0;
    res[38] = 0x22222222;
    run(u_disp_far);
    CHECK_EQ(pf_count, 1, "[reg + 0x7ff] wrapping to linear 0xff of page 0: #PF");
    CHECK_EQ(pf_cr2, 0xff, "#PF cr2 (the wrapped address)");
    CHECK_EQ(pf_err, 5, "#PF error code: read, user, present");
    CHECK_EQ(res[38], 0x22222222, "and the user got nothing");
    pf_count = gp_count = 0;
    run(u_disp_low);
    CHECK_EQ(pf_count, 1, "[0 - 0x8000]: #PF");
    CHECK_EQ(pf_cr2, 0xffff8000, "#PF cr2 (wrapped below 0)");
    CHECK_EQ(pf_err, 4, "#PF error code: read, user, not present");
    CHECK_EQ(gp_count, 0, "no #GP");
    pf_count = gp_count = 0;
    run(u_wrap_store);
    CHECK_EQ(pf_count + gp_count, 1, "a dword store wrapping into it faults");
    CHECK_EQ(zero_page[0] | zero_page[1] << 8, 0xc5c5, "page 0 is unchanged");
    pf_count = gp_count = 0;
    run(u_wrap_stos);
    CHECK_EQ(pf_count, 1, "REP STOSB from 0xFFFFFFF0 into it: #PF");
    CHECK_EQ(pf_cr2, 0, "at linear 0");
    CHECK_EQ(pf_err, 7, "#PF error code: write, user, present");
    CHECK_EQ(pf_ecx, 16, "after the 16 bytes below 4 GiB");
    CHECK_EQ(pf_edi, 0, "EDI wrapped to 0");
    CHECK_EQ(zero_page[0], 0xc5, "page 0 is unchanged");
    int stos_top = 1;
    for (u32 i = 0xff0; i < 0x1000; i++)
        stos_top &= top_page[i] == 0x66;
    CHECK(stos_top, "the bytes below 4 GiB were written");

    memset(high_page + 0x400, 0xaa, 0x30);
    set_pte(NP_LIN, (u32)np_page, 6);
    pf_fix = 1;
    pf_count = gp_count = 0;
    run(u_maskmov);
    pf_fix = 0;
    CHECK(high_page[0x400] == 0x44 && high_page[0x401] == 0xaa && high_page[0x402] == 0x22 &&
              high_page[0x403] == 0xaa && high_page[0x40f] == 0xaa,
          "MASKMOVDQU stores the masked bytes at DS:EDI");
    CHECK(high_page[0x413] == 0x55 && high_page[0x412] == 0xaa && high_page[0x410] == 0xaa,
          "MASKMOVQ stores the masked byte");
    CHECK(high_page[0x420] == 0x44 && high_page[0x422] == 0x22 && high_page[0x421] == 0xaa,
          "MASKMOVDQU through FS with a base");
    CHECK_EQ(pf_count, 1, "MASKMOVDQU into a page not present: #PF");
    CHECK_EQ(pf_cr2, NP_LIN + 0x100, "#PF cr2 (EDI's address)");
    CHECK_EQ(pf_edi, NP_LIN + 0x100, "EDI at the #PF");
    CHECK(np_page[0x100] == 0x44 && np_page[0x102] == 0x22, "the store after the handler");
    CHECK_EQ(res[32], NP_LIN + 0x100, "EDI unchanged");
    CHECK_EQ(gp_count, 0, "no #GP");

    /* Page 0 still supervisor-only: under the fixed-GS layout a bit offset added with
       64-bit addressing would have reached the K-window's page 0 from the top page. */
    set_pte(0x1000, (u32)bt_page, 7);
    pf_count = gp_count = 0;
    run(u_bt);
    CHECK_EQ(pf_count + gp_count, 0, "BTx with register offsets: no fault");
    CHECK_EQ(bt_page[0x100], 0x21, "BTS [top page], 8 * 8 KiB + 5 wraps to page 1; "
                                   "BTS word with offset -32768 reaches it too");
    CHECK_EQ(res[31], 1, "LOCK BTS, LOCK BTR, BT there");
    CHECK_EQ(top_page[0xff0], 0x67, "BTS [0x10], -256 wraps down to the top page");
    CHECK_EQ(zero_page[0], 0xc5, "page 0 is unchanged");
}
