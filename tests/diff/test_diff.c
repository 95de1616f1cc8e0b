/*
 * test_diff.c - the differential semantics suite: the same 32-bit guest code, from the
 * same seeded registers, flags and memory, run (a) natively on this CPU in 32-bit
 * compatibility mode at its guest addresses in the low 4 GiB of this process, and
 * (b) translated by xbt through the K-window; then all eight general registers, the
 * arithmetic flags and DF, and every byte of the data and stack areas (and of the
 * extra area of the 16-bit families) are compared.
 * Both runs use the same physical CPU, so even architecturally undefined flags and
 * x87/SSE rounding must agree wherever xbt executes an instruction as is.
 *
 *   test_diff [--seed S] [--count N] [--family NAME] [--case K [--code HEX]] [-v]
 * Without options it runs every family as a Check test (ctest diff.semantics).  A
 * failure prints the seed, family and case number (rerun with --seed S --family F
 * --case K), the guest bytes, the differences and xbt's listing of the code.
 *
 * Generated code keeps its memory accesses inside the data and stack areas by
 * construction: EBX, EBP, ESI and EDI are pointer registers (never destinations of
 * generated arithmetic), EAX, ECX and EDX carry values; string counts and bit
 * offsets are bounded by instructions emitted before the instruction under test.
 * FS and GS overrides are covered too: the native prologue loads FS and GS with the flat
 * 32-bit data selector, and the host's FS base (libc's thread pointer) and GS base
 * (xbt's K-window) are put back with raw arch_prctl calls before any C code runs.
 * Segment bases: the family "segwrap" runs with DS, ES and SS based at three places of
 * the stack area (natively LDT descriptors written with modify_ldt, loaded in the
 * prologue) and with ESP, EBP, ESI and EDI small offsets around 0, so that pushes,
 * calls, ENTER and the string instructions wrap their offsets at 4 GiB (the linear
 * addresses stay inside the area).  A wrap of the linear address itself needs page 0,
 * which a Linux process cannot map: tests/guests/wrap.c covers it.
 * 16-bit code: the families "code16" (32-bit stack) and "stack16" (16-bit stack) run in
 * a 16-bit code segment (D clear) based at CODE with 64 KiB data segments (DS at DATA, ES
 * and FS at EXTRA, SS and GS at STACK; SS's B bit set or clear); natively LDT segments
 * again: the 32-bit prologue far-jumps into the 16-bit code segment, the code far-jumps
 * back (both emitted as bytes in run_native: they must live in the low code page, which
 * compat.S's code does not); in xbt the same segments with CS.db and SS.db as natively.
 * With 64 KiB segments every 16-bit offset is valid, so SI, DI and SP wrap at 64 KiB
 * inside them.  The section "16-bit code" below says what is generated and kept by
 * construction, and the one form excluded where this CPU and the SDM differ (EXCLUDED).
 * Not covered: instructions that fault by design (tests/guests covers faults).
 */
#define _GNU_SOURCE
#include <check.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <asm/ldt.h>
#include <asm/prctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include "xbt/xbt.h"
#include "runtime/compat32.h"

#define CODE 0x00400000u       /* test code (native: prologue + code + epilogue) */
#define STUB64 (CODE + 0xF00u) /* 64-bit return stub */
#define DATA 0x00500000u       /* 64 KiB data area */
#define DATA_SIZE 0x10000u
#define STACK 0x00600000u      /* 64 KiB stack area, ESP starts in the middle */
#define STACK_SIZE 0x10000u
#define STATE 0x00700000u      /* native register block and scratch stack */
#define SCRATCH_TOP (STATE + 0xF00u)
#define FLAGS_MASK 0x0CD5u     /* CF PF AF ZF SF DF OF */
/* The based segments of family segwrap: DS, ES and SS at three places of the stack
   area; natively LDT entries 13..15, in xbt GDT entries 3..5. */
#define BASE_DS (STACK + 0x4000u)
#define BASE_ES (STACK + 0x6000u)
#define BASE_SS (STACK + 0xC000u)
#define LDT_FIRST 13
/* The 16-bit families' segments, 64 KiB each: natively LDT entries 16..20 (CS; DS at
   DATA; ES, FS at EXTRA; SS at STACK with B set; with B clear), in xbt GDT entries 6..10. */
#define EXTRA 0x00800000u      /* 64 KiB area: ES and FS of the 16-bit families */
#define EXTRA_SIZE 0x10000u
#define LDT16 16
#define SEG16_SIZE 0x10000u
#define FLAT_SEL 0x2b          /* the host's flat 32-bit user data selector */

void diff_native_enter(uint32_t entry);

struct regs32 {
    uint32_t gpr[8]; /* eax ecx edx ebx esp ebp esi edi */
    uint32_t eflags;
};

enum { EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI };
static const char *const gpr_names[8] = { "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi" };

/* ---- random numbers and the code buffer --------------------------------------------- */

static uint64_t rng;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static uint32_t rndn(uint32_t n) { return rnd() % n; }

struct code {
    uint8_t b[1024];
    size_t n;
};
static void put(struct code *c, int k, ...)
{
    va_list ap;
    va_start(ap, k);
    for (int i = 0; i < k; i++)
        c->b[c->n++] = (uint8_t)va_arg(ap, int);
    va_end(ap);
}
static void put32(struct code *c, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        c->b[c->n++] = (uint8_t)(v >> (8 * i));
}

/* Registers generated code may write (32-bit codes), and 8-bit codes of their bytes. */
static const uint8_t val_regs[3] = { EAX, ECX, EDX };
static const uint8_t val_regs8[6] = { 0, 1, 2, 4, 5, 6 }; /* al cl dl ah ch dh */
static const uint8_t ptr_regs[4] = { EBX, EBP, ESI, EDI };

static uint8_t vreg(void) { return val_regs[rndn(3)]; }
static uint8_t areg(void) { return (uint8_t)rndn(8); } /* any register, as a source */

/* A register-or-memory ModRM (with displacement) whose reg field is `reg`.  Memory
   operands address [ptr + disp8], [ptr + disp32], [esp + disp8] or an absolute disp32
   in the data area; a register operand is a value register (writable) or, when the
   operand is only read, any register. */
static void modrm(struct code *c, uint8_t reg, bool mem, bool rm_written, bool byte)
{
    if (!mem) {
        uint8_t rm = byte ? (rm_written ? val_regs8[rndn(6)] : (uint8_t)rndn(8))
                          : (rm_written ? vreg() : areg());
        put(c, 1, 0xC0 | (reg << 3) | rm);
        return;
    }
    switch (rndn(4)) {
    case 0: /* [ptr + disp8] */
        put(c, 2, 0x40 | (reg << 3) | ptr_regs[rndn(4)], (int)(rndn(256)));
        break;
    case 1: /* [ptr + disp32], small */
        put(c, 1, 0x80 | (reg << 3) | ptr_regs[rndn(4)]);
        put32(c, rndn(0x800) - 0x400);
        break;
    case 2: /* [esp + disp8] through a SIB byte */
        put(c, 3, 0x44 | (reg << 3), 0x24, (int)rndn(0x80));
        break;
    default: /* absolute [disp32] */
        put(c, 1, 0x05 | (reg << 3));
        put32(c, DATA + 0x100 + rndn(DATA_SIZE - 0x200));
        break;
    }
}

/* ---- instruction families ------------------------------------------------------------ */

static void gen_alu(struct code *c)
{
    uint8_t op = (uint8_t)rndn(8); /* add or adc sbb and sub xor cmp */
    if (rndn(4) == 0)
        put(c, 1, 0x66);
    switch (rndn(5)) {
    case 0: /* r/m8, r8 and r8, r/m8 */ {
        bool to_rm = rndn(2);
        bool mem = rndn(2);
        put(c, 1, (op << 3) | (to_rm ? 0 : 2));
        uint8_t reg = to_rm ? (uint8_t)rndn(8) : val_regs8[rndn(6)];
        modrm(c, reg, mem, to_rm, true);
        break;
    }
    case 1: /* r/m32, r32 and r32, r/m32 */ {
        bool to_rm = rndn(2);
        put(c, 1, (op << 3) | (to_rm ? 1 : 3));
        modrm(c, to_rm ? areg() : vreg(), rndn(2), to_rm, false);
        break;
    }
    case 2: /* 80 /op ib */
        put(c, 1, 0x80);
        modrm(c, op, rndn(2), true, true);
        put(c, 1, (int)rndn(256));
        break;
    case 3: /* 81 /op id (or iw with 66: emit 4 bytes only without it) */
        if (c->n && c->b[c->n - 1] == 0x66) {
            put(c, 1, 0x83);
            modrm(c, op, rndn(2), true, false);
            put(c, 1, (int)rndn(256));
        } else {
            put(c, 1, 0x81);
            modrm(c, op, rndn(2), true, false);
            put32(c, rnd());
        }
        break;
    default: /* accumulator forms 04/05 and test */
        if (rndn(2)) {
            put(c, 2, (op << 3) | 4, (int)rndn(256));
        } else {
            put(c, 1, 0x85);
            modrm(c, areg(), rndn(2), false, false);
        }
        break;
    }
}

static void gen_shift(struct code *c)
{
    uint8_t op = (uint8_t)rndn(8); /* rol ror rcl rcr shl shr sal sar */
    bool byte = rndn(3) == 0;
    if (!byte && rndn(4) == 0)
        put(c, 1, 0x66);
    switch (rndn(4)) {
    case 0: put(c, 1, byte ? 0xD0 : 0xD1); modrm(c, op, rndn(2), true, byte); break;
    case 1: put(c, 1, byte ? 0xD2 : 0xD3); modrm(c, op, rndn(2), true, byte); break;
    case 2: put(c, 1, byte ? 0xC0 : 0xC1); modrm(c, op, rndn(2), true, byte);
            put(c, 1, (int)rndn(40)); break;
    default: /* shld/shrd by imm or cl */ {
        bool cl = rndn(2), right = rndn(2);
        put(c, 2, 0x0F, (right ? 0xAC : 0xA4) + (cl ? 1 : 0));
        modrm(c, areg(), rndn(2), true, false);
        if (!cl)
            put(c, 1, (int)rndn(40));
        break;
    }
    }
}

static void gen_muldiv(struct code *c)
{
    switch (rndn(5)) {
    case 0: /* mul/imul r/m */
        put(c, 1, rndn(3) ? 0xF7 : 0xF6);
        modrm(c, 4 + rndn(2), rndn(2), false, c->b[c->n - 1] == 0xF6);
        break;
    case 1: /* imul r, r/m, imm */
        if (rndn(2)) { put(c, 1, 0x69); modrm(c, vreg(), rndn(2), false, false); put32(c, rnd()); }
        else { put(c, 1, 0x6B); modrm(c, vreg(), rndn(2), false, false); put(c, 1, (int)rndn(256)); }
        break;
    case 2: /* imul r, r/m */
        put(c, 2, 0x0F, 0xAF);
        modrm(c, vreg(), rndn(2), false, false);
        break;
    case 3: /* div: edx = 0, nonzero 32-bit divisor in ecx or memory */
        put(c, 2, 0x31, 0xD2); /* xor edx, edx */
        put(c, 1, 0xB9); put32(c, rnd() | 1); /* mov ecx, odd */
        put(c, 2, 0xF7, 0xF1); /* div ecx */
        break;
    default: /* idiv after cdq with a divisor that cannot overflow */
        put(c, 1, 0x99);       /* cdq */
        put(c, 1, 0xB9); put32(c, (rnd() | 0x10000) & 0x7fffffff); /* mov ecx, big positive */
        put(c, 2, 0xF7, 0xF9); /* idiv ecx */
        break;
    }
}

static void gen_unary(struct code *c)
{
    bool byte = rndn(3) == 0;
    if (!byte && rndn(4) == 0)
        put(c, 1, 0x66);
    switch (rndn(3)) {
    case 0: put(c, 1, byte ? 0xF6 : 0xF7); modrm(c, 2 + rndn(2), rndn(2), true, byte); break;
    case 1: put(c, 1, byte ? 0xFE : 0xFF); modrm(c, rndn(2), rndn(2), true, byte); break;
    default: put(c, 1, (rndn(2) ? 0x40 : 0x48) + vreg()); break; /* inc/dec r32 */
    }
}

static void gen_bitops(struct code *c)
{
    switch (rndn(4)) {
    case 0: /* bt/bts/btr/btc r/m, r: bound the bit offset to -512..511 first */
        put(c, 1, 0x81); put(c, 1, 0xE0 | EDX); put32(c, 0x3FF); /* and edx, 0x3ff */
        put(c, 1, 0x81); put(c, 1, 0xE8 | EDX); put32(c, 0x200); /* sub edx, 0x200 */
        put(c, 2, 0x0F, 0xA3 + 8 * rndn(4));
        modrm(c, EDX, rndn(2), true, false);
        break;
    case 1: /* bt* r/m, imm8 */
        put(c, 2, 0x0F, 0xBA);
        modrm(c, 4 + rndn(4), rndn(2), true, false);
        put(c, 1, (int)rndn(256));
        break;
    case 2: /* bsf/bsr */
        put(c, 2, 0x0F, rndn(2) ? 0xBC : 0xBD);
        modrm(c, vreg(), rndn(2), false, false);
        break;
    default: /* bswap */
        put(c, 2, 0x0F, 0xC8 + vreg());
        break;
    }
}

static void gen_atomic(struct code *c)
{
    bool lock = rndn(2);
    switch (rndn(4)) {
    case 0: if (lock) put(c, 1, 0xF0); put(c, 2, 0x0F, 0xB1); modrm(c, areg(), true, true, false); break;
    case 1: if (lock) put(c, 1, 0xF0); put(c, 2, 0x0F, 0xC7); modrm(c, 1, true, true, false); break;
    case 2: if (lock) put(c, 1, 0xF0); put(c, 2, 0x0F, 0xC1); modrm(c, vreg(), true, true, false); break;
    default: put(c, 1, 0x87); modrm(c, vreg(), true, true, false); break;
    }
}

static void gen_cond(struct code *c)
{
    gen_alu(c); /* fresh flags */
    if (rndn(2)) {
        put(c, 2, 0x0F, 0x90 + rndn(16));
        modrm(c, 0, rndn(2), true, true);
    } else {
        put(c, 2, 0x0F, 0x40 + rndn(16));
        modrm(c, vreg(), rndn(2), false, false);
    }
}

static void gen_movx(struct code *c)
{
    if (rndn(4) == 0)
        put(c, 1, 0x66);
    uint8_t op = (uint8_t)(0xB6 + 8 * rndn(2) + rndn(2)); /* b6 b7 be bf */
    put(c, 2, 0x0F, op);
    modrm(c, vreg(), rndn(2), false, !(op & 1));
}

static void gen_lea(struct code *c)
{
    if (rndn(5) == 0)
        put(c, 1, 0x66);
    put(c, 1, 0x8D);
    uint8_t mod = (uint8_t)rndn(3), rm = (uint8_t)rndn(8);
    put(c, 1, (mod << 6) | (vreg() << 3) | rm);
    uint8_t sib = (uint8_t)rndn(256);
    if (rm == 4)
        put(c, 1, sib); /* any SIB */
    if (mod == 1)
        put(c, 1, (int)rndn(256));
    if (mod == 2 || (mod == 0 && rm == 5) || (rm == 4 && mod == 0 && (sib & 7) == 5))
        put32(c, rnd());
}

static void gen_string(struct code *c)
{
    put(c, 1, 0xB9); put32(c, rndn(40)); /* mov ecx, count */
    bool down = rndn(2);
    if (down)
        put(c, 1, 0xFD);
    static const uint8_t ops[] = { 0xA4, 0xA5, 0xAA, 0xAB, 0xAC, 0xAD, 0xA6, 0xA7, 0xAE, 0xAF };
    uint8_t op = ops[rndn(10)];
    if ((op & 1) && rndn(3) == 0)
        put(c, 1, 0x66);
    bool cmp = op == 0xA6 || op == 0xA7 || op == 0xAE || op == 0xAF;
    uint32_t p = rndn(4);
    if (p == 1)
        put(c, 1, 0xF3);
    else if (p == 2 && cmp)
        put(c, 1, 0xF2);
    else if (p == 2 && (op == 0xA4 || op == 0xA5))
        put(c, 1, 0xF3);
    put(c, 1, op);
    if (down)
        put(c, 1, 0xFC);
}

static void gen_stack(struct code *c)
{
    switch (rndn(9)) {
    case 0: put(c, 1, 0x50 + areg()); put(c, 1, 0x58 + vreg()); break;
    case 1: put(c, 2, 0x6A, (int)rndn(256)); put(c, 1, 0x68); put32(c, rnd());
            put(c, 1, 0x58 + vreg()); put(c, 1, 0x58 + vreg()); break;
    case 2: put(c, 1, 0xFF); modrm(c, 6, true, false, false); /* push m32 */
            put(c, 1, 0x8F); modrm(c, 0, true, true, false); break; /* pop m32 */
    case 3: put(c, 5, 0xE8, 2, 0, 0, 0); put(c, 3, 0xEB, 1, 0xC3); break; /* call; ret */
    case 4: put(c, 1, 0x68); put32(c, rnd());
            put(c, 5, 0xE8, 2, 0, 0, 0); put(c, 5, 0xEB, 3, 0xC2, 4, 0); break; /* ret 4 */
    case 5: put(c, 1, 0x60); put(c, 2, 0x31, 0xC0 | (areg() << 3) | vreg()); put(c, 1, 0x61); break;
    case 6: put(c, 4, 0xC8, (int)rndn(64), 0, 0); put(c, 1, 0xC9); break; /* enter n, 0; leave */
    case 7: put(c, 4, 0xC8, (int)rndn(64), 0, 1); put(c, 1, 0xC9); break; /* enter n, 1 */
    default: put(c, 2, 0x66, 0x50 + vreg()); put(c, 2, 0x66, 0x58 + vreg()); break;
    }
}

static void gen_fpu(struct code *c)
{
    /* Balanced: load two values, combine, store; memory operands from the areas. */
    switch (rndn(4)) {
    case 0: put(c, 1, 0xD9); modrm(c, 0, true, false, false);       /* fld m32 */
            put(c, 1, 0xD8); /* fadd fmul fcom fsub fsubr fdiv fdivr m32 (not fcomp) */
            modrm(c, (const uint8_t[]){ 0, 1, 2, 4, 5, 6, 7 }[rndn(7)], true, false, false);
            put(c, 1, 0xD9); modrm(c, 3, true, true, false); break; /* fstp m32 */
    case 1: put(c, 1, 0xDD); modrm(c, 0, true, false, false);       /* fld m64 */
            put(c, 1, 0xDC); modrm(c, rndn(2) ? 1 : 0, true, false, false);
            put(c, 1, 0xDD); modrm(c, 3, true, true, false); break; /* fstp m64 */
    case 2: put(c, 1, 0xDB); modrm(c, 0, true, false, false);       /* fild m32 */
            put(c, 1, 0xDB); modrm(c, 3, true, true, false); break; /* fistp m32 */
    default: /* SSE: movss/movsd/movups load, an op, store */ {
        static const uint8_t pre[3] = { 0xF3, 0xF2, 0x00 };
        int k = (int)rndn(3);
        if (pre[k]) put(c, 1, pre[k]);
        put(c, 2, 0x0F, 0x10); modrm(c, 0, true, false, false);
        if (pre[k]) {
            put(c, 1, pre[k]);
            put(c, 2, 0x0F, 0x58 + (rndn(2) ? 0 : 1)); modrm(c, 0, true, false, false);
        } else { /* packed arithmetic wants aligned memory: load with movups first */
            put(c, 2, 0x0F, 0x10); modrm(c, 1, true, false, false);
            put(c, 3, 0x0F, 0x58 + (rndn(2) ? 0 : 1), 0xC1); /* addps/mulps xmm0, xmm1 */
        }
        if (pre[k]) put(c, 1, pre[k]);
        put(c, 2, 0x0F, 0x11); modrm(c, 0, true, true, false);
        break;
    }
    }
}

static void gen_absolute(struct code *c)
{
    uint32_t a = DATA + 0x100 + rndn(DATA_SIZE - 0x200);
    switch (rndn(4)) {
    case 0: put(c, 1, 0xA1 + 2 * rndn(2)); put32(c, a); break; /* mov eax,[moffs] / mov [moffs],eax */
    case 1: put(c, 1, 0xA0 + 2 * rndn(2)); put32(c, a); break;
    case 2: put(c, 2, 0x66, 0xA1); put32(c, a); break;
    default: put(c, 2, 0x8B, 0x05 | (vreg() << 3)); put32(c, a); break;
    }
}

static void gen_segovr(struct code *c)
{
    static const uint8_t seg[6] = { 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65 };
    uint8_t s = seg[rndn(6)];
    put(c, 1, s);
    if (s == 0x2E) { /* CS is read-only: loads only */
        put(c, 1, 0x8B);
        modrm(c, vreg(), true, false, false);
    } else {
        gen_alu(c);
    }
}

static void gen_misc(struct code *c)
{
    switch (rndn(8)) {
    case 6: /* push flags value; popfd: arithmetic flags and DF (no TF: it would trap) */
        put(c, 1, 0x68); put32(c, (rnd() & 0xCD5u) | 0x202u); put(c, 1, 0x9D); break; /* IF kept: user mode cannot clear it */
    case 7: /* pushfd; pop r */
        put(c, 1, 0x9C); put(c, 1, 0x58 + vreg()); break;
    case 0: put(c, 1, 0x98); break;             /* cwde */
    case 1: put(c, 2, 0x66, 0x98); break;       /* cbw */
    case 2: put(c, 1, 0x99); break;             /* cdq */
    case 3: put(c, 2, 0x66, 0x99); break;       /* cwd */
    case 4: put(c, 1, 0x9F); put(c, 2, 0x80, 0xF4); put(c, 1, (int)rndn(256)); put(c, 1, 0x9E); break;
    default: put(c, 1, 0xD7); break;            /* xlat [ebx + al] */
    }
}

static void gen_loop(struct code *c)
{
    uint32_t kind = rndn(4);
    /* mov ecx, n: 0 only for jecxz (LOOP with ECX=0 would run 2^32 times) */
    put(c, 1, 0xB9); put32(c, kind == 3 ? rndn(3) : 1 + rndn(20));
    switch (kind) {
    case 0: put(c, 4, 0x01, 0xD0, 0xE2, 0xFC); break;       /* l: add eax, edx; loop l */
    case 1: put(c, 4, 0x4A, 0x90, 0xE1, 0xFC); break;       /* l: dec edx; nop; loopz l */
    case 2: put(c, 4, 0x42, 0x90, 0xE0, 0xFC); break;       /* l: inc edx; nop; loopnz l */
    default: put(c, 4, 0xE3, 0x01, 0x40, 0x42); break;      /* jecxz +1; inc eax; inc edx */
    }
}

static void gen_branch(struct code *c)
{
    gen_alu(c);
    put(c, 2, 0x70 + rndn(16), 2);  /* jcc +2 */
    put(c, 2, 0x40 + vreg(), 0x90); /* inc r; nop */
    put(c, 1, 0x40 + vreg());
}

/* Stack and string instructions whose offsets wrap at 4 GiB (based DS, ES, SS). */
static void gen_segwrap(struct code *c)
{
    uint8_t d8 = (uint8_t)((rndn(32) - 16) * 4);
    switch (rndn(12)) {
    case 0: put(c, 1, 0x50 + areg()); put(c, 1, 0x58 + vreg()); break;
    case 1: put(c, 2, 0x6A, (int)rndn(256)); put(c, 1, 0x68); put32(c, rnd());
            put(c, 1, 0x58 + vreg()); put(c, 1, 0x58 + vreg()); break;
    case 2: put(c, 3, 0xFF, 0x75, d8); put(c, 3, 0x8F, 0x45, (uint8_t)(d8 + 4)); break; /* [ebp] */
    case 3: put(c, 4, 0xFF, 0x74, 0x24, d8 & 0x7c); put(c, 4, 0x8F, 0x44, 0x24, d8 & 0x7c); break;
    case 4: /* [esi], [edi]: DS; aligned first (a word string op may have left ESI at
               2 mod 4, and a dword at offset 0xfffffffe straddles the 4 GiB limit) */
            put(c, 3, 0x83, 0xE6, 0xFC); put(c, 3, 0x83, 0xE7, 0xFC);
            put(c, 3, 0xFF, 0x76, d8); put(c, 3, 0x8F, 0x47, d8); break;
    case 5: put(c, 5, 0xE8, 2, 0, 0, 0); put(c, 3, 0xEB, 1, 0xC3); break;
    case 6: put(c, 1, 0x68); put32(c, rnd());
            put(c, 5, 0xE8, 2, 0, 0, 0); put(c, 5, 0xEB, 3, 0xC2, 4, 0); break;
    case 7: put(c, 1, 0x60); put(c, 2, 0x31, 0xC0 | (areg() << 3) | vreg()); put(c, 1, 0x61); break;
    case 8: put(c, 4, 0xC8, (int)rndn(16) * 4, 0, (int)rndn(3)); put(c, 1, 0xC9); break;
    case 9: put(c, 1, 0x68); put32(c, (rnd() & 0xCD5u) | 0x202u); put(c, 1, 0x9D);
            put(c, 1, 0x9C); put(c, 1, 0x58 + vreg()); break;
    default: /* a string instruction, sometimes with an ES or SS source */
        /* Aligned pointers: an element that straddles offset 0xffffffff/0 passes the
           4 GiB limit (this CPU raises #GP there; the SDM leaves it open). */
        put(c, 3, 0x83, 0xE6, 0xFC); /* and esi, -4 */
        put(c, 3, 0x83, 0xE7, 0xFC); /* and edi, -4 */
        if (rndn(3) == 0) {
            put(c, 1, 0xB9); put32(c, rndn(40));
            if (rndn(2)) put(c, 1, 0xFD);
            put(c, 1, rndn(2) ? 0x26 : 0x36);
            put(c, 2, 0xF3, rndn(2) ? 0xA4 : 0xA5);
            put(c, 1, 0xFC);
        } else {
            gen_string(c);
        }
        break;
    }
}

/* ---- 16-bit code (families code16 and stack16) ------------------------------------------
 * CS is a 16-bit code segment (D clear) based at CODE; DS, ES, FS and GS are 64 KiB data
 * segments based at DATA, EXTRA, EXTRA and STACK, and SS a 64 KiB segment based at STACK
 * with B set (code16: ESP moves, kept in the middle) or clear (stack16: SP moves and
 * wraps, ESP's upper half random and kept).  Every 16-bit offset is inside its segment,
 * so 16-bit addressing needs no bound; what must be kept by construction is alignment: a
 * word or dword at offset 0xFFFD..0xFFFF passes the 64 KiB limit (#GP/#SS).  So BX, BP, SI
 * and DI are multiples of 4 between generated units (string units realign SI and DI),
 * displacements are multiples of 4, and on the 16-bit stack SP is a multiple of 4 between
 * units and dwords are pushed only at such SP.  32-bit addressing (0x67) uses whole
 * registers: the pointer registers it uses are first brought into 0x1000..0x4FFC.
 * CS-relative reads address only CODE + 0x1000..0xFFFF (a fixed pattern in both runs; the
 * first page holds the native prologue and epilogue, which xbt does not have).
 * In code16, EBP's upper half stays 0 and BP >= 0x1000: with a 32-bit stack, LEAVE copies
 * all of EBP to ESP and ENTER's level copies read [EBP - 2]. */

/* Set by gen_stack16: the code runs on a 16-bit stack. */
static bool gen_on_stack16;

/* An r/m memory operand: ModRM with its reg field 0, SIB, displacement. */
struct ea {
    bool a32;
    uint8_t n, b[7];
};

/* and r32, 0x3FFC; or r32, 0x1000: a pointer register fit for [r32 + r32*2 + disp8]. */
static void norm32(struct code *c, uint8_t r)
{
    put(c, 3, 0x66, 0x81, 0xE0 | r); put32(c, 0x3FFC);
    put(c, 3, 0x66, 0x81, 0xC8 | r); put32(c, 0x1000);
}

/* Picks a memory operand; for 32-bit addressing (one in five) emits the normalisation
   of its registers first.  Offsets are multiples of 4. */
static struct ea pick_ea(struct code *c)
{
    struct ea e = { .n = 0 };
    if (rndn(5) == 0) {
        e.a32 = true;
        uint8_t base = ptr_regs[rndn(4)];
        norm32(c, base);
        switch (rndn(3)) {
        case 0: /* [base + disp8] */
            e.b[e.n++] = 0x40 | base;
            e.b[e.n++] = (uint8_t)(4 * rndn(32));
            break;
        case 1: /* [base + disp32] */
            e.b[e.n++] = 0x80 | base;
            for (uint32_t v = 4 * rndn(0x400), i = 0; i < 4; i++)
                e.b[e.n++] = (uint8_t)(v >> (8 * i));
            break;
        default: { /* [base + index*1|2 + disp8] */
            uint8_t index = ptr_regs[rndn(4)];
            if (index != base)
                norm32(c, index);
            e.b[e.n++] = 0x44;
            e.b[e.n++] = (uint8_t)(rndn(2) << 6 | index << 3 | base);
            e.b[e.n++] = (uint8_t)(4 * rndn(32));
            break;
        }
        }
        return e;
    }
    uint8_t mod = (uint8_t)rndn(3), rm = (uint8_t)rndn(8);
    e.b[e.n++] = (uint8_t)(mod << 6 | rm);
    if (mod == 1) {
        e.b[e.n++] = (uint8_t)(4 * ((int)rndn(64) - 32));
    } else if (mod == 2 || rm == 6) { /* disp16 (mod 0, rm 6: [disp16] alone) */
        uint32_t v = 4 * rndn(0x4000);
        e.b[e.n++] = (uint8_t)v;
        e.b[e.n++] = (uint8_t)(v >> 8);
    }
    return e;
}

/* Prefixes of an instruction with an r/m operand: sometimes a segment override (not
   CS: the code page differs between the runs), 0x66 when o32, 0x67 for 32-bit
   addressing. */
static void prefixes16(struct code *c, const struct ea *e, bool o32)
{
    static const uint8_t seg[5] = { 0x26, 0x36, 0x3E, 0x64, 0x65 };
    if (e && rndn(4) == 0)
        put(c, 1, seg[rndn(5)]);
    if (o32)
        put(c, 1, 0x66);
    if (e && e->a32)
        put(c, 1, 0x67);
}

/* The ModRM (and the rest of the operand): memory e, or a register when e is NULL: a
   value register when written, any register when only read. */
static void operand16(struct code *c, const struct ea *e, uint8_t reg, bool rm_written, bool byte)
{
    if (!e) {
        modrm(c, reg, false, rm_written, byte);
        return;
    }
    put(c, 1, e->b[0] | reg << 3);
    for (int i = 1; i < e->n; i++)
        put(c, 1, e->b[i]);
}

static void imm16(struct code *c, bool o32)
{
    if (o32)
        put32(c, rnd());
    else
        put(c, 2, (int)rndn(256), (int)rndn(256));
}

/* A memory operand (emitting its normalisation) or NULL for a register, half and half. */
static const struct ea *maybe_mem(struct code *c, struct ea *store)
{
    if (rndn(2))
        return NULL;
    *store = pick_ea(c);
    return store;
}

/* ALU, MOV, TEST and XCHG with register, immediate and memory operands. */
static void gen16_alu(struct code *c)
{
    struct ea st;
    const struct ea *e = maybe_mem(c, &st);
    bool byte = rndn(4) == 0, o32 = !byte && rndn(4) == 0;
    uint8_t op = (uint8_t)rndn(8); /* add or adc sbb and sub xor cmp */
    prefixes16(c, e, o32);
    switch (rndn(7)) {
    case 0: /* op r/m, r */
        put(c, 1, op << 3 | (byte ? 0 : 1));
        operand16(c, e, byte ? (uint8_t)rndn(8) : areg(), true, byte);
        break;
    case 1: /* op r, r/m */
        put(c, 1, op << 3 | (byte ? 2 : 3));
        operand16(c, e, byte ? val_regs8[rndn(6)] : vreg(), false, byte);
        break;
    case 2: /* 80/81 /op imm, 83 /op imm8 */
        if (byte) {
            put(c, 1, 0x80); operand16(c, e, op, true, true); put(c, 1, (int)rndn(256));
        } else if (rndn(2)) {
            put(c, 1, 0x81); operand16(c, e, op, true, false); imm16(c, o32);
        } else {
            put(c, 1, 0x83); operand16(c, e, op, true, false); put(c, 1, (int)rndn(256));
        }
        break;
    case 3: /* mov r/m, r and mov r, r/m */
        if (rndn(2)) {
            put(c, 1, byte ? 0x88 : 0x89); operand16(c, e, byte ? (uint8_t)rndn(8) : areg(), true, byte);
        } else {
            put(c, 1, byte ? 0x8A : 0x8B);
            operand16(c, e, byte ? val_regs8[rndn(6)] : vreg(), false, byte);
        }
        break;
    case 4: /* mov r/m, imm */
        put(c, 1, byte ? 0xC6 : 0xC7); operand16(c, e, 0, true, byte);
        if (byte) put(c, 1, (int)rndn(256)); else imm16(c, o32);
        break;
    case 5: /* test r/m, r; test r/m, imm */
        if (rndn(2)) {
            put(c, 1, byte ? 0x84 : 0x85); operand16(c, e, byte ? (uint8_t)rndn(8) : areg(), false, byte);
        } else {
            put(c, 1, byte ? 0xF6 : 0xF7); operand16(c, e, 0, false, byte);
            if (byte) put(c, 1, (int)rndn(256)); else imm16(c, o32);
        }
        break;
    default: /* accumulator forms (no ModRM), mov r, imm, xchg r/m, r */
        if (e) {
            put(c, 1, byte ? 0x86 : 0x87);
            operand16(c, e, byte ? val_regs8[rndn(6)] : vreg(), true, byte);
        } else if (rndn(2)) {
            put(c, 1, op << 3 | (byte ? 4 : 5));
            if (byte) put(c, 1, (int)rndn(256)); else imm16(c, o32);
        } else {
            put(c, 1, 0xB8 + vreg()); imm16(c, o32);
        }
        break;
    }
}

/* Shifts and rotates, SHLD/SHRD, NOT/NEG/INC/DEC, MOVZX/MOVSX, BT*, Jcc-fed SETcc/CMOVcc. */
static void gen16_shift_unary(struct code *c)
{
    struct ea st;
    const struct ea *e = maybe_mem(c, &st);
    bool o32 = rndn(4) == 0, byte = rndn(3) == 0;
    uint8_t op = (uint8_t)rndn(8);
    switch (rndn(7)) {
    case 0: /* D0-D3, C0-C1 */ {
        prefixes16(c, e, o32 && !byte);
        unsigned k = rndn(3);
        put(c, 1, (k == 2 ? 0xC0 : k == 1 ? 0xD2 : 0xD0) + (byte ? 0 : 1));
        operand16(c, e, op, true, byte);
        if (k == 2)
            put(c, 1, (int)rndn(40));
        break;
    }
    case 1: /* shld/shrd by imm or cl */ {
        bool cl = rndn(2);
        prefixes16(c, e, o32);
        put(c, 2, 0x0F, (rndn(2) ? 0xAC : 0xA4) + (cl ? 1 : 0));
        operand16(c, e, areg(), true, false);
        if (!cl)
            put(c, 1, (int)rndn(40));
        break;
    }
    case 2: /* not neg inc dec */
        prefixes16(c, e, o32 && !byte);
        if (rndn(2)) { put(c, 1, byte ? 0xF6 : 0xF7); operand16(c, e, 2 + rndn(2), true, byte); }
        else { put(c, 1, byte ? 0xFE : 0xFF); operand16(c, e, rndn(2), true, byte); }
        break;
    case 3: /* movzx/movsx */ {
        uint8_t mop = (uint8_t)(0xB6 + 8 * rndn(2) + rndn(2));
        prefixes16(c, e, o32);
        put(c, 2, 0x0F, mop);
        operand16(c, e, vreg(), false, !(mop & 1));
        break;
    }
    case 4: /* bt* r/m, imm8 */
        prefixes16(c, e, o32);
        put(c, 2, 0x0F, 0xBA);
        operand16(c, e, 4 + rndn(4), true, false);
        put(c, 1, (int)rndn(256));
        break;
    case 5: /* bt* r/m, r with a register operand (a memory operand would address
               around the operand by the offset) */
        if (e) /* the memory operand picked is then a plain source */
            { prefixes16(c, e, o32); put(c, 1, 0x8B); operand16(c, e, vreg(), false, false); }
        prefixes16(c, NULL, o32);
        put(c, 2, 0x0F, 0xA3 + 8 * rndn(4));
        operand16(c, NULL, areg(), true, false);
        break;
    default: /* a flag producer, then setcc r/m8 or cmovcc r, r/m */
        put(c, 2, 0x39, 0xC0 | rndn(8) << 3 | vreg()); /* cmp r16, r16 */
        if (rndn(2)) {
            prefixes16(c, e, false);
            put(c, 2, 0x0F, 0x90 + rndn(16));
            operand16(c, e, 0, true, true);
        } else {
            prefixes16(c, e, o32);
            put(c, 2, 0x0F, 0x40 + rndn(16));
            operand16(c, e, vreg(), false, false);
        }
        break;
    }
}

/* MUL/IMUL in all forms, DIV/IDIV with operands that cannot raise #DE. */
static void gen16_muldiv(struct code *c)
{
    struct ea st;
    const struct ea *e;
    bool o32 = rndn(4) == 0;
    switch (rndn(6)) {
    case 0: /* mul/imul r/m */ {
        bool byte = rndn(3) == 0;
        e = maybe_mem(c, &st);
        prefixes16(c, e, o32 && !byte);
        put(c, 1, byte ? 0xF6 : 0xF7);
        operand16(c, e, 4 + rndn(2), false, byte);
        break;
    }
    case 1: /* imul r, r/m, imm */
        e = maybe_mem(c, &st);
        prefixes16(c, e, o32);
        if (rndn(2)) { put(c, 1, 0x69); operand16(c, e, vreg(), false, false); imm16(c, o32); }
        else { put(c, 1, 0x6B); operand16(c, e, vreg(), false, false); put(c, 1, (int)rndn(256)); }
        break;
    case 2: /* imul r, r/m */
        e = maybe_mem(c, &st);
        prefixes16(c, e, o32);
        put(c, 2, 0x0F, 0xAF);
        operand16(c, e, vreg(), false, false);
        break;
    case 3: /* div cx: dx = 0, odd divisor */
        if (o32) { put(c, 3, 0x66, 0x31, 0xD2); put(c, 2, 0x66, 0xB9); put32(c, rnd() | 1); put(c, 3, 0x66, 0xF7, 0xF1); }
        else { put(c, 2, 0x31, 0xD2); put(c, 3, 0xB9, (int)(rndn(256) | 1), (int)rndn(256)); put(c, 2, 0xF7, 0xF1); }
        break;
    case 4: /* idiv cx after cwd/cdq: |dividend| <= 2^15 (2^31), divisor >= 2^8 (2^16) */
        if (o32) { put(c, 2, 0x66, 0x99); put(c, 2, 0x66, 0xB9); put32(c, (rnd() | 0x10000) & 0x7fffffff); put(c, 3, 0x66, 0xF7, 0xF9); }
        else { put(c, 1, 0x99); put(c, 3, 0xB9, (int)rndn(256), (int)(rndn(128) | 1)); put(c, 2, 0xF7, 0xF9); }
        break;
    default: /* div cl with ah = 0 */
        put(c, 2, 0xB4, 0); put(c, 2, 0xB1, (int)(rndn(256) | 1)); put(c, 2, 0xF6, 0xF1);
        break;
    }
}

/* push flags; popf; pushf; pop r (16 or 32 bits): arithmetic flags and DF, IF kept. */
static void flags16(struct code *c)
{
    uint32_t v = (rnd() & 0xCD5u) | 0x202u;
    if (rndn(2)) {
        put(c, 2, 0x66, 0x68); put32(c, v); put(c, 2, 0x66, 0x9D);
        put(c, 2, 0x66, 0x9C); put(c, 2, 0x66, 0x58 + vreg());
    } else {
        put(c, 3, 0x68, (int)(v & 0xFF), (int)(v >> 8)); put(c, 1, 0x9D);
        put(c, 1, 0x9C); put(c, 1, 0x58 + vreg());
    }
}

/* LEA in both address sizes (any registers: nothing is accessed), CBW/CWD, XLAT,
   CS-relative loads, PUSHF/POPF through the stack. */
static void gen16_misc(struct code *c)
{
    switch (rndn(7)) {
    case 0: case 1: { /* lea r, m: 16-bit addressing, or 32-bit with any SIB */
        if (rndn(3) == 0)
            put(c, 1, 0x66);
        bool a32 = rndn(3) == 0;
        if (a32)
            put(c, 1, 0x67);
        put(c, 1, 0x8D);
        uint8_t mod = (uint8_t)rndn(3), rm = (uint8_t)rndn(8);
        put(c, 1, mod << 6 | vreg() << 3 | rm);
        if (a32) {
            uint8_t sib = (uint8_t)rndn(256);
            if (rm == 4)
                put(c, 1, sib);
            if (mod == 1)
                put(c, 1, (int)rndn(256));
            if (mod == 2 || (mod == 0 && rm == 5) || (rm == 4 && mod == 0 && (sib & 7) == 5))
                put32(c, rnd());
        } else {
            if (mod == 1)
                put(c, 1, (int)rndn(256));
            if (mod == 2 || (mod == 0 && rm == 6))
                put(c, 2, (int)rndn(256), (int)rndn(256));
        }
        break;
    }
    case 2: /* cbw cwde cwd cdq */
        if (rndn(2)) put(c, 1, 0x66);
        put(c, 1, rndn(2) ? 0x98 : 0x99);
        break;
    case 3: /* xlat: [bx + al] in DS or an override; 0x67: [ebx + al] */
        if (rndn(4) == 0) {
            norm32(c, EBX);
            put(c, 1, 0x67);
        } else if (rndn(2)) {
            put(c, 1, (const uint8_t[]){ 0x26, 0x36, 0x64, 0x65 }[rndn(4)]);
        }
        put(c, 1, 0xD7);
        break;
    case 4: /* cs: loads from CODE + 0x1000.. */ {
        uint32_t a = 0x1000 + 4 * rndn(0x3C00);
        if (rndn(2)) put(c, 1, 0x66);
        put(c, 2, 0x2E, rndn(2) ? 0x8B : 0x03);
        put(c, 1, 0x06 | vreg() << 3);
        put(c, 2, (int)(a & 0xFF), (int)(a >> 8));
        break;
    }
    case 5:
        flags16(c);
        break;
    default: /* lahf; xor ah, imm; sahf */
        put(c, 1, 0x9F); put(c, 3, 0x80, 0xF4, (int)rndn(256)); put(c, 1, 0x9E);
        break;
    }
}

/* String instructions with 16-bit addressing: SI and DI aligned or near 0 or 0xFFFF so
   that they wrap inside the segments, CX bounded (ECX's upper half random: kept), DF
   both ways, overrides on the source (and, ignored, on STOS/SCAS); sometimes 32-bit
   addressing (0x67: ESI, EDI, ECX) instead. */
static void gen16_string(struct code *c)
{
    static const uint8_t ops[] = { 0xA4, 0xA5, 0xAA, 0xAB, 0xAC, 0xAD, 0xA6, 0xA7, 0xAE, 0xAF };
    bool a32 = rndn(5) == 0;
    uint8_t op = ops[rndn(10)];
    bool cs_src = !a32 && rndn(8) == 0 && op != 0xAA && op != 0xAB && op != 0xAE &&
                  op != 0xAF;
    if (a32) {
        norm32(c, ESI);
        norm32(c, EDI);
        put(c, 2, 0x66, 0xB9); put32(c, rndn(40));
    } else {
        for (int r = ESI; r <= EDI; r++) {
            uint32_t k = rndn(3);
            if (r == ESI && cs_src) /* CODE + 0x1100..0xFEFC: never the first page */
                put(c, 3, 0xB8 + r, 0, 0x11 + (int)rndn(0xED));
            else if (k == 0)
                put(c, 3, 0x83, 0xE0 | r, 0xFC); /* and r16, 0xFFFC */
            else
                put(c, 3, 0xB8 + r, (int)(k == 1 ? 4 * rndn(16) : 0x100 - 4 * (1 + rndn(16))),
                    k == 1 ? 0 : 0xFF); /* mov r16, 0..0x3C or 0xFFC0..0xFFFC */
        }
        put(c, 3, 0xB9, (int)rndn(40), 0);
    }
    bool down = rndn(2);
    if (down)
        put(c, 1, 0xFD);
    if (cs_src)
        put(c, 1, 0x2E);
    else if (rndn(3) == 0)
        put(c, 1, (const uint8_t[]){ 0x26, 0x36, 0x3E, 0x64, 0x65 }[rndn(5)]);
    if ((op & 1) && rndn(3) == 0)
        put(c, 1, 0x66);
    if (a32)
        put(c, 1, 0x67);
    bool cmp = op == 0xA6 || op == 0xA7 || op == 0xAE || op == 0xAF;
    uint32_t p = rndn(4);
    if (p == 1)
        put(c, 1, 0xF3);
    else if (p == 2 && cmp)
        put(c, 1, 0xF2);
    else if (p == 2 && (op == 0xA4 || op == 0xA5 || op == 0xAA || op == 0xAB))
        put(c, 1, 0xF3);
    put(c, 1, op);
    if (down)
        put(c, 1, 0xFC);
    /* Realigned, the flags kept for the units after (REPE/REPNE's last compare); not on
       a 16-bit stack, where POPF is excluded (see flags16). */
    if (!gen_on_stack16)
        put(c, 1, 0x9C);         /* pushf */
    put(c, 3, 0x83, 0xE6, 0xFC); /* and si, 0xFFFC */
    put(c, 3, 0x83, 0xE7, 0xFC); /* and di, 0xFFFC */
    if (!gen_on_stack16)
        put(c, 1, 0x9D);         /* popf */
}

/* LOOP/LOOPE/LOOPNE/JCXZ on CX (ECX's upper half random), and with 0x67 on ECX; Jcc
   rel8, rel16 and (0x66) rel32, JMP rel16. */
static void gen16_branch(struct code *c)
{
    switch (rndn(7)) {
    case 0: put(c, 3, 0xB9, 1 + (int)rndn(20), 0); put(c, 4, 0x01, 0xD0, 0xE2, 0xFC); break; /* add ax, dx; loop */
    case 1: put(c, 3, 0xB9, 1 + (int)rndn(20), 0); put(c, 4, 0x4A, 0x90, 0xE1, 0xFC); break; /* dec dx; nop; loope */
    case 2: put(c, 3, 0xB9, 1 + (int)rndn(20), 0); put(c, 4, 0x42, 0x90, 0xE0, 0xFC); break; /* inc dx; nop; loopne */
    case 3: put(c, 3, 0xB9, (int)rndn(3), 0); put(c, 4, 0xE3, 0x01, 0x40, 0x42); break;       /* jcxz +1 */
    case 4: /* 0x67: loop on ECX, jecxz */
        if (rndn(2)) { put(c, 2, 0x66, 0xB9); put32(c, 1 + rndn(20)); put(c, 5, 0x01, 0xD0, 0x67, 0xE2, 0xFB); }
        else { put(c, 2, 0x66, 0xB9); put32(c, rndn(3)); put(c, 5, 0x67, 0xE3, 0x01, 0x40, 0x42); }
        break;
    case 5: /* a flag producer, jcc over two bytes: rel8, rel16, rel32 */
        put(c, 2, 0x39, 0xC0 | rndn(8) << 3 | vreg());
        switch (rndn(3)) {
        case 0: put(c, 2, 0x70 + rndn(16), 2); break;
        case 1: put(c, 4, 0x0F, 0x80 + rndn(16), 2, 0); break;
        default: put(c, 3, 0x66, 0x0F, 0x80 + rndn(16)); put32(c, 2); break;
        }
        put(c, 2, 0x40 + vreg(), 0x90);
        put(c, 1, 0x40 + vreg());
        break;
    default: /* jmp rel16 or (0x66) rel32 over one byte */
        if (rndn(2)) put(c, 3, 0xE9, 1, 0);
        else { put(c, 2, 0x66, 0xE9); put32(c, 1); }
        put(c, 2, 0x40 + vreg(), 0x40 + vreg());
        break;
    }
}

/* Stack instructions, SP-balanced, pushing dwords only at SP = 0 mod 4. */
static void gen16_stack(struct code *c)
{
    uint8_t v = vreg();
    switch (rndn(18)) {
    case 0: put(c, 1, 0x50 + areg()); put(c, 1, 0x58 + vreg()); break;           /* push/pop r16 */
    case 1: put(c, 2, 0x66, 0x50 + areg()); put(c, 2, 0x66, 0x58 + vreg()); break; /* r32 */
    case 2: put(c, 2, 0x6A, (int)rndn(256)); put(c, 3, 0x68, (int)rndn(256), (int)rndn(256));
            put(c, 1, 0x58 + vreg()); put(c, 1, 0x58 + vreg()); break;            /* push imm */
    case 3: put(c, 3, 0x66, 0x6A, (int)rndn(256)); put(c, 2, 0x66, 0x68); put32(c, rnd());
            put(c, 2, 0x66, 0x58 + vreg()); put(c, 2, 0x66, 0x58 + vreg()); break;
    case 4: put(c, 1, 0x50 + areg()); put(c, 1, 0x50 + areg()); put(c, 2, 0x66, 0x58 + vreg()); break;
    case 5: { /* push m; pop m (16 or 32 bits) */
        bool o32 = rndn(2);
        struct ea e = pick_ea(c);
        prefixes16(c, &e, o32); put(c, 1, 0xFF); operand16(c, &e, 6, false, false);
        e = pick_ea(c);
        prefixes16(c, &e, o32); put(c, 1, 0x8F); operand16(c, &e, 0, true, false);
        break;
    }
    case 6: put(c, 3, 0xE8, 2, 0); put(c, 3, 0xEB, 1, 0xC3); break;               /* call; ret */
    case 7: put(c, 2, 0x6A, (int)rndn(256)); put(c, 2, 0x6A, (int)rndn(256));
            put(c, 3, 0xE8, 2, 0); put(c, 5, 0xEB, 3, 0xC2, 4, 0); break;         /* ret 4 */
    case 8: /* call32; ret32 or ret32 4 */
        if (rndn(2)) {
            put(c, 2, 0x66, 0xE8); put32(c, 2); put(c, 4, 0xEB, 2, 0x66, 0xC3);
        } else {
            put(c, 2, 0x6A, (int)rndn(256)); put(c, 2, 0x6A, (int)rndn(256));
            put(c, 2, 0x66, 0xE8); put32(c, 2); put(c, 6, 0xEB, 4, 0x66, 0xC2, 4, 0);
        }
        break;
    case 9: /* call ax: the target computed from a pushed IP; the callee returns */
        put(c, 3, 0xE8, 0, 0); put(c, 1, 0x58 + v); put(c, 3, 0x83, 0xC0 | v, 8);
        put(c, 2, 0xFF, 0xD0 | v); put(c, 3, 0xEB, 1, 0xC3); break;
    case 10: /* jmp ax over one byte */
        put(c, 3, 0xE8, 0, 0); put(c, 1, 0x58 + v); put(c, 3, 0x83, 0xC0 | v, 7);
        put(c, 2, 0xFF, 0xE0 | v); put(c, 1, 0x40 + vreg()); break;
    case 11: /* pusha; clobber; popa (16 or 32 bits); on a 16-bit stack each element
                wraps at 64 KiB by itself */
        if (rndn(2)) { put(c, 1, 0x60); put(c, 2, 0x31, 0xC0 | areg() << 3 | vreg()); put(c, 1, 0x61); }
        else { put(c, 2, 0x66, 0x60); put(c, 3, 0x66, 0x31, 0xC0 | areg() << 3 | vreg()); put(c, 2, 0x66, 0x61); }
        break;
    case 12: /* enter/leave 16, levels 0-2 (on a 16-bit stack, at SP's wrap too) */
        put(c, 4, 0xC8, 2 * (int)rndn(32), 0, (int)rndn(3)); put(c, 1, 0xC9);
        break;
    case 13: /* enter/leave 32.  EXCLUDED on a 16-bit stack: there this (AMD) CPU takes
                ENTER's frame pointer from ESP whole (EBP = ESP's upper half : SP, pushed
                so at levels 1 and 2); xbt follows the SDM's ENTER (StackSize 16: BP =
                FrameTemp, SP-based) and QEMU TCG (gen_enter: the stack size's width) */
        if (gen_on_stack16)
            put(c, 4, 0xC8, 4 * (int)rndn(16), 0, (int)rndn(2)), put(c, 1, 0xC9);
        else
            put(c, 5, 0x66, 0xC8, 4 * (int)rndn(16), 0, (int)rndn(3)), put(c, 2, 0x66, 0xC9);
        break;
    case 14: case 15: { /* call/jmp through memory, the target (from a pushed IP) stored
                           there first; the callee returns */
        bool call = rndn(2);
        struct ea e = pick_ea(c);
        uint8_t seg = rndn(4) ? 0 : (const uint8_t[]){ 0x26, 0x36, 0x3E, 0x64, 0x65 }[rndn(5)];
        struct code t = { .n = 0 };
        for (int i = 0; i < 2; i++) { /* mov [m], v; call/jmp [m] */
            if (seg) put(&t, 1, seg);
            if (e.a32) put(&t, 1, 0x67);
            put(&t, 1, i ? 0xFF : 0x89);
            operand16(&t, &e, i ? (call ? 2 : 4) : v, !i, false);
        }
        if (call) put(&t, 3, 0xEB, 1, 0xC3); else put(&t, 1, 0x40 + vreg());
        put(c, 3, 0xE8, 0, 0); put(c, 1, 0x58 + v);
        put(c, 3, 0x83, 0xC0 | v, (int)(call ? 3 + t.n : 4 + t.n));
        memcpy(c->b + c->n, t.b, t.n);
        c->n += t.n;
        break;
    }
    case 16: /* call eax (0x66: EIP pushed as a dword); ret 32 */
        put(c, 3, 0xE8, 0, 0); put(c, 1, 0x58 + v); put(c, 3, 0x83, 0xC0 | v, 13);
        put(c, 4, 0x66, 0x0F, 0xB7, 0xC0 | v << 3 | v); /* movzx e_v, v */
        put(c, 3, 0x66, 0xFF, 0xD0 | v); put(c, 4, 0xEB, 2, 0x66, 0xC3);
        break;
    default:
        flags16(c);
        break;
    }
}

/* code16: every 16-bit form above, on a 32-bit stack. */
static void gen_code16(struct code *c)
{
    gen_on_stack16 = false;
    switch (rndn(8)) {
    case 0: case 1: gen16_alu(c); break;
    case 2: gen16_shift_unary(c); break;
    case 3: gen16_muldiv(c); break;
    case 4: gen16_misc(c); break;
    case 5: gen16_string(c); break;
    case 6: gen16_branch(c); break;
    default: gen16_stack(c); break;
    }
}

/* stack16: the same on a 16-bit stack, SP starting near 0 or 0xFFFF, mostly stack forms. */
static void gen_stack16(struct code *c)
{
    gen_on_stack16 = true;
    switch (rndn(6)) {
    case 0: gen16_alu(c); break; /* [bp+...] defaults to SS */
    case 1: gen16_string(c); break;
    case 2: gen16_branch(c); break;
    default: gen16_stack(c); break;
    }
}

typedef void (*gen_fn)(struct code *);
/* The segments a family runs with (SEGS_FLAT: all flat 32-bit). */
enum segs { SEGS_FLAT, SEGS_BASED, SEGS_CODE16, SEGS_STACK16 };
static const struct family {
    const char *name;
    gen_fn fn;
    enum segs segs;
} families[] = {
    { "alu", gen_alu, SEGS_FLAT }, { "shift", gen_shift, SEGS_FLAT }, { "muldiv", gen_muldiv, SEGS_FLAT },
    { "unary", gen_unary, SEGS_FLAT }, { "bitops", gen_bitops, SEGS_FLAT }, { "atomic", gen_atomic, SEGS_FLAT },
    { "cond", gen_cond, SEGS_FLAT }, { "movx", gen_movx, SEGS_FLAT }, { "lea", gen_lea, SEGS_FLAT },
    { "string", gen_string, SEGS_FLAT }, { "stack", gen_stack, SEGS_FLAT }, { "fpu_sse", gen_fpu, SEGS_FLAT },
    { "absolute", gen_absolute, SEGS_FLAT }, { "segovr", gen_segovr, SEGS_FLAT }, { "misc", gen_misc, SEGS_FLAT },
    { "loop", gen_loop, SEGS_FLAT }, { "branch", gen_branch, SEGS_FLAT }, { "segwrap", gen_segwrap, SEGS_BASED },
    { "code16", gen_code16, SEGS_CODE16 }, { "stack16", gen_stack16, SEGS_STACK16 },
};
#define N_FAMILIES (sizeof families / sizeof families[0])

/* ---- the two runs --------------------------------------------------------------------- */

static uint8_t *native_code, *native_data, *native_stack, *native_state, *native_extra;
/* The 16-bit families' segments (index + LDT16 natively, + 6 in xbt's GDT). */
enum { S16_CS, S16_DS, S16_ES, S16_SS32, S16_SS16, N_SEG16 };
static const struct { uint32_t base; bool code, big; } seg16[N_SEG16] = {
    { CODE, true, false }, { DATA, false, false }, { EXTRA, false, false },
    { STACK, false, true }, { STACK, false, false },
};
/* xbt's segments as setup_once left them: flat CS, FS and GS. */
static xbt_segment flat_cs, flat_fs, flat_gs;
/* Where the test code starts in both runs: after the native prologue, so that return
   addresses pushed by CALL agree. */
static uint32_t code_at;
static xbt_vm *vm;
static xbt_vcpu *cpu;
static sigjmp_buf native_jmp;
static volatile int native_signal;
static unsigned long host_fs_base, host_gs_base;

/* arch_prctl without libc: usable while FS does not point at libc's thread block. */
static inline void raw_arch_prctl(int code, unsigned long addr)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_arch_prctl), "D"((long)code),
                     "S"(addr) : "rcx", "r11", "memory");
    (void)ret;
}

static inline void restore_host_bases(void)
{
    raw_arch_prctl(ARCH_SET_FS, host_fs_base);
    raw_arch_prctl(ARCH_SET_GS, host_gs_base);
}

__attribute__((no_stack_protector)) static void on_native_fault(int sig)
{
    restore_host_bases(); /* before siglongjmp, which reads the pointer guard via FS */
    native_signal = sig;
    siglongjmp(native_jmp, 1);
}

static void setup_once(void)
{
    if (native_code)
        return;
    struct { uint32_t at, size; uint8_t **p; int prot; } areas[] = {
        { CODE, SEG16_SIZE, &native_code, PROT_READ | PROT_WRITE | PROT_EXEC },
        { DATA, DATA_SIZE, &native_data, PROT_READ | PROT_WRITE },
        { STACK, STACK_SIZE, &native_stack, PROT_READ | PROT_WRITE },
        { STATE, 0x1000, &native_state, PROT_READ | PROT_WRITE },
        { EXTRA, EXTRA_SIZE, &native_extra, PROT_READ | PROT_WRITE },
    };
    for (size_t i = 0; i < sizeof areas / sizeof areas[0]; i++) {
        void *p = mmap((void *)(uintptr_t)areas[i].at, areas[i].size, areas[i].prot,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED || p != (void *)(uintptr_t)areas[i].at) {
            fprintf(stderr, "test_diff: cannot map %#x in the low 4 GiB\n", areas[i].at);
            exit(1);
        }
        *areas[i].p = p;
    }
    /* 64-bit return stub: mov rsp, [STATE + 40]; cld; ret */
    uint8_t stub[] = { 0x48, 0x8B, 0x24, 0x25, 0, 0, 0, 0, 0xFC, 0xC3 };
    uint32_t a = STATE + 40;
    memcpy(stub + 4, &a, 4);
    memcpy(native_code + (STUB64 - CODE), stub, sizeof stub);
    /* far pointer for the jump back: offset, selector 0x33 */
    uint32_t off = STUB64;
    uint16_t sel = 0x33;
    memcpy(native_state + 48, &off, 4);
    memcpy(native_state + 52, &sel, 2);

    /* The based data segments for the native run (32-bit, 4 GiB limit, DPL 3). */
    const uint32_t bases[3] = { BASE_DS, BASE_ES, BASE_SS };
    for (int i = 0; i < 3; i++) {
        struct user_desc d;
        memset(&d, 0, sizeof d);
        d.entry_number = LDT_FIRST + i;
        d.base_addr = bases[i];
        d.limit = 0xfffff;
        d.seg_32bit = 1;
        d.limit_in_pages = 1;
        d.useable = 1;
        if (syscall(SYS_modify_ldt, 1, &d, sizeof d) != 0) {
            fprintf(stderr, "test_diff: modify_ldt failed\n");
            exit(1);
        }
    }

    /* The 16-bit segments, 64 KiB (byte granular) each; code readable. */
    for (int i = 0; i < N_SEG16; i++) {
        struct user_desc d;
        memset(&d, 0, sizeof d);
        d.entry_number = LDT16 + i;
        d.base_addr = seg16[i].base;
        d.limit = SEG16_SIZE - 1;
        d.seg_32bit = seg16[i].big;
        d.contents = seg16[i].code ? MODIFY_LDT_CONTENTS_CODE : MODIFY_LDT_CONTENTS_DATA;
        d.useable = 1;
        if (syscall(SYS_modify_ldt, 1, &d, sizeof d) != 0) {
            fprintf(stderr, "test_diff: modify_ldt refused a 16-bit segment\n");
            exit(1);
        }
    }
    /* CS-relative reads of the 16-bit families address CODE + 0x1000..0xFFFF: a fixed
       pattern, the same in both runs. */
    for (uint32_t i = 0x1000; i < SEG16_SIZE; i++)
        native_code[i] = (uint8_t)(i * 0x9Du ^ (i >> 8));

    xbt_vm_config cfg = XBT_VM_CONFIG_INIT;
    cfg.ram_size = 16u << 20;
    if (xbt_vm_create(&cfg, &vm) != XBT_OK || xbt_vcpu_create(vm, &cpu) != XBT_OK) {
        fprintf(stderr, "test_diff: cannot create the VM: %s\n", xbt_last_host_error());
        exit(1);
    }
    uint64_t gdt[6 + N_SEG16] = { 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull };
    for (int i = 0; i < 3; i++) /* 0x18, 0x20, 0x28: the based DS, ES, SS */
        gdt[3 + i] = 0x00cf92000000ffffull | (uint64_t)(bases[i] & 0xffffff) << 16 |
                     (uint64_t)(bases[i] >> 24) << 56;
    for (int i = 0; i < N_SEG16; i++) /* 0x30..0x50: the 16-bit families' segments */
        gdt[6 + i] = (SEG16_SIZE - 1) | (uint64_t)(seg16[i].base & 0xffffff) << 16 |
                     (uint64_t)(seg16[i].code ? 0x9B : 0x93) << 40 |
                     (uint64_t)(seg16[i].big ? 0x4 : 0) << 52 |
                     (uint64_t)(seg16[i].base >> 24) << 56;
    xbt_vm_write_phys(vm, 0x1000, gdt, sizeof gdt);
    xbt_vm_write_phys(vm, CODE + 0x1000, native_code + 0x1000, SEG16_SIZE - 0x1000);
    xbt_sregs s;
    xbt_vcpu_get_sregs(cpu, &s);
    flat_cs = s.cs, flat_fs = s.fs, flat_gs = s.gs;
    s.gdt.base = 0x1000;
    s.gdt.limit = sizeof gdt - 1;
    s.idt.base = 0;
    s.idt.limit = 0; /* any fault becomes a triple fault: reported, never hidden */
    s.cr4 |= 0x600;  /* OSFXSR, OSXMMEXCPT: SSE enabled, as in the host process */
    if (xbt_vcpu_set_sregs(cpu, &s) != XBT_OK) {
        fprintf(stderr, "test_diff: cannot set the segment state\n");
        exit(1);
    }
}

/* Native run: prologue loading the registers from STATE, the code, an epilogue that
   stores them back and far-jumps to the 64-bit stub.  Returns 0 or the signal. */
static int run_native(const struct code *c, const struct regs32 *in, struct regs32 *out,
                      enum segs segs)
{
    bool code16 = segs == SEGS_CODE16 || segs == SEGS_STACK16;
    struct code p = { .n = 0 };
    put(&p, 4, 0x66, 0xB8, 0x2B, 0x00); /* mov ax, 0x2b (flat user data) */
    put(&p, 4, 0x8E, 0xD8, 0x8E, 0xC0); /* mov ds, ax; mov es, ax */
    put(&p, 4, 0x8E, 0xE0, 0x8E, 0xE8); /* mov fs, ax; mov gs, ax (bases 0) */
    put(&p, 1, 0xBC); put32(&p, SCRATCH_TOP);               /* mov esp, scratch */
    put(&p, 2, 0xFF, 0x35); put32(&p, STATE + 32);          /* push [eflags] */
    put(&p, 1, 0x9D);                                       /* popfd */
    static const uint8_t ld[8] = { 0x05, 0x0D, 0x15, 0x1D, 0x25, 0x2D, 0x35, 0x3D };
    for (int r = 0; r < 8; r++) {
        if (r == ESP)
            continue;
        put(&p, 2, 0x8B, ld[r]); put32(&p, STATE + 4u * (unsigned)r);
    }
    put(&p, 2, 0x8E, 0x05); put32(&p, STATE + 56);          /* mov es, [es selector] */
    if (code16) {
        put(&p, 2, 0x8E, 0x25); put32(&p, STATE + 64);      /* mov fs, [fs selector] */
        put(&p, 2, 0x8E, 0x2D); put32(&p, STATE + 66);      /* mov gs, [gs selector] */
    }
    put(&p, 2, 0x8E, 0x15); put32(&p, STATE + 58);          /* mov ss, [ss selector] */
    put(&p, 2, 0x8B, ld[ESP]); put32(&p, STATE + 16);        /* esp (in the shadow) */
    put(&p, 2, 0x8E, 0x1D); put32(&p, STATE + 60);          /* mov ds, [ds selector]: last */
    /* 16-bit code: jmp far cs:[STATE + 68] (m16:32) into the 16-bit code segment, based
       at CODE: the code runs at IP = its offset in the page, as in xbt.  It ends by
       jumping back (below); a far jump leaves registers and flags as they are. */
    if (code16) {
        put(&p, 3, 0x2E, 0xFF, 0x2D); put32(&p, STATE + 68);
        uint32_t ip = (uint32_t)p.n;
        uint16_t sel = (uint16_t)((LDT16 + S16_CS) << 3 | 7);
        memcpy(native_state + 68, &ip, 4);
        memcpy(native_state + 72, &sel, 2);
    }
    code_at = CODE + (uint32_t)p.n;
    memcpy(p.b + p.n, c->b, c->n);
    p.n += c->n;
    /* ... and back: 66 EA = jmp far ptr16:32 (a 32-bit offset from 16-bit code) to the
       32-bit epilogue right after it, in the host's 32-bit code segment 0x23. */
    if (code16) {
        put(&p, 2, 0x66, 0xEA); put32(&p, CODE + (uint32_t)p.n + 6); put(&p, 2, 0x23, 0x00);
    }
    put(&p, 3, 0x2E, 0x8E, 0x1D); put32(&p, STATE + 62);    /* mov ds, cs:[flat] */
    put(&p, 2, 0x8E, 0x05); put32(&p, STATE + 62);          /* mov es, [flat] */
    for (int r = 0; r < 8; r++) {
        put(&p, 2, 0x89, ld[r]); put32(&p, STATE + 4u * (unsigned)r);
    }
    put(&p, 2, 0x8E, 0x15); put32(&p, STATE + 62);          /* mov ss, [flat] */
    put(&p, 1, 0xBC); put32(&p, SCRATCH_TOP);
    put(&p, 1, 0x9C);                                       /* pushfd */
    put(&p, 2, 0x8F, 0x05); put32(&p, STATE + 32);          /* pop [eflags] */
    put(&p, 2, 0x31, 0xC0);                                 /* xor eax, eax */
    put(&p, 4, 0x8E, 0xE0, 0x8E, 0xE8);                     /* null fs, gs */
    put(&p, 2, 0xFF, 0x2D); put32(&p, STATE + 48);          /* jmp far [farptr] */
    memcpy(native_code, p.b, p.n);
    memcpy(native_state, in->gpr, 32);
    memcpy(native_state + 32, &in->eflags, 4);
    uint16_t sels[6] = { FLAT_SEL, FLAT_SEL, FLAT_SEL, FLAT_SEL, FLAT_SEL, FLAT_SEL };
    for (int i = 0; segs == SEGS_BASED && i < 3; i++) /* es ss ds, flat, fs gs */
        sels[i] = (uint16_t)((LDT_FIRST + (i == 0 ? 1 : i == 1 ? 2 : 0)) << 3 | 7);
    if (code16) {
        const int ldt[6] = { S16_ES, segs == SEGS_STACK16 ? S16_SS16 : S16_SS32, S16_DS, -1,
                             S16_ES, S16_SS32 };
        for (int i = 0; i < 6; i++)
            if (ldt[i] >= 0)
                sels[i] = (uint16_t)((LDT16 + ldt[i]) << 3 | 7);
    }
    memcpy(native_state + 56, sels, sizeof sels);

    struct sigaction sa, old[4];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_native_fault;
    /* On the alternate stack xbt installed for this thread: ESP may be an offset in a
       based SS (family segwrap), not a usable host stack pointer. */
    sa.sa_flags = SA_NODEFER | SA_ONSTACK;
    const int sigs[4] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE };
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], &sa, &old[i]);
    native_signal = 0;
    syscall(SYS_arch_prctl, ARCH_GET_FS, &host_fs_base);
    syscall(SYS_arch_prctl, ARCH_GET_GS, &host_gs_base);
    if (!sigsetjmp(native_jmp, 1)) {
        diff_native_enter(CODE);
        restore_host_bases();
    }
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], &old[i], NULL);
    memcpy(out->gpr, native_state, 32);
    memcpy(&out->eflags, native_state + 32, 4);
    return native_signal;
}

/* Translated run: the code followed by HLT, through xbt.  Returns the exit reason. */
/* One of the 16-bit families' segments, as its GDT entry describes it. */
static xbt_segment segment16(int i)
{
    xbt_segment g = flat_cs;
    g.base = seg16[i].base;
    g.limit = SEG16_SIZE - 1;
    g.selector = (uint16_t)((6 + i) << 3 | g.dpl);
    g.type = seg16[i].code ? 0xB : 3;
    g.db = seg16[i].big;
    g.g = 0;
    return g;
}

/* CS, FS and GS flat; DS, ES and SS flat (0x10) or based (0x18, 0x20, 0x28); or all
   the 16-bit families' segments, as the case wants. */
static void set_segments(enum segs segs)
{
    xbt_sregs s;
    xbt_vcpu_get_sregs(cpu, &s);
    s.cs = flat_cs, s.fs = flat_fs, s.gs = flat_gs;
    xbt_segment flat = flat_cs;
    flat.type = 3; /* read/write data, accessed */
    flat.base = 0;
    flat.selector = 0x10;
    xbt_segment *data[3] = { &s.ds, &s.es, &s.ss };
    const uint32_t bases[3] = { BASE_DS, BASE_ES, BASE_SS };
    for (int i = 0; i < 3; i++) {
        *data[i] = flat;
        if (segs == SEGS_BASED) {
            data[i]->base = bases[i];
            data[i]->selector = (uint16_t)(0x18 + 8 * i);
        }
    }
    if (segs == SEGS_CODE16 || segs == SEGS_STACK16) {
        s.cs = segment16(S16_CS);
        s.ds = segment16(S16_DS);
        s.es = s.fs = segment16(S16_ES);
        s.ss = segment16(segs == SEGS_STACK16 ? S16_SS16 : S16_SS32);
        s.gs = segment16(S16_SS32);
    }
    xbt_vcpu_set_sregs(cpu, &s);
}

static uint32_t run_xbt(const struct code *c, const struct regs32 *in, struct regs32 *out,
                        const uint8_t *data, const uint8_t *stack, const uint8_t *extra,
                        uint8_t *data_out, uint8_t *stack_out, uint8_t *extra_out,
                        char *msg, size_t msglen, enum segs segs)
{
    bool code16 = segs == SEGS_CODE16 || segs == SEGS_STACK16;
    uint8_t buf[1024 + 1];
    memcpy(buf, c->b, c->n);
    buf[c->n] = 0xF4;
    xbt_vm_write_phys(vm, code_at, buf, c->n + 1);
    xbt_vm_write_phys(vm, DATA, data, DATA_SIZE);
    xbt_vm_write_phys(vm, STACK, stack, STACK_SIZE);
    if (code16)
        xbt_vm_write_phys(vm, EXTRA, extra, EXTRA_SIZE);
    xbt_regs r;
    memset(&r, 0, sizeof r);
    r.eax = in->gpr[EAX]; r.ecx = in->gpr[ECX]; r.edx = in->gpr[EDX]; r.ebx = in->gpr[EBX];
    r.esp = in->gpr[ESP]; r.ebp = in->gpr[EBP]; r.esi = in->gpr[ESI]; r.edi = in->gpr[EDI];
    r.eip = code16 ? code_at - CODE : code_at; /* 16-bit CS based at CODE */
    r.eflags = in->eflags; /* IF=1 as natively (no interrupt source: nothing arrives) */
    set_segments(segs);
    xbt_vcpu_set_regs(cpu, &r);
    xbt_exit *ex;
    xbt_vcpu_run(cpu, &ex);
    uint32_t reason = ex->reason;
    if (reason == XBT_EXIT_INTERNAL_ERROR)
        snprintf(msg, msglen, "%s", ex->internal.message);
    xbt_vcpu_get_regs(cpu, &r);
    out->gpr[EAX] = r.eax; out->gpr[ECX] = r.ecx; out->gpr[EDX] = r.edx; out->gpr[EBX] = r.ebx;
    out->gpr[ESP] = r.esp; out->gpr[EBP] = r.ebp; out->gpr[ESI] = r.esi; out->gpr[EDI] = r.edi;
    out->eflags = r.eflags;
    xbt_vm_read_phys(vm, DATA, data_out, DATA_SIZE);
    xbt_vm_read_phys(vm, STACK, stack_out, STACK_SIZE);
    if (code16)
        xbt_vm_read_phys(vm, EXTRA, extra_out, EXTRA_SIZE);
    return reason;
}

/* ---- one case ------------------------------------------------------------------------ */

static int verbose;
static struct code g_code; /* --code HEX */

static void print_listing(const struct code *c, enum segs segs)
{
    xbt_translate_opts o = XBT_TRANSLATE_OPTS_INIT;
    uint32_t off = 0, eip = code_at;
    if (segs == SEGS_CODE16 || segs == SEGS_STACK16) {
        o.flags |= XBT_TRANSLATE_CODE16 | (segs == SEGS_STACK16 ? XBT_TRANSLATE_STACK16 : 0);
        o.segbase_mask = 0xF;   /* ES CS SS DS based */
        o.seglimit_mask = 0x3F; /* all six 64 KiB */
        eip = code_at - CODE;
    }
    while (off < c->n) {
        xbt_translation *t;
        if (xbt_translate(c->b + off, c->n - off, eip + off, &o, &t) != XBT_OK) {
            xbt_translation_free(t);
            break;
        }
        fputs(t->listing, stderr);
        off += t->guest_len;
        xbt_translation_free(t);
    }
}

/* Runs case k of family f for seed; returns true if both runs agree. */
static bool run_case(uint64_t seed, unsigned f, unsigned k)
{
    rng = seed * 0x9E3779B97F4A7C15ull + f * 0x100000001B3ull + k * 0x2545F4914F6CDD1Dull + 1;
    for (int i = 0; i < 4; i++)
        rnd();
    struct code c = { .n = 0 };
    unsigned n_insns = 1 + rndn(4);
    for (unsigned i = 0; i < n_insns; i++)
        families[f].fn(&c);
    if (g_code.n) /* --code: these bytes instead, in the case's registers and memory */
        c = g_code;

    struct regs32 in;
    for (int r = 0; r < 8; r++)
        in.gpr[r] = rnd();
    for (int i = 0; i < 4; i++)
        in.gpr[ptr_regs[i]] = DATA + 0x1000 + (rndn(DATA_SIZE - 0x2000) & ~3u);
    if (rndn(2))
        in.gpr[EDX] = rndn(64); /* small values make carries, shifts and divides varied */
    in.gpr[ESP] = STACK + STACK_SIZE / 2 - 4 * rndn(64);
    enum segs segs = families[f].segs;
    bool code16 = segs == SEGS_CODE16 || segs == SEGS_STACK16;
    if (segs == SEGS_BASED) /* offsets around 0 in the based segments: wraps at 4 GiB both ways */
        for (int r = ESP; r <= EDI; r++)
            in.gpr[r] = (uint32_t)((int32_t)rndn(0x200) - 0x100) & ~3u;
    if (code16) {
        /* Any 16-bit offset, a multiple of 4 (see gen16), under a random upper half
           that 16-bit addressing must ignore and keep */
        for (int i = 0; i < 4; i++)
            in.gpr[ptr_regs[i]] = (rnd() & 0xFFFF0000u) | 4 * rndn(0x4000);
        if (segs == SEGS_CODE16) { /* 32-bit stack: EBP whole for LEAVE, ENTER */
            in.gpr[EBP] = 0x1000 + 4 * rndn(0x3800);
            in.gpr[ESP] = 0x8000 - 4 * rndn(64);
        } else { /* 16-bit stack: SP near 0 or 0xFFFF, ESP's upper half kept */
            in.gpr[ESP] = (rnd() & 0xFFFF0000u) |
                          (rndn(2) ? 4 * rndn(16) : 0x10000 - 4 * (1 + rndn(16)));
        }
    }
    in.eflags = (rnd() & 0x8D5u) | 0x202u;
    static uint8_t data[DATA_SIZE], stack[STACK_SIZE], xdata[DATA_SIZE], xstack[STACK_SIZE];
    static uint8_t extra[EXTRA_SIZE], xextra[EXTRA_SIZE];
    for (uint32_t i = 0; i < DATA_SIZE; i += 4) {
        uint32_t v = rnd();
        memcpy(data + i, &v, 4);
        v = rnd();
        memcpy(stack + i, &v, 4);
    }
    for (uint32_t i = 0; code16 && i < EXTRA_SIZE; i += 4) {
        uint32_t v = rnd();
        memcpy(extra + i, &v, 4);
    }
    memcpy(native_data, data, DATA_SIZE);
    memcpy(native_stack, stack, STACK_SIZE);
    if (code16)
        memcpy(native_extra, extra, EXTRA_SIZE);

    struct regs32 nat, xo;
    int sig = run_native(&c, &in, &nat, segs);
    char msg[256] = "";
    uint32_t reason = run_xbt(&c, &in, &xo, data, stack, extra, xdata, xstack, xextra, msg,
                              sizeof msg, segs);

    bool ok = true;
    char why[4096];
    size_t w = 0;
#define WHY(...) (w += (size_t)snprintf(why + w, w < sizeof why ? sizeof why - w : 0, __VA_ARGS__))
    if (sig) {
        ok = false;
        WHY("  the native run took signal %d (a generator bug)\n", sig);
    }
    if (reason != XBT_EXIT_HLT) {
        ok = false;
        WHY("  xbt ended with exit reason %u, not HLT %s\n", reason, msg);
    }
    for (int r = 0; r < 8 && !sig; r++)
        if (nat.gpr[r] != xo.gpr[r]) {
            ok = false;
            WHY("  %s: native %08x xbt %08x\n", gpr_names[r], nat.gpr[r], xo.gpr[r]);
        }
    if (!sig && ((nat.eflags ^ xo.eflags) & FLAGS_MASK)) {
        ok = false;
        WHY("  eflags: native %08x xbt %08x (compared bits %04x)\n", nat.eflags, xo.eflags,
            FLAGS_MASK);
    }
    int shown = 0;
    for (uint32_t i = 0; i < DATA_SIZE && !sig; i++)
        if (native_data[i] != xdata[i]) {
            ok = false;
            if (shown++ < 8)
                WHY("  data %08x: native %02x xbt %02x (was %02x)\n", DATA + i,
                    native_data[i], xdata[i], data[i]);
        }
    for (uint32_t i = 0; i < STACK_SIZE && !sig; i++)
        if (native_stack[i] != xstack[i]) {
            ok = false;
            if (shown++ < 16)
                WHY("  stack %08x: native %02x xbt %02x (was %02x)\n", STACK + i,
                    native_stack[i], xstack[i], stack[i]);
        }
    for (uint32_t i = 0; code16 && i < EXTRA_SIZE && !sig; i++)
        if (native_extra[i] != xextra[i]) {
            ok = false;
            if (shown++ < 24)
                WHY("  extra %08x: native %02x xbt %02x (was %02x)\n", EXTRA + i,
                    native_extra[i], xextra[i], extra[i]);
        }
    if (!ok || verbose) {
        fprintf(stderr, "%s: seed %llu family %s case %u (rerun: test_diff --seed %llu "
                "--family %s --case %u)\n  code:", ok ? "ok" : "MISMATCH",
                (unsigned long long)seed, families[f].name, k, (unsigned long long)seed,
                families[f].name, k);
        for (size_t i = 0; i < c.n; i++)
            fprintf(stderr, " %02x", c.b[i]);
        fprintf(stderr, "\n  in: eax=%08x ecx=%08x edx=%08x ebx=%08x esp=%08x ebp=%08x "
                "esi=%08x edi=%08x eflags=%08x\n%s", in.gpr[0], in.gpr[1], in.gpr[2],
                in.gpr[3], in.gpr[4], in.gpr[5], in.gpr[6], in.gpr[7], in.eflags,
                w ? why : "");
        if (!ok)
            print_listing(&c, segs);
    }
    return ok;
#undef WHY
}

/* ---- Check harness --------------------------------------------------------------------- */

static uint64_t g_seed = 1;
static unsigned g_count = 300;

static void run_family(unsigned f)
{
    setup_once();
    unsigned bad = 0;
    for (unsigned k = 0; k < g_count; k++)
        if (!run_case(g_seed, f, k) && ++bad >= 5)
            break;
    ck_assert_msg(bad == 0, "family %s: %u mismatching case(s) for seed %llu (see above)",
                  families[f].name, bad, (unsigned long long)g_seed);
}

START_TEST(family)
{
    run_family((unsigned)_i);
}
END_TEST

int main(int argc, char **argv)
{
    const char *only = NULL;
    long one_case = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            const char *v = argv[++i];
            g_seed = !strcmp(v, "time") ? (uint64_t)time(NULL) : strtoull(v, NULL, 0);
        } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            g_count = (unsigned)strtoul(argv[++i], NULL, 0);
        } else if (!strcmp(argv[i], "--family") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--case") && i + 1 < argc) {
            one_case = strtol(argv[++i], NULL, 0);
        } else if (!strcmp(argv[i], "--code") && i + 1 < argc) {
            for (char *q = argv[++i], *e; g_code.n < sizeof g_code.b; q = e) {
                unsigned long v = strtoul(q, &e, 16);
                if (e == q)
                    break;
                g_code.b[g_code.n++] = (uint8_t)v;
            }
        } else if (!strcmp(argv[i], "-v")) {
            verbose = 1;
        } else {
            fprintf(stderr, "usage: test_diff [--seed S|time] [--count N] [--family F] "
                    "[--case K [--code 'HEX BYTES']] [-v]\n");
            return 2;
        }
    }
    printf("differential suite: seed %llu, %u cases per family, %zu families\n",
           (unsigned long long)g_seed, g_count, N_FAMILIES);
    /* Every case's oracle is native 32-bit execution: without it there is nothing to
       compare xbt with (ctest's SKIP_RETURN_CODE). */
    const char *no32;
    if (!xbt_host_runs_compat32(&no32)) {
        printf("test_diff: %s\nSKIP: host cannot run 32-bit code (the native oracle)\n", no32);
        return 77;
    }
    if (one_case >= 0) {
        for (unsigned f = 0; f < N_FAMILIES; f++)
            if (only && !strcmp(only, families[f].name)) {
                setup_once();
                verbose = 1;
                return run_case(g_seed, f, (unsigned)one_case) ? 0 : 1;
            }
        fprintf(stderr, "--case needs --family with a known family name\n");
        return 2;
    }
    Suite *s = suite_create("diff");
    TCase *tc = tcase_create("families");
    tcase_set_timeout(tc, 600);
    for (unsigned f = 0; f < N_FAMILIES; f++)
        if (!only || !strcmp(only, families[f].name))
            tcase_add_loop_test(tc, family, (int)f, (int)f + 1);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* one process: the low mappings and the VM */
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (vm)
        xbt_vm_destroy(vm);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
