/*
 * perfmap.h - a perf map of translated code (perf's JIT convention, /tmp/perf-PID.map:
 * one line "START SIZE name" per code region, hexadecimal without 0x) and the guest
 * symbol table that names the regions.
 *
 * Only a VM created with XBT_VM_PERF_MAP has a writer (vm->perfmap); without it nothing
 * here runs.  Lines are collected in a buffer that holds whole lines only and is written
 * with one write() to a file opened with O_APPEND, so that several VMs of one process
 * can share the file without tearing each other's lines.
 */
#ifndef XBT_RUNTIME_PERFMAP_H
#define XBT_RUNTIME_PERFMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- guest symbols (symtab.c) -------------------------------------------------------- */

/* A symbol without a size covers guest addresses up to the next symbol, at most this
   many bytes (an nm listing has no sizes; the last code symbol must not claim every
   address above it, e.g. a module loaded far above the kernel). */
#define XBT_SYM_UNSIZED_MAX 0x10000u
#define XBT_SYM_NAME_MAX 255u

struct xbt_gsym {
    uint32_t addr, size;  /* size 0: unknown */
    uint32_t name;        /* offset into the name pool */
    uint32_t seq;         /* order of registration (ties keep the first) */
};

struct xbt_symtab {
    struct xbt_gsym *v;
    uint32_t n, cap;
    char *pool;
    size_t pool_len, pool_cap;
    bool sorted;
    /* A kernel that runs its symbols moved (xbt_vm_relocated_symbols): the move is
       found at the first block translated at CPL 0 with paging on at or above text
       (xbt_symtab_settle); until then addresses at or above text get no name. */
    bool relocated;            /* the embedder said so */
    uint32_t reloc_text, reloc_align;
    uint64_t moved;            /* 0 until settled, then 1 << 32 | the move: set once, by
                                  a compare-and-swap (xbt_symtab_settle) */
};

/* Copies name; false when out of memory.  The caller has validated the arguments. */
bool xbt_symtab_add(struct xbt_symtab *t, uint32_t addr, uint32_t size, const char *name);
/* The symbol covering guest address a and the offset into it, or NULL.  A relocated
   table: an address below text as it is (user code's symbols, from other files), one at
   or above text + the move at its address minus the move, once settled; none in
   between or before. */
const char *xbt_symtab_find(struct xbt_symtab *t, uint32_t a, uint32_t *off);
/* A relocated table not settled yet: code at linear lin runs at CPL 0 with paging on;
   at or above text it decides the move, (lin - text) rounded down to the alignment
   (code below text, as Linux's identity-mapped instructions right after it turns
   paging on, decides nothing). */
void xbt_symtab_settle(struct xbt_symtab *t, uint32_t lin);
/* A relocated table's move, once settled (true). */
bool xbt_symtab_moved(const struct xbt_symtab *t, uint32_t *moved);
void xbt_symtab_free(struct xbt_symtab *t);
/* Whether name may be a symbol: 1..XBT_SYM_NAME_MAX printable ASCII characters (a
   line of the map ends at the first control character). */
bool xbt_symtab_name_ok(const char *name);

/* ---- the map file (perfmap.c) -------------------------------------------------------- */

struct xbt_perfmap;

/* Opens (creates, appends to) path, or /tmp/perf-PID.map when path is NULL.  NULL with
   a reason in why when it cannot. */
struct xbt_perfmap *xbt_perfmap_open(const char *path, char *why, size_t why_len);
/* One region [start, start + size) of executable memory and its name. */
void xbt_perfmap_add(struct xbt_perfmap *pm, const void *start, size_t size, const char *name);
/* Writes what is buffered; false if a write has failed (now or before). */
bool xbt_perfmap_flush(struct xbt_perfmap *pm);
/* Flushes, closes and frees (NULL is fine). */
void xbt_perfmap_close(struct xbt_perfmap *pm);
/* The name of a translated block or trace, for the map's line and the jitdump's record
   alike: its guest EIP and CPL, through the symbol table when a symbol covers the EIP;
   NUL-terminated; its length. */
#define XBT_PERF_NAME_MAX (XBT_SYM_NAME_MAX + 40)
size_t xbt_perf_block_name(char out[XBT_PERF_NAME_MAX], struct xbt_symtab *syms, uint32_t eip,
                           unsigned cpl, bool trace);
/* Writes all n bytes to fd (again after EINTR); false if a write fails. */
bool xbt_perf_write_all(int fd, const void *p, size_t n);

/* ---- perf's jitdump (jitdump.c) ------------------------------------------------------ */

/* The code of each block as well as its address and name, for `perf inject --jit`
   (perf's jitdump format, tools/perf/Documentation/jitdump-specification.txt): a file
   jit-PID.dump that the process maps executable once, so that perf's record of that
   mapping leads perf inject to it.  Records carry CLOCK_MONOTONIC time stamps (record
   with `perf record -k mono`), so samples are matched to the code that ran at their
   time, across cache flushes. */
struct xbt_jitdump;

/* Creates dir/jit-PID.dump (dir NULL: /tmp), writes the header, maps its first page;
   or, when the process has its dump open already (another VM), shares it (the same dir
   only).  NULL with a reason in why when it cannot. */
struct xbt_jitdump *xbt_jitdump_open(const char *dir, char *why, size_t why_len);
/* A code load record: [start, start + size) holds code named name, copied now. */
void xbt_jitdump_add(struct xbt_jitdump *jd, const void *start, size_t size, const char *name);
/* Writes what is buffered; false if a write has failed (now or before). */
bool xbt_jitdump_flush(struct xbt_jitdump *jd);
/* One VM done with it; the last one flushes, ends the dump (a close record), unmaps,
   closes and frees (NULL is fine). */
void xbt_jitdump_close(struct xbt_jitdump *jd);

#endif
