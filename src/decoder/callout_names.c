/* callout_names.c - names of callout kinds, for listings and statistics. */
#include "defs.h"

static const char *const names[XBT_CO_COUNT] = {
    [XBT_CO_NONE] = "none", [XBT_CO_UD] = "ud", [XBT_CO_UNSUPPORTED] = "unsupported", [XBT_CO_NM] = "nm",
    [XBT_CO_CLI] = "cli", [XBT_CO_STI] = "sti", [XBT_CO_PUSHF] = "pushf",
    [XBT_CO_POPF] = "popf", [XBT_CO_HLT] = "hlt", [XBT_CO_IRET] = "iret",
    [XBT_CO_INT] = "int", [XBT_CO_INT3] = "int3", [XBT_CO_INTO] = "into",
    [XBT_CO_INT1] = "int1", [XBT_CO_BOUND] = "bound", [XBT_CO_MOV_TO_CR] = "mov-to-cr",
    [XBT_CO_MOV_FROM_CR] = "mov-from-cr", [XBT_CO_MOV_TO_DR] = "mov-to-dr",
    [XBT_CO_MOV_FROM_DR] = "mov-from-dr", [XBT_CO_LGDT] = "lgdt", [XBT_CO_LIDT] = "lidt",
    [XBT_CO_LLDT] = "lldt", [XBT_CO_LTR] = "ltr", [XBT_CO_SGDT] = "sgdt",
    [XBT_CO_SIDT] = "sidt", [XBT_CO_SLDT] = "sldt", [XBT_CO_STR] = "str",
    [XBT_CO_SMSW] = "smsw", [XBT_CO_LMSW] = "lmsw", [XBT_CO_LAR] = "lar",
    [XBT_CO_LSL] = "lsl", [XBT_CO_VERR] = "verr", [XBT_CO_VERW] = "verw",
    [XBT_CO_ARPL] = "arpl", [XBT_CO_MOV_TO_SREG] = "mov-to-sreg",
    [XBT_CO_POP_SREG] = "pop-sreg", [XBT_CO_LOAD_FAR_PTR] = "load-far-ptr",
    [XBT_CO_JMP_FAR] = "jmp-far", [XBT_CO_CALL_FAR] = "call-far",
    [XBT_CO_RET_FAR] = "ret-far", [XBT_CO_IN] = "in", [XBT_CO_OUT] = "out",
    [XBT_CO_INS] = "ins", [XBT_CO_OUTS] = "outs", [XBT_CO_INVLPG] = "invlpg",
    [XBT_CO_WBINVD] = "wbinvd", [XBT_CO_INVD] = "invd", [XBT_CO_CLTS] = "clts",
    [XBT_CO_RDMSR] = "rdmsr", [XBT_CO_WRMSR] = "wrmsr", [XBT_CO_CPUID] = "cpuid",
    [XBT_CO_RDTSC] = "rdtsc", [XBT_CO_RDTSCP] = "rdtscp", [XBT_CO_RDPMC] = "rdpmc",
    [XBT_CO_SYSENTER] = "sysenter", [XBT_CO_SYSEXIT] = "sysexit",
    [XBT_CO_SYSCALL] = "syscall", [XBT_CO_SYSRET] = "sysret", [XBT_CO_BCD] = "bcd",
    [XBT_CO_SALC] = "salc", [XBT_CO_MONITOR] = "monitor", [XBT_CO_MWAIT] = "mwait",
    [XBT_CO_XGETBV] = "xgetbv", [XBT_CO_XSETBV] = "xsetbv", [XBT_CO_DE] = "de", [XBT_CO_GP0] = "limit-gp", [XBT_CO_SS0] = "limit-ss",
    [XBT_CO_MMIO] = "mmio", [XBT_CO_RDPID] = "rdpid", [XBT_CO_CLAC] = "clac",
    [XBT_CO_STAC] = "stac", [XBT_CO_PFCHECK] = "pfcheck", [XBT_CO_PAUSE] = "pause",
};

const char *xbt_callout_name(unsigned kind)
{
    return kind < XBT_CO_COUNT && names[kind] ? names[kind] : "?";
}
