/*
 * clock.c - the platform's one time base: host CLOCK_MONOTONIC in nanoseconds.  The
 * timed devices (PIT, local APIC timer, HPET, ACPI PM timer), the board's poll and the
 * run loop's timer thread all read it here: a unit of its own, so that a device's
 * timing needs neither the board (pc.c) nor the main program (xbt-run.c).
 */
#include <time.h>

#include "vmm.h"

uint64_t vmm_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}
