/*
 * runner.h - the VMM's side of the runner processes that execute guest user code
 * directly (runner_abi.h has the design; src/runtime/runner/ is the program).
 *
 * One runner per window set (guest address space): its D-window holds that address
 * space's user pages.  The supervisor changes a runner's D-window only through the
 * runner's trusted thread; it waits for the change (the eventfd) whenever the guest
 * thread might be running code nobody checked, and it parks the guest thread (and sees
 * it parked) before the runner's address space stops being the current one, so a
 * runner never holds pages of an address space while code from an earlier one could
 * still run in it.
 */
#ifndef XBT_RUNTIME_RUNNER_H
#define XBT_RUNTIME_RUNNER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/direct.h"
#include "runtime/runner_abi.h"

struct xbt_wmap;

struct xbt_runner {
    pid_t pid;
    int pidfd;                 /* -1: no process */
    int efd;                   /* the trusted thread's confirmations */
    int sysfd;                 /* /proc/PID/task/TID/syscall of the guest thread */
    int comm_fd, ring_fd;      /* kept to start the next process with */
    volatile uint8_t *comm;    /* shared read-write */
    volatile uint8_t *ring;    /* shared; read-only in the runner */
    uint64_t park_pc, sleep_pc; /* from the runner before any guest code ran */
    uint64_t woken;            /* requests published when the trusted thread was woken */
    uint32_t min_addr;         /* the D-window's bottom (mmap_min_addr) */
    uint64_t seq;              /* requests published */
    uint64_t confirmed;        /* requests the eventfd confirmed */
    bool parked;               /* seen blocked at the parking call since it last ran */
    bool fresh;                /* never ran guest code */
    uint8_t ldt[6][16];        /* what each LDT entry of the runner holds ... */
    uint8_t ldt_valid;         /* ... where its bit is set */
    uint32_t ldt_pending;      /* entries to write at the next entry */
    uint64_t runs, parks, kills, waits, requests;
    uint64_t park_ns, wait_ns;  /* time spent parking, waiting for the trusted thread */
    bool lost;                 /* it died of a SIGKILL the VMM did not send (runner.c) */
    int cpu;                   /* the host CPU both its threads may run on; -1: any */
    uint64_t moves;            /* times they were placed on one CPU (runner.c, place) */
};

/* A runner with no process yet; xbt_runner_free releases everything. */
void xbt_runner_init(struct xbt_runner *r);
/* CLOCK_MONOTONIC in nanoseconds (the runner's waits; the vCPU's statistics). */
uint64_t xbt_now_ns(void);
void xbt_runner_free(struct xbt_runner *r);
/* The files of guest memory a runner may map: slot k's fd (-1: none) and the range
   [lo, hi) of it (below 4 GiB). */
struct xbt_runner_files {
    int fd[XRN_SLOTS];
    uint64_t lo[XRN_SLOTS], hi[XRN_SLOTS];
};
/* Starts (or restarts) the runner's process with these files; false with `why`. */
bool xbt_runner_start(struct xbt_runner *r, const struct xbt_runner_files *f, char *why,
                      size_t why_len);
/* Kills the runner's process (its D-window with it). */
void xbt_runner_kill(struct xbt_runner *r);
static inline bool xbt_runner_alive(const struct xbt_runner *r) { return r->pidfd >= 0; }

/* D-window requests, done by the trusted thread before the guest thread next enters
   guest code.  unmap with `sync` returns once the pages are gone (or the runner is
   dead); false if it had to be killed to get there. */
bool xbt_runner_map(struct xbt_runner *r, uint32_t lin, uint32_t slot, uint64_t off,
                    uint32_t len, int prot);
bool xbt_runner_unmap(struct xbt_runner *r, uint32_t lin, uint64_t len, bool sync);

/* Runs guest code from d's registers until the next exit, which it writes into d
   (struct xbt_direct's exit fields).  `kick` is checked before entry and while it
   waits.  Returns 0, or -1 if the runner died or had to be killed (d->sig 0). */
int xbt_runner_run(struct xbt_runner *r, struct xbt_direct *d, const uint8_t *fpu512,
                   uint8_t *fpu512_out, atomic_bool *kick);
/* Parks the guest thread and checks that it is blocked at the parking call; kills the
   runner if it does not get there.  Returns true if the runner is parked (or dead). */
bool xbt_runner_park(struct xbt_runner *r);
/* Gives the calling thread back the CPU affinity it had before xbt_runner_run held it on
   its CPU (XBT_RUNNER_CPU "same"); nothing if it is not held.  xbt_vcpu_run calls it
   before it returns to the embedder. */
void xbt_runner_unpin_thread(void);
/* Any thread, async-signal-safe: the guest thread leaves guest code soon. */
void xbt_runner_kick(struct xbt_runner *r);
/* Writes LDT entry `i` of the runner from a user_desc (16 bytes) at the next entry. */
void xbt_runner_set_ldt(struct xbt_runner *r, int i, const void *user_desc);

#endif
