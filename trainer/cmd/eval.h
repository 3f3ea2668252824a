/* cmd/eval.h: what `googlenet predict` (cmd/predict.c) shares with `googlenet
 * eval` (cmd/eval.c): the flags, the checkpoints read by rank 0 and broadcast,
 * the model and its convolution plan, and the evaluation configuration. */
#ifndef TRAINER_CMD_EVAL_H
#define TRAINER_CMD_EVAL_H

#include <stddef.h>

#include "comm/comm.h"
#include "dataloader/dataset.h"
#include "nn/model.h"
#include "trainer/cli.h"
#include "trainer/eval/evaluate.h"

typedef struct {
    CliStrList ckpts;
    const char *data, *classes_file, *labels_file, *cache_file;
    const char *crops, *weights, *report, *filter, *norm;
    int batch, crop, workers, threads, resize, show_classes, quiet, follow;
    long subset;
    double max_bad, poll, timeout;
    const char *watch, *results;
    const char *conv_algo; /* "checkpoint" | "auto" | "winograd" | "gemm" */
} EvalArgs;

/* The defaults of the flags eval and predict share. */
void eval_args_default(EvalArgs *a);
/* The threads the network runs with: --threads, or with 0 (the default) this
 * node's cores divided among its ranks. */
int eval_threads(const EvalArgs *a);

/* ---- checkpoints: rank 0 verifies and reads, everyone gets the weights ---- */

typedef struct {
    int n;
    size_t np;
    float **sets;        /* (n) x (np) */
    char **paths;        /* (n) */
    long *steps;         /* (n) */
    char (*sha)[65];     /* (n) */
    int classes, aux, crop;
    float head_dropout, aux_dropout;
    char *class_names;   /* rank 0: the first member's, '\n'-ended; NULL when absent */
    int num_class_names;
    int has_norm;        /* the members recorded their input normalisation (all the same) */
    float mean[3], std[3];
    char plan[4096];     /* the first member's convolution plan (nn/model.h); "" when it has none */
} Ensemble;

/* Collective: rank 0 reads and verifies paths[0..n) (their Polyak averages
 * when average is set, else their last weights), every rank ends with the
 * weights. Returns 0, or -1 on every rank (the message in err on rank 0). */
int ensemble_load(Comm *c, const char *const *paths, int n, int average, Ensemble *e, char *err, size_t errlen);
void ensemble_free(Ensemble *e);

/* The evaluation model of e (crop and batch from the flags); NULL with a reason. */
Model *eval_model(const Ensemble *e, const EvalArgs *a, char *err, size_t errlen);

/* Collective, once every rank has a model: the convolution plan it runs
 * (--conv-algo). fresh: the model is new. Returns 0, or -1 with a reason. */
int eval_plan(Comm *c, Model *m, const Ensemble *e, const EvalArgs *a, int fresh, char *err, size_t errlen);

/* Progress lines on stderr (rank 0, unless quiet), every 10 s. */
typedef struct {
    double t0, last;
    int rank, quiet;
} Progress;

/* The evaluation configuration the flags give for ds and e, progress into pg;
 * 0, or -1 with a reason. */
int eval_config(const EvalArgs *a, const Dataset *ds, const Ensemble *e, EvalConfig *ec, Progress *pg, char *err,
                size_t errlen);

#endif
