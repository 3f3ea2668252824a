/* rng.h: counter-based random numbers for initialisation and dropout.
 *
 * A value is a pure function of (key, index): no state, so the same key gives
 * the same bits whatever the thread count or the order of evaluation.
 */
#ifndef NN_RNG_H
#define NN_RNG_H

#include <stdint.h>

static inline uint64_t rng_mix(uint64_t x)
{
    /* splitmix64's finaliser: a bijection with full avalanche */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A key from a seed and up to three counters (step, layer, rank, ...). */
static inline uint64_t rng_key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    return rng_mix(rng_mix(rng_mix(seed ^ rng_mix(a)) ^ b) ^ rng_mix(c + 0x51ed27ULL));
}

static inline uint64_t rng_bits(uint64_t key, uint64_t i) { return rng_mix(key ^ rng_mix(i)); }

/* Uniform in [0, 1) with 24 random bits. */
static inline float rng_uniform(uint64_t key, uint64_t i)
{
    return (float)(rng_bits(key, i) >> 40) * (1.0f / 16777216.0f);
}

#endif
