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
 * watches the connection and stops the vCPUs).
 * Several vCPUs are gdb's threads (vCPU k is thread k + 1; qfThreadInfo, qC, T, Hg, Hc,
 * vCont), all-stop as QEMU's stub: every vCPU stops when one does, the stop reply names
 * that one's thread, which becomes the one registers and memory are read from until Hg
 * says otherwise; breakpoints and watchpoints are set on every vCPU; a step runs the
 * stepped vCPU alone while the others stay stopped (gdb's scheduler-locking "step", also
 * when it asks the others to continue: vCont;s:2;c).
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
    xbt_vcpu *const *cpus;
    unsigned ncpus;
    unsigned cur;         /* Hg's vCPU: registers and memory */
    int cont;             /* Hc's vCPU, the one `s` steps (-1: cur) */
    uint32_t bp[XBT_MAX_BREAKPOINTS]; /* those gdb set, to clear when it leaves */
    uint32_t n_bp;
    struct gdb_wp { uint32_t addr, len; char type; } wp[XBT_MAX_WATCHPOINTS]; /* Z2-Z4 */
    uint32_t n_wp;
    struct gdb_stop last; /* the last stop (its vCPU and watchpoint, for the T reply) */
    char in[4096];        /* a packet's data */
    char out[4096];
};

static const char hex[] = "0123456789abcdef";

static xbt_vcpu *cur_cpu(const struct gdb *g) { return g->cpus[g->cur]; }

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
    xbt_vcpu_get_regs(cur_cpu(g), &r);
    uint32_t *slot[10] = { &r.eax, &r.ecx, &r.edx, &r.ebx, &r.esp, &r.ebp, &r.esi, &r.edi,
                           &r.eip, &r.eflags };
    if (n >= 10)
        return false;
    *slot[n] = val;
    return xbt_vcpu_set_regs(cur_cpu(g), &r) == XBT_OK;
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
    strcpy(g->out, xbt_vcpu_write_virt(cur_cpu(g), addr, buf, len) == XBT_OK ? "OK" : "E14");
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

/* Continue (step < 0) or step vCPU `step` alone: runs the guest with the watcher
   beside it; the stop in g->last. */
static int resume(struct gdb *g, int step, gdb_run_fn run, gdb_break_fn brk, void *ctx)
{
    struct watch w = { g->fd, brk, ctx, false, false };
    pthread_t t;
    bool watching = brk && pthread_create(&t, NULL, watch_thread, &w) == 0;
    if (step >= 0)
        xbt_vcpu_set_single_step(g->cpus[step], 1);
    g->last = (struct gdb_stop){ 0 };
    int rc = run(ctx, step, &g->last);
    if (step >= 0)
        xbt_vcpu_set_single_step(g->cpus[step], 0);
    atomic_store(&w.done, true);
    if (watching)
        pthread_join(t, NULL);
    if (rc == VMM_DEBUG_STOP && g->last.cpu < g->ncpus)
        g->cur = g->last.cpu; /* gdb takes the stopped thread as its general one */
    return rc;
}

static void read_registers(struct gdb *g)
{
    xbt_regs r;
    xbt_sregs s;
    xbt_vcpu_get_regs(cur_cpu(g), &r);
    xbt_vcpu_get_sregs(cur_cpu(g), &s);
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
    if (xbt_vcpu_read_virt(cur_cpu(g), addr, buf, len) != XBT_OK) {
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

/* A breakpoint (kind BREAKPOINT) or a watchpoint of kind `kind` at addr set (on) or
   cleared on every vCPU: a set one of them refuses is undone on the others, so that it
   is set on none, as gdb is told; a clear goes to every vCPU.  The first refusal. */
#define BREAKPOINT (-1)
static xbt_status set_one(xbt_vcpu *c, uint32_t addr, uint32_t len, int kind, bool on)
{
    return kind == BREAKPOINT ? xbt_vcpu_set_breakpoint(c, addr, on)
                              : xbt_vcpu_set_watchpoint(c, addr, len, kind, on);
}

static xbt_status set_everywhere(struct gdb *g, uint32_t addr, uint32_t len, int kind,
                                 bool on)
{
    xbt_status first = XBT_OK;
    for (unsigned k = 0; k < g->ncpus; k++) {
        xbt_status st = set_one(g->cpus[k], addr, len, kind, on);
        if (st != XBT_OK && on) {
            while (k--)
                set_one(g->cpus[k], addr, len, kind, false);
            return st;
        }
        if (first == XBT_OK)
            first = st;
    }
    return first;
}

/* Z2/Z3/Z4 and z2/z3/z4: the library's watchpoints (ADDR,LEN; LEN 1, 2, 4 or 8 and ADDR
   a multiple of it, else an error: gdb then splits the range or falls back). */
static void watchpoint(struct gdb *g, uint32_t addr, uint32_t len, char type)
{
    bool on = g->in[0] == 'Z';
    xbt_status st = set_everywhere(g, addr, len, watch_kind(type), on);
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

/* The stop reply: its thread, and a watchpoint's address (watch, rwatch or awatch, as
   gdb expects) with SIGTRAP, or SIGINT after gdb's Ctrl-C. */
static void stop_reply(struct gdb *g)
{
    const xbt_exit *ex = &g->last.debug;
    unsigned thread = g->last.cpu + 1;
    if (g->last.interrupted) {
        snprintf(g->out, sizeof g->out, "T02thread:%x;", thread);
        return;
    }
    if (ex->reason != XBT_EXIT_DEBUG || ex->debug.why != XBT_DEBUG_WATCH) {
        snprintf(g->out, sizeof g->out, "T05thread:%x;", thread);
        return;
    }
    char type = '2';
    for (uint32_t i = 0; i < g->n_wp; i++)
        if (g->wp[i].addr == ex->debug.watch)
            type = g->wp[i].type;
    const char *what = type == '3' ? "rwatch" : type == '4' ? "awatch" : "watch";
    snprintf(g->out, sizeof g->out, "T05thread:%x;%s:%x;", thread, what, ex->debug.watch);
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
    xbt_status st = set_everywhere(g, addr, 0, BREAKPOINT, on);
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
    for (uint32_t i = 0; i < g->n_bp; i++)
        set_everywhere(g, g->bp[i], 0, BREAKPOINT, false);
    for (uint32_t i = 0; i < g->n_wp; i++)
        set_everywhere(g, g->wp[i].addr, g->wp[i].len, watch_kind(g->wp[i].type), false);
    for (unsigned k = 0; k < g->ncpus; k++)
        xbt_vcpu_set_single_step(g->cpus[k], 0);
    g->n_bp = g->n_wp = 0;
    int rc;
    while ((rc = run(ctx, -1, &g->last)) == VMM_DEBUG_STOP)
        ;
    return rc;
}

/* A thread id of H, T or vCont (hex; -1 all, 0 any): the vCPU, -1 for all/any, or -2
   when it names no vCPU. */
static int thread_of(const struct gdb *g, const char *p)
{
    if (!strncmp(p, "-1", 2) && (p[2] == 0 || p[2] == ';'))
        return -1;
    char *e;
    unsigned long t = strtoul(p, &e, 16);
    if (e == p || (*e && *e != ';'))
        return -2;
    return t == 0 ? -1 : t <= g->ncpus ? (int)t - 1 : -2;
}

/* vCont;ACTION[:THREAD]...: the vCPU to step alone (a step action: its thread, or the
   general one), -1 to continue every vCPU, -2 when malformed. */
static int vcont_step(const struct gdb *g, const char *p)
{
    int step = -1;
    while (*p == ';') {
        char a = p[1];
        const char *q = p + 2;
        if (a == 'C' || a == 'S') /* a signal to deliver: the guest has none to take */
            while (*q && *q != ':' && *q != ';')
                q++;
        else if (a != 'c' && a != 's')
            return -2;
        int t = -1;
        if (*q == ':' && (t = thread_of(g, q + 1)) == -2)
            return -2;
        if ((a == 's' || a == 'S') && step < 0)
            step = t >= 0 ? t : (int)g->cur;
        p = strchr(q, ';') ? strchr(q, ';') : q + strlen(q);
    }
    return *p ? -2 : step;
}

/* H (Hg: the thread registers and memory are read from; Hc: the one `s` steps) and T
   (alive?). */
static void thread_packet(struct gdb *g)
{
    int t = thread_of(g, g->in + 2);
    if (g->in[0] == 'T') {
        t = thread_of(g, g->in + 1);
        strcpy(g->out, t >= 0 ? "OK" : "E01");
        return;
    }
    if (t == -2 || (g->in[1] != 'g' && g->in[1] != 'c')) {
        strcpy(g->out, "E22");
        return;
    }
    if (g->in[1] == 'g' && t >= 0)
        g->cur = (unsigned)t;
    else if (g->in[1] == 'c')
        g->cont = t;
    strcpy(g->out, "OK");
}

/* q packets: what this stub supports, its threads. */
static void query(struct gdb *g)
{
    if (!strncmp(g->in, "qSupported", 10)) {
        strcpy(g->out, "PacketSize=1000");
    } else if (!strcmp(g->in, "qAttached")) {
        strcpy(g->out, "1");
    } else if (!strcmp(g->in, "qC")) {
        snprintf(g->out, sizeof g->out, "QC%x", g->cur + 1);
    } else if (!strcmp(g->in, "qfThreadInfo")) {
        char *p = g->out;
        *p++ = 'm';
        for (unsigned k = 0; k < g->ncpus; k++)
            p += sprintf(p, k ? ",%x" : "%x", k + 1);
    } else if (!strcmp(g->in, "qsThreadInfo")) {
        strcpy(g->out, "l");
    }
}

int gdb_serve(xbt_vcpu *const *cpus, unsigned ncpus, int port, gdb_run_fn run,
              gdb_break_fn brk, void *ctx)
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
    struct gdb g = { .cpus = cpus, .ncpus = ncpus, .cont = -1 };
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
        case '?': snprintf(g.out, sizeof g.out, "T05thread:%x;", g.cur + 1); break;
        case 'g': read_registers(&g); break;
        case 'G': write_registers(&g); break;
        case 'P': put_register(&g); break;
        case 'm': read_memory(&g); break;
        case 'M': write_memory(&g); break;
        case 'Z': case 'z': breakpoint(&g); break;
        case 'H': case 'T': thread_packet(&g); break;
        case 'c': case 's': case 'v': {
            int step = g.in[0] == 'c' ? -1 : g.in[0] == 's' ? (g.cont >= 0 ? g.cont : (int)g.cur)
                     : !strncmp(g.in, "vCont;", 6) ? vcont_step(&g, g.in + 5) : -3;
            if (!strcmp(g.in, "vCont?"))
                strcpy(g.out, "vCont;c;C;s;S");
            else if (step == -2)
                strcpy(g.out, "E22");
            if (step < -1)
                break; /* vCont? answered, a malformed one refused, other v packets not served */
            int rc = resume(&g, step, run, brk, ctx);
            if (rc == VMM_DEBUG_STOP) {
                stop_reply(&g);
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
        case 'q': query(&g); break;
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
