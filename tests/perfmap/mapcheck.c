/*
 * mapcheck.c - the perf map checks of mapcheck.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapcheck.h"

#define STEP_NAME "xbt:single-step"

/* Hexadecimal digits (1 to 16, lower case, as xbt writes them) up to a space. */
static int hex_field(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    int n = 0;
    for (; (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'); s++, n++)
        x = x << 4 | (uint64_t)(*s <= '9' ? *s - '0' : *s - 'a' + 10);
    if (n == 0 || n > 16 || *s != ' ')
        return -1;
    *v = x;
    *p = s + 1;
    return 0;
}

static int parse_line(const char *line, struct map_entry *e)
{
    const char *p = line;
    if (hex_field(&p, &e->start) || hex_field(&p, &e->size) || e->size == 0)
        return -1;
    size_t n = strlen(p);
    if (n < 5 || n >= sizeof e->name || strncmp(p, "xbt:", 4))
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] > 0x7e)
            return -1;
    memcpy(e->name, p, n + 1);
    return 0;
}

int map_read(const char *path, struct map *m)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(m->why, sizeof m->why, "cannot open %s", path);
        return -1;
    }
    char line[1024];
    size_t cap = 0;
    long no = 0;
    while (fgets(line, sizeof line, f)) {
        no++;
        size_t n = strlen(line);
        if (n == 0 || line[n - 1] != '\n') {
            snprintf(m->why, sizeof m->why, "line %ld: too long or not ended", no);
            fclose(f);
            return -1;
        }
        line[n - 1] = 0;
        if (m->n == cap) {
            cap = cap ? 2 * cap : 1024;
            struct map_entry *e = realloc(m->e, cap * sizeof *e);
            if (!e) {
                fclose(f);
                snprintf(m->why, sizeof m->why, "out of memory");
                return -1;
            }
            m->e = e;
        }
        if (parse_line(line, &m->e[m->n])) {
            snprintf(m->why, sizeof m->why, "line %ld does not parse: '%.200s'", no, line);
            fclose(f);
            return -1;
        }
        m->n++;
    }
    fclose(f);
    return 0;
}

int map_check(struct map *m, uint64_t view_lo, uint64_t view_hi)
{
    m->generations = 0;
    m->in_cache = 0;
    uint64_t end = 0; /* of the previous region in the cache */
    for (size_t i = 0; i < m->n; i++) {
        const struct map_entry *e = &m->e[i];
        if (!strcmp(e->name, STEP_NAME))
            continue;
        if (e->start < view_lo || e->start >= view_hi || e->size > view_hi - e->start) {
            snprintf(m->why, sizeof m->why, "line %zu: %s at %#llx+%#llx is outside the "
                     "executable view %#llx-%#llx", i + 1, e->name,
                     (unsigned long long)e->start, (unsigned long long)e->size,
                     (unsigned long long)view_lo, (unsigned long long)view_hi);
            return -1;
        }
        if (e->start == view_lo) {
            m->generations++; /* the cache starts filling (again) */
        } else if (e->start < end || m->generations == 0) {
            snprintf(m->why, sizeof m->why, "line %zu: %.160s at %#llx overlaps the region "
                     "before it (which ends at %#llx) in generation %ld", i + 1, e->name,
                     (unsigned long long)e->start, (unsigned long long)end, m->generations);
            return -1;
        }
        end = e->start + e->size;
        m->in_cache++;
    }
    return 0;
}

/* Whether name (after "xbt:") names sym: [trace:][cplN:]sym[+0x...]. */
static int names_symbol(const char *name, const char *sym)
{
    const char *p = name + 4;
    if (!strncmp(p, "trace:", 6))
        p += 6;
    if (!strncmp(p, "cpl", 3) && p[3] >= '0' && p[3] <= '3' && p[4] == ':')
        p += 5;
    size_t n = strlen(sym);
    return !strncmp(p, sym, n) && (p[n] == 0 || !strncmp(p + n, "+0x", 3));
}

long map_count_symbol(const struct map *m, const char *sym)
{
    long k = 0;
    for (size_t i = 0; i < m->n; i++)
        k += names_symbol(m->e[i].name, sym);
    return k;
}

long map_count_prefix(const struct map *m, const char *prefix)
{
    long k = 0;
    for (size_t i = 0; i < m->n; i++)
        k += !strncmp(m->e[i].name, prefix, strlen(prefix));
    return k;
}

void map_free(struct map *m)
{
    free(m->e);
    m->e = NULL;
    m->n = 0;
}
