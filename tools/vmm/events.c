/*
 * events.c - what a device tells the rest of the VMM: the run must end
 * (vmm_request_exit), or one of its timer deadlines moved (vmm_timer_changed).  Below
 * every device, as clock.c: it touches only struct vmm and the xbt API, so that no
 * device calls back into the board (pc.c) that creates it, nor into the main program.
 * Call with vmm.lock held, but vmm_unlock.
 *
 * Waking a vCPU thread (vmm_wake) is deferred to vmm_unlock: a thread woken while the
 * waker still holds vmm.lock would block on the lock at once and need a second wake-up
 * (kvm-unit-tests' vmexit_ipi: a futex wake, a futex wait on the lock and another wake
 * for each IPI to a halted vCPU).  Each vCPU thread waits on a futex of its own, a
 * sequence number, so a message to one vCPU wakes that one alone; not a condition
 * variable, whose wait takes the mutex back marked contended, which costs its next
 * unlock a futex system call that wakes nobody.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmm.h"

void vmm_wake(struct vmm *m, uint32_t cpus)
{
    m->wake_mask |= cpus & ((1u << m->ncpus) - 1);
}

static void wake_now(struct vmm *m, uint32_t cpus)
{
    for (unsigned k = 0; cpus; k++, cpus >>= 1) {
        if (!(cpus & 1))
            continue;
        atomic_fetch_add(&m->wake_seq[k], 1);
        syscall(SYS_futex, &m->wake_seq[k], FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

void vmm_unlock(struct vmm *m)
{
    vmm_state_changed(m);
    uint32_t w = m->wake_mask;
    m->wake_mask = 0;
    pthread_mutex_unlock(&m->lock);
    wake_now(m, w);
}

/* The sequence number is read under the lock, before the caller's condition was found
   false: a change made after that (under the lock) bumps it after the unlock, and the
   futex wait does not sleep on a number that has moved. */
void vmm_wait(struct vmm *m, unsigned cpu)
{
    uint32_t seq = atomic_load(&m->wake_seq[cpu]);
    vmm_unlock(m);
    syscall(SYS_futex, &m->wake_seq[cpu], FUTEX_WAIT_PRIVATE, seq, NULL, NULL, 0);
    pthread_mutex_lock(&m->lock);
}

/* Wakes asked for by a thread that waits on something else next (the timer thread). */
void vmm_wake_flush(struct vmm *m)
{
    uint32_t w = m->wake_mask;
    m->wake_mask = 0;
    wake_now(m, w);
}

void vmm_request_exit(struct vmm *m, enum vmm_end why, int status)
{
    if (m->exit_requested)
        return; /* the first reason stands */
    m->exit_requested = true;
    m->end = why;
    m->exit_status = status;
    vmm_wake(m, VMM_ALL_CPUS);
    for (unsigned k = 0; k < m->ncpus; k++)
        xbt_vcpu_stop(m->cpus[k]); /* from another thread: the run returns STOPPED */
}

void vmm_timer_changed(struct vmm *m)
{
    m->next_timer_ns = 1; /* poll at the next chance */
    pthread_cond_broadcast(&m->timer_cv);
}
