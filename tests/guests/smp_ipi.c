/*
 * smp_ipi.c - interprocessor interrupts through the local APIC's ICR (issue 16): a
 * fixed-vector ping-pong between CPU 0 and CPU 1 (each ping's handler on CPU 1 answers
 * with a pong), broadcasts to all excluding self from every CPU, self-IPIs by shorthand,
 * IPIs to flat logical destinations, NMIs by IPI taken by the target's NMI handler
 * while it runs with IF=0, and IPIs that wake a CPU in HLT.  Handlers count per CPU and
 * vector: every IPI must reach exactly the CPUs it names, once.
 */
#include "lib/smp.h"

#define V_PING 0x30
#define V_PONG 0x31
#define V_BCAST 0x32
#define V_SELF 0x33
#define V_WAKE 0x34
#define V_LOGICAL 0x35
#define NV 6
#define ROUNDS 1000
#define NMIS 10
#define WAKES 20
#define WAIT_US 5000000 /* generous: a loaded host may leave a vCPU thread unscheduled */

static volatile u32 hits[SMP_MAX][NV], nmis[SMP_MAX], nmi_if[SMP_MAX];
static volatile u32 stop, send_req[SMP_MAX], halting, woke, wake_seen;

static void on_ipi(struct frame *f)
{
    int me = smp_self();
    hits[me][f->vector - V_PING]++;
    if (f->vector == V_PING) /* answer from the handler: IF=0 here, the ICR is ours */
        smp_ipi(smp_cpus[0].apic_id, V_PONG);
    apic_write(APIC_EOI, 0);
}

static void on_nmi(struct frame *f)
{
    int me = smp_self();
    nmis[me]++;
    nmi_if[me] = f->eflags & 0x200; /* the interrupted code's IF */
}

static u32 total(int v)
{
    u32 s = 0;
    for (int i = 0; i < smp_ncpus; i++)
        s += hits[i][v - V_PING];
    return s;
}

/* An AP waits for interrupts with IF=1 (or, nmi_only, IF=0) and sends what CPU 0 asks
   for in send_req (an ICR low word; bit 31 marks a request, destination 0). */
static void serve(int cpu)
{
    apic_write(APIC_LDR, 1u << (24 + cpu)); /* flat model (DFR as reset left it) */
    sti();
    while (!stop) {
        u32 r = send_req[cpu];
        if (r) {
            cli(); /* no handler between the ICR2 and ICR writes */
            smp_ipi(0, r & 0x7fffffff);
            sti();
            send_req[cpu] = 0;
        }
        cpu_relax();
    }
    cli();
}

static void serve_masked(int cpu)
{
    (void)cpu;
    cli();
    while (!stop)
        cpu_relax();
}

static void halt_loop(int cpu)
{
    (void)cpu;
    for (u32 r = 1; r <= WAKES; r++) {
        cli();
        if (stop) /* CPU 0 gave up (a wake-up failed): leave for the join */
            break;
        halting = r;
        /* STI's interrupt shadow covers HLT: an IPI sent after "halting" is seen
           arrives in HLT (or wakes it at once), never before it and lost. */
        __asm__ volatile("sti; hlt" ::: "memory");
        cli();
        wake_seen = hits[cpu][V_WAKE - V_PING];
        woke = r;
    }
}

static void start_all(smp_fn fn)
{
    stop = 0;
    for (int i = 1; i < smp_ncpus; i++)
        smp_call(i, fn);
}

static void stop_all(void)
{
    stop = 1;
    for (int i = 1; i < smp_ncpus; i++)
        smp_join(i);
}

/* CPU 0's own sends: with IF=0 around the two ICR writes. */
static void send(u32 dest, u32 low)
{
    cli();
    smp_ipi(dest, low);
    sti();
}

static void settle(void) { pm_delay_us(2000); }

/* Waits up to WAIT_US until vector v's count over all CPUs reaches want, then settles. */
static void wait_total(int v, u32 want)
{
    for (u32 waited = 0; waited < WAIT_US && total(v) < want; waited += 100)
        pm_delay_us(100);
    settle();
}

/* CPU c sends an IPI to destination 0 with ICR low word low: CPU 0 itself, an AP
   through its serve loop. */
static void request(int c, u32 low)
{
    if (c == 0) {
        send(0, low);
        return;
    }
    send_req[c] = 0x80000000u | low;
    smp_wait_eq(&send_req[c], 0, WAIT_US);
}

void main(void)
{
    if (!smp_boot_all())
        return;
    int n = smp_ncpus;
    for (int v = V_PING; v < V_PING + NV; v++)
        set_handler(v, on_ipi);
    set_handler(2, on_nmi);
    apic_write(APIC_LDR, 1u << 24);
    u32 id1 = smp_cpus[1].apic_id;

    /* Ping-pong: CPU 0 sends the next ping only after the last pong came back. */
    start_all(serve);
    sti();
    u32 lost = 0;
    for (u32 i = 1; i <= ROUNDS; i++) {
        send(id1, V_PING);
        if (!smp_wait_eq(&hits[0][V_PONG - V_PING], i, WAIT_US)) {
            printf("smp_ipi: round %u: no pong in %u us (pings taken %u, pongs %u)\n", i,
                   WAIT_US, hits[1][V_PING - V_PING], hits[0][V_PONG - V_PING]);
            lost++;
            break;
        }
    }
    settle();
    CHECK_EQ(lost, 0, "ping-pong: every pong came back");
    CHECK_EQ(hits[1][V_PING - V_PING], ROUNDS, "ping-pong: CPU 1 took every ping");
    CHECK_EQ(hits[0][V_PONG - V_PING], ROUNDS, "ping-pong: CPU 0 took every pong");
    CHECK_EQ(total(V_PING) + total(V_PONG), 2 * ROUNDS, "ping-pong: nobody else took one");

    /* Broadcast to all excluding self, from each CPU in turn.  Each wait is for the
       count that is due (a vCPU thread of a loaded host may be descheduled for
       milliseconds), then a settle shows that nothing more arrives. */
    int bcast_ok = 1;
    for (int from = 0; from < n; from++) {
        u32 before = total(V_BCAST), own = hits[from][V_BCAST - V_PING];
        request(from, 0xc0000 | V_BCAST);
        wait_total(V_BCAST, before + (u32)(n - 1));
        if (total(V_BCAST) != before + (u32)(n - 1) || hits[from][V_BCAST - V_PING] != own) {
            printf("smp_ipi: broadcast from CPU %d: total %u, want %u; the sender's %u, want %u\n",
                   from, total(V_BCAST), before + (u32)(n - 1), hits[from][V_BCAST - V_PING], own);
            bcast_ok = 0;
        }
    }
    CHECK(bcast_ok, "all-excluding-self: each broadcast reached the n-1 others, not the sender");
    int each = 1;
    for (int i = 0; i < n; i++)
        each &= hits[i][V_BCAST - V_PING] == (u32)(n - 1);
    CHECK(each, "all-excluding-self: every CPU took one from each other CPU");

    /* Self-IPI by shorthand, on each CPU: only the sender takes it. */
    int self_ok = 1;
    for (int c = 0; c < n; c++) {
        u32 before = total(V_SELF);
        request(c, 0x40000 | V_SELF);
        wait_total(V_SELF, before + 1);
        if (hits[c][V_SELF - V_PING] != 1 || total(V_SELF) != before + 1) {
            printf("smp_ipi: self-IPI on CPU %d: its count %u, total %u\n", c,
                   hits[c][V_SELF - V_PING], total(V_SELF));
            self_ok = 0;
        }
    }
    CHECK(self_ok, "self-IPI: taken once, by the sender only, on every CPU");

    /* Flat logical destinations: CPU i has logical ID bit i (n <= 8). */
    send(0, 0x800 | V_LOGICAL); /* smp_ipi writes the mask as ICR2's dest << 24 */
    settle();
    CHECK_EQ(total(V_LOGICAL), 0, "logical destination mask 0: nobody");
    send(1u << 1, 0x800 | V_LOGICAL);
    wait_total(V_LOGICAL, 1);
    CHECK(hits[1][V_LOGICAL - V_PING] == 1 && total(V_LOGICAL) == 1,
          "logical destination CPU 1's bit: CPU 1 only");
    send((1u << n) - 1, 0x800 | V_LOGICAL);
    wait_total(V_LOGICAL, 1 + (u32)n);
    int logical_all = 1;
    for (int i = 0; i < n; i++)
        logical_all &= hits[i][V_LOGICAL - V_PING] == (i == 1 ? 2u : 1u);
    CHECK(logical_all, "logical destination of every CPU's bit: each once, the sender too");
    stop_all();

    /* NMI by IPI to CPU 1, which spins with IF=0. */
    start_all(serve_masked);
    pm_delay_us(1000);
    u32 nmi_lost = 0;
    for (u32 i = 1; i <= NMIS; i++) {
        send(id1, 0x400); /* delivery mode NMI: the vector field is ignored */
        if (!smp_wait_eq(&nmis[1], i, WAIT_US)) {
            printf("smp_ipi: NMI %u not taken in %u us (count %u)\n", i, WAIT_US, nmis[1]);
            nmi_lost++;
            break;
        }
    }
    settle();
    CHECK_EQ(nmi_lost, 0, "NMI IPI: every NMI taken");
    CHECK_EQ(nmis[1], NMIS, "NMI IPI: CPU 1's NMI handler ran once per NMI");
    CHECK(!nmi_if[1], "NMI IPI: taken while CPU 1 ran with IF=0");
    CHECK_EQ(nmis[0], 0, "NMI IPI: not on the sender");
    stop_all();

    /* IPIs that wake CPU 1 from HLT. */
    stop = 0;
    smp_call(1, halt_loop);
    u32 wake_fail = 0;
    for (u32 r = 1; r <= WAKES; r++) {
        if (!smp_wait_eq(&halting, r, WAIT_US)) {
            printf("smp_ipi: CPU 1 did not reach HLT %u\n", r);
            wake_fail++;
            break;
        }
        pm_delay_us(300); /* long enough that CPU 1 sits in HLT */
        send(id1, V_WAKE);
        if (!smp_wait_eq(&woke, r, WAIT_US)) {
            printf("smp_ipi: IPI %u did not wake CPU 1 (handler count %u)\n", r,
                   hits[1][V_WAKE - V_PING]);
            wake_fail++;
            break;
        }
    }
    if (wake_fail) {
        stop = 1;
        send(id1, V_WAKE); /* do not leave it halted for the join */
    }
    smp_join(1);
    CHECK_EQ(wake_fail, 0, "HLT: every IPI woke CPU 1");
    CHECK_EQ(wake_seen, WAKES, "HLT: each wake-up ran the IPI's handler first");
    cli();
}
