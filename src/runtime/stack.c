/*
 * stack.c - the guest stack as the place frames are built on and read from: CALL's
 * return address, a call gate's copied parameters, an interrupt's frame, RET's and
 * IRET's pops.  A frame is checked whole (the segment limit, every page walked with the
 * access's rights) before its first byte is written, so a fault leaves no trace of it.
 * The stack of an inner privilege level comes from the current TSS (32- or 16-bit).
 */
#include <string.h>

#include "vcpu.h"
#include "runtime/xfer.h"

void xbt_stack_current(const struct xbt_vcpu *v, struct xbt_stack *st)
{
    st->ss = v->arch.seg[XBT_SS];
    st->desc = 0;
    st->esp = v->ctx.gpr[XBT_ESP];
    st->user = v->arch.cpl == 3;
}

static inline uint32_t sp_mask(const xbt_segment *ss)
{
    return ss->db ? 0xFFFFFFFFu : 0xFFFFu;
}

/* [off, off + len) within SS's limit (expand-down: above it, below the top). */
static bool in_limit(const xbt_segment *ss, uint32_t off, uint32_t len)
{
    if (ss->unusable)
        return false;
    uint32_t last = off + len - 1;
    if (!(ss->type & 8) && (ss->type & 4)) /* expand-down data */
        return off > ss->limit && last >= off && last <= sp_mask(ss);
    if (ss->limit == 0xFFFFFFFFu)
        return true; /* 4 GiB: offsets wrap */
    return last >= off && last <= ss->limit;
}

/* The frame [sp, sp + len) in offset space may wrap at the stack pointer's width: at
   most two runs.  Calls fn on each (offset, length, position in the frame). */
static bool each_run(const struct xbt_stack *st, uint32_t sp, uint32_t len,
                     bool (*fn)(void *, uint32_t, uint32_t, uint32_t), void *arg)
{
    uint32_t mask = sp_mask(&st->ss);
    sp &= mask;
    uint64_t room = (uint64_t)mask - sp + 1; /* bytes before the offset wraps */
    uint32_t first = room < len ? (uint32_t)room : len;
    if (!fn(arg, sp, first, 0))
        return false;
    return first == len || fn(arg, 0, len - first, first);
}

struct run_ctx {
    struct xbt_vcpu *v;
    const struct xbt_stack *st;
    bool write;
    uint8_t *buf;
};

static bool run_limit(void *a, uint32_t off, uint32_t len, uint32_t at)
{
    (void)at;
    const struct run_ctx *c = a;
    return in_limit(&c->st->ss, off, len);
}

static bool run_probe(void *a, uint32_t off, uint32_t len, uint32_t at)
{
    (void)at;
    const struct run_ctx *c = a;
    return xbt_probe_lin(c->v, c->st->ss.base + off, len, c->write, c->st->user);
}

static bool run_write(void *a, uint32_t off, uint32_t len, uint32_t at)
{
    const struct run_ctx *c = a;
    return xbt_write_lin_as(c->v, c->st->ss.base + off, c->buf + at, len, c->st->user);
}

static bool run_read(void *a, uint32_t off, uint32_t len, uint32_t at)
{
    const struct run_ctx *c = a;
    return xbt_read_lin_as(c->v, c->st->ss.base + off, c->buf + at, len, c->st->user);
}

int xbt_stack_room(struct xbt_vcpu *v, const struct xbt_stack *st, unsigned n,
                   unsigned size, uint32_t serr, uint32_t *err)
{
    uint32_t len = n * size;
    uint32_t sp = st->esp - len;
    struct run_ctx c = { v, st, true, NULL };
    if (!each_run(st, sp, len, run_limit, &c)) {
        *err = serr;
        return XBT_SSF;
    }
    /* The pages, word by word in the order the CPU pushes (the first word highest), so
       that a #PF names the first push that faults, and no lower page gets its accessed
       or dirty flag for a frame that faulted above it (QEMU TCG, which pushes word by
       word, reports the same CR2). */
    v->pf_pending = false;
    for (unsigned i = 0; i < n; i++)
        if (!each_run(st, st->esp - (i + 1) * size, size, run_probe, &c))
            return xbt_mem_fault(v, XBT_SSF, serr, err);
    return XBT_X_DONE;
}

void xbt_stack_put(struct xbt_vcpu *v, struct xbt_stack *st, const uint32_t *w, unsigned n,
                   unsigned size)
{
    uint8_t buf[40 * 4];
    uint32_t len = n * size;
    /* Memory order: the last word pushed lowest. */
    for (unsigned i = 0; i < n; i++) { /* fixed sizes: no library call per word */
        if (size == 4)
            memcpy(buf + (n - 1 - i) * 4, &w[i], 4);
        else
            memcpy(buf + (n - 1 - i) * 2, &w[i], 2);
    }
    uint32_t sp = st->esp - len;
    struct run_ctx c = { v, st, true, buf };
    each_run(st, sp, len, run_write, &c); /* checked by xbt_stack_room */
    uint32_t mask = sp_mask(&st->ss);
    st->esp = (st->esp & ~mask) | (sp & mask);
}

int xbt_stack_get(struct xbt_vcpu *v, struct xbt_stack *st, uint32_t *w, unsigned n,
                  unsigned size, uint32_t serr, uint32_t *err)
{
    uint8_t buf[40 * 4];
    uint32_t len = n * size;
    struct run_ctx c = { v, st, false, buf };
    if (!each_run(st, st->esp, len, run_limit, &c)) {
        *err = serr;
        return XBT_SSF;
    }
    v->pf_pending = false;
    if (!each_run(st, st->esp, len, run_read, &c))
        return xbt_mem_fault(v, XBT_SSF, serr, err);
    for (unsigned i = 0; i < n; i++) {
        w[i] = 0;
        if (size == 4)
            memcpy(&w[i], buf + i * 4, 4);
        else
            memcpy(&w[i], buf + i * 2, 2);
    }
    xbt_stack_add(st, len);
    return XBT_X_DONE;
}

void xbt_stack_add(struct xbt_stack *st, uint32_t n)
{
    uint32_t mask = sp_mask(&st->ss);
    st->esp = (st->esp & ~mask) | ((st->esp + n) & mask);
}

void xbt_stack_commit(struct xbt_vcpu *v, struct xbt_stack *st)
{
    if (st->desc) {
        xbt_mark_accessed(v, st->ss.selector, st->desc);
        st->ss.type |= 1;
        xbt_set_seg(v, XBT_SS, &st->ss);
    }
    v->ctx.gpr[XBT_ESP] = st->esp;
}

/*
 * The SS:ESP of privilege level dpl from the current TSS (32-bit: ESPn at 4 + 8n, SSn
 * after it; 16-bit: SPn at 2 + 4n, SSn after it), with the SDM's checks: the TSS limit
 * (#TS(TR)), SS not null, within its table, RPL = DPL = dpl, writable data (#TS(SS)),
 * present (#SS(SS)); every error code with ext.
 */
int xbt_stack_inner(struct xbt_vcpu *v, unsigned dpl, uint32_t ext, struct xbt_stack *st,
                    uint32_t *err)
{
    bool tss32 = v->arch.tr.type & 8;
    uint32_t at = tss32 ? dpl * 8 + 4 : dpl * 4 + 2, width = tss32 ? 4 : 2;
    uint32_t esp = 0;
    uint16_t ss = 0;
    *err = xbt_sel_err(v->arch.tr.selector, ext);
    if (v->arch.tr.unusable || !v->arch.tr.present || at + width + 1 > v->arch.tr.limit)
        return XBT_TS;
    v->pf_pending = false;
    if (!xbt_read_lin(v, v->arch.tr.base + at, &esp, width) ||
        !xbt_read_lin(v, v->arch.tr.base + at + width, &ss, 2))
        return xbt_mem_fault(v, XBT_TS, *err, err);
    *err = xbt_sel_err(ss, ext);
    if ((ss & ~3u) == 0 || (ss & 3) != dpl)
        return XBT_TS;
    uint64_t d;
    xbt_segment s;
    int r = xbt_desc_get(v, ss, XBT_TS, ext, &d, &s, err);
    if (r >= 0)
        return r;
    if (!xbt_is_wdata(&s) || s.dpl != dpl)
        return XBT_TS;
    if (!s.present)
        return XBT_SSF;
    st->ss = s;
    st->desc = d;
    st->esp = esp;
    st->user = false;
    return XBT_X_DONE;
}
