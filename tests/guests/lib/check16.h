/*
 * check16.h - the checks of the guests' 16-bit halves (realmode16.S, v86_16.S), for
 * assembly: CHECK name, want records (name, want, EAX) through the half's `rec`
 * routine and keeps every register and flag; CHECKW and CHECKB compare AX or AL,
 * zero-extended into EAX first.  The C half prints the records.
 */
#ifndef GUEST_CHECK16_H
#define GUEST_CHECK16_H

.macro CHECK name, want:vararg
    .pushsection .rodata.checknames, "a"
.Lname\@: .asciz "\name"
    .popsection
    pushl $.Lname\@
    pushl $(\want)
    call rec
.endm
.macro CHECKW name, want:vararg
    movzwl %ax, %eax
    CHECK "\name", \want
.endm
.macro CHECKB name, want:vararg
    movzbl %al, %eax
    CHECK "\name", \want
.endm

#endif
