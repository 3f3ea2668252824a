/* sampler.c: the per-epoch permutation and its partition across ranks
 * (sampler.h has the rules). Holds one cached permutation; does no I/O. */
#include "dataloader/sampler.h"

#include <stdio.h>
#include <stdlib.h>

#include "dataloader/dlrand.h"

#define SAMPLER_TAG_PERM 0x7065726dULL /* "perm" */

struct Sampler {
    SamplerConfig cfg;
    long steps;
    uint32_t *perm; /* (n) the permutation of perm_epoch; NULL in contiguous mode */
    long perm_epoch;
};

long sampler_steps_per_epoch(size_t n, int world, int batch, int drop_last, SamplerMode mode)
{
    if (n == 0 || world < 1 || batch < 1) return 0;
    if (mode == SAMPLER_CONTIGUOUS) {
        size_t per_rank = (n + (size_t)world - 1) / (size_t)world;
        return (long)((per_rank + (size_t)batch - 1) / (size_t)batch);
    }
    size_t global = (size_t)world * (size_t)batch;
    return (long)(drop_last ? n / global : (n + global - 1) / global);
}

void sampler_contiguous_range(size_t n, int world, int rank, size_t *begin, size_t *end)
{
    *begin = (size_t)((unsigned __int128)n * (unsigned)rank / (unsigned)world);
    *end = (size_t)((unsigned __int128)n * (unsigned)(rank + 1) / (unsigned)world);
}

void sampler_permutation(size_t n, uint64_t seed, long epoch, uint32_t *perm)
{
    uint64_t key = dlrand_key(seed, SAMPLER_TAG_PERM, (uint64_t)epoch, 0, 0);
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    /* Fisher-Yates from the top: the draw for position i depends only on i */
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)dlrand_below(key, i, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

Sampler *sampler_init(const SamplerConfig *cfg, char *err, size_t errlen)
{
    if (cfg->n == 0) {
        snprintf(err, errlen, "the dataset is empty: nothing to sample");
        return NULL;
    }
    if (cfg->n > UINT32_MAX) {
        snprintf(err, errlen, "the dataset has %zu items; the sampler handles at most %u", cfg->n, UINT32_MAX);
        return NULL;
    }
    if (cfg->world < 1 || cfg->rank < 0 || cfg->rank >= cfg->world) {
        snprintf(err, errlen, "rank %d is not in [0, %d)", cfg->rank, cfg->world);
        return NULL;
    }
    if (cfg->batch < 1) {
        snprintf(err, errlen, "batch %d must be at least 1", cfg->batch);
        return NULL;
    }
    long steps = sampler_steps_per_epoch(cfg->n, cfg->world, cfg->batch, cfg->drop_last, cfg->mode);
    if (steps == 0) {
        snprintf(err, errlen,
                 "the dataset has %zu items, fewer than one global batch (%d ranks x %d); "
                 "lower the batch or leave out --drop-last",
                 cfg->n, cfg->world, cfg->batch);
        return NULL;
    }
    Sampler *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory for the sampler");
        return NULL;
    }
    s->cfg = *cfg;
    s->steps = steps;
    s->perm_epoch = -1;
    if (cfg->mode == SAMPLER_SHUFFLED) {
        s->perm = malloc(cfg->n * sizeof *s->perm);
        if (!s->perm) {
            free(s);
            snprintf(err, errlen, "out of memory for a permutation of %zu items", cfg->n);
            return NULL;
        }
    }
    return s;
}

void sampler_free(Sampler *s)
{
    if (!s) return;
    free(s->perm);
    free(s);
}

long sampler_steps(const Sampler *s) { return s->steps; }

int sampler_batch(Sampler *s, long epoch, long step, size_t *idx, int *pass)
{
    const SamplerConfig *c = &s->cfg;
    int B = c->batch;
    if (c->mode == SAMPLER_CONTIGUOUS) {
        size_t begin, end;
        sampler_contiguous_range(c->n, c->world, c->rank, &begin, &end);
        size_t first = begin + (size_t)step * (size_t)B;
        int real = 0;
        for (int b = 0; b < B; b++) {
            size_t i = first + (size_t)b;
            if (step >= 0 && i < end) {
                idx[b] = i;
                real++;
            } else {
                idx[b] = SIZE_MAX;
            }
            if (pass) pass[b] = 0;
        }
        return real;
    }
    if (s->perm_epoch != epoch) {
        sampler_permutation(c->n, c->seed, epoch, s->perm);
        s->perm_epoch = epoch;
    }
    size_t base = (size_t)step * (size_t)c->world * (size_t)B + (size_t)c->rank * (size_t)B;
    for (int b = 0; b < B; b++) {
        size_t j = base + (size_t)b;
        idx[b] = s->perm[j % c->n];
        if (pass) pass[b] = (int)(j / c->n);
    }
    return B;
}
