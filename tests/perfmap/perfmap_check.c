/*
 * perfmap_check - checks a perf map xbt-run wrote (mapcheck.h) for the guest and Linux
 * tests, which take the executable view and the flush count from xbt-run --stats.
 *
 *   perfmap_check MAP VIEW_LO VIEW_HI FLUSHES [--symbol NAME | --prefix PREFIX]...
 *
 * Each --symbol must name at least one region, each --prefix begin at least one name.
 * Prints one line per finding; exit status 0 when everything holds, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapcheck.h"

static int number(const char *s, unsigned long long *v)
{
    char *e;
    *v = strtoull(s, &e, 0);
    return *s && !*e;
}

int main(int argc, char **argv)
{
    unsigned long long lo, hi, flushes;
    if (argc < 5 || !number(argv[2], &lo) || !number(argv[3], &hi) ||
        !number(argv[4], &flushes)) {
        fprintf(stderr, "usage: perfmap_check MAP VIEW_LO VIEW_HI FLUSHES [--symbol NAME | "
                        "--prefix PREFIX]...\n");
        return 2;
    }
    struct map m;
    int bad = 0;
    if (map_read(argv[1], &m) || map_check(&m, lo, hi)) {
        printf("FAIL %s: %s\n", argv[1], m.why);
        map_free(&m);
        return 1;
    }
    printf("perf map %s: %zu lines, %ld regions in the executable view, %ld generations\n",
           argv[1], m.n, m.in_cache, m.generations);
    if ((unsigned long long)m.generations != flushes + 1) {
        printf("FAIL %ld generations in the map, but the cache flushed %llu times\n",
               m.generations, flushes);
        bad = 1;
    }
    for (int i = 5; i + 1 < argc; i += 2) {
        int sym = !strcmp(argv[i], "--symbol");
        long k = sym ? map_count_symbol(&m, argv[i + 1]) : map_count_prefix(&m, argv[i + 1]);
        printf("%s %s '%s': %ld regions\n", k ? "ok  " : "FAIL", sym ? "symbol" : "prefix",
               argv[i + 1], k);
        bad |= k == 0;
    }
    map_free(&m);
    return bad;
}
