/*
 * decoder.c - Zydis front end: raw guest bytes to struct xbt_insn.
 */
#include <string.h>

#include "decoder.h"

void xbt_classify(xbt_insn *in); /* classify.c */

void xbt_decoder_init(xbt_decoder *d)
{
    ZydisDecoderInit(&d->zd, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
    ZydisDecoderInit(&d->zd16, ZYDIS_MACHINE_MODE_LEGACY_16, ZYDIS_STACK_WIDTH_16);
}

enum xbt_decode_status xbt_decode(const xbt_decoder *d, const uint8_t *buf, size_t len,
                                  uint32_t eip, xbt_insn *out)
{
    return xbt_decode_as(d, false, buf, len, eip, out);
}

enum xbt_decode_status xbt_decode_as(const xbt_decoder *d, bool code16, const uint8_t *buf,
                                     size_t len, uint32_t eip, xbt_insn *out)
{
    memset(out, 0, offsetof(xbt_insn, zi));
    out->eip = eip;
    out->mem_op = -1;
    ZyanStatus s = ZydisDecoderDecodeFull(code16 ? &d->zd16 : &d->zd, buf, len, &out->zi, out->ops);
    if (ZYAN_SUCCESS(s)) {
        out->length = out->zi.length;
        memcpy(out->bytes, buf, out->length);
        /* 0x3E before an indirect CALL/JMP is CET's NOTRACK to Zydis, which then drops
           it as a segment override; without CET it is DS: [EBP]/[BP] operands must not
           default to SS. */
        if (out->zi.attributes & ZYDIS_ATTRIB_HAS_NOTRACK) {
            out->zi.attributes |= ZYDIS_ATTRIB_HAS_SEGMENT_DS;
            for (unsigned i = 0; i < out->zi.operand_count; i++)
                if (out->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY &&
                    out->ops[i].mem.type == ZYDIS_MEMOP_TYPE_MEM &&
                    out->ops[i].visibility == ZYDIS_OPERAND_VISIBILITY_EXPLICIT)
                    out->ops[i].mem.segment = ZYDIS_REGISTER_DS;
        }
        xbt_classify(out);
        return XBT_DECODE_OK;
    }
    /* Zydis says "no more data" when the input ends inside an instruction; with 15
       bytes available that cannot be the reason, the bytes are simply invalid. */
    if (s == ZYDIS_STATUS_NO_MORE_DATA && len < ZYDIS_MAX_INSTRUCTION_LENGTH)
        return XBT_DECODE_TRUNCATED;
    memset(&out->zi, 0, sizeof out->zi);
    out->zi.mnemonic = ZYDIS_MNEMONIC_INVALID;
    out->length = 1;
    out->bytes[0] = len ? buf[0] : 0;
    out->iclass = XBT_IC_UNDEFINED;
    out->callout = XBT_CO_UD;
    out->flags = XBT_IF_UD | XBT_IF_ENDS_BLOCK;
    return XBT_DECODE_OK;
}
