/*
 * perfmap.c - writes the perf map (perfmap.h): a buffer of whole lines, written out
 * when it fills, at cache flushes, at the run's quiet exits and when the VM goes.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "perfmap.h"

#define BUF_SIZE 65536
#define LINE_MAX_LEN 512 /* "START SIZE " and the longest name, with room */

struct xbt_perfmap {
    pthread_mutex_t lock;  /* vCPUs of one VM add lines from their own threads */
    int fd;
    bool broken;   /* a write failed: the map stays as it is, the guest runs on */
    size_t len;
    char buf[BUF_SIZE];
};

struct xbt_perfmap *xbt_perfmap_open(const char *path, char *why, size_t why_len)
{
    char def[64];
    if (!path) {
        snprintf(def, sizeof def, "/tmp/perf-%d.map", (int)getpid());
        path = def;
    }
    struct xbt_perfmap *pm = malloc(sizeof *pm);
    if (!pm) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    /* /tmp is everyone's: no symlink is followed, and a FIFO planted there neither
       blocks the open (O_NONBLOCK) nor is written to. */
    pm->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
                  0600);
    struct stat st;
    if (pm->fd < 0 || fstat(pm->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "cannot open the perf map %.200s: %s", path,
                 pm->fd < 0 ? strerror(errno) : "not a regular file");
        if (pm->fd >= 0)
            close(pm->fd);
        free(pm);
        return NULL;
    }
    pm->broken = false;
    pthread_mutex_init(&pm->lock, NULL);
    pm->len = 0;
    return pm;
}

bool xbt_perf_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

static bool flush_locked(struct xbt_perfmap *pm)
{
    if (!pm->broken && pm->len && !xbt_perf_write_all(pm->fd, pm->buf, pm->len))
        pm->broken = true;
    pm->len = 0;
    return !pm->broken;
}

bool xbt_perfmap_flush(struct xbt_perfmap *pm)
{
    pthread_mutex_lock(&pm->lock);
    bool ok = flush_locked(pm);
    pthread_mutex_unlock(&pm->lock);
    return ok;
}

void xbt_perfmap_close(struct xbt_perfmap *pm)
{
    if (!pm)
        return;
    xbt_perfmap_flush(pm);
    close(pm->fd);
    pthread_mutex_destroy(&pm->lock);
    free(pm);
}

/* Hexadecimal without leading zeros (perf reads the digits, no 0x). */
static char *put_hex(char *p, uint64_t v)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_hex8(char *p, uint32_t v)
{
    for (int i = 7; i >= 0; i--)
        *p++ = "0123456789abcdef"[(v >> (4 * i)) & 15];
    return p;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* Room for one more line; the start of it.  Names are bounded (XBT_SYM_NAME_MAX), so a
   line always fits in LINE_MAX_LEN. */
static char *line_start(struct xbt_perfmap *pm, const void *start, size_t size)
{
    if (BUF_SIZE - pm->len < LINE_MAX_LEN)
        flush_locked(pm);
    char *p = pm->buf + pm->len;
    p = put_hex(p, (uintptr_t)start);
    *p++ = ' ';
    p = put_hex(p, size);
    *p++ = ' ';
    return p;
}

static void line_end(struct xbt_perfmap *pm, char *p)
{
    *p++ = '\n';
    pm->len = (size_t)(p - pm->buf);
}

void xbt_perfmap_add(struct xbt_perfmap *pm, const void *start, size_t size, const char *name)
{
    pthread_mutex_lock(&pm->lock);
    if (!pm->broken) {
        char *p = line_start(pm, start, size);
        size_t n = strnlen(name, XBT_PERF_NAME_MAX - 1);
        memcpy(p, name, n);
        line_end(pm, p + n);
    }
    pthread_mutex_unlock(&pm->lock);
}

/* xbt:[trace:]schedule+0x1a for CPL 0 code a symbol covers, xbt:[trace:]cpl3:main+0x4 at
   another CPL, xbt:[trace:]cpl0:c10234a0 without a symbol: perf users see the guest
   function, and whether it ran as kernel or user code. */
size_t xbt_perf_block_name(char out[XBT_PERF_NAME_MAX], struct xbt_symtab *syms, uint32_t eip,
                           unsigned cpl, bool trace)
{
    uint32_t off = 0;
    const char *sym = syms ? xbt_symtab_find(syms, eip, &off) : NULL;
    char *p = put_str(out, trace ? "xbt:trace:" : "xbt:");
    char cplbuf[5] = { 'c', 'p', 'l', (char)('0' + (cpl & 3)), ':' };
    if (!sym || cpl) {
        memcpy(p, cplbuf, sizeof cplbuf);
        p += sizeof cplbuf;
    }
    if (!sym) {
        p = put_hex8(p, eip);
    } else {
        p = put_str(p, sym); /* at most XBT_SYM_NAME_MAX (xbt_symtab_name_ok) */
        if (off) {
            p = put_str(p, "+0x");
            p = put_hex(p, off);
        }
    }
    *p = 0;
    return (size_t)(p - out);
}
