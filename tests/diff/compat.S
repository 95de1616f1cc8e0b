/*
 * compat.S - enter 32-bit compatibility mode at a low address and come back.
 *
 * diff_native_enter(entry): saves the callee-saved registers, leaves the return point
 * and RSP in the state block (DIFF_STATE + 40), and far-returns to 0x23:entry (the
 * Linux 32-bit user code selector).  The 32-bit code there ends by far-jumping to a
 * 64-bit stub in the low code page that reloads RSP from the state block and returns
 * to diff_resume below.
 */
#define DIFF_STATE 0x00700000

        .text
        .globl  diff_native_enter
        .type   diff_native_enter, @function
diff_native_enter:
        push    %rbx
        push    %rbp
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        lea     diff_resume(%rip), %rax
        push    %rax
        mov     %rsp, DIFF_STATE + 40
        pushq   $0x23
        push    %rdi
        lretq
diff_resume:
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbp
        pop     %rbx
        ret
        .size   diff_native_enter, . - diff_native_enter

        .section .note.GNU-stack, "", @progbits
