/*
 * test_api.c - the embedder API's own contract, through the public header only: the
 * version numbers and their compatibility rule, the capability query, the sized
 * statistics (a caller's smaller struct gets exactly its size written: checked with a
 * guard pattern after it), the trace flags, and the one window enum as xbt_translate
 * reads it; the misuse the policy and watchpoint calls (API 1.4) refuse; save and restore
 * (a user-mode guest saved mid-computation and restored into a new VM in each user mode,
 * get/set of the x87/SSE state seen by the guest, events, malformed and corrupted state
 * streams).
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <time.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xbt/xbt.h"
#include "../state_sum.h"

START_TEST(versions)
{
    ck_assert_uint_eq(xbt_version(), XBT_VERSION);
    ck_assert_uint_eq(xbt_api_version(), XBT_API_VERSION);
    ck_assert_uint_eq(XBT_API_VERSION >> 16, XBT_API_VERSION_MAJOR);
    ck_assert_uint_eq(XBT_API_VERSION & 0xFFFF, XBT_API_VERSION_MINOR);
    ck_assert(XBT_API_COMPATIBLE(xbt_api_version()));
    /* A library with more additions serves this header; another major or fewer
       additions do not. */
    uint32_t v = XBT_API_VERSION;
    ck_assert(XBT_API_COMPATIBLE(v + 1));
    ck_assert(!XBT_API_COMPATIBLE(v + 0x10000u));
    ck_assert(!XBT_API_COMPATIBLE(v - 0x10000u));
    if (XBT_API_VERSION_MINOR > 0)
        ck_assert(!XBT_API_COMPATIBLE(v - 1));
}
END_TEST

START_TEST(capabilities)
{
    uint64_t caps = xbt_capabilities();
    ck_assert_uint_eq(xbt_capabilities(), caps); /* probed once, kept */
    const uint64_t built_in = XBT_CAP_USER_STRICT | XBT_CAP_PAE | XBT_CAP_TRACES |
                              XBT_CAP_TRACE_PROFILE;
    ck_assert_uint_eq(caps & built_in, built_in);
    /* Adaptive mode needs exactly what direct mode needs. */
    ck_assert_int_eq(!!(caps & XBT_CAP_USER_DIRECT), !!(caps & XBT_CAP_USER_ADAPTIVE));
    const char *why = "untouched";
    ck_assert_int_eq(xbt_has(0, &why), 1);
    ck_assert_int_eq(xbt_has(built_in, &why), 1);
    ck_assert_str_eq(why, "untouched"); /* only written when something is missing */
    ck_assert_int_eq(xbt_has(XBT_CAP_USER_DIRECT, &why), !!(caps & XBT_CAP_USER_DIRECT));
    if (!(caps & XBT_CAP_USER_DIRECT)) {
        ck_assert_ptr_nonnull(why);
        ck_assert(why[0] != 0);
        printf("direct user mode not available here: %s\n", why);
    }
    /* A capability of a newer API is missing, with a reason; NULL why is allowed. */
    why = NULL;
    ck_assert_int_eq(xbt_has(1ull << 63, &why), 0);
    ck_assert_ptr_nonnull(why);
    ck_assert(why[0] != 0);
    ck_assert_int_eq(xbt_has(XBT_CAP_USER_STRICT | (1ull << 63), NULL), 0);
}
END_TEST

/* A VM whose vCPU has left through one port exit (mov al, 0x2a; out 0xf1, al; hlt at
   1 MiB, flat segments): its counters are not all zero. */
struct one_exit {
    xbt_vm *vm;
    xbt_vcpu *cpu;
};

static void run_one_exit(struct one_exit *g)
{
    static const uint8_t code[] = { 0xb0, 0x2a, 0xe6, 0xf1, 0xf4 };
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 4u << 20;
    c.user_mode = XBT_USER_STRICT;
    ck_assert_int_eq(xbt_vm_create(&c, &g->vm), XBT_OK);
    ck_assert_int_eq(xbt_vm_write_phys(g->vm, 0x100000, code, sizeof code), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_create(g->vm, &g->cpu), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(g->cpu, &r);
    r.eip = 0x100000;
    r.esp = 0x90000;
    ck_assert_int_eq(xbt_vcpu_set_regs(g->cpu, &r), XBT_OK);
    xbt_exit *ex;
    ck_assert_int_eq(xbt_vcpu_run(g->cpu, &ex), XBT_OK);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IO);
    ck_assert_uint_eq(ex->io.port, 0xf1);
}

#define GUARD 0xA5
#define SLACK 64

/* The stats call with the caller's size `size` into a buffer of guard bytes; checks
   that exactly min(size, sizeof(xbt_stats)) bytes changed at most and returns the
   buffer (caller frees). */
static uint8_t *stats_with_size(xbt_vcpu *cpu, uint32_t size, xbt_status want)
{
    size_t cap = sizeof(xbt_stats) + SLACK;
    uint8_t *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    memset(buf, GUARD, cap);
    memcpy(buf, &size, sizeof size);
    ck_assert_int_eq(xbt_vcpu_get_stats(cpu, (xbt_stats *)buf), want);
    size_t filled = size < sizeof(xbt_stats) ? size : sizeof(xbt_stats);
    if (want != XBT_OK)
        filled = sizeof size; /* only the size the caller put there */
    for (size_t i = filled; i < cap; i++)
        ck_assert_msg(buf[i] == GUARD, "size %u: byte %zu written (filled %zu)", size, i,
                      filled);
    return buf;
}

START_TEST(sized_stats)
{
    struct one_exit g;
    run_one_exit(&g);

    xbt_stats full = XBT_STATS_INIT;
    ck_assert_uint_eq(full.size, sizeof full);
    ck_assert_int_eq(xbt_vcpu_get_stats(g.cpu, &full), XBT_OK);
    ck_assert_uint_eq(full.size, sizeof full);
    ck_assert_uint_eq(full.reserved, 0);
    ck_assert_uint_eq(full.exits[XBT_EXIT_IO], 1);
    ck_assert_uint_ge(full.blocks, 1);

    /* An older embedder's struct: the header, exits and callouts only. */
    uint32_t old = (uint32_t)offsetof(xbt_stats, blocks);
    uint8_t *b = stats_with_size(g.cpu, old, XBT_OK);
    xbt_stats part;
    memcpy(&part, b, old);
    ck_assert_uint_eq(part.size, old);
    ck_assert_uint_eq(part.reserved, 0);
    ck_assert_mem_eq(part.exits, full.exits, sizeof full.exits);
    ck_assert_mem_eq(part.callouts, full.callouts, sizeof full.callouts);
    free(b);

    /* Sizes that end inside a field, at the header's end, and one past the library's
       struct (a newer embedder: the library fills its own size and says so). */
    const uint32_t sizes[] = { 8, 12, 20, (uint32_t)sizeof(xbt_stats) - 1,
                               (uint32_t)sizeof(xbt_stats), (uint32_t)sizeof(xbt_stats) + 40 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        b = stats_with_size(g.cpu, sizes[k], XBT_OK);
        uint32_t got;
        memcpy(&got, b, sizeof got);
        ck_assert_uint_eq(got, sizes[k] < sizeof(xbt_stats) ? sizes[k] : sizeof(xbt_stats));
        ck_assert_mem_eq(b + 8, (const uint8_t *)&full + 8, got - 8);
        free(b);
    }

    /* Too small for the header, and a NULL struct: refused, nothing written. */
    free(stats_with_size(g.cpu, 0, XBT_E_INVAL));
    free(stats_with_size(g.cpu, 7, XBT_E_INVAL));
    ck_assert_int_eq(xbt_vcpu_get_stats(g.cpu, NULL), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_get_stats(NULL, &full), XBT_E_INVAL);

    /* The report reads only the counters within the caller's size. */
    char all[8192], few[8192];
    xbt_stats_format(&full, all, sizeof all);
    xbt_stats cut = full;
    cut.size = old;
    xbt_stats_format(&cut, few, sizeof few);
    ck_assert_ptr_null(strstr(all, "translation: 0 blocks"));
    ck_assert_ptr_nonnull(strstr(few, "translation: 0 blocks"));
    ck_assert_ptr_nonnull(strstr(few, "exits: io=1"));

    xbt_vm_destroy(g.vm);
}
END_TEST

START_TEST(trace_flags)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 4u << 20;
    c.user_mode = XBT_USER_STRICT;
    xbt_vm *vm;
    c.flags = XBT_VM_TRACES | XBT_VM_NO_TRACES; /* a contradiction */
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_E_INVAL);
    c.flags = 0x100; /* no such flag */
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_E_INVAL);
    c.flags = XBT_VM_NO_TRACES; /* deprecated: the default, still accepted */
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    xbt_vm_destroy(vm);
    c.flags = XBT_VM_TRACES | XBT_VM_TRACE_PROFILE;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    xbt_vm_destroy(vm);
}
END_TEST

/* mov eax, [ebx]; ret, translated for a window: returns the host code. */
static size_t translate_for(uint32_t window, uint8_t *out, size_t cap, xbt_status want)
{
    static const uint8_t code[] = { 0x8b, 0x03, 0xc3 };
    xbt_translate_opts o = XBT_TRANSLATE_OPTS_INIT;
    o.window = window;
    o.want_listing = 0;
    xbt_translation *t = NULL;
    ck_assert_int_eq(xbt_translate(code, sizeof code, 0x1000, &o, &t), want);
    if (want != XBT_OK)
        return 0;
    ck_assert_uint_le(t->code_len, cap);
    memcpy(out, t->code, t->code_len);
    size_t n = t->code_len;
    xbt_translation_free(t);
    return n;
}

START_TEST(one_window_enum)
{
    uint8_t k[4096], u[4096], d[4096];
    size_t nk = translate_for(XBT_WINDOW_K, k, sizeof k, XBT_OK);
    size_t nu = translate_for(XBT_WINDOW_U, u, sizeof u, XBT_OK);
    size_t nd = translate_for(XBT_WINDOW_D, d, sizeof d, XBT_OK);
    /* K and U are both reached through the GS base: the same code.  D is at the
       guest's own addresses: the load has no GS prefix (0x65) in front. */
    ck_assert_uint_eq(nk, nu);
    ck_assert_mem_eq(k, u, nk);
    ck_assert_uint_eq(k[0], 0x65);
    ck_assert_uint_ne(d[0], 0x65);
    ck_assert_uint_ne(nd, 0);
    /* UK: the load through GS below it, R9 holding -XBT_WINDOW_UK_BELOW and EBX (its
       upper half zero) the linear address: mov eax, gs:[r9+rbx]. */
    uint8_t uk[4096];
    size_t nuk = translate_for(XBT_WINDOW_UK, uk, sizeof uk, XBT_OK);
    static const uint8_t uk_load[] = { 0x65, 0x41, 0x8b, 0x04, 0x19 };
    ck_assert_uint_ge(nuk, sizeof uk_load);
    ck_assert_mem_eq(uk, uk_load, sizeof uk_load);
    translate_for(XBT_WINDOW_UK + 1, k, sizeof k, XBT_E_INVAL);
}
END_TEST

/* Debugging through the API: a breakpoint stops before its instruction (once: the next
   run executes it), single-step runs one instruction a run, read_virt reads guest memory,
   and the limits answer XBT_E_INVAL.  Code at 1 MiB: mov al,1; mov al,2; mov al,3;
   out 0xf1, al; hlt. */
START_TEST(debugging)
{
    static const uint8_t code[] = { 0xb0, 0x01, 0xb0, 0x02, 0xb0, 0x03, 0xe6, 0xf1, 0xf4 };
    ck_assert(xbt_has(XBT_CAP_DEBUG, NULL));
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 4u << 20;
    c.user_mode = XBT_USER_STRICT;
    xbt_vm *vm;
    xbt_vcpu *cpu;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x100000, code, sizeof code), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_create(vm, &cpu), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(cpu, &r);
    r.eip = 0x100000;
    r.esp = 0x90000;
    xbt_vcpu_set_regs(cpu, &r);
    uint8_t b[3];
    ck_assert_int_eq(xbt_vcpu_read_virt(cpu, 0x100002, b, 3), XBT_OK);
    ck_assert(b[0] == 0xb0 && b[1] == 0x02 && b[2] == 0xb0);
    ck_assert_int_eq(xbt_vcpu_read_virt(cpu, 0x3ffffe, b, 3), XBT_E_INVAL); /* past RAM */
    /* A breakpoint in the middle of what would be one block. */
    ck_assert_int_eq(xbt_vcpu_set_breakpoint(cpu, 0x100004, 1), XBT_OK);
    xbt_exit *ex;
    ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_DEBUG);
    ck_assert_uint_eq(ex->debug.why, XBT_DEBUG_BREAKPOINT);
    ck_assert_uint_eq(ex->debug.eip, 0x100004);
    xbt_vcpu_get_regs(cpu, &r);
    ck_assert_uint_eq(r.eax & 0xff, 2); /* the instructions before it ran, it did not */
    /* Single-step from there: it runs, once. */
    ck_assert_int_eq(xbt_vcpu_set_single_step(cpu, 1), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_DEBUG);
    ck_assert_uint_eq(ex->debug.why, XBT_DEBUG_STEP);
    ck_assert_uint_eq(ex->debug.eip, 0x100006);
    xbt_vcpu_get_regs(cpu, &r);
    ck_assert_uint_eq(r.eax & 0xff, 3);
    ck_assert_int_eq(xbt_vcpu_set_single_step(cpu, 0), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IO);
    ck_assert_uint_eq(ex->io.data & 0xff, 3);
    /* Limits. */
    ck_assert_int_eq(xbt_vcpu_set_breakpoint(cpu, 0x200000, 0), XBT_E_INVAL); /* not set */
    for (uint32_t i = 1; i < XBT_MAX_BREAKPOINTS; i++)
        ck_assert_int_eq(xbt_vcpu_set_breakpoint(cpu, 0x200000 + i, 1), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_breakpoint(cpu, 0x300000, 1), XBT_E_INVAL); /* full */
    ck_assert_int_eq(xbt_vcpu_set_breakpoint(cpu, 0x100004, 0), XBT_OK);
    xbt_vm_destroy(vm);
}
END_TEST

/* The embedder's policy (API 1.4): every call refuses what it must, and nothing it
   refused takes effect (tests/runtime/test_policy.c runs guests against the policy). */
START_TEST(policy_misuse)
{
    ck_assert(xbt_has(XBT_CAP_POLICY, NULL));
    struct one_exit g;
    run_one_exit(&g); /* stopped at an OUT, IF=0 */
    xbt_vcpu *cpu = g.cpu;
    /* Injection: vectors, error codes, IF=0, one at a time. */
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(cpu, 0x20), XBT_E_INVAL); /* IF=0 */
    ck_assert_int_eq(xbt_vcpu_inject_interrupt(cpu, 256), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_exception(cpu, 2, 0, 0), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_exception(cpu, 32, 0, 0), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_exception(cpu, 255, 0, 0), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_exception(cpu, 3, 1, 0), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_exception(cpu, 14, 0, 0), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_inject_exception(cpu, 17, 1, 0), XBT_OK); /* #AC has one */
    ck_assert_int_eq(xbt_vcpu_inject_exception(cpu, 0, 0, 0), XBT_E_INVAL); /* pending */
    /* CPUID: claimed features refused; the model stays. */
    xbt_cpuid_entry e[XBT_MAX_CPUID_ENTRIES];
    size_t n = 0;
    ck_assert_int_eq(xbt_vcpu_get_cpuid(cpu, e, XBT_MAX_CPUID_ENTRIES, &n), XBT_OK);
    ck_assert_uint_gt(n, 1);
    ck_assert_uint_eq(e[1].function, 1);
    e[1].ecx |= 1u << 28; /* AVX */
    ck_assert_int_eq(xbt_vcpu_set_cpuid(cpu, e, n), XBT_E_INVAL);
    e[1].ecx &= ~(1u << 28);
    e[1].edx |= 1u << 9; /* the APIC, without XBT_VM_LOCAL_APIC */
    ck_assert_int_eq(xbt_vcpu_set_cpuid(cpu, e, n), XBT_E_INVAL);
    xbt_cpuid_entry lm = { 0x80000001u, 0, 0, 0, 0, 0, 1u << 29 }; /* long mode */
    ck_assert_int_eq(xbt_vcpu_set_cpuid(cpu, &lm, 1), XBT_E_INVAL);
    xbt_cpuid_entry back[XBT_MAX_CPUID_ENTRIES];
    size_t nb = 0;
    ck_assert_int_eq(xbt_vcpu_get_cpuid(cpu, back, XBT_MAX_CPUID_ENTRIES, &nb), XBT_OK);
    ck_assert_uint_eq(nb, n);
    ck_assert_uint_eq(back[1].edx & (1u << 9), 0);
    ck_assert_int_eq(xbt_vcpu_set_cpuid(cpu, NULL, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_get_cpuid(NULL, back, 1, &nb), XBT_E_INVAL);
    /* MSR exits: too many, NULL. */
    uint32_t idx[XBT_MAX_MSR_EXITS + 1];
    for (uint32_t i = 0; i <= XBT_MAX_MSR_EXITS; i++)
        idx[i] = 0xc0000000u + i;
    ck_assert_int_eq(xbt_vm_set_msr_exits(g.vm, idx, XBT_MAX_MSR_EXITS + 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_set_msr_exits(g.vm, NULL, 2), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_set_msr_exits(NULL, idx, 1), XBT_E_INVAL);
    /* Watchpoints: lengths, alignment, kinds, too many, clearing one not set. */
    ck_assert(xbt_has(XBT_CAP_WATCH, NULL));
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x1000, 3, XBT_WATCH_WRITE, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x1000, 16, XBT_WATCH_WRITE, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x1002, 4, XBT_WATCH_WRITE, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x1000, 4, 0, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x1000, 4, 4, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(NULL, 0x1000, 4, XBT_WATCH_WRITE, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x1000, 4, XBT_WATCH_WRITE, 0), XBT_E_INVAL);
    for (uint32_t i = 0; i < XBT_MAX_WATCHPOINTS; i++)
        ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x1000 + 8 * i, 8, XBT_WATCH_READ, 1),
                         XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x2000, 1, XBT_WATCH_ACCESS, 1), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x1000, 8, XBT_WATCH_WRITE, 0), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x1000, 8, XBT_WATCH_READ, 0), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_set_watchpoint(cpu, 0x2000, 1, XBT_WATCH_ACCESS, 1), XBT_OK);
    xbt_vm_destroy(g.vm);
}
END_TEST

/* ---- save and restore ---------------------------------------------------------------- */

/* A guest at CPL 3 with paging on (identity-mapped 4 MiB, user pages), IOPL 3, set up
   through the API alone: it loops 0x40000 times over an integer checksum (EBX), an SSE
   sum (XMM0 += XMM1) and an x87 sum (ST0 += 1), reports every 4096th iteration with
   OUT 0xf1 (EAX = ECX), then stores EBX, XMM0 and ST0 at 0x200000 and ends with OUT
   0xf2.  Directly run in direct and adaptive mode. */
#define SR_ITER 0x40000u
static const uint8_t sr_code[] = {
    0x69, 0xDB, 0x93, 0x01, 0x00, 0x01,       /* loop: imul ebx, ebx, 0x01000193 */
    0x01, 0xCB,                               /* add ebx, ecx */
    0x66, 0x0F, 0xFE, 0xC1,                   /* paddd xmm0, xmm1 */
    0xD9, 0xE8, 0xDE, 0xC1,                   /* fld1; faddp st1, st */
    0x41,                                     /* inc ecx */
    0xF7, 0xC1, 0xFF, 0x0F, 0x00, 0x00,       /* test ecx, 0xfff */
    0x75, 0x07,                               /* jnz next */
    0x89, 0xC8, 0xA3, 0x00, 0xF0, 0x3F, 0x00, /* mov eax, ecx; mov [0x3ff000], eax */
    0x81, 0xF9, 0x00, 0x00, 0x04, 0x00,       /* next: cmp ecx, 0x40000 */
    0x75, 0xD8,                               /* jne loop */
    0x89, 0x1D, 0x00, 0x00, 0x20, 0x00,       /* mov [0x200000], ebx */
    0xF3, 0x0F, 0x7F, 0x05, 0x10, 0x00, 0x20, 0x00, /* movdqu [0x200010], xmm0 */
    0xDD, 0x1D, 0x20, 0x00, 0x20, 0x00,       /* fstp qword [0x200020] */
    0xA3, 0x04, 0xF0, 0x3F, 0x00, 0xEB, 0xFE, /* mov [0x3ff004], eax; jmp $ */
};
/* Linear page 0x3ff000 maps a guest physical page without RAM: the reports are MMIO
   writes to SR_MMIO (+4 for the end). */
#define SR_MMIO 0x10000000u

static xbt_segment sr_seg(uint16_t sel, uint8_t type, uint8_t dpl)
{
    return (xbt_segment){ .base = 0, .limit = 0xFFFFFFFF, .selector = sel, .type = type,
                          .s = 1, .dpl = dpl, .present = 1, .db = 1, .g = 1 };
}

static void sr_put64(xbt_vm *vm, uint64_t gpa, uint64_t v)
{
    ck_assert_int_eq(xbt_vm_write_phys(vm, gpa, &v, 8), XBT_OK);
}

static void sr_make(uint32_t mode, xbt_vm **vmp, xbt_vcpu **cpup)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 4u << 20;
    c.user_mode = mode;
    ck_assert_int_eq(xbt_vm_create(&c, vmp), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_create(*vmp, cpup), XBT_OK);
}

/* The guest's memory, registers and x87/SSE state at its start. */
static void sr_setup(xbt_vm *vm, xbt_vcpu *cpu)
{
    sr_put64(vm, 0x1008, 0x00CF9B000000FFFFull); /* 0x08 kernel code */
    sr_put64(vm, 0x1010, 0x00CF93000000FFFFull); /* 0x10 kernel data */
    sr_put64(vm, 0x1018, 0x00CFFB000000FFFFull); /* 0x1b user code */
    sr_put64(vm, 0x1020, 0x00CFF3000000FFFFull); /* 0x23 user data */
    sr_put64(vm, 0x1028, 0x00008B0050000067ull); /* 0x28 TSS at 0x5000 (busy) */
    uint32_t pde = 0x4000 | 7;
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x3000, &pde, 4), XBT_OK);
    for (uint32_t i = 0; i < 1024; i++) {
        uint32_t pte = (i == 0x3FF ? SR_MMIO : i << 12) | 7;
        ck_assert_int_eq(xbt_vm_write_phys(vm, 0x4000 + 4 * i, &pte, 4), XBT_OK);
    }
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x100000, sr_code, sizeof sr_code), XBT_OK);
    xbt_sregs s;
    xbt_vcpu_get_sregs(cpu, &s);
    s.cs = sr_seg(0x1B, 0xB, 3);
    s.ds = s.es = s.fs = s.gs = s.ss = sr_seg(0x23, 0x3, 3);
    s.tr = (xbt_segment){ .base = 0x5000, .limit = 0x67, .selector = 0x28, .type = 0xB,
                          .present = 1 };
    s.gdt = (xbt_dtable){ 0x1000, 0x2F };
    s.idt = (xbt_dtable){ 0x2000, 0x7FF };
    s.cr3 = 0x3000;
    s.cr4 = (1u << 9) | (1u << 10); /* OSFXSR, OSXMMEXCPT */
    s.cr0 = 0x80000033u;            /* PG NE ET MP PE */
    ck_assert_int_eq(xbt_vcpu_set_sregs(cpu, &s), XBT_OK);
    xbt_regs r = { 0 };
    r.ebx = 0x811C9DC5u;
    r.esp = 0x300000;
    r.eip = 0x100000;
    r.eflags = 0x202;
    ck_assert_int_eq(xbt_vcpu_set_regs(cpu, &r), XBT_OK);
    xbt_fpu f;
    ck_assert_int_eq(xbt_vcpu_get_fpu(cpu, &f), XBT_OK);
    ck_assert_uint_eq(f.fcw, 0x37F);
    ck_assert_uint_eq(f.mxcsr, 0x1F80);
    f.fsw = 7u << 11; /* TOP 7: one value pushed, in physical register 7 */
    f.ftw = 0x80;
    long double st0 = 1000.0L;
    memset(f.st, 0, sizeof f.st);
    memcpy(f.st[0], &st0, 10);
    memset(f.xmm, 0, sizeof f.xmm);
    uint32_t x1[4] = { 1, 2, 3, 4 };
    memcpy(f.xmm[1], x1, 16);
    ck_assert_int_eq(xbt_vcpu_set_fpu(cpu, &f), XBT_OK);
}

/* Runs to the n-th report (0: to the end); at the 10th, checks the x87/SSE
   state the guest has made and sets XMM1 to 5, 6, 7, 8. */
static void sr_run(xbt_vcpu *cpu, unsigned *seen, unsigned stop_at)
{
    for (;;) {
        xbt_exit *ex;
        ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
        ck_assert_msg(ex->reason == XBT_EXIT_MMIO, "exit %u", ex->reason);
        ck_assert(ex->mmio.is_write && ex->mmio.size == 4);
        if (ex->mmio.gpa == SR_MMIO + 4)
            return;
        ck_assert_uint_eq(ex->mmio.gpa, SR_MMIO);
        ck_assert_uint_eq(ex->mmio.data, ++*seen * 4096u);
        if (*seen == 10) {
            xbt_fpu f;
            ck_assert_int_eq(xbt_vcpu_get_fpu(cpu, &f), XBT_OK);
            long double st0 = 0;
            memcpy(&st0, f.st[0], 10);
            ck_assert(st0 == 1000.0L + 40960.0L);
            uint32_t x0[4];
            memcpy(x0, f.xmm[0], 16);
            for (int j = 0; j < 4; j++)
                ck_assert_uint_eq(x0[j], 40960u * (uint32_t)(j + 1));
            uint32_t x1[4] = { 5, 6, 7, 8 };
            memcpy(f.xmm[1], x1, 16);
            ck_assert_int_eq(xbt_vcpu_set_fpu(cpu, &f), XBT_OK);
        }
        if (*seen == stop_at)
            return;
    }
}

/* What the guest stored at its end against the loop computed here. */
static void sr_check(xbt_vm *vm)
{
    uint32_t ebx = 0x811C9DC5u, x0[4], want[4];
    for (uint32_t i = 0; i < SR_ITER; i++)
        ebx = ebx * 0x01000193u + i;
    for (uint32_t j = 0; j < 4; j++)
        want[j] = 40960u * (j + 1) + (SR_ITER - 40960u) * (j + 5);
    uint32_t got;
    double st0;
    ck_assert_int_eq(xbt_vm_read_phys(vm, 0x200000, &got, 4), XBT_OK);
    ck_assert_int_eq(xbt_vm_read_phys(vm, 0x200010, x0, 16), XBT_OK);
    ck_assert_int_eq(xbt_vm_read_phys(vm, 0x200020, &st0, 8), XBT_OK);
    ck_assert_uint_eq(got, ebx);
    for (int j = 0; j < 4; j++)
        ck_assert_uint_eq(x0[j], want[j]);
    ck_assert(st0 == 1000.0 + SR_ITER);
}

static int sr_file(void)
{
    int fd = memfd_create("xbt-state-test", 0);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* In each user mode: run to the 20th report, save (the embedder's own bytes after the
   library's), finish; restore into a new VM of the same mode, finish there; both
   results are the loop's.  The guest TSC does not go back. */
static void sr_round_trip(uint32_t mode)
{
    if (mode == XBT_USER_ADAPTIVE)
        setenv("XBT_ADAPT_TICKS", "100000", 1); /* promoted early in the loop */
    xbt_vm *vm, *vm2;
    xbt_vcpu *cpu, *cpu2;
    sr_make(mode, &vm, &cpu);
    sr_setup(vm, cpu);
    unsigned seen = 0;
    sr_run(cpu, &seen, 20);
    uint64_t tsc1;
    ck_assert_int_eq(xbt_vcpu_get_msr(cpu, 0x10, &tsc1), XBT_OK);
    int fd = sr_file();
    ck_assert_msg(xbt_vm_save_state(vm, fd) == XBT_OK, "%s", xbt_state_error());
    ck_assert_int_eq(write(fd, "EMBEDDER", 8), 8);
    sr_run(cpu, &seen, 0);
    sr_check(vm);
    xbt_stats st = XBT_STATS_INIT;
    xbt_vcpu_get_stats(cpu, &st);
    if (mode != XBT_USER_STRICT && xbt_vm_user_mode(vm, NULL) == mode)
        ck_assert_uint_gt(st.direct_entries, 0);
    /* Other code where the loop was, run (translated, mapped); a restore into this VM
       must drop all of that and run the loop again from the 20th report. */
    static const uint8_t other[] = { 0xA3, 0x04, 0xF0, 0x3F, 0x00, 0xEB, 0xFE };
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x100000, other, sizeof other), XBT_OK);
    xbt_regs r0;
    xbt_vcpu_get_regs(cpu, &r0);
    r0.eip = 0x100000;
    xbt_vcpu_set_regs(cpu, &r0);
    xbt_exit *ex;
    ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_MMIO);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    ck_assert_msg(xbt_vm_restore_state(vm, fd) == XBT_OK, "%s", xbt_state_error());
    memset(xbt_vm_ram(vm) + 0x200000, 0, 64);
    seen = 20;
    sr_run(cpu, &seen, 0);
    ck_assert_uint_eq(seen, SR_ITER / 4096);
    sr_check(vm);
    xbt_vm_destroy(vm);

    /* Restored into a VM of the same mode, then into a strict one (the user mode is not
       part of the state). */
    for (int k = 0; k < 2; k++) {
        uint32_t into = k ? XBT_USER_STRICT : mode;
        sr_make(into, &vm2, &cpu2);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        ck_assert_msg(xbt_vm_restore_state(vm2, fd) == XBT_OK, "%s", xbt_state_error());
        char tail[9] = { 0 };
        ck_assert_int_eq(read(fd, tail, 9), 8); /* exactly the library's bytes were read */
        ck_assert_str_eq(tail, "EMBEDDER");
        uint64_t tsc2;
        ck_assert_int_eq(xbt_vcpu_get_msr(cpu2, 0x10, &tsc2), XBT_OK);
        ck_assert_uint_ge(tsc2, tsc1);
        xbt_regs r;
        xbt_vcpu_get_regs(cpu2, &r);
        ck_assert_uint_eq(r.ecx, 20 * 4096u);
        seen = 20;
        sr_run(cpu2, &seen, 0);
        ck_assert_uint_eq(seen, SR_ITER / 4096);
        sr_check(vm2);
        xbt_stats st2 = XBT_STATS_INIT;
        xbt_vcpu_get_stats(cpu2, &st2);
        if (into != XBT_USER_STRICT && xbt_vm_user_mode(vm2, NULL) == into)
            ck_assert_uint_gt(st2.direct_entries, 0);
        xbt_vm_destroy(vm2);
    }
    close(fd);
    unsetenv("XBT_ADAPT_TICKS");
}

START_TEST(save_restore_strict) { sr_round_trip(XBT_USER_STRICT); }
END_TEST
START_TEST(save_restore_direct)
{
    if (!xbt_has(XBT_CAP_USER_DIRECT, NULL))
        return; /* the host cannot run user code directly: strict covers the rest */
    sr_round_trip(XBT_USER_DIRECT);
}
END_TEST
START_TEST(save_restore_adaptive)
{
    if (!xbt_has(XBT_CAP_USER_ADAPTIVE, NULL))
        return;
    sr_round_trip(XBT_USER_ADAPTIVE);
}
END_TEST

/* The x87/SSE and events calls' limits. */
START_TEST(fpu_events_limits)
{
    xbt_vm *vm;
    xbt_vcpu *cpu;
    sr_make(XBT_USER_STRICT, &vm, &cpu);
    xbt_fpu f;
    ck_assert_int_eq(xbt_vcpu_get_fpu(cpu, &f), XBT_OK);
    f.mxcsr = 0xFFFF0000u; /* reserved bits */
    ck_assert_int_eq(xbt_vcpu_set_fpu(cpu, &f), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vcpu_set_fpu(cpu, NULL), XBT_E_INVAL);
    xbt_vcpu_events e;
    ck_assert_int_eq(xbt_vcpu_get_events(cpu, &e), XBT_OK);
    ck_assert(!e.nmi_pending && !e.nmi_blocked && !e.halted && !e.exit_pending);
    e.nmi_blocked = 1;
    e.halted = 1;
    e.nmi_pending = 1;
    e.resume_flag = 1;
    e.db_pending = 0x11; /* a single step and DR0's breakpoint */
    ck_assert_int_eq(xbt_vcpu_set_events(cpu, &e), XBT_OK);
    xbt_vcpu_events g;
    ck_assert_int_eq(xbt_vcpu_get_events(cpu, &g), XBT_OK);
    ck_assert(!memcmp(&e, &g, sizeof e));
    e.halted = 2;
    ck_assert_int_eq(xbt_vcpu_set_events(cpu, &e), XBT_E_INVAL);
    e.halted = 0, e.exit_pending = 1;
    ck_assert_int_eq(xbt_vcpu_set_events(cpu, &e), XBT_E_INVAL);
    e.exit_pending = 0, e.db_pending = 0x20;
    ck_assert_int_eq(xbt_vcpu_set_events(cpu, &e), XBT_E_INVAL);
    e.db_pending = 0, e.resume_flag = 2;
    ck_assert_int_eq(xbt_vcpu_set_events(cpu, &e), XBT_E_INVAL);
    xbt_vm_destroy(vm);
}
END_TEST

/* An IN the embedder has not completed: exit_pending, and a save refuses in one line;
   once it completed, the guest halts (STI; HLT), and a state saved in HLT restores
   halted with interrupts enabled.  Code at 1 MiB: in al, 0xf0; sti; hlt. */
START_TEST(save_pending_and_halted)
{
    static const uint8_t code[] = { 0xe4, 0xf0, 0xfb, 0xf4 };
    xbt_vm *vm, *vm2;
    xbt_vcpu *cpu, *cpu2;
    sr_make(XBT_USER_STRICT, &vm, &cpu);
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x100000, code, sizeof code), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(cpu, &r);
    r.eip = 0x100000;
    r.esp = 0x90000;
    xbt_vcpu_set_regs(cpu, &r);
    xbt_exit *ex;
    ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
    ck_assert(ex->reason == XBT_EXIT_IO && ex->io.is_in && ex->io.port == 0xf0);
    ex->io.data = 0x5a;
    xbt_vcpu_events e;
    ck_assert_int_eq(xbt_vcpu_get_events(cpu, &e), XBT_OK);
    ck_assert_uint_eq(e.exit_pending, 1);
    int fd = sr_file();
    ck_assert_int_eq(xbt_vm_save_state(vm, fd), XBT_E_INVAL);
    ck_assert_msg(strstr(xbt_state_error(), "middle of an exit"), "%s", xbt_state_error());
    ck_assert_int_eq(lseek(fd, 0, SEEK_END), 0); /* nothing written */
    ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_HLT);
    ck_assert_int_eq(xbt_vcpu_get_events(cpu, &e), XBT_OK);
    ck_assert(!e.exit_pending && e.halted);
    ck_assert_msg(xbt_vm_save_state(vm, fd) == XBT_OK, "%s", xbt_state_error());
    sr_make(XBT_USER_STRICT, &vm2, &cpu2);
    lseek(fd, 0, SEEK_SET);
    ck_assert_msg(xbt_vm_restore_state(vm2, fd) == XBT_OK, "%s", xbt_state_error());
    ck_assert_int_eq(xbt_vcpu_get_events(cpu2, &e), XBT_OK);
    ck_assert(e.halted && !e.exit_pending && !e.nmi_pending);
    xbt_vcpu_get_regs(cpu2, &r);
    ck_assert_uint_eq(r.eax & 0xff, 0x5a); /* the IN's data */
    ck_assert_uint_eq(r.eip, 0x100004);
    ck_assert(r.eflags & 0x200);
    ck_assert_int_eq(xbt_vcpu_run(cpu2, &ex), XBT_OK); /* still halted: no interrupt */
    ck_assert_uint_eq(ex->reason, XBT_EXIT_HLT);
    close(fd);
    xbt_vm_destroy(vm);
    xbt_vm_destroy(vm2);
}
END_TEST

/* A restore of stream s (n bytes) into a fresh 4 MiB VM: its status, the message in msg. */
static xbt_status sr_try(const uint8_t *s, size_t n, uint64_t ram, char *msg, size_t cap)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = ram;
    c.user_mode = XBT_USER_STRICT;
    xbt_vm *vm;
    xbt_vcpu *cpu;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_create(vm, &cpu), XBT_OK);
    int fd = sr_file();
    ck_assert_int_eq(write(fd, s, n), (ssize_t)n);
    lseek(fd, 0, SEEK_SET);
    xbt_status st = xbt_vm_restore_state(vm, fd);
    snprintf(msg, cap, "%s", xbt_state_error());
    close(fd);
    xbt_vm_destroy(vm);
    return st;
}

static void *sr_stopper(void *cpu)
{
    nanosleep(&(struct timespec){ 0, 20000000 }, NULL);
    xbt_vcpu_stop(cpu);
    return NULL;
}

/* Damage that the checksum does not catch (it is made right again): the registers'
   sections hold anything.  A restore refuses it in one line or takes it, and a vCPU
   that took it runs (stopped after 20 ms) without harm to the process. */
START_TEST(state_damaged_registers)
{
    xbt_vm *vm;
    xbt_vcpu *cpu;
    sr_make(XBT_USER_STRICT, &vm, &cpu);
    sr_setup(vm, cpu);
    unsigned seen = 0;
    sr_run(cpu, &seen, 3);
    int fd = sr_file();
    ck_assert_int_eq(xbt_vm_save_state(vm, fd), XBT_OK);
    xbt_vm_destroy(vm);
    size_t n = (size_t)lseek(fd, 0, SEEK_END);
    uint8_t *s = malloc(n), *t = malloc(n);
    ck_assert(s && t);
    ck_assert_int_eq(pread(fd, s, n, 0), (ssize_t)n);
    close(fd);
    uint64_t sum = state_sum(s, n - 24);
    ck_assert_msg(!memcmp(s + n - 8, &sum, 8), "the checksum is not the documented one");
    int took = 0;
    srand(1504);
    for (int k = 0; k < 200; k++) {
        memcpy(t, s, n);
        for (int j = 0; j < 1 + k % 3; j++)
            t[48 + rand() % 900] = (uint8_t)(k % 2 ? rand() : rand() & 3);
        sum = state_sum(t, n - 24);
        memcpy(t + n - 8, &sum, 8);
        xbt_vm_config c = XBT_VM_CONFIG_INIT;
        c.ram_size = 4u << 20;
        c.user_mode = XBT_USER_STRICT;
        ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
        ck_assert_int_eq(xbt_vcpu_create(vm, &cpu), XBT_OK);
        fd = sr_file();
        ck_assert_int_eq(write(fd, t, n), (ssize_t)n);
        lseek(fd, 0, SEEK_SET);
        xbt_status st = xbt_vm_restore_state(vm, fd);
        close(fd);
        ck_assert(st == XBT_OK || (st == XBT_E_INVAL && *xbt_state_error() &&
                                   !strchr(xbt_state_error(), '\n')));
        if (st == XBT_OK) {
            took++;
            pthread_t th;
            pthread_create(&th, NULL, sr_stopper, cpu);
            for (int e = 0; e < 1000; e++) {
                xbt_exit *ex;
                ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
                if (ex->reason != XBT_EXIT_MMIO && ex->reason != XBT_EXIT_IO)
                    break;
            }
            pthread_join(th, NULL);
        }
        xbt_vm_destroy(vm);
    }
    ck_assert_int_gt(took, 0);
    printf("state_damaged_registers: %d of 200 damaged states restored and run\n", took);
    free(s);
    free(t);
}
END_TEST

/* Streams that are truncated, corrupted, of another version or VM, or need sections this
   version does not know: one-line refusals; and random damage never crashes. */
/* Memory slots in the state: a restore fills every slot (the embedder's RAM and ROM
   too) and refuses a VM whose slots differ. */
static void slots_vm(xbt_vm **vm, xbt_vcpu **cpu, int layout)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 4u << 20;
    c.user_mode = XBT_USER_STRICT;
    ck_assert_int_eq(xbt_vm_create(&c, vm), XBT_OK);
    xbt_mem_region ram = { .slot = 1, .gpa = 0x40000000u + (layout == 2 ? 0x10000u : 0),
                           .size = 0x10000, .fd = -1 };
    xbt_mem_region rom = { .slot = 2, .flags = XBT_MEM_READONLY, .gpa = 0xffff0000u,
                           .size = 0x10000, .fd = -1 };
    if (layout != 1)
        ck_assert_int_eq(xbt_vm_set_mem_region(*vm, &ram), XBT_OK);
    ck_assert_int_eq(xbt_vm_set_mem_region(*vm, &rom), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_create(*vm, cpu), XBT_OK);
}

START_TEST(state_slots)
{
    xbt_vm *vm;
    xbt_vcpu *cpu;
    slots_vm(&vm, &cpu, 0);
    const uint32_t a = 0x11223344u, b = 0x55667788u, c = 0x99aabbccu;
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x1000, &a, 4), XBT_OK);
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0x4000fffcu, &b, 4), XBT_OK);
    ck_assert_int_eq(xbt_vm_write_phys(vm, 0xffff0000u, &c, 4), XBT_OK);
    int fd = sr_file();
    ck_assert_int_eq(xbt_vm_save_state(vm, fd), XBT_OK);
    xbt_vm_destroy(vm);
    const char *want[3] = { NULL, "memory slots", "slot 1" };
    for (int layout = 0; layout < 3; layout++) {
        slots_vm(&vm, &cpu, layout);
        uint32_t junk = 0xdeadbeefu, got[3];
        xbt_vm_write_phys(vm, 0xffff0000u, &junk, 4); /* the restore zeroes, then fills */
        xbt_vm_write_phys(vm, 0xffff1000u, &junk, 4);
        lseek(fd, 0, SEEK_SET);
        xbt_status st = xbt_vm_restore_state(vm, fd);
        if (!want[layout]) {
            ck_assert_msg(st == XBT_OK, "%s", xbt_state_error());
            ck_assert_int_eq(xbt_vm_read_phys(vm, 0x1000, &got[0], 4), XBT_OK);
            ck_assert_int_eq(xbt_vm_read_phys(vm, 0x4000fffcu, &got[1], 4), XBT_OK);
            ck_assert_int_eq(xbt_vm_read_phys(vm, 0xffff0000u, &got[2], 4), XBT_OK);
            ck_assert(got[0] == a && got[1] == b && got[2] == c);
            ck_assert_int_eq(xbt_vm_read_phys(vm, 0xffff1000u, &got[0], 4), XBT_OK);
            ck_assert_uint_eq(got[0], 0);
        } else {
            ck_assert_int_eq(st, XBT_E_INVAL);
            ck_assert_msg(strstr(xbt_state_error(), want[layout]), "%s", xbt_state_error());
        }
        xbt_vm_destroy(vm);
    }
    close(fd);
}
END_TEST

START_TEST(state_malformed)
{
    xbt_vm *vm;
    xbt_vcpu *cpu;
    sr_make(XBT_USER_STRICT, &vm, &cpu);
    sr_setup(vm, cpu);
    unsigned seen = 0;
    sr_run(cpu, &seen, 3);
    int fd = sr_file();
    ck_assert_int_eq(xbt_vm_save_state(vm, fd), XBT_OK);
    xbt_vm_destroy(vm);
    size_t n = (size_t)lseek(fd, 0, SEEK_END);
    uint8_t *s = malloc(n), *t = malloc(n + 64);
    ck_assert(s && t);
    ck_assert_int_eq(pread(fd, s, n, 0), (ssize_t)n);
    close(fd);
    char msg[256];
    ck_assert_int_eq(sr_try(s, n, 4u << 20, msg, sizeof msg), XBT_OK);
    const size_t cuts[] = { 0, 5, 16, 20, 40, 300, n / 2, n - 9, n - 1 };
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        ck_assert_int_eq(sr_try(s, cuts[k], 4u << 20, msg, sizeof msg), XBT_E_INVAL);
        ck_assert_msg(!strchr(msg, '\n') && *msg, "cut %zu: '%s'", cuts[k], msg);
    }
    ck_assert_int_eq(sr_try(s, n / 2, 4u << 20, msg, sizeof msg), XBT_E_INVAL);
    ck_assert_msg(strstr(msg, "truncated"), "%s", msg);
    memcpy(t, s, n);
    t[n - 100] ^= 1; /* in RAM */
    ck_assert_int_eq(sr_try(t, n, 4u << 20, msg, sizeof msg), XBT_E_INVAL);
    ck_assert_msg(strstr(msg, "corrupted"), "%s", msg);
    memcpy(t, s, n);
    t[0] = 'Y';
    ck_assert_int_eq(sr_try(t, n, 4u << 20, msg, sizeof msg), XBT_E_INVAL);
    ck_assert_msg(strstr(msg, "not an xbt state"), "%s", msg);
    memcpy(t, s, n);
    t[8] = 2; /* format version 2 */
    ck_assert_int_eq(sr_try(t, n, 4u << 20, msg, sizeof msg), XBT_E_INVAL);
    ck_assert_msg(strstr(msg, "version 2"), "%s", msg);
    ck_assert_int_eq(sr_try(s, n, 8u << 20, msg, sizeof msg), XBT_E_INVAL);
    ck_assert_msg(strstr(msg, "RAM"), "%s", msg);
    /* A required section this version does not know, right after the header. */
    memcpy(t, s, 16);
    memcpy(t + 16, "NEW!\1\0\0\0\0\0\0\0\0\0\0\0", 16);
    memcpy(t + 32, s + 16, n - 16);
    ck_assert_int_eq(sr_try(t, n + 16, 4u << 20, msg, sizeof msg), XBT_E_INVAL);
    ck_assert_msg(strstr(msg, "newer xbt"), "%s", msg);
    /* Random damage to the sections before RAM (the registers' part). */
    srand(15);
    for (int k = 0; k < 300; k++) {
        memcpy(t, s, n);
        for (int j = 0; j < 1 + k % 4; j++)
            t[rand() % 1000] = (uint8_t)rand();
        size_t len = k % 3 ? n : (size_t)rand() % n;
        xbt_status st = sr_try(t, len, 4u << 20, msg, sizeof msg);
        ck_assert(st == XBT_OK || st == XBT_E_INVAL);
        ck_assert(st == XBT_OK || (*msg && !strchr(msg, '\n')));
    }
    free(s);
    free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, versions);
    tcase_add_test(tc, capabilities);
    tcase_add_test(tc, sized_stats);
    tcase_add_test(tc, trace_flags);
    tcase_add_test(tc, one_window_enum);
    tcase_add_test(tc, debugging);
    tcase_add_test(tc, policy_misuse);
    tcase_add_test(tc, fpu_events_limits);
    tcase_add_test(tc, save_pending_and_halted);
    tcase_add_test(tc, save_restore_strict);
    tcase_add_test(tc, save_restore_direct);
    tcase_add_test(tc, save_restore_adaptive);
    tcase_add_test(tc, state_malformed);
    tcase_add_test(tc, state_slots);
    tcase_add_test(tc, state_damaged_registers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
