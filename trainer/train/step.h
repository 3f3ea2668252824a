/* train/step.h: one optimizer step, the one `train` runs and every benchmark
 * times (`bench`, `bench ckpt`), so that a benchmark measures what training
 * does.
 *
 * A step is `accum` micro-batches, each: a batch (the fetch callback, or the
 * images and labels already in place), forward, and backward of main + 0.3
 * aux1 + 0.3 aux2 with the loss divided by the global batch. During the last
 * backward the gradient buckets are allreduced as they finish (a sum over
 * ranks = the mean over the global batch). Then SGD with momentum, the Polyak
 * average (nn/sgd.h) and the position move on together under the stop lock
 * (stop.h): an emergency checkpoint sees the state before the step or after
 * it, never in between. Dropout is keyed by (seed, step, rank, micro-batch), so
 * a resumed run repeats an uninterrupted one bit for bit.
 * Nothing here prints, allocates per step or exits.
 */
#ifndef TRAINER_TRAIN_STEP_H
#define TRAINER_TRAIN_STEP_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "nn/model.h"
#include "nn/sgd.h"
#include "trainer/train/stop.h"
#include "trainer/train/trace.h"

/* Where a run is; what a checkpoint records and a resume restores. */
typedef struct {
    long step;              /* optimizer steps done */
    long epoch;             /* the epoch in progress, 0-based (steps of other shapes may precede it) */
    long epoch_step;        /* steps of it done */
    long long samples_seen;
} TrainPosition;

/* One step's figures on this rank; sums over its samples unless said. */
typedef struct {
    double loss, loss_main, loss_aux1, loss_aux2; /* loss x samples; the heads' loss sums */
    double top1, top5, samples;
    double data_wait_s, bad;        /* what fetch reported: seconds waited, files replaced */
    double comm_exposed_s, comm_s;  /* the allreduce: wait after backward, busy time */
} StepStats;

/* Fills images (batch, 3, crop, crop) and labels (batch) for micro-batch
 * `micro` of the step after *pos, and adds its data wait and bad files to
 * *stats. 0, or -1 with one line in err. */
typedef int (*TrainFetch)(void *ctx, const TrainPosition *pos, int micro, float *images, int *labels,
                          StepStats *stats, char *err, size_t errlen);

typedef struct {
    Model *model;
    SgdState *opt;             /* momentum and Polyak average of model_params */
    const LrSchedule *sched;   /* in optimizer steps */
    CommAllreducer *ar;        /* over grads [freeze_from, np); NULL: one process */
    size_t freeze_from;        /* parameters [0, freeze_from) stay fixed (finetune.h) */
    int first_trainable;       /* the first parameter tensor at or past freeze_from */
    int batch, accum;          /* images per micro-batch on this rank; micro-batches per step */
    int global_batch;          /* samples per step over every rank: the loss is divided by it */
    long steps_per_epoch;      /* 0: no epochs (benchmarks) */
    uint64_t seed;
    int rank;
    float *images;             /* (batch, 3, crop, crop) */
    int *labels;               /* (batch) */
    TrainFetch fetch;          /* NULL: images and labels stay as they are */
    void *fetch_ctx;
    TrainStop *stop;           /* may be NULL */
    Trace *trace;              /* may be NULL */
    double lr;                 /* out: the rate of the last step (changed under the stop lock) */
} TrainStep;

/* One optimizer step from *pos, which it advances (and the samples seen by
 * global_batch). Returns 1 when the step ended an epoch, 0 when not, -1 with
 * err when fetch failed (then nothing was updated; under MPI the caller must
 * abort, the other ranks wait in the allreduce). *stats is overwritten. */
int train_step(TrainStep *s, TrainPosition *pos, StepStats *stats, char *err, size_t errlen);

/* The step on one process over a batch of its own: no loader, no allreduce,
 * no stop lock; what the benchmarks time. It points into itself: do not copy
 * it after init. */
typedef struct {
    TrainStep step;
    SgdState opt;
    LrSchedule sched;          /* a fixed rate */
    TrainPosition pos;
} TrainStepLocal;

/* Over model m (built with training on, its weights as they are): momentum
 * zero, the average = the weights, images uniform in [-1, 1) from data_seed,
 * labels i % classes, dropout keyed by seed. 0, or -1 with err. */
int train_step_local_init(TrainStepLocal *l, Model *m, int batch, int classes, double lr, double momentum,
                          double weight_decay, double ema_decay, uint64_t seed, uint64_t data_seed, char *err,
                          size_t errlen);
void train_step_local_free(TrainStepLocal *l);

#endif
