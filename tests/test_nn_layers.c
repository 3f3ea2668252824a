/* test_nn_layers.c: finite-difference gradient checks for every layer kind,
 * the fast convolution against its naive reference, and the exact layouts of
 * pooling, flatten, dropout and the loss. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn/activation.h"
#include "nn/conv.h"
#include "nn/fc.h"
#include "nn/loss.h"
#include "nn/lrn.h"
#include "nn/parallel.h"
#include "nn/pool.h"
#include "nn/rng.h"

static void fill(float *a, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t k = rng_key(seed, 1, 2, 3);
    for (size_t i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng_uniform(k, i);
}

/* A layer under test: y = f(x, p); backward adds dL/dp to dp and writes dL/dx. */
typedef struct {
    void (*fwd)(void *ctx, const float *x, const float *p, float *y);
    void (*bwd)(void *ctx, const float *x, const float *p, const float *y, float *dy, float *dx, float *dp);
    void *ctx;
    size_t nx, np, ny;
} Layer;

/* L = sum r .* f(x, p), in double */
static double objective(const Layer *l, const float *x, const float *p, const float *r, float *y)
{
    l->fwd(l->ctx, x, p, y);
    double s = 0;
    for (size_t i = 0; i < l->ny; i++) s += (double)r[i] * y[i];
    return s;
}

/* Central differences on up to `samples` coordinates of x and of p. Returns the
 * worst |analytic - numeric| / max(|analytic| + |numeric|, floor). */
static double gradcheck(const Layer *l, float *x, float *p, float eps, double floor, int samples)
{
    float *y = calloc(l->ny, sizeof(float)), *r = malloc(l->ny * sizeof(float));
    float *dy = malloc(l->ny * sizeof(float));
    float *dx = calloc(l->nx, sizeof(float)), *dp = calloc(l->np ? l->np : 1, sizeof(float));
    fill(r, l->ny, 99, -1, 1);
    l->fwd(l->ctx, x, p, y);
    memcpy(dy, r, l->ny * sizeof(float));
    l->bwd(l->ctx, x, p, y, dy, dx, dp);
    double worst = 0;
    for (int which = 0; which < 2; which++) {
        float *v = which ? p : x, *g = which ? dp : dx;
        size_t n = which ? l->np : l->nx;
        if (!n || (which == 0 && !dx)) continue;
        for (int s = 0; s < samples && (size_t)s < n; s++) {
            size_t i = n <= (size_t)samples ? (size_t)s : (size_t)(rng_bits(77 + which, s) % n);
            float keep = v[i];
            v[i] = keep + eps;
            double lp = objective(l, x, p, r, y);
            v[i] = keep - eps;
            double lm = objective(l, x, p, r, y);
            v[i] = keep;
            double num = (lp - lm) / (2.0 * eps), ana = g[i];
            double den = fabs(ana) + fabs(num);
            double e = fabs(ana - num) / (den > floor ? den : floor);
            if (e > worst) worst = e;
        }
    }
    free(y);
    free(r);
    free(dy);
    free(dx);
    free(dp);
    return worst;
}

/* ---- convolution ---- */

typedef struct {
    ConvShape s;
    int n, relu;
    ConvPlan plan;
    float *col;
    size_t cap;
} ConvCtx;

static void conv_f(void *c, const float *x, const float *p, float *y)
{
    ConvCtx *k = c;
    size_t nw = (size_t)k->s.cout * k->s.cin * k->s.k * k->s.k;
    conv_forward(y, x, p, p + nw, &k->s, k->n, k->relu, &k->plan, k->col, k->cap);
}

static void conv_b(void *c, const float *x, const float *p, const float *y, float *dy, float *dx, float *dp)
{
    ConvCtx *k = c;
    size_t nw = (size_t)k->s.cout * k->s.cin * k->s.k * k->s.k;
    conv_backward(dx, dp, dp + nw, dy, k->relu ? y : NULL, x, p, &k->s, k->n, 0, &k->plan, k->col, k->cap);
}

/* The gradient check of one shape by GEMM and by every Winograd algorithm that applies to it. */
static void check_conv(int cin, int cout, int k, int stride, int pad, int h, int w, int n, int relu)
{
    for (int a = 0; a < CONV_ALGOS; a++) {
        ConvCtx c = {.n = n, .relu = relu};
        conv_shape_init(&c.s, cin, cout, k, stride, pad, h, w);
        if (!conv_algo_applies((ConvAlgo)a, &c.s)) continue;
        c.plan = conv_plan_uniform((ConvAlgo)a, &c.s, n);
        c.cap = conv_work_floats(&c.s, &c.plan, n, parallel_threads(), 1);
        c.col = malloc((c.cap ? c.cap : 1) * sizeof(float));
        Layer l = {conv_f, conv_b, &c, (size_t)cin * n * h * w,
                   (size_t)cout * cin * k * k + cout, (size_t)cout * n * c.s.ho * c.s.wo};
        float *x = malloc(l.nx * sizeof(float)), *p = malloc(l.np * sizeof(float));
        fill(x, l.nx, 1, -1, 1);
        fill(p, l.np, 2, -0.5f, 0.5f);
        /* a smaller step with ReLU, so few outputs cross the kink */
        double e = gradcheck(&l, x, p, relu ? 2e-3f : 1e-2f, 1e-2, 60);
        if (e > 2e-2)
            fail_msg("conv %dx%d/%d pad %d relu %d by %s: gradient error %g", k, k, stride, pad, relu,
                     conv_algo_name((ConvAlgo)a), e);
        free(x);
        free(p);
        free(c.col);
    }
}

static void test_conv_gradients(void **state)
{
    (void)state;
    check_conv(3, 4, 3, 1, 1, 6, 5, 2, 0);
    check_conv(3, 4, 3, 1, 1, 6, 5, 2, 1); /* with ReLU */
    check_conv(2, 3, 7, 2, 3, 9, 9, 2, 0); /* conv1's shape */
    check_conv(2, 3, 5, 1, 2, 5, 5, 3, 0); /* the 5x5 branch */
    check_conv(4, 3, 1, 1, 0, 4, 4, 2, 0); /* pointwise: no im2col */
    check_conv(2, 2, 3, 2, 0, 7, 6, 2, 0); /* stride 2 without padding */
}

static void compare(const float *a, const float *b, size_t n, double tol, const char *what)
{
    double worst = 0, scale = 1e-6;
    for (size_t i = 0; i < n; i++)
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / scale;
        if (e > worst) worst = e;
    }
    if (worst > tol) fail_msg("%s: max error %g relative to max |ref| %g", what, worst, scale);
}

static void fast_vs_naive_by(int cin, int cout, int k, int stride, int pad, int h, int w, int n,
                             int chunk, ConvAlgo algo)
{
    ConvShape s;
    conv_shape_init(&s, cin, cout, k, stride, pad, h, w);
    ConvPlan plan = conv_plan_uniform(algo, &s, n);
    size_t nx = (size_t)cin * n * h * w, nw = (size_t)cout * cin * k * k,
           ny = (size_t)cout * n * s.ho * s.wo,
           cap = conv_work_floats(&s, &plan, n, parallel_threads(), 1);
    float *x = malloc(nx * 4), *wt = malloc(nw * 4), *b = malloc(cout * 4), *y1 = malloc(ny * 4),
          *y2 = malloc(ny * 4), *col = malloc((cap ? cap : 1) * 4), *dy1 = malloc(ny * 4),
          *dy2 = malloc(ny * 4), *dx1 = malloc(nx * 4), *dx2 = malloc(nx * 4),
          *dw1 = calloc(nw, 4), *dw2 = calloc(nw, 4), *db1 = calloc(cout, 4), *db2 = calloc(cout, 4);
    fill(x, nx, 3, -1, 1);
    fill(wt, nw, 4, -1, 1);
    fill(b, cout, 5, -1, 1);
    fill(dy1, ny, 6, -1, 1);
    memcpy(dy2, dy1, ny * 4);
    conv_forward(y1, x, wt, b, &s, n, 1, &plan, col, cap);
    conv_forward_naive(y2, x, wt, b, &s, n, 1);
    compare(y1, y2, ny, 1e-5, "conv forward vs naive");
    /* accumulate into a non-zero dx to exercise accum_dx */
    fill(dx1, nx, 7, -1, 1);
    memcpy(dx2, dx1, nx * 4);
    conv_backward(dx1, dw1, db1, dy1, y1, x, wt, &s, n, 1, &plan, col, cap);
    relu_backward(dy2, y2, ny);
    conv_backward_naive(dx2, dw2, db2, dy2, x, wt, &s, n, 1);
    compare(dx1, dx2, nx, 1e-5, "conv dx vs naive");
    compare(dw1, dw2, nw, 1e-5, "conv dw vs naive");
    compare(db1, db2, cout, 1e-5, "conv db vs naive");
    if (algo == CONV_GEMM && !conv_is_pointwise(&s)) {
        /* the input gradient a few images at a time: scratch for `chunk` images only */
        size_t small = conv_col_floats(&s, chunk);
        fill(dx1, nx, 7, -1, 1);
        conv_backward_data(dx1, dy2, wt, &s, n, 1, &plan, col, small);
        compare(dx1, dx2, nx, 1e-5, "conv dx in chunks vs naive");
        /* blocks of 3 output positions: they cut rows anywhere, shorter than the padding too */
        size_t kdim = (size_t)cin * k * k, tiny = (kdim + cout) * 3;
        conv_forward(y1, x, wt, b, &s, n, 1, &plan, col, tiny);
        compare(y1, y2, ny, 1e-5, "conv forward in blocks of 3 vs naive");
        memset(dw1, 0, nw * 4);
        conv_backward_weights(dw1, dy2, x, &s, n, &plan, col, nw + kdim * 3);
        compare(dw1, dw2, nw, 1e-5, "conv dw in blocks of 3 vs naive");
    }
    free(x); free(wt); free(b); free(y1); free(y2); free(col); free(dy1); free(dy2);
    free(dx1); free(dx2); free(dw1); free(dw2); free(db1); free(db2);
}

/* GEMM, and every Winograd algorithm that applies (the block a plan picks). */
static void fast_vs_naive(int cin, int cout, int k, int stride, int pad, int h, int w, int n, int chunk)
{
    ConvShape s;
    conv_shape_init(&s, cin, cout, k, stride, pad, h, w);
    for (int a = 0; a < CONV_ALGOS; a++)
        if (conv_algo_applies((ConvAlgo)a, &s)) fast_vs_naive_by(cin, cout, k, stride, pad, h, w, n, chunk, (ConvAlgo)a);
}

static void test_conv_fast_vs_naive(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 3; threads += 2) {
        parallel_set_threads(threads);
        fast_vs_naive(3, 8, 7, 2, 3, 17, 15, 3, 2);
        /* the direct forward of few input channels: output channels that fill
         * no whole register tile, rows of 1 to 10 vectors cut into tiles of
         * 3 and 2, stride 1 and 2 */
        fast_vs_naive(3, 13, 7, 2, 3, 150, 9, 2, 1);
        fast_vs_naive(2, 9, 5, 1, 2, 6, 37, 2, 1);
        fast_vs_naive(4, 3, 3, 2, 0, 5, 70, 1, 1);
        /* its weight gradient (cout a multiple of 4): groups of 16 output
         * rows and a shorter last one, rows of 1 and 2 lanes of 16 */
        fast_vs_naive(3, 12, 7, 2, 3, 70, 45, 2, 1);
        fast_vs_naive(2, 8, 5, 1, 2, 20, 33, 2, 1);
        fast_vs_naive(1, 4, 3, 2, 1, 9, 9, 3, 1);
        fast_vs_naive(3, 68, 7, 2, 3, 20, 21, 2, 1);
        fast_vs_naive(16, 12, 3, 1, 1, 9, 9, 4, 3);
        fast_vs_naive(16, 12, 3, 1, 1, 14, 13, 2, 3); /* tiles that cross image edges, F(4x4) and F(2x2) */
        fast_vs_naive(6, 5, 5, 1, 2, 7, 8, 2, 1);
        fast_vs_naive(5, 7, 3, 1, 0, 11, 10, 2, 1);   /* no padding: the output is smaller */
        fast_vs_naive(32, 16, 1, 1, 0, 5, 5, 3, 1);
    }
    parallel_set_threads(1);
}

/* Several 1x1 convolutions of one input as one GEMM: what each gives alone. */
static void test_conv_pointwise_many(void **state)
{
    (void)state;
    const int cin = 24, n = 3, h = 9, w = 7, couts[3] = {16, 8, 5};
    size_t nx = (size_t)cin * n * h * w, plane = (size_t)n * h * w;
    float *x = malloc(nx * 4), *wt[3], *b[3], *y[3], *ref[3];
    fill(x, nx, 40, -1, 1);
    ConvOut outs[3];
    ConvShape all;
    conv_shape_init(&all, cin, 16 + 8 + 5, 1, 1, 0, h, w);
    for (int o = 0; o < 3; o++) {
        wt[o] = malloc((size_t)couts[o] * cin * 4);
        b[o] = malloc((size_t)couts[o] * 4);
        y[o] = malloc(couts[o] * plane * 4);
        ref[o] = malloc(couts[o] * plane * 4);
        fill(wt[o], (size_t)couts[o] * cin, 41 + o, -1, 1);
        fill(b[o], (size_t)couts[o], 44 + o, -1, 1);
        outs[o] = (ConvOut){y[o], wt[o], b[o], couts[o]};
        ConvShape one;
        conv_shape_init(&one, cin, couts[o], 1, 1, 0, h, w);
        conv_forward_naive(ref[o], x, wt[o], b[o], &one, n, 1);
    }
    for (int threads = 1; threads <= 3; threads += 2) {
        parallel_set_threads(threads);
        size_t cap = conv_pointwise_many_floats(&all, n, threads);
        float *work = malloc(cap * 4);
        conv_forward_pointwise_many(outs, 3, x, &all, n, 1, work, cap);
        for (int o = 0; o < 3; o++) compare(y[o], ref[o], couts[o] * plane, 1e-5, "1x1 group vs naive");
        free(work);
    }
    parallel_set_threads(1);
    for (int o = 0; o < 3; o++) {
        free(wt[o]);
        free(b[o]);
        free(y[o]);
        free(ref[o]);
    }
    free(x);
}

/* ---- pooling ---- */

typedef struct {
    PoolShape s;
    long planes;
} PoolCtx;

static void pool_f(void *c, const float *x, const float *p, float *y)
{
    PoolCtx *k = c;
    pool_forward(y, x, &k->s, k->planes);
}

static void pool_b(void *c, const float *x, const float *p, const float *y, float *dy, float *dx, float *dp)
{
    PoolCtx *k = c;
    pool_backward(dx, dy, x, y, &k->s, k->planes, 0);
}

static void check_pool(PoolShape s, long planes)
{
    PoolCtx c = {s, planes};
    Layer l = {pool_f, pool_b, &c, (size_t)planes * s.h * s.w, 0, (size_t)planes * s.ho * s.wo};
    float *x = malloc(l.nx * sizeof(float));
    fill(x, l.nx, 11, -1, 1); /* distinct values: no ties for max */
    double e = gradcheck(&l, x, NULL, 1e-3f, 1e-2, 80);
    if (e > 2e-2) fail_msg("pool kind %d k %d s %d pad %d adaptive %d: gradient error %g", s.kind, s.k, s.stride, s.pad, s.adaptive, e);
    free(x);
}

static void test_pool_shapes_and_gradients(void **state)
{
    (void)state;
    PoolShape s;
    int sizes[5] = {112, 56, 28, 14, 7};
    for (int i = 0; i < 4; i++) {
        pool_shape_init(&s, POOL_MAX, 3, 2, 0, sizes[i], sizes[i]);
        assert_int_equal(s.ho, sizes[i + 1]); /* ceil: 112->56->28->14->7 */
    }
    pool_shape_init(&s, POOL_MAX, 3, 1, 1, 14, 14);
    assert_int_equal(s.ho, 14);
    pool_shape_init(&s, POOL_AVG, 5, 3, 0, 14, 14);
    assert_int_equal(s.ho, 4);
    /* a last window that would start in the padding is dropped */
    pool_shape_init(&s, POOL_MAX, 2, 2, 1, 4, 4);
    assert_int_equal(s.ho, 3);

    pool_shape_init(&s, POOL_MAX, 3, 2, 0, 9, 8);
    check_pool(s, 3);
    pool_shape_init(&s, POOL_MAX, 3, 1, 1, 5, 6);
    check_pool(s, 2);
    pool_shape_init(&s, POOL_AVG, 5, 3, 0, 14, 14);
    check_pool(s, 2);
    pool_shape_init(&s, POOL_AVG, 3, 2, 0, 8, 8); /* ceil windows hang over the edge */
    check_pool(s, 2);
    pool_shape_adaptive(&s, 6, 7, 4, 4);
    check_pool(s, 2);
}

static void test_pool_values(void **state)
{
    (void)state;
    /* 1 plane 4x4, values 0..15; 3x3/2 ceil -> 2x2 */
    float x[16], y[4], dx[16], dy[4] = {1, 2, 3, 4};
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    PoolShape s;
    pool_shape_init(&s, POOL_MAX, 3, 2, 0, 4, 4);
    pool_forward(y, x, &s, 1);
    float want[4] = {10, 11, 14, 15};
    for (int i = 0; i < 4; i++) assert_true(y[i] == want[i]);
    pool_backward(dx, dy, x, y, &s, 1, 0);
    for (int i = 0; i < 16; i++) {
        float g = i == 10 ? 1 : i == 11 ? 2 : i == 14 ? 3 : i == 15 ? 4 : 0;
        assert_true(dx[i] == g);
    }
    /* Caffe average: the last window (rows 2..3) holds 2x2 = 4 values of the padded-free input */
    pool_shape_init(&s, POOL_AVG, 3, 2, 0, 4, 4);
    pool_forward(y, x, &s, 1);
    assert_true(fabsf(y[0] - (0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10) / 9.0f) < 1e-6f);
    assert_true(fabsf(y[3] - (10 + 11 + 14 + 15) / 4.0f) < 1e-6f);
    /* ties: the first maximum in scan order takes the gradient */
    float z[16] = {0}, zy[4];
    pool_shape_init(&s, POOL_MAX, 3, 2, 0, 4, 4);
    pool_forward(zy, z, &s, 1);
    pool_backward(dx, dy, z, zy, &s, 1, 0);
    assert_true(dx[0] == 1 && dx[2] == 2 + 0 && dx[8] == 3 && dx[10] == 4);
}

/* The argmax record of training gives what finding the maximum again gives,
 * bit for bit, ties (ReLU zeros) included, accumulating or not. */
static void argmax_vs_search(PoolShape s, long planes, int accum)
{
    size_t nx = (size_t)planes * s.h * s.w, ny = (size_t)planes * s.ho * s.wo;
    float *x = malloc(nx * 4), *y1 = malloc(ny * 4), *y2 = malloc(ny * 4), *dy = malloc(ny * 4),
          *dx1 = malloc(nx * 4), *dx2 = malloc(nx * 4);
    unsigned char *arg = malloc(ny);
    fill(x, nx, 31, -1, 1);
    for (size_t i = 0; i < nx; i++) x[i] = x[i] < 0 ? 0 : (float)(int)(x[i] * 4); /* many ties */
    fill(dy, ny, 32, -1, 1);
    fill(dx1, nx, 33, -1, 1);
    memcpy(dx2, dx1, nx * 4);
    pool_forward(y1, x, &s, planes);
    pool_forward_argmax(y2, arg, x, &s, planes);
    assert_memory_equal(y1, y2, ny * 4);
    pool_backward(dx1, dy, x, y1, &s, planes, accum);
    pool_backward_argmax(dx2, dy, arg, &s, planes, accum);
    assert_memory_equal(dx1, dx2, nx * 4);
    free(x); free(y1); free(y2); free(dy); free(dx1); free(dx2); free(arg);
}

static void test_pool_argmax(void **state)
{
    (void)state;
    PoolShape s;
    for (int threads = 1; threads <= 3; threads += 2) {
        parallel_set_threads(threads);
        int sizes[] = {112, 56, 28, 14, 9, 8};
        for (int i = 0; i < 6; i++) {
            pool_shape_init(&s, POOL_MAX, 3, 2, 0, sizes[i], sizes[i]); /* GoogLeNet's, rounded up */
            argmax_vs_search(s, 3, i & 1);
            pool_shape_init(&s, POOL_MAX, 3, 1, 1, sizes[i], sizes[i]); /* the inception branch */
            argmax_vs_search(s, 3, !(i & 1));
        }
        pool_shape_init(&s, POOL_MAX, 2, 2, 1, 7, 6);
        argmax_vs_search(s, 2, 0);
        pool_shape_init(&s, POOL_MAX, 3, 2, 1, 37, 41); /* 3x3/2 with padding: edge rows and columns */
        argmax_vs_search(s, 2, 1);
        pool_shape_init(&s, POOL_MAX, 5, 3, 2, 11, 10);
        argmax_vs_search(s, 2, 1);
        pool_shape_init(&s, POOL_MAX, 3, 3, 0, 61, 59); /* stride 3: the scalar column pass */
        argmax_vs_search(s, 2, 0);
    }
    parallel_set_threads(1);
}

/* ---- LRN ---- */

typedef struct {
    LrnShape s;
} LrnCtx;

static void lrn_f(void *c, const float *x, const float *p, float *y) { lrn_forward(y, x, &((LrnCtx *)c)->s); }
static void lrn_b(void *c, const float *x, const float *p, const float *y, float *dy, float *dx, float *dp)
{
    lrn_backward(dx, dy, x, &((LrnCtx *)c)->s, 0);
}

static void test_lrn(void **state)
{
    (void)state;
    /* a large alpha makes the normalisation matter in the check */
    LrnCtx c = {{.size = 5, .alpha = 0.5f, .beta = 0.75f, .k = 1.0f, .c = 9, .plane = 300}};
    Layer l = {lrn_f, lrn_b, &c, 9 * 300, 0, 9 * 300};
    float *x = malloc(l.nx * sizeof(float)), *y = malloc(l.ny * sizeof(float));
    fill(x, l.nx, 21, -2, 2);
    double e = gradcheck(&l, x, NULL, 1e-3f, 1e-2, 120);
    if (e > 2e-2) fail_msg("lrn: gradient error %g", e);
    /* Caffe's formula in double at every point (the window clipped at the
     * first and last channels; 300 positions: whole vectors and a tail) */
    lrn_forward(y, x, &c.s);
    for (int ch = 0; ch < 9; ch++)
        for (size_t p = 0; p < 300; p++) {
            double sum = 0;
            for (int cc = ch - 2; cc <= ch + 2; cc++)
                if (cc >= 0 && cc < 9) sum += (double)x[cc * 300 + p] * x[cc * 300 + p];
            double want = x[ch * 300 + p] / pow(1.0 + 0.5 / 5 * sum, 0.75);
            if (fabs(y[ch * 300 + p] - want) > 1e-6 * (1 + fabs(want)))
                fail_msg("lrn channel %d position %zu: %g, want %g", ch, p, y[ch * 300 + p], want);
        }
    /* a beta other than 0.75 takes the general path */
    c.s.beta = 0.6f;
    e = gradcheck(&l, x, NULL, 1e-3f, 1e-2, 60);
    if (e > 2e-2) fail_msg("lrn beta 0.6: gradient error %g", e);
    free(x);
    free(y);
}

/* ---- fully connected, flatten, dropout ---- */

typedef struct {
    int in, out, n, relu;
} FcCtx;

static void fc_f(void *c, const float *x, const float *p, float *y)
{
    FcCtx *k = c;
    fc_forward(y, x, p, p + (size_t)k->in * k->out, k->in, k->out, k->n, k->relu);
}

static void fc_b(void *c, const float *x, const float *p, const float *y, float *dy, float *dx, float *dp)
{
    FcCtx *k = c;
    if (k->relu) relu_backward(dy, y, (size_t)k->out * k->n);
    fc_backward(dx, dp, dp + (size_t)k->in * k->out, dy, x, p, k->in, k->out, k->n, 0);
}

static void test_fc(void **state)
{
    (void)state;
    for (int relu = 0; relu < 2; relu++) {
        FcCtx c = {7, 5, 3, relu};
        Layer l = {fc_f, fc_b, &c, 7 * 3, 7 * 5 + 5, 5 * 3};
        float x[21], p[40];
        fill(x, 21, 31, -1, 1);
        fill(p, 40, 32, -1, 1);
        double e = gradcheck(&l, x, p, 1e-2f, 1e-2, 60);
        if (e > 2e-2) fail_msg("fc relu %d: gradient error %g", relu, e);
    }
}

static void test_flatten(void **state)
{
    (void)state;
    /* (c=2, n=3, hw=4) -> (8, 3): feature c*4+p of sample i */
    float x[24], y[24], back[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    fc_flatten_forward(y, x, 2, 3, 4);
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 3; i++)
            for (int p = 0; p < 4; p++) assert_true(y[(c * 4 + p) * 3 + i] == x[(c * 3 + i) * 4 + p]);
    fc_flatten_backward(back, y, 2, 3, 4, 0);
    assert_memory_equal(back, x, sizeof x);
}

typedef struct {
    float p;
    uint64_t key;
    size_t n;
} DropCtx;

static void drop_f(void *c, const float *x, const float *p, float *y)
{
    DropCtx *k = c;
    dropout_forward(y, x, k->n, k->p, k->key);
}

static void drop_b(void *c, const float *x, const float *p, const float *y, float *dy, float *dx, float *dp)
{
    DropCtx *k = c;
    dropout_backward(dx, dy, k->n, k->p, k->key, 0);
}

static void test_dropout(void **state)
{
    (void)state;
    enum { N = 20000 };
    float *x = malloc(N * 4), *y = malloc(N * 4);
    for (int i = 0; i < N; i++) x[i] = 1.0f;
    dropout_forward(y, x, N, 0.4f, 123);
    int kept = 0;
    for (int i = 0; i < N; i++) {
        if (y[i] != 0.0f) {
            kept++;
            assert_true(fabsf(y[i] - 1.0f / 0.6f) < 1e-6f); /* inverted: kept values scaled */
        }
    }
    assert_true(kept > N * 0.58 && kept < N * 0.62);
    DropCtx c = {0.4f, 123, 50};
    Layer l = {drop_f, drop_b, &c, 50, 0, 50};
    fill(x, 50, 41, -1, 1);
    double e = gradcheck(&l, x, NULL, 1e-2f, 1e-3, 50);
    assert_true(e < 1e-3);
    free(x);
    free(y);
}

/* ---- softmax cross-entropy ---- */

typedef struct {
    int classes, n;
    int labels[4];
} LossCtx;

static void loss_f(void *c, const float *x, const float *p, float *y)
{
    LossCtx *k = c;
    LossStats st;
    loss_softmax_xent(x, k->labels, k->classes, k->n, NULL, 0, &st);
    y[0] = (float)st.loss_sum;
}

static void loss_b(void *c, const float *x, const float *p, const float *y, float *dy, float *dx, float *dp)
{
    LossCtx *k = c;
    LossStats st;
    loss_softmax_xent(x, k->labels, k->classes, k->n, dx, dy[0], &st);
}

static void test_loss(void **state)
{
    (void)state;
    LossCtx c = {7, 4, {0, 3, 6, 2}};
    Layer l = {loss_f, loss_b, &c, 28, 0, 1};
    float x[28];
    fill(x, 28, 51, -3, 3);
    double e = gradcheck(&l, x, NULL, 1e-2f, 1e-3, 28);
    if (e > 1e-2) fail_msg("softmax xent: gradient error %g", e);
    /* stable with huge logits, exact value for two classes */
    float big[2] = {1000.0f, 0.0f};
    int lab = 1;
    LossStats st;
    loss_softmax_xent(big, &lab, 2, 1, NULL, 0, &st);
    assert_true(fabs(st.loss_sum - 1000.0) < 1e-3);
    assert_int_equal(st.top1, 0);
    /* top-k counts: label ranked 3rd of 7 */
    float sc[7] = {0.1f, 0.9f, 0.5f, 0.3f, 0.8f, 0.0f, 0.2f};
    int y3 = 2;
    loss_softmax_xent(sc, &y3, 7, 1, NULL, 0, &st);
    assert_int_equal(st.top1, 0);
    assert_int_equal(st.top5, 1);
    assert_int_equal(loss_rank_of(sc, 7, 1, 2), 3);
    float probs[7];
    loss_softmax(probs, sc, 7, 1);
    double s = 0;
    for (int i = 0; i < 7; i++) s += probs[i];
    assert_true(fabs(s - 1) < 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_gradients),
        cmocka_unit_test(test_conv_fast_vs_naive),
        cmocka_unit_test(test_pool_argmax),
        cmocka_unit_test(test_conv_pointwise_many),
        cmocka_unit_test(test_pool_shapes_and_gradients),
        cmocka_unit_test(test_pool_values),
        cmocka_unit_test(test_lrn),
        cmocka_unit_test(test_fc),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
