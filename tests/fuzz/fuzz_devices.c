/*
 * fuzz_devices.c - xbt-run's PC platform (tools/vmm) driven through its register
 * interface alone, as a hostile guest would drive it: port reads and writes of every
 * size at every device port, MMIO reads and writes in the local APIC, IOAPIC, HPET and
 * pc-testdev pages, timer polls and interrupt acknowledges in between.  Nothing may
 * crash, hang, leak or touch the host beyond the disk file it was given; an interrupt
 * vector is -1 or 0-255.
 *
 * Input: 8-byte records [kind, a, b, c, value (4 bytes)]; kind bits 0-1: port out,
 * port in, MMIO write, MMIO read; bit 2: poll the timers and acknowledge an interrupt
 * afterwards.  The port is one of the platform's (by a) or any (a, b); the MMIO page
 * is chosen by b, the offset by a and c; the size by c.
 *
 * Built as a libFuzzer target with -DXBT_FUZZ=ON (clang), and always as a replay
 * driver (REPLAY_MAIN) that ctest runs over seeded random inputs.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vmm the_vmm;
static char disk_path[64];

static const uint16_t ports[] = {
    0x20, 0x21, 0xa0, 0xa1, 0x40, 0x41, 0x42, 0x43, 0x61, 0x70, 0x71, 0x92, 0x64, 0x60,
    0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc, 0x3fd, 0x3fe, 0x3ff, 0x1f0, 0x1f1, 0x1f2, 0x1f3,
    0x1f4, 0x1f5, 0x1f6, 0x1f7, 0x3f6, 0x170, 0x177, 0x376, 0x600, 0x601, 0x602, 0x603,
    0x604, 0x605, 0x608, 0x510, 0x511, 0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe8, 0xeb, 0x2000,
    0x2004, 0x200e, 0x2017, 0x3d4, 0x3d5, 0xcf9, 0x4d0, 0x4d1, 0xf5, 0x80,
};
static const uint64_t pages[] = { LAPIC_DEFAULT_BASE, IOAPIC_BASE, HPET_BASE, TESTDEV_IOMEM };

static void setup(void)
{
    struct vmm *m = &the_vmm;
    xbt_vm_config cfg = XBT_VM_CONFIG_INIT;
    cfg.ram_size = 4u << 20;
    if (xbt_vm_create(&cfg, &m->vm) != XBT_OK || xbt_vcpu_create(m->vm, &m->cpu) != XBT_OK) {
        fprintf(stderr, "fuzz_devices: cannot create a VM: %s\n", xbt_last_host_error());
        exit(1);
    }
    memset(m->unknown_port_seen, 0xff, sizeof m->unknown_port_seen); /* no open-bus log */
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->timer_cv, NULL);
    int fd = memfd_create("fuzz-disk", 0);
    if (fd < 0 || ftruncate(fd, 64 * 512) != 0)
        exit(1);
    snprintf(disk_path, sizeof disk_path, "/proc/self/fd/%d", fd);
}

/* A fresh board for each input. */
static void power_on(void)
{
    struct vmm *m = &the_vmm;
    ata_detach_all(m);
    m->exit_requested = false;
    m->next_timer_ns = 0;
    m->isa_level = 0;
    memset(&m->testdev, 0, sizeof m->testdev);
    struct disk_spec d = { 1, disk_path, false };
    char err[256];
    if (pc_init(m, &d, 1, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_devices: %s\n", err);
        exit(1);
    }
    static int devnull = -1;
    if (devnull < 0)
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    m->com1.out_fd = devnull; /* the UART's output goes nowhere */
}

static void step(struct vmm *m, const uint8_t *r)
{
    uint32_t v;
    memcpy(&v, r + 4, 4);
    unsigned kind = r[0] & 3, size = 1u << (r[3] & 3);
    if (kind < 2) {
        uint16_t port = (r[2] & 0x80) ? (uint16_t)(r[1] | (r[2] & 0x7f) << 8)
                                      : ports[r[1] % (sizeof ports / sizeof ports[0])];
        if (size > 4)
            size = 4;
        uint32_t got = vmm_port_io(m, port, size, kind == 1, v);
        if (kind == 1 && size < 4 && got >> (8 * size))
            abort(); /* an IN returns only the bytes asked for */
    } else {
        uint64_t page = pages[r[2] & 3];
        uint64_t gpa = page + ((r[1] | (unsigned)r[3] << 6) & 0xfff);
        uint64_t data = v | (uint64_t)v << 32;
        pc_mmio(m, 0, gpa, size, kind == 2, &data);
    }
    if (r[0] & 4) {
        pc_poll(m, vmm_now_ns());
        int vec = intr_ack(m, 0);
        if (vec < -1 || vec > 255)
            abort();
    }
    m->exit_requested = false; /* a reset or power-off is a legal end: carry on */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    struct vmm *m = &the_vmm;
    power_on();
    pthread_mutex_lock(&m->lock);
    lapic_sync_base(m, 0);
    for (size_t i = 0; i + 8 <= size; i += 8)
        step(m, data + i);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

#ifdef REPLAY_MAIN
/* fuzz_devices_replay [N]: N seeded random inputs (default 2000), each up to 512 steps;
   the devices' own messages (resets, power-offs) go to /dev/null. */
int main(int argc, char **argv)
{
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0)
        dup2(devnull, 2);
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 2000;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    static uint8_t buf[512 * 8];
    for (unsigned i = 0; i < n; i++) {
        size_t len = 8 * (1 + (s >> 33) % 512);
        for (size_t k = 0; k < len; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            buf[k] = (uint8_t)(s >> 24);
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("fuzz_devices_replay: %u inputs, no crash\n", n);
    return 0;
}
#endif
