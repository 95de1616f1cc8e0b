/*
 * state_sum.h - the checksum of xbt's state stream as docs/ARCHITECTURE.md ("Save and
 * restore") gives it, written from that text for the tests that damage a stream and make
 * its END section right again (tests/unit/test_api.c, tests/fuzz/fuzz_state.c): over
 * the n bytes before the END section's header, 8-byte little-endian words w (the last
 * one zero-padded) mixed into h (from 0) as h = (h ^ w) * 0x9E3779B97F4A7C15,
 * h ^= h >> 29; then n itself.  Kept apart from the library's own (src/runtime/state.c)
 * on purpose: the tests check the documented formula.
 */
#ifndef XBT_TESTS_STATE_SUM_H
#define XBT_TESTS_STATE_SUM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t state_sum_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static inline uint64_t state_sum(const uint8_t *p, size_t n)
{
    uint64_t h = 0, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = state_sum_mix(h, w);
    }
    w = 0;
    memcpy(&w, p + i, n - i);
    return state_sum_mix(state_sum_mix(h, w), n);
}

#endif
