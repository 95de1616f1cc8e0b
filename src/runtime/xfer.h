/*
 * xfer.h - privilege and task transfers (Intel SDM vol. 2 CALL, JMP, RET, IRET, INT n;
 * vol. 3 chapters 5-7): the guest stack as the place a frame is built on, descriptor
 * checks with their error codes, far transfers through code segments and call gates
 * (far.c), task switches (task.c) and event delivery through the IDT (intr.c).
 *
 * The rule everywhere: every check that can fault is made before the first change to
 * the guest's state, so a fault is raised with the state the instruction began with
 * (its own EIP, its own ESP) and the frame it pushes is built by the one delivery path
 * on the stack the SDM names.  The one exception is the SDM's own: after a task switch
 * commits, faults belong to the new task (v->ctx.eip is then the new task's EIP).
 */
#ifndef XBT_RUNTIME_XFER_H
#define XBT_RUNTIME_XFER_H

#include "vcpu.h"

/* What a transfer returns: XBT_X_DONE, XBT_X_EXIT (an exit is recorded in v->exit), or
   the vector (>= 0) of the exception to raise, *err its error code, at v->ctx.eip.
   A #PF comes back as XBT_PF with v->pf_pending still set (the raiser sets CR2). */
#define XBT_X_DONE (-1)
#define XBT_X_EXIT (-2)

/* The error code's EXT bit: the fault happened while delivering an event from outside
   the program (an interrupt or an exception; not INT n, INT3 or INTO). */
#define XBT_ERR_EXT 1u
/* Error code of a selector (RPL dropped) with EXT. */
static inline uint32_t xbt_sel_err(uint32_t sel, uint32_t ext) { return (sel & 0xFFFCu) | ext; }

/* A failed guest memory access: #PF if the walk found one (pending), else `vec` with
   `otherwise` as its error code (memory without RAM). */
static inline int xbt_mem_fault(const struct xbt_vcpu *v, int vec, uint32_t otherwise,
                                uint32_t *err)
{
    if (v->pf_pending) {
        *err = v->pf_err;
        return XBT_PF;
    }
    *err = otherwise;
    return vec;
}

/* ---- guest memory with the access rights of a privilege level (excp.c) ---------------- */
/* acc: enum xbt_acc (`cpl == 3` for an access the instruction makes). */
bool xbt_read_lin_as(struct xbt_vcpu *v, uint32_t lin, void *dst, uint32_t len, int acc);
bool xbt_write_lin_as(struct xbt_vcpu *v, uint32_t lin, const void *src, uint32_t len,
                      int acc);
/* Walks [lin, lin + len) as the access would, without touching the bytes. */
bool xbt_probe_lin(struct xbt_vcpu *v, uint32_t lin, uint32_t len, bool write, int acc);

/* ---- descriptors (excp.c) --------------------------------------------------------- */
/* Reads the descriptor of sel (its index nonzero or in the LDT) into *d and its decoded
   form into *s: -1, or `vec` with the selector's error code (| ext) when the index is
   beyond its table's limit (or the table is not in RAM), or #PF. */
int xbt_desc_get(struct xbt_vcpu *v, uint16_t sel, int vec, uint32_t ext, uint64_t *d,
                 xbt_segment *s, uint32_t *err);
/* Sets the descriptor's accessed bit (type bit 0) in its table, as a load does. */
void xbt_mark_accessed(struct xbt_vcpu *v, uint16_t sel, uint64_t d);
/* Bits `set` and `clear` of the guest byte at linear lin changed with a locked
   operation, as the CPU updates descriptors (other vCPUs may write them meanwhile);
   false: not writable RAM. */
bool xbt_update_lin8(struct xbt_vcpu *v, uint32_t lin, uint8_t set, uint8_t clear);
/* Loads a code segment register value: accessed bit, the selector with RPL rpl. */
void xbt_commit_cs(struct xbt_vcpu *v, uint16_t sel, uint64_t d, xbt_segment *s, unsigned rpl);
/* A code segment (S=1, type bit 3). */
static inline bool xbt_is_code(const xbt_segment *s) { return s->s && (s->type & 8); }
static inline bool xbt_is_conforming(const xbt_segment *s)
{
    return xbt_is_code(s) && (s->type & 4);
}
/* A writable data segment (what SS must hold). */
static inline bool xbt_is_wdata(const xbt_segment *s)
{
    return s->s && !(s->type & 8) && (s->type & 2);
}
/* MOV Sreg's load of a data segment register or SS (the checks of SDM vol. 2, MOV). */
int xbt_seg_load(struct xbt_vcpu *v, int seg, uint16_t sel, uint32_t *err);
/* After a return to an outer level: data (and non-conforming code) segments whose DPL
   is below the new CPL become null. */
void xbt_null_inner_data_segs(struct xbt_vcpu *v);

/* ---- stacks (stack.c) -------------------------------------------------------------- */
struct xbt_stack {
    xbt_segment ss;   /* SS's hidden part (with its selector) */
    uint64_t desc;    /* SS's descriptor, for its accessed bit (0: already loaded) */
    uint32_t esp;     /* the stack pointer (SS.B clear: only SP moves) */
    bool user;        /* accesses with CPL 3 rights */
};
/* The current stack: SS and ESP as they are now, accessed at the current privilege. */
void xbt_stack_current(const struct xbt_vcpu *v, struct xbt_stack *st);
/* The stack of privilege level dpl (0-2) from the current TSS, with the SDM's checks of
   SS (#TS, #SS with ext).  Accesses to it are supervisor accesses. */
int xbt_stack_inner(struct xbt_vcpu *v, unsigned dpl, uint32_t ext, struct xbt_stack *st,
                    uint32_t *err);
/* Room for n words of size bytes below st->esp: the segment limit (#SS with error code
   serr) and every page writable (#PF).  Nothing is written. */
int xbt_stack_room(struct xbt_vcpu *v, const struct xbt_stack *st, unsigned n,
                   unsigned size, uint32_t serr, uint32_t *err);
/* Pushes w[0], w[1], ... (w[0] at the highest address) after xbt_stack_room said yes. */
void xbt_stack_put(struct xbt_vcpu *v, struct xbt_stack *st, const uint32_t *w, unsigned n,
                   unsigned size);
/* Pops n words (zero-extended) with the limit check (#SS(serr)) and the page walk. */
int xbt_stack_get(struct xbt_vcpu *v, struct xbt_stack *st, uint32_t *w, unsigned n,
                  unsigned size, uint32_t serr, uint32_t *err);
/* Adds to the stack pointer (RET imm16) within SS's width. */
void xbt_stack_add(struct xbt_stack *st, uint32_t n);
/* Makes st the guest's SS:ESP (SS's accessed bit set if it is a new SS). */
void xbt_stack_commit(struct xbt_vcpu *v, struct xbt_stack *st);

/* ---- far transfers (far.c) ----------------------------------------------------------- */
/* osz: the operand size (2 or 4); next_eip: the EIP after the instruction (pushed by
   CALL, saved in the old TSS by a task switch). */
int xbt_far_jmp(struct xbt_vcpu *v, uint16_t sel, uint32_t off, unsigned osz,
                uint32_t next_eip, uint32_t *err);
int xbt_far_call(struct xbt_vcpu *v, uint16_t sel, uint32_t off, unsigned osz,
                 uint32_t next_eip, uint32_t *err);
int xbt_far_ret(struct xbt_vcpu *v, unsigned osz, uint16_t imm, uint32_t *err);
int xbt_iret(struct xbt_vcpu *v, unsigned osz, uint32_t next_eip, uint32_t *err);

/* ---- task switches (task.c) ---------------------------------------------------------- */
enum xbt_task_reason { XBT_TASK_JMP, XBT_TASK_CALL, XBT_TASK_IRET, XBT_TASK_INT };
/* A task gate (JMP, CALL, or an event through the IDT): the TSS it names, checked (TI,
   GDT limit, type, busy: #GP; present: #NP) and switched to.  ext: 0 for instructions. */
int xbt_task_gate(struct xbt_vcpu *v, uint64_t gate, enum xbt_task_reason why,
                  uint32_t ret_eip, uint32_t ext, uint32_t *err, bool *moved);
/* A switch to the TSS sel whose descriptor d was checked by the caller (type, busy,
   present, privilege).  ret_eip goes to the old TSS.  Faults before the commit point
   leave the state unchanged; after it they are the new task's (v->ctx.eip its EIP) and
   *moved is set. */
int xbt_task_switch(struct xbt_vcpu *v, uint16_t sel, uint64_t d, enum xbt_task_reason why,
                    uint32_t ret_eip, uint32_t ext, uint32_t *err, bool *moved);
/* IRET with NT set: back to the task in the current TSS's back link. */
int xbt_task_return(struct xbt_vcpu *v, uint32_t next_eip, uint32_t *err);

/* ---- events (intr.c) ------------------------------------------------------------------ */
/* Delivers one event through the IDT: XBT_X_DONE, or the fault met (its error code in
   *err).  *moved: a task switch committed before the fault (it belongs to the new task,
   whose EIP is v->ctx.eip). */
int xbt_deliver_event(struct xbt_vcpu *v, int vector, bool has_err, uint32_t errcode,
                      uint32_t ret_eip, bool software, uint32_t *err, bool *moved);

#endif
