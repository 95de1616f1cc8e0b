/*
 * boot_xbt.c - xbt-run's side of the loaders (boot.h): reads the kernel, initrd and
 * modules (regular files only, none larger than guest RAM), picks the loader by the
 * image, lets it write into the VM's RAM and sets the vCPU to the entry state it gives.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot.h"
#include "symbols.h"
#include "vmm.h"

/* A symbol file may be a vmlinux with debug information (Debian's is 300 MiB). */
#define SYMBOL_FILE_MAX (1ull << 30)

/* The whole of a regular file of at most max bytes (read to its end, not by its size:
   files in /proc say 0); max is guest RAM when ram_bound.  NULL with one line in err
   otherwise. */
static uint8_t *read_file(const char *path, uint64_t max, bool ram_bound, size_t *len,
                          char *err, size_t errlen)
{
    if (!path || !*path) {
        boot_fail(err, errlen, "an empty file name");
        return NULL;
    }
    /* O_NONBLOCK: a FIFO must not block the open; it is refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        boot_fail(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        boot_fail(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        boot_fail(err, errlen, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory"
                                                                   : "not a regular file");
        close(fd);
        return NULL;
    }
    size_t cap = st.st_size > 0 && (uint64_t)st.st_size <= max ? (size_t)st.st_size + 1 : 65536;
    size_t n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            size_t ncap = cap * 2;
            uint8_t *nb = n <= max ? realloc(buf, ncap) : NULL;
            if (!nb)
                break;
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            boot_fail(err, errlen, "%s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0) {
            close(fd);
            *len = n;
            return buf;
        }
        n += (size_t)r;
        if (n > max)
            break;
    }
    close(fd);
    free(buf);
    if (n > max && ram_bound)
        boot_fail(err, errlen, "%s: larger than guest RAM (%llu MiB): give more --mem", path,
                  (unsigned long long)(max >> 20));
    else if (n > max)
        boot_fail(err, errlen, "%s: larger than %llu MiB", path, (unsigned long long)(max >> 20));
    else
        boot_fail(err, errlen, "%s: out of memory", path);
    return NULL;
}

static int apply_entry(xbt_vm *vm, xbt_vcpu *cpu, const struct boot_entry *e, char *err,
                       size_t errlen)
{
    if (xbt_vm_invalidate(vm, 0, xbt_vm_ram_size(vm)) != XBT_OK)
        return boot_fail(err, errlen, "cannot invalidate guest RAM");
    xbt_sregs s;
    if (xbt_vcpu_get_sregs(cpu, &s) != XBT_OK)
        return boot_fail(err, errlen, "cannot read the segment state");
    s.gdt.base = e->gdt_base;
    s.gdt.limit = e->gdt_limit;
    s.idt.base = e->idt_base;
    s.idt.limit = e->idt_limit;
    if (e->load_selectors) {
        xbt_segment *segs[] = { &s.ds, &s.es, &s.ss, &s.fs, &s.gs };
        s.cs.selector = e->cs;
        for (size_t i = 0; i < sizeof segs / sizeof segs[0]; i++)
            segs[i]->selector = e->ds;
    }
    if (xbt_vcpu_set_sregs(cpu, &s) != XBT_OK)
        return boot_fail(err, errlen, "cannot set the entry segment state");
    xbt_regs r;
    memset(&r, 0, sizeof r);
    r.eax = e->eax;
    r.ebx = e->ebx;
    r.esi = e->esi;
    r.eip = e->eip;
    r.eflags = e->eflags;
    if (xbt_vcpu_set_regs(cpu, &r) != XBT_OK)
        return boot_fail(err, errlen, "cannot set the entry registers");
    return 0;
}

/* Files read for one boot, freed together. */
struct boot_files {
    struct boot_blob kernel, initrd;
    struct boot_mod mods[BOOT_MAX_MODULES];
    int nmods;
};

static void free_files(struct boot_files *f)
{
    free((void *)f->kernel.data);
    free((void *)f->initrd.data);
    for (int i = 0; i < f->nmods; i++)
        free((void *)f->mods[i].file.data);
}

static int read_blob(struct boot_blob *b, const char *path, uint64_t max, char *err,
                     size_t errlen)
{
    b->name = path;
    b->data = read_file(path, max, true, &b->len, err, errlen);
    return b->data ? 0 : -1;
}

int vmm_boot(xbt_vm *vm, xbt_vcpu *cpu, const char *kernel, const char *cmdline,
             const char *initrd, const struct boot_module *mods, int nmods,
             uint32_t *reloc_align, char *err, size_t errlen)
{
    if (reloc_align)
        *reloc_align = 0;
    struct boot_ram ram = { xbt_vm_ram(vm), xbt_vm_ram_size(vm) };
    struct boot_files f;
    memset(&f, 0, sizeof f);
    struct boot_entry e;
    int rc = -1;
    if (nmods < 0 || nmods > BOOT_MAX_MODULES) {
        boot_fail(err, errlen, "at most %d modules", BOOT_MAX_MODULES);
        goto out;
    }
    if (read_blob(&f.kernel, kernel, ram.size, err, errlen))
        goto out;
    if (boot_is_bzimage(f.kernel.data, f.kernel.len)) {
        if (nmods) {
            boot_fail(err, errlen, "%s is a Linux bzImage: --module is for multiboot kernels "
                      "(give an --initrd)", kernel);
            goto out;
        }
        if (initrd && read_blob(&f.initrd, initrd, ram.size, err, errlen))
            goto out;
        rc = boot_linux(&ram, &f.kernel, cmdline, initrd ? &f.initrd : NULL, &e, err, errlen);
        if (reloc_align)
            *reloc_align = boot_bz_reloc_align(f.kernel.data, f.kernel.len);
    } else {
        if (initrd) {
            boot_fail(err, errlen, "%s is not a Linux bzImage: --initrd is for Linux kernels "
                      "(give multiboot modules with --module)", kernel);
            goto out;
        }
        for (; f.nmods < nmods; f.nmods++) {
            struct boot_mod *m = &f.mods[f.nmods];
            m->string = mods[f.nmods].string;
            if (read_blob(&m->file, mods[f.nmods].path, ram.size, err, errlen))
                goto out;
        }
        rc = boot_multiboot(&ram, &f.kernel, cmdline, f.mods, nmods, &e, err, errlen);
    }
    if (rc == 0)
        rc = apply_entry(vm, cpu, &e, err, errlen);
out:
    free_files(&f);
    return rc;
}

struct sym_sink {
    xbt_vm *vm;
    struct vmm_text *text;
};

static int add_to_vm(void *opaque, uint32_t addr, uint32_t size, const char *name, char *err,
                     size_t errlen)
{
    struct sym_sink *k = opaque;
    xbt_status st = xbt_vm_add_symbol(k->vm, addr, size, name);
    if (st != XBT_OK)
        return boot_fail(err, errlen, "cannot register the symbol %s: %s", name,
                         xbt_strerror(st));
    if (k->text && strcmp(name, "_text") == 0)
        *k->text = (struct vmm_text){ true, addr };
    return 0;
}

long vmm_load_symbols(xbt_vm *vm, const char *path, bool elf_only, struct vmm_text *text,
                      char *err, size_t errlen)
{
    struct boot_blob f = { path, NULL, 0 };
    f.data = read_file(path, SYMBOL_FILE_MAX, false, &f.len, err, errlen);
    if (!f.data)
        return -1;
    long n = 0;
    struct sym_sink k = { vm, text };
    if (syms_is_elf(&f)) {
        n = syms_parse_elf(&f, add_to_vm, &k, err, errlen);
        if (n == 0 && !elf_only) /* asked for by name: say it had none */
            n = boot_fail(err, errlen, "%s: an ELF file without a symbol table (stripped?)",
                          path);
    } else if (!elf_only) {
        n = syms_parse_nm(&f, add_to_vm, &k, err, errlen);
    }
    free((void *)f.data);
    return n;
}
