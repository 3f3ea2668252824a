/* pool.c: Caffe-style and adaptive pooling (see pool.h): the windows, and the
 * planes handed to threads; each plane is written by one thread only, so
 * results do not depend on the thread count. The loops over a plane are SIMD
 * kernels (nn/kernels/pool.c). */
#include "nn/pool.h"

#include "nn/kernels/kernels.h"
#include "nn/parallel.h"

static void forward_range(void *ctx, long b, long e) { nn_kernels()->pool_forward(ctx, b, e); }
static void backward_range(void *ctx, long b, long e) { nn_kernels()->pool_backward(ctx, b, e); }
static void argmax_range(void *ctx, long b, long e) { nn_kernels()->pool_argmax(ctx, b, e); }
static void backward_argmax_range(void *ctx, long b, long e) { nn_kernels()->pool_backward_argmax(ctx, b, e); }

void pool_shape_init(PoolShape *s, PoolKind kind, int k, int stride, int pad, int h, int w)
{
    s->kind = kind;
    s->k = k;
    s->stride = stride;
    s->pad = pad;
    s->adaptive = 0;
    s->h = h;
    s->w = w;
    s->ho = (h + 2 * pad - k + stride - 1) / stride + 1;
    s->wo = (w + 2 * pad - k + stride - 1) / stride + 1;
    if (pad > 0) {
        if ((s->ho - 1) * stride >= h + pad) s->ho--;
        if ((s->wo - 1) * stride >= w + pad) s->wo--;
    }
}

void pool_shape_adaptive(PoolShape *s, int h, int w, int ho, int wo)
{
    s->kind = POOL_AVG;
    s->k = s->stride = s->pad = 0;
    s->adaptive = 1;
    s->h = h;
    s->w = w;
    s->ho = ho;
    s->wo = wo;
}

/* Window of output index o along an axis of input length len: [lo, hi) inside
 * the input, and the extent Caffe divides by (clipped to the padded input). */
static void window_table(const PoolShape *s, int len, int olen, PoolWindow *tab)
{
    for (int o = 0; o < olen; o++) {
        PoolWindow *t = &tab[o];
        if (s->adaptive) {
            t->lo = (int)((long)o * len / olen);
            t->hi = (int)(((long)(o + 1) * len + olen - 1) / olen);
            t->extent = t->hi - t->lo;
            continue;
        }
        int start = o * s->stride - s->pad, end = start + s->k;
        if (end > len + s->pad) end = len + s->pad;
        t->extent = end - start;
        t->lo = start < 0 ? 0 : start;
        t->hi = end > len ? len : end;
    }
}

void pool_windows(const PoolShape *s, PoolWindow *th, PoolWindow *tw)
{
    window_table(s, s->h, s->ho, th);
    window_table(s, s->w, s->wo, tw);
}

void pool_forward_argmax(float *y, unsigned char *arg, const float *x, const PoolShape *s, long planes)
{
    PoolWindow th[s->ho], tw[s->wo];
    pool_windows(s, th, tw);
    PoolArgs j = {.s = s, .x = x, .out = y, .arg = arg, .th = th, .tw = tw};
    parallel_for(planes, 1, argmax_range, &j);
}

void pool_backward_argmax(float *dx, const float *dy, const unsigned char *arg, const PoolShape *s,
                          long planes, int accum_dx)
{
    PoolArgs j = {.s = s, .dy = dy, .out = dx, .carg = arg, .accum = accum_dx};
    parallel_for(planes, 1, backward_argmax_range, &j);
}

void pool_forward(float *y, const float *x, const PoolShape *s, long planes)
{
    PoolWindow th[s->ho], tw[s->wo];
    pool_windows(s, th, tw);
    PoolArgs j = {.s = s, .x = x, .out = y, .th = th, .tw = tw};
    parallel_for(planes, 1, forward_range, &j);
}

void pool_backward(float *dx, const float *dy, const float *x, const float *y,
                   const PoolShape *s, long planes, int accum_dx)
{
    PoolWindow th[s->ho], tw[s->wo];
    pool_windows(s, th, tw);
    PoolArgs j = {.s = s, .x = x, .y = y, .dy = dy, .out = dx, .accum = accum_dx, .th = th, .tw = tw};
    parallel_for(planes, 1, backward_range, &j);
}
