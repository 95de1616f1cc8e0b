/*
 * jitdump.c - perf's jitdump of translated code (perfmap.h): a header, then one code
 * load record per block with its bytes, buffered and written as the perf map is (when
 * the buffer fills, at cache flushes, at the run's quiet exits, when the VM goes), and
 * a close record at the end.  The layout is perf's (jitdump-specification.txt, version
 * 1): little-endian, packed, no padding between records.  perf inject knows a process's
 * dump by its name, jit-PID.dump, so a process has one: the VMs that ask for it share it
 * (counted; the last one closes it), and they must ask for the same directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "perfmap.h"
#include "runner.h" /* xbt_now_ns: CLOCK_MONOTONIC, as perf record -k mono */

#define JITDUMP_MAGIC 0x4A695444u /* "JiTD" as a little-endian word */
#define JITDUMP_VERSION 1u
#define JIT_CODE_LOAD 0u
#define JIT_CODE_CLOSE 3u
#define EM_X86_64_ 62u
#define BUF_SIZE (256u << 10)

struct jit_header {
    uint32_t magic, version, total_size, elf_mach, pad1, pid;
    uint64_t timestamp, flags;
};

struct jit_prefix {
    uint32_t id, total_size;
    uint64_t timestamp;
};

struct jit_code_load {
    struct jit_prefix p;
    uint32_t pid, tid;
    uint64_t vma, code_addr, code_size, code_index;
    /* then the NUL-terminated name and code_size bytes of code */
};

_Static_assert(sizeof(struct jit_header) == 40, "jitdump header");
_Static_assert(sizeof(struct jit_code_load) == 56, "jitdump code load record");

struct xbt_jitdump {
    pthread_mutex_t lock; /* vCPUs (and VMs) add records from their own threads */
    unsigned refs;        /* VMs that opened it (under shared_lock) */
    char dir[4096];
    uint32_t pid;
    int fd;
    void *marker;  /* the file's first page, mapped executable: perf's MMAP record */
    size_t marker_len;
    bool broken;   /* a write failed: the dump stays as it is, the guest runs on */
    uint64_t index;
    size_t len;
    uint8_t buf[BUF_SIZE];
};

static bool flush_locked(struct xbt_jitdump *jd)
{
    if (!jd->broken && jd->len && !xbt_perf_write_all(jd->fd, jd->buf, jd->len))
        jd->broken = true;
    jd->len = 0;
    return !jd->broken;
}

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct xbt_jitdump *shared; /* this process's dump, while a VM has it open */

static struct xbt_jitdump *open_new(const char *dir, char *why, size_t why_len);

struct xbt_jitdump *xbt_jitdump_open(const char *dir, char *why, size_t why_len)
{
    if (!dir)
        dir = "/tmp";
    pthread_mutex_lock(&shared_lock);
    struct xbt_jitdump *jd = shared;
    if (jd && strcmp(jd->dir, dir) != 0) {
        snprintf(why, why_len, "the process writes its jitdump (jit-%d.dump) in %.200s "
                 "already, not in %.200s", (int)getpid(), jd->dir, dir);
        jd = NULL;
    } else if (jd) {
        jd->refs++;
    } else if ((jd = shared = open_new(dir, why, why_len)) != NULL) {
        jd->refs = 1;
    }
    pthread_mutex_unlock(&shared_lock);
    return jd;
}

static struct xbt_jitdump *open_new(const char *dir, char *why, size_t why_len)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/jit-%d.dump", dir, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(why, why_len, "the jitdump's directory name is too long");
        return NULL;
    }
    struct xbt_jitdump *jd = malloc(sizeof *jd);
    if (!jd) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    snprintf(jd->dir, sizeof jd->dir, "%s", dir);
    jd->pid = (uint32_t)getpid();
    /* As the perf map: no symlink followed, nothing but a regular file written.  The
       file is ours alone (O_TRUNC: a dump of an earlier process with this PID goes). */
    jd->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    struct stat st;
    if (jd->fd < 0 || fstat(jd->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "cannot create the jitdump %.200s: %s", path,
                 jd->fd < 0 ? strerror(errno) : "not a regular file");
        if (jd->fd >= 0)
            close(jd->fd);
        free(jd);
        return NULL;
    }
    struct jit_header h = { JITDUMP_MAGIC, JITDUMP_VERSION, sizeof h, EM_X86_64_, 0,
                            (uint32_t)getpid(), xbt_now_ns(), 0 };
    long page = sysconf(_SC_PAGESIZE);
    jd->marker_len = page > 0 ? (size_t)page : 4096;
    jd->marker = MAP_FAILED;
    bool header = xbt_perf_write_all(jd->fd, &h, sizeof h);
    if (header)
        jd->marker = mmap(NULL, jd->marker_len, PROT_READ | PROT_EXEC, MAP_PRIVATE, jd->fd, 0);
    if (jd->marker == MAP_FAILED) {
        /* Without the executable mapping perf inject never finds the file (a noexec
           mount refuses it). */
        snprintf(why, why_len, "cannot %s the jitdump %.200s: %s",
                 header ? "map executable" : "write the header of", path, strerror(errno));
        close(jd->fd);
        unlink(path);
        free(jd);
        return NULL;
    }
    pthread_mutex_init(&jd->lock, NULL);
    jd->broken = false;
    jd->index = 0;
    jd->len = 0;
    return jd;
}

void xbt_jitdump_add(struct xbt_jitdump *jd, const void *start, size_t size, const char *name)
{
    static __thread uint32_t tid; /* (a system call per block otherwise) */
    if (!tid)
        tid = (uint32_t)gettid();
    size_t nlen = strnlen(name, XBT_PERF_NAME_MAX - 1) + 1;
    struct jit_code_load r;
    r.p.id = JIT_CODE_LOAD;
    r.p.total_size = (uint32_t)(sizeof r + nlen + size);
    r.pid = jd->pid;
    r.tid = tid;
    r.vma = r.code_addr = (uint64_t)(uintptr_t)start;
    r.code_size = size;
    pthread_mutex_lock(&jd->lock);
    /* Stamped and numbered under the lock: time and file order agree across vCPUs. */
    r.p.timestamp = xbt_now_ns();
    r.code_index = jd->index++;
    if (!jd->broken) {
        if (BUF_SIZE - jd->len < r.p.total_size)
            flush_locked(jd);
        if (jd->broken) {
            /* (a write failed: nothing more goes out) */
        } else if (r.p.total_size > BUF_SIZE) {
            /* (Larger than the buffer: never for a block, whose code is bounded.) */
            if (!xbt_perf_write_all(jd->fd, &r, sizeof r) ||
                !xbt_perf_write_all(jd->fd, name, nlen - 1) ||
                !xbt_perf_write_all(jd->fd, "", 1) || !xbt_perf_write_all(jd->fd, start, size))
                jd->broken = true;
        } else {
            uint8_t *p = jd->buf + jd->len;
            memcpy(p, &r, sizeof r);
            memcpy(p + sizeof r, name, nlen - 1);
            p[sizeof r + nlen - 1] = 0;
            memcpy(p + sizeof r + nlen, start, size);
            jd->len += r.p.total_size;
        }
    }
    pthread_mutex_unlock(&jd->lock);
}

bool xbt_jitdump_flush(struct xbt_jitdump *jd)
{
    pthread_mutex_lock(&jd->lock);
    bool ok = flush_locked(jd);
    pthread_mutex_unlock(&jd->lock);
    return ok;
}

void xbt_jitdump_close(struct xbt_jitdump *jd)
{
    if (!jd)
        return;
    pthread_mutex_lock(&shared_lock);
    bool last = --jd->refs == 0;
    if (last)
        shared = NULL;
    pthread_mutex_unlock(&shared_lock);
    if (!last) {
        xbt_jitdump_flush(jd); /* another VM goes on writing to it */
        return;
    }
    pthread_mutex_lock(&jd->lock);
    struct jit_prefix c = { JIT_CODE_CLOSE, sizeof c, xbt_now_ns() };
    if (flush_locked(jd) && !xbt_perf_write_all(jd->fd, &c, sizeof c))
        jd->broken = true;
    pthread_mutex_unlock(&jd->lock);
    munmap(jd->marker, jd->marker_len);
    close(jd->fd);
    pthread_mutex_destroy(&jd->lock);
    free(jd);
}
