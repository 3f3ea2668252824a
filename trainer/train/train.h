/* train/train.h: the data-parallel training run behind `googlenet train`.
 *
 * cmd/train.c turns flags into a TrainConfig (and rejects bad ones before MPI
 * starts); train_run does the rest on every rank: dataset index (scanned on
 * rank 0, broadcast), model replica, initial weights broadcast and checked,
 * the step loop (loader -> forward -> backward with bucketed allreduce ->
 * SGD), logging, checkpoints, validation, and a clean stop on SIGTERM.
 */
#ifndef TRAINER_TRAIN_H
#define TRAINER_TRAIN_H

#include <stdint.h>

#include "comm/comm.h"
#include "dataloader/image.h"
#include "nn/sgd.h"
#include "trainer/ckpt/ckpt.h"

/* Something done every `n` steps, or every `n` epochs; n == 0: never. */
typedef struct {
    long n;
    int epochs;
} TrainEvery;

/* "N" -> N steps, "Ne" -> N epochs. 0, or -1 on anything else. */
int train_every_parse(const char *s, TrainEvery *out);

/* --conv-algo: time the algorithms per layer at the start, or a fixed one. */
typedef enum { TRAIN_CONV_AUTO, TRAIN_CONV_WINOGRAD, TRAIN_CONV_GEMM } TrainConvChoice;
/* "auto", "winograd", "gemm" -> choice; -1 when unknown. */
int train_conv_choice_parse(const char *name);
const char *train_conv_choice_name(TrainConvChoice c);

/* Every option of a run, each in the type it is (cmd/train.c parses and
 * checks the flags once, into this). */
typedef struct {
    /* data */
    const char *data, *labels, *val, *classes_file, *val_labels, *index_cache;
    int classes;          /* 0: from the data; otherwise must match it */
    int crop, batch, workers, drop_last;
    /* augmentation */
    double min_area;
    int photometric, flip;
    ImageFilter filter;   /* IMAGE_FILTER_RANDOM picks one per sample */
    float mean[3], std[3]; /* input normalisation, RGB on pixel/255 */
    /* model */
    int aux;
    double head_dropout, aux_dropout;
    /* schedule */
    int epochs;
    long steps;           /* > 0 overrides epochs */
    double lr;
    LrPolicy lr_policy;
    int lr_scale_linear;  /* --lr-scale linear: lr x global batch / lr_ref_batch */
    int lr_ref_batch;
    double warmup_epochs, gamma, step_epochs, power, final_lr_frac;
    double momentum, wd, ema_decay;
    int accum;
    int accum_given;      /* --accum was on the command line (a resume keeps it as given) */
    uint64_t seed;
    /* parallelism */
    int threads;
    TrainConvChoice conv_algo; /* the convolution plan (nn/model.h) */
    int conv_algo_given;    /* --conv-algo was on the command line */
    double bucket_mb;
    CommCompress grad_compress;
    int no_overlap;
    double timeout;
    long check_replicas;  /* compare the replicas' weights every N steps (0: only at the end) */
    /* output */
    const char *out, *trace;
    double log_every;
    int quiet;
    /* checkpoints */
    TrainEvery ckpt_every;  /* n 0: only at the end */
    int keep, ckpt_level, ckpt_threads;
    TrainEvery keep_every;
    CkptFailPolicy ckpt_fail;
    int keep_every_slim;    /* keep-every checkpoints drop the optimizer state once past --keep */
    const char *resume;     /* NULL, "auto" or a file */
    int allow_changes;      /* a resume may change settings that change the run (train/resume.h) */
    /* fine-tuning */
    const char *init;       /* NULL, or a checkpoint whose weights start a new run */
    int init_average;       /* --init-weights average (1) or raw (0): which of its weight sets */
    const char *freeze;     /* NULL, or the last layer (or module) kept fixed */
    /* validation */
    TrainEvery eval_every;  /* n 0: never */
    long eval_subset;       /* 0: the whole validation set; N: N images evenly spaced */
    int eval_crops;
    int eval_average;       /* --eval-weights average (1) or raw (0) */
    int eval_batch;
    int eval_resize;        /* 1- and 10-crop shorter side at crop 224 (256) */
    double eval_max_bad;    /* fraction of unreadable validation images tolerated */
    /* the command line, for the checkpoints' provenance */
    char command[2048];
    /* every flag's value (cli_settings_format), recorded in checkpoints and
     * compared on resume (train/resume.h) */
    char settings[8192];
} TrainConfig;

/* Every flag's default. */
TrainConfig train_default_config(void);

/* Runs on every rank; returns the process exit code (commands.h). */
int train_run(const TrainConfig *cfg, Comm *comm);

#endif
