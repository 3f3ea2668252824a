/* train/train.c: the training run on every rank (see train.h).
 *
 * One optimizer step: `accum` micro-batches from this rank's shard, each a
 * forward and backward of main + 0.3 aux1 + 0.3 aux2 with the loss scaled by
 * 1 / global batch; during the last backward the gradient buckets are
 * allreduced as they finish (a sum over ranks = the mean over the global
 * batch); then every replica applies the same SGD update and Polyak average.
 * Every random choice is a pure function of (seed, epoch, step, rank, sample),
 * so a resumed run repeats an uninterrupted one bit for bit.
 */
#include "trainer/train/train.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "comm/clock.h"
#include "dataloader/dataset.h"
#include "dataloader/loader.h"
#include "nn/conv.h"
#include "nn/model.h"
#include "nn/rng.h"
#include "nn/sgd.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/ckpt/hash.h"
#include "trainer/commands.h"
#include "trainer/eval/evaluate.h"
#include "trainer/train/finetune.h"
#include "trainer/train/trace.h"
#include "trainer/train/resume.h"
#include "trainer/train/stop.h"
#include "trainer/runtime.h"

#define ERR_LEN 512

TrainConfig train_default_config(void)
{
    TrainConfig c = {
        .crop = 224, .batch = 32, .workers = 2, .drop_last = 0,
        .min_area = 0.08, .photometric = 1, .flip = 1, .interp = "random",
        .mean = IMAGE_MEAN_RGB, .std = IMAGE_STD_RGB,
        .aux = 1, .head_dropout = 0.4, .aux_dropout = 0.7,
        .epochs = 60, .lr = 0.01, .lr_policy = "poly", .lr_scale = "none", .lr_ref_batch = 32,
        .warmup_epochs = 0, .gamma = 0.96, .step_epochs = 8, .power = 0.5, .final_lr_frac = 0,
        .momentum = 0.9, .wd = 2e-4, .ema_decay = 0.9999, .accum = 1, .seed = 1,
        .threads = 0, .bucket_mb = 25, .grad_compress = "none", .timeout = COMM_DEFAULT_TIMEOUT,
        .conv_algo = "auto",
        .out = "runs/train", .log_every = 10, .ckpt_every = "1e", .keep = 5, .keep_every = "0",
        .ckpt_fail = "continue", .ckpt_level = 3, .ckpt_threads = 1,
        .eval_every = "1e", .eval_crops = 1, .eval_weights = "average", .eval_batch = 0, .eval_max_bad = 0.01, .eval_resize = 256,
        .init_weights = "average",
    };
    return c;
}

/* ---- agreement across ranks ---- */

/* Collective. 0 when rc == 0 on every rank; otherwise rank 0 prints the first
 * rank's message and every rank gets -1, so all can leave together. */
static int agree(Comm *c, int rc, const char *err)
{
    if (!comm_any(c, rc != 0, "error check")) return 0;
    int n = comm_size(c);
    char *all = calloc((size_t)n, ERR_LEN);
    if (!all) comm_abort(c, EXIT_FAIL, "out of memory reporting an error: %s", rc ? err : "");
    comm_allgather_string(c, rc ? err : "", all, ERR_LEN, "error messages");
    if (comm_rank(c) == 0)
        for (int r = 0; r < n; r++)
            if (all[(size_t)r * ERR_LEN]) {
                if (n > 1) fprintf(stderr, "googlenet train: [rank %d] %s\n", r, all + (size_t)r * ERR_LEN);
                else fprintf(stderr, "googlenet train: %s\n", all);
                break;
            }
    free(all);
    return -1;
}

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

/* Rank 0 opens (or reads the cache of) the dataset; the others get its index.
 * *cache_made: rank 0 wrote a cache file that was not there. */
static Dataset *open_dataset(Comm *c, const char *path, const char *classes_file,
                             const char *labels, const char *cache, int *cache_made, char *err)
{
    Dataset *ds = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = 0;
    if (comm_rank(c) == 0) {
        DatasetOptions o = {.path = path, .classes_file = classes_file, .labels_file = labels,
                            .cache_file = cache};
        int had = cache && file_exists(cache);
        ds = dataset_open(&o, err, ERR_LEN);
        if (cache && !had && file_exists(cache)) *cache_made = 1;
        if (!ds) rc = -1;
        else if (comm_size(c) > 1 && dataset_serialize(ds, &buf, &len, err, ERR_LEN) != 0) rc = -1;
    }
    if (agree(c, rc, err) != 0) {
        dataset_free(ds);
        free(buf);
        return NULL;
    }
    if (comm_size(c) == 1) return ds;
    int64_t n = (int64_t)len;
    comm_allreduce_int64(c, &n, 1, COMM_MAX, "dataset index size");
    if (comm_rank(c) != 0) {
        buf = malloc((size_t)n);
        if (!buf) comm_abort(c, EXIT_FAIL, "out of memory for a %lld-byte dataset index", (long long)n);
    }
    comm_broadcast(c, buf, (size_t)n, "dataset index");
    if (comm_rank(c) != 0) {
        ds = dataset_deserialize(buf, (size_t)n, err, ERR_LEN);
        rc = ds ? 0 : -1;
    }
    free(buf);
    if (agree(c, rc, err) != 0) {
        dataset_free(ds);
        return NULL;
    }
    return ds;
}

/* ---- the run's state ---- */

typedef struct {
    const TrainConfig *cfg;
    Comm *comm;
    int rank, world;
    Dataset *train_ds, *val_ds;
    Loader *loader;
    Model *model;
    size_t np;
    float *momentum, *average, *backup; /* (np) each */
    float *images;                      /* (batch, 3, crop, crop) */
    int *labels;                        /* (batch) */
    CommAllreducer *ar;
    CkptWriter *writer;
    Trace *trace;
    LrSchedule sched;
    int accum;           /* micro-batches per step: --accum, or what keeps a resumed run's global batch */
    long spe;            /* optimizer steps per epoch */
    long loader_spe;     /* loader batches per epoch */
    long total_steps;
    long step;           /* optimizer steps done */
    long epoch;          /* the epoch in progress, 0-based (steps of other shapes may precede it) */
    long epoch_step;     /* steps of it done */
    long long samples_seen;
    int global_batch;    /* samples per optimizer step, all ranks */
    double lr;
    /* fine-tuning: parameters [0, freeze_from) stay fixed (tensors before first_trainable) */
    size_t freeze_from;
    int first_trainable;
    /* stopping: the emergency thread (rank 0) and what it may write */
    TrainStop *stop;
    const float *live_weights; /* the training weights: the model's, or backup while validation borrows it */
    long saved_step;     /* the step of the newest complete checkpoint (-1: none) */
    /* a start that fails (or finds the run complete) removes what it made in --out */
    char out_existed[4096]; /* rank 0: the deepest part of --out's path that existed before */
    int cache_made[2], metrics_made, started;
    char data_digest[17];
    char *class_names;   /* the training set's, each ended by '\n' */
    /* checkpoints */
    long ckpt_every, eval_every;
    int ckpt_every_epochs, eval_every_epochs;
    FILE *metrics;       /* rank 0: OUT/metrics.jsonl */
    int tty;
    int usage;           /* the failure was a bad combination of flags and data */
    double t_start;
    char out_dir[4096];
    char conv_plan[4096];  /* the convolution plan every rank runs (nn/model.h) */
    char resume_plan[4096]; /* rank 0: the resumed checkpoint's, "" when it has none */
} Run;

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p */
static int make_dirs(const char *path, char *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) goto fail;
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) goto fail;
    if (!is_dir(tmp)) {
        errno = ENOTDIR;
        goto fail;
    }
    return 0;
fail:
    snprintf(err, ERR_LEN, "cannot create the output directory %s: %s (choose another --out)", path,
             strerror(errno));
    return -1;
}

/* "N" -> N steps, "Ne" -> N epochs; 0 off. -1 on a bad value. */
static int parse_every(const char *s, long *n, int *epochs)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v < 0) return -1;
    *epochs = 0;
    if (*end == 'e') {
        *epochs = 1;
        end++;
    }
    if (*end) return -1;
    *n = v;
    return 0;
}

static void fill_meta(Run *r, CkptMeta *m)
{
    const TrainConfig *cfg = r->cfg;
    ckpt_meta_init(m);
    m->step = r->step;
    m->epoch = r->epoch;
    m->epoch_step = r->epoch_step;
    m->epoch_samples = (long long)m->epoch_step * r->global_batch;
    m->samples_seen = r->samples_seen;
    m->seed = cfg->seed;
    m->world_size = r->world;
    m->batch = cfg->batch;
    m->accum = r->accum;
    ckpt_meta_set_model(m, model_config(r->model), r->np);
    m->lr = r->sched;
    m->last_lr = r->lr;
    m->momentum = cfg->momentum;
    m->weight_decay = cfg->wd;
    m->ema_decay = cfg->ema_decay;
    m->dataset_size = (long long)dataset_size(r->train_ds);
    m->drop_last = cfg->drop_last;
    snprintf(m->command, sizeof m->command, "%s", cfg->command);
    char err[ERR_LEN];
    ckpt_meta_set_norm(m, cfg->mean, cfg->std, err, sizeof err);
    ckpt_meta_add_extra(m, "conv_plan", r->conv_plan, err, sizeof err);
    ckpt_meta_add_extra(m, "train_settings", cfg->settings, err, sizeof err);
    ckpt_meta_add_extra(m, "data_digest", r->data_digest, err, sizeof err);
    int nc = dataset_num_classes(r->train_ds);
    const char **names = malloc(sizeof(char *) * (size_t)nc);
    if (names) {
        for (int i = 0; i < nc; i++) names[i] = dataset_class_name(r->train_ds, i);
        ckpt_meta_set_class_names(m, names, nc, err, sizeof err);
        free(names);
    }
}

/* Rank 0 hands the state to the writer thread; returns -1 when the policy says stop. */
static int save_checkpoint(Run *r)
{
    if (r->rank != 0 || !r->writer) return 0;
    double t0 = clock_now();
    CkptMeta m;
    fill_meta(r, &m);
    char err[ERR_LEN];
    int rc = ckpt_writer_save(r->writer, &m, model_params(r->model), r->momentum, r->average, err,
                              sizeof err);
    ckpt_meta_free(&m);
    trace_event(r->trace, "checkpoint copy", 0, t0, clock_now(), r->step);
    if (rc != 0) {
        fprintf(stderr, "googlenet train: checkpoint at step %ld: %s\n", r->step, err);
        return strcmp(r->cfg->ckpt_fail, "stop") == 0 ? -1 : 0;
    }
    return 0;
}

/* Rank 0: the writer's failures since the last look. -1 when training must stop. */
static int check_writer(Run *r, int wait)
{
    if (r->rank != 0 || !r->writer) return 0;
    char err[ERR_LEN];
    int rc = wait ? ckpt_writer_wait(r->writer, err, sizeof err) : ckpt_writer_poll(r->writer, err, sizeof err);
    if (rc == CKPT_POLL_OK) return 0;
    fprintf(stderr, "googlenet train: %s\n", err);
    return rc == CKPT_POLL_STOP ? -1 : 0;
}

/* Emergency thread (train_stop.h), state locked: the last completed step. */
static int snapshot(void *ctx, CkptMeta *m, const float **w, const float **mom, const float **avg)
{
    Run *r = ctx;
    ckpt_meta_free(m);
    fill_meta(r, m);
    *w = r->live_weights;
    *mom = r->momentum;
    *avg = r->average;
    CkptWriterStats ws;
    ckpt_writer_stats(r->writer, &ws);
    if (r->step == 0 && r->saved_step < 0) return TRAIN_STOP_NOTHING;
    return r->step == r->saved_step || r->step == ws.last_step ? TRAIN_STOP_ON_DISK : 0;
}

/* Rank 0, after a SIGTERM or SIGINT stop: the final checkpoint at once,
 * uncompressed (the launcher may kill the job in a second). */
static int save_urgent(Run *r)
{
    if (r->rank != 0 || !r->writer) return 0;
    CkptWriterStats ws;
    CkptMeta m;
    char err[ERR_LEN];
    double secs = 0;
    int rc = 0;
    train_stop_lock(r->stop);
    ckpt_writer_stats(r->writer, &ws);
    if (ws.last_step != r->step) { /* else the emergency thread wrote this step */
        fill_meta(r, &m);
        rc = ckpt_writer_save_now(r->writer, &m, r->live_weights, r->momentum, r->average, &secs, err, sizeof err);
        ckpt_meta_free(&m);
    }
    train_stop_unlock(r->stop);
    if (rc != 0) fprintf(stderr, "googlenet train: the checkpoint of step %ld after %s failed: %s\n", r->step,
                         train_stop_name(train_stop_signal()), err);
    return rc;
}

/* ---- logging ---- */

typedef struct {
    double v[12]; /* see metric_slot */
    double seconds;
    long steps;
} Interval;

enum {
    M_LOSS, M_MAIN, M_AUX1, M_AUX2, M_TOP1, M_TOP5, M_SAMPLES,
    M_WAIT, M_EXPOSED, M_COMM, M_STOP, M_BAD, M_COUNT
};

static void fmt_duration(double s, char *out, size_t len)
{
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, len, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(out, len, "%ldm%02lds", t / 60, t % 60);
    else snprintf(out, len, "%lds", t);
}

/* Rank 0: a progress bar (terminal) or a plain line, and one metrics.jsonl object. */
static void log_interval(Run *r, const Interval *iv, int final_line)
{
    const TrainConfig *cfg = r->cfg;
    double n = iv->v[M_SAMPLES] > 0 ? iv->v[M_SAMPLES] : 1;
    double loss = iv->v[M_LOSS] / n, top1 = iv->v[M_TOP1] / n;
    double img_s = iv->seconds > 0 ? iv->v[M_SAMPLES] / iv->seconds : 0;
    double wait = iv->seconds > 0 ? iv->v[M_WAIT] / r->world / iv->seconds : 0;
    double exposed = iv->seconds > 0 ? iv->v[M_EXPOSED] / r->world / iv->seconds : 0;
    double busy = iv->seconds > 0 ? iv->v[M_COMM] / r->world / iv->seconds : 0;
    double elapsed = clock_now() - r->t_start;
    double per_step = iv->steps > 0 ? iv->seconds / iv->steps : 0;
    double eta = per_step * (double)(r->total_steps - r->step);
    /* the step just done: epoch (1-based) and its place in it, as every message says it */
    long epoch1 = r->epoch_step == 0 ? r->epoch : r->epoch + 1;
    long in_epoch = r->epoch_step == 0 ? r->spe : r->epoch_step;
    char eta_s[32];
    fmt_duration(eta, eta_s, sizeof eta_s);
    if (r->metrics) {
        fprintf(r->metrics,
                "{\"step\":%ld,\"epoch\":%ld,\"epoch_step\":%ld,\"epochs_done\":%.4f,\"loss\":%.6f,"
                "\"loss_main\":%.6f,\"loss_aux1\":%.6f,\"loss_aux2\":%.6f,\"top1\":%.6f,\"top5\":%.6f,"
                "\"lr\":%.8g,\"img_per_s\":%.3f,\"data_wait\":%.4f,\"comm_exposed\":%.4f,\"comm_busy\":%.4f,"
                "\"elapsed_s\":%.2f,\"eta_s\":%.1f}\n",
                r->step, epoch1, in_epoch, r->epoch + (double)r->epoch_step / r->spe, loss, iv->v[M_MAIN] / n,
                iv->v[M_AUX1] / n, iv->v[M_AUX2] / n, top1, iv->v[M_TOP5] / n, r->lr, img_s, wait, exposed, busy,
                elapsed, eta);
        fflush(r->metrics);
    }
    if (cfg->quiet) return;
    if (r->tty) {
        int width = 24, fill = (int)(width * (double)in_epoch / r->spe);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r\033[Kstep %ld/%ld  epoch %ld [%s] %ld/%ld  loss %.4f  top1 %.1f%%  %.1f img/s  ETA %s",
                r->step, r->total_steps, epoch1, bar, in_epoch, r->spe, loss, 100 * top1, img_s, eta_s);
        if (final_line) fputc('\n', stderr);
        fflush(stderr);
        return;
    }
    printf("step %ld/%ld (epoch %ld: %ld/%ld)  loss %.4f (main %.4f aux1 %.4f aux2 %.4f)  top1 %.1f%%  lr %.5g  "
           "%.1f img/s  data %.0f%%  comm %.0f%%  ETA %s\n",
           r->step, r->total_steps, epoch1, in_epoch, r->spe, loss, iv->v[M_MAIN] / n, iv->v[M_AUX1] / n,
           iv->v[M_AUX2] / n, 100 * top1, r->lr, img_s, 100 * wait, 100 * exposed, eta_s);
    fflush(stdout);
}

/* ---- validation ---- */

/* Collective: evaluates the validation set with the weights cfg->eval_weights
 * names, logs the figures, restores the training weights. */
static int validate(Run *r)
{
    const TrainConfig *cfg = r->cfg;
    if (!r->val_ds) return 0;
    double t0 = clock_now();
    float *w = model_params(r->model);
    const float *set = w;
    if (strcmp(cfg->eval_weights, "average") == 0) {
        /* the model's weights are borrowed: an emergency checkpoint meanwhile takes the copy */
        memcpy(r->backup, w, r->np * sizeof(float));
        train_stop_lock(r->stop);
        r->live_weights = r->backup;
        train_stop_unlock(r->stop);
        set = r->average;
    }
    EvalConfig ec = evaluate_default_config();
    ec.ds = r->val_ds;
    ec.crops = cfg->eval_crops;
    ec.crop = cfg->crop;
    ec.batch = cfg->eval_batch > 0 ? cfg->eval_batch : cfg->batch;
    ec.workers = cfg->workers;
    memcpy(ec.mean, cfg->mean, sizeof ec.mean);
    memcpy(ec.std, cfg->std, sizeof ec.std);
    ec.max_bad = cfg->eval_max_bad;
    ec.resize = cfg->eval_resize;
    ec.subset = cfg->eval_subset;
    ec.max_bad_name = "--eval-max-bad";
    EvalResult res;
    char err[ERR_LEN];
    const float *sets[1] = {set};
    int rc = evaluate_run(r->comm, r->model, sets, 1, &ec, &res, err, sizeof err);
    if (set != w) {
        train_stop_lock(r->stop);
        memcpy(w, r->backup, r->np * sizeof(float));
        r->live_weights = w;
        train_stop_unlock(r->stop);
    }
    trace_event(r->trace, "evaluation", 0, t0, clock_now(), r->step);
    if (agree(r->comm, rc, err) != 0) {
        evaluate_result_free(&res);
        return -1;
    }
    if (r->rank == 0) {
        double top1 = res.images ? (double)res.top1 / res.images : 0;
        double top5 = res.images ? (double)res.top5 / res.images : 0;
        if (r->tty && !cfg->quiet) fputc('\n', stderr);
        char pos[128];
        train_format_position(r->step, r->epoch, r->epoch_step, r->spe, pos, sizeof pos);
        if (!cfg->quiet)
            printf("validation after %s, %s weights, %d crop%s: top-1 %.2f%%  top-5 %.2f%%  "
                   "loss %.4f  (%lld images, %lld unreadable, %.1f s)\n",
                   pos, cfg->eval_weights, cfg->eval_crops, cfg->eval_crops == 1 ? "" : "s", 100 * top1,
                   100 * top5, res.loss, (long long)res.images, (long long)res.bad, res.seconds);
        if (r->metrics) {
            fprintf(r->metrics,
                    "{\"step\":%ld,\"epoch\":%ld,\"epoch_step\":%ld,\"epochs_done\":%.4f,\"val_top1\":%.6f,"
                    "\"val_top5\":%.6f,\"val_loss\":%.6f,\"val_images\":%lld,\"val_crops\":%d,"
                    "\"val_weights\":\"%s\",\"val_seconds\":%.2f}\n",
                    r->step, r->epoch_step == 0 ? r->epoch : r->epoch + 1, r->epoch_step == 0 ? r->spe : r->epoch_step,
                    r->epoch + (double)r->epoch_step / r->spe, top1, top5, res.loss, (long long)res.images,
                    cfg->eval_crops, cfg->eval_weights, res.seconds);
            fflush(r->metrics);
        }
    }
    evaluate_result_free(&res);
    return 0;
}

/* ---- set-up ---- */

static ImageFilter filter_from(const char *name)
{
    ImageFilter f = IMAGE_FILTER_RANDOM;
    image_filter_parse(name, &f);
    return f;
}

/* Rank 0: a digest of the training set's items and labels, so that a resume
 * over other data of the same size is noticed; and its class names. */
static int describe_data(Run *r, char *err)
{
    const Dataset *ds = r->train_ds;
    Xxh64 x;
    xxh64_init(&x, 0);
    for (size_t i = 0; i < dataset_size(ds); i++) {
        int32_t label = dataset_label(ds, i);
        const char *name = dataset_item_name(ds, i);
        xxh64_update(&x, &label, sizeof label);
        xxh64_update(&x, name, strlen(name) + 1);
    }
    snprintf(r->data_digest, sizeof r->data_digest, "%016llx", (unsigned long long)xxh64_digest(&x));
    size_t len = 1;
    int nc = dataset_num_classes(ds);
    for (int k = 0; k < nc; k++) len += strlen(dataset_class_name(ds, k)) + 1;
    if (!(r->class_names = malloc(len))) {
        snprintf(err, ERR_LEN, "out of memory for the class names");
        return -1;
    }
    size_t at = 0;
    for (int k = 0; k < nc; k++) at += (size_t)sprintf(r->class_names + at, "%s\n", dataset_class_name(ds, k));
    r->class_names[at] = '\0';
    return 0;
}

/* The output directory, the datasets and their index caches. */
static int setup_data(Run *r, char *err)
{
    const TrainConfig *cfg = r->cfg;
    Comm *c = r->comm;
    int rc = 0;
    if (r->rank == 0) {
        snprintf(r->out_existed, sizeof r->out_existed, "%s", cfg->out);
        while (!is_dir(r->out_existed) && strrchr(r->out_existed, '/')) *strrchr(r->out_existed, '/') = '\0';
        if (!is_dir(r->out_existed)) r->out_existed[0] = '\0'; /* a relative path, none of it there */
        rc = make_dirs(cfg->out, err);
    }
    if (rc == 0 && r->rank == 0 && !cfg->resume) {
        /* a fresh run would delete another run's checkpoints (retention) and
         * truncate its metrics.jsonl: refuse before touching anything */
        char newest[256];
        long s = ckpt_newest_step(cfg->out, newest, sizeof newest);
        if (s >= 0) {
            snprintf(err, ERR_LEN,
                     "%s already holds checkpoints of a run (newest %s): continue it with --resume auto, "
                     "or give a new --out (nothing was changed)",
                     cfg->out, newest);
            rc = -1;
            r->usage = 1;
        }
    }
    if (agree(c, rc, err) != 0) return -1;
    char cache[4200], vcache[4200];
    snprintf(cache, sizeof cache, "%s/train-index.cache", cfg->out);
    snprintf(vcache, sizeof vcache, "%s/val-index.cache", cfg->out);
    r->train_ds = open_dataset(c, cfg->data, cfg->classes_file, cfg->labels,
                               cfg->index_cache ? cfg->index_cache : cache, &r->cache_made[0], err);
    if (!r->train_ds) return -2;
    int nc = dataset_num_classes(r->train_ds);
    if (cfg->classes > 0 && cfg->classes != nc) {
        snprintf(err, ERR_LEN, "--classes %d does not match the %d classes of %s (drop --classes, or fix --classes-file)",
                 cfg->classes, nc, cfg->data);
        rc = -1;
        r->usage = 1;
    }
    if (rc == 0 && r->rank == 0) rc = describe_data(r, err);
    if (agree(c, rc, err) != 0) return -1;
    if (cfg->val) {
        r->val_ds = open_dataset(c, cfg->val, cfg->classes_file, cfg->val_labels, vcache, &r->cache_made[1], err);
        if (!r->val_ds) return -2;
        if (dataset_num_classes(r->val_ds) != nc) {
            snprintf(err, ERR_LEN, "the validation set %s has %d classes, the training set %d (use the same --classes-file)",
                     cfg->val, dataset_num_classes(r->val_ds), nc);
            rc = -1;
            r->usage = 1;
        }
        if (agree(c, rc, err) != 0) return -1;
    }
    return 0;
}

/* The model replica and the optimizer state. */
static int setup_model(Run *r, char *err)
{
    const TrainConfig *cfg = r->cfg;
    ModelConfig mc = model_default_config();
    mc.classes = dataset_num_classes(r->train_ds);
    mc.crop = cfg->crop;
    mc.batch = cfg->eval_batch > cfg->batch ? cfg->eval_batch : cfg->batch;
    mc.aux = cfg->aux;
    mc.training = 1;
    mc.head_dropout = (float)cfg->head_dropout;
    mc.aux_dropout = (float)cfg->aux_dropout;
    mc.conv_gemm = strcmp(cfg->conv_algo, "gemm") == 0;
    r->model = model_init(&mc, err, ERR_LEN);
    int rc = r->model ? 0 : -1;
    if (rc == 0 && cfg->freeze) {
        rc = finetune_freeze(r->model, cfg->freeze, &r->freeze_from, &r->first_trainable, err, ERR_LEN);
        r->usage = rc != 0;
    }
    if (agree(r->comm, rc, err) != 0) return -1;
    r->np = model_num_params(r->model);
    r->live_weights = model_params(r->model);
    r->momentum = calloc(r->np, sizeof(float));
    r->average = malloc(r->np * sizeof(float));
    r->backup = malloc(r->np * sizeof(float));
    r->images = malloc(sizeof(float) * cfg->batch * 3 * cfg->crop * cfg->crop);
    r->labels = malloc(sizeof(int) * cfg->batch);
    if (!r->momentum || !r->average || !r->backup || !r->images || !r->labels) {
        snprintf(err, ERR_LEN, "out of memory for the optimizer state (%zu parameters)", r->np);
        rc = -1;
    }
    return agree(r->comm, rc, err);
}

/* The allreducer hands out offsets into the trained part [freeze_from, np). */
static void grads_ready(void *ctx, size_t ready_from)
{
    Run *r = ctx;
    comm_allreducer_ready(r->ar, ready_from - r->freeze_from);
}

/* Loader, schedule, allreducer, checkpoint writer, metrics and trace, for the
 * shape initial_state settled (r->accum, r->spe, r->total_steps). */
static int setup_run(Run *r, char *err)
{
    const TrainConfig *cfg = r->cfg;
    Comm *c = r->comm;
    int rc = 0;
    LoaderConfig lc = loader_default_config();
    lc.ds = r->train_ds;
    lc.crop = cfg->crop;
    lc.batch = cfg->batch;
    lc.rank = r->rank;
    lc.world = r->world;
    lc.workers = cfg->workers;
    lc.seed = cfg->seed;
    lc.train = 1;
    lc.drop_last = cfg->drop_last;
    lc.min_area = (float)cfg->min_area;
    lc.photometric = cfg->photometric;
    lc.flip = cfg->flip;
    lc.filter = filter_from(cfg->interp);
    memcpy(lc.mean, cfg->mean, sizeof lc.mean);
    memcpy(lc.std, cfg->std, sizeof lc.std);
    r->loader = loader_init(&lc, err, ERR_LEN);
    rc = r->loader ? 0 : -1;
    if (agree(c, rc, err) != 0) return -1;
    r->loader_spe = loader_steps_per_epoch(r->loader);
    if (r->loader_spe / r->accum != r->spe) {
        snprintf(err, ERR_LEN, "the loader gives %ld batches per epoch and the plan %ld steps of %d", r->loader_spe,
                 r->spe, r->accum);
        rc = -1;
    }
    if (agree(c, rc, err) != 0) return -1;

    /* learning-rate schedule, in optimizer steps */
    double lr = cfg->lr;
    if (strcmp(cfg->lr_scale, "linear") == 0) lr *= (double)r->global_batch / cfg->lr_ref_batch;
    r->sched = (LrSchedule){.policy = lr_policy_parse(cfg->lr_policy), .base_lr = lr, .gamma = cfg->gamma,
                            .step_size = (long)llround(cfg->step_epochs * r->spe), .power = cfg->power,
                            .max_iter = r->total_steps, .final_frac = cfg->final_lr_frac,
                            .warmup_iters = (long)llround(cfg->warmup_epochs * r->spe)};
    if (r->sched.step_size < 1) r->sched.step_size = 1;

    /* gradient allreduce: the frozen layers' part of the buffer is never sent */
    CommCompress cc = COMM_COMPRESS_NONE;
    comm_compress_parse(cfg->grad_compress, &cc);
    r->ar = comm_allreducer_init(c, model_grads(r->model) + r->freeze_from, r->np - r->freeze_from,
                                 (size_t)(cfg->bucket_mb * 1048576.0), cc, !cfg->no_overlap, err, ERR_LEN);
    rc = r->ar ? 0 : -1;
    if (agree(c, rc, err) != 0) return -1;

    /* checkpoints (rank 0 writes) */
    parse_every(cfg->ckpt_every, &r->ckpt_every, &r->ckpt_every_epochs);
    parse_every(cfg->eval_every, &r->eval_every, &r->eval_every_epochs);
    if (!r->val_ds) r->eval_every = 0;
    if (r->rank == 0) {
        CkptWriterConfig wc = ckpt_writer_default_config();
        wc.dir = cfg->out;
        wc.num_params = r->np;
        wc.zstd_level = cfg->ckpt_level;
        wc.zstd_threads = cfg->ckpt_threads;
        wc.keep = cfg->keep;
        long ke = 0;
        int ke_epochs = 0;
        parse_every(cfg->keep_every, &ke, &ke_epochs);
        wc.keep_every = ke;
        wc.keep_every_unit = ke_epochs ? CKPT_UNIT_EPOCHS : CKPT_UNIT_STEPS;
        wc.keep_every_slim = cfg->keep_every_slim;
        wc.fail = strcmp(cfg->ckpt_fail, "stop") == 0 ? CKPT_FAIL_STOP : CKPT_FAIL_CONTINUE;
        r->writer = ckpt_writer_create(&wc, err, ERR_LEN);
        if (!r->writer) rc = -1;
        CkptWriterStats ws;
        if (r->writer) ckpt_writer_stats(r->writer, &ws);
        if (r->writer && ws.stale_removed)
            fprintf(stderr, "googlenet train: removed %d temporary file%s left in %s by a checkpoint write that was "
                    "interrupted: %s\n", ws.stale_removed, ws.stale_removed == 1 ? "" : "s", cfg->out, ws.stale_note);
    }
    if (agree(c, rc, err) != 0) return -1;

    if (r->rank == 0) {
        char mpath[4200];
        snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", cfg->out);
        r->metrics_made = !file_exists(mpath);
        r->metrics = fopen(mpath, cfg->resume ? "a" : "w");
        if (!r->metrics) {
            snprintf(err, ERR_LEN, "cannot write %s: %s", mpath, strerror(errno));
            rc = -1;
        }
    }
    if (agree(c, rc, err) != 0) return -1;
    if (cfg->trace) {
        r->trace = trace_open(cfg->trace, r->rank, r->t_start, err, ERR_LEN);
        rc = r->trace ? 0 : -1;
        if (agree(c, rc, err) != 0) return -1;
    }
    return 0;
}

/* Whether the checkpoint with header h holds this run's model; -1 with a line
 * naming the setting that differs and what to do. */
static int check_model(const char *path, const CkptMeta *h, const Run *r, char *err)
{
    char msg[ERR_LEN];
    const ModelConfig *mc = model_config(r->model);
    if (ckpt_meta_check_model(h, mc, r->np, msg, sizeof msg) == 0) return 0;
    /* the model's class count is the training data's: --classes cannot make
     * them agree, a new run from the checkpoint's weights can */
    if (strcmp(h->arch, CKPT_ARCH) == 0 && h->aux == mc->aux && h->classes != mc->classes)
        snprintf(err, ERR_LEN, "%s has %d classes and the training data %s has %d: it cannot be resumed on this data; "
                 "start a new run from its weights with --init %s and a new --out (the classifiers are "
                 "re-initialised)", path, h->classes, r->cfg->data, mc->classes, path);
    else
        snprintf(err, ERR_LEN, "%s: %s", path, msg);
    return -1;
}

/* A checkpoint that failed to load because it holds another model's number of
 * parameters: say which setting differs (classes, aux heads, architecture)
 * when its header tells, instead of the bare counts. */
static void explain_other_model(const char *path, const Run *r, char *err)
{
    CkptMeta h;
    char why[256];
    if (!path[0] || ckpt_peek_meta(path, &h, why, sizeof why) != 0) return;
    check_model(path, &h, r, err);
    ckpt_meta_free(&h);
}

/* "forward f4x3 x9, f2x5 x9, gemm x1" for the pass `pass` of a formatted plan. */
static void plan_summary(const char *plan, int pass, char *out, size_t len)
{
    const char *names[CONV_ALGOS];
    int count[CONV_ALGOS] = {0};
    for (int a = 0; a < CONV_ALGOS; a++) names[a] = conv_algo_name((ConvAlgo)a);
    for (const char *p = strchr(plan, '='); p; p = strchr(p + 1, '=')) {
        const char *q = p + 1;
        for (int k = 0; k < pass && q; k++) q = strchr(q, ',') ? strchr(q, ',') + 1 : NULL;
        for (int a = 0; q && a < CONV_ALGOS; a++)
            if (strncmp(q, names[a], strlen(names[a])) == 0) count[a]++;
    }
    size_t at = 0;
    out[0] = '\0';
    for (int a = 0; a < CONV_ALGOS && at < len; a++)
        if (count[a]) at += (size_t)snprintf(out + at, len - at, "%s%s x%d", at ? ", " : "", names[a], count[a]);
}

/* Collective: every rank runs rank 0's convolution plan. Resuming, that is the
 * checkpoint's (the same algorithms give the same bits) unless --conv-algo was
 * given; otherwise --conv-algo auto times the algorithms on every rank at once
 * (under the load training puts on the node) and keeps rank 0's choice, and
 * winograd or gemm is the fixed plan model_init made. */
static int conv_plan_setup(Run *r, const char *from_ckpt, char *err)
{
    const TrainConfig *cfg = r->cfg;
    Comm *c = r->comm;
    char *plan = r->conv_plan;
    size_t len = sizeof r->conv_plan;
    int64_t src = 0; /* 1: the checkpoint's, 2: timed now, 0: fixed */
    if (r->rank == 0 && from_ckpt) {
        if (from_ckpt[0] && !cfg->conv_algo_given) {
            snprintf(plan, len, "%s", from_ckpt);
            src = 1;
        } else if (!from_ckpt[0]) {
            printf("the checkpoint records no convolution plan: using --conv-algo %s (results may differ from "
                   "the interrupted run's in rounding)\n", cfg->conv_algo);
        } else {
            printf("--conv-algo %s replaces the checkpoint's convolution plan: the run continues exactly only up "
                   "to rounding\n", cfg->conv_algo);
        }
    }
    comm_broadcast(c, &src, sizeof src, "convolution plan source");
    double secs = 0;
    if (src == 0 && strcmp(cfg->conv_algo, "auto") == 0) {
        secs = model_conv_tune(r->model, err, ERR_LEN);
        if (agree(c, secs < 0 ? -1 : 0, err) != 0) return -1;
        src = 2;
    }
    int rc = 0;
    if (r->rank == 0 && src != 1 && model_conv_plan_format(r->model, plan, len) < 0) {
        snprintf(err, ERR_LEN, "the convolution plan does not fit in %zu bytes", len);
        rc = -1;
    }
    if (agree(c, rc, err) != 0) return -1;
    comm_broadcast(c, plan, len, "convolution plan");
    rc = model_conv_plan_apply(r->model, plan, err, ERR_LEN);
    if (rc != 0 && r->rank == 0) {
        char why[ERR_LEN];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, ERR_LEN, "%s; pass --conv-algo auto, winograd or gemm to choose another plan", why);
    }
    if (agree(c, rc, err) != 0) return -1;
    if (r->rank == 0) {
        char f[128], d[128], w[128];
        plan_summary(plan, 0, f, sizeof f);
        plan_summary(plan, 1, d, sizeof d);
        plan_summary(plan, 2, w, sizeof w);
        if (src == 1) printf("convolution plan: the checkpoint's");
        else if (src == 2) printf("convolution plan: timed in %.1f s", secs);
        else printf("convolution plan: --conv-algo %s", cfg->conv_algo);
        printf(" (3x3/5x5 layers: forward %s; backward data %s; backward weights %s)\n", f, d, w);
    }
    return 0;
}

/* Rank 0: the checkpoint --resume names, read into the state buffers. 1 when
 * loaded (its metadata in *m, its path in path), 0 when there is none (auto),
 * -1 on an error. */
static int load_resume(Run *r, char *path, size_t pathlen, CkptMeta *m, char *err)
{
    const TrainConfig *cfg = r->cfg;
    float *w = model_params(r->model);
    if (strcmp(cfg->resume, "auto") == 0) {
        char report[2048] = "";
        /* newest first, each candidate read once: loading it is verifying it */
        int found = ckpt_load_latest(cfg->out, path, pathlen, m, w, r->momentum, r->average, r->np, report,
                                     sizeof report, err, ERR_LEN);
        if (report[0]) fprintf(stderr, "googlenet train: %s", report);
        if (found < 0) explain_other_model(path, r, err);
        else if (found == 0) printf("no checkpoint in %s: starting from %s\n", cfg->out, cfg->init ? cfg->init : "scratch");
        return found;
    }
    snprintf(path, pathlen, "%s", cfg->resume);
    /* an older checkpoint than --out's newest would overwrite and prune a later
     * trajectory: refuse on the header alone, before reading the file */
    CkptMeta h;
    char newest[256], why[256];
    long s = ckpt_newest_step(cfg->out, newest, sizeof newest);
    if (s >= 0 && ckpt_peek_meta(path, &h, why, sizeof why) == 0) {
        long hs = h.step;
        ckpt_meta_free(&h);
        if (s > hs) {
            snprintf(err, ERR_LEN,
                     "%s holds checkpoints past step %ld of %s (newest %s) that this run would replace: "
                     "give a new --out, or move them away (nothing was changed)",
                     cfg->out, hs, path, newest);
            return -1;
        }
    }
    if (ckpt_load(path, m, w, r->momentum, r->average, r->np, err, ERR_LEN) != 0) {
        explain_other_model(path, r, err);
        return -1;
    }
    return 1;
}

/* Rank 0, a new run: the seed's initialisation, or --init's weights. */
static int fresh_state(Run *r, char *err)
{
    const TrainConfig *cfg = r->cfg;
    float *w = model_params(r->model);
    /* also after damaged candidates were partly read into the buffers */
    model_init_weights(r->model, cfg->seed);
    if (cfg->init) {
        size_t reinit_lo;
        char report[2048];
        if (finetune_init(r->model, cfg->init, strcmp(cfg->init_weights, "average") == 0, r->class_names,
                          dataset_num_classes(r->train_ds), cfg->mean, cfg->std, report, sizeof report, &reinit_lo,
                          err, ERR_LEN) != 0)
            return -1;
        fputs(report, stdout);
        if (reinit_lo < r->freeze_from) {
            int nt;
            const ParamTensor *pt = model_param_tensors(r->model, &nt);
            const char *name = "?";
            for (int i = 0; i < nt; i++)
                if (pt[i].offset == reinit_lo) name = pt[i].name;
            snprintf(err, ERR_LEN, "--freeze %s would keep %s fixed at its fresh initialisation (--init could not give "
                     "it); freeze fewer layers%s", cfg->freeze, name, cfg->aux ? ", or train without the aux heads (--no-aux)" : "");
            r->usage = 1;
            return -1;
        }
    }
    memcpy(r->average, w, r->np * sizeof(float));
    memset(r->momentum, 0, r->np * sizeof(float));
    return 0;
}

/* Rank 0: where the run starts (train_resume.h), with the state in the
 * buffers and a resumed checkpoint's convolution plan in r->resume_plan. */
static int start_point(Run *r, ResumePlan *p, char *err)
{
    const TrainConfig *cfg = r->cfg;
    ResumeRun run = {r->world, (long long)dataset_size(r->train_ds), r->data_digest, r->class_names,
                     dataset_num_classes(r->train_ds)};
    char path[4096] = "";
    CkptMeta m;
    int loaded = cfg->resume ? load_resume(r, path, sizeof path, &m, err) : 0;
    if (loaded < 0) return -1;
    if (!loaded) {
        if (fresh_state(r, err) != 0) return -1;
        return train_resume_fresh(cfg, &run, p, err, ERR_LEN);
    }
    int rc = check_model(path, &m, r, err);
    if (rc == 0 && (rc = train_resume_plan(cfg, &m, path, &run, p, err, ERR_LEN)) != 0) r->usage = 1;
    if (rc == 0) {
        if (!ckpt_meta_get_extra(&m, "conv_plan", r->resume_plan, sizeof r->resume_plan)) r->resume_plan[0] = '\0';
        char pos[128];
        train_format_position(p->step, p->epoch, p->epoch_step, p->spe, pos, sizeof pos);
        if (p->complete) {
            printf("%s is complete: %s is %s, the last of the run; nothing to do (to train longer, raise --epochs "
                   "or --steps and add --allow-changes)\n", cfg->out, path, pos);
        } else {
            fputs(p->notes, stdout);
            printf("resuming from %s: %s\n", path, pos);
        }
    }
    ckpt_meta_free(&m);
    return rc;
}

/* Collective: where every rank starts. 1 when the run is already complete. */
static int initial_state(Run *r, char *err)
{
    ResumePlan p;
    memset(&p, 0, sizeof p);
    int rc = r->rank == 0 ? start_point(r, &p, err) : 0;
    fflush(stdout);
    if (agree(r->comm, rc, err) != 0) return -1;
    int64_t info[9] = {p.accum, p.global_batch, p.spe, p.step, p.epoch, p.epoch_step, p.samples_seen, p.total_steps,
                       p.complete};
    comm_broadcast(r->comm, info, sizeof info, "start position");
    r->accum = (int)info[0];
    r->global_batch = (int)info[1];
    r->spe = info[2];
    r->step = info[3];
    r->epoch = info[4];
    r->epoch_step = info[5];
    r->samples_seen = info[6];
    r->total_steps = info[7];
    r->saved_step = r->step > 0 ? r->step : -1; /* a resumed checkpoint is on disk */
    return info[8] ? 1 : 0;
}

/* Collective: rank 0's state goes to every rank, which checks it holds the
 * same bits; then the convolution plan. */
static int share_state(Run *r, char *err)
{
    Comm *c = r->comm;
    float *w = model_params(r->model);
    comm_broadcast(c, w, r->np * sizeof(float), "initial weights");
    comm_broadcast(c, r->momentum, r->np * sizeof(float), "momentum");
    comm_broadcast(c, r->average, r->np * sizeof(float), "Polyak average");
    int rc = comm_check_identical(c, w, r->np * sizeof(float), "initial weights", err, ERR_LEN);
    if (agree(c, rc, err) != 0) return -1;
    return conv_plan_setup(r, r->step > 0 ? r->resume_plan : NULL, err);
}

/* Whether a thing done every `every` steps (or epochs) is due after this step. */
static int due(const Run *r, long every, int epochs, int epoch_end)
{
    if (every <= 0) return 0;
    return epochs ? epoch_end && r->epoch % every == 0 : r->step % every == 0;
}

/* Collective: every replica must hold the same bits after the same updates. */
static int check_replicas(Run *r)
{
    char err[ERR_LEN];
    const float *w = model_params(r->model);
    int rc = comm_check_identical(r->comm, w, r->np * sizeof(float), "weights", err, sizeof err);
    if (rc != 0) {
        if (r->rank == 0) fprintf(stderr, "googlenet train: after step %ld: %s\n", r->step, err);
        return -1;
    }
    if (r->rank == 0 && r->world > 1 && !r->cfg->quiet)
        printf("replicas identical after step %ld: %d ranks, weights checksum %016llx\n", r->step, r->world,
               (unsigned long long)comm_checksum(w, r->np * sizeof(float)));
    return 0;
}

/* ---- the loop ---- */

static int train_loop(Run *r)
{
    const TrainConfig *cfg = r->cfg;
    Comm *c = r->comm;
    Model *m = r->model;
    int ntensors;
    const ParamTensor *pt = model_param_tensors(m, &ntensors);
    char err[ERR_LEN];
    Interval iv;
    memset(&iv, 0, sizeof iv);
    double t_last_log = clock_now(), t_log_start = clock_now();
    float loss_scale = 1.0f / (float)r->global_batch;
    int stopped = 0, failed = 0;
    long long epoch_bad = 0;

    if (r->step < r->total_steps &&
        loader_seek(r->loader, r->epoch, r->epoch_step * r->accum, err, sizeof err) != 0) {
        if (agree(c, -1, err) != 0) return EXIT_FAIL;
    }
    if (r->rank == 0 && !cfg->quiet) {
        printf("training: %d rank%s x batch %d x accum %d = global batch %d, %ld steps per epoch; steps %ld to %ld; "
               "lr %.4g (%s)\n",
               r->world, r->world == 1 ? "" : "s", cfg->batch, r->accum, r->global_batch, r->spe, r->step + 1,
               r->total_steps, r->sched.base_lr, cfg->lr_policy);
        if (r->freeze_from)
            printf("frozen: every layer up to %s (%zu of %zu parameters) gets no gradient and no allreduce; "
                   "%zu are trained\n", cfg->freeze, r->freeze_from, r->np, r->np - r->freeze_from);
    }

    while (r->step < r->total_steps) {
        long epoch = r->epoch, es = r->epoch_step;
        memset(model_grads(m) + r->freeze_from, 0, (r->np - r->freeze_from) * sizeof(float));
        double v[M_COUNT] = {0};
        for (int micro = 0; micro < r->accum; micro++) {
            long want_step = es * r->accum + micro;
            LoaderBatchInfo info;
            double t0 = clock_now();
            int got = loader_next(r->loader, r->images, r->labels, &info, err, sizeof err);
            if (got >= 0 && (info.epoch != epoch || info.step != want_step)) {
                /* the loader is past batches an accumulation remainder skips */
                if (loader_seek(r->loader, epoch, want_step, err, sizeof err) == 0)
                    got = loader_next(r->loader, r->images, r->labels, &info, err, sizeof err);
                else
                    got = -1;
            }
            if (got < 0) comm_abort(c, EXIT_FAIL, "loading step %ld: %s", r->step, err);
            double t1 = clock_now();
            trace_event(r->trace, "data wait", 2, t0, t1, r->step);
            if (info.warning && r->rank == 0) fprintf(stderr, "googlenet train: %s\n", info.warning);
            v[M_WAIT] += info.wait_s;
            v[M_BAD] += info.bad;
            ModelStats st;
            uint64_t key = rng_key(cfg->seed, (uint64_t)r->step, (uint64_t)r->rank, (uint64_t)micro);
            model_forward(m, r->images, r->labels, cfg->batch, MODEL_TRAIN, key, &st);
            double t2 = clock_now();
            trace_event(r->trace, "forward", 0, t1, t2, r->step);
            int last = micro == r->accum - 1;
            if (last) comm_allreducer_begin(r->ar);
            model_backward_from(m, r->freeze_from, loss_scale, last ? grads_ready : NULL, r);
            trace_event(r->trace, "backward", 0, t2, clock_now(), r->step);
            v[M_LOSS] += st.loss * st.n;
            v[M_MAIN] += st.head[MODEL_HEAD_MAIN].loss_sum;
            v[M_AUX1] += st.head[MODEL_HEAD_AUX1].loss_sum;
            v[M_AUX2] += st.head[MODEL_HEAD_AUX2].loss_sum;
            v[M_TOP1] += st.head[MODEL_HEAD_MAIN].top1;
            v[M_TOP5] += st.head[MODEL_HEAD_MAIN].top5;
            v[M_SAMPLES] += st.n;
        }
        double t3 = clock_now();
        CommStepStats cs;
        comm_allreducer_finish(r->ar, &cs);
        double t4 = clock_now();
        trace_event(r->trace, "allreduce wait (exposed)", 0, t3, t4, r->step);
        if (r->trace) {
            double bs[256], be[256];
            int nb = comm_allreducer_bucket_times(r->ar, bs, be, 256);
            for (int b = 0; b < nb; b++) {
                char name[48];
                snprintf(name, sizeof name, "allreduce bucket %d", b);
                trace_event(r->trace, name, 1, bs[b], be[b], r->step);
            }
        }
        v[M_EXPOSED] = cs.exposed_seconds;
        v[M_COMM] = cs.comm_seconds;

        /* the average warms up as TensorFlow's ExponentialMovingAverage does, so
         * short runs are not dominated by the initial weights */
        double ema = fmin(cfg->ema_decay, (1.0 + r->step) / (10.0 + r->step));
        /* the update and the position change together: an emergency checkpoint
         * (train_stop.h) sees the state before or after, never in between */
        train_stop_lock(r->stop);
        r->lr = lr_at(&r->sched, r->step);
        sgd_step(model_params(m), r->momentum, model_grads(m), r->average, pt + r->first_trainable,
                 ntensors - r->first_trainable, (float)r->lr, (float)cfg->momentum, (float)cfg->wd, (float)ema);
        trace_event(r->trace, "sgd update", 0, t4, clock_now(), r->step);
        r->step++;
        r->samples_seen += r->global_batch;
        int epoch_end = ++r->epoch_step == r->spe;
        if (epoch_end) {
            r->epoch++;
            r->epoch_step = 0;
        }
        train_stop_unlock(r->stop);
        v[M_STOP] = comm_stop_requested();
        comm_allreduce_double(c, v, M_COUNT, COMM_SUM, "step metrics");
        epoch_bad += (long long)v[M_BAD];
        for (int k = 0; k < M_COUNT; k++) iv.v[k] += v[k];
        iv.steps++;

        if (!isfinite(v[M_LOSS])) {
            if (r->rank == 0)
                fprintf(stderr, "googlenet train: the loss became %g at step %ld; lower --lr or add --warmup-epochs\n",
                        v[M_LOSS], r->step);
            failed = 1;
            break;
        }
        double t_now = clock_now();
        if (r->rank == 0 && (t_now - t_last_log >= cfg->log_every || epoch_end || r->step == r->total_steps ||
                             (r->tty && t_now - t_last_log >= 0.5))) {
            iv.seconds = t_now - t_log_start;
            int json_due = t_now - t_last_log >= cfg->log_every || epoch_end || r->step == r->total_steps;
            FILE *keep = r->metrics;
            if (!json_due) r->metrics = NULL;
            log_interval(r, &iv, epoch_end);
            r->metrics = keep;
            if (json_due) {
                memset(&iv, 0, sizeof iv);
                t_log_start = t_now;
            }
            t_last_log = t_now;
        }
        if (epoch_end) {
            if (r->rank == 0 && epoch_bad > 0 && !cfg->quiet)
                printf("epoch %ld: %lld unreadable or corrupt files were replaced\n", r->epoch, epoch_bad);
            epoch_bad = 0;
        }
        /* rank 0's checkpoint writer may ask to stop (--ckpt-fail stop); it has
         * printed why, the other ranks follow */
        int ckpt_failed = check_writer(r, 0) != 0;
        int ckpt_due = due(r, r->ckpt_every, r->ckpt_every_epochs, epoch_end);
        if (ckpt_due && save_checkpoint(r) != 0) ckpt_failed = 1;
        if (comm_any(c, ckpt_failed, "checkpoint status")) {
            failed = 1;
            break;
        }
        /* validation every --eval-every epochs, and after the last step */
        int last = r->step == r->total_steps;
        if (r->eval_every > 0 && (due(r, r->eval_every, r->eval_every_epochs, epoch_end) || last) &&
            validate(r) != 0) {
            failed = 1; /* validate() printed why, on every rank's behalf */
            break;
        }
        if (cfg->check_replicas > 0 && r->step % cfg->check_replicas == 0 && check_replicas(r) != 0) {
            failed = 1;
            break;
        }
        if (v[M_STOP] > 0) {
            stopped = 1;
            /* SIGTERM or SIGINT: rank 0 saves now, before any waiting */
            if (train_stop_urgent() && save_urgent(r) != 0) failed = 1;
            break;
        }
    }
    if (!failed && check_replicas(r) != 0) failed = 1;
    if (failed) return EXIT_FAIL;
    /* a final checkpoint when the last step did not just write one */
    {
        char path[64];
        ckpt_file_name(r->step, path, sizeof path);
        CkptWriterStats ws;
        if (r->rank == 0 && r->writer) {
            /* the write in flight first: comparing before it ends wrote the last step twice */
            if (check_writer(r, 1) != 0) failed = 1;
            ckpt_writer_stats(r->writer, &ws);
            const char *base = strrchr(ws.last_path, '/');
            base = base ? base + 1 : ws.last_path;
            if (!failed && strcmp(base, path) != 0 && (save_checkpoint(r) != 0 || check_writer(r, 1) != 0)) failed = 1;
            ckpt_writer_stats(r->writer, &ws);
            base = strrchr(ws.last_path, '/');
            base = base ? base + 1 : ws.last_path;
            if (!failed && strcmp(base, path) != 0) { /* --ckpt-fail continue: the run's result is not saved */
                fprintf(stderr, "googlenet train: the final checkpoint %s could not be written (see above); the newest "
                        "on disk is %s\n", path, ws.last_path[0] ? ws.last_path : "none");
                failed = 1;
            }
            if (!cfg->quiet && ws.writes_done > 0)
                printf("checkpoint: %s (%.1f MB, training blocked %.0f ms by the last save)\n", ws.last_path,
                       ws.last_file_bytes / 1e6, 1e3 * (ws.last_copy_s + ws.last_wait_s));
        }
        if (agree(c, failed, "the final checkpoint failed") != 0) return EXIT_FAIL;
    }
    if (stopped) {
        if (r->rank == 0) {
            char pos[128], name[64];
            train_format_position(r->step, r->epoch, r->epoch_step, r->spe, pos, sizeof pos);
            ckpt_file_name(r->step, name, sizeof name);
            /* mpirun reports a rank's non-zero exit as "the job has been
             * aborted": the line says beforehand that this one is a success */
            fprintf(stderr, "googlenet train: stopped by %s after %s, saved in %s/%s; continue with --resume auto. "
                    "Exit code 3%s\n", train_stop_name(train_stop_signal()), pos, r->cfg->out, name,
                    trainer_under_mpirun() ? ", which mpirun reports below as the job being aborted: nothing was lost"
                                           : " (stopped after a checkpoint)");
        }
        return EXIT_PREEMPTED;
    }
    return EXIT_OK;
}

/* Rank 0, when no step was trained (a failed start, or a complete run):
 * removes what this start made in --out, so that it is as it was. */
static void undo_start(Run *r)
{
    const TrainConfig *cfg = r->cfg;
    char p[4200];
    if (r->metrics) {
        fclose(r->metrics);
        r->metrics = NULL;
    }
    if (r->metrics_made) {
        snprintf(p, sizeof p, "%s/metrics.jsonl", cfg->out);
        unlink(p);
    }
    if (r->cache_made[0]) {
        if (cfg->index_cache) snprintf(p, sizeof p, "%s", cfg->index_cache);
        else snprintf(p, sizeof p, "%s/train-index.cache", cfg->out);
        unlink(p);
    }
    if (r->cache_made[1]) {
        snprintf(p, sizeof p, "%s/val-index.cache", cfg->out);
        unlink(p);
    }
    /* the directories this start made, deepest first; rmdir leaves any that is not empty */
    snprintf(p, sizeof p, "%s", cfg->out);
    while (p[0] && strcmp(p, r->out_existed) != 0 && rmdir(p) == 0) {
        char *slash = strrchr(p, '/');
        if (!slash) break;
        *slash = '\0';
    }
}

int train_run(const TrainConfig *cfg, Comm *comm)
{
    Run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.comm = comm;
    r.rank = comm_rank(comm);
    r.world = comm_size(comm);
    r.t_start = clock_now();
    r.tty = r.rank == 0 && isatty(STDERR_FILENO) && !cfg->quiet;
    trainer_set_threads(cfg->threads > 0 ? cfg->threads : trainer_default_threads());
    /* SIGUSR1/SIGUSR2: a graceful stop; SIGTERM/SIGINT also an emergency
     * checkpoint at once, since a launcher may kill the ranks a second later */
    train_stop_handlers();

    char err[ERR_LEN] = "";
    int code = EXIT_FAIL, complete = 0;
    int rc = setup_data(&r, err);
    if (rc == 0) rc = setup_model(&r, err);
    if (rc == 0 && (complete = initial_state(&r, err)) < 0) rc = -1;
    if (complete == 1) code = EXIT_OK;
    else if (rc == 0 && setup_run(&r, err) == 0 && share_state(&r, err) == 0) {
        if (r.rank == 0) r.stop = train_stop_start(r.writer, snapshot, &r, err, sizeof err);
        if (agree(comm, r.rank == 0 && !r.stop, err) == 0) {
            r.started = 1;
            code = train_loop(&r);
        }
    }
    if (r.usage) code = EXIT_USAGE;
    train_stop_free(r.stop);
    if (!r.started && r.rank == 0) undo_start(&r);

    if (r.trace) {
        trace_close(r.trace);
        r.trace = NULL;
        comm_barrier(comm, "trace files");
        if (r.rank == 0 && trace_merge(cfg->trace, r.world, err, sizeof err) != 0)
            fprintf(stderr, "googlenet train: %s\n", err);
    }
    if (r.metrics) fclose(r.metrics);
    ckpt_writer_free(r.writer);
    comm_allreducer_free(r.ar);
    loader_free(r.loader);
    model_free(r.model);
    dataset_free(r.train_ds);
    dataset_free(r.val_ds);
    free(r.momentum);
    free(r.average);
    free(r.backup);
    free(r.images);
    free(r.labels);
    free(r.class_names);
    return code;
}
