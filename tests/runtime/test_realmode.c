/*
 * test_realmode.c - real mode (CR0.PE clear) in the runtime, through the public API.
 *
 * Each guest starts in flat 32-bit protected mode at 0x7000, clears CR0.PE and far-jumps
 * to 0000:7010.  Real-mode loads keep a segment's hidden attributes, so CS keeps its D
 * bit and the code stays 32-bit: these tests run on the translator's 32-bit path and do
 * not need its 16-bit support (guests with CS.D clear are the translator's to test).
 * What they check is the runtime's: segment loads (bases, unreal limits), far JMP, CALL,
 * RET, IRET and IRETD, INT n, #DE, #GP, #UD and NMIs through the IVT (no error code),
 * the IVT's limit up to a triple fault, a 16-bit stack (SS.B clear) that wraps, and the
 * instructions real mode does not have.
 */
#define _GNU_SOURCE /* memfd_create */
#include <check.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xbt/xbt.h"
#include "guest_util.h"

#define ENTRY 0x7000u   /* protected-mode entry: the switch to real mode */
#define BODY 0x7010u    /* the test's real-mode code (CS = 0) */
#define HANDLER 0x7100u /* the IVT's handlers (CS = 0) */


/* mov eax, cr0; and eax, -2; mov cr0, eax; jmp far 0000:BODY (ptr16:32). */
static const uint8_t to_real[16] = {
    0x0f, 0x20, 0xc0, 0x83, 0xe0, 0xfe, 0x0f, 0x22, 0xc0,
    0xea, BODY & 0xff, BODY >> 8, 0, 0, 0x00, 0x00,
};

/* The handler most tests use: the IP, CS and FLAGS the event pushed as EAX (IP | CS <<
   16) and ESP, then HLT: mov eax,[esp]; out 0xf1,eax; mov eax,esp; out 0xf2,eax; hlt. */
static const uint8_t report[] = { 0x8b, 0x04, 0x24, 0xe7, 0xf1, 0x89, 0xe0, 0xe7, 0xf2, 0xf4 };

static void set_ivt(struct guest *g, int vec, uint16_t seg, uint16_t off)
{
    uint32_t e = off | (uint32_t)seg << 16;
    memcpy(g->ram + 4 * vec, &e, 4);
}

static void setup(struct guest *g, const uint8_t *body, size_t n, uint16_t ivt_limit)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 4u << 20;
    ck_assert_int_eq(xbt_vm_create(&c, &g->vm), XBT_OK);
    g->ram = xbt_vm_ram(g->vm);
    uint64_t gdt[3] = { 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull };
    memcpy(g->ram + 0x1000, gdt, sizeof gdt);
    memcpy(g->ram + ENTRY, to_real, sizeof to_real);
    memcpy(g->ram + BODY, body, n);
    memcpy(g->ram + HANDLER, report, sizeof report);
    for (int vec = 0; vec < 256; vec++)
        set_ivt(g, vec, 0, HANDLER);
    ck_assert_int_eq(xbt_vcpu_create(g->vm, &g->cpu), XBT_OK);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g->cpu, &s);
    s.gdt.base = 0x1000;
    s.gdt.limit = 23;
    s.idt.base = 0; /* the IVT, for when real mode begins */
    s.idt.limit = ivt_limit;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g->cpu, &s), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(g->cpu, &r);
    r.eip = ENTRY;
    r.esp = 0x9000;
    r.eflags = 0x202;
    ck_assert_int_eq(xbt_vcpu_set_regs(g->cpu, &r), XBT_OK);
}

/* An event through the IVT reached `report` with a 6-byte frame (no error code) whose
   IP is ip and CS 0, from ESP 0x9000. */
static void expect_event(struct guest *g, uint16_t ip)
{
    ck_assert_uint_eq(expect_out(g, 0xf1), ip);
    ck_assert_uint_eq(expect_out(g, 0xf2), 0x9000 - 6);
    uint16_t flags;
    memcpy(&flags, g->ram + 0x9000 - 2, 2);
    ck_assert_uint_eq(flags & 0x200, 0x200); /* IF as it was */
    expect_hlt(g);
}

/* Clearing PE keeps every hidden part; MOV, POP and LDS load selector and base only,
   with the limit kept (unreal mode), and translated code uses the new bases. */
START_TEST(segment_loads)
{
    const uint8_t body[] = {
        0x66, 0xb8, 0x34, 0x12,                         /* mov ax, 0x1234 */
        0x8e, 0xd8,                                     /* mov ds, ax */
        0x66, 0xb8, 0x00, 0x20,                         /* mov ax, 0x2000 */
        0x8e, 0xc0,                                     /* mov es, ax */
        0x66, 0xb8, 0x00, 0x08,                         /* mov ax, 0x0800 */
        0x8e, 0xd0,                                     /* mov ss, ax */
        0xbc, 0x00, 0x10, 0x00, 0x00,                   /* mov esp, 0x1000 */
        0xc7, 0x05, 0x10, 0, 0, 0, 0xcd, 0xab, 0, 0,    /* mov dword [0x10], 0xabcd */
        0x26, 0xc7, 0x05, 0x20, 0, 0, 0, 0xef, 0xbe, 0, 0, /* mov dword es:[0x20], 0xbeef */
        0x6a, 0x00, 0x0f, 0xa1,                         /* push 0; pop fs: 4-byte slots */
        0xc5, 0x1d, 0x20, 0, 0, 0,                      /* lds ebx, [0x20] */
        0x8c, 0xd8,                                     /* mov eax, ds */
        0xe7, 0xf0,                                     /* out 0xf0, eax */
        0xf4,
    };
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    /* The far pointer LDS reads at DS:0x20 (linear 0x12360): 0x5678, 0x3000. */
    const uint8_t fp[6] = { 0x78, 0x56, 0, 0, 0x00, 0x30 };
    memcpy(g.ram + 0x12360, fp, sizeof fp);
    ck_assert_uint_eq(expect_out(&g, 0xf0), 0x3000);
    expect_hlt(&g);
    uint32_t v;
    memcpy(&v, g.ram + 0x12350, 4);
    ck_assert_uint_eq(v, 0xabcd);
    memcpy(&v, g.ram + 0x20020, 4);
    ck_assert_uint_eq(v, 0xbeef);
    xbt_sregs s;
    xbt_regs r;
    xbt_vcpu_get_sregs(g.cpu, &s);
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(s.cr0 & 1, 0);
    ck_assert_uint_eq(s.cs.selector, 0);
    ck_assert_uint_eq(s.cs.base, 0);
    ck_assert_uint_eq(s.cs.db, 1);                  /* kept: still 32-bit code */
    ck_assert_uint_eq(s.ds.selector, 0x3000);
    ck_assert_uint_eq(s.ds.base, 0x30000);
    ck_assert_uint_eq(s.ds.limit, 0xffffffffu);     /* kept: unreal mode */
    ck_assert_uint_eq(s.es.base, 0x20000);
    ck_assert_uint_eq(s.ss.selector, 0x0800);
    ck_assert_uint_eq(s.ss.base, 0x8000);
    ck_assert_uint_eq(s.fs.selector, 0);
    ck_assert_uint_eq(s.fs.base, 0);
    ck_assert_uint_eq(s.fs.unusable, 0);
    ck_assert_uint_eq(r.ebx, 0x5678);
    ck_assert_uint_eq(r.esp, 0x1000);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* INT n through the IVT: FLAGS, CS, IP as 16-bit words, IF cleared; a 16-bit IRET
   (o16 in 32-bit code) back. */
START_TEST(int_and_iret16)
{
    const uint8_t body[] = {
        0xcd, 0x30, /* int 0x30 (at BODY) */
        0xe7, 0xf3, /* out 0xf3, eax */
        0xf4,
    };
    const uint8_t handler[] = {
        0x89, 0xe0, 0xe7, 0xf1,       /* mov eax, esp; out 0xf1, eax */
        0x9c, 0x58, 0xe7, 0xf2,       /* pushfd; pop eax; out 0xf2, eax */
        0xb8, 0x11, 0x11, 0x11, 0x11, /* mov eax, 0x11111111 */
        0x66, 0xcf,                   /* iret (16-bit) */
    };
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    memcpy(g.ram + 0x7200, handler, sizeof handler);
    set_ivt(&g, 0x30, 0x0700, 0x0200); /* 0700:0200 = linear 0x7200 */
    ck_assert_uint_eq(expect_out(&g, 0xf1), 0x9000 - 6);
    ck_assert_uint_eq(expect_out(&g, 0xf2) & 0x200, 0); /* IF cleared */
    uint16_t frame[3];
    memcpy(frame, g.ram + 0x9000 - 6, 6);
    ck_assert_uint_eq(frame[0], BODY + 2); /* IP after the INT */
    ck_assert_uint_eq(frame[1], 0);        /* CS */
    ck_assert_uint_eq(frame[2] & 0x200, 0x200);
    ck_assert_uint_eq(expect_out(&g, 0xf3), 0x11111111);
    expect_hlt(&g);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.esp, 0x9000);
    ck_assert_uint_eq(r.eflags & 0x200, 0x200);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* A 16-bit stack (SS.B clear): an event's frame wraps at 64 KiB and only SP moves. */
START_TEST(int_on_a_16bit_stack)
{
    const uint8_t body[] = { 0xcd, 0x30, 0xe7, 0xf3, 0xf4 }; /* int 0x30; out 0xf3; hlt */
    const uint8_t handler[] = { 0x89, 0xe0, 0xe7, 0xf1, 0x66, 0xcf }; /* esp; iret */
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    memcpy(g.ram + 0x7200, handler, sizeof handler);
    set_ivt(&g, 0x30, 0x0000, 0x7200);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    s.ss.base = 0x20000;
    s.ss.limit = 0xffff;
    s.ss.g = 0;
    s.ss.db = 0;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g.cpu, &s), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    r.esp = 0xabcd0002;
    xbt_vcpu_set_regs(g.cpu, &r);
    ck_assert_uint_eq(expect_out(&g, 0xf1), 0xabcdfffc);
    uint16_t w;
    memcpy(&w, g.ram + 0x2fffc, 2);
    ck_assert_uint_eq(w, BODY + 2); /* IP */
    memcpy(&w, g.ram + 0x2fffe, 2);
    ck_assert_uint_eq(w, 0);        /* CS */
    memcpy(&w, g.ram + 0x20000, 2);
    ck_assert_uint_eq(w & 0x202, 0x202); /* FLAGS, wrapped to the segment's start */
    expect_out(&g, 0xf3);
    expect_hlt(&g);
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.esp, 0xabcd0002);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* Far CALL (32-bit operand: CS and EIP in 4-byte slots) to another segment, RETF back;
   then IRETD with a frame built by hand: EFLAGS through the SDM's mask (IOPL may change
   at CPL 0, VM keeps its value). */
START_TEST(far_call_ret_iretd)
{
    const uint8_t body[] = {
        0x9a, 0x00, 0x62, 0, 0, 0x00, 0x01,             /* call far 0100:6200 */
        0xe7, 0xf3,                                     /* out 0xf3, eax */
        0x68, 0xd7, 0x3a, 0x02, 0x00,                   /* push 0x23ad7 (VM, IOPL 3) */
        0x6a, 0x00,                                     /* push 0 (CS) */
        0x68, (BODY + 24) & 0xff, BODY >> 8, 0, 0,      /* push BODY + 24 */
        0xcf,                                           /* iretd */
        0x90, 0x90,
        0xe7, 0xf4,                                     /* BODY + 24: out 0xf4, eax */
        0xf4,
    };
    const uint8_t callee[] = {
        0x89, 0xe0, 0xe7, 0xf1, /* mov eax, esp; out 0xf1, eax */
        0x8c, 0xc8, 0xe7, 0xf2, /* mov eax, cs; out 0xf2, eax */
        0xcb,                   /* retf (32-bit) */
    };
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    memcpy(g.ram + 0x7200, callee, sizeof callee); /* 0100:6200 */
    ck_assert_uint_eq(expect_out(&g, 0xf1), 0x9000 - 8);
    ck_assert_uint_eq(expect_out(&g, 0xf2) & 0xffff, 0x0100);
    uint32_t slot[2];
    memcpy(slot, g.ram + 0x9000 - 8, 8);
    ck_assert_uint_eq(slot[0], BODY + 7);
    ck_assert_uint_eq(slot[1], 0);
    expect_out(&g, 0xf3);
    expect_out(&g, 0xf4);
    expect_hlt(&g);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.eflags, 0x3ad7);
    ck_assert_uint_eq(r.esp, 0x9000);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* 16-bit operands (o16 in 32-bit code): CALL ptr16:16 pushes CS and IP as words, RETF 4
   pops them and releases 4 bytes more. */
START_TEST(far_call16_ret_imm)
{
    const uint8_t body[] = {
        0x6a, 0x00,                         /* push 0 (4 bytes) */
        0x66, 0x9a, 0x00, 0x72, 0x00, 0x00, /* call far 0000:7200 (o16) */
        0xe7, 0xf3, 0xf4,                   /* out 0xf3, eax; hlt */
    };
    const uint8_t callee[] = {
        0x89, 0xe0, 0xe7, 0xf1, /* mov eax, esp; out 0xf1, eax */
        0x66, 0xca, 0x04, 0x00, /* retf 4 (o16) */
    };
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    memcpy(g.ram + 0x7200, callee, sizeof callee);
    ck_assert_uint_eq(expect_out(&g, 0xf1), 0x9000 - 8);
    uint16_t frame[2];
    memcpy(frame, g.ram + 0x9000 - 8, 4);
    ck_assert_uint_eq(frame[0], BODY + 8);
    ck_assert_uint_eq(frame[1], 0);
    expect_out(&g, 0xf3);
    expect_hlt(&g);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.esp, 0x9000);
    xbt_vm_destroy(g.vm);
}
END_TEST

static int irq_once(void *opaque)
{
    int *left = opaque;
    return (*left)-- > 0 ? 0x40 : -1;
}

/* An external interrupt goes through the IVT as INT n does, with the EIP it
   interrupted. */
START_TEST(external_interrupt_through_ivt)
{
    const uint8_t body[] = { 0xe7, 0xf0, 0xeb, 0xfe }; /* out 0xf0, eax; jmp $ */
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    expect_out(&g, 0xf0);
    int left = 1;
    xbt_vcpu_set_irq_source(g.cpu, irq_once, &left);
    expect_event(&g, BODY + 2);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* #DE through vector 0: the faulting instruction's IP, no error code. */
START_TEST(divide_error_through_vector0)
{
    const uint8_t body[] = { 0x31, 0xc9, 0xf7, 0xf1 }; /* xor ecx, ecx; div ecx */
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    expect_event(&g, BODY + 2);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* A far JMP beyond CS's limit is #GP(0) (vector 13, no error code pushed). */
START_TEST(far_jmp_beyond_limit)
{
    const uint8_t body[] = { 0xea, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00 }; /* jmp 0:0x10000 */
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    s.cs.limit = 0xffff; /* 32-bit code with a 64 KiB limit */
    s.cs.g = 0;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g.cpu, &s), XBT_OK);
    expect_event(&g, BODY);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* IRETD to an EIP with bits 31:16 set is #GP(0), raised at the IRET with its frame
   still on the stack. */
START_TEST(iretd_beyond_64k)
{
    const uint8_t body[] = {
        0x9c, 0x6a, 0x00,                   /* pushfd; push 0 (CS) */
        0x68, 0x00, 0x00, 0x01, 0x00,       /* push 0x10000 */
        0xcf,                               /* iretd (at BODY + 8) */
    };
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    ck_assert_uint_eq(expect_out(&g, 0xf1), BODY + 8);
    ck_assert_uint_eq(expect_out(&g, 0xf2), 0x9000 - 12 - 6);
    expect_hlt(&g);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* Real mode does not have them: LAR, LSL, VERR, VERW, ARPL, SLDT, STR, LLDT, LTR #UD;
   SYSENTER and SYSEXIT #GP. */
START_TEST(not_in_real_mode)
{
    static const struct { uint8_t insn[4]; uint8_t len; uint16_t vec; } cases[] = {
        { { 0x0f, 0x02, 0xc0 }, 3, 6 },  /* lar eax, eax */
        { { 0x0f, 0x03, 0xc0 }, 3, 6 },  /* lsl eax, eax */
        { { 0x0f, 0x00, 0xe0 }, 3, 6 },  /* verr ax */
        { { 0x0f, 0x00, 0xe8 }, 3, 6 },  /* verw ax */
        { { 0x63, 0xc0 }, 2, 6 },        /* arpl ax, ax */
        { { 0x0f, 0x00, 0xc0 }, 3, 6 },  /* sldt eax */
        { { 0x0f, 0x00, 0xc8 }, 3, 6 },  /* str eax */
        { { 0x0f, 0x00, 0xd0 }, 3, 6 },  /* lldt ax */
        { { 0x0f, 0x00, 0xd8 }, 3, 6 },  /* ltr ax */
        { { 0x0f, 0x34 }, 2, 13 },       /* sysenter */
        { { 0x0f, 0x35 }, 2, 13 },       /* sysexit */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct guest g;
        setup(&g, cases[i].insn, cases[i].len, 0x3ff);
        ck_assert_int_eq(xbt_vcpu_set_msr(g.cpu, 0x174, 0x08), XBT_OK); /* SYSENTER_CS */
        set_ivt(&g, cases[i].vec, 0, HANDLER);
        /* The other vector reports on a port of its own. */
        set_ivt(&g, cases[i].vec == 6 ? 13 : 6, 0, 0x7300);
        memcpy(g.ram + 0x7300, (const uint8_t[]){ 0xe7, 0xf9, 0xf4 }, 3);
        expect_event(&g, BODY);
        xbt_vm_destroy(g.vm);
    }
}
END_TEST

/* An NMI in real mode goes through vector 2 like any interrupt. */
START_TEST(nmi_through_vector2)
{
    const uint8_t body[] = { 0xe7, 0xf0, 0xeb, 0xfe }; /* out 0xf0, eax; jmp $ */
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    expect_out(&g, 0xf0);
    xbt_vcpu_nmi(g.cpu);
    expect_event(&g, BODY + 2);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* An IVT too short: INT 0x30 beyond it is #GP (vector 13, present here, with the INT's
   own IP); beyond it too, #GP nests to #DF and then a triple fault. */
START_TEST(ivt_limit)
{
    const uint8_t body[] = { 0xcd, 0x30 };
    struct guest g;
    setup(&g, body, sizeof body, 13 * 4 + 3);
    expect_event(&g, BODY);
    xbt_vm_destroy(g.vm);
    setup(&g, body, sizeof body, 3);
    ck_assert_uint_eq(run(&g)->reason, XBT_EXIT_SHUTDOWN);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* Big real mode as kvm-unit-tests' realmode.flat makes it: with DS's limit 64 KiB, an
   access beyond it is #GP (vector 13); PE set, DS loaded from the GDT (4 GiB), PE
   cleared, a real-mode load of DS keeps the 4 GiB limit and the access works. */
static const uint8_t big_real_prefix[] = {
    0x66, 0xb8, 0x00, 0x10, 0x8e, 0xd8, /* mov ax, 0x1000; mov ds, ax */
};
static const uint8_t big_real_toggle[] = {
    0x0f, 0x20, 0xc0, 0x0c, 0x01, 0x0f, 0x22, 0xc0, /* mov eax, cr0; or al, 1; mov cr0, eax */
    0x66, 0xbb, 0x10, 0x00, 0x8e, 0xdb,             /* mov bx, 0x10; mov ds, bx (GDT) */
    0x24, 0xfe, 0x0f, 0x22, 0xc0,                   /* and al, 0xfe; mov cr0, eax */
    0x66, 0xb8, 0x00, 0x10, 0x8e, 0xd8,             /* mov ax, 0x1000; mov ds, ax */
};
static const uint8_t big_real_access[] = {
    0xc7, 0x05, 0x00, 0x00, 0x01, 0x00, 0x78, 0x56, 0x34, 0x12, /* mov dword [0x10000], .. */
    0xe7, 0xf0, 0xf4,                                           /* out 0xf0, eax; hlt */
};

static void big_real_case(bool toggle)
{
    uint8_t body[64];
    size_t n = 0;
    memcpy(body, big_real_prefix, sizeof big_real_prefix), n += sizeof big_real_prefix;
    if (toggle)
        memcpy(body + n, big_real_toggle, sizeof big_real_toggle), n += sizeof big_real_toggle;
    uint16_t access = (uint16_t)(BODY + n);
    memcpy(body + n, big_real_access, sizeof big_real_access), n += sizeof big_real_access;
    struct guest g;
    setup(&g, body, n, 0x3ff);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    s.ds.limit = 0xffff;
    s.ds.g = 0;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g.cpu, &s), XBT_OK);
    if (!toggle) {
        expect_event(&g, access);
    } else {
        expect_out(&g, 0xf0);
        expect_hlt(&g);
        uint32_t v;
        memcpy(&v, g.ram + 0x20000, 4);
        ck_assert_uint_eq(v, 0x12345678);
        xbt_vcpu_get_sregs(g.cpu, &s);
        ck_assert_uint_eq(s.cr0 & 1, 0);
        ck_assert_uint_eq(s.ds.base, 0x10000);
        ck_assert_uint_eq(s.ds.limit, 0xffffffffu);
    }
    xbt_vm_destroy(g.vm);
}

START_TEST(big_real_mode)
{
    big_real_case(false);
    big_real_case(true);
}
END_TEST

/* Two code segments with the same offsets: an indirect JMP to IP 0x200 in segment 0x2000
   must not reach the translation of 0x1000:0200 that the inline lookup learned (its
   entries are EIPs, valid for one CS base). */
START_TEST(indirect_branch_after_cs_change)
{
    const uint8_t body[] = {
        0x31, 0xc9,                                     /* xor ecx, ecx */
        0xea, 0x00, 0x01, 0x00, 0x00, 0x00, 0x10,       /* jmp far 1000:0100 */
    };
    /* mov eax, 0x200; jmp eax */
    const uint8_t to_200[] = { 0xb8, 0x00, 0x02, 0, 0, 0xff, 0xe0 };
    const uint8_t a_200[] = {
        0x41, 0x89, 0xc8, 0xe7, 0xf2,                   /* inc ecx; mov eax, ecx; out 0xf2 */
        0x83, 0xf9, 0x03,                               /* cmp ecx, 3 */
        0x0f, 0x85, 0xf2, 0xfe, 0xff, 0xff,             /* jne 0x100 */
        0xea, 0x00, 0x01, 0x00, 0x00, 0x00, 0x20,       /* jmp far 2000:0100 */
    };
    const uint8_t b_200[] = { 0xb8, 0x0b, 0, 0, 0, 0xe7, 0xf1, 0xf4 }; /* eax = 0xb; out */
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    memcpy(g.ram + 0x10100, to_200, sizeof to_200);
    memcpy(g.ram + 0x20100, to_200, sizeof to_200);
    memcpy(g.ram + 0x10200, a_200, sizeof a_200);
    memcpy(g.ram + 0x20200, b_200, sizeof b_200);
    for (uint32_t i = 1; i <= 3; i++)
        ck_assert_uint_eq(expect_out(&g, 0xf2), i);
    ck_assert_uint_eq(expect_out(&g, 0xf1), 0xb);
    expect_hlt(&g);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* A state saved in real mode restores (PE clear, CPL 0, the hidden parts as they were)
   and runs on in a new VM: an INT through the IVT there. */
START_TEST(save_restore_in_real_mode)
{
    const uint8_t body[] = {
        0x66, 0xb8, 0x00, 0x20, 0x8e, 0xd8, /* mov ax, 0x2000; mov ds, ax */
        0xe7, 0xf0,                         /* out 0xf0, eax */
        0xcd, 0x30,                         /* int 0x30 (at BODY + 8) */
    };
    struct guest g, h;
    setup(&g, body, sizeof body, 0x3ff);
    expect_out(&g, 0xf0);
    int fd = save_and_destroy(&g);
    setup(&h, (const uint8_t[]){ 0xf4 }, 1, 0x3ff);
    restore_from(&h, fd);
    xbt_sregs s;
    xbt_vcpu_get_sregs(h.cpu, &s);
    ck_assert_uint_eq(s.cr0 & 1, 0);
    ck_assert_uint_eq(s.ds.base, 0x20000);
    ck_assert_uint_eq(s.cs.db, 1);
    expect_event(&h, BODY + 10);
    xbt_vm_destroy(h.vm);
}
END_TEST

/* The API: CR0.PE clear means CPL 0 whatever CS's DPL (a privileged instruction runs);
   PG without PE is refused.  LMSW cannot clear PE. */
START_TEST(api_real_mode_cpl0_and_lmsw)
{
    const uint8_t body[] = {
        0x0f, 0x20, 0xc0, 0xe7, 0xf1, /* mov eax, cr0; out 0xf1, eax */
        0xf4,
    };
    struct guest g;
    setup(&g, body, sizeof body, 0x3ff);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    s.cr0 &= ~1u;
    s.cs.dpl = 3;
    s.cr0 |= 0x80000000u;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g.cpu, &s), XBT_E_INVAL);
    s.cr0 &= ~0x80000000u;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g.cpu, &s), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    r.eip = BODY;
    xbt_vcpu_set_regs(g.cpu, &r);
    ck_assert_uint_eq(expect_out(&g, 0xf1) & 1, 0);
    expect_hlt(&g);
    xbt_vm_destroy(g.vm);

    /* Protected mode: lmsw with PE clear in its operand leaves PE set. */
    const uint8_t pm[] = {
        0x31, 0xc0, 0x0f, 0x01, 0xf0, /* xor eax, eax; lmsw ax */
        0x0f, 0x20, 0xc0, 0xe7, 0xf1, /* mov eax, cr0; out 0xf1, eax */
        0xf4,
    };
    setup(&g, pm, sizeof pm, 0x3ff);
    memcpy(g.ram + ENTRY, pm, sizeof pm);
    ck_assert_uint_eq(expect_out(&g, 0xf1) & 1, 1);
    xbt_vm_destroy(g.vm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("realmode");
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, segment_loads);
    tcase_add_test(tc, int_and_iret16);
    tcase_add_test(tc, int_on_a_16bit_stack);
    tcase_add_test(tc, far_call_ret_iretd);
    tcase_add_test(tc, far_call16_ret_imm);
    tcase_add_test(tc, external_interrupt_through_ivt);
    tcase_add_test(tc, divide_error_through_vector0);
    tcase_add_test(tc, far_jmp_beyond_limit);
    tcase_add_test(tc, iretd_beyond_64k);
    tcase_add_test(tc, not_in_real_mode);
    tcase_add_test(tc, nmi_through_vector2);
    tcase_add_test(tc, ivt_limit);
    tcase_add_test(tc, api_real_mode_cpl0_and_lmsw);
    tcase_add_test(tc, save_restore_in_real_mode);
    tcase_add_test(tc, big_real_mode);
    tcase_add_test(tc, indirect_branch_after_cs_change);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
