/*
 * test_vmm_smp.c - xbt-run's SMP platform (tools/vmm) without running a guest: the
 * firmware tables for N vCPUs (MP table and ACPI MADT: checksums, one enabled processor
 * per vCPU with APIC ID = index, the BSP flag on 0), fw_cfg's CPU count, and the local
 * APICs' message routing (the ICR's destinations and shorthands, physical, flat and
 * cluster logical, lowest priority by arbitration priority, INIT and start-up, IOAPIC
 * messages, the 8259 to vCPU 0 only), and which vCPU threads are woken (events.c).
 *
 * The board is made with one real vCPU (the library may allow only one); the other
 * vCPUs are slots without an xbt_vcpu (NULL: kicks, stops and NMIs to them are no-ops
 * in the library), which is all the routing needs: it never runs them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm.h"

static int failures;
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            failures++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

static struct vmm the_vmm;

/* A fresh board with n vCPUs (vmm.lock is not contended here: one thread). */
static struct vmm *board(unsigned n)
{
    struct vmm *m = &the_vmm;
    if (!m->vm) {
        xbt_vm_config cfg = XBT_VM_CONFIG_INIT;
        cfg.ram_size = 4u << 20;
        cfg.flags = XBT_VM_LOCAL_APIC;
        if (xbt_vm_create(&cfg, &m->vm) != XBT_OK || xbt_vcpu_create(m->vm, &m->cpu) != XBT_OK) {
            fprintf(stderr, "test_vmm_smp: cannot create a VM: %s\n", xbt_last_host_error());
            exit(1);
        }
        pthread_mutex_init(&m->lock, NULL);
        pthread_cond_init(&m->timer_cv, NULL);
        memset(m->unknown_port_seen, 0xff, sizeof m->unknown_port_seen);
    }
    m->ncpus = n;
    memset(m->cpus, 0, sizeof m->cpus);
    m->cpus[0] = m->cpu;
    m->exit_requested = false;
    char err[256];
    if (pc_init(m, NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "test_vmm_smp: %s\n", err);
        exit(1);
    }
    return m;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* The ACPI table sig through the RSDT (checksummed), or NULL. */
static const uint8_t *acpi_find(const uint8_t *ram, const char *sig)
{
    const uint8_t *rsdp = NULL;
    for (uint32_t a = 0xe0000; a < 0x100000 && !rsdp; a += 16)
        if (!memcmp(ram + a, "RSD PTR ", 8))
            rsdp = ram + a;
    CHECK(rsdp && sum(rsdp, 20) == 0 && sum(rsdp, 36) == 0, "RSDP and its checksums");
    if (!rsdp)
        return NULL;
    const uint8_t *rsdt = ram + rd32(rsdp + 16);
    CHECK(sum(rsdt, rd32(rsdt + 4)) == 0, "RSDT checksum");
    for (uint32_t i = 36; i < rd32(rsdt + 4); i += 4) {
        const uint8_t *t = ram + rd32(rsdt + i);
        if (!memcmp(t, sig, 4))
            return t;
    }
    return NULL;
}

static void check_madt(const uint8_t *ram, unsigned n)
{
    const uint8_t *t = acpi_find(ram, "APIC");
    CHECK(t != NULL, "no MADT");
    if (!t)
        return;
    uint32_t len = rd32(t + 4);
    CHECK(sum(t, len) == 0, "MADT checksum with %u CPUs", n);
    unsigned cpus = 0;
    for (uint32_t off = 44; off + 2 <= len && t[off + 1] >= 2; off += t[off + 1]) {
        if (t[off] != 0)
            continue;
        CHECK(t[off + 2] == cpus && t[off + 3] == cpus && rd32(t + off + 4) == 1,
              "MADT processor %u: UID %u, APIC ID %u, flags %#x", cpus, t[off + 2],
              t[off + 3], rd32(t + off + 4));
        cpus++;
    }
    CHECK(cpus == n, "MADT lists %u processors, not %u", cpus, n);
}

static void check_mp(const uint8_t *ram, unsigned n)
{
    const uint8_t *fp = NULL;
    for (uint32_t a = 0xf0000; a < 0x100000 && !fp; a += 16)
        if (!memcmp(ram + a, "_MP_", 4))
            fp = ram + a;
    CHECK(fp && sum(fp, 16) == 0, "MP floating pointer and its checksum");
    if (!fp)
        return;
    const uint8_t *c = ram + rd32(fp + 4);
    uint16_t len = rd16(c + 4), entries = rd16(c + 34);
    CHECK(!memcmp(c, "PCMP", 4) && sum(c, len) == 0, "MP table checksum with %u CPUs", n);
    const uint8_t *p = c + 44;
    unsigned cpus = 0;
    for (unsigned i = 0; i < entries && p < c + len; i++) {
        if (p[0] == 0) {
            CHECK(p[1] == cpus && p[3] == (cpus ? 0x01 : 0x03),
                  "MP processor %u: APIC ID %u, flags %#x", cpus, p[1], p[3]);
            cpus++;
        }
        p += p[0] == 0 ? 20 : 8;
    }
    CHECK(p == c + len, "MP table entries end at its length");
    CHECK(cpus == n, "MP table lists %u processors, not %u", cpus, n);
}

static unsigned fwcfg_cpus(struct vmm *m, uint16_t item)
{
    vmm_port_io(m, 0x510, 2, false, item);
    return vmm_port_io(m, 0x511, 2, true, 0);
}

static void test_tables(void)
{
    for (unsigned n = 1; n <= VMM_MAX_CPUS; n++) {
        struct vmm *m = board(n);
        const uint8_t *ram = xbt_vm_ram(m->vm);
        check_madt(ram, n);
        check_mp(ram, n);
        CHECK(fwcfg_cpus(m, 0x05) == n, "fw_cfg NB_CPUS %u, not %u", fwcfg_cpus(m, 0x05), n);
        CHECK(fwcfg_cpus(m, 0x0f) == n, "fw_cfg MAX_CPUS %u, not %u", fwcfg_cpus(m, 0x0f), n);
    }
}

/* A local APIC register of vCPU cpu through its MMIO page. */
static void apic_w(struct vmm *m, unsigned cpu, unsigned reg, uint32_t v)
{
    uint64_t d = v;
    CHECK(lapic_mmio(m, cpu, LAPIC_DEFAULT_BASE + reg, 4, true, &d), "APIC %u write", cpu);
}

static uint32_t apic_r(struct vmm *m, unsigned cpu, unsigned reg)
{
    uint64_t d = 0;
    CHECK(lapic_mmio(m, cpu, LAPIC_DEFAULT_BASE + reg, 4, false, &d), "APIC %u read", cpu);
    return (uint32_t)d;
}

static bool irr(struct vmm *m, unsigned cpu, uint8_t v)
{
    return (m->lapic[cpu].irr[v >> 5] >> (v & 31)) & 1;
}

/* ICR low word: vector, delivery mode, logical, level/assert, shorthand. */
static uint32_t icr(uint8_t vector, unsigned mode, bool logical, unsigned shorthand)
{
    return vector | mode << 8 | (logical ? 1u << 11 : 0) | 1u << 14 | shorthand << 18;
}

static void test_destinations(void)
{
    struct vmm *m = board(4);
    for (unsigned k = 0; k < 4; k++) {
        CHECK(apic_r(m, k, 0x20) == k << 24, "APIC ID of vCPU %u", k);
        apic_w(m, k, 0xf0, 0x1ff); /* software enabled */
    }
    /* Physical: one APIC ID, or the broadcast. */
    CHECK(lapic_icr_targets(m, 0, icr(0x40, DM_FIXED, false, 0), 2u << 24) == 0x4, "phys 2");
    CHECK(lapic_icr_targets(m, 0, icr(0x40, DM_FIXED, false, 0), 7u << 24) == 0, "phys 7");
    CHECK(lapic_icr_targets(m, 1, icr(0x40, DM_FIXED, false, 0), 0xffu << 24) == 0xf, "phys all");
    /* Shorthands. */
    CHECK(lapic_icr_targets(m, 2, icr(0x40, DM_FIXED, false, 1), 0) == 0x4, "self");
    CHECK(lapic_icr_targets(m, 2, icr(0x40, DM_FIXED, false, 2), 0) == 0xf, "all");
    CHECK(lapic_icr_targets(m, 2, icr(0x40, DM_FIXED, false, 3), 0) == 0xb, "all but self");
    /* Logical flat: LDR bit k. */
    for (unsigned k = 0; k < 4; k++)
        apic_w(m, k, 0xd0, (1u << k) << 24);
    CHECK(lapic_icr_targets(m, 0, icr(0x40, DM_FIXED, true, 0), 0x5u << 24) == 0x5, "flat 5");
    CHECK(lapic_icr_targets(m, 0, icr(0x40, DM_FIXED, true, 0), 0xf0u << 24) == 0, "flat f0");
    /* Logical cluster: vCPUs 0, 1 in cluster 0 (bits 1, 2), 2, 3 in cluster 1 (1, 2). */
    static const uint8_t ldr[] = { 0x01, 0x02, 0x11, 0x12 };
    for (unsigned k = 0; k < 4; k++) {
        apic_w(m, k, 0xe0, 0x0fffffff);
        apic_w(m, k, 0xd0, (uint32_t)ldr[k] << 24);
    }
    CHECK(lapic_icr_targets(m, 0, icr(0x40, DM_FIXED, true, 0), 0x13u << 24) == 0xc,
          "cluster 1, both");
    CHECK(lapic_icr_targets(m, 0, icr(0x40, DM_FIXED, true, 0), 0x02u << 24) == 0x2,
          "cluster 0, second");
    CHECK(lapic_icr_targets(m, 0, icr(0x40, DM_FIXED, true, 0), 0xffu << 24) == 0xf,
          "cluster broadcast");
    /* A globally disabled APIC (IA32_APIC_BASE.EN clear) takes no message. */
    m->lapic[3].base_msr &= ~(1ull << 11);
    CHECK(lapic_dest_mask(m, 0xff, false) == 0x7, "disabled APIC 3 out of the broadcast");
}

static void test_delivery(void)
{
    struct vmm *m = board(4);
    for (unsigned k = 0; k < 4; k++)
        apic_w(m, k, 0xf0, 0x1ff);
    /* Fixed IPI through the ICR of vCPU 0 to APIC 2: only vCPU 2 has it. */
    apic_w(m, 0, 0x310, 2u << 24);
    apic_w(m, 0, 0x300, icr(0x51, DM_FIXED, false, 0));
    CHECK(irr(m, 2, 0x51) && !irr(m, 0, 0x51) && !irr(m, 1, 0x51), "fixed IPI to 2");
    CHECK(intr_pending(m, 2) && !intr_pending(m, 1), "vCPU 2 has an interrupt");
    CHECK(!(apic_r(m, 0, 0x300) & (1u << 12)), "delivery status idle");
    CHECK(intr_ack(m, 2) == 0x51, "vCPU 2 takes 0x51");
    /* Lowest priority to all but self: the lowest index of the set. */
    apic_w(m, 1, 0x300, icr(0x52, DM_LOWEST, false, 3));
    CHECK(irr(m, 0, 0x52) && !irr(m, 2, 0x52) && !irr(m, 3, 0x52), "lowest priority to 0");
    /* By arbitration priority (SDM 11.6.2.4): TPR 0x20 on 0 and 0x10 on 2; 3 has none. */
    apic_w(m, 0, 0x80, 0x20);
    apic_w(m, 2, 0x80, 0x10);
    apic_w(m, 1, 0x300, icr(0x53, DM_LOWEST, false, 3));
    CHECK(irr(m, 3, 0x53) && !irr(m, 0, 0x53) && !irr(m, 2, 0x53), "lowest TPR: 3");
    /* Now 3's request (class 5) and 2's vector in service (0x51) count: 0 with 0x20. */
    apic_w(m, 1, 0x300, icr(0x54, DM_LOWEST, false, 3));
    CHECK(irr(m, 0, 0x54) && !irr(m, 2, 0x54) && !irr(m, 3, 0x54), "lowest APR: 0");
    /* The same priority on all three: the lowest index. */
    apic_w(m, 0, 0x80, 0x60);
    apic_w(m, 2, 0x80, 0x60);
    apic_w(m, 3, 0x80, 0x60);
    apic_w(m, 1, 0x300, icr(0x55, DM_LOWEST, false, 3));
    CHECK(irr(m, 0, 0x55) && !irr(m, 2, 0x55) && !irr(m, 3, 0x55), "a tie: the lowest index");
    /* INIT then two start-ups to AP 3: it waits, takes the first vector. */
    CHECK(m->lapic[3].wait_sipi && !m->lapic[0].wait_sipi, "APs wait for SIPI at power-on");
    apic_w(m, 0, 0x310, 3u << 24);
    apic_w(m, 0, 0x300, icr(0, DM_INIT, false, 0));
    CHECK(m->lapic[3].init_pending, "INIT latched for 3");
    apic_w(m, 0, 0x300, (icr(0, DM_INIT, false, 0) | 1u << 15) & ~(1u << 14));
    apic_w(m, 0, 0x300, icr(0x9a, DM_STARTUP, false, 0));
    apic_w(m, 0, 0x300, icr(0x9b, DM_STARTUP, false, 0));
    lapic_wait_sipi(m, 3);
    CHECK(!m->lapic[3].init_pending && m->lapic[3].svr == 0xff, "INIT reset the APIC");
    CHECK(apic_r(m, 3, 0x20) == 3u << 24, "INIT keeps the APIC ID");
    CHECK(lapic_take_sipi(m, 3) == 0x9a, "the first start-up vector");
    CHECK(lapic_take_sipi(m, 3) == -1 && !m->lapic[3].wait_sipi, "started: no more SIPI");
    /* A start-up to a running AP is ignored. */
    apic_w(m, 0, 0x300, icr(0x9c, DM_STARTUP, false, 0));
    CHECK(lapic_take_sipi(m, 3) == -1, "SIPI to a running AP");
    /* INIT to the BSP resets the machine (as before SMP). */
    apic_w(m, 1, 0x310, 0);
    apic_w(m, 1, 0x300, icr(0, DM_INIT, false, 0));
    CHECK(m->exit_requested && m->exit_status == EXIT_RESET, "INIT to the BSP resets");
}

static void test_ioapic(void)
{
    struct vmm *m = board(3);
    for (unsigned k = 0; k < 3; k++) {
        apic_w(m, k, 0xf0, 0x1ff);
        apic_w(m, k, 0xd0, (1u << k) << 24); /* flat logical */
    }
    /* Pin 5: edge, fixed, logical destination 0x6 (vCPUs 1 and 2). */
    uint64_t d;
    d = 0x10 + 2 * 5 + 1, ioapic_mmio(m, IOAPIC_BASE, 4, true, &d);
    d = 0x06000000, ioapic_mmio(m, IOAPIC_BASE + 0x10, 4, true, &d);
    d = 0x10 + 2 * 5, ioapic_mmio(m, IOAPIC_BASE, 4, true, &d);
    d = 0x0861, ioapic_mmio(m, IOAPIC_BASE + 0x10, 4, true, &d);
    irq_set(m, 5, 1);
    CHECK(!irr(m, 0, 0x61) && irr(m, 1, 0x61) && irr(m, 2, 0x61), "IOAPIC logical 6");
    irq_set(m, 5, 0);
    /* The same, lowest priority: one of them (the lowest index, 1). */
    m->lapic[1].irr[3] = m->lapic[2].irr[3] = 0;
    d = 0x0961, ioapic_mmio(m, IOAPIC_BASE + 0x10, 4, true, &d);
    irq_set(m, 5, 1);
    CHECK(irr(m, 1, 0x61) && !irr(m, 2, 0x61), "IOAPIC lowest priority");
    irq_set(m, 5, 0);
    CHECK(intr_ack(m, 1) == 0x61 && !intr_pending(m, 1), "vCPU 1 takes 0x61");
    /* The 8259 (through LINT0, ExtINT) interrupts vCPU 0 only. */
    vmm_port_io(m, 0x21, 1, false, 0xfe); /* only IRQ0 unmasked */
    irq_pulse(m, 0);
    CHECK(intr_pending(m, 0) && !intr_pending(m, 1) && !intr_pending(m, 2), "8259 to vCPU 0");
}

/* Who is woken (events.c): intr_changed marks the halted vCPUs that have an interrupt
   to take, and those alone; an NMI marks its target. */
static void test_wake_marks(void)
{
    struct vmm *m = board(4);
    for (unsigned k = 0; k < 4; k++)
        apic_w(m, k, 0xf0, 0x1ff);
    m->halted = 0x6; /* vCPUs 1 and 2 wait in HLT */
    m->wake_mask = 0;
    apic_w(m, 0, 0x310, 2u << 24);
    apic_w(m, 0, 0x300, icr(0x51, DM_FIXED, false, 0));
    CHECK(m->wake_mask == 0x4, "IPI to halted 2 wakes 2 alone: mask %#x", m->wake_mask);
    CHECK(intr_ack(m, 2) == 0x51, "vCPU 2 takes 0x51");
    m->wake_mask = 0;
    apic_w(m, 0, 0x310, 3u << 24);
    apic_w(m, 0, 0x300, icr(0x52, DM_FIXED, false, 0));
    CHECK(m->wake_mask == 0, "IPI to running 3 wakes nobody: mask %#x", m->wake_mask);
    apic_w(m, 0, 0x310, 1u << 24);
    apic_w(m, 0, 0x300, icr(0, DM_NMI, false, 0));
    CHECK(m->wake_mask == 0x2, "NMI to 1 wakes 1: mask %#x", m->wake_mask);
    m->halted = 0;
    m->wake_mask = 0;
}

/* A thread in vmm_wait is woken by a mark and vmm_unlock from another thread (a lost
   wake-up hangs this test until ctest's timeout). */
static atomic_bool woke;
static volatile bool go;

static void *waiter(void *arg)
{
    struct vmm *m = arg;
    pthread_mutex_lock(&m->lock);
    while (!go)
        vmm_wait(m, 1);
    atomic_store(&woke, true);
    vmm_unlock(m);
    return NULL;
}

static void test_wait(void)
{
    struct vmm *m = board(2);
    pthread_t t;
    if (pthread_create(&t, NULL, waiter, m) != 0)
        return;
    for (int round = 0; round < 1000; round++) {
        pthread_mutex_lock(&m->lock); /* a change that is not for it: no wake */
        vmm_unlock(m);
    }
    pthread_mutex_lock(&m->lock);
    go = true;
    vmm_wake(m, 1u << 1);
    vmm_unlock(m);
    pthread_join(t, NULL);
    CHECK(atomic_load(&woke), "the waiter saw its condition");
}

/* pc-testdev's scratch memory, which vCPU threads serve without the device lock: reads
   back what was written, aligned or not; and which accesses the vCPU's own APIC would
   claim first (then the locked path answers): its page where IA32_APIC_BASE puts it
   now, moved over the scratch block too, and nothing while it is disabled. */
static void test_scratch(void)
{
    struct vmm *m = board(1);
    uint64_t v = 0x1122334455667788ull, r = 0;
    CHECK(testdev_mmio(m, TESTDEV_IOMEM + 8, 8, true, &v), "8-byte write");
    CHECK(testdev_mmio(m, TESTDEV_IOMEM + 8, 8, false, &r) && r == v, "8-byte read %llx",
          (unsigned long long)r);
    CHECK(testdev_mmio(m, TESTDEV_IOMEM + 9, 2, false, &r) && r == 0x6677, "unaligned %llx",
          (unsigned long long)r);
    v = 0xabcdef;
    CHECK(testdev_mmio(m, TESTDEV_IOMEM + 0xb, 3, true, &v), "3-byte write");
    CHECK(testdev_mmio(m, TESTDEV_IOMEM + 8, 8, false, &r) && r == 0x1122abcdef667788ull,
          "after the 3-byte write %llx", (unsigned long long)r);
    CHECK(!testdev_mmio(m, TESTDEV_IOMEM + TESTDEV_IOMEM_LEN - 2, 4, false, &r),
          "past the block's end");
    /* Within one aligned 8-byte word an access is one atomic access of the word (a
       compare-exchange for a store), so the block must be aligned (review: it was at 4
       mod 8, and 8-byte accesses across a host cache line tore). */
    CHECK(((uintptr_t)m->testdev.iomem & 63) == 0, "the block is 64-byte aligned");
    v = 0xa1b2c3;
    CHECK(testdev_mmio(m, TESTDEV_IOMEM + 0x21, 3, true, &v), "3 bytes within a word");
    CHECK(testdev_mmio(m, TESTDEV_IOMEM + 0x20, 8, false, &r) && r == 0xa1b2c300ull,
          "the word after it %llx", (unsigned long long)r);
    CHECK(testdev_mmio(m, TESTDEV_IOMEM + 0x22, 2, false, &r) && r == 0xa1b2,
          "2 of them back %llx", (unsigned long long)r);
    r = 5;
    CHECK(testdev_mmio(m, TESTDEV_IOMEM + TESTDEV_IOMEM_LEN, 0, false, &r) && r == 0,
          "an empty read at the end reads 0, as before");
    CHECK(!lapic_may_claim(m, 0, TESTDEV_IOMEM), "the APIC at its default base");
    CHECK(lapic_may_claim(m, 0, 0xfee00030), "the APIC's own page");
    uint64_t base = 0;
    CHECK(xbt_vcpu_get_msr(m->cpu, 0x1b, &base) == XBT_OK, "IA32_APIC_BASE");
    CHECK(xbt_vcpu_set_msr(m->cpu, 0x1b, TESTDEV_IOMEM | (base & 0xfff)) == XBT_OK, "move");
    CHECK(lapic_may_claim(m, 0, TESTDEV_IOMEM + 0x20), "the APIC moved over the block");
    CHECK(!lapic_may_claim(m, 0, TESTDEV_IOMEM + 0x1000), "past the moved APIC's page");
    CHECK(xbt_vcpu_set_msr(m->cpu, 0x1b, TESTDEV_IOMEM | (base & 0x1ff)) == XBT_OK, "disable");
    CHECK(!lapic_may_claim(m, 0, TESTDEV_IOMEM + 0x20), "a disabled APIC");
    CHECK(xbt_vcpu_set_msr(m->cpu, 0x1b, base) == XBT_OK, "back");
}

int main(void)
{
    test_tables();
    test_destinations();
    test_delivery();
    test_ioapic();
    test_wake_marks();
    test_wait();
    test_scratch();
    if (failures) {
        fprintf(stderr, "test_vmm_smp: %d failures\n", failures);
        return 1;
    }
    printf("test_vmm_smp: tables for 1-%d CPUs, destinations, delivery, IOAPIC, wake-ups, scratch: ok\n",
           VMM_MAX_CPUS);
    return 0;
}
