/* train/train.h: the data-parallel training run behind `googlenet train`.
 *
 * cmd_train.c turns flags into a TrainConfig (and rejects bad ones before MPI
 * starts); train_run does the rest on every rank: dataset index (scanned on
 * rank 0, broadcast), model replica, initial weights broadcast and checked,
 * the step loop (loader -> forward -> backward with bucketed allreduce ->
 * SGD), logging, checkpoints, validation, and a clean stop on SIGTERM.
 */
#ifndef TRAINER_TRAIN_H
#define TRAINER_TRAIN_H

#include "comm/comm.h"

typedef struct {
    /* data */
    const char *data, *labels, *val, *classes_file, *val_labels, *index_cache;
    int classes;          /* 0: from the data; otherwise must match it */
    int crop, batch, workers, drop_last;
    /* augmentation */
    double min_area;
    int photometric, flip;
    const char *interp;   /* a filter name or "random" */
    float mean[3], std[3]; /* input normalisation, RGB on pixel/255 */
    /* model */
    int aux;
    double head_dropout, aux_dropout;
    /* schedule */
    int epochs;
    long steps;           /* > 0 overrides epochs */
    double lr;
    const char *lr_policy;
    const char *lr_scale; /* "none" | "linear" */
    int lr_ref_batch;
    double warmup_epochs, gamma, step_epochs, power, final_lr_frac;
    double momentum, wd, ema_decay;
    int accum;
    int accum_given;      /* --accum was on the command line (a resume keeps it as given) */
    unsigned long long seed;
    /* parallelism */
    int threads;
    const char *conv_algo;  /* "auto" | "winograd" | "gemm" (nn/model.h: the convolution plan) */
    int conv_algo_given;    /* --conv-algo was on the command line */
    double bucket_mb;
    const char *grad_compress;
    int no_overlap;
    double timeout;
    long check_replicas;  /* compare the replicas' weights every N steps (0: only at the end) */
    /* output */
    const char *out, *trace;
    double log_every;
    int quiet;
    /* checkpoints */
    const char *ckpt_every; /* "N" steps, "Ne" epochs, "0" off */
    int keep, ckpt_level, ckpt_threads;
    const char *keep_every; /* "M" steps or "Me" epochs */
    const char *ckpt_fail;  /* "continue" | "stop" */
    int keep_every_slim;    /* keep-every checkpoints drop the optimizer state once past --keep */
    const char *resume;     /* NULL, "auto" or a file */
    int allow_changes;      /* a resume may change settings that change the run (train_resume.h) */
    /* fine-tuning */
    const char *init;       /* NULL, or a checkpoint whose weights start a new run */
    const char *init_weights; /* "average" | "raw": which of its weight sets */
    const char *freeze;     /* NULL, or the last layer (or module) kept fixed */
    /* validation */
    const char *eval_every; /* "N" steps, "Ne" epochs, "0" off */
    long eval_subset;       /* 0: the whole validation set; N: N images evenly spaced */
    int eval_crops;
    const char *eval_weights; /* "average" | "raw" */
    int eval_batch;
    int eval_resize;        /* 1- and 10-crop shorter side at crop 224 (256) */
    double eval_max_bad;    /* fraction of unreadable validation images tolerated */
    /* the command line, for the checkpoints' provenance */
    char command[2048];
    /* every flag's value (cli_settings_format), recorded in checkpoints and
     * compared on resume (train_resume.h) */
    char settings[8192];
} TrainConfig;

/* Every flag's default. */
TrainConfig train_default_config(void);

/* Runs on every rank; returns the process exit code (commands.h). */
int train_run(const TrainConfig *cfg, Comm *comm);

#endif
