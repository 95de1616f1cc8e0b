/*
 * intr.c - delivery of one interrupt or exception through the guest IDT (Intel SDM vol. 2,
 * "INT n/INTO/INT3/INT1", protected mode): interrupt and trap gates (32- and 16-bit)
 * from any privilege level to any inner or the same one, with the stack of the new
 * level from the TSS; task gates (a task switch, then the error code on the new task's
 * stack).  Every check is made before the first change; the error codes carry EXT for
 * events from outside the program.  In real mode: the interrupt vector table instead.
 * From virtual-8086 mode: the IDT too, to ring 0 only, with the data segments in the
 * frame (SDM vol. 3 20.3.1.1).
 * The nesting rules around it are excp.c's.
 */
#include "vcpu.h"
#include "runtime/sensitive.h"
#include "runtime/xfer.h"

/* Real-address mode (SDM vol. 2 INT n, REAL-ADDRESS-MODE; vol. 3 20.1.4): the vector's
   4-byte entry (offset, then segment) at IDTR.base + 4 * vector, beyond IDTR.limit #GP
   (nested as in protected mode: #DF, then shutdown); FLAGS, CS and IP pushed as 16-bit
   words on SS:SP (SS.B clear) or SS:ESP, #SS if they do not fit; IF, TF, AC and RF
   cleared; CS loaded as real mode loads it (xbt_real_seg: its D bit kept).  No error
   code is ever pushed, and INT n has no gate DPL to check.  The stack's width is SS.B's
   as for every push (the SDM's Push); QEMU TCG moves SP alone here and in IRET whatever
   SS.B is, which differs only in big real mode with a 32-bit stack. */
static int real_mode_event(struct xbt_vcpu *v, int vector, uint32_t ret_eip, uint32_t *err)
{
    uint32_t off = (uint32_t)vector * 4, entry;
    if (off + 3 > v->arch.idtr.limit)
        return XBT_GP;
    v->pf_pending = false;
    if (!xbt_read_lin(v, v->arch.idtr.base + off, &entry, 4))
        return xbt_mem_fault(v, XBT_GP, *err, err);
    struct xbt_stack st;
    xbt_stack_current(v, &st);
    int r = xbt_stack_room(v, &st, 3, 2, 0, err);
    if (r >= 0)
        return r;
    uint32_t w[3] = { xbt_get_eflags(v), v->arch.seg[XBT_CS].selector, ret_eip };
    xbt_stack_put(v, &st, w, 3, 2);
    xbt_stack_commit(v, &st);
    xbt_real_seg(v, XBT_CS, (uint16_t)(entry >> 16));
    v->ctx.eip = entry & 0xFFFF;
    xbt_set_eflags(v, 0, XBT_EFLAGS_IF | XBT_EFLAGS_TF | XBT_EFLAGS_AC | XBT_EFLAGS_RF);
    return XBT_X_DONE;
}

/* Interrupt or trap gate: the target code segment, the stack, the frame. */
static int through_gate(struct xbt_vcpu *v, uint64_t g, bool has_err, uint32_t errcode,
                        uint32_t ret_eip, uint32_t ext, uint32_t *err)
{
    uint32_t type = (g >> 40) & 0xF;
    uint16_t csel = (uint16_t)(g >> 16);
    bool gate32 = type & 8;
    uint32_t target = (uint32_t)(g & 0xFFFF) | (gate32 ? (uint32_t)(g >> 48) << 16 : 0);
    if ((csel & ~3u) == 0) {
        *err = ext;
        return XBT_GP;
    }
    uint64_t cd;
    xbt_segment cs;
    int r = xbt_desc_get(v, csel, XBT_GP, ext, &cd, &cs, err);
    if (r >= 0)
        return r;
    *err = xbt_sel_err(csel, ext);
    if (!xbt_is_code(&cs) || cs.dpl > v->arch.cpl)
        return XBT_GP;
    /* From virtual-8086 mode only to a non-conforming ring-0 segment (SDM INT n). */
    bool v86 = xbt_v86(v);
    if (v86 && (xbt_is_conforming(&cs) || cs.dpl != 0))
        return XBT_GP;
    if (!cs.present)
        return XBT_NP;
    /* The frame: [old GS, FS, DS, ES (from v86 mode),] [old SS, old ESP,] EFLAGS, CS,
       EIP[, error code], 32- or 16-bit words as the gate is. */
    struct xbt_stack st;
    uint32_t w[10], n = 0, serr;
    unsigned ncpl = v->arch.cpl;
    if (!xbt_is_conforming(&cs) && cs.dpl < v->arch.cpl) {
        ncpl = cs.dpl;
        r = xbt_stack_inner(v, ncpl, ext, &st, err);
        if (r >= 0)
            return r;
        if (v86) {
            static const int segs[4] = { XBT_GS, XBT_FS, XBT_DS, XBT_ES };
            for (int i = 0; i < 4; i++)
                w[n++] = v->arch.seg[segs[i]].selector;
        }
        w[n++] = v->arch.seg[XBT_SS].selector;
        w[n++] = v->ctx.gpr[XBT_ESP];
        serr = xbt_sel_err(st.ss.selector, ext);
    } else {
        xbt_stack_current(v, &st); /* at CPL 3 (a conforming handler): user accesses */
        serr = ext;
    }
    /* RF: set for a fault (excp.c push_rf); as it is for an interrupt or a trap (an
       IRET's not yet ended by a completed instruction, or between two iterations of a
       REP string instruction: run.c); clear for a software interrupt. */
    w[n++] = xbt_get_eflags(v) |
             (ext && (v->arch.rf || v->arch.push_rf) ? XBT_EFLAGS_RF : 0);
    w[n++] = v->arch.seg[XBT_CS].selector;
    w[n++] = ret_eip;
    if (has_err)
        w[n++] = errcode;
    unsigned size = gate32 ? 4 : 2;
    r = xbt_stack_room(v, &st, n, size, serr, err);
    if (r >= 0)
        return r;
    if (target > cs.limit) {
        *err = ext;
        return XBT_GP;
    }
    /* Committed. */
    xbt_stack_put(v, &st, w, n, size);
    xbt_stack_commit(v, &st);
    v->dx.kentries += v->arch.cpl == 3 && ncpl < 3; /* adaptive mode's measure */
    v->arch.cpl = ncpl;
    xbt_commit_cs(v, csel, cd, &cs, ncpl);
    v->ctx.eip = target;
    if (v86) { /* the v86 selectors mean nothing to ring 0: null, as the SDM loads them */
        static const int segs[4] = { XBT_ES, XBT_DS, XBT_FS, XBT_GS };
        xbt_segment null = { 0 };
        null.unusable = 1;
        for (int i = 0; i < 4; i++)
            xbt_set_seg(v, segs[i], &null);
    }
    /* Interrupt gates clear IF; both clear TF, NT, RF and VM. */
    uint32_t clear = XBT_EFLAGS_TF | XBT_EFLAGS_NT | XBT_EFLAGS_RF | XBT_EFLAGS_VM;
    if ((type & 1) == 0)
        clear |= XBT_EFLAGS_IF;
    xbt_set_eflags(v, 0, clear);
    v->arch.rf = false;
    return XBT_X_DONE;
}

/* Task gate: the switch, then the error code pushed on the new task's stack (with the
   new task's privilege) and the new EIP checked against its CS. */
static int through_task_gate(struct xbt_vcpu *v, uint64_t g, bool has_err, uint32_t errcode,
                             uint32_t ret_eip, uint32_t ext, uint32_t *err, bool *moved)
{
    int r = xbt_task_gate(v, g, XBT_TASK_INT, ret_eip, ext, err, moved);
    if (r != XBT_X_DONE)
        return r;
    if (has_err) {
        struct xbt_stack st;
        xbt_stack_current(v, &st);
        unsigned size = (v->arch.tr.type & 8) ? 4 : 2;
        r = xbt_stack_room(v, &st, 1, size, ext, err);
        if (r >= 0)
            return r;
        xbt_stack_put(v, &st, &errcode, 1, size);
        xbt_stack_commit(v, &st);
    }
    return XBT_X_DONE;
}

int xbt_deliver_event(struct xbt_vcpu *v, int vector, bool has_err, uint32_t errcode,
                      uint32_t ret_eip, bool software, uint32_t *err, bool *moved)
{
    uint32_t ext = software ? 0 : XBT_ERR_EXT;
    *moved = false;
    *err = (uint32_t)vector * 8 + 2 + ext; /* the IDT entry */
    if (xbt_real_mode(v)) {
        int r = real_mode_event(v, vector, ret_eip, err);
        if (r == XBT_X_DONE) {
            v->arch.halted = false;
            xbt_shadow_end(v);
        }
        return r;
    }
    uint32_t off = (uint32_t)vector * 8;
    if (off + 7 > v->arch.idtr.limit)
        return XBT_GP;
    uint64_t g;
    v->pf_pending = false;
    if (!xbt_read_lin(v, v->arch.idtr.base + off, &g, 8))
        return xbt_mem_fault(v, XBT_GP, *err, err);
    uint32_t type = (g >> 40) & 0x1F, dpl = (g >> 45) & 3; /* S bit included in type */
    if (type != 5 && type != 6 && type != 7 && type != 0xE && type != 0xF)
        return XBT_GP;
    if (software && dpl < v->arch.cpl)
        return XBT_GP; /* INT n, INT3, INTO: the gate's DPL (error code without EXT) */
    if (!((g >> 47) & 1))
        return XBT_NP;
    int r = type == 5 ? through_task_gate(v, g, has_err, errcode, ret_eip, ext, err, moved)
                      : through_gate(v, g, has_err, errcode, ret_eip, ext, err);
    if (r == XBT_X_DONE) {
        v->arch.halted = false;
        xbt_shadow_end(v);
    }
    return r;
}
