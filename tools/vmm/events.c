/*
 * events.c - what a device tells the rest of the VMM: the run must end
 * (vmm_request_exit), or one of its timer deadlines moved (vmm_timer_changed).  Below
 * every device, as clock.c: it touches only struct vmm and the xbt API, so that no
 * device calls back into the board (pc.c) that creates it, nor into the main program.
 * Call with vmm.lock held.
 */
#include "vmm.h"

void vmm_request_exit(struct vmm *m, enum vmm_end why, int status)
{
    if (m->exit_requested)
        return; /* the first reason stands */
    m->exit_requested = true;
    m->end = why;
    m->exit_status = status;
    pthread_cond_broadcast(&m->wake);
    for (unsigned k = 0; k < m->ncpus; k++)
        xbt_vcpu_stop(m->cpus[k]); /* from another thread: the run returns STOPPED */
}

void vmm_timer_changed(struct vmm *m)
{
    m->next_timer_ns = 1; /* poll at the next chance */
    pthread_cond_broadcast(&m->timer_cv);
}
