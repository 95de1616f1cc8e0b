/*
 * smp.c - the CPUs of the firmware's tables, started and given work (see smp.h).
 */
#include "smp.h"

struct smp_cpu smp_cpus[SMP_MAX];
int smp_ncpus;
volatile u32 smp_arrivals;

extern const u8 smp_tramp[], smp_tramp_gdtr[], smp_tramp_end[];
void ap_main(u32 arrival, u32 tramp_cs);

int smp_madt_ids(u32 *ids, int max)
{
    u32 madt = acpi_table("APIC");
    if (!madt)
        return -1;
    u32 len = *(u32 *)(madt + 4);
    int n = 0;
    /* Entries after the 44-byte header (36 standard, local APIC address, flags). */
    for (u32 p = madt + 44; p + 2 <= madt + len && *(u8 *)(p + 1) >= 2; p += *(u8 *)(p + 1)) {
        /* Type 0, processor local APIC: ACPI ID, APIC ID, flags (bit 0 enabled). */
        if (*(u8 *)p == 0 && (*(u32 *)(p + 4) & 1) && n < max)
            ids[n++] = *(u8 *)(p + 3);
    }
    return n;
}

int smp_mp_ids(u32 *ids, int max, u32 *bsp_id)
{
    u32 f = mp_floating();
    if (!f || !*(u32 *)(f + 4))
        return -1; /* none, or one of the default configurations (no table) */
    u32 t = *(u32 *)(f + 4);
    if (memcmp((void *)t, "PCMP", 4) || sum8((void *)t, *(u16 *)(t + 4)) != 0)
        return -1;
    u32 count = *(u16 *)(t + 34);
    u32 p = t + 44;
    int n = 0;
    for (u32 i = 0; i < count; i++) {
        u8 type = *(u8 *)p;
        if (type == 0) { /* processor: APIC ID, version, flags (0 enabled, 1 BSP) */
            u8 flags = *(u8 *)(p + 3);
            if ((flags & 1) && n < max)
                ids[n++] = *(u8 *)(p + 1);
            if ((flags & 2) && bsp_id)
                *bsp_id = *(u8 *)(p + 1);
            p += 20;
        } else if (type <= 4) {
            p += 8; /* bus, I/O APIC, I/O and local interrupt assignments */
        } else {
            break;
        }
    }
    return n;
}

int smp_expected(void) { return (int)cmdline_u32("cpus", 0); }

void smp_clock_start(struct smp_clock *c)
{
    c->last = pm_timer_read();
    c->ticks = 0;
}

u32 smp_clock_us(struct smp_clock *c)
{
    u32 now = pm_timer_read();
    c->ticks += (now - c->last) & 0xffffff;
    c->last = now;
    /* 3.58 ticks a microsecond, without a 64-bit division (no libgcc here). */
    return c->ticks / 358 * 100 + c->ticks % 358 * 100 / 358;
}

int smp_wait_eq(volatile u32 *p, u32 v, u32 max_us)
{
    struct smp_clock c;
    smp_clock_start(&c);
    for (u32 spin = 0;; spin++) {
        if (*p == v)
            return 1;
        cpu_relax();
        if ((spin & 255) == 255 && smp_clock_us(&c) >= max_us)
            return *p == v;
    }
}

void smp_ipi(u32 dest_apic_id, u32 low)
{
    while (apic_read(APIC_ICR) & 0x1000) /* delivery status: send pending */
        cpu_relax();
    apic_write(APIC_ICR2, dest_apic_id << 24);
    apic_write(APIC_ICR, low);
}

void smp_apic_on(void)
{
    apic_write(APIC_SVR, 0x100 | SMP_SPURIOUS);
    apic_write(APIC_TPR, 0);
}

int smp_self(void)
{
    u32 id = apic_read(APIC_ID) >> 24;
    for (int i = 0; i < smp_ncpus; i++)
        if (smp_cpus[i].apic_id == id)
            return i;
    return -1;
}

static void cpuid1(u32 *ebx)
{
    u32 a = 1, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(*ebx), "+c"(c), "=d"(d));
}

/* Each AP: set up like the BSP, then run what smp_call hands it, for ever. */
void ap_main(u32 arrival, u32 tramp_cs)
{
    struct { u16 limit; u32 base; } __attribute__((packed)) d = { 256 * 8 - 1, (u32)idt };
    __asm__ volatile("lidt %0" : : "m"(d));
    u32 svr = apic_read(APIC_SVR);
    smp_apic_on();
    u32 id = apic_read(APIC_ID) >> 24, ebx, esp, cr0, cs;
    cpuid1(&ebx);
    __asm__ volatile("movl %%esp, %0; movl %%cr0, %1; movl %%cs, %2"
                     : "=r"(esp), "=r"(cr0), "=r"(cs));
    struct smp_cpu *me = 0;
    for (int i = 1; i < smp_ncpus; i++)
        if (smp_cpus[i].apic_id == id)
            me = &smp_cpus[i];
    if (!me)
        for (;;)
            __asm__ volatile("cli; hlt"); /* not a CPU the BSP listed: stays out */
    me->apic_reg_id = id;
    me->cpuid_id = ebx >> 24;
    me->tramp_cs = tramp_cs;
    me->esp = esp;
    me->cr0 = cr0;
    me->cs = cs & 0xffff;
    me->arrival = arrival;
    me->svr_at_start = svr;
    me->work = 0;
    __asm__ volatile("lock incl %0" : "+m"(me->starts) : : "memory");
    me->online = 1;
    for (;;) {
        smp_fn fn;
        while (!(fn = me->work))
            cpu_relax();
        fn((int)(me - smp_cpus));
        barrier();
        me->work = 0;
    }
}

int smp_start_ap(int cpu, u32 vector, u32 max_us)
{
    u32 before = smp_cpus[cpu].starts, id = smp_cpus[cpu].apic_id;
    smp_cpus[cpu].online = 0;
    /* The SDM's sequence: INIT (level assert), 10 ms, SIPI, 200 us, SIPI, 200 us. */
    smp_ipi(id, 0x4500);
    pm_delay_us(10000);
    smp_ipi(id, 0x4600 | vector);
    pm_delay_us(200);
    smp_ipi(id, 0x4600 | vector);
    pm_delay_us(200);
    for (u32 waited = 0; waited < max_us; waited += 100) {
        if (smp_cpus[cpu].starts != before && smp_cpus[cpu].online)
            return 1;
        pm_delay_us(100);
    }
    return smp_cpus[cpu].starts != before && smp_cpus[cpu].online;
}

/* A spurious interrupt (an IPI withdrawn while the APIC raised it) takes no EOI and
   means nothing to the tests; without a handler the library would call it a failure. */
static void on_spurious(struct frame *f) { (void)f; }

int smp_boot(void)
{
    set_handler(SMP_SPURIOUS, on_spurious);
    u32 ids[SMP_MAX];
    int n = smp_madt_ids(ids, SMP_MAX);
    if (n <= 0)
        n = smp_mp_ids(ids, SMP_MAX, 0);
    smp_apic_on();
    u32 self = apic_read(APIC_ID) >> 24;
    /* CPU 0 is this one, the others in table order. */
    smp_ncpus = 1;
    smp_cpus[0].apic_id = self;
    for (int i = 0; i < n; i++)
        if (ids[i] != self)
            smp_cpus[smp_ncpus++].apic_id = ids[i];
    smp_cpus[0].online = 1;
    smp_cpus[0].apic_reg_id = self;
    u32 ebx;
    cpuid1(&ebx);
    smp_cpus[0].cpuid_id = ebx >> 24;

    u32 size = (u32)smp_tramp_end - (u32)smp_tramp;
    memcpy((void *)SMP_TRAMP, smp_tramp, size);
    struct { u16 limit; u32 base; } __attribute__((packed)) g = { GDT_ENTRIES * 8 - 1, (u32)gdt };
    memcpy((void *)(SMP_TRAMP + (smp_tramp_gdtr - smp_tramp)), &g, 6);
    int online = 1;
    for (int i = 1; i < smp_ncpus; i++)
        online += smp_start_ap(i, SMP_TRAMP >> 12, 5000000);
    return online;
}

void smp_call(int cpu, smp_fn fn)
{
    while (smp_cpus[cpu].work)
        cpu_relax();
    barrier();
    smp_cpus[cpu].work = fn;
}

void smp_join(int cpu)
{
    while (smp_cpus[cpu].work)
        cpu_relax();
    barrier();
}

void smp_all(smp_fn fn)
{
    for (int i = 1; i < smp_ncpus; i++)
        if (smp_cpus[i].online)
            smp_call(i, fn);
    fn(0);
    for (int i = 1; i < smp_ncpus; i++)
        if (smp_cpus[i].online)
            smp_join(i);
}

int smp_boot_all(void)
{
    int online = smp_boot();
    printf("smp: %d of %d listed CPUs online\n", online, smp_ncpus);
    CHECK(smp_ncpus >= 2, "at least two CPUs listed");
    CHECK_EQ(online, smp_ncpus, "every listed CPU online");
    return smp_ncpus >= 2 && online == smp_ncpus;
}
