/*
 * mmio.c - guest accesses to physical addresses without RAM (paging off: the K-window
 * beyond RAM is PROT_NONE, so they arrive as host faults with precise guest state).
 * The instruction is decoded again and its one memory access becomes an MMIO exit; a
 * read completes with the embedder's data when the vCPU runs again.  Handled: MOV to or
 * from memory (r/m, immediate, moffs) and MOVZX/MOVSX loads, 1, 2 or 4 bytes; STOS,
 * LODS, MOVS (MMIO on one side or both: a read and a write exit per element), SCAS and
 * CMPS (flags as the CPU computes them, REPE/REPNE), with or without REP, either
 * direction, one element per exit: the instruction is re-executed for the next element,
 * so the registers show the progress at every exit as on hardware.  Any other
 * instruction with one explicit memory operand of 1, 2, 4 or 8 bytes (ALU and
 * read-modify-write, TEST/CMP, XCHG, BT, SETcc, x87 loads, ...) takes the generic path:
 * a read exit if it reads the operand, then the instruction runs once, translated and
 * alone (interrupts held off), against a scratch page mapped at the MMIO page's window
 * address holding the device's data; if it writes the operand, what it stored becomes a
 * write exit.  Registers and flags are exactly what the CPU computed.  An access that
 * crosses between a RAM page and an MMIO page takes the same path with the RAM page
 * mapped beside the scratch page: the exit covers the MMIO part only (1 to 7 bytes, as
 * KVM splits such accesses), and the RAM side's translation is checked first, so a #PF
 * there comes before the device sees anything.  Still internal-error exits that name
 * the instruction: the stack and XLAT as MMIO, operands wider than 8 bytes (FXSAVE,
 * SSE), an access crossing two MMIO pages with paging on.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vcpu.h"
#include "runtime/xfer.h"
#include "shadow-mmu/walk.h"

static uint32_t gpr_read(const struct xbt_vcpu *v, ZydisRegister r)
{
    int i = xbt_gpr_index(r);
    uint32_t val = v->ctx.gpr[i];
    if (xbt_reg_is_high8(r))
        return (val >> 8) & 0xFF;
    return val;
}

/* The guest physical address of an access at linear lin with the current privilege
   (paging off: lin itself).  1: *gpa set; 0: the walk faulted and the #PF is delivered;
   -1: an exit is recorded (page tables outside RAM, or a triple fault). */
static int walk_access(struct xbt_vcpu *v, uint32_t lin, bool write, uint64_t *gpa)
{
    *gpa = lin;
    if (!xbt_paging(v))
        return 1;
    xbt_walk_result r;
    if (xbt_walk_lin(v, lin, write, v->arch.cpl == 3, false, &r)) {
        *gpa = r.gpa;
        return 1;
    }
    if (r.bus_error) {
        xbt_set_internal_error(v, v->ctx.eip, "guest page tables for %08x are not in RAM", lin);
        return -1;
    }
    v->arch.cr2 = lin;
    v->stats.page_faults++;
    return xbt_raise(v, XBT_PF, true, r.error_code, v->ctx.eip) ? 0 : -1;
}

/* Where a MOVS element read from MMIO goes: 0 RAM, 1 MMIO (*gpa), -1 neither (a #PF
   raised, v->mmio.raised, or an internal error set). */
static int dst_kind(struct xbt_vcpu *v, uint32_t lin, unsigned size, uint64_t *gpa)
{
    v->mmio.raised = false;
    uint64_t g;
    int w = walk_access(v, lin, true, &g);
    if (w <= 0) {
        v->mmio.raised = w == 0;
        return -1;
    }
    if (xbt_gpa_mem(v->vm, g, true))
        return 0;
    if ((lin & 0xFFF) + size > 4096) {
        xbt_set_internal_error(v, v->ctx.eip, "MOVS from MMIO to %08x: the destination "
                               "crosses a page boundary (not emulated)", lin);
        return -1;
    }
    *gpa = g;
    return 1;
}

/* A string instruction's ESI, EDI or ECX as its address size uses it: with 16-bit
   addressing (real mode's usual) SI, DI and CX alone, wrapping at 64 KiB. */
static uint32_t sreg_get(const struct xbt_vcpu *v, int r)
{
    return v->mmio.addr16 ? v->ctx.gpr[r] & 0xFFFF : v->ctx.gpr[r];
}

static void sreg_add(struct xbt_vcpu *v, int r, int32_t n)
{
    uint32_t *g = &v->ctx.gpr[r];
    if (v->mmio.addr16)
        *g = (*g & 0xFFFF0000u) | ((*g + (uint32_t)n) & 0xFFFF);
    else
        *g += (uint32_t)n;
}

/* After one string element: advance the pointers, count down a REP, and either stay on
   the instruction (more elements) or move past it. */
static void string_step(struct xbt_vcpu *v, bool src, bool dst, int32_t step, bool rep,
                        uint32_t next)
{
    if (src)
        sreg_add(v, XBT_ESI, step);
    if (dst)
        sreg_add(v, XBT_EDI, step);
    if (rep) {
        sreg_add(v, XBT_ECX, -1);
        if (sreg_get(v, XBT_ECX) != 0)
            return; /* EIP stays: the next element runs (and exits) again */
    }
    v->ctx.eip = next;
}

/* The flags CMP writes: every arithmetic flag but DF. */
#define CMP_FLAGS (XBT_EFLAGS_ARITH & ~XBT_EFLAGS_DF)

/* The arithmetic flags of CMP a, b at the given size, as the host CPU computes them. */
static uint32_t cmp_flags(uint32_t a, uint32_t b, unsigned size)
{
    uint64_t f;
    if (size == 1)
        __asm__("cmpb %b2, %b1\n\tpushfq\n\tpopq %0" : "=r"(f) : "q"(a), "q"(b) : "cc");
    else if (size == 2)
        __asm__("cmpw %w2, %w1\n\tpushfq\n\tpopq %0" : "=r"(f) : "r"(a), "r"(b) : "cc");
    else
        __asm__("cmpl %2, %1\n\tpushfq\n\tpopq %0" : "=r"(f) : "r"(a), "r"(b) : "cc");
    return (uint32_t)f & CMP_FLAGS;
}

/* CMPS/SCAS with MMIO on one side: the device's element arrived (d); compare, set the
   flags, step, and end a REPE/REPNE whose condition fails. */
static void compare_step(struct xbt_vcpu *v, uint32_t d)
{
    unsigned sz = v->mmio.size;
    uint32_t mask = sz == 4 ? 0xFFFFFFFFu : (1u << (8 * sz)) - 1;
    uint32_t other = v->mmio.cmp_other & mask;
    d &= mask;
    /* SCAS: accumulator - [EDI]; CMPS: [ESI] - [EDI] (the MMIO side is either). */
    uint32_t a = v->mmio.cmp_mmio_first ? d : other, b = v->mmio.cmp_mmio_first ? other : d;
    uint32_t fl = cmp_flags(a, b, sz);
    v->ctx.eflags = (v->ctx.eflags & ~CMP_FLAGS) | fl;
    bool src = v->mmio.kind == XBT_MMIO_CMPS;
    if (src)
        sreg_add(v, XBT_ESI, v->mmio.step);
    sreg_add(v, XBT_EDI, v->mmio.step);
    if (v->mmio.rep) {
        bool zf = fl & XBT_EFLAGS_ZF;
        sreg_add(v, XBT_ECX, -1);
        if (sreg_get(v, XBT_ECX) != 0 && zf == (v->mmio.rep == 1))
            return; /* REPE while equal, REPNE while different: the next element */
    }
    v->ctx.eip = v->mmio.next_eip;
}

/* STOS, LODS, MOVS, SCAS, CMPS touching MMIO: one element.  false with no exit set: not
   a string instruction this handles (the caller reports it). */
static bool string_mmio(struct xbt_vcpu *v, const xbt_insn *in, uint32_t lin, uint64_t gpa)
{
    ZydisMnemonic mn = in->zi.mnemonic;
    bool stos = mn == ZYDIS_MNEMONIC_STOSB || mn == ZYDIS_MNEMONIC_STOSW || mn == ZYDIS_MNEMONIC_STOSD;
    bool lods = mn == ZYDIS_MNEMONIC_LODSB || mn == ZYDIS_MNEMONIC_LODSW || mn == ZYDIS_MNEMONIC_LODSD;
    bool movs = mn == ZYDIS_MNEMONIC_MOVSB || mn == ZYDIS_MNEMONIC_MOVSW ||
                (mn == ZYDIS_MNEMONIC_MOVSD && in->zi.meta.category == ZYDIS_CATEGORY_STRINGOP);
    bool scas = mn == ZYDIS_MNEMONIC_SCASB || mn == ZYDIS_MNEMONIC_SCASW || mn == ZYDIS_MNEMONIC_SCASD;
    bool cmps = mn == ZYDIS_MNEMONIC_CMPSB || mn == ZYDIS_MNEMONIC_CMPSW ||
                (mn == ZYDIS_MNEMONIC_CMPSD && in->zi.meta.category == ZYDIS_CATEGORY_STRINGOP);
    if (!stos && !lods && !movs && !scas && !cmps)
        return false;
    v->mmio.addr16 = in->zi.address_width == 16;
    unsigned size = in->zi.operand_width / 8;
    bool rep = in->zi.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE |
                                    ZYDIS_ATTRIB_HAS_REPNE);
    int32_t step = (v->ctx.eflags & XBT_EFLAGS_DF) ? -(int32_t)size : (int32_t)size;
    int sseg = XBT_DS;
    for (unsigned i = 0; i < in->zi.operand_count; i++)
        if (in->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY &&
            xbt_gpr_index(in->ops[i].mem.base) == XBT_ESI)
            sseg = xbt_seg_index(in->ops[i].mem.segment);
    if (sseg < 0)
        sseg = XBT_DS;
    uint32_t src = v->arch.seg[sseg].base + sreg_get(v, XBT_ESI);
    uint32_t dst = v->arch.seg[XBT_ES].base + sreg_get(v, XBT_EDI);
    uint32_t next = v->ctx.eip + in->length;
    uint32_t mask = size == 4 ? 0xFFFFFFFFu : (1u << (8 * size)) - 1;
    memset(&v->exit, 0, sizeof v->exit);
    v->exit.reason = XBT_EXIT_MMIO;
    v->exit.mmio.gpa = gpa;
    v->exit.mmio.size = size;
    if ((stos || movs) && lin == dst) {
        uint32_t val = v->ctx.gpr[XBT_EAX];
        if (movs && !xbt_read_lin_as(v, src, &val, size, v->arch.cpl == 3)) {
            v->pf_pending = false;
            xbt_set_internal_error(v, v->ctx.eip, "MOVS from %08x to MMIO: the source is "
                                   "not readable RAM (not emulated yet)", src);
            return false;
        }
        v->exit.mmio.is_write = 1;
        v->exit.mmio.data = val & mask;
        string_step(v, movs, true, step, rep, next);
        return true;
    }
    if (scas || cmps) {
        /* The element from the other side first (RAM, or the accumulator). */
        bool mmio_is_src = cmps && lin == src;
        if (!mmio_is_src && lin != dst) {
            xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM) by %s: the "
                                   "faulting address is neither its source nor its "
                                   "destination", (unsigned long long)gpa,
                                   ZydisMnemonicGetString(mn));
            return false;
        }
        uint32_t other = v->ctx.gpr[XBT_EAX], olin = mmio_is_src ? dst : src;
        uint64_t ogpa = 0;
        bool both = false;
        if (cmps && !xbt_read_lin_as(v, olin, &other, size, v->arch.cpl == 3)) {
            v->pf_pending = false;
            /* Not RAM: a #PF there is raised before the device sees anything; MMIO on
               both sides reads [ESI], then [EDI] (two read exits), then compares. */
            int w = walk_access(v, olin, false, &ogpa);
            if (w == 0) {
                v->mmio.raised = true;
                return true;
            }
            if (w < 0)
                return false;
            if (xbt_gpa_mem(v->vm, ogpa, false) || (olin & 0xFFF) + size > 4096) {
                xbt_set_internal_error(v, v->ctx.eip, "CMPS between MMIO at %#llx and %08x: "
                                       "the other side is neither RAM nor MMIO within one "
                                       "page (not emulated)", (unsigned long long)gpa, olin);
                return false;
            }
            both = true;
            v->exit.mmio.gpa = mmio_is_src ? gpa : ogpa; /* [ESI] first */
            v->mmio.cmp_dst_gpa = mmio_is_src ? ogpa : gpa;
        }
        v->mmio.pending = true;
        v->mmio.kind = both ? XBT_MMIO_CMPS_BOTH : cmps ? XBT_MMIO_CMPS : XBT_MMIO_SCAS;
        v->mmio.size = (uint8_t)size;
        v->mmio.rep = !rep ? 0 : (in->zi.attributes & ZYDIS_ATTRIB_HAS_REPNE) ? 2 : 1;
        v->mmio.step = step;
        v->mmio.next_eip = next;
        v->mmio.cmp_other = other;
        v->mmio.cmp_mmio_first = mmio_is_src; /* CMPS computes [ESI] - [EDI] */
        return true;
    }
    if ((lods || movs) && lin == src) {
        v->mmio.pending = true;
        v->mmio.kind = lods ? XBT_MMIO_LODS : XBT_MMIO_MOVS;
        v->mmio.size = (uint8_t)size;
        v->mmio.rep = rep;
        v->mmio.step = step;
        v->mmio.dst_lin = dst;
        v->mmio.next_eip = next;
        return true;
    }
    xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM) by %s: the "
                           "faulting address is neither its source nor its destination",
                           (unsigned long long)gpa, ZydisMnemonicGetString(mn));
    return false;
}

/* An access from start (size bytes) that crosses a page boundary, the fault (lin) on
   the MMIO side.  The other side must be RAM reachable with the access's rights; the
   CPU checks both translations before it touches either, so a #PF there is raised now,
   before the device sees anything.  That page is mapped into the window, so that the
   step runs without another fault; the MMIO part becomes [*m0, *m0 + *mlen).
   1: go on with the step; 0: an exception was raised; -1: an exit is recorded. */
static int straddle_prepare(struct xbt_vcpu *v, uint32_t lin, uint32_t start, unsigned size,
                            bool is_store, uint32_t *m0, uint32_t *mlen)
{
    xbt_vm *vm = v->vm;
    uint32_t pg2 = (start & ~0xFFFu) + 4096;
    bool mmio_first = (lin & ~0xFFFu) == (start & ~0xFFFu);
    uint32_t r0 = mmio_first ? pg2 : start;
    *m0 = mmio_first ? start : pg2;
    *mlen = mmio_first ? pg2 - start : start + size - pg2;
    uint64_t rgpa;
    int w = walk_access(v, r0, is_store, &rgpa);
    if (w <= 0)
        return w;
    if (!xbt_gpa_mem(vm, rgpa, is_store)) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access at %08x crosses from one page "
                               "without RAM into another: not emulated", start);
        return -1;
    }
    if (is_store && v->mmu->code_prot[rgpa >> 12]) {
        xbt_set_internal_error(v, v->ctx.eip, "guest store at %08x crosses from MMIO into a "
                               "page holding translated code: not emulated", start);
        return -1;
    }
    if (xbt_paging(v)) {
        uint32_t err = v->fault_err;
        v->fault_err = is_store ? XBT_PF_W : 0;
        int rc = xbt_window_fault(v, v->arch.cpl == 3 ? XBT_WINDOW_U : XBT_WINDOW_K, r0);
        v->fault_err = err;
        if (rc != XBT_WF_DONE)
            return -1;
    }
    return 1;
}

/* v->exit: an MMIO access of `size` bytes at `gpa` (a store of `data`, or a read). */
static void set_exit(struct xbt_vcpu *v, uint64_t gpa, unsigned size, bool write,
                     uint64_t data)
{
    memset(&v->exit, 0, sizeof v->exit);
    v->exit.reason = XBT_EXIT_MMIO;
    v->exit.mmio.gpa = gpa;
    v->exit.mmio.size = size;
    v->exit.mmio.is_write = write;
    v->exit.mmio.data = data;
}

/* One more read exit for the access in progress (mmio_pending stays set): the run
   returns it at once (mmio_exit_ready) and the next run completes it. */
static void next_read(struct xbt_vcpu *v, uint64_t gpa, unsigned size)
{
    set_exit(v, gpa, size, false, 0);
    v->mmio.exit_ready = true;
}

/* A store that follows the exit being made: sent by the next run
   (xbt_callout_mmio_store, from the queue callouts use). */
static void queue_store(struct xbt_vcpu *v, uint64_t gpa, unsigned size, uint64_t data)
{
    v->mmio.co_wr[0] = (struct xbt_co_mmio){ 0, (uint8_t)size, true, gpa, data };
    v->mmio.co_wr_n = 1;
    v->mmio.co_wr_sent = 0;
}

/* The effective address of memory operand `mem`: base + index * scale + displacement,
   modulo the address size (SDM vol. 1, 3.7.5); false for a register that is not a
   general one. */
static bool operand_ea(const struct xbt_vcpu *v, const xbt_insn *in,
                       const ZydisDecodedOperand *mem, uint32_t *out)
{
    uint32_t ea = (uint32_t)mem->mem.disp.value;
    if (mem->mem.base != ZYDIS_REGISTER_NONE) {
        int i = xbt_gpr_index(mem->mem.base);
        if (i < 0)
            return false;
        ea += v->ctx.gpr[i];
    }
    if (mem->mem.index != ZYDIS_REGISTER_NONE) {
        int i = xbt_gpr_index(mem->mem.index);
        if (i < 0)
            return false;
        ea += v->ctx.gpr[i] * (uint32_t)mem->mem.scale;
    }
    if (in->zi.address_width == 16)
        ea &= 0xFFFF;
    *out = ea;
    return true;
}

/* The instruction at ctx.eip, decoded (paging on: its bytes read through the walker). */
static bool decode_at_eip(struct xbt_vcpu *v, xbt_insn *in)
{
    uint8_t buf[16];
    uint32_t n = 0;
    uint32_t ilin = v->arch.seg[XBT_CS].base + v->ctx.eip;
    /* The bytes up to the page's end at once, then the next page's (an instruction
       shorter than what we read may end before an unmapped page: byte by byte there). */
    uint32_t first = 4096 - (ilin & 0xFFF) < sizeof buf ? 4096 - (ilin & 0xFFF) : sizeof buf;
    if (xbt_read_lin_as(v, ilin, buf, first, XBT_ACC_VMM)) {
        n = first;
        if (n < sizeof buf &&
            xbt_read_lin_as(v, ilin + n, buf + n, (uint32_t)sizeof buf - n, XBT_ACC_VMM))
            n = sizeof buf;
    }
    while (n < sizeof buf && xbt_read_lin_as(v, ilin + n, buf + n, 1, XBT_ACC_VMM))
        n++;
    v->pf_pending = false;
    /* CS's D bit decides the default sizes (real mode included: its CS may be either). */
    return n && xbt_decode_as(&v->xl.dec, !v->arch.seg[XBT_CS].db, buf, n, v->ctx.eip, in) ==
                    XBT_DECODE_OK;
}

static bool mmio_begin_insn(struct xbt_vcpu *v, uint32_t lin, uint64_t gpa, const xbt_insn *ip);

/* BT, BTS, BTR, BTC: with a register bit offset the access may lie outside the operand. */
static bool is_bit_test(ZydisMnemonic mn)
{
    return mn == ZYDIS_MNEMONIC_BT || mn == ZYDIS_MNEMONIC_BTS || mn == ZYDIS_MNEMONIC_BTR ||
           mn == ZYDIS_MNEMONIC_BTC;
}

/*
 * The access just begun, if it is a plain MOV load or store, offered to the embedder's
 * handler (xbt_vm_set_mmio_handler): answered, it completes here as after its exit (a
 * load's register written, EIP past the instruction) and no exit is made
 * (v->mmio.synced).
 */
/* The embedder's handler asked for one access: true if it answered (no exit is made:
   v->mmio.synced; sync_drops if it dropped translations meanwhile). */
static bool ask_handler(struct xbt_vcpu *v, uint64_t gpa, unsigned size, bool write,
                        uint64_t *data)
{
    xbt_vm *vm = v->vm;
    uint64_t drops = xbt_tc_drops(v->tc);
    if (!vm->mmio_fn(vm->mmio_opaque, gpa, size, write, data))
        return false;
    v->mmio.sync_drops = xbt_tc_drops(v->tc) != drops;
    v->exit.reason = XBT_EXIT_NONE;
    v->mmio.synced = true;
    v->stats.mmio_handled++;
    return true;
}

static void mmio_sync(struct xbt_vcpu *v)
{
    if (!v->vm->mmio_fn || !v->mmio.simple || v->exit.reason != XBT_EXIT_MMIO ||
        v->mmio.run || v->mmio.raised || v->mmio.exit_ready)
        return;
    uint64_t data = v->exit.mmio.data;
    if (!ask_handler(v, v->exit.mmio.gpa, v->exit.mmio.size, v->exit.mmio.is_write, &data))
        return;
    if (v->mmio.pending) {
        v->exit.mmio.data = data;
        xbt_mmio_complete(v);
    }
}

bool xbt_mmio_begin(struct xbt_vcpu *v, uint32_t lin, uint64_t gpa)
{
    v->mmio.raised = v->mmio.synced = false;
    xbt_insn in;
    if (!decode_at_eip(v, &in)) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM): cannot decode "
                               "the instruction", (unsigned long long)gpa);
        return false;
    }
    if (!mmio_begin_insn(v, lin, gpa, &in))
        return false;
    mmio_sync(v);
    return true;
}

/* Paging off: an access crossing the page boundary after `start` has MMIO on both
   sides (no slot, or ROM for a write). */
static bool mmio_pair(const xbt_vm *vm, uint32_t start, bool write)
{
    return !xbt_gpa_mem(vm, start, write) && !xbt_gpa_mem(vm, (start & ~0xFFFu) + 4096ull, write);
}

/* A MOV/MOVZX/MOVSX load from MMIO waits for the device's data (xbt_mmio_complete):
   its register, sizes, sign, the next EIP; n1 > 0: the first page's n1 bytes come from
   this exit, the rest from g2 (a load crossing two MMIO pages). */
static void begin_load(struct xbt_vcpu *v, const xbt_insn *in, unsigned size, uint32_t next,
                       uint32_t n1, uint64_t g2)
{
    const ZydisDecodedOperand *dst = &in->ops[0];
    v->mmio.pending = true;
    v->mmio.reg = (uint8_t)(xbt_gpr_index(dst->reg.value) |
                            (xbt_reg_is_high8(dst->reg.value) ? 0x80 : 0));
    v->mmio.size = (uint8_t)size;
    v->mmio.dst_size = (uint8_t)(dst->size / 8);
    v->mmio.sign = in->zi.mnemonic == ZYDIS_MNEMONIC_MOVSX;
    v->mmio.next_eip = next;
    v->mmio.split_n1 = (uint8_t)n1;
    v->mmio.split_have = false;
    v->mmio.split_gpa = g2;
    if (n1)
        v->exit.mmio.size = n1;
}

static bool mmio_begin_insn(struct xbt_vcpu *v, uint32_t lin, uint64_t gpa, const xbt_insn *in)
{
    v->mmio.simple = v->mmio.synced = false;
    if (in->mem_op < 0 && string_mmio(v, in, lin, gpa))
        return true;
    if (in->mem_op < 0 && v->exit.reason == XBT_EXIT_INTERNAL_ERROR)
        return false;
    if (in->mem_op < 0) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM) by %s through "
                               "an implicit operand (stack or string): not emulated as MMIO",
                               (unsigned long long)gpa, ZydisMnemonicGetString(in->zi.mnemonic));
        return false;
    }
    const ZydisDecodedOperand *mem = &in->ops[in->mem_op];
    unsigned size = mem->size / 8;
    ZydisMnemonic mn = in->zi.mnemonic;
    bool is_load = mem->actions & ZYDIS_OPERAND_ACTION_MASK_READ;
    bool is_store = mem->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE;
    /* Where the access starts (a fault in its second page arrives with that page's
       address). */
    uint32_t ea = 0;
    if (!operand_ea(v, in, mem, &ea)) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM): cannot compute "
                               "the address of %s", (unsigned long long)gpa,
                               ZydisMnemonicGetString(mn));
        return false;
    }
    if (is_bit_test(mn) && in->ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER &&
        (size == 2 || size == 4)) {
        /* A register bit offset reaches outside the operand: the word or dword at
           EA + size * (offset / (8 * size)), the offset signed, the sum wrapped in the
           address size (SDM, BT; translate.c, emit_bt_linear). */
        uint32_t off = v->ctx.gpr[xbt_gpr_index(in->ops[1].reg.value) & 7];
        int32_t bit = size == 2 ? (int16_t)off : (int32_t)off;
        ea += (uint32_t)((bit >> (size == 2 ? 4 : 5)) * (int32_t)size);
        if (in->zi.address_width == 16)
            ea &= 0xFFFF;
    }
    uint32_t start = v->arch.seg[in->seg].base + (uint32_t)ea;
    bool crosses = (start & 0xFFF) + size > 4096;
    /* Paging off, the next page without RAM is MMIO too: one access of the full size. */
    bool all_mmio = crosses && !xbt_paging(v) && mmio_pair(v->vm, start, is_store) && start == lin;
    if (start != lin && !(crosses && (lin & 0xFFF) == 0 && lin - start < size)) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM) by %s: the "
                               "fault at %08x is not inside the access at %08x",
                               (unsigned long long)gpa, ZydisMnemonicGetString(mn), lin, start);
        return false;
    }
    uint32_t m0 = lin, mlen = size;
    /* A MOV crossing two pages that are both MMIO (with paging their physical
       addresses need not follow each other): one exit per page's part.  Both
       translations are checked first, as the CPU does before it touches either. */
    bool split = false;
    uint64_t g1 = 0, g2 = 0;
    uint32_t n1 = 0;
    if (crosses && !all_mmio && (size == 2 || size == 4) && is_load != is_store &&
        (mn == ZYDIS_MNEMONIC_MOV || mn == ZYDIS_MNEMONIC_MOVZX || mn == ZYDIS_MNEMONIC_MOVSX)) {
        uint32_t p2 = (start & ~0xFFFu) + 4096;
        int w = walk_access(v, start, is_store, &g1);
        if (w > 0)
            w = walk_access(v, p2, is_store, &g2);
        if (w <= 0) {
            v->mmio.raised = w == 0;
            return false;
        }
        if (!xbt_gpa_mem(v->vm, g1, is_store) && !xbt_gpa_mem(v->vm, g2, is_store)) {
            split = true;
            n1 = p2 - start;
            gpa = g1;
        }
    }
    if (crosses && !all_mmio && !split && size <= 8 && (is_load || is_store)) {
        int r = straddle_prepare(v, lin, start, size, is_store, &m0, &mlen);
        if (r <= 0) {
            v->mmio.raised = r == 0;
            return false;
        }
        gpa += m0 - lin; /* the MMIO part, in the same page as the fault */
    }
    bool mmio = !xbt_gpa_mem(v->vm, gpa, is_store); /* the faulting side */
    bool ok = (mn == ZYDIS_MNEMONIC_MOV || mn == ZYDIS_MNEMONIC_MOVZX ||
               mn == ZYDIS_MNEMONIC_MOVSX) &&
              (size == 1 || size == 2 || size == 4) && is_load != is_store &&
              mmio && (!crosses || all_mmio || split);
    /* The other operand must be a general register or an immediate (not MOV Sreg). */
    const ZydisDecodedOperand *other = &in->ops[in->mem_op == 0 ? 1 : 0];
    if (other->type == ZYDIS_OPERAND_TYPE_REGISTER && xbt_gpr_index(other->reg.value) < 0)
        ok = false;
    /* 16 bytes (SSE): two 8-byte exits each way, within one MMIO page. */
    bool wide = size == 16 && !crosses;
    bool generic = !ok && (size == 1 || size == 2 || size == 4 || size == 8 || wide) &&
                   (is_load || is_store) && mmio && (!crosses || !all_mmio);
    if (!ok && !generic) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM) by %s: a %u-byte "
                               "operand is not emulated as MMIO", (unsigned long long)gpa,
                               ZydisMnemonicGetString(mn), size);
        return false;
    }
    memset(&v->exit, 0, sizeof v->exit);
    v->exit.reason = XBT_EXIT_MMIO;
    v->exit.mmio.gpa = gpa;
    v->exit.mmio.size = generic ? (mlen > 8 ? 8 : mlen) : size;
    v->exit.mmio.is_write = is_store;
    uint32_t next = v->ctx.eip + in->length;
    v->mmio.simple = !generic && !split && !crosses; /* one page: one device's */
    if (generic) {
        /* The MMIO part only (an access crossing into or out of RAM: the rest is RAM,
           read and written by the instruction itself). */
        v->mmio.step_lin = m0;
        v->mmio.step_gpa = gpa;
        v->mmio.step_next = next;
        v->mmio.step_writes = is_store;
        v->mmio.size = (uint8_t)mlen;
        memset(v->mmio.step_data, 0, sizeof v->mmio.step_data);
        v->mmio.step_got = 0;
        if (is_load) { /* the device's data first */
            v->exit.mmio.is_write = 0;
            v->mmio.pending = true;
            v->mmio.kind = XBT_MMIO_GENERIC;
            return true;
        }
        v->exit.reason = XBT_EXIT_NONE; /* a pure store: run it now, then the write exit */
        v->mmio.run = true;
        return true;
    }
    if (is_store) {
        const ZydisDecodedOperand *src = &in->ops[in->mem_op == 0 ? 1 : 0];
        uint32_t val = src->type == ZYDIS_OPERAND_TYPE_IMMEDIATE ? (uint32_t)src->imm.value.u
                                                                  : gpr_read(v, src->reg.value);
        if (size < 4)
            val &= (1u << (8 * size)) - 1;
        v->exit.mmio.data = val;
        if (split) { /* the first page's bytes now, the rest in the next exit */
            v->exit.mmio.size = n1;
            v->exit.mmio.data = val & ((1ull << (8 * n1)) - 1);
            queue_store(v, g2, size - n1, (uint64_t)val >> (8 * n1));
        }
        v->ctx.eip = next; /* a store is complete once the embedder has it */
        return true;
    }
    begin_load(v, in, size, next, split ? n1 : 0, g2);
    return true;
}

/* Maps an anonymous page at the MMIO page's window address, with the device's data at
   the operand, and has the run loop run the instruction alone, interrupts held off. */
void xbt_mmio_step_prepare(struct xbt_vcpu *v)
{
    v->mmio.run = false;
    if (!v->mmio.scratch) {
        int fd = memfd_create("xbt-mmio-scratch", MFD_CLOEXEC);
        void *p = MAP_FAILED;
        if (fd >= 0 && ftruncate(fd, 4096) == 0)
            p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            if (fd >= 0)
                close(fd);
            xbt_set_internal_error(v, v->ctx.eip, "cannot create the MMIO scratch page");
            return;
        }
        v->mmio.scratch_fd = fd;
        v->mmio.scratch = p;
    }
    uint8_t *window = xbt_current_window(v);
    memset(v->mmio.scratch, 0, 4096);
    memcpy(v->mmio.scratch + (v->mmio.step_lin & 0xFFF), v->mmio.step_data, v->mmio.size);
    if (!xbt_window_map_scratch(v->mmu, window, v->mmio.step_lin, v->mmio.scratch_fd)) {
        xbt_set_internal_error(v, v->ctx.eip, "cannot map the MMIO scratch page");
        return;
    }
    v->mmio.scratch_at = window;
    v->mmio.step_active = true;
    v->arch.interrupt_shadow = true; /* exactly this instruction, alone and uncached */
    v->arch.shadow_eip = v->ctx.eip;
}

/* After the step: the scratch page leaves the window (wherever the step left things: the
   data is read through the VMM's own view); a completed store becomes the write exit. */
bool xbt_mmio_step_finish(struct xbt_vcpu *v)
{
    uint64_t data = 0, high = 0;
    unsigned first = v->mmio.size > 8 ? 8 : v->mmio.size;
    memcpy(&data, v->mmio.scratch + (v->mmio.step_lin & 0xFFF), first);
    if (v->mmio.size > 8)
        memcpy(&high, v->mmio.scratch + (v->mmio.step_lin & 0xFFF) + 8, v->mmio.size - 8u);
    xbt_window_unmap_scratch(v->mmu, v->mmio.scratch_at, v->mmio.step_lin);
    v->mmio.step_active = false;
    if (!v->mmio.step_writes || v->ctx.eip != v->mmio.step_next)
        return false; /* a load, or the instruction faulted: nothing to write */
    set_exit(v, v->mmio.step_gpa, first, true, data);
    if (v->mmio.size > 8) /* the second half: the exit after this one */
        queue_store(v, v->mmio.step_gpa + 8, v->mmio.size - 8u, high);
    return true;
}

bool xbt_callout_mmio_store(struct xbt_vcpu *v)
{
    if (v->mmio.co_wr_sent >= v->mmio.co_wr_n)
        return false;
    const struct xbt_co_mmio *c = &v->mmio.co_wr[v->mmio.co_wr_sent++];
    set_exit(v, c->gpa, c->size, true, c->data);
    return true;
}

/* A MOV/MOVZX/MOVSX load's value into its register: sz bytes read, zero- or
   sign-extended, dst_size bytes written (reg | 0x80: AH..BH). */
static void load_to_reg(struct xbt_vcpu *v, uint8_t reg, unsigned sz, unsigned dst_size,
                        bool sign, uint32_t d)
{
    if (sz < 4) {
        d &= (1u << (8 * sz)) - 1;
        if (sign && (d >> (8 * sz - 1)) & 1)
            d |= ~((1u << (8 * sz)) - 1);
    }
    uint32_t *r = &v->ctx.gpr[reg & 7];
    if (reg & 0x80)
        *r = (*r & ~0xFF00u) | (d & 0xFF) << 8;
    else if (dst_size == 1)
        *r = (*r & ~0xFFu) | (d & 0xFF);
    else if (dst_size == 2)
        *r = (*r & ~0xFFFFu) | (d & 0xFFFF);
    else
        *r = d;
}

bool xbt_mmio_complete(struct xbt_vcpu *v)
{
    uint32_t d = (uint32_t)v->exit.mmio.data;
    unsigned sz = v->mmio.size;
    if (v->mmio.kind == XBT_MMIO_CALLOUT) {
        /* A callout's read (callouts.c): the answer waits for the instruction, which
           runs again from its start. */
        v->mmio.pending = false;
        v->mmio.kind = XBT_MMIO_LOAD;
        if (v->mmio.co_rd_n) {
            v->mmio.co_rd[v->mmio.co_rd_n - 1].data = v->exit.mmio.data;
            v->mmio.co_rd[v->mmio.co_rd_n - 1].valid = true;
        }
        return true;
    }
    if (v->mmio.kind == XBT_MMIO_GENERIC) { /* the generic path: the instruction runs next */
        uint32_t n = v->exit.mmio.size;
        if (v->mmio.step_got + n > sizeof v->mmio.step_data)
            n = sizeof v->mmio.step_data - v->mmio.step_got;
        memcpy(v->mmio.step_data + v->mmio.step_got, &v->exit.mmio.data, n);
        v->mmio.step_got = (uint8_t)(v->mmio.step_got + n);
        if (v->mmio.step_got < v->mmio.size) {
            /* A 16-byte operand: the second half is another read exit. */
            next_read(v, v->mmio.step_gpa + v->mmio.step_got, 8);
            return true;
        }
        v->mmio.pending = false;
        v->mmio.kind = XBT_MMIO_LOAD;
        v->mmio.run = true;
        return true;
    }
    if (v->mmio.kind == XBT_MMIO_CMPS_BOTH) {
        /* CMPS with MMIO on both sides: [ESI] arrived; now [EDI] (a second read exit,
           the compare when it completes). */
        v->mmio.cmp_other = d;
        v->mmio.cmp_mmio_first = false; /* [ESI] - [EDI] = other - d */
        v->mmio.kind = XBT_MMIO_CMPS;
        next_read(v, v->mmio.cmp_dst_gpa, sz);
        return true;
    }
    if (v->mmio.kind == XBT_MMIO_SCAS || v->mmio.kind == XBT_MMIO_CMPS) { /* SCAS, CMPS */
        v->mmio.pending = false;
        compare_step(v, d);
        v->mmio.kind = XBT_MMIO_LOAD;
        return true;
    }
    if (v->mmio.kind != XBT_MMIO_LOAD) {
        v->mmio.pending = false;
        if (v->mmio.kind == XBT_MMIO_LODS) { /* LODS: into AL/AX/EAX */
            uint32_t *a = &v->ctx.gpr[XBT_EAX];
            *a = sz == 4 ? d : (*a & ~((1u << (8 * sz)) - 1)) | (d & ((1u << (8 * sz)) - 1));
            string_step(v, true, false, v->mmio.step, v->mmio.rep, v->mmio.next_eip);
        } else { /* MOVS from MMIO: the element goes to RAM, or to MMIO as a write exit */
            uint64_t dgpa;
            int where = dst_kind(v, v->mmio.dst_lin, sz, &dgpa);
            if (where < 0) {
                v->mmio.kind = XBT_MMIO_LOAD;
                v->mmio.pending = false;
                return v->mmio.raised; /* #PF on the destination, or an error */
            }
            if (where == 1) {
                set_exit(v, dgpa, sz, true,
                         d & (sz == 4 ? 0xFFFFFFFFu : (1u << (8 * sz)) - 1));
                v->mmio.exit_ready = true;
                string_step(v, true, true, v->mmio.step, v->mmio.rep, v->mmio.next_eip);
                v->mmio.kind = XBT_MMIO_LOAD;
                return true;
            }
            if (!xbt_write_lin_as(v, v->mmio.dst_lin, &d, sz, v->arch.cpl == 3)) {
                v->pf_pending = false;
                xbt_set_internal_error(v, v->ctx.eip, "MOVS from MMIO to %08x: the "
                                       "destination is not writable RAM (not emulated yet)",
                                       v->mmio.dst_lin);
                v->mmio.kind = XBT_MMIO_LOAD;
                return false;
            }
            string_step(v, true, true, v->mmio.step, v->mmio.rep, v->mmio.next_eip);
        }
        v->mmio.kind = XBT_MMIO_LOAD;
        return true;
    }
    if (v->mmio.split_n1) {
        unsigned n1 = v->mmio.split_n1;
        if (!v->mmio.split_have) { /* the first page's part: now the second's */
            v->mmio.split_lo = d & ((1u << (8 * n1)) - 1);
            v->mmio.split_have = true;
            next_read(v, v->mmio.split_gpa, sz - n1);
            return true;
        }
        d = v->mmio.split_lo | d << (8 * n1);
        v->mmio.split_n1 = 0;
    }
    load_to_reg(v, v->mmio.reg, sz, v->mmio.dst_size, v->mmio.sign, d);
    v->ctx.eip = v->mmio.next_eip;
    v->mmio.pending = false;
    return true;
}

/* ------------------------------------------------------------------------------------ */
/* MMIO sites: instructions that keep reaching MMIO run their access through a callout. */

static struct xbt_mmio_site_rec *site_find(struct xbt_vcpu *v, uint32_t lin, bool add)
{
    uint32_t h = (lin * 0x9E3779B1u) >> 22; /* XBT_MMIO_SITES = 2^10 */
    for (uint32_t k = 0; k < 16; k++) {
        struct xbt_mmio_site_rec *e = &v->mmio.sites[(h + k) & (XBT_MMIO_SITES - 1)];
        if (e->faults && e->lin == lin)
            return e;
        if (!e->faults) {
            if (!add || v->mmio.n_sites >= XBT_MMIO_SITES / 2)
                return NULL; /* full enough: no new sites (they are only faster) */
            e->lin = lin;
            v->mmio.n_sites++;
            return e;
        }
    }
    return NULL;
}

bool xbt_mmio_site_page(const struct xbt_vcpu *v, uint32_t lin)
{
    return xbt_page_bit(v->mmio.site_pages, lin);
}

bool xbt_mmio_site(void *vcpu, uint32_t eip)
{
    struct xbt_vcpu *v = vcpu;
    uint32_t lin = v->arch.seg[XBT_CS].base + eip;
    if (!xbt_mmio_site_page(v, lin))
        return false;
    const struct xbt_mmio_site_rec *e = site_find(v, lin, false);
    return e && e->faults >= XBT_MMIO_SITE_FAULTS;
}

void xbt_mmio_note_fault(struct xbt_vcpu *v)
{
    if (!v->xl.mmio_site || !xbt_tc_contains(v->tc, v->fault_rip))
        return; /* not translated code (direct execution, a single step's scratch) */
    uint32_t lin = v->arch.seg[XBT_CS].base + v->ctx.eip;
    struct xbt_mmio_site_rec *e = site_find(v, lin, true);
    if (!e || ++e->faults != XBT_MMIO_SITE_FAULTS)
        return;
    if (!xbt_page_bit_set(&v->mmio.site_pages, lin)) {
        e->faults--; /* not a site after all */
        return;
    }
    /* Its block is translated again when next entered, the access as a callout. */
    xbt_vcpu_drop_block_at(v, v->fault_rip);
}

/* A site whose callouts mostly find RAM (an instruction that reached MMIO a few times,
   a copy loop say, and RAM ever after) stops being one: its block goes and is translated
   again without the callout, and its count starts over (it can become a site again). */
#define XBT_MMIO_SITE_RAM_MIN 64
static int site_result(struct xbt_vcpu *v, int r)
{
    struct xbt_mmio_site_rec *e = site_find(v, v->arch.seg[XBT_CS].base + v->ctx.eip, false);
    if (!e)
        return r;
    if (r) {
        e->mmio++;
        return r;
    }
    if (++e->ram < XBT_MMIO_SITE_RAM_MIN || e->ram < 4 * e->mmio)
        return r;
    e->faults = 1; /* kept in the table; below the mark */
    e->ram = e->mmio = 0;
    xbt_vcpu_drop_block_at(v, v->ctx.callout_site);
    return r;
}

/* ------------------------------------------------------------------------------------ */
/* The read shadow (xbt_vcpu_set_mmio_shadow).  Its TLB entries, ctx.rs_nlin[CPL 3]:
   the linear page a site's read found mapped to the shadowed page with the rights of
   its CPL.  Made here, by a site's callout whose read reached that page; emptied with
   the software TLB (CR3 loads, INVLPG, paging mode and CR4 changes), at every run
   (the embedder may have changed memory slots, the shadow or the registers) and when
   the shadow or IA32_APIC_BASE changes (with XBT_MMIO_SHADOW_APIC_BASE a fill needs
   the base the shadow was set under).  Not made while watchpoints are set (a read
   from the shadow would pass them), nor for the supervisor on a user page under
   CR4.SMAP (EFLAGS.AC decides at each access). */
void xbt_rshadow_forget(struct xbt_vcpu *v)
{
    v->ctx.rs_nlin[0] = v->ctx.rs_nlin[1] = XBT_RS_NONE;
}

static void rshadow_fill(struct xbt_vcpu *v, uint32_t lin, uint64_t gpa)
{
    if (!v->rshadow.on || (gpa >> 12) != (v->rshadow.gpa >> 12) || v->dbg.n_wp ||
        (v->rshadow.apic_bound && v->arch.msr_apic_base != v->rshadow.apic_base))
        return;
    bool user = v->arch.cpl == 3;
    if (!user && xbt_paging(v) && (v->arch.cr4 & XBT_CR4_SMAP)) {
        const struct xbt_stlb_entry *e = &v->stlb[(lin >> 12) & (XBT_STLB_SIZE - 1)];
        if (e->gen != v->stlb_gen || e->page != lin >> 12 || e->upage)
            return;
    }
    v->ctx.rs_nlin[user] = ~(uint64_t)(lin & ~0xFFFu);
}

xbt_status xbt_vcpu_set_mmio_shadow(xbt_vcpu *v, const xbt_mmio_shadow *s)
{
    if (!v)
        return XBT_E_INVAL;
    xbt_rshadow_forget(v);
    v->rshadow.on = false;
    if (!s)
        return XBT_OK;
    if (!s->page || (s->gpa & 0xFFF) || s->gpa >= (1ull << 32) ||
        (s->flags & ~(uint32_t)XBT_MMIO_SHADOW_APIC_BASE) || xbt_gpa_mem(v->vm, s->gpa, false))
        return XBT_E_INVAL;
    v->rshadow.apic_bound = s->flags & XBT_MMIO_SHADOW_APIC_BASE;
    v->rshadow.apic_base = v->arch.msr_apic_base;
    memset(v->rshadow.table, 1, 4096);
    for (unsigned k = 0; k < 1024; k++)
        if (s->readable[k / 32] >> (k % 32) & 1)
            v->rshadow.table[4 * k] = 0;
    v->rshadow.gpa = s->gpa;
    v->ctx.rs_page = (uint64_t)(uintptr_t)s->page;
    v->rshadow.on = true;
    return XBT_OK;
}

/* A site's access of `size` bytes at linear lin through segment seg, when it reaches
   MMIO this time: its guest physical address (the read shadow's TLB entry made for a
   load).  false: a null segment (its #GP is the translated code's; an expand-up limit
   was checked by the site's own address computation, translate.c emit_linear_to_r15),
   a page crossed (the fault path knows how), the walk refused (the guest's #PF, which
   the instruction run alone raises itself), or RAM: the instruction runs alone. */
static bool site_target(struct xbt_vcpu *v, int seg, uint32_t lin, unsigned size, bool store,
                        uint64_t *gpa)
{
    if (v->arch.seg[seg].unusable || size == 0 || (lin & 0xFFF) + size > 4096 ||
        !xbt_lin_gpa(v, lin, store, v->arch.cpl == 3, gpa) || xbt_gpa_mem(v->vm, *gpa, store))
        return false;
    if (!store)
        rshadow_fill(v, lin, *gpa);
    v->mmio.raised = false;
    return true;
}

static int mmio_callout(struct xbt_vcpu *v)
{
    uint64_t site = v->ctx.callout_site;
    uint32_t flushes = xbt_tc_flushes(v->tc);
    struct xbt_mmio_dcache *dc = &v->mmio.dcache[(site >> 4) % XBT_MMIO_DCACHE];
    if (dc->site != site || dc->flushes != flushes) {
        if (!decode_at_eip(v, &dc->in)) {
            dc->site = 0;
            return 0;
        }
        dc->site = site;
        dc->flushes = flushes;
    }
    const xbt_insn *in = &dc->in;
    if (in->mem_op < 0)
        return 0;
    const ZydisDecodedOperand *mem = &in->ops[in->mem_op];
    if (is_bit_test(in->zi.mnemonic))
        return 0; /* a register bit offset may move the access: as before, by a fault */
    unsigned size = mem->size / 8;
    bool is_store = mem->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE;
    uint32_t ea = 0;
    if (!operand_ea(v, in, mem, &ea))
        return 0;
    uint32_t lin = v->arch.seg[in->seg].base + (uint32_t)ea;
    uint64_t gpa;
    if (!site_target(v, in->seg, lin, size, is_store, &gpa))
        return 0;
    if (mmio_begin_insn(v, lin, gpa, in))
        mmio_sync(v);
    return 1;
}

/* The site's plain MOV, MOVZX or MOVSX (XBT_MMIO_FORM_*, which the translator found
   for every such access: the general path below never sees one it could answer so)
   straight from the site: the linear address the translated code computed (limit
   checked), the register or immediate the site names, without a decode or an operand
   analysis (the generic MMIO read cost 139 cycles against QEMU's 91, a fifth of it in
   that analysis).  false: not MMIO this time, or the handler declined (it had no side
   effect then): the general path makes the access. */
static bool mmio_plain(struct xbt_vcpu *v, const struct xbt_callout_site *s)
{
    /* The site's fields copied first: the handler may drop translations (their sites
       stay readable today, but nothing here should depend on it). */
    uint8_t f = s->mmio, reg = s->reg, len = s->len;
    uint32_t imm = s->imm;
    unsigned size = 1u << (f & 3), rsize = 1u << ((f >> 2) & 3);
    bool store = f & XBT_MMIO_FORM_STORE;
    uint64_t gpa;
    if (!v->vm->mmio_fn || s->seg >= 6 ||
        !site_target(v, s->seg, v->ctx.callout_ea, size, store, &gpa))
        return false;
    uint64_t data = 0;
    if (store) {
        uint32_t val = (f & XBT_MMIO_FORM_IMM) ? imm
                       : (reg & 0x80)          ? (v->ctx.gpr[reg & 7] >> 8) & 0xFF
                                               : v->ctx.gpr[reg & 7];
        data = size < 4 ? val & ((1u << (8 * size)) - 1) : val;
    }
    if (!ask_handler(v, gpa, size, store, &data))
        return false;
    if (!store)
        load_to_reg(v, reg, size, rsize, f & XBT_MMIO_FORM_SIGN, (uint32_t)data);
    v->ctx.eip += len;
    return true;
}

int xbt_mmio_callout(struct xbt_vcpu *v)
{
    const struct xbt_callout_site *s =
        (const struct xbt_callout_site *)(uintptr_t)v->ctx.callout_site;
    v->mmio.synced = false;
    if (s->mmio && mmio_plain(v, s))
        return site_result(v, 1);
    return site_result(v, mmio_callout(v));
}
