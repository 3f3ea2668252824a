/* eval/evaluate.h: multi-crop, multi-model evaluation of a dataset across MPI ranks,
 * used by `googlenet eval`, `googlenet predict` and the training loop's --eval-every.
 *
 * Each rank takes the contiguous shard sampler_contiguous_range gives it and
 * reads it through the loader's evaluation mode (dataloader/loader.h): its
 * worker threads read each image once, decode it once and cut all its crops
 * (dataloader/crops.h); the caller's thread runs the network over full
 * forwards of crops. For every forward the weight sets are copied into the
 * model in turn (an ensemble reloads weights per forward: a memcpy of the
 * parameters is about 1% of the forward of a batch of 32 crops at 224, and it
 * keeps memory at a batch of probabilities instead of a shard of them, with
 * every image decoded once). Softmax probabilities are summed in double over
 * crops and models, divided by crops x models, and scored: top-1, top-5,
 * -log p(label), per class. Unreadable or undecodable images are skipped and
 * counted, never scored.
 *
 * Collective: every rank calls evaluate_run with the same configuration; the
 * counts are reduced to every rank (the caller's rank 0 prints and writes
 * reports). A failure on any rank makes evaluate_run return -1 on every rank,
 * with the failing rank's message. Functions return a status and one line in
 * err and never exit; the only output is what evaluate_print_table and
 * evaluate_json_print_string write to the FILE they are given.
 */
#ifndef TRAINER_EVALUATE_H
#define TRAINER_EVALUATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "comm/comm.h"
#include "dataloader/dataset.h"
#include "dataloader/image.h"
#include "nn/model.h"

#define EVAL_BAD_NAMES 5 /* bad files named in EvalResult.bad_names */

typedef struct {
    const Dataset *ds;     /* borrowed; the same index on every rank */
    int crops;             /* 1, 10 or 144 */
    int crop;              /* 0: the model's crop; otherwise must equal it */
    int resize;            /* 1- and 10-crop shorter side at crop 224: 256 (the loader's eval_resize) */
    ImageFilter filter;    /* IMAGE_FILTER_BILINEAR (the loader's eval_filter) */
    float mean[3], std[3]; /* RGB on pixel/255: IMAGE_MEAN_RGB / IMAGE_STD_RGB */
    int batch;             /* crops per forward; 0: the model's batch (must be <= it) */
    long subset;           /* 0: every image; N: N images evenly spaced over the set
                              (item i * floor(size / N)), for a quick look */
    int workers;           /* the loader's decode threads: 2; 0 decodes in the caller's thread */
    long long max_pixels;  /* decompression-bomb limit; 0: IMAGE_MAX_PIXELS_DEFAULT */
    double max_bad;        /* fraction of the images allowed to be unreadable: 0.01;
                              more (over all ranks) fails the evaluation; a rank
                              stops early once its own shard is clearly over */
    const char *max_bad_name; /* how the caller's user sets max_bad ("--max-bad"),
                                 named in the error; NULL: "the bad-file limit" */
    /* Optional, called in the caller's thread after each batch with this
     * rank's images done and its shard size (for progress lines). */
    void (*progress)(void *ctx, long done, long total);
    void *progress_ctx;
    /* Optional, once for each image of this rank's shard (item: its index in
     * ds) as soon as it is done: p (classes) its probabilities averaged over
     * crops and models and, with one crop and one weight set, logits (classes)
     * the network's outputs, else NULL; or p = logits = NULL and why, when the
     * image could not be read or decoded. Every call comes from the caller's
     * thread, one per image (`googlenet predict` fills one row each). */
    void (*on_image)(void *ctx, size_t item, const double *p, const float *logits, const char *why);
    void *on_image_ctx;
} EvalConfig;

/* Every field at its default; ds and crops to be set. */
EvalConfig evaluate_default_config(void);

typedef struct {
    int64_t images;        /* scored images (bad ones excluded) */
    int64_t crops;         /* crops per image x scored images x models forwarded */
    int models;            /* weight sets averaged */
    int crops_per_image;   /* 1, 10, 144 */
    int crop;              /* input size used */
    int64_t top1, top5;    /* images whose label is first / among the first five */
    double loss;           /* mean over images of -log(averaged p(label)) */
    int64_t bad;           /* images skipped as unreadable or undecodable */
    char bad_names[EVAL_BAD_NAMES][256]; /* the first few (item name: reason) */
    int nbad_names;
    double seconds;        /* wall time, the slowest rank */
    double img_per_s;      /* (images + bad) / seconds */
    int classes;
    int64_t *class_total;  /* (classes) scored images per label */
    int64_t *class_top1;   /* (classes) */
    int64_t *class_top5;   /* (classes) */
    int world;             /* ranks that took part */
    int incomplete;        /* more images were unreadable than max_bad allows (a rank may
                              have stopped early): the figures cover the images scored */
} EvalResult;

enum { EVAL_INCOMPLETE = 1 }; /* evaluate_run: scored, but over the bad-file limit */

/* Collective. Evaluates cfg->ds with model m (built with any batch >= cfg->batch,
 * training or not; only MODEL_EVAL forwards are run) averaged over the nsets
 * weight sets (model_num_params floats each), which are copied into
 * model_params(m) in turn: the caller restores its own weights afterwards. On
 * return every rank holds the reduced figures in *out (free with
 * evaluate_result_free). Returns 0; EVAL_INCOMPLETE when more images than
 * cfg->max_bad were unreadable: *out holds what was scored (out->incomplete,
 * free it too) and err says why; or -1 on every rank with a one-line message
 * in err. */
int evaluate_run(Comm *c, Model *m, const float *const *weight_sets, int nsets,
                 const EvalConfig *cfg, EvalResult *out, char *err, size_t errlen);
void evaluate_result_free(EvalResult *r);

/* What a report says about where the figures came from (all optional). */
typedef struct {
    const char *data;                /* dataset path */
    const char *weights;             /* "average" | "raw" */
    const char *const *ckpt_names;   /* (nckpt) checkpoint paths */
    const long *ckpt_steps;          /* (nckpt) or NULL */
    const char *const *ckpt_sha256;  /* (nckpt) params_sha256, or NULL */
    int nckpt;
    const Dataset *ds;               /* for class names in per-class figures; NULL: numbers */
} EvalReportInfo;

/* The figures as one JSON object (malloc'd, NUL-terminated; NULL when out of
 * memory): top1, top5 (fractions), loss, images, crops, crops_per_image,
 * models, bad, seconds, img_per_s, world, checkpoints and, when per_class is
 * set, per-class accuracy. one_line: no newlines (for JSONL). */
char *evaluate_json(const EvalResult *r, const EvalReportInfo *info, int per_class, int one_line);

/* s as a JSON string literal (quotes included) on f; the escaping of evaluate_json. */
void evaluate_json_print_string(FILE *f, const char *s);

/* Writes evaluate_json(r, info, 1, 0) to path atomically (temporary file and
 * rename). Returns 0, or -1 with a reason. */
int evaluate_report_write(const char *path, const EvalResult *r, const EvalReportInfo *info,
                          char *err, size_t errlen);

/* Prints the summary table; the worst and best `show_classes` classes by
 * top-1 (0: no per-class rows). */
void evaluate_print_table(FILE *f, const EvalResult *r, const EvalReportInfo *info, int show_classes);

#endif
