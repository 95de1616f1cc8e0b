/*
 * mapcheck.h - reads a perf map written by xbt (XBT_VM_PERF_MAP) and checks it:
 *   - every line is "START SIZE NAME": hexadecimal without 0x, SIZE > 0, NAME "xbt:..."
 *     without spaces or control characters;
 *   - every region but the single-step page lies inside the code cache's executable
 *     view [view_lo, view_hi);
 *   - within one cache generation the regions follow one another upwards without
 *     overlapping; a generation starts at view_lo (the cache fills from its start after
 *     each flush), so the number of generations is the number of flushes plus one.
 * Used by the Check suite (test_perfmap.c) and by perfmap_check, the command the
 * guest and Linux tests run on xbt-run's map.
 */
#ifndef XBT_TESTS_MAPCHECK_H
#define XBT_TESTS_MAPCHECK_H

#include <stddef.h>
#include <stdint.h>

struct map_entry {
    uint64_t start, size;
    char name[300];
};

struct map {
    struct map_entry *e;
    size_t n;
    long generations;    /* filled by map_check */
    long in_cache;       /* regions inside the view */
    char why[400];       /* the first problem found */
};

/* Reads path; 0, or -1 with the reason (a line that does not parse) in m->why. */
int map_read(const char *path, struct map *m);
/* The checks above; 0, or -1 with the first problem in m->why. */
int map_check(struct map *m, uint64_t view_lo, uint64_t view_hi);
/* How many regions are named after symbol sym (xbt:[trace:][cplN:]sym or sym+0x...). */
long map_count_symbol(const struct map *m, const char *sym);
/* How many names start with prefix. */
long map_count_prefix(const struct map *m, const char *prefix);
void map_free(struct map *m);

#endif
