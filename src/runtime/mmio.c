/*
 * mmio.c - guest accesses to physical addresses without RAM (paging off: the K-window
 * beyond RAM is PROT_NONE, so they arrive as host faults with precise guest state).
 * The instruction is decoded again and its one memory access becomes an MMIO exit; a
 * read completes with the embedder's data when the vCPU runs again.  Handled: MOV to or
 * from memory (r/m, immediate, moffs) and MOVZX/MOVSX loads, 1, 2 or 4 bytes; STOS,
 * LODS and MOVS (with or without REP, either direction, MMIO on one side), one element
 * per exit: the instruction is re-executed for the next element, so the registers show
 * the progress at every exit as on hardware.  Any other instruction with one explicit
 * memory operand of 1, 2, 4 or 8 bytes (ALU and read-modify-write, TEST/CMP, XCHG, BT,
 * SETcc, x87 loads, ...) takes the generic path: a read exit if it reads the operand,
 * then the instruction runs once, translated and alone (interrupts held off), against an
 * anonymous scratch page mapped at the MMIO page's window address holding the device's
 * data; if it writes the operand, what it stored becomes a write exit.  Registers and
 * flags are exactly what the CPU computed.  Still internal-error exits: implicit
 * operands (stack, CMPS/SCAS), wider operands, accesses straddling RAM and MMIO.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vcpu.h"

static uint32_t gpr_read(const struct xbt_vcpu *v, ZydisRegister r)
{
    int i = xbt_gpr_index(r);
    uint32_t val = v->ctx.gpr[i];
    if (xbt_reg_is_high8(r))
        return (val >> 8) & 0xFF;
    return val;
}

/* After one string element: advance the pointers, count down a REP, and either stay on
   the instruction (more elements) or move past it. */
static void string_step(struct xbt_vcpu *v, bool src, bool dst, int32_t step, bool rep,
                        uint32_t next)
{
    if (src)
        v->ctx.gpr[XBT_ESI] += (uint32_t)step;
    if (dst)
        v->ctx.gpr[XBT_EDI] += (uint32_t)step;
    if (rep && --v->ctx.gpr[XBT_ECX] != 0)
        return; /* EIP stays: the next element runs (and exits) again */
    v->ctx.eip = next;
}

/* STOS, LODS, MOVS touching MMIO: one element.  false with no exit set: not a string
   instruction this handles (the caller reports it). */
static bool string_mmio(struct xbt_vcpu *v, const xbt_insn *in, uint32_t lin, uint64_t gpa)
{
    ZydisMnemonic mn = in->zi.mnemonic;
    bool stos = mn == ZYDIS_MNEMONIC_STOSB || mn == ZYDIS_MNEMONIC_STOSW || mn == ZYDIS_MNEMONIC_STOSD;
    bool lods = mn == ZYDIS_MNEMONIC_LODSB || mn == ZYDIS_MNEMONIC_LODSW || mn == ZYDIS_MNEMONIC_LODSD;
    bool movs = mn == ZYDIS_MNEMONIC_MOVSB || mn == ZYDIS_MNEMONIC_MOVSW ||
                (mn == ZYDIS_MNEMONIC_MOVSD && in->zi.meta.category == ZYDIS_CATEGORY_STRINGOP);
    if (!stos && !lods && !movs)
        return false;
    unsigned size = in->zi.operand_width / 8;
    bool rep = in->zi.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE);
    int32_t step = (v->ctx.eflags & 0x400) ? -(int32_t)size : (int32_t)size;
    int sseg = XBT_DS;
    for (unsigned i = 0; i < in->zi.operand_count; i++)
        if (in->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY &&
            xbt_gpr_index(in->ops[i].mem.base) == XBT_ESI)
            sseg = xbt_seg_index(in->ops[i].mem.segment);
    if (sseg < 0)
        sseg = XBT_DS;
    uint32_t src = v->seg[sseg].base + v->ctx.gpr[XBT_ESI];
    uint32_t dst = v->seg[XBT_ES].base + v->ctx.gpr[XBT_EDI];
    uint32_t next = v->ctx.eip + in->length;
    uint32_t mask = size == 4 ? 0xFFFFFFFFu : (1u << (8 * size)) - 1;
    memset(&v->exit, 0, sizeof v->exit);
    v->exit.reason = XBT_EXIT_MMIO;
    v->exit.mmio.gpa = gpa;
    v->exit.mmio.size = size;
    if ((stos || movs) && lin == dst) {
        uint32_t val = v->ctx.gpr[XBT_EAX];
        if (movs && !xbt_read_lin(v, src, &val, size)) {
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
    if ((lods || movs) && lin == src) {
        v->mmio_pending = true;
        v->mmio_kind = lods ? 1 : 2;
        v->mmio_size = (uint8_t)size;
        v->mmio_rep = rep;
        v->mmio_step = step;
        v->mmio_dst_lin = dst;
        v->mmio_next_eip = next;
        return true;
    }
    xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM) by %s: the "
                           "faulting address is neither its source nor its destination",
                           (unsigned long long)gpa, ZydisMnemonicGetString(mn));
    return false;
}

bool xbt_mmio_begin(struct xbt_vcpu *v, uint32_t lin, uint64_t gpa)
{
    uint8_t buf[16];
    /* The instruction's bytes (paging on: read through the walker). */
    uint32_t n = 0;
    uint32_t ilin = v->seg[XBT_CS].base + v->ctx.eip;
    while (n < sizeof buf && xbt_read_lin(v, ilin + n, buf + n, 1))
        n++;
    v->pf_pending = false;
    xbt_insn in;
    if (n == 0 || xbt_decode(&v->xl.dec, buf, n, v->ctx.eip, &in) != XBT_DECODE_OK) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM): cannot decode "
                               "the instruction", (unsigned long long)gpa);
        return false;
    }
    if (in.mem_op < 0 && string_mmio(v, &in, lin, gpa))
        return true;
    if (in.mem_op < 0 && v->exit.reason == XBT_EXIT_INTERNAL_ERROR)
        return false;
    if (in.mem_op < 0) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM) by %s through "
                               "an implicit operand (stack or string): not emulated as MMIO",
                               (unsigned long long)gpa, ZydisMnemonicGetString(in.zi.mnemonic));
        return false;
    }
    const ZydisDecodedOperand *mem = &in.ops[in.mem_op];
    unsigned size = mem->size / 8;
    ZydisMnemonic mn = in.zi.mnemonic;
    bool is_load = mem->actions & ZYDIS_OPERAND_ACTION_MASK_READ;
    bool is_store = mem->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE;
    bool ok = (mn == ZYDIS_MNEMONIC_MOV || mn == ZYDIS_MNEMONIC_MOVZX ||
               mn == ZYDIS_MNEMONIC_MOVSX) &&
              (size == 1 || size == 2 || size == 4) && is_load != is_store &&
              gpa >= v->vm->ram_size && ((lin & 0xFFF) + size <= 4096 || lin == gpa);
    /* The other operand must be a general register or an immediate (not MOV Sreg). */
    const ZydisDecodedOperand *other = &in.ops[in.mem_op == 0 ? 1 : 0];
    if (other->type == ZYDIS_OPERAND_TYPE_REGISTER && xbt_gpr_index(other->reg.value) < 0)
        ok = false;
    bool generic = !ok && (size == 1 || size == 2 || size == 4 || size == 8) &&
                   (is_load || is_store) && gpa >= v->vm->ram_size &&
                   (lin & 0xFFF) + size <= 4096;
    if (!ok && !generic) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM) by %s: a %u-byte "
                               "operand is not emulated as MMIO", (unsigned long long)gpa,
                               ZydisMnemonicGetString(mn), size);
        return false;
    }
    /* The access must start where the fault is: one that begins in RAM and runs past
       its end is not emulated (yet). */
    ZydisRegisterContext rc;
    memset(&rc, 0, sizeof rc);
    static const ZydisRegister regs32[8] = { ZYDIS_REGISTER_EAX, ZYDIS_REGISTER_ECX,
        ZYDIS_REGISTER_EDX, ZYDIS_REGISTER_EBX, ZYDIS_REGISTER_ESP, ZYDIS_REGISTER_EBP,
        ZYDIS_REGISTER_ESI, ZYDIS_REGISTER_EDI };
    for (int i = 0; i < 8; i++)
        rc.values[regs32[i]] = v->ctx.gpr[i];
    ZyanU64 ea = 0;
    if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddressEx(&in.zi, mem, v->ctx.eip, &rc, &ea)) ||
        (uint32_t)(v->seg[in.seg].base + (uint32_t)ea) != lin) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access at %#llx straddles the end of "
                               "RAM: not emulated yet", (unsigned long long)gpa);
        return false;
    }
    memset(&v->exit, 0, sizeof v->exit);
    v->exit.reason = XBT_EXIT_MMIO;
    v->exit.mmio.gpa = gpa;
    v->exit.mmio.size = size;
    v->exit.mmio.is_write = is_store;
    uint32_t next = v->ctx.eip + in.length;
    if (generic) {
        v->mmio_step_lin = lin;
        v->mmio_step_gpa = gpa;
        v->mmio_step_next = next;
        v->mmio_step_writes = is_store;
        v->mmio_size = (uint8_t)size;
        v->mmio_step_data = 0;
        if (is_load) { /* the device's data first */
            v->exit.mmio.is_write = 0;
            v->mmio_pending = true;
            v->mmio_kind = 3;
            return true;
        }
        v->exit.reason = XBT_EXIT_NONE; /* a pure store: run it now, then the write exit */
        v->mmio_run = true;
        return true;
    }
    if (is_store) {
        const ZydisDecodedOperand *src = &in.ops[in.mem_op == 0 ? 1 : 0];
        uint32_t val = src->type == ZYDIS_OPERAND_TYPE_IMMEDIATE ? (uint32_t)src->imm.value.u
                                                                  : gpr_read(v, src->reg.value);
        if (size < 4)
            val &= (1u << (8 * size)) - 1;
        v->exit.mmio.data = val;
        v->ctx.eip = next; /* a store is complete once the embedder has it */
        return true;
    }
    const ZydisDecodedOperand *dst = &in.ops[0];
    v->mmio_pending = true;
    v->mmio_reg = (uint8_t)(xbt_gpr_index(dst->reg.value) |
                            (xbt_reg_is_high8(dst->reg.value) ? 0x80 : 0));
    v->mmio_size = (uint8_t)size;
    v->mmio_dst_size = (uint8_t)(dst->size / 8);
    v->mmio_sign = mn == ZYDIS_MNEMONIC_MOVSX;
    v->mmio_next_eip = next;
    return true;
}

/* Maps an anonymous page at the MMIO page's window address, with the device's data at
   the operand, and has the run loop run the instruction alone, interrupts held off. */
void xbt_mmio_step_prepare(struct xbt_vcpu *v)
{
    v->mmio_run = false;
    if (!v->mmio_scratch) {
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
        v->mmio_scratch_fd = fd;
        v->mmio_scratch = p;
    }
    uint8_t *page = xbt_current_window(v) + (v->mmio_step_lin & ~0xFFFu);
    memset(v->mmio_scratch, 0, 4096);
    memcpy(v->mmio_scratch + (v->mmio_step_lin & 0xFFF), &v->mmio_step_data, v->mmio_size);
    if (mmap(page, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, v->mmio_scratch_fd, 0) !=
        page) {
        xbt_set_internal_error(v, v->ctx.eip, "cannot map the MMIO scratch page");
        return;
    }
    v->mmio_scratch_at = page;
    v->mmio_step_active = true;
    v->interrupt_shadow = true; /* exactly this instruction, alone and uncached */
    v->shadow_eip = v->ctx.eip;
}

/* After the step: the scratch page leaves the window (wherever the step left things: the
   data is read through the VMM's own view); a completed store becomes the write exit. */
bool xbt_mmio_step_finish(struct xbt_vcpu *v)
{
    uint64_t data = 0;
    memcpy(&data, v->mmio_scratch + (v->mmio_step_lin & 0xFFF), v->mmio_size);
    mmap(v->mmio_scratch_at, 4096, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    v->mmio_step_active = false;
    if (!v->mmio_step_writes || v->ctx.eip != v->mmio_step_next)
        return false; /* a load, or the instruction faulted: nothing to write */
    memset(&v->exit, 0, sizeof v->exit);
    v->exit.reason = XBT_EXIT_MMIO;
    v->exit.mmio.gpa = v->mmio_step_gpa;
    v->exit.mmio.size = v->mmio_size;
    v->exit.mmio.is_write = 1;
    v->exit.mmio.data = data;
    return true;
}

bool xbt_mmio_complete(struct xbt_vcpu *v)
{
    uint32_t d = (uint32_t)v->exit.mmio.data;
    unsigned sz = v->mmio_size;
    if (v->mmio_kind == 3) { /* the generic path: the instruction runs next */
        v->mmio_pending = false;
        v->mmio_kind = 0;
        v->mmio_step_data = v->exit.mmio.data;
        v->mmio_run = true;
        return true;
    }
    if (v->mmio_kind) {
        v->mmio_pending = false;
        if (v->mmio_kind == 1) { /* LODS: into AL/AX/EAX */
            uint32_t *a = &v->ctx.gpr[XBT_EAX];
            *a = sz == 4 ? d : (*a & ~((1u << (8 * sz)) - 1)) | (d & ((1u << (8 * sz)) - 1));
            string_step(v, true, false, v->mmio_step, v->mmio_rep, v->mmio_next_eip);
        } else { /* MOVS from MMIO: the element goes to RAM */
            if (!xbt_write_lin(v, v->mmio_dst_lin, &d, sz)) {
                v->pf_pending = false;
                xbt_set_internal_error(v, v->ctx.eip, "MOVS from MMIO to %08x: the "
                                       "destination is not writable RAM (not emulated yet)",
                                       v->mmio_dst_lin);
                v->mmio_kind = 0;
                return false;
            }
            string_step(v, true, true, v->mmio_step, v->mmio_rep, v->mmio_next_eip);
        }
        v->mmio_kind = 0;
        return true;
    }
    if (sz < 4) {
        d &= (1u << (8 * sz)) - 1;
        if (v->mmio_sign && (d >> (8 * sz - 1)) & 1)
            d |= ~((1u << (8 * sz)) - 1);
    }
    uint32_t *r = &v->ctx.gpr[v->mmio_reg & 7];
    if (v->mmio_reg & 0x80)
        *r = (*r & ~0xFF00u) | (d & 0xFF) << 8;
    else if (v->mmio_dst_size == 1)
        *r = (*r & ~0xFFu) | (d & 0xFF);
    else if (v->mmio_dst_size == 2)
        *r = (*r & ~0xFFFFu) | (d & 0xFFFF);
    else
        *r = d;
    v->ctx.eip = v->mmio_next_eip;
    v->mmio_pending = false;
    return true;
}
