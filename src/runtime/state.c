/*
 * state.c - save and restore (API 1.4): the guest's x87/SSE state and pending events,
 * and the whole VM as one versioned stream (docs/ARCHITECTURE.md, "Save and restore").
 *
 * Stream: "XBTSTATE", u32 format version, u32 0; then sections, each a 16-byte header
 * (u32 tag, u32 flags, u64 payload length) and its payload; the last is END, whose
 * payload is a checksum of every byte before its header.  All little-endian.  A reader
 * skips a section it does not know unless its flags mark it required.  Guest RAM is
 * described by the MEM section (the memory slots: a restore goes into a VM with the same
 * slots) and written in RAM sections (u64 guest physical address, then the bytes) for
 * the nonzero pages of every slot, ROM and the embedder's files included; a restore
 * zeroes every slot first.  Everything else the VM holds is derived from
 * guest memory and registers and is dropped by a restore: translations, chains, lookup
 * tables, code-page protection, window mappings (the runner processes' D-windows too).
 * A VM with several vCPUs (API 1.7): a VCPU section (u32 index, u32 count) before each
 * vCPU's own sections (CPU0, MSRS, FPU, EVNT, TSC); a VM with one has none, so its
 * stream is as before.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <x86intrin.h>

#include "vcpu.h"

_Static_assert(sizeof(xbt_fpu) == 512, "xbt_fpu is an FXSAVE image");
_Static_assert(offsetof(xbt_fpu, mxcsr) == 24 && offsetof(xbt_fpu, st) == 32 &&
               offsetof(xbt_fpu, xmm) == 160, "FXSAVE layout");
_Static_assert(sizeof(xbt_vcpu_events) == 8, "events");

#define STATE_MAGIC "XBTSTATE"
#define STATE_VERSION 1u
#define SEC_REQUIRED 1u
#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
enum {
    SEC_CONF = TAG('C', 'O', 'N', 'F'), /* the VM's config as it shapes the guest */
    SEC_CPU = TAG('C', 'P', 'U', '0'),  /* registers, segments, control and debug regs */
    SEC_MSRS = TAG('M', 'S', 'R', 'S'), /* u32 count, then (u32 index, u32 0, u64 value) */
    SEC_FPU = TAG('F', 'P', 'U', ' '),  /* xbt_fpu */
    SEC_EVENTS = TAG('E', 'V', 'N', 'T'), /* xbt_vcpu_events */
    SEC_TSC = TAG('T', 'S', 'C', ' '),  /* u64 guest TSC at the save, u64 offset to host */
    SEC_MEM = TAG('M', 'E', 'M', ' '),  /* the memory slots: u32 count, u32 0, then per
                                           slot u32 slot, u32 flags, u64 gpa, u64 size */
    SEC_RAM = TAG('R', 'A', 'M', ' '),  /* u64 gpa, then bytes (within one slot) */
    SEC_END = TAG('E', 'N', 'D', ' '),  /* u64 checksum */
    SEC_VCPU = TAG('V', 'C', 'P', 'U'), /* u32 index, u32 count: the sections up to the
                                           next VCPU are that vCPU's (several vCPUs) */
};
#define CPU_SEC_LEN (10 * 4 + 10 * 20 + 2 * 8 + 4 * 4 + 8 * 4 + 4)
#define MAX_MSRS 40
#define MEM_SEC_MAX (8 + 24 * XBT_MAX_MEM_SLOTS)

static __thread char state_err[256];

const char *xbt_state_error(void)
{
    return state_err;
}

static xbt_status fail(xbt_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static xbt_status fail(xbt_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(state_err, sizeof state_err, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- x87/SSE ------------------------------------------------------------------------ */

/* The host's MXCSR_MASK (bits outside it are reserved: FXRSTOR raises #GP). */
static uint32_t host_mxcsr_mask(void)
{
    static uint32_t mask;
    if (!mask) {
        uint8_t img[512] __attribute__((aligned(16)));
        memset(img, 0, sizeof img);
        __builtin_ia32_fxsave64(img);
        uint32_t m;
        memcpy(&m, img + 28, 4);
        mask = m ? m : 0xFFBF;
    }
    return mask;
}

xbt_status xbt_vcpu_get_fpu(xbt_vcpu *v, xbt_fpu *f)
{
    if (!v || !f || atomic_load(&v->running))
        return XBT_E_INVAL;
    /* Between runs the state is in ctx.fpu (fxsave64 layout): the exit stubs save it
       from the registers, the runner's exit copies it back (xbt_runner_run). */
    const uint8_t *x = v->ctx.fpu;
    uint64_t fip, fdp;
    memset(f, 0, sizeof *f);
    memcpy(f, x, 8); /* FCW, FSW, FTW, reserved, FOP */
    memcpy(&fip, x + 8, 8);
    memcpy(&fdp, x + 16, 8);
    f->fip = (uint32_t)fip;
    f->fdp = (uint32_t)fdp;
    memcpy(&f->mxcsr, x + 24, 4);
    f->mxcsr_mask = host_mxcsr_mask();
    memcpy(f->st, x + 32, sizeof f->st + sizeof f->xmm);
    f->reserved0 = 0;
    for (int i = 0; i < 8; i++)
        memset(f->st[i] + 10, 0, 6);
    return XBT_OK;
}

xbt_status xbt_vcpu_set_fpu(xbt_vcpu *v, const xbt_fpu *f)
{
    if (!v || !f || atomic_load(&v->running) || (f->mxcsr & ~host_mxcsr_mask()))
        return XBT_E_INVAL;
    uint8_t *x = v->ctx.fpu;
    uint64_t fip = f->fip, fdp = f->fdp;
    uint32_t mask = host_mxcsr_mask();
    memset(x, 0, 512);
    memcpy(x, f, 8);
    x[5] = 0;
    memcpy(x + 8, &fip, 8);
    memcpy(x + 16, &fdp, 8);
    memcpy(x + 24, &f->mxcsr, 4);
    memcpy(x + 28, &mask, 4);
    memcpy(x + 32, f->st, sizeof f->st + sizeof f->xmm); /* XMM8-15 stay zero */
    return XBT_OK;
}

/* ---- events ------------------------------------------------------------------------- */

/* The last exit waits for the embedder or has more to send: the vCPU is mid-instruction. */
static bool exit_pending(const struct xbt_vcpu *v)
{
    const struct xbt_vcpu_mmio *m = &v->mmio;
    return v->pio.in_pending || m->pending || m->exit_ready || m->step_active || m->run ||
           m->co_rd_n || m->co_rd_requested || m->co_wr_sent < m->co_wr_n || v->smc.data;
}

xbt_status xbt_vcpu_get_events(xbt_vcpu *v, xbt_vcpu_events *e)
{
    if (!v || !e || atomic_load(&v->running))
        return XBT_E_INVAL;
    memset(e, 0, sizeof *e);
    e->nmi_pending = atomic_load(&v->nmi_pending);
    e->nmi_blocked = v->arch.nmi_blocked;
    e->interrupt_shadow = xbt_in_shadow(v);
    e->halted = v->arch.halted;
    e->debug_trap = v->arch.tss_trap;
    e->resume_flag = v->arch.rf;
    /* (While a watch step waits to run, ghit is that step's, not yet due.) */
    e->db_pending = (uint8_t)((v->dbg.wstep ? 0 : v->dbg.ghit & 0xF) |
                              (v->tf.pending ? 0x10 : 0));
    e->exit_pending = exit_pending(v);
    return XBT_OK;
}

xbt_status xbt_vcpu_set_events(xbt_vcpu *v, const xbt_vcpu_events *e)
{
    if (!v || !e || atomic_load(&v->running) || e->exit_pending || e->db_pending > 0x1F ||
        (e->nmi_pending | e->nmi_blocked | e->interrupt_shadow | e->halted | e->debug_trap |
         e->resume_flag) > 1)
        return XBT_E_INVAL;
    atomic_store(&v->nmi_pending, e->nmi_pending != 0);
    v->arch.nmi_blocked = e->nmi_blocked;
    v->arch.interrupt_shadow = e->interrupt_shadow;
    v->arch.shadow_eip = v->ctx.eip;
    v->ctx.sti_shadow = 0; /* (the embedder's word is the whole shadow) */
    v->arch.halted = e->halted;
    v->arch.tss_trap = e->debug_trap;
    v->arch.rf = e->resume_flag;
    v->dbg.ghit = e->db_pending & 0xF;
    v->tf.pending = (e->db_pending & 0x10) != 0;
    if (e->nmi_pending || !e->interrupt_shadow)
        v->ctx.intr_gate = (uint64_t)(uintptr_t)xbt_jit_intr_pending; /* looked at first */
    return XBT_OK;
}

/* ---- the stream: checksum, buffered writer, exact reader ---------------------------- */

/* A 64-bit checksum over a byte stream, independent of how the stream is cut into
   pieces (it catches corruption, not tampering). */
struct sum {
    uint64_t h, n;
    uint8_t part[8];
    unsigned np;
};

static inline uint64_t sum_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static void sum_add(struct sum *s, const uint8_t *p, size_t len)
{
    s->n += len;
    if (s->np) {
        size_t k = 8 - s->np < len ? 8 - s->np : len;
        memcpy(s->part + s->np, p, k);
        s->np += (unsigned)k, p += k, len -= k;
        if (s->np < 8)
            return;
        uint64_t w;
        memcpy(&w, s->part, 8);
        s->h = sum_mix(s->h, w);
        s->np = 0;
    }
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        s->h = sum_mix(s->h, w);
    }
    memcpy(s->part, p, len);
    s->np = (unsigned)len;
}

static uint64_t sum_final(const struct sum *s)
{
    uint64_t w = 0;
    memcpy(&w, s->part, s->np);
    return sum_mix(sum_mix(s->h, w), s->n);
}

struct out {
    int fd;
    struct sum sum;
    bool failed;
    int err;
};

static void out_raw(struct out *o, const void *p, size_t len)
{
    sum_add(&o->sum, p, len);
    const uint8_t *b = p;
    while (len && !o->failed) {
        ssize_t n = write(o->fd, b, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            o->failed = true;
            o->err = n < 0 ? errno : EIO;
            return;
        }
        b += n;
        len -= (size_t)n;
    }
}

static void out_section(struct out *o, uint32_t tag, uint32_t flags, const void *p, uint64_t len)
{
    uint8_t h[16];
    memcpy(h, &tag, 4);
    memcpy(h + 4, &flags, 4);
    memcpy(h + 8, &len, 8);
    out_raw(o, h, 16);
    if (p)
        out_raw(o, p, len);
}

struct in {
    int fd;
    struct sum sum;
    xbt_status st;  /* XBT_OK until a read fails or the stream ends early */
};

static bool in_raw(struct in *i, void *p, size_t len)
{
    uint8_t *b = p;
    size_t want = len;
    while (len && i->st == XBT_OK) {
        ssize_t n = read(i->fd, b, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            i->st = fail(XBT_E_HOST, "cannot read the state: %s", strerror(errno));
        else if (n == 0)
            i->st = fail(XBT_E_INVAL, "the state is truncated");
        else
            b += n, len -= (size_t)n;
    }
    if (i->st != XBT_OK)
        return false;
    sum_add(&i->sum, p, want);
    return true;
}

/* Little-endian fields of a section's payload. */
struct buf {
    uint8_t *p;
    size_t n, cap;
};
static void put(struct buf *b, const void *v, size_t len)
{
    if (b->n <= b->cap && len <= b->cap - b->n)
        memcpy(b->p + b->n, v, len);
    b->n += len;
}
static void put32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put64(struct buf *b, uint64_t v) { put(b, &v, 8); }
static void get(struct buf *b, void *v, size_t len)
{
    if (b->n + len <= b->cap)
        memcpy(v, b->p + b->n, len);
    else
        memset(v, 0, len);
    b->n += len;
}
static uint32_t get32(struct buf *b) { uint32_t v; get(b, &v, 4); return v; }
static uint64_t get64(struct buf *b) { uint64_t v; get(b, &v, 8); return v; }

/* ---- the vCPU's registers as the CPU0 section ---------------------------------------- */

static void put_seg(struct buf *b, const xbt_segment *s)
{
    put32(b, s->base);
    put32(b, s->limit);
    put32(b, s->selector);
    uint8_t f[8] = { s->type, s->s, s->dpl, s->present, s->db, s->g, s->avl, s->unusable };
    put(b, f, 8);
}

static bool get_seg(struct buf *b, xbt_segment *s)
{
    s->base = get32(b);
    s->limit = get32(b);
    uint32_t sel = get32(b);
    uint8_t f[8];
    get(b, f, 8);
    s->selector = (uint16_t)sel;
    s->type = f[0], s->s = f[1], s->dpl = f[2], s->present = f[3];
    s->db = f[4], s->g = f[5], s->avl = f[6], s->unusable = f[7];
    return sel <= 0xFFFF && f[0] <= 15 && f[1] <= 1 && f[2] <= 3 && f[3] <= 1 && f[4] <= 1 &&
           f[5] <= 1 && f[6] <= 1 && f[7] <= 1;
}

/* What the CPU0 section holds, staged until the whole stream checked out. */
struct cpu_image {
    xbt_regs r;
    xbt_sregs s;
    uint32_t cpl;
};

static void put_cpu(struct buf *b, xbt_vcpu *v)
{
    xbt_regs r;
    xbt_sregs s;
    xbt_vcpu_get_regs(v, &r);
    xbt_vcpu_get_sregs(v, &s);
    const uint32_t *rr = &r.eax;
    for (int i = 0; i < 10; i++)
        put32(b, rr[i]);
    const xbt_segment *segs[10] = { &s.es, &s.cs, &s.ss, &s.ds, &s.fs, &s.gs, &s.tr, &s.ldt };
    for (int i = 0; i < 8; i++)
        put_seg(b, segs[i]);
    put_seg(b, &(xbt_segment){ 0 }); /* two spare descriptors: a later version's */
    put_seg(b, &(xbt_segment){ 0 });
    put32(b, s.gdt.base), put32(b, s.gdt.limit);
    put32(b, s.idt.base), put32(b, s.idt.limit);
    put32(b, s.cr0), put32(b, s.cr2), put32(b, s.cr3), put32(b, s.cr4);
    for (int i = 0; i < 8; i++)
        put32(b, s.dr[i]);
    put32(b, v->arch.cpl);
}

static bool get_cpu(struct buf *b, struct cpu_image *c)
{
    uint32_t *rr = &c->r.eax;
    for (int i = 0; i < 10; i++)
        rr[i] = get32(b);
    xbt_segment *segs[8] = { &c->s.es, &c->s.cs, &c->s.ss, &c->s.ds, &c->s.fs, &c->s.gs,
                             &c->s.tr, &c->s.ldt };
    bool ok = true;
    for (int i = 0; i < 8; i++)
        ok = get_seg(b, segs[i]) && ok;
    xbt_segment spare;
    get_seg(b, &spare), get_seg(b, &spare);
    uint32_t gl, il;
    c->s.gdt.base = get32(b), gl = get32(b);
    c->s.idt.base = get32(b), il = get32(b);
    c->s.gdt.limit = (uint16_t)gl, c->s.idt.limit = (uint16_t)il;
    c->s.cr0 = get32(b), c->s.cr2 = get32(b), c->s.cr3 = get32(b), c->s.cr4 = get32(b);
    for (int i = 0; i < 8; i++)
        c->s.dr[i] = get32(b);
    c->cpl = get32(b);
    /* What set_sregs and the run loop rely on: paging only with protected mode, a CPL
       of 0 or 3 (the run loop knows no other), and 0 in real mode. */
    bool pe = c->s.cr0 & XBT_CR0_PE;
    return ok && gl <= 0xFFFF && il <= 0xFFFF && (pe || !(c->s.cr0 & XBT_CR0_PG)) &&
           (c->cpl == 0 || (c->cpl == 3 && pe));
}

/* The MSRs a guest can write (the TSC is a section of its own). */
static const uint32_t saved_msrs[] = {
    0x1B, 0x174, 0x175, 0x176, 0x17A, 0x1A0, 0x277, 0xC0000080, 0xC0000103,
    0x400, 0x402, 0x403, 0x404, 0x406, 0x407, 0x408, 0x40A, 0x40B, /* MCi_CTL ADDR MISC */
    0x40C, 0x40E, 0x40F, 0x410, 0x412, 0x413, 0x414, 0x416, 0x417,
};
_Static_assert(XBT_MC_BANKS == 6, "saved_msrs lists six machine-check banks");

/* ---- guest RAM: the one place that walks it ------------------------------------------ */

static bool page_zero(const uint8_t *p)
{
    static const uint8_t zero[4096];
    return !memcmp(p, zero, 4096);
}

/* Every run of nonzero pages of every memory slot (ROM and the embedder's files too:
   all of them are the machine's) as a RAM section of at most 64 MiB within its slot. */
static void ram_save(struct out *o, xbt_vm *vm)
{
    const uint64_t max_run = (64ull << 20) >> 12;
    const uint8_t *view = vm->phys.view;
    for (const struct xbt_slot *sl = NULL; (sl = xbt_phys_next(&vm->phys, sl)) != NULL;) {
        const uint64_t first = sl->gpa >> 12, end = (sl->gpa + sl->size) >> 12;
        for (uint64_t p = first; p < end && !o->failed;) {
            if (page_zero(view + (p << 12))) {
                p++;
                continue;
            }
            uint64_t q = p + 1;
            while (q < end && q - p < max_run && !page_zero(view + (q << 12)))
                q++;
            uint64_t gpa = p << 12, len = (q - p) << 12;
            out_section(o, SEC_RAM, SEC_REQUIRED, NULL, 8 + len);
            out_raw(o, &gpa, 8);
            out_raw(o, view + gpa, len);
            p = q;
        }
    }
}

/* The slots' layout as the MEM section: which slot, ROM or not, where, how large (a
   dirty log is the embedder's watch, not the machine's). */
static void mem_save(struct out *o, xbt_vm *vm)
{
    uint8_t mem[MEM_SEC_MAX];
    struct buf b = { mem, 0, sizeof mem };
    uint32_t n = 0;
    for (const struct xbt_slot *sl = NULL; (sl = xbt_phys_next(&vm->phys, sl)) != NULL;)
        n++;
    put32(&b, n), put32(&b, 0);
    for (const struct xbt_slot *sl = NULL; (sl = xbt_phys_next(&vm->phys, sl)) != NULL;) {
        put32(&b, (uint32_t)(sl - vm->phys.slot));
        put32(&b, sl->flags & XBT_MEM_READONLY);
        put64(&b, sl->gpa), put64(&b, sl->size);
    }
    out_section(o, SEC_MEM, SEC_REQUIRED, mem, b.n);
}

/* A restore goes into a VM whose slots are the saved ones (set up by the embedder
   beforehand, from its own files or the library's memory). */
static xbt_status check_mem(xbt_vm *vm, struct buf *b)
{
    uint32_t n = get32(b), zero = get32(b), have = 0;
    if (zero || b->cap != 8 + 24ull * n)
        return fail(XBT_E_INVAL, "the state's MEM section is malformed");
    for (const struct xbt_slot *sl = NULL; (sl = xbt_phys_next(&vm->phys, sl)) != NULL;)
        have++;
    if (n != have)
        return fail(XBT_E_INVAL, "the state is of a VM with %u memory slots, this one has %u",
                    n, have);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t slot = get32(b), flags = get32(b);
        uint64_t gpa = get64(b), size = get64(b);
        const struct xbt_slot *sl = slot < XBT_MAX_MEM_SLOTS ? &vm->phys.slot[slot] : NULL;
        if (!sl || !sl->used || sl->gpa != gpa || sl->size != size ||
            (sl->flags & XBT_MEM_READONLY) != flags)
            return fail(XBT_E_INVAL, "the state's memory slot %u (%s at %#llx, %llu KiB) is "
                        "not this VM's", slot, flags ? "ROM" : "RAM", (unsigned long long)gpa,
                        (unsigned long long)(size >> 10));
    }
    return XBT_OK;
}

/* Every slot all zero (its file's pages returned to the host where it can). */
static void ram_clear(xbt_vm *vm)
{
    for (const struct xbt_slot *sl = NULL; (sl = xbt_phys_next(&vm->phys, sl)) != NULL;)
        if (fallocate(sl->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)sl->fd_offset, (off_t)sl->size) != 0)
            memset(vm->phys.view + sl->gpa, 0, sl->size);
}

/* A RAM section's payload (len bytes, the gpa first) into one slot. */
static xbt_status ram_load(struct in *i, xbt_vm *vm, uint64_t len)
{
    uint64_t gpa;
    if (len < 8 || !in_raw(i, &gpa, 8))
        return i->st ? i->st : fail(XBT_E_INVAL, "a RAM section of %llu bytes",
                                    (unsigned long long)len);
    len -= 8;
    if (gpa & 0xFFF || !xbt_phys_one_slot(&vm->phys, gpa, len ? len : 1))
        return fail(XBT_E_INVAL, "a RAM section at %#llx, %llu bytes, is not inside one of "
                    "the VM's memory slots", (unsigned long long)gpa, (unsigned long long)len);
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done > (1u << 24) ? 1u << 24 : (size_t)(len - done);
        if (!in_raw(i, vm->phys.view + gpa + done, n))
            return i->st;
        done += n;
    }
    return XBT_OK;
}

/* ---- save ---------------------------------------------------------------------------- */

static void save_vcpu(struct out *o, xbt_vcpu *v)
{
    uint8_t mem[CPU_SEC_LEN + 16];
    struct buf b = { mem, 0, sizeof mem };
    put_cpu(&b, v);
    out_section(o, SEC_CPU, SEC_REQUIRED, mem, b.n);
    struct { uint32_t index, zero; uint64_t value; } rec[MAX_MSRS];
    uint32_t n = 0;
    for (size_t k = 0; k < sizeof saved_msrs / sizeof saved_msrs[0] && n < MAX_MSRS; k++)
        if (xbt_msr_read(v, saved_msrs[k], &rec[n].value)) {
            rec[n].index = saved_msrs[k];
            rec[n++].zero = 0;
        }
    out_section(o, SEC_MSRS, SEC_REQUIRED, NULL, 4 + 16ull * n);
    out_raw(o, &n, 4);
    out_raw(o, rec, 16ull * n);
    xbt_fpu f;
    xbt_vcpu_get_fpu(v, &f);
    out_section(o, SEC_FPU, SEC_REQUIRED, &f, sizeof f);
    xbt_vcpu_events e;
    xbt_vcpu_get_events(v, &e);
    out_section(o, SEC_EVENTS, SEC_REQUIRED, &e, sizeof e);
    uint64_t tsc[2] = { __rdtsc() + v->ctx.tsc_offset, v->ctx.tsc_offset };
    out_section(o, SEC_TSC, SEC_REQUIRED, tsc, sizeof tsc);
}

/* What a save and a restore both need: a VM whose vCPUs (0 .. n_vcpus - 1) all exist
   and none runs, and a file; XBT_OK, else the error (state_err says why). */
static xbt_status stopped_vm(xbt_vm *vm, int fd)
{
    state_err[0] = 0;
    if (!vm || fd < 0)
        return fail(XBT_E_INVAL, "no VM or no file");
    if (!vm->n_vcpus)
        return fail(XBT_E_INVAL, "the VM has no vCPU");
    for (uint32_t k = 0; k < vm->n_vcpus; k++) {
        if (!vm->vcpus[k])
            return fail(XBT_E_INVAL, "the VM's vCPU %u was destroyed (a state holds vCPUs "
                        "0 to %u)", k, vm->n_vcpus - 1);
        if (atomic_load(&vm->vcpus[k]->running))
            return fail(XBT_E_INVAL, "vCPU %u is running", k);
    }
    return XBT_OK;
}

xbt_status xbt_vm_save_state(xbt_vm *vm, int fd)
{
    xbt_status vs = stopped_vm(vm, fd);
    if (vs != XBT_OK)
        return vs;
    for (uint32_t k = 0; k < vm->n_vcpus; k++)
        if (exit_pending(vm->vcpus[k]))
            return fail(XBT_E_INVAL, "vCPU %u is in the middle of an exit (an IN or MMIO "
                                     "read not completed): run it again first", k);
    struct out o = { .fd = fd };
    uint8_t hdr[16] = STATE_MAGIC;
    uint32_t ver = STATE_VERSION;
    memcpy(hdr + 8, &ver, 4);
    out_raw(&o, hdr, 16);
    uint64_t conf[2] = { xbt_vm_ram_size(vm), (uint64_t)(vm->cfg.flags & XBT_VM_LOCAL_APIC) |
                                           (uint64_t)vm->cfg.user_mode << 32 };
    out_section(&o, SEC_CONF, SEC_REQUIRED, conf, sizeof conf);
    mem_save(&o, vm);
    for (uint32_t k = 0; k < vm->n_vcpus; k++) {
        if (vm->n_vcpus > 1) {
            uint32_t id[2] = { k, vm->n_vcpus };
            out_section(&o, SEC_VCPU, SEC_REQUIRED, id, sizeof id);
        }
        save_vcpu(&o, vm->vcpus[k]);
    }
    ram_save(&o, vm);
    uint64_t sum = sum_final(&o.sum);
    out_section(&o, SEC_END, SEC_REQUIRED, &sum, 8);
    if (o.failed)
        return fail(XBT_E_HOST, "cannot write the state: %s", strerror(o.err));
    return XBT_OK;
}

/* ---- restore ------------------------------------------------------------------------- */

/* Everything but RAM, staged until the END section's checksum matched: the VM's
   sections, and each vCPU's. */
struct staged_cpu {
    uint32_t seen;          /* a bit per section of the vCPU read */
    struct cpu_image cpu;
    uint32_t n_msrs;
    struct { uint32_t index; uint64_t value; } msrs[MAX_MSRS];
    uint64_t old_msrs[MAX_MSRS]; /* apply_msrs: the values before, to put back */
    xbt_fpu fpu;
    xbt_vcpu_events ev;
    uint64_t tsc_guest, tsc_offset;
};
struct staged {
    uint32_t seen;          /* SEEN_CONF, SEEN_MEM */
    uint32_t count;         /* vCPUs the VCPU sections name (0: none, one vCPU) */
    uint32_t cur;           /* whose sections come now */
    uint32_t vcpus_seen;    /* a bit per VCPU section */
    struct staged_cpu cpu[XBT_MAX_VCPUS];
    bool ram_cleared;
};
enum { SEEN_CONF = 1, SEEN_CPU = 2, SEEN_MSRS = 4, SEEN_FPU = 8, SEEN_EVENTS = 16,
       SEEN_TSC = 32, SEEN_MEM = 64, SEEN_VM = SEEN_CONF | SEEN_MEM,
       SEEN_VCPU_ALL = SEEN_CPU | SEEN_MSRS | SEEN_FPU | SEEN_EVENTS | SEEN_TSC };

static xbt_status check_conf(xbt_vm *vm, struct buf *b)
{
    uint64_t ram = get64(b), flags = get64(b);
    if (ram != xbt_vm_ram_size(vm))
        return fail(XBT_E_INVAL, "the state is of a VM with %llu KiB of RAM, this one has "
                    "%llu KiB", (unsigned long long)(ram >> 10),
                    (unsigned long long)(xbt_vm_ram_size(vm) >> 10));
    if ((uint32_t)flags != (vm->cfg.flags & XBT_VM_LOCAL_APIC))
        return fail(XBT_E_INVAL, "the state is of a VM %s a local APIC (XBT_VM_LOCAL_APIC), "
                    "this one %s", (flags & XBT_VM_LOCAL_APIC) ? "with" : "without",
                    (vm->cfg.flags & XBT_VM_LOCAL_APIC) ? "has one" : "has none");
    return XBT_OK;
}

/* A VCPU section: the sections that follow are vCPU index's, of count. */
static xbt_status stage_vcpu(xbt_vm *vm, struct staged *s, struct buf *b)
{
    uint32_t index = get32(b), count = get32(b);
    if (count != vm->n_vcpus)
        return fail(XBT_E_INVAL, "the state is of a VM with %u vCPUs, this one has %u", count,
                    vm->n_vcpus);
    if (index >= count || (s->count && s->count != count))
        return fail(XBT_E_INVAL, "the state's VCPU section is malformed");
    if (s->vcpus_seen & (1u << index))
        return fail(XBT_E_INVAL, "the state has vCPU %u twice", index);
    if (!s->count && s->cpu[0].seen)
        return fail(XBT_E_INVAL, "the state has a vCPU's section before its first VCPU");
    s->count = count;
    s->cur = index;
    s->vcpus_seen |= 1u << index;
    return XBT_OK;
}

/* A known section's payload (already read into b) into the staging area. */
static xbt_status stage(xbt_vm *vm, struct staged *all, uint32_t tag, struct buf *b)
{
    struct staged_cpu *s = &all->cpu[all->cur];
    switch (tag) {
    case SEC_VCPU:
        return stage_vcpu(vm, all, b);
    case SEC_CONF:
        return check_conf(vm, b);
    case SEC_CPU:
        return get_cpu(b, &s->cpu) ? XBT_OK
                                   : fail(XBT_E_INVAL, "the state's CPU registers are invalid");
    case SEC_MEM:
        return check_mem(vm, b);
    case SEC_MSRS:
        s->n_msrs = get32(b);
        if (s->n_msrs > MAX_MSRS || b->cap != 4 + 16ull * s->n_msrs)
            return fail(XBT_E_INVAL, "the state's MSR section is malformed");
        for (uint32_t k = 0; k < s->n_msrs; k++) {
            s->msrs[k].index = get32(b);
            get32(b);
            s->msrs[k].value = get64(b);
        }
        return XBT_OK;
    case SEC_FPU:
        get(b, &s->fpu, sizeof s->fpu);
        return XBT_OK;
    case SEC_EVENTS:
        get(b, &s->ev, sizeof s->ev);
        return XBT_OK;
    default: /* SEC_TSC */
        s->tsc_guest = get64(b);
        s->tsc_offset = get64(b);
        return XBT_OK;
    }
}

/* The payload length each known section must have (0: not a fixed-size one). */
static uint64_t fixed_len(uint32_t tag)
{
    switch (tag) {
    case SEC_CONF: return 16;
    case SEC_CPU: return CPU_SEC_LEN;
    case SEC_FPU: return sizeof(xbt_fpu);
    case SEC_EVENTS: return sizeof(xbt_vcpu_events);
    case SEC_TSC: return 16;
    case SEC_END: return 8;
    case SEC_VCPU: return 8;
    default: return 0;
    }
}

static void tag_name(uint32_t tag, char out[5])
{
    for (int k = 0; k < 4; k++) {
        char c = (char)(tag >> (8 * k));
        out[k] = c >= 0x20 && c < 0x7f ? c : '?';
    }
    out[4] = 0;
}

/* One section after its header: staged, loaded (RAM) or skipped. */
static xbt_status read_section(struct in *i, xbt_vm *vm, struct staged *s, uint32_t tag,
                               uint32_t flags, uint64_t len)
{
    char name[5];
    tag_name(tag, name);
    uint64_t want = fixed_len(tag);
    bool known = want || tag == SEC_MSRS || tag == SEC_MEM || tag == SEC_RAM;
    if (want && len != want)
        return fail(XBT_E_INVAL, "the state's %s section has %llu bytes, not %llu", name,
                    (unsigned long long)len, (unsigned long long)want);
    if (tag == SEC_RAM) {
        if (!(s->seen & SEEN_MEM))
            return fail(XBT_E_INVAL, "the state has RAM before its memory slots");
        if (!s->ram_cleared)
            ram_clear(vm);
        s->ram_cleared = true;
        return ram_load(i, vm, len);
    }
    if (!known && (flags & SEC_REQUIRED))
        return fail(XBT_E_INVAL, "the state needs a newer xbt (required section '%s')", name);
    if (!known) { /* a later version's: skipped */
        uint8_t tmp[4096];
        for (uint64_t done = 0; done < len;) {
            size_t n = len - done > sizeof tmp ? sizeof tmp : (size_t)(len - done);
            if (!in_raw(i, tmp, n))
                return i->st;
            done += n;
        }
        return XBT_OK;
    }
    if ((tag == SEC_MSRS && len > 4 + 16 * MAX_MSRS) || (tag == SEC_MEM && len > MEM_SEC_MAX))
        return fail(XBT_E_INVAL, "the state's %s section is too long", name); /* others: above */
    uint8_t tmp[CPU_SEC_LEN + 16 * MAX_MSRS + MEM_SEC_MAX];
    if (!in_raw(i, tmp, len))
        return i->st;
    if (tag != SEC_CONF && !(s->seen & SEEN_CONF))
        return fail(XBT_E_INVAL, "the state's %s section comes before its configuration", name);
    uint32_t bit = tag == SEC_CONF ? SEEN_CONF : tag == SEC_CPU ? SEEN_CPU
                 : tag == SEC_MSRS ? SEEN_MSRS : tag == SEC_FPU ? SEEN_FPU
                 : tag == SEC_EVENTS ? SEEN_EVENTS : tag == SEC_MEM ? SEEN_MEM
                 : tag == SEC_TSC ? SEEN_TSC : 0; /* VCPU: stage_vcpu checks */
    uint32_t *seen = (bit & SEEN_VM) ? &s->seen : &s->cpu[s->cur].seen;
    if (*seen & bit)
        return fail(XBT_E_INVAL, "the state has two %s sections%s", name,
                    (bit & SEEN_VM) ? "" : " for one vCPU");
    *seen |= bit;
    struct buf b = { tmp, 0, (size_t)len };
    return stage(vm, s, tag, &b);
}

/* The staged vCPU state into the vCPU, whose caches all go. */
/* Puts back the MSRs apply_msrs wrote (the first n of s). */
static void unapply_msrs(xbt_vcpu *v, struct staged_cpu *s, uint32_t n)
{
    while (n--)
        xbt_msr_write(v, s->msrs[n].index, s->old_msrs[n]);
}

/* The staged MSRs written, or none of them (the ones written are put back) and false. */
static bool apply_msrs(xbt_vcpu *v, struct staged_cpu *s)
{
    for (uint32_t k = 0; k < s->n_msrs; k++) {
        if (!xbt_msr_read(v, s->msrs[k].index, &s->old_msrs[k]) ||
            !xbt_msr_write(v, s->msrs[k].index, s->msrs[k].value)) {
            fail(XBT_E_INVAL, "the state's MSR %#x of vCPU %u cannot take %#llx",
                 s->msrs[k].index, v->idx, (unsigned long long)s->msrs[k].value);
            unapply_msrs(v, s, k);
            return false;
        }
    }
    return true;
}

/* What apply would refuse for one vCPU's staged state, before anything changes. */
static xbt_status check_staged(const struct staged_cpu *s, uint32_t k)
{
    const xbt_vcpu_events *e = &s->ev;
    if (s->fpu.mxcsr & ~host_mxcsr_mask())
        return fail(XBT_E_INVAL, "the state's MXCSR of vCPU %u has reserved bits set", k);
    if (e->exit_pending || e->db_pending > 0x1F ||
        (e->nmi_pending | e->nmi_blocked | e->interrupt_shadow | e->halted | e->debug_trap |
         e->resume_flag) > 1)
        return fail(XBT_E_INVAL, "the state's events of vCPU %u are invalid", k);
    return XBT_OK;
}

/* The staged state (its MSRs already written) into the vCPU, whose caches all go. */
static void apply(xbt_vcpu *v, struct staged_cpu *s)
{
    const xbt_vcpu_events *e = &s->ev;
    xbt_vcpu_set_fpu(v, &s->fpu);
    memset(&v->pio, 0, offsetof(struct xbt_vcpu_pio, buf));
    v->pio.count = 0;
    v->mmio.pending = v->mmio.exit_ready = v->mmio.step_active = v->mmio.run = false;
    v->mmio.co_rd_n = v->mmio.co_wr_n = v->mmio.co_wr_sent = 0;
    v->mmio.co_rd_requested = false;
    v->smc.single = v->smc.data = false;
    v->dx.xlate = v->dx.sticky = v->dx.bounded = v->dx.refault = false;
    v->dx.crossed = ~0u;
    v->pf_pending = v->fetch_pf = false;
    xbt_vcpu_set_sregs(v, &s->cpu.s);
    v->arch.cpl = s->cpu.cpl;
    xbt_vcpu_set_regs(v, &s->cpu.r); /* virtual-8086 mode: CPL 3 whatever the stream says */
    xbt_vcpu_set_events(v, e); /* after set_regs, which ends HLT and the shadow */
    /* The guest TSC never goes below the value saved; on the same host the offset
       stays, so directly run user code (the raw host TSC) agrees with the kernel. */
    uint64_t host = __rdtsc();
    v->ctx.tsc_offset = (int64_t)(host + s->tsc_offset - s->tsc_guest) >= 0
                            ? s->tsc_offset : s->tsc_guest - host;
    /* Everything derived from guest memory and registers goes. */
    xbt_vcpu_flush_translations(v);
    xbt_paging_changed(v);
    xbt_stlb_flush(v);
    v->ctx.intr_gate = (uint64_t)(uintptr_t)xbt_jit_intr_pending;
}

/* Every vCPU's staged state in, or none changed and the error: what can be refused
   is checked (MSRs written and put back on a refusal) before anything else changes. */
static xbt_status apply_all(xbt_vm *vm, struct staged *s)
{
    uint32_t n = vm->n_vcpus;
    for (uint32_t k = 0; k < n; k++) {
        if ((s->cpu[k].seen & SEEN_VCPU_ALL) != SEEN_VCPU_ALL)
            return fail(XBT_E_INVAL, "the state lacks a section of vCPU %u (CPU0, MSRS, FPU, "
                        "EVNT, TSC)", k);
        xbt_status st = check_staged(&s->cpu[k], k);
        if (st != XBT_OK)
            return st;
    }
    for (uint32_t k = 0; k < n; k++) {
        if (!apply_msrs(vm->vcpus[k], &s->cpu[k])) {
            while (k--)
                unapply_msrs(vm->vcpus[k], &s->cpu[k], s->cpu[k].n_msrs);
            return XBT_E_INVAL;
        }
    }
    for (uint32_t k = 0; k < n; k++)
        apply(vm->vcpus[k], &s->cpu[k]);
    return XBT_OK;
}

static xbt_status restore_sections(struct in *i, xbt_vm *vm, struct staged *s)
{
    for (;;) {
        struct sum before = i->sum; /* END's checksum covers what precedes its header */
        uint8_t h[16];
        if (!in_raw(i, h, 16))
            return i->st;
        uint32_t tag, flags;
        uint64_t len;
        memcpy(&tag, h, 4);
        memcpy(&flags, h + 4, 4);
        memcpy(&len, h + 8, 8);
        if (tag == SEC_END) {
            uint64_t got;
            if (len != 8)
                return fail(XBT_E_INVAL, "the state's END section is malformed");
            if (!in_raw(i, &got, 8))
                return i->st;
            return got == sum_final(&before)
                       ? XBT_OK : fail(XBT_E_INVAL, "the state is corrupted (checksum mismatch)");
        }
        xbt_status st = read_section(i, vm, s, tag, flags, len);
        if (st != XBT_OK)
            return st;
    }
}

xbt_status xbt_vm_restore_state(xbt_vm *vm, int fd)
{
    xbt_status vs = stopped_vm(vm, fd);
    if (vs != XBT_OK)
        return vs;
    struct in i = { .fd = fd };
    uint8_t hdr[16];
    if (!in_raw(&i, hdr, 16))
        return i.st == XBT_E_INVAL ? fail(XBT_E_INVAL, "not an xbt state (too short)") : i.st;
    uint32_t ver, zero;
    memcpy(&ver, hdr + 8, 4);
    memcpy(&zero, hdr + 12, 4);
    if (memcmp(hdr, STATE_MAGIC, 8) != 0)
        return fail(XBT_E_INVAL, "not an xbt state (no XBTSTATE header)");
    if (ver != STATE_VERSION || zero)
        return fail(XBT_E_INVAL, "an xbt state of format version %u; this xbt reads %u", ver,
                    STATE_VERSION);
    static __thread struct staged s;
    memset(&s, 0, sizeof s);
    xbt_status st = restore_sections(&i, vm, &s);
    if (st != XBT_OK)
        return st;
    if ((s.seen & SEEN_VM) != SEEN_VM)
        return fail(XBT_E_INVAL, "the state lacks a section (CONF, MEM)");
    if (!s.count && vm->n_vcpus > 1)
        return fail(XBT_E_INVAL, "the state is of a VM with 1 vCPU, this one has %u",
                    vm->n_vcpus);
    if (!s.ram_cleared)
        ram_clear(vm); /* all of RAM was zero */
    return apply_all(vm, &s);
}
