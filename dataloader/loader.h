/* loader.h: batches of decoded, augmented, normalised images for one rank.
 *
 * Worker threads decode whole samples ahead into a ring of batch buffers; the
 * caller's loader_next copies the oldest finished batch out. Every sample's
 * augmentation comes from a counter-based RNG keyed by (seed, epoch, dataset
 * index, pass), and the files a batch holds come from the sampler, so a batch
 * is bitwise the same whatever the worker count or timing. Bad files
 * (unreadable, zero bytes, truncated, not an image, over the pixel limit) are
 * replaced deterministically by another item so the batch stays full, and
 * counted. Steady state allocates nothing beyond what libjpeg needs.
 *
 * Evaluation mode (train = 0) is the one image pipeline of the project: the
 * training run's validation and `googlenet eval`/`predict` read through it.
 * Each image is decoded once and cut into 1, 10 or 144 crops (crops.h); the
 * items can be a range with a stride (a subset); and a bad file can be left
 * out and reported with its item instead of replaced (eval_skip_bad).
 * This module never prints and never exits: warnings come back as text.
 */
#ifndef DATALOADER_LOADER_H
#define DATALOADER_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "dataloader/dataset.h"
#include "dataloader/image.h"

typedef struct {
    const Dataset *ds;  /* borrowed: must outlive the loader */
    int crop;           /* output height = width (224) */
    int batch;          /* per rank */
    int rank, world;
    int workers;        /* decoding threads; 0 decodes in the caller's thread */
    int prefetch;       /* batch buffers in the ring; 0 picks workers + 1 (min 2) */
    uint64_t seed;
    int train;          /* 1: shuffled sampler + random augmentation;
                           0: contiguous shards, resize + centre crop */
    int drop_last;      /* train only: drop (1) or pad (0) the epoch's remainder */
    float mean[3], std[3];  /* RGB, on pixel/255; default IMAGE_MEAN_RGB/STD_RGB */
    ImageFilter filter;     /* training resampler (IMAGE_FILTER_RANDOM allowed) */
    ImageFilter eval_filter;/* evaluation resampler (not RANDOM) */
    /* Training augmentation (the paper's Inception crop and distortions). */
    float min_area, max_area;      /* fraction of the image area: 0.08, 1.0 */
    float min_aspect, max_aspect;  /* 3/4, 4/3 */
    int flip;                      /* random horizontal mirror */
    int photometric;               /* master switch for the four below */
    float brightness, contrast, saturation; /* factors drawn from [1-v, 1+v]: 0.4 */
    float lighting;                /* AlexNet PCA noise std: 0.1 */
    /* Evaluation: the shorter side is resized to round(crop * eval_resize / 224)
     * (256 for crop 224), then the centre crop x crop is taken. */
    int eval_resize;
    int eval_crops;        /* crops per image (crops.h): 1, 10 or 144; a batch is
                              batch images, eval_crops crops each; 0 means 1 */
    /* The items evaluation reads: position p in [0, eval_count) is item
     * eval_first + p * eval_stride (the ranks split the positions as the
     * contiguous sampler does). eval_count 0: every item from eval_first,
     * eval_stride 0 means 1. */
    size_t eval_first, eval_count, eval_stride;
    int eval_skip_bad;     /* eval mode: a bad file is not replaced but left out
                              (zero crops, label -1) and reported in
                              LoaderBatchInfo.skipped; no warning lines */
    long long max_pixels;  /* decompression-bomb limit; 0: IMAGE_MAX_PIXELS_DEFAULT */
    int warn_names;        /* bad files named in warnings over the loader's life: 5 */
} LoaderConfig;

/* Every field at its documented default; ds, batch, rank/world to be set. */
LoaderConfig loader_default_config(void);

typedef struct Loader Loader;

/* Validates the config (a dataset too small for one global batch with
 * drop_last, a crop of 0, ...) and starts the workers at epoch 0, step 0. */
Loader *loader_init(const LoaderConfig *cfg, char *err, size_t errlen);
void loader_free(Loader *L);

long loader_steps_per_epoch(const Loader *L);

/* The next batch returned is step `step` of epoch `epoch` (exact resume). */
int loader_seek(Loader *L, long epoch, long step, char *err, size_t errlen);

typedef struct {
    long epoch, step;   /* of the batch just returned */
    int real;           /* samples that are real (short last batch in eval mode) */
    double wait_s;      /* seconds loader_next blocked waiting for workers */
    int bad;            /* samples of this batch whose own file was bad and was
                           replaced: one each, however many replacements it
                           took, and none for a padding duplicate (its item
                           is counted where the epoch reads it first). Summed
                           over an epoch and its ranks: the damaged files met */
    /* Non-NULL when this batch replaced bad files still to be named (at most
     * warn_names over the loader's life): one line, valid until the next call. */
    const char *warning;
    /* (batch) the dataset item of each image, SIZE_MAX past real. */
    const size_t *items;
    /* With eval_skip_bad, (batch): NULL, or why image b could not be read or
     * decoded (its crops are zero and its label -1); else NULL. Both arrays
     * stay valid until the next call. */
    const char *const *skipped;
} LoaderBatchInfo;

/* Fills images (batch * eval_crops, 3, crop, crop) RGB normalised (image b's
 * crops at b * eval_crops, in crops.h's order; one crop in training) and
 * labels (batch); slots
 * past info->real are zero with label -1. After the last step of an epoch the
 * next call returns step 0 of the next epoch. Returns info->real, or -1 with a
 * reason (e.g. every replacement of a bad file was bad as well). */
int loader_next(Loader *L, float *images, int *labels, LoaderBatchInfo *info,
                char *err, size_t errlen);

typedef struct {
    long epoch;
    long samples;   /* samples returned so far in this epoch */
    long bad;       /* bad files met so far in this epoch (LoaderBatchInfo.bad) */
} LoaderEpochStats;

/* Counts of the epoch of the last batch returned (the epoch summary). */
void loader_epoch_stats(const Loader *L, LoaderEpochStats *out);

/* Bad files over the loader's life (all epochs). */
long loader_total_bad(const Loader *L);

#endif
