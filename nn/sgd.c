/* sgd.c: the optimizer and the learning-rate schedule (see sgd.h). */
#include "nn/sgd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/kernels/kernels.h"
#include "nn/parallel.h"

static const char *const POLICY_NAMES[] = {"step", "poly", "cosine", "fixed"};

int lr_policy_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, POLICY_NAMES[i]) == 0) return i;
    return -1;
}

const char *lr_policy_name(LrPolicy p) { return p <= LR_FIXED ? POLICY_NAMES[p] : "?"; }

double lr_at(const LrSchedule *s, long it)
{
    double lr = s->base_lr;
    long len = s->max_iter > 0 ? s->max_iter : 1;
    double frac = it >= len ? 1.0 : (double)it / (double)len;
    switch (s->policy) {
    case LR_STEP:
        if (s->step_size > 0) lr *= pow(s->gamma, (double)(it / s->step_size));
        break;
    case LR_POLY:
        lr *= pow(1.0 - frac, s->power);
        break;
    case LR_COSINE:
        lr *= s->final_frac + (1.0 - s->final_frac) * 0.5 * (1.0 + cos(M_PI * frac));
        break;
    case LR_FIXED:
        break;
    }
    if (s->warmup_iters > 0 && it < s->warmup_iters)
        lr *= (double)(it + 1) / (double)s->warmup_iters;
    return lr;
}

static void update_range(void *ctx, long b, long e) { nn_kernels()->sgd_update(ctx, b, e); }

void sgd_step(float *w, float *v, const float *g, float *avg, const ParamTensor *tensors,
              int ntensors, float lr, float momentum, float weight_decay, float ema_decay)
{
    for (int t = 0; t < ntensors; t++) {
        const ParamTensor *p = &tensors[t];
        size_t o = p->offset;
        SgdArgs j = {.w = w + o, .v = v + o, .avg = avg ? avg + o : NULL, .g = g + o,
                    .lr = lr * p->lr_mult, .mom = momentum, .wd = weight_decay * p->decay_mult,
                    .ema = ema_decay};
        parallel_for((long)p->count, 65536, update_range, &j);
    }
}

int sgd_state_init(SgdState *s, size_t num_params, const float *weights, double momentum, double weight_decay,
                   double ema_decay)
{
    memset(s, 0, sizeof *s);
    s->momentum = calloc(num_params ? num_params : 1, sizeof(float));
    s->average = malloc((num_params ? num_params : 1) * sizeof(float));
    if (!s->momentum || !s->average) {
        sgd_state_free(s);
        return -1;
    }
    s->num_params = num_params;
    s->momentum_coef = momentum;
    s->weight_decay = weight_decay;
    s->ema_decay = ema_decay;
    sgd_state_reset(s, weights);
    return 0;
}

void sgd_state_free(SgdState *s)
{
    free(s->momentum);
    free(s->average);
    s->momentum = s->average = NULL;
    s->num_params = 0;
}

void sgd_state_reset(SgdState *s, const float *weights)
{
    memset(s->momentum, 0, s->num_params * sizeof(float));
    if (weights) memcpy(s->average, weights, s->num_params * sizeof(float));
    else memset(s->average, 0, s->num_params * sizeof(float));
}

double sgd_ema_decay_at(double decay, long step) { return fmin(decay, (1.0 + step) / (10.0 + step)); }

void sgd_state_step(SgdState *s, float *w, const float *g, const ParamTensor *tensors, int ntensors, double lr,
                    long step)
{
    double ema = sgd_ema_decay_at(s->ema_decay, step);
    sgd_step(w, s->momentum, g, s->average, tensors, ntensors, (float)lr, (float)s->momentum_coef,
             (float)s->weight_decay, (float)ema);
}
