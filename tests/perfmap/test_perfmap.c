/*
 * test_perfmap.c - the perf map of translated code (XBT_VM_PERF_MAP) through the public
 * API: a guest of 400 blocks in a 4 KiB cache (so it flushes) with guest symbols of
 * every kind; every line must parse, lie in the executable view (which must be a
 * mapping perf resolves through the map: anonymous, read+execute), follow the one
 * before within a generation, and the generations must be the flushes plus one; names
 * as documented in xbt.h.  Also: traces are named, nothing is written without the
 * flag, perf's default path, misuse of the API, and the symbol table's lookup rules.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mapcheck.h"
#include "runtime/perfmap.h"
#include "xbt/xbt.h"

#define BASE 0x100000u
#define NFUNC 200u
#define FSTRIDE 64u
#define ROUNDS 4u
#define TAIL (BASE + NFUNC * FSTRIDE)

static char map_path[128];

/* Function i at BASE + 64 i: add eax, i + 1; jmp short +0 (a second block at +7);
   jmp to function i + 1.  After the last: dec ecx; jnz function 0; out 0xf1, eax; hlt. */
static void write_guest(uint8_t *ram)
{
    for (uint32_t i = 0; i < NFUNC; i++) {
        uint8_t *f = ram + BASE + i * FSTRIDE;
        uint32_t imm = i + 1;
        int32_t rel = (int32_t)FSTRIDE - 12; /* from +12 to the next function */
        f[0] = 0x05;
        memcpy(f + 1, &imm, 4);
        f[5] = 0xeb;
        f[6] = 0x00;
        f[7] = 0xe9;
        memcpy(f + 8, &rel, 4);
    }
    uint8_t *t = ram + TAIL;
    int32_t back = -(int32_t)(NFUNC * FSTRIDE) - 7;
    t[0] = 0x49;
    t[1] = 0x0f;
    t[2] = 0x85;
    memcpy(t + 3, &back, 4);
    t[7] = 0xe7;
    t[8] = 0xf1;
    t[9] = 0xf4;
}

/* Symbols by i mod 4: sized over the function; unsized (reaching over the next one,
   which has none); none; sized over the first block only. */
static void add_symbols(xbt_vm *vm)
{
    for (uint32_t i = 0; i < NFUNC; i++) {
        char name[32];
        snprintf(name, sizeof name, "fn_%u", i);
        uint32_t a = BASE + i * FSTRIDE;
        switch (i % 4) {
        case 0: ck_assert_int_eq(xbt_vm_add_symbol(vm, a, FSTRIDE, name), XBT_OK); break;
        case 1: ck_assert_int_eq(xbt_vm_add_symbol(vm, a, 0, name), XBT_OK); break;
        case 3: ck_assert_int_eq(xbt_vm_add_symbol(vm, a, 7, name), XBT_OK); break;
        }
    }
}

static xbt_vm *make_vm(uint32_t flags, const char *path, uint64_t tcache)
{
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.ram_size = 16u << 20;
    c.tcache_size = tcache;
    c.flags = flags;
    c.trace_threshold = 1; /* the head block is flushed between rounds: hot at once */
    c.perf_map_path = path;
    xbt_vm *vm;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_OK);
    return vm;
}

/* Runs the guest to its OUT and checks the sum; the vCPU's statistics in *st. */
static void run_guest(xbt_vm *vm, xbt_stats *st)
{
    uint8_t *ram = xbt_vm_ram(vm);
    write_guest(ram);
    uint64_t gdt[3] = { 0, 0x00cf9a000000ffffull, 0x00cf92000000ffffull };
    memcpy(ram + 0x1000, gdt, sizeof gdt);
    xbt_vcpu *cpu;
    ck_assert_int_eq(xbt_vcpu_create(vm, &cpu), XBT_OK);
    xbt_sregs s;
    xbt_vcpu_get_sregs(cpu, &s);
    s.gdt.base = 0x1000;
    s.gdt.limit = 23;
    ck_assert_int_eq(xbt_vcpu_set_sregs(cpu, &s), XBT_OK);
    xbt_regs r;
    xbt_vcpu_get_regs(cpu, &r);
    r.eip = BASE;
    r.esp = 0x90000;
    r.ecx = ROUNDS;
    r.eax = 0;
    ck_assert_int_eq(xbt_vcpu_set_regs(cpu, &r), XBT_OK);
    xbt_exit *ex;
    ck_assert_int_eq(xbt_vcpu_run(cpu, &ex), XBT_OK);
    ck_assert_uint_eq(ex->reason, XBT_EXIT_IO);
    ck_assert_uint_eq(ex->io.port, 0xf1);
    ck_assert_uint_eq(ex->io.data, ROUNDS * NFUNC * (NFUNC + 1) / 2);
    ck_assert_int_eq(xbt_vcpu_get_stats(cpu, st), XBT_OK);
}

static int has_name(const struct map *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->e[i].name, name))
            return 1;
    return 0;
}

/* The mapping of this process that holds addr: read+execute, not writable, and
   anonymous (perf reads the map only for those). */
static void check_mapping(uint64_t addr)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perm[8] = "", path[256] = "";
        int n = sscanf(line, "%lx-%lx %7s %*s %*s %*s %255[^\n]", &lo, &hi, perm, path);
        if (n < 3 || addr < lo || addr >= hi)
            continue;
        found = 1;
        ck_assert_msg(!strncmp(perm, "r-x", 3), "code at %#llx is mapped %s",
                      (unsigned long long)addr, perm);
        ck_assert_msg(!path[0] || !strncmp(path, "/dev/zero", 9) || !strcmp(path, "//anon"),
                      "code at %#llx is mapped from '%s': perf will not use the map",
                      (unsigned long long)addr, path);
    }
    fclose(f);
    ck_assert_msg(found, "no mapping holds %#llx", (unsigned long long)addr);
}

/* Reads and checks the map of vm's run; the caller frees it. */
static void read_checked(xbt_vm *vm, const xbt_stats *st, struct map *m)
{
    ck_assert_int_eq(xbt_vm_perf_map_flush(vm), XBT_OK);
    uint64_t lo, size;
    ck_assert_int_eq(xbt_vm_code_range(vm, &lo, &size), XBT_OK);
    check_mapping(lo);
    ck_assert_msg(map_read(map_path, m) == 0, "%s", m->why);
    ck_assert_msg(map_check(m, lo, lo + size) == 0, "%s", m->why);
    ck_assert_msg(st->flushes > 0, "the 4 KiB cache did not flush");
    ck_assert_int_eq(m->generations, (long)st->flushes + 1);
    ck_assert_int_ge(m->in_cache, (long)st->blocks);
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->e[i].name, "xbt:single-step"))
            check_mapping(m->e[i].start);
}

static void fresh_map_path(void)
{
    snprintf(map_path, sizeof map_path, "/tmp/xbt-test-perfmap.%d.map", (int)getpid());
    unlink(map_path);
}

START_TEST(map_names_blocks_in_the_executable_view)
{
    fresh_map_path();
    xbt_vm *vm = make_vm(XBT_VM_PERF_MAP, map_path, 4096);
    add_symbols(vm);
    xbt_stats st = XBT_STATS_INIT;
    run_guest(vm, &st);
    struct map m;
    read_checked(vm, &st, &m);
    ck_assert(has_name(&m, "xbt:fn_0"));
    ck_assert(has_name(&m, "xbt:fn_0+0x7"));        /* sized: its second block */
    ck_assert(has_name(&m, "xbt:fn_1+0x7"));        /* unsized */
    ck_assert(has_name(&m, "xbt:fn_1+0x40"));       /* unsized, over the next function */
    ck_assert(has_name(&m, "xbt:fn_1+0x47"));
    ck_assert(has_name(&m, "xbt:fn_3"));
    ck_assert(has_name(&m, "xbt:cpl0:001000c7"));   /* past fn_3's 7 bytes: no symbol */
    char tail[32];
    snprintf(tail, sizeof tail, "xbt:cpl0:%08x", TAIL);
    ck_assert(has_name(&m, tail));
    ck_assert_int_eq(map_count_prefix(&m, "xbt:trace:"), 0);
    /* The single-step page is named once, when the vCPU first runs. */
    ck_assert_int_eq(map_count_prefix(&m, "xbt:single-step"), 1);
    map_free(&m);
    xbt_vm_destroy(vm);
    unlink(map_path);
}
END_TEST

START_TEST(traces_are_named)
{
    fresh_map_path();
    xbt_vm *vm = make_vm(XBT_VM_PERF_MAP | XBT_VM_TRACES, map_path, 4096);
    add_symbols(vm);
    xbt_stats st = XBT_STATS_INIT;
    run_guest(vm, &st);
    ck_assert_uint_gt(st.traces, 0);
    struct map m;
    read_checked(vm, &st, &m);
    ck_assert_int_ge(map_count_prefix(&m, "xbt:trace:"), (long)st.traces);
    ck_assert(has_name(&m, "xbt:trace:fn_0"));
    map_free(&m);
    xbt_vm_destroy(vm);
    unlink(map_path);
}
END_TEST

/* The default cache holds the whole guest: one generation. */
START_TEST(one_generation_without_flushes)
{
    fresh_map_path();
    xbt_vm *vm = make_vm(XBT_VM_PERF_MAP, map_path, 0);
    xbt_stats st = XBT_STATS_INIT;
    run_guest(vm, &st);
    ck_assert_uint_eq(st.flushes, 0);
    uint64_t lo, size;
    ck_assert_int_eq(xbt_vm_code_range(vm, &lo, &size), XBT_OK);
    xbt_vm_destroy(vm); /* flushes the map */
    struct map m;
    ck_assert_msg(map_read(map_path, &m) == 0, "%s", m.why);
    ck_assert_msg(map_check(&m, lo, lo + size) == 0, "%s", m.why);
    ck_assert_int_eq(m.generations, 1);
    ck_assert_int_eq(m.in_cache, (long)st.blocks);
    ck_assert_int_eq(map_count_symbol(&m, "fn_0"), 0); /* no symbols: addresses */
    ck_assert(has_name(&m, "xbt:cpl0:00100000"));
    map_free(&m);
    unlink(map_path);
}
END_TEST

static int exists(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0;
}

START_TEST(nothing_without_the_flag)
{
    fresh_map_path();
    char def[64];
    snprintf(def, sizeof def, "/tmp/perf-%d.map", (int)getpid());
    unlink(def);
    xbt_vm *vm = make_vm(0, map_path, 4096);
    add_symbols(vm);
    xbt_stats st = XBT_STATS_INIT;
    run_guest(vm, &st);
    ck_assert_int_eq(xbt_vm_perf_map_flush(vm), XBT_OK);
    xbt_vm_destroy(vm);
    ck_assert(!exists(map_path));
    ck_assert(!exists(def));
}
END_TEST

START_TEST(default_path_is_perfs)
{
    char def[64];
    snprintf(def, sizeof def, "/tmp/perf-%d.map", (int)getpid());
    unlink(def);
    xbt_vm *vm = make_vm(XBT_VM_PERF_MAP, NULL, 0);
    xbt_stats st = XBT_STATS_INIT;
    run_guest(vm, &st);
    xbt_vm_destroy(vm);
    struct map m;
    ck_assert_msg(map_read(def, &m) == 0, "%s", m.why);
    ck_assert_int_eq((long)m.n, (long)st.blocks + 1); /* and the single-step page */
    map_free(&m);
    unlink(def);
}
END_TEST

START_TEST(api_misuse)
{
    xbt_vm *vm = make_vm(0, NULL, 0);
    char longest[256], too_long[257];
    memset(longest, 'a', 255);
    longest[255] = 0;
    memset(too_long, 'a', 256);
    too_long[256] = 0;
    ck_assert_int_eq(xbt_vm_add_symbol(NULL, 0, 0, "x"), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_add_symbol(vm, 0, 0, NULL), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_add_symbol(vm, 0, 0, ""), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_add_symbol(vm, 0, 0, "a\nb"), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_add_symbol(vm, 0, 0, "caf\xc3\xa9"), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_add_symbol(vm, 0, 0, too_long), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_add_symbol(vm, 0xfffffff0u, 0x11, "x"), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_add_symbol(vm, 0xfffffff0u, 0x10, "x"), XBT_OK);
    ck_assert_int_eq(xbt_vm_add_symbol(vm, 0, 0, longest), XBT_OK);
    ck_assert_int_eq(xbt_vm_add_symbol(vm, 0, 0, "operator new(unsigned)"), XBT_OK);
    uint64_t a, b;
    ck_assert_int_eq(xbt_vm_code_range(NULL, &a, &b), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_code_range(vm, NULL, &b), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_perf_map_flush(NULL), XBT_E_INVAL);
    xbt_vm_destroy(vm);
    /* A map that cannot be opened is the host's refusal, said with the path. */
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.flags = XBT_VM_PERF_MAP;
    c.perf_map_path = "/nonexistent-dir/x.map";
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_E_HOST);
    ck_assert_ptr_nonnull(strstr(xbt_last_host_error(), "/nonexistent-dir/x.map"));
    /* Not a regular file (a FIFO planted where the map goes): refused, not blocked on. */
    fresh_map_path();
    ck_assert_int_eq(mkfifo(map_path, 0600), 0);
    c.perf_map_path = map_path;
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_E_HOST);
    unlink(map_path);
}
END_TEST

/* XBT_VM_PERF_JITDUMP: jit-PID.dump beside the map, a header, one code load per line of
   the map (the single-step page aside) with the same address, size and name and the
   code's bytes as they were, then the close record; without the flag no dump. */
START_TEST(jitdump_beside_the_map)
{
    char dir[] = "/tmp/xbt-test-jitdump.XXXXXX", dump[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(map_path, sizeof map_path, "%s/map", dir);
    snprintf(dump, sizeof dump, "%s/jit-%d.dump", dir, (int)getpid());
    xbt_vm *vm = make_vm(XBT_VM_PERF_MAP | XBT_VM_PERF_JITDUMP, map_path, 4096);
    add_symbols(vm);
    xbt_stats st = XBT_STATS_INIT;
    run_guest(vm, &st);
    struct map m;
    read_checked(vm, &st, &m);
    xbt_vm_destroy(vm);
    FILE *f = fopen(dump, "rb");
    ck_assert_ptr_nonnull(f);
    static uint8_t b[4u << 20];
    size_t len = fread(b, 1, sizeof b, f);
    fclose(f);
    uint32_t h[6];
    ck_assert_uint_ge(len, 40);
    memcpy(h, b, sizeof h);
    ck_assert_uint_eq(h[0], 0x4A695444u);
    ck_assert_uint_eq(h[1], 1);
    ck_assert_uint_eq(h[2], 40);
    ck_assert_uint_eq(h[3], 62);
    ck_assert_uint_eq(h[5], (uint32_t)getpid());
    size_t off = 40, mi = 0, loads = 0;
    int closed = 0;
    while (off + 16 <= len) {
        ck_assert_msg(!closed, "a record after the close record");
        uint32_t id, size;
        memcpy(&id, b + off, 4);
        memcpy(&size, b + off + 4, 4);
        ck_assert_uint_ge(size, 16);
        ck_assert_uint_le(off + size, len);
        if (id == 3) {
            closed = 1;
        } else {
            ck_assert_uint_eq(id, 0);
            uint64_t addr, n;
            memcpy(&addr, b + off + 32, 8);
            memcpy(&n, b + off + 40, 8);
            const char *name = (const char *)b + off + 56;
            while (mi < m.n && !strcmp(m.e[mi].name, "xbt:single-step"))
                mi++;
            ck_assert_uint_lt(mi, m.n);
            ck_assert_uint_eq(addr, m.e[mi].start);
            ck_assert_uint_eq(n, m.e[mi].size);
            ck_assert_str_eq(name, m.e[mi].name);
            ck_assert_uint_eq(56 + strlen(name) + 1 + n, size);
            mi++, loads++;
        }
        off += size;
    }
    ck_assert_uint_eq(off, len);
    ck_assert(closed);
    ck_assert_uint_ge(loads, st.blocks);
    map_free(&m);
    unlink(dump);
    unlink(map_path);
    /* Without the flag, nothing. */
    vm = make_vm(XBT_VM_PERF_MAP, map_path, 4096);
    run_guest(vm, &st);
    xbt_vm_destroy(vm);
    ck_assert(!exists(dump));
    unlink(map_path);
    rmdir(dir);
    /* A directory that cannot hold it: the host's refusal, said with the path. */
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.flags = XBT_VM_PERF_JITDUMP;
    c.perf_map_path = "/nonexistent-dir/x.map";
    ck_assert_int_eq(xbt_vm_create(&c, &vm), XBT_E_HOST);
    ck_assert_ptr_nonnull(strstr(xbt_last_host_error(), "/nonexistent-dir/jit-"));
}
END_TEST

/* Two VMs of one process share its dump (perf inject knows it by jit-PID.dump): both
   add records, the first one's destroy leaves it open, the second's closes it (one close
   record, the last); a VM asking for another directory meanwhile is refused. */
START_TEST(jitdump_shared_by_vms)
{
    char dir[] = "/tmp/xbt-test-jitdump.XXXXXX", dump[128], other[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(map_path, sizeof map_path, "%s/map", dir);
    snprintf(dump, sizeof dump, "%s/jit-%d.dump", dir, (int)getpid());
    xbt_vm *a = make_vm(XBT_VM_PERF_JITDUMP, map_path, 4096);
    xbt_vm *b = make_vm(XBT_VM_PERF_JITDUMP, map_path, 4096);
    xbt_vm_config c = XBT_VM_CONFIG_INIT;
    c.flags = XBT_VM_PERF_JITDUMP;
    snprintf(other, sizeof other, "/tmp/x.map"); /* /tmp, not dir */
    c.perf_map_path = other;
    xbt_vm *refused;
    ck_assert_int_eq(xbt_vm_create(&c, &refused), XBT_E_HOST);
    ck_assert_ptr_nonnull(strstr(xbt_last_host_error(), "already"));
    xbt_stats st = XBT_STATS_INIT;
    run_guest(a, &st);
    uint64_t blocks = st.blocks;
    xbt_vm_destroy(a);
    run_guest(b, &st);
    blocks += st.blocks;
    xbt_vm_destroy(b);
    FILE *f = fopen(dump, "rb");
    ck_assert_ptr_nonnull(f);
    static uint8_t buf[8u << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t off = 40, loads = 0, closes = 0;
    uint32_t last = ~0u;
    while (off + 16 <= len) {
        uint32_t id, size;
        memcpy(&id, buf + off, 4);
        memcpy(&size, buf + off + 4, 4);
        ck_assert_uint_ge(size, 16);
        loads += id == 0, closes += id == 3, last = id;
        off += size;
    }
    ck_assert_uint_eq(off, len);
    ck_assert_uint_eq(closes, 1);
    ck_assert_uint_eq(last, 3);
    ck_assert_uint_ge(loads, blocks);
    unlink(dump);
    rmdir(dir);
}
END_TEST

/* The lookup rules of src/runtime/symtab.c, on the table itself. */
START_TEST(symbol_lookup_rules)
{
    struct xbt_symtab t = { 0 };
    uint32_t off = 99;
    ck_assert_ptr_null(xbt_symtab_find(&t, 0x1000, &off));
    ck_assert(xbt_symtab_add(&t, 0x1000, 0x1000, "outer"));
    ck_assert(xbt_symtab_add(&t, 0x1100, 0x10, "inner"));
    ck_assert(xbt_symtab_add(&t, 0x3000, 0, "unsized_alias"));
    ck_assert(xbt_symtab_add(&t, 0x3000, 0x20, "sized"));
    ck_assert(xbt_symtab_add(&t, 0x3000, 0x20, "sized_later"));
    ck_assert(xbt_symtab_add(&t, 0x8000, 0, "last"));
    ck_assert_ptr_null(xbt_symtab_find(&t, 0xfff, &off));
    ck_assert_str_eq(xbt_symtab_find(&t, 0x1105, &off), "inner");
    ck_assert_uint_eq(off, 5);
    ck_assert_str_eq(xbt_symtab_find(&t, 0x1200, &off), "outer"); /* encloses inner */
    ck_assert_uint_eq(off, 0x200);
    ck_assert_ptr_null(xbt_symtab_find(&t, 0x2000, &off));
    ck_assert_str_eq(xbt_symtab_find(&t, 0x3004, &off), "sized"); /* sized, first added */
    ck_assert_str_eq(xbt_symtab_find(&t, 0x3040, &off), "unsized_alias"); /* past its size */
    ck_assert_uint_eq(off, 0x40);
    ck_assert_str_eq(xbt_symtab_find(&t, 0x8000 + XBT_SYM_UNSIZED_MAX - 1, &off), "last");
    ck_assert_ptr_null(xbt_symtab_find(&t, 0x8000 + XBT_SYM_UNSIZED_MAX, &off));
    ck_assert(xbt_symtab_add(&t, 0x7000, 0, "added_late")); /* resorts */
    ck_assert_str_eq(xbt_symtab_find(&t, 0x7ff0, &off), "added_late");
    xbt_symtab_free(&t);
}
END_TEST

/* A relocated table (xbt_vm_relocated_symbols, KASLR): no names until the first CPL 0
   paged code at or above _text settles the move; code below _text (Linux's identity-
   mapped instructions after paging goes on) settles nothing; the first settle stays. */
START_TEST(relocated_symbols_settle_once)
{
    struct xbt_symtab t = { 0 };
    uint32_t off = 0;
    ck_assert(xbt_symtab_add(&t, 0xc1000000u, 0x100, "startup_32"));
    ck_assert(xbt_symtab_add(&t, 0xc1800000u, 0x40, "schedule"));
    t.relocated = true, t.reloc_text = 0xc1000000u, t.reloc_align = 0x1000000u;
    ck_assert_ptr_null(xbt_symtab_find(&t, 0xc1800004u, &off)); /* not settled: no name */
    xbt_symtab_settle(&t, 0x090000c0u); /* identity-mapped, below _text */
    ck_assert_ptr_null(xbt_symtab_find(&t, 0xc1800004u, &off));
    xbt_symtab_settle(&t, 0xc90000c0u); /* startup_32 + 0xc0, moved by 0x8000000 */
    uint32_t mv = 0;
    ck_assert(xbt_symtab_moved(&t, &mv));
    ck_assert_uint_eq(mv, 0x8000000u);
    ck_assert_str_eq(xbt_symtab_find(&t, 0xc9800004u, &off), "schedule");
    ck_assert_uint_eq(off, 4);
    ck_assert_ptr_null(xbt_symtab_find(&t, 0xc1800004u, &off)); /* the linked address */
    xbt_symtab_settle(&t, 0xd10000c0u); /* later code decides nothing */
    ck_assert_str_eq(xbt_symtab_find(&t, 0xc9000010u, &off), "startup_32");
    /* Below text, as it is (a user program's symbols beside the kernel's). */
    ck_assert(xbt_symtab_add(&t, 0x08048000u, 0x100, "main"));
    ck_assert_str_eq(xbt_symtab_find(&t, 0x08048010u, &off), "main");
    ck_assert_uint_eq(off, 0x10);
    xbt_symtab_free(&t);
    /* Before the move is known a user symbol is named already. */
    ck_assert(xbt_symtab_add(&t, 0x08048000u, 0x100, "main"));
    ck_assert(xbt_symtab_add(&t, 0xc1000000u, 0x100, "startup_32"));
    t.relocated = true, t.reloc_text = 0xc1000000u, t.reloc_align = 0x1000000u;
    ck_assert_str_eq(xbt_symtab_find(&t, 0x08048004u, &off), "main");
    ck_assert_ptr_null(xbt_symtab_find(&t, 0xc1000004u, &off));
    xbt_symtab_free(&t);
    /* The API: an alignment that is a power of two of at least 4 KiB, before the run. */
    xbt_vm *vm = make_vm(0, NULL, 0);
    uint32_t moved = 1;
    ck_assert_int_eq(xbt_vm_relocated_symbols(NULL, 0xc1000000u, 4096), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_relocated_symbols(vm, 0xc1000000u, 2048), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_relocated_symbols(vm, 0xc1000000u, 0x3000), XBT_E_INVAL);
    ck_assert_int_eq(xbt_vm_symbols_moved(vm, &moved), XBT_E_INVAL); /* not relocated */
    ck_assert_int_eq(xbt_vm_relocated_symbols(vm, 0xc1000000u, 0x1000000u), XBT_OK);
    ck_assert_int_eq(xbt_vm_symbols_moved(vm, &moved), XBT_E_INVAL); /* not settled */
    ck_assert_int_eq(xbt_vm_symbols_moved(vm, NULL), XBT_E_INVAL);
    ck_assert_uint_eq(moved, 1);
    xbt_vm_destroy(vm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("perfmap");
    TCase *tc = tcase_create("perfmap");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, map_names_blocks_in_the_executable_view);
    tcase_add_test(tc, traces_are_named);
    tcase_add_test(tc, one_generation_without_flushes);
    tcase_add_test(tc, nothing_without_the_flag);
    tcase_add_test(tc, default_path_is_perfs);
    tcase_add_test(tc, api_misuse);
    tcase_add_test(tc, jitdump_beside_the_map);
    tcase_add_test(tc, jitdump_shared_by_vms);
    tcase_add_test(tc, symbol_lookup_rules);
    tcase_add_test(tc, relocated_symbols_settle_once);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
