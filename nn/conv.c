/* conv.c: convolution by plan (see conv.h): the GEMM algorithm here, Winograd
 * in nn/winograd.c.
 *
 * GEMM: im2col + SGEMM over the whole batch. Large layers are processed a few
 * images at a time so the im2col scratch stays bounded; the GEMM writes its
 * columns of the output in place (ldc = n*Ho*Wo). im2col is parallel over its
 * rows, col2im over input channels (each channel's rows touch only that
 * channel), so no two threads write the same float.
 */
#include "nn/conv.h"

#include <string.h>

#include "nn/gemm.h"
#include "nn/parallel.h"
#include "nn/winograd.h"

/* im2col scratch: enough floats for a few images of the largest layer */
#define COL_BUDGET_FLOATS ((size_t)8 << 20)

void conv_shape_init(ConvShape *s, int cin, int cout, int k, int stride, int pad, int h, int w)
{
    s->cin = cin;
    s->cout = cout;
    s->k = k;
    s->stride = stride;
    s->pad = pad;
    s->h = h;
    s->w = w;
    s->ho = (h + 2 * pad - k) / stride + 1;
    s->wo = (w + 2 * pad - k) / stride + 1;
}

int conv_is_pointwise(const ConvShape *s) { return s->k == 1 && s->stride == 1 && s->pad == 0; }

size_t conv_col_floats(const ConvShape *s, int images)
{
    if (conv_is_pointwise(s)) return 0;
    return (size_t)s->cin * s->k * s->k * s->ho * s->wo * (size_t)images;
}

double conv_macs(const ConvShape *s, int n)
{
    return (double)s->cout * s->cin * s->k * s->k * s->ho * s->wo * n;
}

static int images_per_chunk(const ConvShape *s, int n, size_t col_cap)
{
    size_t per = conv_col_floats(s, 1);
    int c = per ? (int)(col_cap / per) : n;
    if (c < 1) c = 1;
    return c < n ? c : n;
}

/* ---- im2col / col2im on channel-major input ---- */

typedef struct {
    const ConvShape *s;
    const float *x; /* (cin, n, h, w) */
    float *dx;
    float *col;     /* (cin*k*k, nc*ho*wo) */
    int n, n0, nc;
} ColJob;

/* One row of col: channel ci, kernel offset (kh, kw), images n0..n0+nc. */
static void im2col_row(const ColJob *j, int row)
{
    const ConvShape *s = j->s;
    int kk = s->k * s->k, ci = row / kk, kh = (row % kk) / s->k, kw = row % s->k;
    size_t plane = (size_t)s->h * s->w, oplane = (size_t)s->ho * s->wo;
    float *dst = j->col + (size_t)row * j->nc * oplane;
    /* output columns ow whose input column lies inside the image */
    int ow_lo = 0, ow_hi = s->wo;
    while (ow_lo < s->wo && ow_lo * s->stride - s->pad + kw < 0) ow_lo++;
    while (ow_hi > ow_lo && (ow_hi - 1) * s->stride - s->pad + kw >= s->w) ow_hi--;
    for (int im = 0; im < j->nc; im++) {
        const float *src = j->x + ((size_t)ci * j->n + j->n0 + im) * plane;
        for (int oh = 0; oh < s->ho; oh++, dst += s->wo) {
            int ih = oh * s->stride - s->pad + kh;
            if (ih < 0 || ih >= s->h || ow_lo >= ow_hi) {
                memset(dst, 0, sizeof(float) * s->wo);
                continue;
            }
            /* input index of output column ow: base + ow * stride (base may be < 0) */
            long base = (long)ih * s->w - s->pad + kw;
            for (int ow = 0; ow < ow_lo; ow++) dst[ow] = 0.0f;
            if (s->stride == 1) {
                memcpy(dst + ow_lo, src + (base + ow_lo), sizeof(float) * (ow_hi - ow_lo));
            } else {
                for (int ow = ow_lo; ow < ow_hi; ow++) dst[ow] = src[base + (long)ow * s->stride];
            }
            for (int ow = ow_hi; ow < s->wo; ow++) dst[ow] = 0.0f;
        }
    }
}

static void im2col_range(void *ctx, long b, long e)
{
    for (long r = b; r < e; r++) im2col_row(ctx, (int)r);
}

/* Strided convolutions (conv1's 7x7/2): the rows (ci, kh, every kw) at once.
 * Each input row is split once into its `stride` phases (phase p holds columns
 * p, p + stride, ...); every kernel column's segment of the output is then a
 * contiguous run of one phase, copied with memcpy instead of gathered. */
static void im2col_strided_group(const ColJob *j, int ci, int kh, float *phase)
{
    const ConvShape *s = j->s;
    int st = s->stride, wph = (s->w + st - 1) / st;
    size_t plane = (size_t)s->h * s->w, oplane = (size_t)s->ho * s->wo, rowlen = (size_t)j->nc * oplane;
    float *row0 = j->col + (size_t)(ci * s->k + kh) * s->k * rowlen;
    for (int im = 0; im < j->nc; im++) {
        const float *src = j->x + ((size_t)ci * j->n + j->n0 + im) * plane;
        for (int oh = 0; oh < s->ho; oh++) {
            size_t at = (size_t)im * oplane + (size_t)oh * s->wo;
            int ih = oh * st - s->pad + kh;
            if (ih < 0 || ih >= s->h) {
                for (int kw = 0; kw < s->k; kw++) memset(row0 + kw * rowlen + at, 0, sizeof(float) * s->wo);
                continue;
            }
            const float *srow = src + (size_t)ih * s->w;
            for (int p = 0; p < st; p++)
                for (int q = 0; q * st + p < s->w; q++) phase[p * wph + q] = srow[q * st + p];
            for (int kw = 0; kw < s->k; kw++) {
                /* input column of output column ow: st * ow + d = st * (ow + off) + p */
                int d = kw - s->pad, p = ((d % st) + st) % st, off = (d - p) / st;
                int count = (s->w - p + st - 1) / st; /* columns in phase p */
                int lo = off < 0 ? -off : 0, hi = count - off < s->wo ? count - off : s->wo;
                if (hi < lo) hi = lo;
                float *dst = row0 + kw * rowlen + at;
                memset(dst, 0, sizeof(float) * lo);
                memcpy(dst + lo, phase + p * wph + (lo + off), sizeof(float) * (hi - lo));
                memset(dst + hi, 0, sizeof(float) * (s->wo - hi));
            }
        }
    }
}

static void im2col_strided_range(void *ctx, long b, long e)
{
    const ColJob *j = ctx;
    int st = j->s->stride, wph = (j->s->w + st - 1) / st;
    float phase[st * wph];
    for (long g = b; g < e; g++) im2col_strided_group(j, (int)(g / j->s->k), (int)(g % j->s->k), phase);
}

static void im2col(ColJob *j, int kdim)
{
    if (j->s->stride > 1) parallel_for((long)j->s->cin * j->s->k, 1, im2col_strided_range, j);
    else parallel_for(kdim, 1, im2col_range, j);
}

/* Adds the rows of channel ci back into dx (images n0..n0+nc). */
static void col2im_channel(const ColJob *j, int ci)
{
    const ConvShape *s = j->s;
    size_t plane = (size_t)s->h * s->w, oplane = (size_t)s->ho * s->wo;
    for (int kh = 0; kh < s->k; kh++)
        for (int kw = 0; kw < s->k; kw++) {
            int row = (ci * s->k + kh) * s->k + kw;
            int ow_lo = 0, ow_hi = s->wo;
            while (ow_lo < s->wo && ow_lo * s->stride - s->pad + kw < 0) ow_lo++;
            while (ow_hi > ow_lo && (ow_hi - 1) * s->stride - s->pad + kw >= s->w) ow_hi--;
            const float *src = j->col + (size_t)row * j->nc * oplane;
            for (int im = 0; im < j->nc; im++) {
                float *dst = j->dx + ((size_t)ci * j->n + j->n0 + im) * plane;
                for (int oh = 0; oh < s->ho; oh++, src += s->wo) {
                    int ih = oh * s->stride - s->pad + kh;
                    if (ih < 0 || ih >= s->h) continue;
                    long base = (long)ih * s->w - s->pad + kw;
                    if (s->stride == 1) {
                        for (int ow = ow_lo; ow < ow_hi; ow++) dst[base + ow] += src[ow];
                    } else {
                        for (int ow = ow_lo; ow < ow_hi; ow++) dst[base + (long)ow * s->stride] += src[ow];
                    }
                }
            }
        }
}

static void col2im_range(void *ctx, long b, long e)
{
    for (long c = b; c < e; c++) col2im_channel(ctx, (int)c);
}

/* ---- bias, ReLU, bias gradient: one pass over each output row ---- */

typedef struct {
    float *y;
    const float *b;
    float *dy;
    const float *relu_y;
    float *db;
    size_t len; /* n*ho*wo */
    int relu;
} RowJob;

static void bias_relu_range(void *ctx, long b, long e)
{
    const RowJob *j = ctx;
    for (long c = b; c < e; c++) {
        float *row = j->y + (size_t)c * j->len, bias = j->b ? j->b[c] : 0.0f;
        if (j->relu) {
            for (size_t i = 0; i < j->len; i++) {
                float v = row[i] + bias;
                row[i] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (size_t i = 0; i < j->len; i++) row[i] += bias;
        }
    }
}

static void bias_grad_range(void *ctx, long b, long e)
{
    const RowJob *j = ctx;
    for (long c = b; c < e; c++) {
        float *row = j->dy + (size_t)c * j->len;
        if (j->relu_y) {
            const float *yr = j->relu_y + (size_t)c * j->len;
            for (size_t i = 0; i < j->len; i++)
                if (!(yr[i] > 0.0f)) row[i] = 0.0f;
        }
        /* 8 partial sums: vectorisable and a fixed order, so deterministic */
        float acc[8] = {0};
        size_t i = 0;
        for (; i + 8 <= j->len; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += row[i + k];
        float s = 0.0f;
        for (; i < j->len; i++) s += row[i];
        j->db[c] += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + s;
    }
}

/* ---- forward / backward ---- */

static void gemm_forward(float *y, const float *x, const float *wt, const float *b,
                         const ConvShape *s, int n, int relu, float *col, size_t col_cap)
{
    int kdim = s->cin * s->k * s->k;
    size_t oplane = (size_t)s->ho * s->wo, ld = (size_t)n * oplane;
    if (conv_is_pointwise(s)) {
        gemm(0, 0, s->cout, (int)ld, kdim, 1.0f,
                    wt, kdim, x, (int)ld, 0.0f, y, (int)ld);
    } else {
        int chunk = images_per_chunk(s, n, col_cap);
        for (int n0 = 0; n0 < n; n0 += chunk) {
            int nc = n - n0 < chunk ? n - n0 : chunk;
            ColJob j = {.s = s, .x = x, .col = col, .n = n, .n0 = n0, .nc = nc};
            im2col(&j, kdim);
            gemm(0, 0, s->cout, (int)(nc * oplane),
                        kdim, 1.0f, wt, kdim, col, (int)(nc * oplane), 0.0f, y + n0 * oplane,
                        (int)ld);
        }
    }
    RowJob rj = {.y = y, .b = b, .len = ld, .relu = relu};
    if (b || relu) parallel_for(s->cout, 1, bias_relu_range, &rj);
}

/* dw (when given) += dY . im2col(x)^T; dx (when given) = or += col2im(W^T dY). */
static void gemm_backward(float *dx, float *dw, const float *dy, const float *x, const float *wt,
                          const ConvShape *s, int n, int accum_dx, float *col, size_t col_cap)
{
    int kdim = s->cin * s->k * s->k;
    size_t oplane = (size_t)s->ho * s->wo, ld = (size_t)n * oplane;
    if (conv_is_pointwise(s)) {
        if (dw)
        gemm(0, 1, s->cout, kdim, (int)ld, 1.0f,
                    dy, (int)ld, x, (int)ld, 1.0f, dw, kdim);
        if (dx)
            gemm(1, 0, kdim, (int)ld, s->cout, 1.0f,
                        wt, kdim, dy, (int)ld, accum_dx ? 1.0f : 0.0f, dx, (int)ld);
        return;
    }
    int chunk = images_per_chunk(s, n, col_cap);
    size_t plane = (size_t)s->h * s->w;
    for (int n0 = 0; n0 < n; n0 += chunk) {
        int nc = n - n0 < chunk ? n - n0 : chunk;
        ColJob j = {.s = s, .x = x, .dx = dx, .col = col, .n = n, .n0 = n0, .nc = nc};
        if (dw) {
            im2col(&j, kdim);
            gemm(0, 1, s->cout, kdim, (int)(nc * oplane),
                        1.0f, dy + n0 * oplane, (int)ld, col, (int)(nc * oplane), 1.0f, dw, kdim);
        }
        if (!dx) continue;
        gemm(1, 0, kdim, (int)(nc * oplane), s->cout,
                    1.0f, wt, kdim, dy + n0 * oplane, (int)ld, 0.0f, col, (int)(nc * oplane));
        if (!accum_dx)
            for (int c = 0; c < s->cin; c++)
                memset(dx + ((size_t)c * n + n0) * plane, 0, sizeof(float) * nc * plane);
        parallel_for(s->cin, 1, col2im_range, &j);
    }
}

/* ---- plans ---- */

static const char *const ALGO_NAMES[CONV_ALGOS] = {"gemm", "f2x3", "f4x3", "f2x5"};

const char *conv_algo_name(ConvAlgo a) { return a < CONV_ALGOS ? ALGO_NAMES[a] : "?"; }

int conv_algo_parse(const char *name)
{
    for (int a = 0; a < CONV_ALGOS; a++)
        if (strcmp(name, ALGO_NAMES[a]) == 0) return a;
    return -1;
}

static WinoAlg wino_of(ConvAlgo a) { return (WinoAlg)(a - CONV_F2X3); }

int conv_algo_applies(ConvAlgo a, const ConvShape *s)
{
    if (a == CONV_GEMM) return 1;
    return a < CONV_ALGOS && wino_applies(wino_of(a), s);
}

int conv_default_block(ConvAlgo a, const ConvShape *s, int n, ConvPass pass)
{
    return a == CONV_GEMM ? 0 : wino_default_block(wino_of(a), s, n, (int)pass);
}

ConvPlan conv_plan_uniform(ConvAlgo a, const ConvShape *s, int n)
{
    ConvPlan p = {{CONV_GEMM, CONV_GEMM, CONV_GEMM}, {0, 0, 0}};
    if (!conv_algo_applies(a, s)) return p;
    for (int i = 0; i < CONV_PASSES; i++) {
        p.algo[i] = (uint8_t)a;
        p.block[i] = (uint16_t)conv_default_block(a, s, n, (ConvPass)i);
    }
    return p;
}

int conv_plan_valid(const ConvPlan *p, const ConvShape *s)
{
    for (int i = 0; i < CONV_PASSES; i++) {
        if (p->algo[i] >= CONV_ALGOS || !conv_algo_applies(p->algo[i], s)) return -1;
        if (p->algo[i] != CONV_GEMM && (p->block[i] < 16 || p->block[i] % 16 != 0)) return -1;
    }
    return 0;
}

static size_t gemm_work_floats(const ConvShape *s, int n)
{
    size_t all = conv_col_floats(s, n), one = conv_col_floats(s, 1);
    if (all <= COL_BUDGET_FLOATS) return all;
    return one > COL_BUDGET_FLOATS ? one : COL_BUDGET_FLOATS;
}

size_t conv_work_floats(const ConvShape *s, const ConvPlan *p, int n, int threads, int backward)
{
    size_t need = 0;
    for (int i = 0; i < (backward ? CONV_PASSES : 1); i++) {
        ConvAlgo a = p ? (ConvAlgo)p->algo[i] : CONV_GEMM;
        size_t f = a == CONV_GEMM ? gemm_work_floats(s, n)
                                  : wino_scratch_floats(wino_of(a), s, n, p->block[i], threads, i);
        if (f > need) need = f;
    }
    return need;
}

/* ---- forward / backward by plan ---- */

void conv_forward(float *y, const float *x, const float *wt, const float *b, const ConvShape *s,
                  int n, int relu, const ConvPlan *p, float *work, size_t work_floats)
{
    if (p && p->algo[CONV_FWD] != CONV_GEMM)
        wino_forward(y, x, wt, b, s, n, relu, wino_of(p->algo[CONV_FWD]), p->block[CONV_FWD], work,
                     work_floats);
    else
        gemm_forward(y, x, wt, b, s, n, relu, work, work_floats);
}

void conv_backward_data(float *dx, const float *dy, const float *wt, const ConvShape *s, int n,
                        int accum_dx, const ConvPlan *p, float *work, size_t work_floats)
{
    ConvAlgo a = p ? (ConvAlgo)p->algo[CONV_BWD_DATA] : CONV_GEMM;
    if (a == CONV_GEMM) gemm_backward(dx, NULL, dy, NULL, wt, s, n, accum_dx, work, work_floats);
    else wino_backward_data(dx, dy, wt, s, n, accum_dx, wino_of(a), p->block[CONV_BWD_DATA], work, work_floats);
}

void conv_backward_weights(float *dw, const float *dy, const float *x, const ConvShape *s, int n,
                           const ConvPlan *p, float *work, size_t work_floats)
{
    ConvAlgo a = p ? (ConvAlgo)p->algo[CONV_BWD_WEIGHTS] : CONV_GEMM;
    if (a == CONV_GEMM) gemm_backward(NULL, dw, dy, x, NULL, s, n, 0, work, work_floats);
    else wino_backward_weights(dw, dy, x, s, n, wino_of(a), p->block[CONV_BWD_WEIGHTS], work, work_floats);
}

void conv_backward(float *dx, float *dw, float *db, float *dy, const float *relu_y,
                   const float *x, const float *wt, const ConvShape *s, int n, int accum_dx,
                   const ConvPlan *p, float *work, size_t work_floats)
{
    RowJob rj = {.dy = dy, .relu_y = relu_y, .db = db, .len = (size_t)n * s->ho * s->wo};
    parallel_for(s->cout, 1, bias_grad_range, &rj);
    conv_backward_weights(dw, dy, x, s, n, p, work, work_floats);
    if (dx) conv_backward_data(dx, dy, wt, s, n, accum_dx, p, work, work_floats);
}

/* ---- reference ---- */

#define X4(p, c, i, hh, ww, N, H, W) (p)[((((size_t)(c) * (N) + (i)) * (H) + (hh)) * (W)) + (ww)]

void conv_forward_naive(float *y, const float *x, const float *wt, const float *b,
                        const ConvShape *s, int n, int relu)
{
    for (int co = 0; co < s->cout; co++)
        for (int i = 0; i < n; i++)
            for (int oh = 0; oh < s->ho; oh++)
                for (int ow = 0; ow < s->wo; ow++) {
                    double acc = b[co];
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int kh = 0; kh < s->k; kh++)
                            for (int kw = 0; kw < s->k; kw++) {
                                int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                                acc += (double)wt[((co * s->cin + ci) * s->k + kh) * s->k + kw] *
                                       X4(x, ci, i, ih, iw, n, s->h, s->w);
                            }
                    float v = (float)acc;
                    X4(y, co, i, oh, ow, n, s->ho, s->wo) = relu && v < 0 ? 0.0f : v;
                }
}

void conv_backward_naive(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *wt, const ConvShape *s, int n, int accum_dx)
{
    if (dx && !accum_dx) memset(dx, 0, sizeof(float) * s->cin * n * s->h * s->w);
    for (int co = 0; co < s->cout; co++)
        for (int i = 0; i < n; i++)
            for (int oh = 0; oh < s->ho; oh++)
                for (int ow = 0; ow < s->wo; ow++) {
                    float g = X4(dy, co, i, oh, ow, n, s->ho, s->wo);
                    db[co] += g;
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int kh = 0; kh < s->k; kh++)
                            for (int kw = 0; kw < s->k; kw++) {
                                int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                                size_t wi = ((size_t)(co * s->cin + ci) * s->k + kh) * s->k + kw;
                                dw[wi] += g * X4(x, ci, i, ih, iw, n, s->h, s->w);
                                if (dx) X4(dx, ci, i, ih, iw, n, s->h, s->w) += g * wt[wi];
                            }
                }
}
