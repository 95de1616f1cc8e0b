/*
 * test_smp.c - several vCPUs of one VM, through the public API (API 1.6).
 *
 * The guests are flat 32-bit CPL 0 code with paging off (each vCPU's start state) or on
 * (a page directory of 4 MiB identity pages), one host thread per vCPU running it until
 * it halts.  Checked: creation limits and indices; CPUID's initial APIC ID; LOCK-prefixed increments and a
 * CMPXCHG loop from four vCPUs at once (exact totals); cross-modifying code: one vCPU
 * rewrites the immediate of a function the other has run (and so translated), then
 * raises a flag; the other waits for the flag, serializes (CPUID) and calls the function,
 * which must return the new immediate every round (SDM vol. 3, 9.1.3), with paging off
 * and on; a TLB of each vCPU's own: an INVLPG on one leaves the other's stale mapping
 * alone (as hardware may), a CR3 load there takes the new one; save and restore of
 * three vCPUs (each goes on from its own point in a new VM; other vCPU counts refuse).
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xbt/xbt.h"

#define MAXV 4
struct smp {
    xbt_vm *vm;
    xbt_vcpu *cpu[MAXV];
    uint8_t *ram;
    int n;
};

/* What one vCPU's thread saw: the OUTs to port 0xf0 (their data), the last exit. */
struct run_result {
    struct smp *s;
    int k;
    uint32_t outs[8];
    int n_outs;
    uint32_t reason;
    char msg[256];
};

static void *run_vcpu(void *arg)
{
    struct run_result *r = arg;
    xbt_vcpu *cpu = r->s->cpu[r->k];
    for (;;) {
        xbt_exit *ex;
        if (xbt_vcpu_run(cpu, &ex) != XBT_OK) {
            r->reason = ~0u;
            return NULL;
        }
        r->reason = ex->reason;
        if (ex->reason == XBT_EXIT_IO && !ex->io.is_in && ex->io.port == 0xf0 && r->n_outs < 8) {
            r->outs[r->n_outs++] = ex->io.data;
            continue;
        }
        if (ex->reason == XBT_EXIT_INTERNAL_ERROR)
            snprintf(r->msg, sizeof r->msg, "%s", ex->internal.message);
        return NULL;
    }
}

static void setup(struct smp *s, int n)
{
    memset(s, 0, sizeof *s);
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 16u << 20;
    c.user_mode = XBT_USER_STRICT;
    ck_assert_int_eq(xbt_vm_create(&c, &s->vm), XBT_OK);
    s->ram = xbt_vm_ram(s->vm);
    s->n = n;
    for (int k = 0; k < n; k++) {
        ck_assert_int_eq(xbt_vcpu_create(s->vm, &s->cpu[k]), XBT_OK);
        ck_assert_uint_eq(xbt_vcpu_index(s->cpu[k]), (uint32_t)k);
    }
}

/* vCPU k starts at eip with its own stack; with pd, paging on through that directory. */
static void start_at(struct smp *s, int k, uint32_t eip, uint32_t pd)
{
    xbt_regs r;
    ck_assert_int_eq(xbt_vcpu_get_regs(s->cpu[k], &r), XBT_OK);
    r.eip = eip;
    r.esp = 0x90000 + 0x1000 * (uint32_t)k;
    ck_assert_int_eq(xbt_vcpu_set_regs(s->cpu[k], &r), XBT_OK);
    if (!pd)
        return;
    xbt_sregs sr;
    ck_assert_int_eq(xbt_vcpu_get_sregs(s->cpu[k], &sr), XBT_OK);
    sr.cr3 = pd;
    sr.cr4 |= 0x10;        /* PSE */
    sr.cr0 |= 0x80010000u; /* PG, WP */
    ck_assert_int_eq(xbt_vcpu_set_sregs(s->cpu[k], &sr), XBT_OK);
}

/* Runs every vCPU on its own thread until each stops with exit `reason`; res[k] says how. */
static void run_all_until(struct smp *s, struct run_result *res, uint32_t reason)
{
    pthread_t t[MAXV];
    for (int k = 0; k < s->n; k++) {
        res[k] = (struct run_result){ .s = s, .k = k };
        ck_assert_int_eq(pthread_create(&t[k], NULL, run_vcpu, &res[k]), 0);
    }
    for (int k = 0; k < s->n; k++)
        pthread_join(t[k], NULL);
    for (int k = 0; k < s->n; k++)
        ck_assert_msg(res[k].reason == reason, "vCPU %d: exit %u %s", k, res[k].reason,
                      res[k].msg);
}

static void run_all(struct smp *s, struct run_result *res)
{
    run_all_until(s, res, XBT_EXIT_HLT);
}

static void put(struct smp *s, uint32_t at, const uint8_t *code, size_t n)
{
    memcpy(s->ram + at, code, n);
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

/* A page directory at pd of 4 MiB identity pages for the first 16 MiB. */
static void identity_pd(struct smp *s, uint32_t pd)
{
    for (uint32_t i = 0; i < 4; i++) {
        uint32_t e = (i << 22) | 0x83; /* P, W, PS */
        memcpy(s->ram + pd + 4 * i, &e, 4);
    }
}

START_TEST(create_limits)
{
    struct smp s;
    setup(&s, 1);
    xbt_vcpu *more[XBT_MAX_VCPUS];
    for (int k = 1; k < XBT_MAX_VCPUS; k++) {
        ck_assert_int_eq(xbt_vcpu_create(s.vm, &more[k]), XBT_OK);
        ck_assert_uint_eq(xbt_vcpu_index(more[k]), (uint32_t)k);
    }
    xbt_vcpu *extra;
    ck_assert_int_eq(xbt_vcpu_create(s.vm, &extra), XBT_E_INVAL);
    /* Several vCPUs: user code runs translated, and says so; no save. */
    const char *why = NULL;
    ck_assert_uint_eq(xbt_vm_user_mode(s.vm, &why), XBT_USER_STRICT);
    int fd = memfd_create("smp-state", 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(xbt_vm_save_state(s.vm, fd), XBT_OK); /* every vCPU (API 1.7) */
    close(fd);
    /* The last one destroyed and made again gets its index back. */
    xbt_vcpu_destroy(more[XBT_MAX_VCPUS - 1]);
    ck_assert_int_eq(xbt_vcpu_create(s.vm, &extra), XBT_OK);
    ck_assert_uint_eq(xbt_vcpu_index(extra), XBT_MAX_VCPUS - 1);
    xbt_vm_destroy(s.vm);

    /* Once a vCPU has run, no more are made. */
    setup(&s, 1);
    s.ram[0x2000] = 0xf4; /* hlt */
    start_at(&s, 0, 0x2000, 0);
    xbt_exit *ex;
    ck_assert_int_eq(xbt_vcpu_run(s.cpu[0], &ex), XBT_OK);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_HLT);
    ck_assert_int_eq(xbt_vcpu_create(s.vm, &extra), XBT_E_INVAL);
    /* ... but a VM whose only vCPU is gone gets vCPU 0 again, which runs. */
    xbt_vcpu_destroy(s.cpu[0]);
    ck_assert_int_eq(xbt_vcpu_create(s.vm, &s.cpu[0]), XBT_OK);
    ck_assert_uint_eq(xbt_vcpu_index(s.cpu[0]), 0);
    start_at(&s, 0, 0x2000, 0);
    ck_assert_int_eq(xbt_vcpu_run(s.cpu[0], &ex), XBT_OK);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_HLT);
    xbt_vm_destroy(s.vm);
}
END_TEST

/* MSRs of the CPU model that a save carries, and each vCPU's value for them. */
static const uint32_t cpumodel_msr[3] = { 0xC0000080u, 0xC0000103u, 0x417 };
static uint64_t cpumodel_value(int m, int k)
{
    return m == 0 ? (uint64_t)(k & 1) : m == 1 ? 0x100u + (uint64_t)k : 0x5a5a0000ull + (uint64_t)k;
}

/* Four vCPUs: 100,000 LOCK INCs each, then 20,000 CMPXCHG-loop additions of 3 each. */
/* Save and restore of three vCPUs (API 1.7): each stops after its first OUT to 0xf1 with
   registers and an MSR of its own, the state goes into a new VM of three vCPUs, where
   each must go on from its own point (its next OUT to 0xf0 carries its EAX + 1); VMs
   of another vCPU count refuse the stream, and a one-vCPU stream is refused by them. */
static int save_three(struct smp *s)
{
    setup(s, 3);
    const uint8_t code[] = {
        0x40,             /* inc eax */
        0xe6, 0xf1,       /* out 0xf1, al: stop */
        0x40,             /* inc eax */
        0xe7, 0xf0,       /* out 0xf0, eax */
        0xf4,             /* hlt */
    };
    put(s, 0x2000, code, sizeof code);
    for (int k = 0; k < 3; k++) {
        start_at(s, k, 0x2000, 0);
        xbt_regs r;
        ck_assert_int_eq(xbt_vcpu_get_regs(s->cpu[k], &r), XBT_OK);
        r.eax = 100 + 10 * (uint32_t)k;
        ck_assert_int_eq(xbt_vcpu_set_regs(s->cpu[k], &r), XBT_OK);
        ck_assert_int_eq(xbt_vcpu_set_msr(s->cpu[k], 0x174, 7 + (uint64_t)k), XBT_OK);
        for (int m = 0; m < 3; m++) /* EFER.SCE, TSC_AUX, MC5_MISC: saved as well */
            ck_assert_int_eq(xbt_vcpu_set_msr(s->cpu[k], cpumodel_msr[m], cpumodel_value(m, k)),
                             XBT_OK);
    }
    struct run_result res[MAXV];
    run_all_until(s, res, XBT_EXIT_IO);
    int fd = memfd_create("smp-state", 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(xbt_vm_save_state(s->vm, fd) == XBT_OK, "%s", xbt_state_error());
    return fd;
}

START_TEST(save_restore_vcpus)
{
    struct smp a, b;
    int fd = save_three(&a);
    xbt_vm_destroy(a.vm);
    setup(&b, 3);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    ck_assert_msg(xbt_vm_restore_state(b.vm, fd) == XBT_OK, "%s", xbt_state_error());
    for (int k = 0; k < 3; k++) {
        xbt_regs r;
        uint64_t cs = 0;
        ck_assert_int_eq(xbt_vcpu_get_regs(b.cpu[k], &r), XBT_OK);
        ck_assert_uint_eq(r.eax, 101 + 10 * (uint32_t)k);
        ck_assert_uint_eq(r.eip, 0x2003);
        ck_assert_uint_eq(r.esp, 0x90000 + 0x1000 * (uint32_t)k);
        ck_assert_int_eq(xbt_vcpu_get_msr(b.cpu[k], 0x174, &cs), XBT_OK);
        ck_assert_uint_eq(cs, 7 + (uint64_t)k);
        for (int m = 0; m < 3; m++) {
            uint64_t v = ~0ull;
            ck_assert_int_eq(xbt_vcpu_get_msr(b.cpu[k], cpumodel_msr[m], &v), XBT_OK);
            ck_assert_uint_eq(v, cpumodel_value(m, k));
        }
    }
    struct run_result res[MAXV];
    run_all(&b, res);
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(res[k].n_outs, 1);
        ck_assert_uint_eq(res[k].outs[0], 102 + 10 * (uint32_t)k);
    }
    xbt_vm_destroy(b.vm);
    /* Two vCPUs, or four: not this state. */
    for (int n = 2; n <= 4; n += 2) {
        setup(&b, n);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        ck_assert_int_eq(xbt_vm_restore_state(b.vm, fd), XBT_E_INVAL);
        ck_assert_msg(strstr(xbt_state_error(), "with 3 vCPUs"), "%s", xbt_state_error());
        xbt_vm_destroy(b.vm);
    }
    close(fd);
    /* A one-vCPU state into three vCPUs. */
    setup(&a, 1);
    fd = memfd_create("one-state", 0);
    ck_assert_int_eq(xbt_vm_save_state(a.vm, fd), XBT_OK);
    xbt_vm_destroy(a.vm);
    setup(&b, 3);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    ck_assert_int_eq(xbt_vm_restore_state(b.vm, fd), XBT_E_INVAL);
    ck_assert_msg(strstr(xbt_state_error(), "with 1 vCPU"), "%s", xbt_state_error());
    xbt_vm_destroy(b.vm);
    close(fd);
}
END_TEST

START_TEST(locked_counters)
{
    struct smp s;
    setup(&s, MAXV);
    const uint32_t n = 100000, m = 20000;
    uint8_t code[] = {
        0xb9, 0, 0, 0, 0,                         /* mov ecx, n */
        0xf0, 0xff, 0x05, 0x00, 0x80, 0x00, 0x00, /* L: lock inc dword [0x8000] */
        0x49,                                     /* dec ecx */
        0x75, 0xf6,                               /* jnz L */
        0xb9, 0, 0, 0, 0,                         /* mov ecx, m */
        0xa1, 0x04, 0x80, 0x00, 0x00,             /* M: mov eax, [0x8004] */
        0x8d, 0x50, 0x03,                         /* R: lea edx, [eax + 3] */
        0xf0, 0x0f, 0xb1, 0x15, 0x04, 0x80, 0x00, 0x00, /* lock cmpxchg [0x8004], edx */
        0x75, 0xf3,                               /* jne R (EAX holds the value seen) */
        0x49,                                     /* dec ecx */
        0x75, 0xeb,                               /* jnz M */
        0xf4,                                     /* hlt */
    };
    put32(code + 1, n);
    put32(code + 16, m);
    put(&s, 0x2000, code, sizeof code);
    for (int k = 0; k < MAXV; k++)
        start_at(&s, k, 0x2000, 0);
    struct run_result res[MAXV];
    run_all(&s, res);
    uint32_t c1, c2;
    memcpy(&c1, s.ram + 0x8000, 4);
    memcpy(&c2, s.ram + 0x8004, 4);
    ck_assert_uint_eq(c1, MAXV * n);
    ck_assert_uint_eq(c2, MAXV * m * 3);
    xbt_vm_destroy(s.vm);
}
END_TEST

/* CPUID leaf 1 of vCPU k: initial APIC ID k (EBX bits 31-24). */
START_TEST(cpuid_apic_id)
{
    struct smp s;
    setup(&s, MAXV);
    const uint8_t code[] = {
        0xb8, 0x01, 0, 0, 0, 0x0f, 0xa2, /* mov eax, 1; cpuid */
        0x89, 0xd8, 0xe7, 0xf0, 0xf4,    /* mov eax, ebx; out 0xf0, eax; hlt */
    };
    put(&s, 0x2000, code, sizeof code);
    for (int k = 0; k < MAXV; k++)
        start_at(&s, k, 0x2000, 0);
    struct run_result res[MAXV];
    run_all(&s, res);
    for (int k = 0; k < MAXV; k++) {
        ck_assert_int_eq(res[k].n_outs, 1);
        ck_assert_uint_eq(res[k].outs[0] >> 24, (uint32_t)k);
    }
    xbt_vm_destroy(s.vm);
}
END_TEST

#define ROUNDS 500
/*
 * Writer (vCPU 0) at 0x4000, reader (vCPU 1) at 0x5000; F at 0x3000 is `mov eax, imm32;
 * ret`; flag, ack and the failure count at 0x6000, 0x6004, 0x6008.  Round k: the writer
 * stores k as F's immediate, then k in the flag, and waits for the ack; the reader
 * waits for the flag, runs CPUID, calls F, counts a failure unless it returned k, acks.
 * The reader ends with an OUT of the failure count to port 0xf0.
 */
static void cmc(uint32_t pd)
{
    struct smp s;
    setup(&s, 2);
    const uint8_t f[] = { 0xb8, 0, 0, 0, 0, 0xc3 };
    uint8_t writer[] = {
        0xbf, 0x01, 0, 0, 0,                /* mov edi, 1 */
        0x89, 0x3d, 0x01, 0x30, 0x00, 0x00, /* L: mov [0x3001], edi */
        0x89, 0x3d, 0x00, 0x60, 0x00, 0x00, /* mov [0x6000], edi */
        0x39, 0x3d, 0x04, 0x60, 0x00, 0x00, /* W: cmp [0x6004], edi */
        0x75, 0xf8,                         /* jne W */
        0x47,                               /* inc edi */
        0x81, 0xff, 0, 0, 0, 0,             /* cmp edi, ROUNDS + 1 */
        0x75, 0xe3,                         /* jne L */
        0xf4,                               /* hlt */
    };
    uint8_t reader[] = {
        0xbf, 0x01, 0, 0, 0,                /* mov edi, 1 */
        0x39, 0x3d, 0x00, 0x60, 0x00, 0x00, /* L: cmp [0x6000], edi */
        0x75, 0xf8,                         /* jne L */
        0x31, 0xc0, 0x0f, 0xa2,             /* xor eax, eax; cpuid */
        0xe8, 0xea, 0xdf, 0xff, 0xff,       /* call 0x3000 */
        0x39, 0xf8,                         /* cmp eax, edi */
        0x74, 0x06,                         /* je ok */
        0xff, 0x05, 0x08, 0x60, 0x00, 0x00, /* inc dword [0x6008] */
        0x89, 0x3d, 0x04, 0x60, 0x00, 0x00, /* ok: mov [0x6004], edi */
        0x47,                               /* inc edi */
        0x81, 0xff, 0, 0, 0, 0,             /* cmp edi, ROUNDS + 1 */
        0x75, 0xd6,                         /* jne L */
        0xa1, 0x08, 0x60, 0x00, 0x00,       /* mov eax, [0x6008] */
        0xe7, 0xf0,                         /* out 0xf0, eax */
        0xf4,                               /* hlt */
    };
    put32(writer + 28, ROUNDS + 1);
    put32(reader + 41, ROUNDS + 1);
    put(&s, 0x3000, f, sizeof f);
    put(&s, 0x4000, writer, sizeof writer);
    put(&s, 0x5000, reader, sizeof reader);
    if (pd)
        identity_pd(&s, pd);
    start_at(&s, 0, 0x4000, pd);
    start_at(&s, 1, 0x5000, pd);
    struct run_result res[2];
    run_all(&s, res);
    ck_assert_int_eq(res[1].n_outs, 1);
    ck_assert_msg(res[1].outs[0] == 0, "%u of %u calls ran the old code", res[1].outs[0],
                  ROUNDS);
    xbt_stats st = { .size = sizeof st };
    ck_assert_int_eq(xbt_vcpu_get_stats(s.cpu[1], &st), XBT_OK);
    /* The reader's translation of F went at (nearly) every round. */
    ck_assert_uint_ge(st.code_page_invalidations, ROUNDS / 2);
    xbt_vm_destroy(s.vm);
}

START_TEST(cross_modifying_code_unpaged)
{
    cmc(0);
}
END_TEST

START_TEST(cross_modifying_code_paged)
{
    cmc(0x7000);
}
END_TEST

/*
 * Each vCPU's own TLB.  Both run with paging on (PD at 0x7000: the first 4 MiB identity
 * through a page table at 0xa000, the rest 4 MiB pages).  vCPU 1 reads linear 0x300000
 * (frame 0x300000: its window now holds the mapping), then vCPU 0 remaps that page to
 * frame 0x301000 and runs INVLPG (its own TLB only) and raises a flag; vCPU 1 then loads
 * CR3 (a flush of its TLB) and must read the new frame.
 */
START_TEST(tlb_per_vcpu)
{
    struct smp s;
    setup(&s, 2);
    identity_pd(&s, 0x7000);
    uint32_t pde0 = 0xa000 | 3;
    memcpy(s.ram + 0x7000, &pde0, 4);
    for (uint32_t i = 0; i < 1024; i++) {
        uint32_t pte = (i << 12) | 3;
        memcpy(s.ram + 0xa000 + 4 * i, &pte, 4);
    }
    put32(s.ram + 0x300000, 0x1111);
    put32(s.ram + 0x301000, 0x2222);
    uint8_t v0[] = {
        0x39, 0x05, 0x00, 0x60, 0x00, 0x00,       /* W: cmp [0x6000], eax (eax = 0) */
        0x74, 0xf8,                               /* je W: until vCPU 1 has read */
        0xc7, 0x05, 0x00, 0xac, 0x00, 0x00, 0x03, 0x10, 0x30, 0x00, /* mov [0xac00], 0x301003 */
        0x0f, 0x01, 0x3d, 0x00, 0x00, 0x30, 0x00, /* invlpg [0x300000] */
        0xc7, 0x05, 0x04, 0x60, 0x00, 0x00, 0x01, 0, 0, 0, /* mov dword [0x6004], 1 */
        0xf4,
    };
    uint8_t v1[] = {
        0xa1, 0x00, 0x00, 0x30, 0x00,             /* mov eax, [0x300000] */
        0xe7, 0xf0,                               /* out 0xf0, eax */
        0xc7, 0x05, 0x00, 0x60, 0x00, 0x00, 0x01, 0, 0, 0, /* mov dword [0x6000], 1 */
        0x83, 0x3d, 0x04, 0x60, 0x00, 0x00, 0x00, /* W: cmp dword [0x6004], 0 */
        0x74, 0xf7,                               /* je W */
        0x0f, 0x20, 0xd8, 0x0f, 0x22, 0xd8,       /* mov eax, cr3; mov cr3, eax */
        0xa1, 0x00, 0x00, 0x30, 0x00,             /* mov eax, [0x300000] */
        0xe7, 0xf0,                               /* out 0xf0, eax */
        0xf4,
    };
    put(&s, 0x4000, v0, sizeof v0);
    put(&s, 0x5000, v1, sizeof v1);
    start_at(&s, 0, 0x4000, 0x7000);
    start_at(&s, 1, 0x5000, 0x7000);
    xbt_regs r;
    xbt_vcpu_get_regs(s.cpu[0], &r);
    r.eax = 0;
    xbt_vcpu_set_regs(s.cpu[0], &r);
    struct run_result res[2];
    run_all(&s, res);
    ck_assert_int_eq(res[1].n_outs, 2);
    ck_assert_uint_eq(res[1].outs[0], 0x1111);
    ck_assert_uint_eq(res[1].outs[1], 0x2222);
    xbt_vm_destroy(s.vm);
}
END_TEST

static Suite *smp_suite(void)
{
    Suite *s = suite_create("smp");
    TCase *tc = tcase_create("smp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, create_limits);
    tcase_add_test(tc, locked_counters);
    tcase_add_test(tc, cpuid_apic_id);
    tcase_add_test(tc, cross_modifying_code_unpaged);
    tcase_add_test(tc, cross_modifying_code_paged);
    tcase_add_test(tc, tlb_per_vcpu);
    tcase_add_test(tc, save_restore_vcpus);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(smp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
