/*
 * privilege.c - privilege probes (issue 18): the checks of IRET, far RET, far CALL and
 * far JMP (direct and through call gates, 32- and 16-bit, to the same and to inner
 * rings with the stack from the TSS and the parameter copy), interrupts and exceptions
 * from rings 1, 2 and 3, and the error codes of faults met while delivering an event.
 * Each fault is compared exactly: vector, error code, the EIP and CS it reports, the
 * stack its frame is on and the SS:ESP in it; a fault from CPL 3 must leave the user's
 * stack as it was (nothing written below its ESP).
 *
 * Where QEMU TCG departs from the SDM the check says so and expects QEMU's answer on
 * QEMU and the SDM's elsewhere (on_qemu_tcg): QEMU never sets EXT in error codes, gives
 * #NP instead of #SS for a stack segment that is not present (and #TS for one from the
 * TSS), #GP instead of #NP for a JMP through a call gate to a code segment that is not
 * present, #GP(selector) instead of #GP(0) for a far CALL beyond the code segment's
 * limit, and loads CS with RPL 0 (not CPL) for a call through a gate to a conforming
 * segment.
 */
#include "lib/guest.h"

/* This guest's descriptors (the library's are 1-12). */
#define SEL_R1CODE (13 << 3) /* code, DPL 1 */
#define SEL_R1DATA (14 << 3) /* data, DPL 1 */
#define SEL_R2CODE (15 << 3) /* code, DPL 2 */
#define SEL_R2DATA (16 << 3) /* data, DPL 2 */
#define SEL_CONF0  (17 << 3) /* conforming code, DPL 0 */
#define SEL_GATE   (18 << 3) /* a call gate, rewritten by each probe */
#define SEL_SMALLC (19 << 3) /* code, DPL 0, limit 0xfff */
#define SEL_NPCODE (20 << 3) /* code, DPL 0, not present */
#define SEL_CODEB  (21 << 3) /* code, DPL 0, based so that 16-bit offsets reach land16 */
#define SEL_NPSS3  (22 << 3) /* writable data, DPL 3, not present */
#define SEL_NPSS1  (23 << 3) /* writable data, DPL 1, not present */
#define SEL_GATE2  (24 << 3) /* a second call gate */
#define SEL_BEYOND 0x1f8     /* index 63: beyond the GDT's limit */
#define IDX(sel) ((sel) >> 3)

static u8 kstack[8192] __attribute__((aligned(16)));
static u8 r1stack[4096] __attribute__((aligned(16)));
static u8 r2stack[4096] __attribute__((aligned(16)));
static u8 ustack[8192] __attribute__((aligned(16)));
#define TOP(s) ((u32)(s) + sizeof(s))

/* ---- the probe harness ------------------------------------------------------------------
 * probe_run pushes probe_words[0..n-1] (word 0 first), fills the 256 bytes below the
 * resulting ESP with a pattern, and runs instruction probe_kind with fault.expect_eip
 * and fault.resume set.  A fault resumes at probe_resume, which counts the pattern's
 * dwords that changed (probe_clobbered: a fault from CPL 3 must change none) and
 * returns; a transfer that succeeds at CPL 0 lands at probe_land (or probe_land16 in
 * the based segment), which records its CS, ESP and the words on the stack. */
enum { K_IRET, K_IRETW, K_LRET, K_LRETW, K_LRET8, K_LCALL, K_LJMP, K_LCALLW, K_UD2,
       K_INT85, K_INT86, K_LJMPD, K_LCALLD };
volatile u32 probe_kind, probe_n, probe_words[8], probe_sp, probe_saved, probe_clobbered;
volatile u32 probe_landed, probe_land_cs, probe_land_esp, probe_land_stack[8];
volatile struct { u32 off; u16 sel; } __attribute__((packed)) probe_far;
volatile struct { u16 off; u16 sel; } __attribute__((packed)) probe_far16;
u32 probe_run(void);
void probe_land(void);
void probe_land16(void);
extern const u8 probe_insn[];
__asm__(".text\n.globl probe_run\nprobe_run:\n"
        "\tpushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"
        "\tmovl %esp, probe_saved\n"
        "\tmovl $0, probe_landed\n"
        "\tmovl probe_n, %ecx\n\tmovl $probe_words, %esi\n"
        "1:\ttestl %ecx, %ecx\n\tjz 2f\n\tpushl (%esi)\n\taddl $4, %esi\n\tdecl %ecx\n\tjmp 1b\n"
        "2:\tleal -256(%esp), %edi\n\tmovl $64, %ecx\n\tmovl $0x5a5a5a5a, %eax\n\tcld\n\trep stosl\n"
        "\tmovl probe_kind, %eax\n\tmovl probe_table(,%eax,4), %edx\n"
        "\tmovl %edx, fault+16\n\tmovl $probe_resume, fault+20\n"
        "\tmovl %esp, probe_sp\n"
        "\tjmp *%edx\n"
        "p_iret:\tiret\n"
        "p_iretw:\tiretw\n"
        "p_lret:\tlret\n"
        "p_lretw:\tlretw\n"
        "p_lret8:\tlret $8\n"
        "p_lcall:\tlcall *probe_far\n"
        "p_ljmp:\tljmp *probe_far\n"
        "p_lcallw:\tlcallw *probe_far16\n"
        "p_ud2:\tud2\n"
        "p_int85:\tint $0x85\n"
        "p_int86:\tint $0x86\n"
        "p_ljmpd:\tljmp $0x0b, $0\n"   /* ptr16:32 to the kernel's code with RPL 3 */
        "p_lcalld:\tlcall $0x08, $0\n" /* ptr16:32 to the kernel's code */
        "\tjmp probe_resume\n"
        ".globl probe_resume\nprobe_resume:\n"
        "\tmovl probe_sp, %edi\n\tsubl $256, %edi\n\tmovl $64, %ecx\n\txorl %edx, %edx\n"
        "3:\tcmpl $0x5a5a5a5a, (%edi)\n\tje 4f\n\tincl %edx\n"
        "4:\taddl $4, %edi\n\tdecl %ecx\n\tjnz 3b\n"
        "\tmovl %edx, probe_clobbered\n"
        "\tmovl probe_saved, %esp\n"
        "\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n\tret\n"
        ".globl probe_land\nprobe_land:\n"
        "\tmovl %esp, probe_land_esp\n\tmovl %cs, %eax\n\tmovl %eax, probe_land_cs\n"
        "\txorl %ecx, %ecx\n"
        "5:\tmovl (%esp,%ecx,4), %eax\n\tmovl %eax, probe_land_stack(,%ecx,4)\n"
        "\tincl %ecx\n\tcmpl $8, %ecx\n\tjne 5b\n"
        "\tmovl $1, probe_landed\n"
        "\tljmp $0x08, $probe_resume\n"
        ".globl probe_land16\nprobe_land16:\n"
        "\tmovl %esp, probe_land_esp\n\tmovl %cs, %eax\n\tmovl %eax, probe_land_cs\n"
        "\txorl %ecx, %ecx\n"
        "6:\tmovl (%esp,%ecx,4), %eax\n\tmovl %eax, probe_land_stack(,%ecx,4)\n"
        "\tincl %ecx\n\tcmpl $8, %ecx\n\tjne 6b\n"
        "\tmovl $1, probe_landed\n"
        "\tljmp $0x08, $probe_resume\n"
        ".data\n.globl probe_table\nprobe_table:\n"
        "\t.long p_iret, p_iretw, p_lret, p_lretw, p_lret8, p_lcall, p_ljmp, p_lcallw, p_ud2\n"
        "\t.long p_int85, p_int86, p_ljmpd, p_lcalld\n"
        ".text\n");

static u32 words_n(u32 n, u32 a, u32 b, u32 c, u32 d, u32 e)
{
    u32 w[5] = { a, b, c, d, e };
    probe_n = n;
    for (u32 i = 0; i < n; i++)
        probe_words[i] = w[i];
    return n;
}

/* Runs a probe; returns the vector it faulted with (fault.*), or 0xff if it did not. */
static u32 probe(u32 kind)
{
    fault.vector = 0xff;
    fault.err = 0xffffffffu;
    probe_kind = kind;
    probe_run();
    return fault.vector;
}

static u32 expect_eip(u32 kind)
{
    extern const u32 probe_table[];
    return probe_table[kind];
}

static u32 land16_off(void) { return (u32)probe_land16 & 0xffff; }

/* Checks one faulting probe at CPL 0: vector, error code, the instruction's EIP, and
   the frame on the same stack with the ESP the instruction began with. */
static void expect_fault0(u32 kind, u32 vec, u32 err, const char *name)
{
    u32 v = probe(kind);
    char buf[96];
    const char *parts[] = { "vector", "error code", "eip", "esp unchanged" };
    u32 got[] = { v, fault.err, fault.eip, fault.esp };
    u32 want[] = { vec, err, expect_eip(kind), probe_sp };
    for (int i = 0; i < 4; i++) {
        u32 n = 0;
        for (const char *p = name; *p && n < 60; p++)
            buf[n++] = *p;
        buf[n++] = ':';
        buf[n++] = ' ';
        for (const char *p = parts[i]; *p; p++)
            buf[n++] = *p;
        buf[n] = 0;
        check_eq(got[i], want[i], buf);
    }
}

/* ---- user mode (as user.c) ------------------------------------------------------------ */
static volatile u32 kernel_esp __attribute__((used)); /* the asm's */
void enter_ring(void (*fn)(void), u32 esp, u32 cs, u32 ss);
void kernel_resume(void);
__asm__(".text\n.globl enter_ring\nenter_ring:\n"
        "\tpushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n"
        "\tmovl %esp, kernel_esp\n"
        "\tmovl 20(%esp), %eax\n\tmovl 24(%esp), %ecx\n"
        "\tmovl 28(%esp), %ebx\n\tmovl 32(%esp), %edx\n"
        "\tpushl %edx\n\tpushl %ecx\n\tpushfl\n\tpushl %ebx\n\tpushl %eax\n"
        "\tmovl $0x23, %edx\n\tmovl %edx, %ds\n\tmovl %edx, %es\n"
        "\tiret\n"
        ".globl kernel_resume\nkernel_resume:\n"
        "\tmovl $0x10, %eax\n\tmovl %eax, %ds\n\tmovl %eax, %es\n"
        "\tmovl %eax, %ss\n\tmovl kernel_esp, %esp\n"
        "\tpopl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n\tret\n");

static void enter_user(void (*fn)(void)) { enter_ring(fn, TOP(ustack), SEL_UCODE, SEL_UDATA); }

static void sys_exit(void) { __asm__ volatile("int $0x80" : : "a"(0) : "memory"); }

static void syscall_handler(struct frame *f)
{
    if (f->eax == 0) { /* exit: back to the kernel, at CPL 0 */
        f->eip = (u32)kernel_resume;
        f->cs = SEL_CODE;
    }
}

/* What a probe run at an outer level saw, copied for the kernel to check. */
struct seen {
    u32 vec, err, eip, cs, frame, esp, ss, sp, clobbered, want_eip;
};
static struct seen seen[16];
static volatile u32 n_seen;

static void record(u32 kind)
{
    struct seen *s = &seen[n_seen++];
    s->vec = probe(kind);
    s->err = fault.err, s->eip = fault.eip, s->cs = fault.cs, s->frame = fault.frame;
    s->esp = fault.esp, s->ss = fault.ss, s->sp = probe_sp, s->clobbered = probe_clobbered;
    s->want_eip = expect_eip(kind);
}

/* A fault from an outer level: the frame on the ring-0 stack with the faulting code's
   CS, SS:ESP and EIP, and nothing written on the faulting code's stack. */
static void check_outer(const struct seen *s, u32 vec, u32 err, u32 cs, u32 ss,
                        const char *name)
{
    printf("-- %s\n", name);
    CHECK_EQ(s->vec, vec, "  vector");
    CHECK_EQ(s->err, err, "  error code");
    CHECK_EQ(s->eip, s->want_eip, "  eip is the faulting instruction's");
    CHECK_EQ(s->cs & 0xffff, cs, "  cs is the faulting code's");
    CHECK(s->frame >= (u32)kstack && s->frame < TOP(kstack), "  frame on the ring-0 stack (TSS)");
    CHECK_EQ(s->esp, s->sp, "  frame holds the faulting code's ESP, unchanged");
    CHECK_EQ(s->ss & 0xffff, ss, "  frame holds the faulting code's SS");
    CHECK_EQ(s->clobbered, 0, "  faulting code's stack untouched");
}

/* ---- faulting far transfers from CPL 3 ------------------------------------------------- */
static void user_faults(void)
{
    words_n(2, 0x0b, 0x1234, 0, 0, 0);        /* lret to CS 0x0b (DPL 0, RPL 3) */
    record(K_LRET);
    words_n(2, 0x08, 0x1234, 0, 0, 0);        /* lret to an inner level (RPL 0) */
    record(K_LRET);
    words_n(3, 0x202, 0x08, 0x1234, 0, 0);    /* iret to an inner level */
    record(K_IRET);
    words_n(3, 0x202, SEL_DPL3D | 3, 0x1234, 0, 0); /* iret to a data selector */
    record(K_IRET);
    words_n(3, 0x202, 0, 0x1234, 0, 0);       /* iret to a null selector */
    record(K_IRET);
    words_n(0, 0, 0, 0, 0, 0);
    probe_far.sel = SEL_CODE;                 /* lcall to the kernel's code */
    probe_far.off = 0;
    record(K_LCALL);
    record(K_LCALLD);                         /* the same, ptr16:32 */
    record(K_LJMPD);                          /* ljmp to 0x0b */
    probe_far.sel = SEL_GATE | 3;             /* call gate with DPL 0 < CPL */
    record(K_LCALL);
    probe_far.sel = SEL_GATE2 | 3;            /* ljmp through a DPL 3 gate to DPL 0 code */
    record(K_LJMP);
    sys_exit();
}

static void test_user_faults(void)
{
    gdt_set_call_gate(IDX(SEL_GATE), SEL_CODE, (u32)probe_land, 0, 0, 1, 1);
    gdt_set_call_gate(IDX(SEL_GATE2), SEL_CODE, (u32)probe_land, 3, 0, 1, 1);
    n_seen = 0;
    enter_user(user_faults);
    const char *names[] = { "lret to a DPL 0 code segment (RPL 3)", "lret to CPL 0",
                            "iret to CPL 0", "iret to a data selector", "iret to a null selector",
                            "lcall m16:32 to the kernel's code", "lcall ptr16:32 to the kernel's code",
                            "ljmp ptr16:32 to 0x0b", "lcall through a DPL 0 gate from CPL 3",
                            "ljmp through a gate to DPL 0 code" };
    u32 errs[] = { 0x08, 0x08, 0x08, SEL_DPL3D, 0, 0x08, 0x08, 0x08, SEL_GATE, 0x08 };
    CHECK_EQ(n_seen, 10, "user probes ran");
    for (u32 i = 0; i < n_seen && i < 10; i++)
        check_outer(&seen[i], 13, errs[i], SEL_UCODE, SEL_UDATA, names[i]);
}

/* ---- call gates from CPL 3 to inner rings, 0-3 parameters -------------------------------- */
static volatile u32 gate_esp, gate_cs, gate_stack[10], ucall_n, ucall_params[4];
static volatile u32 ucall_esp_before, ucall_esp_pushed, ucall_esp_after;
static volatile u32 ucall_ret __attribute__((used)); /* written by the asm */
/* The handlers: record ESP, CS and the frame, return with RET imm16 releasing the
   parameters from both stacks. */
#define GATE_HANDLER(n)                                                                  \
    "gate_h" #n ":\n\tmovl %esp, gate_esp\n\tmovl %cs, %eax\n\tmovl %eax, gate_cs\n"     \
    "\txorl %ecx, %ecx\n1:\tmovl (%esp,%ecx,4), %eax\n\tmovl %eax, gate_stack(,%ecx,4)\n" \
    "\tincl %ecx\n\tcmpl $10, %ecx\n\tjne 1b\n\tlret $" #n "*4\n"
void gate_h0(void), gate_h1(void), gate_h2(void), gate_h3(void);
__asm__(".text\n" GATE_HANDLER(0) GATE_HANDLER(1) GATE_HANDLER(2) GATE_HANDLER(3));

/* User side: push ucall_n parameters (parameter 0 lowest), call through the gate. */
void user_gate_call(void);
__asm__(".text\n.globl user_gate_call\nuser_gate_call:\n"
        "\tmovl %esp, ucall_esp_before\n"
        "\tmovl ucall_n, %ecx\n"
        "1:\tjecxz 2f\n\tpushl ucall_params-4(,%ecx,4)\n\tdecl %ecx\n\tjmp 1b\n"
        "2:\tmovl %esp, ucall_esp_pushed\n"
        "\tlcall *probe_far\n"
        "ucall_ret_here:\n"
        "\tmovl %esp, ucall_esp_after\n"
        "\tmovl $ucall_ret_here, ucall_ret\n"
        "\tmovl $0, %eax\n\tint $0x80\n");
extern const u8 ucall_ret_here[];

static void gate_call_case(u32 ring, u32 n, u32 target_cs, u32 ss, u32 stack_top)
{
    void (*h[4])(void) = { gate_h0, gate_h1, gate_h2, gate_h3 };
    gdt_set_call_gate(IDX(SEL_GATE), (u16)target_cs, (u32)h[n], 3, (int)n, 1, 1);
    probe_far.sel = SEL_GATE | 3;
    probe_far.off = 0x12345678; /* ignored for a gate */
    ucall_n = n;
    for (u32 i = 0; i < 4; i++)
        ucall_params[i] = 0x11111111u * (i + 1);
    for (u32 i = 0; i < 10; i++)
        gate_stack[i] = 0xdeadbeef;
    enter_user(user_gate_call);
    printf("-- call gate from ring 3 to ring %u with %u parameters\n", ring, n);
    CHECK_EQ(gate_cs & 0xffff, target_cs | ring, "  CS is the target's with RPL = new CPL");
    CHECK_EQ(gate_esp, stack_top - (4 + n) * 4, "  the inner stack from the TSS");
    CHECK_EQ(gate_stack[0], (u32)ucall_ret_here, "  return EIP");
    CHECK_EQ(gate_stack[1] & 0xffff, SEL_UCODE, "  return CS");
    u32 same = 1;
    for (u32 i = 0; i < n; i++)
        same &= gate_stack[2 + i] == ucall_params[i];
    CHECK(same, "  parameters copied in order");
    CHECK_EQ(gate_stack[2 + n], ucall_esp_pushed, "  caller's ESP");
    CHECK_EQ(gate_stack[3 + n] & 0xffff, ss, "  caller's SS");
    CHECK_EQ(ucall_esp_after, ucall_esp_before, "  RET imm16 released the parameters");
}

/* A 16-bit call gate from CPL 3 to CPL 0 with two parameters: 16-bit words pushed. */
static volatile u32 g16_esp, g16_words[4];
void gate16_h(void);
__asm__(".text\n.globl gate16_h\ngate16_h:\n"
        "\tmovl %esp, g16_esp\n"
        "\tmovl (%esp), %eax\n\tmovl %eax, g16_words\n"
        "\tmovl 4(%esp), %eax\n\tmovl %eax, g16_words+4\n"
        "\tmovl 8(%esp), %eax\n\tmovl %eax, g16_words+8\n"
        "\tljmp $0x08, $kernel_resume\n");
void user_gate16_call(void);
__asm__(".text\n.globl user_gate16_call\nuser_gate16_call:\n"
        "\tpushw $0x2222\n\tpushw $0x1111\n"
        "\tmovl %esp, ucall_esp_pushed\n"
        "\tlcall *probe_far\n"
        "g16_ret_here:\n\tud2\n");
extern const u8 g16_ret_here[];

static void test_call_gates(void)
{
    for (u32 n = 0; n <= 3; n++)
        gate_call_case(0, n, SEL_CODE, SEL_UDATA, TOP(kstack));
    tss_set_stack(1, TOP(r1stack), SEL_R1DATA | 1);
    tss_set_stack(2, TOP(r2stack), SEL_R2DATA | 2);
    gate_call_case(1, 2, SEL_R1CODE, SEL_UDATA, TOP(r1stack));
    gate_call_case(2, 3, SEL_R2CODE, SEL_UDATA, TOP(r2stack));

    gdt_set(IDX(SEL_CODEB), (u32)gate16_h & ~0xffffu, 0xfffff, 0x9a, 0xc);
    gdt_set_call_gate(IDX(SEL_GATE), SEL_CODEB, (u32)gate16_h & 0xffff, 3, 2, 0, 1);
    probe_far.sel = SEL_GATE | 3;
    enter_user(user_gate16_call);
    printf("-- 16-bit call gate from ring 3 to ring 0 with 2 parameters\n");
    CHECK_EQ(g16_esp, TOP(kstack) - 12, "  six 16-bit words on the ring-0 stack");
    CHECK_EQ(g16_words[0], ((u32)SEL_UCODE << 16) | ((u32)g16_ret_here & 0xffff), "  IP, CS");
    CHECK_EQ(g16_words[1], 0x22221111, "  parameters");
    CHECK_EQ(g16_words[2], ((u32)SEL_UDATA << 16) | (ucall_esp_pushed & 0xffff), "  SP, SS");
}

/* Stack faults of a call to ring 1: SS1 from the TSS checked (#TS, #SS with its
   selector), raised at CPL 3 with the frame on the ring-0 stack. */
static void user_ts_probe(void)
{
    words_n(0, 0, 0, 0, 0, 0);
    record(K_LCALL);
    sys_exit();
}

static void test_gate_stack_faults(void)
{
    gdt_set_call_gate(IDX(SEL_GATE), SEL_R1CODE, (u32)gate_h0, 3, 0, 1, 1);
    probe_far.sel = SEL_GATE | 3;
    struct { u32 ss, vec, err, qvec; const char *name; } c[] = {
        { 0, 10, 0, 10, "call gate to ring 1, SS1 null: #TS(0)" },
        { SEL_R1DATA, 10, SEL_R1DATA, 10, "SS1 with RPL 0: #TS(SS1)" },
        { SEL_UDATA | 1, 10, SEL_UDATA & ~3, 10, "SS1 with DPL 3: #TS(SS1)" },
        { SEL_R1CODE | 1, 10, SEL_R1CODE, 10, "SS1 a code segment: #TS(SS1)" },
        { SEL_NPSS1 | 1, 12, SEL_NPSS1, 10, "SS1 not present: #SS(SS1) (QEMU: #TS)" },
    };
    for (u32 i = 0; i < sizeof c / sizeof c[0]; i++) {
        tss_set_stack(1, TOP(r1stack), c[i].ss);
        n_seen = 0;
        enter_user(user_ts_probe);
        check_outer(&seen[0], on_qemu_tcg() ? c[i].qvec : c[i].vec, c[i].err, SEL_UCODE,
                    SEL_UDATA, c[i].name);
    }
    tss_set_stack(1, TOP(r1stack), SEL_R1DATA | 1);
}

/* A call through a gate to a conforming segment stays at CPL 3, on the user's stack. */
static volatile u32 conf_cs, conf_esp, conf_ret;
void conf_h(void);
__asm__(".text\n.globl conf_h\nconf_h:\n"
        "\tmovl %cs, %eax\n\tmovl %eax, conf_cs\n\tmovl %esp, conf_esp\n"
        "\tmovl (%esp), %eax\n\tmovl %eax, conf_ret\n\tlret\n");
void user_conf_call(void);
__asm__(".text\n.globl user_conf_call\nuser_conf_call:\n"
        "\tmovl %esp, ucall_esp_before\n"
        "\tlcall *probe_far\n"
        "conf_ret_here:\n"
        "\tmovl %esp, ucall_esp_after\n"
        "\tmovl $0, %eax\n\tint $0x80\n");
extern const u8 conf_ret_here[];

/* An interrupt through a gate to a conforming DPL 0 segment from CPL 3: the same level,
   the frame (no SS:ESP) on the user's stack. */
void conf_int_h(void);
__asm__(".text\n.globl conf_int_h\nconf_int_h:\n"
        "\tmovl %cs, %eax\n\tmovl %eax, conf_cs\n\tmovl %esp, conf_esp\n"
        "\tmovl (%esp), %eax\n\tmovl %eax, conf_ret\n\tiret\n");
void user_conf_int(void);
__asm__(".text\n.globl user_conf_int\nuser_conf_int:\n"
        "\tmovl %esp, ucall_esp_before\n"
        "\tint $0x87\n"
        "conf_int_ret_here:\n"
        "\tmovl %esp, ucall_esp_after\n"
        "\tmovl $0, %eax\n\tint $0x80\n");
extern const u8 conf_int_ret_here[];

static void test_conforming(void)
{
    idt_set(0x87, (u32)conf_int_h, SEL_CONF0, 0xe, 3);
    enter_user(user_conf_int);
    idt[0x87] = 0;
    printf("-- int from ring 3 through a gate to a conforming DPL 0 segment\n");
    CHECK_EQ(conf_cs & 0xffff, SEL_CONF0 | 3, "  CPL stays 3");
    CHECK_EQ(conf_esp, ucall_esp_before - 12, "  EIP, CS, EFLAGS on the user's stack");
    CHECK_EQ(conf_ret, (u32)conf_int_ret_here, "  return EIP");
    CHECK_EQ(ucall_esp_after, ucall_esp_before, "  back with IRET");

    gdt_set_call_gate(IDX(SEL_GATE), SEL_CONF0, (u32)conf_h, 3, 0, 1, 1);
    probe_far.sel = SEL_GATE | 3;
    enter_user(user_conf_call);
    printf("-- call gate from ring 3 to a conforming DPL 0 segment\n");
    /* QEMU loads CS with RPL = the segment's DPL (0); the SDM: RPL = CPL (3). */
    CHECK_EQ(conf_cs & 0xffff, SEL_CONF0 | (on_qemu_tcg() ? 0 : 3), "  CPL stays 3");
    CHECK_EQ(conf_esp, ucall_esp_before - 8, "  on the caller's stack");
    CHECK_EQ(conf_ret, (u32)conf_ret_here, "  return EIP");
    CHECK_EQ(ucall_esp_after, ucall_esp_before, "  back with RET");
}

/* ---- rings 1 and 2: interrupts and exceptions, an interrupt to ring 1 from ring 2 ----------- */
static volatile u32 int_cs, int_ss, int_esp, int_frame;
static void int81_handler(struct frame *f)
{
    int_cs = f->cs;
    int_ss = f->ss3;
    int_esp = f->esp3;
    int_frame = (u32)f;
}
static volatile u32 ring_esp, ring_esp2, r1int_esp, r1int_cs, r1int_stack[5];
void r1_int_handler(void);
__asm__(".text\n.globl r1_int_handler\nr1_int_handler:\n"
        "\tmovl %esp, r1int_esp\n\tpushl %eax\n\tpushl %ecx\n"
        "\tmovl %cs, %eax\n\tmovl %eax, r1int_cs\n"
        "\txorl %ecx, %ecx\n1:\tmovl 8(%esp,%ecx,4), %eax\n\tmovl %eax, r1int_stack(,%ecx,4)\n"
        "\tincl %ecx\n\tcmpl $5, %ecx\n\tjne 1b\n\tpopl %ecx\n\tpopl %eax\n\tiret\n");

static struct seen ring_fault;
static void ring_body(void)
{
    __asm__ volatile("movl %%esp, ring_esp\n\tint $0x81" ::: "memory");
    TRY_FAULT("cli", NOFAULT); /* CPL > IOPL: #GP(0) */
    ring_fault.vec = fault.vector, ring_fault.err = fault.err, ring_fault.eip = fault.eip;
    ring_fault.cs = fault.cs, ring_fault.frame = fault.frame, ring_fault.ss = fault.ss;
    ring_fault.want_eip = fault.expect_eip;
    __asm__ volatile("movl %%esp, ring_esp2\n\tint $0x82" ::: "memory"); /* to ring 1 */
    sys_exit();
}

static void test_rings(void)
{
    set_handler(0x31, int81_handler);
    idt_set(0x81, isr_table[0x31], SEL_CODE, 0xe, 3);
    idt_set(0x82, (u32)r1_int_handler, SEL_R1CODE, 0xe, 3);
    for (u32 ring = 1; ring <= 2; ring++) {
        u32 cs = (ring == 1 ? SEL_R1CODE : SEL_R2CODE) | ring;
        u32 ss = (ring == 1 ? SEL_R1DATA : SEL_R2DATA) | ring;
        u32 top = ring == 1 ? TOP(r1stack) - 64 : TOP(r2stack) - 64;
        r1int_cs = 0;
        enter_ring(ring_body, top, cs, ss);
        printf("-- ring %u\n", ring);
        CHECK_EQ(int_cs & 0xffff, cs, "  int from the ring: its CS in the frame");
        CHECK_EQ(int_ss & 0xffff, ss, "  its SS");
        CHECK_EQ(int_esp, ring_esp, "  its ESP");
        CHECK(int_frame >= (u32)kstack && int_frame < TOP(kstack), "  frame on the ring-0 stack");
        CHECK_EQ(ring_fault.vec, 13, "  cli: #GP");
        CHECK_EQ(ring_fault.err, 0, "  #GP(0)");
        CHECK_EQ(ring_fault.eip, ring_fault.want_eip, "  at the cli");
        CHECK_EQ(ring_fault.cs & 0xffff, cs, "  from the ring");
        CHECK(ring_fault.frame >= (u32)kstack && ring_fault.frame < TOP(kstack),
              "  on the ring-0 stack");
        CHECK_EQ(ring_fault.ss & 0xffff, ss, "  with the ring's SS");
        if (ring == 1) {
            CHECK_EQ(r1int_cs & 0xffff, SEL_R1CODE | 1, "  int to a ring-1 handler from ring 1");
            CHECK_EQ(r1int_esp, ring_esp2 - 12, "  on the same stack, no SS:ESP pushed");
        } else {
            CHECK_EQ(r1int_cs & 0xffff, SEL_R1CODE | 1, "  int from ring 2 to a ring-1 handler");
            CHECK_EQ(r1int_esp, TOP(r1stack) - 20, "  on SS1:ESP1 from the TSS");
            CHECK_EQ(r1int_stack[1] & 0xffff, cs, "  ring 2's CS");
            CHECK_EQ(r1int_stack[3], ring_esp2, "  ring 2's ESP");
            CHECK_EQ(r1int_stack[4] & 0xffff, ss, "  ring 2's SS");
        }
    }
}

/* ---- CPL 0: IRET, RET, JMP, CALL and their faults ---------------------------------------- */
static void test_kernel_returns(void)
{
    u32 fl = read_eflags();
    words_n(3, fl, SEL_DATA, (u32)probe_land, 0, 0);
    expect_fault0(K_IRET, 13, SEL_DATA, "iret to a data segment");
    words_n(3, fl, SEL_UDATA, (u32)probe_land, 0, 0);
    expect_fault0(K_IRET, 13, SEL_UDATA & ~3, "iret to a DPL 3 data selector");
    words_n(3, fl, 0, (u32)probe_land, 0, 0);
    expect_fault0(K_IRET, 13, 0, "iret to a null selector");
    words_n(3, fl, SEL_BEYOND, (u32)probe_land, 0, 0);
    expect_fault0(K_IRET, 13, SEL_BEYOND, "iret beyond the GDT");
    words_n(3, fl, SEL_CODE | 3, (u32)probe_land, 0, 0);
    expect_fault0(K_IRET, 13, SEL_CODE, "iret to DPL 0 code with RPL 3");
    words_n(3, fl, SEL_NPCODE, (u32)probe_land, 0, 0);
    expect_fault0(K_IRET, 11, SEL_NPCODE, "iret to a code segment not present");
    /* To CPL 3: the stack segment popped after EIP, CS, EFLAGS, ESP. */
    words_n(5, 0, 0x1000, fl, SEL_UCODE, (u32)probe_land);
    expect_fault0(K_IRET, 13, 0, "iret to CPL 3 with a null SS");
    words_n(5, SEL_NP | 3, 0x1000, fl, SEL_UCODE, (u32)probe_land);
    expect_fault0(K_IRET, 13, SEL_NP, "iret to CPL 3 with a DPL 0 SS");
    words_n(5, SEL_UDATA & ~3, 0x1000, fl, SEL_UCODE, (u32)probe_land);
    expect_fault0(K_IRET, 13, SEL_UDATA & ~3, "iret to CPL 3 with SS RPL 0");
    words_n(5, SEL_UCODE, 0x1000, fl, SEL_UCODE, (u32)probe_land);
    expect_fault0(K_IRET, 13, SEL_UCODE & ~3, "iret to CPL 3 with a code segment as SS");
    words_n(5, SEL_NPSS3 | 3, 0x1000, fl, SEL_UCODE, (u32)probe_land);
    expect_fault0(K_IRET, on_qemu_tcg() ? 11 : 12, SEL_NPSS3,
                  "iret to CPL 3 with SS not present (SDM #SS, QEMU #NP)");

    /* 16-bit IRET to the same level: 16-bit IP, CS, FLAGS. */
    gdt_set(IDX(SEL_CODEB), (u32)probe_land16 & ~0xffffu, 0xfffff, 0x9a, 0xc);
    words_n(2, fl & 0xffff, land16_off() | (SEL_CODEB << 16), 0, 0, 0);
    CHECK_EQ(probe(K_IRETW), 0xff, "iretw to the same level");
    CHECK(probe_landed, "iretw landed");
    CHECK_EQ(probe_land_cs & 0xffff, SEL_CODEB, "iretw: CS");
    CHECK_EQ(probe_land_esp, probe_sp + 6, "iretw: popped 6 bytes");
    words_n(2, fl & 0xffff, land16_off() | (SEL_DATA << 16), 0, 0, 0);
    expect_fault0(K_IRETW, 13, SEL_DATA, "iretw to a data segment");

    /* Far RET. */
    words_n(4, 0x2222, 0x1111, SEL_CODE, (u32)probe_land, 0);
    CHECK_EQ(probe(K_LRET8), 0xff, "lret $8 to the same level");
    CHECK_EQ(probe_land_esp, probe_sp + 16, "lret $8: released 8 more bytes");
    words_n(2, SEL_CODE, (u32)probe_land, 0, 0, 0);
    CHECK_EQ(probe(K_LRET), 0xff, "lret to the same level");
    CHECK_EQ(probe_land_cs & 0xffff, SEL_CODE, "lret: CS");
    words_n(1, (SEL_CODEB << 16) | land16_off(), 0, 0, 0, 0);
    CHECK_EQ(probe(K_LRETW), 0xff, "lretw to the same level");
    CHECK_EQ(probe_land_esp, probe_sp + 4, "lretw: popped 4 bytes");
    words_n(2, SEL_RODATA, (u32)probe_land, 0, 0, 0);
    expect_fault0(K_LRET, 13, SEL_RODATA, "lret to a data segment");
    words_n(2, SEL_NPCODE, (u32)probe_land, 0, 0, 0);
    expect_fault0(K_LRET, 11, SEL_NPCODE, "lret to a code segment not present");
    words_n(4, 0, 0x1000, SEL_UCODE, (u32)probe_land, 0);
    expect_fault0(K_LRET, 13, 0, "lret to CPL 3 with a null SS");
    words_n(4, SEL_NPSS3 | 3, 0x1000, SEL_UCODE, (u32)probe_land, 0);
    expect_fault0(K_LRET, on_qemu_tcg() ? 11 : 12, SEL_NPSS3,
                  "lret to CPL 3 with SS not present (SDM #SS, QEMU #NP)");
}

static void far_target(u32 sel, u32 off)
{
    probe_far.sel = (u16)sel;
    probe_far.off = off;
    words_n(0, 0, 0, 0, 0, 0);
}

static void test_kernel_jumps(void)
{
    far_target(SEL_DATA, (u32)probe_land);
    expect_fault0(K_LJMP, 13, SEL_DATA, "ljmp to a data segment");
    expect_fault0(K_LCALL, 13, SEL_DATA, "lcall to a data segment");
    far_target(0, (u32)probe_land);
    expect_fault0(K_LJMP, 13, 0, "ljmp to a null selector");
    far_target(SEL_BEYOND, (u32)probe_land);
    expect_fault0(K_LCALL, 13, SEL_BEYOND, "lcall beyond the GDT");
    far_target(SEL_LDT_DATA, (u32)probe_land);
    expect_fault0(K_LJMP, 13, SEL_LDT_DATA & ~3, "ljmp to data in the LDT");
    far_target(SEL_CODE | 3, (u32)probe_land);
    expect_fault0(K_LJMP, 13, SEL_CODE, "ljmp to non-conforming code with RPL > CPL");
    far_target(SEL_UCODE, (u32)probe_land);
    expect_fault0(K_LCALL, 13, SEL_UCODE & ~3, "lcall to DPL 3 code from CPL 0");
    far_target(SEL_NPCODE, (u32)probe_land);
    expect_fault0(K_LCALL, 11, SEL_NPCODE, "lcall to code not present");
    far_target(SEL_SMALLC, 0x2000);
    expect_fault0(K_LJMP, 13, 0, "ljmp beyond the code segment's limit");
    expect_fault0(K_LCALL, 13, on_qemu_tcg() ? SEL_SMALLC : 0,
                  "lcall beyond the code segment's limit (SDM #GP(0), QEMU #GP(sel))");
    far_target(SEL_CONF0 | 3, (u32)probe_land);
    CHECK_EQ(probe(K_LJMP), 0xff, "ljmp to conforming code");
    CHECK_EQ(probe_land_cs & 0xffff, SEL_CONF0, "ljmp to conforming code: RPL = CPL");
    far_target(SEL_CODE, (u32)probe_land);
    CHECK_EQ(probe(K_LCALL), 0xff, "lcall to code");
    CHECK_EQ(probe_land_esp, probe_sp - 8, "lcall pushed CS:EIP");
    CHECK_EQ(probe_land_stack[0], expect_eip(K_LCALL) + 6, "lcall: return EIP");
    CHECK_EQ(probe_land_stack[1] & 0xffff, SEL_CODE, "lcall: return CS");
    probe_far16.sel = SEL_CODEB;
    probe_far16.off = (u16)land16_off();
    CHECK_EQ(probe(K_LCALLW), 0xff, "lcallw m16:16");
    CHECK_EQ(probe_land_esp, probe_sp - 4, "lcallw pushed 16-bit CS:IP");
    CHECK_EQ(probe_land_stack[0], (SEL_CODE << 16) | ((expect_eip(K_LCALLW) + 7) & 0xffff),
             "lcallw: IP and CS");
}

static void test_kernel_gates(void)
{
    gdt_set_call_gate(IDX(SEL_GATE), SEL_CODE, (u32)probe_land, 0, 0, 1, 1);
    far_target(SEL_GATE, 0);
    CHECK_EQ(probe(K_LCALL), 0xff, "lcall through a gate, same level");
    CHECK_EQ(probe_land_esp, probe_sp - 8, "  pushed CS:EIP on the same stack");
    CHECK_EQ(probe_land_stack[0], expect_eip(K_LCALL) + 6, "  return EIP");
    CHECK_EQ(probe(K_LJMP), 0xff, "ljmp through a gate");
    CHECK_EQ(probe_land_esp, probe_sp, "  pushed nothing");
    gdt_set_call_gate(IDX(SEL_GATE), SEL_CODEB, land16_off(), 0, 0, 0, 1);
    CHECK_EQ(probe(K_LCALL), 0xff, "lcall through a 16-bit gate, same level");
    CHECK_EQ(probe_land_esp, probe_sp - 4, "  pushed 16-bit CS:IP");
    CHECK_EQ(probe_land_stack[0], (SEL_CODE << 16) | ((expect_eip(K_LCALL) + 6) & 0xffff),
             "  IP and CS");
    gdt_set_call_gate(IDX(SEL_GATE), SEL_CODE, (u32)probe_land, 0, 0, 1, 1);
    far_target(SEL_GATE | 3, 0);
    expect_fault0(K_LCALL, 13, SEL_GATE, "gate with RPL > DPL");
    gdt_set_call_gate(IDX(SEL_GATE), SEL_CODE, (u32)probe_land, 0, 0, 1, 0);
    far_target(SEL_GATE, 0);
    expect_fault0(K_LCALL, 11, SEL_GATE, "gate not present");
    struct { u32 cs, vec, err, jvec; const char *name; } c[] = {
        { 0, 13, 0, 13, "gate to a null selector" },
        { SEL_BEYOND, 13, SEL_BEYOND, 13, "gate to a selector beyond the GDT" },
        { SEL_DATA, 13, SEL_DATA, 13, "gate to a data segment" },
        { SEL_UCODE, 13, SEL_UCODE & ~3, 13, "gate to DPL 3 code from CPL 0" },
        { SEL_NPCODE, 11, SEL_NPCODE, 11, "gate to code not present" },
    };
    for (u32 i = 0; i < sizeof c / sizeof c[0]; i++) {
        gdt_set_call_gate(IDX(SEL_GATE), (u16)c[i].cs, (u32)probe_land, 0, 0, 1, 1);
        expect_fault0(K_LCALL, c[i].vec, c[i].err, c[i].name);
    }
    gdt_set_call_gate(IDX(SEL_GATE), SEL_NPCODE, (u32)probe_land, 0, 0, 1, 1);
    expect_fault0(K_LJMP, on_qemu_tcg() ? 13 : 11, SEL_NPCODE,
                  "ljmp through a gate to code not present (SDM #NP, QEMU #GP)");
    gdt_set_call_gate(IDX(SEL_GATE), SEL_SMALLC, 0x2000, 0, 0, 1, 1);
    expect_fault0(K_LJMP, 13, 0, "ljmp through a gate beyond the code segment's limit");
}

/* ---- faults while delivering an event: the error code's EXT bit --------------------------- */
static void test_delivery_errors(void)
{
    u64 saved6 = idt[6];
    u32 ext = on_qemu_tcg() ? 0 : 1; /* QEMU never sets EXT */
    words_n(0, 0, 0, 0, 0, 0);
    idt_set(6, isr_table[6], SEL_DATA, 0xe, 0);
    expect_fault0(K_UD2, 13, SEL_DATA | ext, "#UD through a gate to a data segment: #GP(sel|EXT)");
    idt_set(0x85, isr_table[6], SEL_DATA, 0xe, 0);
    expect_fault0(K_INT85, 13, SEL_DATA, "int n through a gate to a data segment: #GP(sel)");
    idt[6] &= ~(1ull << 47);
    expect_fault0(K_UD2, 11, 6 * 8 + 2 + ext, "#UD through a gate not present: #NP(IDT|EXT)");
    idt[0x85] &= ~(1ull << 47);
    expect_fault0(K_INT85, 11, 0x85 * 8 + 2, "int n through a gate not present: #NP(IDT)");
    idt[6] = saved6 & ~(0x1full << 40); /* a reserved system type */
    idt[6] |= (0x80ull | 0x1) << 40;
    expect_fault0(K_UD2, 13, 6 * 8 + 2 + ext, "#UD through a bad gate type: #GP(IDT|EXT)");
    idt[6] = saved6;
    idt_set(0x85, isr_table[5], 0, 0xe, 0);
    expect_fault0(K_INT85, 13, 0, "int n through a gate to a null selector: #GP(0)");
    idt[0x85] = 0;

    /* A 16-bit interrupt gate: 16-bit FLAGS, CS, IP. */
    gdt_set(IDX(SEL_CODEB), (u32)probe_land16 & ~0xffffu, 0xfffff, 0x9a, 0xc);
    idt_set(0x86, land16_off(), SEL_CODEB, 0x6, 0);
    CHECK_EQ(probe(K_INT86), 0xff, "int through a 16-bit interrupt gate");
    CHECK_EQ(probe_land_esp, probe_sp - 6, "  pushed three 16-bit words");
    CHECK_EQ(probe_land_stack[0], (SEL_CODE << 16) | ((expect_eip(K_INT86) + 2) & 0xffff),
             "  IP and CS");
    idt[0x86] = 0;
}

void main(void)
{
    sse_os_support(); /* user code may run directly (lib/guest.h) */
    tss_init(TOP(kstack));
    gdt_set(IDX(SEL_R1CODE), 0, 0xfffff, 0xba, 0xc);
    gdt_set(IDX(SEL_R1DATA), 0, 0xfffff, 0xb2, 0xc);
    gdt_set(IDX(SEL_R2CODE), 0, 0xfffff, 0xda, 0xc);
    gdt_set(IDX(SEL_R2DATA), 0, 0xfffff, 0xd2, 0xc);
    gdt_set(IDX(SEL_CONF0), 0, 0xfffff, 0x9e, 0xc);
    gdt_set(IDX(SEL_SMALLC), 0, 0xfff, 0x9a, 0x4);
    gdt_set(IDX(SEL_NPCODE), 0, 0xfffff, 0x1a, 0xc);
    gdt_set(IDX(SEL_NPSS3), 0, 0xfffff, 0x72, 0xc);
    gdt_set(IDX(SEL_NPSS1), 0, 0xfffff, 0x32, 0xc);
    __asm__ volatile("lldt %w0" : : "r"((u16)SEL_LDT));
    set_handler(0x30, syscall_handler);
    idt_set(0x80, isr_table[0x30], SEL_CODE, 0xe, 3);

    test_kernel_returns();
    test_kernel_jumps();
    test_kernel_gates();
    test_delivery_errors();
    test_user_faults();
    test_call_gates();
    test_gate_stack_faults();
    test_conforming();
    test_rings();
}
