/*
 * test_xmc_doomed.c - a vCPU that rewrites its own code runs the new bytes even while
 * another vCPU's write to the same page is half done (issue 16, smp_random's
 * own-function misses).  xbt_code_written (runtime/smp.c) clears every bit of the page's
 * code_prot first and posts the drop requests after; between the two, a vCPU whose bit
 * was cleared still holds its translations of the page and nothing in its mailbox says
 * so.  This test stops a writer exactly there (it clears the bits and the code chunks as
 * xbt_code_written does, and posts nothing), then lets vCPU 0 rewrite and call a function
 * it translated before:
 *  - plainly: the write finds the page without bits and is made writable (the paging-off
 *    window fault), where the old translation used to survive and run;
 *  - after vCPU 0 translated another function on the page, which sets its bit again (its
 *    old translations were then hidden behind the bit, and the write, beside no marked
 *    chunk, went the data-beside-code way and kept them).
 * Either way the call must return the new immediate, with paging off and on.  And a
 * writer stopped one step earlier, after it cleared the chunks and before the bits:
 * vCPU 0's bit is set, but its own code lost its chunk.  vCPU 1 exists (several vCPUs turn
 * on the code bits and chunks) and never runs, but in the last test: there it is a
 * second writer, which must wait for the first one's drops.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "runtime/vcpu.h"

#define F_AT 0x3000u /* mov eax, imm32; ret */
#define G_AT 0x3800u /* mov eax, 7; ret: the same page, another chunk */
#define PAGE (F_AT >> 12)

struct rig {
    xbt_vm *vm;
    xbt_vcpu *cpu[2];
    uint8_t *ram;
};

/* paged: paging on through one 4 MiB identity page (the window fault's paged path), on
   both vCPUs. */
static void rig_init(struct rig *r, bool paged)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 4u << 20;
    c.user_mode = XBT_USER_STRICT;
    ck_assert_int_eq(xbt_vm_create(&c, &r->vm), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_create(r->vm, &r->cpu[0]), XBT_OK);
    ck_assert_int_eq(xbt_vcpu_create(r->vm, &r->cpu[1]), XBT_OK);
    r->ram = xbt_vm_ram(r->vm);
    static const uint8_t f[] = { 0xB8, 1, 0, 0, 0, 0xC3 }, g[] = { 0xB8, 7, 0, 0, 0, 0xC3 };
    memcpy(r->ram + F_AT, f, sizeof f);
    memcpy(r->ram + G_AT, g, sizeof g);
    if (!paged)
        return;
    uint32_t pde = 0x83 | 0x20 | 0x40; /* present, writable, 4 MiB; accessed, dirty */
    memcpy(r->ram + 0x10000, &pde, 4);
    for (int k = 0; k < 2; k++) {
        xbt_sregs sr;
        ck_assert_int_eq(xbt_vcpu_get_sregs(r->cpu[k], &sr), XBT_OK);
        sr.cr3 = 0x10000;
        sr.cr4 |= 0x10;        /* PSE */
        sr.cr0 |= 0x80010000u; /* PG, WP */
        ck_assert_int_eq(xbt_vcpu_set_sregs(r->cpu[k], &sr), XBT_OK);
    }
}

/* At `at`: [mov dword [F_AT + 1], imm;] call target; out 0xf0, eax; hlt.  Runs vCPU k
   there and returns what it sent to port 0xf0. */
static uint32_t run_call_on(struct rig *r, int k, uint32_t at, uint32_t target, bool write,
                            uint32_t imm)
{
    uint8_t *p = r->ram + at;
    if (write) {
        uint32_t dst = F_AT + 1;
        *p++ = 0xC7, *p++ = 0x05;
        memcpy(p, &dst, 4), p += 4;
        memcpy(p, &imm, 4), p += 4;
    }
    uint32_t rel = target - (uint32_t)(p + 5 - r->ram);
    *p++ = 0xE8;
    memcpy(p, &rel, 4), p += 4;
    *p++ = 0xE7, *p++ = 0xF0; /* out 0xf0, eax */
    *p++ = 0xF4;              /* hlt */
    xbt_regs regs;
    ck_assert_int_eq(xbt_vcpu_get_regs(r->cpu[k], &regs), XBT_OK);
    regs.eip = at;
    regs.esp = 0x90000 + 0x1000 * (uint32_t)k;
    ck_assert_int_eq(xbt_vcpu_set_regs(r->cpu[k], &regs), XBT_OK);
    uint32_t got = ~0u;
    for (;;) {
        xbt_exit *ex;
        ck_assert_int_eq(xbt_vcpu_run(r->cpu[k], &ex), XBT_OK);
        if (ex->reason == XBT_EXIT_IO && ex->io.port == 0xf0 && !ex->io.is_in) {
            got = ex->io.data;
            continue;
        }
        ck_assert_msg(ex->reason == XBT_EXIT_HLT, "exit %u", ex->reason);
        return got;
    }
}

static uint32_t run_call(struct rig *r, uint32_t at, uint32_t target, bool write, uint32_t imm)
{
    return run_call_on(r, 0, at, target, write, imm);
}

/* Another vCPU's xbt_code_written up to its clearing of the chunks of the page (its
   bits not yet exchanged). */
static void writer_stops_after_chunks(struct rig *r)
{
    for (int k = 0; k < 4; k++)
        __atomic_store_n(&r->vm->code_chunks[PAGE * 4 + k], 0, __ATOMIC_SEQ_CST);
}

/* Another vCPU's xbt_code_written up to its exchange of the bits: the chunks and the
   bits of the page cleared, no drop request posted yet. */
static void writer_stops_after_clearing(struct rig *r)
{
    xbt_vm *vm = r->vm;
    writer_stops_after_chunks(r);
    uint8_t bits = __atomic_exchange_n(&vm->code_prot[PAGE], 0, __ATOMIC_SEQ_CST);
    ck_assert_msg(bits & 1, "vCPU 0 translated code on the page: its bit was set (%#x)", bits);
}

START_TEST(own_rewrite_after_bits_cleared)
{
    struct rig r;
    rig_init(&r, _i);
    ck_assert_uint_eq(run_call(&r, 0x1000, F_AT, false, 0), 1);
    writer_stops_after_clearing(&r);
    ck_assert_uint_eq(run_call(&r, 0x1100, F_AT, true, 2), 2);
    ck_assert_uint_eq(run_call(&r, 0x1200, F_AT, false, 0), 2);
    xbt_vm_destroy(r.vm);
}
END_TEST

START_TEST(own_rewrite_after_bit_set_again)
{
    struct rig r;
    rig_init(&r, _i);
    ck_assert_uint_eq(run_call(&r, 0x1000, F_AT, false, 0), 1);
    writer_stops_after_clearing(&r);
    /* Another function on the page, translated now: vCPU 0's bit is set again. */
    ck_assert_uint_eq(run_call(&r, 0x1100, G_AT, false, 0), 7);
    ck_assert(r.vm->code_prot[PAGE] & 1);
    ck_assert_uint_eq(run_call(&r, 0x1200, F_AT, true, 3), 3);
    ck_assert_uint_eq(run_call(&r, 0x1300, F_AT, false, 0), 3);
    xbt_vm_destroy(r.vm);
}
END_TEST

/* The writer cleared the chunks only: vCPU 0's bit is still set, and its write found no
   marked chunk at its own code (it took the data-beside-code way and kept its old
   translation, until xbt_code_at looked at its own cache). */
START_TEST(own_rewrite_after_chunks_cleared)
{
    struct rig r;
    rig_init(&r, _i);
    ck_assert_uint_eq(run_call(&r, 0x1000, F_AT, false, 0), 1);
    writer_stops_after_chunks(&r);
    ck_assert_uint_eq(run_call(&r, 0x1100, F_AT, true, 4), 4);
    ck_assert_uint_eq(run_call(&r, 0x1200, F_AT, false, 0), 4);
    xbt_vm_destroy(r.vm);
}
END_TEST

/* A second writer while the first is between its two steps: vCPU 1 writes F's immediate
   while a writer that cleared the bits (counted in xmc_posting, as xbt_code_written
   counts itself) has not yet posted vCPU 0's drop.  vCPU 1's write finds no bits; it
   must wait for that writer and for vCPU 0's drop (xbt_code_before_writable) before it
   writes, else a vCPU 0 in translated code that synchronized with vCPU 1's write could
   still run F's old translation.  Without the wait vCPU 1 finishes at once. */
struct second_writer {
    struct rig *r;
    uint32_t got;
    atomic_bool done;
};

static void *second_writer_run(void *arg)
{
    struct second_writer *w = arg;
    w->got = run_call_on(w->r, 1, 0x1400, G_AT, true, 5);
    atomic_store(&w->done, true);
    return NULL;
}

START_TEST(second_writer_waits_for_drops)
{
    struct rig r;
    rig_init(&r, _i);
    ck_assert_uint_eq(run_call(&r, 0x1000, F_AT, false, 0), 1);
    atomic_fetch_add(&r.vm->xmc_posting, 1);
    writer_stops_after_clearing(&r);
    struct second_writer w = { &r, 0, false };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, second_writer_run, &w), 0);
    usleep(200 * 1000);
    ck_assert_msg(!atomic_load(&w.done), "vCPU 1 wrote before the first writer posted");
    xbt_mbox_post(r.cpu[0], XBT_MBOX_INVAL, PAGE); /* the first writer's second step */
    atomic_fetch_sub(&r.vm->xmc_posting, 1);
    pthread_join(th, NULL);
    ck_assert_uint_eq(w.got, 7);
    ck_assert_uint_eq(r.ram[F_AT + 1], 5);
    ck_assert_uint_eq(run_call(&r, 0x1200, F_AT, false, 0), 5);
    xbt_vm_destroy(r.vm);
}
END_TEST

/* A writer that starts after the look's first drain (found in review): vCPU 1 asks
   whether it may write F's page (xbt_code_before_writable, as a soft store's callout
   asks without looking at the bits first); between its first drain and its look at the
   bits, another writer counts itself, clears vCPU 0's bit and stops before posting
   vCPU 0's drop (the hook).  The answer must wait until that drop is posted and
   carried out (vCPU 0 is not in translated code: posted is enough), else vCPU 1's
   store would beat vCPU 0's drop.  Without the second drain the answer comes at once. */
static struct rig *hook_rig;
static atomic_bool hook_ran;

static void writer_starts_after_the_drain(struct xbt_vcpu *v)
{
    (void)v;
    if (atomic_exchange(&hook_ran, true))
        return;
    atomic_fetch_add(&hook_rig->vm->xmc_posting, 1);
    writer_stops_after_clearing(hook_rig);
}

struct asker {
    struct rig *r;
    bool answer;
    atomic_bool done;
};

static void *asker_run(void *arg)
{
    struct asker *a = arg;
    a->answer = xbt_code_before_writable(a->r->cpu[1], PAGE);
    atomic_store(&a->done, true);
    return NULL;
}

START_TEST(writer_after_the_first_drain_is_waited_for)
{
    struct rig r;
    rig_init(&r, _i);
    ck_assert_uint_eq(run_call(&r, 0x1000, F_AT, false, 0), 1);
    hook_rig = &r;
    atomic_store(&hook_ran, false);
    xbt_test_after_drain = writer_starts_after_the_drain;
    struct asker a = { &r, false, false };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, asker_run, &a), 0);
    usleep(200 * 1000);
    ck_assert_msg(atomic_load(&hook_ran), "the look never drained");
    ck_assert_msg(!atomic_load(&a.done), "vCPU 1 may write before the other writer posted");
    xbt_mbox_post(r.cpu[0], XBT_MBOX_INVAL, PAGE); /* the other writer's second step */
    atomic_fetch_sub(&r.vm->xmc_posting, 1);
    pthread_join(th, NULL);
    xbt_test_after_drain = NULL;
    ck_assert(a.answer); /* no bit left: writable, after the drop was posted */
    ck_assert_uint_eq(run_call(&r, 0x1200, F_AT, true, 9), 9); /* vCPU 0 runs F anew */
    xbt_vm_destroy(r.vm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("xmc_doomed");
    TCase *tc = tcase_create("own code, bits cleared by another writer");
    /* _i: 0 paging off, 1 paging on. */
    tcase_add_loop_test(tc, own_rewrite_after_bits_cleared, 0, 2);
    tcase_add_loop_test(tc, own_rewrite_after_bit_set_again, 0, 2);
    tcase_add_loop_test(tc, own_rewrite_after_chunks_cleared, 0, 2);
    tcase_add_loop_test(tc, second_writer_waits_for_drops, 0, 2);
    tcase_add_loop_test(tc, writer_after_the_first_drain_is_waited_for, 0, 2);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
