/*
 * test_api.c - the embedder API's own contract, through the public header only: the
 * version numbers and their compatibility rule, the capability query, the sized
 * statistics (a caller's smaller struct gets exactly its size written: checked with a
 * guard pattern after it), the trace flags, and the one window enum as xbt_translate
 * reads it; the misuse the policy and watchpoint calls (API 1.4) refuse.
 */
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xbt/xbt.h"

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
    translate_for(XBT_WINDOW_D + 1, k, sizeof k, XBT_E_INVAL);
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

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, versions);
    tcase_add_test(tc, capabilities);
    tcase_add_test(tc, sized_stats);
    tcase_add_test(tc, trace_flags);
    tcase_add_test(tc, one_window_enum);
    tcase_add_test(tc, debugging);
    tcase_add_test(tc, policy_misuse);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
