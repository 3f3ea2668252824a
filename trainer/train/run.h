/* train/run.h: the state of one training run on one rank, shared by the
 * files of trainer/train/ (internal: nothing outside them includes it).
 *
 * setup.c builds a Run (output directory, data, model, start position,
 * loader, schedule, allreducer, writer, logs); train.c runs the loop over
 * train_step (step.h) with logging, checkpoints and validation.
 * Functions here are collective unless said, return 0 or -1 with one line in
 * (err, errlen) and print nothing but progress on rank 0.
 */
#ifndef TRAINER_TRAIN_RUN_H
#define TRAINER_TRAIN_RUN_H

#include <stdio.h>

#include "dataloader/dataset.h"
#include "dataloader/loader.h"
#include "nn/model.h"
#include "nn/sgd.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/train/resume.h"
#include "trainer/train/step.h"
#include "trainer/train/stop.h"
#include "trainer/train/trace.h"
#include "trainer/train/train.h"

typedef struct {
    const TrainConfig *cfg;
    Comm *comm;
    int rank, world;
    Dataset *train_ds, *val_ds;
    Loader *loader;
    Model *model;
    size_t np;
    SgdState opt;         /* momentum and Polyak average, (np) each */
    float *backup;        /* (np): the training weights while validation borrows the model */
    float *images;        /* (batch, 3, crop, crop) */
    int *labels;          /* (batch) */
    CommAllreducer *ar;
    CkptWriter *writer;
    Trace *trace;
    LrSchedule sched;
    TrainStep step;       /* the step's set-up; step.lr is the rate of the last step */
    TrainShape shape;     /* accum, global batch, steps per epoch, total steps */
    long loader_batches_per_epoch;
    TrainPosition pos;    /* changed only under the stop lock (stop.h) */
    /* fine-tuning: parameters [0, freeze_from) stay fixed (tensors before first_trainable) */
    size_t freeze_from;
    int first_trainable;
    /* stopping: the emergency thread (rank 0) and what it may write */
    TrainStop *stop;
    const float *live_weights; /* the training weights: the model's, or backup while validation borrows it */
    long saved_step;      /* the step of the newest complete checkpoint (-1: none) */
    /* a start that fails (or finds the run complete) removes what it made in --out */
    char out_existed[4096]; /* rank 0: the deepest part of --out's path that existed before */
    int cache_made[2], metrics_made, started;
    char data_digest[17];
    char *class_names;    /* the training set's, each ended by '\n' */
    FILE *metrics;        /* rank 0: OUT/metrics.jsonl */
    int tty;
    int usage;            /* the failure was a bad combination of flags and data */
    double t_start;
    char conv_plan[4096];   /* the convolution plan every rank runs (nn/model.h) */
    char resume_plan[4096]; /* rank 0: the resumed checkpoint's, "" when it has none */
} Run;

/* setup.c, in this order. Each returns 0, or -1 on every rank with the
 * agreed message in err (comm_agree). */
/* The output directory, the datasets and their index caches. */
int run_setup_data(Run *r, char *err, size_t errlen);
/* The model replica and the optimizer state. */
int run_setup_model(Run *r, char *err, size_t errlen);
/* Where every rank starts: r->shape and r->pos, the state in the buffers on
 * rank 0. 1 when the run is already complete. */
int run_start_point(Run *r, char *err, size_t errlen);
/* Loader, schedule, allreducer, checkpoint writer, metrics and trace, and
 * the step, for the shape run_start_point settled. */
int run_setup_loop(Run *r, char *err, size_t errlen);
/* Rank 0's state goes to every rank, which checks it holds the same bits;
 * then the convolution plan. */
int run_share_state(Run *r, char *err, size_t errlen);
/* Rank 0, when no step was trained (a failed start, or a complete run):
 * removes what this start made in --out, so that it is as it was. Local. */
void run_undo_start(Run *r);

#endif
