/*
 * symbols.h - guest code symbols for the perf map, read from a file in memory: an nm
 * listing (System.map, `nm`, `nm -S`, /proc/kallsyms) or the symbol table of an ELF32
 * file (a multiboot kernel, a vmlinux).  Apart from any VM: each symbol goes to a
 * callback (xbt-run's calls xbt_vm_add_symbol; the tests collect them).
 *
 * As the loaders (boot.h): every offset and size a file states is checked before it is
 * used, nothing is read outside the buffer, and a malformed file ends in -1 with one
 * line of text in err.
 */
#ifndef XBT_TOOLS_SYMBOLS_H
#define XBT_TOOLS_SYMBOLS_H

#include <stdint.h>

#include "boot.h"

/* Longest name passed on (longer ones are cut: the perf map's limit). */
#define SYMS_NAME_MAX 255
/* Longest line of an nm listing. */
#define SYMS_LINE_MAX 4096

/* One code symbol: guest addresses [addr, addr + size) (size 0: unknown), name NUL-
   terminated, at most SYMS_NAME_MAX characters, printable ASCII.  Nonzero stops the
   parse, which then fails with the message the callback put in err. */
typedef int (*syms_add_fn)(void *opaque, uint32_t addr, uint32_t size, const char *name,
                           char *err, size_t errlen);

/* An nm listing, one symbol a line: "ADDR TYPE NAME", "ADDR SIZE TYPE NAME" (nm -S) or
   "ADDR TYPE NAME [MODULE]" (kallsyms), addresses and sizes in hexadecimal within 32
   bits.  Code symbols (types T, t, W, w) are passed on, others skipped, and so are blank
   lines and undefined symbols (no address).  Returns the number passed on; a listing
   without any code symbol is an error. */
long syms_parse_nm(const struct boot_blob *f, syms_add_fn add, void *opaque, char *err,
                   size_t errlen);

/* The .symtab of a little-endian ELF32 file: functions, and symbols without a type in
   executable sections.  Returns the number passed on, 0 when the file has no symbol
   table (stripped). */
long syms_parse_elf(const struct boot_blob *f, syms_add_fn add, void *opaque, char *err,
                    size_t errlen);

/* Whether the data starts with the ELF magic. */
int syms_is_elf(const struct boot_blob *f);

#endif
