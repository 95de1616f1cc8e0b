/*
 * callouts.c - the C side of privileged and sensitive instructions.
 *
 * Entered from xbt_jit_callout with the guest state saved in the ctx.  A handler
 * returns 0 to resume the translated block after the call site, XBT_LEAVE_DISPATCH to
 * continue at ctx.eip through the dispatcher (control transfer, exception), or
 * XBT_LEAVE_EXIT when v->exit holds an exit for the embedder.
 */
#include <stdio.h>
#include <string.h>
#include <x86intrin.h>

#include "vcpu.h"
#include "runtime/sensitive.h"
#include "runtime/xfer.h"
#include "shadow-mmu/walk.h"

#define SITE(v) ((const struct xbt_callout_site *)(uintptr_t)(v)->ctx.callout_site)

/* A callout as its family's handler gets it from callout_body. */
struct co_call {
    const struct xbt_callout_site *s;
    uint32_t eip, nxt; /* the instruction's EIP and the next instruction's */
    unsigned size;     /* operand size: the site's, 4 where it has none */
    bool priv_ok;      /* CPL 0 */
};

static uint32_t get_reg(struct xbt_vcpu *v, uint8_t reg, unsigned size)
{
    uint32_t r = v->ctx.gpr[reg & 7];
    if (reg & 0x80)
        return (r >> 8) & 0xFF;
    return size == 1 ? r & 0xFF : size == 2 ? r & 0xFFFF : r;
}

static void set_reg(struct xbt_vcpu *v, uint8_t reg, unsigned size, uint32_t val)
{
    uint32_t *r = &v->ctx.gpr[reg & 7];
    if (reg & 0x80)
        *r = (*r & ~0xFF00u) | (val & 0xFF) << 8;
    else if (size == 1)
        *r = (*r & ~0xFFu) | (val & 0xFF);
    else if (size == 2)
        *r = (*r & ~0xFFFFu) | (val & 0xFFFF);
    else
        *r = val;
}

/* Raises an exception for the instruction at the site; always leaves the block.  An
   access that met MMIO is not a fault: its read exit is recorded (co_rd_requested). */
static int fault(struct xbt_vcpu *v, int vector, uint32_t err)
{
    if (v->mmio.co_rd_requested)
        return XBT_LEAVE_EXIT;
    if (v->pf_pending) {
        /* The access that failed met a guest page fault: that is the exception. */
        v->pf_pending = false;
        v->arch.cr2 = v->pf_lin;
        vector = XBT_PF;
        err = v->pf_err;
    }
    if (!xbt_raise(v, vector, true, err, SITE(v)->eip))
        return XBT_LEAVE_EXIT;
    return XBT_LEAVE_DISPATCH;
}

/* The outcome of a far transfer (far.c): a fault is raised at v->ctx.eip, which is the
   instruction's own unless a task switch committed (then the new task's); a task switch
   to a TSS with the T bit set raises its #DB once everything is done. */
static int xfer(struct xbt_vcpu *v, int r, uint32_t err)
{
    if (r == XBT_X_EXIT)
        return XBT_LEAVE_EXIT;
    if (r >= 0) {
        if (r == XBT_PF && v->pf_pending) {
            v->pf_pending = false;
            v->arch.cr2 = v->pf_lin;
        }
        v->arch.tss_trap = false;
        return xbt_raise(v, r, true, err, v->ctx.eip) ? XBT_LEAVE_DISPATCH : XBT_LEAVE_EXIT;
    }
    if (v->arch.tss_trap) {
        v->arch.tss_trap = false;
        if (!xbt_raise(v, XBT_DB, false, 0, v->ctx.eip))
            return XBT_LEAVE_EXIT;
    }
    return XBT_LEAVE_DISPATCH;
}

static int next(struct xbt_vcpu *v)
{
    v->ctx.eip = SITE(v)->eip + SITE(v)->len;
    return 0;
}

/* Where an access that found no RAM goes: its guest physical address if that is MMIO
   (a 1, 2, 4 or 8-byte access within one page, allowed at this privilege), else false
   (a #PF is pending, or the access is one the VMM does not emulate: the caller's
   fault stands). */
static bool mmio_target(struct xbt_vcpu *v, uint32_t lin, uint32_t len, bool write,
                        uint64_t *gpa)
{
    if (v->pf_pending || (lin & 0xFFF) + len > 4096 || (len & (len - 1)) || len > 8)
        return false;
    *gpa = lin;
    if (xbt_paging(v)) {
        xbt_walk_result r;
        if (!xbt_walk_lin(v, lin, write, v->arch.cpl == 3, false, &r))
            return false;
        *gpa = r.gpa;
    }
    return !xbt_gpa_mem(v->vm, *gpa, write); /* no RAM, or a write to ROM */
}

/* Explicit operands and stack accesses: with the rights of the current privilege (at
   CPL 3 a supervisor page is a #PF, as for the instruction run by the CPU).  MMIO: a
   read the device has answered comes from co_rd; a new one becomes a read exit, after
   which the instruction runs again (nothing of it is done before its reads succeed). */
static bool read_mem(struct xbt_vcpu *v, uint32_t lin, void *dst, uint32_t len)
{
    if (xbt_read_lin_as(v, lin, dst, len, v->arch.cpl == 3))
        return true;
    uint64_t gpa;
    if (!mmio_target(v, lin, len, false, &gpa))
        return false;
    if (v->mmio.co_rd_eip != SITE(v)->eip)
        v->mmio.co_rd_n = 0; /* answers for another instruction */
    for (unsigned i = 0; i < v->mmio.co_rd_n; i++) {
        struct xbt_co_mmio *c = &v->mmio.co_rd[i];
        if (c->valid && c->lin == lin && c->size == len) {
            c->valid = false; /* each answer once per run of the instruction */
            memcpy(dst, &c->data, len);
            return true;
        }
    }
    if (v->mmio.co_rd_n == 4) {
        xbt_set_internal_error(v, SITE(v)->eip, "more than four MMIO reads by one "
                               "instruction (not emulated)");
        v->mmio.co_rd_requested = true;
        return false;
    }
    /* Answers already used in this run are kept for the next one. */
    for (unsigned i = 0; i < v->mmio.co_rd_n; i++)
        v->mmio.co_rd[i].valid = true;
    v->mmio.co_rd_eip = SITE(v)->eip;
    v->mmio.co_rd[v->mmio.co_rd_n++] = (struct xbt_co_mmio){ lin, (uint8_t)len, false, gpa, 0 };
    memset(&v->exit, 0, sizeof v->exit);
    v->exit.reason = XBT_EXIT_MMIO;
    v->exit.mmio.gpa = gpa;
    v->exit.mmio.size = len;
    v->mmio.pending = true;
    v->mmio.kind = XBT_MMIO_CALLOUT;
    v->mmio.size = (uint8_t)len;
    v->mmio.co_rd_requested = true;
    return false;
}

static bool write_mem(struct xbt_vcpu *v, uint32_t lin, const void *src, uint32_t len)
{
    if (xbt_write_lin_as(v, lin, src, len, v->arch.cpl == 3))
        return true;
    uint64_t gpa;
    if (!mmio_target(v, lin, len, true, &gpa))
        return false;
    if (v->mmio.co_wr_n == 4)
        return false; /* not emulated: the caller's fault */
    struct xbt_co_mmio *c = &v->mmio.co_wr[v->mmio.co_wr_n++];
    *c = (struct xbt_co_mmio){ lin, (uint8_t)len, true, gpa, 0 };
    memcpy(&c->data, src, len);
    return true;
}

bool xbt_store_lin(struct xbt_vcpu *v, uint32_t lin, const void *src, uint32_t len)
{
    if (v->mmio.co_wr_sent >= v->mmio.co_wr_n)
        v->mmio.co_wr_n = v->mmio.co_wr_sent = 0; /* the queue's earlier stores are all sent */
    return write_mem(v, lin, src, len);
}

/* Operand of r/m16 or r/m32 form: register or memory at the EA. */
static bool read_rm(struct xbt_vcpu *v, unsigned size, uint32_t *val)
{
    const struct xbt_callout_site *s = SITE(v);
    if (s->flags & XBT_COF_HAS_MEM) {
        *val = 0;
        return read_mem(v, v->ctx.callout_ea, val, size);
    }
    *val = get_reg(v, s->reg, size);
    return true;
}

static bool write_rm(struct xbt_vcpu *v, unsigned size, uint32_t val)
{
    const struct xbt_callout_site *s = SITE(v);
    if (s->flags & XBT_COF_HAS_MEM)
        return write_mem(v, v->ctx.callout_ea, &val, size);
    set_reg(v, s->reg, size, val);
    return true;
}

static void set_zf(struct xbt_vcpu *v, bool zf)
{
    if (zf)
        v->ctx.eflags |= XBT_EFLAGS_ZF;
    else
        v->ctx.eflags &= ~XBT_EFLAGS_ZF;
}

/* ---- stack helpers --------------------------------------------------------------- */

/* The stack pointer's width: SP alone moves, and wraps at 64 KiB, with SS.B clear (a
   16-bit stack segment, and real mode's usual one). */
static uint32_t sp_mask(const struct xbt_vcpu *v)
{
    return v->arch.seg[XBT_SS].db ? 0xFFFFFFFFu : 0xFFFFu;
}

static bool pop(struct xbt_vcpu *v, uint32_t *esp, unsigned size, uint32_t *val)
{
    uint32_t m = sp_mask(v);
    *val = 0;
    if (!read_mem(v, v->arch.seg[XBT_SS].base + (*esp & m), val, size))
        return false;
    *esp = (*esp & ~m) | ((*esp + size) & m);
    return true;
}

static bool push(struct xbt_vcpu *v, uint32_t *esp, unsigned size, uint32_t val)
{
    uint32_t m = sp_mask(v);
    *esp = (*esp & ~m) | ((*esp - size) & m);
    return write_mem(v, v->arch.seg[XBT_SS].base + (*esp & m), &val, size);
}

/* ---- control registers --------------------------------------------------------------- */

static int mov_to_cr(struct xbt_vcpu *v, unsigned cr, uint32_t val)
{
    switch (cr) {
    case 0:
        if ((val & XBT_CR0_PG) && !(val & XBT_CR0_PE))
            return fault(v, XBT_GP, 0);
        if ((val & XBT_CR0_NW) && !(val & XBT_CR0_CD))
            return fault(v, XBT_GP, 0);
        /* Clearing PE enters real mode at CPL 0 (the instruction is privileged, so the
           CPL is 0 already).  No segment register changes: each keeps its hidden part
           until a load, so CS stays 32-bit code until a far transfer (SDM vol. 3,
           "Switching Back to Real-Address Mode"). */
        {
            uint32_t old = v->arch.cr0;
            v->arch.cr0 = val | XBT_CR0_ET;
            if ((old ^ v->arch.cr0) & (XBT_CR0_PG | XBT_CR0_WP)) {
                xbt_paging_changed(v);
                v->ctx.eip = SITE(v)->eip + SITE(v)->len;
                return XBT_LEAVE_DISPATCH; /* the translations just went away */
            }
        }
        break;
    case 2: v->arch.cr2 = val; break;
    case 3:
        v->arch.cr3 = val;
        if (xbt_paging(v)) {
            xbt_cr3_changed(v);
            v->ctx.eip = SITE(v)->eip + SITE(v)->len;
            return XBT_LEAVE_DISPATCH;
        }
        break;
    case 4:
        /* The bits the virtual CPU has (everything newer than OSXMMEXCPT but UMIP, SMEP
           and SMAP reserved; so are VME and PVI: CPUID.1:EDX.VME is clear and
           virtual-8086 mode is the no-VME one; UMIP, SMEP, SMAP and MCE only where CPUID
           has them: xbt_cr4_hidden). */
        if (val & ~(XBT_CR4_TSD | XBT_CR4_DE | XBT_CR4_PSE |
                    XBT_CR4_PAE | XBT_CR4_MCE | XBT_CR4_PGE | XBT_CR4_PCE | XBT_CR4_OSFXSR |
                    XBT_CR4_OSXMMEXCPT | XBT_CR4_UMIP | XBT_CR4_SMEP | XBT_CR4_SMAP) ||
            (val & xbt_cr4_hidden(v))) /* reserved where the CPUID policy hides them */
            return fault(v, XBT_GP, 0);
        {
            uint32_t old = v->arch.cr4;
            v->arch.cr4 = val;
            /* SMAP on: the K-window may hold user pages (mapped before); SMEP either
               way: blocks translated at CPL 0 from user pages must be checked against
               it (every region's epoch changes, block_current walks again). */
            if (xbt_paging(v) && ((old ^ val) & (XBT_CR4_PSE | XBT_CR4_PAE | XBT_CR4_PGE |
                                                 XBT_CR4_SMEP | XBT_CR4_SMAP))) {
                xbt_paging_changed(v);
                v->ctx.eip = SITE(v)->eip + SITE(v)->len;
                return XBT_LEAVE_DISPATCH;
            }
        }
        break;
    default:
        return fault(v, XBT_UDV, 0);
    }
    return next(v);
}

/* CR4.UMIP: SGDT, SIDT, SLDT, SMSW and STR raise #GP(0) outside CPL 0 (virtual-8086
   mode included, where the CPL is 3), before their operand is touched. */
static bool umip_denied(const struct xbt_vcpu *v, const struct co_call *c)
{
    return (v->arch.cr4 & XBT_CR4_UMIP) && !c->priv_ok;
}

/* MOV to and from CR0-CR4 and DR0-DR7, SMSW, LMSW, CLTS. */
static int co_ctrl_reg(struct xbt_vcpu *v, const struct co_call *c)
{
    const struct xbt_callout_site *s = c->s;
    switch (s->kind) {
    case XBT_CO_MOV_TO_CR:
        return mov_to_cr(v, s->reg2, get_reg(v, s->reg, 4));
    case XBT_CO_MOV_FROM_CR: {
        uint32_t val;
        if (!xbt_cr_read(v, s->reg2, &val))
            return fault(v, XBT_UDV, 0);
        set_reg(v, s->reg, 4, val);
        return next(v);
    }
    case XBT_CO_MOV_TO_DR:
    case XBT_CO_MOV_FROM_DR: {
        /* The SDM's order (MOV DR): #GP at CPL > 0 (the table), #UD for DR4/DR5 with
           CR4.DE (without it they are DR6/DR7), then #DB while DR7.GD: a fault, DR6.BD
           set; delivering it clears GD (raise_nested), so the handler may use them. */
        unsigned dr = s->reg2;
        if ((dr == 4 || dr == 5) && (v->arch.cr4 & XBT_CR4_DE))
            return fault(v, XBT_UDV, 0);
        if (dr == 4 || dr == 5)
            dr += 2;
        if (v->arch.dr[7] & XBT_DR7_GD) {
            v->arch.dr[6] |= XBT_DR6_BD;
            v->arch.db_fault = true; /* a fault's frame: RF set (excp.c) */
            return fault(v, XBT_DB, 0);
        }
        if (s->kind == XBT_CO_MOV_TO_DR) {
            v->arch.dr[dr] = get_reg(v, s->reg, 4);
            if (dr != 6) {
                /* DR0-DR3 and DR7: the breakpoints again, which may have dropped every
                   translation (this block's too): on from the dispatcher. */
                xbt_watch_guest_sync(v);
                next(v);
                return XBT_LEAVE_DISPATCH;
            }
        } else
            set_reg(v, s->reg, 4, dr == 6   ? (v->arch.dr[6] | 0xFFFF0FF0)
                                  : dr == 7 ? (v->arch.dr[7] | 0x400)
                                            : v->arch.dr[dr]);
        return next(v);
    }
    case XBT_CO_SMSW:
        if (umip_denied(v, c))
            return fault(v, XBT_GP, 0);
        if (!write_rm(v, (s->flags & XBT_COF_HAS_MEM) ? 2 : c->size, v->arch.cr0))
            return fault(v, XBT_GP, 0);
        return next(v);
    case XBT_CO_LMSW: {
        uint32_t val;
        if (!read_rm(v, 2, &val))
            return fault(v, XBT_GP, 0);
        /* LMSW: MP, EM, TS written; PE set but never cleared. */
        v->arch.cr0 = (v->arch.cr0 & ~(XBT_CR0_MP | XBT_CR0_EM | XBT_CR0_TS)) |
                 (val & (XBT_CR0_PE | XBT_CR0_MP | XBT_CR0_EM | XBT_CR0_TS)) |
                 (v->arch.cr0 & XBT_CR0_PE);
        return next(v);
    }
    default: /* CLTS */
        v->arch.cr0 &= ~XBT_CR0_TS;
        return next(v);
    }
}

/* INVLPG, WBINVD, INVD: the TLB is the windows' mappings; the caches have nothing to do. */
static int co_cache(struct xbt_vcpu *v, const struct co_call *c)
{
    if (c->s->kind != XBT_CO_INVLPG || !xbt_paging(v))
        return next(v);
    /* Drop the page, or the whole large page where a mapping there came from a 4 MiB
       (PAE: 2 MiB) page (one TLB entry in hardware), or where the tables map the address
       with one now: INVLPG then invalidates every TLB entry for it, 4 KiB ones left from
       before its directory entry became large included (SDM vol. 3, 4.10.2.3 and
       4.10.4.1; found by review, 2026-12-05, guest paging.c). */
    uint32_t ea = v->ctx.callout_ea; /* linear: the site added the segment base */
    uint32_t u = ea >> 21;
    bool code;
    if ((v->mmu->pse_region[u >> 3] & (1u << (u & 7))) ||
        xbt_smmu_large_at(v->mmu, xbt_paging_regs(v), ea)) {
        uint32_t size = xbt_pae(v) ? 2u << 20 : 4u << 20;
        for (uint32_t k = (ea & ~(size - 1)) >> 21; k <= (ea | (size - 1)) >> 21; k++)
            v->mmu->pse_region[k >> 3] &= (uint8_t)~(1u << (k & 7));
        code = xbt_mapping_changed(v, ea & ~(size - 1), size);
    } else {
        code = xbt_mapping_changed(v, ea & ~0xFFFu, 4096);
    }
    /* Pages without code checked under this mapping (kmap_local's, a munmap's): the
       windows lost them and no translation, chain or lookup entry changed, so the block
       goes on to its exit (INVLPG ends a block: the exit is chained after the first
       time).  Otherwise the dispatcher runs first: the lookup tables' pruning is due
       (ibl_bump_pending) and the next instruction's page may be among those changed.
       Boot and 500 fork+exec, strict: 1,386 k dispatches before, 1,143 k after. */
    if (!code)
        return next(v);
    v->ctx.eip = c->nxt;
    return XBT_LEAVE_DISPATCH;
}

/* ---- port I/O -------------------------------------------------------------------------- */

/* CLI/STI and friends: CPL <= IOPL. */
static bool iopl_allowed(struct xbt_vcpu *v)
{
    uint32_t iopl = (v->ctx.eflags_sys & XBT_EFLAGS_IOPL) >> XBT_EFLAGS_IOPL_SHIFT;
    return v->arch.cpl <= iopl;
}

/* Port access: CPL <= IOPL, or else every bit for port..port+size-1 clear in the 32-bit
   TSS's I/O permission bitmap (base at TSS offset 102, within the TSS limit).  In
   virtual-8086 mode the bitmap decides whatever IOPL is (SDM vol. 1 19.5.2). */
static bool io_allowed_port(struct xbt_vcpu *v, uint16_t port, unsigned size)
{
    if (iopl_allowed(v) && !xbt_v86(v))
        return true;
    const xbt_segment *tr = &v->arch.tr;
    if (tr->unusable || !tr->present || (tr->type & 7) != 3 || tr->limit < 103)
        return false; /* no 32-bit TSS (type 9/11): no bitmap */
    uint16_t base = 0;
    if (!xbt_read_lin(v, v->arch.tr.base + 102, &base, 2))
        return false;
    uint32_t byte = base + port / 8u;
    if (byte + 1 > v->arch.tr.limit) /* both bytes that may hold the bits must be inside */
        return false;
    uint16_t bits = 0;
    if (!xbt_read_lin(v, v->arch.tr.base + byte, &bits, 2))
        return false;
    uint32_t mask = ((1u << size) - 1) << (port & 7);
    return (bits & mask) == 0;
}

/* I/O breakpoints (SDM vol. 3 18.2.4, with CR4.DE): DRn under DR7 with R/Wn 10 covers
   LENn ports from DRn aligned down to LENn; the DR6 bits of those an access to
   port..port+size-1 meets.  Their #DB is a trap after the instruction (the dispatcher
   raises it: watch.c, from dbg.ghit); a REP INS/OUTS one hits stops after the
   iteration. */
static uint8_t io_bp_hits(const struct xbt_vcpu *v, uint16_t port, unsigned size)
{
    uint32_t dr7 = v->arch.dr[7];
    if (!(dr7 & 0xFF) || !(v->arch.cr4 & XBT_CR4_DE))
        return 0;
    uint8_t hit = 0;
    for (int n = 0; n < 4; n++) {
        if (!xbt_dr7_enabled(dr7, n) || xbt_dr7_rw(dr7, n) != 2)
            continue;
        uint32_t len = xbt_dr7_len(dr7, n);
        uint32_t at = v->arch.dr[n] & ~(len - 1);
        if (port + size > at && port < (uint64_t)at + len)
            hit |= (uint8_t)(1u << n);
    }
    return hit;
}

static int io_exit(struct xbt_vcpu *v, uint16_t port, unsigned size, bool in, uint32_t data)
{
    /* Every field of the io member is written: no 256-byte clear on this hot path. */
    v->exit.reason = XBT_EXIT_IO;
    v->exit.pad = 0;
    v->exit.io.port = port;
    v->exit.io.size = (uint8_t)size;
    v->exit.io.is_in = in;
    v->exit.io.data = data;
    v->exit.io.count = 1;
    v->exit.io.pad2 = 0;
    v->exit.io.buf = NULL;
    v->pio.count = 1;
    return XBT_LEAVE_EXIT;
}

/* How many elements of a REP INS/OUTS one exit moves (XBT_VM_STRING_IO): while ECX
   lasts, up to the end of the memory operand's page, upwards only, RAM only (checked
   with the access's rights); 1 where any of that does not hold (the element path: its
   faults and MMIO are exact). */
static uint32_t string_io_count(struct xbt_vcpu *v, uint32_t lin, unsigned size, bool write,
                                uint32_t mask, uint32_t ptr, uint8_t io_bp)
{
    /* One element at a time too under TF, with the guest's data breakpoints (each
       element's access checked and reported after its iteration) and where an I/O
       breakpoint hit (io_bp: its trap after the first iteration). */
    if (!(v->vm->cfg.flags & XBT_VM_STRING_IO) || (v->ctx.eflags & XBT_EFLAGS_DF) ||
        v->tf.stepping || io_bp || xbt_watch_guest_any(v))
        return 1;
    uint32_t n = v->ctx.gpr[XBT_ECX] & mask;
    uint32_t room = (4096 - (lin & 0xFFF)) / size;
    if (n > room)
        n = room;
    if (mask != 0xFFFFFFFFu && n > (0x10000 - (ptr & mask)) / size)
        n = (0x10000 - (ptr & mask)) / size; /* SI/DI wrap at 64 KiB: not in one batch */
    if (n < 2 || !xbt_probe_lin(v, lin, n * size, write, v->arch.cpl == 3)) {
        v->pf_pending = false;
        return 1;
    }
    return n;
}

static int string_io_exit(struct xbt_vcpu *v, uint16_t port, unsigned size, bool in,
                          uint32_t n)
{
    io_exit(v, port, size, in, 0);
    v->exit.io.count = n;
    v->exit.io.buf = v->pio.buf;
    v->pio.count = n;
    return XBT_LEAVE_EXIT;
}

/* IN and OUT: one I/O exit each (IN completes when the embedder answers). */
static int co_port_io(struct xbt_vcpu *v, const struct co_call *c)
{
    const struct xbt_callout_site *s = c->s;
    unsigned size = c->size;
    uint16_t port = (s->flags & XBT_COF_IMM_PORT) ? (uint16_t)s->imm
                                                  : (uint16_t)v->ctx.gpr[XBT_EDX];
    if (!io_allowed_port(v, port, size))
        return fault(v, XBT_GP, 0);
    v->ctx.eip = c->nxt;
    uint8_t bp = io_bp_hits(v, port, size);
    v->dbg.ghit |= bp;
    xbt_vm *vm = v->vm;
    if (vm->pio_fn) {
        /* The embedder's handler answers it in the run: no exit (xbt.h).  If it dropped
           translations (xbt_vm_invalidate, a write to a code page), this block may be
           one of them: on through the dispatcher, not in the block. */
        bool in = s->kind == XBT_CO_IN;
        uint32_t d = in ? 0 : get_reg(v, XBT_EAX, size);
        uint64_t drops = xbt_tc_drops(v->tc);
        if (vm->pio_fn(vm->pio_opaque, port, size, in, &d)) {
            if (in)
                set_reg(v, XBT_EAX, size, d);
            v->stats.pio_handled++;
            return xbt_tc_drops(v->tc) != drops || bp ? XBT_LEAVE_DISPATCH : 0;
        }
    }
    if (s->kind == XBT_CO_IN) {
        v->pio.in_pending = true;
        v->pio.in_reg_size = (uint8_t)size;
        return io_exit(v, port, size, true, 0);
    }
    return io_exit(v, port, size, false, get_reg(v, XBT_EAX, size));
}

/* INS and OUTS, with or without REP. */
static int co_string_io(struct xbt_vcpu *v, const struct co_call *c)
{
    const struct xbt_callout_site *s = c->s;
    unsigned size = c->size;
    uint32_t eip = c->eip, nxt = c->nxt, m = xbt_str_mask(s);
    uint32_t *esi = &v->ctx.gpr[XBT_ESI], *edi = &v->ctx.gpr[XBT_EDI];
    uint32_t *ecx = &v->ctx.gpr[XBT_ECX];
    if (!io_allowed_port(v, (uint16_t)v->ctx.gpr[XBT_EDX], size))
        return fault(v, XBT_GP, 0);
    bool rep = s->flags & XBT_COF_REP;
    if (rep && (*ecx & m) == 0)
        return next(v);
    uint16_t port = (uint16_t)v->ctx.gpr[XBT_EDX];
    int step = (v->ctx.eflags & XBT_EFLAGS_DF) ? -(int)size : (int)size;
    /* An I/O breakpoint's hit and the end of an iteration (EIP staying on the
       instruction) count once the element goes: not when its read met MMIO (the
       instruction then runs again from its start) or faulted. */
    uint8_t io_bp = io_bp_hits(v, port, size);
    bool more = rep && (*ecx & m) != 1;
    /* One element per exit (a page's worth with XBT_VM_STRING_IO); EIP stays on the
       instruction until the count runs out. */
    if (s->kind == XBT_CO_OUTS) {
        uint32_t lin = v->arch.seg[s->seg < XBT_NSEG ? s->seg : XBT_DS].base + (*esi & m);
        uint32_t n = rep ? string_io_count(v, lin, size, false, m, *esi, io_bp) : 1;
        if (n > 1 && xbt_read_lin_as(v, lin, v->pio.buf, n * size, v->arch.cpl == 3)) {
            xbt_str_add(esi, m, n * size);
            xbt_str_add(ecx, m, (uint32_t)-n);
            v->ctx.eip = (*ecx & m) ? eip : nxt;
            return string_io_exit(v, port, size, false, n);
        }
        v->pf_pending = false;
        uint32_t val = 0;
        if (!read_mem(v, lin, &val, size))
            return fault(v, XBT_GP, 0);
        xbt_str_add(esi, m, (uint32_t)step);
        if (rep)
            xbt_str_add(ecx, m, (uint32_t)-1);
        v->ctx.eip = rep && (*ecx & m) ? eip : nxt;
        v->dbg.ghit |= io_bp;
        if (more)
            xbt_rep_iteration(v);
        return io_exit(v, port, size, false, val);
    }
    /* The store to ES:(E)DI is made when the data comes: check it now, with the rights
       of the current privilege (memory without RAM: left to the store). */
    uint32_t lin = v->arch.seg[XBT_ES].base + (*edi & m);
    if (!xbt_probe_lin(v, lin, size, true, v->arch.cpl == 3) && v->pf_pending)
        return fault(v, XBT_PF, 0);
    v->pio.in_pending = true;
    v->pio.in_reg_size = (uint8_t)(0x80 | size); /* 0x80: store to ES:EDI */
    v->pio.ins_rep = rep;
    v->pio.ins_mask = m;
    uint32_t n = rep ? string_io_count(v, lin, size, true, m, *edi, io_bp) : 1;
    v->pio.next_eip = rep && (*ecx & m) > n ? eip : nxt;
    v->ctx.eip = v->pio.next_eip;
    if (n > 1)
        return string_io_exit(v, port, size, true, n);
    v->dbg.ghit |= io_bp;
    if (more)
        xbt_rep_iteration(v);
    return io_exit(v, port, size, true, 0);
}

/* ---- BCD and SALC ---------------------------------------------------------------------- */

static void set_szp(struct xbt_vcpu *v, uint8_t r)
{
    uint32_t f = v->ctx.eflags & ~(XBT_EFLAGS_SF | XBT_EFLAGS_ZF | XBT_EFLAGS_PF);
    if (r & 0x80) f |= XBT_EFLAGS_SF;
    if (!r) f |= XBT_EFLAGS_ZF;
    if (!__builtin_parity(r)) f |= XBT_EFLAGS_PF;
    v->ctx.eflags = f;
}

/* AL's arithmetic: DAA DAS AAA AAS AAM AAD, and SALC (AL from CF). */
static int co_bcd(struct xbt_vcpu *v, const struct co_call *c)
{
    const struct xbt_callout_site *s = c->s;
    if (s->kind == XBT_CO_SALC) {
        set_reg(v, XBT_EAX, 1, (v->ctx.eflags & XBT_EFLAGS_CF) ? 0xFF : 0);
        return next(v);
    }
    uint32_t *eax = &v->ctx.gpr[XBT_EAX];
    uint8_t al = *eax & 0xFF, ah = (*eax >> 8) & 0xFF;
    uint32_t f = v->ctx.eflags;
    bool cf = f & XBT_EFLAGS_CF, af = f & XBT_EFLAGS_AF;
    switch (s->mnemonic) {
    case ZYDIS_MNEMONIC_DAA: {
        uint8_t old = al;
        bool ncf = false;
        if ((al & 0xF) > 9 || af) { al += 6; ncf = cf || old > 0xF9; af = true; } else af = false;
        if (old > 0x99 || cf) { al += 0x60; ncf = true; }
        cf = ncf;
        *eax = (*eax & ~0xFFu) | al;
        set_szp(v, al);
        break;
    }
    case ZYDIS_MNEMONIC_DAS: {
        uint8_t old = al;
        bool ncf = false;
        if ((al & 0xF) > 9 || af) { ncf = cf || al < 6; al -= 6; af = true; } else af = false;
        if (old > 0x99 || cf) { al -= 0x60; ncf = true; }
        cf = ncf;
        *eax = (*eax & ~0xFFu) | al;
        set_szp(v, al);
        break;
    }
    case ZYDIS_MNEMONIC_AAA:
    case ZYDIS_MNEMONIC_AAS: {
        bool add = s->mnemonic == ZYDIS_MNEMONIC_AAA;
        uint16_t ax = *eax & 0xFFFF;
        if ((al & 0xF) > 9 || af) {
            ax = add ? (uint16_t)(ax + 0x106) : (uint16_t)(ax - 6);
            if (!add)
                ax = (uint16_t)((ax & 0xFF) | ((((ax >> 8) - 1) & 0xFF) << 8));
            af = cf = true;
        } else {
            af = cf = false;
        }
        ax &= 0xFF0F;
        *eax = (*eax & ~0xFFFFu) | ax;
        set_szp(v, (uint8_t)ax); /* SF ZF PF undefined; set from AL as hardware does */
        break;
    }
    case ZYDIS_MNEMONIC_AAM: {
        uint8_t base = (uint8_t)s->imm;
        if (base == 0)
            return fault(v, XBT_DE, 0);
        ah = al / base;
        al = al % base;
        *eax = (*eax & ~0xFFFFu) | (uint32_t)ah << 8 | al;
        set_szp(v, al);
        cf = af = false;
        break;
    }
    case ZYDIS_MNEMONIC_AAD: {
        uint8_t base = (uint8_t)s->imm;
        al = (uint8_t)(al + ah * base);
        *eax = (*eax & ~0xFFFFu) | al;
        set_szp(v, al);
        cf = af = false;
        break;
    }
    default:
        break;
    }
    v->ctx.eflags = (v->ctx.eflags & ~(XBT_EFLAGS_CF | XBT_EFLAGS_AF)) |
                    (cf ? XBT_EFLAGS_CF : 0) | (af ? XBT_EFLAGS_AF : 0);
    if (s->mnemonic == ZYDIS_MNEMONIC_AAM || s->mnemonic == ZYDIS_MNEMONIC_AAD)
        v->ctx.eflags &= ~XBT_EFLAGS_OF; /* OF undefined: cleared */
    return next(v);
}

/* ---- ARPL LAR LSL VERR VERW ------------------------------------------------------ */

/* The selector instructions: ARPL adjusts an RPL; LAR, LSL, VERR and VERW ask what the
   descriptor a selector names allows at this privilege. */
static int co_selector(struct xbt_vcpu *v, const struct co_call *c)
{
    const struct xbt_callout_site *site = c->s;
    unsigned kind = site->kind;
    if (xbt_seg_plain(v))
        return fault(v, XBT_UDV, 0); /* none of them is recognized in real or v86 mode */
    if (kind == XBT_CO_ARPL) {
        /* ARPL r/m16, r16: memory form has the source in reg, register form in reg2. */
        uint32_t dst;
        if (!read_rm(v, 2, &dst))
            return fault(v, XBT_GP, 0);
        uint32_t src = get_reg(v, (site->flags & XBT_COF_HAS_MEM) ? site->reg : site->reg2, 2);
        bool adj = (dst & 3) < (src & 3);
        if (adj && !write_rm(v, 2, (dst & ~3u) | (src & 3)))
            return fault(v, XBT_GP, 0);
        set_zf(v, adj);
        return next(v);
    }
    /* LAR/LSL r, r/m16: destination in reg, source in reg2 or memory; VERR/VERW r/m16. */
    uint32_t sel32 = 0;
    bool two = kind == XBT_CO_LAR || kind == XBT_CO_LSL;
    if (site->flags & XBT_COF_HAS_MEM) {
        if (!read_mem(v, v->ctx.callout_ea, &sel32, 2))
            return fault(v, XBT_GP, 0);
    } else {
        sel32 = get_reg(v, two ? site->reg2 : site->reg, 2);
    }
    uint16_t sel = (uint16_t)sel32;
    uint64_t d = 0;
    bool ok = (sel & ~3u) != 0 && xbt_read_descriptor(v, sel, &d);
    xbt_segment s;
    if (ok) {
        xbt_seg_from_desc(&s, sel, d);
        bool code = s.s && (s.type & 8), conforming = code && (s.type & 4);
        if (!conforming && (s.dpl < v->arch.cpl || s.dpl < (sel & 3)))
            ok = false;
        if (ok && !s.s) {
            static const bool lar_ok[16] = { 0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0 };
            static const bool lsl_ok[16] = { 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0 };
            if (kind == XBT_CO_LAR) ok = lar_ok[s.type];
            else if (kind == XBT_CO_LSL) ok = lsl_ok[s.type];
            else ok = false;
        }
        if (ok && kind == XBT_CO_VERR)
            ok = s.s && (!code || (s.type & 2));
        if (ok && kind == XBT_CO_VERW)
            ok = s.s && !code && (s.type & 2);
    }
    set_zf(v, ok);
    unsigned osz = v->arch.seg[XBT_CS].db ? 4 : 2;
    if (ok && kind == XBT_CO_LAR)
        set_reg(v, site->reg, osz, (uint32_t)(d >> 32) & 0x00F0FF00);
    if (ok && kind == XBT_CO_LSL)
        set_reg(v, site->reg, osz, s.limit);
    return next(v);
}

/* ---- SYSENTER and SYSEXIT -------------------------------------------------------------- */

/* The state change is sensitive.h's (the fast callouts make it too). */
static int sysenter_exit(struct xbt_vcpu *v, bool enter)
{
    xbt_sysenter_exit(v, enter);
    return XBT_LEAVE_DISPATCH;
}

bool xbt_sysenter(struct xbt_vcpu *v)
{
    if ((v->arch.msr_sysenter_cs & 0xFFFC) == 0)
        return xbt_raise(v, XBT_GP, true, 0, v->ctx.eip);
    v->stats.callouts[XBT_CO_SYSENTER]++;
    sysenter_exit(v, true);
    return true;
}

/* SYSENTER and SYSEXIT: #GP(0) in real mode or while IA32_SYSENTER_CS holds a null
   selector.  From virtual-8086 mode SYSENTER works and clears VM (SDM SYSENTER); the
   data segment registers keep their v86 values, for ring 0 to reload. */
static int co_sysenter(struct xbt_vcpu *v, const struct co_call *c)
{
    if (xbt_real_mode(v) || (v->arch.msr_sysenter_cs & 0xFFFC) == 0)
        return fault(v, XBT_GP, 0);
    return sysenter_exit(v, c->s->kind == XBT_CO_SYSENTER);
}

/* ---- exceptions, EFLAGS, interrupts, tables, segments, the CPU model ------------------ */

/* Kinds whose whole effect is an exception, or for an instruction the translator cannot
   handle an internal-error exit. */
static int co_raise(struct xbt_vcpu *v, const struct co_call *c)
{
    switch (c->s->kind) {
    case XBT_CO_DE:
        return fault(v, XBT_DE, 0);
    case XBT_CO_GP0:
        return fault(v, XBT_GP, 0);
    case XBT_CO_SS0:
        return fault(v, XBT_SSF, 0);
    case XBT_CO_NM:
        if (v->arch.cr0 & XBT_CR0_EM)
            return fault(v, XBT_UDV, 0);
        if (v->arch.cr0 & XBT_CR0_TS)
            return fault(v, XBT_NMV, 0);
        return fault(v, XBT_UDV, 0); /* SSE with CR4.OSFXSR clear */
    case XBT_CO_RDPMC:
        return fault(v, XBT_GP, 0); /* CR4.PCE is never set: no counters */
    case XBT_CO_UNSUPPORTED:
        xbt_set_internal_error(v, c->eip, "unsupported instruction %s at %08x",
                               ZydisMnemonicGetString((ZydisMnemonic)c->s->mnemonic), c->eip);
        return XBT_LEAVE_EXIT;
    default: /* UD; SYSCALL SYSRET MONITOR MWAIT XGETBV XSETBV: not in the virtual CPUID
                (SYSCALL/SYSRET are #UD outside 64-bit mode on Intel in any case) */
        return fault(v, XBT_UDV, 0);
    }
}

/* A fault site's check found its page absent from the window (pfsite.c). */
static int co_pfcheck(struct xbt_vcpu *v, const struct co_call *c)
{
    (void)c;
    return xbt_pf_callout(v);
}

/* An MMIO site (mmio.c): the access as after a host fault, without one; not MMIO this
   time, the instruction runs alone, translated as it is. */
static int co_mmio(struct xbt_vcpu *v, const struct co_call *c)
{
    (void)c;
    if (!xbt_mmio_callout(v)) {
        v->smc.single = true;
        return XBT_LEAVE_DISPATCH;
    }
    if (v->mmio.synced) /* the handler answered: on after the instruction, in the block
                           unless it dropped translations (see co_port_io) */
        return v->mmio.sync_drops ? XBT_LEAVE_DISPATCH : 0;
    return (v->mmio.run || v->mmio.raised) ? XBT_LEAVE_DISPATCH : XBT_LEAVE_EXIT;
}

/* The interrupt flag and EFLAGS: CLI, STI, POPF, PUSHF, CLAC, STAC, and HLT, which
   waits for IF. */
static int co_intr_flag(struct xbt_vcpu *v, const struct co_call *c)
{
    unsigned size = c->size;
    uint32_t esp = v->ctx.gpr[XBT_ESP];
    switch (c->s->kind) {
    case XBT_CO_CLI:
        if (!iopl_allowed(v))
            return fault(v, XBT_GP, 0);
        v->ctx.vif = 0;
        return next(v);
    case XBT_CO_STI:
        if (!iopl_allowed(v))
            return fault(v, XBT_GP, 0);
        xbt_sti(v, c->nxt);
        return next(v);
    case XBT_CO_POPF: {
        uint32_t val;
        if (xbt_v86(v) && !iopl_allowed(v))
            return fault(v, XBT_GP, 0); /* IOPL-sensitive in v86 mode (no VME) */
        if (!pop(v, &esp, size, &val))
            return fault(v, XBT_SSF, 0);
        xbt_eflags_write(v, val, xbt_popf_mask(v->arch.cpl, v->ctx.eflags_sys, size));
        v->ctx.gpr[XBT_ESP] = esp;
        next(v);
        /* TF set: the dispatcher steps from the next instruction on (run.c). */
        return (v->ctx.eflags_sys & XBT_EFLAGS_TF) ? XBT_LEAVE_DISPATCH : 0;
    }
    case XBT_CO_PUSHF:
        if (xbt_v86(v) && !iopl_allowed(v))
            return fault(v, XBT_GP, 0);
        if (!push(v, &esp, size, xbt_get_eflags(v) & ~(XBT_EFLAGS_RF | XBT_EFLAGS_VM)))
            return fault(v, XBT_SSF, 0);
        v->ctx.gpr[XBT_ESP] = esp;
        return next(v);
    case XBT_CO_CLAC:
    case XBT_CO_STAC:
        /* #UD without SMAP in CPUID, in virtual-8086 mode, at CPL > 0 (SDM).  AC 1 -> 0
           empties the K-window of user pages (xbt_callout_entry's xbt_smap_sync). */
        if (!(xbt_feature(v, XBT_FEAT_7_EBX) & (1u << 20)) || xbt_v86(v) || v->arch.cpl)
            return fault(v, XBT_UDV, 0);
        xbt_eflags_write(v, c->s->kind == XBT_CO_STAC ? XBT_EFLAGS_AC : 0, XBT_EFLAGS_AC);
        return next(v);
    default: /* HLT */
        v->ctx.eip = c->nxt;
        v->arch.halted = true;
        return XBT_LEAVE_DISPATCH; /* the run loop delivers an interrupt or exits HLT */
    }
}

/* The instructions that raise an interrupt of their own (INT n, INT3, INT1, INTO, BOUND),
   and IRET. */
static int co_soft_int(struct xbt_vcpu *v, const struct co_call *c)
{
    const struct xbt_callout_site *s = c->s;
    uint32_t eip = c->eip, nxt = c->nxt;
    int vector;
    bool software = true;
    switch (s->kind) {
    case XBT_CO_INT:
        /* INT n is IOPL-sensitive in v86 mode (INT3, INTO, INT1 are not): #GP(0). */
        if (xbt_v86(v) && !iopl_allowed(v))
            return fault(v, XBT_GP, 0);
        vector = (int)(s->imm & 0xFF);
        break;
    case XBT_CO_INT3: vector = XBT_BP; break;
    case XBT_CO_INT1: vector = XBT_DB, software = false; break;
    case XBT_CO_INTO:
        if (!(v->ctx.eflags & XBT_EFLAGS_OF))
            return next(v);
        vector = XBT_OF;
        break;
    case XBT_CO_IRET: {
        v->arch.nmi_blocked = false; /* even if the IRET faults (SDM 6.7.1) */
        uint32_t err = 0;
        int r = xbt_iret(v, c->size == 2 ? 2 : 4, nxt, &err);
        return xfer(v, r, err);
    }
    default: { /* BOUND */
        int32_t lo = 0, hi = 0;
        unsigned bsz = c->size == 2 ? 2 : 4;
        if (!read_mem(v, v->ctx.callout_ea, &lo, bsz) ||
            !read_mem(v, v->ctx.callout_ea + bsz, &hi, bsz))
            return fault(v, XBT_GP, 0);
        int32_t idx = (int32_t)get_reg(v, s->reg, bsz);
        if (bsz == 2)
            lo = (int16_t)lo, hi = (int16_t)hi, idx = (int16_t)idx;
        if (idx < lo || idx > hi)
            return fault(v, XBT_BR, 0);
        return next(v);
    }
    }
    return xbt_deliver_interrupt(v, vector, software, nxt, eip) ? XBT_LEAVE_DISPATCH
                                                               : XBT_LEAVE_EXIT;
}

/* The descriptor-table registers (LGDT, LIDT, SGDT, SIDT) and the selectors of the LDT
   and the task register (SLDT, STR). */
static int co_dtable(struct xbt_vcpu *v, const struct co_call *c)
{
    const struct xbt_callout_site *s = c->s;
    switch (s->kind) {
    case XBT_CO_LGDT:
    case XBT_CO_LIDT: {
        uint16_t limit;
        uint32_t base;
        if (!read_mem(v, v->ctx.callout_ea, &limit, 2) ||
            !read_mem(v, v->ctx.callout_ea + 2, &base, 4))
            return fault(v, XBT_GP, 0);
        if (s->opsize == 2 || (s->mnemonic && c->size == 2))
            base &= 0x00FFFFFF;
        xbt_dtable *t = s->kind == XBT_CO_LGDT ? &v->arch.gdtr : &v->arch.idtr;
        t->base = base;
        t->limit = limit;
        return next(v);
    }
    case XBT_CO_SGDT:
    case XBT_CO_SIDT: {
        if (umip_denied(v, c))
            return fault(v, XBT_GP, 0);
        xbt_dtable *t = s->kind == XBT_CO_SGDT ? &v->arch.gdtr : &v->arch.idtr;
        if (!write_mem(v, v->ctx.callout_ea, &t->limit, 2) ||
            !write_mem(v, v->ctx.callout_ea + 2, &t->base, 4))
            return fault(v, XBT_GP, 0);
        return next(v);
    }
    default: { /* SLDT, STR */
        if (xbt_seg_plain(v))
            return fault(v, XBT_UDV, 0); /* not recognized in real or v86 mode */
        if (umip_denied(v, c))
            return fault(v, XBT_GP, 0);
        uint16_t sel = s->kind == XBT_CO_SLDT ? v->arch.ldtr.selector : v->arch.tr.selector;
        if (!write_rm(v, (s->flags & XBT_COF_HAS_MEM) ? 2 : c->size, sel))
            return fault(v, XBT_GP, 0);
        return next(v);
    }
    }
}

/* LLDT and LTR: a system descriptor from the GDT (LTR marks the TSS busy).  Privileged,
   but not recognized in real or v86 mode: #UD comes before the CPL's #GP. */
static int co_ldt_tr(struct xbt_vcpu *v, const struct co_call *c)
{
    const struct xbt_callout_site *s = c->s;
    uint32_t sel32;
    if (xbt_seg_plain(v))
        return fault(v, XBT_UDV, 0);
    if (!c->priv_ok)
        return fault(v, XBT_GP, 0);
    if (!read_rm(v, 2, &sel32))
        return fault(v, XBT_GP, 0);
    uint16_t sel = (uint16_t)sel32;
    if ((sel & ~3u) == 0) {
        if (s->kind == XBT_CO_LTR)
            return fault(v, XBT_GP, 0);
        memset(&v->arch.ldtr, 0, sizeof v->arch.ldtr);
        v->arch.ldtr.unusable = 1;
        return next(v);
    }
    uint64_t d;
    if ((sel & 4) || !xbt_read_descriptor(v, sel, &d))
        return fault(v, XBT_GP, sel & 0xFFFC);
    xbt_segment seg;
    xbt_seg_from_desc(&seg, sel, d);
    if (seg.s || (s->kind == XBT_CO_LLDT ? seg.type != 2 : (seg.type != 9 && seg.type != 1)))
        return fault(v, XBT_GP, sel & 0xFFFC);
    if (!seg.present)
        return fault(v, XBT_NP, sel & 0xFFFC);
    if (s->kind == XBT_CO_LLDT) {
        v->arch.ldtr = seg;
    } else {
        xbt_update_lin8(v, v->arch.gdtr.base + (sel & ~7u) + 5, 2, 0); /* busy */
        seg.type |= 2;
        v->arch.tr = seg;
    }
    return next(v);
}

/* Segment register loads: MOV and POP to a segment register, LDS LES LFS LGS LSS. */
static int co_seg_load(struct xbt_vcpu *v, const struct co_call *c)
{
    const struct xbt_callout_site *s = c->s;
    unsigned size = c->size;
    uint32_t err = 0;
    if (s->kind == XBT_CO_LOAD_FAR_PTR) {
        /* The site's size is the far pointer's: m16:16 (4 bytes) or m16:32 (6). */
        unsigned osz = size == 4 ? 2 : 4;
        uint32_t off = 0;
        uint16_t sel;
        if (!read_mem(v, v->ctx.callout_ea, &off, osz) ||
            !read_mem(v, v->ctx.callout_ea + osz, &sel, 2))
            return fault(v, XBT_GP, 0);
        int seg = s->mnemonic == ZYDIS_MNEMONIC_LDS ? XBT_DS : s->mnemonic == ZYDIS_MNEMONIC_LES ? XBT_ES
                : s->mnemonic == ZYDIS_MNEMONIC_LFS ? XBT_FS : s->mnemonic == ZYDIS_MNEMONIC_LGS ? XBT_GS
                : XBT_SS;
        int r = xbt_seg_load(v, seg, sel, &err);
        if (r >= 0)
            return xfer(v, r, err);
        set_reg(v, s->reg, osz, off);
        return next(v);
    }
    uint32_t sel, esp = v->ctx.gpr[XBT_ESP];
    if (s->kind == XBT_CO_POP_SREG) {
        if (!pop(v, &esp, size, &sel))
            return fault(v, XBT_SSF, 0);
    } else if (!read_rm(v, 2, &sel)) {
        return fault(v, XBT_GP, 0);
    }
    int r = xbt_seg_load(v, s->reg2, (uint16_t)sel, &err);
    if (r >= 0)
        return xfer(v, r, err);
    v->ctx.gpr[XBT_ESP] = esp;
    if (s->reg2 == XBT_SS) {
        v->arch.interrupt_shadow = true;
        v->arch.shadow_eip = c->nxt;
        v->arch.shadow_ss = true;
        v->tf.ss_loaded = true; /* a single-step trap waits for the next instruction */
    }
    return next(v);
}

/* Far JMP, CALL and RET (far.c: gates, task switches, returns to an outer level). */
static int co_far(struct xbt_vcpu *v, const struct co_call *c)
{
    const struct xbt_callout_site *s = c->s;
    uint32_t err = 0;
    if (s->kind == XBT_CO_RET_FAR) {
        int r = xbt_far_ret(v, c->size == 2 ? 2 : 4, (uint16_t)s->imm, &err);
        return xfer(v, r, err);
    }
    /* ptr16:16 / ptr16:32 or m16:16 / m16:32: the operand is 4 or 6 bytes. */
    uint32_t off = s->imm;
    uint16_t sel = s->imm_sel;
    unsigned osz = c->size == 4 ? 2 : 4;
    if (s->flags & XBT_COF_HAS_MEM) {
        off = 0;
        if (!read_mem(v, v->ctx.callout_ea, &off, osz) ||
            !read_mem(v, v->ctx.callout_ea + osz, &sel, 2))
            return fault(v, XBT_GP, 0);
    }
    int r = s->kind == XBT_CO_CALL_FAR ? xbt_far_call(v, sel, off, osz, c->nxt, &err)
                                       : xbt_far_jmp(v, sel, off, osz, c->nxt, &err);
    return xfer(v, r, err);
}

/* RDTSC and RDTSCP: CR4.TSD makes them CPL 0 only (virtual-8086 mode is CPL 3); the
   guest's TSC is the host's plus the vCPU's offset.  RDTSCP also reads IA32_TSC_AUX's
   low half into ECX, and is #UD where CPUID does not list it. */
static int rdtsc_common(struct xbt_vcpu *v, const struct co_call *c)
{
    uint32_t *gpr = v->ctx.gpr;
    bool p = c->s->kind == XBT_CO_RDTSCP;
    if (p && !(xbt_feature(v, XBT_FEAT_X1_EDX) & (1u << 27)))
        return fault(v, XBT_UDV, 0);
    if ((v->arch.cr4 & XBT_CR4_TSD) && !c->priv_ok)
        return fault(v, XBT_GP, 0);
    uint64_t t = __rdtsc() + v->ctx.tsc_offset;
    gpr[XBT_EAX] = (uint32_t)t;
    gpr[XBT_EDX] = (uint32_t)(t >> 32);
    if (p)
        gpr[XBT_ECX] = (uint32_t)v->arch.msr_tsc_aux;
    return next(v);
}

/* The CPU model's registers: RDMSR, WRMSR, CPUID, RDTSC, RDTSCP, RDPID. */
static int co_cpu_info(struct xbt_vcpu *v, const struct co_call *c)
{
    uint32_t *gpr = v->ctx.gpr;
    switch (c->s->kind) {
    case XBT_CO_RDMSR: {
        uint64_t val;
        if (xbt_msr_exit(v, false, c->nxt))
            return XBT_LEAVE_EXIT; /* the embedder's MSR (policy.c) */
        if (!xbt_msr_read(v, gpr[XBT_ECX], &val))
            return fault(v, XBT_GP, 0);
        gpr[XBT_EAX] = (uint32_t)val;
        gpr[XBT_EDX] = (uint32_t)(val >> 32);
        return next(v);
    }
    case XBT_CO_WRMSR:
        if (xbt_msr_exit(v, true, c->nxt))
            return XBT_LEAVE_EXIT;
        if (!xbt_msr_write(v, gpr[XBT_ECX], (uint64_t)gpr[XBT_EDX] << 32 | gpr[XBT_EAX]))
            return fault(v, XBT_GP, 0);
        return next(v);
    case XBT_CO_CPUID: {
        uint32_t r[4];
        xbt_cpuid_answer(v, gpr[XBT_EAX], gpr[XBT_ECX], r);
        gpr[XBT_EAX] = r[0], gpr[XBT_EBX] = r[1];
        gpr[XBT_ECX] = r[2], gpr[XBT_EDX] = r[3];
        return next(v);
    }
    case XBT_CO_RDPID:
        /* Any CPL and mode (no CR4.TSD check, SDM); always the 32-bit register. */
        if (!(xbt_feature(v, XBT_FEAT_7_ECX) & (1u << 22)))
            return fault(v, XBT_UDV, 0);
        set_reg(v, c->s->reg, 4, (uint32_t)v->arch.msr_tsc_aux);
        return next(v);
    default: /* RDTSC, RDTSCP */
        return rdtsc_common(v, c);
    }
}

/* ---- the dispatcher of callouts ------------------------------------------------------ */

/* PAUSE where the fast handler does not run (CPL 3): the hint and the pause-loop
   count (vcpu.h). */
static int co_pause(struct xbt_vcpu *v, const struct co_call *c)
{
    (void)c;
    xbt_pause_loop(v);
    return next(v);
}

#define CPL0 true
#define ANY_CPL false
/* Each kind's family, and whether the instruction is privileged: #GP(0) outside CPL 0,
   raised before its handler runs.  A kind without a handler is an internal error. */
static const struct {
    int (*handler)(struct xbt_vcpu *v, const struct co_call *c);
    bool cpl0;
} co_table[XBT_CO_COUNT] = {
    [XBT_CO_UD] = { co_raise, ANY_CPL }, [XBT_CO_DE] = { co_raise, ANY_CPL },
    [XBT_CO_GP0] = { co_raise, ANY_CPL }, [XBT_CO_SS0] = { co_raise, ANY_CPL },
    [XBT_CO_NM] = { co_raise, ANY_CPL }, [XBT_CO_UNSUPPORTED] = { co_raise, ANY_CPL },
    [XBT_CO_RDPMC] = { co_raise, ANY_CPL }, [XBT_CO_RDTSCP] = { co_cpu_info, ANY_CPL },
    [XBT_CO_RDPID] = { co_cpu_info, ANY_CPL },
    [XBT_CO_SYSCALL] = { co_raise, ANY_CPL }, [XBT_CO_SYSRET] = { co_raise, ANY_CPL },
    [XBT_CO_MONITOR] = { co_raise, ANY_CPL }, [XBT_CO_MWAIT] = { co_raise, ANY_CPL },
    [XBT_CO_XGETBV] = { co_raise, ANY_CPL }, [XBT_CO_XSETBV] = { co_raise, ANY_CPL },
    [XBT_CO_MMIO] = { co_mmio, ANY_CPL }, [XBT_CO_PFCHECK] = { co_pfcheck, ANY_CPL },
    [XBT_CO_CLI] = { co_intr_flag, ANY_CPL }, [XBT_CO_STI] = { co_intr_flag, ANY_CPL },
    [XBT_CO_POPF] = { co_intr_flag, ANY_CPL }, [XBT_CO_PUSHF] = { co_intr_flag, ANY_CPL },
    [XBT_CO_CLAC] = { co_intr_flag, ANY_CPL }, [XBT_CO_STAC] = { co_intr_flag, ANY_CPL },
    [XBT_CO_HLT] = { co_intr_flag, CPL0 },
    [XBT_CO_INT] = { co_soft_int, ANY_CPL }, [XBT_CO_INT3] = { co_soft_int, ANY_CPL },
    [XBT_CO_INT1] = { co_soft_int, ANY_CPL }, [XBT_CO_INTO] = { co_soft_int, ANY_CPL },
    [XBT_CO_BOUND] = { co_soft_int, ANY_CPL }, [XBT_CO_IRET] = { co_soft_int, ANY_CPL },
    [XBT_CO_MOV_TO_CR] = { co_ctrl_reg, CPL0 }, [XBT_CO_MOV_FROM_CR] = { co_ctrl_reg, CPL0 },
    [XBT_CO_MOV_TO_DR] = { co_ctrl_reg, CPL0 }, [XBT_CO_MOV_FROM_DR] = { co_ctrl_reg, CPL0 },
    [XBT_CO_LMSW] = { co_ctrl_reg, CPL0 }, [XBT_CO_CLTS] = { co_ctrl_reg, CPL0 },
    [XBT_CO_SMSW] = { co_ctrl_reg, ANY_CPL },
    [XBT_CO_INVLPG] = { co_cache, CPL0 }, [XBT_CO_WBINVD] = { co_cache, CPL0 },
    [XBT_CO_INVD] = { co_cache, CPL0 },
    [XBT_CO_LGDT] = { co_dtable, CPL0 }, [XBT_CO_LIDT] = { co_dtable, CPL0 },
    [XBT_CO_SGDT] = { co_dtable, ANY_CPL }, [XBT_CO_SIDT] = { co_dtable, ANY_CPL },
    [XBT_CO_SLDT] = { co_dtable, ANY_CPL }, [XBT_CO_STR] = { co_dtable, ANY_CPL },
    /* LLDT and LTR: their handler checks the CPL */
    [XBT_CO_LLDT] = { co_ldt_tr, ANY_CPL }, [XBT_CO_LTR] = { co_ldt_tr, ANY_CPL },
    [XBT_CO_ARPL] = { co_selector, ANY_CPL }, [XBT_CO_LAR] = { co_selector, ANY_CPL },
    [XBT_CO_LSL] = { co_selector, ANY_CPL }, [XBT_CO_VERR] = { co_selector, ANY_CPL },
    [XBT_CO_VERW] = { co_selector, ANY_CPL },
    [XBT_CO_MOV_TO_SREG] = { co_seg_load, ANY_CPL }, [XBT_CO_POP_SREG] = { co_seg_load, ANY_CPL },
    [XBT_CO_LOAD_FAR_PTR] = { co_seg_load, ANY_CPL },
    [XBT_CO_JMP_FAR] = { co_far, ANY_CPL }, [XBT_CO_CALL_FAR] = { co_far, ANY_CPL },
    [XBT_CO_RET_FAR] = { co_far, ANY_CPL },
    [XBT_CO_IN] = { co_port_io, ANY_CPL }, [XBT_CO_OUT] = { co_port_io, ANY_CPL },
    [XBT_CO_INS] = { co_string_io, ANY_CPL }, [XBT_CO_OUTS] = { co_string_io, ANY_CPL },
    [XBT_CO_RDMSR] = { co_cpu_info, CPL0 }, [XBT_CO_WRMSR] = { co_cpu_info, CPL0 },
    [XBT_CO_CPUID] = { co_cpu_info, ANY_CPL }, [XBT_CO_RDTSC] = { co_cpu_info, ANY_CPL },
    [XBT_CO_SYSENTER] = { co_sysenter, ANY_CPL }, [XBT_CO_SYSEXIT] = { co_sysenter, CPL0 },
    [XBT_CO_BCD] = { co_bcd, ANY_CPL }, [XBT_CO_SALC] = { co_bcd, ANY_CPL },
    [XBT_CO_PAUSE] = { co_pause, ANY_CPL },
#undef CPL0
#undef ANY_CPL
};

/* Kinds whose handlers may change the translation mode and still resume the block (the
   others that change it, CPL and CS with it, leave through xfer): a segment's base or
   limit, CR0's TS and EM, CR4's OSFXSR and SMAP, an MSR or XCR0 that changes what the
   CPUID policy hides.  Those are checked (callout_body); a check on every kind cost
   the frequent ones 10% (an IRET, an INT). */
static bool may_change_mode(unsigned kind)
{
    switch (kind) {
    case XBT_CO_MOV_TO_SREG: case XBT_CO_POP_SREG: case XBT_CO_LOAD_FAR_PTR:
    case XBT_CO_MOV_TO_CR: case XBT_CO_LMSW: case XBT_CO_CLTS: case XBT_CO_WRMSR:
    case XBT_CO_XSETBV:
        return true;
    default:
        return false;
    }
}

static int callout_body(struct xbt_jit_ctx *ctx)
{
    struct xbt_vcpu *v = (struct xbt_vcpu *)ctx;
    const struct xbt_callout_site *s = SITE(v);
    const struct co_call c = { s, s->eip, s->eip + s->len, s->opsize ? s->opsize : 4,
                               v->arch.cpl == 0 };
    v->stats.callouts[s->kind < 96 ? s->kind : 0]++;
    v->pf_pending = false;
    /* The guest's EIP during a callout is the instruction's own. */
    v->ctx.eip = c.eip;
    if (s->kind >= XBT_CO_COUNT || !co_table[s->kind].handler) {
        xbt_set_internal_error(v, c.eip, "callout %s not implemented", xbt_callout_name(s->kind));
        return XBT_LEAVE_EXIT;
    }
    if (co_table[s->kind].cpl0 && !c.priv_ok)
        return fault(v, XBT_GP, 0);
    if (!may_change_mode(s->kind))
        return co_table[s->kind].handler(v, &c);
    /* An instruction that changed the translation mode (a segment's base or limit, CR0's
       TS, a CPUID policy's MSR...) and resumes its block leaves it for the dispatcher:
       the block's exit may be chained to a block of the mode it had (run.c, chain_block
       chains within a mode). */
    uint32_t key = xbt_vcpu_mode_key(v);
    int r = co_table[s->kind].handler(v, &c);
    return r == 0 && xbt_vcpu_mode_key(v) != key ? XBT_LEAVE_DISPATCH : r;
}

/* The full callout handler.  A kick or stop that arrived while it ran (the signal then
   found RIP outside translated code and unlinked nothing) is honoured here: the guest
   leaves to the dispatcher at the next instruction, so a loop made mostly of callouts
   still takes interrupts and stops within bounded time. */
int xbt_callout_entry(struct xbt_jit_ctx *ctx)
{
    struct xbt_vcpu *v = (struct xbt_vcpu *)ctx;
    v->mmio.co_wr_n = v->mmio.co_wr_sent = 0;
    int r = callout_body(ctx);
    xbt_smap_sync(v); /* the handler may have cleared EFLAGS.AC (mmu.c) */
    if (v->mmio.co_rd_requested) {
        /* A read met MMIO: its exit is recorded; the instruction runs again, from its
           start, once the device answered (mmio.c stores the data in co_rd). */
        v->mmio.co_rd_requested = false;
        v->mmio.co_wr_n = 0;
        v->pf_pending = false;
        v->ctx.eip = SITE(v)->eip;
        return XBT_LEAVE_EXIT;
    }
    v->mmio.co_rd_n = 0;
    if (v->mmio.co_wr_n && r != XBT_LEAVE_EXIT)
        return xbt_callout_mmio_store(v) ? XBT_LEAVE_EXIT : r; /* the stores, in order */
    if (r == 0 && (v->dbg.whit || v->dbg.ghit))
        return XBT_LEAVE_DISPATCH; /* a watchpoint or breakpoint was hit: stop (or the
                                      guest's #DB trap) after this instruction */
    if (r == 0 && atomic_load_explicit(&v->kick, memory_order_relaxed) &&
        v->ctx.eip == SITE(v)->eip + SITE(v)->len)
        return XBT_LEAVE_DISPATCH;
    return r;
}
