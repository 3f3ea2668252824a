/* cmd/eval.c: `googlenet eval`: evaluates one checkpoint or an ensemble with
 * 1, 10 or 144 crops over a validation set (split over the ranks of mpirun),
 * prints the table and writes a JSON report; or, with --watch, evaluates every
 * checkpoint of a directory that a results file does not hold yet, one JSON
 * line each (for cron or a Slurm schedule; --follow keeps waiting). Also
 * `googlenet predict`, the same evaluation run on single images given by
 * path, which prints each image's top classes instead of scores.
 *
 * Rank 0 reads and verifies the checkpoints and the dataset index and
 * broadcasts them; every rank then runs evaluate_run on its shard. A failure
 * on any rank ends every rank with the same exit code. The work is in
 * evaluate.c (evaluation, report, table), eval_crops.c (crop boxes) and
 * eval_watch.c (results file and locks); this file parses, orchestrates and
 * prints.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"
#include "comm/clock.h"
#include "dataloader/dataset.h"
#include "dataloader/image.h"
#include "nn/model.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/cli.h"
#include "trainer/commands.h"
#include "trainer/eval/watch.h"
#include "trainer/eval/evaluate.h"
#include "trainer/runtime.h"

#define ERRLEN 1024
#define PATHLEN 4096
#define WATCH_SETTLE_S 120.0 /* a checkpoint that fails to verify within this long of its last change is still arriving */

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

/* Collective: 1 on every rank when any rank failed. A failing rank prints its
 * own message, so rank-0-only work is reported once. */
static int eval_agree(Comm *c, int failed, const char *msg)
{
    if (failed) {
        if (comm_rank(c) > 0) fprintf(stderr, "googlenet eval: rank %d: %s\n", comm_rank(c), msg);
        else fprintf(stderr, "googlenet eval: %s\n", msg);
    }
    return comm_any(c, failed, "eval set-up");
}

/* ---- the dataset: rank 0 indexes, everyone gets the index ---- */

static Dataset *eval_open_data(Comm *c, const EvalArgs *a)
{
    char err[ERRLEN] = "";
    Dataset *ds = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int failed = 0;
    if (comm_rank(c) == 0) {
        DatasetOptions o = {a->data, a->classes_file, a->labels_file, a->cache_file};
        ds = dataset_open(&o, err, sizeof err);
        if (!ds) failed = 1;
        else if (comm_size(c) > 1 && dataset_serialize(ds, &buf, &len, err, sizeof err) != 0) failed = 1;
    }
    if (eval_agree(c, failed, err)) {
        dataset_free(ds);
        free(buf);
        return NULL;
    }
    if (comm_size(c) == 1) return ds;
    uint64_t n = len;
    comm_broadcast(c, &n, sizeof n, "dataset index size");
    if (comm_rank(c) != 0 && !(buf = malloc(n ? n : 1))) failed = 1, snprintf(err, sizeof err, "out of memory for the dataset index");
    if (eval_agree(c, failed, err)) {
        free(buf);
        return NULL;
    }
    comm_broadcast(c, buf, n, "dataset index");
    if (comm_rank(c) != 0 && !(ds = dataset_deserialize(buf, n, err, sizeof err))) failed = 1;
    free(buf);
    if (eval_agree(c, failed, err)) {
        dataset_free(ds);
        return NULL;
    }
    return ds;
}

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

static void ensemble_free(Ensemble *e)
{
    for (int i = 0; i < e->n; i++) {
        if (e->sets) free(e->sets[i]);
        if (e->paths) free(e->paths[i]);
    }
    free(e->sets);
    free(e->paths);
    free(e->steps);
    free(e->sha);
    free(e->class_names);
    memset(e, 0, sizeof *e);
}

/* Rank 0: opens, verifies and reads member i. */
static int ensemble_read_one(Ensemble *e, int i, const char *path, int average, char *err, size_t errlen)
{
    char why[ERRLEN];
    CkptReader *r = ckpt_open(path, why, sizeof why);
    /* ckpt's messages usually start with the path already */
    if (!r) return snprintf(err, errlen, strstr(why, path) ? "checkpoint %.0s%s" : "checkpoint %s: %s", path, why), -1;
    int rc = -1;
    if (ckpt_reader_verify(r, why, sizeof why) != 0) {
        snprintf(err, errlen, "checkpoint %s does not verify (damaged, or still being written): %s", path,
                 strncmp(why, path, strlen(path)) == 0 && why[strlen(path)] == ':' ? why + strlen(path) + 2 : why);
        goto out;
    }
    const CkptMeta *m = ckpt_reader_meta(r);
    if (strcmp(m->arch, CKPT_ARCH) != 0) {
        snprintf(err, errlen, "checkpoint %s holds architecture '%s', not the '%s' this build evaluates", path, m->arch,
                 CKPT_ARCH);
        goto out;
    }
    if (i == 0) {
        e->np = m->num_params;
        e->classes = m->classes;
        e->aux = m->aux;
        e->crop = m->crop;
        e->head_dropout = m->head_dropout;
        e->aux_dropout = m->aux_dropout;
        if (m->class_names && m->num_class_names == m->classes) {
            size_t len = 0;
            const char *p = m->class_names;
            for (int k = 0; k < m->num_class_names; k++) len += strcspn(p + len, "\n") + 1;
            if ((e->class_names = malloc(len + 1))) {
                memcpy(e->class_names, m->class_names, len);
                e->class_names[len] = 0;
                e->num_class_names = m->num_class_names;
            }
        }
    } else {
        const char *first = e->paths[0];
        if (m->classes != e->classes) {
            snprintf(err, errlen, "checkpoint %s has %d classes but %s has %d: ensemble members must share classes",
                     path, m->classes, first, e->classes);
            goto out;
        }
        if (m->aux != e->aux || m->num_params != e->np) {
            snprintf(err, errlen,
                     "checkpoint %s (%zu parameters, aux heads %s) differs in architecture from %s (%zu, %s): "
                     "ensemble members must share it",
                     path, m->num_params, m->aux ? "on" : "off", first, e->np, e->aux ? "on" : "off");
            goto out;
        }
        if (m->crop != e->crop && e->crop > 0) e->crop = -1; /* members disagree: --crop must decide */
    }
    if (i == 0 && !ckpt_meta_get_extra(m, "conv_plan", e->plan, sizeof e->plan)) e->plan[0] = '\0';
    float mean[3], std[3];
    int has = ckpt_meta_get_norm(m, mean, std);
    if (i == 0) {
        e->has_norm = has;
        memcpy(e->mean, mean, sizeof mean);
        memcpy(e->std, std, sizeof std);
    } else if (has != e->has_norm || (has && (memcmp(mean, e->mean, sizeof mean) || memcmp(std, e->std, sizeof std)))) {
        snprintf(err, errlen, "checkpoint %s was trained with another input normalisation than %s: ensemble "
                 "members must share it (or pass --norm)", path, e->paths[0]);
        goto out;
    }
    e->steps[i] = m->step;
    snprintf(e->sha[i], sizeof e->sha[i], "%s", m->params_sha256);
    if (!(e->sets[i] = malloc(e->np * sizeof(float)))) {
        snprintf(err, errlen, "out of memory for the %zu parameters of %s", e->np, path);
        goto out;
    }
    /* a slim checkpoint's one set of weights is in its weights section, and is what it says */
    char slim[16] = "";
    CkptSectionKind kind = average ? CKPT_SEC_AVERAGE : CKPT_SEC_WEIGHTS;
    if (ckpt_meta_get_extra(m, CKPT_EXTRA_SLIM, slim, sizeof slim)) {
        if ((strcmp(slim, "average") == 0) != average) {
            snprintf(err, errlen, "checkpoint %s is slim and holds only its %s: evaluate it with --weights %s", path,
                     average ? "last weights" : "Polyak average", average ? "raw" : "average");
            goto out;
        }
        kind = CKPT_SEC_WEIGHTS;
    }
    if (ckpt_reader_read(r, kind, e->sets[i], e->np, why, sizeof why) != 0) {
        snprintf(err, errlen, "checkpoint %s: cannot read its %s: %s", path, average ? "Polyak average" : "weights", why);
        goto out;
    }
    rc = 0;
out:
    ckpt_close(r);
    return rc;
}

/* Collective: rank 0 reads paths[0..n), every rank ends with the weights. */
static int ensemble_load(Comm *c, const char *const *paths, int n, int average, Ensemble *e, char *err,
                         size_t errlen)
{
    memset(e, 0, sizeof *e);
    int failed = 0;
    e->n = n;
    e->sets = calloc((size_t)n, sizeof *e->sets);
    e->paths = calloc((size_t)n, sizeof *e->paths);
    e->steps = calloc((size_t)n, sizeof *e->steps);
    e->sha = calloc((size_t)n, sizeof *e->sha);
    if (!e->sets || !e->paths || !e->steps || !e->sha) failed = 1, snprintf(err, errlen, "out of memory");
    for (int i = 0; i < n && !failed; i++)
        if (!(e->paths[i] = strdup(paths[i]))) failed = 1, snprintf(err, errlen, "out of memory");
    if (comm_rank(c) == 0)
        for (int i = 0; i < n && !failed; i++)
            if (ensemble_read_one(e, i, paths[i], average, err, errlen) != 0) failed = 1;
    if (comm_any(c, failed, "checkpoint read")) {
        if (!failed) snprintf(err, errlen, "rank 0 could not read the checkpoints");
        return -1;
    }
    struct {
        uint64_t np;
        int32_t classes, aux, crop, has_norm;
        float head_dropout, aux_dropout, mean[3], std[3];
    } h = {e->np, e->classes, e->aux, e->crop, e->has_norm, e->head_dropout, e->aux_dropout,
           {e->mean[0], e->mean[1], e->mean[2]}, {e->std[0], e->std[1], e->std[2]}};
    comm_broadcast(c, &h, sizeof h, "checkpoint shape");
    e->has_norm = h.has_norm;
    memcpy(e->mean, h.mean, sizeof h.mean);
    memcpy(e->std, h.std, sizeof h.std);
    e->np = h.np;
    e->classes = h.classes;
    e->aux = h.aux;
    e->crop = h.crop;
    e->head_dropout = h.head_dropout;
    e->aux_dropout = h.aux_dropout;
    comm_broadcast(c, e->plan, sizeof e->plan, "convolution plan");
    comm_broadcast(c, e->steps, (size_t)n * sizeof *e->steps, "checkpoint steps");
    comm_broadcast(c, e->sha, (size_t)n * sizeof *e->sha, "checkpoint digests");
    for (int i = 0; i < n && comm_rank(c) != 0; i++)
        if (!(e->sets[i] = malloc(e->np * sizeof(float)))) failed = 1, snprintf(err, errlen, "out of memory for weights");
    if (comm_any(c, failed, "weight buffers")) return -1;
    for (int i = 0; i < n; i++) comm_broadcast(c, e->sets[i], e->np * sizeof(float), "checkpoint weights");
    return 0;
}

/* Rank 0: the checkpoint's class names against the dataset's, when the
 * dataset's are names (a flat directory without a classes file numbers them). */
static int ensemble_check_names(const Ensemble *e, const Dataset *ds, char *err, size_t errlen)
{
    if (!e->class_names || e->num_class_names != dataset_num_classes(ds)) return 0;
    int numeric = 1;
    for (int k = 0; k < dataset_num_classes(ds) && numeric; k++) {
        const char *n = dataset_class_name(ds, k);
        numeric = n[0] && strspn(n, "0123456789") == strlen(n);
    }
    if (numeric) return 0;
    const char *p = e->class_names;
    for (int k = 0; k < e->num_class_names; k++) {
        size_t len = strcspn(p, "\n");
        const char *dn = dataset_class_name(ds, k);
        if (strlen(dn) != len || strncmp(dn, p, len) != 0)
            return snprintf(err, errlen,
                            "class %d is '%.*s' in checkpoint %s but '%s' in %s: the label orders differ; pass "
                            "--classes-file with the training class order",
                            k, (int)(len < 100 ? len : 100), p, e->paths[0], dn, dataset_root(ds)), -1;
        p += len + 1;
    }
    return 0;
}

/* ---- the model ---- */

static Model *eval_model(const Ensemble *e, const EvalArgs *a, char *err, size_t errlen)
{
    if (e->crop < 0 && a->crop <= 0)
        return snprintf(err, errlen, "the ensemble members were trained at different crops; pass --crop"), NULL;
    ModelConfig mc = model_default_config();
    mc.classes = e->classes;
    mc.crop = a->crop > 0 ? a->crop : e->crop > 0 ? e->crop : 224;
    mc.batch = a->batch;
    mc.aux = e->aux;
    mc.training = 0;
    mc.head_dropout = e->head_dropout;
    mc.aux_dropout = e->aux_dropout;
    mc.conv_gemm = strcmp(a->conv_algo, "gemm") == 0;
    Model *m = model_init(&mc, err, errlen);
    if (!m) return NULL;
    if (model_num_params(m) != e->np) {
        snprintf(err, errlen, "checkpoint %s holds %zu parameters but a model with %d classes%s has %zu", e->paths[0],
                 e->np, e->classes, e->aux ? " and aux heads" : "", model_num_params(m));
        model_free(m);
        return NULL;
    }
    return m;
}

/* Collective, once every rank has a model: the convolution plan it runs. By
 * default the checkpoint's (the forward algorithms training evaluated with:
 * the same results), else one timed now (rank 0's, on every rank), or the
 * fixed one --conv-algo winograd/gemm gave model_init. fresh: the model is
 * new (a reused one keeps its timed plan). */
static int eval_plan(Comm *c, Model *m, const Ensemble *e, const EvalArgs *a, int fresh, char *err, size_t errlen)
{
    int ckpt = strcmp(a->conv_algo, "checkpoint") == 0;
    if (ckpt && e->plan[0]) return model_conv_plan_apply(m, e->plan, err, errlen);
    if (!fresh || !(ckpt || strcmp(a->conv_algo, "auto") == 0)) return 0;
    char plan[sizeof e->plan] = "";
    int failed = model_conv_tune(m, err, errlen) < 0;
    if (!failed && comm_rank(c) == 0 && model_conv_plan_format(m, plan, sizeof plan) < 0)
        failed = 1, snprintf(err, errlen, "the convolution plan does not fit in %zu bytes", sizeof plan);
    if (comm_any(c, failed, "convolution plan")) {
        if (!failed) snprintf(err, errlen, "another rank could not time the convolution algorithms");
        return -1;
    }
    comm_broadcast(c, plan, sizeof plan, "convolution plan");
    return model_conv_plan_apply(m, plan, err, errlen);
}

typedef struct {
    double t0, last;
    int rank, quiet;
} Progress;

static void eval_progress(void *ctx, long done, long total)
{
    Progress *p = ctx;
    double t = clock_now();
    if (p->rank != 0 || p->quiet || (t - p->last < 10.0 && done < total)) return;
    p->last = t;
    fprintf(stderr, "googlenet eval: %ld/%ld images of rank 0's shard, %.1f img/s\n", done, total,
            done / (t - p->t0 > 1e-9 ? t - p->t0 : 1e-9));
}

static int eval_config(const EvalArgs *a, const Dataset *ds, const Ensemble *e, EvalConfig *ec, Progress *pg,
                       char *err, size_t errlen)
{
    *ec = evaluate_default_config();
    ec->ds = ds;
    ec->crops = atoi(a->crops);
    ec->batch = a->batch;
    ec->subset = a->subset;
    ec->workers = a->workers;
    ec->resize = a->resize;
    ec->max_bad = a->max_bad;
    ec->max_bad_name = "--max-bad";
    if (image_filter_parse(a->filter, &ec->filter) != 0 || ec->filter == IMAGE_FILTER_RANDOM)
        return snprintf(err, errlen, "--interp '%s' is not a fixed filter; use nearest, bilinear, bicubic, area or lanczos",
                        a->filter), -1;
    if (strcmp(a->norm, "caffe") == 0) {
        const float mean[3] = IMAGE_CAFFE_MEAN_RGB, std[3] = IMAGE_CAFFE_STD_RGB;
        memcpy(ec->mean, mean, sizeof mean);
        memcpy(ec->std, std, sizeof std);
    } else if (strcmp(a->norm, "checkpoint") == 0 && e->has_norm) {
        /* what the checkpoint was trained with (train --mean/--std) */
        memcpy(ec->mean, e->mean, sizeof ec->mean);
        memcpy(ec->std, e->std, sizeof ec->std);
    }
    ec->progress = eval_progress;
    ec->progress_ctx = pg;
    return 0;
}

/* ---- one evaluation: --ckpt FILE [--ckpt FILE ...] ---- */

static int eval_once(Comm *c, const EvalArgs *a, const Dataset *ds)
{
    char err[ERRLEN] = "";
    int rank = comm_rank(c), average = strcmp(a->weights, "average") == 0;
    double t0 = clock_now();
    Ensemble e;
    if (ensemble_load(c, a->ckpts.items, a->ckpts.n, average, &e, err, sizeof err) != 0) {
        if (rank == 0) fprintf(stderr, "googlenet eval: %s\n", err);
        ensemble_free(&e);
        return EXIT_FAIL;
    }
    int failed = 0;
    if (rank == 0 && e.classes != dataset_num_classes(ds))
        failed = 1, snprintf(err, sizeof err,
                             "checkpoint %s has %d classes but the dataset %s has %d; evaluate with the validation set of "
                             "the same classes (--classes-file fixes the label order)",
                             e.paths[0], e.classes, a->data, dataset_num_classes(ds));
    if (rank == 0 && !failed && ensemble_check_names(&e, ds, err, sizeof err) != 0) failed = 1;
    Model *m = NULL;
    if (!failed && !(m = eval_model(&e, a, err, sizeof err))) failed = 1;
    if (eval_agree(c, failed, err) || eval_agree(c, eval_plan(c, m, &e, a, 1, err, sizeof err) != 0, err)) {
        model_free(m);
        ensemble_free(&e);
        return EXIT_FAIL;
    }
    if (rank == 0 && !a->quiet)
        fprintf(stderr, "googlenet eval: %d checkpoint%s (%s weights) read and verified in %.1f s; evaluating %zu images on %d rank%s\n",
                e.n, e.n == 1 ? "" : "s", a->weights, clock_now() - t0, dataset_size(ds), comm_size(c),
                comm_size(c) == 1 ? "" : "s");
    Progress pg = {clock_now(), clock_now(), rank, a->quiet};
    EvalConfig ec;
    if (eval_config(a, ds, &e, &ec, &pg, err, sizeof err) != 0) failed = 1; /* same on every rank */
    EvalResult res;
    int rc = failed ? -1 : evaluate_run(c, m, (const float *const *)e.sets, e.n, &ec, &res, err, sizeof err);
    int code = EXIT_OK;
    if (rc < 0) {
        if (rank == 0) fprintf(stderr, "googlenet eval: %s\n", err);
        code = EXIT_FAIL;
    } else if (rank == 0) {
        /* an incomplete evaluation (over --max-bad) still shows what it scored */
        EvalReportInfo info = {a->data, a->weights, (const char *const *)e.paths, e.steps, NULL, e.n, ds};
        const char *sha[CLI_LIST_MAX];
        for (int i = 0; i < e.n; i++) sha[i] = e.sha[i];
        info.ckpt_sha256 = sha;
        evaluate_print_table(stdout, &res, &info, a->show_classes);
        fflush(stdout);
        char why[ERRLEN];
        if (a->report && evaluate_report_write(a->report, &res, &info, why, sizeof why) != 0) {
            fprintf(stderr, "googlenet eval: %s\n", why);
            code = EXIT_FAIL;
        }
    }
    if (rc == EVAL_INCOMPLETE) {
        if (rank == 0) fprintf(stderr, "googlenet eval: incomplete: %s\n", err);
        code = EXIT_FAIL;
    }
    if (rc >= 0) evaluate_result_free(&res);
    model_free(m);
    ensemble_free(&e);
    return code;
}

/* ---- scheduled evaluation: --watch DIR --results FILE ---- */

/* A checkpoint this process failed to read or evaluate, retried only once the
 * file changes (it may still be arriving). */
typedef struct {
    char name[256];
    long long size, mtime_ns;
} Skip;

static int file_sig(const char *path, long long *size, long long *mtime_ns)
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    *size = (long long)st.st_size;
    *mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    return 0;
}

/* Remembers name as it is now (size, mtime); best effort when out of memory. */
static void skip_add(Skip **skips, int *n, const char *name, const char *path)
{
    Skip *g = realloc(*skips, (size_t)(*n + 1) * sizeof **skips);
    if (!g) return;
    *skips = g;
    snprintf(g[*n].name, sizeof g[*n].name, "%s", name);
    if (file_sig(path, &g[*n].size, &g[*n].mtime_ns) == 0) (*n)++;
}

/* Rank 0: the next checkpoint to evaluate, locked; 1 found, 0 none, -1 error. */
static int watch_pick(const EvalArgs *a, int lock_fd, Skip *skips, int nskips, char *path, size_t pathlen,
                      long *step, char *err, size_t errlen)
{
    EvalWatchEntry *v;
    int n;
    if (eval_watch_list(a->watch, &v, &n, err, errlen) != 0) return -1;
    int found = 0;
    for (int i = 0; i < n && !found; i++) {
        snprintf(path, pathlen, "%s/%s", a->watch, v[i].name);
        long long size, mt;
        if (file_sig(path, &size, &mt) != 0) continue; /* removed meanwhile (keep/rotation) */
        int skipped = 0;
        for (int k = 0; k < nskips; k++)
            if (!strcmp(skips[k].name, v[i].name) && skips[k].size == size && skips[k].mtime_ns == mt) skipped = 1;
        if (skipped) continue;
        CkptMeta meta;
        char why[ERRLEN];
        if (ckpt_peek_meta(path, &meta, why, sizeof why) != 0) {
            /* not complete yet or damaged: ensemble_read_one names it when it is picked */
            snprintf(meta.params_sha256, sizeof meta.params_sha256, "unreadable");
            meta.class_names = meta.extra = NULL;
        }
        char sha[65];
        snprintf(sha, sizeof sha, "%s", meta.params_sha256);
        ckpt_meta_free(&meta);
        int done = eval_watch_done(a->results, v[i].name, sha, err, errlen);
        if (done < 0) {
            free(v);
            return -1;
        }
        if (done) continue;
        int got = eval_watch_trylock(lock_fd, v[i].step, err, errlen);
        if (got < 0) {
            free(v);
            return -1;
        }
        if (!got) continue; /* another job evaluates it now */
        /* it may have been finished between the look and the lock */
        done = eval_watch_done(a->results, v[i].name, sha, err, errlen);
        if (done != 0) {
            eval_watch_unlock(lock_fd, v[i].step);
            if (done < 0) {
                free(v);
                return -1;
            }
            continue;
        }
        *step = v[i].step;
        found = 1;
    }
    free(v);
    return found;
}

static volatile sig_atomic_t eval_signalled;
static void eval_on_signal(int sig)
{
    (void)sig;
    eval_signalled = 1;
    comm_request_stop();
}

static int eval_watch(Comm *c, const EvalArgs *a, const Dataset *ds)
{
    char err[ERRLEN] = "";
    int rank = comm_rank(c), average = strcmp(a->weights, "average") == 0, code = EXIT_OK;
    int lock_fd = -1, failed = 0;
    if (rank == 0 && (lock_fd = eval_watch_lock_open(a->results, err, sizeof err)) < 0) failed = 1;
    if (eval_agree(c, failed, err)) return EXIT_FAIL;
    if (a->follow) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = eval_on_signal;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
    }
    Skip *skips = NULL;
    int nskips = 0, evaluated = 0;
    Model *m = NULL;
    ModelConfig have = {0};
    for (;;) {
        if (a->follow && comm_stop_agreed(c)) break;
        char path[PATHLEN] = "";
        long step = -1;
        int pick = 0;
        if (rank == 0) pick = watch_pick(a, lock_fd, skips, nskips, path, sizeof path, &step, err, sizeof err);
        if (eval_agree(c, pick < 0, err)) {
            code = EXIT_FAIL;
            break;
        }
        int32_t found = pick;
        comm_broadcast(c, &found, sizeof found, "next checkpoint");
        if (!found) {
            if (!a->follow) break;
            double until = clock_now() + a->poll;
            while (clock_now() < until && !eval_signalled) usleep(100000);
            continue;
        }
        comm_broadcast(c, path, sizeof path, "checkpoint path");
        const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        Ensemble e;
        const char *paths[1] = {path};
        int bad = ensemble_load(c, paths, 1, average, &e, err, sizeof err) != 0, unverified = bad;
        if (!bad && rank == 0 && e.classes != dataset_num_classes(ds))
            bad = 1, snprintf(err, sizeof err, "checkpoint %s has %d classes but the dataset %s has %d", path, e.classes,
                              a->data, dataset_num_classes(ds));
        if (!bad && rank == 0 && ensemble_check_names(&e, ds, err, sizeof err) != 0) bad = 1;
        bad = comm_any(c, bad, "checkpoint check");
        EvalResult res;
        int have_res = 0;
        double t0 = clock_now();
        if (!bad) {
            int crop = a->crop > 0 ? a->crop : e.crop, fresh = 0;
            if (!m || have.classes != e.classes || have.aux != e.aux || have.crop != crop) {
                model_free(m);
                m = eval_model(&e, a, err, sizeof err);
                if (m) have = *model_config(m);
                fresh = 1;
            }
            bad = eval_agree(c, m == NULL, err) || eval_agree(c, eval_plan(c, m, &e, a, fresh, err, sizeof err) != 0, err);
            if (bad) err[0] = 0; /* already printed */
        }
        if (!bad) {
            Progress pg = {clock_now(), clock_now(), rank, a->quiet};
            EvalConfig ec;
            int erc = eval_config(a, ds, &e, &ec, &pg, err, sizeof err) != 0
                          ? -1 : evaluate_run(c, m, (const float *const *)e.sets, 1, &ec, &res, err, sizeof err);
            have_res = erc >= 0; /* an incomplete one is freed, not recorded */
            bad = erc != 0;
        }
        if (rank == 0) {
            if (bad) {
                long long size = 0, mt = 0;
                int sig = file_sig(path, &size, &mt) == 0;
                double age = (double)time(NULL) - mt / 1e9;
                /* a file that does not verify yet and changed lately is
                 * probably still arriving (a copy): a note, not an error */
                if (unverified && sig && age < WATCH_SETTLE_S)
                    fprintf(stderr, "googlenet eval: %s does not verify yet (changed %.0f s ago); it is retried later\n",
                            name, age);
                else {
                    if (err[0]) fprintf(stderr, "googlenet eval: skipping %s: %s\n", name, err);
                    code = EXIT_FAIL;
                }
                skip_add(&skips, &nskips, name, path);
            } else {
                EvalReportInfo info = {a->data, a->weights, NULL, NULL, NULL, 0, ds};
                char *json = evaluate_json(&res, &info, 0, 1);
                size_t len = (json ? strlen(json) : 0) + PATHLEN + 512;
                char *line = malloc(len);
                if (!json || !line) {
                    fprintf(stderr, "googlenet eval: out of memory for the result of %s\n", name);
                    code = EXIT_FAIL;
                } else {
                    snprintf(line, len, "{\"ckpt\":\"%s\",\"path\":\"%s\",\"step\":%ld,\"params_sha256\":\"%s\","
                             "\"evaluated_unix\":%lld,%s",
                             name, path, e.steps[0], e.sha[0], (long long)time(NULL), json + 1);
                    if (eval_watch_append(a->results, lock_fd, line, err, sizeof err) != 0) {
                        fprintf(stderr, "googlenet eval: %s\n", err);
                        code = EXIT_FAIL;
                    } else {
                        evaluated++;
                        /* never twice in one run, even if the line could not be read back */
                        skip_add(&skips, &nskips, name, path);
                        if (!a->quiet)
                            printf("%s (step %ld): top-1 %.2f%%  top-5 %.2f%%  loss %.4f  %lld images, %lld unreadable, %.1f s\n",
                                   name, e.steps[0], 100.0 * res.top1 / (res.images ? res.images : 1),
                                   100.0 * res.top5 / (res.images ? res.images : 1), res.loss,
                                   (long long)res.images, (long long)res.bad, clock_now() - t0);
                        fflush(stdout);
                    }
                }
                free(json);
                free(line);
            }
            eval_watch_unlock(lock_fd, step);
        }
        if (have_res) evaluate_result_free(&res);
        ensemble_free(&e);
    }
    if (rank == 0 && !a->quiet) printf("googlenet eval: %d checkpoint%s evaluated into %s\n", evaluated,
                                       evaluated == 1 ? "" : "s", a->results);
    model_free(m);
    free(skips);
    if (lock_fd >= 0) close(lock_fd);
    return code;
}

/* The defaults of the flags eval and predict share. */
static void eval_args_default(EvalArgs *a)
{
    memset(a, 0, sizeof *a);
    a->crops = "1";
    a->weights = "average";
    a->filter = "bilinear";
    a->norm = "checkpoint";
    a->conv_algo = "checkpoint";
    a->batch = 32;
    a->workers = 2;
    a->threads = trainer_default_threads();
    a->resize = 256;
}

int cmd_eval(int argc, char **argv)
{
    EvalArgs a;
    eval_args_default(&a);
    a.threads = 0; /* 0: this node's cores / its ranks */
    a.show_classes = 5;
    a.max_bad = 0.01;
    a.poll = 60;
    a.timeout = COMM_DEFAULT_TIMEOUT;
    CliFlag flags[] = {
        {"--ckpt", CLI_STR_LIST, &a.ckpts, "checkpoint to evaluate; repeat for an ensemble (probabilities averaged)", NULL, 0, 0, "FILE"},
        {"--data", CLI_STR, &a.data, "validation set: class tree, flat directory (+ --labels) or shard directory", NULL, 0, 0, "DIR"},
        {"--labels", CLI_STR, &a.labels_file, "labels of a flat validation directory (ILSVRC ground truth, 'name label' lines or LOC_val_solution.csv)", NULL, 0, 0, "FILE"},
        {"--classes-file", CLI_STR, &a.classes_file, "class order, one id per line (the training order)", NULL, 0, 0, "FILE"},
        {"--index-cache", CLI_STR, &a.cache_file, "cache of the dataset index (rebuilt when the tree changes)", NULL, 0, 0, "FILE"},
        {"--crops", CLI_CHOICE, &a.crops, "crops per image: centre; 4 corners + centre, mirrored; the paper's 144", "1|10|144"},
        {"--weights", CLI_CHOICE, &a.weights, "the checkpoint's Polyak average (the paper's final model) or its last weights", "average|raw"},
        {"--batch", CLI_INT, &a.batch, "crops per forward pass", NULL, 1, CLI_BATCH_MAX},
        {"--subset", CLI_LONG, &a.subset, "evaluate N images evenly spaced over the set (0: all), for a quick look", NULL, 0, 1e12},
        {"--crop", CLI_INT, &a.crop, "input size; 0 takes the checkpoint's", NULL, 0, CLI_CROP_MAX},
        {"--report", CLI_STR, &a.report, "write the figures and per-class accuracy as JSON", NULL, 0, 0, "FILE"},
        {"--workers", CLI_INT, &a.workers, "decode threads per rank (0: decode in the main thread)", NULL, 0, CLI_THREADS_MAX},
        {"--threads", CLI_INT, &a.threads, "threads per rank for the network (GEMM and layers); 0: this node's cores / its ranks", NULL, 0, CLI_THREADS_MAX},
        {"--resize", CLI_INT, &a.resize, "1- and 10-crop shorter side at crop 224 (scaled by crop/224)", NULL, 224, 4096},
        {"--interp", CLI_CHOICE, &a.filter, "resampling of the crops (a fixed filter: as the loader's evaluation transform)", "nearest|bilinear|bicubic|area|lanczos", 0, 0, NULL, "--filter"},
        {"--norm", CLI_CHOICE, &a.norm, "input normalisation: the one the checkpoint was trained with (ImageNet's when it recorded none), ImageNet mean/std on 0..1, or Caffe's mean on 0..255", "checkpoint|imagenet|caffe"},
        {"--max-bad", CLI_FLOAT, &a.max_bad, "fraction of images allowed to be unreadable (skipped, counted)", NULL, 0, 1},
        {"--show-classes", CLI_INT, &a.show_classes, "worst and best classes listed in the table", NULL, 0, 100000},
        {"--watch", CLI_STR, &a.watch, "evaluate every checkpoint of DIR not yet in --results, then exit", NULL, 0, 0, "DIR"},
        {"--results", CLI_STR, &a.results, "with --watch: the JSON-lines file results are appended to", NULL, 0, 0, "FILE"},
        {"--follow", CLI_BOOL, &a.follow, "with --watch: keep waiting for new checkpoints (until SIGTERM/SIGINT)"},
        {"--poll", CLI_FLOAT, &a.poll, "with --follow: seconds between looks at DIR", NULL, 0.1, 86400},
        {"--timeout", CLI_FLOAT, &a.timeout, "seconds a collective may take before the job is aborted (0: never)", NULL, 0, CLI_TIMEOUT_MAX},
        {"--quiet", CLI_BOOL, &a.quiet, "no progress lines"},
        {"--conv-algo", CLI_CHOICE, &a.conv_algo, "convolution algorithms: the checkpoint's plan (what training evaluated with; timed now when it has none), timed now, or fixed", "checkpoint|auto|winograd|gemm"},
    };
    int nf = CLI_COUNT(flags), help = 0;
    char err[ERRLEN];
    if (cli_parse(flags, nf, argc, argv, NULL, 0, NULL, &help, err, sizeof err) != 0) {
        trainer_print_once("eval", "%s", err);
        return EXIT_USAGE;
    }
    if (help) {
        if (trainer_launcher_rank() == 0)
            cli_print_help(stdout, "googlenet eval --ckpt FILE [--ckpt FILE ...] --data VAL [flags]\n"
                               "       googlenet eval --watch DIR --results FILE.jsonl --data VAL [--follow] [flags]",
                       "Evaluates checkpoints on a validation set with 1, 10 or 144 crops per image\n"
                       "(Szegedy et al. 2015, Table 3); several --ckpt average their softmax\n"
                       "probabilities (an ensemble). Under mpirun -np N the set is split into N\n"
                       "contiguous shards; rank 0 prints the table and writes --report.\n"
                       "With --watch, every checkpoint of DIR that --results does not hold yet is\n"
                       "evaluated and appended as one JSON line; safe to run again and again (cron,\n"
                       "Slurm): a lock per checkpoint keeps two jobs apart, files still being written\n"
                       "are skipped. Crop sizes are for crop 224 and scale with the crop.",
                       flags, nf);
        return EXIT_OK;
    }
    const char *usage = NULL;
    if (!a.data) usage = "--data is required: the validation set to evaluate";
    else if (!a.watch && a.ckpts.n == 0) usage = "give --ckpt FILE (repeat for an ensemble) or --watch DIR --results FILE";
    else if (a.watch && a.ckpts.n > 0) usage = "--watch evaluates each checkpoint of DIR alone; leave out --ckpt";
    else if (a.watch && !a.results) usage = "--watch needs --results FILE.jsonl to record what was evaluated";
    else if (a.watch && a.report) usage = "--report is for one evaluation; --watch writes --results lines";
    else if (!a.watch && (a.results || a.follow)) usage = "--results and --follow go with --watch DIR";
    char crop_msg[160];
    if (!usage && a.crop > 0 && a.crop < model_min_crop(0)) {
        trainer_crop_too_small(a.crop, crop_msg, sizeof crop_msg);
        usage = crop_msg;
    }
    if (usage) {
        trainer_print_once("eval", "%s", usage);
        return EXIT_USAGE;
    }
    /* rank 0 reads the data and the checkpoints (and reports for the job) */
    if (access(a.data, R_OK) != 0) {
        trainer_print_once("eval", "cannot read --data %s: %s", a.data, strerror(errno));
        return EXIT_FAIL;
    }
    for (int i = 0; i < a.ckpts.n; i++)
        if (access(a.ckpts.items[i], R_OK) != 0) {
            trainer_print_once("eval", "cannot read --ckpt %s: %s", a.ckpts.items[i], strerror(errno));
            return EXIT_FAIL;
        }
    if (a.watch && access(a.watch, R_OK | X_OK) != 0) {
        trainer_print_once("eval", "cannot read --watch directory %s: %s", a.watch, strerror(errno));
        return EXIT_FAIL;
    }
    Comm *c = comm_init(&argc, &argv, a.timeout, err, sizeof err);
    if (!c) {
        fprintf(stderr, "googlenet eval: %s\n", err);
        return EXIT_FAIL;
    }
    trainer_set_threads(a.threads > 0 ? a.threads : trainer_default_threads());
    int code = EXIT_FAIL;
    Dataset *ds = eval_open_data(c, &a);
    if (ds) code = a.watch ? eval_watch(c, &a, ds) : eval_once(c, &a, ds);
    dataset_free(ds);
    comm_free(c);
    return code;
}

/* ---- googlenet predict: the classes of single images ----
 * The evaluation above, on a dataset made of the images given (every label 0,
 * never scored): the same transform, crops, batching and decode threads, and
 * so the same probabilities eval computes for the same file. Each image's
 * top classes are kept as it finishes (EvalConfig.on_image) and printed in
 * the order given once all are done. */

typedef struct {
    int top, classes;
    int *idx;             /* (n, top) class indices, most probable first */
    double *p;            /* (n, top) their probabilities */
    float *logits;        /* (n, classes) with --logits, else NULL */
    char **why;           /* (n) why an image failed, or NULL */
    unsigned char *state; /* (n) 0 not reported, 1 classified, 2 failed */
} Predictions;

static void predict_on_image(void *ctx, size_t item, const double *p, const float *logits, const char *why)
{
    Predictions *P = ctx;
    if (!p) {
        P->why[item] = strdup(why && *why ? why : "cannot be read");
        P->state[item] = 2;
        return;
    }
    int *idx = P->idx + item * (size_t)P->top;
    double *pp = P->p + item * (size_t)P->top;
    /* the k-th pick: the largest below the previous one, ties to the lower index */
    for (int r = 0; r < P->top; r++) {
        int best = -1;
        for (int k = 0; k < P->classes; k++) {
            int below = r == 0 || p[k] < pp[r - 1] || (p[k] == pp[r - 1] && k > idx[r - 1]);
            if (below && (best < 0 || p[k] > p[best])) best = k;
        }
        idx[r] = best;
        pp[r] = p[best];
    }
    if (P->logits && logits) memcpy(P->logits + item * (size_t)P->classes, logits, (size_t)P->classes * sizeof(float));
    P->state[item] = 1;
}

static void predictions_free(Predictions *P, size_t n)
{
    for (size_t i = 0; P->why && i < n; i++) free(P->why[i]);
    free(P->why);
    free(P->idx);
    free(P->p);
    free(P->logits);
    free(P->state);
}

/* The lines of a --list file (empty lines skipped) into *paths, pointing into
 * *text (free both). Returns the count, or -1 with a reason. */
static long predict_read_list(const char *file, char **text, const char ***paths, char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    if (!f) return snprintf(err, errlen, "cannot read --list %s: %s", file, strerror(errno)), -1;
    size_t cap = 1 << 16, len = 0;
    char *t = malloc(cap + 1);
    size_t got;
    while (t && (got = fread(t + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *g = realloc(t, 2 * cap + 1);
            if (!g) free(t);
            t = g;
            cap *= 2;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (!t || rerr) {
        free(t);
        return snprintf(err, errlen, rerr ? "cannot read --list %s" : "out of memory reading --list %s", file), -1;
    }
    t[len] = 0;
    long n = 0;
    for (size_t i = 0; i < len; i++) n += t[i] == '\n';
    const char **v = malloc((size_t)(n + 1) * sizeof *v);
    if (!v) {
        free(t);
        return snprintf(err, errlen, "out of memory reading --list %s", file), -1;
    }
    n = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = 0;
        if (l) v[n++] = line;
    }
    *text = t;
    *paths = v;
    return n;
}

/* Prints one image's result: a plain line, or a JSON line (errors too). */
static void predict_print(const Predictions *P, size_t i, const char *path, const char *const *names, int json)
{
    if (P->state[i] != 1) {
        const char *why = P->state[i] == 2 && P->why[i] ? P->why[i] : "cannot be read";
        fprintf(stderr, "googlenet predict: %s: %s\n", path, why);
        if (json) {
            printf("{\"image\": ");
            evaluate_json_print_string(stdout, path);
            printf(", \"error\": ");
            evaluate_json_print_string(stdout, why);
            printf("}\n");
        }
        return;
    }
    const int *idx = P->idx + i * (size_t)P->top;
    const double *p = P->p + i * (size_t)P->top;
    if (!json) {
        printf("%s:", path);
        for (int r = 0; r < P->top; r++) printf("%s %s %.4f", r ? "," : "", names[idx[r]], p[r]);
        printf("\n");
        return;
    }
    printf("{\"image\": ");
    evaluate_json_print_string(stdout, path);
    printf(", \"top\": [");
    for (int r = 0; r < P->top; r++) {
        printf("%s{\"class\": ", r ? ", " : "");
        evaluate_json_print_string(stdout, names[idx[r]]);
        printf(", \"index\": %d, \"p\": %.9g}", idx[r], p[r]);
    }
    printf("]");
    if (P->logits) {
        printf(", \"logits\": [");
        for (int k = 0; k < P->classes; k++) printf("%s%.9g", k ? ", " : "", P->logits[i * (size_t)P->classes + k]);
        printf("]");
    }
    printf("}\n");
}

/* The class names of e, or their indices as text; names[k] for k < classes. */
static char *predict_class_names(const Ensemble *e, const char **names)
{
    int have = e->class_names && e->num_class_names == e->classes;
    char *buf = have ? NULL : malloc((size_t)e->classes * 12);
    if (!have && !buf) return NULL;
    char *p = e->class_names;
    for (int k = 0; k < e->classes; k++) {
        if (have) { /* split in place: the names are ensemble_read_one's copy */
            names[k] = p;
            p += strcspn(p, "\n");
            *p++ = 0;
        } else {
            snprintf(buf + (size_t)k * 12, 12, "%d", k);
            names[k] = buf + (size_t)k * 12;
        }
    }
    return have ? e->class_names : buf;
}

/* Classifies paths[0..n) with the loaded checkpoint; prints; the exit code. */
static int predict_run(Comm *c, const EvalArgs *a, Ensemble *e, const char *const *paths, size_t n, int top,
                       int json, int logits)
{
    char err[ERRLEN] = "";
    Predictions P = {top < e->classes ? top : e->classes, e->classes, NULL, NULL, NULL, NULL, NULL};
    P.idx = malloc(n * (size_t)P.top * sizeof *P.idx);
    P.p = malloc(n * (size_t)P.top * sizeof *P.p);
    P.why = calloc(n, sizeof *P.why);
    P.state = calloc(n, 1);
    if (logits) P.logits = malloc(n * (size_t)e->classes * sizeof(float));
    const char **names = malloc((size_t)e->classes * sizeof *names);
    char *owned = names ? predict_class_names(e, names) : NULL;
    Dataset *ds = dataset_from_files(paths, n, e->classes, err, sizeof err);
    Model *m = NULL;
    int code = EXIT_FAIL;
    if (!P.idx || !P.p || !P.why || !P.state || (logits && !P.logits) || !names || !owned) {
        fprintf(stderr, "googlenet predict: out of memory for %zu images\n", n);
        goto out;
    }
    if (!ds || !(m = eval_model(e, a, err, sizeof err)) || eval_plan(c, m, e, a, 1, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet predict: %s\n", err);
        goto out;
    }
    Progress pg = {clock_now(), clock_now(), 0, 1};
    EvalConfig ec;
    EvalResult res;
    if (eval_config(a, ds, e, &ec, &pg, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet predict: %s\n", err);
        goto out;
    }
    ec.max_bad = 1.0; /* a bad image is reported, the others still classified */
    ec.on_image = predict_on_image;
    ec.on_image_ctx = &P;
    if (evaluate_run(c, m, (const float *const *)e->sets, 1, &ec, &res, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet predict: %s\n", err);
        goto out;
    }
    code = EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        predict_print(&P, i, paths[i], names, json);
        if (P.state[i] != 1) code = EXIT_FAIL;
    }
    fflush(stdout);
    if (n > 64)
        fprintf(stderr, "googlenet predict: %zu images (%lld unreadable) in %.2f s: %.1f img/s, %d crop%s each, batch %d, %d threads\n",
                n, (long long)res.bad, res.seconds, res.img_per_s, res.crops_per_image,
                res.crops_per_image == 1 ? "" : "s", a->batch, a->threads);
    evaluate_result_free(&res);
out:
    if (owned != e->class_names) free(owned);
    free(names);
    model_free(m);
    dataset_free(ds);
    predictions_free(&P, n);
    return code;
}

int cmd_predict(int argc, char **argv)
{
    EvalArgs a;
    eval_args_default(&a);
    a.quiet = 1;
    const char *ckpt = NULL, *list = NULL;
    int top = 5, json = 0, logits = 0;
    CliFlag flags[] = {
        {"--ckpt", CLI_STR, &ckpt, "the checkpoint to classify with", NULL, 0, 0, "FILE"},
        {"--list", CLI_STR, &list, "a file of image paths, one a line (instead of IMAGE...)", NULL, 0, 0, "FILE"},
        {"--crops", CLI_CHOICE, &a.crops, "crops per image (probabilities averaged): centre; 4 corners + centre, mirrored", "1|10"},
        {"--top", CLI_INT, &top, "classes shown per image", NULL, 1, 100000},
        {"--json", CLI_BOOL, &json, "one JSON line per image: {\"image\", \"top\": [{\"class\", \"index\", \"p\"}]}"},
        {"--logits", CLI_BOOL, &logits, "with --json and --crops 1: add the network's outputs (\"logits\", every class)"},
        {"--weights", CLI_CHOICE, &a.weights, "the checkpoint's Polyak average or its last weights", "average|raw"},
        {"--crop", CLI_INT, &a.crop, "input size; 0 takes the checkpoint's", NULL, 0, 4096},
        {"--resize", CLI_INT, &a.resize, "shorter side at crop 224 before cropping (scaled by crop/224)", NULL, 224, 4096},
        {"--filter", CLI_STR, &a.filter, "resampling filter: nearest|bilinear|bicubic|area|lanczos", NULL, 0, 0, "NAME"},
        {"--norm", CLI_CHOICE, &a.norm, "input normalisation, as eval's", "checkpoint|imagenet|caffe"},
        {"--batch", CLI_INT, &a.batch, "crops per forward pass", NULL, 1, 4096},
        {"--threads", CLI_INT, &a.threads, "threads for the network (GEMM and layers)", NULL, 1, 256},
        {"--workers", CLI_INT, &a.workers, "decode threads (0: decode in the main thread)", NULL, 0, 64},
        {"--conv-algo", CLI_CHOICE, &a.conv_algo, "convolution algorithms, as eval's", "checkpoint|auto|winograd|gemm"},
    };
    int nf = CLI_COUNT(flags), help = 0, npos = 0;
    char err[ERRLEN];
    const char **pos = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *pos);
    if (!pos) return EXIT_FAIL;
    if (cli_parse(flags, nf, argc, argv, pos, argc, &npos, &help, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet predict: %s\n", err);
        free(pos);
        return EXIT_USAGE;
    }
    if (help) {
        cli_print_help(stdout, "googlenet predict --ckpt FILE [--crops 1|10] [--top 5] [--json] IMAGE... | --list FILE",
                       "Classifies images with a checkpoint: the top classes (names from the\n"
                       "checkpoint) and their softmax probabilities, one line per image in the order\n"
                       "given. The image transform is eval's (same flags, same numbers). An image\n"
                       "that cannot be read gets one line on stderr naming it and why; the others\n"
                       "are still classified, and the exit code is then 1.",
                       flags, nf);
        free(pos);
        return EXIT_OK;
    }
    ImageFilter f;
    const char *usage = !ckpt ? "--ckpt FILE is required"
                        : list && npos > 0 ? "give images either as arguments or with --list FILE, not both"
                        : !list && npos == 0 ? "no images: give IMAGE... or --list FILE"
                        : logits && (!json || strcmp(a.crops, "1") != 0) ? "--logits goes with --json and --crops 1"
                        : a.crop > 0 && a.crop < model_min_crop(0) ? "--crop is too small for GoogLeNet"
                        : image_filter_parse(a.filter, &f) != 0 || f == IMAGE_FILTER_RANDOM
                            ? "--filter must be one of nearest, bilinear, bicubic, area, lanczos"
                            : NULL;
    if (usage) {
        fprintf(stderr, "googlenet predict: %s\n", usage);
        free(pos);
        return EXIT_USAGE;
    }
    char *text = NULL;
    const char **paths = pos;
    long n = npos;
    if (list && (n = predict_read_list(list, &text, &paths, err, sizeof err)) <= 0) {
        fprintf(stderr, "googlenet predict: %s\n", n < 0 ? err : "--list names no images");
        if (paths != pos) free(paths);
        free(text);
        free(pos);
        return EXIT_FAIL;
    }
    int code = EXIT_FAIL;
    Comm *c = comm_init(&argc, &argv, 0, err, sizeof err);
    Ensemble e;
    memset(&e, 0, sizeof e);
    if (!c) {
        fprintf(stderr, "googlenet predict: %s\n", err);
    } else if (comm_size(c) > 1) {
        fprintf(stderr, "googlenet predict: runs as one process; use --threads, not mpirun\n");
    } else if (ensemble_load(c, &ckpt, 1, strcmp(a.weights, "average") == 0, &e, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet predict: %s\n", err);
    } else {
        trainer_set_threads(a.threads);
        code = predict_run(c, &a, &e, paths, (size_t)n, top, json, logits);
    }
    ensemble_free(&e);
    comm_free(c);
    if (paths != pos) free(paths);
    free(text);
    free(pos);
    return code;
}
