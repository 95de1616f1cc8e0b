/*
 * gdbstub.c - gdb's remote serial protocol for xbt-run --gdb PORT: one connection on
 * 127.0.0.1, the guest stopped until gdb says continue or step.  Registers (the i386
 * general ones, EIP, EFLAGS and the six segment selectors), memory by guest linear
 * address (through the guest's page tables, setting no accessed bit), breakpoints
 * (Z0/Z1: the library's, XBT_EXIT_DEBUG), watchpoints (Z2/Z3/Z4: write, read and access,
 * reported as watch/rwatch/awatch in the T stop reply), single-step, continue, detach
 * and kill.
 * Also register and memory writes (G, P, M: general registers, EIP and EFLAGS; the
 * segment selectors are read-only here) and Ctrl-C while the guest runs (a thread
 * watches the connection and stops the vCPU).  Not served: threads beyond the one vCPU.
 *
 * In tools/vmm's layering this is beside the board: it calls the library and the run
 * function xbt-run hands it, nothing of xbt-run itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm.h"

struct gdb {
    int fd;
    xbt_vcpu *cpu;
    uint32_t bp[XBT_MAX_BREAKPOINTS]; /* those gdb set, to clear when it leaves */
    uint32_t n_bp;
    struct gdb_wp { uint32_t addr, len; char type; } wp[XBT_MAX_WATCHPOINTS]; /* Z2-Z4 */
    uint32_t n_wp;
    xbt_exit last;        /* the last debug stop (its watchpoint, for the T reply) */
    char in[4096];        /* a packet's data */
    char out[4096];
};

static const char hex[] = "0123456789abcdef";

static bool parse_range(const char *s, uint32_t *addr, uint32_t *len, const char **end);

static int from_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int get_char(struct gdb *g)
{
    unsigned char c;
    for (;;) {
        ssize_t n = read(g->fd, &c, 1);
        if (n == 1)
            return c;
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

static bool put(struct gdb *g, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(g->fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

/* The next packet's data into g->in (acknowledged); false when gdb has gone. */
static bool get_packet(struct gdb *g)
{
    for (;;) {
        int c;
        while ((c = get_char(g)) != '$')
            if (c < 0)
                return false; /* '+', '-' and a stray Ctrl-C between packets: skipped */
        size_t n = 0;
        unsigned sum = 0;
        while ((c = get_char(g)) != '#') {
            if (c < 0)
                return false;
            if (n + 1 < sizeof g->in)
                g->in[n++] = (char)c;
            sum += (unsigned)c;
        }
        int h = from_hex((char)get_char(g)), l = from_hex((char)get_char(g));
        g->in[n] = 0;
        if (h >= 0 && l >= 0 && (unsigned)(h << 4 | l) == (sum & 0xff))
            return put(g, "+", 1);
        if (!put(g, "-", 1)) /* a bad checksum: gdb sends it again */
            return false;
    }
}

static bool reply(struct gdb *g, const char *data)
{
    unsigned sum = 0;
    for (const char *p = data; *p; p++)
        sum += (unsigned char)*p;
    char tail[4] = { '#', hex[(sum >> 4) & 15], hex[sum & 15], 0 };
    return put(g, "$", 1) && put(g, data, strlen(data)) && put(g, tail, 3);
}

/* A 32-bit value as gdb's target bytes (little-endian hex). */
static char *put_le32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8) {
        *p++ = hex[(v >> 4) & 15];
        *p++ = hex[v & 15];
    }
    return p;
}

/* 8 hex digits of gdb's target bytes as a 32-bit value; false if malformed. */
static bool get_le32(const char *p, uint32_t *v)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        int h = from_hex(p[2 * i]), l = from_hex(p[2 * i + 1]);
        if (h < 0 || l < 0)
            return false;
        x |= (uint32_t)(h << 4 | l) << (8 * i);
    }
    *v = x;
    return true;
}

/* Register n of gdb's i386 numbering (0-9: the general registers, EIP, EFLAGS) set to
   val; false for a number this stub does not write. */
static bool write_register(struct gdb *g, unsigned n, uint32_t val)
{
    xbt_regs r;
    xbt_vcpu_get_regs(g->cpu, &r);
    uint32_t *slot[10] = { &r.eax, &r.ecx, &r.edx, &r.ebx, &r.esp, &r.ebp, &r.esi, &r.edi,
                           &r.eip, &r.eflags };
    if (n >= 10)
        return false;
    *slot[n] = val;
    return xbt_vcpu_set_regs(g->cpu, &r) == XBT_OK;
}

/* G: all of them, as g sends them (the selectors must stay as they are). */
static void write_registers(struct gdb *g)
{
    const char *p = g->in + 1;
    size_t n = strlen(p) / 8;
    uint32_t v[16];
    for (size_t i = 0; i < n && i < 16; i++)
        if (!get_le32(p + 8 * i, &v[i])) {
            strcpy(g->out, "E01");
            return;
        }
    for (unsigned i = 0; i < n && i < 10; i++)
        write_register(g, i, v[i]);
    strcpy(g->out, "OK");
}

/* P n=v */
static void put_register(struct gdb *g)
{
    char *eq;
    unsigned long n = strtoul(g->in + 1, &eq, 16);
    uint32_t v;
    strcpy(g->out, *eq == '=' && get_le32(eq + 1, &v) && write_register(g, (unsigned)n, v)
                       ? "OK" : "E01");
}

/* M addr,len:bytes */
static void write_memory(struct gdb *g)
{
    uint32_t addr, len;
    const char *p;
    uint8_t buf[1024];
    if (!parse_range(g->in + 1, &addr, &len, &p) || *p != ':' || len > sizeof buf ||
        strlen(p + 1) != 2 * (size_t)len) {
        strcpy(g->out, "E01");
        return;
    }
    for (uint32_t i = 0; i < len; i++) {
        int h = from_hex(p[1 + 2 * i]), l = from_hex(p[2 + 2 * i]);
        if (h < 0 || l < 0) {
            strcpy(g->out, "E01");
            return;
        }
        buf[i] = (uint8_t)(h << 4 | l);
    }
    strcpy(g->out, xbt_vcpu_write_virt(g->cpu, addr, buf, len) == XBT_OK ? "OK" : "E14");
}

/* While the guest runs: a Ctrl-C (0x03) from gdb stops it. */
struct watch {
    int fd;
    gdb_break_fn brk;
    void *ctx;
    atomic_bool done;
    bool fired;           /* it stopped the guest */
};

static void *watch_thread(void *arg)
{
    struct watch *w = arg;
    while (!atomic_load(&w->done)) {
        struct pollfd p = { w->fd, POLLIN, 0 };
        if (poll(&p, 1, 50) <= 0)
            continue;
        unsigned char c;
        if (recv(w->fd, &c, 1, MSG_PEEK) != 1)
            break; /* gone: the main loop sees it */
        if (c != 0x03)
            break; /* a packet (gdb does not send one while the target runs): leave it */
        if (recv(w->fd, &c, 1, 0) == 1) {
            w->fired = true;
            w->brk(w->ctx);
        }
        break;
    }
    return NULL;
}

/* Continue or step: runs the guest with the watcher beside it (*interrupted: it was
   Ctrl-C that stopped it). */
static int resume(struct gdb *g, bool step, gdb_run_fn run, gdb_break_fn brk, void *ctx,
                  bool *interrupted)
{
    struct watch w = { g->fd, brk, ctx, false, false };
    pthread_t t;
    bool watching = brk && pthread_create(&t, NULL, watch_thread, &w) == 0;
    xbt_vcpu_set_single_step(g->cpu, step);
    int rc = run(ctx, &g->last);
    xbt_vcpu_set_single_step(g->cpu, 0);
    atomic_store(&w.done, true);
    if (watching)
        pthread_join(t, NULL);
    *interrupted = w.fired;
    return rc;
}

static void read_registers(struct gdb *g)
{
    xbt_regs r;
    xbt_sregs s;
    xbt_vcpu_get_regs(g->cpu, &r);
    xbt_vcpu_get_sregs(g->cpu, &s);
    /* gdb's i386 order: eax ecx edx ebx esp ebp esi edi eip eflags cs ss ds es fs gs. */
    uint32_t v[16] = { r.eax, r.ecx, r.edx, r.ebx, r.esp, r.ebp, r.esi, r.edi, r.eip,
                       r.eflags, s.cs.selector, s.ss.selector, s.ds.selector,
                       s.es.selector, s.fs.selector, s.gs.selector };
    char *p = g->out;
    for (int i = 0; i < 16; i++)
        p = put_le32(p, v[i]);
    *p = 0;
}

/* "ADDR,LEN" (hex): false if malformed. */
static bool parse_range(const char *s, uint32_t *addr, uint32_t *len, const char **end)
{
    char *e;
    unsigned long a = strtoul(s, &e, 16);
    if (e == s || *e != ',' || a > 0xFFFFFFFFul)
        return false;
    const char *l0 = e + 1;
    unsigned long n = strtoul(l0, &e, 16);
    if (e == l0 || n > 0xFFFFFFFFul)
        return false;
    *addr = (uint32_t)a;
    *len = (uint32_t)n;
    if (end)
        *end = e;
    return true;
}

static void read_memory(struct gdb *g)
{
    uint32_t addr, len;
    uint8_t buf[1024];
    if (!parse_range(g->in + 1, &addr, &len, NULL) || len > sizeof buf) {
        strcpy(g->out, "E01");
        return;
    }
    if (xbt_vcpu_read_virt(g->cpu, addr, buf, len) != XBT_OK) {
        strcpy(g->out, "E14"); /* EFAULT: not mapped */
        return;
    }
    char *p = g->out;
    for (uint32_t i = 0; i < len; i++) {
        *p++ = hex[buf[i] >> 4];
        *p++ = hex[buf[i] & 15];
    }
    *p = 0;
}

/* gdb's watchpoint types: 2 write, 3 read, 4 access. */
static int watch_kind(char type)
{
    return type == '2' ? XBT_WATCH_WRITE : type == '3' ? XBT_WATCH_READ : XBT_WATCH_ACCESS;
}

/* Z2/Z3/Z4 and z2/z3/z4: the library's watchpoints (ADDR,LEN; LEN 1, 2, 4 or 8 and ADDR
   a multiple of it, else an error: gdb then splits the range or falls back). */
static void watchpoint(struct gdb *g, uint32_t addr, uint32_t len, char type)
{
    bool on = g->in[0] == 'Z';
    xbt_status st = xbt_vcpu_set_watchpoint(g->cpu, addr, len, watch_kind(type), on);
    uint32_t i = 0;
    while (i < g->n_wp && !(g->wp[i].addr == addr && g->wp[i].len == len &&
                            g->wp[i].type == type))
        i++;
    if (st == XBT_OK && on && i == g->n_wp)
        g->wp[g->n_wp++] = (struct gdb_wp){ addr, len, type };
    else if (!on && i < g->n_wp)
        g->wp[i] = g->wp[--g->n_wp];
    strcpy(g->out, st == XBT_OK || !on ? "OK" : "E0e");
}

/* The stop reply after a continue or step that stopped for the debugger: a watchpoint's
   T packet (watch, rwatch or awatch with its address, as gdb expects), else SIGTRAP. */
static void stop_reply(struct gdb *g)
{
    const xbt_exit *ex = &g->last;
    if (ex->reason != XBT_EXIT_DEBUG || ex->debug.why != XBT_DEBUG_WATCH) {
        strcpy(g->out, "S05");
        return;
    }
    char type = '2';
    for (uint32_t i = 0; i < g->n_wp; i++)
        if (g->wp[i].addr == ex->debug.watch)
            type = g->wp[i].type;
    const char *what = type == '3' ? "rwatch" : type == '4' ? "awatch" : "watch";
    snprintf(g->out, sizeof g->out, "T05%s:%x;", what, ex->debug.watch);
}

/* Z0/Z1 (software and hardware breakpoints alike) and z0/z1; Z2-Z4 (watchpoints). */
static void breakpoint(struct gdb *g)
{
    uint32_t addr, kind;
    char type = g->in[1];
    if (type < '0' || type > '4' || g->in[2] != ',') {
        g->out[0] = 0; /* not served */
        return;
    }
    if (!parse_range(g->in + 3, &addr, &kind, NULL)) {
        strcpy(g->out, "E01");
        return;
    }
    if (type >= '2') {
        watchpoint(g, addr, kind, type);
        return;
    }
    bool on = g->in[0] == 'Z';
    xbt_status st = xbt_vcpu_set_breakpoint(g->cpu, addr, on);
    uint32_t i = 0;
    while (i < g->n_bp && g->bp[i] != addr)
        i++;
    if (st == XBT_OK && on && i == g->n_bp)
        g->bp[g->n_bp++] = addr;
    else if (!on && i < g->n_bp)
        g->bp[i] = g->bp[--g->n_bp];
    /* Clearing one that is not set answers OK too: gdb clears what it believes it set. */
    strcpy(g->out, st == XBT_OK || !on ? "OK" : "E0e");
}

/* gdb has left (detached or gone): its breakpoints go, the guest runs to its end. */
static int run_on(struct gdb *g, gdb_run_fn run, void *ctx)
{
    while (g->n_bp)
        xbt_vcpu_set_breakpoint(g->cpu, g->bp[--g->n_bp], 0);
    while (g->n_wp) {
        const struct gdb_wp *w = &g->wp[--g->n_wp];
        xbt_vcpu_set_watchpoint(g->cpu, w->addr, w->len, watch_kind(w->type), 0);
    }
    xbt_vcpu_set_single_step(g->cpu, 0);
    int rc;
    while ((rc = run(ctx, &g->last)) == VMM_DEBUG_STOP)
        ;
    return rc;
}

int gdb_serve(xbt_vcpu *cpu, int port, gdb_run_fn run, gdb_break_fn brk, void *ctx)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 1) != 0) {
        fprintf(stderr, "xbt-run: --gdb: cannot listen on 127.0.0.1:%d: %s\n", port,
                strerror(errno));
        if (ls >= 0)
            close(ls);
        return VMM_GDB_HOST_ERROR;
    }
    fprintf(stderr, "xbt-run: waiting for gdb on 127.0.0.1:%d (target remote :%d)\n", port,
            port);
    struct gdb g = { .cpu = cpu };
    g.fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    close(ls);
    if (g.fd < 0) {
        fprintf(stderr, "xbt-run: --gdb: accept: %s\n", strerror(errno));
        return VMM_GDB_HOST_ERROR;
    }
    int status = -1;
    while (status < 0 && get_packet(&g)) {
        g.out[0] = 0;
        switch (g.in[0]) {
        case '?': strcpy(g.out, "S05"); break;
        case 'g': read_registers(&g); break;
        case 'G': write_registers(&g); break;
        case 'P': put_register(&g); break;
        case 'm': read_memory(&g); break;
        case 'M': write_memory(&g); break;
        case 'Z': case 'z': breakpoint(&g); break;
        case 'H': strcpy(g.out, "OK"); break;
        case 'c': case 's': {
            bool intr;
            int rc = resume(&g, g.in[0] == 's', run, brk, ctx, &intr);
            if (rc == VMM_DEBUG_STOP) {
                if (intr)
                    strcpy(g.out, "S02"); /* SIGINT */
                else
                    stop_reply(&g);        /* SIGTRAP, with a watchpoint's address */
            } else {
                snprintf(g.out, sizeof g.out, "W%02x", rc & 0xff); /* the guest ended */
                status = rc;
            }
            break;
        }
        case 'D': /* detach: the guest runs on to its end, no breakpoints left */
            reply(&g, "OK");
            close(g.fd);
            return run_on(&g, run, ctx);
        case 'k':
            close(g.fd);
            return 0;
        case 'q':
            if (!strncmp(g.in, "qSupported", 10))
                strcpy(g.out, "PacketSize=1000");
            else if (!strcmp(g.in, "qAttached"))
                strcpy(g.out, "1");
            else if (!strcmp(g.in, "qC"))
                strcpy(g.out, "QC1");
            else if (!strcmp(g.in, "qfThreadInfo"))
                strcpy(g.out, "m1");
            else if (!strcmp(g.in, "qsThreadInfo"))
                strcpy(g.out, "l");
            break;
        default: break; /* unsupported: the empty reply */
        }
        if (!reply(&g, g.out))
            break;
    }
    close(g.fd);
    if (status < 0) { /* gdb went away: the guest runs on, as after a detach */
        fprintf(stderr, "xbt-run: gdb disconnected; the guest runs on\n");
        return run_on(&g, run, ctx);
    }
    return status;
}
