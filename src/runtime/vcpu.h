/*
 * vcpu.h - the runtime's internal view of a VM and a vCPU.
 *
 * All per-vCPU state lives in struct xbt_vcpu so that one thread (or process) per
 * vCPU stays possible.  The part translated code touches is the xbt_jit_ctx at the
 * start (R13 points at it).  The rest is grouped by concern: the inline lookup tables,
 * the architectural state outside ctx (arch), port I/O and MMIO exits with the MMIO
 * state machine (pio, mmio), self-modifying code (smc), direct execution (direct, dx),
 * traces and profiles (trace), host-fault reporting, statistics; large tables sit
 * behind pointers in one allocation (struct xbt_vcpu_tables), so the vCPU is about
 * 4 KiB.  The shadow MMU's state is its own (shadow-mmu/smmu.h, reached as v->mmu).
 */
#ifndef XBT_RUNTIME_VCPU_H
#define XBT_RUNTIME_VCPU_H

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "arch.h"
#include "runtime/direct.h"
#include "runtime/perfmap.h"
#include "runtime/runner.h"
#include "shadow-mmu/smmu.h"
#include "tcache/tcache.h"
#include "translator/abi.h"
#include "translator/translator.h"
#include "xbt/xbt.h"

/* Guest exception vectors. */
enum {
    XBT_DE = 0, XBT_DB = 1, XBT_NMI = 2, XBT_BP = 3, XBT_OF = 4, XBT_BR = 5, XBT_UDV = 6,
    XBT_NMV = 7, XBT_DF = 8, XBT_TS = 10, XBT_NP = 11, XBT_SSF = 12, XBT_GP = 13,
    XBT_PF = 14, XBT_MF = 16, XBT_AC = 17, XBT_MC = 18, XBT_XM = 19,
};

/* The runtime's part of a window set (by the set's idx): the runner process whose
   D-window mirrors that address space's user pages (parked while another address space
   is current), and adaptive mode's promotion: whether this address space (the set's
   generation adapt_gen) has run its user code translated for vm->adapt_ticks without
   entering the kernel; from then on its user code runs directly (direct.c,
   xbt_direct_wanted). */
struct xbt_dset {
    struct xbt_runner runner;
    uint32_t adapt_gen, adapt_cr3;
    bool promoted;
    /* Adaptive mode's measure of both ways (direct.c, xbt_adapt_mark): TSC ticks while
       this address space was current, and its user code's kernel entries (system
       calls, faults, interrupts taken at CPL 3) meanwhile, [0] translated, [1]
       promoted; demotions: how often it went back to translated code (each doubles the
       burst it needs to be promoted again). */
    uint64_t m_ticks[2], m_entries[2];
    uint32_t demotions;
};

#define XBT_SCAN_CACHE 8192 /* entries of xbt_vm.scan_cache (a power of two) */
struct xbt_vm {
    xbt_vm_config cfg;
    xbt_phys phys;             /* guest physical memory: slots, the host view of all */
    /* vCPU 0's shadow MMU and translation cache, made with the VM (the others' are
       their own: struct xbt_vcpu mmu, tc).  Direct execution (dset, direct.c) uses
       them: it is for VMs of one vCPU. */
    xbt_smmu *mmu;
    struct xbt_dset dset[XBT_WSETS]; /* the runtime's part of each window set */
    xbt_tcache *tc;
    /* Which vCPUs' caches hold code from each guest physical page (bit k: vCPU k),
       shared by their shadow MMUs (smmu.h, code_prot; runtime/smp.c). */
    uint8_t *code_prot;
    /* With several vCPUs: per guest physical page, which 16-byte chunks some vCPU has
       read as code (256 bits; a superset, cleared when the page's code is dropped), so
       that a write beside another vCPU's code need not drop it (smp.c). */
    uint64_t *code_chunks;
    /* Writers of code pages between clearing a page's bits and posting the drop
       requests (xbt_code_written; xbt_code_before_writable waits for none to be
       there). */
    atomic_int xmc_posting;
    struct xbt_perfmap *perfmap; /* with XBT_VM_PERF_MAP, else NULL */
    struct xbt_jitdump *jitdump; /* with XBT_VM_PERF_JITDUMP, else NULL */
    /* Translations of the same physical bytes at another EIP are relocated copies
       (run.c, share_block): off with XBT_NO_SHARE=1 in the environment; XBT_CHECK_SHARED=1
       translates each one afresh too and stops with an internal error where they differ. */
    bool no_share, check_shared;
    /* XBT_NO_FAST_CALLOUTS=1: every callout runs the full handler (callouts.c), so that
       tests/guests/fast-full.sh can compare the two paths' results. */
    bool no_fast_callouts;
    /* Adaptive mode: TSC ticks of user code run translated without a kernel entry
       after which an address space runs its user code directly (XBT_ADAPT_TICKS
       overrides; 0: at once, as direct mode). */
    uint64_t adapt_ticks;
    bool adapt_demote;         /* adaptive, adapt_ticks set, XBT_ADAPT_DEMOTE=1:
                                  promoted ones may go back (direct.c) */
    struct xbt_symtab syms;    /* guest symbols (xbt_vm_add_symbol), for the perf map */
    /* The vCPUs, in creation order (index k: xbt_vcpu_index); all are created before
       the first runs (started). */
    struct xbt_vcpu *vcpus[XBT_MAX_VCPUS];
    uint32_t n_vcpus;
    atomic_bool started;
    /* The embedder's synchronous MMIO handler (xbt_vm_set_mmio_handler; mmio.c). */
    xbt_mmio_fn mmio_fn;
    void *mmio_opaque;
    xbt_pio_fn pio_fn;             /* ... and port I/O (xbt_vm_set_pio_handler) */
    void *pio_opaque;
    /* MSRs the embedder handles (xbt_vm_set_msr_exits; policy.c). */
    uint32_t msr_exits[XBT_MAX_MSR_EXITS];
    uint32_t n_msr_exits;
    bool direct_ok;            /* user code may run directly (in runner processes) */
    char direct_why[256];      /* why not, when direct or adaptive mode was asked for */
    /* Verdicts of the sensitive-instruction scan (direct.c, xbt_direct_page_sensitive)
       by a keyed hash of the bytes scanned: each entry the hash with its low bit
       replaced by the verdict, 0 empty; the key is random per VM, so a guest cannot
       make two pages' hashes meet. */
    _Atomic uint64_t scan_cache[XBT_SCAN_CACHE];
    uint64_t scan_key[2];
    _Atomic uint64_t scans, scan_hits; /* pages with candidates scanned; answered here */
};

/* An inline lookup table's entry made empty: it misses (and its miss leaves to the
   dispatcher). */
static inline void xbt_ibl_clear(struct xbt_ibl_entry *e)
{
    e->tag = 1ull << 32;
    e->host = (uint64_t)(uintptr_t)xbt_jit_exit_indirect;
}

/* The victim entry of target eip (abi.h; the miss stub in jit_stubs.S computes it too). */
static inline uint32_t xbt_ibl_victim_slot(uint32_t eip)
{
    return XBT_IBL_ENTRIES + ((eip + __builtin_bswap32(eip)) & (XBT_IBL_ENTRIES - 1));
}

/* What an MMIO access in progress is (struct xbt_vcpu_mmio.kind): what its completion
   does with the device's data (mmio.c, xbt_mmio_complete). */
enum xbt_mmio_kind {
    XBT_MMIO_LOAD = 0,      /* a register load (MOV, MOVZX/MOVSX): the data into mmio.reg */
    XBT_MMIO_LODS = 1,      /* LODS: into AL/AX/EAX */
    XBT_MMIO_MOVS = 2,      /* MOVS from MMIO: the element stored at mmio.dst_lin */
    XBT_MMIO_GENERIC = 3,   /* any other instruction: run once against the scratch page */
    XBT_MMIO_SCAS = 4,      /* SCAS: compared with the other side */
    XBT_MMIO_CMPS = 5,      /* CMPS with one side MMIO */
    XBT_MMIO_CMPS_BOTH = 6, /* CMPS with both sides MMIO: [ESI] first, then XBT_MMIO_CMPS */
    XBT_MMIO_CALLOUT = 7,   /* a callout's read: the data into mmio.co_rd */
};

struct xbt_vcpu {
    struct xbt_jit_ctx ctx;    /* first: R13 points here */
    xbt_vm *vm;
    xbt_smmu *mmu;                   /* its shadow MMU (vCPU 0: vm->mmu) */
    xbt_tcache *tc;                  /* its translation cache (vCPU 0: vm->tc) */
    uint32_t idx;                    /* its index in vm->vcpus */
    uint8_t bit;                     /* 1 << idx: its bit in vm->code_prot */
    uint64_t code_page_invals;       /* statistics: pages whose code a write dropped */
    /* Requests of other vCPUs (runtime/smp.c): pages to write-protect in this vCPU's
       windows, pages whose blocks to drop, done before translated code runs again.
       seq counts requests posted, done those carried out; in_tc: translated code of
       this vCPU may be running (a requester waits for it to leave or catch up). */
    struct xbt_vcpu_mbox {
        pthread_mutex_t lock;
        struct xbt_mbox_req { uint32_t page; uint8_t kind; } *req; /* grows */
        uint32_t n, cap;
        bool overflow;                /* no memory for one more: flush everything */
    #define XBT_MBOX_WP_MAX 4096
        bool wp_all;                  /* too many write-protects: every code page */
        atomic_uint_fast64_t seq, done;
        atomic_uint_fast64_t inval_seq; /* seq of the last drop request posted */
        atomic_bool in_tc;
        /* The pages whose blocks requests dropped since translate() began (its check
           that the block it made is not one of them); more than the log holds, or an
           overflow flush, or changed bytes: n_inval > XBT_MBOX_INVAL_LOG, every page. */
    #define XBT_MBOX_INVAL_LOG 8
        uint32_t inval_page[XBT_MBOX_INVAL_LOG];
        uint32_t n_inval;
    } mbox;
    struct xbt_vcpu_tables *tables;  /* its large tables, behind the pointers below */
    xbt_translator xl;               /* the translator (its decoder state) */
    struct xbt_ibl_entry *ibl;       /* live indirect-branch table (ibl_cur's) */
    bool ibl_stale;                  /* translations were dropped: clear all before use */
    /* 4 MiB linear regions whose mapping epoch changed (window.c, bump_regions): every
       table drops its entries there before the next block runs (a Linux fork+exec used
       to clear the kernel's table too, thousands of misses each). */
    bool ibl_bump_pending;
    uint8_t ibl_bump[128];
    struct xbt_ibl_entry *ibl_miss;  /* all entries miss: swapped in to leave loops */
    /* One table per recent mode key (kernel and user code alternate: a single table
       cleared at every switch missed 4,500 times per Linux fork).  Each lists the
       entries it filled since its last reset, each once, so a reset or a pruning visits
       only those (a full 1 MiB clear made every CR3 switch cost ~150,000 cycles).  The
       list has room for every entry: with room for 8,192, gcc's cc1 overflowed it, and
       an overflowed table was reset at its next pruning, 630,000 misses in a 2,000-line
       compile. */
#define XBT_IBL_SETS 4
    struct xbt_ibl_set {
        struct xbt_ibl_entry *t;
        uint32_t key;                /* the mode key of its entries (~0: none) */
        uint32_t cs_base;            /* the CS base its entries' EIPs were learned under */
        bool stale;
        uint64_t stamp;              /* last use, for replacement */
        uint32_t n_used;             /* entries listed in used */
        /* Entries to forget before the table is next used (run.c, ibl_prune): those
           into blocks dropped since (when the cache's drop log overflowed: each entry's
           block is looked at) and those into the regions marked here. */
        bool prune_dropped, prune_regions_any;
        uint8_t prune_regions[128];
        /* The 4 MiB regions (EIP >> 22) its entries may lie in: a superset, set as
           entries are filled, made exact again by a pruning's walk.  A pruning for
           regions none of them lies in walks nothing (the kernel's table at a CR3
           switch, whose user regions change: 98% of the walks' entries). */
        uint8_t regions_present[128];
        uint8_t listed[XBT_IBL_SLOTS / 8]; /* the entries in used (victims too) */
        uint32_t used[XBT_IBL_SLOTS];
    } *ibl_sets, *ibl_cur;           /* XBT_IBL_SETS of them (struct xbt_vcpu_tables) */
    uint64_t ibl_clock;
    /* Lookup entries kept (run.c, xbt_ibl_regions_changed), three lists a region: at
       [r] those of region r's context set aside (smmu.h, region_alt_*), at [1024 + r]
       those it had when it went absent, at [2048 + r] the scratch list of the context
       that leaves at a switch; put back when the context is current again.  Allocated
       at the first. */
    struct xbt_ibl_alt {
        struct xbt_ibl_saved {
            uint32_t eip, key;
            uint64_t host;
        } *v;
        uint32_t n, cap, flushes;
    } *ibl_alt;
    /* An inline lookup missed a target that was not cached or not current: find_block
       fills the entry once it has the block, if the dispatch is still for that EIP. */
    bool ibl_pending;
    uint32_t ibl_pending_eip, ibl_pending_key;

    /* Architectural state not held in ctx (the guest's registers, EIP and EFLAGS). */
#define XBT_MC_BANKS 6 /* machine-check banks (cpumodel.c), as a Core 2 has */
    struct xbt_vcpu_arch {
        uint32_t cr0, cr2, cr3, cr4;
        uint32_t dr[8];
        xbt_segment seg[XBT_NSEG];       /* hidden parts; ctx->seg_sel/base mirror them */
        xbt_segment ldtr, tr;
        xbt_dtable gdtr, idtr;
        uint32_t cpl;
        uint64_t msr_sysenter_cs, msr_sysenter_esp, msr_sysenter_eip, msr_apic_base, msr_pat,
            msr_efer, msr_misc_enable, msr_tsc_aux;
        uint64_t mcg_status, mc_ctl[XBT_MC_BANKS], mc_addr[XBT_MC_BANKS], mc_misc[XBT_MC_BANKS];
        bool interrupt_shadow;           /* after STI / MOV SS / POP SS: one instruction */
        bool shadow_ss;                  /* that shadow is MOV or POP SS's (which holds
                                            debug exceptions too) */
        bool rf;                         /* EFLAGS.RF: the next instruction's breakpoint
                                            is not taken (IRET sets it from the frame;
                                            that instruction's completion clears it) */
        bool push_rf;                    /* the event being delivered is a fault: its
                                            frame's EFLAGS has RF (excp.c) */
        bool db_fault;                   /* the #DB raised next is a fault that is not
                                            a code breakpoint's (DR7.GD): RF pushed set */
        uint32_t shadow_eip;             /* the instruction the shadow covers */
        bool halted;
        bool tss_trap;                   /* a task switch to a TSS with the T bit: #DB next */
        bool shutdown;                   /* a triple fault: the run loop stops with SHUTDOWN */
        bool nmi_blocked;                /* an NMI was delivered; the next IRET unblocks */
    } arch;
    bool no_fast_callouts;           /* the VM's, where callouts_fast.c reads it */

    /* Port I/O exits: an IN waiting for the embedder's data (KVM's rule: the embedder
       fills it, then runs again), string I/O's elements. */
    struct xbt_vcpu_pio {
        bool in_pending;
        uint8_t in_reg_size;
        bool ins_rep;                 /* a pending INS: REP, and its address size's mask */
        uint32_t ins_mask;
        uint32_t count;               /* elements of the pending string I/O exit */
        uint8_t *buf;                 /* their data (XBT_VM_STRING_IO; 4 KiB) */
        uint32_t next_eip;
    } pio;
    /* MMIO exits and their state machine (mmio.c), and a callout's accesses that met
       MMIO (callouts.c). */
    struct xbt_vcpu_mmio {
        /* An MMIO read waiting for the embedder's data (mmio.c). */
        bool pending;
        uint8_t reg;                /* destination GPR (|0x80: high byte) */
        /* A MOV load crossing two MMIO pages: the first page's n1 bytes (lo) arrived, the
           rest comes from split_gpa (a second read exit). */
        uint8_t split_n1;
        bool split_have;
        uint32_t split_lo;
        uint64_t split_gpa;
        uint8_t size, dst_size; /* access size; register width written */
        uint8_t sign;               /* MOVSX */
        uint8_t kind;                /* enum xbt_mmio_kind: what completes the access */
        /* The generic path: the instruction runs once against a scratch page mapped at the
           MMIO address, filled with the device's data; what it stored there is written. */
        bool run, step_active, step_writes;
        bool raised;                /* xbt_mmio_begin raised a guest exception instead */
        bool simple;                /* the access begun is a plain MOV load or store */
        bool synced;                /* the embedder's handler answered it (no exit) */
        bool sync_drops;            /* ... and dropped translations meanwhile */
        /* MMIO sites (mmio.c, xbt_mmio_note_fault): linear EIPs of instructions whose
           accesses reached MMIO through host faults, with their counts (open addressing),
           and the linear pages that hold a site (1 bit each; NULL until the first). */
    #define XBT_MMIO_SITES 1024
    #define XBT_MMIO_SITE_FAULTS 4       /* faults that make a site */
        struct xbt_mmio_site_rec {
            uint32_t lin, faults;
            uint32_t ram, mmio;          /* a site's callouts that found RAM, MMIO */
        } *sites;                   /* XBT_MMIO_SITES */
        uint32_t n_sites;
        uint8_t *site_pages;
        /* The decoded instructions of recent MMIO-site callouts, by callout site: a site's
           bytes cannot change while its block lives (its page is write-protected), and a
           site's address is reused only after a flush. */
    #define XBT_MMIO_DCACHE 16
        struct xbt_mmio_dcache {
            uint64_t site;
            uint32_t flushes;
            xbt_insn in;
        } *dcache;                  /* XBT_MMIO_DCACHE */
        bool exit_ready;            /* v->exit holds an MMIO write to return at once */
        /* A callout's explicit operand or stack access that met MMIO (callouts.c): reads are
           exits answered before the instruction runs again, which then takes the data from
           co_rd (up to 4 per instruction); stores are exits after it completed (co_wr, sent
           one per xbt_vcpu_run). */
        struct xbt_co_mmio { uint32_t lin; uint8_t size; bool valid; uint64_t gpa, data; }
            co_rd[4], co_wr[4];
        uint32_t co_rd_eip;              /* the instruction co_rd belongs to */
        uint8_t co_rd_n, co_wr_n, co_wr_sent;
        bool co_rd_requested;            /* a read exit is recorded: the callout leaves */
        uint32_t step_lin, step_next;
        uint64_t step_gpa;
        uint8_t step_data[16];      /* the device's data (a 16-byte operand: two exits) */
        uint8_t step_got;           /* bytes of it answered so far */
        int scratch_fd;             /* a one-page memfd: the scratch page ... */
        uint8_t *scratch;           /* ... as the VMM sees it */
        uint8_t *scratch_at;        /* ... and the window it is in now (at step_lin) */
        uint8_t rep;                /* REP (CMPS/SCAS: 1 REPE, 2 REPNE) */
        uint32_t cmp_other;         /* CMPS/SCAS: the element from the other side */
        bool cmp_mmio_first;        /* CMPS with MMIO at ESI: [ESI] - [EDI] = mmio - other */
        uint64_t cmp_dst_gpa;       /* CMPS with MMIO on both sides (kind 6): [EDI]'s */
        int32_t step;               /* string: +-size per element (DF) */
        bool addr16;                /* string: 16-bit addressing (SI, DI, CX alone) */
        uint32_t dst_lin;           /* MOVS from MMIO: where the element goes */
        uint32_t next_eip;
    } mmio;

    /* The embedder's read shadow of an MMIO page (xbt_vcpu_set_mmio_shadow, mmio.c):
       on while set; its page's physical address; its table (ctx.rs_table: 0 at each
       readable dword's offset).  ctx.rs_nlin are its TLB entries. */
    struct {
        bool on;
        bool apic_bound;          /* XBT_MMIO_SHADOW_APIC_BASE: only while ... */
        uint64_t apic_base;       /* ... IA32_APIC_BASE is this */
        uint64_t gpa;
        uint8_t *table;
    } rshadow;

    /* Fault sites (pfsite.c): guest physical addresses of translated instructions
       whose accesses ended in guest page faults or window fills through host faults,
       with their counts (open addressing), and the physical pages that hold a site (1
       bit each; NULL until the first).  At XBT_PF_SITE_FAULTS the instruction is
       translated again with an inline check of its page (translate.c, emit_pf_check).
       fmap: the linear page -> physical page pairs of the last two pages fetch_code
       read, which answer the translator's question for the bytes it translates. */
    struct xbt_vcpu_pfs {
    #define XBT_PF_SITES_LOG2 12
    #define XBT_PF_SITES (1u << XBT_PF_SITES_LOG2)
    #define XBT_PF_SITE_FAULTS 4
        struct xbt_pf_site_rec {
            uint32_t gpa;
            uint16_t faults;
            uint16_t hot;    /* samples in its blocks since its last callout */
            uint32_t backs;  /* times it was taken back (it must run hotter each time) */
        } *sites; /* XBT_PF_SITES */
        uint8_t *site_pages;
        struct { uint32_t lin, page; } fmap[2];
        uint32_t fmap_next;
        volatile bool sweep_due; /* sites ran hot without callouts (pfb, below) */
        /* Wrap sites (pfsite.c, xbt_uk_wrap_site): instructions of translated user code
           whose fast-form sum reg + disp wrapped at 4 GiB, by guest physical address + 1
           (0: a free slot; open addressing, a full probe window overwrites its first),
           and the physical pages that hold one (NULL until the first). */
    #define XBT_WRAP_SITES 1024
        uint32_t wrap[XBT_WRAP_SITES];
        uint8_t *wrap_pages;
    } pfs;

    /* Pause-loop yields (xbt_pause_loop, below): the TSC at the last PAUSE and how many
       came in a row, each within XBT_PLE_GAP cycles of the one before. */
    struct { uint64_t last; uint32_t run; } ple;

    /* Self-modifying code (run.c, mmu.c). */
#define XBT_SMC_DATA_SLOTS 256
#define XBT_SMC_DATA_LIMIT 4
#define XBT_SMC_DATA_GIVEUP 2
    struct xbt_vcpu_smc {
        /* An SMC fault: run one instruction without caching, page writable. */
        bool single;
        /* A write to a page with translated code but not to its code bytes (data beside
           code): the page stays protected and its translations stay; the instruction runs
           alone with the page writable, and what it changed is compared afterwards. */
        bool data;
        uint32_t data_page, data_lin;
        bool data_paged;
        /* Data-beside-code writes by physical page (mmu.c, data_written_often): the
           XBT_SMC_DATA_LIMIT-th since the page was last made data makes it data again,
           at most XBT_SMC_DATA_GIVEUP times (direct-mapped by page; page1 = page + 1,
           0 for none). */
        struct { uint32_t page1; uint16_t n, made; } often[XBT_SMC_DATA_SLOTS];
        uint8_t *shadow;             /* the page before the step (4 KiB) */
        uint8_t *exec;               /* scratch code for uncached single steps (R+X) ... */
        uint8_t *exec_w;             /* ... and its writable view */
    } smc;

    xbt_irq_fn irq_fn;
    void *irq_opaque;
    atomic_bool kick, stop;
    atomic_bool nmi_pending;         /* xbt_vcpu_nmi */
    bool irq_window_req;             /* xbt_vcpu_request_irq_window */
    pthread_t thread;
    atomic_bool running;
    xbt_block *unlinked;             /* block whose exits a kick unlinked */

    sigjmp_buf fault_jmp;            /* host fault in translated code comes back here */
    volatile int fault_sig;
    volatile uint64_t fault_addr, fault_rip;
    volatile bool fault_ukfast; /* the instruction's pc-map entry has XBT_MAP_UK_FAST */
    /* MASKMOVQ/MASKMOVDQU: the linear address its store starts at (DS:EDI), else -1.
       Hosts differ in which byte of the store a fault names (run.c, handle_fault). */
    volatile int64_t fault_maskmov;
    volatile int fault_code;
    volatile uint64_t fault_err;     /* the host page fault's error code (REG_ERR) */
    /* A guest page fault met by a C access through the walker (xbt_read_lin etc.):
       whoever reports the failure raises #PF with these instead (callouts' fault(),
       exception delivery). */
    bool pf_pending;
    uint32_t pf_lin, pf_err;
    /* The last guest page fault raised for a host fault of translated code in the K- or
       U-window (mmu.c, paged_fault): when the dispatcher is about to run the faulting
       instruction again in the same address space, its page goes into the window first
       where the guest's handler made the access possible (xbt_pf_refill), instead of
       through a second host fault.  Forgotten after XBT_REFILL_TTL dispatches. */
    struct {
        uint32_t ttl, lin, eip, cr3;
        uint16_t cs;
        uint8_t win;
        bool write;
    } refill;
#define XBT_REFILL_TTL 4096
    /* Where the last code fetch failed (paging on): a #PF to raise, or no RAM. */
    bool fetch_pf, fetch_raised;
    uint32_t fetch_pf_lin, fetch_pf_err;
    xbt_code_walk fetch_first, fetch_last; /* pages (and entries) of the last fetch */
    uint32_t fetch_lin_last;               /* the linear page of fetch_last */
    /* Several vCPUs: what the translator fetched for the block being translated (one
       record per fetch, within a page), so that only the block's own bytes are marked
       as code (vm->code_chunks) and checked unchanged once they are (run.c). */
#define XBT_FETCH_LOG 256
    struct xbt_fetch_rec { uint64_t gpa; uint32_t lin, len; uint8_t bytes[16]; } *flog;
    uint32_t flog_n;

    /* Direct execution of user code (direct.c): the runner's last stop, and the vCPU's
       side of it. */
    struct xbt_direct direct;
    struct xbt_vcpu_dx {
        _Atomic(struct xbt_runner *) runner; /* running guest code now: kicks go there */
        bool xlate;               /* run the next instruction translated, then direct */
        bool sticky;              /* user code entered a page that runs translated: it
                                            stays translated until it enters the kernel (a
                                            jump back and forth would cost two exits each) */
        uint32_t crossed;         /* the linear page of the last jump from directly run
                                     code into such a page since the last kernel entry
                                     (~0: none); a second one into the same page makes
                                     it sticky (struct xbt_hot) */
        bool bounded;             /* user code returned from the kernel into such a page:
                                     it runs translated while it stays in such pages
                                     (XBT_TS_BOUNDED), directly once it leaves them */
        uint64_t kentries;               /* kernel entries from CPL 3 (interrupt and
                                            exception delivery, SYSENTER) */
        uint64_t mark_tsc, mark_kentries; /* xbt_adapt_mark's last mark, and the */
        uint32_t mark_set, mark_gen, mark_cr3; /* address space then current, and whether */
        bool mark_promoted;               /* it ran promoted */
        uint64_t adapt_burst;            /* adaptive mode: TSC ticks of translated user
                                            code since the last kernel entry */
        uint64_t base_tsc, base_cpu, base_mono; /* xbt_adapt_base: the TSC, this
                                            thread's CPU time and the monotonic clock (ns)
                                            at or before the burst's start */
        /* The last guest page fault raised from directly run code (direct.c: the next
           entry maps the page if the guest's handler made it present). */
        uint32_t lost_streak;     /* runners lost to an outside SIGKILL in a row */
        bool refault;
        uint32_t refault_lin, refault_err, refault_cr3;
    #define XBT_HOT_SLOTS 256
    #define XBT_HOT_THRESHOLD 16
        /* Adaptive mode: trap counts by linear page and address space (window set and its
           generation: a set given to another address space forgets them) and the
           physical page mapped there when counted (direct.c, hot_entry); the pages that must
           run translated too. */
        struct xbt_hot {
            uint32_t page, as, count;
            bool sticky; /* entered from directly run code twice between kernel entries:
                            user code there stays translated until the next one */
            uint64_t gpa;
        } *hot; /* XBT_HOT_SLOTS */
    } dx;

    /* The guest's own single-step and RF (run.c guest_insn_*): the instruction watched
       (EIP and CS), whether TF steps it, whether an event ended it (a fault, or a handler
       it entered: no trap then), whether it loaded SS (the trap waits for the next
       instruction), and a trap due at the next dispatch. */
    struct xbt_vcpu_tf {
        uint32_t eip;
        uint16_t cs;
        bool stepping, faulted, ss_loaded, pending;
        bool open; /* that instruction started (TF or RF): its completion still to see */
        bool rf_loaded; /* it loaded RF itself (IRET, a task switch): RF outlives it */
        bool iter_done; /* an iteration of a REP string instruction completed, EIP kept
                           on it (REP INS/OUTS callouts, a one-iteration step) */
    } tf;

    /* The debugger's breakpoints (linear addresses) and single-step (run.c). */
    struct xbt_vcpu_dbg {
        uint32_t bp[XBT_MAX_BREAKPOINTS];
        /* The guest's instruction breakpoints (DR0-DR3 under DR7 with R/W 00): linear
           addresses, the DR number of each (watch.c xbt_watch_guest_sync). */
        uint32_t gbp[4];
        uint8_t gbp_dr[4];
        uint32_t n_gbp;
        uint32_t n_bp;
        bool step;                   /* each run: one instruction */
        bool stepped;                /* that instruction ran: stop now */
        bool resume;                 /* the next dispatch at resume_lin runs it, no stop */
        uint32_t resume_lin;
        /* Watchpoints (watch.c): their pages stay out of the windows; an access there
           runs its instruction alone with the page mapped (wstep), checked for overlap
           (whit: stop after it).  The embedder's (dr < 0, at most XBT_MAX_WATCHPOINTS)
           and the guest's data breakpoints (DR0-DR3 under DR7: dr = n; ghit: the DR6
           bits of those hit, a #DB trap after the instruction). */
        struct xbt_watch { uint32_t lin, len; uint8_t kind; int8_t dr; } wp[XBT_MAX_WATCHPOINTS + 4];
        uint32_t n_wp;
        uint8_t ghit;
        bool wstep, wstep_paged;
        bool wstep_rep1;             /* the step is one iteration of a REP string
                                        instruction (the guest's data breakpoints: a
                                        trap after the iteration that hit) */
        uint32_t wstep_page;         /* the linear page mapped for the step */
        bool whit;
        uint8_t whit_access;         /* XBT_WATCH_WRITE or XBT_WATCH_READ */
        uint32_t whit_lin;           /* the watchpoint hit */
    } dbg;

    /* The embedder's policy (policy.c): its CPUID entries (cpuid_set: they replace the
       model) and the feature words the rest of the runtime consults, events it injected
       that the next dispatch delivers, an MSR exit waiting for its answer. */
    struct xbt_vcpu_policy {
        xbt_cpuid_entry *cpuid;      /* XBT_MAX_CPUID_ENTRIES (struct xbt_vcpu_tables) */
        uint32_t n_cpuid;
        bool cpuid_set;
        uint32_t f1_ecx, f1_edx, f7_ebx, f7_ecx, f7_edx; /* with cpuid_set: leaf 1 ECX, EDX,
                                                            leaf 7.0 EBX, ECX, EDX */
        uint32_t fx1_edx;            /* with cpuid_set: leaf 0x80000001 EDX */
        bool exc_pending, exc_has_err;
        uint8_t exc_vec;
        uint32_t exc_err;
        bool irq_pending;
        uint8_t irq_vec;
        bool msr_pending;            /* v->exit.msr is the embedder's to answer */
        uint32_t msr_next;           /* the EIP after the RDMSR/WRMSR */
    } pol;

    /* Traces and profiles (run.c). */
    struct xbt_vcpu_trace {
        /* Trace recording (run.c): the path of basic blocks run since a hot head. */
        uint32_t rec_path[XBT_TRACE_MAX_BLOCKS];
        uint32_t rec_n, rec_key;
        uint64_t rec_events;             /* interrupts + exceptions when it began */
        /* Trace profiles (XBT_VM_TRACE_PROFILE): counters of XBT_PROF_TRACES traces,
           XBT_PROF_STRIDE each ([0] entries, [k] side exit k), allocated at the first. */
    #define XBT_PROF_TRACES 4096
    #define XBT_PROF_STRIDE (1 + XBT_BLOCK_MAX_EXITS)
        uint64_t *prof_pool;
        struct xbt_prof_info { uint32_t eip, blocks; } *prof_info;
        uint32_t prof_n;
        uint64_t prof_block_entries;     /* entries of plain blocks (profiling) */
    } trace;

    xbt_exit exit;
    xbt_stats stats;
    /* Translation time in TSC ticks, and a TSC and monotonic-clock reading taken when
       the vCPU was created: the statistics convert the ticks with the rate seen since. */
    uint64_t translate_ticks, created_tsc, created_ns;
    uint64_t translate_ticks_seen, translate_ns; /* the last conversion */
    uint8_t *tbuf;                   /* XBT_BLOCK_MAX_CODE: the translator's output ... */
    xbt_tblock *tb;                  /* ... and its description */
    /* Software TLB of the VMM's own guest accesses (excp.c, lin_page). */
#define XBT_STLB_SIZE 64
    struct xbt_stlb_entry {
        uint32_t page, frame, gen;
        bool writable;               /* a write of the walk's privilege needs no walk */
        bool user;                   /* walked with CPL 3 rights (good for both) */
        bool upage;                  /* a user page: SMAP may refuse it to the supervisor */
    } *stlb;                         /* XBT_STLB_SIZE */
    uint32_t stlb_gen;
    /* CPUID results the full handler computed (co_cpu_info), answered again by the fast
       handler at CPL 0 (callouts_fast.c) while cpuid_gen is what it was: each change of
       the embedder's policy or of IA32_MISC_ENABLE (Limit CPUID Maxval) moves it
       (xbt_cpuid_refresh); the rest of what CPUID answers is fixed for the vCPU's life
       (cpumodel.c).  One entry per (leaf, subleaf) slot, the last one asked. */
#define XBT_CPUID_HITS 8
    struct xbt_cpuid_hit {
        uint32_t leaf, sub, gen, r[4];
        bool valid;
    } cpuid_hit[XBT_CPUID_HITS];
    uint32_t cpuid_gen;
    /* SMAP (CR4.SMAP): the 4 MiB regions where the K-window was given user pages while
       EFLAGS.AC was set; they leave it before K-window code runs with AC clear
       (xbt_smap_sync, mmu.c).  More than fit: the whole K-window goes. */
#define XBT_SMAP_REGIONS 16
    struct {
        uint16_t region[XBT_SMAP_REGIONS];
        uint8_t n;
        bool overflow;
    } smap;
    /* Fault sites that run hot without callouts are taken back (pfsite.c): the thread
       CPU-time sampler (sample_ok: may be started; timer_on: started, counting the
       CPU time of thread `tid`, the one that last ran the vCPU).  At the end, away from what the run loop and the
       fast callouts touch on every event. */
    struct {
    #define XBT_PF_SAMPLE_NS 1000000
        uint32_t n_sites;    /* records that are sites now */
        bool sample_ok, timer_on;
        int tid;             /* the thread whose CPU time the timer counts */
        void *timer;         /* timer_t */
    } pfb;
};

/* The vCPU's large tables, one allocation behind the pointers of struct xbt_vcpu (which
   stays small: what the run loop touches on every block is close together). */
struct xbt_vcpu_tables {
    struct xbt_ibl_set ibl_sets[XBT_IBL_SETS];
    struct xbt_mmio_site_rec mmio_sites[XBT_MMIO_SITES];
    struct xbt_mmio_dcache mmio_dcache[XBT_MMIO_DCACHE];
    struct xbt_pf_site_rec pf_sites[XBT_PF_SITES];
    uint8_t io_buf[4096];
    uint8_t smc_shadow[4096];
    struct xbt_hot hot[XBT_HOT_SLOTS];
    uint8_t tbuf[XBT_BLOCK_MAX_CODE];
    xbt_tblock tb;
    struct xbt_stlb_entry stlb[XBT_STLB_SIZE];
    uint8_t rs_table[4096];
    xbt_cpuid_entry cpuid[XBT_MAX_CPUID_ENTRIES];
    struct xbt_fetch_rec flog[XBT_FETCH_LOG];
};

/* Exception delivery (excp.c).  Returns false on a triple fault (exit recorded). */
/* The virtual CPU model (cpumodel.c): CPUID leaf/subleaf into out[] (EAX EBX ECX EDX),
   and its MSRs (false: the MSR does not exist or refuses the value, #GP). */
void xbt_cpuid(struct xbt_vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4]);
/* The answer for CPUID (leaf, sub) as the guest sees it, remembered for translated
   code's inline check (ctx.cpuid_nkey, cpuid_r) and the fast handler (cpuid_hit). */
void xbt_cpuid_answer(struct xbt_vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4]);
/* What CPUID depends on changed (the policy, IA32_MISC_ENABLE): the remembered answers
   go, but for the inline check's one, computed again for its key (it is always right). */
void xbt_cpuid_refresh(struct xbt_vcpu *v);
bool xbt_msr_read(struct xbt_vcpu *v, uint32_t index, uint64_t *value);
bool xbt_msr_write(struct xbt_vcpu *v, uint32_t index, uint64_t value);
/* The model's own CPUID (cpumodel.c), whatever the policy; its leaves for
   xbt_vcpu_get_cpuid: fills at most max entries, returns how many there are. */
void xbt_cpuid_model(struct xbt_vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4]);
size_t xbt_cpuid_model_list(struct xbt_vcpu *v, xbt_cpuid_entry *e, size_t max);
/* The embedder's policy (policy.c).  Feature words as the guest sees them (the policy's
   or the model's): leaf 1 ECX, EDX, leaf 7.0 EBX, ECX, EDX, leaf 0x80000001 EDX. */
enum { XBT_FEAT_1_ECX, XBT_FEAT_1_EDX, XBT_FEAT_7_EDX, XBT_FEAT_7_ECX, XBT_FEAT_X1_EDX,
       XBT_FEAT_7_EBX };
uint32_t xbt_feature(const struct xbt_vcpu *v, int which);
/* The translator's XBT_TM_HIDE_* flags for the SSE generations the policy hides (none:
   0; then user code must not run directly either, where the host CPU would run them). */
uint8_t xbt_hidden_isa(const struct xbt_vcpu *v);
/* The translation mode key of the vCPU's state now (run.c: its window, CPL, segment
   bases and limits, code and stack sizes, FPU and SSE flags). */
uint32_t xbt_vcpu_mode_key(const struct xbt_vcpu *v);
/* Whether translated code checks accesses through segment g against its limit (the
   mode's seglimit_mask): an expand-up segment (or CS) with a limit below 4 GiB.
   Expand-down segments are not checked yet (README).  Inline: the fast callouts use
   it (callouts_fast.c, general registers only). */
static inline bool xbt_seg_limit_checked(const xbt_segment *g)
{
    bool expand_down = g->s && !(g->type & 8) && (g->type & 4);
    return g->limit != 0xFFFFFFFFu && !expand_down && !g->unusable;
}
/* ES or DS holds a null selector loaded in protected mode (outside virtual-8086 mode):
   the translation mode's segnull bit (an access through it is #GP(0)). */
static inline bool xbt_seg_null_checked(const struct xbt_vcpu *v, int seg)
{
    return (seg == XBT_ES || seg == XBT_DS) && v->arch.seg[seg].unusable &&
           (v->arch.cr0 & XBT_CR0_PE) && !(v->ctx.eflags_sys & XBT_EFLAGS_VM);
}
/* An inline STI's shadow (abi.h, ctx.sti_shadow) taken as the vCPU's at a dispatch: kept
   when the dispatch is at the instruction it covers (that instruction restarted without
   completing: a hidden fault, a write to a code page, a fault site's check that left),
   which then runs alone before any interrupt, as after an STI callout; dropped
   otherwise (the instruction raised an exception: a delivery ends the shadow). */
static inline void xbt_sti_shadow_settle(struct xbt_vcpu *v)
{
    uint32_t covered = v->ctx.sti_shadow;
    if (__builtin_expect(covered == 0, 1))
        return;
    v->ctx.sti_shadow = 0;
    if (covered == v->ctx.eip) {
        v->arch.interrupt_shadow = true;
        v->arch.shadow_eip = covered;
        v->arch.shadow_ss = false;
    }
}
/* An event delivered: whatever shadow covered the instruction it interrupted is over
   (an STI callout's or MOV SS's, and an inline STI's). */
static inline void xbt_shadow_end(struct xbt_vcpu *v)
{
    v->arch.interrupt_shadow = false;
    v->ctx.sti_shadow = 0;
}
/* An STI / MOV SS / POP SS shadow over the instruction at EIP (what an embedder sees
   between runs: an inline STI's not settled yet included). */
static inline bool xbt_in_shadow(const struct xbt_vcpu *v)
{
    return (v->arch.interrupt_shadow && v->arch.shadow_eip == v->ctx.eip) ||
           (v->ctx.sti_shadow != 0 && v->ctx.sti_shadow == v->ctx.eip);
}
/* CPUID through the policy: true with out[] set when a policy is in force. */
bool xbt_cpuid_policy(const struct xbt_vcpu *v, uint32_t leaf, uint32_t sub, uint32_t out[4]);
/* Whether the embedder's policy has an entry for leaf/sub (false without a policy). */
bool xbt_cpuid_policy_lists(const struct xbt_vcpu *v, uint32_t leaf, uint32_t sub);
/* CR4 bits that are reserved because the policy hides their feature. */
uint32_t xbt_cr4_hidden(const struct xbt_vcpu *v);
/* RDMSR/WRMSR of an MSR the embedder handles: true with the exit recorded (the
   instruction at ctx.eip, next_eip after it). */
bool xbt_msr_exit(struct xbt_vcpu *v, bool write, uint32_t next_eip);
/* The embedder answered the MSR exit (xbt_vcpu_run, before the loop). */
void xbt_msr_exit_complete(struct xbt_vcpu *v);
/* The injected events, at a dispatch: 0 (none now), XBT_LEAVE_DISPATCH (one delivered)
   or XBT_LEAVE_EXIT (a triple fault). */
int xbt_policy_deliver(struct xbt_vcpu *v);
bool xbt_raise(struct xbt_vcpu *v, int vector, bool has_error, uint32_t error, uint32_t eip);
bool xbt_deliver_interrupt(struct xbt_vcpu *v, int vector, bool software, uint32_t next_eip,
                           uint32_t fault_eip);
uint32_t xbt_get_eflags(const struct xbt_vcpu *v);
void xbt_set_eflags(struct xbt_vcpu *v, uint32_t value, uint32_t mask);
/* MOV/POP to a data segment register or SS: false if it faulted (the fault raised; after
   a triple fault v->arch.shutdown stops the run loop). */
bool xbt_load_seg(struct xbt_vcpu *v, int seg, uint16_t sel, uint32_t eip);
void xbt_set_seg(struct xbt_vcpu *v, int seg, const xbt_segment *s);
int xbt_iret_outer(struct xbt_vcpu *v, uint32_t neip, uint16_t ncs, uint32_t nfl, uint32_t esp,
                   uint32_t *err);
int xbt_return_outer(struct xbt_vcpu *v, uint32_t neip, uint16_t ncs, bool has_flags,
                     uint32_t nfl, uint32_t esp, unsigned osz, uint32_t *err);
bool xbt_read_descriptor(struct xbt_vcpu *v, uint16_t sel, uint64_t *desc);
void xbt_seg_from_desc(xbt_segment *s, uint16_t sel, uint64_t d);

/* Who makes an access to guest linear memory, for its rights (SDM vol. 3, 4.6).  0 and
   1 are what `cpl == 3` gives, which most callers pass. */
enum xbt_acc {
    XBT_ACC_SUP = 0,  /* explicit supervisor access: SMAP applies unless EFLAGS.AC (and
                         always at CPL 3, where a supervisor access is implicit) */
    XBT_ACC_USER = 1, /* a CPL 3 access */
    XBT_ACC_SYS = 2,  /* implicit supervisor access (GDT, LDT, IDT, TSS): SMAP always */
    XBT_ACC_VMM = 3,  /* the VMM reading again what the CPU already fetched: no SMAP */
};
/* Whether CR4.SMAP refuses a data access of kind acc to a user page now. */
static inline bool xbt_smap_applies(const struct xbt_vcpu *v, int acc)
{
    if (!(v->arch.cr4 & XBT_CR4_SMAP) || acc == XBT_ACC_USER || acc == XBT_ACC_VMM)
        return false;
    return acc == XBT_ACC_SYS || v->arch.cpl == 3 || !(v->ctx.eflags_sys & XBT_EFLAGS_AC);
}
/* Guest memory by linear address (paging off: physical) with implicit supervisor
   rights (system structures).  false if not RAM. */
bool xbt_read_lin(struct xbt_vcpu *v, uint32_t lin, void *dst, uint32_t len);
/* The physical address of a linear access within one page as the CPU would walk it
   (through the software TLB, MMIO frames included); false for a #PF (not raised, not
   pending) or a bus error.  user: CPL 3 rights. */
bool xbt_lin_gpa(struct xbt_vcpu *v, uint32_t lin, bool write, int acc, uint64_t *gpa);
bool xbt_write_lin(struct xbt_vcpu *v, uint32_t lin, const void *src, uint32_t len);

/* Callouts (callouts.c): the C side of xbt_jit_callout.  xbt_sysenter: SYSENTER at
   ctx.eip done (or its #GP raised); false: triple fault, exit recorded. */
bool xbt_sysenter(struct xbt_vcpu *v);
int xbt_callout_entry(struct xbt_jit_ctx *ctx);

/* Leave codes of callouts and the run loop (>= XBT_JIT_EXIT_CALLOUT). */
enum {
    XBT_LEAVE_DISPATCH = XBT_JIT_EXIT_CALLOUT, /* continue at ctx.eip via the dispatcher */
    XBT_LEAVE_EXIT,                            /* v->exit holds an exit for the embedder */
};

void xbt_set_internal_error(struct xbt_vcpu *v, uint32_t eip, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A debugger's breakpoint or single-step is set: user code runs translated, no traces. */
static inline bool xbt_debugging(const struct xbt_vcpu *v)
{
    return v->dbg.n_bp || v->dbg.n_gbp || v->dbg.step || v->dbg.n_wp;
}
/* Watchpoints (watch.c).  xbt_watch_fault: a host fault at linear lin (paged: through
   the guest's tables) of a page that holds a watchpoint: the access checked, the page
   mapped for this one instruction (true; the caller maps it, read-only unless the fault
   was a write).  xbt_watch_filled: after a window fill, the watched pages out again
   (but the one being stepped).  xbt_watch_access: an access the VMM makes for the
   guest.  xbt_watch_dispatch: at a dispatch, the step's page out again, and the stop
   after an instruction that hit (XBT_LEAVE_EXIT) or 0. */
bool xbt_watch_fault(struct xbt_vcpu *v, uint32_t lin, bool write, bool paged);
void xbt_watch_filled(struct xbt_vcpu *v);
void xbt_watch_access(struct xbt_vcpu *v, uint32_t lin, uint32_t len, bool write);
int xbt_watch_dispatch(struct xbt_vcpu *v);
/* The guest's instruction and data breakpoints again from DR0-DR3 and DR7 (after a write
   to them, a task switch, a restored state). */
/* EFLAGS.RF from an EFLAGS image that an instruction loads (IRET, a task switch): kept
   apart from the flags (run.c), and not ended by that instruction's own completion. */
static inline void xbt_load_rf(struct xbt_vcpu *v, uint32_t eflags)
{
    v->arch.rf = (eflags & XBT_EFLAGS_RF) != 0;
    v->tf.rf_loaded = true;
}

/* An iteration of a REP string instruction completed with more to come, EIP kept on
   the instruction (a REP INS/OUTS element, a one-iteration step): it ends the
   instruction for TF (run.c guest_insn_end), and RF is set until the next iteration
   (SDM vol. 3 18.3.1.1: an event's frame there carries it, and a code breakpoint on
   the instruction is not taken again). */
static inline void xbt_rep_iteration(struct xbt_vcpu *v)
{
    v->tf.iter_done = true;
    v->arch.rf = true;
}

/* DR7's fields for breakpoint n (SDM vol. 3 18.2.4): enabled (Ln or Gn); R/Wn (00 an
   instruction, 01 writes, 10 I/O with CR4.DE, 11 reads and writes); LENn in bytes
   (00 1, 01 2, 10 8, 11 4). */
static inline bool xbt_dr7_enabled(uint32_t dr7, int n)
{
    return (dr7 >> (2 * n)) & 3;
}
static inline uint32_t xbt_dr7_rw(uint32_t dr7, int n)
{
    return (dr7 >> (16 + 4 * n)) & 3;
}
static inline uint32_t xbt_dr7_len(uint32_t dr7, int n)
{
    uint32_t code = (dr7 >> (18 + 4 * n)) & 3;
    return code == 2 ? 8 : code + 1;
}

void xbt_watch_guest_sync(struct xbt_vcpu *v);
/* Whether the guest has data breakpoints (watchpoints with a DR number). */
bool xbt_watch_guest_any(const struct xbt_vcpu *v);
/* Whether lin holds a breakpoint, the embedder's or the guest's instruction breakpoint:
   translated code never runs into one (blocks end before it, no chain or lookup entry
   leads into a block at one), so the dispatcher sees it. */
static inline bool xbt_debug_is_embedder_bp(const struct xbt_vcpu *v, uint32_t lin)
{
    for (uint32_t i = 0; i < v->dbg.n_bp; i++)
        if (v->dbg.bp[i] == lin)
            return true;
    return false;
}
static inline bool xbt_debug_is_bp(const struct xbt_vcpu *v, uint32_t lin)
{
    if (xbt_debug_is_embedder_bp(v, lin))
        return true;
    for (uint32_t i = 0; i < v->dbg.n_gbp; i++)
        if (v->dbg.gbp[i] == lin)
            return true;
    return false;
}
static inline bool xbt_debug_any_bp(const struct xbt_vcpu *v)
{
    return v->dbg.n_bp || v->dbg.n_gbp;
}
/* vm.c: the set of breakpoints changed: the translator's stop hook, every translation
   dropped. */
void xbt_debug_bps_changed(struct xbt_vcpu *v);
/* run.c: every translation dropped (chains, lookup tables, code-page protection). */
void xbt_vcpu_flush_translations(struct xbt_vcpu *v);
/* Whether an access to guest physical gpa reaches memory: a slot, and for a write not
   ROM (a write to ROM is an MMIO write, KVM's rule).  Otherwise it is MMIO. */
static inline bool xbt_gpa_mem(const xbt_vm *vm, uint64_t gpa, bool write)
{
    uint8_t k = xbt_phys_kind(&vm->phys, gpa);
    return k && !(write && (k & XBT_PP_ROM));
}
/* Every code page's write protection for v's translations lifted (they are gone). */
void xbt_unprotect_all(struct xbt_vcpu *v);

/* Several vCPUs (smp.c).  xbt_code_protect: v is about to translate (or has translated)
   code from guest physical page `page`: its bit in vm->code_prot set, the page
   write-protected in its windows and, when it is the first vCPU with code there, in the
   others' (waiting for those in translated code).  xbt_code_written: guest memory
   [gpa, gpa + len) is about to be written (by self, NULL: the embedder): every
   translation of it goes, self's at once, the others' through their mailboxes; `wait`:
   until none of them can still run one (a guest write; the embedder's do not wait).
   xbt_mbox_pending / xbt_mbox_run: v's own requests, carried out before its translated
   code runs again. */
void xbt_code_protect(struct xbt_vcpu *v, uint32_t page);
void xbt_code_written(xbt_vm *vm, struct xbt_vcpu *self, uint64_t gpa, uint64_t len, bool wait);
bool xbt_mbox_pending(struct xbt_vcpu *v);
/* v is about to write physical page `page` or to map it writable in its windows: if its
   bit there is clear while struct xbt_smmu's code_own says it translated from the page,
   another vCPU's write doomed those translations and its drop request may not have come
   yet; they go now (smp.c, own_drop).  The block that made the access may be one. */
void xbt_code_own_drop(struct xbt_vcpu *v, uint32_t page);
/* v is about to map page `page`, which has no code bits, writable in its windows: its
   own doomed translations go (xbt_code_own_drop), then it waits until every drop
   request other writers posted so far is carried out by the vCPUs in translated code,
   after any writer still between clearing bits and posting (smp.c).  false: the page
   holds code again (a translator's request done during the wait): not writable. */
bool xbt_code_before_writable(struct xbt_vcpu *v, uint32_t page);
/* Unit tests only (test_xmc_doomed): run between xbt_code_before_writable's first drain
   and its look at the page's bits.  NULL otherwise. */
extern void (*xbt_test_after_drain)(struct xbt_vcpu *v);
/* One request into v's mailbox (MBOX_WP, MBOX_INVAL); the sequence number it is done by. */
enum { XBT_MBOX_WP = 1, XBT_MBOX_INVAL = 2 };
uint64_t xbt_mbox_post(struct xbt_vcpu *v, uint8_t kind, uint32_t page);
void xbt_mbox_run(struct xbt_vcpu *v);
/* Pause-loop yields, the software form of hardware VMMs' pause-loop exiting: a vCPU
   spinning on PAUSE waits for something another thread does (another vCPU releasing a
   lock, a device thread).  When the host has fewer free CPUs than runnable threads (two
   4-vCPU guests on a 2-core host), that thread may be the one waiting for this CPU, and
   spinning on only delays it by a scheduler slice each time.  After XBT_PLE_RUN PAUSEs
   in a row, each within XBT_PLE_GAP TSC cycles of the one before (about 10 microseconds of a
   spin loop), the vCPU yields its CPU: a system call of a few thousand cycles, which
   returns at once when nothing else wants the CPU.  PAUSE has no other architectural
   effect, so neither the count nor the yield changes what the guest sees.  (The
   translated PAUSE costs a callout; the hint itself is kept, made here.)  Inline:
   the fast callouts (callouts_fast.c) and the full handler (callouts.c) both use it. */
#define XBT_PLE_GAP 4096
#define XBT_PLE_RUN 64
/* The slot of v->cpuid_hit for a CPUID of (leaf, sub). */
static inline unsigned xbt_cpuid_slot(uint32_t leaf, uint32_t sub)
{
    return (leaf ^ (leaf >> 28) ^ sub) & (XBT_CPUID_HITS - 1);
}

static inline void xbt_pause_loop(struct xbt_vcpu *v)
{
    __builtin_ia32_pause();
    uint64_t now = __builtin_ia32_rdtsc();
    bool close = now - v->ple.last < XBT_PLE_GAP;
    v->ple.last = now;
    if (!close) {
        v->ple.run = 0;
        return;
    }
    if (++v->ple.run < XBT_PLE_RUN)
        return;
    v->ple.run = 0;
    v->stats.pause_yields++;
    /* sched_yield as a bare system call: the fast callouts call nothing outside
       their object (tests/unit/check_fast_callouts.sh); the kernel keeps every
       register but RAX, RCX and R11. */
    long r = SYS_sched_yield;
    __asm__ volatile("syscall" : "+a"(r) : : "rcx", "r11", "memory");
    v->ple.last = __builtin_ia32_rdtsc();
}

/* After a write the VMM made through its own view (no window, so no fault): a vCPU
   that set its bit after the check before the write may have read the old bytes
   meanwhile; its code goes now (with one vCPU nothing can have come between). */
static inline void xbt_code_recheck(xbt_vm *vm, struct xbt_vcpu *self, uint64_t gpa,
                                    uint64_t len, bool wait)
{
    if (vm->n_vcpus < 2 || !len)
        return;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    xbt_code_written(vm, self, gpa, len, wait); /* pages without a bit cost a load */
}
/* Several vCPUs: guest physical [gpa, gpa + len) (one page) is read as code
   (xbt_code_chunks_mark, before the bytes are read); whether bytes [off, off + len) of
   physical page `page` may hold some vCPU's code (xbt_code_chunks_any). */
void xbt_code_chunks_mark(xbt_vm *vm, uint64_t gpa, uint32_t len);
bool xbt_code_chunks_any(const xbt_vm *vm, uint32_t page, uint32_t off, uint32_t len);
/* Whether bytes [off, off + len) of physical page `page` may hold translated code of
   any vCPU: this one's cache, looked up (a writer clears the chunks of a page before its
   bits, so this vCPU's own code there may have lost its chunk while its bit is still
   set: its write would go the data-beside-code way and keep the old translation), and
   with several vCPUs the chunks the others marked. */
static inline bool xbt_code_at(const struct xbt_vcpu *v, uint32_t page, uint32_t off,
                               uint32_t len)
{
    return xbt_tc_page_range_has_code(v->tc, page, off, len) ||
           (v->vm->code_chunks && xbt_code_chunks_any(v->vm, page, off, len));
}

/* The runtime's side of the shadow MMU (mmu.c; the unit itself is shadow-mmu/smmu.h). */
static inline bool xbt_paging(const struct xbt_vcpu *v) { return v->arch.cr0 & XBT_CR0_PG; }
static inline bool xbt_pae(const struct xbt_vcpu *v) { return v->arch.cr4 & XBT_CR4_PAE; }
static inline xbt_smmu_regs xbt_paging_regs(const struct xbt_vcpu *v)
{
    return (xbt_smmu_regs){ v->arch.cr0, v->arch.cr3, v->arch.cr4 };
}
/* The address space CR3 names (xbt_smmu_as_key). */
static inline uint32_t xbt_as_key(const struct xbt_vcpu *v)
{
    return xbt_smmu_as_key(xbt_paging_regs(v));
}
/* GS stays at the K-window's base at every privilege, translated CPL 3 code reaching
   the U-window below it (XBT_WINDOW_UK; run.c says when). */
bool xbt_gs_fixed(void);
bool xbt_set_switch_dear(void);
/* The window translated code of this vCPU uses now: the user window for CPL 3 with
   paging on, else the K-window. */
static inline uint8_t *xbt_current_window(const struct xbt_vcpu *v)
{
    return (xbt_paging(v) && v->arch.cpl == 3) ? v->mmu->ubase : v->mmu->kbase;
}
/* The block may run without a walk: none of its regions changed since it was checked. */
static inline bool xbt_block_fresh(const struct xbt_vcpu *v, const xbt_block *b)
{
    return xbt_smmu_fresh(v->mmu, b->lin, b->guest_len, b->epoch);
}
/* Guest paging changed (CR0.PG/WP, CR4.PSE/PGE/PAE): drop every window's mappings, undo
   every chain and start a new mapping epoch, in which each translation is checked
   against the new mapping before it runs again.  xbt_mapping_changed: the same for
   INVLPG, where only [lin, lin + len) changes (len 0: everything); false when no
   translation's epoch, chain or lookup entry changed (the pages held no code checked
   under the current mapping), so that the block running may go on. */
void xbt_paging_changed(struct xbt_vcpu *v);
bool xbt_mapping_changed(struct xbt_vcpu *v, uint32_t lin, uint32_t len);
/* A CR3 load: the windows become the new address space's, and only regions whose
   mapping may differ get a new epoch. */
void xbt_cr3_changed(struct xbt_vcpu *v);
/* After the shadow MMU changed regions (region_bumped, _hidden, _unhidden, _alt_keep,
   _alt_restore): the inline lookup tables' entries of regions that went absent or were
   set aside are kept, and go back where the region returns as it was (run.c); false:
   no memory (they are forgotten, as for any new epoch).  xbt_ibl_drop_alt: what was
   kept for the contexts set aside in bitmap (NULL: everything kept) is forgotten. */
bool xbt_ibl_regions_changed(struct xbt_vcpu *v);
void xbt_ibl_drop_alt(struct xbt_vcpu *v, const uint8_t *bitmap);
/* A block was translated or found current on linear [lin0, lin1], its walks finding w0
   and w1 (xbt_smmu_code_seen): a region mapped again since the last load gets a new
   epoch, a context set aside that could run now loses its chains, before it runs. */
void xbt_code_seen(struct xbt_vcpu *v, uint32_t lin0, uint32_t lin1, const xbt_code_walk *w0,
                   const xbt_code_walk *w1);
void xbt_stlb_flush(struct xbt_vcpu *v); /* the software TLB of lin_page (excp.c) */
/* The read shadow's TLB entries go (mmio.c): with the software TLB, at every run, at a
   change of IA32_APIC_BASE. */
void xbt_rshadow_forget(struct xbt_vcpu *v);

/* SMAP: the user pages the K-window got while EFLAGS.AC was set leave it (mmu.c);
   xbt_smap_sync does so when AC is clear now and there are any. */
void xbt_smap_drop(struct xbt_vcpu *v);
static inline void xbt_smap_sync(struct xbt_vcpu *v)
{
    if ((v->smap.n || v->smap.overflow) && !(v->ctx.eflags_sys & XBT_EFLAGS_AC))
        xbt_smap_drop(v);
}
/* The guest page walker on this vCPU's control registers and RAM (excp.c). */
bool xbt_walk_lin(struct xbt_vcpu *v, uint32_t lin, bool write, int acc, bool fetch,
                  struct xbt_walk_result *r);
/* The walker's read callback over a VM's RAM (opaque: the xbt_vm; mmu.c). */
bool xbt_vm_pt_read(void *opaque, uint64_t gpa, uint32_t *val);
/* Whether an access to lin (a write, a user one) would succeed now with paging on and
   its walk set no accessed or dirty bit (mmu.c; the walk in *r, nothing written): the
   page may be mapped now without a bit of its entry changing, as a TLB may cache such
   an entry at any time. */
bool xbt_walk_settled(const struct xbt_vcpu *v, uint32_t lin, bool write, bool user,
                      bool fetch, struct xbt_walk_result *r);
/* Before the dispatcher runs ctx.eip: the refill of v->refill (mmu.c). */
void xbt_pf_refill(struct xbt_vcpu *v);
/* A read walk of lin that sets no accessed or dirty bit and raises nothing (probes, a
   debugger's reads; mmu.c); paging off: the identity. */
bool xbt_walk_quiet(const struct xbt_vcpu *v, uint32_t lin, bool user, bool fetch,
                    struct xbt_walk_result *r);
/* The D-window's keeper for the shadow MMU (direct.c: the runner processes). */
extern const struct xbt_smmu_dwin xbt_direct_dwin;
static inline struct xbt_dset *xbt_dset_cur(xbt_vm *vm) { return &vm->dset[vm->mmu->cur->idx]; }
static inline struct xbt_runner *xbt_set_runner(xbt_vm *vm, const struct xbt_wset *w)
{
    return &vm->dset[w->idx].runner;
}

/* A host page fault at linear `lin` of window `win` (enum xbt_window), with the access
   in v->fault_err (XBT_PF_W, XBT_PF_I), from translated code or from directly run code,
   paging on or off: the one route (mmu.c).  XBT_WF_DONE: go on (the window filled, a
   guest exception raised, an MMIO step or a write to translated code set up);
   XBT_WF_EXIT: an exit is recorded; XBT_WF_TRANSLATE: the D-window cannot take it (MMIO,
   a write to translated code, a page below mmap_min_addr or one whose code must run
   translated): the instruction runs translated. */
enum { XBT_WF_EXIT = 0, XBT_WF_DONE = 1, XBT_WF_TRANSLATE = 2 };
int xbt_window_fault(struct xbt_vcpu *v, int win, uint32_t lin);
/* A fault site's access (pfsite.c) before it is made, at linear `lin` of window `win`
   (K or U), walked as a host fault there would be: XBT_WP_RAISED, the guest's #PF was
   raised (XBT_WP_EXIT: an exit is recorded instead); XBT_WP_MAPPED, the page is in the
   window now with the access's rights (filled as a hidden fault fills it); XBT_WP_ACCESS,
   anything else (paging off, MMIO, a write to translated code, watchpoints, SMAP, a
   fill that failed): the access is made as it is, and a host fault, if it takes one,
   goes the usual way (mmu.c). */
enum { XBT_WP_EXIT = 0, XBT_WP_RAISED = 1, XBT_WP_MAPPED = 2, XBT_WP_ACCESS = 3 };
int xbt_window_probe(struct xbt_vcpu *v, int win, uint32_t lin, bool write);
/* A soft fault site's access of `size` bytes at lin (pfsite.c): where the window does
   not map a page whose mapping churns (xbt_window_churns), the guest page reached
   through the VMM's view of RAM after the walk an access makes (accessed and dirty
   flags set), the window left as it is: XBT_WP_SOFT with the byte's host address in
   *host.  Otherwise as xbt_window_probe (*host untouched). */
enum { XBT_WP_SOFT = 4 };
int xbt_window_soft(struct xbt_vcpu *v, int win, uint32_t lin, bool write, uint32_t size,
                    uint8_t **host);
/* Fault sites (pfsite.c).  xbt_pf_note_fault: a host fault in the K- or U-window by
   the instruction at linear `lin` ended in a guest #PF or a window fill;
   xbt_pf_fetched: fetch_code read linear page `lin` (a page number) from physical
   page `page`; xbt_pf_site: the translator's question (translator.h, pf_site);
   xbt_pf_callout: the XBT_CO_PFCHECK callout (0: on into the access; else
   XBT_LEAVE_*). */
void xbt_pf_note_fault(struct xbt_vcpu *v, uint32_t lin);
void xbt_pf_fetched(struct xbt_vcpu *v, uint32_t lin, uint32_t page);
uint16_t xbt_pf_site(void *vcpu, uint32_t eip);
int xbt_pf_callout(struct xbt_vcpu *v);
/* Wrap sites (pfsite.c): xbt_uk_wrap_site, the translator's question (translator.h,
   uk_wrap_site); xbt_uk_wrap_note, the fast-form sum of the translated instruction at
   linear `lin` wrapped (a host fault outside the U-window): it is marked and its
   blocks go. */
bool xbt_uk_wrap_site(void *vcpu, uint32_t eip);
void xbt_uk_wrap_note(struct xbt_vcpu *v, uint32_t lin);
/* Taking sites back (pfsite.c): xbt_pf_sample, a sample of the vCPU thread's CPU time
   at host rip (signal context); xbt_pf_sweep, at a dispatch when sweep_due;
   xbt_pf_sampler_start / _stop, the thread's timer (signals.c). */
void xbt_pf_sample(struct xbt_vcpu *v, uint64_t rip);
void xbt_pf_sweep(struct xbt_vcpu *v);
void xbt_pf_sampler_start(struct xbt_vcpu *v);
void xbt_pf_sampler_stop(struct xbt_vcpu *v);
/* A run of a vCPU whose sampler runs: on another thread than before, the timer moves to
   this one (signals.c). */
void xbt_pf_sampler_follow(struct xbt_vcpu *v);

/* Direct execution (direct.c). */
/* run.c: a data write beside translated code (snapshot, single step, compare). */
void xbt_smc_data_begin(struct xbt_vcpu *v, uint32_t page, uint32_t lin, bool paged);
bool xbt_direct_vm_init(xbt_vm *vm, const char **why);
void xbt_direct_vm_destroy(xbt_vm *vm);
/* Guest memory slots changed: the runners end (direct.c). */
void xbt_direct_slots_changed(xbt_vm *vm);
/* Maps [lin, lin + len) of the current set's D-window onto guest RAM at gpa: a writable
   run without execute permission (W^X), a read-only one executable where its pages are
   not sensitive (xbt_direct_page_sensitive).  XBT_DMAP_XLATE: the page holding `fetch`
   (-1: none) is sensitive; it was mapped without execute permission and runs
   translated (xbt_direct_page_translated). */
int xbt_direct_map(xbt_vm *vm, uint32_t lin, uint64_t gpa, uint32_t len, bool writable,
                   int64_t fetch);
bool xbt_direct_page_sensitive(xbt_vm *vm, uint64_t gpa, uint64_t prev, uint64_t next);
void xbt_direct_page_translated(struct xbt_vcpu *v, uint32_t eip);
bool xbt_direct_wanted(struct xbt_vcpu *v);
/* Adaptive mode's address-space policy (direct.c): the run time of translated user
   code not yet promoted is accounted to the current address space, which runs directly
   once it has earned it. */
void xbt_adapt_account(struct xbt_vcpu *v, uint64_t ticks);
/* Called before a burst's first piece of translated user code: reads the clocks that
   tell, at a promotion, how much of the burst the host did not run this thread. */
uint64_t xbt_adapt_base(struct xbt_vcpu *v); /* (returns the TSC it read last) */
/* Every dispatch in adaptive mode: the time since the last one, and the kernel entries
   from CPL 3 meanwhile, go to the address space that was current. */
void xbt_adapt_mark(struct xbt_vcpu *v);
/* Whether the current address space's user code may run directly: always in direct
   mode; in adaptive mode once promoted (a window set given to another address space
   starts unpromoted again) or with a threshold of 0. */
static inline bool xbt_adapt_promoted(struct xbt_vcpu *v)
{
    struct xbt_wset *w = v->mmu->cur;
    struct xbt_dset *d = &v->vm->dset[w->idx];
    if (v->vm->cfg.user_mode != XBT_USER_ADAPTIVE)
        return true;
    if (d->adapt_gen != w->gen || d->adapt_cr3 != v->arch.cr3) {
        /* (A set keeps its generation where the guest turns paging off and on with
           another CR3: that is another address space too.) */
        d->adapt_gen = w->gen;
        d->adapt_cr3 = v->arch.cr3;
        d->promoted = false;
        d->m_ticks[0] = d->m_ticks[1] = d->m_entries[0] = d->m_entries[1] = 0;
        d->demotions = 0;
    }
    return d->promoted || !v->vm->adapt_ticks;
}
bool xbt_direct_run(struct xbt_vcpu *v);
/* signals.c: the thread's alternate signal stack (NULL: none could be made). */
uint8_t *xbt_thread_altstack(void);

/* Host signal handling (signals.c). */
bool xbt_signals_init(void);
extern __thread struct xbt_vcpu *xbt_current_vcpu;

/* mmio.c: a guest access to physical memory without RAM.  Returns true with an MMIO
   exit prepared in v->exit (or, with v->mmio.run, a step to run first), or false with
   an internal error set or, with v->mmio.raised, a guest exception delivered (a #PF on
   the RAM side of an access that crosses into MMIO). */
bool xbt_mmio_begin(struct xbt_vcpu *v, uint32_t lin, uint64_t gpa);
/* MMIO sites (mmio.c): a host fault on MMIO by translated code at ctx.eip counts
   against the instruction's linear address, and a few make it a site: its block is
   dropped and translated again with the access as an XBT_CO_MMIO callout.
   xbt_mmio_site is the translator's question; xbt_mmio_callout makes the access: 1 as
   xbt_mmio_begin after a fault (an exit, a step or an exception set up), 0 when the
   access is not to MMIO this time (the caller runs the instruction alone). */
void xbt_mmio_note_fault(struct xbt_vcpu *v);
/* run.c: drops block b from the cache with the vCPU's bookkeeping (the unlinked block
   forgotten, the inline lookup tables told to prune). */
void xbt_vcpu_drop_block(struct xbt_vcpu *v, xbt_block *b);
/* The same for the block whose host code holds pc, if it is still in the cache. */
void xbt_vcpu_drop_block_at(struct xbt_vcpu *v, uint64_t pc);
/* A bit per 4 KiB linear page (which pages hold an MMIO or a fault site), 128 KiB
   allocated at the first bit set (NULL before). */
static inline bool xbt_page_bit(const uint8_t *bits, uint32_t lin)
{
    return bits && (bits[lin >> 15] & (1u << ((lin >> 12) & 7)));
}
/* Sets lin's bit; false if the bits cannot be allocated. */
bool xbt_page_bit_set(uint8_t **bits, uint32_t lin);
bool xbt_mmio_site(void *vcpu, uint32_t eip);
bool xbt_mmio_site_page(const struct xbt_vcpu *v, uint32_t lin);
int xbt_mmio_callout(struct xbt_vcpu *v);
/* The generic MMIO path's step (see mmio.c): before the run loop runs the instruction,
   and after it (an MMIO write exit prepared: true). */
void xbt_mmio_step_prepare(struct xbt_vcpu *v);
bool xbt_mmio_step_finish(struct xbt_vcpu *v);
bool xbt_mmio_complete(struct xbt_vcpu *v); /* false: an internal-error exit is set */
/* The next of a completed callout's MMIO stores as v->exit (false: none left). */
bool xbt_callout_mmio_store(struct xbt_vcpu *v);
/* A store the run loop makes on an instruction's behalf outside a callout (INS's data,
   when the IN exit has brought it): to RAM with the current privilege's rights, or to
   memory without RAM as queued MMIO stores that xbt_callout_mmio_store sends as the
   next exits (callouts.c).  false: neither (a #PF is pending, or not emulated). */
bool xbt_store_lin(struct xbt_vcpu *v, uint32_t lin, const void *src, uint32_t len);

/* INS/OUTS's pointers and count in the site's address size: SI/DI/CX wrapping at 64 KiB
   with 16-bit addressing (the upper halves kept), else ESI/EDI/ECX. */
static inline uint32_t xbt_str_mask(const struct xbt_callout_site *s)
{
    return (s->flags & XBT_COF_ADDR16) ? 0xFFFFu : 0xFFFFFFFFu;
}
static inline void xbt_str_add(uint32_t *r, uint32_t mask, uint32_t delta)
{
    *r = (*r & ~mask) | ((*r + delta) & mask);
}

#endif
