/*
 * classify.c - the one table that says how each guest instruction is treated.
 *
 * Rows are keyed by Zydis mnemonic; a few rows are refined by operands afterwards
 * (MOV to/from CRn, DRn and segment registers; far forms of JMP/CALL/RET; push and
 * pop of segment registers).  Every mnemonic not listed is copied (class COPY, or
 * MEMORY when it has a memory operand), provided it belongs to the virtual CPU's
 * instruction sets; anything outside them raises #UD, as on a CPU without them.
 */
#include <stdio.h>

#include "decoder.h"

struct xbt_class_row {
    uint8_t iclass;
    uint8_t callout;
    uint16_t flags;
};

#define ROW(m, c, co, f) [ZYDIS_MNEMONIC_##m] = { (c), (co), (f) }
#define PRIV(m, co, f) ROW(m, XBT_IC_PRIVILEGED, co, XBT_IF_PRIV | (f))
#define SENS(m, co, f) ROW(m, XBT_IC_SENSITIVE, co, XBT_IF_SENSITIVE | (f))
#define VIRT(m, co, f) ROW(m, XBT_IC_SENSITIVE, co, XBT_IF_VIRT | (f))
#define INV64(m, co, f) ROW(m, XBT_IC_INVALID64, co, XBT_IF_INVALID64 | (f))
#define UNDEF(m) ROW(m, XBT_IC_UNDEFINED, XBT_CO_UD, XBT_IF_UD | XBT_IF_ENDS_BLOCK)

#define EB XBT_IF_ENDS_BLOCK
#define BR XBT_IF_BRANCH
#define ST XBT_IF_STACK

static const struct xbt_class_row table[ZYDIS_MNEMONIC_MAX_VALUE + 1] = {
    /* Privileged: CPL 0 only. */
    PRIV(HLT, XBT_CO_HLT, EB),
    PRIV(LGDT, XBT_CO_LGDT, 0),
    PRIV(LIDT, XBT_CO_LIDT, 0),
    PRIV(LLDT, XBT_CO_LLDT, 0),
    PRIV(LTR, XBT_CO_LTR, 0),
    PRIV(LMSW, XBT_CO_LMSW, EB),
    PRIV(CLTS, XBT_CO_CLTS, EB),
    PRIV(INVD, XBT_CO_INVD, 0),
    PRIV(WBINVD, XBT_CO_WBINVD, 0),
    PRIV(INVLPG, XBT_CO_INVLPG, EB),
    PRIV(RDMSR, XBT_CO_RDMSR, 0),
    PRIV(WRMSR, XBT_CO_WRMSR, EB),
    PRIV(SYSEXIT, XBT_CO_SYSEXIT, EB | BR),
    PRIV(SYSRET, XBT_CO_SYSRET, EB | BR),
    PRIV(RDPMC, XBT_CO_RDPMC, 0),
    PRIV(MONITOR, XBT_CO_MONITOR, 0),
    PRIV(MWAIT, XBT_CO_MWAIT, EB),
    PRIV(XSETBV, XBT_CO_XSETBV, EB),
    /* IOPL-sensitive: privileged when CPL > IOPL. */
    PRIV(CLI, XBT_CO_CLI, XBT_IF_IOPL),
    PRIV(STI, XBT_CO_STI, XBT_IF_IOPL | EB),
    PRIV(IN, XBT_CO_IN, XBT_IF_IOPL),
    PRIV(OUT, XBT_CO_OUT, XBT_IF_IOPL),
    PRIV(INSB, XBT_CO_INS, XBT_IF_IOPL),
    PRIV(INSW, XBT_CO_INS, XBT_IF_IOPL),
    PRIV(INSD, XBT_CO_INS, XBT_IF_IOPL),
    PRIV(OUTSB, XBT_CO_OUTS, XBT_IF_IOPL),
    PRIV(OUTSW, XBT_CO_OUTS, XBT_IF_IOPL),
    PRIV(OUTSD, XBT_CO_OUTS, XBT_IF_IOPL),

    /* Sensitive but unprivileged: the instructions of Robin & Irvine. */
    SENS(SGDT, XBT_CO_SGDT, 0),
    SENS(SIDT, XBT_CO_SIDT, 0),
    SENS(SLDT, XBT_CO_SLDT, 0),
    SENS(SMSW, XBT_CO_SMSW, 0),
    SENS(STR, XBT_CO_STR, 0),
    SENS(PUSHF, XBT_CO_PUSHF, ST),
    SENS(PUSHFD, XBT_CO_PUSHF, ST),
    SENS(POPF, XBT_CO_POPF, ST | EB),
    SENS(POPFD, XBT_CO_POPF, ST | EB),
    SENS(CLAC, XBT_CO_CLAC, 0), /* #UD at CPL > 0: the handler's, not a #GP */
    SENS(STAC, XBT_CO_STAC, 0),
    SENS(LAR, XBT_CO_LAR, 0),
    SENS(LSL, XBT_CO_LSL, 0),
    SENS(VERR, XBT_CO_VERR, 0),
    SENS(VERW, XBT_CO_VERW, 0),
    SENS(INT, XBT_CO_INT, EB | BR),
    SENS(INT3, XBT_CO_INT3, EB | BR),
    SENS(INT1, XBT_CO_INT1, EB | BR),
    SENS(IRET, XBT_CO_IRET, EB | BR | ST),
    SENS(IRETD, XBT_CO_IRET, EB | BR | ST),
    SENS(LFS, XBT_CO_LOAD_FAR_PTR, EB),
    SENS(LGS, XBT_CO_LOAD_FAR_PTR, EB),
    SENS(LSS, XBT_CO_LOAD_FAR_PTR, EB),

    /* Virtualized: unprivileged, but they must see the virtual CPU, not the host. */
    VIRT(CPUID, XBT_CO_CPUID, 0),
    VIRT(RDTSC, XBT_CO_RDTSC, 0),
    VIRT(RDTSCP, XBT_CO_RDTSCP, 0),
    VIRT(RDPID, XBT_CO_RDPID, 0),
    VIRT(SYSENTER, XBT_CO_SYSENTER, EB | BR),
    VIRT(SYSCALL, XBT_CO_SYSCALL, EB | BR),
    VIRT(XGETBV, XBT_CO_XGETBV, 0),

    /* Valid in 32-bit code, invalid in 64-bit mode. */
    INV64(PUSHA, XBT_CO_NONE, ST),
    INV64(PUSHAD, XBT_CO_NONE, ST),
    INV64(POPA, XBT_CO_NONE, ST),
    INV64(POPAD, XBT_CO_NONE, ST),
    INV64(DAA, XBT_CO_BCD, 0),
    INV64(DAS, XBT_CO_BCD, 0),
    INV64(AAA, XBT_CO_BCD, 0),
    INV64(AAS, XBT_CO_BCD, 0),
    INV64(AAM, XBT_CO_BCD, 0),
    INV64(AAD, XBT_CO_BCD, 0),
    INV64(SALC, XBT_CO_SALC, 0),
    INV64(BOUND, XBT_CO_BOUND, 0),
    INV64(INTO, XBT_CO_INTO, EB | BR),
    ROW(ARPL, XBT_IC_SENSITIVE, XBT_CO_ARPL, XBT_IF_INVALID64 | XBT_IF_SENSITIVE),
    ROW(LDS, XBT_IC_SENSITIVE, XBT_CO_LOAD_FAR_PTR, XBT_IF_INVALID64 | XBT_IF_SENSITIVE | EB),
    ROW(LES, XBT_IC_SENSITIVE, XBT_CO_LOAD_FAR_PTR, XBT_IF_INVALID64 | XBT_IF_SENSITIVE | EB),

    /* Near control transfers. */
    ROW(JMP, XBT_IC_JMP_DIRECT, 0, BR | EB),
    ROW(CALL, XBT_IC_CALL_DIRECT, 0, BR | EB | ST),
    ROW(RET, XBT_IC_RET, 0, BR | EB | ST),
    ROW(JB, XBT_IC_JCC, 0, BR | EB), ROW(JBE, XBT_IC_JCC, 0, BR | EB),
    ROW(JL, XBT_IC_JCC, 0, BR | EB), ROW(JLE, XBT_IC_JCC, 0, BR | EB),
    ROW(JNB, XBT_IC_JCC, 0, BR | EB), ROW(JNBE, XBT_IC_JCC, 0, BR | EB),
    ROW(JNL, XBT_IC_JCC, 0, BR | EB), ROW(JNLE, XBT_IC_JCC, 0, BR | EB),
    ROW(JNO, XBT_IC_JCC, 0, BR | EB), ROW(JNP, XBT_IC_JCC, 0, BR | EB),
    ROW(JNS, XBT_IC_JCC, 0, BR | EB), ROW(JNZ, XBT_IC_JCC, 0, BR | EB),
    ROW(JO, XBT_IC_JCC, 0, BR | EB), ROW(JP, XBT_IC_JCC, 0, BR | EB),
    ROW(JS, XBT_IC_JCC, 0, BR | EB), ROW(JZ, XBT_IC_JCC, 0, BR | EB),
    ROW(LOOP, XBT_IC_LOOP, 0, BR | EB), ROW(LOOPE, XBT_IC_LOOP, 0, BR | EB),
    ROW(LOOPNE, XBT_IC_LOOP, 0, BR | EB), ROW(JECXZ, XBT_IC_LOOP, 0, BR | EB),
    ROW(JCXZ, XBT_IC_LOOP, 0, BR | EB),

    /* Implicit stack. */
    ROW(PUSH, XBT_IC_STACK, 0, ST), ROW(POP, XBT_IC_STACK, 0, ST),
    ROW(ENTER, XBT_IC_STACK, 0, ST), ROW(LEAVE, XBT_IC_STACK, 0, ST),

    /* Strings. */
    ROW(MOVSB, XBT_IC_STRING, 0, 0), ROW(MOVSW, XBT_IC_STRING, 0, 0),
    ROW(MOVSD, XBT_IC_STRING, 0, 0), ROW(CMPSB, XBT_IC_STRING, 0, 0),
    ROW(CMPSW, XBT_IC_STRING, 0, 0), ROW(CMPSD, XBT_IC_STRING, 0, 0),
    ROW(STOSB, XBT_IC_STRING, 0, 0), ROW(STOSW, XBT_IC_STRING, 0, 0),
    ROW(STOSD, XBT_IC_STRING, 0, 0), ROW(LODSB, XBT_IC_STRING, 0, 0),
    ROW(LODSW, XBT_IC_STRING, 0, 0), ROW(LODSD, XBT_IC_STRING, 0, 0),
    ROW(SCASB, XBT_IC_STRING, 0, 0), ROW(SCASW, XBT_IC_STRING, 0, 0),
    ROW(SCASD, XBT_IC_STRING, 0, 0),

    /* Raise #UD by definition, or outside the virtual CPU. */
    UNDEF(UD0), UNDEF(UD1), UNDEF(UD2), UNDEF(RSM), UNDEF(SWAPGS),
    UNDEF(RDFSBASE), UNDEF(RDGSBASE), UNDEF(WRFSBASE), UNDEF(WRGSBASE),
    UNDEF(INVPCID), UNDEF(MONITORX), UNDEF(MWAITX),
    UNDEF(CLGI), UNDEF(STGI), UNDEF(INVLPGA), UNDEF(INVLPGB), UNDEF(TLBSYNC),
    UNDEF(VMRUN), UNDEF(VMLOAD), UNDEF(VMSAVE), UNDEF(VMMCALL), UNDEF(SKINIT),
    UNDEF(VMCALL), UNDEF(VMLAUNCH), UNDEF(VMRESUME), UNDEF(VMXOFF), UNDEF(VMXON),
    UNDEF(VMCLEAR), UNDEF(VMPTRLD), UNDEF(VMPTRST), UNDEF(VMREAD), UNDEF(VMWRITE),
    UNDEF(INVEPT), UNDEF(INVVPID), UNDEF(GETSEC), UNDEF(XSAVE), UNDEF(XRSTOR),
    UNDEF(XSAVEOPT), UNDEF(XSAVEC), UNDEF(XSAVES), UNDEF(XRSTORS), UNDEF(RDRAND),
    UNDEF(RDSEED), UNDEF(RDPKRU), UNDEF(WRPKRU), UNDEF(ENCLS),
    UNDEF(ENCLU), UNDEF(ENCLV), UNDEF(PCONFIG), UNDEF(CLZERO),
    UNDEF(UMONITOR), UNDEF(UMWAIT), UNDEF(TPAUSE), UNDEF(XBEGIN), UNDEF(XEND),
    UNDEF(XABORT), UNDEF(XTEST),
};

/* The ISA sets of the virtual CPU (a 686 with MMX, SSE, SSE2, SSE3, SSSE3, SSE4). */
static bool isa_supported(const ZydisDecodedInstruction *zi)
{
    if (zi->encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY &&
        zi->encoding != ZYDIS_INSTRUCTION_ENCODING_3DNOW)
        return false; /* VEX/EVEX/XOP/MVEX: no AVX in the virtual CPUID, CR4.OSXSAVE off */
    /* ENDBR32/ENDBR64 sit in the reserved-NOP space (0F 1E): CPUs without CET run them
       as NOPs, and compilers emit them everywhere (Debian builds with -fcf-protection). */
    if (zi->mnemonic == ZYDIS_MNEMONIC_ENDBR32 || zi->mnemonic == ZYDIS_MNEMONIC_ENDBR64)
        return true;
    /* TZCNT/LZCNT are REP-prefixed BSF/BSR on a CPU without BMI1/ABM, like the virtual
       one: the translator emits BSF/BSR for them (compilers rely on this). */
    if (zi->mnemonic == ZYDIS_MNEMONIC_TZCNT || zi->mnemonic == ZYDIS_MNEMONIC_LZCNT)
        return true;
    switch (zi->meta.isa_ext) {
    case ZYDIS_ISA_EXT_AMD3DNOW:
    case ZYDIS_ISA_EXT_SSE4A:
    case ZYDIS_ISA_EXT_SGX:
    case ZYDIS_ISA_EXT_SMX:
    case ZYDIS_ISA_EXT_VMFUNC:
    case ZYDIS_ISA_EXT_SHA:
    case ZYDIS_ISA_EXT_AES:
    case ZYDIS_ISA_EXT_PCLMULQDQ:
    case ZYDIS_ISA_EXT_MPX:
    case ZYDIS_ISA_EXT_CET:
    case ZYDIS_ISA_EXT_RTM:
    case ZYDIS_ISA_EXT_BMI1:
    case ZYDIS_ISA_EXT_BMI2:
    case ZYDIS_ISA_EXT_ADOX_ADCX:
    case ZYDIS_ISA_EXT_LZCNT:
    case ZYDIS_ISA_EXT_MOVBE:
    case ZYDIS_ISA_EXT_CLFLUSHOPT:
    case ZYDIS_ISA_EXT_CLWB:
    case ZYDIS_ISA_EXT_SERIALIZE:
    case ZYDIS_ISA_EXT_WAITPKG:
    /* Neither in the virtual CPUID: run natively they would show the host's (and
       MOVDIR64B/ENQCMD store through ES:reg, which has no window). */
    case ZYDIS_ISA_EXT_MOVDIR:
    case ZYDIS_ISA_EXT_ENQCMD:
    case ZYDIS_ISA_EXT_GFNI:
    case ZYDIS_ISA_EXT_KEYLOCKER:
    case ZYDIS_ISA_EXT_KEYLOCKER_WIDE:
    case ZYDIS_ISA_EXT_HRESET:
    case ZYDIS_ISA_EXT_UINTR:
    case ZYDIS_ISA_EXT_PT:
    case ZYDIS_ISA_EXT_PADLOCK:
    case ZYDIS_ISA_EXT_RDPRU:
    case ZYDIS_ISA_EXT_MCOMMIT:
    case ZYDIS_ISA_EXT_SNP:
    case ZYDIS_ISA_EXT_TDX:
    case ZYDIS_ISA_EXT_TSX_LDTRK:
        return false;
    default:
        return true;
    }
}

int xbt_gpr_index(ZydisRegister r)
{
    switch (r) {
    case ZYDIS_REGISTER_EAX: case ZYDIS_REGISTER_AX: case ZYDIS_REGISTER_AL:
    case ZYDIS_REGISTER_AH: return XBT_EAX;
    case ZYDIS_REGISTER_ECX: case ZYDIS_REGISTER_CX: case ZYDIS_REGISTER_CL:
    case ZYDIS_REGISTER_CH: return XBT_ECX;
    case ZYDIS_REGISTER_EDX: case ZYDIS_REGISTER_DX: case ZYDIS_REGISTER_DL:
    case ZYDIS_REGISTER_DH: return XBT_EDX;
    case ZYDIS_REGISTER_EBX: case ZYDIS_REGISTER_BX: case ZYDIS_REGISTER_BL:
    case ZYDIS_REGISTER_BH: return XBT_EBX;
    case ZYDIS_REGISTER_ESP: case ZYDIS_REGISTER_SP: return XBT_ESP;
    case ZYDIS_REGISTER_EBP: case ZYDIS_REGISTER_BP: return XBT_EBP;
    case ZYDIS_REGISTER_ESI: case ZYDIS_REGISTER_SI: return XBT_ESI;
    case ZYDIS_REGISTER_EDI: case ZYDIS_REGISTER_DI: return XBT_EDI;
    default: return -1;
    }
}

int xbt_seg_index(ZydisRegister r)
{
    switch (r) {
    case ZYDIS_REGISTER_ES: return 0;
    case ZYDIS_REGISTER_CS: return 1;
    case ZYDIS_REGISTER_SS: return 2;
    case ZYDIS_REGISTER_DS: return 3;
    case ZYDIS_REGISTER_FS: return 4;
    case ZYDIS_REGISTER_GS: return 5;
    default: return -1;
    }
}

bool xbt_reg_is_high8(ZydisRegister r)
{
    return r == ZYDIS_REGISTER_AH || r == ZYDIS_REGISTER_CH || r == ZYDIS_REGISTER_DH ||
           r == ZYDIS_REGISTER_BH;
}

static bool is_esp(ZydisRegister r)
{
    return r == ZYDIS_REGISTER_ESP || r == ZYDIS_REGISTER_SP;
}

/* Fills iclass, callout and flags of a successfully decoded instruction. */
void xbt_classify(xbt_insn *in)
{
    const ZydisDecodedInstruction *zi = &in->zi;
    const struct xbt_class_row *row = &table[zi->mnemonic];
    uint32_t flags = row->flags;
    unsigned iclass = row->iclass;
    unsigned callout = row->callout;

    in->mem_op = -1;
    in->seg = 3; /* DS */
    for (unsigned i = 0; i < zi->operand_count_visible; i++) {
        const ZydisDecodedOperand *op = &in->ops[i];
        if (op->type == ZYDIS_OPERAND_TYPE_REGISTER) {
            if (is_esp(op->reg.value))
                flags |= XBT_IF_USES_ESP;
            if (xbt_reg_is_high8(op->reg.value))
                flags |= XBT_IF_HIGH8;
        } else if (op->type == ZYDIS_OPERAND_TYPE_MEMORY) {
            if (is_esp(op->mem.base) || is_esp(op->mem.index))
                flags |= XBT_IF_USES_ESP;
            if (op->mem.type == ZYDIS_MEMOP_TYPE_MEM || op->mem.type == ZYDIS_MEMOP_TYPE_MIB) {
                flags |= XBT_IF_MEM;
                in->mem_op = (int)i;
                int s = xbt_seg_index(op->mem.segment);
                in->seg = (uint8_t)(s < 0 ? 3 : s);
            }
        }
    }
    if (zi->attributes & ZYDIS_ATTRIB_HAS_SEGMENT)
        flags |= XBT_IF_SEGOVR;
    if (zi->address_width == 16)
        flags |= XBT_IF_ADDR16;
    if (zi->meta.category == ZYDIS_CATEGORY_X87_ALU || zi->meta.isa_set == ZYDIS_ISA_SET_X87 ||
        zi->meta.isa_ext == ZYDIS_ISA_EXT_MMX || zi->meta.isa_ext == ZYDIS_ISA_EXT_SSE ||
        zi->meta.isa_ext == ZYDIS_ISA_EXT_SSE2 || zi->meta.isa_ext == ZYDIS_ISA_EXT_SSE3 ||
        zi->meta.isa_ext == ZYDIS_ISA_EXT_SSSE3 || zi->meta.isa_ext == ZYDIS_ISA_EXT_SSE4 ||
        zi->meta.isa_set == ZYDIS_ISA_SET_FXSAVE)
        flags |= XBT_IF_FPU;
    /* SSE-era instructions that touch no x87/SSE state: no CR0.EM/TS or CR4.OSFXSR
       check applies to them (SDM: fences, prefetches and MOVNTI fault only for a
       missing CPUID feature or a LOCK prefix), so they need no guest FPU state. */
    switch (zi->mnemonic) {
    case ZYDIS_MNEMONIC_MFENCE: case ZYDIS_MNEMONIC_LFENCE: case ZYDIS_MNEMONIC_SFENCE:
    case ZYDIS_MNEMONIC_PREFETCHNTA: case ZYDIS_MNEMONIC_PREFETCHT0:
    case ZYDIS_MNEMONIC_PREFETCHT1: case ZYDIS_MNEMONIC_PREFETCHT2:
    case ZYDIS_MNEMONIC_MOVNTI: case ZYDIS_MNEMONIC_PAUSE:
        flags &= ~XBT_IF_FPU;
        break;
    default:
        break;
    }

    /* Refinements by operand. */
    switch (zi->mnemonic) {
    case ZYDIS_MNEMONIC_MOV:
        for (unsigned i = 0; i < 2; i++) {
            ZydisRegister r = in->ops[i].type == ZYDIS_OPERAND_TYPE_REGISTER
                                  ? in->ops[i].reg.value : ZYDIS_REGISTER_NONE;
            ZydisRegisterClass rc = ZydisRegisterGetClass(r);
            if (rc == ZYDIS_REGCLASS_CONTROL) {
                iclass = XBT_IC_PRIVILEGED;
                flags |= XBT_IF_PRIV | (i == 0 ? XBT_IF_ENDS_BLOCK : 0);
                callout = i == 0 ? XBT_CO_MOV_TO_CR : XBT_CO_MOV_FROM_CR;
            } else if (rc == ZYDIS_REGCLASS_DEBUG) {
                iclass = XBT_IC_PRIVILEGED;
                flags |= XBT_IF_PRIV | (i == 0 ? XBT_IF_ENDS_BLOCK : 0);
                callout = i == 0 ? XBT_CO_MOV_TO_DR : XBT_CO_MOV_FROM_DR;
            } else if (rc == ZYDIS_REGCLASS_SEGMENT) {
                iclass = XBT_IC_SENSITIVE;
                flags |= XBT_IF_SENSITIVE;
                if (i == 0) {
                    /* MOV Sreg, r/m: a segment load.  MOV CS is #UD. */
                    if (r == ZYDIS_REGISTER_CS) {
                        iclass = XBT_IC_UNDEFINED;
                        callout = XBT_CO_UD;
                        flags |= XBT_IF_UD | XBT_IF_ENDS_BLOCK;
                    } else {
                        callout = XBT_CO_MOV_TO_SREG;
                        flags |= XBT_IF_ENDS_BLOCK;
                    }
                }
                /* MOV r/m, Sreg is rewritten inline from the virtual selector. */
            }
        }
        break;
    case ZYDIS_MNEMONIC_PUSH:
    case ZYDIS_MNEMONIC_POP:
        if (in->ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
            ZydisRegisterGetClass(in->ops[0].reg.value) == ZYDIS_REGCLASS_SEGMENT) {
            iclass = XBT_IC_SENSITIVE;
            flags |= XBT_IF_SENSITIVE;
            ZydisRegister r = in->ops[0].reg.value;
            if (r != ZYDIS_REGISTER_FS && r != ZYDIS_REGISTER_GS)
                flags |= XBT_IF_INVALID64;
            if (zi->mnemonic == ZYDIS_MNEMONIC_POP) {
                callout = XBT_CO_POP_SREG;
                flags |= XBT_IF_ENDS_BLOCK;
            }
        }
        break;
    case ZYDIS_MNEMONIC_JMP:
    case ZYDIS_MNEMONIC_CALL:
        if (zi->meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) {
            iclass = XBT_IC_SENSITIVE;
            flags |= XBT_IF_SENSITIVE | XBT_IF_FAR;
            callout = zi->mnemonic == ZYDIS_MNEMONIC_JMP ? XBT_CO_JMP_FAR : XBT_CO_CALL_FAR;
            if (in->ops[0].type == ZYDIS_OPERAND_TYPE_POINTER)
                flags |= XBT_IF_INVALID64;
        } else if (in->ops[0].type != ZYDIS_OPERAND_TYPE_IMMEDIATE) {
            iclass = zi->mnemonic == ZYDIS_MNEMONIC_JMP ? XBT_IC_JMP_INDIRECT
                                                        : XBT_IC_CALL_INDIRECT;
        }
        break;
    case ZYDIS_MNEMONIC_RET:
        if (zi->meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) {
            iclass = XBT_IC_SENSITIVE;
            flags |= XBT_IF_SENSITIVE | XBT_IF_FAR;
            callout = XBT_CO_RET_FAR;
        }
        break;
    case ZYDIS_MNEMONIC_MOVSD:
    case ZYDIS_MNEMONIC_CMPSD:
        /* The SSE2 forms share the mnemonic with the string forms. */
        if (zi->meta.category != ZYDIS_CATEGORY_STRINGOP) {
            iclass = (flags & XBT_IF_MEM) ? XBT_IC_MEMORY : XBT_IC_COPY;
        }
        break;
    default:
        break;
    }

    if (iclass == XBT_IC_COPY && (flags & XBT_IF_MEM))
        iclass = XBT_IC_MEMORY;
    if (!isa_supported(zi) && iclass != XBT_IC_UNDEFINED) {
        iclass = XBT_IC_UNDEFINED;
        callout = XBT_CO_UD;
        flags |= XBT_IF_UD | XBT_IF_ENDS_BLOCK;
    }
    /* 0F 0D with a register operand: Zydis calls it a NOP (the PREFETCH/PREFETCHW
       hint space), CPUs raise #UD (AMD's: its bare form copied as it is took SIGILL
       here), and so does QEMU TCG.  Its memory forms stay NOPs. */
    if (zi->opcode_map == ZYDIS_OPCODE_MAP_0F && zi->opcode == 0x0D && zi->raw.modrm.mod == 3 &&
        iclass != XBT_IC_UNDEFINED) {
        iclass = XBT_IC_UNDEFINED;
        callout = XBT_CO_UD;
        flags |= XBT_IF_UD | XBT_IF_ENDS_BLOCK;
    }
    /* A LOCK prefix on an instruction that does not take one raises #UD.  Zydis
       rejects most such encodings itself; this catches register-destination forms. */
    if ((zi->attributes & ZYDIS_ATTRIB_HAS_LOCK) && !(flags & XBT_IF_MEM)) {
        iclass = XBT_IC_UNDEFINED;
        callout = XBT_CO_UD;
        flags |= XBT_IF_UD | XBT_IF_ENDS_BLOCK;
    }
    in->iclass = (uint8_t)iclass;
    in->callout = (uint8_t)callout;
    in->flags = flags;
}

static const char *const class_names[XBT_IC_COUNT] = {
    [XBT_IC_COPY] = "copy",
    [XBT_IC_MEMORY] = "memory",
    [XBT_IC_STACK] = "stack",
    [XBT_IC_STRING] = "string",
    [XBT_IC_JMP_DIRECT] = "jmp-direct",
    [XBT_IC_JCC] = "jcc",
    [XBT_IC_LOOP] = "loop",
    [XBT_IC_CALL_DIRECT] = "call-direct",
    [XBT_IC_JMP_INDIRECT] = "jmp-indirect",
    [XBT_IC_CALL_INDIRECT] = "call-indirect",
    [XBT_IC_RET] = "ret",
    [XBT_IC_PRIVILEGED] = "privileged",
    [XBT_IC_SENSITIVE] = "sensitive",
    [XBT_IC_INVALID64] = "invalid64",
    [XBT_IC_UNDEFINED] = "undefined",
};

const char *xbt_iclass_name(unsigned iclass)
{
    return iclass < XBT_IC_COUNT ? class_names[iclass] : "?";
}

char *xbt_iflags_str(uint32_t flags, char *buf, size_t size)
{
    static const struct { uint32_t bit; const char *name; } names[] = {
        { XBT_IF_MEM, "mem" }, { XBT_IF_STACK, "stack" }, { XBT_IF_BRANCH, "branch" },
        { XBT_IF_PRIV, "priv" }, { XBT_IF_IOPL, "iopl" }, { XBT_IF_SENSITIVE, "sensitive" },
        { XBT_IF_VIRT, "virt" }, { XBT_IF_INVALID64, "inv64" }, { XBT_IF_ENDS_BLOCK, "end" },
        { XBT_IF_USES_ESP, "esp" }, { XBT_IF_HIGH8, "high8" }, { XBT_IF_SEGOVR, "segovr" },
        { XBT_IF_ADDR16, "addr16" }, { XBT_IF_FAR, "far" }, { XBT_IF_FPU, "fpu" },
        { XBT_IF_UD, "ud" },
    };
    size_t n = 0;
    if (size == 0)
        return buf;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(flags & names[i].bit))
            continue;
        int w = snprintf(buf + n, size - n, "%s%s", n ? "," : "", names[i].name);
        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
    }
    return buf;
}
