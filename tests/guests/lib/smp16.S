/*
 * smp16.S - the application processors' way in (smp.h): the real-mode trampoline that
 * smp.c copies to SMP_TRAMP, and the 32-bit code it jumps to.
 *
 * A SIPI with vector V starts the AP in real mode at CS = V << 8, IP = 0 (SDM vol. 3,
 * "MP Initialization Protocol").  The trampoline is position independent within its
 * page: it addresses its own data through DS = CS.  After INIT, CR0 has CD and NW set;
 * they are cleared with PE set so the AP runs with caches on, as the BSP does.  The GDT
 * register operand (limit, base of the library's GDT) is written by smp.c into the copy.
 */
#define AP_STACKS 16
#define AP_STACK_SIZE 8192

    .section .text
    .code16
    .globl smp_tramp, smp_tramp_gdtr, smp_tramp_end
    .balign 16
smp_tramp:
    cli
    movw %cs, %bx               /* kept for ap_main: which page the vector named */
    movw %bx, %ds
    lgdtl smp_tramp_gdtr - smp_tramp
    movl %cr0, %eax
    andl $0x9fffffff, %eax      /* CD, NW off */
    orl $1, %eax                /* PE */
    movl %eax, %cr0
    ljmpl $0x08, $ap_entry32    /* the flat code segment; flushes the prefetch queue */
    .balign 4
smp_tramp_gdtr:
    .word 0
    .long 0
smp_tramp_end:

    .code32
ap_entry32:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %fs
    movl %eax, %gs
    movl %eax, %ss
    /* A stack by arrival order: two APs never share one even if they start together. */
    movl $1, %eax
    lock xaddl %eax, smp_arrivals
    cmpl $AP_STACKS, %eax
    jae 2f
    leal 1(%eax), %ecx
    imull $AP_STACK_SIZE, %ecx, %esp
    addl $ap_stacks, %esp
    movzwl %bx, %ebx
    pushl %ebx                  /* the trampoline's CS */
    pushl %eax                  /* the arrival number */
    call ap_main
2:  cli
    hlt
    jmp 2b

    .section .bss
    .balign 16
    .globl ap_stacks
ap_stacks:
    .space AP_STACKS * AP_STACK_SIZE

    .section .note.GNU-stack, "", @progbits
