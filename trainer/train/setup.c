/* train/setup.c: everything a training run does before its first step (see
 * run.h): the output directory, the data, the model and its optimizer state,
 * where the run starts (fresh, --init, or a resumed checkpoint), the loader,
 * schedule, allreducer, checkpoint writer and logs, and the convolution plan
 * every rank shares. A start that fails leaves --out as it found it. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/conv.h"
#include "trainer/ckpt/hash.h"
#include "trainer/data_share.h"
#include "trainer/train/finetune.h"
#include "trainer/train/run.h"

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p */
static int make_dirs(const char *path, char *err, size_t errlen)
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
    snprintf(err, errlen, "cannot create the output directory %s: %s (choose another --out)", path, strerror(errno));
    return -1;
}

/* ---- data ---- */

/* Rank 0: a digest of the training set's items and labels, so that a resume
 * over other data of the same size is noticed; and its class names. */
static int describe_data(Run *r, char *err, size_t errlen)
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
        snprintf(err, errlen, "out of memory for the class names");
        return -1;
    }
    size_t at = 0;
    for (int k = 0; k < nc; k++) at += (size_t)sprintf(r->class_names + at, "%s\n", dataset_class_name(ds, k));
    r->class_names[at] = '\0';
    return 0;
}

/* Rank 0: --out made (remembering what existed before), and refused when a
 * fresh run would delete another run's checkpoints (retention) and truncate
 * its metrics.jsonl. */
static int prepare_out(Run *r, char *err, size_t errlen)
{
    const TrainConfig *cfg = r->cfg;
    snprintf(r->out_existed, sizeof r->out_existed, "%s", cfg->out);
    while (!is_dir(r->out_existed) && strrchr(r->out_existed, '/')) *strrchr(r->out_existed, '/') = '\0';
    if (!is_dir(r->out_existed)) r->out_existed[0] = '\0'; /* a relative path, none of it there */
    if (make_dirs(cfg->out, err, errlen) != 0) return -1;
    if (cfg->resume) return 0;
    char newest[256];
    if (ckpt_newest_step(cfg->out, newest, sizeof newest) < 0) return 0;
    snprintf(err, errlen,
             "%s already holds checkpoints of a run (newest %s): continue it with --resume auto, or give a new --out "
             "(nothing was changed)",
             cfg->out, newest);
    r->usage = 1;
    return -1;
}

int run_setup_data(Run *r, char *err, size_t errlen)
{
    const TrainConfig *cfg = r->cfg;
    Comm *c = r->comm;
    int failed = r->rank == 0 && prepare_out(r, err, errlen) != 0;
    if (comm_agree(c, failed, err, err, errlen) != 0) return -1;
    char cache[4200], vcache[4200];
    snprintf(cache, sizeof cache, "%s/train-index.cache", cfg->out);
    snprintf(vcache, sizeof vcache, "%s/val-index.cache", cfg->out);
    DatasetOptions o = {.path = cfg->data, .classes_file = cfg->classes_file, .labels_file = cfg->labels,
                        .cache_file = cfg->index_cache ? cfg->index_cache : cache};
    r->train_ds = data_share_open(c, &o, &r->cache_made[0], err, errlen);
    if (!r->train_ds) return -1;
    int nc = dataset_num_classes(r->train_ds);
    if (cfg->classes > 0 && cfg->classes != nc) {
        snprintf(err, errlen, "--classes %d does not match the %d classes of %s (drop --classes, or fix --classes-file)",
                 cfg->classes, nc, cfg->data);
        failed = 1;
        r->usage = 1;
    }
    if (!failed && r->rank == 0) failed = describe_data(r, err, errlen) != 0;
    if (comm_agree(c, failed, err, err, errlen) != 0) return -1;
    if (!cfg->val) return 0;
    DatasetOptions v = {.path = cfg->val, .classes_file = cfg->classes_file, .labels_file = cfg->val_labels,
                        .cache_file = vcache};
    r->val_ds = data_share_open(c, &v, &r->cache_made[1], err, errlen);
    if (!r->val_ds) return -1;
    if (dataset_num_classes(r->val_ds) != nc) {
        snprintf(err, errlen, "the validation set %s has %d classes, the training set %d (use the same --classes-file)",
                 cfg->val, dataset_num_classes(r->val_ds), nc);
        failed = 1;
        r->usage = 1;
    }
    return comm_agree(c, failed, err, err, errlen);
}

/* ---- model ---- */

int run_setup_model(Run *r, char *err, size_t errlen)
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
    mc.conv_gemm = cfg->conv_algo == TRAIN_CONV_GEMM;
    r->model = model_init(&mc, err, errlen);
    int failed = !r->model;
    if (!failed && cfg->freeze) {
        failed = finetune_freeze(r->model, cfg->freeze, &r->freeze_from, &r->first_trainable, err, errlen) != 0;
        r->usage = failed;
    }
    if (comm_agree(r->comm, failed, err, err, errlen) != 0) return -1;
    r->np = model_num_params(r->model);
    r->live_weights = model_params(r->model);
    r->backup = malloc(r->np * sizeof(float));
    r->images = malloc(sizeof(float) * cfg->batch * 3 * cfg->crop * cfg->crop);
    r->labels = malloc(sizeof(int) * cfg->batch);
    if (sgd_state_init(&r->opt, r->np, NULL, cfg->momentum, cfg->wd, cfg->ema_decay) != 0 || !r->backup ||
        !r->images || !r->labels) {
        snprintf(err, errlen, "out of memory for the optimizer state (%zu parameters)", r->np);
        failed = 1;
    }
    return comm_agree(r->comm, failed, err, err, errlen);
}

/* Whether the checkpoint with header h holds this run's model; -1 with a line
 * naming the setting that differs and what to do. */
static int check_model(const char *path, const CkptMeta *h, const Run *r, char *err, size_t errlen)
{
    char msg[512];
    const ModelConfig *mc = model_config(r->model);
    if (ckpt_meta_check_model(h, mc, r->np, msg, sizeof msg) == 0) return 0;
    /* the model's class count is the training data's: --classes cannot make
     * them agree, a new run from the checkpoint's weights can */
    if (strcmp(h->arch, CKPT_ARCH) == 0 && h->aux == mc->aux && h->classes != mc->classes)
        snprintf(err, errlen, "%s has %d classes and the training data %s has %d: it cannot be resumed on this data; "
                 "start a new run from its weights with --init %s and a new --out (the classifiers are "
                 "re-initialised)", path, h->classes, r->cfg->data, mc->classes, path);
    else
        snprintf(err, errlen, "%s: %s", path, msg);
    return -1;
}

/* A checkpoint that failed to load because it holds another model's number of
 * parameters: say which setting differs (classes, aux heads, architecture)
 * when its header tells, instead of the bare counts. */
static void explain_other_model(const char *path, const Run *r, char *err, size_t errlen)
{
    CkptMeta h;
    char why[256];
    if (!path[0] || ckpt_peek_meta(path, &h, why, sizeof why) != 0) return;
    check_model(path, &h, r, err, errlen);
    ckpt_meta_free(&h);
}

/* ---- the convolution plan ---- */

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

enum { PLAN_FIXED = 0, PLAN_FROM_CKPT = 1, PLAN_TIMED = 2 };

/* Rank 0: whether a resumed run keeps the checkpoint's plan. */
static int64_t plan_source(const Run *r, const char *from_ckpt)
{
    const TrainConfig *cfg = r->cfg;
    const char *name = train_conv_choice_name(cfg->conv_algo);
    if (from_ckpt[0] && !cfg->conv_algo_given) return PLAN_FROM_CKPT;
    if (!from_ckpt[0])
        printf("the checkpoint records no convolution plan: using --conv-algo %s (results may differ from the "
               "interrupted run's in rounding)\n", name);
    else
        printf("--conv-algo %s replaces the checkpoint's convolution plan: the run continues exactly only up to "
               "rounding\n", name);
    return PLAN_FIXED;
}

static void print_plan(const Run *r, int64_t src, double secs)
{
    char f[128], d[128], w[128];
    plan_summary(r->conv_plan, 0, f, sizeof f);
    plan_summary(r->conv_plan, 1, d, sizeof d);
    plan_summary(r->conv_plan, 2, w, sizeof w);
    if (src == PLAN_FROM_CKPT) printf("convolution plan: the checkpoint's");
    else if (src == PLAN_TIMED) printf("convolution plan: timed in %.1f s", secs);
    else printf("convolution plan: --conv-algo %s", train_conv_choice_name(r->cfg->conv_algo));
    printf(" (3x3/5x5 layers: forward %s; backward data %s; backward weights %s)\n", f, d, w);
}

/* Collective: every rank runs rank 0's convolution plan. Resuming, that is the
 * checkpoint's (the same algorithms give the same bits) unless --conv-algo was
 * given; otherwise --conv-algo auto times the algorithms on every rank at once
 * (under the load training puts on the node) and keeps rank 0's choice, and
 * winograd or gemm is the fixed plan model_init made. */
static int conv_plan_setup(Run *r, const char *from_ckpt, char *err, size_t errlen)
{
    Comm *c = r->comm;
    char *plan = r->conv_plan;
    size_t len = sizeof r->conv_plan;
    int64_t src = PLAN_FIXED;
    if (r->rank == 0 && from_ckpt && (src = plan_source(r, from_ckpt)) == PLAN_FROM_CKPT)
        snprintf(plan, len, "%s", from_ckpt);
    comm_broadcast(c, &src, sizeof src, "convolution plan source");
    double secs = 0;
    if (src == PLAN_FIXED && r->cfg->conv_algo == TRAIN_CONV_AUTO) {
        secs = model_conv_tune(r->model, err, errlen);
        if (comm_agree(c, secs < 0, err, err, errlen) != 0) return -1;
        src = PLAN_TIMED;
    }
    int failed = 0;
    if (r->rank == 0 && src != PLAN_FROM_CKPT && model_conv_plan_format(r->model, plan, len) < 0) {
        snprintf(err, errlen, "the convolution plan does not fit in %zu bytes", len);
        failed = 1;
    }
    if (comm_agree(c, failed, err, err, errlen) != 0) return -1;
    comm_broadcast(c, plan, len, "convolution plan");
    failed = model_conv_plan_apply(r->model, plan, err, errlen) != 0;
    if (failed) {
        size_t at = strlen(err);
        snprintf(err + at, errlen - at, "; pass --conv-algo auto, winograd or gemm to choose another plan");
    }
    if (comm_agree(c, failed, err, err, errlen) != 0) return -1;
    if (r->rank == 0) print_plan(r, src, secs);
    return 0;
}

/* ---- where the run starts ---- */

/* Rank 0, --resume FILE: an older checkpoint than --out's newest would
 * overwrite and prune a later trajectory; refused on the header alone,
 * before the file is read. */
static int refuse_older(const Run *r, const char *path, char *err, size_t errlen)
{
    CkptMeta h;
    char newest[256], why[256];
    long s = ckpt_newest_step(r->cfg->out, newest, sizeof newest);
    if (s < 0 || ckpt_peek_meta(path, &h, why, sizeof why) != 0) return 0;
    long hs = h.step;
    ckpt_meta_free(&h);
    if (s <= hs) return 0;
    snprintf(err, errlen,
             "%s holds checkpoints past step %ld of %s (newest %s) that this run would replace: give a new --out, or "
             "move them away (nothing was changed)",
             r->cfg->out, hs, path, newest);
    return -1;
}

/* Rank 0: the checkpoint --resume names, read into the state buffers. 1 when
 * loaded (its metadata in *m, its path in path), 0 when there is none (auto),
 * -1 on an error. */
static int load_resume(Run *r, char *path, size_t pathlen, CkptMeta *m, char *err, size_t errlen)
{
    const TrainConfig *cfg = r->cfg;
    float *w = model_params(r->model);
    if (strcmp(cfg->resume, "auto") == 0) {
        char report[2048] = "";
        /* newest first, each candidate read once: loading it is verifying it */
        int found = ckpt_load_latest(cfg->out, path, pathlen, m, w, r->opt.momentum, r->opt.average, r->np, report,
                                     sizeof report, err, errlen);
        if (report[0]) fprintf(stderr, "googlenet train: %s", report);
        if (found < 0) explain_other_model(path, r, err, errlen);
        else if (found == 0) printf("no checkpoint in %s: starting from %s\n", cfg->out, cfg->init ? cfg->init : "scratch");
        return found;
    }
    snprintf(path, pathlen, "%s", cfg->resume);
    if (refuse_older(r, path, err, errlen) != 0) return -1;
    if (ckpt_load(path, m, w, r->opt.momentum, r->opt.average, r->np, err, errlen) != 0) {
        explain_other_model(path, r, err, errlen);
        return -1;
    }
    return 1;
}

/* Rank 0, a new run: the seed's initialisation, or --init's weights. */
static int fresh_state(Run *r, char *err, size_t errlen)
{
    const TrainConfig *cfg = r->cfg;
    /* also after damaged candidates were partly read into the buffers */
    model_init_weights(r->model, cfg->seed);
    if (cfg->init) {
        size_t reinit_lo;
        char report[2048];
        if (finetune_init(r->model, cfg->init, cfg->init_average, r->class_names, dataset_num_classes(r->train_ds),
                          cfg->mean, cfg->std, report, sizeof report, &reinit_lo, err, errlen) != 0)
            return -1;
        fputs(report, stdout);
        if (reinit_lo < r->freeze_from) {
            int nt;
            const ParamTensor *pt = model_param_tensors(r->model, &nt);
            const char *name = "?";
            for (int i = 0; i < nt; i++)
                if (pt[i].offset == reinit_lo) name = pt[i].name;
            snprintf(err, errlen, "--freeze %s would keep %s fixed at its fresh initialisation (--init could not give "
                     "it); freeze fewer layers%s", cfg->freeze, name, cfg->aux ? ", or train without the aux heads (--no-aux)" : "");
            r->usage = 1;
            return -1;
        }
    }
    sgd_state_reset(&r->opt, model_params(r->model));
    return 0;
}

/* Rank 0: where the run starts (resume.h), with the state in the buffers and
 * a resumed checkpoint's convolution plan in r->resume_plan. */
static int plan_start(Run *r, ResumePlan *p, char *err, size_t errlen)
{
    const TrainConfig *cfg = r->cfg;
    ResumeRun run = {r->world, (long long)dataset_size(r->train_ds), r->data_digest, r->class_names,
                     dataset_num_classes(r->train_ds)};
    char path[4096] = "";
    CkptMeta m;
    int loaded = cfg->resume ? load_resume(r, path, sizeof path, &m, err, errlen) : 0;
    if (loaded < 0) return -1;
    if (!loaded) {
        if (fresh_state(r, err, errlen) != 0) return -1;
        return train_resume_fresh(cfg, &run, p, err, errlen);
    }
    int rc = check_model(path, &m, r, err, errlen);
    if (rc == 0 && (rc = train_resume_plan(cfg, &m, path, &run, p, err, errlen)) != 0) r->usage = 1;
    if (rc == 0) {
        if (!ckpt_meta_get_extra(&m, "conv_plan", r->resume_plan, sizeof r->resume_plan)) r->resume_plan[0] = '\0';
        char pos[128];
        train_format_position(&p->at, p->shape.steps_per_epoch, pos, sizeof pos);
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

int run_start_point(Run *r, char *err, size_t errlen)
{
    ResumePlan p;
    memset(&p, 0, sizeof p);
    int failed = r->rank == 0 && plan_start(r, &p, err, errlen) != 0;
    fflush(stdout);
    if (comm_agree(r->comm, failed, err, err, errlen) != 0) return -1;
    /* the shape, the position and `complete`: every field before the notes */
    comm_broadcast(r->comm, &p, offsetof(ResumePlan, notes), "start position");
    r->shape = p.shape;
    r->pos = p.at;
    r->saved_step = r->pos.step > 0 ? r->pos.step : -1; /* a resumed checkpoint is on disk */
    return p.complete ? 1 : 0;
}

/* ---- the loop's machinery ---- */

static int setup_loader(Run *r, char *err, size_t errlen)
{
    const TrainConfig *cfg = r->cfg;
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
    lc.filter = cfg->filter;
    memcpy(lc.mean, cfg->mean, sizeof lc.mean);
    memcpy(lc.std, cfg->std, sizeof lc.std);
    r->loader = loader_init(&lc, err, errlen);
    if (comm_agree(r->comm, !r->loader, err, err, errlen) != 0) return -1;
    r->loader_batches_per_epoch = loader_steps_per_epoch(r->loader);
    int failed = r->loader_batches_per_epoch / r->shape.accum != r->shape.steps_per_epoch;
    if (failed)
        snprintf(err, errlen, "the loader gives %ld batches per epoch and the plan %ld steps of %d",
                 r->loader_batches_per_epoch, r->shape.steps_per_epoch, r->shape.accum);
    return comm_agree(r->comm, failed, err, err, errlen);
}

/* The learning-rate schedule, in optimizer steps. */
static void setup_schedule(Run *r)
{
    const TrainConfig *cfg = r->cfg;
    double lr = cfg->lr;
    long per_epoch = r->shape.steps_per_epoch;
    if (cfg->lr_scale_linear) lr *= (double)r->shape.global_batch / cfg->lr_ref_batch;
    r->sched = (LrSchedule){.policy = cfg->lr_policy, .base_lr = lr, .gamma = cfg->gamma,
                            .step_size = (long)llround(cfg->step_epochs * per_epoch), .power = cfg->power,
                            .max_iter = r->shape.total_steps, .final_frac = cfg->final_lr_frac,
                            .warmup_iters = (long)llround(cfg->warmup_epochs * per_epoch)};
    if (r->sched.step_size < 1) r->sched.step_size = 1;
}

/* Rank 0: the checkpoint writer. */
static int setup_writer(Run *r, char *err, size_t errlen)
{
    const TrainConfig *cfg = r->cfg;
    CkptWriterConfig wc = ckpt_writer_default_config();
    wc.dir = cfg->out;
    wc.num_params = r->np;
    wc.zstd_level = cfg->ckpt_level;
    wc.zstd_threads = cfg->ckpt_threads;
    wc.keep = cfg->keep;
    wc.keep_every = cfg->keep_every.n;
    wc.keep_every_unit = cfg->keep_every.epochs ? CKPT_UNIT_EPOCHS : CKPT_UNIT_STEPS;
    wc.keep_every_slim = cfg->keep_every_slim;
    wc.fail = cfg->ckpt_fail;
    r->writer = ckpt_writer_create(&wc, err, errlen);
    if (!r->writer) return -1;
    CkptWriterStats ws;
    ckpt_writer_stats(r->writer, &ws);
    if (ws.stale_removed)
        fprintf(stderr, "googlenet train: removed %d temporary file%s left in %s by a checkpoint write that was "
                "interrupted: %s\n", ws.stale_removed, ws.stale_removed == 1 ? "" : "s", cfg->out, ws.stale_note);
    return 0;
}

/* Rank 0: OUT/metrics.jsonl, appended to when resuming. */
static int open_metrics(Run *r, char *err, size_t errlen)
{
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", r->cfg->out);
    r->metrics_made = !file_exists(mpath);
    r->metrics = fopen(mpath, r->cfg->resume ? "a" : "w");
    if (r->metrics) return 0;
    snprintf(err, errlen, "cannot write %s: %s", mpath, strerror(errno));
    return -1;
}

/* The step (step.h) over this run's buffers. */
static void setup_step(Run *r)
{
    const TrainConfig *cfg = r->cfg;
    r->step = (TrainStep){.model = r->model, .opt = &r->opt, .sched = &r->sched, .ar = r->ar,
                          .freeze_from = r->freeze_from, .first_trainable = r->first_trainable, .batch = cfg->batch,
                          .accum = r->shape.accum, .global_batch = r->shape.global_batch,
                          .steps_per_epoch = r->shape.steps_per_epoch, .seed = cfg->seed, .rank = r->rank,
                          .images = r->images, .labels = r->labels, .trace = r->trace};
}

int run_setup_loop(Run *r, char *err, size_t errlen)
{
    const TrainConfig *cfg = r->cfg;
    Comm *c = r->comm;
    if (setup_loader(r, err, errlen) != 0) return -1;
    setup_schedule(r);
    /* gradient allreduce: the frozen layers' part of the buffer is never sent */
    r->ar = comm_allreducer_init(c, model_grads(r->model) + r->freeze_from, r->np - r->freeze_from,
                                 (size_t)(cfg->bucket_mb * 1048576.0), cfg->grad_compress, !cfg->no_overlap, err,
                                 errlen);
    if (comm_agree(c, !r->ar, err, err, errlen) != 0) return -1;
    int failed = r->rank == 0 && (setup_writer(r, err, errlen) != 0 || open_metrics(r, err, errlen) != 0);
    if (comm_agree(c, failed, err, err, errlen) != 0) return -1;
    if (cfg->trace) {
        r->trace = trace_open(cfg->trace, r->rank, r->t_start, err, errlen);
        if (comm_agree(c, !r->trace, err, err, errlen) != 0) return -1;
    }
    setup_step(r);
    return 0;
}

int run_share_state(Run *r, char *err, size_t errlen)
{
    Comm *c = r->comm;
    float *w = model_params(r->model);
    comm_broadcast(c, w, r->np * sizeof(float), "initial weights");
    comm_broadcast(c, r->opt.momentum, r->np * sizeof(float), "momentum");
    comm_broadcast(c, r->opt.average, r->np * sizeof(float), "Polyak average");
    int rc = comm_check_identical(c, w, r->np * sizeof(float), "initial weights", err, errlen);
    if (comm_agree(c, rc != 0, err, err, errlen) != 0) return -1;
    return conv_plan_setup(r, r->pos.step > 0 ? r->resume_plan : NULL, err, errlen);
}

void run_undo_start(Run *r)
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
