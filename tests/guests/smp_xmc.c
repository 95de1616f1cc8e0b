/*
 * smp_xmc.c - cross-modifying code (issue 16), by the protocol of the SDM (vol. 3,
 * "Handling Cross-Modifying Code"): one CPU writes new instruction bytes into a function
 * the other has already executed, then sets a flag; the other waits for the flag,
 * executes a serializing instruction (CPUID) and calls the function, which must return
 * the round's new immediate.  The function changes form from round to round (MOV,
 * XOR+ADD, MOV+NOT, PUSH+POP: 6 to 8 bytes), 1,000 rounds each way (CPU 0 writes and
 * CPU 1 runs, then the reverse), and 1,000 more where the running CPU keeps executing
 * other code on the same page while the writer rewrites the function.
 */
#include "lib/smp.h"

#define ROUNDS 1000u
#define B_VALUE 0x5a5a5a5au

typedef u32 (*fn0)(void);
/* Code on a page of its own; the function at its start, a second one half-way. */
static u8 code[4096] __attribute__((aligned(4096))) = { 0xc3 };
#define FN_A ((fn0)(void *)code)
#define FN_B ((fn0)(void *)(code + 2048))

static volatile u32 flag, ack, bad, first_bad, first_got, busy, b_calls, timed_out;

static u32 imm_of(u32 r) { return r * 0x9e3779b9u + 0x01234567u; }

static void put32(u8 *p, u32 v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (u8)(v >> (8 * i));
}

/* The round's function: four encodings that all return imm_of(r) in EAX, built aside
   and stored as two dwords (QEMU TCG invalidates its translations of the page on each
   store to it: byte stores made a round cost milliseconds). */
static void emit(u32 r)
{
    u8 p[8] = { 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3 };
    u32 imm = imm_of(r);
    switch (r % 4) {
    case 0: p[0] = 0xb8; put32(p + 1, imm); p[5] = 0xc3; break;                 /* mov; ret */
    case 1: p[0] = 0x31; p[1] = 0xc0; p[2] = 0x05; put32(p + 3, imm); p[7] = 0xc3; break;
                                                                       /* xor; add; ret */
    case 2: p[0] = 0xb8; put32(p + 1, ~imm); p[5] = 0xf7; p[6] = 0xd0; p[7] = 0xc3; break;
                                                                       /* mov; not; ret */
    case 3: p[0] = 0x68; put32(p + 1, imm); p[5] = 0x58; p[6] = 0xc3; break;  /* push; pop; ret */
    }
    volatile u32 *c = (volatile u32 *)(void *)code;
    c[0] = p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24;
    c[1] = p[4] | p[5] << 8 | p[6] << 16 | (u32)p[7] << 24;
}

static int wait_flag(u32 r)
{
    struct smp_clock c;
    smp_clock_start(&c);
    for (u32 spin = 0; flag != r; spin++) {
        if (busy && FN_B() == B_VALUE) /* other code on the page, while it changes */
            b_calls++;
        cpu_relax();
        if ((spin & 255) == 255 && smp_clock_us(&c) > 10000000)
            return 0;
    }
    return 1;
}

static void executor(int cpu)
{
    (void)cpu;
    if (FN_A() != imm_of(0)) /* round 0's function: executed before any change */
        bad++;
    ack = 0;
    for (u32 r = 1; r <= ROUNDS; r++) {
        if (!wait_flag(r)) {
            timed_out++;
            return;
        }
        serialize();
        for (int k = 0; k < 3; k++) { /* a few calls: hot code, not just first use */
            u32 got = FN_A();
            if (got != imm_of(r) && !bad++) {
                first_bad = r;
                first_got = got;
            }
        }
        ack = r;
    }
}

static void writer(int cpu)
{
    (void)cpu;
    for (u32 r = 1; r <= ROUNDS; r++) {
        if (!smp_wait_eq(&ack, r - 1, 10000000)) {
            timed_out++;
            return;
        }
        emit(r);
        barrier(); /* the bytes before the flag: x86-TSO keeps the stores in order */
        flag = r;
    }
    if (!smp_wait_eq(&ack, ROUNDS, 10000000))
        timed_out++;
}

static void series(int writer_cpu, int with_busy, const char *name)
{
    char msg[96];
    emit(0);
    flag = 0;
    ack = 0xffffffffu;
    bad = 0;
    timed_out = 0;
    busy = (u32)with_busy;
    b_calls = 0;
    if (writer_cpu == 0) {
        smp_call(1, executor);
        writer(0);
    } else {
        smp_call(1, writer);
        executor(0);
    }
    smp_join(1);
    if (bad)
        printf("smp_xmc: %s: %u wrong results, the first in round %u: %x, want %x\n", name,
               bad, first_bad, first_got, imm_of(first_bad));
    if (timed_out)
        printf("smp_xmc: %s: a wait of 10 s timed out (flag %u, ack %u)\n", name, flag, ack);
    char *m = msg;
    for (const char *s = name; *s; s++)
        *m++ = *s;
    for (const char *s = ": every round's new code ran"; *s; s++)
        *m++ = *s;
    *m = 0;
    CHECK(!bad && !timed_out, msg);
}

void main(void)
{
    if (!smp_boot_all())
        return;
    u8 *b = code + 2048;
    b[0] = 0xb8;
    put32(b + 1, B_VALUE);
    b[5] = 0xc3;
    series(0, 0, "CPU 0 writes, CPU 1 runs");
    series(1, 0, "CPU 1 writes, CPU 0 runs");
    series(0, 1, "CPU 0 writes, CPU 1 runs other code on the page meanwhile");
    printf("smp_xmc: CPU 1 ran the other function %u times while waiting\n", b_calls);
    CHECK(b_calls > 0, "the other function on the page kept running");
}
