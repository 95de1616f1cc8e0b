/*
 * mmio.c - guest accesses to physical addresses without RAM (paging off: the K-window
 * beyond RAM is PROT_NONE, so they arrive as host faults with precise guest state).
 * The instruction is decoded again and its one memory access becomes an MMIO exit; a
 * read completes with the embedder's data when the vCPU runs again.  Handled: MOV to or
 * from memory (r/m, immediate, moffs) and MOVZX/MOVSX loads, 1, 2 or 4 bytes; anything
 * else (string instructions, read-modify-write, an access straddling RAM and MMIO) is an
 * internal-error exit that names the instruction, for now.
 */
#include <stdio.h>
#include <string.h>

#include "vcpu.h"

static uint32_t gpr_read(const struct xbt_vcpu *v, ZydisRegister r)
{
    int i = xbt_gpr_index(r);
    uint32_t val = v->ctx.gpr[i];
    if (xbt_reg_is_high8(r))
        return (val >> 8) & 0xFF;
    return val;
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
    if (!ok) {
        xbt_set_internal_error(v, v->ctx.eip, "guest access to %#llx (no RAM) by %s: only "
                               "MOV/MOVZX/MOVSX of 1, 2 or 4 bytes are emulated as MMIO yet",
                               (unsigned long long)gpa, ZydisMnemonicGetString(mn));
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

void xbt_mmio_complete(struct xbt_vcpu *v)
{
    uint32_t d = (uint32_t)v->exit.mmio.data;
    unsigned sz = v->mmio_size;
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
}
