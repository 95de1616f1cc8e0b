/*
 * guest_util.h - what the API-built guests of tests/runtime share: the VM, its vCPU and
 * RAM, one run, "the next exit is an OUT to this port" (its data returned), and a save
 * and restore through a memfd.  Static
 * functions: each test program includes it once, with _GNU_SOURCE defined (memfd_create).
 */
#ifndef XBT_TESTS_GUEST_UTIL_H
#define XBT_TESTS_GUEST_UTIL_H

#include <check.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xbt/xbt.h"

struct guest {
    xbt_vm *vm;
    xbt_vcpu *cpu;
    uint8_t *ram;
};

static inline xbt_exit *run(struct guest *g)
{
    xbt_exit *ex;
    ck_assert_int_eq(xbt_vcpu_run(g->cpu, &ex), XBT_OK);
    return ex;
}

/* The next exit is an OUT (never an IN) to `port`: its data. */
static inline uint32_t expect_out(struct guest *g, uint16_t port)
{
    xbt_exit *ex = run(g);
    ck_assert_msg(ex->reason == XBT_EXIT_IO, "exit %u, not IO (%s)", ex->reason,
                  ex->reason == XBT_EXIT_INTERNAL_ERROR ? ex->internal.message : "");
    ck_assert_uint_eq(ex->io.port, port);
    ck_assert_uint_eq(ex->io.is_in, 0);
    return ex->io.data;
}

static inline void expect_hlt(struct guest *g)
{
    ck_assert_uint_eq(run(g)->reason, XBT_EXIT_HLT);
}

/* The machine saved into a memfd (returned, at its start) and its VM destroyed. */
static inline int save_and_destroy(struct guest *g)
{
    int fd = memfd_create("xbt-test-state", 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(xbt_vm_save_state(g->vm, fd) == XBT_OK, "%s", xbt_state_error());
    xbt_vm_destroy(g->vm);
    return fd;
}

/* save_and_destroy's state into g's VM; the fd is closed. */
static inline void restore_from(struct guest *g, int fd)
{
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    ck_assert_msg(xbt_vm_restore_state(g->vm, fd) == XBT_OK, "%s", xbt_state_error());
    close(fd);
}

#endif
