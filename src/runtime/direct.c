/*
 * direct.c - direct execution of guest user code (CPL 3), as the classic VMware VMM
 * did: the code runs unmodified on the CPU in 32-bit compatibility mode at its own
 * addresses, and every way back to the VMM is an exit.
 *
 *  - Where: in a runner process (runner.h, runner_abi.h), one per window set, whose
 *    D-window ([mmap_min_addr, 4 GiB) of that process) holds the address space's user
 *    pages at their own linear addresses, filled lazily like the other windows (a host
 *    fault is a hidden fault or a true guest #PF).  Nothing of the VMM is in that
 *    process, and its seccomp filters let guest code reach no host system call: guest
 *    code that far-jumps to the host's 64-bit selector finds only its own pages.
 *  - Segments: the host GDT is the host kernel's, so the guest's segments are mirrored
 *    into the runner's LDT with the guest's base, limit and type; flat ones use the
 *    host's own flat user selectors 0x23/0x2b.
 *  - Exits: faults and traps the guest must see are raised; anything else (a
 *    privileged instruction's #GP, INT n, #UD, I/O) is run once through the translator,
 *    which implements its exact CPL 3 semantics, and direct execution resumes after it.
 */
#define _GNU_SOURCE
#include <asm/ldt.h>
#include <emmintrin.h>
#include <errno.h>
#include <pthread.h>
#include <linux/audit.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <Zydis/Zydis.h>

#include "runtime/compat32.h"
#include "runtime/direct.h"
#include "runtime/runner.h"
#include "runtime/xfer.h"
#include "shadow-mmu/walk.h"
#include "vcpu.h"

#define HOST_DS 0x2b   /* its flat user data selector */

/* ---- the D-window: the current window set's runner -------------------------------- */

bool xbt_direct_vm_init(xbt_vm *vm, const char **why)
{
    /* A host that runs no 32-bit code at all would start runners whose every entry
       dies in #GP; say so once here instead, and run user code translated. */
    if (!xbt_host_runs_compat32(why)) {
        vm->direct_ok = false;
        return false;
    }
    vm->direct_ok = true; /* the first direct run starts a runner, or says why not */
    return true;
}

void xbt_direct_vm_destroy(xbt_vm *vm)
{
    for (int k = 0; k < XBT_WSETS; k++)
        xbt_runner_free(&vm->dset[k].runner);
}

/* The slots change: every runner ends (it holds the old files; the next direct run
   starts one with the new ones), and its D-window with it. */
void xbt_direct_slots_changed(xbt_vm *vm)
{
    for (int k = 0; k < XBT_WSETS; k++) {
        xbt_runner_kill(&vm->dset[k].runner);
        xbt_smmu_dwin_lost(vm->mmu, (unsigned)k);
    }
}

/* What a runner may map: each slot's file over the slot's range, if that lies below
   4 GiB in the file (the runner's filter compares 32-bit offsets; the pages of a slot
   beyond run translated). */
static void runner_files(const xbt_vm *vm, struct xbt_runner_files *f)
{
    for (int k = 0; k < XRN_SLOTS; k++) {
        const struct xbt_slot *s = &vm->phys.slot[k];
        bool ok = s->used && s->fd_offset + s->size < (1ull << 32);
        f->fd[k] = ok ? s->fd : -1;
        f->lo[k] = ok ? s->fd_offset : 0;
        f->hi[k] = ok ? s->fd_offset + s->size : 0;
    }
}

/* The shadow MMU's D-window operations (struct xbt_smmu_dwin): set k's D-window is its
   runner's address space. */
static bool dwin_drop(void *opaque, unsigned set, uint32_t lin, uint64_t len)
{
    xbt_vm *vm = opaque;
    /* The current set's at once if its guest thread may run (the guest sees the change
       before its next instruction). */
    return xbt_runner_unmap(&vm->dset[set].runner, lin, len, set == vm->mmu->cur->idx);
}

static int dwin_map(void *opaque, uint32_t lin, uint64_t gpa, uint32_t len, bool writable,
                    int64_t fetch)
{
    return xbt_direct_map(opaque, lin, gpa, len, writable, fetch);
}

static void dwin_park(void *opaque, unsigned set)
{
    xbt_vm *vm = opaque;
    xbt_runner_park(&vm->dset[set].runner);
}

const struct xbt_smmu_dwin xbt_direct_dwin = { NULL, dwin_drop, dwin_map, dwin_park };

/* The fast system call instruction the host CPU accepts in compatibility mode and
   whose return address its kernel then loses (AMD: SYSCALL, 0F 05; Intel: SYSENTER,
   0F 34); the other one raises #UD there, which direct execution handles exactly. */
static uint8_t host_fast_syscall_byte;
static pthread_once_t host_fast_syscall_once = PTHREAD_ONCE_INIT;
static void host_fast_syscall_init(void)
{
    unsigned a, bx, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(bx), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    host_fast_syscall_byte = bx == 0x756e6547 ? 0x34 : 0x05; /* "Genu"ineIntel */
}
/* Asked once: CPUID traps to the hypervisor in a VM (25,000 cycles on the PVM guest of
   2026-12-03).  Until then the asm was not volatile, and GCC hoisted it above the test
   of the cached value: every page scan ran a CPUID, a third of the time of 400 fork+exec
   in direct mode there. */
static uint8_t host_fast_syscall(void)
{
    pthread_once(&host_fast_syscall_once, host_fast_syscall_init);
    return host_fast_syscall_byte;
}

/* Whether an instruction the host would answer differently starts at b (n bytes
   known from there): SENS_ANY for CPUID, XGETBV, RDTSCP, RDPKRU, WRPKRU, RDPID and the
   host's fast system call (host_fast_syscall); SENS_MOST for SGDT, SIDT, SMSW (0F 01
   /0 /1 with a memory operand, /4), SLDT and STR (0F 00 /0 /1), where the host gives
   its own tables' values (or its kernel's UMIP emulation dummy ones) and ignores the
   guest's CR4.UMIP.  Their byte patterns are common inside other instructions ("0F 00
   00" is in every imm32 0x00000F00): starts_instruction wants most decodes, not one,
   to land on them (otherwise about one page in ten of Debian's libc text counted). */
enum { SENS_NONE, SENS_ANY, SENS_MOST };
/* The previous linear page's last bytes kept before a scanned page: the context that
   starts_instruction decodes from for a find in the page's first bytes (its BACK). */
enum { PRE = 64 };
static int sensitive_at(const uint8_t *b, size_t n)
{
    if (n >= 4 && b[0] == 0xF3 && b[1] == 0x0F && b[2] == 0xC7 && (b[3] & 0xF8) == 0xF8)
        return SENS_ANY; /* RDPID */
    if (n < 2 || b[0] != 0x0F)
        return SENS_NONE;
    if (b[1] == 0xA2 || b[1] == host_fast_syscall())
        return SENS_ANY;
    if (n < 3 || b[1] > 0x01)
        return SENS_NONE;
    unsigned mod = b[2] >> 6, reg = (b[2] >> 3) & 7;
    if ((b[1] == 0x00 && reg <= 1) || (b[1] == 0x01 && ((reg <= 1 && mod != 3) || reg == 4)))
        return SENS_MOST; /* SLDT, STR; SGDT, SIDT, SMSW */
    return b[1] == 0x01 && (b[2] == 0xD0 || b[2] == 0xF9 || b[2] == 0xEE || b[2] == 0xEF)
               ? SENS_ANY : SENS_NONE;
}

static bool sensitive_mnemonic(ZydisMnemonic m)
{
    switch (m) {
    case ZYDIS_MNEMONIC_CPUID: case ZYDIS_MNEMONIC_XGETBV: case ZYDIS_MNEMONIC_RDTSCP:
    case ZYDIS_MNEMONIC_RDPID: case ZYDIS_MNEMONIC_RDPKRU: case ZYDIS_MNEMONIC_WRPKRU:
    case ZYDIS_MNEMONIC_SYSCALL: case ZYDIS_MNEMONIC_SYSENTER:
    case ZYDIS_MNEMONIC_SGDT: case ZYDIS_MNEMONIC_SIDT: case ZYDIS_MNEMONIC_SMSW:
    case ZYDIS_MNEMONIC_SLDT: case ZYDIS_MNEMONIC_STR:
        return true;
    default:
        return false;
    }
}

static ZydisDecoder compat32;
static pthread_once_t compat32_once = PTHREAD_ONCE_INIT;

static void compat32_init(void)
{
    ZydisDecoderInit(&compat32, ZYDIS_MACHINE_MODE_LONG_COMPAT_32, ZYDIS_STACK_WIDTH_32);
}

/*
 * Whether the sensitive byte sequence at offset p of code bytes w[base..n) can be
 * executed as the instruction it spells by code that runs through these bytes in the
 * usual way, i.e. whether p (or a prefix before it) starts an instruction of the stream
 * that decoding settles on.  x86 decoding synchronizes itself: decodes started at
 * different offsets fall into the same instruction boundaries within a few
 * instructions.  Every decode started 24 to 64 bytes before p (the host CPU's lengths:
 * Zydis in compatibility mode) either lands on p, or steps over it inside some
 * instruction, or meets bytes that are no instruction.  The sequence is taken as
 * executable when any decode lands on it or steps over it inside a sensitive
 * instruction (the same one behind a prefix), or when fewer than eight decodes step
 * over it (too little context: the first 32 bytes known, w[base..base + 32), or
 * undecodable bytes before it); for `most` (SENS_MOST) only when more decodes land on it than step over
 * it, or with too little context as above; otherwise it lies inside another
 * instruction's displacement or immediate ("je rel32" with rel32 0x0000050f holds 0F 05;
 * "and eax, 0x0f0f0f0f; add eax, edx" holds 0F 01 D0), which is what about nine in ten
 * of the byte scan's finds in Debian's gcc, libc and ld.so are.  (A real instruction
 * is landed on by most decodes: Debian's libc text has 987 finds of SENS_MOST patterns
 * and no such instruction; 34 had a decode land on them, 2 a majority.)
 */
static bool starts_instruction(const uint8_t *w, size_t n, size_t base, size_t p, bool most)
{
    enum { BACK = 64, RUN_UP = 24, VOTES = 8 };
    pthread_once(&compat32_once, compat32_init);
    if (p < base + RUN_UP + VOTES)
        return true;
    size_t lo = p - base > BACK ? p - BACK : base;
    uint8_t fate[BACK] = { 0 }; /* by offset - lo: 0 unknown, 1 executable, 2 over, 3 invalid */
    int over = 0, landed = 0;
    for (size_t s = lo; s + RUN_UP <= p; s++) {
        size_t path[BACK], np = 0, o = s;
        uint8_t f = 0;
        while (!f) {
            if (o == p) {
                f = 1;
            } else if (o > p) {
                f = 2;
            } else if (fate[o - lo]) {
                f = fate[o - lo];
            } else {
                ZydisDecodedInstruction zi;
                path[np++] = o;
                if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&compat32, NULL, w + o, n - o,
                                                                &zi)))
                    f = 3;
                else if (o + zi.length > p && sensitive_mnemonic(zi.mnemonic))
                    f = 1; /* the sensitive instruction itself, behind prefixes */
                else
                    o += zi.length;
            }
        }
        for (size_t i = 0; i < np; i++)
            fate[path[i] - lo] = f;
        if (f == 1 && !most)
            return true;
        over += f == 2;
        landed += f == 1;
    }
    return over < VOTES || landed > over;
}

/* SipHash-1-3 (Aumasson and Bernstein's keyed hash, one compression and three
   finalization rounds) of n bytes, n a multiple of 8. */
#define SIP_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND(v0, v1, v2, v3)                                                          \
    do {                                                                                   \
        v0 += v1; v1 = SIP_ROTL(v1, 13); v1 ^= v0; v0 = SIP_ROTL(v0, 32);                  \
        v2 += v3; v3 = SIP_ROTL(v3, 16); v3 ^= v2;                                         \
        v0 += v3; v3 = SIP_ROTL(v3, 21); v3 ^= v0;                                         \
        v2 += v1; v1 = SIP_ROTL(v1, 17); v1 ^= v2; v2 = SIP_ROTL(v2, 32);                  \
    } while (0)
static uint64_t siphash13(const uint64_t key[2], const uint8_t *p, size_t n)
{
    uint64_t v0 = key[0] ^ 0x736f6d6570736575ull, v1 = key[1] ^ 0x646f72616e646f6dull;
    uint64_t v2 = key[0] ^ 0x6c7967656e657261ull, v3 = key[1] ^ 0x7465646279746573ull;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8);
        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t b = (uint64_t)n << 56;
    v3 ^= b;
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Whether bytes w[0..n) hold any pattern sensitive_at knows starting in the page
   (w[0..4096)), whether or not an instruction in context: the test that lets most
   pages of read-only data and some of code skip the hash and the verdict cache.  Two
   bytes at a time in SSE2 (0F, then 00, 01, A2, C7 or the host's fast system call),
   sensitive_at on each pair found; a memchr for 0F with sensitive_at on each, as
   before, cost 6,000 ticks a page (code is full of 0F).  w must have 4,096 + 32 bytes,
   those past n zero. */
static bool any_sensitive(const uint8_t *w, size_t n)
{
    const __m128i f = _mm_set1_epi8(0x0F), b00 = _mm_setzero_si128(),
                  b01 = _mm_set1_epi8(0x01), ba2 = _mm_set1_epi8((char)0xA2),
                  bc7 = _mm_set1_epi8((char)0xC7),
                  bfs = _mm_set1_epi8((char)host_fast_syscall());
    /* The 0F at p, p <= 4096: RDPID's F3 may be the page's last byte. */
    for (size_t i = 0; i <= 4096; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(w + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(w + i + 1));
        __m128i second = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(b, b00), _mm_cmpeq_epi8(b, b01)),
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(b, ba2), _mm_cmpeq_epi8(b, bc7)),
                         _mm_cmpeq_epi8(b, bfs)));
        unsigned mask =
            (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, f), second));
        while (mask) {
            size_t p = i + (size_t)__builtin_ctz(mask);
            mask &= mask - 1;
            if (p >= n || p > 4096)
                break;
            if ((p < 4096 && sensitive_at(w + p, n - p)) ||
                (p > 0 && sensitive_at(w + p - 1, n - p + 1)))
                return true; /* (at p - 1: RDPID's F3 before its 0F) */
        }
    }
    return false;
}

/* Whether bytes w[0..n) hold a sensitive pattern starting in the page (w[PRE..PRE +
   4096), or its 0F at w[PRE + 4096]) that is an instruction in context
   (starts_instruction), the bytes before w[base] unknown. */
static bool find_sensitive(const uint8_t *w, size_t n, size_t base)
{
    size_t end = n > PRE + 4096 ? PRE + 4097 : PRE + 4096;
    for (const uint8_t *q = w + PRE; (q = memchr(q, 0x0F, (size_t)(w + end - q))) != NULL;
         q++) {
        size_t at = (size_t)(q - w);
        for (size_t back = 0; back < 2; back++) {
            if (back ? at == PRE : at >= PRE + 4096)
                continue;
            int k = sensitive_at(q - back, n - at + back);
            if (k && starts_instruction(w, n, base, at - back, k == SENS_MOST))
                return true;
        }
    }
    return false;
}

/* Whether guest physical page `gpa` holds an instruction that directly executed code
   would see answered by the host CPU where translated code sees the virtual one: CPUID,
   XGETBV, RDTSCP, RDPID, RDPKRU/WRPKRU (the virtual CPU's CPUID and IA32_TSC_AUX are
   not the host's, and it has no XGETBV or PKRU), SGDT, SIDT, SLDT, SMSW, STR (the
   guest's tables and CR4.UMIP, not the host's), or the fast system call the host runs in compatibility
   mode (host_fast_syscall: its address would be lost; the virtual CPU gives #UD for
   SYSCALL and runs SYSENTER itself).  The bytes that start one are found by a scan,
   and each find is then decoded in context (starts_instruction): only those that code
   running through the page would execute count.  `next` is the physical page that
   follows in the linear address space (~0: none, a fetch there faults): an instruction
   may start in this page's last bytes and continue there.  `prev` is the physical page
   before it (~0: none): code that runs into this page comes from there, and its last
   bytes are the context in which a find in this page's first bytes is decoded (without
   them any find there counted: Debian's cc1 has "call rel32" with 0F 01 8B in the rel32
   in the first 32 bytes of two of its hottest pages, which then ran translated, 5,000
   jumps into them in one compile).  (Every other instruction
   either traps to the VMM or means the same on both; the rest are listed in the
   README, with what a jump into the middle of an instruction can still see.) */
bool xbt_direct_page_sensitive(xbt_vm *vm, uint64_t gpa, uint64_t prev, uint64_t next)
{
    const uint8_t *h = xbt_phys_r(&vm->phys, gpa & ~0xFFFull, 4096);
    if (!h)
        return true;
    uint8_t w[PRE + 4096 + 32];
    size_t n = PRE + 4096;
    memcpy(w + PRE, h, 4096);
    memset(w + PRE + 4096, 0, 32);
    const uint8_t *hn = next != ~0ull ? xbt_phys_r(&vm->phys, next & ~0xFFFull, 4096) : NULL;
    if (hn) {
        memcpy(w + PRE + 4096, hn, 16);
        n += 16;
    }
    if (!any_sensitive(w + PRE, n - PRE))
        return false;
    const uint8_t *hp = prev != ~0ull ? xbt_phys_r(&vm->phys, prev & ~0xFFFull, 4096) : NULL;
    size_t base = hp ? 0 : PRE; /* the first byte known */
    if (hp)
        memcpy(w, hp + 4096 - PRE, PRE);
    /* A candidate: the verdict for these bytes, if known.  The same pages of busybox,
       ld.so and libc come back in every new process, and the decodes in context cost
       23,500 ticks a page on average (a third of 400 fork+exec's time in direct mode
       until verdicts were kept).  The bytes hashed are all those the verdict depends
       on: the previous page's last PRE when known, the page, the next page's first 16
       when known (the lengths differ, and the length is hashed). */
    uint64_t hash = siphash13(vm->scan_key, w + base, n - base) & ~1ull;
    _Atomic uint64_t *slot = &vm->scan_cache[(hash >> 1) & (XBT_SCAN_CACHE - 1)];
    atomic_fetch_add_explicit(&vm->scans, 1, memory_order_relaxed);
    uint64_t e = atomic_load_explicit(slot, memory_order_relaxed);
    if (hash && (e & ~1ull) == hash) {
        atomic_fetch_add_explicit(&vm->scan_hits, 1, memory_order_relaxed);
        return e & 1;
    }
    bool sens = find_sensitive(w, n, base);
    if (hash)
        atomic_store_explicit(slot, hash | sens, memory_order_relaxed);
    return sens;
}

/* The physical page of linear page `lin` for a user fetch, without touching accessed
   bits (~0: none). */
static uint64_t probe_page(const struct xbt_vcpu *v, uint32_t lin)
{
    if (!xbt_paging(v))
        return lin;
    xbt_walk_result r;
    if (!xbt_walk_quiet(v, lin, true, true, &r))
        return ~0ull;
    return r.gpa & ~0xFFFull;
}

/* xbt_direct_page_sensitive for linear page `lin` at `gpa`; `prev` and `next` the
   neighbours' physical addresses when known from the same run, else walked. */
static bool page_sensitive(xbt_vm *vm, uint32_t lin, uint64_t gpa, uint64_t prev,
                           uint64_t next)
{
    if (prev == ~0ull && vm->vcpus[0] && lin >= 4096)
        prev = probe_page(vm->vcpus[0], lin - 4096);
    if (next == ~0ull && vm->vcpus[0] && lin < 0xFFFFF000u)
        next = probe_page(vm->vcpus[0], lin + 4096);
    return xbt_direct_page_sensitive(vm, gpa, prev, next);
}

int xbt_direct_map(xbt_vm *vm, uint32_t lin, uint64_t gpa, uint32_t len, bool writable,
                   int64_t fetch)
{
    struct xbt_runner *r = &xbt_dset_cur(vm)->runner;
    const struct xbt_slot *s = xbt_phys_slot(&vm->phys, gpa);
    if (!xbt_runner_alive(r) || lin < r->min_addr || !xbt_phys_one_slot(&vm->phys, gpa, len) ||
        s->fd_offset + s->size >= (1ull << 32))
        return XBT_DMAP_FAIL; /* (runner_files) */
    uint32_t slot = (uint32_t)(s - vm->phys.slot);
    uint64_t off = s->fd_offset + (gpa - s->gpa); /* in the slot's file */
    if (writable) {
        /* W^X: a page the guest writes is not executable here; executing it faults
           and it comes back read-only and executable (after the check below). */
        if (!xbt_runner_map(r, lin, slot, off, len, PROT_READ | PROT_WRITE))
            return XBT_DMAP_FAIL;
        xbt_wmap_note(vm->mmu, XBT_WINDOW_D, lin, len);
        if (vm->mmu->window_paged)
            xbt_rmap_note(vm->mmu, XBT_WINDOW_D, lin, gpa, len);
        return XBT_DMAP_OK;
    }
    int rc = XBT_DMAP_OK;
    for (uint32_t at = 0; at < len;) {
        bool sens = page_sensitive(vm, lin + at, gpa + at, at ? gpa + at - 4096 : ~0ull,
                                   at + 4096 < len ? gpa + at + 4096 : ~0ull);
        uint32_t n = 4096;
        while (at + n < len &&
               page_sensitive(vm, lin + at + n, gpa + at + n, gpa + at + n - 4096,
                              at + n + 4096 < len ? gpa + at + n + 4096 : ~0ull) == sens)
            n += 4096;
        int prot = PROT_READ | (sens ? 0 : PROT_EXEC);
        if (!xbt_runner_map(r, lin + at, slot, off + at, n, prot))
            return XBT_DMAP_FAIL;
        if (sens && fetch >= 0 && (uint64_t)fetch >= (uint64_t)lin + at &&
            (uint64_t)fetch < (uint64_t)lin + at + n)
            rc = XBT_DMAP_XLATE;
        at += n;
    }
    xbt_wmap_note(vm->mmu, XBT_WINDOW_D, lin, len);
    return rc;
}

/* ---- segments ----------------------------------------------------------------------- */

static bool flat(const xbt_segment *s)
{
    return s->base == 0 && s->limit == 0xFFFFFFFFu && s->db && s->present && !s->unusable;
}

/* The host selector for guest segment register `seg`: the host's flat data selector,
   null, or LDT entry `seg` written with the guest's descriptor (only when it changed).
   CS is always its LDT entry: a far transfer to a host selector (0x23, 0x33) then
   shows as a CS the VMM did not load (direct_run). */
static bool mirror_segment(struct xbt_vcpu *v, int seg, uint16_t *out)
{
    const xbt_segment *s = &v->arch.seg[seg];
    bool code = s->type & 8;
    if (seg != XBT_CS && seg != XBT_SS && (s->unusable || !(s->selector & ~3u))) {
        *out = 0;
        return true;
    }
    if (flat(s) && seg != XBT_CS && !code && (s->type & 2) && !(s->type & 4)) {
        *out = HOST_DS;
        return true;
    }
    struct user_desc d;
    memset(&d, 0, sizeof d);
    d.entry_number = (unsigned)seg;
    d.base_addr = s->base;
    d.limit_in_pages = s->g;
    d.limit = s->g ? s->limit >> 12 : s->limit;
    d.seg_32bit = s->db;
    if (code)
        d.contents = (s->type & 4) ? 3 : 2;
    else
        d.contents = (s->type & 4) ? 1 : 0;
    d.read_exec_only = code ? !(s->type & 2) : !(s->type & 2);
    d.seg_not_present = !s->present;
    d.useable = s->avl;
    if (code && (s->type & 4) && s->present) {
        /* Linux's modify_ldt refuses a present conforming code segment. */
        errno = EINVAL;
        return false;
    }
    xbt_runner_set_ldt(&xbt_dset_cur(v->vm)->runner, seg, &d); /* written at entry if it changed */
    *out = (uint16_t)((seg << 3) | 4 | 3);
    return true;
}

/* ---- the run-loop side ---------------------------------------------------------------- */

/* The address space a trap count belongs to: the current window set and its
   generation (a set given to another address space starts a new one). */
static uint32_t as_tag(const struct xbt_vcpu *v)
{
    const xbt_vm *vm = v->vm;
    uint32_t k = 0;
    while (k < XBT_WSETS - 1 && vm->mmu->wset[k] != vm->mmu->cur)
        k++;
    return (k + 1) << 24 | (vm->mmu->cur->gen & 0xFFFFFF);
}

/* Adaptive mode: linear code pages (with the address space) that trapped often; and
   the pages that must run translated (xbt_direct_page_translated). */
static uint32_t hot_slot(uint32_t page, uint32_t as)
{
    return (page ^ as * 0x9E37u) & (XBT_HOT_SLOTS - 1);
}

/* The mark of eip's page if user code there runs translated: its linear page is hot in
   this address space and still maps the physical page it did when it was counted.  The
   address-space tag alone does not tell processes apart: Linux gives a new process the
   page directory an old one freed, so the CR3, its window set and the set's generation
   are the same, and a page that held ld.so's CPUIDs in one process held other code in
   the next (ASLR): in 500 fork+exec, nine dispatches in ten of user code run translated
   were at such stale entries.  A page mapped elsewhere now forgets its count. */
static struct xbt_hot *hot_entry(struct xbt_vcpu *v, uint32_t eip)
{
    uint32_t lin = v->arch.seg[XBT_CS].base + eip, page = lin >> 12, as = as_tag(v);
    struct xbt_hot *h = &v->dx.hot[hot_slot(page, as)];
    if (h->page != page || h->as != as || h->count < XBT_HOT_THRESHOLD)
        return NULL;
    if (probe_page(v, lin) == h->gpa)
        return h;
    h->count = 0;
    h->page = ~0u;
    return NULL;
}

static void count_trap(struct xbt_vcpu *v, uint32_t eip)
{
    uint32_t lin = v->arch.seg[XBT_CS].base + eip, page = lin >> 12, as = as_tag(v);
    struct xbt_hot *h = &v->dx.hot[hot_slot(page, as)];
    uint64_t gpa = probe_page(v, lin);
    if (h->page != page || h->as != as || h->gpa != gpa) {
        h->page = page;
        h->as = as;
        h->gpa = gpa;
        h->count = 0;
        h->sticky = false;
    }
    if (h->count < 0xFFFF)
        h->count++;
}

/* The code page at eip runs translated from now on in this address space (it holds an
   instruction direct execution would answer differently). */
void xbt_direct_page_translated(struct xbt_vcpu *v, uint32_t eip)
{
    count_trap(v, eip);
    v->dx.hot[hot_slot((v->arch.seg[XBT_CS].base + eip) >> 12, as_tag(v))].count = 0xFFFF;
}

/* Adaptive mode: translated user code of the current address space, not promoted, ran
   `ticks` TSC ticks (the run loop times it only then); the run loop ends the burst,
   adapt_burst, at the next dispatch at CPL 0.  An address space whose translated user
   code runs vm->adapt_ticks without entering the kernel is promoted to direct
   execution.  The cost model behind that: a direct run
   pays a host signal and two hand-offs between processes at every exit (about 15,000
   cycles on a host whose process switches are cheap), a system call in strict mode
   2,600 cycles, while translated user code runs at 1.15-1.5x native; so long bursts
   gain from direct execution and short ones (a shell between forks, a fork+exec of a
   small program) lose.  Timer interrupts end a burst too: the default (1 ms) is below
   their period.  After a demotion the burst must be twice as long as before, and after
   XBT_ADAPT_STRIKES the address space stays translated: a process whose phases differ
   (a compiler's parsing and optimizing) would otherwise go back and forth, each time
   paying for the D-window's refill. */
#define XBT_ADAPT_STRIKES 3 /* demotions after which an address space stays translated */

static void adapt_clocks(uint64_t *cpu, uint64_t *mono)
{
    struct timespec c = { 0, 0 }, m = { 0, 0 };
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
    clock_gettime(CLOCK_MONOTONIC, &m);
    *cpu = (uint64_t)c.tv_sec * 1000000000ull + (uint64_t)c.tv_nsec;
    *mono = (uint64_t)m.tv_sec * 1000000000ull + (uint64_t)m.tv_nsec;
}

uint64_t xbt_adapt_base(struct xbt_vcpu *v)
{
    /* The TSC after the system call: its return is where the host preempts. */
    adapt_clocks(&v->dx.base_cpu, &v->dx.base_mono);
    return v->dx.base_tsc = __builtin_ia32_rdtsc();
}

/* A burst is timed by the TSC, which goes on while the host runs something else: a
   burst of a few hundred cycles that the host preempted looks as long as a compute
   loop (a chatty process promoted on a loaded host).  So a burst that reaches the
   threshold loses the time since its base (xbt_adapt_base, taken before the burst began
   and at most a threshold's time before it) that this thread did not run: the
   monotonic clock's progress less the thread's CPU time, in TSC ticks.  Time lost just
   before the burst is subtracted too, which only delays a promotion to a later burst.
   The base moves to now, and the burst goes on from what is left.  One system call per
   threshold's time of translated user code at most (the base, run.c) and one per
   burst that reaches the threshold. */
static uint64_t adapt_run_ticks(struct xbt_vcpu *v, uint64_t burst)
{
    uint64_t tsc0 = v->dx.base_tsc, cpu0 = v->dx.base_cpu, mono0 = v->dx.base_mono;
    uint64_t ticks = xbt_adapt_base(v) - tsc0; /* the base moves to now */
    uint64_t wall = v->dx.base_mono - mono0, ran = v->dx.base_cpu - cpu0;
    if (wall > ran && tsc0) {
        uint64_t lost = (uint64_t)((unsigned __int128)(wall - ran) * ticks / wall);
        burst = burst > lost ? burst - lost : 0;
    }
    return burst;
}

void xbt_adapt_account(struct xbt_vcpu *v, uint64_t ticks)
{
    v->dx.adapt_burst += ticks;
    struct xbt_dset *d = xbt_dset_cur(v->vm);
    if (d->demotions < XBT_ADAPT_STRIKES &&
        v->dx.adapt_burst >= v->vm->adapt_ticks << d->demotions &&
        (v->dx.adapt_burst = adapt_run_ticks(v, v->dx.adapt_burst)) >=
            v->vm->adapt_ticks << d->demotions) {
        d->promoted = true;
        d->m_ticks[1] = d->m_entries[1] = 0;
        /* The burst that earned the promotion is not the translated code's usual
           stretch: it leaves the measure (xbt_adapt_mark). */
        d->m_ticks[0] -= d->m_ticks[0] < v->dx.adapt_burst ? d->m_ticks[0] : v->dx.adapt_burst;
        v->stats.adapt_promotions++;
    }
}

/* The second half of the policy, measured instead of assumed: the cost of an exit is
   the host's, and on some hosts far above the model's (a PVM guest, where every host
   system call and process switch goes through the hypervisor: direct mode slower than
   strict on every phase of bench/run-macro.sh but one there).  The work a process
   does per kernel entry (a system call, a page fault, a timer tick) is about the same
   either way, so the time per kernel entry while its address space is current (its
   kernel work included, the same in both) compares the two ways on its own work: once
   promoted for XBT_ADAPT_WINDOW kernel entries, an address space that took more than
   1.25 times as long per entry (XBT_ADAPT_SLACK_NUM / _DEN) as it did translated goes
   back to translated code.  Where timer ticks are most entries (compute), both are the
   tick period and direct execution stays.  Gaps over XBT_ADAPT_GAP ticks (the vCPU
   halted, or out of xbt_vcpu_run) count for nothing.  Off unless XBT_ADAPT_DEMOTE=1
   (vm->adapt_demote: also adaptive mode and a promotion threshold; the run loop calls
   it only then): most of that host's direct cost was the hand-offs' CPU placement
   (runner.c, placement), and with that fixed this measure does more harm than good, as
   it is biased across a program's phases (cc1: a translated start full of page faults,
   then a compute loop whose directly run entries are mostly timer ticks, sent back four
   times in one compile).  Medians of 3 interleaved runs of the cc, link and xz phases:
   with it 12.07 s (a window of 64: 11.30), without 10.82, strict 11.52. */
#define XBT_ADAPT_WINDOW 16 /* 64 was measured too: link 5.34 against 4.68 s */
#define XBT_ADAPT_BASE 16   /* translated entries the comparison needs at least */
#define XBT_ADAPT_SLACK_NUM 5 /* 1.25 */
#define XBT_ADAPT_SLACK_DEN 4
#define XBT_ADAPT_GAP 20000000ull
void xbt_adapt_mark(struct xbt_vcpu *v)
{
    xbt_vm *vm = v->vm;
    struct xbt_wset *w = vm->mmu->cur;
    uint64_t now = __builtin_ia32_rdtsc(), dt = now - v->dx.mark_tsc;
    bool promoted = xbt_adapt_promoted(v); /* (a new address space: its measure reset) */
    struct xbt_dset *d = &vm->dset[v->dx.mark_set];
    bool same = v->dx.mark_set == w->idx && v->dx.mark_gen == w->gen &&
                v->dx.mark_cr3 == v->arch.cr3;
    if (same && dt < XBT_ADAPT_GAP) {
        int k = v->dx.mark_promoted;
        d->m_ticks[k] += dt;
        d->m_entries[k] += v->dx.kentries - v->dx.mark_kentries;
        if (k && d->promoted && d->m_entries[1] >= XBT_ADAPT_WINDOW) {
            if (d->m_entries[0] >= XBT_ADAPT_BASE &&
                d->m_ticks[1] / d->m_entries[1] * XBT_ADAPT_SLACK_DEN >
                    d->m_ticks[0] / d->m_entries[0] * XBT_ADAPT_SLACK_NUM) {
                d->promoted = false;
                d->demotions++;
                v->stats.adapt_demotions++;
                d->m_ticks[0] /= 2; /* the translated measure: the recent half weighs more */
                d->m_entries[0] /= 2;
            }
            d->m_ticks[1] = d->m_entries[1] = 0;
        }
    }
    v->dx.mark_tsc = now;
    v->dx.mark_kentries = v->dx.kentries;
    v->dx.mark_set = w->idx;
    v->dx.mark_gen = w->gen;
    v->dx.mark_cr3 = v->arch.cr3;
    v->dx.mark_promoted = promoted;
}

bool xbt_direct_wanted(struct xbt_vcpu *v)
{
    const xbt_vm *vm = v->vm;
    /* User code only: CPL 3, which real mode (CPL 0) never is; PE checked all the same,
       as the runner has no real mode. */
    v->dx.bounded = false;
    if (!vm->direct_ok || v->arch.cpl != 3 || !(v->arch.cr0 & XBT_CR0_PE) || v->dx.xlate ||
        v->dx.sticky || xbt_debugging(v))
        return false;
    /* Adaptive mode: a new address space runs translated until its user code has run
       for vm->adapt_ticks; short-lived processes never pay for a runner. */
    if (!xbt_adapt_promoted(v))
        return false;
    uint32_t sys = v->ctx.eflags_sys;
    if ((sys & XBT_EFLAGS_IOPL) == XBT_EFLAGS_IOPL || (sys & XBT_EFLAGS_VM) ||
        (v->arch.cr0 & (XBT_CR0_TS | XBT_CR0_EM)) || !(v->arch.cr4 & XBT_CR4_OSFXSR) ||
        (v->arch.cr4 & XBT_CR4_TSD) || xbt_hidden_isa(v))
        return false; /* IOPL 3 (CLI/POPF would differ), v86, lazy FPU, SSE that must
                         raise #UD (CR4.OSFXSR clear, or hidden by the CPUID policy:
                         the host would run it), RDTSC that must raise #GP (CR4.TSD:
                         the host would run it): translated.  (CR4.UMIP's instructions
                         never run natively: their pages are sensitive.) */
    const struct xbt_hot *h = hot_entry(v, v->ctx.eip);
    if (h) { /* adaptive mode's hot pages, sensitive pages */
        if (h->sticky)
            v->dx.sticky = true;
        else
            v->dx.bounded = true;
        return false;
    }
    return true;
}

static bool read_guest(struct xbt_vcpu *v, uint32_t lin, void *dst, uint32_t n)
{
    bool ok = xbt_read_lin_as(v, lin, dst, n, XBT_ACC_VMM); /* code it ran */
    v->pf_pending = false;
    return ok;
}

/* Guest code left guest semantics in its runner (a far transfer to a host selector:
   the host's 64-bit code segment), or its runner died under it.  Whatever it did since,
   it did inside a process that holds only this address space's user pages and may make
   no system call.  The runner is killed and the guest gets the #GP a far transfer to a
   selector the guest never gave it would raise; its state is the last one seen. */
static bool escaped(struct xbt_vcpu *v, uint32_t eip, uint16_t sel)
{
    struct xbt_wset *w = v->vm->mmu->cur;
    if (getenv("XBT_DEBUG_ESCAPE"))
        fprintf(stderr, "escape: sig %d trap %d err %#x rip %#llx cs %#x cr2 %#llx\n", v->direct.sig,
                v->direct.trapno, v->direct.err, (unsigned long long)v->direct.rip, v->direct.uc_cs,
                (unsigned long long)v->direct.cr2);
    xbt_runner_kill(xbt_set_runner(v->vm, w));
    xbt_smmu_dwin_lost(v->mmu, w->idx);
    v->stats.direct_escapes++;
    return xbt_raise(v, XBT_GP, true, sel & 0xFFFCu, eip);
}

/*
 * A guest page fault raised from directly run code is most often answered by a handler
 * that makes the page present and returns to the faulting instruction, which would
 * then fault again in the runner only for the D-window to be filled: an exit (two host
 * context switches) for nothing the guest can see.  Before the next entry into the same
 * address space, the page goes in at once if the access would now succeed without
 * setting an accessed or dirty bit (Linux sets both when it fixes a fault); otherwise
 * nothing is done and the access faults as usual.  Returns false when an exit is
 * recorded, and sets direct_xlate when the instruction must run translated (a page
 * whose code the host would answer differently, a write to translated code).
 */
static bool refault_map(struct xbt_vcpu *v)
{
    v->dx.refault = false;
    if (!xbt_paging(v) || v->arch.cr3 != v->dx.refault_cr3)
        return true;
    uint32_t err = v->dx.refault_err, lin = v->dx.refault_lin;
    xbt_walk_result wr;
    if (!xbt_walk_settled(v, lin, err & 2, true, err & 0x10, &wr) ||
        !xbt_gpa_mem(v->vm, wr.gpa, err & 2))
        return true;
    uint32_t saved = v->fault_err;
    v->fault_err = err & (2 | 0x10);
    int r = xbt_window_fault(v, XBT_WINDOW_D, lin);
    v->fault_err = saved;
    if (r == XBT_WF_TRANSLATE)
        v->dx.xlate = true;
    else if (r == XBT_WF_DONE)
        v->stats.direct_refaults_saved++;
    return r != XBT_WF_EXIT;
}

/* Window set w's runner, started if it is not running.  false: none can be (direct
   execution is off from now on; vm->direct_why says why). */
static bool runner_ready(struct xbt_vcpu *v, struct xbt_wset *w)
{
    xbt_vm *vm = v->vm;
    if (xbt_runner_alive(xbt_set_runner(v->vm, w)))
        return true;
    char why[sizeof vm->direct_why];
    struct xbt_runner_files files;
    runner_files(vm, &files);
    if (!xbt_runner_start(xbt_set_runner(v->vm, w), &files, why, sizeof why)) {
        vm->direct_ok = false;
        snprintf(vm->direct_why, sizeof vm->direct_why, "%s", why);
        return false;
    }
    xbt_smmu_dwin_lost(v->mmu, w->idx);
    v->stats.direct_runner_starts++;
    return true;
}

/* The guest's segment registers as host selectors (mirror_segment) in v->direct.sel.
   false: internal error; or direct_xlate set: the instruction runs translated. */
static bool mirror_segments(struct xbt_vcpu *v)
{
    static const char *const names[XBT_NSEG] = { "ES", "CS", "SS", "DS", "FS", "GS" };
    for (int s = 0; s < XBT_NSEG; s++) {
        errno = 0;
        if (!mirror_segment(v, s, &v->direct.sel[s])) {
            if (errno == EINVAL) {
                /* A descriptor the host's LDT refuses (Linux takes no present
                   conforming code segment): this instruction runs translated, which
                   has every rule. */
                v->dx.xlate = true;
                return true;
            }
            xbt_set_internal_error(v, v->ctx.eip, "cannot mirror the guest's %s segment",
                                   names[s]);
            return false;
        }
    }
    return true;
}

/* Runs the guest in runner r from the vCPU's state until it stops; xbt_runner_run's
   result. */
static int enter_runner(struct xbt_vcpu *v, struct xbt_runner *r)
{
    struct xbt_direct *d = &v->direct;
    memcpy(d->gpr, v->ctx.gpr, sizeof d->gpr);
    d->eip = v->ctx.eip;
    d->eflags = (v->ctx.eflags & XBT_EFLAGS_ARITH) |
                (v->ctx.eflags_sys & (XBT_EFLAGS_TF | XBT_EFLAGS_AC | XBT_EFLAGS_NT)) |
                XBT_EFLAGS_IF | XBT_EFLAGS_FIXED;
    atomic_store(&v->dx.runner, r);
    int rc = xbt_runner_run(r, d, v->ctx.fpu, v->ctx.fpu, &v->kick);
    atomic_store(&v->dx.runner, NULL);
    v->stats.direct_entries++;
    return rc;
}

/* The guest ran in the runner and stopped: its state back into the vCPU. */
static void leave_runner(struct xbt_vcpu *v)
{
    const struct xbt_direct *d = &v->direct;
    v->stats.direct_exits++;
    memcpy(v->ctx.gpr, d->gpr, sizeof d->gpr);
    v->ctx.eip = d->eip;
    v->ctx.eflags = d->eflags & XBT_EFLAGS_ARITH;
    v->ctx.eflags_sys = (v->ctx.eflags_sys & ~(XBT_EFLAGS_TF | XBT_EFLAGS_AC | XBT_EFLAGS_NT)) |
                        (d->eflags & (XBT_EFLAGS_TF | XBT_EFLAGS_AC | XBT_EFLAGS_NT));
}

/* Window set w's runner is gone (xbt_runner_run failed): killed from outside, or by
   guest code that left guest semantics (escaped).  false: an exit is recorded. */
static bool runner_gone(struct xbt_vcpu *v, struct xbt_wset *w, uint32_t entry_eip)
{
    if (!xbt_set_runner(v->vm, w)->lost)
        return escaped(v, entry_eip, 0);
    /* Killed from outside (the thread that started it has exited, or the OOM killer):
       the guest did nothing; a new runner takes the entry again. */
    xbt_runner_kill(xbt_set_runner(v->vm, w));
    xbt_smmu_dwin_lost(v->mmu, w->idx);
    if (++v->dx.lost_streak > 16) {
        xbt_set_internal_error(v, entry_eip, "runner processes keep being killed from "
                               "outside (SIGKILL: the OOM killer?)");
        return false;
    }
    return true;
}

/* Data segment registers the guest loaded itself: the host resolved them against its own
   GDT, so the guest's own load is done now, against the guest's tables.  Returns how
   many were loaded, or -1 when a load raised the guest's fault. */
static int reload_segments(struct xbt_vcpu *v, uint32_t eip)
{
    const struct xbt_direct *d = &v->direct;
    static const int hseg[4] = { XBT_DS, XBT_ES, XBT_FS, XBT_GS };
    int reloaded = 0;
    for (int i = 0; i < 4; i++) {
        int s = hseg[i];
        uint16_t hsel = d->hsel[i];
        if (hsel == d->sel[s])
            continue;
        reloaded++;
        int from = -1; /* a copy of another register's mirror selector */
        for (int t = 0; t < XBT_NSEG && from < 0; t++)
            if (d->sel[t] == hsel && hsel != 0)
                from = t;
        if (from >= 0)
            xbt_set_seg(v, s, &v->arch.seg[from]);
        else if (!xbt_load_seg(v, s, hsel, eip))
            return -1;
    }
    return reloaded;
}

/* A #PF in the runner: a jump into a page that runs translated, a hidden fault (the
   D-window filled), a page only the translator can run, or the guest's own #PF, raised.
   false: an exit is recorded. */
static bool direct_page_fault(struct xbt_vcpu *v, uint32_t eip)
{
    const struct xbt_direct *d = &v->direct;
    v->fault_err = d->err;
    uint32_t lin = (uint32_t)d->cr2;
    struct xbt_hot *h = (d->err & XBT_PF_I) ? hot_entry(v, eip) : NULL;
    if (h) {
        /* A jump into a page that runs translated (mapped without execute
           permission): it does, from here on. */
        v->stats.direct_crossings++;
        if (v->dx.crossed == h->page)
            h->sticky = true; /* called from directly run code again and again */
        v->dx.crossed = h->page;
        if (h->sticky)
            v->dx.sticky = true;
        return true;
    }
    uint64_t raised = v->stats.page_faults;
    int r = xbt_window_fault(v, XBT_WINDOW_D, lin);
    if (v->stats.page_faults != raised) { /* the guest's: see refault_map */
        v->dx.refault = true;
        v->dx.refault_lin = lin;
        v->dx.refault_err = d->err;
        v->dx.refault_cr3 = v->arch.cr3;
    }
    if (r == XBT_WF_TRANSLATE) { /* the D-window cannot take it: translate it */
        v->dx.xlate = true;
        return true;
    }
    return r != XBT_WF_EXIT;
}

/* int 0x80 (or INT n through a host DPL 3 gate) from guest code: the host kernel never
   ran it.  EIP is past the instruction; the guest's own IDT decides. */
static bool direct_int(struct xbt_vcpu *v, uint32_t eip)
{
    uint8_t b[2];
    v->stats.direct_syscalls++;
    if (read_guest(v, v->arch.seg[XBT_CS].base + eip - 2, b, 2) && b[0] == 0xCD) {
        /* INT n with the guest's gate rules (DPL check, stack switch), delivered
           right here: the instruction needs no translation. */
        v->ctx.eip = eip - 2;
        if (v->vm->cfg.user_mode == XBT_USER_ADAPTIVE)
            count_trap(v, v->ctx.eip);
        return xbt_deliver_interrupt(v, b[1], true, eip, eip - 2);
    }
    if (read_guest(v, v->arch.seg[XBT_CS].base + eip - 2, b, 2) && b[0] == 0x0F && b[1] == 0x05) {
        /* SYSCALL from compatibility mode (AMD): the virtual CPU has none (#UD).
           The CPU has already put the return address into ECX: the guest's ECX
           is lost (documented). */
        return xbt_raise(v, XBT_UDV, false, 0, eip - 2);
    }
    /* A system call from an instruction that is not there any more: nothing
       the guest could have done at CPL 3 on a real CPU. */
    return escaped(v, eip, 0);
}

/* Answers the host signal that stopped the guest at eip: a kick, a fault or trap the
   guest sees, SYSENTER or INT n done here; anything else runs the instruction at
   ctx.eip once through the translator.  false: an exit is recorded. */
static bool direct_signal(struct xbt_vcpu *v, uint32_t eip)
{
    const struct xbt_direct *d = &v->direct;
    switch (d->sig) {
    case SIGUSR2: /* a kick: the run loop looks at interrupts and requests */
        v->stats.direct_kicks++;
        return true;
    case SIGSEGV:
        if (d->trapno == 14)
            return direct_page_fault(v, eip);
        if (d->trapno == 4) /* INTO: a trap, EIP is past it */
            return xbt_raise(v, XBT_OF, false, 0, eip);
        break; /* #GP and the rest: the translator knows the guest's rules */
    case SIGFPE:
        if (d->trapno == 0)
            return xbt_raise(v, XBT_DE, false, 0, eip);
        if (d->trapno == 16)
            return xbt_raise(v, XBT_MF, false, 0, eip);
        if (d->trapno == 19)
            return xbt_raise(v, (v->arch.cr4 & XBT_CR4_OSXMMEXCPT) ? XBT_XM : XBT_UDV, false, 0,
                             eip);
        break;
    case SIGILL: {
        /* SYSENTER (AMD refuses it in compatibility mode; so does xbt's host kernel on
           Intel, which would lose its address): the guest's own, done here. */
        uint8_t b[2];
        if (read_guest(v, v->arch.seg[XBT_CS].base + eip, b, 2) && b[0] == 0x0F && b[1] == 0x34) {
            v->stats.direct_syscalls++;
            if (v->vm->cfg.user_mode == XBT_USER_ADAPTIVE)
                count_trap(v, eip);
            return xbt_sysenter(v);
        }
        break;
    }
    case SIGTRAP:
        if (d->trapno == 1) /* single step (guest TF): a trap after the instruction */
            return xbt_raise(v, XBT_DB, false, 0, eip);
        if (d->trapno == 3) { /* INT3 / INT 3: back to the instruction, translated */
            uint8_t b[2];
            if (read_guest(v, v->arch.seg[XBT_CS].base + eip - 1, b + 1, 1) && b[1] == 0xCC)
                v->ctx.eip = eip - 1;
            else if (read_guest(v, v->arch.seg[XBT_CS].base + eip - 2, b, 2) && b[0] == 0xCD)
                v->ctx.eip = eip - 2;
        }
        break;
    case SIGSYS:
        return direct_int(v, eip);
    default:
        break;
    }
    /* Run the instruction at ctx.eip once through the translator. */
    v->stats.direct_xlate++;
    if (v->vm->cfg.user_mode == XBT_USER_ADAPTIVE)
        count_trap(v, v->ctx.eip);
    v->dx.xlate = true;
    return true;
}

/* Runs the guest's user code directly until the next exit and handles that exit.
   false: an exit for the embedder (or an internal error) is recorded in v->exit. */
bool xbt_direct_run(struct xbt_vcpu *v)
{
    struct xbt_direct *d = &v->direct;
    struct xbt_wset *w = v->vm->mmu->cur;
    if (!runner_ready(v, w))
        return true; /* strict from now on */
    if (v->dx.refault) {
        if (!refault_map(v))
            return false;
        if (v->dx.xlate)
            return true;
    }
    if (!mirror_segments(v))
        return false;
    if (v->dx.xlate)
        return true;
    uint32_t entry_eip = v->ctx.eip;
    if (enter_runner(v, xbt_set_runner(v->vm, w)) < 0)
        return runner_gone(v, w, entry_eip);
    v->dx.lost_streak = 0;
    if (d->aborted == 1)
        return true; /* a kick before the guest ran */
    if (d->aborted) {
        /* The host refused the entry (an LDT descriptor, a selector IRETQ would not
           load): the instruction runs translated, with the guest's rules. */
        v->dx.xlate = true;
        return true;
    }
    leave_runner(v);
    uint32_t eip = d->eip;
    if (d->rip >> 32 || d->uc_cs == 0x33 || (d->sig == SIGSYS && d->arch != AUDIT_ARCH_I386))
        return escaped(v, d->rip >> 32 ? entry_eip : eip,
                       d->uc_cs != d->sel[XBT_CS] ? d->uc_cs : 0);
    if (d->uc_cs != d->sel[XBT_CS]) {
        /* A far transfer to a 32-bit host selector (0x23): the guest's GDT has some
           other descriptor there, the VMM a #GP for the guest. */
        v->stats.direct_escapes++;
        return xbt_raise(v, XBT_GP, true, d->uc_cs & 0xFFFCu, eip);
    }
    int reloaded = reload_segments(v, eip);
    if (reloaded < 0)
        return true; /* the guest's fault is raised */
    if (reloaded && (d->sig == SIGSEGV || d->sig == SIGBUS))
        return true; /* most likely the host's segment faulted: retry with the guest's */
    return direct_signal(v, eip);
}
