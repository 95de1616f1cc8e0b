/*
 * test_hostile.c - guest inputs that once stopped or confused the VMM (issue 18): stack
 * frames and descriptor tables that wrap at 4 GiB with paging on (the fast callouts read
 * past the top of the K-window: SIGSEGV in the VMM), a GDT outside RAM (a #GP/#DF loop
 * where a CPU shuts down), and a triple fault met by a segment load.
 */
#include <check.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "xbt/xbt.h"

struct guest {
    xbt_vm *vm;
    xbt_vcpu *cpu;
    uint8_t *ram;
};

/* Flat ring 0 at 0x100000, GDT at 0x1000 (null, code 0x08, data 0x10), IDT at 0x2000. */
static void setup(struct guest *g, const uint8_t *code, size_t n)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 16u << 20;
    ck_assert_int_eq(xbt_vm_create(&c, &g->vm), XBT_OK);
    g->ram = xbt_vm_ram(g->vm);
    memcpy(g->ram + 0x100000, code, n);
    uint64_t gdt[3] = { 0, 0x00cf9b000000ffffull, 0x00cf93000000ffffull };
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

static void set_gate(struct guest *g, int vec, uint32_t handler)
{
    uint64_t gate = (handler & 0xffff) | (0x08ull << 16) | (0x8eull << 40) |
                    ((uint64_t)(handler >> 16) << 48);
    memcpy(g->ram + 0x2000 + 8 * vec, &gate, 8);
}

static void put32(struct guest *g, uint32_t at, uint32_t v) { memcpy(g->ram + at, &v, 4); }

/* Stops the vCPU after 2 s: a guest that loops where it should have stopped fails the
   test instead of hanging it. */
static void *watchdog(void *arg)
{
    sleep(2);
    xbt_vcpu_stop(arg);
    return NULL;
}

static xbt_exit *run(struct guest *g)
{
    pthread_t th;
    pthread_create(&th, NULL, watchdog, g->cpu);
    xbt_exit *ex;
    ck_assert_int_eq(xbt_vcpu_run(g->cpu, &ex), XBT_OK);
    pthread_cancel(th);
    pthread_join(th, NULL);
    return ex;
}

static void expect_out(struct guest *g, uint16_t port, uint32_t data)
{
    xbt_exit *ex = run(g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IO);
    ck_assert_uint_eq(ex->io.port, port);
    ck_assert_uint_eq(ex->io.data, data);
}

/* A GDT outside RAM: the data segment load faults (#GP), delivering it needs the
   handler's CS from that GDT (#GP again: #DF), and so does #DF: a triple fault, a
   SHUTDOWN exit (it looped before: the segment load's caller went on after the triple
   fault).  QEMU TCG, where memory without RAM reads as zero, logs the same #GP(0x10),
   #DF and triple fault. */
START_TEST(gdt_outside_ram_is_shutdown)
{
    const uint8_t code[] = {
        0x0f, 0x01, 0x15, 0x00, 0x30, 0x00, 0x00, /* lgdt [0x3000] */
        0xb8, 0x10, 0x00, 0x00, 0x00,             /* mov eax, 0x10 */
        0x8e, 0xd8,                               /* mov ds, eax */
        0xe6, 0xf1, 0xf4,                         /* out 0xf1, al; hlt */
    };
    const uint8_t handler[] = { 0xe6, 0xf2, 0xf4 }; /* out 0xf2, al; hlt */
    for (int pass = 0; pass < 2; pass++) {
        struct guest g;
        setup(&g, code, sizeof code);
        memcpy(g.ram + 0x101000, handler, sizeof handler);
        set_gate(&g, 8, 0x101000);
        set_gate(&g, 13, 0x101000);
        uint16_t limit = 0xffff;
        memcpy(g.ram + 0x3000, &limit, 2);
        put32(&g, 0x3002, pass ? 0xfffff000u : 0x0f000000u); /* beyond RAM; at the top */
        xbt_exit *ex = run(&g);
        ck_assert_uint_eq(ex->reason, XBT_EXIT_SHUTDOWN);
        xbt_vm_destroy(g.vm);
    }
}
END_TEST

/* Paging on: page 0 identity, linear page 0xfffff000 at physical 0x7000.  An IRET frame,
   a POP DS and a GDT that wrap from 0xffffffff to 0: the fast callouts leave them to
   the full handlers, which wrap as the CPU does. */
START_TEST(wrap_at_4gib_with_paging)
{
    const uint8_t code[] = {
        0xbc, 0x04, 0x00, 0x00, 0x00,             /* mov esp, 4 */
        0x9c, 0x0e,                               /* pushfd; push cs */
        0x68, 0x10, 0x00, 0x10, 0x00,             /* push 0x100010 */
        0xcf,                                     /* iret (wraps) */
        0x90, 0x90, 0x90,
        0x89, 0xe0, 0xe7, 0xf1,                   /* 0x100010: mov eax, esp; out 0xf1 */
        /* POP DS from 0xfffffffe..0x1 */
        0x66, 0xc7, 0x05, 0xfe, 0xff, 0xff, 0xff, 0x10, 0x00, /* mov word [-2], 0x10 */
        0xbc, 0xfe, 0xff, 0xff, 0xff,             /* mov esp, -2 */
        0x1f,                                     /* pop ds */
        0x89, 0xe0, 0xe7, 0xf2,                   /* mov eax, esp; out 0xf2 */
        /* GDT at 0xfffffff4: entry 1 straddles 4 GiB; its upper half and entry 2 at 0 */
        0xc7, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9b, 0xcf, 0x00, /* mov [0], hi(code) */
        0xc7, 0x05, 0x04, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, /* mov [4], lo(data) */
        0xc7, 0x05, 0x08, 0x00, 0x00, 0x00, 0x00, 0x93, 0xcf, 0x00, /* mov [8], hi(data) */
        0x0f, 0x01, 0x15, 0x10, 0x30, 0x00, 0x00, /* lgdt [0x3010] */
        0xb8, 0x08, 0x00, 0x00, 0x00,             /* mov eax, 0x08 */
        0x8e, 0xd8,                               /* mov ds, eax (readable code) */
        0x8c, 0xd8, 0xe7, 0xf3,                   /* mov eax, ds; out 0xf3 */
        0xb8, 0x10, 0x00, 0x00, 0x00, 0x8e, 0xd8, /* mov eax, 0x10; mov ds, eax */
        0x0f, 0x01, 0x15, 0x20, 0x30, 0x00, 0x00, /* lgdt [0x3020]: back */
        0x8c, 0xd8, 0xe7, 0xf4, 0xf4,             /* mov eax, ds; out 0xf4; hlt */
    };
    struct guest g;
    setup(&g, code, sizeof code);
    /* Page directory 0x4000: [0] -> table 0x5000 (identity 0-4 MiB), [1023] -> 0x6000
       whose last entry maps 0xfffff000 to 0x7000. */
    put32(&g, 0x4000, 0x5003);
    put32(&g, 0x4000 + 4 * 1023, 0x6003);
    for (uint32_t i = 0; i < 1024; i++)
        put32(&g, 0x5000 + 4 * i, (i << 12) | 3);
    put32(&g, 0x6000 + 4 * 1023, 0x7003);
    /* The wrapped GDT's first 12 bytes at 0xfffffff4 (null, the low half of code). */
    put32(&g, 0x7ff4, 0), put32(&g, 0x7ff8, 0), put32(&g, 0x7ffc, 0x0000ffff);
    uint16_t limit = 23;
    memcpy(g.ram + 0x3010, &limit, 2);
    put32(&g, 0x3012, 0xfffffff4u);
    memcpy(g.ram + 0x3020, &limit, 2);
    put32(&g, 0x3022, 0x1000);
    xbt_sregs s;
    xbt_vcpu_get_sregs(g.cpu, &s);
    s.cr3 = 0x4000;
    s.cr0 |= 0x80000000u;
    ck_assert_int_eq(xbt_vcpu_set_sregs(g.cpu, &s), XBT_OK);
    expect_out(&g, 0xf1, 4);          /* IRET popped 12 bytes across 4 GiB */
    expect_out(&g, 0xf2, 2);          /* POP DS read 4 bytes across 4 GiB */
    expect_out(&g, 0xf3, 0x08);       /* a descriptor across 4 GiB */
    expect_out(&g, 0xf4, 0x10);
    xbt_exit *ex = run(&g);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_HLT);
    xbt_vm_destroy(g.vm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("hostile");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, gdt_outside_ram_is_shutdown);
    tcase_add_test(tc, wrap_at_4gib_with_paging);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
