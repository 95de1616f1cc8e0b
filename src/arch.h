/*
 * arch.h - numbers the x86 architecture defines and several parts of xbt use: the bits
 * of CR0, CR4, EFLAGS and of page-table entries (Intel SDM vol. 3: 2.3 EFLAGS' system
 * flags, 2.5 control registers, 4.3 and 4.4 paging entries; vol. 1, 3.4.3 the status
 * flags).  This is the one definition of each: code names them from here instead of
 * spelling the value or defining its own copy.
 *
 * Defines only, so assembly can include it (jit_stubs.S reaches it through abi.h);
 * XBT_ARCH_U gives C its unsigned constants and the assembler plain numbers.
 */
#ifndef XBT_ARCH_H
#define XBT_ARCH_H

#ifdef __ASSEMBLER__
#define XBT_ARCH_U(x) x
#else
#define XBT_ARCH_U(x) x##u
#endif

/* ---- CR0 ------------------------------------------------------------------------ */
#define XBT_CR0_PE XBT_ARCH_U(0x00000001) /* protection enable */
#define XBT_CR0_MP XBT_ARCH_U(0x00000002) /* monitor coprocessor */
#define XBT_CR0_EM XBT_ARCH_U(0x00000004) /* x87 emulation */
#define XBT_CR0_TS XBT_ARCH_U(0x00000008) /* task switched */
#define XBT_CR0_ET XBT_ARCH_U(0x00000010) /* extension type (reads as 1) */
#define XBT_CR0_NE XBT_ARCH_U(0x00000020) /* numeric error */
#define XBT_CR0_WP XBT_ARCH_U(0x00010000) /* write protect (supervisor writes) */
#define XBT_CR0_AM XBT_ARCH_U(0x00040000) /* alignment mask */
#define XBT_CR0_NW XBT_ARCH_U(0x20000000) /* not write-through */
#define XBT_CR0_CD XBT_ARCH_U(0x40000000) /* cache disable */
#define XBT_CR0_PG XBT_ARCH_U(0x80000000) /* paging */

/* ---- CR4 ------------------------------------------------------------------------ */
#define XBT_CR4_VME        XBT_ARCH_U(0x00000001) /* virtual-8086 mode extensions */
#define XBT_CR4_PVI        XBT_ARCH_U(0x00000002) /* protected-mode virtual interrupts */
#define XBT_CR4_TSD        XBT_ARCH_U(0x00000004) /* RDTSC at CPL 0 only */
#define XBT_CR4_DE         XBT_ARCH_U(0x00000008) /* debugging extensions */
#define XBT_CR4_PSE        XBT_ARCH_U(0x00000010) /* 4 MiB pages (32-bit paging) */
#define XBT_CR4_PAE        XBT_ARCH_U(0x00000020) /* PAE paging */
#define XBT_CR4_MCE        XBT_ARCH_U(0x00000040) /* machine-check enable */
#define XBT_CR4_PGE        XBT_ARCH_U(0x00000080) /* global pages */
#define XBT_CR4_PCE        XBT_ARCH_U(0x00000100) /* RDPMC at any CPL */
#define XBT_CR4_OSFXSR     XBT_ARCH_U(0x00000200) /* FXSAVE/FXRSTOR and SSE */
#define XBT_CR4_OSXMMEXCPT XBT_ARCH_U(0x00000400) /* unmasked SSE exceptions raise #XM */
#define XBT_CR4_UMIP       XBT_ARCH_U(0x00000800) /* SGDT SIDT SLDT SMSW STR: CPL 0 only */
#define XBT_CR4_SMEP       XBT_ARCH_U(0x00100000) /* no supervisor fetch from user pages */
#define XBT_CR4_SMAP       XBT_ARCH_U(0x00200000) /* no supervisor data access to user pages */

/* ---- DR6 / DR7 ------------------------------------------------------------------ */
#define XBT_DR6_BD XBT_ARCH_U(0x00002000) /* a debug-register access while DR7.GD */
#define XBT_DR6_BS XBT_ARCH_U(0x00004000) /* single step (EFLAGS.TF) */
#define XBT_DR6_BT XBT_ARCH_U(0x00008000) /* task switch to a TSS with the T bit */
#define XBT_DR7_GD XBT_ARCH_U(0x00002000) /* general detect: MOV DR raises #DB */

/* ---- EFLAGS --------------------------------------------------------------------- */
#define XBT_EFLAGS_CF    XBT_ARCH_U(0x00000001) /* carry */
#define XBT_EFLAGS_FIXED XBT_ARCH_U(0x00000002) /* bit 1: reserved, always 1 */
#define XBT_EFLAGS_PF    XBT_ARCH_U(0x00000004) /* parity */
#define XBT_EFLAGS_AF    XBT_ARCH_U(0x00000010) /* auxiliary carry */
#define XBT_EFLAGS_ZF    XBT_ARCH_U(0x00000040) /* zero */
#define XBT_EFLAGS_SF    XBT_ARCH_U(0x00000080) /* sign */
#define XBT_EFLAGS_TF    XBT_ARCH_U(0x00000100) /* trap (single step) */
#define XBT_EFLAGS_IF    XBT_ARCH_U(0x00000200) /* interrupt enable */
#define XBT_EFLAGS_DF    XBT_ARCH_U(0x00000400) /* direction */
#define XBT_EFLAGS_OF    XBT_ARCH_U(0x00000800) /* overflow */
#define XBT_EFLAGS_IOPL  XBT_ARCH_U(0x00003000) /* I/O privilege level (two bits) */
#define XBT_EFLAGS_NT    XBT_ARCH_U(0x00004000) /* nested task */
#define XBT_EFLAGS_RF    XBT_ARCH_U(0x00010000) /* resume */
#define XBT_EFLAGS_VM    XBT_ARCH_U(0x00020000) /* virtual-8086 mode */
#define XBT_EFLAGS_AC    XBT_ARCH_U(0x00040000) /* alignment check */
#define XBT_EFLAGS_ID    XBT_ARCH_U(0x00200000) /* CPUID available */
#define XBT_EFLAGS_IOPL_SHIFT 12

/* ---- page-table entries (the low 12 bits, the same in 32-bit and PAE entries) ---- */
#define XBT_PTE_P  XBT_ARCH_U(0x001) /* present */
#define XBT_PTE_RW XBT_ARCH_U(0x002) /* writable */
#define XBT_PTE_US XBT_ARCH_U(0x004) /* user */
#define XBT_PTE_A  XBT_ARCH_U(0x020) /* accessed */
#define XBT_PTE_D  XBT_ARCH_U(0x040) /* dirty (last level) */
#define XBT_PTE_PS XBT_ARCH_U(0x080) /* page size: a 4 MiB or 2 MiB page (directory) */
#define XBT_PTE_G  XBT_ARCH_U(0x100) /* global (last level) */

#endif
