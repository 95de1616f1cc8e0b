/*
 * symbols.c - guest code symbols from an nm listing or an ELF32 symbol table
 * (symbols.h).  All arithmetic on what the file states is 64-bit and checked against
 * the buffer before anything is read.
 */
#include <elf.h>
#include <string.h>

#include "symbols.h"

int syms_is_elf(const struct boot_blob *f)
{
    return f->len >= SELFMAG && !memcmp(f->data, ELFMAG, SELFMAG);
}

/* Copies a name of n bytes into out (cut at SYMS_NAME_MAX); false if it holds a byte
   outside printable ASCII or is empty. */
static int copy_name(const uint8_t *s, size_t n, char out[SYMS_NAME_MAX + 1])
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    if (n > SYMS_NAME_MAX)
        n = SYMS_NAME_MAX;
    memcpy(out, s, n);
    out[n] = 0;
    return 1;
}

/* ---- nm listings --------------------------------------------------------------------- */

#define MAX_FIELDS 5

struct field {
    const uint8_t *s;
    size_t n;
};

/* Splits a line at spaces and tabs; the number of fields, or MAX_FIELDS + 1 for more. */
static int split(const uint8_t *s, size_t n, struct field *fl)
{
    int k = 0;
    size_t i = 0;
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == n)
            return k;
        if (k == MAX_FIELDS)
            return MAX_FIELDS + 1;
        fl[k].s = s + i;
        while (i < n && s[i] != ' ' && s[i] != '\t')
            i++;
        fl[k].n = (size_t)(s + i - fl[k].s);
        k++;
    }
}

/* 1 to 16 hexadecimal digits (no 0x); the value in *v (wider than 32 bits is possible). */
static int parse_hex(const struct field *f, uint64_t *v)
{
    if (f->n == 0 || f->n > 16)
        return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < f->n; i++) {
        uint8_t c = f->s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        x = x << 4 | d;
    }
    *v = x;
    return 1;
}

/* nm's type letters (and '?' and '-'). */
static int is_type(const struct field *f)
{
    if (f->n != 1)
        return 0;
    uint8_t c = f->s[0];
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '?' || c == '-';
}

static int is_code_type(uint8_t c)
{
    return c == 'T' || c == 't' || c == 'W' || c == 'w';
}

/* The fields of one symbol line, sorted out by form. */
struct nm_sym {
    const struct field *addr, *size, *type, *name;
};

/* Which form a line of k fields has; 0 when none fits (err says why). */
static int nm_form(const struct field *fl, int k, struct nm_sym *o, long line, char *err,
                   size_t errlen)
{
    memset(o, 0, sizeof *o);
    if (k == 3 && is_type(&fl[1])) {
        *o = (struct nm_sym){ &fl[0], NULL, &fl[1], &fl[2] };
    } else if (k == 4 && is_type(&fl[2])) {
        *o = (struct nm_sym){ &fl[0], &fl[1], &fl[2], &fl[3] };
    } else if (k == 4 && is_type(&fl[1]) && fl[3].n >= 2 && fl[3].s[0] == '[' &&
               fl[3].s[fl[3].n - 1] == ']') {
        *o = (struct nm_sym){ &fl[0], NULL, &fl[1], &fl[2] }; /* kallsyms' [module] */
    } else {
        boot_fail(err, errlen, "line %ld: not 'ADDRESS TYPE NAME' or 'ADDRESS SIZE TYPE "
                  "NAME' (%s%d fields)", line, k > MAX_FIELDS ? "more than " : "",
                  k > MAX_FIELDS ? MAX_FIELDS : k);
        return 0;
    }
    return 1;
}

/* One line (without its end of line).  1: a code symbol in addr/size/name, 0: nothing
   to pass on, -1: malformed (err set). */
static int nm_line(const uint8_t *s, size_t n, long line, uint32_t *addr, uint32_t *size,
                   char name[SYMS_NAME_MAX + 1], char *err, size_t errlen)
{
    struct field fl[MAX_FIELDS];
    int k = split(s, n, fl);
    if (k == 0)
        return 0;
    /* nm prints undefined symbols with spaces where the address goes. */
    if (k == 2 && (s[0] == ' ' || s[0] == '\t') && is_type(&fl[0]))
        return 0;
    struct nm_sym o;
    if (!nm_form(fl, k, &o, line, err, errlen))
        return -1;
    uint64_t a, z = 0;
    if (!parse_hex(o.addr, &a) || (o.size && !parse_hex(o.size, &z)))
        return boot_fail(err, errlen, "line %ld: the address%s is not hexadecimal", line,
                         o.size ? " or size" : "");
    if (a > UINT32_MAX || z > UINT32_MAX || a + z > (1ull << 32))
        return boot_fail(err, errlen, "line %ld: symbol at %#llx+%#llx is beyond 4 GiB (a "
                         "64-bit symbol list?)", line, (unsigned long long)a,
                         (unsigned long long)z);
    if (!copy_name(o.name->s, o.name->n, name))
        return boot_fail(err, errlen, "line %ld: the name has a byte outside printable "
                         "ASCII", line);
    *addr = (uint32_t)a;
    *size = (uint32_t)z;
    return is_code_type(o.type->s[0]);
}

long syms_parse_nm(const struct boot_blob *f, syms_add_fn add, void *opaque, char *err,
                   size_t errlen)
{
    const uint8_t *p = f->data, *end = f->data + f->len;
    long line = 0, code = 0;
    char name[SYMS_NAME_MAX + 1];
    for (const uint8_t *next; p < end; p = next) {
        line++;
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        next = nl ? nl + 1 : end;
        if (n > SYMS_LINE_MAX)
            return boot_fail(err, errlen, "%s: line %ld is longer than %d bytes (not a "
                             "symbol list?)", f->name, line, SYMS_LINE_MAX);
        if (memchr(p, 0, n))
            return boot_fail(err, errlen, "%s: line %ld holds a NUL byte (not a symbol "
                             "list?)", f->name, line);
        if (n && p[n - 1] == '\r')
            n--;
        uint32_t a = 0, z = 0;
        char why[200];
        int r = nm_line(p, n, line, &a, &z, name, why, sizeof why);
        if (r < 0)
            return boot_fail(err, errlen, "%s: %s", f->name, why);
        if (r == 1) {
            if (add(opaque, a, z, name, err, errlen))
                return -1;
            code++;
        }
    }
    if (!code)
        return boot_fail(err, errlen, "%s: no code symbols (type T, t, W or w) in %ld "
                         "line%s", f->name, line, line == 1 ? "" : "s");
    return code;
}

/* ---- ELF32 symbol tables ------------------------------------------------------------- */

/* [off, off + n) inside the file. */
static int in_file(const struct boot_blob *f, uint64_t off, uint64_t n)
{
    return off <= f->len && n <= f->len - off;
}

/* The section header table and the first SHT_SYMTAB in it; 0 when there is none. */
struct elf_syms {
    const uint8_t *sh;     /* section headers */
    unsigned shnum;
    Elf32_Shdr symtab, strtab;
};

static int elf_header(const struct boot_blob *f, Elf32_Ehdr *eh, char *err, size_t errlen)
{
    if (f->len < sizeof *eh)
        return boot_fail(err, errlen, "%s: too short for an ELF header", f->name);
    memcpy(eh, f->data, sizeof *eh);
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS32 ||
        eh->e_ident[EI_DATA] != ELFDATA2LSB)
        return boot_fail(err, errlen, "%s: not a 32-bit little-endian ELF file", f->name);
    return 0;
}

static void shdr(const struct elf_syms *e, unsigned i, Elf32_Shdr *out)
{
    memcpy(out, e->sh + (size_t)i * sizeof *out, sizeof *out);
}

/* 1: a symbol table found, 0: none, -1: malformed. */
static int find_symtab(const struct boot_blob *f, struct elf_syms *e, char *err, size_t errlen)
{
    Elf32_Ehdr eh;
    if (elf_header(f, &eh, err, errlen))
        return -1;
    if (eh.e_shoff == 0 || eh.e_shnum == 0)
        return 0; /* no section headers (extended numbering is not for kernels) */
    if (eh.e_shentsize != sizeof(Elf32_Shdr) ||
        !in_file(f, eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf32_Shdr)))
        return boot_fail(err, errlen, "%s: bad section header table (%u entries of %u "
                         "bytes at offset %#x)", f->name, eh.e_shnum, eh.e_shentsize,
                         eh.e_shoff);
    e->sh = f->data + eh.e_shoff;
    e->shnum = eh.e_shnum;
    for (unsigned i = 0; i < e->shnum; i++) {
        shdr(e, i, &e->symtab);
        if (e->symtab.sh_type != SHT_SYMTAB)
            continue;
        if (e->symtab.sh_entsize != sizeof(Elf32_Sym) || e->symtab.sh_size % sizeof(Elf32_Sym) ||
            !in_file(f, e->symtab.sh_offset, e->symtab.sh_size))
            return boot_fail(err, errlen, "%s: bad symbol table (section %u: %#x bytes at "
                             "offset %#x, entries of %u bytes)", f->name, i,
                             e->symtab.sh_size, e->symtab.sh_offset, e->symtab.sh_entsize);
        if (e->symtab.sh_link >= e->shnum)
            return boot_fail(err, errlen, "%s: the symbol table's string table is section "
                             "%u of %u", f->name, e->symtab.sh_link, e->shnum);
        shdr(e, e->symtab.sh_link, &e->strtab);
        if (e->strtab.sh_type != SHT_STRTAB || !in_file(f, e->strtab.sh_offset, e->strtab.sh_size))
            return boot_fail(err, errlen, "%s: bad string table (section %u)", f->name,
                             e->symtab.sh_link);
        return 1;
    }
    return 0;
}

/* Whether a symbol is code: a function, or a label without a type in a section of
   instructions (assembly entry points). */
static int elf_code_sym(const struct elf_syms *e, const Elf32_Sym *s)
{
    unsigned type = ELF32_ST_TYPE(s->st_info);
    if (s->st_shndx == SHN_UNDEF || s->st_shndx >= e->shnum)
        return 0; /* undefined, absolute, common or other special indices */
    if (type == STT_FUNC)
        return 1;
    if (type != STT_NOTYPE)
        return 0;
    Elf32_Shdr sec;
    shdr(e, s->st_shndx, &sec);
    return (sec.sh_flags & SHF_EXECINSTR) != 0;
}

/* The name of symbol i at st_name: NUL-terminated inside the string table. */
static int elf_name(const struct boot_blob *f, const struct elf_syms *e, unsigned i,
                    uint32_t st_name, char name[SYMS_NAME_MAX + 1], char *err, size_t errlen)
{
    const uint8_t *tab = f->data + e->strtab.sh_offset;
    if (st_name >= e->strtab.sh_size)
        return boot_fail(err, errlen, "%s: symbol %u's name at %#x is outside its string "
                         "table (%#x bytes)", f->name, i, st_name, e->strtab.sh_size);
    const uint8_t *s = tab + st_name;
    const uint8_t *z = memchr(s, 0, e->strtab.sh_size - st_name);
    if (!z)
        return boot_fail(err, errlen, "%s: symbol %u's name runs past its string table",
                         f->name, i);
    if (z == s)
        return 1; /* no name: nothing to show */
    if (!copy_name(s, (size_t)(z - s), name))
        return boot_fail(err, errlen, "%s: symbol %u's name has a byte outside printable "
                         "ASCII", f->name, i);
    return 0;
}

long syms_parse_elf(const struct boot_blob *f, syms_add_fn add, void *opaque, char *err,
                    size_t errlen)
{
    struct elf_syms e;
    int r = find_symtab(f, &e, err, errlen);
    if (r <= 0)
        return r;
    long code = 0;
    char name[SYMS_NAME_MAX + 1];
    unsigned n = e.symtab.sh_size / sizeof(Elf32_Sym);
    for (unsigned i = 1; i < n; i++) {
        Elf32_Sym s;
        memcpy(&s, f->data + e.symtab.sh_offset + (size_t)i * sizeof s, sizeof s);
        if (!elf_code_sym(&e, &s))
            continue;
        r = elf_name(f, &e, i, s.st_name, name, err, errlen);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        if ((uint64_t)s.st_value + s.st_size > (1ull << 32))
            return boot_fail(err, errlen, "%s: symbol %s at %#x+%#x goes beyond 4 GiB",
                             f->name, name, s.st_value, s.st_size);
        if (add(opaque, s.st_value, s.st_size, name, err, errlen))
            return -1;
        code++;
    }
    return code;
}
