/*
 * cpu.c - xbt-run's --cpu MODEL[,+FEATURE,-FEATURE...]: the CPUID the guest sees, in
 * QEMU's spelling (-cpu max,-smap).  `default` is xbt's CPU model as it is
 * (cpumodel.c); `max` is everything xbt implements: the model plus SMEP and SMAP, which
 * the model leaves out because a guest kernel that uses SMAP pays for every STAC/CLAC
 * pair (docs/ARCHITECTURE.md, "SMEP and SMAP").  A feature is added or taken away
 * after the model, from left to right; the result becomes each vCPU's CPUID policy
 * (xbt_vcpu_set_cpuid), which the library checks against what it implements.
 */
#include <stdio.h>
#include <string.h>

#include "vmm.h"

enum { R_1_ECX, R_1_EDX, R_7_EBX, R_7_ECX, R_7_EDX, R_X1_EDX, R_N };

static const struct {
    const char *name, *alias;
    int reg, bit;
} features[] = {
    { "smep", NULL, R_7_EBX, 7 },        { "smap", NULL, R_7_EBX, 20 },
    { "sse3", "pni", R_1_ECX, 0 },       { "ssse3", NULL, R_1_ECX, 9 },
    { "sse4.1", "sse4_1", R_1_ECX, 19 }, { "sse4.2", "sse4_2", R_1_ECX, 20 },
    { "pse", NULL, R_1_EDX, 3 },         { "pae", NULL, R_1_EDX, 6 },
    { "sep", NULL, R_1_EDX, 11 },        { "pge", NULL, R_1_EDX, 13 },
    { "arch-capabilities", NULL, R_7_EDX, 29 },
    { "umip", NULL, R_7_ECX, 2 },        { "rdpid", NULL, R_7_ECX, 22 },
    { "rdtscp", NULL, R_X1_EDX, 27 },    { "mce", NULL, R_1_EDX, 7 },
    { "mca", NULL, R_1_EDX, 14 },
};
#define N_FEATURES (sizeof features / sizeof *features)

static int find_feature(const char *name, size_t len)
{
    for (size_t i = 0; i < N_FEATURES; i++)
        if ((strlen(features[i].name) == len && !strncmp(features[i].name, name, len)) ||
            (features[i].alias && strlen(features[i].alias) == len &&
             !strncmp(features[i].alias, name, len)))
            return (int)i;
    return -1;
}

int cpu_parse(const char *arg, struct cpu_spec *s, char *err, size_t n)
{
    *s = (struct cpu_spec){ 0 };
    size_t len = strcspn(arg, ",");
    if (len == 7 && !strncmp(arg, "default", 7)) {
        /* the model */
    } else if (len == 3 && !strncmp(arg, "max", 3)) {
        s->add[R_7_EBX] = 1u << 7 | 1u << 20;
    } else {
        snprintf(err, n, "--cpu: unknown model '%.*s' (default or max)", (int)len, arg);
        return -1;
    }
    for (const char *p = arg + len; *p; p += len) {
        p++; /* the comma */
        len = strcspn(p, ",");
        int f = len > 1 && (*p == '+' || *p == '-') ? find_feature(p + 1, len - 1) : -1;
        if (f < 0) {
            snprintf(err, n, "--cpu: '%.*s' is not +FEATURE or -FEATURE with FEATURE one "
                     "of smep smap sse3 ssse3 sse4.1 sse4.2 pse pae sep pge "
                     "arch-capabilities umip rdpid rdtscp mce mca", (int)len, p);
            return -1;
        }
        uint32_t bit = 1u << features[f].bit;
        uint32_t *to = *p == '+' ? s->add : s->remove, *from = *p == '+' ? s->remove : s->add;
        to[features[f].reg] |= bit;
        from[features[f].reg] &= ~bit;
    }
    for (int r = 0; r < R_N; r++)
        s->set |= s->add[r] || s->remove[r]; /* `default` alone: the model, no policy */
    return 0;
}

/* A CPUID register r's value with s's additions and removals. */
static uint32_t adjusted(uint32_t value, const struct cpu_spec *s, int r)
{
    return (value | s->add[r]) & ~s->remove[r];
}

xbt_status cpu_apply(xbt_vcpu *c, const struct cpu_spec *s)
{
    xbt_cpuid_entry e[XBT_MAX_CPUID_ENTRIES];
    size_t n = 0;
    if (!s->set)
        return XBT_OK;
    xbt_status st = xbt_vcpu_get_cpuid(c, e, XBT_MAX_CPUID_ENTRIES, &n);
    if (st != XBT_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        if (e[i].function == 1) {
            e[i].ecx = adjusted(e[i].ecx, s, R_1_ECX);
            e[i].edx = adjusted(e[i].edx, s, R_1_EDX);
        } else if (e[i].function == 7 && e[i].index == 0) {
            e[i].ebx = adjusted(e[i].ebx, s, R_7_EBX);
            e[i].ecx = adjusted(e[i].ecx, s, R_7_ECX);
            e[i].edx = adjusted(e[i].edx, s, R_7_EDX);
        } else if (e[i].function == 0x80000001u) {
            e[i].edx = adjusted(e[i].edx, s, R_X1_EDX);
        }
    }
    return xbt_vcpu_set_cpuid(c, e, n);
}
