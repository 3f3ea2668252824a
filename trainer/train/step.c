/* train/step.c: the optimizer step (see step.h). */
#include "trainer/train/step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/clock.h"
#include "nn/rng.h"

/* The allreducer hands out offsets into the trained part [freeze_from, np). */
static void grads_ready(void *ctx, size_t ready_from)
{
    TrainStep *s = ctx;
    comm_allreducer_ready(s->ar, ready_from - s->freeze_from);
}

/* Micro-batch `micro`: batch, forward, backward (the last one starts the
 * allreduce of each bucket as its gradients become final). */
static int micro_batch(TrainStep *s, const TrainPosition *pos, int micro, StepStats *st, char *err, size_t errlen)
{
    Model *m = s->model;
    double t0 = clock_now();
    if (s->fetch && s->fetch(s->fetch_ctx, pos, micro, s->images, s->labels, st, err, errlen) != 0) return -1;
    double t1 = clock_now();
    trace_event(s->trace, "data wait", 2, t0, t1, pos->step);
    ModelStats ms;
    uint64_t key = rng_key(s->seed, (uint64_t)pos->step, (uint64_t)s->rank, (uint64_t)micro);
    model_forward(m, s->images, s->labels, s->batch, MODEL_TRAIN, key, &ms);
    double t2 = clock_now();
    trace_event(s->trace, "forward", 0, t1, t2, pos->step);
    int last = micro == s->accum - 1;
    if (last && s->ar) comm_allreducer_begin(s->ar);
    model_backward_from(m, s->freeze_from, 1.0f / (float)s->global_batch, last && s->ar ? grads_ready : NULL, s);
    trace_event(s->trace, "backward", 0, t2, clock_now(), pos->step);
    st->loss += ms.loss * ms.n;
    st->loss_main += ms.head[MODEL_HEAD_MAIN].loss_sum;
    st->loss_aux1 += ms.head[MODEL_HEAD_AUX1].loss_sum;
    st->loss_aux2 += ms.head[MODEL_HEAD_AUX2].loss_sum;
    st->top1 += ms.head[MODEL_HEAD_MAIN].top1;
    st->top5 += ms.head[MODEL_HEAD_MAIN].top5;
    st->samples += ms.n;
    return 0;
}

/* Waits for the last buckets; the timeline gets the wait and every bucket. */
static void finish_allreduce(TrainStep *s, long step, StepStats *st)
{
    double t0 = clock_now();
    CommStepStats cs;
    comm_allreducer_finish(s->ar, &cs);
    trace_event(s->trace, "allreduce wait (exposed)", 0, t0, clock_now(), step);
    if (s->trace) {
        double bs[256], be[256];
        int nb = comm_allreducer_bucket_times(s->ar, bs, be, 256);
        for (int b = 0; b < nb; b++) {
            char name[48];
            snprintf(name, sizeof name, "allreduce bucket %d", b);
            trace_event(s->trace, name, 1, bs[b], be[b], step);
        }
    }
    st->comm_exposed_s = cs.exposed_seconds;
    st->comm_s = cs.comm_seconds;
}

int train_step(TrainStep *s, TrainPosition *pos, StepStats *stats, char *err, size_t errlen)
{
    Model *m = s->model;
    size_t np = model_num_params(m);
    memset(stats, 0, sizeof *stats);
    memset(model_grads(m) + s->freeze_from, 0, (np - s->freeze_from) * sizeof(float));
    for (int micro = 0; micro < s->accum; micro++)
        if (micro_batch(s, pos, micro, stats, err, errlen) != 0) return -1;
    if (s->ar) finish_allreduce(s, pos->step, stats);

    int ntensors;
    const ParamTensor *pt = model_param_tensors(m, &ntensors);
    double t0 = clock_now();
    train_stop_lock(s->stop);
    s->lr = lr_at(s->sched, pos->step);
    sgd_state_step(s->opt, model_params(m), model_grads(m), pt + s->first_trainable, ntensors - s->first_trainable,
                   s->lr, pos->step);
    trace_event(s->trace, "sgd update", 0, t0, clock_now(), pos->step);
    pos->step++;
    pos->samples_seen += s->global_batch;
    int epoch_end = ++pos->epoch_step == s->steps_per_epoch;
    if (epoch_end) {
        pos->epoch++;
        pos->epoch_step = 0;
    }
    train_stop_unlock(s->stop);
    return epoch_end;
}

int train_step_local_init(TrainStepLocal *l, Model *m, int batch, int classes, double lr, double momentum,
                          double weight_decay, double ema_decay, uint64_t seed, uint64_t data_seed, char *err,
                          size_t errlen)
{
    memset(l, 0, sizeof *l);
    const ModelConfig *mc = model_config(m);
    size_t in_n = (size_t)batch * 3 * mc->crop * mc->crop;
    float *images = malloc(in_n * sizeof(float));
    int *labels = malloc((size_t)batch * sizeof(int));
    if (!images || !labels ||
        sgd_state_init(&l->opt, model_num_params(m), model_params(m), momentum, weight_decay, ema_decay) != 0) {
        free(images);
        free(labels);
        snprintf(err, errlen, "out of memory for a training step of batch %d at crop %d", batch, mc->crop);
        return -1;
    }
    uint64_t key = rng_key(data_seed, 0, 0, 0);
    for (size_t i = 0; i < in_n; i++) images[i] = 2.0f * rng_uniform(key, i) - 1.0f;
    for (int i = 0; i < batch; i++) labels[i] = i % classes;
    l->sched = (LrSchedule){.policy = LR_FIXED, .base_lr = lr};
    l->step = (TrainStep){.model = m, .opt = &l->opt, .sched = &l->sched, .batch = batch, .accum = 1,
                          .global_batch = batch, .seed = seed, .images = images, .labels = labels};
    return 0;
}

void train_step_local_free(TrainStepLocal *l)
{
    sgd_state_free(&l->opt);
    free(l->step.images);
    free(l->step.labels);
    l->step.images = NULL;
    l->step.labels = NULL;
}
