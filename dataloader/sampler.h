/* sampler.h: which dataset items rank r takes at step s of epoch e.
 *
 * Shuffled mode (training): each epoch one permutation of [0, n) seeded by
 * (seed, epoch), identical on every rank. The epoch is a sequence of global
 * batches of world*batch slots; at step s rank r takes slots
 * [s*world*batch + r*batch, ... + batch). With drop_last the slots that do not
 * fill a whole global batch are dropped; without it the last global batch is
 * padded by wrapping to the head of the permutation. Either way every rank runs
 * the same number of full steps, so no rank waits for another. One rank is the
 * same rule with world = 1.
 *
 * Contiguous mode (evaluation): rank r of W takes items [r*n/W, (r+1)*n/W) in
 * order, no padding; every rank runs ceil(ceil(n/W)/batch) steps and a rank's
 * last batches may be short or empty.
 *
 * Pure functions of their arguments plus one cached permutation; no I/O.
 */
#ifndef DATALOADER_SAMPLER_H
#define DATALOADER_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SAMPLER_SHUFFLED = 0, SAMPLER_CONTIGUOUS = 1 } SamplerMode;

typedef struct {
    size_t n;        /* dataset size */
    int world, rank; /* 0 <= rank < world */
    int batch;       /* per rank */
    int drop_last;   /* shuffled mode only */
    SamplerMode mode;
    uint64_t seed;
} SamplerConfig;

typedef struct Sampler Sampler;

/* Steps per epoch, the same on every rank. 0 when drop_last leaves nothing
 * (n < world*batch). */
long sampler_steps_per_epoch(size_t n, int world, int batch, int drop_last, SamplerMode mode);

/* Items [*begin, *end) of rank r in contiguous mode. */
void sampler_contiguous_range(size_t n, int world, int rank, size_t *begin, size_t *end);

/* NULL with a reason when the config is impossible (rank out of range, an
 * empty epoch). */
Sampler *sampler_init(const SamplerConfig *cfg, char *err, size_t errlen);
void sampler_free(Sampler *s);
long sampler_steps(const Sampler *s);

/* Fills idx[0..batch) with the dataset indices of (epoch, step) for this rank
 * and returns how many are real: batch in shuffled mode, possibly fewer (down
 * to 0) in contiguous mode, where idx[real..batch) are left as SIZE_MAX.
 * pass[] (may be NULL) receives how many times the slot wrapped around the
 * permutation (0, or 1 for padding), so padded duplicates can be told apart.
 * Not thread-safe (it caches the epoch's permutation). */
int sampler_batch(Sampler *s, long epoch, long step, size_t *idx, int *pass);

/* The permutation of epoch `epoch` for n items and `seed` into perm[0..n). */
void sampler_permutation(size_t n, uint64_t seed, long epoch, uint32_t *perm);

#endif
