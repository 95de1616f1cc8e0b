/*
 * watch.c - watchpoints (xbt_vcpu_set_watchpoint): data breakpoints at guest linear
 * addresses, trap-like, at any CPL.
 *
 * Translated code reaches guest memory through the windows only, so a page that holds
 * a watchpoint is kept out of them: paging on, its mappings are dropped when the
 * watchpoint is set and after every fill (xbt_smmu_fill maps neighbouring pages too);
 * paging off, its page of the identity K-window is made inaccessible (again at every
 * dispatch: code protection, the SMC step and a window reset re-protect pages).  An
 * access there faults; mmu.c asks xbt_watch_fault, which checks the access against the
 * watchpoints and has the instruction run alone (the single-step path) with the page
 * mapped, read-only unless the fault was a write (a later write of the same instruction
 * faults again and is checked as a write).  The next dispatch takes the page out again
 * and, if the access overlapped a watchpoint of its kind, stops with XBT_DEBUG_WATCH.
 * The access checked: the instruction's explicit memory operand, its effective address
 * computed from the registers (Zydis), where it lies on the faulting page; a string
 * instruction's source and destination over the iterations it has left (the current
 * one alone, run alone, when the guest has data breakpoints); otherwise the
 * fault's address and the largest memory operand's size.  The VMM's own accesses for an
 * instruction or an event (excp.c's xbt_read_lin_as / xbt_write_lin_as: interrupt
 * frames, callouts' operands, descriptor reads) are checked exactly as they are made.
 */
#include <string.h>
#include <Zydis/Zydis.h>

#include "vcpu.h"

static bool overlaps(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
    /* [a, a + alen) and [b, b + blen), linear addresses wrapping at 4 GiB. */
    return alen && blen && ((b - a) < alen || (a - b) < blen);
}

/* One access of the guest: a hit if it overlaps a watchpoint of its kind (the guest's
   data breakpoints: their DR6 bits, all of them). */
static void check_access(struct xbt_vcpu *v, uint32_t lin, uint32_t len, bool write)
{
    uint8_t kind = write ? XBT_WATCH_WRITE : XBT_WATCH_READ;
    for (uint32_t i = 0; i < v->dbg.n_wp; i++) {
        const struct xbt_watch *w = &v->dbg.wp[i];
        if (!(w->kind & kind) || !overlaps(lin, len, w->lin, w->len))
            continue;
        if (w->dr >= 0) {
            v->dbg.ghit |= (uint8_t)(1u << w->dr);
        } else if (!v->dbg.whit) {
            v->dbg.whit = true;
            v->dbg.whit_lin = w->lin;
            v->dbg.whit_access = kind;
        }
    }
}

void xbt_watch_access(struct xbt_vcpu *v, uint32_t lin, uint32_t len, bool write)
{
    check_access(v, lin, len, write);
}

static bool page_watched(const struct xbt_vcpu *v, uint32_t page_lin)
{
    for (uint32_t i = 0; i < v->dbg.n_wp; i++)
        if (overlaps(page_lin, 4096, v->dbg.wp[i].lin, v->dbg.wp[i].len))
            return true;
    return false;
}

/* The instruction at CS:EIP, decoded (its bytes read without side effects). */
static bool decode_current(struct xbt_vcpu *v, ZydisDecodedInstruction *in,
                           ZydisDecodedOperand *ops)
{
    uint8_t b[15];
    uint32_t lin = v->arch.seg[XBT_CS].base + v->ctx.eip, n = 0;
    while (n < sizeof b) {
        xbt_walk_result r;
        uint32_t at = lin + n, chunk = 4096 - (at & 0xFFF);
        if (chunk > sizeof b - n)
            chunk = (uint32_t)sizeof b - n;
        const uint8_t *src;
        if (!xbt_walk_quiet(v, at, v->arch.cpl == 3, true, &r) ||
            !(src = xbt_phys_r(&v->vm->phys, r.gpa, chunk)))
            break;
        memcpy(b + n, src, chunk);
        n += chunk;
    }
    ZydisDecoder d;
    if (v->arch.seg[XBT_CS].db) /* CS's D bit: 32- or 16-bit code, in real mode too */
        ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
    else
        ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LEGACY_16, ZYDIS_STACK_WIDTH_16);
    return n && ZYAN_SUCCESS(ZydisDecoderDecodeFull(&d, b, n, in, ops));
}

static uint32_t seg_base_of(const struct xbt_vcpu *v, ZydisRegister seg)
{
    switch (seg) {
    case ZYDIS_REGISTER_ES: return v->arch.seg[XBT_ES].base;
    case ZYDIS_REGISTER_CS: return v->arch.seg[XBT_CS].base;
    case ZYDIS_REGISTER_SS: return v->arch.seg[XBT_SS].base;
    case ZYDIS_REGISTER_FS: return v->arch.seg[XBT_FS].base;
    case ZYDIS_REGISTER_GS: return v->arch.seg[XBT_GS].base;
    default: return v->arch.seg[XBT_DS].base;
    }
}

static bool is_string(ZydisMnemonic m)
{
    switch (m) {
    case ZYDIS_MNEMONIC_MOVSB: case ZYDIS_MNEMONIC_MOVSW: case ZYDIS_MNEMONIC_MOVSD:
    case ZYDIS_MNEMONIC_STOSB: case ZYDIS_MNEMONIC_STOSW: case ZYDIS_MNEMONIC_STOSD:
    case ZYDIS_MNEMONIC_LODSB: case ZYDIS_MNEMONIC_LODSW: case ZYDIS_MNEMONIC_LODSD:
    case ZYDIS_MNEMONIC_SCASB: case ZYDIS_MNEMONIC_SCASW: case ZYDIS_MNEMONIC_SCASD:
    case ZYDIS_MNEMONIC_CMPSB: case ZYDIS_MNEMONIC_CMPSW: case ZYDIS_MNEMONIC_CMPSD:
    case ZYDIS_MNEMONIC_INSB: case ZYDIS_MNEMONIC_INSW: case ZYDIS_MNEMONIC_INSD:
    case ZYDIS_MNEMONIC_OUTSB: case ZYDIS_MNEMONIC_OUTSW: case ZYDIS_MNEMONIC_OUTSD:
        return true;
    default:
        return false;
    }
}

static bool has_rep(const ZydisDecodedInstruction *in)
{
    return in->attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE |
                             ZYDIS_ATTRIB_HAS_REPNE);
}

bool xbt_watch_guest_any(const struct xbt_vcpu *v)
{
    for (uint32_t i = 0; i < v->dbg.n_wp; i++)
        if (v->dbg.wp[i].dr >= 0)
            return true;
    return false;
}

/* Whether [lin, lin + len) meets a guest data breakpoint of its kind. */
static bool guest_bp_in(const struct xbt_vcpu *v, uint32_t lin, uint32_t len, bool write)
{
    uint8_t kind = write ? XBT_WATCH_WRITE : XBT_WATCH_READ;
    for (uint32_t i = 0; i < v->dbg.n_wp; i++) {
        const struct xbt_watch *w = &v->dbg.wp[i];
        if (w->dr >= 0 && (w->kind & kind) && overlaps(lin, len, w->lin, w->len))
            return true;
    }
    return false;
}

/* A string instruction's operand over the iterations left (ECX with a REP prefix), or
   over the current one when the step runs one iteration (wstep_rep1).  `probe`: only
   whether that range meets a guest data breakpoint, nothing recorded. */
static bool check_string_operand(struct xbt_vcpu *v, const ZydisDecodedInstruction *in,
                                 const ZydisDecodedOperand *op, bool probe)
{
    uint32_t size = op->size / 8, count = 1;
    if (has_rep(in) && !v->dbg.wstep_rep1)
        count = v->ctx.gpr[XBT_ECX];
    bool edi = op->mem.base == ZYDIS_REGISTER_EDI || op->mem.base == ZYDIS_REGISTER_DI;
    uint32_t amask = in->address_width == 16 ? 0xFFFFu : 0xFFFFFFFFu;
    if (amask == 0xFFFF)
        count &= 0xFFFF; /* CX */
    uint32_t at = seg_base_of(v, edi ? ZYDIS_REGISTER_ES : op->mem.segment) +
                  (v->ctx.gpr[edi ? XBT_EDI : XBT_ESI] & amask);
    if (!size || !count)
        return false;
    uint64_t span = (uint64_t)count * size;
    if (span > 0xFFFFFFFFull)
        span = 0xFFFFFFFFull;
    if (v->ctx.eflags & XBT_EFLAGS_DF)
        at = at - (uint32_t)span + size;
    bool write = (op->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) != 0;
    if (probe)
        return guest_bp_in(v, at, (uint32_t)span, write);
    check_access(v, at, (uint32_t)span, write);
    return false;
}

/* The access the faulting instruction made at lin (see the top). */
static void check_fault(struct xbt_vcpu *v, uint32_t lin, bool write)
{
    ZydisDecodedInstruction in;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if (!decode_current(v, &in, ops)) {
        check_access(v, lin, 1, write);
        return;
    }
    uint32_t size = 0;
    bool string = is_string(in.mnemonic);
    /* A REP string instruction whose iterations left reach a guest data breakpoint runs
       one iteration per step (translator rep_one), so that the #DB trap follows the
       iteration that hit (SDM vol. 3 18.3.1.2), EIP still on the instruction while ECX
       lasts; the next iteration that reaches the page faults and is looked at again
       (once past the breakpoint, the rest runs whole). */
    v->dbg.wstep_rep1 = false;
    if (string && has_rep(&in) && xbt_watch_guest_any(v))
        for (uint8_t i = 0; i < in.operand_count; i++)
            if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY &&
                ops[i].mem.type != ZYDIS_MEMOP_TYPE_AGEN &&
                check_string_operand(v, &in, &ops[i], true))
                v->dbg.wstep_rep1 = true;
    for (uint8_t i = 0; i < in.operand_count; i++) {
        const ZydisDecodedOperand *op = &ops[i];
        if (op->type != ZYDIS_OPERAND_TYPE_MEMORY || op->mem.type == ZYDIS_MEMOP_TYPE_AGEN)
            continue;
        if (string) {
            check_string_operand(v, &in, op, false);
            continue;
        }
        uint32_t n = op->size / 8;
        if (op->visibility == ZYDIS_OPERAND_VISIBILITY_EXPLICIT && n) {
            ZydisRegisterContext ctx;
            memset(&ctx, 0, sizeof ctx);
            for (int r = 0; r < 8; r++) {
                ctx.values[ZYDIS_REGISTER_EAX + r] = v->ctx.gpr[r];
                ctx.values[ZYDIS_REGISTER_AX + r] = v->ctx.gpr[r] & 0xFFFF; /* 16-bit EAs */
            }
            ZyanU64 ea;
            if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddressEx(&in, op, 0, &ctx, &ea))) {
                uint32_t at = seg_base_of(v, op->mem.segment) + (uint32_t)ea;
                if (overlaps(at & ~0xFFFu, 8192, lin & ~0xFFFu, 4096)) {
                    check_access(v, at, n, write);
                    return;
                }
            }
        }
        if (n > size)
            size = n;
    }
    if (!string)
        check_access(v, lin, size ? size : 1, write);
}

bool xbt_watch_fault(struct xbt_vcpu *v, uint32_t lin, bool write, bool paged)
{
    if (!page_watched(v, lin & ~0xFFFu))
        return false;
    v->dbg.wstep_rep1 = false;
    check_fault(v, lin, write);
    v->dbg.wstep = true;
    v->dbg.wstep_paged = paged;
    v->dbg.wstep_page = lin & ~0xFFFu;
    v->smc.single = true; /* the instruction runs alone, then the page goes */
    return true;
}

void xbt_watch_filled(struct xbt_vcpu *v)
{
    for (uint32_t i = 0; i < v->dbg.n_wp; i++) {
        const struct xbt_watch *w = &v->dbg.wp[i];
        uint32_t first = w->lin & ~0xFFFu, last = (w->lin + w->len - 1) & ~0xFFFu;
        if (!(v->dbg.wstep && first == v->dbg.wstep_page))
            xbt_window_drop(v->mmu, first, 4096);
        if (last != first && !(v->dbg.wstep && last == v->dbg.wstep_page))
            xbt_window_drop(v->mmu, last, 4096);
    }
}

/* Paging off: every watched page out of the identity K-window. */
static void hide_identity(struct xbt_vcpu *v)
{
    for (uint32_t i = 0; i < v->dbg.n_wp; i++) {
        const struct xbt_watch *w = &v->dbg.wp[i];
        xbt_identity_hide(v->mmu, w->lin >> 12);
        xbt_identity_hide(v->mmu, (w->lin + w->len - 1) >> 12);
    }
}

int xbt_watch_dispatch(struct xbt_vcpu *v)
{
    if (v->dbg.wstep && !v->smc.single) { /* the instruction has run */
        v->dbg.wstep = v->dbg.wstep_rep1 = false;
        if (v->dbg.wstep_paged)
            xbt_window_drop(v->mmu, v->dbg.wstep_page, 4096);
    }
    if (!xbt_paging(v) && !v->dbg.wstep)
        hide_identity(v);
    if (v->dbg.ghit && !v->dbg.wstep) {
        /* The guest's data or I/O breakpoints the instruction (or an event's frame) hit:
           a #DB trap now, after it, with their DR6 bits.  When the same instruction was
           single-stepped, its trap (run.c guest_tf_trap, next) is the same #DB: one
           for both, as the SDM's DR6 reports them. */
        v->arch.dr[6] |= v->dbg.ghit;
        v->dbg.ghit = 0;
        if (v->tf.pending)
            return 0;
        return xbt_raise(v, XBT_DB, false, 0, v->ctx.eip) ? XBT_LEAVE_DISPATCH : XBT_LEAVE_EXIT;
    }
    if (!v->dbg.whit || v->dbg.wstep)
        return 0;
    v->dbg.whit = false;
    v->dbg.stepped = false; /* a step that hit stops once, as a watchpoint */
    memset(&v->exit, 0, sizeof v->exit);
    v->exit.reason = XBT_EXIT_DEBUG;
    v->exit.debug.eip = v->ctx.eip;
    v->exit.debug.linear = v->arch.seg[XBT_CS].base + v->ctx.eip;
    v->exit.debug.why = XBT_DEBUG_WATCH;
    v->exit.debug.watch = v->dbg.whit_lin;
    v->exit.debug.watch_access = v->dbg.whit_access;
    return XBT_LEAVE_EXIT;
}

/* A watchpoint in: its page out of every window set (paging on), out of the identity
   map (paging off). */
static void watch_add(struct xbt_vcpu *v, uint32_t linear, uint32_t len, uint8_t kind, int8_t dr)
{
    v->dbg.wp[v->dbg.n_wp++] = (struct xbt_watch){ linear, len, kind, dr };
    xbt_mapping_changed(v, linear & ~0xFFFu, 4096);
    if ((linear & ~0xFFFu) != ((linear + len - 1) & ~0xFFFu))
        xbt_mapping_changed(v, (linear + len - 1) & ~0xFFFu, 4096);
    if (!xbt_paging(v))
        hide_identity(v);
}

/* Watchpoint i out; paging off, its pages back into the identity map where no other
   watchpoint holds them. */
static void watch_remove(struct xbt_vcpu *v, uint32_t i)
{
    struct xbt_watch w = v->dbg.wp[i];
    v->dbg.wp[i] = v->dbg.wp[--v->dbg.n_wp];
    uint32_t pages[2] = { w.lin >> 12, (w.lin + w.len - 1) >> 12 };
    for (int k = 0; k < (pages[1] != pages[0] ? 2 : 1); k++)
        if (!xbt_paging(v) && !page_watched(v, pages[k] << 12) && !v->dbg.wstep)
            xbt_identity_protect(v->mmu, pages[k], !v->mmu->code_prot[pages[k]]);
}

xbt_status xbt_vcpu_set_watchpoint(xbt_vcpu *v, uint32_t linear, uint32_t len, int kind,
                                   int on)
{
    if (!v || (len != 1 && len != 2 && len != 4 && len != 8) || (linear & (len - 1)) ||
        kind < XBT_WATCH_WRITE || kind > XBT_WATCH_ACCESS)
        return XBT_E_INVAL;
    uint32_t i = 0, mine = 0;
    for (uint32_t k = 0; k < v->dbg.n_wp; k++)
        mine += v->dbg.wp[k].dr < 0;
    while (i < v->dbg.n_wp && !(v->dbg.wp[i].lin == linear && v->dbg.wp[i].len == len &&
                                v->dbg.wp[i].kind == kind && v->dbg.wp[i].dr < 0))
        i++;
    if (on) {
        if (i < v->dbg.n_wp)
            return XBT_OK; /* set already */
        if (mine == XBT_MAX_WATCHPOINTS)
            return XBT_E_INVAL;
        watch_add(v, linear, len, (uint8_t)kind, -1);
        return XBT_OK;
    }
    if (i == v->dbg.n_wp)
        return XBT_E_INVAL;
    watch_remove(v, i);
    return XBT_OK;
}

/* The guest's breakpoints (SDM vol. 3 18.2): DRn with DR7's Ln or Gn set; R/Wn 01
   (writes) or 11 (reads and writes): a data breakpoint of LENn 1, 2, 8 or 4 bytes, the
   address aligned down to it; R/Wn 00: an instruction breakpoint (run.c, with RF; the
   translations are dropped when their set changes).  I/O breakpoints (R/Wn 10 with
   CR4.DE) are checked by the port callouts (callouts.c io_bp_hits), DR7.GD by MOV DR. */
void xbt_watch_guest_sync(struct xbt_vcpu *v)
{
    uint32_t gbp[4], n_gbp = 0;
    uint8_t gdr[4];
    for (int n = 0; n < 4; n++)
        if (xbt_dr7_enabled(v->arch.dr[7], n) && xbt_dr7_rw(v->arch.dr[7], n) == 0) {
            gbp[n_gbp] = v->arch.dr[n];
            gdr[n_gbp++] = (uint8_t)n;
        }
    if (n_gbp != v->dbg.n_gbp || memcmp(gbp, v->dbg.gbp, n_gbp * 4) ||
        memcmp(gdr, v->dbg.gbp_dr, n_gbp)) {
        memcpy(v->dbg.gbp, gbp, sizeof gbp);
        memcpy(v->dbg.gbp_dr, gdr, sizeof gdr);
        v->dbg.n_gbp = n_gbp;
        xbt_debug_bps_changed(v);
    }
    /* The data breakpoints DR0-DR3 and DR7 ask for; the watchpoints change (each a
       window drop) only when they differ from the ones there (a guest rewrites DR7 with
       the same breakpoints often: Linux at every context switch of a debugged task). */
    struct xbt_watch want[4];
    uint32_t n_want = 0, n_have = 0, dr7 = v->arch.dr[7];
    for (int n = 0; n < 4; n++) {
        uint32_t rw = xbt_dr7_rw(dr7, n), len = xbt_dr7_len(dr7, n);
        if (xbt_dr7_enabled(dr7, n) && (rw == 1 || rw == 3))
            want[n_want++] = (struct xbt_watch){ v->arch.dr[n] & ~(len - 1), len,
                                                 rw == 1 ? XBT_WATCH_WRITE : XBT_WATCH_ACCESS,
                                                 (int8_t)n };
    }
    bool same = true;
    for (uint32_t i = 0; i < v->dbg.n_wp; i++) {
        const struct xbt_watch *w = &v->dbg.wp[i];
        if (w->dr < 0)
            continue;
        n_have++;
        bool found = false;
        for (uint32_t k = 0; k < n_want && !found; k++)
            found = want[k].dr == w->dr && want[k].lin == w->lin && want[k].len == w->len &&
                    want[k].kind == w->kind;
        same = same && found;
    }
    if (same && n_have == n_want)
        return;
    for (uint32_t i = v->dbg.n_wp; i-- > 0;)
        if (v->dbg.wp[i].dr >= 0)
            watch_remove(v, i);
    for (uint32_t k = 0; k < n_want; k++)
        watch_add(v, want[k].lin, want[k].len, want[k].kind, want[k].dr);
}
