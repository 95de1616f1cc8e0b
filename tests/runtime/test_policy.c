/*
 * test_policy.c - the embedder's policy through the public API (xbt.h, API 1.4): event
 * injection (an interrupt during a HLT and at an interrupt window, exceptions with and
 * without an error code, #DF, a triple fault, and both into user code run strictly,
 * directly and adaptively), the CPUID policy (what the guest reads, from kernel code and
 * from directly run user code, and what a hidden feature changes: #UD for SSE, #GP for
 * CR4.PAE, the MSRs that go with CPUID bits; RDTSCP, RDPID, CR4.UMIP, IA32_TSC_AUX and
 * the machine-check MSRs with and without their bits; the model's MSRs' reserved
 * values), MSR exits (a read answered, a write seen,
 * #GP injected), watchpoints (paging off: a read, a write, a write beside one, INT's
 * frame pushed by the VMM, REP STOSD; paging on: kernel and user writes, strict and
 * direct) and the misuse each call refuses.
 *
 * The guest: GDT at 0x1000 (kernel code 0x08 and data 0x10, user code 0x1b and data
 * 0x23, a TSS 0x28 at 0x3000 with the ring-0 stack at 0x90000), IDT at 0x2000, handlers
 * at 0x110000 + 0x40 * vector that report what they received on ports 0xf0 (vector),
 * 0xf1 (error code, if the vector has one), 0xf2 (EIP pushed), 0xf3 (CS pushed), 0xf4
 * (the dword above EFLAGS: the interrupted ESP when it came from CPL 3), then IRET or
 * HLT.  Paging (4 MiB pages, user-accessible, identity) for the user-mode cases.
 */
#define _GNU_SOURCE /* memfd_create (guest_util.h) */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xbt/xbt.h"
#include "guest_util.h"

#define HANDLERS 0x110000u


static void setup(struct guest *g, uint32_t user_mode, uint32_t flags, bool paging)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 16u << 20;
    c.user_mode = user_mode;
    c.flags = flags;
    ck_assert_int_eq(xbt_vm_create(&c, &g->vm), XBT_OK);
    g->ram = xbt_vm_ram(g->vm);
    const uint64_t gdt[6] = { 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull,
                              0x00cffa000000ffffull, 0x00cff2000000ffffull,
                              0x00008b0030000067ull };
    memcpy(g->ram + 0x1000, gdt, sizeof gdt);
    uint32_t esp0 = 0x90000, ss0 = 0x10;
    memcpy(g->ram + 0x3004, &esp0, 4);
    memcpy(g->ram + 0x3008, &ss0, 4);
    for (uint32_t i = 0; i < 4; i++) {
        uint32_t pde = (i << 22) | 0x87; /* present, writable, user, 4 MiB */
        memcpy(g->ram + 0x4000 + 4 * i, &pde, 4);
    }
    ck_assert_int_eq(xbt_vcpu_create(g->vm, &g->cpu), XBT_OK);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g->cpu, &s);
    s.gdt.base = 0x1000;
    s.gdt.limit = sizeof gdt - 1;
    s.idt.base = 0x2000;
    s.idt.limit = 0x7ff;
    s.tr = (xbt_segment){ .base = 0x3000, .limit = 0x67, .selector = 0x28, .type = 11,
                          .present = 1 };
    if (paging) {
        s.cr3 = 0x4000;
        s.cr4 |= 0x10 | 0x600; /* PSE; OSFXSR, OSXMMEXCPT (else user code runs translated) */
        s.cr0 |= 0x80000001u;
    }
    ck_assert_int_eq(xbt_vcpu_set_sregs(g->cpu, &s), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(g->cpu, &r);
    r.eip = 0x100000;
    r.esp = 0x90000;
    ck_assert_int_eq(xbt_vcpu_set_regs(g->cpu, &r), XBT_OK);
}

static void set_gate(struct guest *g, int vec, uint32_t handler, uint8_t type)
{
    uint64_t gate = (handler & 0xffff) | (0x08ull << 16) | ((uint64_t)type << 40) |
                    ((uint64_t)(handler >> 16) << 48);
    memcpy(g->ram + 0x2000 + 8 * vec, &gate, 8);
}

/* The reporting handler of `vec` (see the top), ending with IRET or HLT. */
static void put_handler(struct guest *g, int vec, bool err, bool iret)
{
    uint32_t at = HANDLERS + 0x40u * (uint32_t)vec, v = (uint32_t)vec;
    uint8_t *q = g->ram + at;
    *q++ = 0xb8, memcpy(q, &v, 4), q += 4;               /* mov eax, vec */
    *q++ = 0xe7, *q++ = 0xf0;                            /* out 0xf0, eax */
    if (err)
        *q++ = 0x58, *q++ = 0xe7, *q++ = 0xf1;           /* pop eax; out 0xf1, eax */
    memcpy(q, "\x8b\x04\x24\xe7\xf2", 5), q += 5;        /* mov eax, [esp]; out 0xf2 */
    memcpy(q, "\x8b\x44\x24\x04\xe7\xf3", 6), q += 6;    /* mov eax, [esp+4]; out 0xf3 */
    memcpy(q, "\x8b\x44\x24\x0c\xe7\xf4", 6), q += 6;    /* mov eax, [esp+12]; out 0xf4 */
    *q = iret ? 0xcf : 0xf4;
    set_gate(g, vec, at, 0x8e);
}

/* The handler's report of one event: vector, error code (err >= 0), EIP and CS pushed;
   returns the dword reported on 0xf4. */
static uint32_t expect_event(struct guest *g, int vec, int64_t err, uint32_t eip, uint32_t cs)
{
    ck_assert_uint_eq(expect_out(g, 0xf0), (uint32_t)vec);
    if (err >= 0)
        ck_assert_uint_eq(expect_out(g, 0xf1), (uint32_t)err);
    ck_assert_uint_eq(expect_out(g, 0xf2), eip);
    ck_assert_uint_eq(expect_out(g, 0xf3), cs);
    return expect_out(g, 0xf4);
}

static void expect_reason(struct guest *g, uint32_t reason)
{
    ck_assert_uint_eq(run(g)->reason, reason);
}

static uint32_t eip_of(struct guest *g)
{
    xbt_regs r;
    xbt_vcpu_get_regs(g->cpu, &r);
    return r.eip;
}

/* ---- injection at CPL 0 ---------------------------------------------------------------- */

/* An interrupt injected during a HLT, an exception and an interrupt at an interrupt
   window (the exception first), an exception while IF=0, #DF from a #GP whose gate is
   not present, and a triple fault; the misuse refused on the way. */
START_TEST(inject_kernel)
{
    const uint8_t code[] = {
        0xfb,                         /* sti */
        0xf4,                         /* hlt (0x100001) */
        0xb8, 0x55, 0x00, 0x00, 0x00, /* mov eax, 0x55 (0x100002) */
        0xe7, 0xf5,                   /* out 0xf5, eax */
        0xf4,                         /* hlt (0x100009) */
        0xfa,                         /* cli (0x10000a) */
        0xf4, 0xf4, 0xf4, 0xf4,       /* hlt (0x10000b ...) */
    };
    struct guest g;
    setup(&g, XBT_USER_STRICT, 0, false);
    memcpy(g.ram + 0x100000, code, sizeof code);
    put_handler(&g, 0x31, false, true);
    put_handler(&g, 0x32, false, true);
    put_handler(&g, 6, false, true);
    put_handler(&g, 13, true, true);
    put_handler(&g, 8, true, true);
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(g.cpu, 0x31), XBT_E_INVAL); /* IF=0 */
    expect_reason(&g, XBT_EXIT_HLT);
    ck_assert_uint_eq(eip_of(&g), 0x100002);
    /* The misuse. */
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(NULL, 0x31), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(g.cpu, -1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(g.cpu, 256), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 2, 0, 0), XBT_E_INVAL);  /* NMI */
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 32, 0, 0), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, -1, 0, 0), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 6, 1, 0), XBT_E_INVAL);  /* no code */
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 13, 0, 0), XBT_E_INVAL); /* needs one */
    ck_assert_int_eq(xbt_vcpu_inject_exception(NULL, 6, 0, 0), XBT_E_INVAL);
    /* During the HLT: it ends it; the EIP pushed is the one after the HLT. */
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(g.cpu, 0x31), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(g.cpu, 0x32), XBT_E_INVAL); /* one pending */
    expect_event(&g, 0x31, -1, 0x100002, 0x08);
    ck_assert_uint_eq(expect_out(&g, 0xf5), 0x55); /* IRET came back */
    expect_reason(&g, XBT_EXIT_HLT);
    /* At an interrupt window, an exception and an interrupt: the exception first. */
    ck_assert_int_eq(xbt_vcpu_request_irq_window(g.cpu, 1), XBT_OK);
    expect_reason(&g, XBT_EXIT_IRQ_WINDOW);
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 6, 0, 0), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 6, 0, 0), XBT_E_INVAL); /* pending */
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(g.cpu, 0x32), XBT_OK);
    expect_event(&g, 6, -1, 0x10000a, 0x08);
    expect_event(&g, 0x32, -1, 0x10000a, 0x08); /* after the #UD handler's IRET */
    expect_reason(&g, XBT_EXIT_HLT);             /* cli; hlt */
    ck_assert_uint_eq(eip_of(&g), 0x10000c);
    /* IF=0: no interrupt, but an exception with its error code. */
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(g.cpu, 0x31), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 13, 1, 0x1234), XBT_OK);
    expect_event(&g, 13, 0x1234, 0x10000c, 0x08);
    expect_reason(&g, XBT_EXIT_HLT);
    /* #GP through a gate that is not present: #NP, a second contributory fault: #DF(0),
       pushed with the EIP of the injected fault. */
    set_gate(&g, 13, HANDLERS + 0x40 * 13, 0x0e);
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 13, 1, 0), XBT_OK);
    expect_event(&g, 8, 0, 0x10000d, 0x08);
    expect_reason(&g, XBT_EXIT_HLT);
    /* Neither present: a triple fault. */
    set_gate(&g, 8, HANDLERS + 0x40 * 8, 0x0e);
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 13, 1, 0), XBT_OK);
    expect_reason(&g, XBT_EXIT_SHUTDOWN);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* ---- user mode: injection into user code, CPUID from it --------------------------------- */

static void *stop_later(void *arg)
{
    usleep(100000);
    xbt_vcpu_stop(arg);
    return NULL;
}

/* Runs until the stop another thread asks for in 0.1 s, again while the guest has not
   reached user mode yet (a loaded host may not run this thread for that long; 50 tries
   at most); the guest is in user mode then. */
static void run_until_stopped(struct guest *g)
{
    xbt_sregs s;
    for (int tries = 0; tries < 50; tries++) {
        pthread_t th;
        pthread_create(&th, NULL, stop_later, g->cpu);
        xbt_exit *ex = run(g);
        pthread_join(th, NULL);
        ck_assert_uint_eq(ex->reason, XBT_EXIT_STOPPED);
        xbt_vcpu_get_sregs(g->cpu, &s);
        if (s.cs.selector != 0x08)
            break;
    }
    ck_assert_uint_eq(s.cs.selector, 0x1b);
}

static uint64_t direct_entries(struct guest *g)
{
    xbt_stats st = XBT_STATS_INIT;
    xbt_vcpu_get_stats(g->cpu, &st);
    return st.direct_entries;
}

/* The model's entries with SEP and PAE hidden in leaf 1 EDX and the hypervisor bit in
   ECX (nothing that makes user code run translated: SSE hidden would). */
static size_t hiding_policy(xbt_vcpu *cpu, xbt_cpuid_entry *e)
{
    size_t n = 0;
    ck_assert_int_eq(xbt_vcpu_get_cpuid(cpu, e, XBT_MAX_CPUID_ENTRIES, &n), XBT_OK);
    for (size_t i = 0; i < n; i++)
        if (e[i].function == 1) {
            e[i].edx &= ~((1u << 6) | (1u << 11));
            e[i].ecx &= ~(1u << 31);
        }
    return n;
}

/* The kernel enters user code at 0x400000 (IF=1, ESP 0x47fff0), which runs CPUID leaf 1
   and stores EDX, ECX at 0x480000, enters the kernel once (INT 0x80, an IRET), then
   loops on another page (inc esi; jmp).  Stopped there, it gets an injected interrupt
   and an injected #PF; each handler returns to the loop. */
static void inject_user_case(uint32_t mode, const char *adapt_ticks)
{
    static const uint8_t kernel[] = {
        0x66, 0xb8, 0x23, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, /* mov ax, 0x23; mov ds/es, ax */
        0x6a, 0x23, 0x68, 0xf0, 0xff, 0x47, 0x00,       /* push 0x23; push 0x47fff0 */
        0x68, 0x02, 0x02, 0x00, 0x00, 0x6a, 0x1b,       /* push 0x202; push 0x1b */
        0x68, 0x00, 0x00, 0x40, 0x00, 0xcf,             /* push 0x400000; iret */
    };
    static const uint8_t user[] = {
        0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2,       /* mov eax, 1; cpuid */
        0x89, 0x15, 0x00, 0x00, 0x48, 0x00,             /* mov [0x480000], edx */
        0x89, 0x0d, 0x04, 0x00, 0x48, 0x00,             /* mov [0x480004], ecx */
        0xcd, 0x80,                                     /* int 0x80 */
        0xe9, 0xe6, 0x0f, 0x00, 0x00,                   /* jmp 0x401000 */
    };
    static const uint8_t loop[] = { 0x46, 0xeb, 0xfd }; /* inc esi; jmp 0x401000 */
    if (adapt_ticks)
        setenv("XBT_ADAPT_TICKS", adapt_ticks, 1);
    struct guest g;
    setup(&g, mode, 0, true);
    unsetenv("XBT_ADAPT_TICKS");
    memcpy(g.ram + 0x100000, kernel, sizeof kernel);
    memcpy(g.ram + 0x400000, user, sizeof user);
    memcpy(g.ram + 0x401000, loop, sizeof loop);
    g.ram[0x10ff00] = 0xcf; /* iret */
    set_gate(&g, 0x80, 0x10ff00, 0xee);
    put_handler(&g, 0x30, false, true);
    put_handler(&g, 14, true, true);
    xbt_cpuid_entry e[XBT_MAX_CPUID_ENTRIES];
    size_t n = hiding_policy(g.cpu, e);
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g.cpu, e, n), XBT_OK);
    const char *why = NULL;
    bool direct = xbt_vm_user_mode(g.vm, &why) != XBT_USER_STRICT &&
                  xbt_has(XBT_CAP_USER_DIRECT, &why);
    if (mode != XBT_USER_STRICT && !direct) /* the rest still runs, translated */
        printf("SKIP: inject_user (user mode %u): the direct-execution checks: %s\n", mode,
               why ? why : "direct execution is not available");
    run_until_stopped(&g);
    /* On a loaded host the first stop may come before the user code got to its loop
       (a runner process starting): stopped again until it is there. */
    for (int i = 0; i < 50 && (eip_of(&g) & ~3u) != 0x401000; i++)
        run_until_stopped(&g);
    ck_assert_uint_eq(eip_of(&g) & ~3u, 0x401000);
    uint32_t seen[2];
    memcpy(seen, g.ram + 0x480000, 8);
    ck_assert_uint_eq(seen[0], 0x0781e9f9u & ~((1u << 6) | (1u << 11)));
    ck_assert_uint_eq(seen[1], 0x80180201u & ~(1u << 31));
    uint64_t d0 = direct_entries(&g);
    printf("user mode %u: %llu direct entries before the injections\n", mode,
           (unsigned long long)d0);
    if (direct)
        ck_assert_uint_gt(d0, 0); /* the loop ran directly */
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(g.cpu, 0x30), XBT_OK);
    uint32_t eip = eip_of(&g);
    ck_assert(eip == 0x401000 || eip == 0x401001);
    ck_assert_uint_eq(expect_event(&g, 0x30, -1, eip, 0x1b), 0x47fff0);
    run_until_stopped(&g);
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 14, 1, 7), XBT_OK);
    eip = eip_of(&g);
    ck_assert_uint_eq(expect_event(&g, 14, 7, eip, 0x1b), 0x47fff0);
    run_until_stopped(&g);
    if (direct)
        ck_assert_uint_gt(direct_entries(&g), d0); /* back to direct execution */
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.esp, 0x47fff0);
    xbt_vm_destroy(g.vm);
}

START_TEST(inject_user_strict)
{
    inject_user_case(XBT_USER_STRICT, NULL);
}
END_TEST

START_TEST(inject_user_direct)
{
    inject_user_case(XBT_USER_DIRECT, NULL);
}
END_TEST

START_TEST(inject_user_adaptive_now)
{
    inject_user_case(XBT_USER_ADAPTIVE, "0");
}
END_TEST

/* ---- the CPUID policy ----------------------------------------------------------------- */

/* Puts EIP at a phase of the test code (fresh stack, IF=0). */
static void go(struct guest *g, uint32_t eip)
{
    xbt_regs r;
    xbt_vcpu_get_regs(g->cpu, &r);
    r.eip = eip;
    r.esp = 0x90000;
    r.eflags = 2;
    ck_assert_int_eq(xbt_vcpu_set_regs(g->cpu, &r), XBT_OK);
}

static void set_cr4(struct guest *g, uint32_t cr4)
{
    xbt_sregs s;
    xbt_vcpu_get_sregs(g->cpu, &s);
    s.cr4 = cr4;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g->cpu, &s), XBT_OK);
}

static const uint8_t cpuid_code[] = {
    /* 0x100000: CPUID leaves 1, 7.0 and 0x40000000 reported */
    0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2,       /* mov eax, 1; cpuid */
    0x89, 0xd0, 0xe7, 0xf1, 0x89, 0xc8, 0xe7, 0xf2, /* out edx to 0xf1, ecx to 0xf2 */
    0xb8, 0x07, 0x00, 0x00, 0x00, 0x31, 0xc9,       /* mov eax, 7; xor ecx, ecx */
    0x0f, 0xa2, 0x89, 0xd0, 0xe7, 0xf3,             /* cpuid; out edx to 0xf3 */
    0xb8, 0x00, 0x00, 0x00, 0x40, 0x0f, 0xa2,       /* mov eax, 0x40000000; cpuid */
    0x89, 0xd8, 0xe7, 0xf4, 0xf4,                   /* out ebx to 0xf4; hlt */
};
#define PHASE_CR4 0x100100  /* mov eax, cr4; or eax, 0x20; mov cr4, eax (+6); hlt */
#define PHASE_SSE 0x100200  /* xorps xmm0, xmm0; hlt */
#define PHASE_MSR 0x100300  /* mov ecx, 0x10a; rdmsr (+5); hlt */
#define PHASE_SSE2 0x100400 /* paddq xmm0, xmm1; hlt */
#define PHASE_SSE42 0x100500 /* crc32 eax, eax; hlt */

static void put_cpuid_guest(struct guest *g)
{
    memcpy(g->ram + 0x100000, cpuid_code, sizeof cpuid_code);
    memcpy(g->ram + PHASE_CR4, "\x0f\x20\xe0\x83\xc8\x20\x0f\x22\xe0\xf4", 10);
    memcpy(g->ram + PHASE_SSE, "\x0f\x57\xc0\xf4", 4);
    memcpy(g->ram + PHASE_MSR, "\xb9\x0a\x01\x00\x00\x0f\x32\xf4", 8);
    memcpy(g->ram + PHASE_SSE2, "\x66\x0f\xd4\xc1\xf4", 5);
    memcpy(g->ram + PHASE_SSE42, "\xf2\x0f\x38\xf1\xc0\xf4", 6);
    put_handler(g, 13, true, false);
    put_handler(g, 6, false, false);
}

/* The phases of cpuid_code as the model has them: nothing faults. */
static void cpuid_phases_model(struct guest *g)
{
    uint32_t sig;
    memcpy(&sig, "xbtV", 4);
    ck_assert_uint_eq(expect_out(g, 0xf1), 0x0781e9f9u | 0x200); /* with the local APIC */
    ck_assert_uint_eq(expect_out(g, 0xf2), 0x80180201u);
    ck_assert_uint_eq(expect_out(g, 0xf3), 0x20000000u);
    ck_assert_uint_eq(expect_out(g, 0xf4), sig);
    expect_reason(g, XBT_EXIT_HLT);
    go(g, PHASE_CR4);
    expect_reason(g, XBT_EXIT_HLT);
    ck_assert_uint_eq(eip_of(g), PHASE_CR4 + 10);
    set_cr4(g, 0x200); /* OSFXSR */
    go(g, PHASE_SSE);
    expect_reason(g, XBT_EXIT_HLT);
    ck_assert_uint_eq(eip_of(g), PHASE_SSE + 4);
    go(g, PHASE_MSR);
    expect_reason(g, XBT_EXIT_HLT);
    xbt_regs r;
    xbt_vcpu_get_regs(g->cpu, &r);
    ck_assert_uint_eq(r.eax, 1); /* IA32_ARCH_CAPABILITIES.RDCL_NO */
    uint64_t v;
    ck_assert_int_eq(xbt_vcpu_get_msr(g->cpu, 0x1b, &v), XBT_OK);
}

/* The refusals: each leaves the policy as it was. */
static void cpuid_refusals(struct guest *g, const xbt_cpuid_entry *model, size_t n)
{
    xbt_cpuid_entry e[XBT_MAX_CPUID_ENTRIES + 1];
    static const struct { uint32_t fn, idx, flags, reg, bit; } bad[] = {
        { 1, 0, 0, 2, 28 },            /* AVX */
        { 1, 0, 0, 2, 26 },            /* XSAVE */
        { 1, 0, 0, 2, 27 },            /* OSXSAVE */
        { 1, 0, 0, 3, 12 },            /* MTRR */
        { 7, 0, XBT_CPUID_INDEXED, 1, 5 }, /* AVX2 */
        { 7, 1, XBT_CPUID_INDEXED, 3, 29 }, /* leaf 7's mask is subleaf 0's only */
        { 0xd, 0, XBT_CPUID_INDEXED, 0, 0 }, /* XSAVE's leaf */
        { 0x80000001u, 0, 0, 3, 29 },  /* long mode */
        { 0x80000001u, 0, 0, 3, 20 },  /* NX */
        { 0x80000001u, 0, 0, 3, 11 },  /* SYSCALL */
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memcpy(e, model, n * sizeof *e);
        xbt_cpuid_entry x = { bad[k].fn, bad[k].idx, bad[k].flags, 0, 0, 0, 0 };
        size_t i = 0;
        while (i < n && !(e[i].function == x.function && e[i].index == x.index))
            i++;
        if (i == n)
            e[n] = x;
        uint32_t *reg[4] = { &e[i].eax, &e[i].ebx, &e[i].ecx, &e[i].edx };
        *reg[bad[k].reg] |= 1u << bad[k].bit;
        ck_assert_msg(xbt_vcpu_set_cpuid(g->cpu, e, i == n ? n + 1 : n) == XBT_E_INVAL,
                      "leaf %#x bit %u of reg %u accepted", bad[k].fn, bad[k].bit, bad[k].reg);
    }
    memcpy(e, model, n * sizeof *e);
    e[n] = e[1]; /* leaf 1 twice */
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g->cpu, e, n + 1), XBT_E_INVAL);
    e[n] = (xbt_cpuid_entry){ 0x80000002u, 0, 4, 0, 0, 0, 0 }; /* an unknown flag */
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g->cpu, e, n + 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g->cpu, NULL, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_cpuid(NULL, e, n), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g->cpu, e, XBT_MAX_CPUID_ENTRIES + 1), XBT_E_INVAL);
    size_t m = 0;
    ck_assert_int_eq(xbt_vcpu_get_cpuid(g->cpu, e, 1, &m), XBT_E_INVAL); /* too small */
    ck_assert_uint_eq(m, n);
    ck_assert_int_eq(xbt_vcpu_get_cpuid(g->cpu, NULL, 0, &m), XBT_OK);   /* counting */
    ck_assert_uint_eq(m, n);
    ck_assert_int_eq(xbt_vcpu_get_cpuid(g->cpu, e, n, NULL), XBT_E_INVAL);
}

/* The model as xbt_vcpu_get_cpuid lists it and as the guest reads it; then a policy
   that hides PAE, SSE, the APIC and IA32_ARCH_CAPABILITIES and drops the hypervisor
   leaf: the guest reads that, MOV to CR4.PAE raises #GP, XORPS #UD, RDMSR of the
   capabilities MSR #GP, and IA32_APIC_BASE is gone.  The refusals on the way. */
START_TEST(cpuid_policy)
{
    struct guest g;
    setup(&g, XBT_USER_STRICT, XBT_VM_LOCAL_APIC, false);
    put_cpuid_guest(&g);
    xbt_cpuid_entry model[XBT_MAX_CPUID_ENTRIES], e[XBT_MAX_CPUID_ENTRIES];
    size_t n = 0;
    ck_assert_int_eq(xbt_vcpu_get_cpuid(g.cpu, model, XBT_MAX_CPUID_ENTRIES, &n), XBT_OK);
    ck_assert_uint_eq(n, 12);
    ck_assert_uint_eq(model[1].function, 1);
    ck_assert_uint_eq(model[1].edx, 0x0781e9f9u | 0x200);
    cpuid_phases_model(&g);
    cpuid_refusals(&g, model, n);
    /* The model given back is accepted and changes nothing. */
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g.cpu, model, n), XBT_OK);
    set_cr4(&g, 0);
    go(&g, 0x100000);
    cpuid_phases_model(&g);
    /* Information leaves may say anything. */
    memcpy(e, model, n * sizeof *e);
    for (size_t i = 0; i < n; i++)
        if (e[i].function == 0x80000002u) /* another brand string */
            e[i] = (xbt_cpuid_entry){ 0x80000002u, 0, 0, 0x20747862, 0x75726976, 0x6c617574, 0 };
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g.cpu, e, n), XBT_OK);
    /* The hiding policy. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (model[i].function == 0x40000000u)
            continue;
        e[k] = model[i];
        if (e[k].function == 1)
            e[k].edx &= ~((1u << 6) | (1u << 25) | (1u << 9));
        if (e[k].function == 7)
            e[k].edx = 0;
        k++;
    }
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g.cpu, e, k), XBT_OK);
    xbt_cpuid_entry back[XBT_MAX_CPUID_ENTRIES];
    size_t nb = 0;
    ck_assert_int_eq(xbt_vcpu_get_cpuid(g.cpu, back, XBT_MAX_CPUID_ENTRIES, &nb), XBT_OK);
    ck_assert_uint_eq(nb, k);
    ck_assert_mem_eq(back, e, k * sizeof *e);
    set_cr4(&g, 0);
    go(&g, 0x100000);
    ck_assert_uint_eq(expect_out(&g, 0xf1), 0x0781e9f9u & ~((1u << 6) | (1u << 25)));
    ck_assert_uint_eq(expect_out(&g, 0xf2), 0x80180201u);
    ck_assert_uint_eq(expect_out(&g, 0xf3), 0);
    ck_assert_uint_eq(expect_out(&g, 0xf4), 0); /* a leaf no entry names */
    expect_reason(&g, XBT_EXIT_HLT);
    go(&g, PHASE_CR4);
    expect_event(&g, 13, 0, PHASE_CR4 + 6, 0x08); /* CR4.PAE reserved now */
    expect_reason(&g, XBT_EXIT_HLT);
    set_cr4(&g, 0x200);
    go(&g, PHASE_SSE);
    expect_event(&g, 6, -1, PHASE_SSE, 0x08);     /* SSE: #UD */
    expect_reason(&g, XBT_EXIT_HLT);
    go(&g, PHASE_MSR);
    expect_event(&g, 13, 0, PHASE_MSR + 5, 0x08); /* no IA32_ARCH_CAPABILITIES */
    expect_reason(&g, XBT_EXIT_HLT);
    uint64_t v;
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0x1b, &v), XBT_E_INVAL); /* no APIC */
    /* SSE2 and SSE4.2 hidden, SSE not: XORPS runs, PADDQ and CRC32 raise #UD (and run
       without the policy, the model's). */
    memcpy(e, model, n * sizeof *e);
    e[1].edx &= ~(1u << 26);
    e[1].ecx &= ~(1u << 20);
    static const uint32_t phases[3] = { PHASE_SSE, PHASE_SSE2, PHASE_SSE42 };
    static const uint32_t lens[3] = { 3, 4, 5 };
    for (int pol = 0; pol < 2; pol++) {
        ck_assert_int_eq(xbt_vcpu_set_cpuid(g.cpu, pol ? e : model, n), XBT_OK);
        for (int k = 0; k < 3; k++) {
            go(&g, phases[k]);
            if (pol && k)
                expect_event(&g, 6, -1, phases[k], 0x08); /* then the handler's HLT */
            expect_reason(&g, XBT_EXIT_HLT);
            if (!(pol && k))
                ck_assert_uint_eq(eip_of(&g), phases[k] + lens[k] + 1); /* past the HLT */
        }
    }
    xbt_vm_destroy(g.vm);
    /* Without XBT_VM_LOCAL_APIC the APIC bit cannot be claimed. */
    setup(&g, XBT_USER_STRICT, 0, false);
    ck_assert_int_eq(xbt_vcpu_get_cpuid(g.cpu, model, XBT_MAX_CPUID_ENTRIES, &n), XBT_OK);
    ck_assert_uint_eq(model[1].edx, 0x0781e9f9u);
    model[1].edx |= 0x200;
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g.cpu, model, n), XBT_E_INVAL);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* The MSRs of the CPU model through xbt_vcpu_get_msr/set_msr: EFER (SCE only),
   IA32_TSC_AUX (bits 63:32 reserved), the machine-check registers (MCG_CAP read-only,
   MCG_STATUS bits 2:0, MCi_CTL all 0s or all 1s, MCi_STATUS 0 only, ADDR and MISC any,
   nothing beyond the sixth bank). */
static void model_msrs(xbt_vcpu *cpu)
{
    static const struct { uint32_t index; uint64_t value; bool ok; } w[] = {
        { 0xC0000080u, 1, true }, { 0xC0000080u, 1u << 8, false },
        { 0xC0000080u, 1u << 10, false }, { 0xC0000080u, 1u << 11, false },
        { 0xC0000080u, 1ull << 63, false },
        { 0xC0000103u, 0xfedcba98u, true }, { 0xC0000103u, 1ull << 32, false },
        { 0x179, 6, false }, { 0x17A, 7, true }, { 0x17A, 8, false },
        { 0x400, ~0ull, true }, { 0x400, 0xaaaaaaaaaaaaaaaaull, false }, { 0x400, 0, true },
        { 0x401, 0, true }, { 0x401, 1, false }, { 0x416, 0x123456789abcull, true },
        { 0x417, ~0ull, true }, { 0x418, 0, false },
    };
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        uint64_t before = 0, after = 0;
        xbt_vcpu_get_msr(cpu, w[i].index, &before);
        ck_assert_msg((xbt_vcpu_set_msr(cpu, w[i].index, w[i].value) == XBT_OK) == w[i].ok,
                      "MSR %#x value %#llx: %s expected", w[i].index,
                      (unsigned long long)w[i].value, w[i].ok ? "accepted" : "refused");
        xbt_vcpu_get_msr(cpu, w[i].index, &after);
        ck_assert_uint_eq(after, w[i].ok && w[i].index != 0x401 ? w[i].value : before);
    }
    uint64_t v = 0;
    ck_assert_int_eq(xbt_vcpu_get_msr(cpu, 0x179, &v), XBT_OK);
    ck_assert_uint_eq(v, 6);
    ck_assert_int_eq(xbt_vcpu_get_msr(cpu, 0x418, &v), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_get_msr(cpu, 0x17B, &v), XBT_E_INVAL); /* no MCG_CTL */
}

#define PHASE_RDTSCP 0x100600 /* rdtscp; hlt */
#define PHASE_RDPID 0x100700  /* rdpid eax; hlt */
#define PHASE_UMIP 0x100800   /* mov eax, cr4; or eax, 0x800; mov cr4, eax (+8); hlt */

/* The model's MSRs; then RDTSCP, RDPID and CR4.UMIP with the model (they run) and with a
   policy that hides them (#UD, #UD, #GP, and IA32_TSC_AUX gone), and IA32_TSC_AUX kept
   while RDPID alone is listed; hidden MCA takes the machine-check MSRs with it. */
START_TEST(cpumodel_hidden)
{
    struct guest g;
    setup(&g, XBT_USER_STRICT, 0, false);
    put_cpuid_guest(&g);
    memcpy(g.ram + PHASE_RDTSCP, "\x0f\x01\xf9\xf4", 4);
    memcpy(g.ram + PHASE_RDPID, "\xf3\x0f\xc7\xf8\xf4", 5);
    memcpy(g.ram + PHASE_UMIP, "\x0f\x20\xe0\x0d\x00\x08\x00\x00\x0f\x22\xe0\xf4", 12);
    model_msrs(g.cpu);
    ck_assert_int_eq(xbt_vcpu_set_msr(g.cpu, 0xC0000103u, 0x1234), XBT_OK);
    xbt_regs r;
    go(&g, PHASE_RDTSCP);
    expect_reason(&g, XBT_EXIT_HLT);
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.ecx, 0x1234);
    go(&g, PHASE_RDPID);
    expect_reason(&g, XBT_EXIT_HLT);
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.eax, 0x1234);
    go(&g, PHASE_UMIP);
    expect_reason(&g, XBT_EXIT_HLT);
    ck_assert_uint_eq(eip_of(&g), PHASE_UMIP + 12);
    set_cr4(&g, 0);
    /* Hidden: leaf 0x80000001 EDX (RDTSCP), leaf 7.0 ECX (UMIP, RDPID), leaf 1 MCA. */
    xbt_cpuid_entry e[XBT_MAX_CPUID_ENTRIES];
    size_t n = 0;
    ck_assert_int_eq(xbt_vcpu_get_cpuid(g.cpu, e, XBT_MAX_CPUID_ENTRIES, &n), XBT_OK);
    for (size_t i = 0; i < n; i++) {
        if (e[i].function == 0x80000001u)
            e[i].edx = 0;
        if (e[i].function == 7)
            e[i].ecx = 0;
        if (e[i].function == 1)
            e[i].edx &= ~(1u << 14);
    }
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g.cpu, e, n), XBT_OK);
    go(&g, PHASE_RDTSCP);
    expect_event(&g, 6, -1, PHASE_RDTSCP, 0x08);
    expect_reason(&g, XBT_EXIT_HLT);
    go(&g, PHASE_RDPID);
    expect_event(&g, 6, -1, PHASE_RDPID, 0x08);
    expect_reason(&g, XBT_EXIT_HLT);
    go(&g, PHASE_UMIP);
    expect_event(&g, 13, 0, PHASE_UMIP + 8, 0x08); /* CR4.UMIP reserved now */
    expect_reason(&g, XBT_EXIT_HLT);
    uint64_t v;
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0xC0000103u, &v), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0x179, &v), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0x400, &v), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0xC0000080u, &v), XBT_OK); /* EFER stays */
    for (size_t i = 0; i < n; i++)
        if (e[i].function == 7)
            e[i].ecx = 1u << 22; /* RDPID alone: IA32_TSC_AUX is back */
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g.cpu, e, n), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0xC0000103u, &v), XBT_OK);
    ck_assert_uint_eq(v, 0x1234);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* Direct user mode with SSE2 hidden: user code runs translated (the host would run
   PADDQ), and PADDQ at CPL 3 raises #UD. */
START_TEST(hidden_sse2_direct_user)
{
    static const uint8_t kernel[] = {
        0x6a, 0x23, 0x68, 0xf0, 0xff, 0x47, 0x00,       /* push 0x23; push 0x47fff0 */
        0x68, 0x02, 0x02, 0x00, 0x00, 0x6a, 0x1b,       /* push 0x202; push 0x1b */
        0x68, 0x00, 0x00, 0x40, 0x00, 0xcf,             /* push 0x400000; iret */
    };
    struct guest g;
    setup(&g, XBT_USER_DIRECT, 0, true);
    memcpy(g.ram + 0x100000, kernel, sizeof kernel);
    memcpy(g.ram + 0x400000, "\x66\x0f\xd4\xc1\xeb\xfe", 6); /* paddq xmm0, xmm1; jmp $ */
    put_handler(&g, 6, false, false);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    s.cr4 |= 0x200; /* OSFXSR */
    ck_assert_int_eq(xbt_vcpu_set_sregs(g.cpu, &s), XBT_OK);
    xbt_cpuid_entry e[XBT_MAX_CPUID_ENTRIES];
    size_t n = 0;
    ck_assert_int_eq(xbt_vcpu_get_cpuid(g.cpu, e, XBT_MAX_CPUID_ENTRIES, &n), XBT_OK);
    e[1].edx &= ~(1u << 26);
    ck_assert_int_eq(xbt_vcpu_set_cpuid(g.cpu, e, n), XBT_OK);
    ck_assert_uint_eq(expect_event(&g, 6, -1, 0x400000, 0x1b), 0x47fff0);
    expect_reason(&g, XBT_EXIT_HLT);
    ck_assert_uint_eq(direct_entries(&g), 0);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* ---- MSR exits ------------------------------------------------------------------------ */

/* A read answered by the embedder, a write of an MSR xbt has (IA32_PAT) seen by the
   embedder instead, a read answered with #GP; without the list, the unknown MSR raises
   #GP with no exit. */
START_TEST(msr_exits)
{
    static const uint8_t code[] = {
        0xb9, 0x20, 0x00, 0x00, 0x40, 0x0f, 0x32,       /* mov ecx, 0x40000020; rdmsr */
        0xe7, 0xf1, 0x89, 0xd0, 0xe7, 0xf2,             /* out eax, edx to 0xf1, 0xf2 */
        0xb9, 0x77, 0x02, 0x00, 0x00,                   /* mov ecx, 0x277 (0x10000d) */
        0xb8, 0x44, 0x33, 0x22, 0x11,                   /* mov eax, 0x11223344 */
        0xba, 0x88, 0x77, 0x66, 0x55, 0x0f, 0x30,       /* mov edx, 0x55667788; wrmsr */
        0xb9, 0x20, 0x00, 0x00, 0x40, 0x0f, 0x32,       /* mov ecx, 0x40000020 (0x10001e);
                                                           rdmsr (0x100023) */
        0xf4,
    };
    struct guest g;
    setup(&g, XBT_USER_STRICT, 0, false);
    memcpy(g.ram + 0x100000, code, sizeof code);
    put_handler(&g, 13, true, false);
    const uint32_t list[3] = { 0x40000020, 0x277, 0x40000020 };
    ck_assert_int_eq(xbt_vm_set_msr_exits(g.vm, list, 3), XBT_OK);
    xbt_exit *ex = run(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MSR);
    ck_assert_uint_eq(ex->msr.index, 0x40000020);
    ck_assert_uint_eq(ex->msr.is_write, 0);
    ck_assert_uint_eq(eip_of(&g), 0x100005); /* at the RDMSR */
    ck_assert_int_eq(xbt_vcpu_inject_exception(g.cpu, 6, 0, 0), XBT_E_INVAL);
    ex->msr.data = 0x1122334455667788ull;
    ck_assert_uint_eq(expect_out(&g, 0xf1), 0x55667788);
    ck_assert_uint_eq(expect_out(&g, 0xf2), 0x11223344);
    ex = run(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MSR);
    ck_assert_uint_eq(ex->msr.index, 0x277);
    ck_assert_uint_eq(ex->msr.is_write, 1);
    ck_assert_uint_eq(ex->msr.data, 0x5566778811223344ull);
    ck_assert_uint_eq(eip_of(&g), 0x10001c);
    uint64_t pat;
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0x277, &pat), XBT_OK);
    ck_assert_uint_eq(pat, 0x0007040600070406ull); /* the embedder's, not written */
    ex = run(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MSR);
    ck_assert_uint_eq(ex->msr.index, 0x40000020);
    ex->msr.inject_gp = 1;
    expect_event(&g, 13, 0, 0x100023, 0x08);
    expect_reason(&g, XBT_EXIT_HLT);
    /* The misuse; then an empty list: #GP as for any MSR xbt does not have. */
    uint32_t many[XBT_MAX_MSR_EXITS + 1];
    for (uint32_t i = 0; i <= XBT_MAX_MSR_EXITS; i++)
        many[i] = 0x40000000 + i;
    ck_assert_int_eq(xbt_vm_set_msr_exits(g.vm, many, XBT_MAX_MSR_EXITS + 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_set_msr_exits(g.vm, many, XBT_MAX_MSR_EXITS), XBT_OK);
    ck_assert_int_eq(xbt_vm_set_msr_exits(g.vm, NULL, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_set_msr_exits(NULL, many, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_set_msr_exits(g.vm, NULL, 0), XBT_OK);
    go(&g, 0x10001e);
    expect_event(&g, 13, 0, 0x100023, 0x08);
    expect_reason(&g, XBT_EXIT_HLT);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* ---- watchpoints ---------------------------------------------------------------------- */

/* A stop after 5 s unless cancelled: a watchpoint that is never hit fails the test
   (the guest would loop on) instead of hanging it. */
struct guard {
    xbt_vcpu *cpu;
    atomic_bool cancel;
    pthread_t th;
};

static void *guard_thread(void *arg)
{
    struct guard *gd = arg;
    for (int i = 0; i < 500 && !atomic_load(&gd->cancel); i++)
        usleep(10000);
    if (!atomic_load(&gd->cancel))
        xbt_vcpu_stop(gd->cpu);
    return NULL;
}

static void expect_watch(struct guest *g, uint32_t eip, uint32_t watch, uint32_t access)
{
    struct guard gd = { .cpu = g->cpu };
    atomic_init(&gd.cancel, false);
    pthread_create(&gd.th, NULL, guard_thread, &gd);
    xbt_exit *ex = run(g);
    atomic_store(&gd.cancel, true);
    pthread_join(gd.th, NULL);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_DEBUG);
    ck_assert_uint_eq(ex->debug.why, XBT_DEBUG_WATCH);
    ck_assert_uint_eq(ex->debug.eip, eip);
    ck_assert_uint_eq(ex->debug.watch, watch);
    ck_assert_uint_eq(ex->debug.watch_access, access);
}

/* Paging off, CPL 0: a read hits a read watchpoint, a write a write watchpoint (and a
   read of it does not), a write beside one on its page does not, INT's frame push (the
   VMM's) hits one on the stack and stops at the handler, REP STOSD hits one in its
   buffer and stops after its last iteration; the limits. */
START_TEST(watch_kernel_unpaged)
{
    static const uint8_t code[] = {
        0xa1, 0x00, 0x00, 0x20, 0x00,                         /* mov eax, [0x200000] */
        0xc7, 0x05, 0x04, 0x00, 0x20, 0x00, 0x07, 0, 0, 0,    /* mov dword [0x200004], 7 */
        0x8b, 0x1d, 0x04, 0x00, 0x20, 0x00,                   /* mov ebx, [0x200004] */
        0xa3, 0x00, 0x01, 0x20, 0x00,                         /* mov [0x200100], eax */
        0xcd, 0x40,                                           /* int 0x40 (0x10001a) */
        0xbf, 0x00, 0x08, 0x20, 0x00,                         /* mov edi, 0x200800 */
        0xb9, 0x10, 0x00, 0x00, 0x00, 0x31, 0xc0,             /* mov ecx, 16; xor eax, eax */
        0xf3, 0xab,                                           /* rep stosd (0x100028) */
        0xe6, 0xf1, 0xf4,                                     /* out 0xf1, al; hlt */
    };
    ck_assert(xbt_has(XBT_CAP_WATCH, NULL));
    struct guest g;
    setup(&g, XBT_USER_STRICT, 0, false);
    memcpy(g.ram + 0x100000, code, sizeof code);
    g.ram[0x101000] = 0xcf; /* iret */
    set_gate(&g, 0x40, 0x101000, 0x8e);
    uint32_t var = 0x11223344;
    memcpy(g.ram + 0x200000, &var, 4);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x200000, 4, XBT_WATCH_READ, 1), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x200004, 4, XBT_WATCH_WRITE, 1), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x8fff8, 4, XBT_WATCH_WRITE, 1), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x200820, 4, XBT_WATCH_WRITE, 1), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x200820, 4, XBT_WATCH_WRITE, 1), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x300000, 4, XBT_WATCH_WRITE, 1),
                     XBT_E_INVAL); /* a fifth */
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x300001, 2, XBT_WATCH_WRITE, 0),
                     XBT_E_INVAL); /* misaligned */
    expect_watch(&g, 0x100005, 0x200000, XBT_WATCH_READ);
    expect_watch(&g, 0x10000f, 0x200004, XBT_WATCH_WRITE);
    expect_watch(&g, 0x101000, 0x8fff8, XBT_WATCH_WRITE); /* CS pushed */
    expect_watch(&g, 0x10002a, 0x200820, XBT_WATCH_WRITE);
    xbt_exit *ex = run(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IO);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.ebx, 7);
    ck_assert_uint_eq(r.ecx, 0);
    uint32_t w;
    memcpy(&w, g.ram + 0x200004, 4);
    ck_assert_uint_eq(w, 7);
    memcpy(&w, g.ram + 0x200100, 4);
    ck_assert_uint_eq(w, 0x11223344);
    /* Cleared, the same code runs through. */
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x200000, 4, XBT_WATCH_READ, 0), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x200000, 4, XBT_WATCH_READ, 0),
                     XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x200004, 4, XBT_WATCH_WRITE, 0), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x8fff8, 4, XBT_WATCH_WRITE, 0), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x200820, 4, XBT_WATCH_WRITE, 0), XBT_OK);
    go(&g, 0x100000);
    ck_assert_uint_eq(run(&g)->reason, XBT_EXIT_IO);
    expect_reason(&g, XBT_EXIT_HLT);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* Paging on: a kernel write and a user write (CPL 3) hit; user code runs translated
   while watching, in every user mode. */
static void watch_paged_case(uint32_t mode)
{
    static const uint8_t kernel[] = {
        0x66, 0xb8, 0x23, 0x00, 0x8e, 0xd8, 0x8e, 0xc0,       /* user data in DS, ES */
        0xc7, 0x05, 0x10, 0x00, 0x48, 0x00, 1, 0, 0, 0,       /* mov dword [0x480010], 1 */
        0x6a, 0x23, 0x68, 0xf0, 0xff, 0x47, 0x00,             /* (0x100012) to user code */
        0x68, 0x02, 0x02, 0x00, 0x00, 0x6a, 0x1b,
        0x68, 0x00, 0x00, 0x40, 0x00, 0xcf,
    };
    static const uint8_t user[] = {
        0xc7, 0x05, 0x20, 0x00, 0x48, 0x00, 2, 0, 0, 0,       /* mov dword [0x480020], 2 */
        0x46, 0xeb, 0xfd,                                     /* inc esi; jmp $-1 */
    };
    struct guest g;
    setup(&g, mode, 0, true);
    memcpy(g.ram + 0x100000, kernel, sizeof kernel);
    memcpy(g.ram + 0x400000, user, sizeof user);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x480010, 4, XBT_WATCH_WRITE, 1), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(g.cpu, 0x480020, 2, XBT_WATCH_ACCESS, 1), XBT_OK);
    expect_watch(&g, 0x100012, 0x480010, XBT_WATCH_WRITE);
    expect_watch(&g, 0x40000a, 0x480020, XBT_WATCH_WRITE);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    ck_assert_uint_eq(s.cs.selector, 0x1b);
    run_until_stopped(&g);
    ck_assert_uint_eq(direct_entries(&g), 0); /* translated while watching */
    uint32_t w;
    memcpy(&w, g.ram + 0x480020, 4);
    ck_assert_uint_eq(w, 2);
    xbt_vm_destroy(g.vm);
}

START_TEST(watch_paged)
{
    watch_paged_case(XBT_USER_STRICT);
    watch_paged_case(XBT_USER_DIRECT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("policy");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, inject_kernel);
    tcase_add_test(tc, inject_user_strict);
    tcase_add_test(tc, inject_user_direct);
    tcase_add_test(tc, inject_user_adaptive_now);
    tcase_add_test(tc, cpuid_policy);
    tcase_add_test(tc, cpumodel_hidden);
    tcase_add_test(tc, hidden_sse2_direct_user);
    tcase_add_test(tc, msr_exits);
    tcase_add_test(tc, watch_kernel_unpaged);
    tcase_add_test(tc, watch_paged);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
