/* pool.c: Caffe-style and adaptive pooling (see pool.h). Parallel over planes;
 * each plane is written by one thread only, so results do not depend on the
 * thread count. */
#include "nn/pool.h"

#include <float.h>
#include <string.h>

#include "nn/parallel.h"

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

/* Window of output index o along an axis of input length len: [*lo, *hi) inside
 * the input, and the extent Caffe divides by (clipped to the padded input). */
static void window(const PoolShape *s, int o, int len, int olen, int *lo, int *hi, int *extent)
{
    if (s->adaptive) {
        *lo = (int)((long)o * len / olen);
        *hi = (int)(((long)(o + 1) * len + olen - 1) / olen);
        *extent = *hi - *lo;
        return;
    }
    int start = o * s->stride - s->pad;
    int end = start + s->k;
    if (end > len + s->pad) end = len + s->pad;
    *extent = end - start;
    *lo = start < 0 ? 0 : start;
    *hi = end > len ? len : end;
}

typedef struct {
    const PoolShape *s;
    const float *x, *y, *dy;
    float *out;
    int accum;
} PoolJob;

static void forward_range(void *ctx, long b, long e)
{
    const PoolJob *j = ctx;
    const PoolShape *s = j->s;
    size_t ip = (size_t)s->h * s->w, op = (size_t)s->ho * s->wo;
    for (long p = b; p < e; p++) {
        const float *x = j->x + p * ip;
        float *y = j->out + p * op;
        for (int oh = 0; oh < s->ho; oh++) {
            int h0, h1, eh;
            window(s, oh, s->h, s->ho, &h0, &h1, &eh);
            for (int ow = 0; ow < s->wo; ow++) {
                int w0, w1, ew;
                window(s, ow, s->w, s->wo, &w0, &w1, &ew);
                float v;
                if (s->kind == POOL_MAX) {
                    v = -FLT_MAX;
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++) {
                            float t = x[ih * s->w + iw];
                            if (t > v) v = t;
                        }
                } else {
                    float acc = 0.0f;
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++) acc += x[ih * s->w + iw];
                    v = acc / (float)(eh * ew);
                }
                y[oh * s->wo + ow] = v;
            }
        }
    }
}

static void backward_range(void *ctx, long b, long e)
{
    const PoolJob *j = ctx;
    const PoolShape *s = j->s;
    size_t ip = (size_t)s->h * s->w, op = (size_t)s->ho * s->wo;
    for (long p = b; p < e; p++) {
        const float *x = j->x + p * ip, *y = j->y ? j->y + p * op : NULL, *dy = j->dy + p * op;
        float *dx = j->out + p * ip;
        if (!j->accum) memset(dx, 0, sizeof(float) * ip);
        for (int oh = 0; oh < s->ho; oh++) {
            int h0, h1, eh;
            window(s, oh, s->h, s->ho, &h0, &h1, &eh);
            for (int ow = 0; ow < s->wo; ow++) {
                int w0, w1, ew;
                window(s, ow, s->w, s->wo, &w0, &w1, &ew);
                float g = dy[oh * s->wo + ow];
                if (s->kind == POOL_MAX) {
                    float m = y[oh * s->wo + ow];
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++)
                            if (x[ih * s->w + iw] == m) {
                                dx[ih * s->w + iw] += g;
                                goto next;
                            }
                } else {
                    float share = g / (float)(eh * ew);
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++) dx[ih * s->w + iw] += share;
                }
            next:;
            }
        }
    }
}

void pool_forward(float *y, const float *x, const PoolShape *s, long planes)
{
    PoolJob j = {.s = s, .x = x, .out = y};
    parallel_for(planes, 1, forward_range, &j);
}

void pool_backward(float *dx, const float *dy, const float *x, const float *y,
                   const PoolShape *s, long planes, int accum_dx)
{
    PoolJob j = {.s = s, .x = x, .y = y, .dy = dy, .out = dx, .accum = accum_dx};
    parallel_for(planes, 1, backward_range, &j);
}
