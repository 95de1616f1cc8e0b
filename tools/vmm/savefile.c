/*
 * savefile.c - xbt-run's state file (--save, --restore): the machine's shape, the
 * library's stream (xbt_vm_save_state: vCPU and RAM), then the board's devices.
 *
 *   "XBTRUN\0\0", u32 version (3), u32 0
 *   u64 RAM bytes, u32 the VM's XBT_VM_* flags that shape the guest, u32 ATA_DRIVES,
 *   u32 vCPUs, u32 0 (version 1 has neither: one vCPU; it is still read)
 *   per vCPU: u32 CPUID entries n (1 to XBT_MAX_CPUID_ENTRIES), u32 0, n entries of
 *   u32 function, index, flags, eax, ebx, ecx, edx: the CPUID the guest saw, which a
 *   restore gives it again (version 2 has none: the restoring run's --cpu, as before)
 *   per drive: u8 attached, u8 read-only, u16 path length, the path (absolute)
 *   u64 host CLOCK_MONOTONIC ns at the save
 *   the library's stream (xbt.h, docs/ARCHITECTURE.md)
 *   u64 length, u64 checksum (FNV-1a), the devices' sections (pc.c, vstate.c)
 *
 * All little-endian.  Every refusal is one line in err; nothing read from the file is
 * trusted: lengths are bounded before anything is allocated or copied.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm.h"

#define SAVE_MAGIC "XBTRUN\0\0"
#define SAVE_VERSION 3u
#define DEVICES_MAX (64u << 20)

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++) /* one line, whatever a path holds */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return -1;
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static bool put(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w, n -= (size_t)w;
    }
    return true;
}

/* n bytes, or false at the end of the file or an error (*eof tells which). */
static bool get(int fd, void *p, size_t n, bool *eof)
{
    uint8_t *b = p;
    *eof = false;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *eof = r == 0;
            return false;
        }
        b += r, n -= (size_t)r;
    }
    return true;
}

/* A vCPU's CPUID table (the model's, or --cpu's policy) as the guest sees it. */
static bool put_cpuid(xbt_vcpu *c, int fd)
{
    xbt_cpuid_entry e[XBT_MAX_CPUID_ENTRIES];
    size_t n = 0;
    if (xbt_vcpu_get_cpuid(c, e, XBT_MAX_CPUID_ENTRIES, &n) != XBT_OK || !n)
        return errno = EINVAL, false;
    uint32_t hdr[2] = { (uint32_t)n, 0 };
    bool ok = put(fd, hdr, 8);
    for (size_t i = 0; i < n && ok; i++) {
        const uint32_t w[7] = { e[i].function, e[i].index, e[i].flags, e[i].eax, e[i].ebx,
                                e[i].ecx, e[i].edx };
        ok = put(fd, w, sizeof w);
    }
    return ok;
}

/* The header up to the library's stream. */
static bool put_header(struct vmm *m, int fd, uint32_t vm_flags)
{
    uint32_t ver[2] = { SAVE_VERSION, 0 }, shape[4] = { vm_flags, ATA_DRIVES, m->ncpus, 0 };
    bool ok = put(fd, SAVE_MAGIC, 8) && put(fd, ver, 8) && put(fd, &m->ram_size, 8) &&
              put(fd, shape, sizeof shape);
    for (unsigned k = 0; k < m->ncpus && ok; k++)
        ok = put_cpuid(m->cpus[k], fd);
    for (int i = 0; i < ATA_DRIVES && ok; i++) {
        const struct ata_drive *d = &m->ata.drive[i];
        char abs[PATH_MAX];
        const char *p = d->fd >= 0 ? (realpath(d->path, abs) ? abs : d->path) : "";
        uint8_t f[4] = { d->fd >= 0, d->read_only, 0, 0 };
        uint16_t len = (uint16_t)strlen(p);
        memcpy(f + 2, &len, 2);
        ok = put(fd, f, 4) && put(fd, p, len);
    }
    uint64_t now = vmm_now_ns();
    return ok && put(fd, &now, 8);
}

int vmm_save(struct vmm *m, const char *path, uint32_t vm_flags, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return fail(err, errlen, "--save %s: the name is too long", path);
    ata_flush(m); /* what the guest wrote is in the disk files */
    struct vstate s = { 0 };
    pthread_mutex_lock(&m->lock); /* the timer thread goes on meanwhile */
    bool saved = pc_save_state(m, &s);
    vmm_unlock(m);
    if (!saved) {
        free(s.buf);
        return fail(err, errlen, "cannot save the devices: %s", s.err);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(s.buf);
        return fail(err, errlen, "--save %s: %s", tmp, strerror(errno));
    }
    bool ok = put_header(m, fd, vm_flags);
    xbt_status st = ok ? xbt_vm_save_state(m->vm, fd) : XBT_OK;
    uint64_t len = s.len, sum = fnv(s.buf, s.len);
    ok = ok && st == XBT_OK && put(fd, &len, 8) && put(fd, &sum, 8) && put(fd, s.buf, s.len);
    int e = errno;
    free(s.buf);
    if (close(fd) != 0 && ok)
        ok = false, e = errno;
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        if (st != XBT_OK)
            return fail(err, errlen, "--save %s: %s", path, xbt_state_error());
        return fail(err, errlen, "--save %s: %s", path, strerror(e));
    }
    return 0;
}

/* What a header read refused: a short file is "truncated", a failed read its error. */
static int bad_read(char *err, size_t errlen, const char *path, bool eof)
{
    return eof ? fail(err, errlen, "%s: not an xbt-run state, or truncated", path)
               : fail(err, errlen, "%s: %s", path, strerror(errno));
}

/* vCPU k's CPUID table from the header (its entries are checked by the library when it
   is set: xbt_vcpu_set_cpuid refuses what xbt does not implement). */
static int get_cpuid(struct vmm_saved *sv, unsigned k, const char *path, char *err,
                     size_t errlen)
{
    uint32_t hdr[2], w[7];
    bool eof;
    if (!get(sv->fd, hdr, 8, &eof))
        return bad_read(err, errlen, path, eof);
    if (!hdr[0] || hdr[0] > XBT_MAX_CPUID_ENTRIES || hdr[1])
        return fail(err, errlen, "%s: vCPU %u's CPUID table is malformed", path, k);
    for (uint32_t i = 0; i < hdr[0]; i++) {
        if (!get(sv->fd, w, sizeof w, &eof))
            return bad_read(err, errlen, path, eof);
        sv->cpuid[k][i] = (xbt_cpuid_entry){ .function = w[0], .index = w[1], .flags = w[2],
                                             .eax = w[3], .ebx = w[4], .ecx = w[5],
                                             .edx = w[6] };
    }
    sv->ncpuid[k] = hdr[0];
    return 0;
}

int vmm_restore_open(const char *path, struct vmm_saved *sv, char *err, size_t errlen)
{
    memset(sv, 0, sizeof *sv);
    sv->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (sv->fd < 0)
        return fail(err, errlen, "--restore %s: %s", path, strerror(errno));
    uint8_t magic[8];
    uint32_t ver[2], shape[4] = { 0, 0, 1, 0 };
    bool eof;
    if (!get(sv->fd, magic, 8, &eof))
        return bad_read(err, errlen, path, eof);
    if (memcmp(magic, SAVE_MAGIC, 8) != 0)
        return fail(err, errlen, "%s: not an xbt-run state", path);
    if (!get(sv->fd, ver, 8, &eof))
        return bad_read(err, errlen, path, eof);
    if (ver[0] < 1 || ver[0] > SAVE_VERSION)
        return fail(err, errlen, "%s: an xbt-run state of version %u; this xbt-run reads %u",
                    path, ver[0], SAVE_VERSION);
    if (ver[1])
        return fail(err, errlen, "%s: the xbt-run state's header is malformed", path);
    if (!get(sv->fd, &sv->ram_size, 8, &eof) ||
        !get(sv->fd, shape, ver[0] == 1 ? 8 : 16, &eof))
        return bad_read(err, errlen, path, eof);
    sv->vm_flags = shape[0];
    sv->ncpus = shape[2];
    if (shape[1] != ATA_DRIVES || !sv->ram_size || (sv->ram_size & 0xFFF) ||
        sv->ram_size > (3ull << 30) || !shape[2] || shape[2] > VMM_MAX_CPUS || shape[3])
        return fail(err, errlen, "%s: a machine this xbt-run cannot make (%u disks, %llu "
                    "bytes of RAM, %u vCPUs)", path, shape[1], (unsigned long long)sv->ram_size,
                    shape[2]);
    sv->has_cpuid = ver[0] >= 3;
    for (unsigned k = 0; sv->has_cpuid && k < sv->ncpus; k++)
        if (get_cpuid(sv, k, path, err, errlen) != 0)
            return -1;
    for (int i = 0; i < ATA_DRIVES; i++) {
        uint8_t f[4];
        uint16_t len;
        if (!get(sv->fd, f, 4, &eof))
            return bad_read(err, errlen, path, eof);
        memcpy(&len, f + 2, 2);
        if (f[0] > 1 || f[1] > 1 || len >= sizeof sv->disk_path[0] || (f[0] && !len) ||
            (!f[0] && len))
            return fail(err, errlen, "%s: disk %d is malformed", path, i);
        if (!get(sv->fd, sv->disk_path[i], len, &eof))
            return bad_read(err, errlen, path, eof);
        sv->disk_path[i][len] = 0;
        if (f[0]) {
            if (memchr(sv->disk_path[i], 0, len))
                return fail(err, errlen, "%s: disk %d has a malformed name", path, i);
            sv->disks[sv->ndisks++] = (struct disk_spec){ i, sv->disk_path[i], f[1] != 0 };
        }
    }
    if (!get(sv->fd, &sv->saved_ns, 8, &eof))
        return bad_read(err, errlen, path, eof);
    return 0;
}

int vmm_restore_finish(struct vmm *m, struct vmm_saved *sv, const char *path, char *err,
                       size_t errlen)
{
    if (xbt_vm_restore_state(m->vm, sv->fd) != XBT_OK)
        return fail(err, errlen, "%s: %s", path, xbt_state_error());
    uint64_t hdr[2];
    bool eof;
    if (!get(sv->fd, hdr, 16, &eof))
        return bad_read(err, errlen, path, eof);
    if (hdr[0] > DEVICES_MAX)
        return fail(err, errlen, "%s: the devices' state is too long", path);
    struct vstate s = { .len = hdr[0] };
    s.buf = malloc(hdr[0] ? hdr[0] : 1);
    if (!s.buf)
        return fail(err, errlen, "%s: out of memory", path);
    if (!get(sv->fd, s.buf, s.len, &eof)) {
        free(s.buf);
        return bad_read(err, errlen, path, eof);
    }
    if (fnv(s.buf, s.len) != hdr[1]) {
        free(s.buf);
        return fail(err, errlen, "%s: the devices' state is corrupted (checksum mismatch)",
                    path);
    }
    /* Host time goes on from the save on the same host boot; after a reboot (the clock
       behind the saved time) guest time continues from the save. */
    uint64_t now = vmm_now_ns();
    s.shift_ns = now < sv->saved_ns ? (int64_t)(now - sv->saved_ns) : 0;
    pthread_mutex_lock(&m->lock);
    bool ok = pc_load_state(m, &s);
    for (unsigned k = 0; ok && k < m->ncpus; k++) {
        lapic_sync_base(m, k);
        lapic_shadow_attach(m, k); /* the registers restored */
    }
    vmm_unlock(m);
    free(s.buf);
    if (!ok)
        return fail(err, errlen, "%s: %s", path, s.err);
    close(sv->fd);
    sv->fd = -1;
    return 0;
}
