/*
 * boot.S - multiboot v1 entry and the interrupt stubs of the guest test library.
 * Every vector 0-63 enters isr_common with a uniform frame (struct frame in guest.h).
 */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

    .section .text
    .globl _start
_start:
    cli
    movl $stack_top, %esp
    cld
    pushl %ebx                  /* multiboot information */
    pushl %eax                  /* multiboot magic */
    call guest_start
1:  hlt
    jmp 1b

/* Vectors that push an error code: 8, 10-14, 17, 21. */
.macro ISR n
    .globl isr\n
isr\n:
    .if (\n == 8) || (\n >= 10 && \n <= 14) || (\n == 17) || (\n == 21)
    .else
    pushl $0
    .endif
    pushl $\n
    jmp isr_common
.endm

    .altmacro
    .set i, 0
    .rept 64
    ISR %i
    .set i, i + 1
    .endr

isr_common:
    pushal
    pushl %ds
    pushl %es
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    pushl %esp                  /* struct frame * */
    call isr_dispatch
    addl $4, %esp
    popl %es
    popl %ds
    popal
    addl $8, %esp               /* vector, error code */
    iret

    .section .data
    .globl isr_table
    .align 4
isr_table:
    .long isr0
    .long isr1
    .long isr2
    .long isr3
    .long isr4
    .long isr5
    .long isr6
    .long isr7
    .long isr8
    .long isr9
    .long isr10
    .long isr11
    .long isr12
    .long isr13
    .long isr14
    .long isr15
    .long isr16
    .long isr17
    .long isr18
    .long isr19
    .long isr20
    .long isr21
    .long isr22
    .long isr23
    .long isr24
    .long isr25
    .long isr26
    .long isr27
    .long isr28
    .long isr29
    .long isr30
    .long isr31
    .long isr32
    .long isr33
    .long isr34
    .long isr35
    .long isr36
    .long isr37
    .long isr38
    .long isr39
    .long isr40
    .long isr41
    .long isr42
    .long isr43
    .long isr44
    .long isr45
    .long isr46
    .long isr47
    .long isr48
    .long isr49
    .long isr50
    .long isr51
    .long isr52
    .long isr53
    .long isr54
    .long isr55
    .long isr56
    .long isr57
    .long isr58
    .long isr59
    .long isr60
    .long isr61
    .long isr62
    .long isr63

    .section .bss
    .align 16
    .space 65536
    .globl stack_top
stack_top:
    .section .note.GNU-stack, "", @progbits
