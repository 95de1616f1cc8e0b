/*
 * compat32.h - whether this host runs 32-bit compatibility-mode user code at all.
 * Direct execution (direct.c, the runner) and the differential suite's native oracle
 * need it; a kernel booted with ia32_emulation=off (or a hypervisor that gives its
 * guests no 32-bit user segments) refuses every far transfer to a 32-bit code segment
 * with #GP, and then nothing but translated code can run guest code.
 */
#ifndef XBT_RUNTIME_COMPAT32_H
#define XBT_RUNTIME_COMPAT32_H

#include <stdbool.h>

/* Found once per process (a forked child tries it).  false: *why (if why) says why,
   a static string. */
bool xbt_host_runs_compat32(const char **why);

#endif
