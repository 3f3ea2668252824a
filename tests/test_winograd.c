/* test_winograd.c: Winograd convolution against a float64 reference at every
 * 3x3 and 5x5 shape of GoogLeNet, per pass, with both SIMD tables, and the
 * guarantees plans rely on (the same bits whatever the thread count).
 *
 * The accuracy bar is oneDNN's for f32 Winograd (benchdnn): 2e-5 relative L2
 * over the whole tensor, forward and backward data. The weight gradient sums
 * over every tile of the batch; benchdnn allows it more, and so do we (1e-4).
 * GEMM's own error is measured beside it. The table of errors is printed; the
 * figures in docs/performance.md come from it. */
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
#include "nn/parallel.h"
#include "nn/rng.h"

#define TOL_FWD 2e-5
#define TOL_BWD_DATA 2e-5
#define TOL_BWD_WEIGHTS 1e-4

static void fill(float *a, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t k = rng_key(seed, 5, 6, 7);
    for (size_t i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng_uniform(k, i);
}

/* ---- the float64 reference, rows innermost ---- */

static void ref_forward(double *y, const float *x, const float *w, const ConvShape *s, int n)
{
    size_t op = (size_t)s->ho * s->wo, ip = (size_t)s->h * s->w;
    memset(y, 0, sizeof(double) * s->cout * n * op);
    for (int co = 0; co < s->cout; co++)
        for (int ci = 0; ci < s->cin; ci++)
            for (int kh = 0; kh < s->k; kh++)
                for (int kw = 0; kw < s->k; kw++) {
                    double wv = w[((size_t)(co * s->cin + ci) * s->k + kh) * s->k + kw];
                    int lo = s->pad - kw > 0 ? s->pad - kw : 0;
                    int hi = s->w + s->pad - kw < s->wo ? s->w + s->pad - kw : s->wo;
                    for (int i = 0; i < n; i++)
                        for (int oh = 0; oh < s->ho; oh++) {
                            int ih = oh - s->pad + kh;
                            if (ih < 0 || ih >= s->h) continue;
                            double *yr = y + ((size_t)co * n + i) * op + (size_t)oh * s->wo;
                            const float *xr = x + ((size_t)ci * n + i) * ip + (size_t)ih * s->w - s->pad + kw;
                            for (int ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow];
                        }
                }
}

static void ref_backward(double *dx, double *dw, const float *dy, const float *x, const float *w,
                         const ConvShape *s, int n)
{
    size_t op = (size_t)s->ho * s->wo, ip = (size_t)s->h * s->w;
    memset(dx, 0, sizeof(double) * s->cin * n * ip);
    for (int co = 0; co < s->cout; co++)
        for (int ci = 0; ci < s->cin; ci++)
            for (int kh = 0; kh < s->k; kh++)
                for (int kw = 0; kw < s->k; kw++) {
                    size_t wi = ((size_t)(co * s->cin + ci) * s->k + kh) * s->k + kw;
                    double wv = w[wi], g = 0;
                    int lo = s->pad - kw > 0 ? s->pad - kw : 0;
                    int hi = s->w + s->pad - kw < s->wo ? s->w + s->pad - kw : s->wo;
                    for (int i = 0; i < n; i++)
                        for (int oh = 0; oh < s->ho; oh++) {
                            int ih = oh - s->pad + kh;
                            if (ih < 0 || ih >= s->h) continue;
                            const float *dyr = dy + ((size_t)co * n + i) * op + (size_t)oh * s->wo;
                            size_t at = ((size_t)ci * n + i) * ip + (size_t)ih * s->w - s->pad + kw;
                            const float *xr = x + at;
                            double *dxr = dx + at;
                            for (int ow = lo; ow < hi; ow++) {
                                g += (double)dyr[ow] * xr[ow];
                                dxr[ow] += wv * dyr[ow];
                            }
                        }
                    dw[wi] = g;
                }
}

static double rel_l2(const float *a, const double *ref, size_t n)
{
    double e = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] - ref[i];
        e += d * d;
        r += ref[i] * ref[i];
    }
    return sqrt(e / (r > 0 ? r : 1));
}

/* ---- one shape: every algorithm that applies, every pass ---- */

typedef struct {
    const char *name;
    int cin, cout, k, hw;
} Shape;

/* The 3x3 and 5x5 convolutions of GoogLeNet at crop 224 (reference/googlenet.md). */
static const Shape GOOGLENET[] = {
    {"conv2/3x3", 64, 192, 3, 56},
    {"inception_3a/3x3", 96, 128, 3, 28},   {"inception_3a/5x5", 16, 32, 5, 28},
    {"inception_3b/3x3", 128, 192, 3, 28},  {"inception_3b/5x5", 32, 96, 5, 28},
    {"inception_4a/3x3", 96, 208, 3, 14},   {"inception_4a/5x5", 16, 48, 5, 14},
    {"inception_4b/3x3", 112, 224, 3, 14},  {"inception_4b/5x5", 24, 64, 5, 14},
    {"inception_4c/3x3", 128, 256, 3, 14},  {"inception_4c/5x5", 24, 64, 5, 14},
    {"inception_4d/3x3", 144, 288, 3, 14},  {"inception_4d/5x5", 32, 64, 5, 14},
    {"inception_4e/3x3", 160, 320, 3, 14},  {"inception_4e/5x5", 32, 128, 5, 14},
    {"inception_5a/3x3", 160, 320, 3, 7},   {"inception_5a/5x5", 32, 128, 5, 7},
    {"inception_5b/3x3", 192, 384, 3, 7},   {"inception_5b/5x5", 48, 128, 5, 7},
};

typedef struct {
    ConvShape s;
    int n;
    size_t nx, ny, nw;
    float *x, *w, *dy, *y, *dx, *dwt, *work;
    double *ry, *rdx, *rdw;
} Case;

static void case_init(Case *c, const Shape *sh, int n)
{
    memset(c, 0, sizeof *c);
    conv_shape_init(&c->s, sh->cin, sh->cout, sh->k, 1, sh->k / 2, sh->hw, sh->hw);
    c->n = n;
    c->nx = (size_t)sh->cin * n * sh->hw * sh->hw;
    c->ny = (size_t)sh->cout * n * c->s.ho * c->s.wo;
    c->nw = (size_t)sh->cout * sh->cin * sh->k * sh->k;
    c->x = malloc(c->nx * 4);
    c->w = malloc(c->nw * 4);
    c->dy = malloc(c->ny * 4);
    c->y = malloc(c->ny * 4);
    c->dx = malloc(c->nx * 4);
    c->dwt = malloc(c->nw * 4);
    c->ry = malloc(c->ny * 8);
    c->rdx = malloc(c->nx * 8);
    c->rdw = malloc(c->nw * 8);
    assert_non_null(c->rdw);
    /* weights at the scale of Caffe's xavier init, activations of ReLU outputs */
    float a = sqrtf(3.0f / (sh->cin * sh->k * sh->k));
    fill(c->x, c->nx, 1, 0, 1);
    fill(c->w, c->nw, 2, -a, a);
    fill(c->dy, c->ny, 3, -1, 1);
    ref_forward(c->ry, c->x, c->w, &c->s, n);
    ref_backward(c->rdx, c->rdw, c->dy, c->x, c->w, &c->s, n);
}

static void case_free(Case *c)
{
    free(c->x); free(c->w); free(c->dy); free(c->y); free(c->dx); free(c->dwt);
    free(c->ry); free(c->rdx); free(c->rdw); free(c->work);
}

/* Runs the three passes of plan p; errors against the reference into err[3]. */
static void run_plan(Case *c, const ConvPlan *p, double err[3])
{
    size_t cap = conv_work_floats(&c->s, p, c->n, parallel_threads(), 1);
    free(c->work);
    c->work = malloc(cap * 4);
    conv_forward(c->y, c->x, c->w, NULL, &c->s, c->n, 0, p, c->work, cap);
    memset(c->dwt, 0, c->nw * 4);
    conv_backward_data(c->dx, c->dy, c->w, &c->s, c->n, 0, p, c->work, cap);
    conv_backward_weights(c->dwt, c->dy, c->x, &c->s, c->n, p, c->work, cap);
    err[0] = rel_l2(c->y, c->ry, c->ny);
    err[1] = rel_l2(c->dx, c->rdx, c->nx);
    err[2] = rel_l2(c->dwt, c->rdw, c->nw);
}

static void test_accuracy_at_googlenet_shapes(void **state)
{
    (void)state;
    parallel_set_threads(2);
    printf("relative L2 error against float64, n = 2 (forward, backward data, backward weights), SIMD %s\n",
           nn_kernels()->name);
    int failures = 0;
    for (size_t i = 0; i < sizeof GOOGLENET / sizeof GOOGLENET[0]; i++) {
        Case c;
        case_init(&c, &GOOGLENET[i], 2);
        printf("  %-18s", GOOGLENET[i].name);
        for (int a = 0; a < CONV_ALGOS; a++) {
            if (!conv_algo_applies((ConvAlgo)a, &c.s)) continue;
            ConvPlan p = conv_plan_uniform((ConvAlgo)a, &c.s, c.n);
            double e[3];
            run_plan(&c, &p, e);
            printf("  %s %.1e %.1e %.1e", conv_algo_name((ConvAlgo)a), e[0], e[1], e[2]);
            if (e[0] > TOL_FWD || e[1] > TOL_BWD_DATA || e[2] > TOL_BWD_WEIGHTS) {
                printf(" (over the bar)");
                failures++;
            }
        }
        printf("\n");
        case_free(&c);
    }
    if (failures) fail_msg("%d algorithm(s) over the accuracy bar", failures);
}

/* Both tables compute the same convolution, each to the bar; each gives the
 * same bits with 1 and 3 threads. */
static void test_tables_and_threads(void **state)
{
    (void)state;
    static const char *tables[] = {"avx2", "avx512"};
    Shape sh = {"small", 24, 20, 3, 13};
    Shape sh5 = {"small5", 12, 10, 5, 9};
    for (int t = 0; t < 2; t++) {
        if (!nn_kernels_supported(tables[t])) {
            printf("  this CPU cannot run the %s table: not tested here\n", tables[t]);
            continue;
        }
        assert_int_equal(nn_kernels_select(tables[t]), 0);
        for (int which = 0; which < 2; which++) {
            Case c;
            case_init(&c, which ? &sh5 : &sh, 3);
            for (int a = 1; a < CONV_ALGOS; a++) {
                if (!conv_algo_applies((ConvAlgo)a, &c.s)) continue;
                ConvPlan p = conv_plan_uniform((ConvAlgo)a, &c.s, c.n);
                /* a small block: several blocks, a partial last one */
                for (int k = 0; k < CONV_PASSES; k++) p.block[k] = 16;
                double e[3];
                parallel_set_threads(1);
                run_plan(&c, &p, e);
                float *y1 = malloc(c.ny * 4), *dx1 = malloc(c.nx * 4), *dw1 = malloc(c.nw * 4);
                memcpy(y1, c.y, c.ny * 4);
                memcpy(dx1, c.dx, c.nx * 4);
                memcpy(dw1, c.dwt, c.nw * 4);
                parallel_set_threads(3);
                run_plan(&c, &p, e);
                if (e[0] > TOL_FWD || e[1] > TOL_BWD_DATA || e[2] > TOL_BWD_WEIGHTS)
                    fail_msg("%s by %s: errors %g %g %g", tables[t], conv_algo_name((ConvAlgo)a), e[0], e[1], e[2]);
                if (memcmp(y1, c.y, c.ny * 4) || memcmp(dx1, c.dx, c.nx * 4) || memcmp(dw1, c.dwt, c.nw * 4))
                    fail_msg("%s by %s: 1 and 3 threads give different bits", tables[t], conv_algo_name((ConvAlgo)a));
                free(y1);
                free(dx1);
                free(dw1);
            }
            case_free(&c);
        }
    }
    nn_kernels_select(nn_kernels_supported("avx512") ? "avx512" : "avx2");
    parallel_set_threads(1);
}

/* accum adds the input gradient to what dx held; bias and ReLU apply in the
 * forward transform of the output. */
static void test_accum_bias_relu(void **state)
{
    (void)state;
    ConvShape s;
    conv_shape_init(&s, 6, 5, 3, 1, 1, 10, 9);
    int n = 2;
    size_t nx = (size_t)6 * n * 90, ny = (size_t)5 * n * 90, nw = 5 * 6 * 9;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(5 * 4), *y = malloc(ny * 4),
          *ref = malloc(ny * 4), *dy = malloc(ny * 4), *dx = malloc(nx * 4), *dx0 = malloc(nx * 4),
          *dxg = malloc(nx * 4);
    fill(x, nx, 11, -1, 1);
    fill(w, nw, 12, -1, 1);
    fill(b, 5, 13, -1, 1);
    fill(dy, ny, 14, -1, 1);
    ConvPlan p = conv_plan_uniform(CONV_F4X3, &s, n), g = conv_plan_uniform(CONV_GEMM, &s, n);
    size_t cap = conv_work_floats(&s, &p, n, 1, 1) + conv_work_floats(&s, &g, n, 1, 1);
    float *work = malloc(cap * 4);
    conv_forward(y, x, w, b, &s, n, 1, &p, work, cap);
    conv_forward_naive(ref, x, w, b, &s, n, 1);
    int negatives = 0;
    for (size_t i = 0; i < ny; i++) {
        assert_true(fabsf(y[i] - ref[i]) < 1e-4f);
        negatives += y[i] < 0;
    }
    assert_int_equal(negatives, 0);
    fill(dx, nx, 15, -1, 1);
    memcpy(dx0, dx, nx * 4);
    conv_backward_data(dx, dy, w, &s, n, 1, &p, work, cap);
    conv_backward_data(dxg, dy, w, &s, n, 0, &g, work, cap);
    for (size_t i = 0; i < nx; i++) assert_true(fabsf(dx[i] - (dx0[i] + dxg[i])) < 1e-4f);
    free(x); free(w); free(b); free(y); free(ref); free(dy); free(dx); free(dx0); free(dxg); free(work);
}

/* conv_forward_cached gives conv_forward's bits: the first call, again with
 * the same weights (filters kept), after one weight changed (prepared again),
 * and after the kernel table changed (their layout differs). */
static void test_forward_cached(void **state)
{
    (void)state;
    ConvShape s;
    conv_shape_init(&s, 7, 20, 3, 1, 1, 9, 11);
    int n = 3;
    size_t nx = (size_t)7 * n * 99, ny = (size_t)20 * n * 99, nw = 20 * 7 * 9;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(20 * 4), *y = malloc(ny * 4),
          *want = malloc(ny * 4);
    fill(x, nx, 21, -1, 1);
    fill(w, nw, 22, -1, 1);
    fill(b, 20, 23, -1, 1);
    const char *tables[2] = {"avx2", "avx512"};
    ConvFilterCache c = {0};
    for (int a = CONV_F2X3; a <= CONV_F4X3; a++) {
        ConvPlan p = conv_plan_uniform((ConvAlgo)a, &s, n);
        size_t cap = conv_work_floats(&s, &p, n, 2, 0);
        float *work = malloc(cap * 4);
        for (int t = 0; t < 2; t++) {
            if (!nn_kernels_supported(tables[t])) continue;
            assert_int_equal(nn_kernels_select(tables[t]), 0);
            for (int round = 0; round < 3; round++) {
                if (round == 2) w[37] += 0.25f;
                conv_forward(want, x, w, b, &s, n, 1, &p, work, cap);
                memset(y, 0, ny * 4);
                conv_forward_cached(&c, y, x, w, b, &s, n, 1, &p, work, cap);
                assert_memory_equal(y, want, ny * 4);
            }
        }
        free(work);
    }
    conv_filter_cache_free(&c);
    assert_null(c.up);
    nn_kernels_select(nn_kernels_supported("avx512") ? "avx512" : "avx2");
    free(x); free(w); free(b); free(y); free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accum_bias_relu),
        cmocka_unit_test(test_forward_cached),
        cmocka_unit_test(test_tables_and_threads),
        cmocka_unit_test(test_accuracy_at_googlenet_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
