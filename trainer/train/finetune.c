/* train/finetune.c: train --init and --freeze (see finetune.h). Tensors are matched
 * by name and shape between the checkpoint's layout and the model's
 * (ckpt/params.h), so another class count or a checkpoint without the aux
 * heads still gives every layer it can. */
#include "trainer/train/finetune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/ckpt/ckpt.h"
#include "trainer/ckpt/params.h"

static int is_classifier(const char *name) { return strstr(name, "/classifier/") != NULL; }

static void add_line(char *report, size_t len, const char *line)
{
    size_t at = strlen(report);
    if (at + strlen(line) + 2 < len) snprintf(report + at, len - at, "%s\n", line);
}

/* The set of weights to start from, and which it is. */
static float *read_set(CkptReader *r, int average, const char **what, char *err, size_t errlen)
{
    const CkptMeta *m = ckpt_reader_meta(r);
    char slim[16] = "";
    int is_slim = ckpt_meta_get_extra(m, CKPT_EXTRA_SLIM, slim, sizeof slim);
    CkptSectionKind kind = average && ckpt_reader_has(r, CKPT_SEC_AVERAGE) ? CKPT_SEC_AVERAGE : CKPT_SEC_WEIGHTS;
    *what = is_slim ? (strcmp(slim, "raw") == 0 ? "its last weights (slim)" : "its Polyak average (slim)")
                    : kind == CKPT_SEC_AVERAGE ? "its Polyak average" : "its last weights";
    float *w = malloc(m->num_params * sizeof(float));
    if (!w) {
        snprintf(err, errlen, "out of memory for the %zu weights of %s", m->num_params, ckpt_reader_meta(r)->arch);
        return NULL;
    }
    if (ckpt_reader_read(r, kind, w, m->num_params, err, errlen) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

/* Notes on what the checkpoint was trained with that this run does differently. */
static void note_norm(const CkptMeta *cm, const float mean[3], const float std[3], char *report, size_t rlen)
{
    float cmean[3], cstd[3];
    if (!ckpt_meta_get_norm(cm, cmean, cstd)) return;
    if (memcmp(cmean, mean, sizeof cmean) == 0 && memcmp(cstd, std, sizeof cstd) == 0) return;
    char line[300];
    snprintf(line, sizeof line, "note: the checkpoint was trained with --mean %g,%g,%g --std %g,%g,%g and this run uses "
             "%g,%g,%g / %g,%g,%g: pass the checkpoint's to keep its inputs the same", cmean[0], cmean[1], cmean[2],
             cstd[0], cstd[1], cstd[2], mean[0], mean[1], mean[2], std[0], std[1], std[2]);
    add_line(report, rlen, line);
}

int finetune_init(Model *m, const char *path, int average, const char *class_names, int classes,
                  const float mean[3], const float std[3], char *report, size_t rlen, size_t *reinit_lo,
                  char *err, size_t errlen)
{
    report[0] = '\0';
    *reinit_lo = model_num_params(m);
    char why[1200];
    CkptReader *r = ckpt_open(path, why, sizeof why);
    if (!r) return snprintf(err, errlen, "--init %s: %s", path, why), -1;
    const CkptMeta *cm = ckpt_reader_meta(r);
    int rc = -1;
    float *src = NULL;
    CkptLayout from, to = {m, NULL, 0, model_num_params(m)};
    to.t = model_param_tensors(m, &to.n);
    if (strcmp(cm->arch, CKPT_ARCH) != 0) {
        snprintf(err, errlen, "--init %s holds architecture '%s', not '%s'", path, cm->arch, CKPT_ARCH);
        goto out;
    }
    if (ckpt_layout_init(&from, cm->classes, cm->aux, why, sizeof why) != 0) {
        snprintf(err, errlen, "--init %s: %s", path, why);
        goto out;
    }
    if (from.num_params != cm->num_params) {
        snprintf(err, errlen, "--init %s holds %zu parameters, not the %zu of GoogLeNet with %d classes%s", path,
                 cm->num_params, from.num_params, cm->classes, cm->aux ? " and aux heads" : "");
        ckpt_layout_free(&from);
        goto out;
    }
    const char *what;
    if (!(src = read_set(r, average, &what, why, sizeof why))) {
        snprintf(err, errlen, "--init %s: %s", path, why);
        ckpt_layout_free(&from);
        goto out;
    }
    /* the same class count with other names (or another order) is another task */
    int same_classes = cm->classes == classes &&
                       (!cm->class_names || !class_names || strcmp(cm->class_names, class_names) == 0);
    char missing[1024], line[1400];
    size_t lowest;
    int left = ckpt_params_copy(&to, model_params(m), &from, src, same_classes ? NULL : is_classifier, missing,
                                sizeof missing, &lowest);
    snprintf(line, sizeof line, "initialised from %s (step %ld), %s: %d of %d tensors", path, cm->step, what,
             to.n - left, to.n);
    add_line(report, rlen, line);
    if (left) {
        if (!same_classes && cm->classes != classes)
            snprintf(line, sizeof line, "re-initialised from --seed for %d classes (the checkpoint has %d): %s", classes,
                     cm->classes, missing);
        else if (!same_classes)
            snprintf(line, sizeof line, "re-initialised from --seed, the checkpoint's classes being others: %s", missing);
        else
            snprintf(line, sizeof line, "not in the checkpoint, initialised from --seed: %s", missing);
        add_line(report, rlen, line);
    }
    note_norm(cm, mean, std, report, rlen);
    *reinit_lo = lowest;
    ckpt_layout_free(&from);
    rc = 0;
out:
    free(src);
    ckpt_close(r);
    return rc;
}

int finetune_freeze(const Model *m, const char *layer, size_t *from, int *first_tensor, char *err, size_t errlen)
{
    int n;
    const ParamTensor *t = model_param_tensors(m, &n);
    char prefix[80];
    snprintf(prefix, sizeof prefix, "%s/", layer);
    int last = -1;
    for (int i = 0; i < n; i++)
        if (strncmp(t[i].name, prefix, strlen(prefix)) == 0) last = i;
    if (last < 0)
        return snprintf(err, errlen, "--freeze %s names no layer with parameters; give a layer or module such as "
                        "conv2, inception_4e or inception_4e/3x3 (googlenet ckpt info FILE --tensors lists them)",
                        layer), -1;
    if (last == n - 1)
        return snprintf(err, errlen, "--freeze %s would keep every layer fixed: nothing left to train", layer), -1;
    *from = t[last].offset + t[last].count;
    *first_tensor = last + 1;
    return 0;
}
