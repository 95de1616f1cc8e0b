/*
 * test_runtime.c - the run loop end to end through the public API: a flat ring-0 guest
 * with port I/O, a translated loop, CPUID, a #DE delivered through the IDT, INT n and
 * IRET, self-modifying code, and a triple fault.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "xbt/xbt.h"

struct guest {
    xbt_vm *vm;
    xbt_vcpu *cpu;
    uint8_t *ram;
};

static void setup_guest_flags(struct guest *g, const uint8_t *code, size_t n, uint32_t flags)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 16u << 20;
    c.flags = flags;
    c.trace_threshold = 10;
    ck_assert_int_eq(xbt_vm_create(&c, &g->vm), XBT_OK);
    g->ram = xbt_vm_ram(g->vm);
    memcpy(g->ram + 0x100000, code, n);
    uint64_t gdt[3] = { 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull };
    memcpy(g->ram + 0x1000, gdt, sizeof gdt);
    ck_assert_int_eq(xbt_vcpu_create(g->vm, &g->cpu), XBT_OK);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g->cpu, &s);
    s.gdt.base = 0x1000;
    s.gdt.limit = 23;
    s.idt.base = 0x2000;
    s.idt.limit = 0x7ff;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g->cpu, &s), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(g->cpu, &r);
    r.eip = 0x100000;
    r.esp = 0x90000;
    ck_assert_int_eq(xbt_vcpu_set_regs(g->cpu, &r), XBT_OK);
}

static void setup_guest(struct guest *g, const uint8_t *code, size_t n)
{
    setup_guest_flags(g, code, n, 0);
}

static void set_gate(struct guest *g, int vec, uint32_t handler, uint8_t type)
{
    uint64_t gate = (handler & 0xffff) | (0x08ull << 16) | ((uint64_t)type << 40) |
                    ((uint64_t)(handler >> 16) << 48);
    memcpy(g->ram + 0x2000 + 8 * vec, &gate, 8);
}

/* Runs until an OUT; returns the exit. */
static xbt_exit *run_to_exit(struct guest *g)
{
    xbt_exit *ex;
    ck_assert_int_eq(xbt_vcpu_run(g->cpu, &ex), XBT_OK);
    return ex;
}

static void expect_out(struct guest *g, uint16_t port, uint32_t data)
{
    xbt_exit *ex = run_to_exit(g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IO);
    ck_assert_uint_eq(ex->io.port, port);
    ck_assert_uint_eq(ex->io.is_in, 0);
    ck_assert_uint_eq(ex->io.data, data);
}

/* The CPU model (cpumodel.c): what CPUID leaf 1 and the hypervisor leaf say, with and
   without a local APIC, and its MSRs' rules. */
static void cpu_model_case(uint32_t flags)
{
    const uint8_t code[] = {
        0xb8, 0x01, 0x00, 0x00, 0x00, /* mov eax, 1 */
        0x0f, 0xa2,                   /* cpuid */
        0x89, 0xd0, 0xe7, 0xf1,       /* mov eax, edx; out 0xf1, eax */
        0xb8, 0x00, 0x00, 0x00, 0x40, /* mov eax, 0x40000000 */
        0x0f, 0xa2,                   /* cpuid */
        0x89, 0xd8, 0xe7, 0xf2,       /* mov eax, ebx; out 0xf2, eax */
        0x89, 0xd0, 0xe7, 0xf3,       /* mov eax, edx; out 0xf3, eax */
        0xf4,
    };
    struct guest g;
    setup_guest_flags(&g, code, sizeof code, flags);
    int apic = (flags & XBT_VM_LOCAL_APIC) != 0;
    /* FPU PSE TSC MSR PAE MCE CX8 SEP MCA PGE CMOV PAT MMX FXSR SSE SSE2 (+ APIC) */
    expect_out(&g, 0xf1, 0x0781e9f9u | (apic ? 1u << 9 : 0));
    uint32_t sig[2];
    memcpy(&sig[0], "xbtV", 4);
    memcpy(&sig[1], "alCP", 4);
    expect_out(&g, 0xf2, sig[0]);
    expect_out(&g, 0xf3, sig[1]);
    uint64_t v;
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0x1b, &v), apic ? XBT_OK : XBT_E_INVAL);
    if (apic) {
        ck_assert_uint_eq(v, 0xfee00900u);
        ck_assert_int_eq(xbt_vcpu_set_msr(g.cpu, 0x1b, 0xfee00001u), XBT_E_INVAL); /* rsvd */
    }
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0x277, &v), XBT_OK);
    ck_assert_uint_eq(v, 0x0007040600070406ull);
    ck_assert_int_eq(xbt_vcpu_set_msr(g.cpu, 0x277, 0x0007040600070402ull), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_msr(g.cpu, 0x277, 0x0000000000000007ull), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0xc0000080u, &v), XBT_OK); /* EFER, 0 at reset */
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(xbt_vcpu_get_msr(g.cpu, 0xc0000081u, &v), XBT_E_INVAL); /* no STAR */
    ck_assert_int_eq(xbt_vcpu_set_msr(g.cpu, 0x10a, 0), XBT_E_INVAL);        /* read-only */
    xbt_vm_destroy(g.vm);
}

START_TEST(cpu_model)
{
    cpu_model_case(0);
    cpu_model_case(XBT_VM_LOCAL_APIC);
}
END_TEST

/* An interrupt window asked for while IF=0: the exit comes once STI's shadow is over
   (the instruction after the shadowed one), not before; then the run goes on to HLT. */
START_TEST(irq_window_exit)
{
    const uint8_t code[] = {
        0xfa,                         /* cli */
        0xb9, 0x10, 0x27, 0x00, 0x00, /* mov ecx, 10000 */
        0x49, 0x75, 0xfd,             /* 1: dec ecx; jnz 1b */
        0xfb,                         /* sti (0x100009) */
        0x90,                         /* nop: in STI's shadow (STI inline, a gate after) */
        0xfa,                         /* cli (0x10000b) */
        0xe6, 0xf1,                   /* out 0xf1, al: an exit with IF=0 */
        0xfb,                         /* sti (0x10000e) */
        0xeb, 0x00,                   /* jmp $+2: in the shadow, ends the block (STI a
                                         callout, the shadow kept by the dispatcher) */
        0x40,                         /* inc eax (0x100011): the window is open here */
        0xf4,                         /* hlt */
    };
    struct guest g;
    setup_guest(&g, code, sizeof code);
    ck_assert_int_eq(xbt_vcpu_request_irq_window(g.cpu, 1), XBT_OK);
    xbt_exit *ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IRQ_WINDOW);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.eip, 0x10000b); /* after the nop, not at it */
    ck_assert_uint_eq(r.ecx, 0);
    ck_assert(r.eflags & 0x200);
    ex = run_to_exit(&g); /* on, unasked, to the OUT */
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IO);
    ck_assert_uint_eq(ex->io.port, 0xf1);
    ck_assert_int_eq(xbt_vcpu_request_irq_window(g.cpu, 1), XBT_OK);
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IRQ_WINDOW);
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.eip, 0x100011); /* after the jmp, not at it */
    ex = run_to_exit(&g); /* the request is used up */
    ck_assert_uint_eq(ex->reason, XBT_EXIT_HLT);
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.eax, 1);
    xbt_vm_destroy(g.vm);
}
END_TEST

START_TEST(loop_cpuid_divide_fault)
{
    const uint8_t code[] = {
        0xb9, 0x10, 0x00, 0x00, 0x00, /* mov ecx, 16 */
        0x31, 0xc0,                   /* xor eax, eax */
        0x01, 0xc8, 0xe2, 0xfc,       /* l: add eax, ecx; loop l */
        0xe6, 0xf1,                   /* out 0xf1, al: 136 */
        0x31, 0xc0, 0x0f, 0xa2,       /* xor eax, eax; cpuid */
        0x89, 0xd8, 0xe7, 0xf2,       /* mov eax, ebx; out 0xf2, eax */
        0x31, 0xd2, 0xf7, 0xf2,       /* xor edx, edx; div edx: #DE */
        0xf4,
    };
    const uint8_t handler[] = { 0x8b, 0x04, 0x24, 0xe7, 0xf3, 0xf4 }; /* mov eax,[esp]; out */
    struct guest g;
    setup_guest(&g, code, sizeof code);
    memcpy(g.ram + 0x101000, handler, sizeof handler);
    set_gate(&g, 0, 0x101000, 0x8e);
    expect_out(&g, 0xf1, 136);
    uint32_t vendor;
    memcpy(&vendor, "Genu", 4); /* GenuineIntel (cpumodel.c) */
    expect_out(&g, 0xf2, vendor);
    expect_out(&g, 0xf3, 0x100017); /* #DE pushes the EIP of the div */
    xbt_exit *ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_HLT);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    ck_assert_uint_eq(r.esp, 0x90000 - 12);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* PAUSE in translated code is a callout that makes the hint and, after a run of close
   PAUSEs (a spin loop), yields the host CPU (runtime/smp.c): the guest sees a PAUSE,
   flags and registers untouched, and the statistics count the yields. */
START_TEST(pause_loop_yields)
{
    const uint8_t code[] = {
        0xb9, 0x20, 0x4e, 0x00, 0x00, /* mov ecx, 20000 */
        0xf9,                         /* stc */
        0xf3, 0x90, 0xe2, 0xfc,       /* l: pause; loop l */
        0x19, 0xc0, 0xe7, 0xf1,       /* sbb eax, eax; out 0xf1, eax: CF kept */
        0x89, 0xc8, 0xe7, 0xf2, 0xf4, /* mov eax, ecx; out 0xf2, eax; hlt */
    };
    struct guest g;
    setup_guest(&g, code, sizeof code);
    expect_out(&g, 0xf1, 0xffffffffu);
    expect_out(&g, 0xf2, 0);
    ck_assert_uint_eq(run_to_exit(&g)->reason, XBT_EXIT_HLT);
    xbt_stats st = XBT_STATS_INIT;
    ck_assert_int_eq(xbt_vcpu_get_stats(g.cpu, &st), XBT_OK);
    ck_assert_uint_ge(st.fast_callouts, 20000);
    /* 20,000 PAUSEs a few hundred cycles apart: 312 runs of 64; a preemption of the
       thread breaks a run, but not all of them. */
    ck_assert_uint_ge(st.pause_yields, 1);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* A loop whose conditional branch goes one way every fourth iteration: with traces and
   profiling, the trace counts its entries and side exits, and the side-exit rate is the
   branch's (1/4 or 3/4, by the direction seen while recording). */
static const uint8_t quarter_loop[] = {
    0xb9, 0xe8, 0x03, 0x00, 0x00, /* mov ecx, 1000 */
    0x31, 0xc0, 0x31, 0xdb,       /* xor eax, eax; xor ebx, ebx */
    0xf6, 0xc1, 0x03,             /* l: test cl, 3 */
    0x75, 0x01,                   /* jnz s */
    0x43,                         /* inc ebx */
    0x01, 0xc8,                   /* s: add eax, ecx */
    0x49, 0x75, 0xf5,             /* dec ecx; jnz l */
    0xe7, 0xf1, 0x89, 0xd8, 0xe7, 0xf2, 0xf4, /* out 0xf1, eax; mov eax, ebx; out; hlt */
};

START_TEST(trace_profile_counts)
{
    struct guest g;
    setup_guest_flags(&g, quarter_loop, sizeof quarter_loop,
                      XBT_VM_TRACES | XBT_VM_TRACE_PROFILE);
    expect_out(&g, 0xf1, 500500);
    expect_out(&g, 0xf2, 250);
    xbt_stats st = XBT_STATS_INIT;
    ck_assert_int_eq(xbt_vcpu_get_stats(g.cpu, &st), XBT_OK);
    ck_assert_uint_ge(st.traces, 1);
    xbt_trace_profile p[4];
    size_t n = xbt_vcpu_trace_profile(g.cpu, p, 4);
    ck_assert_uint_ge(n, 1);
    ck_assert_uint_eq(xbt_vcpu_trace_profile(g.cpu, NULL, 0), n);
    /* The loop's trace: hot after 10 entries, recorded once, then every iteration. */
    ck_assert_uint_eq(p[0].eip, 0x100009);
    ck_assert_uint_ge(p[0].blocks, 2);
    ck_assert_uint_gt(p[0].entries, 900);
    ck_assert_uint_le(p[0].entries, 1000);
    double rate = (double)p[0].side_exits / (double)p[0].entries;
    ck_assert_msg((rate > 0.22 && rate < 0.28) || (rate > 0.72 && rate < 0.78),
                  "side-exit rate %.3f", rate);
    uint64_t sum = 0, side = 0;
    for (size_t i = 0; i < n && i < 4; i++) {
        if (i)
            ck_assert_uint_ge(p[i - 1].entries, p[i].entries);
        ck_assert_uint_le(p[i].side_exits, p[i].entries);
        sum += p[i].entries;
        side += p[i].side_exits;
    }
    ck_assert_uint_gt(st.block_execs, 0); /* the code before and after the loop */
    ck_assert_uint_lt(st.block_execs, 200);
    if (n <= 4) { /* the totals are the sums */
        ck_assert_uint_eq(st.trace_execs, sum);
        ck_assert_uint_eq(st.trace_side_exits, side);
    }
    xbt_vm_destroy(g.vm);

    /* Without profiling: the same results, no counts. */
    setup_guest_flags(&g, quarter_loop, sizeof quarter_loop, XBT_VM_TRACES);
    expect_out(&g, 0xf1, 500500);
    expect_out(&g, 0xf2, 250);
    ck_assert_int_eq(xbt_vcpu_get_stats(g.cpu, &st), XBT_OK);
    ck_assert_uint_ge(st.traces, 1);
    ck_assert_uint_eq(st.trace_execs, 0);
    ck_assert_uint_eq(st.block_execs, 0);
    ck_assert_uint_eq(xbt_vcpu_trace_profile(g.cpu, p, 4), 0);
    xbt_vm_destroy(g.vm);
}
END_TEST

START_TEST(int_and_iret)
{
    const uint8_t code[] = {
        0xb8, 0x05, 0x00, 0x00, 0x00, /* mov eax, 5 */
        0xcd, 0x40,                   /* int 0x40 */
        0xe7, 0xf1,                   /* out 0xf1, eax: 10 */
        0x9c, 0x58, 0xe7, 0xf2,       /* pushf; pop eax; out 0xf2, eax */
        0xf4,
    };
    const uint8_t handler[] = { 0x01, 0xc0, 0xcf }; /* add eax, eax; iret */
    struct guest g;
    setup_guest(&g, code, sizeof code);
    memcpy(g.ram + 0x101000, handler, sizeof handler);
    set_gate(&g, 0x40, 0x101000, 0x8f); /* trap gate */
    expect_out(&g, 0xf1, 10);
    xbt_exit *ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IO);
    ck_assert_uint_eq(ex->io.data & 0x200, 0);    /* IF stayed clear */
    ck_assert_uint_eq(ex->io.data & 0x2, 0x2);    /* reserved bit 1 */
    xbt_vm_destroy(g.vm);
}
END_TEST

/* After a run that translated, self-modified and single-stepped code: no mapping of
   the process is writable and executable at once, and nothing is mapped below 4 GiB
   (direct execution has its own process; nothing of the VMM is 32-bit addressable). */
static void check_process_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    int wx = 0, low = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perm[8] = "";
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3)
            continue;
        if (perm[1] == 'w' && perm[2] == 'x') {
            fprintf(stderr, "writable and executable: %s", line);
            wx++;
        }
        if (lo < (1ul << 32)) {
            fprintf(stderr, "below 4 GiB: %s", line);
            low++;
        }
    }
    fclose(f);
    ck_assert_int_eq(wx, 0);
    ck_assert_int_eq(low, 0);
}

START_TEST(self_modifying_code)
{
    /* Calls f (mov eax, 1; ret), patches its immediate to 2, calls it again. */
    const uint8_t code[] = {
        0xe8, 0x13, 0x00, 0x00, 0x00,             /* call f */
        0xe7, 0xf1,                               /* out 0xf1, eax */
        0xc6, 0x05, 0x19, 0x00, 0x10, 0x00, 0x02, /* mov byte [f+1], 2 */
        0xe8, 0x04, 0x00, 0x00, 0x00,             /* call f */
        0xe7, 0xf2,                               /* out 0xf2, eax */
        0xf4,                                     /* hlt */
        0x90, 0x90,                               /* pad */
        0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3,       /* f: mov eax, 1; ret */
    };
    struct guest g;
    setup_guest(&g, code, sizeof code);
    expect_out(&g, 0xf1, 1);
    expect_out(&g, 0xf2, 2);
    check_process_maps();
    xbt_vm_destroy(g.vm);
}
END_TEST

START_TEST(triple_fault_is_shutdown)
{
    const uint8_t code[] = { 0x0f, 0x0b }; /* ud2 with an empty IDT */
    struct guest g;
    setup_guest(&g, code, sizeof code);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    s.idt.limit = 0;
    xbt_vcpu_set_sregs(g.cpu, &s);
    xbt_exit *ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_SHUTDOWN);
    xbt_vm_destroy(g.vm);
}
END_TEST

START_TEST(in_completes_on_next_run)
{
    const uint8_t code[] = { 0xe4, 0x60, 0x04, 0x01, 0xe6, 0xf1, 0xf4 }; /* in al,0x60; inc; out */
    struct guest g;
    setup_guest(&g, code, sizeof code);
    xbt_exit *ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IO);
    ck_assert_uint_eq(ex->io.is_in, 1);
    ck_assert_uint_eq(ex->io.port, 0x60);
    ex->io.data = 0x41;
    expect_out(&g, 0xf1, 0x42);
    xbt_vm_destroy(g.vm);
}
END_TEST


/* ---- asynchronous requests ------------------------------------------------------------ */

static atomic_int irq_line;

static int irq_source(void *opaque)
{
    (void)opaque;
    return atomic_exchange(&irq_line, 0) ? 0x20 : -1;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct kicker {
    xbt_vcpu *cpu;
    int stop; /* 0: raise an interrupt, 1: stop the vCPU */
    double t;
};

static void *kick_later(void *arg)
{
    struct kicker *k = arg;
    usleep(50000); /* the guest is deep in its loop by now */
    k->t = now_s();
    if (k->stop) {
        xbt_vcpu_stop(k->cpu);
    } else {
        atomic_store(&irq_line, 1);
        xbt_vcpu_kick(k->cpu);
    }
    return NULL;
}

/* A one-instruction loop (jmp $) chained to itself: only a kick gets the vCPU out. */
START_TEST(interrupt_reaches_a_tight_loop)
{
    const uint8_t code[] = { 0xfb, 0x90, 0xeb, 0xfe };         /* sti; nop; jmp $ */
    const uint8_t handler[] = { 0xb8, 0x77, 0x00, 0x00, 0x00, 0xe7, 0xf1, 0xf4 };
    struct guest g;
    setup_guest(&g, code, sizeof code);
    memcpy(g.ram + 0x101000, handler, sizeof handler);
    set_gate(&g, 0x20, 0x101000, 0x8e);
    atomic_store(&irq_line, 0);
    xbt_vcpu_set_irq_source(g.cpu, irq_source, NULL);
    struct kicker k = { g.cpu, 0, 0 };
    pthread_t th;
    pthread_create(&th, NULL, kick_later, &k);
    expect_out(&g, 0xf1, 0x77);
    double lat = now_s() - k.t;
    pthread_join(th, NULL);
    printf("interrupt latency from a tight translated loop: %.1f us\n", lat * 1e6);
    xbt_regs r;
    xbt_vcpu_get_regs(g.cpu, &r);
    uint32_t ret;
    memcpy(&ret, g.ram + r.esp, 4);
    ck_assert_uint_eq(ret, 0x100002); /* the interrupted jmp $ */
    xbt_vm_destroy(g.vm);
}
END_TEST

START_TEST(stop_from_another_thread)
{
    const uint8_t code[] = { 0xeb, 0xfe }; /* jmp $, interrupts off */
    struct guest g;
    setup_guest(&g, code, sizeof code);
    struct kicker k = { g.cpu, 1, 0 };
    pthread_t th;
    pthread_create(&th, NULL, kick_later, &k);
    xbt_exit *ex = run_to_exit(&g);
    pthread_join(th, NULL);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_STOPPED);
    /* It runs on after a stop. */
    k.t = 0;
    pthread_create(&th, NULL, kick_later, &k);
    ex = run_to_exit(&g);
    pthread_join(th, NULL);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_STOPPED);
    xbt_vm_destroy(g.vm);
}
END_TEST

START_TEST(unknown_msr_is_gp)
{
    const uint8_t code[] = { 0xb9, 0xef, 0xbe, 0xad, 0xde, 0x0f, 0x32, 0xf4 }; /* rdmsr */
    const uint8_t handler[] = { 0x8b, 0x04, 0x24, 0xe7, 0xf1, 0x8b, 0x44, 0x24, 0x04,
                                0xe7, 0xf2, 0xf4 }; /* out error code, then eip */
    struct guest g;
    setup_guest(&g, code, sizeof code);
    memcpy(g.ram + 0x101000, handler, sizeof handler);
    set_gate(&g, 13, 0x101000, 0x8e);
    expect_out(&g, 0xf1, 0);        /* #GP(0) */
    expect_out(&g, 0xf2, 0x100005); /* at the rdmsr */
    xbt_vm_destroy(g.vm);
}
END_TEST


/* Accesses to guest physical memory without RAM become MMIO exits (16 MiB of RAM). */
START_TEST(mmio_exits)
{
    const uint8_t code[] = {
        0xa1, 0x00, 0x00, 0x00, 0x10,             /* mov eax, [0x10000000] */
        0xe7, 0xf1,                               /* out 0xf1, eax */
        0xbb, 0x00, 0x00, 0x00, 0x10,             /* mov ebx, 0x10000000 */
        0x89, 0x43, 0x04,                         /* mov [ebx+4], eax */
        0x0f, 0xbe, 0x4b, 0x08,                   /* movsx ecx, byte [ebx+8] */
        0x89, 0xc8, 0xe7, 0xf2,                   /* mov eax, ecx; out 0xf2, eax */
        0xc6, 0x43, 0x0c, 0x5a,                   /* mov byte [ebx+12], 0x5a */
        0x8a, 0x63, 0x10,                         /* mov ah, [ebx+16] */
        0xe7, 0xf3,                               /* out 0xf3, eax */
        0x01, 0x03,                               /* add [ebx], eax: generic path */
        0xf4,
    };
    struct guest g;
    setup_guest(&g, code, sizeof code);
    xbt_exit *ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, 0x10000000);
    ck_assert_uint_eq(ex->mmio.size, 4);
    ck_assert_uint_eq(ex->mmio.is_write, 0);
    ex->mmio.data = 0x12345678;
    expect_out(&g, 0xf1, 0x12345678);
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, 0x10000004);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ck_assert_uint_eq(ex->mmio.data, 0x12345678);
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, 0x10000008);
    ck_assert_uint_eq(ex->mmio.size, 1);
    ex->mmio.data = 0x80; /* sign-extended by MOVSX */
    expect_out(&g, 0xf2, 0xffffff80);
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, 0x1000000c);
    ck_assert_uint_eq(ex->mmio.size, 1);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ck_assert_uint_eq(ex->mmio.data, 0x5a);
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ex->mmio.data = 0xab; /* into AH */
    expect_out(&g, 0xf3, 0xffffab80);
    /* add [ebx], eax: a read exit, the addition by the CPU, then a write exit. */
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.is_write, 0);
    ck_assert_uint_eq(ex->mmio.size, 4);
    uint64_t at = ex->mmio.gpa;
    ex->mmio.data = 5;
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ck_assert_uint_eq(ex->mmio.gpa, at);
    ck_assert_uint_eq(ex->mmio.data, 5u + 0xffffab80u);
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_HLT);
    xbt_vm_destroy(g.vm);
}
END_TEST


/* The embedder's synchronous MMIO handler (API 1.5): plain loads and stores it answers
   make no exit, from the fault path and from an MMIO site's callout alike (a loop of 20
   loads: a site after 4); an address it refuses, and a read-modify-write, still exit. */
/* 20 loads of the dword at 0x10000000 summed into ESI, the sum sent to port 0xf1 (the
   fifth load on is an MMIO site's). */
#define MMIO_LOOP20                                                                     \
    0xbb, 0x00, 0x00, 0x00, 0x10,             /* mov ebx, 0x10000000 */                 \
    0x31, 0xf6,                               /* xor esi, esi */                        \
    0xb9, 0x14, 0x00, 0x00, 0x00,             /* mov ecx, 20 */                         \
    0x8b, 0x03,                               /* 1: mov eax, [ebx] */                   \
    0x01, 0xc6,                               /* add esi, eax */                        \
    0xe2, 0xfa,                               /* loop 1b */                             \
    0x89, 0xf0, 0xe7, 0xf1                    /* mov eax, esi; out 0xf1, eax */

struct mmio_log {
    unsigned reads, writes;
    uint64_t last_write_gpa, last_write;
};

static int answer_mmio(void *opaque, uint64_t gpa, uint32_t size, int is_write, uint64_t *data)
{
    struct mmio_log *l = opaque;
    if (gpa >= 0x10000010)
        return 0; /* not this device's */
    if (is_write) {
        l->writes++;
        l->last_write_gpa = gpa;
        l->last_write = *data;
    } else {
        l->reads++;
        *data = size == 1 ? 0x80 : 0x1000 + l->reads; /* MOVSX sees 0x80 */
    }
    return 1;
}

START_TEST(mmio_handler)
{
    const uint8_t code[] = {
        MMIO_LOOP20,
        0x89, 0x43, 0x04,                         /* mov [ebx+4], eax */
        0x0f, 0xbe, 0x4b, 0x08,                   /* movsx ecx, byte [ebx+8] */
        0x89, 0xc8, 0xe7, 0xf2,                   /* mov eax, ecx; out 0xf2, eax */
        0x8b, 0x43, 0x10,                         /* mov eax, [ebx+16]: refused */
        0xe7, 0xf3,                               /* out 0xf3, eax */
        0x01, 0x03,                               /* add [ebx], eax: an exit each way */
        0xf4,
    };
    struct guest g;
    struct mmio_log l = { 0 };
    setup_guest(&g, code, sizeof code);
    ck_assert_int_eq(xbt_vm_set_mmio_handler(g.vm, answer_mmio, &l), XBT_OK);
    expect_out(&g, 0xf1, 20 * 0x1000 + 210); /* 0x1001 + ... + 0x1014 */
    ck_assert_uint_eq(l.reads, 20);
    expect_out(&g, 0xf2, 0xffffff80);
    ck_assert_uint_eq(l.writes, 1);
    ck_assert_uint_eq(l.last_write_gpa, 0x10000004);
    ck_assert_uint_eq(l.last_write, 20 * 0x1000 + 210);
    xbt_exit *ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.gpa, 0x10000010);
    ex->mmio.data = 7;
    expect_out(&g, 0xf3, 7);
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.is_write, 0);
    ex->mmio.data = 5;
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_uint_eq(ex->mmio.is_write, 1);
    ck_assert_uint_eq(ex->mmio.data, 12);
    ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_HLT);
    xbt_stats st = XBT_STATS_INIT;
    ck_assert_int_eq(xbt_vcpu_get_stats(g.cpu, &st), XBT_OK);
    ck_assert_uint_eq(st.mmio_handled, 22);
    ck_assert_uint_eq(st.exits[XBT_EXIT_MMIO], 3);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* The read shadow (API 1.8): an MMIO site's plain load of a readable dword reads the
   embedder's page inline (the handler sees only the faults that made the site and the
   callout that found the page); after a run entry the page's new value; after the
   guest moved IA32_APIC_BASE (XBT_MMIO_SHADOW_APIC_BASE) the handler again. */
static int count_mmio(void *opaque, uint64_t gpa, uint32_t size, int is_write, uint64_t *data)
{
    struct mmio_log *l = opaque;
    (void)gpa, (void)size;
    if (is_write)
        return 0;
    l->reads++;
    *data = 0x1000 + l->reads;
    return 1;
}

START_TEST(mmio_shadow)
{
    const uint8_t code[] = {
        0xbb, 0x00, 0x00, 0xe0, 0xfe,       /* mov ebx, 0xfee00000 */
        0xbf, 0x03, 0x00, 0x00, 0x00,       /* mov edi, 3 */
        0x31, 0xf6,                         /* 2: xor esi, esi */
        0xb9, 0x14, 0x00, 0x00, 0x00,       /* mov ecx, 20 */
        0x8b, 0x43, 0x20,                   /* 1: mov eax, [ebx+0x20] */
        0x01, 0xc6,                         /* add esi, eax */
        0xe2, 0xf9,                         /* loop 1b */
        0x89, 0xf0, 0xe7, 0xf1,             /* mov eax, esi; out 0xf1, eax */
        0x4f,                               /* dec edi */
        0x74, 0x15,                         /* jz 3f */
        0x83, 0xff, 0x01,                   /* cmp edi, 1 */
        0x75, 0xe6,                         /* jne 2b */
        0xb9, 0x1b, 0x00, 0x00, 0x00,       /* mov ecx, 0x1b */
        0xb8, 0x00, 0x09, 0xc0, 0xfe,       /* mov eax, 0xfec00900 */
        0x31, 0xd2, 0x0f, 0x30,             /* xor edx, edx; wrmsr: the APIC moves */
        0xeb, 0xd6,                         /* jmp 2b */
        0xf4,                               /* 3: hlt */
    };
    struct guest g;
    struct mmio_log l = { 0 };
    static uint32_t page[1024];
    setup_guest_flags(&g, code, sizeof code, XBT_VM_LOCAL_APIC);
    ck_assert_int_eq(xbt_vm_set_mmio_handler(g.vm, count_mmio, &l), XBT_OK);
    xbt_mmio_shadow sh = { .gpa = 0xfee00000, .page = page,
                           .flags = XBT_MMIO_SHADOW_APIC_BASE };
    sh.readable[0] = 1u << 8; /* offset 0x20 */
    xbt_mmio_shadow bad = sh;
    bad.gpa = 0x100000; /* RAM */
    ck_assert_int_eq(xbt_vcpu_set_mmio_shadow(g.cpu, &bad), XBT_E_INVAL);
    bad.gpa = 0xfee00020;
    ck_assert_int_eq(xbt_vcpu_set_mmio_shadow(g.cpu, &bad), XBT_E_INVAL);
    bad = sh;
    bad.flags = 2;
    ck_assert_int_eq(xbt_vcpu_set_mmio_shadow(g.cpu, &bad), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_mmio_shadow(g.cpu, &sh), XBT_OK);
    page[8] = 0x500;
    int inline_ok = __builtin_cpu_supports("bmi2") && !getenv("XBT_NO_MMIO_SHADOW") &&
                     !getenv("XBT_NO_MMIO_SITES");
    if (!inline_ok) { /* every read is the handler's */
        expect_out(&g, 0xf1, 20 * 0x1000 + 210);
        xbt_vm_destroy(g.vm);
        return;
    }
    /* Four faults make the site; its callout fills the TLB entry and asks the handler
       (0x1001..0x1005); fifteen reads from the page. */
    expect_out(&g, 0xf1, 5 * 0x1000 + 15 + 15 * 0x500);
    ck_assert_uint_eq(l.reads, 5);
    page[8] = 0x600; /* the embedder's update between runs */
    expect_out(&g, 0xf1, 0x1006 + 19 * 0x600); /* the entry made again by one callout */
    ck_assert_uint_eq(l.reads, 6);
    /* The APIC base moved: 0xfee00000 is no longer the shadow's page. */
    expect_out(&g, 0xf1, 20 * 0x1000 + (7 + 26) * 10);
    ck_assert_uint_eq(l.reads, 26);
    ck_assert_uint_eq(run_to_exit(&g)->reason, XBT_EXIT_HLT);
    ck_assert_int_eq(xbt_vcpu_set_mmio_shadow(g.cpu, NULL), XBT_OK);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* MMIO sites form through a segment with a limit below 4 GiB too (real mode's 64 KiB
   segments, here a 2 GiB DS): the site's own address computation checks the limit, so
   a loop of 20 loads makes a few host faults, not 20. */
START_TEST(mmio_site_limited_segment)
{
    const uint8_t code[] = {
        MMIO_LOOP20,
        0xf4,
    };
    struct guest g;
    struct mmio_log l = { 0 };
    setup_guest(&g, code, sizeof code);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    s.ds.limit = 0x7fffffff;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g.cpu, &s), XBT_OK);
    ck_assert_int_eq(xbt_vm_set_mmio_handler(g.vm, answer_mmio, &l), XBT_OK);
    expect_out(&g, 0xf1, 20 * 0x1000 + 210);
    xbt_stats st = XBT_STATS_INIT;
    ck_assert_int_eq(xbt_vcpu_get_stats(g.cpu, &st), XBT_OK);
    ck_assert_uint_eq(st.mmio_handled, 20);
    ck_assert_uint_le(st.host_faults, 6); /* the faults that make the site */
    xbt_vm_destroy(g.vm);
}
END_TEST

/* The embedder's port I/O handler (API 1.5): IN and OUT it answers make no exit; a
   port it refuses exits; the statistics count both. */
static int answer_pio(void *opaque, uint16_t port, uint32_t size, int is_in, uint32_t *data)
{
    uint32_t *last = opaque;
    if (port == 0xf1)
        return 0; /* the test's own port: exits */
    if (is_in)
        *data = size == 1 ? 0x5a : 0x12345678;
    else
        *last = *data | (uint32_t)port << 24;
    return 1;
}

START_TEST(pio_handler)
{
    const uint8_t code[] = {
        0xd9, 0xe8, 0xd9, 0xe8, 0xde, 0xc1,       /* fld1; fld1; faddp */
        0xe6, 0x80,                               /* out 0x80, al: answered, in the block */
        0xdb, 0x1d, 0x00, 0x20, 0x10, 0x00,       /* fistp dword [0x102000] */
        0xa1, 0x00, 0x20, 0x10, 0x00,             /* mov eax, [0x102000] */
        0xe7, 0xf1,                               /* out 0xf1, eax: 2 (x87 state kept) */
        0xb8, 0xff, 0xff, 0xff, 0xff,             /* mov eax, -1 */
        0xe4, 0x60,                               /* in al, 0x60 */
        0x66, 0xba, 0x70, 0x00,                   /* mov dx, 0x70 */
        0x66, 0xef,                               /* out dx, ax */
        0xe7, 0xf1,                               /* out 0xf1, eax: exits */
        0xed,                                     /* in eax, dx */
        0xe7, 0xf1,                               /* out 0xf1, eax */
        0xf4,
    };
    struct guest g;
    uint32_t last = 0;
    setup_guest(&g, code, sizeof code);
    ck_assert_int_eq(xbt_vm_set_pio_handler(g.vm, answer_pio, &last), XBT_OK);
    expect_out(&g, 0xf1, 2); /* the x87 stack survived the handler (translate.c) */
    expect_out(&g, 0xf1, 0xffffff5a);
    ck_assert_uint_eq(last, 0x7000ff5a); /* OUT's 16 bits, from port 0x70 */
    expect_out(&g, 0xf1, 0x12345678);
    xbt_exit *ex = run_to_exit(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_HLT);
    xbt_stats st = XBT_STATS_INIT;
    ck_assert_int_eq(xbt_vcpu_get_stats(g.cpu, &st), XBT_OK);
    ck_assert_uint_eq(st.pio_handled, 4);
    ck_assert_uint_eq(st.exits[XBT_EXIT_IO], 3);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* Data-segment limits: a 4 KiB expand-up segment in ES; an access inside works, one
   across or past the limit is #GP(0) at the instruction; SS-relative is #SS(0). */
START_TEST(segment_limits)
{
    const uint8_t code[] = {
        0xb8, 0x18, 0x00, 0x00, 0x00,             /* mov eax, 0x18 */
        0x8e, 0xc0,                               /* mov es, ax */
        0x26, 0x8b, 0x0d, 0xfc, 0x0f, 0x00, 0x00, /* mov ecx, es:[0xffc] */
        0x89, 0xc8, 0xe7, 0xf1,                   /* mov eax, ecx; out 0xf1, eax */
        0x26, 0x8b, 0x0d, 0xfe, 0x0f, 0x00, 0x00, /* mov ecx, es:[0xffe]: #GP(0) */
        0xf4,
    };
    /* handler: out 0xf2 = error code, out 0xf3 = faulting EIP */
    const uint8_t handler[] = { 0x8b, 0x04, 0x24, 0xe7, 0xf2, 0x8b, 0x44, 0x24, 0x04,
                                0xe7, 0xf3, 0xf4 };
    struct guest g;
    setup_guest(&g, code, sizeof code);
    /* GDT entry 3: data, base 0x200000, limit 0xfff (byte granular), present, DPL 0. */
    uint64_t small = 0xfffull | (0x200000ull << 16) | (0x92ull << 40) | (0x4ull << 52);
    memcpy(g.ram + 0x1000 + 24, &small, 8);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    s.gdt.limit = 31;
    xbt_vcpu_set_sregs(g.cpu, &s);
    uint32_t v = 0x5a5a1234;
    memcpy(g.ram + 0x200ffc, &v, 4);
    memcpy(g.ram + 0x101000, handler, sizeof handler);
    set_gate(&g, 13, 0x101000, 0x8e);
    expect_out(&g, 0xf1, 0x5a5a1234);
    expect_out(&g, 0xf2, 0);
    expect_out(&g, 0xf3, 0x100012);
    xbt_vm_destroy(g.vm);
}
END_TEST

START_TEST(api_misuse_is_an_error)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    xbt_vm *vm;
    c.ram_size = 12345;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_create(NULL, &vm), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_run(NULL, NULL), XBT_E_INVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("flat-ring0");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, loop_cpuid_divide_fault);
    tcase_add_test(tc, pause_loop_yields);
    tcase_add_test(tc, cpu_model);
    tcase_add_test(tc, irq_window_exit);
    tcase_add_test(tc, int_and_iret);
    tcase_add_test(tc, self_modifying_code);
    tcase_add_test(tc, triple_fault_is_shutdown);
    tcase_add_test(tc, in_completes_on_next_run);
    tcase_add_test(tc, api_misuse_is_an_error);
    tcase_add_test(tc, interrupt_reaches_a_tight_loop);
    tcase_add_test(tc, stop_from_another_thread);
    tcase_add_test(tc, unknown_msr_is_gp);
    tcase_add_test(tc, mmio_exits);
    tcase_add_test(tc, mmio_handler);
    tcase_add_test(tc, pio_handler);
    tcase_add_test(tc, mmio_site_limited_segment);
    tcase_add_test(tc, mmio_shadow);
    tcase_add_test(tc, segment_limits);
    tcase_add_test(tc, trace_profile_counts);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
