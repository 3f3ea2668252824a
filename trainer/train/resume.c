/* train/resume.c: the rules of train/resume.h. Every difference is named with
 * the flag that sets it and the value the run had, so that a user sees what a
 * resume would change before anything is trained or written. */
#include "trainer/train/resume.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataloader/sampler.h"
#include "trainer/cli.h"

/* Flags that do not change what is trained: resuming with other values of
 * them continues the same run. */
static const char *const HARMLESS[] = {
    "--val", "--val-labels", "--index-cache", "--workers", "--threads", "--conv-algo", "--bucket-mb",
    "--no-overlap", "--timeout", "--check-replicas", "--out", "--log-every", "--quiet", "--trace",
    "--ckpt-every", "--keep", "--keep-every", "--keep-every-slim", "--ckpt-fail", "--ckpt-level",
    "--ckpt-threads", "--eval-every", "--eval-subset", "--eval-crops", "--eval-weights", "--eval-batch",
    "--eval-resize", "--eval-max-bad",
};
/* Flags that only matter when a run starts, or that are compared through what
 * they resolve to (the global batch, the data, the class count) below. */
static const char *const COMPARED_OTHERWISE[] = {
    "--resume", "--allow-changes", "--init", "--init-weights", "--batch", "--accum", "--data", "--labels",
    "--classes-file", "--classes",
};

static int listed(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0) return 1;
    return 0;
}

/* "a, b" lists grown one item at a time */
typedef struct {
    char s[2048];
    int n;
} List;

static void list_add(List *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void list_add(List *l, const char *fmt, ...)
{
    size_t at = strlen(l->s);
    if (at + 8 >= sizeof l->s) return;
    if (l->n++) at += (size_t)snprintf(l->s + at, sizeof l->s - at, ", ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->s + at, sizeof l->s - at, fmt, ap);
    va_end(ap);
}

static void note(ResumePlan *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(ResumePlan *p, const char *fmt, ...)
{
    size_t at = strlen(p->notes);
    if (at + 2 >= sizeof p->notes) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->notes + at, sizeof p->notes - at - 1, fmt, ap);
    va_end(ap);
    at = strlen(p->notes);
    p->notes[at] = '\n';
    p->notes[at + 1] = '\0';
}

void train_format_position(const TrainPosition *at, long steps_per_epoch, char *out, size_t len)
{
    long step = at->step, epoch = at->epoch, epoch_step = at->epoch_step;
    if (step == 0) snprintf(out, len, "step 0 (the start)");
    else if (epoch_step == 0 && epoch > 0) snprintf(out, len, "step %ld (end of epoch %ld)", step, epoch);
    else if (steps_per_epoch > 0)
        snprintf(out, len, "step %ld (epoch %ld, step %ld of %ld)", step, epoch + 1, epoch_step, steps_per_epoch);
    else snprintf(out, len, "step %ld (epoch %ld, step %ld)", step, epoch + 1, epoch_step);
}

static long epoch_steps(const TrainConfig *cfg, const ResumeRun *run, int accum)
{
    long b = sampler_steps_per_epoch((size_t)run->dataset_size, run->world, cfg->batch, cfg->drop_last,
                                     SAMPLER_SHUFFLED);
    return b / accum;
}

static int check_steps_per_epoch(const TrainConfig *cfg, const ResumeRun *run, int accum, long steps, char *err,
                                 size_t errlen)
{
    if (steps >= 1) return 0;
    snprintf(err, errlen, "%s gives %ld batches of %d per rank per epoch on %d rank%s, fewer than --accum %d: use a "
             "smaller --batch or --accum", cfg->data, steps * accum, cfg->batch, run->world, run->world == 1 ? "" : "s",
             accum);
    return -1;
}

int train_resume_fresh(const TrainConfig *cfg, const ResumeRun *run, ResumePlan *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->shape.accum = cfg->accum;
    p->shape.global_batch = run->world * cfg->batch * cfg->accum;
    p->shape.steps_per_epoch = epoch_steps(cfg, run, cfg->accum);
    if (check_steps_per_epoch(cfg, run, cfg->accum, p->shape.steps_per_epoch, err, errlen) != 0) return -1;
    p->shape.total_steps = cfg->steps > 0 ? cfg->steps : (long)cfg->epochs * p->shape.steps_per_epoch;
    return 0;
}

/* The flags recorded in the checkpoint against the new ones. */
static void compare_settings(const TrainConfig *cfg, const char *old, List *meaning, List *harmless)
{
    char name[64], was[4096], now[4096];
    for (const char *p = cfg->settings; *p;) {
        const char *eq = strchr(p, '='), *end = strchr(p, ' ');
        if (!end) end = p + strlen(p);
        if (!eq || eq > end || (size_t)(eq - p) >= sizeof name) break;
        memcpy(name, p, (size_t)(eq - p));
        name[eq - p] = '\0';
        p = *end ? end + 1 : end;
        if (listed(name, COMPARED_OTHERWISE, sizeof COMPARED_OTHERWISE / sizeof *COMPARED_OTHERWISE)) continue;
        /* a flag newer than the checkpoint: nothing to compare with */
        if (!cli_settings_get(old, name, was, sizeof was)) continue;
        cli_settings_get(cfg->settings, name, now, sizeof now);
        if (strcmp(was, now) == 0) continue;
        List *l = listed(name, HARMLESS, sizeof HARMLESS / sizeof *HARMLESS) ? harmless : meaning;
        list_add(l, "%s %s (was %s)", name, now[0] ? now : "''", was[0] ? was : "''");
    }
}

/* Checkpoints written before train_settings existed: the metadata fields. */
static void compare_meta(const TrainConfig *cfg, const CkptMeta *m, int gb, List *meaning)
{
    double lr = cfg->lr;
    if (cfg->lr_scale_linear) lr *= (double)gb / cfg->lr_ref_batch;
    if (m->seed != cfg->seed) list_add(meaning, "--seed %llu (was %llu)", (unsigned long long)cfg->seed,
                                       (unsigned long long)m->seed);
    if (m->crop && m->crop != cfg->crop) list_add(meaning, "--crop %d (was %d)", cfg->crop, m->crop);
    if (m->lr.policy != cfg->lr_policy)
        list_add(meaning, "--lr-policy %s (was %s)", lr_policy_name(cfg->lr_policy), lr_policy_name(m->lr.policy));
    if (fabs(m->lr.base_lr - lr) > 1e-9 * fabs(lr)) list_add(meaning, "--lr %g (was %g)", lr, m->lr.base_lr);
    if (fabs(m->momentum - cfg->momentum) > 1e-12) list_add(meaning, "--momentum %g (was %g)", cfg->momentum, m->momentum);
    if (fabs(m->weight_decay - cfg->wd) > 1e-12) list_add(meaning, "--wd %g (was %g)", cfg->wd, m->weight_decay);
    if (fabs(m->ema_decay - cfg->ema_decay) > 1e-12)
        list_add(meaning, "--ema-decay %g (was %g)", cfg->ema_decay, m->ema_decay);
    if (m->drop_last != cfg->drop_last)
        list_add(meaning, "--drop-last %s (was %s)", cfg->drop_last ? "on" : "off", m->drop_last ? "on" : "off");
}

/* The training data: count, files and labels (data_digest), class names. */
static void compare_data(const TrainConfig *cfg, const CkptMeta *m, const ResumeRun *run, List *meaning,
                         List *harmless)
{
    char digest[64], old[8192];
    int same = 1;
    if (m->dataset_size && m->dataset_size != run->dataset_size) {
        list_add(meaning, "the training data (%lld images, was %lld)", run->dataset_size, m->dataset_size);
        same = 0;
    } else if (ckpt_meta_get_extra(m, "data_digest", digest, sizeof digest) && run->data_digest &&
               strcmp(digest, run->data_digest) != 0) {
        list_add(meaning, "the training data (the same count, %lld, but other files or labels)", run->dataset_size);
        same = 0;
    } else if (m->class_names && run->class_names && strcmp(m->class_names, run->class_names) != 0) {
        list_add(meaning, "the class names or their order (--classes-file)");
        same = 0;
    }
    if (!same || !ckpt_meta_get_extra(m, "train_settings", old, sizeof old)) return;
    /* the same data under another path is the same run */
    static const char *const paths[] = {"--data", "--labels", "--classes-file"};
    for (size_t i = 0; i < 3; i++) {
        char was[4096], now[4096];
        if (!cli_settings_get(old, paths[i], was, sizeof was) || !cli_settings_get(cfg->settings, paths[i], now, sizeof now))
            continue;
        if (strcmp(was, now) != 0)
            list_add(harmless, "%s %s (was %s; the same images)", paths[i], now[0] ? now : "''", was[0] ? was : "''");
    }
}

/* The global batch: kept across another rank count when --accum can make up
 * for it (and was not given), so the run goes on exactly. */
static int resume_accum(const TrainConfig *cfg, const CkptMeta *m, int world)
{
    long gb0 = (long)m->world_size * m->batch * m->accum, per = (long)world * cfg->batch;
    if (world == m->world_size || cfg->accum_given || cfg->batch != m->batch || gb0 % per != 0) return cfg->accum;
    return (int)(gb0 / per);
}

static void compare_batch(const TrainConfig *cfg, const CkptMeta *m, const ResumeRun *run, ResumePlan *p,
                          List *meaning, List *harmless, int *resplit)
{
    int gb0 = m->world_size * m->batch * m->accum, w = run->world;
    *resplit = 0;
    if (p->shape.global_batch == gb0) {
        if (p->shape.accum != cfg->accum)
            note(p, "resuming on %d rank%s instead of %d: --accum %d keeps the global batch at %d, so the run continues "
                 "exactly where it stopped (pass --accum to choose otherwise)", w, w == 1 ? "" : "s", m->world_size,
                 p->shape.accum, gb0);
        else if (cfg->batch != m->batch || cfg->accum != m->accum || w != m->world_size)
            list_add(harmless, "%d rank%s x --batch %d x --accum %d (was %d x %d x %d; the same global batch %d)", w,
                     w == 1 ? "" : "s", cfg->batch, p->shape.accum, m->world_size, m->batch, m->accum, gb0);
        return;
    }
    if (w != m->world_size && cfg->batch == m->batch && p->shape.accum == m->accum) {
        *resplit = 1; /* only the rank count changed: accepted, said below */
        return;
    }
    list_add(meaning, "the global batch %d = %d rank%s x --batch %d x --accum %d (was %d = %d x %d x %d)",
             p->shape.global_batch, w, w == 1 ? "" : "s", cfg->batch, p->shape.accum, gb0, m->world_size, m->batch, m->accum);
}

int train_resume_plan(const TrainConfig *cfg, const CkptMeta *m, const char *path, const ResumeRun *run,
                      ResumePlan *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (m->world_size < 1 || m->batch < 1 || m->accum < 1) {
        snprintf(err, errlen, "%s records no run shape (ranks %d, batch %d, accum %d): resume it with --init to start a "
                 "new run from its weights", path, m->world_size, m->batch, m->accum);
        return -1;
    }
    p->shape.accum = resume_accum(cfg, m, run->world);
    p->shape.global_batch = run->world * cfg->batch * p->shape.accum;
    p->shape.steps_per_epoch = epoch_steps(cfg, run, p->shape.accum);
    if (check_steps_per_epoch(cfg, run, p->shape.accum, p->shape.steps_per_epoch, err, errlen) != 0) return -1;

    List meaning = {{0}, 0}, harmless = {{0}, 0};
    char old[8192];
    int resplit;
    compare_batch(cfg, m, run, p, &meaning, &harmless, &resplit);
    compare_data(cfg, m, run, &meaning, &harmless);
    if (ckpt_meta_get_extra(m, "train_settings", old, sizeof old)) compare_settings(cfg, old, &meaning, &harmless);
    else compare_meta(cfg, m, p->shape.global_batch, &meaning);
    if (meaning.n && !cfg->allow_changes) {
        snprintf(err, errlen, "cannot resume from %s: %s; pass --allow-changes to continue the run with %s, or give a "
                 "new --out (no checkpoint or log was touched)", path, meaning.s, meaning.n == 1 ? "it" : "them");
        return -1;
    }
    if (meaning.n) note(p, "resuming with changed settings (--allow-changes): %s", meaning.s);
    if (harmless.n) note(p, "changed since the checkpoint, without changing what is trained: %s", harmless.s);

    /* the position: the step count as it was; the epoch position in samples,
     * re-cut into global batches of the new size when that changed */
    long long es_samples = m->epoch_samples;
    p->at.step = m->step;
    p->at.samples_seen = m->samples_seen;
    p->at.epoch = m->epoch;
    p->at.epoch_step = (long)(es_samples / p->shape.global_batch);
    long long again = es_samples - (long long)p->at.epoch_step * p->shape.global_batch;
    if (p->at.epoch_step >= p->shape.steps_per_epoch) {
        p->at.epoch++;
        p->at.epoch_step = 0;
        again = 0;
    }
    long done_at_shape = p->at.epoch * p->shape.steps_per_epoch + p->at.epoch_step;
    p->shape.total_steps = cfg->steps > 0 ? cfg->steps : p->at.step + ((long)cfg->epochs * p->shape.steps_per_epoch - done_at_shape);
    if (p->shape.total_steps < p->at.step) p->shape.total_steps = p->at.step;
    p->complete = p->at.step >= p->shape.total_steps;
    int gb0 = m->world_size * m->batch * m->accum;
    if (p->shape.global_batch != gb0 && !p->complete) {
        char pos[128], seen[96] = "", who[96] = "";
        train_format_position(&p->at, p->shape.steps_per_epoch, pos, sizeof pos);
        if (again) snprintf(seen, sizeof seen, ", and %lld sample%s of that epoch %s seen again", again,
                            again == 1 ? "" : "s", again == 1 ? "is" : "are");
        if (resplit) snprintf(who, sizeof who, "resuming on %d rank%s instead of %d: ", run->world,
                              run->world == 1 ? "" : "s", m->world_size);
        note(p, "%sthe global batch is %d (was %d), so the epoch position is re-split: the run continues after %s%s; "
             "it now ends at step %ld, and the learning-rate schedule spans that many steps", who, p->shape.global_batch, gb0,
             pos, seen, p->shape.total_steps);
    }
    return 0;
}
