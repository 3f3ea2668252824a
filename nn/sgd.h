/* sgd.h: Caffe's SGD with momentum and weight decay, learning-rate policies
 * with linear warm-up, and Polyak averaging of the weights.
 *
 * Update, per parameter tensor with multipliers (lr_mult, decay_mult):
 *   v = momentum * v + lr * lr_mult * (g + wd * decay_mult * w)
 *   w = w - v
 *   avg = ema_decay * avg + (1 - ema_decay) * w        (when avg != NULL)
 * Works on the flat buffers and the tensor table of model.h; one pass.
 */
#ifndef NN_SGD_H
#define NN_SGD_H

#include <stddef.h>

#include "nn/model.h"

typedef enum { LR_STEP, LR_POLY, LR_COSINE, LR_FIXED } LrPolicy;

typedef struct {
    LrPolicy policy;
    double base_lr;
    double gamma;       /* step: lr *= gamma every step_size iterations (0.96) */
    long step_size;
    double power;       /* poly: lr = base * (1 - it / max_iter)^power (0.5) */
    long max_iter;      /* poly and cosine: the length of the run */
    double final_frac;  /* cosine: decays to base * final_frac */
    long warmup_iters;  /* linear ramp from base / warmup_iters to the policy's value */
} LrSchedule;

/* "step", "poly", "cosine", "fixed" -> policy; -1 when unknown. */
int lr_policy_parse(const char *name);
const char *lr_policy_name(LrPolicy p);
/* The learning rate of iteration `it` (0-based). */
double lr_at(const LrSchedule *s, long it);

/* One update over every tensor of the table (w, v, g, avg are (num_params)). */
void sgd_step(float *w, float *v, const float *g, float *avg, const ParamTensor *tensors,
              int ntensors, float lr, float momentum, float weight_decay, float ema_decay);

/* The optimizer's state over one flat parameter buffer: the momentum and the
 * Polyak average, with the hyperparameters that update them. A checkpoint
 * stores the two buffers as they are. */
typedef struct {
    size_t num_params;
    float *momentum;     /* (num_params) */
    float *average;      /* (num_params) */
    double momentum_coef, weight_decay, ema_decay;
} SgdState;

/* Allocates both buffers: the momentum zero, the average a copy of weights
 * (weights (num_params), may be NULL: zero). 0, or -1 when out of memory
 * (nothing allocated). */
int sgd_state_init(SgdState *s, size_t num_params, const float *weights, double momentum, double weight_decay,
                   double ema_decay);
void sgd_state_free(SgdState *s);
/* A new run from these weights: momentum zero, the average = weights. */
void sgd_state_reset(SgdState *s, const float *weights);
/* The average's decay at 0-based step `step`: warmed up as TensorFlow's
 * ExponentialMovingAverage with num_updates, min(decay, (1 + step) / (10 +
 * step)), so that a short run is not dominated by the initial weights. */
double sgd_ema_decay_at(double decay, long step);
/* Step `step` of training: sgd_step over the tensors with the learning rate
 * lr, the state's momentum and weight decay and the warmed-up decay. */
void sgd_state_step(SgdState *s, float *w, const float *g, const ParamTensor *tensors, int ntensors, double lr,
                    long step);

#endif
