/*
 * realmode16.S - the 16-bit half of realmode.c: real mode and 16-bit protected mode.
 *
 * rm_run (32-bit, called from C) far-jumps to a 16-bit code segment (D=0), loads
 * 64 KiB data segments, clears CR0.PE and far-jumps to real mode, where the checks run
 * with CS=0x1000, DS=0x1600, SS=0x3000, ES=0x4000, FS=0x5000, GS=0x6000 and an IVT of
 * its own at 0x20000.  Each check leaves (name, want, got) in the result table of the
 * data part; C prints them after the return to 32-bit protected mode.  An unexpected
 * exception ends the real-mode part at once (C reports it).
 *
 * The blob (rm_base .. rm_end) is linked into the kernel above 1 MiB and copied by C to
 * linear 0x10000 before it runs: code offsets are O(label) (IP with CS=0x1000), data
 * offsets D(label) (with DS=0x1600: the data part starts at blob offset 0x6000).  The
 * rules checked are the SDM's (vol. 1 and 2 for the instructions, vol. 3 ch. 20 for real
 * mode, 9.9 for the mode switches).
 */
#define O(x) ((x) - rm_base)
#define D(x) ((x) - rm_data)

#define RM_SEG   0x1000   /* the blob at linear 0x10000 */
#define DATA_SEG 0x1600   /* its data part, at blob offset 0x6000 */
#define SS_SEG   0x3000
#define ES_SEG   0x4000
#define FS_SEG   0x5000
#define GS_SEG   0x6000
#define ALT_SEG  0x0800   /* the same code with CS=0x0800: IP = O(x) + ALT_DELTA */
#define ALT_DELTA 0x8000
#define ALT2_SEG 0x0fff   /* and with CS=0x0fff, a base that is not page aligned */
#define ALT2_DELTA 0x10
#define TOP_SP   0xfff0   /* SP between checks */
#define IVT_BASE 0x20000

/* GDT selectors realmode.c sets up (indices 13-17). */
#define SEL_CODE  0x08
#define SEL_DATA  0x10
#define SEL_C16   0x68    /* code, base 0x10000, limit 0xffff, D=0 */
#define SEL_D16   0x70    /* data, base 0, limit 0xffff: what real mode wants cached */
#define SEL_FLAT  0x78    /* data, base 0, 4 GiB */
#define SEL_S16   0x80    /* data (stack), base 0x30000, limit 0xffff, B=0 */
#define SEL_DD16  0x88    /* data, base 0x16000 (the data part), limit 0xffff */

#define UNREAL_ADDR 0x800000 /* 8 MiB: above 1 MiB, clear of the kernel */

#include "lib/check16.h" /* CHECK, CHECKW, CHECKB */
/* The dword variable var (in the data part, DS = DATA_SEG) against want. */
.macro CHECKM name, var, want:vararg
    movl D(\var), %eax
    CHECK "\name", \want
.endm
/* An expected exception resumes at label (exc_common); no exception so far. */
.macro EXPECT label
    movw $O(\label), D(exc_resume)
    movw $0xffff, D(exc_vec)
.endm

/* SAY string: prints it on COM1 from real mode (progress: when a group dies, the line
   shows which). */
.macro SAY str
    pushw %si
    movw $O(.Lsay\@), %si
    call rm_puts
    popw %si
    jmp .Lsaid\@
.Lsay\@: .asciz "\str"
.Lsaid\@:
.endm
/* GROUP fn: says its name, then calls it. */
.macro GROUP fn
    SAY " \fn"
    call \fn
.endm

/* ===================================================================================== */
    .section .text
    .code32
    .globl rm_run
/* void rm_run(void): the whole 16-bit part; returns in 32-bit protected mode. */
rm_run:
    pushal
    movl %esp, rm_esp32
    sidt rm_idt32
    ljmp $SEL_C16, $O(pm16_entry)
back32:
    movl $SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %fs
    movl %eax, %gs
    movl %eax, %ss
    movl rm_esp32, %esp
    lidt rm_idt32
    popal
    ret

    .section .data
rm_esp32: .long 0
rm_idt32: .word 0
    .long 0

/* ===================================================================================== */
    .section .rodata.realmode, "a"
    .code16
    .globl rm_base
rm_base:

/* 16-bit protected mode, on the way in: data segments real mode can live with (64 KiB,
   byte granular, writable), then PE off and a far jump to real mode. */
pm16_entry:
    movw $SEL_D16, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movl %cr0, %eax
    andl $~1, %eax
    movl %eax, %cr0
    ljmp $RM_SEG, $O(rm_entry)

rm_entry:
    movw $SS_SEG, %ax
    movw %ax, %ss
    movl $TOP_SP, %esp
    movw $DATA_SEG, %ax
    movw %ax, %ds
    movw $ES_SEG, %ax
    movw %ax, %es
    movw $FS_SEG, %ax
    movw %ax, %fs
    movw $GS_SEG, %ax
    movw %ax, %gs
    lidt D(ivt_desc)
    xorl %eax, %eax
    xorl %ebx, %ebx
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %edi, %edi
    xorl %ebp, %ebp
    movw %cs, %ax
    CHECKW "rm: CS after the far jump to real mode", RM_SEG
    movw %ss, %ax
    CHECKW "rm: SS loaded", SS_SEG
    sidt D(tmp0)
    movzwl D(tmp0), %eax
    CHECK "rm: SIDT limit", 0x3ff
    movl D(tmp0) + 2, %eax
    CHECK "rm: SIDT base", IVT_BASE
    movl %cr0, %eax
    andl $1, %eax
    CHECK "rm: CR0.PE clear", 0
    smsw %ax
    andw $1, %ax
    CHECKW "rm: SMSW: PE clear", 0

    SAY "realmode16:"
    GROUP t_arith
    GROUP t_stack
    GROUP t_near
    GROUP t_far
    GROUP t_int
    GROUP t_exc
    GROUP t_loop
    GROUP t_jcc
    GROUP t_strings
    GROUP t_segdefault
    GROUP t_segload
    GROUP t_misc
    GROUP t_flags
    GROUP t_muldiv
    GROUP t_io
    GROUP t_smc
    GROUP t_irq
    GROUP t_unreal
    GROUP t_pm16
    SAY " end\n"
    movw $1, D(rm_finished)
    jmp rm_exit

/* Back to 32-bit protected mode (C reports). */
rm_exit:
    cli
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $SEL_CODE, $back32

/* rm_puts: the string at CS:SI on COM1. */
rm_puts:
    pushw %ax
    pushw %dx
    pushw %si
1:  movb %cs:(%si), %al
    testb %al, %al
    jz 3f
    movb %al, %ah
    movw $0x3fd, %dx
2:  inb %dx, %al
    testb $0x20, %al
    jz 2b
    movb %ah, %al
    movw $0x3f8, %dx
    outb %al, %dx
    incw %si
    jmp 1b
3:  popw %si
    popw %dx
    popw %ax
    ret

/* rec: the CHECK record.  Stack: return IP, want (4), name (4); EAX = got. */
rec:
    pushf
    pushw %ds
    pushw %bx
    pushw %bp
    pushl %ecx
    movw %sp, %bp           /* bp+0 ecx, +4 bp, +6 bx, +8 ds, +10 flags, +12 ret, +14 want, +18 name */
    movw $DATA_SEG, %bx
    movw %bx, %ds
    movw D(recp), %bx
    cmpw $D(results_end), %bx
    jae 1f
    movl 18(%bp), %ecx
    movl %ecx, (%bx)
    movl 14(%bp), %ecx
    movl %ecx, 4(%bx)
    movl %eax, 8(%bx)
    addw $12, D(recp)
1:  popl %ecx
    popw %bp
    popw %bx
    popw %ds
    popf
    ret $8

/* ---- interrupt vectors: 0-31 each through a stub, the rest through vec_other ------- */
.macro VEC n
vec\n:
    pushw $\n
    jmp exc_common
.endm
    .altmacro
    .set i, 0
    .rept 32
    VEC %i
    .set i, i + 1
    .endr
    .noaltmacro
vec_other:
    pushw $0xff
    jmp exc_common

/* #DB (single step): counted and TF cleared in the frame, so nothing steps further. */
vec_db:
    incw %cs:O(db_count)
    pushw %bp
    movw %sp, %bp
    andw $~0x100, 6(%bp)
    popw %bp
    iret

/* Exceptions: the frame (vector, IP, CS, FLAGS; no error code in real mode) is kept in
   exc_*; an expected one resumes at exc_resume, anything else ends the real-mode part. */
exc_common:
    pushw %bp
    movw %sp, %bp           /* bp+2 vector, +4 IP, +6 CS, +8 FLAGS */
    pushw %ax
    pushf
    popw %ax
    movw %ax, %cs:O(exc_hflags)
    movw 2(%bp), %ax
    movw %ax, %cs:O(exc_vec)
    movw 4(%bp), %ax
    movw %ax, %cs:O(exc_ip)
    movw 6(%bp), %ax
    movw %ax, %cs:O(exc_cs)
    movw 8(%bp), %ax
    movw %ax, %cs:O(exc_flags)
    leaw 4(%bp), %ax
    movw %ax, %cs:O(exc_sp)
    incw %cs:O(exc_count)
    movw %cs:O(exc_resume), %ax
    testw %ax, %ax
    jz rm_unexpected
    movw %ax, 4(%bp)
    movw $RM_SEG, 6(%bp)
    movw $0, %cs:O(exc_resume)
    popw %ax
    popw %bp
    addw $2, %sp
    iret
rm_unexpected:
    movw $SS_SEG, %ax
    movw %ax, %ss
    movl $TOP_SP, %esp
    movw $DATA_SEG, %ax
    movw %ax, %ds
    movzwl D(exc_vec), %eax
    CHECK "rm: no unexpected exception (got = its vector)", 0xffffffff
    SAY " stopped by an exception\n"
    jmp rm_exit

/* INT 0x40: keeps what the CPU pushed and the flags the handler runs with; clears TF
   in the frame it returns through. */
rm_int40:
    pushf
    pushw %bp
    movw %sp, %bp           /* bp+2 handler flags, +4 IP, +6 CS, +8 FLAGS */
    pushw %ax
    pushw %ds
    movw $DATA_SEG, %ax
    movw %ax, %ds
    movw 2(%bp), %ax
    movw %ax, D(h_hflags)
    movw 4(%bp), %ax
    movw %ax, D(h_ip)
    movw 6(%bp), %ax
    movw %ax, D(h_cs)
    movw 8(%bp), %ax
    movw %ax, D(h_flags)
    leaw 4(%bp), %ax
    movw %ax, D(h_sp)
    incw D(h_count)
    andw $~0x100, 8(%bp)
    popw %ds
    popw %ax
    popw %bp
    popf
    iret

/* ---- 16-bit arithmetic and flags, 0x66 and 0x67 ------------------------------------ */
t_arith:
    movl $0x12347fff, %eax
    addw $1, %ax
    pushf
    popw %bx
    CHECK "add16: 0x7fff + 1, EAX upper half kept", 0x12348000
    movw %bx, %ax
    andw $0x8d5, %ax
    CHECKW "add16: OF SF AF PF set, ZF CF clear", 0x894
    xorl %eax, %eax
    subw $1, %ax
    pushf
    popw %bx
    CHECK "sub16: 0 - 1", 0xffff
    movw %bx, %ax
    andw $0x8d5, %ax
    CHECKW "sub16: SF AF PF CF", 0x95
    stc
    movw $0xfffe, %ax
    adcw $1, %ax
    pushf
    popw %bx
    CHECKW "adc16: 0xfffe + 1 + CF", 0
    movw %bx, %ax
    andw $0x8d5, %ax
    CHECKW "adc16: ZF AF PF CF", 0x55
    stc
    movw $0x8000, %ax
    sbbw $0, %ax
    pushf
    popw %bx
    CHECKW "sbb16: 0x8000 - 0 - CF", 0x7fff
    movw %bx, %ax
    andw $0x8d5, %ax
    CHECKW "sbb16: OF AF PF", 0x814
    stc
    movw $0xffff, %ax
    incw %ax
    pushf
    popw %bx
    CHECKW "inc16: wraps to 0", 0
    movw %bx, %ax
    andw $0x41, %ax
    CHECKW "inc16: ZF set, CF kept", 0x41
    movw $1, %ax
    negw %ax
    pushf
    popw %bx
    CHECKW "neg16", 0xffff
    movw %bx, %ax
    andw $1, %ax
    CHECKW "neg16: CF", 1
    movw $0x8001, %ax
    shlw $1, %ax
    pushf
    popw %bx
    CHECKW "shl16", 2
    movw %bx, %ax
    andw $0x801, %ax
    CHECKW "shl16: CF and OF", 0x801
    movw $0x8001, %ax
    rolw $4, %ax
    CHECKW "rol16", 0x0018
    movw $0x8000, %ax
    sarw $15, %ax
    CHECKW "sar16", 0xffff
    stc
    movw $0x0002, %ax
    rcrw $1, %ax
    CHECKW "rcr16 through CF", 0x8001
    movw $0xf0f0, %ax
    xorw $0xff00, %ax
    CHECKW "xor16", 0x0ff0
    /* 32-bit operands (0x66) */
    movl $0x12345678, %eax
    addl $0x11111111, %eax
    CHECK "addl (0x66)", 0x23456789
    movl $0x10000, %eax
    movl $0x10000, %ecx
    imull %ecx, %eax
    pushf
    popw %bx
    CHECK "imull 0x10000 * 0x10000 (0x66)", 0
    movw %bx, %ax
    andw $0x801, %ax
    CHECKW "imull: CF and OF on overflow", 0x801
    movl $-7, %eax
    movl $6, %ecx
    imull %ecx
    CHECK "imull one operand: EAX", 0xffffffd6
    movl %edx, %eax
    CHECK "imull one operand: EDX", 0xffffffff
    movl $0x80000000, %eax
    movl $4, %ecx
    mull %ecx
    CHECK "mull: EAX", 0
    movl %edx, %eax
    CHECK "mull: EDX", 2
    movl $1, %edx
    xorl %eax, %eax
    movl $0x10, %ecx
    divl %ecx
    CHECK "divl: EDX:EAX / 16", 0x10000000
    /* 32-bit addressing (0x67) and the mixes */
    xorl %esi, %esi
    movw $D(tbl32), %si
    movl $3, %ebx
    movl (%esi,%ebx,4), %eax
    CHECK "movl (%esi,%ebx,4) (0x66 0x67)", 0xddeeff00
    movl $1, %ebx
    movw 2(%esi,%ebx,2), %ax
    CHECKW "movw 2(%esi,%ebx,2) (0x67 alone)", 0x7788
    movl $2, %ebx
    movl D(tbl32)(,%ebx,4), %eax
    CHECK "movl disp32(,%ebx,4) (0x66 0x67)", 0x99aabbcc
    movw $D(tbl32), %bx
    movw $4, %si
    movl (%bx,%si), %eax
    CHECK "movl (%bx,%si) (0x66 alone)", 0x55667788
    movl $0x40, %esi
    movl $3, %ebx
    leal 0x12345(%esi,%ebx,8), %eax
    CHECK "leal with 32-bit addressing", 0x12345 + 0x40 + 24
    movw $0xfff8, %bx
    movw $0x10, %si
    leaw 0x10(%bx,%si), %ax
    CHECKW "leaw: 16-bit address wraps", 0x0018
    movw $0xfff0, %bx
    movw $0x20, %si
    movb (%bx,%si), %al
    CHECKB "(%bx,%si) wraps at 64 KiB: DS:0x10", 0xb0
    ret

/* ---- push and pop, 16 and 32-bit, SP wrap ------------------------------------------ */
t_stack:
    movl %esp, D(save_esp)
    movl $0xabcd0100, %esp
    pushw $0x1122
    pushl $0x33445566
    movl %esp, D(tmp0)
    movl %ss:0xfa, %eax
    movl %eax, D(tmp1)
    movzwl %ss:0xfe, %eax
    movl %eax, D(tmp2)
    popl %ecx
    popw %dx
    movl %esp, D(tmp3)
    movl $0xabcd0000, %esp
    movw $0x5a5a, %ax
    pushw %ax
    movl %esp, D(tmp4)
    movzwl %ss:0xfffe, %eax
    movl %eax, D(tmp5)
    popw %bx
    movl %esp, D(tmp6)
    movl $0xabcdfffe, %esp
    popw %bx
    movl %esp, D(tmp7)
    movl D(save_esp), %esp
    CHECKM "pushw+pushl: SP down 6, ESP upper half kept", tmp0, 0xabcd00fa
    CHECKM "pushl wrote SS:0xfa", tmp1, 0x33445566
    CHECKM "pushw wrote SS:0xfe", tmp2, 0x1122
    movl %ecx, %eax
    CHECK "popl", 0x33445566
    movw %dx, %ax
    CHECKW "popw", 0x1122
    CHECKM "pops: ESP back, upper half kept", tmp3, 0xabcd0100
    CHECKM "push with SP=0: SP=0xfffe, upper half kept", tmp4, 0xabcdfffe
    CHECKM "push with SP=0 wrote SS:0xfffe", tmp5, 0x5a5a
    CHECKM "pop at SP=0xfffe: SP wraps to 0", tmp6, 0xabcd0000
    CHECKM "pop at SP=0xfffe again", tmp7, 0xabcd0000
    movw %bx, %ax
    CHECKW "pop read SS:0xfffe", 0x5a5a
    /* immediates sign-extended */
    pushw $-2
    popw %ax
    CHECK "pushw $-2 (imm8)", 0xfffe
    pushl $-3
    popl %eax
    CHECK "pushl $-3 (imm8)", 0xfffffffd
    /* segment registers */
    pushw %es
    popw %fs
    movw %fs, %ax
    CHECKW "push es, pop fs", ES_SEG
    movw %sp, %bx
    pushl %ds
    movw %sp, %cx
    popl %fs
    subw %cx, %bx
    movw %bx, %ax
    CHECKW "pushl ds: 4 bytes", 4
    movw %fs, %ax
    CHECKW "popl fs", DATA_SEG
    movw $FS_SEG, %ax
    movw %ax, %fs
    pushw %cs
    movw %sp, %bp
    movw (%bp), %ax
    addw $2, %sp
    CHECKW "push cs", RM_SEG
    movw %sp, %si
    pushw %sp
    popw %ax
    subw %si, %ax
    CHECKW "push %sp pushes SP as it was before the push", 0
    movw %sp, %ax
    CHECKW "SP balanced", TOP_SP - 2
    ret

/* ---- near calls and returns ------------------------------------------------------- */
t_near:
    call nf16
nc1:
    CHECKM "call: pushed IP", tmp0, O(nc1)
    CHECKM "call: SP down 2 in the callee", tmp1, TOP_SP - 4
    calll nf32
nc2:
    CHECKM "calll (0x66): pushed EIP", tmp0, O(nc2)
    CHECKM "calll: SP down 4 in the callee", tmp1, TOP_SP - 6
    pushw $1
    pushw $2
    call nfret4
    movw %sp, %ax
    CHECKW "ret $4", TOP_SP - 2
    pushl $1
    calll nfretl4
    movw %sp, %ax
    CHECKW "retl $4", TOP_SP - 2
    movl $0, D(tmp0)
    movw $O(nf_ind), %bx
    call *%bx
    CHECKM "call *%bx", tmp0, 0x1111
    movl $0, D(tmp0)
    call *D(fptr16)
    CHECKM "call *mem16", tmp0, 0x1111
    movl $0, D(tmp0)
    movl $O(nf32), %eax
    calll *%eax
    CHECKM "calll *%eax", tmp1, TOP_SP - 6
    movw $O(nj1), %bx
    jmp *%bx
    movw $0xdead, %ax
nj1:
    movw $0x2222, %ax
    CHECKW "jmp *%bx", 0x2222
    movw $0xdead, %ax
    jmp *D(jptr16)
    movw $0xdead, %ax
nj2:
    CHECKW "jmp *mem16", 0x3333
    movw $2, %bx
    shlw $1, %bx
    jmp *D(jtab)(%bx)
jt0:
    movw $0x10, %ax
    jmp jt_done
jt1:
    movw $0x11, %ax
    jmp jt_done
jt2:
    movw $0x12, %ax
jt_done:
    CHECKW "jmp *jtab(%bx): entry 2", 0x12
    movw %sp, %ax
    CHECKW "SP balanced", TOP_SP - 2
    ret
nf16:
    movw %sp, %bx
    movzwl %ss:(%bx), %eax
    movl %eax, D(tmp0)
    movzwl %sp, %eax
    movl %eax, D(tmp1)
    ret
nf32:
    movw %sp, %bx
    movl %ss:(%bx), %eax
    movl %eax, D(tmp0)
    movzwl %sp, %eax
    movl %eax, D(tmp1)
    retl
nfret4:
    ret $4
nfretl4:
    retl $4
nf_ind:
    movl $0x1111, D(tmp0)
    ret
nj2_target:
    movw $0x3333, %ax
    jmp nj2

/* ---- far calls, returns and jumps, also to CS=0x0800 with the same code ------------ */
t_far:
    lcall $RM_SEG, $O(ff16)
fc1:
    CHECKM "lcall: pushed IP", tmp0, O(fc1)
    CHECKM "lcall: pushed CS", tmp1, RM_SEG
    CHECKM "lcall: SP down 4 in the callee", tmp2, TOP_SP - 6
    lcall $ALT_SEG, $O(ffalt) + ALT_DELTA
    CHECKM "lcall to 0x0800: CS", tmp0, ALT_SEG
    CHECKM "lcall to 0x0800: IP", tmp1, O(ffalt_ip) + ALT_DELTA
    CHECKM "lcall to 0x0800: code read through cs:", tmp2, 0x8c
    lcall $ALT2_SEG, $O(ffalt) + ALT2_DELTA
    CHECKM "lcall to 0x0fff (base 0xfff0): CS", tmp0, ALT2_SEG
    CHECKM "lcall to 0x0fff: IP", tmp1, O(ffalt_ip) + ALT2_DELTA
    /* The same IP under a CS one paragraph higher: other bytes, 16 further on the same
       page (a translation is not the one of the other CS base). */
    lcall $RM_SEG, $O(sameip)
    lcall $RM_SEG, $O(sameip)
    CHECKW "lcall: IP under CS=0x1000", 0x1111
    lcall $RM_SEG + 1, $O(sameip)
    CHECKW "lcall: the same IP under CS=0x1001: the bytes 16 further", 0x2222
    lcall $RM_SEG, $O(sameip)
    CHECKW "lcall: and under CS=0x1000 again", 0x1111
    lcalll $RM_SEG, $O(ff32)
fc3:
    CHECKM "lcalll (0x66): pushed EIP", tmp0, O(fc3)
    CHECKM "lcalll: pushed CS (low word)", tmp1, RM_SEG
    CHECKM "lcalll: SP down 8 in the callee", tmp2, TOP_SP - 10
    movl $0, D(tmp0)
    lcall *D(fptr_alt)
    CHECKM "lcall *m16:16 to 0x0800", tmp0, ALT_SEG
    movl $0, D(tmp2)
    lcalll *D(fptr32)
fc5:
    CHECKM "lcalll *m16:32: pushed EIP", tmp0, O(fc5)
    movl $0, D(tmp0)
    ljmp $ALT_SEG, $O(fj1) + ALT_DELTA
fj1_back:
    CHECKM "ljmp to 0x0800 and back", tmp0, ALT_SEG
    movl $0, D(tmp0)
    ljmp *D(fjptr)
fj2_back:
    CHECKM "ljmp *m16:16", tmp0, ALT_SEG
    movl $0, D(tmp0)
    ljmpl *D(fjptr32)
fj3_back:
    CHECKM "ljmpl *m16:32", tmp0, RM_SEG
    movw %cs, %ax
    CHECKW "CS back to 0x1000", RM_SEG
    movw %sp, %ax
    CHECKW "SP balanced", TOP_SP - 2
    ret
ff16:
    movw %sp, %bx
    movzwl %ss:(%bx), %eax
    movl %eax, D(tmp0)
    movzwl %ss:2(%bx), %eax
    movl %eax, D(tmp1)
    movzwl %sp, %eax
    movl %eax, D(tmp2)
    lret
ff32:
    movw %sp, %bx
    movl %ss:(%bx), %eax
    movl %eax, D(tmp0)
    movzwl %ss:4(%bx), %eax
    movl %eax, D(tmp1)
    movzwl %sp, %eax
    movl %eax, D(tmp2)
    lretl
    .balign 64
sameip:                     /* CS=0x1000 */
    movw $0x1111, %ax
    lret
    .balign 16
    movw $0x2222, %ax       /* sameip under CS=0x1001 */
    lret
/* Runs as 0x0800:O(ffalt)+0x8000 (position independent: relative branches only). */
ffalt:
    movw %cs, %ax           /* 0x8c: read back through cs: below */
    movzwl %ax, %eax
    movl %eax, D(tmp0)
    call ffalt_ip
ffalt_ip:
    popw %ax
    movzwl %ax, %eax
    movl %eax, D(tmp1)
    jmp 1f
    movl $0, D(tmp1)
1:  movzbl %cs:O(ffalt) + ALT_DELTA, %eax
    movl %eax, D(tmp2)
    lret
fj1:
    movw %cs, %ax
    movzwl %ax, %eax
    movl %eax, D(tmp0)
    ljmp $RM_SEG, $O(fj1_back)
fj2:
    movw %cs, %ax
    movzwl %ax, %eax
    movl %eax, D(tmp0)
    ljmp *D(fjback2)
fj3:
    movw %cs, %ax
    movzwl %ax, %eax
    movl %eax, D(tmp0)
    jmp fj3_back

/* ---- INT n, IRET, IRETL ------------------------------------------------------------ */
t_int:
    movw $0, D(h_count)
    movw $0, %cs:O(db_count)
    pushf
    popw %ax
    orw $0x0300, %ax        /* IF and TF */
    pushw %ax
    popf
    int $0x40
int1_ret:
    pushf
    popw %ax
    cli
    andw $0x0300, %ax
    CHECKW "int 0x40 returned with IF restored, TF cleared by the handler", 0x200
    movw D(h_count), %ax
    CHECKW "int 0x40: the IVT handler ran once", 1
    movw D(h_ip), %ax
    CHECKW "int 0x40: pushed IP follows the INT", O(int1_ret)
    movw D(h_cs), %ax
    CHECKW "int 0x40: pushed CS", RM_SEG
    movw D(h_flags), %ax
    andw $0x0300, %ax
    CHECKW "int 0x40: pushed FLAGS have IF and TF", 0x300
    movw D(h_hflags), %ax
    andw $0x0300, %ax
    CHECKW "int 0x40: handler runs with IF and TF clear", 0
    movw D(h_sp), %ax
    CHECKW "int 0x40: 6-byte frame", TOP_SP - 2 - 6
    /* IRET from a frame built by hand */
    pushw $0x00c3           /* SF ZF CF and the reserved bit 1 */
    pushw %cs
    pushw $O(ir1)
    iret
    movw $0xdead, %ax
ir1:
    pushf
    popw %ax
    andw $0x8d5, %ax
    CHECKW "iret: FLAGS from the frame", 0xc1
    movw %sp, %ax
    CHECKW "iret: SP up 6", TOP_SP - 2
    pushl $0x00000847       /* OF ZF PF CF, bit 1 */
    pushl $RM_SEG
    pushl $O(ir2)
    iretl
    movw $0xdead, %ax
ir2:
    pushf
    popw %ax
    andw $0x8d5, %ax
    CHECKW "iretl (0x66): FLAGS from the 32-bit frame", 0x845
    movw %sp, %ax
    CHECKW "iretl: SP up 12", TOP_SP - 2
    pushl $0x00000002
    pushl $ALT_SEG
    pushl $O(ir3) + ALT_DELTA
    iretl
ir3:
    movw %cs, %ax
    ljmp $RM_SEG, $O(ir3_back)
ir3_back:
    CHECKW "iretl to CS=0x0800", ALT_SEG
    xorw %ax, %ax
    int $0x40
    movw D(h_sp), %ax
    CHECKW "int 0x40 with IF clear: same frame", TOP_SP - 2 - 6
    movw D(h_flags), %ax
    andw $0x0300, %ax
    CHECKW "int 0x40 with IF clear: pushed IF clear", 0
    ret

/* ---- exceptions through the IVT ---------------------------------------------------- */
t_exc:
    EXPECT i3_after
    int3
i3_after:
    movw D(exc_vec), %ax
    CHECKW "int3: vector 3", 3
    movw D(exc_ip), %ax
    CHECKW "int3: IP after the int3", O(i3_after)
    movw D(exc_cs), %ax
    CHECKW "int3: CS", RM_SEG
    movw D(exc_sp), %ax
    CHECKW "int3: 6-byte frame", TOP_SP - 2 - 6
    movw D(exc_hflags), %ax
    andw $0x300, %ax
    CHECKW "int3: handler runs with IF and TF clear", 0
    EXPECT into_after
    movw $0x7fff, %ax
    addw $1, %ax
    into
into_after:
    movw D(exc_vec), %ax
    CHECKW "into with OF: vector 4", 4
    movw D(exc_ip), %ax
    CHECKW "into: IP after the into", O(into_after)
    movw D(exc_count), %bx
    xorw %ax, %ax
    into
    movw D(exc_count), %ax
    subw %bx, %ax
    CHECKW "into with OF clear: nothing", 0
    movw $0, D(exc_resume)
    EXPECT de_after
    movw $1, %ax
    xorw %dx, %dx
    xorw %bx, %bx
de_insn:
    divw %bx
de_after:
    movw D(exc_vec), %ax
    CHECKW "div16 by 0: #DE (vector 0)", 0
    movw D(exc_ip), %ax
    CHECKW "#DE: pushed IP is the div", O(de_insn)
    movw D(exc_sp), %ax
    CHECKW "#DE: 6-byte frame, no error code", TOP_SP - 2 - 6
    EXPECT de2_after
    movw $0x400, %ax
    movb $2, %bl
de2_insn:
    divb %bl
de2_after:
    movw D(exc_vec), %ax
    CHECKW "divb quotient overflow: #DE", 0
    movw D(exc_ip), %ax
    CHECKW "divb #DE: pushed IP", O(de2_insn)
    EXPECT de3_after
    movw $0x4000, %dx       /* 0x40000000 / 2: too big for 16 bits (not 0x80000000 / -1: */
    xorw %ax, %ax           /* QEMU 7.2 TCG divides that on the host and dies of SIGFPE) */
    movw $2, %bx
    idivw %bx
de3_after:
    movw D(exc_vec), %ax
    CHECKW "idiv16 overflow: #DE", 0
    EXPECT ud_after
ud_insn:
    ud2
ud_after:
    movw D(exc_vec), %ax
    CHECKW "ud2: #UD (vector 6)", 6
    movw D(exc_ip), %ax
    CHECKW "#UD: pushed IP is the ud2", O(ud_insn)
    movw D(exc_sp), %ax
    CHECKW "#UD: 6-byte frame", TOP_SP - 2 - 6
    movw $0, D(exc_resume)
    /* The IDTR limit: INT n needs 4 * n + 3 <= limit, else #GP (no error code here) */
    lidt D(ivt_small)       /* limit 0x103: vectors 0-0x40 */
    movw $0, D(h_count)
    int $0x40
    movw D(h_count), %ax
    CHECKW "IVT limit 0x103: int 0x40 (4 * 0x40 + 3 = 0x103) delivered", 1
    EXPECT gp1_after
gp1_insn:
    int $0x41
gp1_after:
    lidt D(ivt_desc)
    movw D(exc_vec), %ax
    CHECKW "IVT limit 0x103: int 0x41 raises #GP (vector 13)", 13
    movw D(exc_ip), %ax
    CHECKW "#GP: pushed IP is the int", O(gp1_insn)
    movw D(exc_sp), %ax
    CHECKW "#GP: 6-byte frame, no error code", TOP_SP - 2 - 6
    lidt D(ivt_small2)      /* limit 0x102: 0x40 is out by one byte */
    EXPECT gp2_after
    int $0x40
gp2_after:
    lidt D(ivt_desc)
    movw D(exc_vec), %ax
    CHECKW "IVT limit 0x102: int 0x40 raises #GP", 13
    movw $0, D(exc_resume)
    lidt D(ivt_shifted)     /* base 0x20004: vector n uses entry n + 1 */
    movw $0, D(h_count)
    int $0x3f
    lidt D(ivt_desc)
    movw D(h_count), %ax
    CHECKW "IVT at base 0x20004: int 0x3f reaches entry 0x40", 1
    movw %sp, %ax
    CHECKW "SP balanced", TOP_SP - 2
    ret

/* ---- LOOP, LOOPE, LOOPNE, JCXZ with CX; with 0x67, ECX ----------------------------- */
t_loop:
    movl $0x12340003, %ecx
    xorw %ax, %ax
1:  incw %ax
    loop 1b
    CHECKW "loop: 3 rounds with CX=3", 3
    movl %ecx, %eax
    CHECK "loop: ECX upper half kept", 0x12340000
    movw $5, %cx
    xorw %dx, %dx
2:  incw %dx
    cmpw $3, %dx
    loopne 2b
    movw %dx, %ax
    CHECKW "loopne: stops when equal", 3
    movw %cx, %ax
    CHECKW "loopne: CX left", 2
    movw $5, %cx
    xorw %dx, %dx
    xorw %ax, %ax
3:  incw %dx
    testw %ax, %ax
    loope 3b
    movw %dx, %ax
    CHECKW "loope: runs out CX", 5
    movl $0x00010000, %ecx
    movw $1, %ax
    jcxz 4f
    movw $0, %ax
4:  CHECKW "jcxz: CX=0 with ECX=0x10000 jumps", 1
    movw $1, %ax
    jecxz 5f
    movw $0, %ax
5:  CHECKW "jecxz (0x67): ECX=0x10000 does not jump", 0
    movl $0x00010002, %ecx
    xorl %ebx, %ebx
6:  incl %ebx
    addr32 loop 6b
    movl %ebx, %eax
    CHECK "addr32 loop: counts ECX", 0x10002
    movl %ecx, %eax
    CHECK "addr32 loop: ECX 0", 0
    movl $0x00010003, %ecx
    movw $0xffff, %ax
    testw %ax, %ax
7:  addr32 loopne 7b
    movl %ecx, %eax
    CHECK "addr32 loopne with ZF clear: ECX to 0", 0
    ret

/* ---- Jcc rel8 and rel16 ------------------------------------------------------------ */
t_jcc:
    xorw %bx, %bx
    movw $5, %ax
    cmpw $3, %ax
    jle 1f
    orw $1, %bx
1:  jg 2f
    orw $2, %bx
2:  movw $-1, %ax
    cmpw $1, %ax
    jl 3f
    orw $4, %bx
3:  jb 4f
    orw $8, %bx
4:  cmpw $-1, %ax
    je 5f                   /* rel16: over 200 bytes */
    orw $0x10, %bx
    .fill 200, 1, 0x90
5:  jne 6f                  /* rel16 not taken */
    orw $0x20, %bx
    jmp 8f
    .fill 200, 1, 0x90
6:  orw $0x40, %bx
    jmp 9f
7:  orw $0x80, %bx          /* reached by a backward rel16 */
    jmp 9f
    .fill 200, 1, 0x90
8:  testw %ax, %ax
    js 7b
    orw $0x100, %bx
9:  movw %bx, %ax
    CHECKW "jcc rel8 and rel16, taken and not, both directions", 0x1 | 0x8 | 0x20 | 0x80
    ret

/* ---- string instructions with 16-bit addressing ------------------------------------ */
t_strings:
    cld
    movw $0x100, %di
    movl $0x55550020, %ecx
    movw $0xbeef, %ax
    rep stosw
    movl %ecx, %eax
    CHECK "rep stosw: CX to 0, ECX upper half kept", 0x55550000
    movw %di, %ax
    CHECKW "rep stosw: DI", 0x140
    movw %es:0x13e, %ax
    CHECKW "rep stosw: last word", 0xbeef
    movw $D(str_src), %si
    movw $0x100, %di
    movw $5, %cx
    rep movsb
    movw %si, %ax
    CHECKW "rep movsb: SI", D(str_src) + 5
    movw %di, %ax
    CHECKW "rep movsb: DI", 0x105
    movl %es:0x100, %eax
    CHECK "rep movsb: bytes in ES", 0x33323130
    movw %es:0x104, %ax
    CHECKW "rep movsb: 5 bytes, no more", 0xbe34
    movw $D(str_src), %si
    movw $0x110, %di
    movw $3, %cx
    rep movsw
    movw %si, %ax
    CHECKW "rep movsw: SI", D(str_src) + 6
    movl %es:0x112, %eax
    CHECK "rep movsw: words", 0x35343332
    movw $D(str_src), %si
    movw $0x120, %di
    movw $2, %cx
    rep movsl
    movw %di, %ax
    CHECKW "rep movsl (0x66): DI", 0x128
    movl %es:0x124, %eax
    CHECK "rep movsl: dwords", 0x37363534
    std
    movw $D(str_src) + 15, %si
    movw $0x13f, %di
    movw $4, %cx
    rep movsb
    cld
    movl %es:0x13c, %eax
    CHECK "std; rep movsb: backwards", 0x46454443
    movw %si, %ax
    CHECKW "std; rep movsb: SI", D(str_src) + 11
    movw %di, %ax
    CHECKW "std; rep movsb: DI", 0x13b
    movb %es:0x13b, %al
    CHECKB "std; rep movsb: 4 bytes, no more", 0xbe
    std
    movw $D(str_src) + 14, %si
    movw $0x130, %di
    movsw
    cld
    movw %es:0x130, %ax
    CHECKW "std; movsw", 0x4645
    movw %si, %ax
    CHECKW "std; movsw: SI down 2", D(str_src) + 12
    /* CMPS and SCAS: ES = DS for these */
    pushw %es
    pushw %ds
    popw %es
    movw $D(str_src), %si
    movw $D(str_cmp), %di
    movw $10, %cx
    repe cmpsb
    pushf
    popw %bx
    movw %cx, %ax
    CHECKW "repe cmpsb: CX after the first difference", 4
    movw %si, %ax
    CHECKW "repe cmpsb: SI", D(str_src) + 6
    movw %di, %ax
    CHECKW "repe cmpsb: DI", D(str_cmp) + 6
    movw %bx, %ax
    andw $0x40, %ax
    CHECKW "repe cmpsb: ZF clear", 0
    movw $D(str_src), %di
    movw $16, %cx
    movb $'7', %al
    repne scasb
    pushf
    popw %bx
    movw %di, %ax
    CHECKW "repne scasb: DI after the match", D(str_src) + 8
    movw %cx, %ax
    CHECKW "repne scasb: CX", 8
    movw %bx, %ax
    andw $0x40, %ax
    CHECKW "repne scasb: ZF set", 0x40
    std
    movw $D(str_src) + 15, %di
    movw $16, %cx
    movb $'7', %al
    repne scasb
    cld
    movw %di, %ax
    CHECKW "std; repne scasb: DI below the match", D(str_src) + 6
    movw %cx, %ax
    CHECKW "std; repne scasb: CX", 7
    std
    movw $D(str_src) + 9, %si
    movw $D(str_cmp) + 9, %di
    movw $8, %cx
    repe cmpsb
    cld
    movw %cx, %ax
    CHECKW "std; repe cmpsb: CX after the difference at 5", 3
    popw %es
    movw $D(str_src) + 2, %si
    lodsw
    CHECKW "lodsw", 0x3332
    movw %si, %ax
    CHECKW "lodsw: SI up 2", D(str_src) + 4
    std
    lodsw
    cld
    CHECKW "std; lodsw", 0x3534
    movw %si, %ax
    CHECKW "std; lodsw: SI down 2", D(str_src) + 2
    /* segment override on the source */
    movb $0x5f, %fs:0x10
    movw $0x10, %si
    movw $0x150, %di
    movsb %fs:(%si), %es:(%di)
    movb %es:0x150, %al
    CHECKB "movsb fs:(si) -> es:(di)", 0x5f
    /* SI wraps at 64 KiB: SS:0xffff then SS:0, not linear SS base + 0x10000 */
    movb $0xa1, %ss:0xffff
    movb $0xa2, %ss:0
    movb $0xa3, %es:0       /* = linear 0x30000 + 0x10000 */
    movw $0xffff, %si
    movw $0x160, %di
    movw $2, %cx
    rep movsb %ss:(%si), %es:(%di)
    movw %es:0x160, %ax
    CHECKW "rep movsb ss:(si) with SI=0xffff: SS:0xffff then SS:0", 0xa2a1
    movw %si, %ax
    CHECKW "rep movsb: SI wrapped to 1", 1
    /* DI wraps: ES:0xffff then ES:0, FS:0 (linear ES base + 0x10000) untouched */
    movb $0x5a, %fs:0
    movw $0xffff, %di
    movw $2, %cx
    movb $0xc7, %al
    rep stosb
    movb %es:0xffff, %al
    movb %es:0, %ah
    CHECKW "rep stosb with DI=0xffff: ES:0xffff and ES:0", 0xc7c7
    movb %fs:0, %al
    CHECKB "rep stosb: nothing at ES base + 0x10000", 0x5a
    movw %di, %ax
    CHECKW "rep stosb: DI wrapped to 1", 1
    movl $0x77770000, %esi
    std
    lodsb
    cld
    CHECKB "std; lodsb at SI=0: DS:0", 0xa0
    movl %esi, %eax
    CHECK "std; lodsb: SI wraps to 0xffff, ESI upper half kept", 0x7777ffff
    /* 0x67: ESI, EDI, ECX */
    movl $D(str_src), %esi
    movl $0x170, %edi
    movl $3, %ecx
    addr32 rep movsb
    movl %edi, %eax
    CHECK "addr32 rep movsb: EDI", 0x173
    movl %ecx, %eax
    CHECK "addr32 rep movsb: ECX", 0
    movw %es:0x171, %ax
    CHECKW "addr32 rep movsb: bytes", 0x3231
    movl $0x00010000, %ecx
    movw $0x180, %di
    rep stosb
    movw %di, %ax
    CHECKW "rep stosb with CX=0, ECX=0x10000: nothing", 0x180
    ret

/* ---- default segments and overrides ------------------------------------------------ */
t_segdefault:
    movb $0xaa, %ss:0x40
    movb $0xbb, 0x40
    movb $0xcc, %es:0x40
    movb $0xdd, %fs:0x40
    movb $0xee, %gs:0x40
    movw $0x30, %bp
    movw $0x10, %si
    movb (%bp,%si), %al
    CHECKB "(%bp,%si) reads SS", 0xaa
    movw $0x10, %di
    movb (%bp,%di), %al
    CHECKB "(%bp,%di) reads SS", 0xaa
    xorw %bp, %bp
    movb 0x40(%bp), %al
    CHECKB "0x40(%bp) reads SS", 0xaa
    movw $0x30, %bx
    movb (%bx,%si), %al
    CHECKB "(%bx,%si) reads DS", 0xbb
    movw $0x30, %bp
    movb %ds:(%bp,%si), %al
    CHECKB "ds:(%bp,%si)", 0xbb
    movb %es:(%bx,%si), %al
    CHECKB "es:(%bx,%si)", 0xcc
    movb %fs:(%bx,%si), %al
    CHECKB "fs:(%bx,%si)", 0xdd
    movb %gs:(%bx,%si), %al
    CHECKB "gs:(%bx,%si)", 0xee
    movb %cs:O(cs_const), %al
    CHECKB "cs:moffs", 0x5c
    movl $0x40, %ebp
    movb (%ebp), %al
    CHECKB "(%ebp) (0x67) reads SS", 0xaa
    movl $0x30, %ebx
    movb 0x10(%ebx), %al
    CHECKB "0x10(%ebx) (0x67) reads DS", 0xbb
    movl $0x30, %ebp
    movl $0x10, %ecx
    movb (%ebp,%ecx), %al
    CHECKB "(%ebp,%ecx) reads SS", 0xaa
    movb (%ecx,%ebp), %al
    CHECKB "(%ecx,%ebp) reads DS (base ECX)", 0xbb
    xorl %ebp, %ebp
    ret

/* ---- LDS LES LFS LGS LSS, MOV to and from segment registers ------------------------ */
t_segload:
    lesw D(fp_fs), %bx
    movb %es:(%bx), %al
    CHECKB "les: ES:BX from memory", 0xdd
    movw %es, %ax
    CHECKW "les: ES", FS_SEG
    movw %bx, %ax
    CHECKW "les: BX", 0x40
    lfsw D(fp_gs), %si
    movb %fs:(%si), %al
    CHECKB "lfs", 0xee
    lgsw D(fp_es), %di
    movb %gs:(%di), %al
    CHECKB "lgs", 0xcc
    ldsw D(fp_ss), %si
    movb (%si), %al
    movw $DATA_SEG, %bx
    movw %bx, %ds
    CHECKB "lds", 0xaa
    movw $ES_SEG, %ax
    movw %ax, %es
    movw $FS_SEG, %ax
    movw %ax, %fs
    movw $GS_SEG, %ax
    movw %ax, %gs
    lssw D(fp_stack), %sp   /* 0x3001:0xffd0 = linear 0x3ffe0, below our frame */
    pushw $0x7117
    movw %ss, %ax
    movzwl %ax, %eax
    movl %eax, D(tmp2)
    popw %ax
    lssw D(fp_stack_back), %sp
    movzwl %ss:TOP_SP - 0x12, %eax
    CHECK "lss: a push through 0x3001:0xffd0 lands at 0x3000:0xffde", 0x7117
    CHECKM "lss: SS", tmp2, SS_SEG + 1
    movw %sp, %ax
    CHECKW "lss back", TOP_SP - 2
    lesl D(fp32), %ebx
    movl %ebx, %eax
    CHECK "lesl (0x66): EBX", 0x00010040
    movw %es, %ax
    CHECKW "lesl: ES", GS_SEG
    movw $ES_SEG, %ax
    movw %ax, %es
    /* mov %ax,%ds: base = 16 * AX */
    movw $DATA_SEG + 1, %ax
    movw %ax, %ds
    movb 0, %al
    movw $DATA_SEG, %bx
    movw %bx, %ds
    CHECKB "mov %ax,%ds with 0x1601: DS:0 is linear 0x16010", 0xb0
    movw %ds, %ax
    CHECKW "mov %ds,%ax", DATA_SEG
    movw %fs, %ax
    CHECKW "mov %fs,%ax", FS_SEG
    movw %gs, %ax
    CHECKW "mov %gs,%ax", GS_SEG
    movw %es, %cx
    movw %cx, %ax
    CHECKW "mov %es,%cx", ES_SEG
    ret

/* ---- XLAT, ENTER/LEAVE, PUSHA/POPA, CBW..., MOVZX/MOVSX, BSWAP, AAD/AAM, XCHG,
        CMPXCHG, XADD, BT*, SHLD/SHRD -------------------------------------------------- */
t_misc:
    movl $0x12340003, %eax
    movw $D(xtab), %bx
    xlat
    CHECK "xlat: AL from DS:BX+AL, upper bytes kept", 0x12340053
    movw $0x40, %bx
    xorw %ax, %ax
    xlat %es:(%bx)
    CHECKB "xlat es:", 0xcc
    /* ENTER and LEAVE: level 0 and 1, 16 and 32-bit operand size, 16-bit stack */
    xorl %ebp, %ebp
    movw $0xabcd, %bp
    enterw $4, $0
    movw %bp, %ax
    CHECKW "enter $4,$0: BP = SP after the push", TOP_SP - 4
    movw %sp, %ax
    CHECKW "enter $4,$0: SP", TOP_SP - 8
    movw (%bp), %ax
    CHECKW "enter: old BP pushed", 0xabcd
    leavew
    movw %bp, %ax
    CHECKW "leave: BP back", 0xabcd
    movw %sp, %ax
    CHECKW "leave: SP back", TOP_SP - 2
    enterw $4, $1
    movw %bp, %ax
    CHECKW "enter $4,$1: BP", TOP_SP - 4
    movw %sp, %ax
    CHECKW "enter $4,$1: SP", TOP_SP - 10
    movw -2(%bp), %ax
    CHECKW "enter $4,$1: frame pointer pushed", TOP_SP - 4
    leavew
    movl $0x1234abcd, %ebp
    enterl $8, $0
    movw %bp, %ax
    CHECKW "enterl $8,$0 (0x66): BP", TOP_SP - 6
    movw %sp, %ax
    CHECKW "enterl $8,$0: SP", TOP_SP - 14
    movl (%bp), %eax
    CHECK "enterl: old EBP pushed whole", 0x1234abcd
    leavel
    movl %ebp, %eax
    CHECK "leavel: EBP back", 0x1234abcd
    movw %sp, %ax
    CHECKW "leavel: SP back", TOP_SP - 2
    enterl $8, $1
    movw %sp, %ax
    CHECKW "enterl $8,$1: SP", TOP_SP - 18
    movl -4(%bp), %eax
    CHECK "enterl $8,$1: frame pointer pushed (4 bytes)", TOP_SP - 6
    leavel
    xorl %ebp, %ebp
    /* PUSHA and POPA */
    movw $1, %ax
    movw $2, %cx
    movw $3, %dx
    movw $4, %bx
    movw $5, %bp
    movw $6, %si
    movw $7, %di
    pusha
    movw %sp, %bp
    movw 6(%bp), %ax
    CHECKW "pusha: pushed SP is the one before", TOP_SP - 2
    movw (%bp), %ax
    CHECKW "pusha: DI last", 7
    movw 14(%bp), %ax
    CHECKW "pusha: AX first", 1
    movw $0x1111, 6(%bp)
    xorw %ax, %ax
    xorw %cx, %cx
    xorw %dx, %dx
    xorw %bx, %bx
    xorw %si, %si
    xorw %di, %di
    popa
    addw %cx, %ax
    addw %dx, %ax
    addw %bx, %ax
    addw %bp, %ax
    addw %si, %ax
    addw %di, %ax
    CHECKW "popa: registers back", 28
    movw %sp, %ax
    CHECKW "popa: SP not from the stack", TOP_SP - 2
    movl $0x11111111, %eax
    movl $0x22222222, %ecx
    pushal
    movw %sp, %bp
    movl 12(%bp), %eax
    CHECK "pushal: pushed ESP", TOP_SP - 2
    movl 24(%bp), %eax
    CHECK "pushal: ECX", 0x22222222
    xorl %eax, %eax
    xorl %ecx, %ecx
    popal
    CHECK "popal: EAX", 0x11111111
    movw %sp, %ax
    CHECKW "popal: SP up 32", TOP_SP - 2
    xorl %ebp, %ebp
    /* CBW CWD CWDE CDQ */
    movl $0x12340080, %eax
    cbtw
    CHECK "cbw, EAX upper half kept", 0x1234ff80
    movl $0x8000, %eax
    movl $0x55550000, %edx
    cwtd
    movl %edx, %eax
    CHECK "cwd: DX, EDX upper half kept", 0x5555ffff
    movl $0x8000, %eax
    cwtl
    CHECK "cwde (0x66)", 0xffff8000
    movl $0x80000000, %eax
    cltd
    movl %edx, %eax
    CHECK "cdq (0x66)", 0xffffffff
    /* MOVZX MOVSX */
    movl $0x12345678, %eax
    movzbw D(pat), %ax
    CHECK "movzbw", 0x123400a0
    movsbw D(pat), %ax
    CHECKW "movsbw", 0xffa0
    movsbl D(pat), %eax
    CHECK "movsbl", 0xffffffa0
    movzwl D(tbl32), %eax
    CHECK "movzwl", 0x3344
    movswl D(tbl32) + 8, %eax
    CHECK "movswl", 0xffffbbcc
    movl $0x11223344, %eax
    bswap %eax
    CHECK "bswap", 0x44332211
    movw $0x0307, %ax
    aad
    CHECKW "aad", 0x0025
    aam
    CHECKW "aam", 0x0307
    movw $0x0025, %ax
    aam $16
    CHECKW "aam $16", 0x0205
    aad $16
    CHECKW "aad $16", 0x0025
    /* XCHG CMPXCHG XADD */
    movw $1, %ax
    movw $2, %bx
    xchgw %ax, %bx
    shlw $4, %ax
    orw %bx, %ax
    CHECKW "xchg ax,bx", 0x21
    movw $0x4444, D(w0)
    movw $0x7777, %ax
    xchgw %ax, D(w0)
    CHECKW "xchg ax,mem: AX", 0x4444
    movw D(w0), %ax
    CHECKW "xchg ax,mem: mem", 0x7777
    movw $5, D(w0)
    movw $5, %ax
    movw $9, %bx
    cmpxchgw %bx, D(w0)
    pushf
    popw %cx
    movw D(w0), %ax
    CHECKW "cmpxchg16 equal: mem = new", 9
    movw %cx, %ax
    andw $0x40, %ax
    CHECKW "cmpxchg16 equal: ZF", 0x40
    movw $5, %ax
    cmpxchgw %bx, D(w0)
    pushf
    popw %cx
    CHECKW "cmpxchg16 unequal: AX = mem", 9
    movw %cx, %ax
    andw $0x40, %ax
    CHECKW "cmpxchg16 unequal: ZF clear", 0
    movl $0x12345678, D(tmp0)
    movl $0x12345678, %eax
    movl $0xcafe, %ebx
    cmpxchgl %ebx, D(tmp0)
    CHECKM "cmpxchgl (0x66)", tmp0, 0xcafe
    movw $10, D(w0)
    movw $3, %ax
    xaddw %ax, D(w0)
    CHECKW "xadd16: AX = old", 10
    movw D(w0), %ax
    CHECKW "xadd16: mem = sum", 13
    /* BT BTS BTR BTC with register offsets beyond the word, and negative */
    movw $17, %cx
    btsw %cx, D(bits)
    sbbw %ax, %ax
    CHECKW "bts 17: CF was clear", 0
    movb D(bits) + 2, %al
    CHECKB "bts 17: byte 2 bit 1", 0x02
    btw %cx, D(bits)
    sbbw %ax, %ax
    CHECKW "bt 17: CF set", 0xffff
    movw $-1, %cx
    btw %cx, D(bits)
    sbbw %ax, %ax
    CHECKW "bt -1: bit 7 of the byte before", 0xffff
    movw $-9, %cx
    btsw %cx, D(bits)
    movb D(bits) - 2, %al
    CHECKB "bts -9: byte -2 bit 7", 0x80
    movl $35, %ecx
    btsl %ecx, D(bits)
    movb D(bits) + 4, %al
    CHECKB "btsl 35 (0x66): byte 4 bit 3", 0x08
    movw $17, %cx
    btrw %cx, D(bits)
    movb D(bits) + 2, %al
    CHECKB "btr 17", 0
    btcw %cx, D(bits)
    movb D(bits) + 2, %al
    CHECKB "btc 17", 0x02
    /* The register offset's displacement is added to the 16-bit offset, which wraps at
       64 KiB: ES:0xfffe + 4 is ES:0x0002, not the word at linear ES base + 0x10002
       (FS:0x0002 here); + 8 for a dword, ES:0x0006; -1 word from ES:0 is ES:0xfffe. */
    pushw %bx
    movw $0, %es:2
    movw $0, %es:6
    movw $0, %es:0xfffe
    movw $0, %fs:2
    movw $0, %fs:6
    movw $0xfffe, %bx
    movw $0x21, %ax
    btsw %ax, %es:(%bx)
    movw %es:2, %ax
    CHECKW "btsw 0x21 at ES:0xfffe: ES:0x0002 bit 1 (the offset wraps)", 0x0002
    movw %fs:2, %ax
    CHECKW "btsw: nothing at ES base + 0x10002", 0
    movl $0x42, %eax
    btsl %eax, %es:(%bx)
    movw %es:6, %ax
    CHECKW "btsl 0x42 at ES:0xfffe: ES:0x0006 bit 2", 0x0004
    movw %fs:6, %ax
    CHECKW "btsl: nothing at ES base + 0x10006", 0
    movw $0x21, %ax
    btw %ax, %es:(%bx)
    sbbw %ax, %ax
    CHECKW "btw 0x21 at ES:0xfffe reads ES:0x0002", 0xffff
    xorw %bx, %bx
    movw $-13, %ax          /* word -1, bit 3 */
    btcw %ax, %es:(%bx)
    movw %es:0xfffe, %ax
    CHECKW "btcw -13 at ES:0: ES:0xfffe bit 3", 0x0008
    popw %bx
    movw $0x1234, %ax
    movw $19, %cx
    btw %cx, %ax            /* register: offset mod 16 = 3 */
    sbbw %ax, %ax
    CHECKW "bt reg,reg: offset mod 16", 0
    /* SHLD SHRD */
    movw $0x1234, %ax
    movw $0x5678, %bx
    shldw $4, %bx, %ax
    CHECKW "shld16", 0x2345
    movw $0x1234, %ax
    shrdw $4, %bx, %ax
    CHECKW "shrd16", 0x8123
    movl $0x12345678, %eax
    movl $0x9abcdef0, %ebx
    movb $8, %cl
    shldl %cl, %ebx, %eax
    CHECK "shldl cl (0x66)", 0x3456789a
    movw %sp, %ax
    CHECKW "SP balanced", TOP_SP - 2
    ret

/* ---- PUSHF/POPF 16 and 32, IF DF ID, LAHF/SAHF, CLI/STI ---------------------------- */
t_flags:
    sti
    std
    pushf
    popw %ax
    cli
    cld
    andw $0x600, %ax
    CHECKW "sti; std; pushf: IF DF", 0x600
    pushw $0x0602
    popf
    pushf
    popw %ax
    pushw $0x0002
    popf
    andw $0x600, %ax
    CHECKW "popf: IF DF set", 0x600
    pushf
    popw %ax
    andw $0x600, %ax
    CHECKW "popf: IF DF clear", 0
    movw %sp, %si
    pushfl
    movw %sp, %di
    popl %ecx
    subw %di, %si
    movw %si, %ax
    CHECKW "pushfl (0x66): 4 bytes", 4
    pushl $0x00000602
    popfl
    pushfl
    popl %eax
    pushl $0x00000002
    popfl
    andl $0x600, %eax
    CHECK "popfl: IF DF", 0x600
    pushfl
    popl %eax
    movl %eax, %ecx
    xorl $0x200000, %eax
    pushl %eax
    popfl
    pushfl
    popl %eax
    xorl %ecx, %eax
    andl $0x200000, %eax
    CHECK "popfl: ID toggles", 0x200000
    pushl %ecx
    popfl
    pushl $0x00200002
    popfl
    pushw $0x0002
    popf
    pushfl
    popl %eax
    pushl $0x00000002
    popfl
    andl $0x200000, %eax
    CHECK "popf (16-bit) keeps EFLAGS upper half (ID)", 0x200000
    movl $0x1234d566, %eax
    sahf
    lahf
    CHECK "sahf; lahf", 0x1234d766
    cli
    pushf
    popw %ax
    andw $0x200, %ax
    CHECKW "cli", 0
    sti
    pushf
    popw %ax
    cli
    andw $0x200, %ax
    CHECKW "sti", 0x200
    ret

/* ---- 16-bit MUL IMUL DIV IDIV (DX:AX) ---------------------------------------------- */
t_muldiv:
    movl $0x11111234, %eax
    movl $0x22220000, %edx
    movw $0x100, %bx
    mulw %bx
    CHECK "mul16: AX, EAX upper half kept", 0x11113400
    movl %edx, %eax
    CHECK "mul16: DX, EDX upper half kept", 0x22220012
    movw $-2, %ax
    movw $3, %bx
    imulw %bx
    CHECKW "imul16: AX", 0xfffa
    movw %dx, %ax
    CHECKW "imul16: DX", 0xffff
    movw $1, %dx
    xorw %ax, %ax
    movw $0x10, %bx
    divw %bx
    CHECKW "div16: DX:AX / BX", 0x1000
    movw %dx, %ax
    CHECKW "div16: remainder", 0
    movw $-7, %ax
    cwtd
    movw $2, %bx
    idivw %bx
    CHECKW "idiv16: quotient", 0xfffd
    movw %dx, %ax
    CHECKW "idiv16: remainder", 0xffff
    movw $7, %bx
    imulw $-3, %bx, %ax
    CHECKW "imul16 imm", 0xffeb
    movb $0x10, %al
    movb $0x20, %bl
    mulb %bl
    CHECKW "mul8", 0x200
    ret

/* ---- IN OUT, CPUID, RDTSC ---------------------------------------------------------- */
t_io:
    movw $0x3fd, %dx
    inb %dx, %al
    andb $0x20, %al
    CHECKB "inb dx: COM1 LSR THRE", 0x20
    movl $0x5a5aa5a5, %eax
    movw $0xe0, %dx
    outl %eax, %dx
    xorl %eax, %eax
    inl %dx, %eax
    CHECK "outl/inl dx (0x66): pc-testdev register", 0x5a5aa5a5
    movl $0x01020304, %eax
    outl %eax, $0xe0
    xorl %eax, %eax
    inw $0xe0, %ax
    CHECK "outl imm8, inw imm8", 0x0304
    movw $0xbeef, %ax
    outw %ax, $0xe0
    inl $0xe0, %eax
    CHECK "outw imm8 then inl", 0x0102beef
    /* OUTS and INS with 16-bit addressing: SI, DI and CX wrap at 64 KiB (the upper
       halves of ESI, EDI and ECX kept); OUTS reads through its segment override. */
    movb %fs:0xffff, %al
    movb %fs:0, %ah
    pushw %ax
    movb $0x5a, %fs:0xffff
    movb $0xa5, %fs:0
    movl $0x12340002, %ecx
    movl $0x7777ffff, %esi
    movw $0xe0, %dx
    rep outsb %fs:(%si), (%dx)
    movl %esi, %eax
    CHECK "rep outsb fs:(si) from 0xffff: ESI wraps to 0x77770001", 0x77770001
    movl %ecx, %eax
    CHECK "rep outsb: CX counts to 0, ECX's upper half kept", 0x12340000
    inb $0xe0, %al
    CHECKB "rep outsb: the second byte came from FS:0", 0xa5
    popw %ax
    movb %al, %fs:0xffff
    movb %ah, %fs:0
    movw $ES_SEG, %ax
    movw %ax, %es
    movb %es:0xffff, %al
    movb %es:0, %ah
    pushw %ax
    movb $0, %es:0xffff
    movb $0, %es:0
    movl $0xc3, %eax
    outl %eax, $0xe0
    movl $0x5678ffff, %edi
    movl $0x9abc0002, %ecx
    movw $0xe0, %dx
    rep insb (%dx), %es:(%di)
    movl %edi, %eax
    CHECK "rep insb to 0xffff: EDI wraps to 0x56780001", 0x56780001
    movl %ecx, %eax
    CHECK "rep insb: ECX's upper half kept", 0x9abc0000
    movb %es:0xffff, %al
    movb %es:0, %ah
    CHECKW "rep insb: ES:0xffff and ES:0 written", 0xc3c3
    popw %ax
    movb %al, %es:0xffff
    movb %ah, %es:0
    xorl %eax, %eax
    cpuid
    movl %ebx, %eax
    subl D(cpuid0_ebx), %eax
    CHECK "cpuid leaf 0: EBX as in protected mode", 0
    rdtsc
    movl %eax, %esi
    movl %edx, %edi
    movw $100, %cx
1:  loop 1b
    rdtsc
    subl %esi, %eax
    sbbl %edi, %edx
    js 2f
    orl %edx, %eax
    jz 2f
    movl $1, %eax
2:  CHECK "rdtsc advances", 1
    ret

/* ---- a hardware interrupt (PIT, IRQ0 at vector 0x20 as the library set the 8259 up)
        wakes HLT and goes through the IVT ------------------------------------------- */
t_irq:
    movw $0, D(irq_count)
    movb $0x34, %al         /* channel 0, mode 2, about 1 kHz */
    outb %al, $0x43
    movw $1193, %ax
    outb %al, $0x40
    movb %ah, %al
    outb %al, $0x40
    inb $0x21, %al
    andb $0xfe, %al
    outb %al, $0x21
    sti
    hlt
hlt_after:
    cli
    inb $0x21, %al
    orb $1, %al
    outb %al, $0x21
    movw D(irq_count), %ax
    testw %ax, %ax
    setnz %al
    CHECKB "IRQ0 through the IVT woke HLT", 1
    movw D(irq_ip), %ax
    CHECKW "IRQ0: pushed IP follows the HLT", O(hlt_after)
    movw D(irq_cs), %ax
    CHECKW "IRQ0: pushed CS", RM_SEG
    movw D(irq_flags), %ax
    andw $0x200, %ax
    CHECKW "IRQ0: pushed FLAGS have IF", 0x200
    movw D(irq_hflags), %ax
    andw $0x200, %ax
    CHECKW "IRQ0: handler runs with IF clear", 0
    ret
rm_irq0:
    pushf
    pushw %bp
    movw %sp, %bp           /* bp+2 handler flags, +4 IP, +6 CS, +8 FLAGS */
    pushw %ax
    pushw %ds
    movw $DATA_SEG, %ax
    movw %ax, %ds
    incw D(irq_count)
    movw 2(%bp), %ax
    movw %ax, D(irq_hflags)
    movw 4(%bp), %ax
    movw %ax, D(irq_ip)
    movw 6(%bp), %ax
    movw %ax, D(irq_cs)
    movw 8(%bp), %ax
    movw %ax, D(irq_flags)
    movb $0x20, %al         /* EOI */
    outb %al, $0x20
    popw %ds
    popw %ax
    popw %bp
    popf
    iret

/* ---- self-modifying code ----------------------------------------------------------- */
t_smc:
    xorw %bx, %bx
    movw $2, %cx
smc_a:
    movb $0x11, %al
    shlw $8, %bx
    movb %al, %bl
    movb $0x42, %cs:O(smc_a) + 1
    loop smc_a
    movw %bx, %ax
    CHECKW "smc: the immediate just executed, rewritten, runs new", 0x1142
    movb $0x11, %cs:O(smc_a) + 1
    movb $0x55, %cs:O(smc_b) + 1
smc_b:
    movb $0x00, %al
    CHECKB "smc: the next instruction rewritten", 0x55
    call smc_far
    movb %al, %bl
    movw $RM_SEG + 0x500, %ax /* the same bytes through another segment */
    movw %ax, %es
    movb $0x66, %es:O(smc_far) - 0x5000 + 1
    movw $ES_SEG, %ax
    movw %ax, %es
    call smc_far
    movb %al, %bh
    movw %bx, %ax
    CHECKW "smc: another page rewritten through another segment", 0x6621
    ret

/* ---- big real mode: GS with a 4 GiB limit kept after PE is cleared ----------------- */
t_unreal:
    cli
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    jmp 1f
1:  movw $SEL_FLAT, %bx
    movw %bx, %gs
    andl $~1, %eax
    movl %eax, %cr0
    jmp 2f
2:  movw %gs, %ax
    CHECKW "unreal: GS selector stays 0x78 after PE is cleared", SEL_FLAT
    movw %cs, %ax
    CHECKW "unreal: CS still 0x1000", RM_SEG
    movl $UNREAL_ADDR, %ebx
    movl $0xcafef00d, %gs:(%ebx)
    movl %gs:(%ebx), %eax
    CHECK "unreal: write and read at 8 MiB through gs:(%ebx)", 0xcafef00d
    movl $0x600d600d, %gs:4(%ebx)
    EXPECT 3f
    xorw %ax, %ax
    movw %ax, %gs
    movl %gs:(%ebx), %eax
3:  CHECK "unreal: mov %ax,%gs in real mode keeps the 4 GiB limit", 0xcafef00d
    movw D(exc_vec), %ax
    CHECKW "unreal: no #GP", 0xffff
    movw $0, D(exc_resume)
    movw $0x1000, %ax
    movw %ax, %gs
    movl $UNREAL_ADDR - 0x10000 + 4, %ebx
    movl %gs:(%ebx), %eax
    CHECK "unreal: GS=0x1000 base 0x10000 with the big limit", 0x600d600d
    movw $GS_SEG, %ax
    movw %ax, %gs
    ret

/* ---- 16-bit protected mode: CS with D=0, SS with B=0 ------------------------------- */
t_pm16:
    cli
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmp $SEL_C16, $O(p16a)
p16a:
    movw $SEL_DD16, %ax
    movw %ax, %ds
    movw $SEL_S16, %ax
    movw %ax, %ss
    movl $0xbeef0800, %esp
    movw %cs, %ax
    movzwl %ax, %eax
    movl %eax, D(tmp0)
    pushw $0x1234
    pushl $0x89abcdef
    movl %esp, D(tmp1)
    popl %eax
    movl %eax, D(tmp2)
    popw %ax
    movzwl %ax, %eax
    movl %eax, D(tmp3)
    call p16f
p16r:
    calll p16g
p16r2:
    lcall $SEL_C16, $O(p16h)
p16r3:
    movl $0x77770004, %ecx
    xorw %dx, %dx
1:  incw %dx
    loop 1b
    movl %ecx, D(tmp6)
    movzwl %dx, %edx
    movl %edx, D(tmp7)
    movl %esp, D(tmp8)
    movl $0xbeef0000, %esp
    pushw $0x4321
    movl %esp, D(tmp9)
    movzwl %ss:0xfffe, %eax
    movl %eax, D(tmp10)
    popw %ax
    movl %esp, D(tmp11)
    movw %ss, %ax
    movzwl %ax, %eax
    movl %eax, D(tmp12)
    /* back to real mode: DS and SS hold 64 KiB segments already */
    movl %cr0, %eax
    andl $~1, %eax
    movl %eax, %cr0
    ljmp $RM_SEG, $O(p16back)
p16back:
    movw $SS_SEG, %ax
    movw %ax, %ss
    movl $TOP_SP - 2, %esp
    movw $DATA_SEG, %ax
    movw %ax, %ds
    CHECKM "pm16: CS", tmp0, SEL_C16
    CHECKM "pm16: pushw+pushl with SS.B=0: SP down 6, ESP upper half kept", tmp1, 0xbeef07fa
    CHECKM "pm16: popl", tmp2, 0x89abcdef
    CHECKM "pm16: popw", tmp3, 0x1234
    CHECKM "pm16: call pushes the 16-bit IP", tmp4, O(p16r)
    CHECKM "pm16: calll pushes the 32-bit EIP", tmp5, O(p16r2)
    CHECKM "pm16: lcall pushes IP", tmp13, O(p16r3)
    CHECKM "pm16: lcall pushes the selector", tmp14, SEL_C16
    CHECKM "pm16: loop uses CX", tmp6, 0x77770000
    CHECKM "pm16: loop rounds", tmp7, 4
    CHECKM "pm16: ESP back", tmp8, 0xbeef0800
    CHECKM "pm16: push with SP=0 wraps", tmp9, 0xbeeffffe
    CHECKM "pm16: ...to SS:0xfffe", tmp10, 0x4321
    CHECKM "pm16: pop back to SP=0", tmp11, 0xbeef0000
    CHECKM "pm16: SS", tmp12, SEL_S16
    movw %ds, %ax
    CHECKW "pm16 -> real mode: DS reloaded", DATA_SEG
    ret
p16f:
    movw %sp, %bx
    movzwl %ss:(%bx), %eax
    movl %eax, D(tmp4)
    ret
p16h:
    movw %sp, %bx
    movzwl %ss:(%bx), %eax
    movl %eax, D(tmp13)
    movzwl %ss:2(%bx), %eax
    movl %eax, D(tmp14)
    lret
p16g:
    movw %sp, %bx
    movl %ss:(%bx), %eax
    movl %eax, D(tmp5)
    retl

cs_const: .byte 0x5c

/* ---- another page: code rewritten through another segment -------------------------- */
    .org 0x5000
smc_far:
    movb $0x21, %al
    ret

/* ===================================================================================== */
    .org 0x6000
    .globl rm_data
rm_data:
pat:    .byte 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7
        .byte 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf
        .byte 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7
        .byte 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf
        .space 0x50 - 0x20      /* DS:0x40 takes t_segdefault's byte */
    .balign 4
    .globl ivt_desc
ivt_desc: .word 0x3ff
    .long IVT_BASE
ivt_small: .word 0x103
    .long IVT_BASE
ivt_small2: .word 0x102
    .long IVT_BASE
ivt_shifted: .word 0x3ff
    .long IVT_BASE + 4
    .balign 4
tbl32:  .long 0x11223344, 0x55667788, 0x99aabbcc, 0xddeeff00
str_src: .ascii "0123456789ABCDEF"
str_cmp: .ascii "01234X6789ABCDEF"
xtab:   .byte 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57
fptr16: .word O(nf_ind)
jptr16: .word O(nj2_target)
jtab:   .word O(jt0), O(jt1), O(jt2)
fptr_alt: .word O(ffalt) + ALT_DELTA, ALT_SEG
fptr32: .long O(ff32)
        .word RM_SEG
fjptr:  .word O(fj2) + ALT_DELTA, ALT_SEG
fjback2: .word O(fj2_back), RM_SEG
fjptr32: .long O(fj3)
        .word RM_SEG
fp_fs:  .word 0x40, FS_SEG
fp_gs:  .word 0x40, GS_SEG
fp_es:  .word 0x40, ES_SEG
fp_ss:  .word 0x40, SS_SEG
fp_stack: .word 0xffd0, SS_SEG + 1
fp_stack_back: .word TOP_SP - 2, SS_SEG
fp32:   .long 0x00010040
        .word GS_SEG
w0:     .word 0
        .byte 0, 0
        .byte 0, 0x80           /* bits - 2, bits - 1 */
bits:   .byte 0, 0, 0, 0, 0, 0, 0, 0
    .balign 4
    .globl cpuid0_ebx, rm_finished, exc_vec, exc_ip, exc_cs, recp
cpuid0_ebx: .long 0
rm_finished: .word 0
save_esp: .long 0
exc_resume: .word 0
exc_vec: .word 0
exc_ip: .word 0
exc_cs: .word 0
exc_flags: .word 0
exc_hflags: .word 0
exc_sp: .word 0
exc_count: .word 0
db_count: .word 0
h_count: .word 0
h_ip:   .word 0
h_cs:   .word 0
h_flags: .word 0
h_hflags: .word 0
h_sp:   .word 0
irq_count: .word 0
irq_ip: .word 0
irq_cs: .word 0
irq_flags: .word 0
irq_hflags: .word 0
    .balign 4
tmp0:   .long 0
tmp1:   .long 0
tmp2:   .long 0
tmp3:   .long 0
tmp4:   .long 0
tmp5:   .long 0
tmp6:   .long 0
tmp7:   .long 0
tmp8:   .long 0
tmp9:   .long 0
tmp10:  .long 0
tmp11:  .long 0
tmp12:  .long 0
tmp13:  .long 0
tmp14:  .long 0
recp:   .word D(results)
    .balign 4
    .globl results
results: .space 12 * 400
results_end:
    .globl rm_vectors
rm_vectors:
    .altmacro
.macro VECW n
    .if \n == 1
    .word O(vec_db)
    .else
    .word O(vec\n)
    .endif
.endm
    .set i, 0
    .rept 32
    VECW %i
    .set i, i + 1
    .endr
    .noaltmacro
    .word O(vec_other)
    .word O(rm_int40)
    .word O(rm_irq0)
    .globl rm_end
rm_end:
    .section .note.GNU-stack, "", @progbits
