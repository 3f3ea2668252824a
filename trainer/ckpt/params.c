/* ckpt/params.c: parameter layouts of checkpoints and copies by name (see
 * ckpt/params.h). */
#include "trainer/ckpt/params.h"

#include <stdio.h>
#include <string.h>

int ckpt_layout_init(CkptLayout *l, int classes, int aux, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    ModelConfig cfg = model_default_config();
    cfg.classes = classes;
    cfg.aux = aux;
    cfg.crop = model_min_crop(aux);
    cfg.training = 0;
    cfg.batch = 1;
    cfg.conv_gemm = 1; /* no Winograd scratch: the layout is all that is wanted */
    l->model = model_init(&cfg, err, errlen);
    if (!l->model) return -1;
    l->t = model_param_tensors(l->model, &l->n);
    l->num_params = model_num_params(l->model);
    return 0;
}

void ckpt_layout_free(CkptLayout *l)
{
    model_free(l->model);
    memset(l, 0, sizeof *l);
}

static int same_shape(const ParamTensor *a, const ParamTensor *b)
{
    if (a->ndim != b->ndim || a->count != b->count) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* "loss1/conv/weight" -> "loss1/conv", appended unless it ends the list already */
static void add_layer(char *out, size_t len, const char *tensor)
{
    char layer[64];
    snprintf(layer, sizeof layer, "%s", tensor);
    char *slash = strrchr(layer, '/');
    if (slash) *slash = '\0';
    size_t at = strlen(out), ll = strlen(layer);
    if (at >= ll && strcmp(out + at - ll, layer) == 0 && (at == ll || out[at - ll - 1] == ' ')) return;
    if (at + ll + 3 < len) snprintf(out + at, len - at, "%s%s", at ? ", " : "", layer);
}

int ckpt_params_copy(const CkptLayout *d, float *dst, const CkptLayout *s, const float *src,
                     int (*skip)(const char *name), char *missing, size_t len, size_t *lowest)
{
    int left = 0;
    if (len) missing[0] = '\0';
    *lowest = d->num_params;
    for (int i = 0; i < d->n; i++) {
        const ParamTensor *dt = &d->t[i], *st = NULL;
        for (int k = 0; k < s->n && !st; k++)
            if (strcmp(s->t[k].name, dt->name) == 0 && same_shape(&s->t[k], dt)) st = &s->t[k];
        if (st && (!skip || !skip(dt->name))) {
            memcpy(dst + dt->offset, src + st->offset, dt->count * sizeof(float));
            continue;
        }
        left++;
        add_layer(missing, len, dt->name);
        if (dt->offset < *lowest) *lowest = dt->offset;
    }
    return left;
}
