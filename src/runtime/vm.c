/*
 * vm.c - VM and vCPU objects: guest physical memory slots (shadow-mmu/phys.h), the
 * K-window, register access.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "vcpu.h"

static __thread const char *last_host_error = "";
static __thread char host_error_buf[256]; /* a last_host_error with details */

const char *xbt_last_host_error(void)
{
    return last_host_error;
}

#define GIB (1ull << 30)

/* An on/off environment variable (xbt.h lists them): set, non-empty and not "0". */
static bool env_set(const char *name)
{
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

/* A shadow MMU over the VM's slots, sharing its code-page bits (vCPU 0's is made with
   the VM, the others' with their vCPUs).  NULL with last_host_error. */
static xbt_smmu *new_mmu(xbt_vm *vm)
{
    xbt_smmu *m = calloc(1, sizeof *m);
    if (!m) {
        last_host_error = "cannot allocate the shadow MMU";
        return NULL;
    }
    m->code_prot = vm->code_prot;
    if (!xbt_smmu_init(m, &vm->phys, &last_host_error)) {
        xbt_smmu_destroy(m);
        free(m);
        return NULL;
    }
    m->dwin = xbt_direct_dwin;
    m->dwin.opaque = vm;
    m->keep_set = xbt_set_switch_dear();
    return m;
}

static xbt_tcache *new_tc(xbt_vm *vm)
{
    xbt_tcache *tc = xbt_tc_create(vm->cfg.tcache_size ? vm->cfg.tcache_size : 64ull << 20);
    if (!tc)
        last_host_error = "cannot allocate the translation cache above 4 GiB";
    return tc;
}

xbt_status xbt_vm_create(const xbt_vm_config *cfg, xbt_vm **out)
{
    if (!out || !cfg)
        return XBT_E_INVAL;
    *out = NULL;
#define XBT_VM_FLAGS(op) (XBT_VM_NO_TRACES op XBT_VM_NO_CHAIN op XBT_VM_TRACES op \
                          XBT_VM_TRACE_PROFILE op XBT_VM_PERF_MAP op XBT_VM_LOCAL_APIC op \
                          XBT_VM_STRING_IO op XBT_VM_PERF_JITDUMP)
    _Static_assert(XBT_VM_FLAGS(|) == XBT_VM_FLAGS(+), "two XBT_VM_* flags share a bit");
    const uint32_t known = XBT_VM_FLAGS(|);
    if ((cfg->ram_size & 0xFFF) || cfg->ram_size > 3 * GIB ||
        cfg->user_mode > XBT_USER_ADAPTIVE || (cfg->flags & ~known))
        return XBT_E_INVAL;
    /* The deprecated XBT_VM_NO_TRACES once overrode XBT_VM_TRACES; asking for both is a
       contradiction now, not a silent choice. */
    if ((cfg->flags & XBT_VM_NO_TRACES) && (cfg->flags & XBT_VM_TRACES))
        return XBT_E_INVAL;
    if (!xbt_signals_init()) {
        last_host_error = "cannot install signal handlers";
        return XBT_E_HOST;
    }
    xbt_vm *vm = calloc(1, sizeof *vm);
    if (!vm)
        return XBT_E_NOMEM;
    vm->cfg = *cfg;
    for (int k = 0; k < XBT_WSETS; k++)
        xbt_runner_init(&vm->dset[k].runner);
    if (!xbt_phys_init(&vm->phys, &last_host_error))
        goto host_fail;
    if (cfg->ram_size) {
        xbt_mem_region r0 = { 0, 0, 0, cfg->ram_size, -1, 0, 0 };
        xbt_status st = xbt_phys_set(&vm->phys, &r0);
        if (st != XBT_OK) {
            last_host_error = "memfd_create/ftruncate/mmap of guest RAM failed";
            xbt_vm_destroy(vm);
            return st;
        }
    }
    vm->code_prot = calloc(XBT_PHYS_PAGES, 1);
    if (!vm->code_prot) {
        last_host_error = "cannot allocate the per-page tables of guest RAM";
        goto host_fail;
    }
    if (!(vm->mmu = new_mmu(vm)) || !(vm->tc = new_tc(vm)))
        goto host_fail;
    /* The scan cache's key (direct.c): unknown to the guest. */
    if (getrandom(vm->scan_key, sizeof vm->scan_key, 0) != (ssize_t)sizeof vm->scan_key) {
        last_host_error = "getrandom failed (the key of the sensitive-page scan's cache)";
        goto host_fail;
    }
    vm->no_share = env_set("XBT_NO_SHARE");
    vm->check_shared = env_set("XBT_CHECK_SHARED");
    vm->no_fast_callouts = env_set("XBT_NO_FAST_CALLOUTS");
    /* About 1 ms at this machine's 2.4 GHz (direct.c, xbt_adapt_account). */
    const char *e = getenv("XBT_ADAPT_TICKS");
    vm->adapt_ticks = e && *e ? strtoull(e, NULL, 0) : 2500000ull;
    /* direct.c, xbt_adapt_mark: only where something is promoted that may go back, and
       only when asked for (its measure is biased across program phases: see there) */
    vm->adapt_demote = cfg->user_mode == XBT_USER_ADAPTIVE && vm->adapt_ticks &&
                       env_set("XBT_ADAPT_DEMOTE");
    if (cfg->flags & XBT_VM_PERF_MAP) {
        vm->perfmap = xbt_perfmap_open(cfg->perf_map_path, host_error_buf,
                                       sizeof host_error_buf);
        if (!vm->perfmap) {
            last_host_error = host_error_buf;
            goto host_fail;
        }
    }
    if (cfg->flags & XBT_VM_PERF_JITDUMP) {
        /* In the perf map's directory when a map file was named, else /tmp. */
        char dir[4096] = "/tmp";
        const char *slash = cfg->perf_map_path ? strrchr(cfg->perf_map_path, '/') : NULL;
        if (cfg->perf_map_path && !slash)
            snprintf(dir, sizeof dir, ".");
        else if (slash && slash != cfg->perf_map_path)
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - cfg->perf_map_path),
                     cfg->perf_map_path);
        else if (slash)
            snprintf(dir, sizeof dir, "/");
        vm->jitdump = xbt_jitdump_open(dir, host_error_buf, sizeof host_error_buf);
        if (!vm->jitdump) {
            last_host_error = host_error_buf;
            goto host_fail;
        }
    }
    vm->cfg.perf_map_path = NULL; /* read only here (the caller's string) */
    if (cfg->user_mode != XBT_USER_STRICT) {
        const char *why = NULL;
        if (!xbt_direct_vm_init(vm, &why))
            snprintf(vm->direct_why, sizeof vm->direct_why, "%s", why);
    }
    *out = vm;
    return XBT_OK;
host_fail:
    xbt_vm_destroy(vm);
    return XBT_E_HOST;
}

void xbt_vm_destroy(xbt_vm *vm)
{
    if (!vm)
        return;
    for (int k = XBT_MAX_VCPUS - 1; k >= 0; k--)
        if (vm->vcpus[k])
            xbt_vcpu_destroy(vm->vcpus[k]);
    xbt_direct_vm_destroy(vm);
    xbt_perfmap_close(vm->perfmap);
    xbt_jitdump_close(vm->jitdump);
    xbt_symtab_free(&vm->syms);
    xbt_tc_destroy(vm->tc);
    if (vm->mmu)
        xbt_smmu_destroy(vm->mmu);
    free(vm->mmu);
    free(vm->code_prot);
    free(vm->code_chunks);
    xbt_phys_destroy(&vm->phys);
    free(vm);
}

uint8_t *xbt_vm_ram(xbt_vm *vm)
{
    return xbt_vm_mem_host(vm, 0);
}

uint64_t xbt_vm_ram_size(const xbt_vm *vm)
{
    return vm && vm->phys.slot[0].used ? vm->phys.slot[0].size : 0;
}

uint32_t xbt_vm_user_mode(const xbt_vm *vm, const char **why)
{
    if (why)
        *why = NULL;
    if (!vm)
        return XBT_USER_STRICT;
    if (vm->cfg.user_mode == XBT_USER_STRICT || vm->direct_ok)
        return vm->cfg.user_mode;
    if (why)
        *why = vm->direct_why[0] ? vm->direct_why : "direct execution is not available";
    return XBT_USER_STRICT;
}

xbt_status xbt_vm_add_symbol(xbt_vm *vm, uint32_t addr, uint32_t size, const char *name)
{
    if (!vm || !name || !xbt_symtab_name_ok(name) || (uint64_t)addr + size > (1ull << 32))
        return XBT_E_INVAL;
    return xbt_symtab_add(&vm->syms, addr, size, name) ? XBT_OK : XBT_E_NOMEM;
}

xbt_status xbt_vm_relocated_symbols(xbt_vm *vm, uint32_t text, uint32_t align)
{
    if (!vm || align < 4096 || (align & (align - 1)) ||
        atomic_load_explicit(&vm->started, memory_order_relaxed))
        return XBT_E_INVAL;
    vm->syms.relocated = true;
    vm->syms.reloc_text = text;
    vm->syms.reloc_align = align;
    return XBT_OK;
}

xbt_status xbt_vm_symbols_moved(xbt_vm *vm, uint32_t *moved)
{
    if (!vm || !moved)
        return XBT_E_INVAL;
    return xbt_symtab_moved(&vm->syms, moved) ? XBT_OK : XBT_E_INVAL;
}

xbt_status xbt_vm_perf_map_flush(xbt_vm *vm)
{
    if (!vm)
        return XBT_E_INVAL;
    bool map_ok = !vm->perfmap || xbt_perfmap_flush(vm->perfmap);
    bool dump_ok = !vm->jitdump || xbt_jitdump_flush(vm->jitdump);
    if (!map_ok || !dump_ok) {
        last_host_error = !map_ok ? "a write to the perf map failed"
                                  : "a write to the jitdump failed";
        return XBT_E_HOST;
    }
    return XBT_OK;
}

xbt_status xbt_vm_code_range(const xbt_vm *vm, uint64_t *start, uint64_t *size)
{
    if (!vm || !start || !size)
        return XBT_E_INVAL;
    xbt_tc_code_range(vm->tc, start, size);
    return XBT_OK;
}

/* The vCPU of vm this thread runs (last ran), if any: only one of vm's own, run by this
   very thread (xbt_current_vcpu outlives runs and may name another VM's). */
static struct xbt_vcpu *xbt_self(xbt_vm *vm)
{
    struct xbt_vcpu *c = xbt_current_vcpu;
    for (int k = 0; c && k < XBT_MAX_VCPUS; k++)
        if (vm->vcpus[k] == c)
            return pthread_equal(c->thread, pthread_self()) ? c : NULL;
    return NULL;
}

xbt_status xbt_vm_invalidate(xbt_vm *vm, uint64_t gpa, size_t len)
{
    if (!vm)
        return XBT_E_INVAL;
    if (len == 0)
        return gpa <= XBT_PHYS_LIMIT ? XBT_OK : XBT_E_INVAL;
    if (!xbt_phys_ram(&vm->phys, gpa, len))
        return XBT_E_INVAL;
    /* From a vCPU's thread (an in-run handler, or between runs): that vCPU's code goes
       at once; the others' before they run translated code again. */
    xbt_code_written(vm, xbt_self(vm), gpa, len, false);
    return XBT_OK;
}

xbt_status xbt_vm_write_phys(xbt_vm *vm, uint64_t gpa, const void *src, size_t len)
{
    xbt_status s = xbt_vm_invalidate(vm, gpa, len);
    if (s != XBT_OK || !src)
        return s ? s : XBT_E_INVAL;
    if (len)
        memcpy(vm->phys.view + gpa, src, len); /* ROM too; not logged (the embedder's) */
    xbt_code_recheck(vm, xbt_self(vm), gpa, len, false);
    return XBT_OK;
}

xbt_status xbt_vm_read_phys(xbt_vm *vm, uint64_t gpa, void *dst, size_t len)
{
    if (!vm || !dst || (len ? !xbt_phys_ram(&vm->phys, gpa, len) : gpa > XBT_PHYS_LIMIT))
        return XBT_E_INVAL;
    memcpy(dst, vm->phys.view + gpa, len);
    return XBT_OK;
}

/* ---- guest physical memory slots --------------------------------------------------- */

uint8_t *xbt_vm_mem_host(xbt_vm *vm, uint32_t slot)
{
    if (!vm || slot >= XBT_MAX_MEM_SLOTS || !vm->phys.slot[slot].used)
        return NULL;
    return vm->phys.view + vm->phys.slot[slot].gpa;
}

xbt_status xbt_vm_set_mem_region(xbt_vm *vm, const xbt_mem_region *r)
{
    if (!vm)
        return XBT_E_INVAL;
    xbt_status st = xbt_phys_check(&vm->phys, r);
    if (st != XBT_OK)
        return st;
    /* Nothing made from the old layout survives: the runners (their D-windows map the
       slots' files; a new one starts with the new files), every translation and its
       code-page protection, every window mapping (paging off: the identity mapping is
       made again from the new slots). */
    xbt_direct_slots_changed(vm);
    for (int k = 0; k < XBT_MAX_VCPUS; k++)
        if (vm->vcpus[k])
            xbt_vcpu_flush_translations(vm->vcpus[k]);
    st = xbt_phys_set(&vm->phys, r);
    if (st == XBT_E_HOST)
        last_host_error = "cannot make or map the slot's memory";
    /* Every window emptied (the old files' mappings with them), then filled as the
       paging mode needs (paging off: every slot 1:1 again). */
    xbt_smmu_regs none = { 0, 0, 0 };
    if (!vm->vcpus[0])
        xbt_window_reset(vm->mmu, none);
    for (int k = 0; k < XBT_MAX_VCPUS; k++)
        if (vm->vcpus[k])
            xbt_paging_changed(vm->vcpus[k]);
    return st;
}

/* A page the dirty log has just cleared: written through no window until it faults. */
static void dirty_protect(void *opaque, uint64_t page)
{
    xbt_vm *vm = opaque;
    /* The VMM's own writes log as they go.  Each vCPU's windows (its vCPUs are not
       running: the embedder reads the log of a stopped guest). */
    xbt_smmu_write_protect(vm->mmu, page);
    for (int k = 1; k < XBT_MAX_VCPUS; k++)
        if (vm->vcpus[k])
            xbt_smmu_write_protect(vm->vcpus[k]->mmu, page);
}

xbt_status xbt_vm_get_dirty_log(xbt_vm *vm, uint32_t slot, uint64_t *bitmap)
{
    if (!vm)
        return XBT_E_INVAL;
    return xbt_phys_take_dirty(&vm->phys, slot, bitmap, dirty_protect, vm);
}

/* ---- vCPU -------------------------------------------------------------------------- */

static void flat_seg(xbt_segment *s, uint16_t sel, uint8_t type)
{
    memset(s, 0, sizeof *s);
    s->selector = sel;
    s->base = 0;
    s->limit = 0xFFFFFFFF;
    s->type = type;
    s->s = 1;
    s->present = 1;
    s->db = 1;
    s->g = 1;
}

/* A vCPU's own shadow MMU and cache (vCPUs after the first), and the vCPU itself. */
static void free_own(struct xbt_vcpu *v)
{
    if (v->idx) {
        xbt_tc_destroy(v->tc);
        if (v->mmu)
            xbt_smmu_destroy(v->mmu);
        free(v->mmu);
    }
    free(v->mbox.req);
    free(v);
}

/* The vCPU count changed: with several, each shadow MMU fills clean pages alone
   (smmu.h clean_alone). */
static void count_changed(xbt_vm *vm)
{
    for (uint32_t k = 0; k < vm->n_vcpus; k++)
        if (vm->vcpus[k])
            vm->vcpus[k]->mmu->clean_alone = vm->n_vcpus > 1;
}

xbt_status xbt_vcpu_create(xbt_vm *vm, xbt_vcpu **out)
{
    if (!vm || !out)
        return XBT_E_INVAL;
    *out = NULL;
    /* All vCPUs before any runs: the shadow MMUs and caches are made per vCPU, and
       what a VM of several does differently (direct execution off) is chosen here. */
    if (vm->n_vcpus == XBT_MAX_VCPUS || (vm->n_vcpus && atomic_load(&vm->started)))
        return XBT_E_INVAL; /* (a VM whose vCPUs are all gone may get one again) */
    xbt_vcpu *v = NULL;
    if (posix_memalign((void **)&v, 64, sizeof *v) != 0)
        return XBT_E_NOMEM;
    memset(v, 0, sizeof *v);
    v->idx = vm->n_vcpus;
    v->bit = (uint8_t)(1u << v->idx);
    if (v->idx == 0) {
        v->mmu = vm->mmu;
        v->tc = vm->tc;
    } else if (!(v->mmu = new_mmu(vm)) || !(v->tc = new_tc(vm))) {
        free_own(v);
        return XBT_E_HOST;
    }
    pthread_mutex_init(&v->mbox.lock, NULL);
    struct xbt_vcpu_tables *t = calloc(1, sizeof *t);
    if (!t) {
        free_own(v);
        return XBT_E_NOMEM;
    }
    v->tables = t;
    v->ibl_sets = t->ibl_sets;
    v->mmio.sites = t->mmio_sites;
    v->mmio.dcache = t->mmio_dcache;
    v->pfs.sites = t->pf_sites;
    v->pio.buf = t->io_buf;
    v->smc.shadow = t->smc_shadow;
    v->dx.hot = t->hot;
    v->tbuf = t->tbuf;
    v->tb = &t->tb;
    v->stlb = t->stlb;
    v->pol.cpuid = t->cpuid;
    v->flog = t->flog;
    v->vm = vm;
    v->no_fast_callouts = vm->no_fast_callouts;
    v->created_ns = xbt_now_ns();
    v->created_tsc = __builtin_ia32_rdtsc();
    bool ok = (v->ibl_miss = aligned_alloc(64, XBT_IBL_SLOTS * sizeof *v->ibl_miss)) != NULL;
    for (int k = 0; k < XBT_IBL_SETS; k++) {
        v->ibl_sets[k].key = ~0u;
        ok = ok && (v->ibl_sets[k].t = aligned_alloc(64, XBT_IBL_SLOTS * sizeof *v->ibl)) != NULL;
    }
    if (!ok) {
        for (int k = 0; k < XBT_IBL_SETS; k++)
            free(v->ibl_sets[k].t);
        free(v->ibl_miss);
        free(t);
        free_own(v);
        return XBT_E_NOMEM;
    }
    for (uint32_t i = 0; i < XBT_IBL_SLOTS; i++) {
        xbt_ibl_clear(&v->ibl_miss[i]);
        for (int k = 0; k < XBT_IBL_SETS; k++)
            xbt_ibl_clear(&v->ibl_sets[k].t[i]);
    }
    v->ibl_cur = &v->ibl_sets[0];
    v->stlb_gen = 1;
    v->ibl = v->ibl_cur->t;
    xbt_translator_init(&v->xl);
    if (env_set("XBT_NO_BMI2")) /* test the translation for hosts without BMI2 */
        v->xl.bmi2 = false;
    if (!env_set("XBT_NO_MMIO_SITES"))
        v->xl.mmio_site = xbt_mmio_site;
    /* Fault sites' checks use SHRX (BMI2: since 2013's CPUs). */
    if (!env_set("XBT_NO_PF_SITES") && v->xl.bmi2)
        v->xl.pf_site = xbt_pf_site;
    v->pfb.sample_ok = !env_set("XBT_NO_PF_BACKS"); /* sites taken back (pfsite.c) */
    v->xl.mmio_ctx = v;
    /* The read shadow's inline check uses SHRX too. */
    v->xl.mmio_shadow = !env_set("XBT_NO_MMIO_SHADOW") && v->xl.bmi2;
    v->xl.cpuid_inline = !env_set("XBT_NO_INLINE_CPUID"); /* with BMI2's RORX */
    /* Translated user code's [reg + disp] in one instruction (pfsite.c, wrap sites). */
    if (!env_set("XBT_NO_UK_FAST"))
        v->xl.uk_wrap_site = xbt_uk_wrap_site;
    v->rshadow.table = t->rs_table;
    if (vm->cfg.flags & XBT_VM_TRACE_PROFILE)
        v->xl.block_count = &v->trace.prof_block_entries;
    struct xbt_jit_ctx *c = &v->ctx;
    c->exit_direct = (uint64_t)(uintptr_t)xbt_jit_exit_direct;
    c->exit_indirect = (uint64_t)(uintptr_t)xbt_jit_ibl_victim;
    c->callout = (uint64_t)(uintptr_t)xbt_jit_callout;
    c->callout_fn = (uint64_t)(uintptr_t)xbt_callout_entry;
    c->fpu_entry = (uint64_t)(uintptr_t)xbt_jit_fpu_load;
    c->intr_gate = (uint64_t)(uintptr_t)xbt_jit_intr_pending;
    c->fpu_loaded = 0;
    c->ibl_table = (uint64_t)(uintptr_t)v->ibl;
    c->kbase = (uint64_t)(uintptr_t)v->mmu->kbase;
    c->pf_probe = (uint64_t)(uintptr_t)v->mmu->cur->wmap[XBT_WINDOW_K].probe;
    c->rs_nlin[0] = c->rs_nlin[1] = XBT_RS_NONE;
    c->rs_table = (uint64_t)(uintptr_t)t->rs_table;
    memset(t->rs_table, 1, sizeof t->rs_table);
    c->eflags_sys = XBT_EFLAGS_FIXED;
    c->vif = 0;
    c->eflags = XBT_EFLAGS_FIXED;
    /* A clean x87/SSE image: FCW 0x37F, MXCSR 0x1F80. */
    uint16_t fcw = 0x37F;
    uint32_t mxcsr = 0x1F80;
    memcpy(c->fpu, &fcw, 2);
    memcpy(c->fpu + 24, &mxcsr, 4);
    uint32_t mxcsr_mask = 0xFFFF;
    memcpy(c->fpu + 28, &mxcsr_mask, 4);
    /* Protected mode, paging off, flat segments (the multiboot entry state). */
    v->arch.cr0 = XBT_CR0_PE | XBT_CR0_ET;
    flat_seg(&v->arch.seg[XBT_CS], 0x08, 0xB);
    for (int s = 0; s < XBT_NSEG; s++) {
        if (s != XBT_CS)
            flat_seg(&v->arch.seg[s], 0x10, 0x3);
        c->seg_sel[s] = v->arch.seg[s].selector;
        c->seg_limit[s] = v->arch.seg[s].limit;
    }
    v->arch.ldtr.type = 2;
    v->arch.tr.type = 0xB;
    v->arch.tr.present = 1;
    v->arch.gdtr.limit = 0xFFFF;
    v->arch.idtr.limit = 0xFFFF;
    v->arch.msr_apic_base = 0xFEE00900;
    v->arch.msr_pat = 0x0007040600070406ull;
    xbt_cpuid_refresh(v); /* leaf 0's answer for the inline check (key 0) */
    if (v->idx == 1 && !vm->code_chunks &&
        !(vm->code_chunks = calloc((size_t)XBT_PHYS_PAGES * 4, sizeof *vm->code_chunks))) {
        xbt_vcpu_destroy(v);
        return XBT_E_NOMEM;
    }
    vm->vcpus[v->idx] = v;
    vm->n_vcpus++;
    count_changed(vm);
    if (vm->n_vcpus == 2 && vm->direct_ok) {
        /* Direct execution keeps one host process's low 4 GiB per address space for
           one vCPU (runner.c): user code of a VM of several runs translated. */
        vm->direct_ok = false;
        snprintf(vm->direct_why, sizeof vm->direct_why,
                 "the VM has several vCPUs: guest user code runs translated");
    }
    *out = v;
    return XBT_OK;
}

uint32_t xbt_vcpu_index(const xbt_vcpu *v)
{
    return v ? v->idx : 0;
}

static int prof_cmp(const void *a, const void *b)
{
    const xbt_trace_profile *x = a, *y = b;
    return x->entries < y->entries ? 1 : x->entries > y->entries ? -1
                                                                   : (x->eip > y->eip) - (x->eip < y->eip);
}

size_t xbt_vcpu_trace_profile(xbt_vcpu *v, xbt_trace_profile *out, size_t max)
{
    if (!v || (max && !out))
        return 0;
    if (!max || !v->trace.prof_n)
        return v->trace.prof_n;
    xbt_trace_profile *all = calloc(v->trace.prof_n, sizeof *all);
    if (!all)
        return 0;
    for (uint32_t i = 0; i < v->trace.prof_n; i++) {
        const uint64_t *c = &v->trace.prof_pool[(size_t)i * XBT_PROF_STRIDE];
        all[i].eip = v->trace.prof_info[i].eip;
        all[i].blocks = v->trace.prof_info[i].blocks;
        all[i].entries = c[0];
        for (int k = 1; k < XBT_PROF_STRIDE; k++)
            all[i].side_exits += c[k];
    }
    qsort(all, v->trace.prof_n, sizeof *all, prof_cmp);
    size_t n = max < v->trace.prof_n ? max : v->trace.prof_n;
    memcpy(out, all, n * sizeof *out);
    free(all);
    return v->trace.prof_n;
}

void xbt_vcpu_destroy(xbt_vcpu *v)
{
    if (!v)
        return;
    xbt_vm *vm = v->vm;
    if (xbt_current_vcpu == v)
        xbt_current_vcpu = NULL; /* this thread's: no dangling pointer for xbt_self */
    if (v->idx)
        xbt_unprotect_all(v); /* its cache goes with it (vCPU 0's is the VM's) */
    vm->vcpus[v->idx] = NULL;
    while (vm->n_vcpus && !vm->vcpus[vm->n_vcpus - 1])
        vm->n_vcpus--; /* a vCPU made again gets the index back */
    count_changed(vm);
    for (int k = 0; k < XBT_IBL_SETS; k++)
        free(v->ibl_sets[k].t);
    free(v->ibl_miss);
    for (uint32_t r = 0; v->ibl_alt && r < 3 * 1024; r++)
        free(v->ibl_alt[r].v);
    free(v->ibl_alt);
    free(v->trace.prof_pool);
    free(v->trace.prof_info);
    free(v->mmio.site_pages);
    free(v->pfs.site_pages);
    free(v->pfs.wrap_pages);
    xbt_pf_sampler_stop(v);
    if (v->mmio.scratch) {
        munmap(v->mmio.scratch, 4096);
        close(v->mmio.scratch_fd);
    }
    if (v->smc.exec) {
        munmap(v->smc.exec, XBT_BLOCK_MAX_CODE);
        munmap(v->smc.exec_w, XBT_BLOCK_MAX_CODE);
    }
    free(v->tables);
    pthread_mutex_destroy(&v->mbox.lock);
    free_own(v);
}

xbt_status xbt_vcpu_get_regs(xbt_vcpu *v, xbt_regs *r)
{
    if (!v || !r)
        return XBT_E_INVAL;
    const uint32_t *g = v->ctx.gpr;
    *r = (xbt_regs){ g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], v->ctx.eip,
                     xbt_get_eflags(v) };
    return XBT_OK;
}

xbt_status xbt_vcpu_set_regs(xbt_vcpu *v, const xbt_regs *r)
{
    if (!v || !r)
        return XBT_E_INVAL;
    uint32_t *g = v->ctx.gpr;
    g[0] = r->eax, g[1] = r->ecx, g[2] = r->edx, g[3] = r->ebx;
    g[4] = r->esp, g[5] = r->ebp, g[6] = r->esi, g[7] = r->edi;
    v->ctx.eip = r->eip;
    xbt_set_eflags(v, r->eflags, 0xFFFFFFFF);
    if ((v->arch.cr0 & XBT_CR0_PE) && (v->ctx.eflags_sys & XBT_EFLAGS_VM))
        v->arch.cpl = 3; /* virtual-8086 mode runs at CPL 3, whatever CS's DPL */
    v->pio.in_pending = false;
    v->mmio.pending = false;
    v->pol.msr_pending = false;      /* and an MSR exit not answered (policy.c) */
    v->arch.halted = false;          /* new state from the embedder ends a HLT */
    v->arch.interrupt_shadow = false;
    v->ctx.sti_shadow = 0;
    return XBT_OK;
}

xbt_status xbt_vcpu_get_sregs(xbt_vcpu *v, xbt_sregs *s)
{
    if (!v || !s)
        return XBT_E_INVAL;
    s->es = v->arch.seg[XBT_ES], s->cs = v->arch.seg[XBT_CS], s->ss = v->arch.seg[XBT_SS];
    s->ds = v->arch.seg[XBT_DS], s->fs = v->arch.seg[XBT_FS], s->gs = v->arch.seg[XBT_GS];
    s->tr = v->arch.tr, s->ldt = v->arch.ldtr, s->gdt = v->arch.gdtr, s->idt = v->arch.idtr;
    s->cr0 = v->arch.cr0, s->cr2 = v->arch.cr2, s->cr3 = v->arch.cr3, s->cr4 = v->arch.cr4;
    memcpy(s->dr, v->arch.dr, sizeof s->dr);
    return XBT_OK;
}

xbt_status xbt_vcpu_set_sregs(xbt_vcpu *v, const xbt_sregs *s)
{
    if (!v || !s)
        return XBT_E_INVAL;
    if ((s->cr0 & XBT_CR0_PG) && !(s->cr0 & XBT_CR0_PE))
        return XBT_E_INVAL;
    bool paging_was = xbt_paging(v);
    uint32_t cr3_was = v->arch.cr3, cr4_was = v->arch.cr4, cr0_was = v->arch.cr0;
    v->arch.seg[XBT_ES] = s->es, v->arch.seg[XBT_CS] = s->cs, v->arch.seg[XBT_SS] = s->ss;
    v->arch.seg[XBT_DS] = s->ds, v->arch.seg[XBT_FS] = s->fs, v->arch.seg[XBT_GS] = s->gs;
    for (int i = 0; i < XBT_NSEG; i++) {
        v->ctx.seg_sel[i] = v->arch.seg[i].selector;
        v->ctx.seg_base[i] = v->arch.seg[i].base;
        v->ctx.seg_limit[i] = v->arch.seg[i].limit;
    }
    /* The CPL is CS's DPL in protected mode, 0 in real mode and 3 in virtual-8086 mode,
       whatever CS holds. */
    v->arch.cpl = (s->cr0 & XBT_CR0_PE) ? v->arch.seg[XBT_CS].dpl : 0;
    if ((s->cr0 & XBT_CR0_PE) && (v->ctx.eflags_sys & XBT_EFLAGS_VM))
        v->arch.cpl = 3;
    v->arch.tr = s->tr, v->arch.ldtr = s->ldt, v->arch.gdtr = s->gdt, v->arch.idtr = s->idt;
    v->arch.cr0 = s->cr0 | XBT_CR0_ET;
    v->arch.cr2 = s->cr2;
    v->arch.cr3 = s->cr3;
    v->arch.cr4 = s->cr4;
    memcpy(v->arch.dr, s->dr, sizeof v->arch.dr);
    xbt_watch_guest_sync(v);
    if (paging_was != xbt_paging(v) ||
        (xbt_paging(v) &&
         (cr3_was != v->arch.cr3 ||
          ((cr4_was ^ v->arch.cr4) & (XBT_CR4_PSE | XBT_CR4_PAE | XBT_CR4_PGE |
                                      XBT_CR4_SMEP | XBT_CR4_SMAP)) ||
          ((cr0_was ^ v->arch.cr0) & XBT_CR0_WP))))
        xbt_paging_changed(v);
    return XBT_OK;
}

xbt_status xbt_vcpu_get_msr(xbt_vcpu *v, uint32_t index, uint64_t *value)
{
    if (!v || !value)
        return XBT_E_INVAL;
    return xbt_msr_read(v, index, value) ? XBT_OK : XBT_E_INVAL;
}

xbt_status xbt_vcpu_set_msr(xbt_vcpu *v, uint32_t index, uint64_t value)
{
    if (!v)
        return XBT_E_INVAL;
    return xbt_msr_write(v, index, value) ? XBT_OK : XBT_E_INVAL;
}

xbt_status xbt_vcpu_request_irq_window(xbt_vcpu *v, int on)
{
    if (!v)
        return XBT_E_INVAL;
    v->irq_window_req = on != 0;
    if (on) /* inline STI/POPF leave at their gates, so the window is seen at once */
        v->ctx.intr_gate = (uint64_t)(uintptr_t)xbt_jit_intr_pending;
    return XBT_OK;
}

xbt_status xbt_vm_set_mmio_handler(xbt_vm *vm, xbt_mmio_fn fn, void *opaque)
{
    if (!vm)
        return XBT_E_INVAL;
    vm->mmio_fn = fn;
    vm->mmio_opaque = opaque;
    return XBT_OK;
}

xbt_status xbt_vm_set_pio_handler(xbt_vm *vm, xbt_pio_fn fn, void *opaque)
{
    if (!vm)
        return XBT_E_INVAL;
    vm->pio_fn = fn;
    vm->pio_opaque = opaque;
    return XBT_OK;
}

xbt_status xbt_vcpu_set_irq_source(xbt_vcpu *v, xbt_irq_fn fn, void *opaque)
{
    if (!v)
        return XBT_E_INVAL;
    v->irq_fn = fn;
    v->ctx.intr_gate = (uint64_t)(uintptr_t)xbt_jit_intr_pending;
    v->irq_opaque = opaque;
    return XBT_OK;
}

xbt_status xbt_vcpu_get_stats(xbt_vcpu *v, xbt_stats *out)
{
    if (!v || !out || out->size < offsetof(xbt_stats, exits))
        return XBT_E_INVAL;
    /* Gathered whole, then as much of it as the caller's struct holds (xbt.h). */
    xbt_stats all = v->stats, *st = &all;
    if (v->translate_ticks != v->translate_ticks_seen) {
        /* Converted when it changed only: two reads with no translation between them
           agree. */
        uint64_t ns = xbt_now_ns() - v->created_ns;
        uint64_t ticks = __builtin_ia32_rdtsc() - v->created_tsc;
        v->translate_ticks_seen = v->translate_ticks;
        v->translate_ns = ticks ? (uint64_t)((double)v->translate_ticks * (double)ns /
                                             (double)ticks)
                                : 0;
    }
    st->translate_ns = v->translate_ns;
    st->block_execs = v->trace.prof_block_entries;
    st->code_page_invalidations = v->code_page_invals;
    st->wrec_checked = v->mmu->wrec_checked;
    st->wrec_dropped = v->mmu->wrec_dropped;
    st->direct_predicted = v->mmu->d_predicted;
    st->set_keeps = v->mmu->set_keeps;
    st->code_page_protects = v->mmu->code_protects;
    st->code_protect_resets = v->mmu->code_protect_resets;
    for (int k = 0; k < XBT_WSETS; k++) {
        const struct xbt_runner *r = &v->vm->dset[k].runner;
        st->direct_parks += r->parks;
        st->direct_sync_waits += r->waits;
        st->direct_escapes += r->kills;
        st->direct_park_ns += r->park_ns;
        st->direct_wait_ns += r->wait_ns;
        st->direct_map_requests += r->requests;
        st->direct_runner_moves += r->moves;
    }
    st->direct_page_scans = atomic_load(&v->vm->scans);
    st->direct_scan_hits = atomic_load(&v->vm->scan_hits);
    for (uint32_t i = 0; i < v->trace.prof_n; i++) {
        const uint64_t *c = &v->trace.prof_pool[(size_t)i * XBT_PROF_STRIDE];
        st->trace_execs += c[0];
        for (int k = 1; k < XBT_PROF_STRIDE; k++)
            st->trace_side_exits += c[k];
    }
    xbt_tc_stats t;
    xbt_tc_get_stats(v->tc, &t);
    st->blocks = t.blocks;
    st->block_bytes = t.block_bytes;
    st->guest_insns_translated = t.guest_insns;
    st->chains = t.chains;
    st->thunk_chains = t.thunk_chains;
    st->fpu_chains = t.fpu_chains;
    st->jmp_cache_learns = t.icache_learns;
    st->unchains = t.unchains;
    st->lookups = t.lookups;
    st->lookup_hits = t.hits;
    st->flushes = t.flushes;
    st->invalidations = t.invalidations;
    uint32_t n = out->size < sizeof all ? out->size : (uint32_t)sizeof all;
    all.size = n;
    all.reserved = 0;
    memcpy(out, &all, n);
    return XBT_OK;
}

/* ---- debugging -------------------------------------------------------------------- */

/* The translator's stop hook: an instruction at a breakpoint starts a block of its own. */
static bool debug_stop_before(void *vcpu, uint32_t eip)
{
    const struct xbt_vcpu *v = vcpu;
    return xbt_debug_is_bp(v, v->arch.seg[XBT_CS].base + eip);
}

void xbt_debug_bps_changed(struct xbt_vcpu *v)
{
    v->xl.stop_before = xbt_debug_any_bp(v) ? debug_stop_before : NULL;
    v->xl.stop_ctx = v;
    /* Translations made before know nothing of it (a block may run through it, chains
       and lookup tables lead into it). */
    xbt_vcpu_flush_translations(v);
}

xbt_status xbt_vcpu_set_breakpoint(xbt_vcpu *v, uint32_t linear, int on)
{
    if (!v)
        return XBT_E_INVAL;
    uint32_t i = 0;
    while (i < v->dbg.n_bp && v->dbg.bp[i] != linear)
        i++;
    if (on && i == v->dbg.n_bp) {
        if (v->dbg.n_bp == XBT_MAX_BREAKPOINTS)
            return XBT_E_INVAL;
        v->dbg.bp[v->dbg.n_bp++] = linear;
    } else if (!on) {
        if (i == v->dbg.n_bp)
            return XBT_E_INVAL;
        v->dbg.bp[i] = v->dbg.bp[--v->dbg.n_bp];
    } else {
        return XBT_OK; /* set already */
    }
    xbt_debug_bps_changed(v);
    return XBT_OK;
}

xbt_status xbt_vcpu_set_single_step(xbt_vcpu *v, int on)
{
    if (!v)
        return XBT_E_INVAL;
    v->dbg.step = on != 0;
    v->dbg.stepped = false;
    return XBT_OK;
}

/* A debugger's access to [linear, linear + len): every page mapped to RAM (a walk that
   sets no accessed or dirty bit), then, with `go`, copied page by page. */
static xbt_status debug_access(xbt_vcpu *v, uint32_t linear, uint8_t *dst, const uint8_t *src,
                               size_t len, bool go)
{
    while (len) {
        uint32_t n = 4096 - (linear & 0xFFF);
        if (n > len)
            n = (uint32_t)len;
        xbt_walk_result r;
        if (!xbt_walk_quiet(v, linear, false, false, &r) || !xbt_phys_ram(&v->vm->phys, r.gpa, n))
            return XBT_E_INVAL;
        if (go && dst)
            memcpy(dst, v->vm->phys.view + r.gpa, n);
        if (go && src)
            xbt_vm_write_phys(v->vm, r.gpa, src, n); /* drops what it overwrites */
        dst = dst ? dst + n : NULL;
        src = src ? src + n : NULL;
        linear += n;
        len -= n;
    }
    return XBT_OK;
}

xbt_status xbt_vcpu_read_virt(xbt_vcpu *v, uint32_t linear, void *dst, size_t len)
{
    if (!v || (!dst && len) || len > (1ull << 32) - linear)
        return XBT_E_INVAL;
    return debug_access(v, linear, dst, NULL, len, true);
}

xbt_status xbt_vcpu_write_virt(xbt_vcpu *v, uint32_t linear, const void *src, size_t len)
{
    if (!v || (!src && len) || len > (1ull << 32) - linear)
        return XBT_E_INVAL;
    xbt_status s = debug_access(v, linear, NULL, src, len, false); /* all mapped? */
    return s == XBT_OK ? debug_access(v, linear, NULL, src, len, true) : s;
}
