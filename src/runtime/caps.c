/*
 * caps.c - what the linked library and this host provide: its release and API version
 * numbers, and the capabilities an embedder can ask about before it creates a VM
 * (include/xbt/xbt.h).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/compat32.h"
#include "runtime/runner.h"
#include "xbt/xbt.h"

uint32_t xbt_version(void)
{
    return XBT_VERSION;
}

uint32_t xbt_api_version(void)
{
    return XBT_API_VERSION;
}

/* Found once per process (pthread_once): the direct user modes are known to work only
   by starting a runner process, which is what their first run would do. */
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static uint64_t caps;
static char direct_why[256];

static void probe(void)
{
    /* Built into every library: nothing on the host decides them. */
    caps = XBT_CAP_USER_STRICT | XBT_CAP_PAE | XBT_CAP_TRACES | XBT_CAP_TRACE_PROFILE |
           XBT_CAP_STRING_IO | XBT_CAP_DEBUG | XBT_CAP_POLICY |
           XBT_CAP_WATCH;
    /* A runner would start on a host that runs no 32-bit code, and then die at its
       first entry: ask that first. */
    const char *no32 = NULL;
    if (!xbt_host_runs_compat32(&no32)) {
        snprintf(direct_why, sizeof direct_why, "%s", no32);
        return;
    }
    /* A runner needs guest RAM to be handed; one page of an empty memfd stands for it
       (the runner maps none of it before it is asked to). */
    int ram = memfd_create("xbt-probe-ram", MFD_CLOEXEC);
    if (ram < 0 || ftruncate(ram, 4096) != 0) {
        snprintf(direct_why, sizeof direct_why, "cannot make a memfd to probe with");
    } else {
        struct xbt_runner r;
        xbt_runner_init(&r);
        char why[sizeof direct_why];
        struct xbt_runner_files f = { .lo = { 0 }, .hi = { 4096 } };
        f.fd[0] = ram;
        for (int k = 1; k < XRN_SLOTS; k++)
            f.fd[k] = -1;
        if (xbt_runner_start(&r, &f, why, sizeof why))
            caps |= XBT_CAP_USER_DIRECT | XBT_CAP_USER_ADAPTIVE;
        else
            snprintf(direct_why, sizeof direct_why, "%s", why);
        xbt_runner_free(&r);
    }
    if (ram >= 0)
        close(ram);
}

uint64_t xbt_capabilities(void)
{
    pthread_once(&probe_once, probe);
    return caps;
}

int xbt_has(uint64_t want, const char **why)
{
    uint64_t missing = want & ~xbt_capabilities();
    if (!missing)
        return 1;
    if (why) {
        if (missing & (XBT_CAP_USER_DIRECT | XBT_CAP_USER_ADAPTIVE))
            *why = direct_why;
        else
            *why = "a capability this library does not know (built for a newer API?)";
    }
    return 0;
}
