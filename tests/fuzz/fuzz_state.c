/*
 * fuzz_state.c - the two state loaders against hostile state: the library's
 * (xbt_vm_restore_state) and xbt-run's devices' (pc_load_state).  Input: a first byte
 * choosing the loader, then the data.  For the library the harness appends the END
 * section with the right checksum (docs/ARCHITECTURE.md gives it), so that damage past
 * the checksum reaches the parser's checks and the registers' application; a restore
 * that succeeds is run for up to 64 exits (stopped by then at the latest).  For the
 * devices the data is their sections.  Nothing may crash, hang or leak; a refusal is
 * XBT_E_INVAL (or false) with one line of text.
 *
 * Built as a libFuzzer target with -DXBT_FUZZ=ON (clang), and always as a replay driver
 * (REPLAY_MAIN) that ctest runs over seeded mutations of real saved states.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm.h"
#include "../state_sum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vmm the_vmm;
static int state_fd = -1;
static unsigned restored, loaded; /* inputs a loader took */

static void setup(void)
{
    struct vmm *m = &the_vmm;
    if (m->vm)
        return;
    xbt_vm_config cfg = XBT_VM_CONFIG_INIT;
    cfg.ram_size = 4u << 20;
    cfg.user_mode = XBT_USER_STRICT;
    cfg.flags = XBT_VM_LOCAL_APIC;
    if (xbt_vm_create(&cfg, &m->vm) != XBT_OK || xbt_vcpu_create(m->vm, &m->cpu) != XBT_OK) {
        fprintf(stderr, "fuzz_state: cannot create a VM: %s\n", xbt_last_host_error());
        exit(1);
    }
    memset(m->unknown_port_seen, 0xff, sizeof m->unknown_port_seen);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->timer_cv, NULL);
    char err[256];
    if (pc_init(m, NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_state: %s\n", err);
        exit(1);
    }
    state_fd = memfd_create("fuzz-state", 0);
    if (state_fd < 0)
        exit(1);
}

static void check_error(const char *e)
{
    if (!*e || strchr(e, '\n')) {
        fprintf(stderr, "fuzz_state: a refusal without one line of text: '%s'\n", e);
        abort();
    }
}

static void library(const uint8_t *data, size_t size)
{
    struct vmm *m = &the_vmm;
    uint8_t end[24] = "END ";
    end[4] = 1; /* required */
    end[8] = 8;
    uint64_t sum = state_sum(data, size);
    memcpy(end + 16, &sum, 8);
    if (ftruncate(state_fd, 0) != 0 || pwrite(state_fd, data, size, 0) != (ssize_t)size ||
        pwrite(state_fd, end, 24, (off_t)size) != 24 || lseek(state_fd, 0, SEEK_SET) != 0)
        abort();
    xbt_status st = xbt_vm_restore_state(m->vm, state_fd);
    if (st != XBT_OK) {
        if (st != XBT_E_INVAL)
            abort();
        check_error(xbt_state_error());
        return;
    }
    restored++;
    xbt_vcpu_stop(m->cpu); /* the first dispatch ends the run at the latest ... */
    for (int e = 0; e < 64; e++) {
        xbt_exit *ex;
        if (xbt_vcpu_run(m->cpu, &ex) != XBT_OK)
            abort();
        if (ex->reason != XBT_EXIT_IO && ex->reason != XBT_EXIT_MMIO)
            break; /* ... or anything but I/O does */
    }
}

static void devices(const uint8_t *data, size_t size)
{
    struct vmm *m = &the_vmm;
    struct vstate s = { .buf = (uint8_t *)data, .len = size };
    pthread_mutex_lock(&m->lock);
    bool ok = pc_load_state(m, &s);
    if (ok) { /* the devices work on from what was loaded */
        loaded++;
        pc_poll(m, vmm_now_ns());
        intr_ack(m, 0);
        uint32_t v = 0;
        for (uint16_t p = 0x3f8; p < 0x400; p++)
            v += vmm_port_io(m, p, 1, true, 0);
        (void)v;
    }
    pthread_mutex_unlock(&m->lock);
    if (!ok)
        check_error(s.err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1)
        return 0;
    if (data[0] & 1)
        devices(data + 1, size - 1);
    else
        library(data + 1, size - 1);
    return 0;
}

#ifdef REPLAY_MAIN
/* fuzz_state_replay [N]: N seeded mutations (default 2000) of a library state and of a
   devices' state, both saved from the fresh machine here (its RAM holds the firmware
   tables): bytes changed, inserted, removed, cut. */
static uint64_t rs = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs >> 24);
}

static void mutate(uint8_t *b, size_t *n, size_t cap, size_t hot)
{
    for (unsigned k = 1 + rnd() % 4; k--;) {
        size_t at = 1 + (rnd() % 4 ? rnd() % (hot ? hot : 1) : rnd() % (*n > 1 ? *n - 1 : 1));
        switch (rnd() % 5) {
        case 0: if (*n > 2) *n = 1 + rnd() % (*n - 1); break;
        case 1:
            if (*n + 8 < cap && at < *n) {
                memmove(b + at + 8, b + at, *n - at);
                *n += 8;
            }
            break;
        default:
            if (at < *n)
                b[at] = (uint8_t)rnd();
        }
    }
}

int main(int argc, char **argv)
{
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0)
        dup2(devnull, 2);
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 2000;
    setup();
    struct vmm *m = &the_vmm;
    /* The library's stream without its END section, and the devices' sections. */
    if (ftruncate(state_fd, 0) != 0 || xbt_vm_save_state(m->vm, state_fd) != XBT_OK)
        return 1;
    size_t lib_n = (size_t)lseek(state_fd, 0, SEEK_END) - 24, dev_n;
    size_t cap = lib_n + 4096;
    uint8_t *lib = malloc(cap), *buf = malloc(cap);
    if (!lib || !buf || pread(state_fd, lib + 1, lib_n, 0) != (ssize_t)lib_n)
        return 1;
    lib[0] = 0;
    struct vstate ds = { 0 };
    pthread_mutex_lock(&m->lock);
    bool ok = pc_save_state(m, &ds);
    pthread_mutex_unlock(&m->lock);
    if (!ok)
        return 1;
    dev_n = ds.len;
    uint8_t *dev = malloc(dev_n + 1 + 4096), *dbuf = malloc(dev_n + 1 + 4096);
    if (!dev || !dbuf)
        return 1;
    dev[0] = 1;
    memcpy(dev + 1, ds.buf, dev_n);
    free(ds.buf);
    LLVMFuzzerTestOneInput(lib, lib_n + 1); /* as saved: restores */
    LLVMFuzzerTestOneInput(dev, dev_n + 1);
    for (unsigned i = 0; i < n; i++) {
        size_t len = lib_n + 1;
        memcpy(buf, lib, len);
        mutate(buf, &len, cap, 400); /* mostly the registers' sections */
        LLVMFuzzerTestOneInput(buf, len);
        len = dev_n + 1;
        memcpy(dbuf, dev, len);
        mutate(dbuf, &len, dev_n + 1 + 4096, 2000);
        LLVMFuzzerTestOneInput(dbuf, len);
    }
    printf("fuzz_state: %u mutations of each state, no crash; %u library states restored "
           "and run, %u devices' states loaded\n", n, restored, loaded);
    if (restored < 2 || loaded < 2)
        return 1; /* the unharmed ones at least */
    free(lib), free(buf), free(dev), free(dbuf);
    return 0;
}
#endif
