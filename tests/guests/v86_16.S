/*
 * v86_16.S - the virtual-8086 half of v86.c: 16-bit code that runs with CS=0x1000
 * (the blob copied to linear 0x10000), DS=0x1000, SS=0x3000, ES=0x4000, FS=0x5000,
 * GS=0x6000 under the ring-0 monitor of v86.c.
 *
 * It talks to the monitor only through what the SDM makes trap: HLT is #GP(0) at CPL 3,
 * so "hlt" with AX = a service number is a call (1: IOPL 3, 2: IOPL 0, 0xff: leave
 * virtual-8086 mode for good).  Every other event the monitor answers in EAX, for the
 * code here to check: #GP: 0x0d000000 | error code, with the instruction skipped
 * (emulated for CLI, STI, PUSHF, POPF); #DE, #UD: vector << 24 | IP of the faulting
 * instruction, skipped; INT3 and INT n through a DPL-3 gate: vector << 24 | the IP
 * after the instruction.  Each check leaves (name, want, got) in the result table;
 * C prints them.  The record routine uses no PUSHF/POPF (IOPL-sensitive here).
 */
#define O(x) ((x) - v86_base)
#define V86_SEG 0x1000
#define SS_SEG  0x3000
#define ES_SEG  0x4000
#define FS_SEG  0x5000
#define GS_SEG  0x6000
#define ALT_SEG 0x0f00 /* the same bytes with IP = O(x) + 0x1000 */

#include "lib/check16.h" /* CHECK, CHECKW */
/* The monitor's answer to the event of the instruction at label: EAX as v86.c sets it. */
#define GP(err) (0x0d000000 | (err))
#define AT(vec, label) (((vec) << 24) | O(label))

    .section .rodata.v86, "a"
    .code16
    .globl v86_base, v86_start, v86_cli1, v86_int30, v86_int30_next
v86_base:

v86_start:
    movw %cs, %ax
    CHECKW "v86: CS after IRET", V86_SEG
    movw %ss, %ax
    CHECKW "v86: SS after IRET", SS_SEG
    movw %es, %ax
    CHECKW "v86: ES after IRET", ES_SEG
    movw %gs, %ax
    CHECKW "v86: GS after IRET", GS_SEG
    movl %esp, %eax
    CHECK "v86: ESP after IRET", 0xfff0
    call t_arith
    call t_stack
    call t_calls
    call t_segs
    call t_strings
    call t_io
    call t_iopl0
    call t_exc
    call t_paging
    movw $1, %ax            /* service 1: IOPL 3 */
    hlt
    call t_iopl3
    call t_irq
    call t_io
    movw $2, %ax            /* service 2: IOPL 0 again */
    hlt
    movl $0x1234, %eax
    CHECK "v86: the last check before leaving", 0x1234
    movw $0xff, %ax         /* leave for good */
    hlt
1:  jmp 1b                  /* never reached */

/* rec: the CHECK record.  Stack: return IP, want (4), name (4); EAX = got. */
rec:
    pushw %ds
    pushw %bx
    pushw %bp
    pushl %ecx
    movw %sp, %bp           /* bp+0 ecx, +4 bp, +6 bx, +8 ds, +10 ret, +12 want, +16 name */
    movw $V86_SEG, %bx
    movw %bx, %ds
    movw O(recp), %bx
    movl 16(%bp), %ecx
    movl %ecx, (%bx)
    movl 12(%bp), %ecx
    movl %ecx, 4(%bx)
    movl %eax, 8(%bx)
    leaw 12(%bx), %bx
    movw %bx, O(recp)
    popl %ecx
    popw %bp
    popw %bx
    popw %ds
    ret $8

t_arith:
    movw $0x7fff, %ax
    addw $1, %ax
    seto %bl
    CHECKW "v86: 0x7fff + 1", 0x8000
    movzbl %bl, %eax
    CHECK "v86: 0x7fff + 1 sets OF", 1
    movw $0x1234, %ax
    movw $0x10, %cx
    mulw %cx
    shll $16, %edx
    movw %ax, %dx
    movl %edx, %eax
    CHECK "v86: MUL 16-bit (DX:AX)", 0x12340
    movw $1000, %ax
    xorw %dx, %dx
    movw $7, %cx
    divw %cx
    shll $16, %edx
    movw %ax, %dx
    movl %edx, %eax
    CHECK "v86: DIV 16-bit (remainder:quotient)", (6 << 16) | 142
    movl $0x12345678, %eax
    addl $0x11111111, %eax
    CHECK "v86: 32-bit ADD with 0x66", 0x23456789
    ret

t_stack:
    movw %sp, %si
    pushw $0x1111
    pushl $0x22223333
    popw %ax
    popw %bx
    popw %cx
    shll $16, %ecx
    movw %bx, %cx
    movl %ecx, %eax
    CHECK "v86: push/pop words (order)", 0x11112222
    movw %sp, %ax
    subw %si, %ax
    CHECKW "v86: SP back where it was", 0
    pusha
    movw $0, %ax
    popa
    movw %sp, %ax
    subw %si, %ax
    CHECKW "v86: PUSHA/POPA", 0
    ret

t_calls:
    movw $0, %ax
    call near_fn
    CHECKW "v86: near CALL/RET", 0x4e4e
    movw $0, %ax
    lcall $V86_SEG, $O(far_fn)
    CHECKW "v86: far CALL/RET (same CS)", V86_SEG
    movw $0, %ax
    lcall $ALT_SEG, $O(far_fn) + 0x1000
    CHECKW "v86: far CALL to CS=0x0f00 (base 0xf000)", ALT_SEG
    ljmp $ALT_SEG, $O(alt_here) + 0x1000
alt_here:
    movw %cs, %ax
    CHECKW "v86: far JMP to CS=0x0f00", ALT_SEG
    ljmp $V86_SEG, $O(alt_back)
alt_back:
    movw %cs, %ax
    CHECKW "v86: far JMP back", V86_SEG
    movw $O(ind_target), O(fptr)
    movw $V86_SEG, O(fptr) + 2
    movw $0, %ax
    lcall *O(fptr)
    CHECKW "v86: far CALL through memory", 0x1d1d
    ret
near_fn:
    movw $0x4e4e, %ax
    ret
far_fn:
    movw %cs, %ax
    lret
ind_target:
    movw $0x1d1d, %ax
    lret

t_segs:
    movw $ES_SEG, %ax
    movw %ax, %es
    movl $0xabcd1234, %es:0x10
    movw $ES_SEG - 1, %ax   /* 0x3fff: base 0x3fff0, so offset 0x20 is the same byte */
    movw %ax, %fs
    movl %fs:0x20, %eax
    CHECK "v86: MOV ES / MOV FS: base = selector * 16", 0xabcd1234
    pushw $ES_SEG
    popw %gs
    movl %gs:0x10, %eax
    CHECK "v86: POP GS", 0xabcd1234
    movw $0x30, %es:0x100
    movw $ES_SEG - 2, %es:0x102
    lds %es:0x100, %bx
    movw %ds, %ax
    CHECKW "v86: LDS selector", ES_SEG - 2
    movl (%bx), %eax
    CHECK "v86: LDS: data through the new DS", 0xabcd1234
    movw $V86_SEG, %ax
    movw %ax, %ds
    movw $FS_SEG, %ax
    movw %ax, %fs
    movw $GS_SEG, %ax
    movw %ax, %gs
    movl $0x5555aaaa, %ss:0x100   /* SS = 0x3000: linear 0x30100 */
    movw $SS_SEG + 0x10, %ax
    movw %ax, %es
    movl %es:0, %eax
    CHECK "v86: SS-relative store seen at SS + 0x100", 0x5555aaaa
    movw $ES_SEG, %ax
    movw %ax, %es
    ret

t_strings:
    movw $O(str_src), %si
    movw $0x200, %di
    movw $8, %cx
    cld
    rep movsb               /* DS:SI -> ES:DI (0x40200) */
    movl %es:0x204, %eax
    CHECK "v86: REP MOVSB to ES", 0x68676665
    movw %cx, %ax
    CHECKW "v86: REP MOVSB: CX = 0", 0
    movw $0x300, %di
    movw $0x4142, %ax
    movw $3, %cx
    rep stosw
    movl %es:0x302, %eax
    CHECK "v86: REP STOSW", 0x41424142
    movw $O(str_src), %si
    lodsw
    CHECKW "v86: LODSW", 0x6261
    ret
str_src: .ascii "abcdefgh"

/* The I/O permission bitmap, whatever IOPL is: 0x21 allowed, 0xa1 denied. */
t_io:
    inb $0x21, %al
    movb %al, %bl
    movb $0xfb, %al
    outb %al, $0x21
    xorl %eax, %eax
    inb $0x21, %al
    CHECK "v86: IN/OUT on a port the bitmap allows", 0xfb
    movb %bl, %al
    outb %al, $0x21
    movl $0, %eax
io_denied:
    inb $0xa1, %al
    CHECK "v86: IN on a port the bitmap denies: #GP(0)", GP(0)
    movl $0, %eax
    movw $0xa1, %dx
    outb %al, %dx
    CHECK "v86: OUT DX on a denied port: #GP(0)", GP(0)
    ret

/* IOPL 0: CLI, STI, PUSHF, POPF, INT n, IRET are #GP(0) (the monitor emulates CLI, STI,
   PUSHF and POPF and skips the rest); INT3 is not IOPL-sensitive. */
t_iopl0:
    movl $0, %eax
v86_cli1:
    cli
    CHECK "v86 IOPL 0: CLI #GP(0)", GP(0)
    movl $0, %eax
    sti
    CHECK "v86 IOPL 0: STI #GP(0)", GP(0)
    movl $0, %eax
    pushf
    CHECK "v86 IOPL 0: PUSHF #GP(0)", GP(0)
    popw %bx                /* the word the monitor pushed for it */
    movl $0, %eax
    pushw %bx
    popf
    CHECK "v86 IOPL 0: POPF #GP(0)", GP(0)
    movl $0, %eax
    int $0x30
    CHECK "v86 IOPL 0: INT 0x30 #GP(0), not the gate", GP(0)
    movl $0, %eax
    pushw $0
    pushw %cs
    pushw $O(1f)
    iret
1:  CHECK "v86 IOPL 0: IRET #GP(0)", GP(0)
    addw $6, %sp
    movl $0, %eax
    int3
int3_next:
    CHECK "v86 IOPL 0: INT3 through its DPL-3 gate", AT(3, int3_next)
    movl $0, %eax
    movl %cr0, %eax
    CHECK "v86: MOV from CR0 #GP(0) (CPL 3)", GP(0)
    movl $0, %eax
    smsw %ax
    andw $1, %ax
    CHECKW "v86: SMSW works, PE set", 1
    ret

/* Exceptions in v86 mode: each through the IDT to ring 0. */
t_exc:
    movl $0, %eax
    movw $5, %ax
    movb $0, %bl
de_at:
    divb %bl
    CHECK "v86: #DE (DIV by 0)", AT(0, de_at)
    movl $0, %eax
ud_at:
    ud2
    CHECK "v86: #UD (UD2)", AT(6, ud_at)
    movl $0, %eax
lar_at:
    larw %bx, %bx
    CHECK "v86: LAR is #UD", AT(6, lar_at)
    movl $0, %eax
sldt_at:
    sldt %bx
    CHECK "v86: SLDT is #UD", AT(6, sldt_at)
    movl $0, %eax
lldt_at:
    lldt %bx
    CHECK "v86: LLDT is #UD, not #GP", AT(6, lldt_at)
    movl $0, %eax
    int $0x32
    CHECK "v86 IOPL 0: INT 0x32 (IOPL first)", GP(0)
    ret

/* An external interrupt (the PIT's IRQ 0, services 4 and 5 start and stop it) taken
   while in v86 mode: the monitor's handler counts it in `ticks` when its frame has VM. */
t_irq:
    movl $0, O(ticks)
    movw $4, %ax
    hlt
    sti
    movl $50000000, %ecx
1:  cmpl $0, O(ticks)
    jne 2f
    decl %ecx
    jnz 1b
2:  movw $5, %ax
    hlt
    movl O(ticks), %eax
    cmpl $0, %eax
    setne %al
    movzbl %al, %eax
    CHECK "v86: a timer interrupt taken in v86 mode (IOPL 3, IF set)", 1
    ret

/* With paging on (service 3 says so), CPL 3 rights: a supervisor page and a read-only
   one fault with U set in the error code. */
t_paging:
    movw $3, %ax
    hlt
    cmpl $1, %eax
    jne 1f
    movw $0x7000, %ax
    movw %ax, %es
    movl $0, %eax
    movl %es:0x10, %eax     /* 5 bytes, as the monitor's skip assumes */
    CHECK "v86 paging: read of a supervisor page: #PF(U|P)", 0x0e000005
    movl $0, %eax
    movl %eax, %es:0x1010
    CHECK "v86 paging: write to a read-only user page: #PF(U|W|P)", 0x0e000007
    movl $0x600df00d, %es:0x2010
    movl %es:0x2010, %eax
    CHECK "v86 paging: a user page is read and written", 0x600df00d
    movw $ES_SEG, %ax
    movw %ax, %es
1:  ret

/* A virtual-8086 task: entered by a JMP to its TSS (EFLAGS.VM set there), checks what
   the switch loaded and leaves. */
    .globl v86_task_start
v86_task_start:
    movw %cs, %ax
    CHECKW "v86 task: CS from the TSS", V86_SEG
    movw %ds, %ax
    CHECKW "v86 task: DS from the TSS", V86_SEG
    movw %fs, %ax
    CHECKW "v86 task: FS from the TSS", FS_SEG
    movl %esp, %eax
    CHECK "v86 task: ESP from the TSS", 0xeee0
    movl %ebx, %eax
    CHECK "v86 task: EBX from the TSS", 0x7a5c
    movl %fs:0, %eax       /* FS base 0x50000 */
    CHECK "v86 task: FS base = 0x50000", 0x50505050
    movl $0, %eax
    int $0x30               /* IOPL 0 in the task: #GP(0) */
    CHECK "v86 task: INT n with IOPL 0: #GP(0)", GP(0)
    movw $0xff, %ax
    hlt

/* IOPL 3: the flag instructions work, POPF cannot change IOPL, INT n goes through the
   IDT (DPL-3 gate to ring 0; a DPL-0 gate: #GP(vector * 8 + 2)), IRET works. */
t_iopl3:
    cli
    pushf
    popw %ax
    andw $0x3200, %ax
    CHECKW "v86 IOPL 3: CLI clears IF, PUSHF shows IOPL 3", 0x3000
    sti
    pushf
    popw %ax
    andw $0x200, %ax
    CHECKW "v86 IOPL 3: STI sets IF", 0x200
    pushfl
    popl %eax
    andl $0x23000, %eax
    CHECK "v86 IOPL 3: PUSHFD: VM clear in the image", 0x3000
    pushw $0x0000
    popf
    pushf
    popw %ax
    andw $0x3200, %ax
    CHECKW "v86 IOPL 3: POPF of 0 clears IF, IOPL stays 3", 0x3000
    pushl $0x20002          /* VM in the image: ignored */
    popfl
    pushfl
    popl %eax
    andl $0x23200, %eax
    CHECK "v86 IOPL 3: POPFD cannot set VM or clear IOPL", 0x3000
    sti
    movl $0, %eax
v86_int30:
    int $0x30
v86_int30_next:
    CHECK "v86 IOPL 3: INT 0x30 through its DPL-3 gate", AT(0x30, v86_int30_next)
    movl $0, %eax
    int $0x32
    CHECK "v86 IOPL 3: INT 0x32 through a DPL-0 gate: #GP(0x192)", GP(0x32 * 8 + 2)
    movw $0, %bx
    pushw $0x0202           /* FLAGS with IOPL 0: the IRET keeps IOPL 3 */
    pushw %cs
    pushw $O(1f)
    iret
    movw $0xbad, %bx
1:  pushf
    popw %ax
    andw $0x3000, %ax
    orw %bx, %ax
    CHECKW "v86 IOPL 3: IRET works, keeps IOPL", 0x3000
    movl $0, %eax
    int3
1:  CHECK "v86 IOPL 3: INT3", AT(3, 1b)
    ret

    .p2align 2
fptr:   .long 0
    .globl ticks
ticks:  .long 0
    .globl recp, results, results_end
recp:   .word O(results)
    .p2align 2
results: .space 12 * 120
results_end:
    .globl v86_end
v86_end:
    .section .note.GNU-stack, "", @progbits
