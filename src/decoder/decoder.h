/*
 * decoder.h - decode 32-bit guest code with Zydis into xbt's instruction record and
 * classify it.  A leaf module: it uses Zydis only.
 *
 * The classification lives in one table (classify.c) and answers, for every guest
 * instruction, how the translator must treat it.  An instruction has one primary
 * class (what the listing prints) and a set of property flags (an instruction such as
 * a far CALL is sensitive, a control transfer and invalid in 64-bit mode at once).
 */
#ifndef XBT_DECODER_H
#define XBT_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <Zydis/Zydis.h>

#include "defs.h"

enum xbt_iclass {
    XBT_IC_COPY = 0,       /* copied as is: registers and immediates only */
    XBT_IC_MEMORY,         /* copied, its memory operand re-addressed into a window */
    XBT_IC_STACK,          /* implicit guest stack access: push pop enter leave pusha */
    XBT_IC_STRING,         /* movs cmps stos lods scas (with or without rep) */
    XBT_IC_JMP_DIRECT,     /* jmp rel */
    XBT_IC_JCC,            /* jcc rel */
    XBT_IC_LOOP,           /* loop loope loopne jecxz jcxz */
    XBT_IC_CALL_DIRECT,    /* call rel */
    XBT_IC_JMP_INDIRECT,   /* jmp r/m32 */
    XBT_IC_CALL_INDIRECT,  /* call r/m32 */
    XBT_IC_RET,            /* ret, ret imm16 (near) */
    XBT_IC_PRIVILEGED,     /* CPL 0 only, or IOPL-sensitive: a callout */
    XBT_IC_SENSITIVE,      /* unprivileged but sensitive (Robin & Irvine) or virtualized
                              (CPUID, RDTSC, SYSENTER...): a callout or an inline rewrite */
    XBT_IC_INVALID64,      /* valid in 32-bit mode, invalid in 64-bit mode: emulated */
    XBT_IC_UNDEFINED,      /* raises #UD (undecodable, UD0/1/2, or outside our CPU) */
    XBT_IC_COUNT
};

/* Property flags of a decoded instruction. */
#define XBT_IF_MEM         0x0001u /* has an explicit memory operand (not LEA/NOP) */
#define XBT_IF_STACK       0x0002u /* implicit stack access */
#define XBT_IF_BRANCH      0x0004u /* control transfer (near or far) */
#define XBT_IF_PRIV        0x0008u /* privileged (CPL 0) */
#define XBT_IF_IOPL        0x0010u /* IOPL-sensitive (CLI STI IN OUT INS OUTS) */
#define XBT_IF_SENSITIVE   0x0020u /* one of Robin & Irvine's sensitive instructions */
#define XBT_IF_VIRT        0x0040u /* virtualized (CPUID RDTSC SYSENTER ...) */
#define XBT_IF_INVALID64   0x0080u /* invalid in 64-bit mode */
#define XBT_IF_ENDS_BLOCK  0x0100u /* the translator must end the block after it */
#define XBT_IF_USES_ESP    0x0200u /* names ESP/SP explicitly (register or address) */
#define XBT_IF_HIGH8       0x0400u /* names AH, CH, DH or BH (no REX possible) */
#define XBT_IF_SEGOVR      0x0800u /* explicit segment override prefix */
#define XBT_IF_ADDR16      0x1000u /* 16-bit address size (0x67 in 32-bit code) */
#define XBT_IF_FAR         0x2000u /* far transfer */
#define XBT_IF_FPU         0x4000u /* x87/MMX/SSE: subject to CR0.TS/EM */
#define XBT_IF_UD          0x8000u /* raises #UD */

/* The project's instruction record.  Caller-allocated; no allocation on decode. */
typedef struct xbt_insn {
    uint32_t eip;                 /* guest address of the first byte */
    uint8_t length;               /* bytes; 1 for an undecodable byte */
    uint8_t iclass;               /* enum xbt_iclass */
    uint8_t callout;              /* enum xbt_callout_kind (decoder/defs.h) or 0 */
    uint8_t seg;                  /* segment of the memory operand, XBT_ES.. order */
    uint32_t flags;               /* XBT_IF_* */
    uint8_t bytes[16];            /* the raw guest bytes */
    ZydisDecodedInstruction zi;   /* Zydis's view; valid unless XBT_IF_UD from decode */
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    int mem_op;                   /* index in ops[] of the explicit memory operand, -1 */
} xbt_insn;

/* Decoder state: one per thread (Zydis decoders are plain values). */
typedef struct xbt_decoder {
    ZydisDecoder zd;      /* 32-bit code (CS.D set) */
    ZydisDecoder zd16;    /* 16-bit code: real mode, CS.D clear */
} xbt_decoder;

void xbt_decoder_init(xbt_decoder *d);

enum xbt_decode_status {
    XBT_DECODE_OK = 0,      /* *out holds an instruction (maybe class UNDEFINED) */
    XBT_DECODE_TRUNCATED,   /* buf ends inside the instruction: more bytes needed */
};

/*
 * Decode one 32-bit guest instruction from buf[0..len) at guest address eip.
 * Bytes that form no valid instruction (or one outside the virtual CPU, or longer
 * than 15 bytes) give XBT_DECODE_OK with class UNDEFINED, callout XBT_CO_UD and
 * the length Zydis could determine (at least 1): executing it raises #UD.
 * XBT_DECODE_TRUNCATED means len was too short to tell; the caller decides whether
 * that is a fetch fault or the end of its input.
 */
enum xbt_decode_status xbt_decode(const xbt_decoder *d, const uint8_t *buf, size_t len,
                                  uint32_t eip, xbt_insn *out);
/* The same for 16-bit code when code16 (default operand and address size 16: real
   mode, or a code segment with D clear); XBT_IF_ADDR16 then means no 0x67 prefix. */
enum xbt_decode_status xbt_decode_as(const xbt_decoder *d, bool code16, const uint8_t *buf,
                                     size_t len, uint32_t eip, xbt_insn *out);

const char *xbt_iclass_name(unsigned iclass);
/* Writes a short " mem stack priv ..." list of the flags into buf; returns buf. */
char *xbt_iflags_str(uint32_t flags, char *buf, size_t size);

/* Guest register helpers used by classification and translation. */
int xbt_gpr_index(ZydisRegister r);        /* EAX..EDI (any width) -> 0..7, else -1 */
int xbt_seg_index(ZydisRegister r);        /* ES..GS -> XBT_ES.., else -1 */
bool xbt_reg_is_high8(ZydisRegister r);

#endif
