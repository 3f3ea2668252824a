/* dlrand.h: counter-based random numbers for the data loader (shuffles,
 * augmentation, replacement of bad files).
 *
 * A value is a pure function of (key, counter): no state, so a sample's random
 * choices do not depend on which thread made them or when. The same splitmix64
 * finaliser nn/rng.h uses, kept here because dataloader/ includes nothing from
 * nn/. No I/O, nothing else.
 */
#ifndef DATALOADER_DLRAND_H
#define DATALOADER_DLRAND_H

#include <stdint.h>

static inline uint64_t dlrand_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A key from a seed, a purpose tag and up to three counters. */
static inline uint64_t dlrand_key(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t k = dlrand_mix(seed ^ dlrand_mix(tag));
    k = dlrand_mix(k ^ a);
    k = dlrand_mix(k ^ dlrand_mix(b + 0x51ed27ULL));
    return dlrand_mix(k ^ dlrand_mix(c + 0x2545f491ULL));
}

static inline uint64_t dlrand_bits(uint64_t key, uint64_t i) { return dlrand_mix(key ^ dlrand_mix(i)); }

/* Uniform in [0, 1) with 53 random bits. */
static inline double dlrand_uniform(uint64_t key, uint64_t i)
{
    return (double)(dlrand_bits(key, i) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n > 0 (multiply-shift; the bias is below 2^-32). */
static inline uint64_t dlrand_below(uint64_t key, uint64_t i, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)dlrand_bits(key, i) * n) >> 64);
}

#endif
