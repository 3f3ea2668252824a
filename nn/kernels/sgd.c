/* sgd.c (kernels): the SGD update with momentum (Caffe's form) and the Polyak
 * average, over a range of parameters, for nn/sgd.c. Compiled once per
 * instruction set (kernels.h). */
#include "nn/kernels/isa.h"

void ISA(sgd_update)(const SgdArgs *j, long b, long e)
{
    float *w = j->w, *v = j->v, *avg = j->avg;
    const float *g = j->g;
    float lr = j->lr, mom = j->mom, wd = j->wd, ema = j->ema, keep = 1.0f - j->ema;
    for (long i = b; i < e; i++) {
        float step = mom * v[i] + lr * (g[i] + wd * w[i]);
        v[i] = step;
        w[i] -= step;
        if (avg) avg[i] = ema * avg[i] + keep * w[i];
    }
}
