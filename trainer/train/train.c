/* train/train.c: the training run on every rank (see train.h): the loop over
 * train_step (step.h) with logging, checkpoints, validation and a clean stop
 * on a signal. setup.c builds the run; run.h holds its state.
 *
 * Every random choice is a pure function of (seed, epoch, step, rank, sample),
 * so a resumed run repeats an uninterrupted one bit for bit.
 */
#include "trainer/train/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/clock.h"
#include "trainer/commands.h"
#include "trainer/eval/evaluate.h"
#include "trainer/runtime.h"
#include "trainer/train/run.h"

TrainConfig train_default_config(void)
{
    TrainConfig c = {
        .crop = 224, .batch = 32, .workers = 2, .drop_last = 0,
        .min_area = 0.08, .photometric = 1, .flip = 1, .filter = IMAGE_FILTER_RANDOM,
        .mean = IMAGE_MEAN_RGB, .std = IMAGE_STD_RGB,
        .aux = 1, .head_dropout = 0.4, .aux_dropout = 0.7,
        .epochs = 60, .lr = 0.01, .lr_policy = LR_POLY, .lr_scale_linear = 0, .lr_ref_batch = 32,
        .warmup_epochs = 0, .gamma = 0.96, .step_epochs = 8, .power = 0.5, .final_lr_frac = 0,
        .momentum = 0.9, .wd = 2e-4, .ema_decay = 0.9999, .accum = 1, .seed = 1,
        .threads = 0, .bucket_mb = 25, .grad_compress = COMM_COMPRESS_NONE, .timeout = COMM_DEFAULT_TIMEOUT,
        .conv_algo = TRAIN_CONV_AUTO,
        .out = "runs/train", .log_every = 10, .ckpt_every = {1, 1}, .keep = 5, .keep_every = {0, 0},
        .ckpt_fail = CKPT_FAIL_CONTINUE, .ckpt_level = 3, .ckpt_threads = 1,
        .eval_every = {1, 1}, .eval_crops = 1, .eval_average = 1, .eval_batch = 0, .eval_max_bad = 0.01,
        .eval_resize = 256, .init_average = 1,
    };
    return c;
}

int train_every_parse(const char *s, TrainEvery *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v < 0) return -1;
    int epochs = *end == 'e';
    if (epochs) end++;
    if (*end) return -1;
    *out = (TrainEvery){v, epochs};
    return 0;
}

static const char *const CONV_CHOICES[] = {"auto", "winograd", "gemm"};

int train_conv_choice_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, CONV_CHOICES[i]) == 0) return i;
    return -1;
}

const char *train_conv_choice_name(TrainConvChoice c) { return c >= 0 && c <= TRAIN_CONV_GEMM ? CONV_CHOICES[c] : "?"; }

/* ---- checkpoints ---- */

static void fill_meta(Run *r, CkptMeta *m)
{
    const TrainConfig *cfg = r->cfg;
    ckpt_meta_init(m);
    m->step = r->pos.step;
    m->epoch = r->pos.epoch;
    m->epoch_step = r->pos.epoch_step;
    m->epoch_samples = (long long)m->epoch_step * r->shape.global_batch;
    m->samples_seen = r->pos.samples_seen;
    m->seed = cfg->seed;
    m->world_size = r->world;
    m->batch = cfg->batch;
    m->accum = r->shape.accum;
    ckpt_meta_set_model(m, model_config(r->model), r->np);
    m->lr = r->sched;
    m->last_lr = r->step.lr;
    m->momentum = cfg->momentum;
    m->weight_decay = cfg->wd;
    m->ema_decay = cfg->ema_decay;
    m->dataset_size = (long long)dataset_size(r->train_ds);
    m->drop_last = cfg->drop_last;
    snprintf(m->command, sizeof m->command, "%s", cfg->command);
    char err[512];
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
    char err[512];
    int rc = ckpt_writer_save(r->writer, &m, model_params(r->model), r->opt.momentum, r->opt.average,
                              err, sizeof err);
    ckpt_meta_free(&m);
    trace_event(r->trace, "checkpoint copy", 0, t0, clock_now(), r->pos.step);
    if (rc != 0) {
        fprintf(stderr, "googlenet train: checkpoint at step %ld: %s\n", r->pos.step, err);
        return r->cfg->ckpt_fail == CKPT_FAIL_STOP ? -1 : 0;
    }
    return 0;
}

/* Rank 0: the writer's failures since the last look. -1 when training must stop. */
static int check_writer(Run *r, int wait)
{
    if (r->rank != 0 || !r->writer) return 0;
    char err[512];
    int rc = wait ? ckpt_writer_wait(r->writer, err, sizeof err) : ckpt_writer_poll(r->writer, err, sizeof err);
    if (rc == CKPT_POLL_OK) return 0;
    fprintf(stderr, "googlenet train: %s\n", err);
    return rc == CKPT_POLL_STOP ? -1 : 0;
}

/* Emergency thread (train/stop.h), state locked: the last completed step. */
static int snapshot(void *ctx, CkptMeta *m, const float **w, const float **mom, const float **avg)
{
    Run *r = ctx;
    ckpt_meta_free(m);
    fill_meta(r, m);
    *w = r->live_weights;
    *mom = r->opt.momentum;
    *avg = r->opt.average;
    CkptWriterStats ws;
    ckpt_writer_stats(r->writer, &ws);
    if (r->pos.step == 0 && r->saved_step < 0) return TRAIN_STOP_NOTHING;
    return r->pos.step == r->saved_step || r->pos.step == ws.last_step ? TRAIN_STOP_ON_DISK : 0;
}

/* Rank 0, after a SIGTERM or SIGINT stop: the final checkpoint at once,
 * uncompressed (the launcher may kill the job in a second). */
static int save_urgent(Run *r)
{
    if (r->rank != 0 || !r->writer) return 0;
    CkptWriterStats ws;
    CkptMeta m;
    char err[512];
    double secs = 0;
    int rc = 0;
    train_stop_lock(r->stop);
    ckpt_writer_stats(r->writer, &ws);
    if (ws.last_step != r->pos.step) { /* else the emergency thread wrote this step */
        fill_meta(r, &m);
        rc = ckpt_writer_save_now(r->writer, &m, r->live_weights, r->opt.momentum, r->opt.average, &secs, err,
                                   sizeof err);
        ckpt_meta_free(&m);
    }
    train_stop_unlock(r->stop);
    if (rc != 0) fprintf(stderr, "googlenet train: the checkpoint of step %ld after %s failed: %s\n", r->pos.step,
                         train_stop_name(train_stop_signal()), err);
    return rc;
}

/* ---- logging ---- */

enum {
    M_LOSS, M_MAIN, M_AUX1, M_AUX2, M_TOP1, M_TOP5, M_SAMPLES,
    M_WAIT, M_EXPOSED, M_COMM, M_STOP, M_BAD, M_COUNT
};

/* Sums of the step metrics (over ranks) since the last metrics.jsonl record. */
typedef struct {
    double v[M_COUNT];
    double seconds;
    long steps;
} Interval;

/* A log line's figures, from an interval. */
typedef struct {
    double n, loss, top1, img_s, wait, exposed, busy, elapsed, eta;
    long epoch1, in_epoch; /* the step just done: epoch (1-based) and its place in it */
} LogFigures;

static void fmt_duration(double s, char *out, size_t len)
{
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, len, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) snprintf(out, len, "%ldm%02lds", t / 60, t % 60);
    else snprintf(out, len, "%lds", t);
}

static LogFigures log_figures(const Run *r, const Interval *iv)
{
    LogFigures f;
    double s = iv->seconds;
    f.n = iv->v[M_SAMPLES] > 0 ? iv->v[M_SAMPLES] : 1;
    f.loss = iv->v[M_LOSS] / f.n;
    f.top1 = iv->v[M_TOP1] / f.n;
    f.img_s = s > 0 ? iv->v[M_SAMPLES] / s : 0;
    f.wait = s > 0 ? iv->v[M_WAIT] / r->world / s : 0;
    f.exposed = s > 0 ? iv->v[M_EXPOSED] / r->world / s : 0;
    f.busy = s > 0 ? iv->v[M_COMM] / r->world / s : 0;
    f.elapsed = clock_now() - r->t_start;
    double per_step = iv->steps > 0 ? s / iv->steps : 0;
    f.eta = per_step * (double)(r->shape.total_steps - r->pos.step);
    f.epoch1 = r->pos.epoch_step == 0 ? r->pos.epoch : r->pos.epoch + 1;
    f.in_epoch = r->pos.epoch_step == 0 ? r->shape.steps_per_epoch : r->pos.epoch_step;
    return f;
}

static double epochs_done(const Run *r) { return r->pos.epoch + (double)r->pos.epoch_step / r->shape.steps_per_epoch; }

/* Rank 0: one metrics.jsonl object for the interval. */
static void log_json(Run *r, const Interval *iv)
{
    LogFigures f = log_figures(r, iv);
    fprintf(r->metrics,
            "{\"step\":%ld,\"epoch\":%ld,\"epoch_step\":%ld,\"epochs_done\":%.4f,\"loss\":%.6f,"
            "\"loss_main\":%.6f,\"loss_aux1\":%.6f,\"loss_aux2\":%.6f,\"top1\":%.6f,\"top5\":%.6f,"
            "\"lr\":%.8g,\"img_per_s\":%.3f,\"data_wait\":%.4f,\"comm_exposed\":%.4f,\"comm_busy\":%.4f,"
            "\"elapsed_s\":%.2f,\"eta_s\":%.1f}\n",
            r->pos.step, f.epoch1, f.in_epoch, epochs_done(r), f.loss, iv->v[M_MAIN] / f.n, iv->v[M_AUX1] / f.n,
            iv->v[M_AUX2] / f.n, f.top1, iv->v[M_TOP5] / f.n, r->step.lr, f.img_s, f.wait, f.exposed, f.busy,
            f.elapsed, f.eta);
    fflush(r->metrics);
}

/* Rank 0: a progress bar (terminal) or a plain line for the interval. */
static void log_console(const Run *r, const Interval *iv, int final_line)
{
    if (r->cfg->quiet) return;
    LogFigures f = log_figures(r, iv);
    long per_epoch = r->shape.steps_per_epoch;
    char eta_s[32];
    fmt_duration(f.eta, eta_s, sizeof eta_s);
    if (r->tty) {
        int width = 24, fill = (int)(width * (double)f.in_epoch / per_epoch);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r\033[Kstep %ld/%ld  epoch %ld [%s] %ld/%ld  loss %.4f  top1 %.1f%%  %.1f img/s  ETA %s",
                r->pos.step, r->shape.total_steps, f.epoch1, bar, f.in_epoch, per_epoch, f.loss, 100 * f.top1, f.img_s,
                eta_s);
        if (final_line) fputc('\n', stderr);
        fflush(stderr);
        return;
    }
    printf("step %ld/%ld (epoch %ld: %ld/%ld)  loss %.4f (main %.4f aux1 %.4f aux2 %.4f)  top1 %.1f%%  lr %.5g  "
           "%.1f img/s  data %.0f%%  comm %.0f%%  ETA %s\n",
           r->pos.step, r->shape.total_steps, f.epoch1, f.in_epoch, per_epoch, f.loss, iv->v[M_MAIN] / f.n,
           iv->v[M_AUX1] / f.n, iv->v[M_AUX2] / f.n, 100 * f.top1, r->step.lr, f.img_s, 100 * f.wait,
           100 * f.exposed, eta_s);
    fflush(stdout);
}

/* ---- validation ---- */

static void print_validation(Run *r, const EvalResult *res)
{
    const TrainConfig *cfg = r->cfg;
    const char *weights = cfg->eval_average ? "average" : "raw";
    double top1 = res->images ? (double)res->top1 / res->images : 0;
    double top5 = res->images ? (double)res->top5 / res->images : 0;
    if (r->tty && !cfg->quiet) fputc('\n', stderr);
    char pos[128];
    train_format_position(&r->pos, r->shape.steps_per_epoch, pos, sizeof pos);
    if (!cfg->quiet)
        printf("validation after %s, %s weights, %d crop%s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%lld images, %lld "
               "unreadable, %.1f s)\n",
               pos, weights, cfg->eval_crops, cfg->eval_crops == 1 ? "" : "s", 100 * top1, 100 * top5, res->loss,
               (long long)res->images, (long long)res->bad, res->seconds);
    fprintf(r->metrics,
            "{\"step\":%ld,\"epoch\":%ld,\"epoch_step\":%ld,\"epochs_done\":%.4f,\"val_top1\":%.6f,"
            "\"val_top5\":%.6f,\"val_loss\":%.6f,\"val_images\":%lld,\"val_crops\":%d,"
            "\"val_weights\":\"%s\",\"val_seconds\":%.2f}\n",
            r->pos.step, r->pos.epoch_step == 0 ? r->pos.epoch : r->pos.epoch + 1,
            r->pos.epoch_step == 0 ? r->shape.steps_per_epoch : r->pos.epoch_step, epochs_done(r), top1, top5,
            res->loss, (long long)res->images, cfg->eval_crops, weights, res->seconds);
    fflush(r->metrics);
}

/* Collective: evaluates the validation set with the Polyak average or the
 * raw weights, logs the figures, restores the training weights. */
static int validate(Run *r)
{
    const TrainConfig *cfg = r->cfg;
    double t0 = clock_now();
    float *w = model_params(r->model);
    /* evaluate_run loads the weight set into the model: the training weights
     * wait in the copy (which an emergency checkpoint meanwhile takes), and a
     * raw-weights evaluation reads them from there */
    memcpy(r->backup, w, r->np * sizeof(float));
    train_stop_lock(r->stop);
    r->live_weights = r->backup;
    train_stop_unlock(r->stop);
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
    char err[512];
    const float *sets[1] = {cfg->eval_average ? r->opt.average : r->backup};
    int rc = evaluate_run(r->comm, r->model, sets, 1, &ec, &res, err, sizeof err);
    train_stop_lock(r->stop);
    memcpy(w, r->backup, r->np * sizeof(float));
    r->live_weights = w;
    train_stop_unlock(r->stop);
    trace_event(r->trace, "evaluation", 0, t0, clock_now(), r->pos.step);
    if (comm_agree(r->comm, rc != 0, err, err, sizeof err) != 0) {
        if (r->rank == 0) fprintf(stderr, "googlenet train: %s\n", err);
        evaluate_result_free(&res);
        return -1;
    }
    if (r->rank == 0) print_validation(r, &res);
    evaluate_result_free(&res);
    return 0;
}

/* ---- the loop ---- */

/* Whether a thing done every `e` steps (or epochs) is due after this step. */
static int due(const Run *r, TrainEvery e, int epoch_end)
{
    if (e.n <= 0) return 0;
    return e.epochs ? epoch_end && r->pos.epoch % e.n == 0 : r->pos.step % e.n == 0;
}

/* Collective: every replica must hold the same bits after the same updates. */
static int check_replicas(Run *r)
{
    char err[512];
    const float *w = model_params(r->model);
    int rc = comm_check_identical(r->comm, w, r->np * sizeof(float), "weights", err, sizeof err);
    if (rc != 0) {
        if (r->rank == 0) fprintf(stderr, "googlenet train: after step %ld: %s\n", r->pos.step, err);
        return -1;
    }
    if (r->rank == 0 && r->world > 1 && !r->cfg->quiet)
        printf("replicas identical after step %ld: %d ranks, weights checksum %016llx\n", r->pos.step, r->world,
               (unsigned long long)comm_checksum(w, r->np * sizeof(float)));
    return 0;
}

/* The step's batches (step.h TrainFetch): this rank's shard from the loader. */
static int fetch_batch(void *ctx, const TrainPosition *pos, int micro, float *images, int *labels, StepStats *st,
                       char *err, size_t errlen)
{
    Run *r = ctx;
    long want = pos->epoch_step * r->shape.accum + micro;
    LoaderBatchInfo info;
    int got = loader_next(r->loader, images, labels, &info, err, errlen);
    if (got >= 0 && (info.epoch != pos->epoch || info.step != want)) {
        /* the loader is past batches an accumulation remainder skips */
        if (loader_seek(r->loader, pos->epoch, want, err, errlen) != 0) return -1;
        got = loader_next(r->loader, images, labels, &info, err, errlen);
    }
    if (got < 0) return -1;
    if (info.warning && r->rank == 0) fprintf(stderr, "googlenet train: %s\n", info.warning);
    st->data_wait_s += info.wait_s;
    st->bad += info.bad;
    return 0;
}

/* What the loop carries from step to step. */
typedef struct {
    Interval iv;
    double t_last_log, t_log_start;
    long long epoch_bad;
    int stopped;
} LoopState;

/* Rank 0: the console line and, when due, the metrics.jsonl record. */
static void log_step(Run *r, LoopState *ls, int epoch_end)
{
    const TrainConfig *cfg = r->cfg;
    double now = clock_now();
    int last = r->pos.step == r->shape.total_steps;
    int json_due = now - ls->t_last_log >= cfg->log_every || epoch_end || last;
    if (!json_due && !(r->tty && now - ls->t_last_log >= 0.5)) return;
    ls->iv.seconds = now - ls->t_log_start;
    log_console(r, &ls->iv, epoch_end);
    if (json_due) {
        log_json(r, &ls->iv);
        memset(&ls->iv, 0, sizeof ls->iv);
        ls->t_log_start = now;
    }
    ls->t_last_log = now;
}

/* Collective: the step's metrics summed over the ranks, into the interval. */
static void reduce_metrics(Run *r, LoopState *ls, const StepStats *st, double v[M_COUNT])
{
    double s[M_COUNT] = {
        [M_LOSS] = st->loss, [M_MAIN] = st->loss_main, [M_AUX1] = st->loss_aux1, [M_AUX2] = st->loss_aux2,
        [M_TOP1] = st->top1, [M_TOP5] = st->top5, [M_SAMPLES] = st->samples, [M_WAIT] = st->data_wait_s,
        [M_EXPOSED] = st->comm_exposed_s, [M_COMM] = st->comm_s, [M_STOP] = comm_stop_requested(), [M_BAD] = st->bad,
    };
    comm_allreduce_double(r->comm, s, M_COUNT, COMM_SUM, "step metrics");
    memcpy(v, s, sizeof s);
    ls->epoch_bad += (long long)v[M_BAD];
    for (int k = 0; k < M_COUNT; k++) ls->iv.v[k] += v[k];
    ls->iv.steps++;
}

/* Collective, after the step: logs, checkpoints, validation, the replica
 * check and a requested stop. 0 to go on, 1 to leave the loop, -1 on a
 * failure (said on rank 0). */
static int after_step(Run *r, LoopState *ls, const StepStats *st, int epoch_end)
{
    const TrainConfig *cfg = r->cfg;
    double v[M_COUNT];
    reduce_metrics(r, ls, st, v);
    if (!isfinite(v[M_LOSS])) {
        if (r->rank == 0)
            fprintf(stderr, "googlenet train: the loss became %g at step %ld; lower --lr or add --warmup-epochs\n",
                    v[M_LOSS], r->pos.step);
        return -1;
    }
    if (r->rank == 0) log_step(r, ls, epoch_end);
    if (epoch_end) {
        if (r->rank == 0 && ls->epoch_bad > 0 && !cfg->quiet)
            printf("epoch %ld: %lld unreadable or corrupt files were replaced\n", r->pos.epoch, ls->epoch_bad);
        ls->epoch_bad = 0;
    }
    /* rank 0's checkpoint writer may ask to stop (--ckpt-fail stop); it has
     * printed why, the other ranks follow */
    int ckpt_failed = check_writer(r, 0) != 0;
    if (due(r, cfg->ckpt_every, epoch_end) && save_checkpoint(r) != 0) ckpt_failed = 1;
    if (comm_any(r->comm, ckpt_failed, "checkpoint status")) return -1;
    /* validation every --eval-every, and after the last step */
    int last = r->pos.step == r->shape.total_steps;
    if (r->val_ds && cfg->eval_every.n > 0 && (due(r, cfg->eval_every, epoch_end) || last) && validate(r) != 0)
        return -1;
    if (cfg->check_replicas > 0 && r->pos.step % cfg->check_replicas == 0 && check_replicas(r) != 0) return -1;
    if (v[M_STOP] > 0) {
        ls->stopped = 1;
        /* SIGTERM or SIGINT: rank 0 saves now, before any waiting */
        if (train_stop_urgent() && save_urgent(r) != 0) return -1;
        return 1;
    }
    return 0;
}

/* Rank 0: the base name of the writer's newest checkpoint. */
static const char *last_written(Run *r, CkptWriterStats *ws)
{
    ckpt_writer_stats(r->writer, ws);
    const char *base = strrchr(ws->last_path, '/');
    return base ? base + 1 : ws->last_path;
}

/* Collective: a final checkpoint when the last step did not just write one. */
static int final_checkpoint(Run *r)
{
    int failed = 0;
    if (r->rank == 0 && r->writer) {
        char path[64];
        CkptWriterStats ws;
        ckpt_file_name(r->pos.step, path, sizeof path);
        /* the write in flight first: comparing before it ends wrote the last step twice */
        if (check_writer(r, 1) != 0) failed = 1;
        if (!failed && strcmp(last_written(r, &ws), path) != 0 && (save_checkpoint(r) != 0 || check_writer(r, 1) != 0))
            failed = 1;
        if (!failed && strcmp(last_written(r, &ws), path) != 0) { /* --ckpt-fail continue: the result is not saved */
            fprintf(stderr, "googlenet train: the final checkpoint %s could not be written (see above); the newest "
                    "on disk is %s\n", path, ws.last_path[0] ? ws.last_path : "none");
            failed = 1;
        }
        if (!r->cfg->quiet && ws.writes_done > 0)
            printf("checkpoint: %s (%.1f MB, training blocked %.0f ms by the last save)\n", ws.last_path,
                   ws.last_file_bytes / 1e6, 1e3 * (ws.last_copy_s + ws.last_wait_s));
    }
    char err[64];
    if (comm_agree(r->comm, failed, "the final checkpoint failed", err, sizeof err) == 0) return 0;
    if (r->rank == 0) fprintf(stderr, "googlenet train: %s\n", err);
    return -1;
}

/* Rank 0: the line after a stop by a signal. */
static void print_stopped(const Run *r)
{
    char pos[128], name[64];
    train_format_position(&r->pos, r->shape.steps_per_epoch, pos, sizeof pos);
    ckpt_file_name(r->pos.step, name, sizeof name);
    /* mpirun reports a rank's non-zero exit as "the job has been aborted": the
     * line says beforehand that this one is a success */
    fprintf(stderr, "googlenet train: stopped by %s after %s, saved in %s/%s; continue with --resume auto. Exit code 3%s\n",
            train_stop_name(train_stop_signal()), pos, r->cfg->out, name,
            trainer_under_mpirun() ? ", which mpirun reports below as the job being aborted: nothing was lost"
                                   : " (stopped after a checkpoint)");
}

/* Rank 0: what the run is about to do. */
static void print_banner(const Run *r)
{
    const TrainConfig *cfg = r->cfg;
    if (cfg->quiet) return;
    printf("training: %d rank%s x batch %d x accum %d = global batch %d, %ld steps per epoch; steps %ld to %ld; "
           "lr %.4g (%s)\n",
           r->world, r->world == 1 ? "" : "s", cfg->batch, r->shape.accum, r->shape.global_batch,
           r->shape.steps_per_epoch, r->pos.step + 1, r->shape.total_steps, r->sched.base_lr,
           lr_policy_name(cfg->lr_policy));
    if (r->freeze_from)
        printf("frozen: every layer up to %s (%zu of %zu parameters) gets no gradient and no allreduce; %zu are "
               "trained\n", cfg->freeze, r->freeze_from, r->np, r->np - r->freeze_from);
}

static int train_loop(Run *r)
{
    char err[512];
    LoopState ls;
    memset(&ls, 0, sizeof ls);
    ls.t_last_log = ls.t_log_start = clock_now();
    int failed = r->pos.step < r->shape.total_steps &&
                 loader_seek(r->loader, r->pos.epoch, r->pos.epoch_step * r->shape.accum, err, sizeof err) != 0;
    if (comm_agree(r->comm, failed, err, err, sizeof err) != 0) {
        if (r->rank == 0) fprintf(stderr, "googlenet train: %s\n", err);
        return EXIT_FAIL;
    }
    if (r->rank == 0) print_banner(r);
    r->step.fetch = fetch_batch;
    r->step.fetch_ctx = r;
    r->step.stop = r->stop;
    int rc = 0;
    while (rc == 0 && r->pos.step < r->shape.total_steps) {
        StepStats st;
        int epoch_end = train_step(&r->step, &r->pos, &st, err, sizeof err);
        if (epoch_end < 0) comm_abort(r->comm, EXIT_FAIL, "loading step %ld: %s", r->pos.step, err);
        rc = after_step(r, &ls, &st, epoch_end);
    }
    if (rc < 0 || check_replicas(r) != 0) return EXIT_FAIL;
    if (final_checkpoint(r) != 0) return EXIT_FAIL;
    if (!ls.stopped) return EXIT_OK;
    if (r->rank == 0) print_stopped(r);
    return EXIT_PREEMPTED;
}

/* Collective: the run's set-up in order (setup.c); 1 when the run is already
 * complete, 0 when ready to train, -1 with err. */
static int setup(Run *r, char *err, size_t errlen)
{
    if (run_setup_data(r, err, errlen) != 0 || run_setup_model(r, err, errlen) != 0) return -1;
    int complete = run_start_point(r, err, errlen);
    if (complete != 0) return complete;
    if (run_setup_loop(r, err, errlen) != 0 || run_share_state(r, err, errlen) != 0) return -1;
    if (r->rank == 0) r->stop = train_stop_start(r->writer, snapshot, r, err, errlen);
    return comm_agree(r->comm, r->rank == 0 && !r->stop, err, err, errlen);
}

/* Rank 0 merges the ranks' trace files. */
static void close_trace(Run *r)
{
    char err[512];
    trace_close(r->trace);
    r->trace = NULL;
    comm_barrier(r->comm, "trace files");
    if (r->rank == 0 && trace_merge(r->cfg->trace, r->world, err, sizeof err) != 0)
        fprintf(stderr, "googlenet train: %s\n", err);
}

static void run_free(Run *r)
{
    if (r->metrics) fclose(r->metrics);
    ckpt_writer_free(r->writer);
    comm_allreducer_free(r->ar);
    loader_free(r->loader);
    model_free(r->model);
    dataset_free(r->train_ds);
    dataset_free(r->val_ds);
    sgd_state_free(&r->opt);
    free(r->backup);
    free(r->images);
    free(r->labels);
    free(r->class_names);
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

    char err[512] = "";
    int code = EXIT_FAIL;
    int rc = setup(&r, err, sizeof err);
    if (rc == 1) {
        code = EXIT_OK;
    } else if (rc == 0) {
        r.started = 1;
        code = train_loop(&r);
    } else if (r.rank == 0) {
        fprintf(stderr, "googlenet train: %s\n", err);
    }
    if (r.usage) code = EXIT_USAGE;
    train_stop_free(r.stop);
    if (!r.started && r.rank == 0) run_undo_start(&r);
    if (r.trace) close_trace(&r);
    run_free(&r);
    return code;
}
