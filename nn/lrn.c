/* lrn.c: cross-channel LRN (see lrn.h). The positions of a plane are split
 * among threads in strips of LRN_STRIP positions; each strip walks all the
 * channels, its rows staying in cache. beta = 0.75 (GoogLeNet's) takes a
 * fast path: s^-0.75 = r * sqrt(r) with r = 1/sqrt(s), r from the hardware
 * estimate refined by one Newton step (relative error below 5e-7). Backward
 * recomputes the scales from x and needs no y. The loops over a strip are
 * SIMD kernels (nn/kernels/lrn.c). */
#include "nn/lrn.h"

#include <assert.h>

#include "nn/kernels/kernels.h"
#include "nn/parallel.h"

static void forward_range(void *ctx, long b, long e) { nn_kernels()->lrn_forward(ctx, b, e); }
static void backward_range(void *ctx, long b, long e) { nn_kernels()->lrn_backward(ctx, b, e); }

void lrn_forward(float *y, const float *x, const LrnShape *s)
{
    LrnArgs j = {.s = s, .x = x, .out = y};
    long strips = (long)((s->plane + LRN_STRIP - 1) / LRN_STRIP);
    parallel_for(strips, 1, forward_range, &j);
}

void lrn_backward(float *dx, const float *dy, const float *x, const LrnShape *s, int accum_dx)
{
    assert(s->size >= 1 && s->size <= LRN_MAX_SIZE && s->size % 2 == 1);
    LrnArgs j = {.s = s, .x = x, .dy = dy, .out = dx, .accum = accum_dx};
    long strips = (long)((s->plane + LRN_STRIP - 1) / LRN_STRIP);
    parallel_for(strips, 1, backward_range, &j);
}
