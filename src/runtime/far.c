/*
 * far.c - far JMP, CALL, RET and IRET (Intel SDM vol. 2, their
 * "Operation" sections): to code segments (conforming or not), through call gates (32-
 * and 16-bit; CALL to an inner level switches to the stack of that level from the TSS
 * and copies the gate's count of parameters), to TSSs and through task gates (task.c),
 * returns to the same or an outer level, IRET with NT set (a task return).
 *
 * Each one reads and checks everything first and changes the guest's state only after
 * the last check that can fault (segment limits of the stacks and the target EIP
 * included), so a fault is raised with the instruction's own state and EIP.
 *
 * In real-address mode (CR0.PE clear) each has the SDM's "Real-Address Mode" branch
 * instead: CS loaded as any segment register is there (xbt_real_seg), no descriptor.
 * Virtual-8086 mode takes the same branches with its own segment loads (xbt_v86_seg),
 * IRET there only with IOPL 3; an IRET at CPL 0 whose EFLAGS image has VM set enters
 * the mode (iret_to_v86).
 */
#include "vcpu.h"
#include "runtime/sensitive.h"
#include "runtime/xfer.h"

/* ---- real-address mode -------------------------------------------------------------- */

/* The target offset of a real-mode transfer: IP (osz 2) or EIP, within CS's limit as it
   stands (the hidden limit a real-mode load keeps), else #GP(0). */
static int real_target(const struct xbt_vcpu *v, uint32_t off, unsigned osz, uint32_t *eip,
                       uint32_t *err)
{
    *eip = osz == 2 ? off & 0xFFFF : off;
    *err = 0;
    return *eip > v->arch.seg[XBT_CS].limit ? XBT_GP : XBT_X_DONE;
}

static int real_jmp(struct xbt_vcpu *v, uint16_t sel, uint32_t off, unsigned osz,
                    uint32_t *err)
{
    uint32_t eip;
    int r = real_target(v, off, osz, &eip, err);
    if (r >= 0)
        return r;
    xbt_plain_seg(v, XBT_CS, sel);
    v->ctx.eip = eip;
    return XBT_X_DONE;
}

/* CS, then IP or EIP, pushed as osz-byte words on SS:SP (SS.B clear) or SS:ESP. */
static int real_call(struct xbt_vcpu *v, uint16_t sel, uint32_t off, unsigned osz,
                     uint32_t next_eip, uint32_t *err)
{
    uint32_t eip;
    int r = real_target(v, off, osz, &eip, err);
    if (r >= 0)
        return r;
    struct xbt_stack st;
    xbt_stack_current(v, &st);
    if ((r = xbt_stack_room(v, &st, 2, osz, 0, err)) >= 0)
        return r;
    uint32_t w[2] = { v->arch.seg[XBT_CS].selector, next_eip };
    xbt_stack_put(v, &st, w, 2, osz);
    xbt_stack_commit(v, &st);
    xbt_plain_seg(v, XBT_CS, sel);
    v->ctx.eip = eip;
    return XBT_X_DONE;
}

/* IP or EIP, then CS (an osz-byte slot, its high half dropped); imm16 released after. */
static int real_ret(struct xbt_vcpu *v, unsigned osz, uint16_t imm, uint32_t *err)
{
    struct xbt_stack st;
    uint32_t w[2], eip;
    xbt_stack_current(v, &st);
    int r = xbt_stack_get(v, &st, w, 2, osz, 0, err);
    if (r >= 0)
        return r;
    if ((r = real_target(v, w[0], osz, &eip, err)) >= 0)
        return r;
    xbt_stack_add(&st, imm);
    xbt_stack_commit(v, &st);
    xbt_plain_seg(v, XBT_CS, (uint16_t)w[1]);
    v->ctx.eip = eip;
    return XBT_X_DONE;
}

/* IP, CS, FLAGS (osz 2: FLAGS[15:0] all written), or EIP, CS, EFLAGS (osz 4: the SDM's
   mask 0x257FD5, VM, VIF and VIP keep their values, which xbt_eflags_write does).  The
   CPL is 0: IOPL and IF change whatever IOPL was.  EIP with bits 31:16 set, or beyond
   CS's limit: #GP(0).  IRET in real mode ignores NT.  In virtual-8086 mode (IOPL 3,
   checked by the caller) the same pops, but the flags are those POPF may write at CPL 3
   (IOPL, VM kept; SDM IRET, "IF VM = 1 and IOPL = 3"), and CS is loaded v86-style. */
static int real_iret(struct xbt_vcpu *v, unsigned osz, uint32_t *err)
{
    struct xbt_stack st;
    uint32_t w[3], eip;
    xbt_stack_current(v, &st);
    int r = xbt_stack_get(v, &st, w, 3, osz, 0, err);
    if (r >= 0)
        return r;
    if (osz == 4 && (w[0] >> 16)) {
        *err = 0;
        return XBT_GP;
    }
    if ((r = real_target(v, w[0], osz, &eip, err)) >= 0)
        return r;
    uint32_t mask = xbt_popf_mask(v->arch.cpl, v->ctx.eflags_sys, osz) |
                    (osz == 2 ? 0 : XBT_EFLAGS_RF);
    xbt_set_eflags(v, w[2], mask);
    if (osz == 4)
        xbt_load_rf(v, w[2]);
    xbt_stack_commit(v, &st);
    xbt_plain_seg(v, XBT_CS, (uint16_t)w[1]);
    v->ctx.eip = eip;
    return XBT_X_DONE;
}

/* IRET at CPL 0 (32-bit operand) whose EFLAGS image has VM set (SDM IRET,
   RETURN-TO-VIRTUAL-8086-MODE): after EIP, CS, EFLAGS (popped by the caller) come ESP,
   SS, ES, DS, FS, GS, six dwords on the current stack (#SS(0) beyond its limit).  EIP
   beyond the 64 KiB CS the mode gives: #GP(0) (QEMU TCG truncates it to 16 bits
   instead).  Then EFLAGS whole (VM, IOPL and IF included), CPL 3 and every segment
   register loaded v86-style, ESP all 32 bits. */
static int iret_to_v86(struct xbt_vcpu *v, struct xbt_stack *st, const uint32_t *w,
                       uint32_t *err)
{
    uint32_t o[6];
    int r = xbt_stack_get(v, st, o, 6, 4, 0, err);
    if (r >= 0)
        return r;
    if (w[0] > 0xFFFF) {
        *err = 0;
        return XBT_GP;
    }
    /* Committed. */
    xbt_set_eflags(v, w[2], xbt_popf_mask(0, v->ctx.eflags_sys, 4) | XBT_EFLAGS_RF |
                                XBT_EFLAGS_VM);
    xbt_load_rf(v, w[2]);
    v->arch.cpl = 3;
    static const int segs[4] = { XBT_ES, XBT_DS, XBT_FS, XBT_GS };
    for (int i = 0; i < 4; i++)
        xbt_v86_seg(v, segs[i], (uint16_t)o[2 + i]);
    xbt_v86_seg(v, XBT_SS, (uint16_t)o[1]);
    xbt_v86_seg(v, XBT_CS, (uint16_t)w[1]);
    v->ctx.gpr[XBT_ESP] = o[0];
    v->ctx.eip = w[0];
    return XBT_X_DONE;
}

/* ---- protected mode ------------------------------------------------------------------ */

/* The descriptor a far JMP or CALL names: a null selector is #GP(0). */
static int target_desc(struct xbt_vcpu *v, uint16_t sel, uint64_t *d, xbt_segment *s,
                       uint32_t *err)
{
    if ((sel & ~3u) == 0) {
        *err = 0;
        return XBT_GP;
    }
    return xbt_desc_get(v, sel, XBT_GP, 0, d, s, err);
}

/* JMP or CALL straight to a code segment: conforming DPL <= CPL, else RPL <= CPL and
   DPL = CPL; present. */
static int code_target(const struct xbt_vcpu *v, uint16_t sel, const xbt_segment *s,
                       uint32_t *err)
{
    *err = sel & 0xFFFC;
    if (!xbt_is_code(s))
        return XBT_GP;
    uint32_t cpl = v->arch.cpl;
    if (xbt_is_conforming(s) ? s->dpl > cpl : ((sel & 3u) > cpl || s->dpl != cpl))
        return XBT_GP;
    if (!s->present)
        return XBT_NP;
    return XBT_X_DONE;
}

/* A call gate's own checks (DPL >= CPL and >= RPL: #GP; present: #NP, with the gate's
   selector) and the code segment it names (null: #GP(0); beyond its table, not code,
   DPL > CPL: #GP; not present: #NP, with the code segment's selector).  JMP may not
   change the privilege: a non-conforming target must have DPL = CPL. */
static int gate_target(struct xbt_vcpu *v, uint16_t sel, uint64_t g, const xbt_segment *gs,
                       bool jmp, uint64_t *cd, xbt_segment *cs, uint32_t *err)
{
    *err = sel & 0xFFFC;
    if (gs->dpl < v->arch.cpl || gs->dpl < (sel & 3u))
        return XBT_GP;
    if (!gs->present)
        return XBT_NP;
    uint16_t csel = (uint16_t)(g >> 16);
    if ((csel & ~3u) == 0) {
        *err = 0;
        return XBT_GP;
    }
    int r = xbt_desc_get(v, csel, XBT_GP, 0, cd, cs, err);
    if (r >= 0)
        return r;
    *err = csel & 0xFFFC;
    if (!xbt_is_code(cs) || cs->dpl > v->arch.cpl)
        return XBT_GP;
    if (jmp && !xbt_is_conforming(cs) && cs->dpl != v->arch.cpl)
        return XBT_GP;
    if (!cs->present)
        return XBT_NP;
    return XBT_X_DONE;
}

static uint32_t gate_offset(uint64_t g, bool gate32)
{
    return (uint32_t)(g & 0xFFFF) | (gate32 ? (uint32_t)(g >> 48) << 16 : 0);
}

/* A TSS or a task gate named by JMP or CALL: DPL >= CPL and >= RPL, an available TSS
   (#GP), present (#NP); then the switch. */
static int to_task(struct xbt_vcpu *v, uint16_t sel, uint64_t d, const xbt_segment *s,
                   enum xbt_task_reason why, uint32_t next_eip, uint32_t *err)
{
    *err = sel & 0xFFFC;
    if (s->dpl < v->arch.cpl || s->dpl < (sel & 3u))
        return XBT_GP;
    if (s->type == 5) {
        if (!s->present)
            return XBT_NP;
        return xbt_task_gate(v, d, why, next_eip, 0, err, NULL);
    }
    if ((s->type & 7) != 1) /* busy */
        return XBT_GP;
    if (!s->present)
        return XBT_NP;
    return xbt_task_switch(v, sel, d, why, next_eip, 0, err, NULL);
}

int xbt_far_jmp(struct xbt_vcpu *v, uint16_t sel, uint32_t off, unsigned osz,
                uint32_t next_eip, uint32_t *err)
{
    if (xbt_seg_plain(v))
        return real_jmp(v, sel, off, osz, err);
    uint64_t d, cd;
    xbt_segment s, cs;
    int r = target_desc(v, sel, &d, &s, err);
    if (r >= 0)
        return r;
    uint32_t eip;
    if (s.s) {
        if ((r = code_target(v, sel, &s, err)) >= 0)
            return r;
        cd = d, cs = s;
        eip = osz == 2 ? off & 0xFFFF : off;
    } else if (s.type == 4 || s.type == 12) {
        if ((r = gate_target(v, sel, d, &s, true, &cd, &cs, err)) >= 0)
            return r;
        eip = gate_offset(d, s.type & 8);
    } else if (s.type == 1 || s.type == 9 || s.type == 5) {
        return to_task(v, sel, d, &s, XBT_TASK_JMP, next_eip, err);
    } else {
        *err = sel & 0xFFFC;
        return XBT_GP;
    }
    if (eip > cs.limit) {
        *err = 0;
        return XBT_GP;
    }
    xbt_commit_cs(v, cs.selector, cd, &cs, v->arch.cpl);
    v->ctx.eip = eip;
    return XBT_X_DONE;
}

/* CALL through a call gate: to an inner level on that level's stack from the TSS with
   the old SS:ESP and `count` parameters copied from the old stack, or at the same level
   on the current stack. */
static int call_gate(struct xbt_vcpu *v, uint16_t sel, uint64_t g, const xbt_segment *gs,
                     uint32_t next_eip, uint32_t *err)
{
    uint64_t cd;
    xbt_segment cs;
    int r = gate_target(v, sel, g, gs, false, &cd, &cs, err);
    if (r >= 0)
        return r;
    bool gate32 = gs->type & 8;
    unsigned size = gate32 ? 4 : 2, count = (unsigned)(g >> 32) & 0x1F, ncpl = v->arch.cpl;
    uint32_t eip = gate_offset(g, gate32);
    struct xbt_stack st;
    uint32_t w[4 + 31], n = 0;
    if (!xbt_is_conforming(&cs) && cs.dpl < v->arch.cpl) {
        ncpl = cs.dpl;
        if ((r = xbt_stack_inner(v, ncpl, 0, &st, err)) >= 0)
            return r;
        if ((r = xbt_stack_room(v, &st, count + 4, size, xbt_sel_err(st.ss.selector, 0),
                                err)) >= 0)
            return r;
        if (eip > cs.limit) {
            *err = 0;
            return XBT_GP;
        }
        /* The parameters, read with the caller's rights from the caller's stack. */
        struct xbt_stack old;
        uint32_t p[31];
        xbt_stack_current(v, &old);
        if ((r = xbt_stack_get(v, &old, p, count, size, 0, err)) >= 0)
            return r;
        w[n++] = v->arch.seg[XBT_SS].selector;
        w[n++] = v->ctx.gpr[XBT_ESP];
        for (unsigned i = count; i-- > 0;)
            w[n++] = p[i];
    } else {
        xbt_stack_current(v, &st);
        if ((r = xbt_stack_room(v, &st, 2, size, 0, err)) >= 0)
            return r;
        if (eip > cs.limit) {
            *err = 0;
            return XBT_GP;
        }
    }
    w[n++] = v->arch.seg[XBT_CS].selector;
    w[n++] = next_eip;
    /* Committed. */
    xbt_stack_put(v, &st, w, n, size);
    xbt_stack_commit(v, &st);
    v->arch.cpl = ncpl;
    xbt_commit_cs(v, cs.selector, cd, &cs, ncpl);
    v->ctx.eip = eip;
    return XBT_X_DONE;
}

int xbt_far_call(struct xbt_vcpu *v, uint16_t sel, uint32_t off, unsigned osz,
                 uint32_t next_eip, uint32_t *err)
{
    if (xbt_seg_plain(v))
        return real_call(v, sel, off, osz, next_eip, err);
    uint64_t d;
    xbt_segment s;
    int r = target_desc(v, sel, &d, &s, err);
    if (r >= 0)
        return r;
    if (!s.s) {
        if (s.type == 4 || s.type == 12)
            return call_gate(v, sel, d, &s, next_eip, err);
        if (s.type == 1 || s.type == 9 || s.type == 5)
            return to_task(v, sel, d, &s, XBT_TASK_CALL, next_eip, err);
        *err = sel & 0xFFFC;
        return XBT_GP;
    }
    if ((r = code_target(v, sel, &s, err)) >= 0)
        return r;
    struct xbt_stack st;
    xbt_stack_current(v, &st);
    if ((r = xbt_stack_room(v, &st, 2, osz, 0, err)) >= 0)
        return r;
    uint32_t eip = osz == 2 ? off & 0xFFFF : off;
    if (eip > s.limit) {
        *err = 0;
        return XBT_GP;
    }
    uint32_t w[2] = { v->arch.seg[XBT_CS].selector, next_eip };
    xbt_stack_put(v, &st, w, 2, osz);
    xbt_stack_commit(v, &st);
    xbt_commit_cs(v, sel, d, &s, v->arch.cpl);
    v->ctx.eip = eip;
    return XBT_X_DONE;
}

/* The code segment RET or IRET returns to: null #GP(0); beyond its table, not code,
   RPL < CPL, conforming with DPL > RPL, non-conforming with DPL != RPL: #GP(sel); not
   present: #NP(sel). */
static int return_cs(struct xbt_vcpu *v, uint16_t ncs, uint64_t *d, xbt_segment *s,
                     uint32_t *err)
{
    if ((ncs & ~3u) == 0) {
        *err = 0;
        return XBT_GP;
    }
    int r = xbt_desc_get(v, ncs, XBT_GP, 0, d, s, err);
    if (r >= 0)
        return r;
    unsigned rpl = ncs & 3;
    *err = ncs & 0xFFFC;
    if (!xbt_is_code(s) || rpl < v->arch.cpl ||
        (xbt_is_conforming(s) ? s->dpl > rpl : s->dpl != rpl))
        return XBT_GP;
    if (!s->present)
        return XBT_NP;
    return XBT_X_DONE;
}

/* The stack a return to outer level rpl loads: null #GP(0); beyond its table, RPL !=
   rpl, not writable data, DPL != rpl: #GP(sel); not present: #SS(sel). */
static int outer_stack(struct xbt_vcpu *v, uint16_t nss, uint32_t nesp, unsigned rpl,
                       struct xbt_stack *st, uint32_t *err)
{
    if ((nss & ~3u) == 0) {
        *err = 0;
        return XBT_GP;
    }
    int r = xbt_desc_get(v, nss, XBT_GP, 0, &st->desc, &st->ss, err);
    if (r >= 0)
        return r;
    *err = nss & 0xFFFC;
    if ((nss & 3u) != rpl || !xbt_is_wdata(&st->ss) || st->ss.dpl != rpl)
        return XBT_GP;
    if (!st->ss.present)
        return XBT_SSF;
    st->esp = nesp;
    st->user = rpl == 3;
    return XBT_X_DONE;
}

/* The common tail of RET and IRET once the return CS is checked: to the same level
   (ESP after the popped words), or to an outer one (its SS:ESP popped next). *outer:
   the level changed (the caller nulls the data segments after its own changes). */
static int return_to(struct xbt_vcpu *v, struct xbt_stack *st, uint32_t neip, uint16_t ncs,
                     uint64_t cd, xbt_segment *cs, unsigned osz, uint16_t imm,
                     uint32_t eflags, uint32_t flag_mask, uint32_t *err)
{
    unsigned rpl = ncs & 3;
    int r;
    xbt_stack_add(st, imm);
    if (rpl > v->arch.cpl) {
        uint32_t o[2];
        if ((r = xbt_stack_get(v, st, o, 2, osz, 0, err)) >= 0)
            return r;
        if ((r = outer_stack(v, (uint16_t)o[1], o[0], rpl, st, err)) >= 0)
            return r;
        xbt_stack_add(st, imm);
    }
    if (neip > cs->limit) {
        *err = 0;
        return XBT_GP;
    }
    /* Committed.  EFLAGS first: what IRET may change depends on the old CPL. */
    if (flag_mask)
        xbt_set_eflags(v, eflags, flag_mask);
    if (flag_mask & XBT_EFLAGS_RF)
        xbt_load_rf(v, eflags);
    bool outer = rpl > v->arch.cpl;
    v->arch.cpl = rpl;
    xbt_commit_cs(v, ncs, cd, cs, rpl);
    xbt_stack_commit(v, st);
    v->ctx.eip = neip;
    if (outer)
        xbt_null_inner_data_segs(v);
    return XBT_X_DONE;
}

int xbt_far_ret(struct xbt_vcpu *v, unsigned osz, uint16_t imm, uint32_t *err)
{
    if (xbt_seg_plain(v))
        return real_ret(v, osz, imm, err);
    struct xbt_stack st;
    uint32_t w[2];
    xbt_stack_current(v, &st);
    int r = xbt_stack_get(v, &st, w, 2, osz, 0, err);
    if (r >= 0)
        return r;
    uint64_t cd;
    xbt_segment cs;
    if ((r = return_cs(v, (uint16_t)w[1], &cd, &cs, err)) >= 0)
        return r;
    return return_to(v, &st, w[0], (uint16_t)w[1], cd, &cs, osz, imm, 0, 0, err);
}

int xbt_iret(struct xbt_vcpu *v, unsigned osz, uint32_t next_eip, uint32_t *err)
{
    if (xbt_real_mode(v))
        return real_iret(v, osz, err);
    if (xbt_v86(v)) {
        /* IOPL-sensitive in virtual-8086 mode: without VME, #GP(0) below IOPL 3. */
        if ((v->ctx.eflags_sys & XBT_EFLAGS_IOPL) != XBT_EFLAGS_IOPL) {
            *err = 0;
            return XBT_GP;
        }
        return real_iret(v, osz, err);
    }
    if (v->ctx.eflags_sys & XBT_EFLAGS_NT)
        return xbt_task_return(v, next_eip, err);
    struct xbt_stack st;
    uint32_t w[3];
    xbt_stack_current(v, &st);
    int r = xbt_stack_get(v, &st, w, 3, osz, 0, err);
    if (r >= 0)
        return r;
    if (osz == 4 && (w[2] & XBT_EFLAGS_VM) && v->arch.cpl == 0)
        return iret_to_v86(v, &st, w, err);
    uint64_t cd;
    xbt_segment cs;
    if ((r = return_cs(v, (uint16_t)w[1], &cd, &cs, err)) >= 0)
        return r;
    uint32_t mask =
        xbt_popf_mask(v->arch.cpl, v->ctx.eflags_sys, osz) | (osz == 2 ? 0 : XBT_EFLAGS_RF);
    return return_to(v, &st, w[0], (uint16_t)w[1], cd, &cs, osz, 0, w[2], mask, err);
}
