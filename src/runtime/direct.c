/*
 * direct.c - direct execution of guest user code (CPL 3), as the classic VMware VMM
 * did: the code runs unmodified on the CPU in 32-bit compatibility mode at its own
 * addresses, and every way back to the VMM is a host signal.
 *
 *  - D-window: host [mmap_min_addr, 4 GiB) holds the guest's user pages at their own
 *    linear addresses, filled lazily like the other windows (a host fault is a hidden
 *    fault or a true guest #PF).  One VM per process owns it; another falls back to
 *    strict mode (translated user code).
 *  - Segments: the host GDT is the host kernel's, so the guest's segments are mirrored
 *    into the process's LDT (modify_ldt) with the guest's base, limit and type;
 *    flat ones use the host's own flat user selectors 0x23/0x2b.
 *  - Containment: a seccomp filter (per vCPU thread) traps every system call whose
 *    architecture is not x86-64 or whose instruction pointer is below 4 GiB, so guest
 *    code never reaches the host kernel: int 0x80 comes back as SIGSYS.
 *  - Exits: faults and traps the guest must see are raised; anything else (a
 *    privileged instruction's #GP, INT n, #UD, I/O) is run once through the translator,
 *    which implements its exact CPL 3 semantics, and direct execution resumes after it.
 */
#define _GNU_SOURCE
#include <asm/ldt.h>
#include <asm/prctl.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "runtime/direct.h"
#include "shadow-mmu/walk.h"
#include "vcpu.h"

_Static_assert(offsetof(struct xbt_direct, host_rsp) == XBT_D_HOST_RSP, "direct");
_Static_assert(offsetof(struct xbt_direct, ctx) == XBT_D_CTX, "direct");
_Static_assert(offsetof(struct xbt_direct, kick) == XBT_D_KICK, "direct");
_Static_assert(offsetof(struct xbt_direct, gpr) == XBT_D_GPR, "direct");
_Static_assert(offsetof(struct xbt_direct, eip) == XBT_D_EIP, "direct");
_Static_assert(offsetof(struct xbt_direct, eflags) == XBT_D_EFLAGS, "direct");
_Static_assert(offsetof(struct xbt_direct, sel) == XBT_D_SEL, "direct");
_Static_assert(offsetof(struct xbt_direct, avx) == XBT_D_AVX, "direct");
_Static_assert(offsetof(ucontext_t, uc_mcontext.gregs[REG_RIP]) == XBT_UC_RIP, "ucontext");
_Static_assert(offsetof(ucontext_t, uc_mcontext.gregs[REG_CSGSFS]) == XBT_UC_CSGSFS, "uc");

#define HOST_CS32 0x23 /* the host kernel's flat 32-bit user code selector */
#define HOST_DS 0x2b   /* its flat user data selector */
#define HOST_CS64 0x33 /* its 64-bit user code selector */

/* ---- the D-window ------------------------------------------------------------------ */

static xbt_vm *dwin_owner;   /* the VM whose user pages the D-window holds */
static uint32_t dwin_lo;     /* mmap_min_addr, page aligned */
static bool dwin_reserved;

static uint32_t min_addr(void)
{
    unsigned long v = 65536;
    FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "r");
    if (f) {
        if (fscanf(f, "%lu", &v) != 1)
            v = 65536;
        fclose(f);
    }
    if (v < 4096)
        v = 4096;
    return (uint32_t)((v + 4095) & ~4095ul);
}

static void dwin_clear(uint32_t lo, uint64_t hi)
{
    if (lo < dwin_lo)
        lo = dwin_lo;
    if (hi > (4ull << 30))
        hi = 4ull << 30;
    if (hi <= lo)
        return;
    mmap((void *)(uintptr_t)lo, hi - lo, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
}

bool xbt_direct_vm_init(xbt_vm *vm, const char **why)
{
    if (dwin_owner) {
        *why = "another VM of this process owns the low 4 GiB (the D-window)";
        return false;
    }
    if (!dwin_reserved) {
        dwin_lo = min_addr();
        void *want = (void *)(uintptr_t)dwin_lo;
        void *p = mmap(want, (4ull << 30) - dwin_lo, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p != want) {
            if (p != MAP_FAILED)
                munmap(p, (4ull << 30) - dwin_lo);
            *why = "the host's low 4 GiB are not free (a non-PIE executable or a library "
                   "mapped there)";
            return false;
        }
        dwin_reserved = true;
    }
    dwin_owner = vm;
    vm->direct_ok = true;
    return true;
}

void xbt_direct_vm_destroy(xbt_vm *vm)
{
    if (dwin_owner != vm)
        return;
    dwin_clear(0, 4ull << 30);
    dwin_owner = NULL;
}

void xbt_direct_window_drop(xbt_vm *vm, uint32_t lin, uint64_t len)
{
    if (dwin_owner == vm && vm->direct_ok)
        dwin_clear(lin, (uint64_t)lin + len);
}

bool xbt_direct_window_map_range(xbt_vm *vm, uint32_t lin, uint64_t gpa, uint32_t len,
                                 bool writable)
{
    if (dwin_owner != vm || lin < dwin_lo)
        return false;
    void *at = (void *)(uintptr_t)lin;
    if (mmap(at, len, PROT_READ | PROT_EXEC | (writable ? PROT_WRITE : 0),
             MAP_SHARED | MAP_FIXED, vm->memfd, (off_t)gpa) != at)
        return false;
    xbt_wmap_note(vm, XBT_WIN_DIRECT, lin, len);
    return true;
}

bool xbt_direct_window_map(xbt_vm *vm, uint32_t lin, uint64_t gpa, bool writable)
{
    if (dwin_owner != vm || lin < dwin_lo)
        return false;
    /* Executable: the guest's code runs from here (non-PAE paging has no NX). */
    return xbt_direct_window_map_range(vm, lin & ~0xFFFu, gpa & ~0xFFFull, 4096, writable);
}

/* ---- per thread: seccomp ------------------------------------------------------------ */

static __thread int thread_seccomp; /* 0 unknown, 1 installed, -1 failed */

/* Trap every system call that does not come from 64-bit code above 4 GiB. */
static bool install_seccomp(void)
{
    if (thread_seccomp)
        return thread_seccomp > 0;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer) + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    thread_seccomp = -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return false;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        return false;
    thread_seccomp = 1;
    return true;
}

/* ---- segments ----------------------------------------------------------------------- */

static bool flat(const xbt_segment *s)
{
    return s->base == 0 && s->limit == 0xFFFFFFFFu && s->db && s->present && !s->unusable;
}

/* The host selector for guest segment register `seg`: a host flat selector, null, or
   LDT entry `seg` written with the guest's descriptor (only when it changed). */
static bool mirror_segment(struct xbt_vcpu *v, int seg, uint16_t *out)
{
    const xbt_segment *s = &v->seg[seg];
    bool code = s->type & 8;
    if (seg != XBT_CS && seg != XBT_SS && (s->unusable || !(s->selector & ~3u))) {
        *out = 0;
        return true;
    }
    if (flat(s) && seg == XBT_CS && code && (s->type & 2) && !(s->type & 4)) {
        *out = HOST_CS32;
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
    uint64_t key = ((uint64_t)d.base_addr << 32) ^ ((uint64_t)d.limit << 8) ^
                   (uint64_t)(d.contents | d.seg_32bit << 2 | d.read_exec_only << 3 |
                              d.limit_in_pages << 4 | d.seg_not_present << 5 | 1u << 6);
    if (v->ldt_key[seg] != key) {
        /* The kernel's modify_ldt returns an int zero-extended to a long: -EINVAL comes
           back as 4294967274 with errno untouched. */
        int rc = (int)syscall(SYS_modify_ldt, 0x11, &d, sizeof d);
        if (rc != 0) {
            errno = rc < 0 && rc != -1 ? -rc : errno;
            return false;
        }
        v->ldt_key[seg] = key;
    }
    *out = (uint16_t)((seg << 3) | 4 | 3);
    return true;
}

/* ---- the signal side ---------------------------------------------------------------- */

/* Called by the signal handlers (after the entry stub restored FS/GS) while a vCPU is
   in xbt_direct_enter.  true: the signal interrupted the guest or the entry sequence,
   the exit is recorded and the ucontext points at the resume stub. */
bool xbt_direct_signal(struct xbt_vcpu *v, int sig, siginfo_t *si, ucontext_t *uc)
{
    struct xbt_direct *d = &v->direct;
    greg_t *g = uc->uc_mcontext.gregs;
    uint64_t rip = (uint64_t)g[REG_RIP];
    uint16_t cs = (uint16_t)g[REG_CSGSFS];
    bool in_stub = cs == HOST_CS64 && rip >= (uintptr_t)xbt_direct_crit_begin &&
                   rip < (uintptr_t)xbt_direct_crit_end;
    if (cs == HOST_CS64 && !in_stub && rip >= (1ull << 32))
        return false; /* VMM code */
    if (in_stub) {
        d->aborted = sig == SIGUSR2 ? 1 : 2; /* 2: the entry itself faulted */
        d->sig = sig;
        d->rip = rip;
    } else {
        d->aborted = 0;
        d->gpr[XBT_EAX] = (uint32_t)g[REG_RAX];
        d->gpr[XBT_ECX] = (uint32_t)g[REG_RCX];
        d->gpr[XBT_EDX] = (uint32_t)g[REG_RDX];
        d->gpr[XBT_EBX] = (uint32_t)g[REG_RBX];
        d->gpr[XBT_ESP] = (uint32_t)g[REG_RSP];
        d->gpr[XBT_EBP] = (uint32_t)g[REG_RBP];
        d->gpr[XBT_ESI] = (uint32_t)g[REG_RSI];
        d->gpr[XBT_EDI] = (uint32_t)g[REG_RDI];
        d->eip = (uint32_t)rip;
        d->rip = rip;
        d->eflags = (uint32_t)g[REG_EFL];
        d->sig = sig;
        d->code = si->si_code;
        d->addr = (uint64_t)(uintptr_t)si->si_addr;
        d->trapno = (int)g[REG_TRAPNO];
        d->err = (uint32_t)g[REG_ERR];
        d->cr2 = (uint64_t)g[REG_CR2];
        d->uc_cs = cs;
        d->uc_ss = (uint16_t)((uint64_t)g[REG_CSGSFS] >> 48);
        if (sig == SIGSYS) {
            d->sysno = si->si_syscall;
            d->arch = si->si_arch;
        }
        const uint16_t *hs = (const uint16_t *)((((uintptr_t)__builtin_frame_address(0)) &
                                                 ~(uintptr_t)(XBT_ALTSTACK_SIZE - 1)) +
                                                XBT_ALT_SEL);
        memcpy(d->hsel, hs, sizeof d->hsel);
    }
    /* Back to the VMM: rt_sigreturn lands in xbt_direct_resume on the entry's stack. */
    g[REG_RIP] = (greg_t)(uintptr_t)xbt_direct_resume;
    g[REG_RSP] = (greg_t)d->host_rsp;
    g[REG_R13] = (greg_t)d->ctx;
    g[REG_RBX] = (greg_t)d->avx;
    g[REG_EFL] = 0x202;
    g[REG_CSGSFS] = (greg_t)(HOST_CS64 | ((uint64_t)HOST_DS << 48));
    return true;
}

/* ---- the run-loop side ---------------------------------------------------------------- */

/* Adaptive mode: linear code pages (with the address space) that trapped often. */
static uint32_t hot_slot(const struct xbt_vcpu *v, uint32_t page)
{
    return (page ^ (v->cr3 >> 12) * 0x9E37u) & (XBT_HOT_SLOTS - 1);
}

bool xbt_direct_hot(const struct xbt_vcpu *v, uint32_t eip)
{
    uint32_t page = (v->seg[XBT_CS].base + eip) >> 12;
    const struct xbt_hot *h = &v->hot[hot_slot(v, page)];
    return h->page == page && h->cr3 == v->cr3 && h->count >= XBT_HOT_THRESHOLD;
}

static void count_trap(struct xbt_vcpu *v, uint32_t eip)
{
    uint32_t page = (v->seg[XBT_CS].base + eip) >> 12;
    struct xbt_hot *h = &v->hot[hot_slot(v, page)];
    if (h->page != page || h->cr3 != v->cr3) {
        h->page = page;
        h->cr3 = v->cr3;
        h->count = 0;
    }
    if (h->count < 0xFFFF)
        h->count++;
}

bool xbt_direct_wanted(const struct xbt_vcpu *v)
{
    const xbt_vm *vm = v->vm;
    if (!vm->direct_ok || v->cpl != 3 || v->direct_xlate)
        return false;
    uint32_t sys = v->ctx.eflags_sys;
    if ((sys & XBT_EFLAGS_IOPL) == XBT_EFLAGS_IOPL || (sys & XBT_EFLAGS_VM) ||
        (v->cr0 & (XBT_CR0_TS | XBT_CR0_EM)))
        return false; /* IOPL 3 (CLI/POPF would differ), v86, lazy FPU: translated */
    if (vm->cfg.user_mode == XBT_USER_ADAPTIVE && xbt_direct_hot(v, v->ctx.eip))
        return false;
    return true;
}

static bool read_guest(struct xbt_vcpu *v, uint32_t lin, void *dst, uint32_t n)
{
    bool ok = xbt_read_lin(v, lin, dst, n);
    v->pf_pending = false;
    return ok;
}

/* Runs the guest's user code directly until the next exit and handles that exit.
   false: an exit for the embedder (or an internal error) is recorded in v->exit. */
bool xbt_direct_run(struct xbt_vcpu *v)
{
    struct xbt_direct *d = &v->direct;
    if (!install_seccomp()) {
        v->vm->direct_ok = false;
        snprintf(v->vm->direct_why, sizeof v->vm->direct_why,
                 "cannot install the seccomp filter (%s)", strerror(errno));
        return true; /* strict from now on */
    }
    static const char *const names[XBT_NSEG] = { "ES", "CS", "SS", "DS", "FS", "GS" };
    for (int s = 0; s < XBT_NSEG; s++) {
        errno = 0;
        if (!mirror_segment(v, s, &d->sel[s])) {
            if (errno == EINVAL) {
                /* A descriptor the host's LDT refuses (Linux takes no present
                   conforming code segment): this instruction runs translated, which
                   has every rule. */
                v->direct_xlate = true;
                return true;
            }
            xbt_set_internal_error(v, v->ctx.eip, "modify_ldt failed for the guest's %s "
                                   "segment (%s)", names[s], strerror(errno));
            return false;
        }
    }
    if (!v->avx_checked) {
        /* Directly executed code sees the host's CPUID, AVX included: its upper halves
           must survive the VMM's C code too (XCR0 bit 2 on, OSXSAVE). */
        v->avx_checked = true;
        unsigned a, b, c, dd;
        __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(dd) : "a"(1), "c"(0));
        if (c & (1u << 27)) {
            uint32_t lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            if ((lo & 6) == 6 && !posix_memalign(&v->avx_area, 64, 4096))
                memset(v->avx_area, 0, 4096); /* XSTATE_BV 0: the init state */
        }
        d->avx = (uint64_t)(uintptr_t)v->avx_area;
    }
    memcpy(d->gpr, v->ctx.gpr, sizeof d->gpr);
    d->eip = v->ctx.eip;
    d->eflags = (v->ctx.eflags & XBT_EFLAGS_ARITH) |
                (v->ctx.eflags_sys & (XBT_EFLAGS_TF | XBT_EFLAGS_AC | XBT_EFLAGS_NT)) | 0x202;
    d->ctx = (uint64_t)(uintptr_t)&v->ctx;
    d->kick = (uint64_t)(uintptr_t)&v->kick;
    v->in_direct = true;
    int rc = xbt_direct_enter(d);
    v->in_direct = false;
    v->stats.direct_entries++;
    if (rc == 1 || d->aborted == 1)
        return true; /* a kick before the guest ran */
    if (d->aborted == 2) {
        xbt_set_internal_error(v, v->ctx.eip, "entering guest user mode failed (host signal %d "
                               "at %#llx; selectors cs %#x ss %#x)", d->sig,
                               (unsigned long long)d->rip, d->sel[XBT_CS], d->sel[XBT_SS]);
        return false;
    }
    v->stats.direct_exits++;
    memcpy(v->ctx.gpr, d->gpr, sizeof d->gpr);
    v->ctx.eip = d->eip;
    v->ctx.eflags = d->eflags & XBT_EFLAGS_ARITH;
    v->ctx.eflags_sys = (v->ctx.eflags_sys & ~(XBT_EFLAGS_TF | XBT_EFLAGS_AC | XBT_EFLAGS_NT)) |
                        (d->eflags & (XBT_EFLAGS_TF | XBT_EFLAGS_AC | XBT_EFLAGS_NT));
    uint32_t eip = d->eip;
    if (d->uc_cs != d->sel[XBT_CS] || d->rip >> 32) {
        /* A far transfer the host CPU resolved against its own GDT: to its 64-bit code
           selector this is the hole strict mode closes. */
        xbt_set_internal_error(v, eip, "directly executed guest code switched the host CPU "
                               "to selector %#x (rip %#llx): a far transfer to a host "
                               "selector; run it with --user-mode=strict", d->uc_cs,
                               (unsigned long long)d->rip);
        if (d->sig == SIGSYS)
            snprintf(v->exit.internal.message, sizeof v->exit.internal.message,
                     "guest SYSCALL/SYSENTER in directly executed code (host system call %d "
                     "trapped, arch %#x): the host kernel does not keep its address; run "
                     "it with --user-mode=strict", d->sysno, d->arch);
        return false;
    }
    /* Data segment registers the guest loaded itself: the host resolved them against
       its own GDT, so the guest's own load is done now, against the guest's tables. */
    static const int hseg[4] = { XBT_DS, XBT_ES, XBT_FS, XBT_GS };
    bool reloaded = false;
    for (int i = 0; i < 4; i++) {
        int s = hseg[i];
        uint16_t hsel = d->hsel[i];
        if (hsel == d->sel[s])
            continue;
        reloaded = true;
        int from = -1; /* a copy of another register's mirror selector */
        for (int t = 0; t < XBT_NSEG && from < 0; t++)
            if (d->sel[t] == hsel && hsel != 0)
                from = t;
        if (from >= 0)
            xbt_set_seg(v, s, &v->seg[from]);
        else if (!xbt_load_seg(v, s, hsel, eip))
            return true; /* the guest's fault is raised */
    }
    if (reloaded && (d->sig == SIGSEGV || d->sig == SIGBUS))
        return true; /* most likely the host's segment faulted: retry with the guest's */
    switch (d->sig) {
    case SIGUSR2: /* a kick: the run loop looks at interrupts and requests */
        v->stats.direct_kicks++;
        return true;
    case SIGSEGV:
        if (d->trapno == 14) {
            v->fault_err = d->err;
            uint32_t lin = (uint32_t)d->cr2;
            if (!xbt_paging(v)) {
                /* Paging off: linear is physical and every page is the user's. */
                bool write = d->err & 2;
                uint32_t page = lin >> 12;
                if (lin >= v->vm->ram_size) {
                    v->direct_xlate = true; /* MMIO or open bus: the translator exits */
                    return true;
                }
                if (write && v->vm->code_prot[page]) {
                    xbt_vm_invalidate(v->vm, (uint64_t)page << 12, 4096);
                    v->ibl_stale = true;
                }
                if (!xbt_direct_window_map(v->vm, lin, lin, !v->vm->code_prot[page]))
                    v->direct_xlate = true;
                else
                    v->stats.hidden_faults++;
                return true;
            }
            int r = xbt_paged_fault(v, XBT_WIN_DIRECT, lin);
            if (r == 2) { /* cannot be mapped at its own address: translate it */
                v->direct_xlate = true;
                return true;
            }
            return r != 0;
        }
        if (d->trapno == 4) /* INTO: a trap, EIP is past it */
            return xbt_raise(v, XBT_OF, false, 0, eip);
        break; /* #GP and the rest: the translator knows the guest's rules */
    case SIGFPE:
        if (d->trapno == 0)
            return xbt_raise(v, XBT_DE, false, 0, eip);
        if (d->trapno == 16)
            return xbt_raise(v, XBT_MF, false, 0, eip);
        if (d->trapno == 19)
            return xbt_raise(v, (v->cr4 & 0x400) ? XBT_XM : XBT_UDV, false, 0, eip);
        break;
    case SIGILL: {
        /* SYSENTER (AMD refuses it in compatibility mode; so does xbt's host kernel on
           Intel, which would lose its address): the guest's own, done here. */
        uint8_t b[2];
        if (read_guest(v, v->seg[XBT_CS].base + eip, b, 2) && b[0] == 0x0F && b[1] == 0x34) {
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
            if (read_guest(v, v->seg[XBT_CS].base + eip - 1, b + 1, 1) && b[1] == 0xCC)
                v->ctx.eip = eip - 1;
            else if (read_guest(v, v->seg[XBT_CS].base + eip - 2, b, 2) && b[0] == 0xCD)
                v->ctx.eip = eip - 2;
        }
        break;
    case SIGSYS: {
        /* int 0x80 (or INT n through a host DPL 3 gate) from guest code: the host kernel
           never ran it.  EIP is past the instruction; the guest's own IDT decides. */
        uint8_t b[2];
        v->stats.direct_syscalls++;
        if (read_guest(v, v->seg[XBT_CS].base + eip - 2, b, 2) && b[0] == 0xCD) {
            /* INT n with the guest's gate rules (DPL check, stack switch), delivered
               right here: the instruction needs no translation. */
            v->ctx.eip = eip - 2;
            if (v->vm->cfg.user_mode == XBT_USER_ADAPTIVE)
                count_trap(v, v->ctx.eip);
            return xbt_deliver_interrupt(v, b[1], true, eip, eip - 2);
        } else {
            xbt_set_internal_error(v, eip, "host system call %d trapped from guest code at "
                                   "%08x, not after an INT instruction", d->sysno, eip);
            return false;
        }
        break;
    }
    default:
        break;
    }
    /* Run the instruction at ctx.eip once through the translator. */
    v->stats.direct_xlate++;
    if (v->vm->cfg.user_mode == XBT_USER_ADAPTIVE)
        count_trap(v, v->ctx.eip);
    v->direct_xlate = true;
    return true;
}

/* The alternate signal stack of a vCPU thread, aligned to its size, with the header
   the entry stubs read.  Returns the header (NULL: none could be made). */
static __thread uint8_t *thread_alt;

uint8_t *xbt_thread_altstack(void)
{
    if (thread_alt)
        return thread_alt;
    size_t sz = XBT_ALTSTACK_SIZE;
    uint8_t *p = mmap(NULL, 2 * sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)p + sz - 1) & ~(uintptr_t)(sz - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    munmap(a + sz, (size_t)(p + 2 * sz - (a + sz)));
    uint64_t fs = 0;
    syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
    *(uint64_t *)(a + XBT_ALT_MAGIC_OFF) = XBT_ALT_MAGIC;
    *(uint64_t *)(a + XBT_ALT_FSBASE) = fs;
    *(uint64_t *)(a + XBT_ALT_GSBASE) = 0;
    a[XBT_ALT_FSGSBASE] = (getauxval(AT_HWCAP2) & 2) != 0;
    stack_t ss = { .ss_sp = a, .ss_size = sz, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(a, sz);
        return NULL;
    }
    thread_alt = a;
    return a;
}

void xbt_thread_set_gsbase(uint64_t gs)
{
    if (thread_alt)
        *(uint64_t *)(thread_alt + XBT_ALT_GSBASE) = gs;
}
