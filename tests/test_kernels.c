/* test_kernels.c: the SIMD tables (nn/kernels/kernels.h) against each other.
 * The layer tests hold the table the CPU picks to references (gradient checks,
 * naive loops); here every kernel of the AVX2 table must give what the AVX-512
 * table gives on the same inputs: the same bits where the kernels only move,
 * compare and add in the same order (pooling, im2col/col2im, SGD, the direct
 * convolution, the forward GEMM), and within
 * 1e-6 for LRN, whose reciprocal square-root estimates differ (12 and 14 bits
 * before the Newton step). Winograd's tables: tests/test_winograd.c. On a CPU
 * without AVX-512 there is one table and the test says so. The forward GEMM
 * is also held to a scalar loop's bits, in every table the CPU has. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn/conv.h"
#include "nn/kernels/kernels.h"
#include "nn/lrn.h"
#include "nn/parallel.h"
#include "nn/pool.h"
#include "nn/rng.h"
#include "nn/sgd.h"

static void fill(float *a, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t k = rng_key(seed, 9, 8, 7);
    for (size_t i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng_uniform(k, i);
}

static int both_tables(void)
{
    if (nn_kernels_supported("avx2") && nn_kernels_supported("avx512")) return 1;
    printf("  this CPU has one table (%s): nothing to compare\n", nn_kernels()->name);
    return 0;
}

/* Runs f once per table; out[t] holds what it wrote (len floats). */
typedef void (*RunFn)(void *ctx, float *out);

static void per_table(RunFn f, void *ctx, size_t len, float *out[2])
{
    static const char *names[2] = {"avx2", "avx512"};
    for (int t = 0; t < 2; t++) {
        out[t] = calloc(len, sizeof(float));
        assert_int_equal(nn_kernels_select(names[t]), 0);
        f(ctx, out[t]);
    }
    nn_kernels_select("avx512");
}

/* ---- pooling ---- */

typedef struct {
    PoolShape s;
    long planes;
    float *x, *dy;
} PoolCase;

static void run_pool(void *ctx, float *out)
{
    PoolCase *c = ctx;
    size_t ny = (size_t)c->planes * c->s.ho * c->s.wo, nx = (size_t)c->planes * c->s.h * c->s.w;
    unsigned char *arg = malloc(ny);
    float *y = out, *dx = out + ny, *y2 = out + ny + nx, *dx2 = out + 2 * ny + nx;
    pool_forward(y, c->x, &c->s, c->planes);
    pool_backward(dx, c->dy, c->x, y, &c->s, c->planes, 0);
    if (c->s.kind == POOL_MAX) {
        pool_forward_argmax(y2, arg, c->x, &c->s, c->planes);
        pool_backward_argmax(dx2, c->dy, arg, &c->s, c->planes, 0);
    }
    free(arg);
}

static void test_pool_tables(void **state)
{
    (void)state;
    if (!both_tables()) return;
    PoolCase c = {.planes = 3};
    PoolShape shapes[4];
    pool_shape_init(&shapes[0], POOL_MAX, 3, 2, 0, 29, 31);
    pool_shape_init(&shapes[1], POOL_MAX, 3, 1, 1, 14, 14);
    pool_shape_init(&shapes[2], POOL_AVG, 5, 3, 0, 14, 14);
    pool_shape_adaptive(&shapes[3], 9, 7, 4, 4);
    for (int i = 0; i < 4; i++) {
        c.s = shapes[i];
        size_t nx = (size_t)c.planes * c.s.h * c.s.w, ny = (size_t)c.planes * c.s.ho * c.s.wo;
        c.x = malloc(nx * 4);
        c.dy = malloc(ny * 4);
        fill(c.x, nx, 1, -1, 1);
        for (size_t k = 0; k < nx; k++) c.x[k] = c.x[k] < 0 ? 0 : c.x[k]; /* ties */
        fill(c.dy, ny, 2, -1, 1);
        float *out[2];
        per_table(run_pool, &c, 2 * (nx + ny), out);
        assert_memory_equal(out[0], out[1], 2 * (nx + ny) * 4);
        free(out[0]);
        free(out[1]);
        free(c.x);
        free(c.dy);
    }
}

/* ---- LRN ---- */

typedef struct {
    LrnShape s;
    float *x, *dy;
} LrnCase;

static void run_lrn(void *ctx, float *out)
{
    LrnCase *c = ctx;
    size_t n = (size_t)c->s.c * c->s.plane;
    lrn_forward(out, c->x, &c->s);
    lrn_backward(out + n, c->dy, c->x, &c->s, 0);
}

static void test_lrn_tables(void **state)
{
    (void)state;
    if (!both_tables()) return;
    LrnCase c = {.s = {.size = 5, .alpha = 1e-4f, .beta = 0.75f, .k = 1.0f, .c = 11, .plane = 700}};
    size_t n = (size_t)c.s.c * c.s.plane;
    c.x = malloc(n * 4);
    c.dy = malloc(n * 4);
    fill(c.x, n, 3, -30, 30);
    fill(c.dy, n, 4, -1, 1);
    float *out[2];
    per_table(run_lrn, &c, 2 * n, out);
    for (size_t i = 0; i < 2 * n; i++)
        if (fabsf(out[0][i] - out[1][i]) > 1e-6f * (1 + fabsf(out[1][i])))
            fail_msg("LRN %s %zu: avx2 %g avx512 %g", i < n ? "y" : "dx", i % n, out[0][i], out[1][i]);
    free(out[0]);
    free(out[1]);
    free(c.x);
    free(c.dy);
}

/* ---- SGD ---- */

typedef struct {
    size_t n;
    ParamTensor pt[2];
    float *w, *v, *g, *avg;
} SgdCase;

static void run_sgd(void *ctx, float *out)
{
    SgdCase *c = ctx;
    float *w = out, *v = out + c->n, *avg = out + 2 * c->n;
    memcpy(w, c->w, c->n * 4);
    memcpy(v, c->v, c->n * 4);
    memcpy(avg, c->avg, c->n * 4);
    for (int step = 0; step < 3; step++) sgd_step(w, v, c->g, avg, c->pt, 2, 0.01f, 0.9f, 2e-4f, 0.99f);
}

static void test_sgd_tables(void **state)
{
    (void)state;
    if (!both_tables()) return;
    SgdCase c = {.n = 1003};
    c.pt[0] = (ParamTensor){.offset = 0, .count = 1000, .lr_mult = 1, .decay_mult = 1};
    c.pt[1] = (ParamTensor){.offset = 1000, .count = 3, .lr_mult = 2, .decay_mult = 0, .is_bias = 1};
    c.w = malloc(c.n * 4);
    c.v = malloc(c.n * 4);
    c.g = malloc(c.n * 4);
    c.avg = malloc(c.n * 4);
    fill(c.w, c.n, 5, -1, 1);
    fill(c.v, c.n, 6, -0.1f, 0.1f);
    fill(c.g, c.n, 7, -1, 1);
    memcpy(c.avg, c.w, c.n * 4);
    float *out[2];
    per_table(run_sgd, &c, 3 * c.n, out);
    assert_memory_equal(out[0], out[1], 3 * c.n * 4);
    free(out[0]);
    free(out[1]);
    free(c.w);
    free(c.v);
    free(c.g);
    free(c.avg);
}

/* ---- im2col / col2im, through the convolution by GEMM ---- */

typedef struct {
    ConvShape s;
    int n;
    float *x, *w, *b, *dy;
} ConvCase;

static void run_conv(void *ctx, float *out)
{
    ConvCase *c = ctx;
    ConvPlan p = conv_plan_uniform(CONV_GEMM, &c->s, c->n);
    size_t cap = conv_work_floats(&c->s, &p, c->n, parallel_threads(), 1);
    float *work = malloc(cap * 4);
    size_t ny = (size_t)c->s.cout * c->n * c->s.ho * c->s.wo, nx = (size_t)c->s.cin * c->n * c->s.h * c->s.w;
    conv_forward(out, c->x, c->w, c->b, &c->s, c->n, 0, &p, work, cap);
    conv_backward_data(out + ny, c->dy, c->w, &c->s, c->n, 0, &p, work, cap);
    conv_backward_weights(out + ny + nx, c->dy, c->x, &c->s, c->n, &p, work, cap);
    free(work);
}

/* Inputs for convolution s of n images, run by f on both tables; the first
 * len floats f writes must match bit for bit. */
static void conv_tables(const ConvShape *s, int n, RunFn f, size_t len)
{
    ConvCase c = {.s = *s, .n = n};
    size_t nx = (size_t)s->cin * n * s->h * s->w, nw = (size_t)s->cout * s->cin * s->k * s->k,
           ny = (size_t)s->cout * n * s->ho * s->wo;
    c.x = malloc(nx * 4);
    c.w = malloc(nw * 4);
    c.b = malloc(s->cout * 4);
    c.dy = malloc(ny * 4);
    fill(c.x, nx, 8, -1, 1);
    fill(c.w, nw, 9, -1, 1);
    fill(c.b, s->cout, 10, -1, 1);
    fill(c.dy, ny, 11, -1, 1);
    float *out[2];
    per_table(f, &c, len, out);
    assert_memory_equal(out[0], out[1], len * 4);
    free(out[0]);
    free(out[1]);
    free(c.x);
    free(c.w);
    free(c.b);
    free(c.dy);
}

static void test_im2col_tables(void **state)
{
    (void)state;
    if (!both_tables()) return;
    ConvShape s;
    conv_shape_init(&s, 3, 5, 7, 2, 3, 23, 19); /* conv1's kind: strided, padded */
    size_t nx = (size_t)3 * 2 * 23 * 19, nw = 5 * 3 * 49, ny = (size_t)5 * 2 * s.ho * s.wo;
    conv_tables(&s, 2, run_conv, ny + nx + nw);
}

/* ---- the direct convolution of an input with few channels: forward and
 * weight gradient ---- */

static void run_direct(void *ctx, float *out)
{
    ConvCase *c = ctx;
    size_t cap = conv_direct_scratch_floats(&c->s) * parallel_threads();
    float *work = malloc(cap * 4);
    ConvPlan p = conv_plan_uniform(CONV_GEMM, &c->s, c->n);
    conv_forward(out, c->x, c->w, c->b, &c->s, c->n, 1, &p, work, cap);
    free(work);
    cap = conv_work_floats(&c->s, &p, c->n, parallel_threads(), 1);
    work = malloc(cap * 4);
    size_t ny = (size_t)c->s.cout * c->n * c->s.ho * c->s.wo;
    conv_backward_weights(out + ny, c->dy, c->x, &c->s, c->n, &p, work, cap);
    free(work);
}

static void test_direct_tables(void **state)
{
    (void)state;
    if (!both_tables()) return;
    /* conv1's kind: rows of 49 outputs; 68 output channels, whole register
     * tiles and a remainder in both tables */
    ConvShape s;
    conv_shape_init(&s, 3, 68, 7, 2, 3, 40, 97);
    assert_true(conv_direct_applies(&s) && conv_direct_weights_applies(&s));
    conv_tables(&s, 3, run_direct, (size_t)68 * 3 * s.ho * s.wo + 68 * 3 * 49);
}

/* ---- the forward GEMM (nn/kernels/gemm.c) ----
 * Each output must be fmaf(w[k], x[k], acc) over k in order, then + bias and
 * ReLU: the bits of a scalar loop, in every table, whatever the tiles, the
 * tails (rows, columns, a masked last vector) or the column sub-blocks; and
 * nothing outside the outputs' columns may be written. */

typedef struct {
    int kdim, cols, relu;
    int couts[2], bias[2];
} GemmCase;

static void check_gemm_case(const GemmCase *g)
{
    const size_t ldx = (size_t)g->cols + 9, y0 = 5, ldy = y0 + (size_t)g->cols + 3;
    float *x = malloc(sizeof(float) * g->kdim * ldx);
    fill(x, (size_t)g->kdim * ldx, 21, -1, 1);
    ConvOut outs[2];
    float *w[2], *b[2], *y[2];
    for (int o = 0; o < 2; o++) {
        size_t nw = (size_t)g->couts[o] * g->kdim, ny = (size_t)g->couts[o] * ldy;
        w[o] = malloc(sizeof(float) * nw);
        b[o] = malloc(sizeof(float) * g->couts[o]);
        y[o] = malloc(sizeof(float) * ny);
        fill(w[o], nw, 22 + o, -1, 1);
        fill(b[o], g->couts[o], 24 + o, -2, 2);
        for (size_t i = 0; i < ny; i++) y[o][i] = 12345.0f;
        outs[o] = (ConvOut){y[o], w[o], g->bias[o] ? b[o] : NULL, g->couts[o]};
    }
    nn_kernels()->gemm_forward(outs, 2, g->kdim, x, ldx, g->cols, ldy, y0, g->relu);
    for (int o = 0; o < 2; o++)
        for (int r = 0; r < g->couts[o]; r++)
            for (size_t j = 0; j < ldy; j++) {
                float want = 12345.0f;
                if (j >= y0 && j < y0 + (size_t)g->cols) {
                    float acc = 0.0f;
                    for (int k = 0; k < g->kdim; k++)
                        acc = fmaf(w[o][(size_t)r * g->kdim + k], x[(size_t)k * ldx + (j - y0)], acc);
                    acc += g->bias[o] ? b[o][r] : 0.0f;
                    want = g->relu && !(acc > 0.0f) ? 0.0f : acc;
                }
                float got = y[o][(size_t)r * ldy + j];
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail_msg("%s table, kdim %d cols %d: output %d row %d column %zu is %.9g, want %.9g",
                             nn_kernels()->name, g->kdim, g->cols, o, r, j, got, want);
            }
    for (int o = 0; o < 2; o++) {
        free(w[o]);
        free(b[o]);
        free(y[o]);
    }
    free(x);
}

static void test_gemm_forward(void **state)
{
    (void)state;
    static const GemmCase cases[] = {
        {1, 1, 0, {1, 1}, {1, 0}},     {7, 5, 1, {13, 8}, {1, 1}},   {3, 16, 1, {8, 16}, {0, 1}},
        {20, 47, 0, {5, 3}, {1, 1}},   {20, 48, 1, {9, 4}, {1, 0}},  {33, 49, 1, {17, 2}, {1, 1}},
        {64, 100, 1, {24, 7}, {0, 0}}, {600, 400, 1, {11, 6}, {1, 1}}, /* 600 rows: column sub-blocks */
    };
    static const char *names[2] = {"avx2", "avx512"};
    for (int t = 0; t < 2; t++) {
        if (!nn_kernels_supported(names[t])) continue;
        assert_int_equal(nn_kernels_select(names[t]), 0);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_gemm_case(&cases[i]);
    }
    nn_kernels_select(nn_kernels_supported("avx512") ? "avx512" : "avx2");
}

int main(void)
{
    parallel_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_tables),
        cmocka_unit_test(test_lrn_tables),
        cmocka_unit_test(test_sgd_tables),
        cmocka_unit_test(test_im2col_tables),
        cmocka_unit_test(test_direct_tables),
        cmocka_unit_test(test_gemm_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
