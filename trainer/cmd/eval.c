/* cmd/eval.c: `googlenet eval`: evaluates one checkpoint or an ensemble with
 * 1, 10 or 144 crops over a validation set (split over the ranks of mpirun),
 * prints the table and writes a JSON report; or, with --watch, evaluates every
 * checkpoint of a directory that a results file does not hold yet, one JSON
 * line each (for cron or a Slurm schedule; --follow keeps waiting). The
 * checkpoint and model set-up here is shared with `googlenet predict`
 * (cmd/predict.c, through cmd/eval.h).
 *
 * Rank 0 reads and verifies the checkpoints and the dataset index and
 * broadcasts them (trainer/data_share.h); every rank then runs evaluate_run on
 * its shard. A failure on any rank ends every rank with the same exit code,
 * and rank 0 prints the agreed message once. The work is in eval/evaluate.c
 * (scoring, report, table), dataloader/ (images and crops) and eval/watch.c
 * (the results file and locks of --watch); this file parses, orchestrates and
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
#include "trainer/cmd/eval.h"
#include "trainer/commands.h"
#include "trainer/data_share.h"
#include "trainer/eval/watch.h"
#include "trainer/eval/evaluate.h"
#include "trainer/runtime.h"

#define ERRLEN 1024
#define PATHLEN 4096
#define WATCH_SETTLE_S 120.0 /* a checkpoint that fails to verify within this long of its last change is still arriving */
/* Collective (comm_agree): 1 on every rank when any rank failed, and then
 * rank 0 prints the agreed message (the lowest failing rank's) once. */
static int eval_failed_anywhere(Comm *c, int failed, char *err, size_t errlen)
{
    if (comm_agree(c, failed, err, err, errlen) == 0) return 0;
    if (comm_rank(c) == 0) fprintf(stderr, "googlenet eval: %s\n", err);
    return 1;
}

/* ---- checkpoints: rank 0 verifies and reads, everyone gets the weights ---- */


void ensemble_free(Ensemble *e)
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
int ensemble_load(Comm *c, const char *const *paths, int n, int average, Ensemble *e, char *err,
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

Model *eval_model(const Ensemble *e, const EvalArgs *a, char *err, size_t errlen)
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
int eval_plan(Comm *c, Model *m, const Ensemble *e, const EvalArgs *a, int fresh, char *err, size_t errlen)
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


static void eval_progress(void *ctx, long done, long total)
{
    Progress *p = ctx;
    double t = clock_now();
    if (p->rank != 0 || p->quiet || (t - p->last < 10.0 && done < total)) return;
    p->last = t;
    fprintf(stderr, "googlenet eval: %ld/%ld images of rank 0's shard, %.1f img/s\n", done, total,
            done / (t - p->t0 > 1e-9 ? t - p->t0 : 1e-9));
}

int eval_config(const EvalArgs *a, const Dataset *ds, const Ensemble *e, EvalConfig *ec, Progress *pg,
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
    if (eval_failed_anywhere(c, failed, err, sizeof err) || eval_failed_anywhere(c, eval_plan(c, m, &e, a, 1, err, sizeof err) != 0, err, sizeof err)) {
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

/* A --watch run: what lasts from one checkpoint to the next. */
typedef struct {
    const EvalArgs *a;
    const Dataset *ds;
    int lock_fd;      /* rank 0: the results file's lock file */
    Skip *skips;      /* (nskips) checkpoints not to retry until they change */
    int nskips, evaluated;
    Model *m;         /* reused while checkpoints keep its shape */
    ModelConfig have; /* m's */
} Watch;

/* Collective: reads the checkpoint at path into e and evaluates it into res.
 * Returns 0 (*res to be freed), or 1 with the reason in err ("" when it was
 * printed already); *unverified when it could not be read or verified. */
static int watch_evaluate(Comm *c, Watch *w, const char *path, Ensemble *e, EvalResult *res, int *have_res,
                          int *unverified, char *err, size_t errlen)
{
    const EvalArgs *a = w->a;
    int rank = comm_rank(c), classes = dataset_num_classes(w->ds);
    const char *paths[1] = {path};
    int bad = ensemble_load(c, paths, 1, strcmp(a->weights, "average") == 0, e, err, errlen) != 0;
    *unverified = bad;
    *have_res = 0;
    if (!bad && rank == 0 && e->classes != classes)
        bad = 1, snprintf(err, errlen, "checkpoint %s has %d classes but the dataset %s has %d", path, e->classes,
                          a->data, classes);
    if (!bad && rank == 0 && ensemble_check_names(e, w->ds, err, errlen) != 0) bad = 1;
    if (comm_any(c, bad, "checkpoint check")) return 1;
    int crop = a->crop > 0 ? a->crop : e->crop, fresh = 0;
    if (!w->m || w->have.classes != e->classes || w->have.aux != e->aux || w->have.crop != crop) {
        model_free(w->m);
        w->m = eval_model(e, a, err, errlen);
        if (w->m) w->have = *model_config(w->m);
        fresh = 1;
    }
    if (eval_failed_anywhere(c, w->m == NULL, err, errlen) ||
        eval_failed_anywhere(c, eval_plan(c, w->m, e, a, fresh, err, errlen) != 0, err, errlen)) {
        err[0] = 0; /* already printed */
        return 1;
    }
    Progress pg = {clock_now(), clock_now(), rank, a->quiet};
    EvalConfig ec;
    int erc = eval_config(a, w->ds, e, &ec, &pg, err, errlen) != 0
                  ? -1 : evaluate_run(c, w->m, (const float *const *)e->sets, 1, &ec, res, err, errlen);
    *have_res = erc >= 0; /* an incomplete one is freed, not recorded */
    return erc != 0;
}

/* Rank 0: the result of checkpoint `name` as one JSON line appended to
 * --results, and its summary on stdout. Returns 0, or -1 with a reason. */
static int watch_record(Watch *w, const char *name, const char *path, const Ensemble *e, const EvalResult *res,
                        double t0, char *err, size_t errlen)
{
    const EvalArgs *a = w->a;
    EvalReportInfo info = {a->data, a->weights, NULL, NULL, NULL, 0, w->ds};
    char *json = evaluate_json(res, &info, 0, 1);
    size_t len = (json ? strlen(json) : 0) + PATHLEN + 512;
    char *line = malloc(len);
    int rc = -1;
    if (!json || !line) {
        snprintf(err, errlen, "out of memory for the result of %s", name);
    } else {
        snprintf(line, len, "{\"ckpt\":\"%s\",\"path\":\"%s\",\"step\":%ld,\"params_sha256\":\"%s\","
                 "\"evaluated_unix\":%lld,%s",
                 name, path, e->steps[0], e->sha[0], (long long)time(NULL), json + 1);
        rc = eval_watch_append(a->results, w->lock_fd, line, err, errlen);
    }
    free(json);
    free(line);
    if (rc != 0) return -1;
    w->evaluated++;
    if (!a->quiet)
        printf("%s (step %ld): top-1 %.2f%%  top-5 %.2f%%  loss %.4f  %lld images, %lld unreadable, %.1f s\n", name,
               e->steps[0], 100.0 * res->top1 / (res->images ? res->images : 1),
               100.0 * res->top5 / (res->images ? res->images : 1), res->loss, (long long)res->images,
               (long long)res->bad, clock_now() - t0);
    fflush(stdout);
    return 0;
}

/* Rank 0: a checkpoint that could not be evaluated. One that does not verify
 * yet and changed lately is probably still arriving (a copy): a note, not an
 * error. Returns 1 when it is an error. */
static int watch_note_failure(const char *name, const char *path, int unverified, const char *err)
{
    long long size = 0, mt = 0;
    int sig = file_sig(path, &size, &mt) == 0;
    double age = (double)time(NULL) - mt / 1e9;
    if (unverified && sig && age < WATCH_SETTLE_S) {
        fprintf(stderr, "googlenet eval: %s does not verify yet (changed %.0f s ago); it is retried later\n", name, age);
        return 0;
    }
    if (err[0]) fprintf(stderr, "googlenet eval: skipping %s: %s\n", name, err);
    return 1;
}

/* Collective: --watch DIR: every checkpoint not yet in --results, once each
 * (eval/watch.c keeps the results file and the per-checkpoint locks). */
static int watch_loop(Comm *c, const EvalArgs *a, const Dataset *ds)
{
    char err[ERRLEN] = "";
    int rank = comm_rank(c), code = EXIT_OK, failed = 0;
    Watch w = {a, ds, -1, NULL, 0, 0, NULL, {0}};
    if (rank == 0 && (w.lock_fd = eval_watch_lock_open(a->results, err, sizeof err)) < 0) failed = 1;
    if (eval_failed_anywhere(c, failed, err, sizeof err)) return EXIT_FAIL;
    if (a->follow) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = eval_on_signal;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
    }
    for (;;) {
        if (a->follow && comm_stop_agreed(c)) break;
        char path[PATHLEN] = "";
        long step = -1;
        int pick = 0;
        if (rank == 0) pick = watch_pick(a, w.lock_fd, w.skips, w.nskips, path, sizeof path, &step, err, sizeof err);
        if (eval_failed_anywhere(c, pick < 0, err, sizeof err)) {
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
        EvalResult res;
        int have_res, unverified;
        double t0 = clock_now();
        int bad = watch_evaluate(c, &w, path, &e, &res, &have_res, &unverified, err, sizeof err);
        if (rank == 0) {
            if (bad ? watch_note_failure(name, path, unverified, err)
                    : watch_record(&w, name, path, &e, &res, t0, err, sizeof err) != 0) {
                if (!bad) fprintf(stderr, "googlenet eval: %s\n", err);
                code = EXIT_FAIL;
            }
            /* never twice in one run, even if the line could not be read back */
            skip_add(&w.skips, &w.nskips, name, path);
            eval_watch_unlock(w.lock_fd, step);
        }
        if (have_res) evaluate_result_free(&res);
        ensemble_free(&e);
    }
    if (rank == 0 && !a->quiet)
        printf("googlenet eval: %d checkpoint%s evaluated into %s\n", w.evaluated, w.evaluated == 1 ? "" : "s",
               a->results);
    model_free(w.m);
    free(w.skips);
    if (w.lock_fd >= 0) close(w.lock_fd);
    return code;
}

int eval_threads(const EvalArgs *a) { return a->threads > 0 ? a->threads : trainer_default_threads(); }

/* The defaults of the flags eval and predict share. */
void eval_args_default(EvalArgs *a)
{
    memset(a, 0, sizeof *a);
    a->crops = "1";
    a->weights = "average";
    a->filter = "bilinear";
    a->norm = "checkpoint";
    a->conv_algo = "checkpoint";
    a->batch = 32;
    a->workers = 2;
    a->threads = 0; /* the network's threads; 0: this node's cores / its ranks (eval_threads) */
    a->resize = 256;
}

int cmd_eval(int argc, char **argv)
{
    EvalArgs a;
    eval_args_default(&a);
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
    trainer_set_threads(eval_threads(&a));
    int code = EXIT_FAIL;
    DatasetOptions o = {a.data, a.classes_file, a.labels_file, a.cache_file};
    Dataset *ds = data_share_open(c, &o, NULL, err, sizeof err);
    if (!ds && comm_rank(c) == 0) fprintf(stderr, "googlenet eval: %s\n", err);
    if (ds) code = a.watch ? watch_loop(c, &a, ds) : eval_once(c, &a, ds);
    dataset_free(ds);
    comm_free(c);
    return code;
}
