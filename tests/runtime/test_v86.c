/*
 * test_v86.c - virtual-8086 mode in the runtime, through the public API.
 *
 * Each guest starts at CPL 0 in flat 32-bit protected mode on an IRETD whose frame (on
 * the ring-0 stack at ESP0) has VM set: the nine dwords EIP, CS, EFLAGS, ESP, SS, ES,
 * DS, FS, GS of the SDM's return to virtual-8086 mode.  The 16-bit code runs at
 * 1000:0100 (linear 0x10100) with DS=0x2000, SS=0x3000, ES=0x4000, FS=0x5000,
 * GS=0x6000.  Every IDT gate leads to a HLT at CPL 0 (0x08:0x5000), so an event out of
 * the mode is an HLT exit whose stack shows the frame; an IRETD at 0x5010 (0x5020 after
 * dropping an error code) goes back.  RAM ends at 512 KiB: above is MMIO.  The TSS's I/O bitmap allows ports 0xf0-0xf3 only.
 * Checked: the entry and the segment registers it loads (and MOV Sreg there), the frame
 * and the null data segments of INT n and of #GP, the IOPL-sensitive instructions with
 * IOPL 0 and 3, POPF and IRET leaving IOPL and VM alone, the bitmap whatever IOPL is,
 * a gate to a DPL-3 segment (#GP), a task switch to a TSS whose EFLAGS has VM, the
 * instructions the mode does not have, save and restore in the mode, SYSENTER out of
 * it, and MMIO reached through a v86 segment.
 */
#define _GNU_SOURCE /* memfd_create */
#include <check.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xbt/xbt.h"
#include "guest_util.h"

#define GDT 0x1000u
#define IDT 0x0800u
#define TSS_A 0x70000u  /* the current task: ESP0, the bitmap */
#define TSS_B 0x74000u  /* a virtual-8086 task (task_switch_to_v86) */
#define TSS_LIMIT (104u + 8192u)
#define HLT0 0x5000u    /* every gate's handler */
#define IRET0 0x5010u   /* iretd */
#define IRET0_ERR 0x5020u /* add esp, 4; iretd */
#define JMP_TSS 0x5030u /* jmp far 0x20:0 */
#define ESP0 0x9000u
#define V86_IP 0x100u
#define V86_LIN (0x10000u + V86_IP)
#define VM 0x20000u
#define IOPL3 0x3000u


static uint64_t tss_desc(uint32_t base, uint32_t limit, uint8_t type)
{
    return (limit & 0xffff) | (uint64_t)(base & 0xffffff) << 16 | (uint64_t)type << 40 |
           (uint64_t)((limit >> 16) & 0xf) << 48 | (uint64_t)(base >> 24) << 56;
}

/* A 32-bit TSS at base with ESP0:SS0 and a bitmap allowing ports 0xf0-0xf3. */
static void make_tss(struct guest *g, uint32_t base)
{
    uint8_t *t = g->ram + base;
    uint32_t esp0 = ESP0, ss0 = 0x10;
    uint16_t iomap = 104;
    memcpy(t + 4, &esp0, 4);
    memcpy(t + 8, &ss0, 4);
    memcpy(t + 102, &iomap, 2);
    memset(t + 104, 0xff, 8193);
    t[104 + 0xf0 / 8] = 0xf0; /* bits 0-3 of byte 0x1e: ports 0xf0-0xf3 */
}

static void set_gate(struct guest *g, int vec, uint16_t sel, uint32_t off, unsigned dpl)
{
    uint64_t d = (off & 0xffff) | (uint64_t)sel << 16 | (uint64_t)(0x8e | dpl << 5) << 40 |
                 (uint64_t)(off >> 16) << 48;
    memcpy(g->ram + IDT + 8 * vec, &d, 8);
}

/* The guest, stopped on the IRETD into v86 mode with `eflags` (VM is added). */
static void setup(struct guest *g, const uint8_t *code, size_t n, uint32_t eflags)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 0x80000; /* 512 KiB: 0xa0000 is MMIO (mmio_from_v86) */
    ck_assert_int_eq(xbt_vm_create(&c, &g->vm), XBT_OK);
    g->ram = xbt_vm_ram(g->vm);
    uint64_t gdt[6] = { 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull,
                        tss_desc(TSS_A, TSS_LIMIT, 0x8b), tss_desc(TSS_B, TSS_LIMIT, 0x89),
                        0x00cffa000000ffffull /* 0x28: code, DPL 3 */ };
    memcpy(g->ram + GDT, gdt, sizeof gdt);
    for (int v = 0; v < 256; v++)
        set_gate(g, v, 0x08, HLT0, 3);
    set_gate(g, 0x31, 0x28, HLT0, 3); /* to a DPL-3 segment: #GP from v86 mode */
    set_gate(g, 0x32, 0x08, HLT0, 0); /* DPL 0: #GP for INT n */
    make_tss(g, TSS_A);
    make_tss(g, TSS_B);
    const uint8_t ring0[] = { 0xf4 }, iret[] = { 0xcf }, iret_err[] = { 0x83, 0xc4, 0x04, 0xcf };
    const uint8_t jmp_tss[] = { 0xea, 0, 0, 0, 0, 0x20, 0x00 };
    memcpy(g->ram + HLT0, ring0, 1);
    memcpy(g->ram + IRET0, iret, 1);
    memcpy(g->ram + IRET0_ERR, iret_err, sizeof iret_err);
    memcpy(g->ram + JMP_TSS, jmp_tss, sizeof jmp_tss);
    memcpy(g->ram + V86_LIN, code, n);
    uint32_t frame[9] = { V86_IP, 0x1000, eflags | VM | 2, 0xfff0, 0x3000,
                          0x4000, 0x2000, 0x5000, 0x6000 };
    memcpy(g->ram + ESP0 - sizeof frame, frame, sizeof frame);
    ck_assert_int_eq(xbt_vcpu_create(g->vm, &g->cpu), XBT_OK);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g->cpu, &s);
    s.gdt = (xbt_dtable){ GDT, sizeof gdt - 1 };
    s.idt = (xbt_dtable){ IDT, 0x7ff };
    s.tr = (xbt_segment){ .base = TSS_A, .limit = TSS_LIMIT, .selector = 0x18, .type = 0xb,
                          .present = 1 };
    ck_assert_int_eq(xbt_vcpu_set_sregs(g->cpu, &s), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(g->cpu, &r);
    r.eip = IRET0;
    r.esp = ESP0 - sizeof frame;
    r.eflags = 2;
    ck_assert_int_eq(xbt_vcpu_set_regs(g->cpu, &r), XBT_OK);
}

/* An event left v86 mode for the ring-0 HLT: the frame there, 9 dwords (10 with an error
   code, returned in *err), checked against the v86 state it saved; its EIP returned. */
static uint32_t expect_event(struct guest *g, bool has_err, uint32_t *err)
{
    xbt_exit *ex = run(g);
    ck_assert_msg(ex->reason == XBT_EXIT_HLT, "exit %u, not HLT (%s)", ex->reason,
                  ex->reason == XBT_EXIT_INTERNAL_ERROR ? ex->internal.message : "");
    xbt_regs r;
    xbt_sregs s;
    xbt_vcpu_get_regs(g->cpu, &r);
    xbt_vcpu_get_sregs(g->cpu, &s);
    unsigned n = has_err ? 10 : 9;
    ck_assert_uint_eq(r.esp, ESP0 - 4 * n);
    ck_assert_uint_eq(r.eflags & VM, 0);
    ck_assert_uint_eq(s.cs.selector, 0x08);
    ck_assert_uint_eq(s.ss.selector, 0x10);
    const xbt_segment *data[4] = { &s.ds, &s.es, &s.fs, &s.gs };
    for (int i = 0; i < 4; i++) { /* null in ring 0 */
        ck_assert_uint_eq(data[i]->selector, 0);
        ck_assert_uint_eq(data[i]->unusable, 1);
    }
    uint32_t f[10];
    memcpy(f, g->ram + r.esp, 4 * n);
    const uint32_t *w = has_err ? f + 1 : f;
    if (has_err)
        *err = f[0];
    ck_assert_uint_eq(w[1], 0x1000);              /* CS */
    ck_assert_uint_eq(w[2] & VM, VM);             /* EFLAGS with VM */
    ck_assert_uint_eq(w[3], 0xfff0);              /* ESP */
    ck_assert_uint_eq(w[4], 0x3000);              /* SS */
    ck_assert_uint_eq(w[5], 0x4000);              /* ES */
    ck_assert_uint_eq(w[6], 0x2000);              /* DS */
    ck_assert_uint_eq(w[7], 0x5000);              /* FS */
    ck_assert_uint_eq(w[8], 0x6000);              /* GS */
    return w[0];
}

/* Back to v86 mode through the IRETD (after the error code if there is one). */
static void iret_back(struct guest *g, bool has_err)
{
    xbt_regs r;
    xbt_vcpu_get_regs(g->cpu, &r);
    r.eip = has_err ? IRET0_ERR : IRET0;
    xbt_vcpu_set_regs(g->cpu, &r);
}

static void check_v86_seg(const xbt_segment *s, uint16_t sel)
{
    ck_assert_uint_eq(s->selector, sel);
    ck_assert_uint_eq(s->base, (uint32_t)sel << 4);
    ck_assert_uint_eq(s->limit, 0xffff);
    ck_assert_uint_eq(s->db, 0);
    ck_assert_uint_eq(s->dpl, 3);
    ck_assert_uint_eq(s->present, 1);
    ck_assert_uint_eq(s->unusable, 0);
}

/* The IRETD loads all six segment registers v86-style; MOV DS there too. */
START_TEST(entry_and_segment_loads)
{
    const uint8_t code[] = {
        0xe6, 0xf0,                         /* out 0xf0, al */
        0xb8, 0x34, 0x12,                   /* mov ax, 0x1234 */
        0x8e, 0xd8,                         /* mov ds, ax */
        0xc7, 0x06, 0x10, 0x00, 0xcd, 0xab, /* mov word [0x10], 0xabcd */
        0xe6, 0xf0,                         /* out 0xf0, al */
    };
    struct guest g;
    setup(&g, code, sizeof code, 0);
    expect_out(&g, 0xf0);
    xbt_sregs s;
    xbt_regs r;
    xbt_vcpu_get_sregs(g.cpu, &s);
    xbt_vcpu_get_regs(g.cpu, &r);
    check_v86_seg(&s.cs, 0x1000);
    check_v86_seg(&s.ss, 0x3000);
    check_v86_seg(&s.ds, 0x2000);
    check_v86_seg(&s.es, 0x4000);
    check_v86_seg(&s.fs, 0x5000);
    check_v86_seg(&s.gs, 0x6000);
    ck_assert_uint_eq(s.cs.type & 8, 8); /* code */
    ck_assert_uint_eq(s.ds.type, 3);     /* writable data, accessed */
    ck_assert_uint_eq(r.eflags & (VM | IOPL3), VM);
    ck_assert_uint_eq(r.esp, 0xfff0);
    expect_out(&g, 0xf0);
    xbt_vcpu_get_sregs(g.cpu, &s);
    check_v86_seg(&s.ds, 0x1234);
    uint16_t v;
    memcpy(&v, g.ram + 0x12350, 2);
    ck_assert_uint_eq(v, 0xabcd);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* IOPL 3: INT n through a DPL-3 gate to ring 0 with the 9-dword frame and null data
   segments; IRETD back restores them all. */
START_TEST(int_frame_and_iret_back)
{
    const uint8_t code[] = { 0xcd, 0x30, 0xe6, 0xf0 }; /* int 0x30; out 0xf0, al */
    struct guest g;
    setup(&g, code, sizeof code, IOPL3);
    ck_assert_uint_eq(expect_event(&g, false, NULL), V86_IP + 2);
    iret_back(&g, false);
    expect_out(&g, 0xf0);
    xbt_sregs s;
    xbt_regs r;
    xbt_vcpu_get_sregs(g.cpu, &s);
    xbt_vcpu_get_regs(g.cpu, &r);
    check_v86_seg(&s.cs, 0x1000);
    check_v86_seg(&s.ds, 0x2000);
    check_v86_seg(&s.gs, 0x6000);
    ck_assert_uint_eq(r.eflags & (VM | IOPL3), VM | IOPL3);
    ck_assert_uint_eq(r.esp, 0xfff0);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* IOPL 0: CLI, STI, PUSHF, POPF, INT n, IRET (16- and 32-bit) are #GP(0) at the
   instruction; INT3 and INTO are not IOPL-sensitive (through their DPL-3 gates). */
START_TEST(iopl0_sensitive)
{
    static const struct {
        uint8_t code[3];
        unsigned len;
        int vector;
    } cases[] = {
        { { 0xfa }, 1, 13 }, { { 0xfb }, 1, 13 }, { { 0x9c }, 1, 13 },
        { { 0x9d }, 1, 13 }, { { 0xcd, 0x30 }, 2, 13 }, { { 0xcf }, 1, 13 },
        { { 0x66, 0xcf }, 2, 13 }, { { 0x66, 0x9c }, 2, 13 },
        { { 0xcc }, 1, 3 }, { { 0xcd, 0x32 }, 2, 13 },
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct guest g;
        setup(&g, cases[i].code, cases[i].len, 0);
        uint32_t err = ~0u;
        bool has_err = cases[i].vector == 13;
        uint32_t eip = expect_event(&g, has_err, &err);
        ck_assert_msg(eip == (has_err ? V86_IP : V86_IP + cases[i].len), "case %u: eip %x", i,
                      eip);
        if (has_err)
            ck_assert_msg(err == 0, "case %u: error code %x", i, err);
        xbt_vm_destroy(g.vm);
    }
}
END_TEST

/* IOPL 3: CLI/STI work; POPFD cannot set VM or change IOPL; PUSHFD's image has VM
   clear; INT n through a DPL-0 gate is #GP(vector * 8 + 2), through a gate to a DPL-3
   segment #GP(selector). */
START_TEST(iopl3_flags_and_gates)
{
    const uint8_t code[] = {
        0xfa,                               /* cli */
        0x66, 0x68, 0x00, 0x02, 0x02, 0x00, /* push dword 0x20200 (VM, IF; IOPL 0) */
        0x66, 0x9d,                         /* popfd */
        0x66, 0x9c,                         /* pushfd */
        0x66, 0x58,                         /* pop eax */
        0x66, 0xe7, 0xf0,                   /* out 0xf0, eax */
        0xcd, 0x32,                         /* int 0x32 (at IP + 0x10) */
    };
    struct guest g;
    setup(&g, code, sizeof code, IOPL3 | 0x200);
    uint32_t fl = expect_out(&g, 0xf0);
    ck_assert_uint_eq(fl & (VM | IOPL3 | 0x200), IOPL3 | 0x200);
    uint32_t err = 0;
    ck_assert_uint_eq(expect_event(&g, true, &err), V86_IP + 0x10);
    ck_assert_uint_eq(err, 0x32 * 8 + 2);
    xbt_vm_destroy(g.vm);

    const uint8_t to_dpl3[] = { 0xcd, 0x31 };
    setup(&g, to_dpl3, sizeof to_dpl3, IOPL3);
    ck_assert_uint_eq(expect_event(&g, true, &err), V86_IP);
    ck_assert_uint_eq(err, 0x28);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* The bitmap decides port access whatever IOPL is; #GP(0) at the instruction, and the
   IRETD after the handler resumes there. */
START_TEST(io_bitmap)
{
    const uint8_t code[] = { 0xe4, 0xf4, 0xe6, 0xf3 }; /* in al, 0xf4; out 0xf3, al */
    for (uint32_t iopl = 0; iopl <= IOPL3; iopl += IOPL3) {
        struct guest g;
        setup(&g, code, sizeof code, iopl);
        uint32_t err = ~0u;
        ck_assert_uint_eq(expect_event(&g, true, &err), V86_IP);
        ck_assert_uint_eq(err, 0);
        /* Skip the IN: the frame's EIP + 2, then back. */
        xbt_regs r;
        xbt_vcpu_get_regs(g.cpu, &r);
        uint32_t eip = V86_IP + 2;
        memcpy(g.ram + r.esp + 4, &eip, 4);
        iret_back(&g, true);
        expect_out(&g, 0xf3);
        xbt_vm_destroy(g.vm);
    }
}
END_TEST

/* A JMP to a TSS whose EFLAGS has VM: a virtual-8086 task, its segments v86-style. */
START_TEST(task_switch_to_v86)
{
    const uint8_t code[] = { 0xe6, 0xf1 }; /* out 0xf1, al */
    struct guest g;
    setup(&g, code, sizeof code, 0);
    uint8_t *t = g.ram + TSS_B;
    uint32_t eip = V86_IP, eflags = VM | 2, esp = 0xeee0;
    uint32_t seg[6] = { 0x4000, 0x1000, 0x3000, 0x2000, 0x5000, 0x6000 }; /* ES CS SS DS FS GS */
    memcpy(t + 0x20, &eip, 4);
    memcpy(t + 0x24, &eflags, 4);
    memcpy(t + 0x38, &esp, 4);
    for (int i = 0; i < 6; i++)
        memcpy(t + 0x48 + 4 * i, &seg[i], 4);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    r.eip = JMP_TSS;
    xbt_vcpu_set_regs(g.cpu, &r);
    expect_out(&g, 0xf1);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    xbt_vcpu_get_regs(g.cpu, &r);
    check_v86_seg(&s.cs, 0x1000);
    check_v86_seg(&s.ss, 0x3000);
    check_v86_seg(&s.ds, 0x2000);
    check_v86_seg(&s.gs, 0x6000);
    ck_assert_uint_eq(s.tr.selector, 0x20);
    ck_assert_uint_eq(r.eflags & VM, VM);
    ck_assert_uint_eq(r.esp, 0xeee0);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* Not in v86 mode: LAR, LSL, VERR, ARPL, SLDT, STR, LLDT, LTR are #UD (LLDT and LTR
   before the CPL's #GP); MOV from CR0 and LGDT are #GP(0); SMSW works. */
START_TEST(not_in_v86)
{
    static const struct {
        uint8_t code[5];
        unsigned len;
        int vector;
    } cases[] = {
        { { 0x0f, 0x02, 0xc0 }, 3, 6 },       /* lar ax, ax */
        { { 0x0f, 0x03, 0xc0 }, 3, 6 },       /* lsl ax, ax */
        { { 0x0f, 0x00, 0xe0 }, 3, 6 },       /* verr ax */
        { { 0x63, 0xc0 }, 2, 6 },             /* arpl ax, ax */
        { { 0x0f, 0x00, 0xc0 }, 3, 6 },       /* sldt ax */
        { { 0x0f, 0x00, 0xc8 }, 3, 6 },       /* str ax */
        { { 0x0f, 0x00, 0xd0 }, 3, 6 },       /* lldt ax */
        { { 0x0f, 0x00, 0xd8 }, 3, 6 },       /* ltr ax */
        { { 0x0f, 0x20, 0xc0 }, 3, 13 },      /* mov eax, cr0 */
        { { 0x0f, 0x01, 0x16, 0, 0 }, 5, 13 }, /* lgdt [0] */
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct guest g;
        setup(&g, cases[i].code, cases[i].len, 0);
        uint32_t err = ~0u;
        bool has_err = cases[i].vector == 13;
        ck_assert_uint_eq(expect_event(&g, has_err, &err), V86_IP);
        if (has_err)
            ck_assert_uint_eq(err, 0);
        /* The vector: #UD's frame has no error code, so ESP told them apart. */
        xbt_vm_destroy(g.vm);
    }
    const uint8_t smsw[] = { 0x0f, 0x01, 0xe0, 0xe6, 0xf0 }; /* smsw ax; out 0xf0, al */
    struct guest g;
    setup(&g, smsw, sizeof smsw, 0);
    ck_assert_uint_eq(expect_out(&g, 0xf0) & 1, 1);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* Virtual-8086 mode set up by the embedder (set_sregs, then set_regs with VM) runs at
   CPL 3 whatever DPL its segments carry: MOV from CR0 is #GP(0), not executed. */
START_TEST(embedder_v86_is_cpl3)
{
    const uint8_t code[] = { 0x0f, 0x20, 0xc0, 0xf4 }; /* mov eax, cr0; hlt */
    struct guest g;
    setup(&g, code, sizeof code, 0);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    xbt_segment seg = { .limit = 0xffff, .type = 3, .s = 1, .present = 1, .dpl = 0 };
    s.ds = s.es = s.fs = s.gs = s.ss = seg;
    s.ss.selector = 0x3000, s.ss.base = 0x30000;
    s.es.selector = 0x4000, s.es.base = 0x40000;
    s.ds.selector = 0x2000, s.ds.base = 0x20000;
    s.fs.selector = 0x5000, s.fs.base = 0x50000;
    s.gs.selector = 0x6000, s.gs.base = 0x60000;
    s.cs = seg;
    s.cs.type = 0xb, s.cs.selector = 0x1000, s.cs.base = 0x10000;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g.cpu, &s), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    r.eip = V86_IP, r.esp = 0xfff0, r.eflags = VM | 2;
    ck_assert_int_eq(xbt_vcpu_set_regs(g.cpu, &r), XBT_OK);
    uint32_t err = ~0u;
    ck_assert_uint_eq(expect_event(&g, true, &err), V86_IP);
    ck_assert_uint_eq(err, 0);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* A save in v86 mode restores into v86 mode: VM, CPL 3 and the v86 segments come back,
   and the next event leaves through the IDT with the v86 frame. */
START_TEST(save_restore_in_v86)
{
    const uint8_t code[] = {
        0xb8, 0x00, 0x20, 0x8e, 0xd8, /* mov ax, 0x2000; mov ds, ax */
        0xe6, 0xf0,                   /* out 0xf0, al */
        0xfa,                         /* cli: #GP(0) with IOPL 0 (at IP + 7) */
    };
    struct guest g, h;
    setup(&g, code, sizeof code, 0);
    expect_out(&g, 0xf0);
    int fd = save_and_destroy(&g);
    setup(&h, (const uint8_t[]){ 0xf4 }, 1, 0);
    restore_from(&h, fd);
    xbt_sregs s;
    xbt_regs r;
    xbt_vcpu_get_sregs(h.cpu, &s);
    xbt_vcpu_get_regs(h.cpu, &r);
    check_v86_seg(&s.cs, 0x1000);
    check_v86_seg(&s.ds, 0x2000);
    ck_assert_uint_eq(r.eflags & VM, VM);
    uint32_t err = ~0u;
    ck_assert_uint_eq(expect_event(&h, true, &err), V86_IP + 7);
    ck_assert_uint_eq(err, 0);
    xbt_vm_destroy(h.vm);
}
END_TEST

/* SYSENTER from v86 mode works (SDM SYSENTER: VM and IF cleared, flat CS and SS from
   IA32_SYSENTER_CS); the data segment registers keep their v86 values. */
START_TEST(sysenter_from_v86)
{
    const uint8_t code[] = { 0x0f, 0x34 }; /* sysenter */
    struct guest g;
    setup(&g, code, sizeof code, 0x200);
    ck_assert_int_eq(xbt_vcpu_set_msr(g.cpu, 0x174, 0x08), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_msr(g.cpu, 0x175, 0x7000), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_msr(g.cpu, 0x176, HLT0), XBT_OK);
    ck_assert_uint_eq(run(&g)->reason, XBT_EXIT_HLT);
    xbt_sregs s;
    xbt_regs r;
    xbt_vcpu_get_sregs(g.cpu, &s);
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.eflags & (VM | 0x200), 0);
    ck_assert_uint_eq(r.esp, 0x7000);
    ck_assert_uint_eq(s.cs.selector, 0x08);
    ck_assert_uint_eq(s.ss.selector, 0x10);
    ck_assert_uint_eq(s.cs.db, 1);
    ck_assert_uint_eq(s.ds.selector, 0x2000);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* MMIO from v86 code (a DOS program's VGA memory): the exits carry the guest physical
   address DS * 16 + offset, a store's data, and a load completes into its register. */
START_TEST(mmio_from_v86)
{
    const uint8_t code[] = {
        0xb8, 0x00, 0xa0, 0x8e, 0xd8,       /* mov ax, 0xa000; mov ds, ax */
        0xc7, 0x06, 0x10, 0x00, 0x34, 0x12, /* mov word [0x10], 0x1234 */
        0x8b, 0x1e, 0x20, 0x00,             /* mov bx, [0x20] */
        0x89, 0xd8, 0xe7, 0xf0,             /* mov ax, bx; out 0xf0, ax */
    };
    struct guest g;
    setup(&g, code, sizeof code, 0);
    xbt_exit *ex = run(&g);
    ck_assert_msg(ex->reason == XBT_EXIT_MMIO, "exit %u (%s)", ex->reason,
                  ex->reason == XBT_EXIT_INTERNAL_ERROR ? ex->internal.message : "");
    ck_assert_uint_eq(ex->mmio.gpa, 0xa0010);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ck_assert_uint_eq(ex->mmio.size, 2);
    ck_assert_uint_eq(ex->mmio.data & 0xffff, 0x1234);
    ex = run(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, 0xa0020);
    ck_assert_uint_eq(ex->mmio.is_write, 0);
    ex->mmio.data = 0xbeef;
    ck_assert_uint_eq(expect_out(&g, 0xf0) & 0xffff, 0xbeef);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* The CPU model has no VME (CPUID.1:EDX bit 1 clear): CR4.VME and CR4.PVI are reserved,
   MOV to CR4 setting either is #GP(0) and CR4 keeps its value. */
START_TEST(cr4_vme_reserved)
{
    for (uint32_t bit = 1; bit <= 2; bit++) {
        const uint8_t code[] = { 0xb8, (uint8_t)bit, 0, 0, 0, /* mov eax, bit */
                                 0x0f, 0x22, 0xe0 };         /* mov cr4, eax */
        struct guest g;
        setup(&g, (const uint8_t[]){ 0xf4 }, 1, 0);
        memcpy(g.ram + 0x6000, code, sizeof code);
        xbt_regs r;
        xbt_vcpu_get_regs(g.cpu, &r);
        r.eip = 0x6000;
        xbt_vcpu_set_regs(g.cpu, &r);
        ck_assert_uint_eq(run(&g)->reason, XBT_EXIT_HLT);
        xbt_vcpu_get_regs(g.cpu, &r);
        uint32_t f[2];
        memcpy(f, g.ram + r.esp, 8);
        ck_assert_uint_eq(f[0], 0);          /* error code */
        ck_assert_uint_eq(f[1], 0x6005);     /* the MOV */
        xbt_sregs s;
        xbt_vcpu_get_sregs(g.cpu, &s);
        ck_assert_uint_eq(s.cr4 & 3, 0);
        xbt_vm_destroy(g.vm);
    }
}
END_TEST

/* IRETD to v86 mode with EIP above 0xFFFF: #GP(0) at the IRETD, at CPL 0, its frame
   still on the stack (the SDM's "instruction pointer not within code segment limits";
   QEMU TCG truncates EIP to 16 bits instead). */
START_TEST(iret_to_v86_beyond_64k)
{
    struct guest g;
    setup(&g, (const uint8_t[]){ 0xf4 }, 1, 0);
    uint32_t eip = 0x10000;
    memcpy(g.ram + ESP0 - 36, &eip, 4);
    ck_assert_uint_eq(run(&g)->reason, XBT_EXIT_HLT);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.esp, ESP0 - 36 - 16);
    uint32_t f[4];
    memcpy(f, g.ram + r.esp, 16);
    ck_assert_uint_eq(f[0], 0);     /* error code */
    ck_assert_uint_eq(f[1], IRET0); /* the IRETD */
    ck_assert_uint_eq(f[2], 0x08);
    ck_assert_uint_eq(f[3] & VM, 0);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* A 16-bit trap gate from v86 mode: the same nine values as words (18 bytes on ESP0's
   stack), IF kept (a trap gate), VM cleared, data segments null. */
START_TEST(int_through_16bit_trap_gate)
{
    const uint8_t code[] = { 0xcd, 0x33 }; /* int 0x33 */
    struct guest g;
    setup(&g, code, sizeof code, IOPL3 | 0x200);
    uint64_t d = (HLT0 & 0xffff) | (uint64_t)0x08 << 16 | (uint64_t)(0x87 | 3 << 5) << 40;
    memcpy(g.ram + IDT + 8 * 0x33, &d, 8);
    ck_assert_uint_eq(run(&g)->reason, XBT_EXIT_HLT);
    xbt_regs r;
    xbt_sregs s;
    xbt_vcpu_get_regs(g.cpu, &r);
    xbt_vcpu_get_sregs(g.cpu, &s);
    ck_assert_uint_eq(r.esp, ESP0 - 18);
    ck_assert_uint_eq(r.eflags & (VM | 0x200), 0x200);
    ck_assert_uint_eq(s.ds.unusable, 1);
    uint16_t w[9];
    memcpy(w, g.ram + r.esp, sizeof w);
    const uint16_t want[9] = { V86_IP + 2, 0x1000, 0, 0xfff0, 0x3000,
                               0x4000, 0x2000, 0x5000, 0x6000 };
    for (int i = 0; i < 9; i++)
        if (i != 2)
            ck_assert_msg(w[i] == want[i], "word %d: %x, want %x", i, w[i], want[i]);
    ck_assert_uint_eq(w[2] & (IOPL3 | 0x200), IOPL3 | 0x200); /* FLAGS: low half only */
    xbt_vm_destroy(g.vm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("v86");
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, entry_and_segment_loads);
    tcase_add_test(tc, int_frame_and_iret_back);
    tcase_add_test(tc, iopl0_sensitive);
    tcase_add_test(tc, iopl3_flags_and_gates);
    tcase_add_test(tc, io_bitmap);
    tcase_add_test(tc, task_switch_to_v86);
    tcase_add_test(tc, not_in_v86);
    tcase_add_test(tc, embedder_v86_is_cpl3);
    tcase_add_test(tc, save_restore_in_v86);
    tcase_add_test(tc, sysenter_from_v86);
    tcase_add_test(tc, mmio_from_v86);
    tcase_add_test(tc, cr4_vme_reserved);
    tcase_add_test(tc, iret_to_v86_beyond_64k);
    tcase_add_test(tc, int_through_16bit_trap_gate);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
