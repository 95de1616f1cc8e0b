/*
 * vstate.c - the one shape of every device's save and restore (xbt-run --save and
 * --restore): a device's X_state(m, s) names each field of its state once, and the
 * same function writes them (s->load false) or reads them back (true), so that the two
 * directions cannot drift apart.  Reads are checked: a field past the end of the
 * device's section, a boolean other than 0 or 1, or a value the device's own check
 * (vs_check) refuses stops the restore with one line in s->err.  Below every device,
 * as clock.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm.h"

static void field(struct vstate *s, void *v, size_t n)
{
    if (!s->load) {
        if (s->len + n > s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 4096;
            while (cap < s->len + n)
                cap *= 2;
            uint8_t *b = realloc(s->buf, cap);
            if (!b) {
                vs_check(s, false, "out of memory");
                return;
            }
            s->buf = b, s->cap = cap;
        }
        memcpy(s->buf + s->len, v, n);
        s->len += n;
        return;
    }
    if (s->err[0] || n > s->len - s->pos) {
        vs_check(s, false, "the section ends early");
        memset(v, 0, n);
        return;
    }
    memcpy(v, s->buf + s->pos, n);
    s->pos += n;
}

void vs_u8(struct vstate *s, uint8_t *v) { field(s, v, 1); }
void vs_u16(struct vstate *s, uint16_t *v) { field(s, v, 2); }
void vs_u32(struct vstate *s, uint32_t *v) { field(s, v, 4); }
void vs_u64(struct vstate *s, uint64_t *v) { field(s, v, 8); }
void vs_bytes(struct vstate *s, void *v, size_t n) { field(s, v, n); }

void vs_bool(struct vstate *s, bool *v)
{
    uint8_t b = *v;
    field(s, &b, 1);
    vs_check(s, b <= 1, "a flag is neither 0 nor 1");
    *v = b == 1;
}

void vs_int(struct vstate *s, int *v)
{
    int32_t x = *v;
    field(s, &x, 4);
    *v = x;
}

/* A host CLOCK_MONOTONIC time (0: none).  Saved as it is: on the same host boot the
   clock goes on, and so does guest time (the host TSC, which directly run guest code
   reads, does too).  A restore after a reboot shifts every time by s->shift_ns, so that
   the guest continues from the time it was saved at. */
void vs_time(struct vstate *s, uint64_t *ns)
{
    field(s, ns, 8);
    if (s->load && *ns)
        *ns += (uint64_t)s->shift_ns;
}

void vs_check(struct vstate *s, bool ok, const char *what)
{
    if (!ok && s->load && !s->err[0])
        snprintf(s->err, sizeof s->err, "%s: %s", s->dev ? s->dev : "state", what);
}
